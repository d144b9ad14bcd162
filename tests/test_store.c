/* test_store.c - opening and closing stores, corrupt and foreign files,
 * format versions, errors and version text, file modes (lib/store.c,
 * lib/err.c, and the partition files behind lib/partition.c). */
#include "helpers.h"
#include "files.h"
#include "q7_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

static void
tmp(void)
{
  dir = tmpdir_new();
}

static void
tmp_rm(void)
{
  tmpdir_rm(dir);
  dir = NULL;
}

TestSuite(store, .init = tmp, .fini = tmp_rm, .timeout = 60);
TestSuite(err);

/* ------------------------------------------------------------ helpers */

static bool
is_file(const char *rel)
{
  struct stat st;
  return stat(path_of(rel), &st) == 0 && S_ISREG(st.st_mode);
}

static off_t
file_size(const char *rel)
{
  struct stat st;
  cr_assert_eq(stat(path_of(rel), &st), 0, "stat %s: %s", rel, strerror(errno));
  return st.st_size;
}

static void
truncate_file(const char *rel, off_t len)
{
  cr_assert_eq(truncate(path_of(rel), len), 0, "truncate %s: %s", rel, strerror(errno));
}

/* The seed of the garbage this file writes. */
enum { GARBAGE = 0x12345678 };

/* A closed store in @dir with topic @name of @parts partitions and @n
 * records of @vlen bytes in partition 0. */
static void
make_store(const char *name, int32_t parts, int n, size_t vlen)
{
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, name, parts, NULL));
  if (n > 0) {
    char *v = malloc(vlen + 1);
    memset(v, 'v', vlen);
    Q7_OK_OR_FAIL(q7_topic_open(q, name, &t));
    Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
    for (int i = 0; i < n; i++) {
      q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = vlen };
      Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL));
    }
    Q7_OK_OR_FAIL(q7_producer_close(p));
    q7_topic_close(t);
    free(v);
  }
  Q7_OK_OR_FAIL(q7_close(q));
}

/* Put @key = @val into named db @db of the environment at DIR/@rel. */
static void
raw_put(const char *rel, const char *db, const char *key, const void *val, size_t len)
{
  MDB_env *env = raw_env(rel);
  MDB_txn *txn;
  MDB_dbi dbi;
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  int rc = mdb_dbi_open(txn, db, 0, &dbi);
  cr_assert_eq(rc, 0, "open db %s in %s: %s", db, rel, mdb_strerror(rc));
  MDB_val k = { strlen(key), (void *)key }, v = { len, (void *)val };
  cr_assert_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

/* Flip one byte at @at of the @nth (0-based) batch of partition DIR/@rel. */
static void
raw_flip_batch(const char *rel, int nth, size_t at)
{
  MDB_env *env = raw_env(rel);
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
  cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
  cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
  for (int i = 0; i < nth; i++)
    cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_NEXT), 0);
  cr_assert_lt(at, v.mv_size);
  unsigned char *copy = malloc(v.mv_size);
  memcpy(copy, v.mv_data, v.mv_size);
  copy[at] ^= 0x5a;
  MDB_val nv = { v.mv_size, copy };
  cr_assert_eq(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), 0);
  mdb_cursor_close(cur);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  free(copy);
}

/* ----------------------------------------------- stores of libq7 0.1.0 */

static void
le32(unsigned char *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (unsigned char)(v >> (8 * i));
}

static void
le64(unsigned char *p, uint64_t v)
{
  le32(p, (uint32_t)v);
  le32(p + 4, (uint32_t)(v >> 32));
}

