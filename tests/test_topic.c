/* test_topic.c - topics and partitions: names, create/open/delete, config,
 * foreach, empty partitions (lib/topic.c). */
#include "helpers.h"
#include "q7_int.h"

#include <sys/stat.h>

static char *dir;
static q7 *q;

static void
tmpstore(void)
{
  dir = tmpdir_new();
  q = NULL;
  int rc = q7_open(&q, dir, NULL);
  cr_assert_eq(rc, Q7_OK, "q7_open(%s) -> %d: %s", dir, rc, q7_last_error());
}

static void
tmpstore_rm(void)
{
  if (q) {
    int rc = q7_close(q);
    if (rc)
      fprintf(stderr, "q7_close -> %d: %s\n", rc, q7_last_error());
  }
  q = NULL;
  tmpdir_rm(dir);
  dir = NULL;
}

TestSuite(topic, .init = tmpstore, .fini = tmpstore_rm, .timeout = 60);

static bool
exists(const char *fmt, const char *name)
{
  char path[8192];
  struct stat st;
  snprintf(path, sizeof path, fmt, dir, name);
  return stat(path, &st) == 0;
}

/* Produce @n records "v0".."v{n-1}" to partition @part, synchronously. */
static void
produce(q7_topic *t, int32_t part, int n)
{
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  for (int i = 0; i < n; i++) {
    char v[32];
    int vl = snprintf(v, sizeof v, "v%d", i);
    q7_msg m = { .topic = t, .partition = part, .value = v, .value_len = (size_t)vl };
    Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL));
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
}

static const char *
topic_get(const char *name, const char *key)
{
  static char buf[256];
  size_t len = sizeof buf;
  Q7_OK_OR_FAIL(q7_topic_get(q, name, key, buf, &len));
  return buf;
}

/* --------------------------------------------------------------- names */

Test(topic, create_accepts_kafka_names)
{
  const char *ok[] = { "a", "A", "0", "orders", "my.topic", "my_topic", "my-topic", "...", ".a",
                       "a..b", "-", "_", "Mixed.Case-09_x" };
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
    Q7_OK_OR_FAIL(q7_topic_create(q, ok[i], 1, NULL));
    q7_topic *t;
    Q7_OK_OR_FAIL(q7_topic_open(q, ok[i], &t));
    cr_assert_str_eq(q7_topic_name(t), ok[i]);
    q7_topic_close(t);
  }
}

Test(topic, create_rejects_empty_name)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "", 1, NULL));
}

Test(topic, create_rejects_dot)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, ".", 1, NULL));
  cr_assert(strstr(q7_last_error(), "\".\""), "%s", q7_last_error());
}

Test(topic, create_rejects_dotdot)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "..", 1, NULL));
  cr_assert(strstr(q7_last_error(), "\"..\""), "%s", q7_last_error());
  cr_assert(exists("%s/topics", ""), "the store's topics directory went away");
}

Test(topic, create_rejects_slash)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "a/b", 1, NULL));
  cr_assert(strstr(q7_last_error(), "a/b"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "../escape", 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "/abs", 1, NULL));
  cr_assert(!exists("%s/topics/a", ""));
}

Test(topic, create_rejects_space_and_other_punctuation)
{
  const char *bad[] = { "a b", " a", "a ", "a\tb", "a\nb", "a:b", "a*b", "a\\b", "a+b", "a@b",
                        "a,b", "a=b", "a%b", "a$b", "a~b" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, bad[i], 1, NULL));
  /* The message says which character is wrong. */
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "a b", 1, NULL));
  cr_assert(strstr(q7_last_error(), "0x20"), "%s", q7_last_error());
}

Test(topic, create_rejects_non_ascii)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "caf\xc3\xa9", 1, NULL));
  cr_assert(strstr(q7_last_error(), "0xc3"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "\xe2\x82\xac", 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "a\x7f", 1, NULL));
}

Test(topic, create_accepts_249_chars)
{
  char name[250];
  memset(name, 'x', 249);
  name[249] = 0;
  Q7_OK_OR_FAIL(q7_topic_create(q, name, 2, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, name, &t));
  cr_assert_str_eq(q7_topic_name(t), name);
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_partition(t, 1, &p));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_topic_delete(q, name));
}

