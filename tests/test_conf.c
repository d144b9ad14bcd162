/* test_conf.c - q7_conf: defaults, set/get, validation, dup (lib/conf.c). */
#include "helpers.h"
#include "q7_int.h"

#include <stdint.h>

static q7_conf *conf;

static void
conf_setup(void)
{
  conf = q7_conf_new();
  cr_assert_not_null(conf, "q7_conf_new: %s", q7_last_error());
}

static void
conf_teardown(void)
{
  q7_conf_destroy(conf);
  conf = NULL;
}

TestSuite(conf, .init = conf_setup, .fini = conf_teardown);

/* The value of @name as q7_conf_get returns it (static buffer). */
static const char *
get(const q7_conf *c, const char *name)
{
  static char buf[1024];
  size_t len = sizeof buf;
  memset(buf, 0, sizeof buf);
  int rc = q7_conf_get(c, name, buf, &len);
  cr_assert_eq(rc, Q7_OK, "q7_conf_get(%s) -> %d: %s", name, rc, q7_last_error());
  cr_assert_eq(len, strlen(buf) + 1, "q7_conf_get(%s): *len %zu for \"%s\"", name, len, buf);
  return buf;
}

/* Assert q7_conf_set(name, value) is Q7_EINVAL, names the key, and leaves the
 * previous value in place. */
static void
assert_rejected(const char *name, const char *value)
{
  char before[1024];
  snprintf(before, sizeof before, "%s", get(conf, name));
  int rc = q7_conf_set(conf, name, value);
  cr_assert_eq(rc, Q7_EINVAL, "q7_conf_set(%s, \"%s\") -> %d, want Q7_EINVAL", name, value, rc);
  cr_assert(strstr(q7_last_error(), name) != NULL,
            "q7_conf_set(%s, \"%s\"): message \"%s\" does not name the key", name, value,
            q7_last_error());
  cr_assert_str_eq(get(conf, name), before, "rejected value of %s changed it", name);
}

static const struct {
  const char *name, *def;
} defaults[] = {
  /* store */
  { "sync", "true" },
  { "storage.max.bytes", "0" },
  { "retention.check.interval.ms", "300000" },
  { "lag.window", "10" },
  { "lag.expire.ms", "604800000" },
  { "replica.dirs", "" },
  /* topic */
  { "retention.ms", "604800000" },
  { "retention.bytes", "-1" },
  { "replication.factor", "1" },
  { "min.insync.replicas", "1" },
  { "message.max.bytes", "1048588" },
  { "cleanup.policy", "delete" },
  { "compression.type", "producer" },
  /* producer */
  { "acks", "all" },
  { "linger.ms", "5" },
  { "batch.size", "16384" },
  { "partitioner", "murmur2_random" },
  { "retries", "10" },
  /* consumer */
  { "auto.offset.reset", "latest" },
  { "enable.auto.commit", "true" },
  { "auto.commit.interval.ms", "5000" },
  { "max.poll.records", "500" },
  { "session.timeout.ms", "45000" },
  { "heartbeat.interval.ms", "3000" },
  { "partition.assignment.strategy", "range" },
  { "fetch.ahead.bytes", "16777216" },
};
#define N_DEFAULTS (sizeof defaults / sizeof defaults[0])

Test(conf, defaults_of_every_key)
{
  for (size_t i = 0; i < N_DEFAULTS; i++)
    cr_assert_str_eq(get(conf, defaults[i].name), defaults[i].def, "default of %s",
                     defaults[i].name);
}

Test(conf, every_key_has_a_documented_default)
{
  /* The table above covers every key the library knows, no more, no less. */
  cr_assert_eq(N_DEFAULTS, (size_t)Q7K__COUNT);
  for (int k = 0; k < Q7K__COUNT; k++) {
    const char *name = q7__conf_name((enum q7__key)k);
    cr_assert_not_null(name, "key %d has no name", k);
    int found = 0;
    for (size_t i = 0; i < N_DEFAULTS; i++)
      found += !strcmp(defaults[i].name, name);
    cr_assert_eq(found, 1, "key %s is not in the defaults table", name);
    cr_assert_eq(q7__conf_key(name, NULL), k, "q7__conf_key(%s)", name);
  }
}