static void
be64k(unsigned char *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

/* Append to partition DIR/@rel a batch as libq7 0.1.0 wrote it (batch
 * format 1: fixed 24-byte record headers), records "old-I" with key "kI"
 * (none for odd I), at offsets @base.., timestamps 1000 + 10 * I; the last
 * record of it carries a header x=y. */
static void
raw_append_format1(const char *rel, int64_t base, int64_t pos, int n)
{
  unsigned char b[4096], kb[24];
  size_t at = 32;
  for (int i = 0; i < n; i++) {
    char key[16], val[16];
    int kl = snprintf(key, sizeof key, "k%d", (int)base + i),
        vl = snprintf(val, sizeof val, "old-%d", (int)base + i);
    bool nokey = i % 2, hdr = i == n - 1;
    size_t hl = hdr ? 2 + 1 + 4 + 1 : 0, size = 24 + (nokey ? 0 : kl) + vl + hl;
    le32(b + at, (uint32_t)(size - 4));
    le64(b + at + 4, (uint64_t)(1000 + 10 * (base + i)));
    le32(b + at + 12, nokey ? 0xffffffffu : (uint32_t)kl);
    le32(b + at + 16, (uint32_t)vl);
    le32(b + at + 20, (uint32_t)hl);
    unsigned char *d = b + at + 24;
    if (!nokey) {
      memcpy(d, key, (size_t)kl);
      d += kl;
    }
    memcpy(d, val, (size_t)vl);
    d += vl;
    if (hdr) {
      d[0] = 1;
      d[1] = 0;
      d[2] = 'x';
      le32(d + 3, 1);
      d[7] = 'y';
    }
    at += size;
  }
  b[4] = 1; /* format 1 */
  b[5] = b[6] = b[7] = 0;
  le32(b + 8, (uint32_t)n);
  le32(b + 12, (uint32_t)(at - 32));
  le64(b + 16, (uint64_t)(1000 + 10 * base));
  le64(b + 24, (uint64_t)(1000 + 10 * (base + n - 1)));
  le32(b, q7__crc32c(0, b + 4, at - 4));
  be64k(kb, (uint64_t)base);
  be64k(kb + 8, (uint64_t)pos);
  be64k(kb + 16, (uint64_t)(1000 + 10 * (base + n - 1)));
  MDB_env *env = raw_env(rel);
  MDB_txn *txn;
  MDB_dbi dbi;
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
  MDB_val k = { 24, kb }, v = { at, b };
  cr_assert_eq(mdb_put(txn, dbi, &k, &v, MDB_APPEND), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

/* A store written by 0.1.0 (format-1 batches) reads as before; new records
 * go after them in format 2, and one log holding both reads, seeks by
 * time and sweeps as one. */
Test(store, format_1_batches_of_0_1_0_read_next_to_format_2)
{
  make_store("t", 1, 0, 0);
  raw_append_format1("topics/t/0", 0, 0, 3);
  raw_append_format1("topics/t/0", 3, 200, 4);
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_producer *pr;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &pr));
  for (int i = 7; i < 10; i++) {
    char v[16];
    int vl = snprintf(v, sizeof v, "new-%d", i);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = (size_t)vl,
                 .timestamp_ms = 1000 + 10 * i };
    int64_t off;
    Q7_OK_OR_FAIL(q7_producer_send_sync(pr, &m, NULL, &off));
    cr_assert_eq(off, i, "new record at %lld", (long long)off);
  }
  Q7_OK_OR_FAIL(q7_producer_close(pr));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  q7_record r[16];
  int n = q7_partition_read(p, 0, r, 16);
  cr_assert_eq(n, 10, "read %d records (%s)", n, q7_last_error());
  for (int i = 0; i < 10; i++) {
    char want[16];
    snprintf(want, sizeof want, "%s-%d", i < 7 ? "old" : "new", i);
    cr_assert_eq(r[i].offset, i);
    cr_assert_eq(r[i].timestamp_ms, 1000 + 10 * i, "record %d", i);
    cr_assert(r[i].value_len == strlen(want) && !memcmp(r[i].value, want, strlen(want)),
              "record %d is not %s", i, want);
    bool key = i < 7 && (i < 3 ? i : i - 3) % 2 == 0;
    cr_assert_eq(r[i].key != NULL, key, "record %d key", i);
  }
  const void *hv;
  size_t hvl;
  Q7_OK_OR_FAIL(q7_record_header(&r[6], "x", &hv, &hvl));
  cr_assert(hvl == 1 && !memcmp(hv, "y", 1));
  /* From the middle of a format-1 batch. */
  cr_assert_eq(q7_partition_read(p, 4, r, 2), 2);
  cr_assert_eq(r[0].offset, 4);
  cr_assert_eq(r[1].timestamp_ms, 1050);
  q7_partition_read(p, 0, NULL, 0);
  int64_t off;
  Q7_OK_OR_FAIL(q7_offset_for_time(p, 1045, &off));
  cr_assert_eq(off, 5);
  Q7_OK_OR_FAIL(q7_offset_for_time(p, 1075, &off));
  cr_assert_eq(off, 8);
  /* Retention by time cuts inside the second format-1 batch. */
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "100"));
  int64_t removed, ls, hw;
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 1000 + 10 * 5 + 100, &removed));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(ls, 5, "log start %lld", (long long)ls);
  cr_assert_eq(hw, 10);
  cr_assert_eq(q7_partition_read(p, ls, r, 16), 5);
  cr_assert_eq(r[0].offset, 5);
  q7_partition_read(p, 0, NULL, 0);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
}