Test(topic, create_rejects_250_chars)
{
  char name[251];
  memset(name, 'x', 250);
  name[250] = 0;
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, name, 1, NULL));
  cr_assert(strstr(q7_last_error(), "250"), "%s", q7_last_error());
}

Test(topic, null_name_and_store_are_einval)
{
  q7_topic *t = NULL;
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, NULL, 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(NULL, "a", 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_open(q, NULL, &t));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_open(NULL, "a", &t));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_open(q, "a", NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_delete(q, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_delete(NULL, "a"));
  cr_assert_null(t);
}

Test(topic, open_and_delete_check_names_too)
{
  q7_topic *t = NULL;
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_open(q, "..", &t));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_open(q, "a/b", &t));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_delete(q, ".."));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_delete(q, "."));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_delete(q, "../topics"));
  cr_assert(exists("%s/topics", ""));
  cr_assert(exists("%s/meta/data.mdb", ""));
  cr_assert_null(t);
}

/* ---------------------------------------------------------- partitions */

Test(topic, create_rejects_partition_counts_outside_1_to_10000)
{
  const int32_t bad[] = { 0, -1, 10001, INT32_MIN, INT32_MAX };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "t", bad[i], NULL));
    cr_assert(strstr(q7_last_error(), "\"t\""), "%s", q7_last_error());
  }
  q7_topic *t;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(q, "t", &t));
  cr_assert(!exists("%s/topics/%s", "t"), "a refused create left a directory");
}

Test(topic, create_makes_one_directory_per_partition)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "three", 3, NULL));
  cr_assert(exists("%s/topics/%s/0/data.mdb", "three"));
  cr_assert(exists("%s/topics/%s/2/data.mdb", "three"));
  cr_assert(!exists("%s/topics/%s/3", "three"));
}

Test(topic, open_reports_name_and_count)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "orders", 12, NULL));
  q7_topic *t = NULL;
  Q7_OK_OR_FAIL(q7_topic_open(q, "orders", &t));
  cr_assert_not_null(t);
  cr_assert_str_eq(q7_topic_name(t), "orders");
  cr_assert_eq(q7_topic_partition_count(t), 12);
  q7_topic_close(t);
}

Test(topic, open_copies_the_name)
{
  char name[] = "copied";
  Q7_OK_OR_FAIL(q7_topic_create(q, name, 1, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, name, &t));
  name[0] = 'X';
  cr_assert_str_eq(q7_topic_name(t), "copied");
  q7_topic_close(t);
}

Test(topic, null_handle_accessors)
{
  cr_assert_null(q7_topic_name(NULL));
  cr_assert_eq(q7_topic_partition_count(NULL), Q7_EINVAL);
  q7_topic_close(NULL);
}

Test(topic, create_twice_is_eexist)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "dup", 2, NULL));
  Q7_FAILS_WITH(Q7_EEXIST, q7_topic_create(q, "dup", 2, NULL));
  cr_assert(strstr(q7_last_error(), "dup"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EEXIST, q7_topic_create(q, "dup", 5, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "dup", &t));
  cr_assert_eq(q7_topic_partition_count(t), 2, "a refused create changed the topic");
  q7_topic_close(t);
}

Test(topic, names_are_case_sensitive)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "Case", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "case", 2, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "case", &t));
  cr_assert_eq(q7_topic_partition_count(t), 2);
  q7_topic_close(t);
}

Test(topic, open_missing_is_enoent)
{
  q7_topic *t = NULL;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(q, "missing", &t));
  cr_assert(strstr(q7_last_error(), "missing"), "%s", q7_last_error());
  cr_assert_null(t, "out written on failure");
}

Test(topic, delete_missing_is_enoent)
{
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_delete(q, "missing"));
  cr_assert(strstr(q7_last_error(), "missing"), "%s", q7_last_error());
}

Test(topic, delete_removes_the_topic_and_its_files)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "gone", 2, NULL));
  Q7_OK_OR_FAIL(q7_topic_delete(q, "gone"));
  q7_topic *t;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(q, "gone", &t));
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_delete(q, "gone"));
  cr_assert(!exists("%s/topics/%s", "gone"));
  cr_assert(!exists("%s/trash/%s.1", "gone"));
}