Test(conf, defaults_of_a_null_conf_internally)
{
  cr_assert_str_eq(q7__conf_str(NULL, Q7K_LINGER_MS), "5");
  cr_assert_eq(q7__conf_int(NULL, Q7K_RETENTION_BYTES), -1);
  cr_assert_eq(q7__conf_bool(NULL, Q7K_SYNC), true);
  cr_assert_eq(q7__conf_choice(NULL, Q7K_AUTO_OFFSET_RESET), 0);
}

Test(conf, new_gives_separate_confs)
{
  q7_conf *other = q7_conf_new();
  cr_assert_not_null(other);
  cr_assert_neq(other, conf);
  Q7_OK_OR_FAIL(q7_conf_set(conf, "acks", "0"));
  cr_assert_str_eq(get(other, "acks"), "all");
  q7_conf_destroy(other);
}

Test(conf, set_get_round_trip)
{
  static const struct {
    const char *name, *value;
  } v[] = {
    { "sync", "false" },
    { "storage.max.bytes", "1073741824" },
    { "retention.check.interval.ms", "0" },
    { "lag.window", "1000" },
    { "lag.expire.ms", "1" },
    { "replica.dirs", "/a,/b" },
    { "retention.ms", "-1" },
    { "retention.bytes", "9223372036854775807" },
    { "replication.factor", "64" },
    { "min.insync.replicas", "2" },
    { "message.max.bytes", "1" },
    { "cleanup.policy", "delete" },
    { "compression.type", "none" },
    { "acks", "1" },
    { "linger.ms", "900000" },
    { "batch.size", "1" },
    { "partitioner", "random" },
    { "retries", "0" },
    { "auto.offset.reset", "earliest" },
    { "enable.auto.commit", "0" },
    { "auto.commit.interval.ms", "123" },
    { "max.poll.records", "1000000" },
    { "session.timeout.ms", "3600000" },
    { "partition.assignment.strategy", "roundrobin" },
  };
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    Q7_OK_OR_FAIL(q7_conf_set(conf, v[i].name, v[i].value));
  for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
    cr_assert_str_eq(get(conf, v[i].name), v[i].value, "%s", v[i].name);
}

Test(conf, set_twice_keeps_the_last_value)
{
  Q7_OK_OR_FAIL(q7_conf_set(conf, "linger.ms", "7"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "linger.ms", "8"));
  cr_assert_str_eq(get(conf, "linger.ms"), "8");
  cr_assert_eq(q7__conf_int(conf, Q7K_LINGER_MS), 8);
}

Test(conf, set_copies_the_value)
{
  char v[8] = "42";
  Q7_OK_OR_FAIL(q7_conf_set(conf, "retries", v));
  strcpy(v, "99");
  cr_assert_str_eq(get(conf, "retries"), "42");
}

Test(conf, typed_accessors_follow_set_values)
{
  Q7_OK_OR_FAIL(q7_conf_set(conf, "sync", "false"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "retention.ms", "-1"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "auto.offset.reset", "none"));
  cr_assert_eq(q7__conf_bool(conf, Q7K_SYNC), false);
  cr_assert_eq(q7__conf_int(conf, Q7K_RETENTION_MS), -1);
  cr_assert_eq(q7__conf_choice(conf, Q7K_AUTO_OFFSET_RESET), 2);
  Q7_OK_OR_FAIL(q7_conf_set(conf, "sync", "1"));
  cr_assert_eq(q7__conf_bool(conf, Q7K_SYNC), true);
}

Test(conf, unknown_key_is_einval_naming_it)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(conf, "no.such.key", "1"));
  cr_assert(strstr(q7_last_error(), "no.such.key"), "%s", q7_last_error());
  char buf[16];
  size_t len = sizeof buf;
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_get(conf, "no.such.key", buf, &len));
  cr_assert(strstr(q7_last_error(), "no.such.key"), "%s", q7_last_error());
  /* Names are exact: no case folding, no prefixes. */
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(conf, "Linger.ms", "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(conf, "linger", "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(conf, "", "1"));
}