/* ------------------------------------------------------------- open */

Test(store, open_null_or_empty_dir_is_einval)
{
  q7 *q = (q7 *)0x1;
  Q7_FAILS_WITH(Q7_EINVAL, q7_open(&q, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_open(&q, "", NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_open(NULL, dir, NULL));
  cr_assert_eq(q, (q7 *)0x1, "out written on failure");
}

Test(store, open_overlong_path_is_einval)
{
  char *d = malloc(3100);
  memset(d, 'a', 3099);
  d[0] = '/';
  d[3099] = 0;
  q7 *q = NULL;
  Q7_FAILS_WITH(Q7_EINVAL, q7_open(&q, d, NULL));
  cr_assert_null(q);
  free(d);
}

Test(store, open_creates_a_missing_directory)
{
  q7 *q;
  Q7_OK_OR_FAIL(q7_open(&q, path_of("new"), NULL));
  cr_assert_str_eq(q7_store_path(q), path_of("new"));
  Q7_OK_OR_FAIL(q7_close(q));
  struct stat st;
  cr_assert_eq(stat(path_of("new/meta/data.mdb"), &st), 0);
}

Test(store, store_path_is_the_directory)
{
  q7 *q;
  char d[4096];
  snprintf(d, sizeof d, "%s", dir);
  Q7_OK_OR_FAIL(q7_open(&q, d, NULL));
  d[0] = 'X'; /* copied */
  cr_assert_str_eq(q7_store_path(q), dir);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_null(q7_store_path(NULL));
}

Test(store, open_regular_file_is_an_error_naming_it)
{
  write_file("plain", "hello", 5);
  q7 *q = NULL;
  int rc = q7_open(&q, path_of("plain"), NULL);
  cr_assert_neq(rc, Q7_OK);
  cr_assert_eq(rc, Q7_EIO, "-> %d: %s", rc, q7_last_error());
  cr_assert(strstr(q7_last_error(), path_of("plain")), "message \"%s\" lacks the path",
            q7_last_error());
  cr_assert_null(q);
  /* The file is left alone. */
  cr_assert_eq(file_size("plain"), 5);
}

Test(store, open_below_a_regular_file_is_an_error_naming_it)
{
  write_file("plain", "hello", 5);
  q7 *q = NULL;
  int rc = q7_open(&q, path_of("plain/store"), NULL);
  cr_assert_eq(rc, Q7_EIO, "-> %d: %s", rc, q7_last_error());
  cr_assert(strstr(q7_last_error(), "plain"), "%s", q7_last_error());
  cr_assert_null(q);
}

Test(store, open_when_meta_is_a_file_is_an_error)
{
  write_file("meta", "x", 1);
  q7 *q = NULL;
  int rc = q7_open(&q, dir, NULL);
  cr_assert_eq(rc, Q7_EIO, "-> %d: %s", rc, q7_last_error());
  cr_assert(strstr(q7_last_error(), "meta"), "%s", q7_last_error());
  cr_assert_null(q);
}

Test(store, replica_dirs_open_mirrors_as_complete_stores)
{
  q7_conf *c;
  q7 *q = NULL;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  Q7_OK_OR_FAIL(q7_conf_set(c, "replica.dirs", path_of("mirror")));
  Q7_OK_OR_FAIL(q7_open(&q, dir, c));
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 2, NULL));
  Q7_OK_OR_FAIL(q7_close(q));
  q7_conf_destroy(c);
  /* The mirror is a store of its own, with the topic in it. */
  Q7_OK_OR_FAIL(q7_open(&q, path_of("mirror"), NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  cr_assert_eq(q7_topic_partition_count(t), 2);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, replica_dirs_naming_the_store_itself_is_einval)
{
  q7_conf *c = q7_conf_new();
  q7 *q = NULL;
  cr_assert_not_null(c);
  Q7_OK_OR_FAIL(q7_conf_set(c, "replica.dirs", dir));
  Q7_FAILS_WITH(Q7_EINVAL, q7_open(&q, dir, c));
  cr_assert(strstr(q7_last_error(), "replica.dirs"), "%s", q7_last_error());
  cr_assert_null(q);
  q7_conf_destroy(c);
}

Test(store, open_close_open_keeps_topics_and_records)
{
  make_store("kept", 3, 5, 10);
  q7 *q;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "kept", &t));
  cr_assert_eq(q7_topic_partition_count(t), 3);
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  int64_t ls, hw;
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(ls, 0);
  cr_assert_eq(hw, 5);
  q7_record r[8];
  cr_assert_eq(q7_partition_read(p, 0, r, 8), 5);
  cr_assert_eq(r[4].offset, 4);
  cr_assert_eq(r[4].value_len, 10);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));

  /* And a third time, with a new topic beside it. */
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "second", 1, NULL));
  Q7_OK_OR_FAIL(q7_close(q));
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "kept", &t));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_topic_open(q, "second", &t));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, open_removes_orphan_topic_directories_and_trash)
{
  make_store("real", 1, 0, 0);
  cr_assert_eq(mkdir(path_of("topics/orphan"), 0700), 0);
  cr_assert_eq(mkdir(path_of("topics/orphan/0"), 0700), 0);
  write_file("topics/orphan/0/data.mdb", "x", 1);
  cr_assert_eq(mkdir(path_of("trash"), 0700), 0);
  write_file("trash/left.1", "x", 1);
  q7 *q;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  struct stat st;
  cr_assert_neq(stat(path_of("topics/orphan"), &st), 0, "orphan directory kept");
  cr_assert_neq(stat(path_of("trash/left.1"), &st), 0, "trash kept");
  cr_assert(is_file("topics/real/0/data.mdb"), "a real topic was swept");
  Q7_OK_OR_FAIL(q7_close(q));
}