Test(topic, delete_with_open_partition_handle_is_ebusy)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "busy", 1, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "busy", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_FAILS_WITH(Q7_EBUSY, q7_topic_delete(q, "busy"));
  cr_assert(strstr(q7_last_error(), "busy"), "%s", q7_last_error());
  int64_t hw;
  Q7_OK_OR_FAIL(q7_partition_offsets(p, NULL, &hw));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_topic_delete(q, "busy"));
}

Test(topic, delete_with_open_topic_handle_is_ebusy)
{
  /* A topic handle whose partitions were never touched is still a handle. */
  Q7_OK_OR_FAIL(q7_topic_create(q, "busy", 1, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "busy", &t));
  int rc = q7_topic_delete(q, "busy");
  q7_topic_close(t);
  cr_assert_eq(rc, Q7_EBUSY, "q7_topic_delete with an open topic handle -> %d (%s)", rc,
               rc ? q7_last_error() : "deleted");
}

Test(topic, delete_then_recreate_is_empty)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "again", 2, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "again", &t));
  produce(t, 0, 5);
  produce(t, 1, 2);
  q7_partition *p;
  int64_t ls, hw;
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(hw, 5);
  q7_topic_close(t);

  Q7_OK_OR_FAIL(q7_topic_delete(q, "again"));
  Q7_OK_OR_FAIL(q7_topic_create(q, "again", 3, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "again", &t));
  cr_assert_eq(q7_topic_partition_count(t), 3);
  for (int32_t i = 0; i < 3; i++) {
    Q7_OK_OR_FAIL(q7_topic_partition(t, i, &p));
    Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
    cr_assert_eq(ls, 0, "partition %d", i);
    cr_assert_eq(hw, 0, "partition %d of the new topic is not empty", i);
    q7_record r[4];
    cr_assert_eq(q7_partition_read(p, 0, r, 4), 0);
  }
  q7_topic_close(t);
}

Test(topic, delete_then_recreate_with_another_config)
{
  q7_conf *c;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "retention.ms", "1000"));
  Q7_OK_OR_FAIL(q7_topic_create(q, "cfg", 1, c));
  q7_conf_destroy(c);
  Q7_OK_OR_FAIL(q7_topic_delete(q, "cfg"));
  Q7_OK_OR_FAIL(q7_topic_create(q, "cfg", 1, NULL));
  cr_assert_str_eq(topic_get("cfg", "retention.ms"), "604800000");
}

Test(topic, partition_negative_index_is_einval)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "p", 3, NULL));
  q7_topic *t;
  q7_partition *p = NULL;
  Q7_OK_OR_FAIL(q7_topic_open(q, "p", &t));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_partition(t, -1, &p));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_partition(t, INT32_MIN, &p));
  cr_assert_null(p);
  q7_topic_close(t);
}

Test(topic, partition_index_past_count_is_enoent)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "p", 3, NULL));
  q7_topic *t;
  q7_partition *p = NULL;
  Q7_OK_OR_FAIL(q7_topic_open(q, "p", &t));
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_partition(t, 3, &p));
  cr_assert(strstr(q7_last_error(), "3"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_partition(t, INT32_MAX, &p));
  cr_assert_null(p);
  Q7_OK_OR_FAIL(q7_topic_partition(t, 2, &p));
  cr_assert_not_null(p);
  q7_topic_close(t);
}

Test(topic, partition_null_arguments_are_einval)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "p", 1, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "p", &t));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_partition(NULL, 0, &p));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_partition(t, 0, NULL));
  q7_topic_close(t);
}

Test(topic, partition_handle_is_stable)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "p", 2, NULL));
  q7_topic *t;
  q7_partition *a, *b, *c;
  Q7_OK_OR_FAIL(q7_topic_open(q, "p", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &a));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &b));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 1, &c));
  cr_assert_eq(a, b);
  cr_assert_neq(a, c);
  q7_topic_close(t);
}