Test(conf, bool_rejects_other_words)
{
  const char *bad[] = { "yes", "no", "TRUE", "False", "2", "", " true", "true ", "on" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_rejected("sync", bad[i]);
    assert_rejected("enable.auto.commit", bad[i]);
  }
}

Test(conf, integer_below_min_is_einval)
{
  assert_rejected("lag.window", "0");
  assert_rejected("retention.ms", "-2");
  assert_rejected("retention.bytes", "-2");
  assert_rejected("storage.max.bytes", "-1");
  assert_rejected("replication.factor", "0");
  assert_rejected("min.insync.replicas", "0");
  assert_rejected("message.max.bytes", "0");
  assert_rejected("linger.ms", "-1");
  assert_rejected("batch.size", "0");
  assert_rejected("retries", "-1");
  assert_rejected("max.poll.records", "0");
  assert_rejected("session.timeout.ms", "0");
  assert_rejected("lag.expire.ms", "0");
  assert_rejected("auto.commit.interval.ms", "-1");
}

Test(conf, integer_above_max_is_einval)
{
  assert_rejected("lag.window", "1001");
  assert_rejected("replication.factor", "65");
  assert_rejected("min.insync.replicas", "65");
  assert_rejected("message.max.bytes", "268435457");
  assert_rejected("linger.ms", "900001");
  assert_rejected("batch.size", "67108865");
  assert_rejected("retries", "2147483648");
  assert_rejected("max.poll.records", "1000001");
  assert_rejected("session.timeout.ms", "3600001");
}

Test(conf, integer_bounds_are_inclusive)
{
  Q7_OK_OR_FAIL(q7_conf_set(conf, "lag.window", "1"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "lag.window", "1000"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "message.max.bytes", "268435456"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "retries", "2147483647"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "linger.ms", "0"));
  cr_assert_str_eq(get(conf, "linger.ms"), "0");
}

Test(conf, integer_rejects_non_numbers)
{
  const char *bad[] = { "12x", "", " 5", "5 ", "+5", "x12", "0x10", "1e3", "1.5", "--1", "-",
                        "99999999999999999999", "-99999999999999999999" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_rejected("linger.ms", bad[i]);
    assert_rejected("retention.ms", bad[i]);
  }
}