/* ------------------------------------------------------------- close */

Test(store, close_null_is_ok)
{
  cr_assert_eq(q7_close(NULL), Q7_OK);
}

Test(store, close_with_open_topic_is_ebusy)
{
  q7 *q;
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  /* The store stays open and usable. */
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, NULL, NULL));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, close_with_open_producer_is_ebusy)
{
  q7 *q;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  Q7_OK_OR_FAIL(q7_producer_close(p));
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, close_with_open_consumer_is_ebusy)
{
  q7 *q;
  q7_consumer *c, *g;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_consumer_new(q, NULL, NULL, &c));
  Q7_OK_OR_FAIL(q7_consumer_new(q, "group", NULL, &g));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  Q7_OK_OR_FAIL(q7_consumer_close(g));
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, close_counts_every_handle)
{
  q7 *q;
  q7_topic *t1, *t2;
  q7_producer *p;
  q7_consumer *c;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 2, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t1));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t2));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  Q7_OK_OR_FAIL(q7_consumer_new(q, NULL, NULL, &c));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  cr_assert(strstr(q7_last_error(), "4"), "%s", q7_last_error());
  q7_topic_close(t1);
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  Q7_OK_OR_FAIL(q7_producer_close(p));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  q7_topic_close(t2);
  Q7_OK_OR_FAIL(q7_close(q));
}

/* ------------------------------------------- isolating crash-prone calls */

/* What a child process saw opening a damaged store. */
typedef struct {
  int open_rc;          /* q7_open */
  int part_rc;          /* q7_topic_partition(t, 0) */
  int read_rc;          /* records read from 0 to the high watermark, or the first error */
  int topics[3];        /* t1 with 2 partitions, t2 with 1, anything else */
  char msg[512];        /* q7_last_error() of the first failure */
} outcome;