Test(topic, two_handles_on_one_topic)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "shared", 1, NULL));
  q7_topic *t1, *t2;
  q7_partition *p1, *p2;
  Q7_OK_OR_FAIL(q7_topic_open(q, "shared", &t1));
  Q7_OK_OR_FAIL(q7_topic_open(q, "shared", &t2));
  Q7_OK_OR_FAIL(q7_topic_partition(t1, 0, &p1));
  Q7_OK_OR_FAIL(q7_topic_partition(t2, 0, &p2));
  produce(t1, 0, 3);
  int64_t hw;
  Q7_OK_OR_FAIL(q7_partition_offsets(p2, NULL, &hw));
  cr_assert_eq(hw, 3);
  q7_topic_close(t1);
  Q7_OK_OR_FAIL(q7_partition_offsets(p2, NULL, &hw));
  cr_assert_eq(hw, 3);
  q7_topic_close(t2);
}

/* -------------------------------------------------------------- config */

Test(topic, create_rejects_non_topic_key)
{
  q7_conf *c;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "linger.ms", "10"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "t", 1, c));
  cr_assert(strstr(q7_last_error(), "linger.ms"), "%s", q7_last_error());
  q7_conf_destroy(c);
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", "false"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "t", 1, c));
  cr_assert(strstr(q7_last_error(), "sync"), "%s", q7_last_error());
  q7_conf_destroy(c);
  q7_topic *t;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(q, "t", &t));
}

Test(topic, create_with_replication_factor_2_is_ereplica)
{
  q7_conf *c;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "replication.factor", "2"));
  Q7_FAILS_WITH(Q7_EREPLICA, q7_topic_create(q, "t", 1, c));
  cr_assert(strstr(q7_last_error(), "replication.factor"), "%s", q7_last_error());
  q7_conf_destroy(c);
  q7_topic *t;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(q, "t", &t));
}

Test(topic, create_with_min_insync_above_replication_is_einval)
{
  q7_conf *c;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "min.insync.replicas", "2"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "t", 1, c));
  cr_assert(strstr(q7_last_error(), "min.insync.replicas"), "%s", q7_last_error());
  q7_conf_destroy(c);
}

Test(topic, create_with_conf_keeps_topic_keys)
{
  q7_conf *c;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "retention.ms", "60000"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "message.max.bytes", "2048"));
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, c));
  q7_conf_destroy(c); /* copied */
  cr_assert_str_eq(topic_get("t", "retention.ms"), "60000");
  cr_assert_str_eq(topic_get("t", "message.max.bytes"), "2048");
  cr_assert_str_eq(topic_get("t", "retention.bytes"), "-1");
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  cr_assert_eq(t->max_message, 2048);
  q7_topic_close(t);
}

Test(topic, get_defaults)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  cr_assert_str_eq(topic_get("t", "retention.ms"), "604800000");
  cr_assert_str_eq(topic_get("t", "retention.bytes"), "-1");
  cr_assert_str_eq(topic_get("t", "replication.factor"), "1");
  cr_assert_str_eq(topic_get("t", "min.insync.replicas"), "1");
  cr_assert_str_eq(topic_get("t", "message.max.bytes"), "1048588");
  cr_assert_str_eq(topic_get("t", "cleanup.policy"), "delete");
  cr_assert_str_eq(topic_get("t", "compression.type"), "producer");
}

Test(topic, set_value_visible_through_get)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "-1"));
  cr_assert_str_eq(topic_get("t", "retention.ms"), "-1");
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.bytes", "1048576"));
  cr_assert_str_eq(topic_get("t", "retention.bytes"), "1048576");
  cr_assert_str_eq(topic_get("t", "retention.ms"), "-1", "setting one key lost another");
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "5"));
  cr_assert_str_eq(topic_get("t", "retention.ms"), "5");
}

Test(topic, set_applies_to_handles_opened_afterwards)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  q7_topic *before, *after;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &before));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "message.max.bytes", "100"));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &after));
  cr_assert_eq(after->max_message, 100);
  cr_assert_eq(before->max_message, 1048588);
  q7_topic_close(before);
  q7_topic_close(after);
}

Test(topic, set_survives_reopening_the_store)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "12345"));
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  cr_assert_str_eq(topic_get("t", "retention.ms"), "12345");
}

Test(topic, set_bad_key_is_einval)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "no.such.key", "1"));
  cr_assert(strstr(q7_last_error(), "no.such.key"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "linger.ms", "1"));
  cr_assert(strstr(q7_last_error(), "linger.ms"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "sync", "false"));
}