Test(conf, integer_rejects_any_leading_whitespace)
{
  /* " 5" is refused; so must be the other blanks strtoll would skip. */
  const char *bad[] = { "\t5", "\n5", "\v5", "\f5", "\r5" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_rejected("linger.ms", bad[i]);
}

Test(conf, integer_range_message_names_the_bounds)
{
  assert_rejected("lag.window", "1001");
  cr_assert(strstr(q7_last_error(), "1000"), "%s", q7_last_error());
  cr_assert(strstr(q7_last_error(), "1001"), "%s", q7_last_error());
}

Test(conf, enum_rejects_unknown_choices)
{
  assert_rejected("acks", "2");
  assert_rejected("acks", "ALL");
  assert_rejected("acks", "");
  assert_rejected("partitioner", "sticky");
  assert_rejected("auto.offset.reset", "smallest");
  assert_rejected("partition.assignment.strategy", "cooperative-sticky");
  assert_rejected("cleanup.policy", "compact");
  assert_rejected("compression.type", "snappy");
  assert_rejected("compression.type", "gzip");
  assert_rejected("compression.type", "LZ4");
}

Test(conf, enum_message_lists_the_choices)
{
  assert_rejected("auto.offset.reset", "smallest");
  cr_assert(strstr(q7_last_error(), "smallest"), "%s", q7_last_error());
  cr_assert(strstr(q7_last_error(), "earliest"), "%s", q7_last_error());
  cr_assert(strstr(q7_last_error(), "none"), "%s", q7_last_error());
}

Test(conf, enum_accepts_every_documented_choice)
{
  const char *acks[] = { "all", "-1", "1", "0" };
  for (size_t i = 0; i < 4; i++) {
    Q7_OK_OR_FAIL(q7_conf_set(conf, "acks", acks[i]));
    cr_assert_eq(q7__conf_choice(conf, Q7K_ACKS), (int)i);
  }
  const char *part[] = { "murmur2_random", "murmur2", "random" };
  for (size_t i = 0; i < 3; i++) {
    Q7_OK_OR_FAIL(q7_conf_set(conf, "partitioner", part[i]));
    cr_assert_eq(q7__conf_choice(conf, Q7K_PARTITIONER), (int)i);
  }
  const char *reset[] = { "latest", "earliest", "none" };
  for (size_t i = 0; i < 3; i++) {
    Q7_OK_OR_FAIL(q7_conf_set(conf, "auto.offset.reset", reset[i]));
    cr_assert_eq(q7__conf_choice(conf, Q7K_AUTO_OFFSET_RESET), (int)i);
  }
}

Test(conf, string_value_rejects_newline)
{
  assert_rejected("replica.dirs", "/a\n/b");
}

Test(conf, get_buffer_too_small_is_erange_with_needed_length)
{
  char buf[32];
  memset(buf, 'Z', sizeof buf);
  size_t len = 5; /* "murmur2_random" needs 15 */
  Q7_FAILS_WITH(Q7_ERANGE, q7_conf_get(conf, "partitioner", buf, &len));
  cr_assert_eq(len, strlen("murmur2_random") + 1);
  cr_assert(strstr(q7_last_error(), "partitioner"), "%s", q7_last_error());
  for (size_t i = 0; i < sizeof buf; i++)
    cr_assert_eq(buf[i], 'Z', "buffer touched at %zu", i);

  /* One byte short of the NUL. */
  len = strlen("murmur2_random");
  Q7_FAILS_WITH(Q7_ERANGE, q7_conf_get(conf, "partitioner", buf, &len));
  cr_assert_eq(len, 15);
  cr_assert_eq(buf[0], 'Z');

  /* Exactly enough. */
  len = 15;
  Q7_OK_OR_FAIL(q7_conf_get(conf, "partitioner", buf, &len));
  cr_assert_eq(len, 15);
  cr_assert_str_eq(buf, "murmur2_random");
}

Test(conf, get_null_buffer_asks_for_the_length)
{
  size_t len = 0;
  Q7_FAILS_WITH(Q7_ERANGE, q7_conf_get(conf, "acks", NULL, &len));
  cr_assert_eq(len, 4);
  Q7_OK_OR_FAIL(q7_conf_set(conf, "replica.dirs", "/some/where,/else"));
  len = 0;
  Q7_FAILS_WITH(Q7_ERANGE, q7_conf_get(conf, "replica.dirs", NULL, &len));
  cr_assert_eq(len, strlen("/some/where,/else") + 1);
}

Test(conf, get_empty_value_needs_one_byte)
{
  char buf[1] = { 'Z' };
  size_t len = 1;
  Q7_OK_OR_FAIL(q7_conf_get(conf, "replica.dirs", buf, &len));
  cr_assert_eq(len, 1);
  cr_assert_eq(buf[0], 0);
}

Test(conf, null_arguments_are_einval)
{
  char buf[16];
  size_t len = sizeof buf;
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(NULL, "acks", "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(conf, NULL, "1"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(conf, "acks", NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_get(NULL, "acks", buf, &len));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_get(conf, NULL, buf, &len));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_get(conf, "acks", buf, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_dup(conf, NULL));
  cr_assert_str_eq(get(conf, "acks"), "all");
}

Test(conf, destroy_null_is_a_noop)
{
  q7_conf_destroy(NULL);
  q7_conf_set_clock(NULL, NULL, NULL);
  q7_conf_set_delivery_cb(NULL, NULL, NULL);
}

static int64_t
fixed_clock(void *arg)
{
  return *(int64_t *)arg;
}

static void
dr_cb(const q7_delivery *d, void *arg)
{
  (void)d;
  (void)arg;
}

Test(conf, dup_copies_values)
{
  Q7_OK_OR_FAIL(q7_conf_set(conf, "linger.ms", "77"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "replica.dirs", "/m1"));
  q7_conf *d = NULL;
  Q7_OK_OR_FAIL(q7_conf_dup(conf, &d));
  cr_assert_not_null(d);
  cr_assert_neq(d, conf);
  cr_assert_str_eq(get(d, "linger.ms"), "77");
  cr_assert_str_eq(get(d, "replica.dirs"), "/m1");
  cr_assert_str_eq(get(d, "acks"), "all"); /* unset stays default */

  /* Independent afterwards, both ways. */
  Q7_OK_OR_FAIL(q7_conf_set(conf, "linger.ms", "78"));
  cr_assert_str_eq(get(d, "linger.ms"), "77");
  Q7_OK_OR_FAIL(q7_conf_set(d, "acks", "0"));
  cr_assert_str_eq(get(conf, "acks"), "all");

  /* The copy outlives the original. */
  q7_conf_destroy(conf);
  conf = NULL;
  cr_assert_str_eq(get(d, "replica.dirs"), "/m1");
  q7_conf_destroy(d);
}

Test(conf, dup_copies_clock_and_delivery_callback)
{
  int64_t now = 1234567;
  int marker;
  q7_conf_set_clock(conf, fixed_clock, &now);
  q7_conf_set_delivery_cb(conf, dr_cb, &marker);
  q7_conf *d = NULL;
  Q7_OK_OR_FAIL(q7_conf_dup(conf, &d));
  cr_assert_eq(d->clock, fixed_clock);
  cr_assert_eq(d->clock_arg, &now);
  cr_assert_eq(d->dr_cb, dr_cb);
  cr_assert_eq(d->dr_arg, &marker);
  q7_conf_destroy(d);
}

Test(conf, dup_of_null_gives_defaults)
{
  q7_conf *d = NULL;
  Q7_OK_OR_FAIL(q7_conf_dup(NULL, &d));
  cr_assert_not_null(d);
  cr_assert_str_eq(get(d, "linger.ms"), "5");
  q7_conf_destroy(d);
}

Test(conf, set_clock_null_restores_wall_clock_and_drops_arg)
{
  int64_t now = 1;
  q7_conf_set_clock(conf, fixed_clock, &now);
  cr_assert_eq(conf->clock, fixed_clock);
  q7_conf_set_clock(conf, NULL, &now);
  cr_assert_null(conf->clock);
  cr_assert_null(conf->clock_arg);
}

Test(conf, dump_and_load_round_trip_a_scope)
{
  Q7_OK_OR_FAIL(q7_conf_set(conf, "retention.ms", "1000"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "cleanup.policy", "delete"));
  Q7_OK_OR_FAIL(q7_conf_set(conf, "linger.ms", "9")); /* producer: not dumped */
  size_t len = 0;
  char *text = q7__conf_dump(conf, Q7S_TOPIC, &len);
  cr_assert_not_null(text);
  cr_assert_eq(len, strlen(text));
  cr_assert(strstr(text, "retention.ms=1000\n"), "%s", text);
  cr_assert(strstr(text, "cleanup.policy=delete\n"), "%s", text);
  cr_assert_null(strstr(text, "linger.ms"), "%s", text);

  q7_conf *d;
  d = q7_conf_new();
  cr_assert_not_null(d, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7__conf_load(d, text, len));
  cr_assert_str_eq(get(d, "retention.ms"), "1000");
  cr_assert_str_eq(get(d, "linger.ms"), "5");
  free(text);
  q7_conf_destroy(d);
}

Test(conf, load_rejects_malformed_text_as_corrupt)
{
  const char *bad[] = { "retention.ms=1", /* no newline */
                        "retention.ms\n", /* no '=' */
                        "no.such.key=1\n", "retention.ms=abc\n" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    q7_conf *d;
    d = q7_conf_new();
    cr_assert_not_null(d, "q7_conf_new: %s", q7_last_error());
    Q7_FAILS_WITH(Q7_ECORRUPT, q7__conf_load(d, bad[i], strlen(bad[i])));
    q7_conf_destroy(d);
  }
}