static outcome *
shared_outcome(void)
{
  static outcome *o;
  if (!o) {
    o = mmap(NULL, sizeof *o, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(o, MAP_FAILED);
  }
  memset(o, 0, sizeof *o);
  return o;
}

/* Run @fn in a child process so that a crash of the library (SIGBUS from
 * a cut LMDB file) fails the test with a clear message and the temporary
 * store is still removed. */
static outcome *
isolated(void (*fn)(outcome *o))
{
  outcome *o = shared_outcome();
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    fn(o);
    _exit(0);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(!WIFSIGNALED(st), "the library crashed with signal %d (%s) instead of failing",
            WTERMSIG(st), strsignal(WTERMSIG(st)));
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  return o;
}

static void
note(outcome *o)
{
  if (!o->msg[0])
    snprintf(o->msg, sizeof o->msg, "%s", q7_last_error());
}

static int
count_topics(const char *name, int32_t partitions, void *arg)
{
  int *n = arg;
  if (!strcmp(name, "t1") && partitions == 2)
    n[0]++;
  else if (!strcmp(name, "t2") && partitions == 1)
    n[1]++;
  else
    n[2]++;
  return 0;
}

/* Child: open the store in dir and list its topics. */
static void
child_open(outcome *o)
{
  q7 *q = NULL;
  o->open_rc = q7_open(&q, dir, NULL);
  if (o->open_rc) {
    note(o);
    return;
  }
  if (q7_topic_foreach(q, count_topics, o->topics))
    note(o);
  q7_close(q);
}

/* Child: open topic "t", its partition 0, and read every record. */
static void
child_touch(outcome *o)
{
  q7 *q = NULL;
  q7_topic *t;
  q7_partition *p;
  q7_record r[16];
  int64_t hw = 0, off = 0;
  if ((o->open_rc = q7_open(&q, dir, NULL))) {
    note(o);
    return;
  }
  if ((o->part_rc = q7_topic_open(q, "t", &t))) {
    note(o);
    q7_close(q);
    return;
  }
  if ((o->part_rc = q7_topic_partition(t, 0, &p))) {
    note(o);
  } else if ((o->read_rc = q7_partition_offsets(p, NULL, &hw))) {
    note(o);
  } else {
    /* Read every record: a missing page may hold any of them. */
    while (off < hw) {
      int n = q7_partition_read(p, off, r, 16);
      if (n <= 0) {
        o->read_rc = n ? n : Q7_ECORRUPT;
        note(o);
        break;
      }
      off += n;
    }
    if (o->read_rc == Q7_OK)
      o->read_rc = (int)off;
  }
  q7_topic_close(t);
  q7_close(q);
}

/* ------------------------------------------------- corrupt meta files */

/* q7_open fails with @want (in a child); returns its message. */
static const char *
assert_open_fails(int want)
{
  outcome *o = isolated(child_open);
  cr_assert_eq(o->open_rc, want, "q7_open -> %d (%s), want %d", o->open_rc,
               o->open_rc ? o->msg : "opened", want);
  cr_assert(o->msg[0], "no message");
  return o->msg;
}

Test(store, garbage_meta_file_is_ecorrupt)
{
  cr_assert_eq(mkdir(path_of("meta"), 0700), 0);
  write_garbage("meta/data.mdb", 64 * 1024, GARBAGE);
  const char *msg = assert_open_fails(Q7_ECORRUPT);
  cr_assert(strstr(msg, "meta"), "%s", msg);
}

Test(store, garbage_over_an_existing_meta_file_is_ecorrupt)
{
  make_store("t", 1, 3, 10);
  off_t size = file_size("meta/data.mdb");
  write_garbage("meta/data.mdb", (size_t)size, GARBAGE);
  assert_open_fails(Q7_ECORRUPT);
}

Test(store, short_garbage_meta_file_is_ecorrupt)
{
  cr_assert_eq(mkdir(path_of("meta"), 0700), 0);
  write_garbage("meta/data.mdb", 100, GARBAGE);
  assert_open_fails(Q7_ECORRUPT);
}

Test(store, text_file_as_meta_is_ecorrupt)
{
  cr_assert_eq(mkdir(path_of("meta"), 0700), 0);
  char text[8192];
  memset(text, '#', sizeof text);
  write_file("meta/data.mdb", text, sizeof text);
  assert_open_fails(Q7_ECORRUPT);
}

/* The meta file of a store with topics t1 (2 partitions) and t2 (1), cut
 * to @keep bytes (negative: size + keep). */
static void
cut_meta(off_t keep)
{
  make_store("t1", 2, 3, 10);
  make_store("t2", 1, 0, 0);
  off_t size = file_size("meta/data.mdb");
  cr_assert_gt(size, 3 * 4096, "meta file of %jd bytes is too small to cut", (intmax_t)size);
  truncate_file("meta/data.mdb", keep >= 0 ? keep : size + keep);
}

Test(store, meta_cut_to_100_bytes_is_an_error)
{
  cut_meta(100);
  assert_open_fails(Q7_ECORRUPT);
}

Test(store, meta_cut_to_one_page_is_an_error)
{
  cut_meta(4096);
  assert_open_fails(Q7_ECORRUPT);
}

Test(store, meta_cut_after_its_meta_pages_is_an_error)
{
  /* Both LMDB meta pages are there, every tree page is gone. */
  cut_meta(8192);
  assert_open_fails(Q7_ECORRUPT);
}

Test(store, meta_missing_its_last_page_is_an_error_or_intact)
{
  /* Whether LMDB still needs the last page depends on what it holds; the
   * store must then either refuse to open or show everything it had. */
  cut_meta(-4096);
  outcome *o = isolated(child_open);
  if (o->open_rc != Q7_OK) {
    cr_assert(o->msg[0], "no message");
    return;
  }
  if (!o->msg[0])
    cr_assert(o->topics[0] == 1 && o->topics[1] == 1 && o->topics[2] == 0,
              "topics after the cut: %d %d %d", o->topics[0], o->topics[1], o->topics[2]);
}

Test(store, meta_cut_to_zero_does_not_erase_partitions)
{
  cut_meta(0);
  outcome *o = isolated(child_open);
  cr_assert(is_file("topics/t1/0/data.mdb"),
            "q7_open on an emptied meta file (-> %d) deleted the partitions' data", o->open_rc);
  cr_assert_neq(o->open_rc, Q7_OK, "an emptied meta file beside topic data opened as a new store");
}

Test(store, format_newer_than_the_library_is_eversion)
{
  make_store("t", 1, 0, 0);
  uint32_t f = 99;
  raw_put("meta", "info", "format", &f, sizeof f);
  const char *msg = assert_open_fails(Q7_EVERSION);
  cr_assert(strstr(msg, "99"), "%s", msg);
  cr_assert(strstr(msg, dir), "%s", msg);
}

Test(store, current_format_opens)
{
  make_store("t", 1, 0, 0);
  uint32_t f = Q7__FORMAT;
  raw_put("meta", "info", "format", &f, sizeof f);
  q7 *q;
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, malformed_format_record_is_ecorrupt)
{
  make_store("t", 1, 0, 0);
  uint64_t f = 1;
  raw_put("meta", "info", "format", &f, sizeof f);
  assert_open_fails(Q7_ECORRUPT);
}

Test(store, new_store_records_its_format)
{
  make_store("t", 1, 0, 0);
  MDB_env *env = raw_env("meta");
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_val k = { 6, (void *)"format" }, v;
  cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "info", 0, &dbi), 0);
  cr_assert_eq(mdb_get(txn, dbi, &k, &v), 0);
  cr_assert_eq(v.mv_size, 4);
  uint32_t f;
  memcpy(&f, v.mv_data, 4);
  cr_assert_eq(f, Q7__FORMAT);
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