Test(topic, set_bad_value_is_einval_and_changes_nothing)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "777"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "retention.ms", "abc"));
  cr_assert(strstr(q7_last_error(), "retention.ms"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "retention.ms", "-2"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "cleanup.policy", "compact"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "min.insync.replicas", "2"));
  cr_assert_str_eq(topic_get("t", "retention.ms"), "777");
  cr_assert_str_eq(topic_get("t", "min.insync.replicas"), "1");
}

Test(topic, set_replication_factor_2_is_refused)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  int rc = q7_topic_set(q, "t", "replication.factor", "2");
  cr_assert(rc == Q7_EREPLICA || rc == Q7_EINVAL, "-> %d", rc);
  cr_assert_str_eq(topic_get("t", "replication.factor"), "1");
}

Test(topic, set_and_get_on_missing_topic_are_enoent)
{
  char buf[32];
  size_t len = sizeof buf;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_set(q, "missing", "retention.ms", "1"));
  cr_assert(strstr(q7_last_error(), "missing"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_get(q, "missing", "retention.ms", buf, &len));
}

Test(topic, set_and_get_null_or_bad_name_are_einval)
{
  char buf[32];
  size_t len = sizeof buf;
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(NULL, "t", "retention.ms", "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, NULL, "retention.ms", "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", NULL, "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "retention.ms", NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "..", "retention.ms", "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_get(NULL, "t", "retention.ms", buf, &len));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_get(q, NULL, "retention.ms", buf, &len));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_get(q, "t", NULL, buf, &len));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_get(q, "t", "retention.ms", buf, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_get(q, "t", "linger.ms", buf, &len));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_get(q, "t", "no.such.key", buf, &len));
}

Test(topic, get_small_buffer_is_erange)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  char buf[4] = "ZZZ";
  size_t len = sizeof buf;
  Q7_FAILS_WITH(Q7_ERANGE, q7_topic_get(q, "t", "retention.ms", buf, &len));
  cr_assert_eq(len, strlen("604800000") + 1);
  cr_assert_str_eq(buf, "ZZZ");
}

/* ------------------------------------------------------------- foreach */

typedef struct {
  char names[16][64];
  int32_t counts[16];
  int n;
  int stop_at;   /* return non-zero on this call (1-based); 0 never */
  int stop_with;
} walk;

static int
collect(const char *name, int32_t partitions, void *arg)
{
  walk *w = arg;
  cr_assert_lt(w->n, 16);
  snprintf(w->names[w->n], sizeof w->names[0], "%s", name);
  w->counts[w->n] = partitions;
  w->n++;
  return w->n == w->stop_at ? w->stop_with : 0;
}

Test(topic, foreach_on_empty_store_calls_nothing)
{
  walk w = { 0 };
  Q7_OK_OR_FAIL(q7_topic_foreach(q, collect, &w));
  cr_assert_eq(w.n, 0);
}

Test(topic, foreach_walks_every_topic_in_name_order)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "zeta", 3, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "alpha", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "Mid", 7, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "beta", 2, NULL));
  walk w = { 0 };
  Q7_OK_OR_FAIL(q7_topic_foreach(q, collect, &w));
  cr_assert_eq(w.n, 4);
  cr_assert_str_eq(w.names[0], "Mid");
  cr_assert_eq(w.counts[0], 7);
  cr_assert_str_eq(w.names[1], "alpha");
  cr_assert_eq(w.counts[1], 1);
  cr_assert_str_eq(w.names[2], "beta");
  cr_assert_eq(w.counts[2], 2);
  cr_assert_str_eq(w.names[3], "zeta");
  cr_assert_eq(w.counts[3], 3);
}

Test(topic, foreach_skips_deleted_topics)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "a", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "b", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_delete(q, "a"));
  walk w = { 0 };
  Q7_OK_OR_FAIL(q7_topic_foreach(q, collect, &w));
  cr_assert_eq(w.n, 1);
  cr_assert_str_eq(w.names[0], "b");
}