/* -------------------------------------------- corrupt partition files */

/* Topic "t" opens; its partition 0 fails with @want (in a child). */
static const char *
assert_partition_fails(int want)
{
  outcome *o = isolated(child_touch);
  cr_assert_eq(o->open_rc, Q7_OK, "q7_open -> %d: %s", o->open_rc, o->msg);
  cr_assert_eq(o->part_rc, want, "q7_topic_partition -> %d (%s), want %d", o->part_rc,
               o->part_rc ? o->msg : "opened", want);
  cr_assert(o->msg[0], "no message");
  return o->msg;
}

Test(store, garbage_partition_file_is_ecorrupt)
{
  make_store("t", 1, 3, 10);
  off_t size = file_size("topics/t/0/data.mdb");
  write_garbage("topics/t/0/data.mdb", (size_t)size, GARBAGE);
  const char *msg = assert_partition_fails(Q7_ECORRUPT);
  cr_assert(strstr(msg, "topics/t/0"), "%s", msg);
}

Test(store, short_garbage_partition_file_is_ecorrupt)
{
  make_store("t", 1, 0, 0);
  write_garbage("topics/t/0/data.mdb", 333, GARBAGE);
  assert_partition_fails(Q7_ECORRUPT);
}

/* A partition of 300 records of 1000 bytes (~450 KiB) cut to @keep bytes
 * (negative: size + keep). */
static void
cut_partition(off_t keep)
{
  make_store("t", 1, 300, 1000);
  off_t size = file_size("topics/t/0/data.mdb");
  cr_assert_gt(size, 64 * 4096);
  truncate_file("topics/t/0/data.mdb", keep >= 0 ? keep : size + keep);
}

/* Opening the partition or reading it back fails (in a child). */
static void
assert_partition_error(void)
{
  outcome *o = isolated(child_touch);
  cr_assert(o->open_rc != Q7_OK || o->part_rc != Q7_OK || o->read_rc < 0,
            "a truncated partition opened and read back %d records", o->read_rc);
  cr_assert(o->msg[0], "no message");
}

Test(store, partition_cut_to_one_page_is_an_error)
{
  cut_partition(4096);
  assert_partition_error();
}

Test(store, partition_cut_after_its_meta_pages_is_an_error)
{
  cut_partition(8192);
  assert_partition_error();
}

Test(store, partition_cut_in_half_is_an_error)
{
  make_store("t", 1, 300, 1000);
  truncate_file("topics/t/0/data.mdb", file_size("topics/t/0/data.mdb") / 2);
  assert_partition_error();
}

Test(store, partition_missing_its_last_page_is_an_error_or_intact)
{
  cut_partition(-4096);
  outcome *o = isolated(child_touch);
  if (o->open_rc == Q7_OK && o->part_rc == Q7_OK && o->read_rc >= 0)
    cr_assert_eq(o->read_rc, 300, "read %d of 300 records and no error", o->read_rc);
  else
    cr_assert(o->msg[0], "no message");
}

Test(store, partition_format_newer_than_the_library_is_eversion)
{
  make_store("t", 1, 1, 10);
  uint64_t f = 99;
  raw_put("topics/t/0", "meta", "format", &f, sizeof f);
  const char *msg = assert_partition_fails(Q7_EVERSION);
  cr_assert(strstr(msg, "99"), "%s", msg);
}

Test(store, partition_without_tables_is_ecorrupt)
{
  make_store("t", 1, 0, 0);
  /* A valid LMDB file holding nothing of libq7's. */
  cr_assert_eq(unlink(path_of("topics/t/0/data.mdb")), 0);
  cr_assert_eq(unlink(path_of("topics/t/0/lock.mdb")), 0);
  MDB_env *env = raw_env("topics/t/0");
  mdb_env_close(env);
  assert_partition_fails(Q7_ECORRUPT);
}

Test(store, partition_directory_removed_is_enoent)
{
  make_store("t", 1, 0, 0);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path_of("topics/t/0"));
  cr_assert_eq(system(cmd), 0);
  assert_partition_fails(Q7_ENOENT);
}

Test(store, flipped_byte_in_a_stored_batch_is_ecorrupt_naming_the_offset)
{
  make_store("t", 1, 3, 50); /* three batches: offsets 0, 1, 2 */
  raw_flip_batch("topics/t/0", 1, Q7__BATCH_HDR + 10); /* in its record */
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_record r[8];
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_FAILS_WITH(Q7_ECORRUPT, q7_partition_read(p, 1, r, 8));
  cr_assert(strstr(q7_last_error(), "offset 1"), "%s", q7_last_error());
  cr_assert(strstr(q7_last_error(), "t"), "%s", q7_last_error());
  /* What is around it still reads. */
  cr_assert_eq(q7_partition_read(p, 0, r, 1), 1);
  cr_assert_eq(r[0].offset, 0);
  cr_assert_eq(q7_partition_read(p, 2, r, 8), 1);
  cr_assert_eq(r[0].offset, 2);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(store, flipped_crc_of_a_stored_batch_is_ecorrupt)
{
  make_store("t", 1, 1, 50);
  raw_flip_batch("topics/t/0", 0, 0);
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_record r[8];
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_FAILS_WITH(Q7_ECORRUPT, q7_partition_read(p, 0, r, 8));
  cr_assert(strstr(q7_last_error(), "offset 0"), "%s", q7_last_error());
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
}

/* ------------------------------------------------------------- modes */

static mode_t
mode_of(const char *rel)
{
  struct stat st;
  cr_assert_eq(stat(path_of(rel), &st), 0, "stat %s: %s", rel, strerror(errno));
  return st.st_mode & 07777;
}

Test(store, files_are_0600_and_directories_0700)
{
  mode_t old = umask(022); /* a usual umask: what 0600/0700 must not rely on */
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_open(&q, path_of("s"), NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "gone", 1, NULL));
  Q7_OK_OR_FAIL(q7_topic_delete(q, "gone"));
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1 };
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL));
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  umask(old);

  const char *dirs[] = { "s", "s/meta", "s/topics", "s/topics/t", "s/topics/t/0" };
  for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
    cr_assert_eq(mode_of(dirs[i]), 0700, "%s has mode %o", dirs[i], mode_of(dirs[i]));
  struct stat st;
  if (stat(path_of("s/trash"), &st) == 0)
    cr_assert_eq(mode_of("s/trash"), 0700, "s/trash has mode %o", mode_of("s/trash"));
  const char *files[] = { "s/meta/data.mdb", "s/meta/lock.mdb", "s/notify",
                          "s/topics/t/0/data.mdb", "s/topics/t/0/lock.mdb" };
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    cr_assert_eq(mode_of(files[i]), 0600, "%s has mode %o", files[i], mode_of(files[i]));
}