Test(topic, foreach_stops_on_non_zero_and_returns_it)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "a", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "b", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "c", 1, NULL));
  walk w = { .stop_at = 2, .stop_with = 42 };
  cr_assert_eq(q7_topic_foreach(q, collect, &w), 42);
  cr_assert_eq(w.n, 2, "the walk went on after a non-zero return");
  walk w2 = { .stop_at = 1, .stop_with = -77 };
  cr_assert_eq(q7_topic_foreach(q, collect, &w2), -77);
  cr_assert_eq(w2.n, 1);
  walk w3 = { .stop_at = 3, .stop_with = 1 };
  cr_assert_eq(q7_topic_foreach(q, collect, &w3), 1);
  cr_assert_eq(w3.n, 3);
}

static int
open_each(const char *name, int32_t partitions, void *arg)
{
  q7_topic *t;
  int rc = q7_topic_open(arg, name, &t);
  if (rc)
    return rc;
  rc = q7_topic_partition_count(t) == partitions ? 0 : 99;
  q7_topic_close(t);
  return rc;
}

Test(topic, foreach_callback_may_call_into_the_store)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "a", 2, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "b", 4, NULL));
  Q7_OK_OR_FAIL(q7_topic_foreach(q, open_each, q));
}

Test(topic, foreach_null_arguments_are_einval)
{
  walk w = { 0 };
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_foreach(NULL, collect, &w));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_foreach(q, NULL, &w));
}

/* ------------------------------------------------------ empty partition */

Test(topic, empty_partition_offsets_are_zero)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "e", 2, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "e", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 1, &p));
  int64_t ls = -5, hw = -5;
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(ls, 0);
  cr_assert_eq(hw, 0);
  /* Either pointer may be NULL. */
  Q7_OK_OR_FAIL(q7_partition_offsets(p, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_offsets(NULL, &ls, &hw));
  q7_topic_close(t);
}

Test(topic, empty_partition_read_at_zero_returns_zero)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "e", 1, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "e", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  q7_record r[4];
  cr_assert_eq(q7_partition_read(p, 0, r, 4), 0);
  cr_assert_eq(q7_partition_read(p, 0, NULL, 0), 0);
  cr_assert_eq(q7_partition_read(p, 0, r, 0), 0);
  q7_topic_close(t);
}

Test(topic, empty_partition_read_past_end_is_erange)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "e", 1, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "e", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  q7_record r[4];
  Q7_FAILS_WITH(Q7_ERANGE, q7_partition_read(p, 1, r, 4));
  cr_assert(strstr(q7_last_error(), "partition 0"), "%s", q7_last_error());
  cr_assert(strstr(q7_last_error(), "offset 1"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_ERANGE, q7_partition_read(p, INT64_MAX, r, 4));
  q7_topic_close(t);
}

Test(topic, read_negative_offset_is_einval)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "e", 1, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "e", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  q7_record r[4];
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_read(p, -1, r, 4));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_read(p, -2, r, 4));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_read(p, INT64_MIN, r, 4));
  q7_topic_close(t);
}

Test(topic, read_null_out_with_max_is_einval)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "e", 1, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "e", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_read(p, 0, NULL, 1));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_read(NULL, 0, NULL, 0));
  q7_topic_close(t);
}

Test(topic, read_after_produce_returns_records_in_order)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "r", 2, NULL));
  q7_topic *t;
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "r", &t));
  produce(t, 1, 4);
  Q7_OK_OR_FAIL(q7_topic_partition(t, 1, &p));
  int64_t ls, hw;
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(ls, 0);
  cr_assert_eq(hw, 4);
  q7_record r[8];
  cr_assert_eq(q7_partition_read(p, 1, r, 8), 3);
  for (int i = 0; i < 3; i++) {
    char v[8];
    snprintf(v, sizeof v, "v%d", i + 1);
    cr_assert_eq(r[i].offset, i + 1);
    cr_assert_eq(r[i].partition, 1);
    cr_assert_str_eq(r[i].topic, "r");
    cr_assert_eq(r[i].value_len, strlen(v));
    cr_assert_eq(memcmp(r[i].value, v, r[i].value_len), 0);
  }
  cr_assert_eq(q7_partition_read(p, 4, r, 8), 0);
  Q7_FAILS_WITH(Q7_ERANGE, q7_partition_read(p, 5, r, 8));
  /* The other partition stayed empty. */
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(hw, 0);
  q7_topic_close(t);
}