/* ------------------------------------------------ version and errors */

Test(err, version_matches_macros)
{
  char want[64];
  snprintf(want, sizeof want, "%d.%d.%d", Q7_VERSION_MAJOR, Q7_VERSION_MINOR, Q7_VERSION_PATCH);
  cr_assert_not_null(q7_version());
  cr_assert_str_eq(q7_version(), want);
  cr_assert_eq(q7_version(), q7_version(), "not a static string");
}

static const int codes[] = { Q7_OK,       Q7_EINVAL,   Q7_ENOENT, Q7_EEXIST, Q7_ERANGE,
                             Q7_ETOOBIG,  Q7_EFULL,    Q7_EIO,    Q7_ECORRUPT,
                             Q7_ETIMEDOUT, Q7_EBUSY,   Q7_ENOMEM, Q7_EREPLICA,
                             Q7_EVERSION, Q7_ESTATE };
#define N_CODES (sizeof codes / sizeof codes[0])

Test(err, codes_are_pinned)
{
  for (size_t i = 0; i < N_CODES; i++)
    cr_assert_eq(codes[i], -(int)i, "code %zu", i);
}

Test(err, strerror_of_every_code_is_distinct_text)
{
  for (size_t i = 0; i < N_CODES; i++) {
    const char *s = q7_strerror(codes[i]);
    cr_assert_not_null(s, "code %d", codes[i]);
    cr_assert_neq(s[0], 0, "code %d has empty text", codes[i]);
    cr_assert_str_neq(s, q7_strerror(-12345), "code %d reads as unknown", codes[i]);
    for (size_t j = 0; j < i; j++)
      cr_assert_str_neq(s, q7_strerror(codes[j]), "codes %d and %d share \"%s\"", codes[i],
                        codes[j], s);
  }
}

Test(err, strerror_of_unknown_codes_is_not_null)
{
  const int unknown[] = { 1, 2, -15, -100, -12345, INT_MIN, INT_MAX };
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *s = q7_strerror(unknown[i]);
    cr_assert_not_null(s, "code %d", unknown[i]);
    cr_assert_neq(s[0], 0);
    cr_assert(strstr(s, "unknown"), "code %d: \"%s\"", unknown[i], s);
  }
}

static void *
thread_last_error(void *arg)
{
  const char **out = arg;
  out[0] = q7_last_error();
  static char copy[512];
  snprintf(copy, sizeof copy, "%s", out[0]);
  out[1] = copy;
  return NULL;
}

Test(err, last_error_is_per_thread_and_empty_at_first)
{
  q7_conf *c;
  c = q7_conf_new();
  cr_assert_not_null(c, "q7_conf_new: %s", q7_last_error());
  cr_assert_eq(q7_conf_set(c, "no.such.key", "1"), Q7_EINVAL);
  cr_assert(strstr(q7_last_error(), "no.such.key"));
  const char *got[2];
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, thread_last_error, got), 0);
  pthread_join(th, NULL);
  cr_assert_not_null(got[0]);
  cr_assert_str_eq(got[1], "", "a new thread sees \"%s\"", got[1]);
  /* Ours is intact. */
  cr_assert(strstr(q7_last_error(), "no.such.key"));
  q7_conf_destroy(c);
}
