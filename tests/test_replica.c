/* test_replica.c - replication to mirror directories (store key replica.dirs).
 *
 * A store with replica.dirs "M1,M2,..." has 1 + n replicas: the primary
 * (its own directory) and the mirrors, each a complete store that q7_open
 * serves alone.  Checked here:
 *   - replication.factor above 1 + n is Q7_EREPLICA at create, the message
 *     saying how many replicas exist; it cannot be altered; min.insync above
 *     it is Q7_EINVAL;
 *   - placement: deterministic across reopen, spread over the mirrors as
 *     documented ((t + p) mod n), Q7_ENOENT for a replica holding no copy;
 *   - every mirror holds the same offsets, timestamps and bytes (verify, and
 *     each mirror opened alone after close, record by record against the
 *     primary), the group offsets, topic configs, deletions, retention;
 *   - faults: a mirror directory removed, replaced by a file or by another
 *     directory, a full disk (tmpfs, as root), divergent bytes; resync and
 *     q7_open catch mirrors up;
 *   - acks=all refuses (Q7_EREPLICA, nothing written) below
 *     min.insync.replicas; acks=1 delivers before the mirrors hold a record
 *     (a child process holds the mirror's LMDB write lock), mirrors catch
 *     up, and consumers never read above the high watermark;
 *   - failover: a child producing with acks=all is SIGKILLed at random
 *     moments; each mirror opened alone holds every acknowledged record at
 *     its offset, byte for byte, offsets dense, and the group's offsets.
 * Seed: printed by the failover test; Q7_TEST_SEED=N repeats it.
 *
 * LMDB forbids carrying an environment across fork(): every fork happens
 * while this process has no store open; children open what they use.
 * Children are stopped by PID in every path (teardown), the tmpfs is
 * unmounted in every path before anything is asserted. */
#include "helpers.h"
#include "q7_int.h"
#include "proc.h"
#include "kids.h"
#include "tmpfs.h"

#include <criterion/logging.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

/* ------------------------------------------------------------ fixture */


static char *dir;
static char P[4200];              /* the primary */
static char M[5][4300];           /* mirrors 1..4 */

static void
setup(void)
{
  dir = tmpdir_new();
  snprintf(P, sizeof P, "%s/primary", dir);
  for (int i = 1; i < 5; i++)
    snprintf(M[i], sizeof M[i], "%s/mirror%d", dir, i);
  kids_reset();
  mounted = false;
}

/* Every path out of a test: children killed by PID, tmpfs unmounted. */
static void
teardown(void)
{
  kids_kill_all();
  tmpfs_unmount("test_replica");
  tmpdir_rm(dir);
  dir = NULL;
}

TestSuite(replica, .init = setup, .fini = teardown);

/* ------------------------------------------------------------ helpers */

static void
rm_rf(const char *path)
{
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

/* Memory shared with children: their verdict and counters. */
typedef struct shared {
  char msg[1024];
  char note[1024];
  int line;
  int64_t n[8];
} shared;

static shared *sh;

static void
shared_new(void)
{
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(sh, MAP_FAILED);
  memset(sh, 0, sizeof *sh);
}

/* ---------------------------------------------------- stores, topics */

/* A store conf: replica.dirs @dirs, sync @sync, no background sweeps. */
static q7_conf *
store_conf(const char *dirs, bool sync)
{
  q7_conf *c = q7_conf_new();
  cr_assert_not_null(c);
  Q7_OK_OR_FAIL(q7_conf_set(c, "replica.dirs", dirs));
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", sync ? "true" : "false"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "retention.check.interval.ms", "0"));
  return c;
}

/* "M1,M2,...,Mn" */
static const char *
mirrors(int n)
{
  static char buf[5 * 4400];
  buf[0] = 0;
  for (int i = 1; i <= n; i++) {
    if (i > 1)
      strcat(buf, ",");
    strcat(buf, M[i]);
  }
  return buf;
}

static q7 *
open_dirs(const char *dirs)
{
  q7_conf *c = store_conf(dirs, false);
  q7 *q = NULL;
  Q7_OK_OR_FAIL(q7_open(&q, P, c));
  q7_conf_destroy(c);
  return q;
}

static q7 *
open_primary(int n_mirrors)
{
  return open_dirs(mirrors(n_mirrors));
}

/* A directory opened alone, as a new user would: q7_open(dir, NULL). */
static q7 *
open_alone(const char *d)
{
  q7 *q = NULL;
  Q7_OK_OR_FAIL(q7_open(&q, d, NULL));
  return q;
}

static q7_conf *
topic_conf(int rf, int min_isr)
{
  q7_conf *c = q7_conf_new();
  char b[16];
  cr_assert_not_null(c);
  snprintf(b, sizeof b, "%d", rf);
  Q7_OK_OR_FAIL(q7_conf_set(c, "replication.factor", b));
  snprintf(b, sizeof b, "%d", min_isr);
  Q7_OK_OR_FAIL(q7_conf_set(c, "min.insync.replicas", b));
  return c;
}

static void
make_topic(q7 *q, const char *name, int32_t parts, int rf, int min_isr)
{
  q7_conf *c = topic_conf(rf, min_isr);
  Q7_OK_OR_FAIL(q7_topic_create(q, name, parts, c));
  q7_conf_destroy(c);
}

static q7_producer *
producer(q7 *q, const char *acks)
{
  q7_conf *c = q7_conf_new();
  q7_producer *p = NULL;
  cr_assert_not_null(c);
  Q7_OK_OR_FAIL(q7_conf_set(c, "acks", acks));
  Q7_OK_OR_FAIL(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  return p;
}

/* ------------------------------------------------------- record contents */

enum { MAGIC = 0x52504c31, MAXV = 1400 };

typedef struct content {
  bool has_key, has_hdr;
  unsigned char key[16];
  size_t key_len;
  unsigned char value[MAXV];
  size_t value_len;
  unsigned char hval[8];
  size_t hval_len;
} content;

static uint64_t seed_g = 7;

/* Record (@a, @b): a function of the seed: value 16 to ~1300 bytes
 * starting with MAGIC, a, b; a key (possibly empty) on odd hashes; a header
 * on some. */
static void
gen(uint32_t a, uint32_t b, content *c)
{
  uint64_t h = mix64(seed_g ^ ((uint64_t)a << 32) ^ b);
  c->has_key = h & 1;
  c->key_len = c->has_key ? (h >> 8) % 16 : 0;
  c->value_len = (h >> 16) % 10 == 0 ? 400 + (h >> 24) % 900 : 16 + (h >> 24) % 200;
  c->has_hdr = h & 2;
  c->hval_len = c->has_hdr ? (h >> 40) % 8 : 0;
  uint64_t x = h;
  for (size_t i = 0; i < c->key_len; i++)
    c->key[i] = (unsigned char)(x = mix64(x));
  for (size_t i = 0; i < c->hval_len; i++)
    c->hval[i] = (unsigned char)(x = mix64(x));
  for (size_t i = 12; i < c->value_len; i++)
    c->value[i] = (unsigned char)(x = mix64(x));
  uint32_t m = MAGIC;
  memcpy(c->value, &m, 4);
  memcpy(c->value + 4, &a, 4);
  memcpy(c->value + 8, &b, 4);
}

static q7_msg
msg_of(q7_topic *t, int32_t partition, content *c, q7_header *h, int64_t ts)
{
  q7_msg m = { .topic = t, .partition = partition, .timestamp_ms = ts };
  m.key = c->has_key ? (const void *)c->key : NULL;
  m.key_len = c->key_len;
  m.value = c->value;
  m.value_len = c->value_len;
  if (c->has_hdr) {
    h->name = "rep";
    h->value = c->hval;
    h->value_len = c->hval_len;
    m.headers = h;
    m.header_count = 1;
  }
  return m;
}

/* Parse (a, b) out of a stored value; false if it is not one of ours. */
static bool
parse_id(const q7_record *r, uint32_t *a, uint32_t *b)
{
  uint32_t m;
  if (r->value_len < 12 || !r->value)
    return false;
  memcpy(&m, r->value, 4);
  memcpy(a, (const char *)r->value + 4, 4);
  memcpy(b, (const char *)r->value + 8, 4);
  return m == MAGIC;
}

/* NULL if @r holds exactly record (@a, @b); else what differs. */
static const char *
differs(const q7_record *r, uint32_t a, uint32_t b, content *c)
{
  gen(a, b, c);
  if (c->has_key != (r->key != NULL))
    return "key presence";
  if (r->key_len != c->key_len || (c->key_len && memcmp(r->key, c->key, c->key_len)))
    return "key bytes";
  if (r->value_len != c->value_len || memcmp(r->value, c->value, c->value_len))
    return "value bytes";
  const void *hv;
  size_t hl;
  int rc = q7_record_header(r, "rep", &hv, &hl);
  if (c->has_hdr) {
    if (rc != Q7_OK)
      return "header missing";
    if (hl != c->hval_len || (hl && memcmp(hv, c->hval, hl)))
      return "header bytes";
  } else if (rc != Q7_ENOENT || r->headers_len != 0) {
    return "unexpected header";
  }
  return NULL;
}

/* send_sync record (@a, @b) to @partition; its offset. */
static int64_t
send_rec(q7_producer *pr, q7_topic *t, int32_t partition, uint32_t a, uint32_t b, int64_t ts)
{
  content c;
  q7_header h;
  gen(a, b, &c);
  q7_msg m = msg_of(t, partition, &c, &h, ts);
  int32_t part = -1;
  int64_t off = -1;
  Q7_OK_OR_FAIL(q7_producer_send_sync(pr, &m, &part, &off));
  cr_assert_eq(part, partition);
  return off;
}

/* --------------------------------------------------- replica queries */

static int64_t
hw_of(q7 *q, const char *topic, int32_t p, int64_t *ls)
{
  q7_topic *t;
  q7_partition *part;
  int64_t l, hw;
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, p, &part));
  Q7_OK_OR_FAIL(q7_partition_offsets(part, &l, &hw));
  q7_topic_close(t);
  if (ls)
    *ls = l;
  return hw;
}

static int64_t
end_of(q7 *q, const char *topic, int32_t p, int r, int *in_sync)
{
  int64_t end = -7;
  int s = -7;
  Q7_OK_OR_FAIL(q7_replica_status(q, topic, p, r, &end, &s));
  cr_assert(s == 0 || s == 1, "in_sync %d is not 0 or 1", s);
  if (in_sync)
    *in_sync = s;
  return end;
}

/* Poll until replica @r of the partition is (@want 1) or is not (0) in
 * sync; the milliseconds it took, or -1 after @ms. */
static int64_t
wait_sync(q7 *q, const char *topic, int32_t p, int r, int want, int ms)
{
  int64_t t0 = mono_ms();
  for (;;) {
    int s;
    end_of(q, topic, p, r, &s);
    if (s == want)
      return mono_ms() - t0;
    if (mono_ms() - t0 > ms)
      return -1;
    sleep_ms(10);
  }
}

/* Mirror @r of the partition is in sync, ends where the primary's log
 * ends and q7_replica_verify finds it identical. */
static void
assert_caught_up(q7 *q, const char *topic, int32_t p, int r, int64_t primary_end)
{
  int s;
  int64_t end = end_of(q, topic, p, r, &s);
  cr_assert_eq(s, 1, "%s/%d replica %d not in sync", topic, p, r);
  cr_assert_eq(end, primary_end, "%s/%d replica %d ends at %" PRId64 ", primary at %" PRId64,
               topic, p, r, end, primary_end);
  Q7_OK_OR_FAIL(q7_replica_verify(q, topic, p, r));
}

/* Stores @a and @b hold the same partition @p of @topic: log start, end,
 * and every record (offset, timestamp, key, value, headers).  Returns the
 * number of records compared. */
static int64_t
same_records(q7 *a, q7 *b, const char *topic, int32_t p, const char *what)
{
  q7_topic *ta, *tb;
  q7_partition *pa, *pb;
  int64_t lsa, hwa, lsb, hwb;
  Q7_OK_OR_FAIL(q7_topic_open(a, topic, &ta));
  Q7_OK_OR_FAIL(q7_topic_open(b, topic, &tb));
  Q7_OK_OR_FAIL(q7_topic_partition(ta, p, &pa));
  Q7_OK_OR_FAIL(q7_topic_partition(tb, p, &pb));
  Q7_OK_OR_FAIL(q7_partition_offsets(pa, &lsa, &hwa));
  Q7_OK_OR_FAIL(q7_partition_offsets(pb, &lsb, &hwb));
  cr_assert_eq(lsa, lsb, "%s: %s/%d log start %" PRId64 " vs %" PRId64, what, topic, p, lsa, lsb);
  cr_assert_eq(hwa, hwb, "%s: %s/%d end %" PRId64 " vs %" PRId64, what, topic, p, hwa, hwb);
  for (int64_t off = lsa; off < hwa;) {
    q7_record ra[128], rb[128];
    int na = q7_partition_read(pa, off, ra, 128);
    int nb = q7_partition_read(pb, off, rb, 128);
    cr_assert_gt(na, 0, "%s: %s/%d read at %" PRId64 ": %d %s", what, topic, p, off, na,
                 q7_last_error());
    cr_assert_gt(nb, 0, "%s: %s/%d read at %" PRId64 ": %d %s", what, topic, p, off, nb,
                 q7_last_error());
    int n = na < nb ? na : nb;
    for (int i = 0; i < n; i++) {
      const q7_record *x = &ra[i], *y = &rb[i];
      cr_assert_eq(x->offset, off + i, "%s: offsets not dense", what);
      cr_assert_eq(y->offset, off + i, "%s: %s/%d offset %" PRId64 " where %" PRId64 " belongs",
                   what, topic, p, y->offset, off + i);
      cr_assert_eq(x->timestamp_ms, y->timestamp_ms, "%s: %s/%d offset %" PRId64 " timestamp",
                   what, topic, p, off + i);
      cr_assert(x->key_len == y->key_len && !x->key == !y->key &&
                    (!x->key_len || !memcmp(x->key, y->key, x->key_len)),
                "%s: %s/%d offset %" PRId64 ": key differs", what, topic, p, off + i);
      cr_assert(x->value_len == y->value_len && !x->value == !y->value &&
                    (!x->value_len || !memcmp(x->value, y->value, x->value_len)),
                "%s: %s/%d offset %" PRId64 ": value differs", what, topic, p, off + i);
      cr_assert(x->headers_len == y->headers_len &&
                    (!x->headers_len || !memcmp(x->headers, y->headers, x->headers_len)),
                "%s: %s/%d offset %" PRId64 ": headers differ", what, topic, p, off + i);
    }
    off += n;
  }
  q7_topic_close(ta);
  q7_topic_close(tb);
  return hwa - lsa;
}

/* Open the primary and mirror @r alone (both closed beforehand) and
 * compare the partitions of @topic the mirror holds (@holds[p]). */
static int64_t
compare_alone(int r, const char *topic, int32_t parts, const bool *holds)
{
  q7 *a = open_alone(P), *b = open_alone(M[r]);
  int64_t n = 0;
  char what[64];
  snprintf(what, sizeof what, "mirror %d opened alone", r);
  for (int32_t p = 0; p < parts; p++)
    if (!holds || holds[p])
      n += same_records(a, b, topic, p, what);
  Q7_OK_OR_FAIL(q7_close(a));
  Q7_OK_OR_FAIL(q7_close(b));
  return n;
}

/* =============================================== replication factor */

Test(replica, replication_factor_above_the_replica_count_is_ereplica, .timeout = 30)
{
  q7 *q = open_primary(2);
  q7_conf *c = topic_conf(4, 1);
  Q7_FAILS_WITH(Q7_EREPLICA, q7_topic_create(q, "big", 1, c));
  cr_assert(strstr(q7_last_error(), "3 replicas"), "message does not say the store has 3 "
            "replicas: %s", q7_last_error());
  q7_conf_destroy(c);
  /* Nothing was made, on the primary or a mirror. */
  q7_topic *t;
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(q, "big", &t));
  /* 1 + n is allowed. */
  make_topic(q, "three", 1, 3, 2);
  Q7_OK_OR_FAIL(q7_close(q));
  q7 *m = open_alone(M[1]);
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(m, "big", &t));
  Q7_OK_OR_FAIL(q7_topic_open(m, "three", &t));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(m));

  /* Without mirrors there is one replica. */
  rm_rf(P);
  q = open_primary(0);
  c = topic_conf(2, 1);
  Q7_FAILS_WITH(Q7_EREPLICA, q7_topic_create(q, "two", 1, c));
  cr_assert(strstr(q7_last_error(), "1 replica"), "message does not say the store has 1 "
            "replica: %s", q7_last_error());
  q7_conf_destroy(c);
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(replica, replication_factor_cannot_be_altered_and_min_insync_is_bounded, .timeout = 30)
{
  q7 *q = open_primary(2);
  make_topic(q, "t", 2, 2, 1);
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "replication.factor", "3"));
  cr_assert(strstr(q7_last_error(), "replication.factor"), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "replication.factor", "1"));
  char buf[32];
  size_t len = sizeof buf;
  Q7_OK_OR_FAIL(q7_topic_get(q, "t", "replication.factor", buf, &len));
  cr_assert_str_eq(buf, "2");
  /* min.insync.replicas above replication.factor: at create and by set. */
  q7_conf *c = topic_conf(2, 3);
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_create(q, "u", 1, c));
  cr_assert(strstr(q7_last_error(), "min.insync.replicas"), "%s", q7_last_error());
  q7_conf_destroy(c);
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "min.insync.replicas", "3"));
  len = sizeof buf;
  Q7_OK_OR_FAIL(q7_topic_get(q, "t", "min.insync.replicas", buf, &len));
  cr_assert_str_eq(buf, "1");
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "min.insync.replicas", "2"));
  Q7_OK_OR_FAIL(q7_close(q));
}

/* ========================================================= placement */

/* holds[p][r]: replica r holds partition p (by q7_replica_status). */
static void
placement(q7 *q, const char *topic, int32_t parts, int n, bool holds[][5])
{
  for (int32_t p = 0; p < parts; p++) {
    int s = -1;
    int64_t end = -1;
    Q7_OK_OR_FAIL(q7_replica_status(q, topic, p, 0, &end, &s));
    cr_assert_eq(s, 1, "the primary of partition %d is not in sync", p);
    holds[p][0] = true;
    for (int r = 1; r <= n; r++) {
      int rc = q7_replica_status(q, topic, p, r, &end, &s);
      cr_assert(rc == Q7_OK || rc == Q7_ENOENT, "status %s/%d replica %d -> %d: %s", topic, p, r,
                rc, q7_last_error());
      if (rc == Q7_ENOENT)
        cr_assert(q7_last_error()[0], "ENOENT without a message");
      holds[p][r] = rc == Q7_OK;
    }
  }
}

Test(replica, placement_is_deterministic_spread_and_status_knows_it, .timeout = 30)
{
  q7 *q = open_primary(3);
  make_topic(q, "six", 6, 2, 1);
  make_topic(q, "all", 4, 4, 1);
  bool h[6][5], h2[6][5], a[4][5];
  placement(q, "six", 6, 3, h);
  placement(q, "all", 4, 3, a);
  int per_mirror[5] = { 0 };
  for (int p = 0; p < 6; p++) {
    int copies = 0, first = 0;
    for (int r = 1; r <= 3; r++)
      if (h[p][r]) {
        copies++;
        per_mirror[r]++;
        first = r;
      }
    cr_assert_eq(copies, 1, "RF 2: partition %d has %d mirror copies, want 1", p, copies);
    /* Documented: partition p of topic t starts at mirror (t + p) mod n. */
    if (p > 0) {
      int prev = 0;
      for (int r = 1; r <= 3; r++)
        if (h[p - 1][r])
          prev = r;
      cr_assert_eq(first, prev % 3 + 1, "partition %d is on mirror %d after partition %d on "
                   "mirror %d: not (t + p) mod n", p, first, p - 1, prev);
    }
  }
  for (int r = 1; r <= 3; r++)
    cr_assert_gt(per_mirror[r], 0, "mirror %d holds no partition of \"six\"", r);
  for (int p = 0; p < 4; p++)
    for (int r = 1; r <= 3; r++)
      cr_assert(a[p][r], "RF 4 over 3 mirrors: partition %d is not on mirror %d", p, r);
  /* A replica holding no copy: ENOENT. */
  for (int r = 1; r <= 3; r++)
    if (!h[0][r]) {
      Q7_FAILS_WITH(Q7_ENOENT, q7_replica_status(q, "six", 0, r, NULL, NULL));
      Q7_FAILS_WITH(Q7_ENOENT, q7_replica_verify(q, "six", 0, r));
    }
  /* No such replica, partition, topic. */
  Q7_FAILS_WITH(Q7_ENOENT, q7_replica_status(q, "six", 0, 4, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_replica_status(q, "six", 0, -1, NULL, NULL));
  Q7_FAILS_WITH(Q7_ENOENT, q7_replica_status(q, "six", 6, 0, NULL, NULL));
  Q7_FAILS_WITH(Q7_ENOENT, q7_replica_status(q, "nope", 0, 0, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_replica_verify(q, "six", 0, 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_replica_resync(q, 4));

  /* Records go where the status says: the mirror holding partition p has
   * its records, replica 0 is the primary. */
  q7_topic *t;
  q7_producer *pr = producer(q, "all");
  Q7_OK_OR_FAIL(q7_topic_open(q, "six", &t));
  for (int32_t p = 0; p < 6; p++)
    for (uint32_t i = 0; i < (uint32_t)p + 1; i++)
      cr_assert_eq(send_rec(pr, t, p, (uint32_t)p, i, 0), (int64_t)i);
  for (int32_t p = 0; p < 6; p++) {
    cr_assert_eq(end_of(q, "six", p, 0, NULL), p + 1, "replica 0 of partition %d", p);
    for (int r = 1; r <= 3; r++)
      if (h[p][r])
        assert_caught_up(q, "six", p, r, p + 1);
  }
  q7_topic_close(t);
  q7_producer_close(pr);
  Q7_OK_OR_FAIL(q7_close(q));

  /* The same answer after reopening. */
  q = open_primary(3);
  placement(q, "six", 6, 3, h2);
  for (int p = 0; p < 6; p++)
    for (int r = 0; r <= 3; r++)
      cr_assert_eq(h[p][r], h2[p][r], "placement of partition %d on replica %d changed on reopen",
                   p, r);
  Q7_OK_OR_FAIL(q7_close(q));

  /* Each mirror opened alone: the partitions placed there hold the records. */
  for (int r = 1; r <= 3; r++) {
    bool holds[6];
    for (int p = 0; p < 6; p++)
      holds[p] = h[p][r];
    cr_assert_gt(compare_alone(r, "six", 6, holds), 0);
  }
}

/* ====================================== same records, metadata, offsets */

static int
count_topics(const char *name, int32_t partitions, void *arg)
{
  (void)name;
  (void)partitions;
  ++*(int *)arg;
  return 0;
}

Test(replica, mirrors_hold_the_same_records_offsets_configs_and_deletions, .timeout = 60)
{
  q7 *q = open_primary(2);
  make_topic(q, "t", 3, 3, 2);
  make_topic(q, "gone", 2, 3, 1);
  /* Batched sends with every shape of record: keys (some empty), null
   * values, headers, explicit and default timestamps. */
  q7_conf *pc = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(pc, "acks", "all"));
  Q7_OK_OR_FAIL(q7_conf_set(pc, "linger.ms", "2"));
  q7_producer *pr;
  Q7_OK_OR_FAIL(q7_producer_new(q, pc, &pr));
  q7_conf_destroy(pc);
  q7_topic *t, *g;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_topic_open(q, "gone", &g));
  int64_t ts0 = wall_ms() - 5000;
  for (uint32_t i = 0; i < 1500; i++) {
    content c;
    q7_header h;
    gen(1, i, &c);
    q7_msg m = msg_of(t, (int32_t)(i % 3), &c, &h, i % 4 == 0 ? 0 : ts0 + i);
    if (i % 97 == 5) {
      m.value = NULL;
      m.value_len = 0;
    }
    Q7_OK_OR_FAIL(q7_producer_send(pr, &m));
    if (i % 200 == 0)
      q7_producer_poll(pr, 0);
  }
  for (uint32_t i = 0; i < 40; i++)
    send_rec(pr, g, (int32_t)(i % 2), 2, i, 0);
  Q7_OK_OR_FAIL(q7_producer_flush(pr, 30000));
  q7_topic_close(g);
  /* Group offsets, topic configs. */
  q7_consumer *c;
  Q7_OK_OR_FAIL(q7_consumer_new(q, "grp", NULL, &c));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 0, 123));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 2, 456));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 2, 457));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "86400000"));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "message.max.bytes", "500000"));
  /* Every replica identical; a verify that can fail is checked below. */
  for (int32_t p = 0; p < 3; p++) {
    int64_t end = end_of(q, "t", p, 0, NULL);
    cr_assert_eq(end, 500, "partition %d: primary ends at %" PRId64, p, end);
    cr_assert_eq(hw_of(q, "t", p, NULL), 500);
    for (int r = 1; r <= 2; r++)
      assert_caught_up(q, "t", p, r, 500);
  }
  /* Topic delete reaches the mirrors; a topic of the same name made again
   * is the new one there too. */
  Q7_OK_OR_FAIL(q7_topic_delete(q, "gone"));
  make_topic(q, "gone", 1, 2, 1);
  Q7_OK_OR_FAIL(q7_topic_open(q, "gone", &g));
  send_rec(pr, g, 0, 3, 0, 0);
  q7_topic_close(g);
  q7_topic_close(t);
  q7_producer_close(pr);
  Q7_OK_OR_FAIL(q7_close(q));

  int64_t compared = 0;
  for (int r = 1; r <= 2; r++) {
    compared += compare_alone(r, "t", 3, NULL);
    q7 *m = open_alone(M[r]);
    int64_t next = -1;
    Q7_OK_OR_FAIL(q7_committed(m, "grp", "t", 0, &next));
    cr_assert_eq(next, 123, "mirror %d: committed offset of partition 0 is %" PRId64, r, next);
    Q7_OK_OR_FAIL(q7_committed(m, "grp", "t", 2, &next));
    cr_assert_eq(next, 457, "mirror %d: committed offset of partition 2 is %" PRId64, r, next);
    Q7_FAILS_WITH(Q7_ENOENT, q7_committed(m, "grp", "t", 1, &next));
    char buf[64];
    size_t len = sizeof buf;
    Q7_OK_OR_FAIL(q7_topic_get(m, "t", "retention.ms", buf, &len));
    cr_assert_str_eq(buf, "86400000", "mirror %d: retention.ms %s", r, buf);
    len = sizeof buf;
    Q7_OK_OR_FAIL(q7_topic_get(m, "t", "message.max.bytes", buf, &len));
    cr_assert_str_eq(buf, "500000", "mirror %d: message.max.bytes %s", r, buf);
    len = sizeof buf;
    Q7_OK_OR_FAIL(q7_topic_get(m, "t", "min.insync.replicas", buf, &len));
    cr_assert_str_eq(buf, "2");
    /* "gone" is the new one-partition topic with one record, if this mirror
     * holds it (RF 2 over 2 mirrors: one of them). */
    q7_topic *tg;
    Q7_OK_OR_FAIL(q7_topic_open(m, "gone", &tg));
    cr_assert_eq(q7_topic_partition_count(tg), 1, "mirror %d kept the deleted topic", r);
    q7_partition *gp;
    int64_t ls, hw;
    Q7_OK_OR_FAIL(q7_topic_partition(tg, 0, &gp));
    Q7_OK_OR_FAIL(q7_partition_offsets(gp, &ls, &hw));
    cr_assert(hw == 0 || hw == 1, "mirror %d: re-created topic holds %" PRId64 " records", r, hw);
    q7_topic_close(tg);
    Q7_OK_OR_FAIL(q7_close(m));
  }
  cr_assert_eq(compared, 2 * 1500);
  cr_log_info("compared %" PRId64 " records on 2 mirrors opened alone", compared);
}

/* The replicator visits every open environment of the store, idle ones
 * too, taking a reference for the visit: an idle one must not come back
 * counted idle twice (the count decides when environments are closed). */
static int
idle_counted(q7 *q)
{
  int n = 0;
  for (q7__pe *pe = q->parts; pe; pe = pe->next)
    n += pe->refs == 0;
  return n;
}

Test(replica, the_replicator_leaves_the_idle_count_as_it_was, .timeout = 30)
{
  q7 *q = open_primary(1);
  make_topic(q, "t", 4, 2, 1);
  q7_producer *pr = producer(q, "all");
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  for (int32_t p = 0; p < 4; p++)
    send_rec(pr, t, p, 1, (uint32_t)p, 0);
  q7_topic_close(t);
  q7_producer_close(pr); /* the four environments are idle now */
  for (int i = 0; i < 10; i++) {
    sleep_ms(25); /* the replicator runs every 20 ms */
    pthread_mutex_lock(&q->lock);
    int idle = q->idle, want = idle_counted(q);
    pthread_mutex_unlock(&q->lock);
    cr_assert_eq(idle, want, "after %d ms the store counts %d idle environments, %d are",
                 (i + 1) * 25, idle, want);
    cr_assert_geq(want, 4);
  }
  Q7_OK_OR_FAIL(q7_close(q));
}

Test(replica, topic_delete_reaches_mirrors, .timeout = 30)
{
  q7 *q = open_primary(2);
  make_topic(q, "keep", 1, 3, 1);
  make_topic(q, "drop", 2, 3, 1);
  q7_producer *pr = producer(q, "all");
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "drop", &t));
  send_rec(pr, t, 0, 4, 0, 0);
  send_rec(pr, t, 1, 4, 1, 0);
  q7_topic_close(t);
  q7_consumer *c;
  Q7_OK_OR_FAIL(q7_consumer_new(q, "g", NULL, &c));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "drop", 0, 1));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_topic_delete(q, "drop"));
  q7_producer_close(pr);
  Q7_OK_OR_FAIL(q7_close(q));
  for (int r = 1; r <= 2; r++) {
    q7 *m = open_alone(M[r]);
    int n = 0;
    Q7_OK_OR_FAIL(q7_topic_foreach(m, count_topics, &n));
    cr_assert_eq(n, 1, "mirror %d has %d topics after the delete, want 1", r, n);
    Q7_FAILS_WITH(Q7_ENOENT, q7_topic_open(m, "drop", &t));
    int64_t next;
    Q7_FAILS_WITH(Q7_ENOENT, q7_committed(m, "g", "drop", 0, &next));
    Q7_OK_OR_FAIL(q7_close(m));
  }
}

Test(replica, retention_sweeps_reach_mirrors, .timeout = 30)
{
  q7 *q = open_primary(2);
  make_topic(q, "r", 2, 3, 1);
  Q7_OK_OR_FAIL(q7_topic_set(q, "r", "retention.ms", "60000"));
  q7_producer *pr = producer(q, "all");
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "r", &t));
  int64_t now = wall_ms();
  for (uint32_t i = 0; i < 300; i++)
    send_rec(pr, t, (int32_t)(i % 2), 5, i, i < 200 ? now - 3600000 + i : now);
  q7_topic_close(t);
  int64_t removed = -1;
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 0, &removed));
  cr_assert_eq(removed, 200, "the sweep removed %" PRId64 " records on the primary", removed);
  for (int32_t p = 0; p < 2; p++) {
    int64_t ls;
    cr_assert_eq(hw_of(q, "r", p, &ls), 150);
    cr_assert_eq(ls, 100, "partition %d: log start %" PRId64, p, ls);
    for (int r = 1; r <= 2; r++)
      assert_caught_up(q, "r", p, r, 150);
  }
  q7_producer_close(pr);
  Q7_OK_OR_FAIL(q7_close(q));
  /* Opened alone: each mirror starts where the primary starts. */
  int64_t n = 0;
  for (int r = 1; r <= 2; r++)
    n += compare_alone(r, "r", 2, NULL);
  cr_assert_eq(n, 2 * 100);
}

/* ================================================= faults: removed dirs */

typedef struct pthr {
  q7 *q;
  q7_producer *pr;
  q7_topic *t;
  atomic_bool stop;
  atomic_long ok, failed;
  atomic_long ok_after;           /* sends that succeeded after `mark` was set */
  atomic_bool mark;
  int first_err;
  char first_msg[512];
} pthr;

static void *
produce_loop(void *arg)
{
  pthr *x = arg;
  for (uint32_t i = 0; !atomic_load(&x->stop) && i < 2000000; i++) {
    content c;
    q7_header h;
    gen(9, i, &c);
    q7_msg m = msg_of(x->t, (int32_t)(i % q7_topic_partition_count(x->t)), &c, &h, 0);
    int64_t off;
    int rc = q7_producer_send_sync(x->pr, &m, NULL, &off);
    if (rc) {
      if (!atomic_fetch_add(&x->failed, 1)) {
        x->first_err = rc;
        snprintf(x->first_msg, sizeof x->first_msg, "%s", q7_last_error());
      }
    } else {
      atomic_fetch_add(&x->ok, 1);
      if (atomic_load(&x->mark))
        atomic_fetch_add(&x->ok_after, 1);
    }
    sleep_ms(1);
  }
  return NULL;
}

/* Delivery reports of a batched send. */
static int rep_count, rep_last_err;
static int64_t rep_last_off;

static void
on_rep(const q7_delivery *d, void *arg)
{
  (void)arg;
  rep_count++;
  rep_last_err = d->err;
  rep_last_off = d->offset;
}

Test(replica, removed_mirror_drops_out_and_acks_all_refuses_below_min_insync, .timeout = 60)
{
  q7 *q = open_primary(2);
  make_topic(q, "t", 2, 3, 2);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  pthr x = { .q = q, .t = t };
  x.pr = producer(q, "all");
  for (uint32_t i = 0; i < 20; i++)
    send_rec(x.pr, t, (int32_t)(i % 2), 8, i, 0);

  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, produce_loop, &x), 0);
  sleep_ms(100);
  rm_rf(M[1]);
  int64_t took0 = wait_sync(q, "t", 0, 1, 0, 3000), took1 = wait_sync(q, "t", 1, 1, 0, 3000);
  atomic_store(&x.mark, true);
  cr_log_info("mirror 1 removed: out of sync after %" PRId64 " / %" PRId64 " ms", took0, took1);
  /* Producers go on with the primary and mirror 2 (min.insync 2). */
  for (int64_t end = mono_ms() + 3000; atomic_load(&x.ok_after) < 20 && mono_ms() < end;)
    sleep_ms(10);
  atomic_store(&x.stop, true);
  pthread_join(th, NULL);
  cr_assert_neq(took0, -1, "a removed mirror is still in sync after 3 s");
  cr_assert_neq(took1, -1, "a removed mirror is still in sync after 3 s");
  cr_assert_leq(took0, 1500, "a removed mirror took %" PRId64 " ms to drop out", took0);
  cr_assert_eq(atomic_load(&x.failed), 0, "%ld sends failed with one mirror removed; first: %d %s",
               atomic_load(&x.failed), x.first_err, x.first_msg);
  cr_assert_geq(atomic_load(&x.ok_after), 20, "producers stalled: %ld sends after the mirror "
                "dropped out", atomic_load(&x.ok_after));
  for (int32_t p = 0; p < 2; p++)
    assert_caught_up(q, "t", p, 2, end_of(q, "t", p, 0, NULL));

  /* Remove the second: acks=all refuses, and nothing is written. */
  rm_rf(M[2]);
  cr_assert_neq(wait_sync(q, "t", 0, 2, 0, 3000), -1, "mirror 2 still in sync after 3 s");
  cr_assert_neq(wait_sync(q, "t", 1, 2, 0, 3000), -1, "mirror 2 still in sync after 3 s");
  int64_t before[2] = { end_of(q, "t", 0, 0, NULL), end_of(q, "t", 1, 0, NULL) };
  cr_assert_eq(hw_of(q, "t", 0, NULL), before[0]);
  content c;
  q7_header h;
  gen(8, 1000, &c);
  q7_msg m = msg_of(t, 0, &c, &h, 0);
  int64_t off = 77;
  Q7_FAILS_WITH(Q7_EREPLICA, q7_producer_send_sync(x.pr, &m, NULL, &off));
  cr_assert(strstr(q7_last_error(), "min.insync.replicas"), "%s", q7_last_error());
  cr_assert_eq(end_of(q, "t", 0, 0, NULL), before[0], "the primary grew on a refused send");
  cr_assert_eq(hw_of(q, "t", 0, NULL), before[0], "the high watermark moved on a refused send");

  /* Batched send: the delivery report carries Q7_EREPLICA. */
  q7_conf *pc = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(pc, "acks", "all"));
  q7_conf_set_delivery_cb(pc, on_rep, NULL);
  q7_producer *bp;
  Q7_OK_OR_FAIL(q7_producer_new(q, pc, &bp));
  q7_conf_destroy(pc);
  rep_count = 0;
  m.partition = 1;
  Q7_OK_OR_FAIL(q7_producer_send(bp, &m));
  Q7_OK_OR_FAIL(q7_producer_flush(bp, 10000));
  q7_producer_close(bp);
  cr_assert_eq(rep_count, 1, "%d delivery reports", rep_count);
  cr_assert_eq(rep_last_err, Q7_EREPLICA, "batched acks=all with no mirror in sync: report %d",
               rep_last_err);
  cr_assert_eq(rep_last_off, -1);
  cr_assert_eq(end_of(q, "t", 1, 0, NULL), before[1], "the primary grew on a refused batch");

  /* acks=1 does not need the mirrors. */
  q7_producer *one = producer(q, "1");
  cr_assert_eq(send_rec(one, t, 0, 8, 1001, 0), before[0]);
  q7_producer_close(one);

  /* Resync brings both back, directories re-created. */
  for (int r = 1; r <= 2; r++) {
    Q7_OK_OR_FAIL(q7_replica_resync(q, r));
    struct stat st;
    cr_assert_eq(stat(M[r], &st), 0, "mirror %d directory not re-created", r);
  }
  for (int32_t p = 0; p < 2; p++)
    for (int r = 1; r <= 2; r++)
      assert_caught_up(q, "t", p, r, end_of(q, "t", p, 0, NULL));
  cr_assert_eq(send_rec(x.pr, t, 1, 8, 1002, 0), before[1]);
  for (int r = 1; r <= 2; r++)
    assert_caught_up(q, "t", 1, r, before[1] + 1);
  q7_producer_close(x.pr);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  for (int r = 1; r <= 2; r++)
    compare_alone(r, "t", 2, NULL);
}

Test(replica, mirror_replaced_by_a_file_or_another_directory_drops_out, .timeout = 60)
{
  q7 *q = open_primary(2);
  make_topic(q, "t", 1, 3, 2);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  q7_producer *pr = producer(q, "all");
  for (uint32_t i = 0; i < 10; i++)
    send_rec(pr, t, 0, 10, i, 0);

  /* A regular file where mirror 1 was. */
  rm_rf(M[1]);
  FILE *f = fopen(M[1], "w");
  cr_assert_not_null(f);
  fputs("not a store\n", f);
  fclose(f);
  int64_t took = wait_sync(q, "t", 0, 1, 0, 3000);
  cr_assert_neq(took, -1, "mirror replaced by a file still in sync after 3 s");
  cr_assert_leq(took, 1500, "took %" PRId64 " ms to drop out", took);
  for (uint32_t i = 10; i < 20; i++)
    cr_assert_eq(send_rec(pr, t, 0, 10, i, 0), (int64_t)i);
  /* Resync does not overwrite the file: an error, still out of sync. */
  int rc = q7_replica_resync(q, 1);
  cr_assert_neq(rc, Q7_OK, "resync over a regular file succeeded");
  cr_assert(q7_last_error()[0]);
  struct stat st;
  cr_assert_eq(stat(M[1], &st), 0);
  cr_assert(S_ISREG(st.st_mode), "resync replaced the user's file");
  int s;
  end_of(q, "t", 0, 1, &s);
  cr_assert_eq(s, 0, "mirror 1 in sync while a file stands where it was");
  cr_assert_eq(send_rec(pr, t, 0, 10, 20, 0), 20);
  unlink(M[1]);
  Q7_OK_OR_FAIL(q7_replica_resync(q, 1));
  assert_caught_up(q, "t", 0, 1, 21);

  /* Another (empty) directory where mirror 2 was. */
  char old[4400];
  snprintf(old, sizeof old, "%s.old", M[2]);
  cr_assert_eq(rename(M[2], old), 0);
  cr_assert_eq(mkdir(M[2], 0700), 0);
  took = wait_sync(q, "t", 0, 2, 0, 3000);
  cr_assert_neq(took, -1, "mirror replaced by another directory still in sync after 3 s");
  cr_assert_eq(send_rec(pr, t, 0, 10, 21, 0), 21);
  Q7_OK_OR_FAIL(q7_replica_resync(q, 2));
  assert_caught_up(q, "t", 0, 2, 22);
  assert_caught_up(q, "t", 0, 1, 22);
  q7_producer_close(pr);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_eq(compare_alone(1, "t", 1, NULL), 22);
  cr_assert_eq(compare_alone(2, "t", 1, NULL), 22);
}

Test(replica, reopening_catches_up_a_mirror_that_was_away, .timeout = 60)
{
  q7 *q = open_primary(1);
  make_topic(q, "t", 2, 2, 1);
  q7_producer *pr = producer(q, "all");
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  for (uint32_t i = 0; i < 100; i++)
    send_rec(pr, t, (int32_t)(i % 2), 11, i, 0);
  q7_topic_close(t);
  q7_producer_close(pr);
  Q7_OK_OR_FAIL(q7_close(q));

  /* Away: the store opened without it; records, commits, a config. */
  q = open_dirs("");
  pr = producer(q, "all");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  for (uint32_t i = 100; i < 240; i++)
    send_rec(pr, t, (int32_t)(i % 2), 11, i, 0);
  q7_topic_close(t);
  q7_producer_close(pr);
  q7_consumer *c;
  Q7_OK_OR_FAIL(q7_consumer_new(q, "g", NULL, &c));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 1, 99));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.bytes", "99999999"));
  Q7_OK_OR_FAIL(q7_close(q));

  /* Back: q7_open catches it up. */
  q = open_primary(1);
  for (int32_t p = 0; p < 2; p++)
    assert_caught_up(q, "t", p, 1, 120);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_eq(compare_alone(1, "t", 2, NULL), 240);
  q7 *m = open_alone(M[1]);
  int64_t next;
  Q7_OK_OR_FAIL(q7_committed(m, "g", "t", 1, &next));
  cr_assert_eq(next, 99, "mirror: committed %" PRId64, next);
  char buf[32];
  size_t len = sizeof buf;
  Q7_OK_OR_FAIL(q7_topic_get(m, "t", "retention.bytes", buf, &len));
  cr_assert_str_eq(buf, "99999999");
  Q7_OK_OR_FAIL(q7_close(m));

  /* Its directory gone while closed: re-created and filled at open. */
  rm_rf(M[1]);
  q = open_primary(1);
  for (int32_t p = 0; p < 2; p++)
    assert_caught_up(q, "t", p, 1, 120);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_eq(compare_alone(1, "t", 2, NULL), 240);
}

/* ========================================================= divergence */

/* A different record written into the mirror directly (a second process
 * opens the mirror alone) while the primary is open. */
typedef struct div_arg {
  int go_r;
} div_arg;

static int
child_write_mirror(void *arg)
{
  div_arg *a = arg;
  char c;
  struct pollfd pfd = { a->go_r, POLLIN, 0 };
  if (poll(&pfd, 1, 20000) <= 0 || read(a->go_r, &c, 1) != 1)
    return 2;
  q7 *m;
  q7_topic *t;
  q7_producer *pr;
  if (q7_open(&m, M[1], NULL) || q7_topic_open(m, "v", &t) || q7_producer_new(m, NULL, &pr))
    return 3;
  content ct;
  q7_header h;
  gen(66, 0, &ct);
  q7_msg msg = msg_of(t, 0, &ct, &h, 1700000000000);
  int64_t off;
  if (q7_producer_send_sync(pr, &msg, NULL, &off) || off != 10)
    return 4;
  q7_producer_close(pr);
  q7_topic_close(t);
  return q7_close(m) ? 5 : 0;
}

Test(replica, divergent_mirror_is_reported_by_verify_and_repaired_by_resync, .timeout = 60)
{
  int go[2];
  cr_assert_eq(pipe(go), 0);
  div_arg a = { go[0] };
  int k = spawn(child_write_mirror, &a); /* before this process opens a store */
  close(go[0]);
  q7 *q = open_primary(1);
  make_topic(q, "v", 1, 2, 1);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "v", &t));
  q7_producer *pr = producer(q, "all");
  for (uint32_t i = 0; i < 10; i++)
    send_rec(pr, t, 0, 12, i, 1700000000000 + i);
  assert_caught_up(q, "v", 0, 1, 10);
  cr_assert_eq(write(go[1], "g", 1), 1);
  close(go[1]);
  int st = reap(k, 20000);
  cr_assert_eq(st, 0, "the child writing into the mirror exited %d", st);
  /* The mirror holds 11 records, the 11th not the primary's; nothing
   * differs below the high watermark yet. */
  Q7_OK_OR_FAIL(q7_replica_verify(q, "v", 0, 1));
  cr_assert_eq(hw_of(q, "v", 0, NULL), 10);
  /* The primary's record 10: the mirror cannot take it (it holds other
   * bytes there) and drops out; min.insync 1 delivers. */
  cr_assert_eq(send_rec(pr, t, 0, 12, 10, 1700000000999), 10);
  int s;
  end_of(q, "v", 0, 1, &s);
  cr_assert_eq(s, 0, "a mirror holding other bytes at offset 10 is still in sync");
  Q7_FAILS_WITH(Q7_ECORRUPT, q7_replica_verify(q, "v", 0, 1));
  cr_assert(strstr(q7_last_error(), "offset 10"), "verify does not name offset 10: %s",
            q7_last_error());
  Q7_OK_OR_FAIL(q7_replica_resync(q, 1));
  assert_caught_up(q, "v", 0, 1, 11);
  cr_assert_eq(send_rec(pr, t, 0, 12, 11, 1700000001000), 11);
  assert_caught_up(q, "v", 0, 1, 12);
  q7_producer_close(pr);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_eq(compare_alone(1, "v", 1, NULL), 12);
}

/* The primary and the mirror, each opened alone while the other is not in
 * use, take different records of the same size at offset 10, then the
 * same record at 11: the mirror differs below its last batch. */
Test(replica, divergence_below_the_last_batch_is_found_and_repaired, .timeout = 60)
{
  q7 *q = open_primary(1);
  make_topic(q, "v", 1, 2, 1);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "v", &t));
  q7_producer *pr = producer(q, "all");
  for (uint32_t i = 0; i < 10; i++)
    send_rec(pr, t, 0, 13, i, 1700000000000 + i);
  q7_producer_close(pr);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));

  unsigned char x[300], same[100];
  memset(same, 's', sizeof same);
  for (int side = 0; side < 2; side++) {
    q7 *s = open_alone(side ? M[1] : P);
    Q7_OK_OR_FAIL(q7_topic_open(s, "v", &t));
    pr = producer(s, "all");
    memset(x, side ? 'M' : 'P', sizeof x);
    q7_msg m = { .topic = t, .partition = 0, .value = x, .value_len = sizeof x,
                 .timestamp_ms = 1700000000500 };
    int64_t off;
    Q7_OK_OR_FAIL(q7_producer_send_sync(pr, &m, NULL, &off));
    cr_assert_eq(off, 10);
    m.value = same;
    m.value_len = sizeof same;
    m.timestamp_ms = 1700000000600;
    Q7_OK_OR_FAIL(q7_producer_send_sync(pr, &m, NULL, &off));
    cr_assert_eq(off, 11);
    q7_producer_close(pr);
    q7_topic_close(t);
    Q7_OK_OR_FAIL(q7_close(s));
  }

  q = open_primary(1);
  /* q7_open may have repaired it already; if not, verify names offset 10. */
  int rc = q7_replica_verify(q, "v", 0, 1);
  cr_log_info("verify after reopening: %d (%s)", rc, rc ? q7_last_error() : "identical");
  if (rc) {
    cr_assert_eq(rc, Q7_ECORRUPT, "verify -> %d: %s", rc, q7_last_error());
    cr_assert(strstr(q7_last_error(), "offset 10"), "verify does not name offset 10: %s",
              q7_last_error());
  }
  Q7_OK_OR_FAIL(q7_replica_resync(q, 1));
  rc = q7_replica_verify(q, "v", 0, 1);
  cr_assert_eq(rc, Q7_OK, "after q7_replica_resync the mirror still differs: %d %s", rc,
               rc ? q7_last_error() : "");
  assert_caught_up(q, "v", 0, 1, 12);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_eq(compare_alone(1, "v", 1, NULL), 12);
}

/* ============================================================ acks=1 */

/* A child that holds the LMDB write lock of mirror 1's partition 0 of
 * topic "t" from "go" until "release": the mirror cannot take anything. */
typedef struct blk_arg {
  int go_r, ready_w;
} blk_arg;

static int
child_blocker(void *arg)
{
  blk_arg *a = arg;
  char c;
  struct pollfd pfd = { a->go_r, POLLIN, 0 };
  if (poll(&pfd, 1, 30000) <= 0 || read(a->go_r, &c, 1) != 1)
    return 2;
  char path[4400];
  snprintf(path, sizeof path, "%s/topics/t/0", M[1]);
  MDB_env *env;
  MDB_txn *txn;
  if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 4) || mdb_env_set_maxreaders(env, 1022) ||
      mdb_env_open(env, path, MDB_NOTLS, 0600))
    return 3;
  if (mdb_txn_begin(env, NULL, 0, &txn))
    return 4;
  if (write(a->ready_w, "L", 1) != 1)
    return 5;
  /* Hold it until the parent says so (or closes the pipe). */
  pfd.events = POLLIN;
  if (poll(&pfd, 1, 30000) > 0)
    (void)!read(a->go_r, &c, 1);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return 0;
}

typedef struct blocked {
  int k, go_w, ready_r;
  q7 *q;
  q7_topic *t;
  q7_producer *all, *one;
} blocked;

/* Store with mirror 1, topic "t" (1 partition, RF 2, min.insync 1), 10
 * records on both replicas; then mirror 1's partition locked by a child. */
static void
blocked_setup(blocked *b)
{
  int go[2], ready[2];
  cr_assert_eq(pipe(go), 0);
  cr_assert_eq(pipe(ready), 0);
  blk_arg a = { go[0], ready[1] };
  b->k = spawn(child_blocker, &a);
  close(go[0]);
  close(ready[1]);
  b->go_w = go[1];
  b->ready_r = ready[0];
  b->q = open_primary(1);
  make_topic(b->q, "t", 1, 2, 1);
  Q7_OK_OR_FAIL(q7_topic_open(b->q, "t", &b->t));
  b->all = producer(b->q, "all");
  b->one = producer(b->q, "1");
  for (uint32_t i = 0; i < 10; i++)
    send_rec(b->all, b->t, 0, 14, i, 0);
  assert_caught_up(b->q, "t", 0, 1, 10);
  cr_assert_eq(write(b->go_w, "g", 1), 1);
  char c;
  cr_assert(read_full(b->ready_r, &c, 1, 20000), "the blocker did not take the lock");
}

static void
blocked_release(blocked *b)
{
  cr_assert_eq(write(b->go_w, "r", 1), 1);
  int st = reap(b->k, 20000);
  cr_assert_eq(st, 0, "the blocker exited %d", st);
  close(b->go_w);
  close(b->ready_r);
}

/* Poll a consumer; fail if any record is at or above @limit; returns the
 * next offset after the records received (from @next). */
static int64_t
consume_below(q7_consumer *c, int64_t next, int64_t limit, int timeout_ms)
{
  q7_record r[64];
  int n = q7_consumer_poll(c, r, 64, timeout_ms);
  cr_assert_geq(n, 0, "poll: %d %s", n, q7_last_error());
  for (int i = 0; i < n; i++) {
    cr_assert_eq(r[i].offset, next, "consumer got offset %" PRId64 ", expected %" PRId64,
                 r[i].offset, next);
    cr_assert_lt(r[i].offset, limit, "consumer read offset %" PRId64 ", which mirror 1 (in sync) "
                 "does not hold (it ends at %" PRId64 ")", r[i].offset, limit);
    next++;
  }
  return next;
}

Test(replica, acks_1_delivers_before_mirrors_hold_records_and_they_catch_up, .timeout = 60)
{
  blocked b;
  blocked_setup(&b);
  q7_consumer *c;
  Q7_OK_OR_FAIL(q7_consumer_new(b.q, NULL, NULL, &c));
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));

  /* The mirror is locked: acks=1 delivers anyway. */
  int64_t t0 = mono_ms();
  for (uint32_t i = 10; i < 30; i++)
    cr_assert_eq(send_rec(b.one, b.t, 0, 14, i, 0), (int64_t)i);
  int64_t took = mono_ms() - t0;
  sleep_ms(150); /* the replication thread had its chance */
  int s;
  int64_t mend = end_of(b.q, "t", 0, 1, &s);
  cr_assert_eq(mend, 10, "mirror 1 holds %" PRId64 " records while its write lock is held",
               mend);
  cr_log_info("acks=1: 20 records delivered in %" PRId64 " ms while mirror 1 held 10 (in sync %d)",
              took, s);
  int64_t hw = hw_of(b.q, "t", 0, NULL);
  if (s)
    cr_assert_leq(hw, mend, "high watermark %" PRId64 " above in-sync mirror end %" PRId64, hw,
                  mend);
  /* The consumer reads what the high watermark allows, nothing more. */
  int64_t next = 0;
  for (int64_t end = mono_ms() + 2000; next < hw && mono_ms() < end;)
    next = consume_below(c, next, s ? mend : 30, 100);
  cr_assert_eq(next, hw, "consumer read up to %" PRId64 ", high watermark %" PRId64, next, hw);
  next = consume_below(c, next, s ? mend : 30, 200);

  /* Released: the mirror catches up, in bounded time. */
  blocked_release(&b);
  int64_t t1 = mono_ms();
  for (;;) {
    int64_t h = hw_of(b.q, "t", 0, NULL);
    mend = end_of(b.q, "t", 0, 1, &s);
    if (s)
      cr_assert_leq(h, mend, "high watermark %" PRId64 " above in-sync mirror end %" PRId64, h,
                    mend);
    if (mend == 30 && s)
      break;
    cr_assert_lt(mono_ms() - t1, 5000, "mirror 1 at %" PRId64 " (in sync %d) 5 s after release",
                 mend, s);
    sleep_ms(5);
  }
  cr_log_info("acks=1: mirror caught up %" PRId64 " ms after the lock was released",
              mono_ms() - t1);
  assert_caught_up(b.q, "t", 0, 1, 30);
  cr_assert_eq(hw_of(b.q, "t", 0, NULL), 30);
  for (int64_t end = mono_ms() + 3000; next < 30 && mono_ms() < end;)
    next = consume_below(c, next, 30, 100);
  cr_assert_eq(next, 30);

  /* Producing continuously with acks=1: at every check the high watermark
   * (read first) is at most the in-sync mirror's end (read after), and the
   * consumer never gets past the mirror. */
  pthr x = { .q = b.q, .t = b.t, .pr = b.one };
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, produce_loop, &x), 0);
  int checks = 0;
  for (int64_t end = mono_ms() + 600; mono_ms() < end; checks++) {
    int64_t h = hw_of(b.q, "t", 0, NULL);
    q7_record r[64];
    int n = q7_consumer_poll(c, r, 64, 0);
    mend = end_of(b.q, "t", 0, 1, &s);
    cr_assert_geq(n, 0);
    if (s) {
      cr_assert_leq(h, mend, "check %d: high watermark %" PRId64 " above in-sync mirror end %"
                    PRId64, checks, h, mend);
      for (int i = 0; i < n; i++)
        cr_assert_lt(r[i].offset, mend, "consumer read offset %" PRId64 " above the mirror's end %"
                     PRId64, r[i].offset, mend);
    }
    for (int i = 0; i < n; i++, next++)
      cr_assert_eq(r[i].offset, next);
    sleep_ms(2);
  }
  atomic_store(&x.stop, true);
  pthread_join(th, NULL);
  cr_assert_eq(atomic_load(&x.failed), 0, "acks=1 sends failed: %d %s", x.first_err, x.first_msg);
  int64_t pend = end_of(b.q, "t", 0, 0, NULL);
  int64_t t2 = mono_ms();
  while (end_of(b.q, "t", 0, 1, &s) < pend || !s) {
    cr_assert_lt(mono_ms() - t2, 5000, "mirror not caught up 5 s after producing stopped");
    sleep_ms(5);
  }
  assert_caught_up(b.q, "t", 0, 1, hw_of(b.q, "t", 0, NULL));
  cr_log_info("acks=1: %d checks while producing %ld records", checks, atomic_load(&x.ok));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  q7_producer_close(b.one);
  q7_producer_close(b.all);
  q7_topic_close(b.t);
  Q7_OK_OR_FAIL(q7_close(b.q));
  cr_assert_gt(compare_alone(1, "t", 1, NULL), 30);
}

/* No obstacle at all: acks=1 records reach the mirror and the consumer. */
Test(replica, acks_1_mirrors_follow_and_consumers_get_the_records, .timeout = 30)
{
  q7 *q = open_primary(1);
  make_topic(q, "t", 1, 2, 1);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  q7_producer *one = producer(q, "1");
  for (uint32_t i = 0; i < 50; i++)
    cr_assert_eq(send_rec(one, t, 0, 15, i, 0), (int64_t)i);
  q7_consumer *c;
  Q7_OK_OR_FAIL(q7_consumer_new(q, NULL, NULL, &c));
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  int64_t next = 0, mend = -1, t0 = mono_ms();
  int s = -1;
  while (mono_ms() - t0 < 5000) {
    mend = end_of(q, "t", 0, 1, &s);
    next = consume_below(c, next, 50, 50);
    if (mend == 50 && next == 50)
      break;
  }
  cr_assert_eq(mend, 50, "5 s after 50 acks=1 records mirror 1 (in sync %d) holds %" PRId64
               "; high watermark %" PRId64, s, mend, hw_of(q, "t", 0, NULL));
  cr_assert_eq(next, 50, "5 s after 50 acks=1 records the consumer got %" PRId64, next);
  assert_caught_up(q, "t", 0, 1, 50);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  q7_producer_close(one);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  cr_assert_eq(compare_alone(1, "t", 1, NULL), 50);
}

/* Replica 0's end offset is the primary's log end: with a lagging mirror
 * under acks=1 it is above the mirror's (that is the lag to report). */
Test(replica, acks_1_status_of_replica_0_is_the_primary_log_end, .timeout = 60)
{
  blocked b;
  blocked_setup(&b);
  for (uint32_t i = 10; i < 30; i++)
    cr_assert_eq(send_rec(b.one, b.t, 0, 14, i, 0), (int64_t)i);
  sleep_ms(100);
  int64_t mend = end_of(b.q, "t", 0, 1, NULL);
  int64_t pend = end_of(b.q, "t", 0, 0, NULL);
  int64_t hw = hw_of(b.q, "t", 0, NULL);
  blocked_release(&b);
  cr_log_info("primary status end %" PRId64 ", mirror end %" PRId64 ", high watermark %" PRId64,
              pend, mend, hw);
  cr_assert_eq(mend, 10);
  cr_assert_eq(pend, 30, "q7_replica_status(replica 0) says the primary ends at %" PRId64
               " although it holds 30 records (the high watermark is %" PRId64 "): the lag of "
               "mirror 1 cannot be seen", pend, hw);
  q7_producer_close(b.one);
  q7_producer_close(b.all);
  q7_topic_close(b.t);
  Q7_OK_OR_FAIL(q7_close(b.q));
}

/* ================================== resync while producers are writing */

/* In a child (a crash or a hang there fails the test, not the runner):
 * q7_replica_resync of in-sync mirrors while a producer writes acks=all. */
static int
child_resync_while_producing(void *arg)
{
  (void)arg;
  q7_conf *c = q7_conf_new();
  q7 *q;
  if (!c || q7_conf_set(c, "replica.dirs", mirrors(2)) || q7_conf_set(c, "sync", "false") ||
      q7_conf_set(c, "retention.check.interval.ms", "0"))
    WCHECK(0, "conf: %s", q7_last_error());
  int rc = q7_open(&q, P, c);
  WCHECK(rc == Q7_OK, "open: %d %s", rc, q7_last_error());
  q7_conf_destroy(c);
  c = q7_conf_new();
  q7_conf_set(c, "replication.factor", "3");
  q7_conf_set(c, "min.insync.replicas", "1");
  rc = q7_topic_create(q, "t", 2, c);
  WCHECK(rc == Q7_OK, "create: %d %s", rc, q7_last_error());
  q7_conf_destroy(c);
  static pthr x;
  x.q = q;
  c = q7_conf_new();
  q7_conf_set(c, "acks", "all");
  WCHECK(!q7_topic_open(q, "t", &x.t) && !q7_producer_new(q, c, &x.pr), "%s", q7_last_error());
  q7_conf_destroy(c);
  pthread_t th;
  WCHECK(pthread_create(&th, NULL, produce_loop, &x) == 0, "pthread_create");
  int rcs[12];
  for (int i = 0; i < 12; i++) {
    sleep_ms(25);
    sh->n[0] = i + 1; /* resyncs started: tells where a crash or hang was */
    rcs[i] = q7_replica_resync(q, 1 + i % 2);
  }
  sleep_ms(40);
  atomic_store(&x.stop, true);
  pthread_join(th, NULL);
  sh->n[1] = atomic_load(&x.ok);
  for (int i = 0; i < 12; i++)
    WCHECK(rcs[i] == Q7_OK, "resync %d of an in-sync mirror -> %d", i, rcs[i]);
  WCHECK(atomic_load(&x.failed) == 0, "%ld sends failed during resync; first %d %s",
         atomic_load(&x.failed), x.first_err, x.first_msg);
  WCHECK(atomic_load(&x.ok) > 10, "only %ld sends in 300 ms", atomic_load(&x.ok));
  for (int r = 1; r <= 2; r++) {
    rc = q7_replica_resync(q, r);
    WCHECK(rc == Q7_OK, "final resync %d: %d %s", r, rc, q7_last_error());
  }
  for (int32_t p = 0; p < 2; p++)
    for (int r = 1; r <= 2; r++) {
      int64_t pend, mend;
      int s;
      WCHECK(!q7_replica_status(q, "t", p, 0, &pend, NULL) &&
                 !q7_replica_status(q, "t", p, r, &mend, &s), "%s", q7_last_error());
      WCHECK(s == 1 && mend == pend, "partition %d mirror %d: in sync %d, end %" PRId64 " of %"
             PRId64, p, r, s, mend, pend);
      rc = q7_replica_verify(q, "t", p, r);
      WCHECK(rc == Q7_OK, "verify %d/%d: %d %s", p, r, rc, q7_last_error());
    }
  q7_producer_close(x.pr);
  q7_topic_close(x.t);
  WCHECK(q7_close(q) == Q7_OK, "close: %s", q7_last_error());
  return 0;
}

Test(replica, resync_of_an_in_sync_mirror_while_producing, .timeout = 30)
{
  shared_new();
  int st = reap(spawn(child_resync_while_producing, NULL), 12000);
  cr_assert_neq(st, -1, "hung: killed after 12 s (during resync %" PRId64 " of 12, %" PRId64
                " sends done)", sh->n[0], sh->n[1]);
  cr_assert_lt(st, 128, "crashed with signal %d (%s) during q7_replica_resync %" PRId64 " of 12 "
               "while a producer was writing", st - 128, strsignal(st - 128), sh->n[0]);
  cr_assert_eq(st, 0, "line %d: %s", sh->line, sh->msg);
  for (int r = 1; r <= 2; r++)
    compare_alone(r, "t", 2, NULL);
}

/* ========================================================= disk full */

enum { DF_LEN = 1000 };

static void
df_value(unsigned char *v, int64_t i)
{
  uint64_t x = mix64((uint64_t)i);
  for (size_t k = 0; k < DF_LEN; k += 8) {
    x = mix64(x);
    memcpy(v + k, &x, DF_LEN - k < 8 ? DF_LEN - k : 8);
  }
  memcpy(v, &i, sizeof i);
}

static int
df_send(q7_producer *pr, q7_topic *t, int64_t i, int64_t *off)
{
  unsigned char v[DF_LEN];
  df_value(v, i);
  q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = DF_LEN };
  return q7_producer_send_sync(pr, &m, NULL, off);
}

/* In a child: mirror 1 on the tmpfs, next to a ballast file. */
static int
child_diskfull(void *arg)
{
  (void)arg;
  q7_conf *c = q7_conf_new();
  if (!c || q7_conf_set(c, "replica.dirs", M[1]) || q7_conf_set(c, "sync", "false") ||
      q7_conf_set(c, "retention.check.interval.ms", "0"))
    WCHECK(0, "conf: %s", q7_last_error());
  q7 *q;
  int rc = q7_open(&q, P, c);
  WCHECK(rc == Q7_OK, "open: %d %s", rc, q7_last_error());
  q7_conf_destroy(c);
  c = q7_conf_new();
  q7_conf_set(c, "replication.factor", "2");
  q7_conf_set(c, "min.insync.replicas", "1");
  rc = q7_topic_create(q, "d", 1, c);
  WCHECK(rc == Q7_OK, "create: %d %s", rc, q7_last_error());
  q7_conf_destroy(c);
  c = q7_conf_new();
  q7_conf_set(c, "acks", "all");
  q7_topic *t;
  q7_producer *pr;
  WCHECK(!q7_topic_open(q, "d", &t) && !q7_producer_new(q, c, &pr), "%s", q7_last_error());
  q7_conf_destroy(c);
  int64_t i = 0, out_at = -1, off, end;
  int s = 1;
  for (; i < 20000; i++) {
    rc = df_send(pr, t, i, &off);
    WCHECK(rc == Q7_OK, "record %" PRId64 " (mirror %s): %d %s", i, out_at < 0 ? "in sync" : "out",
           rc, q7_last_error());
    WCHECK(off == i, "record %" PRId64 " at offset %" PRId64, i, off);
    if (out_at < 0) {
      rc = q7_replica_status(q, "d", 0, 1, &end, &s);
      WCHECK(rc == Q7_OK, "status: %d %s", rc, q7_last_error());
      if (!s)
        out_at = i;
    } else if (i >= out_at + 100) {
      break;
    }
  }
  WCHECK(out_at >= 0, "the mirror on an 8 MiB tmpfs never dropped out (%" PRId64 " records)", i);
  sh->n[0] = out_at;
  int64_t total = i + 1, mend;
  rc = q7_replica_status(q, "d", 0, 1, &mend, &s);
  WCHECK(rc == Q7_OK && !s && mend < total, "mirror status %d, in sync %d, end %" PRId64, rc, s,
         mend);
  sh->n[1] = mend;
  q7_partition *part;
  int64_t ls, hw;
  WCHECK(!q7_topic_partition(t, 0, &part) && !q7_partition_offsets(part, &ls, &hw), "offsets");
  WCHECK(hw == total, "high watermark %" PRId64 ", %" PRId64 " delivered", hw, total);
  /* Still full: resync cannot finish. */
  rc = q7_replica_resync(q, 1);
  sh->n[2] = rc;
  snprintf(sh->note, sizeof sh->note, "%s", q7_last_error());
  WCHECK(rc != Q7_OK, "resync succeeded on a full disk");
  rc = q7_replica_status(q, "d", 0, 1, &mend, &s);
  WCHECK(rc == Q7_OK && !s, "in sync after a failed resync (%d, %d)", rc, s);
  /* Free the space: resync brings it back. */
  char ballast[4400];
  snprintf(ballast, sizeof ballast, "%s/ballast", mnt);
  WCHECK(unlink(ballast) == 0, "unlink %.900s: %s", ballast, strerror(errno));
  rc = q7_replica_resync(q, 1);
  WCHECK(rc == Q7_OK, "resync after freeing space: %d %s", rc, q7_last_error());
  rc = q7_replica_status(q, "d", 0, 1, &mend, &s);
  WCHECK(rc == Q7_OK && s && mend == total, "after resync: in sync %d, end %" PRId64 " of %"
         PRId64, s, mend, total);
  rc = q7_replica_verify(q, "d", 0, 1);
  WCHECK(rc == Q7_OK, "verify after resync: %d %s", rc, q7_last_error());
  for (int64_t j = total; j < total + 10; j++) {
    rc = df_send(pr, t, j, &off);
    WCHECK(rc == Q7_OK && off == j, "after resync: record %" PRId64 ": %d %s", j, rc,
           q7_last_error());
  }
  rc = q7_replica_status(q, "d", 0, 1, &mend, &s);
  WCHECK(rc == Q7_OK && s && mend == total + 10, "in sync %d, end %" PRId64, s, mend);
  WCHECK(q7_replica_verify(q, "d", 0, 1) == Q7_OK, "verify: %s", q7_last_error());
  q7_producer_close(pr);
  q7_topic_close(t);
  WCHECK(q7_close(q) == Q7_OK, "close: %s", q7_last_error());
  /* The mirror alone holds every record. */
  q7 *m;
  rc = q7_open(&m, M[1], NULL);
  WCHECK(rc == Q7_OK, "open the mirror alone: %d %s", rc, q7_last_error());
  WCHECK(!q7_topic_open(m, "d", &t) && !q7_topic_partition(t, 0, &part) &&
             !q7_partition_offsets(part, &ls, &hw), "%s", q7_last_error());
  WCHECK(ls == 0 && hw == total + 10, "mirror alone: [%" PRId64 ", %" PRId64 ")", ls, hw);
  unsigned char v[DF_LEN];
  for (int64_t o = 0; o < hw;) {
    q7_record r[64];
    int n = q7_partition_read(part, o, r, 64);
    WCHECK(n > 0, "mirror read at %" PRId64 ": %d %s", o, n, q7_last_error());
    for (int k = 0; k < n; k++, o++) {
      df_value(v, o);
      WCHECK(r[k].offset == o && r[k].value_len == DF_LEN && !memcmp(r[k].value, v, DF_LEN),
             "mirror alone: offset %" PRId64 " differs", o);
    }
  }
  sh->n[3] = hw;
  q7_topic_close(t);
  q7_close(m);
  sh->msg[0] = 0;
  return 0;
}

Test(replica, disk_full_mirror_drops_out_and_comes_back_after_resync, .timeout = 60)
{
  tmpfs_mount("test_replica", dir, "disk full");
  shared_new();
  snprintf(M[1], sizeof M[1], "%s/mirror1", mnt);
  /* 5 MiB of ballast: about 3 MiB left for the mirror. */
  char ballast[4400];
  snprintf(ballast, sizeof ballast, "%s/ballast", mnt);
  int fd = open(ballast, O_CREAT | O_WRONLY, 0600);
  bool ok = fd >= 0;
  static char chunk[1 << 16];
  memset(chunk, 'b', sizeof chunk);
  for (int i = 0; ok && i < 80; i++)
    ok = write_full(fd, chunk, sizeof chunk);
  if (fd >= 0)
    close(fd);
  int st = ok ? reap(spawn(child_diskfull, NULL), 50000) : -2;
  bool unmounted = tmpfs_unmount("test_replica"); /* before any assertion */
  cr_assert(ok, "could not write the ballast file");
  cr_assert_neq(st, -1, "the disk-full child took more than 50 s");
  cr_assert_lt(st, 128, "the child crashed with signal %d (%s); last note: %s", st - 128,
               strsignal(st - 128), sh->msg);
  cr_assert_eq(st, 0, "line %d: %s", sh->line, sh->msg);
  cr_assert(unmounted, "could not unmount %s", mnt);
  cr_log_info("disk full: mirror dropped out at record %" PRId64 " holding %" PRId64
              "; resync while full -> %" PRId64 " (%s); %" PRId64 " records on the mirror at the "
              "end", sh->n[0], sh->n[1], sh->n[2], sh->note, sh->n[3]);
}

/* ============================== a kill while q7_open repairs a mirror */

/* The state a SIGKILL between the mirror's commit and the primary's leaves
 * (acks=all writes the mirrors first): mirror 1 one batch ahead.  q7_open
 * repairs it; a kill during that repair must not cost the mirror the
 * records it already held, all of them acknowledged. */
typedef struct open_arg {
  int wfd;
} open_arg;

static int
child_open_and_wait(void *arg)
{
  open_arg *a = arg;
  q7_conf *c = q7_conf_new();
  q7 *q;
  if (!c || q7_conf_set(c, "replica.dirs", M[1]) || q7_conf_set(c, "sync", "false") ||
      q7_conf_set(c, "retention.check.interval.ms", "0") || q7_open(&q, P, c))
    return 2;
  if (write(a->wfd, "R", 1) != 1)
    return 3;
  for (;;)
    pause();
}

static void
restore(const char *from, const char *to)
{
  char cmd[9000];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", to, from, to);
  cr_assert_eq(system(cmd), 0, "%s", cmd);
}

Test(replica, kill_while_q7_open_repairs_a_mirror_keeps_its_acknowledged_records, .timeout = 60)
{
  enum { N = 20000 };
  q7 *q = open_primary(1);
  make_topic(q, "k", 1, 2, 1);
  q7_conf *pc = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(pc, "acks", "all"));
  Q7_OK_OR_FAIL(q7_conf_set(pc, "batch.size", "2000"));
  Q7_OK_OR_FAIL(q7_conf_set(pc, "linger.ms", "50"));
  rep_count = 0;
  q7_conf_set_delivery_cb(pc, on_rep, NULL);
  q7_producer *pr;
  Q7_OK_OR_FAIL(q7_producer_new(q, pc, &pr));
  q7_conf_destroy(pc);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "k", &t));
  for (uint32_t i = 0; i < N; i++) {
    content c;
    q7_header h;
    gen(16, i, &c);
    q7_msg m = msg_of(t, 0, &c, &h, 0);
    Q7_OK_OR_FAIL(q7_producer_send(pr, &m));
  }
  Q7_OK_OR_FAIL(q7_producer_flush(pr, 30000));
  q7_producer_close(pr);
  q7_topic_close(t);
  cr_assert_eq(rep_count, N);
  cr_assert_eq(rep_last_err, Q7_OK, "the last delivery failed: %d", rep_last_err);
  assert_caught_up(q, "k", 0, 1, N);
  Q7_OK_OR_FAIL(q7_close(q));
  /* One batch more on the mirror only. */
  q7 *m = open_alone(M[1]);
  Q7_OK_OR_FAIL(q7_topic_open(m, "k", &t));
  pr = producer(m, "all");
  cr_assert_eq(send_rec(pr, t, 0, 16, N, 0), N);
  q7_producer_close(pr);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(m));
  char saveP[4400], saveM[4400];
  snprintf(saveP, sizeof saveP, "%s/save-primary", dir);
  snprintf(saveM, sizeof saveM, "%s/save-mirror", dir);
  restore(P, saveP);
  restore(M[1], saveM);

  /* How long q7_open takes, repair included (fork to ready). */
  int64_t t_us = 0;
  for (int k = -1; k < 8; k++) {
    restore(saveP, P);
    restore(saveM, M[1]);
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    open_arg a = { pfd[1] };
    struct timespec ts0, ts1;
    clock_gettime(CLOCK_MONOTONIC, &ts0);
    int kid = spawn(child_open_and_wait, &a);
    close(pfd[1]);
    if (k < 0) {
      char c;
      cr_assert(read_full(pfd[0], &c, 1, 30000), "the child did not open the store");
      clock_gettime(CLOCK_MONOTONIC, &ts1);
      t_us = (ts1.tv_sec - ts0.tv_sec) * 1000000 + (ts1.tv_nsec - ts0.tv_nsec) / 1000;
    } else {
      /* Kill at 10%, 20%, ... 80% of that time. */
      int64_t at = t_us * (k + 1) / 10;
      struct timespec d = { (time_t)(at / 1000000), (long)(at % 1000000) * 1000 };
      struct timespec rem;
      d.tv_sec += ts0.tv_sec;
      d.tv_nsec += ts0.tv_nsec;
      if (d.tv_nsec >= 1000000000L)
        d.tv_sec++, d.tv_nsec -= 1000000000L;
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &d, &rem) == EINTR)
        ;
    }
    kill(kids[kid], SIGKILL);
    int st = reap(kid, 20000);
    close(pfd[0]);
    cr_assert_eq(st, 128 + SIGKILL, "the child ended with %d", st);
    if (k < 0)
      continue;
    /* Each replica alone: the N acknowledged records, intact. */
    for (int r = 0; r < 2; r++) {
      q7 *s = open_alone(r ? M[1] : P);
      q7_partition *part;
      int64_t ls, hw;
      Q7_OK_OR_FAIL(q7_topic_open(s, "k", &t));
      Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &part));
      Q7_OK_OR_FAIL(q7_partition_offsets(part, &ls, &hw));
      cr_assert_geq(hw, N, "killed %" PRId64 " us into q7_open (%d%% of %" PRId64 " us): %s "
                    "alone ends at %" PRId64 ", %d records were acknowledged", t_us * (k + 1) / 10,
                    (k + 1) * 10, t_us, r ? "mirror 1" : "the primary", hw, N);
      content c;
      for (int64_t off = 0; off < N;) {
        q7_record rec[256];
        int n = q7_partition_read(part, off, rec, 256);
        cr_assert_gt(n, 0, "read at %" PRId64 ": %d %s", off, n, q7_last_error());
        for (int i = 0; i < n && off < N; i++, off++) {
          cr_assert_eq(rec[i].offset, off);
          const char *bad = differs(&rec[i], 16, (uint32_t)off, &c);
          cr_assert_null(bad, "replica %d offset %" PRId64 ": %s differ", r, off, bad);
        }
      }
      q7_topic_close(t);
      Q7_OK_OR_FAIL(q7_close(s));
    }
  }
  cr_log_info("q7_open with a mirror one batch ahead of %d records: %" PRId64 " us; 8 kills "
              "during it left every acknowledged record on both replicas", N, t_us);
}

/* =========================================================== failover */

enum { F_PARTS = 2, F_ROUNDS = 10, F_PER_ROUND = 4000, F_CAP = F_ROUNDS * F_PER_ROUND + 16 };
enum { K_READY = 1, K_ACK = 2, K_COMMIT = 3 };

typedef struct fmsg {
  uint32_t kind, round, seq;
  int32_t partition;
  int64_t offset;                 /* K_COMMIT: the committed next offset */
} fmsg;

typedef struct fo_arg {
  uint32_t round;
  int wfd;
} fo_arg;

static int
child_failover(void *arg)
{
  fo_arg *a = arg;
  q7_conf *c = q7_conf_new();
  if (!c || q7_conf_set(c, "replica.dirs", mirrors(2)) || q7_conf_set(c, "sync", "false") ||
      q7_conf_set(c, "retention.check.interval.ms", "0"))
    WCHECK(0, "conf: %s", q7_last_error());
  q7 *q;
  int rc = q7_open(&q, P, c);
  WCHECK(rc == Q7_OK, "round %u: open: %d %s", a->round, rc, q7_last_error());
  q7_conf_destroy(c);
  for (int r = 1; r <= 2; r++)
    for (int32_t p = 0; p < F_PARTS; p++) {
      int s = 0;
      rc = q7_replica_status(q, "f", p, r, NULL, &s);
      WCHECK(rc == Q7_OK && s == 1, "round %u: after q7_open mirror %d partition %d in sync %d "
             "(%d %s)", a->round, r, p, s, rc, q7_last_error());
    }
  q7_topic *t;
  q7_producer *pr;
  q7_consumer *cons;
  c = q7_conf_new();
  q7_conf_set(c, "acks", "all");
  WCHECK(!q7_topic_open(q, "f", &t) && !q7_producer_new(q, c, &pr) &&
             !q7_consumer_new(q, "g", NULL, &cons), "round %u: %s", a->round, q7_last_error());
  q7_conf_destroy(c);
  fmsg ready = { K_READY, a->round, 0, 0, 0 };
  if (!write_full(a->wfd, &ready, sizeof ready))
    return 2;
  int64_t last[F_PARTS] = { -1, -1 };
  for (uint32_t seq = 0; seq < F_PER_ROUND; seq++) {
    content ct;
    q7_header h;
    int32_t p = (int32_t)(seq % F_PARTS);
    gen(100 + a->round, seq, &ct);
    q7_msg m = msg_of(t, p, &ct, &h, 0);
    fmsg ack = { K_ACK, a->round, seq, p, -1 };
    rc = q7_producer_send_sync(pr, &m, NULL, &ack.offset);
    WCHECK(rc == Q7_OK, "round %u seq %u: send_sync: %d %s", a->round, seq, rc, q7_last_error());
    if (!write_full(a->wfd, &ack, sizeof ack))
      return 3;
    last[p] = ack.offset;
    if (seq % 50 == 49)
      for (int32_t cp = 0; cp < F_PARTS; cp++) {
        if (last[cp] < 0)
          continue;
        fmsg cm = { K_COMMIT, a->round, seq, cp, last[cp] + 1 };
        rc = q7_consumer_commit_offset(cons, "f", cp, cm.offset);
        WCHECK(rc == Q7_OK, "round %u: commit %" PRId64 ": %d %s", a->round, cm.offset, rc,
               q7_last_error());
        if (!write_full(a->wfd, &cm, sizeof cm))
          return 4;
      }
  }
  /* Everything sent before the kill: wait for it. */
  for (;;)
    pause();
}

/* What the parent knows: per partition and offset, the acknowledged id. */
typedef struct fslot {
  uint32_t round, seq;
  bool acked;
} fslot;

static fslot (*fbook)[F_CAP];
static int64_t f_max_acked[F_PARTS], f_committed[F_PARTS], f_acks, f_commits;
static int64_t f_checked, f_acked_checked;
static int64_t f_ready_at;        /* when the last READY arrived (monotonic ms) */

static void
f_note(const fmsg *m, uint32_t round)
{
  if (m->kind == K_READY)
    return;
  cr_assert(m->kind == K_ACK || m->kind == K_COMMIT, "round %u: message kind %u", round, m->kind);
  cr_assert(m->partition >= 0 && m->partition < F_PARTS && m->offset >= 0 && m->offset < F_CAP,
            "round %u: message out of range (partition %d offset %" PRId64 ")", round,
            m->partition, m->offset);
  if (m->kind == K_COMMIT) {
    if (m->offset > f_committed[m->partition])
      f_committed[m->partition] = m->offset;
    f_commits++;
    return;
  }
  fslot *s = &fbook[m->partition][m->offset];
  cr_assert(!s->acked, "round %u: partition %d offset %" PRId64 " acknowledged twice (round %u "
            "seq %u, then round %u seq %u)", round, m->partition, m->offset, s->round, s->seq,
            m->round, m->seq);
  *s = (fslot){ m->round, m->seq, true };
  if (m->offset > f_max_acked[m->partition])
    f_max_acked[m->partition] = m->offset;
  f_acks++;
}

/* A message read from the producer's pipe; @arg: set once it is ready. */
static void
f_on_msg(const void *rep, uint32_t round, void *arg)
{
  fmsg m;
  memcpy(&m, rep, sizeof m);
  if (m.kind == K_READY) {
    *(bool *)arg = true;
    f_ready_at = mono_ms();
  }
  f_note(&m, round);
}

/* Open @d alone: every acknowledged record at its offset, intact; offsets
 * dense from 0; no id twice; the group's offsets at least those reported. */
static int64_t
f_verify(const char *d, const char *what, uint32_t rounds_done, unsigned char *seen)
{
  int64_t total = 0;
  q7 *q = open_alone(d);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "f", &t));
  memset(seen, 0, (size_t)F_ROUNDS * F_PER_ROUND / 8 + 1);
  content c;
  for (int32_t p = 0; p < F_PARTS; p++) {
    q7_partition *part;
    int64_t ls, hw;
    Q7_OK_OR_FAIL(q7_topic_partition(t, p, &part));
    Q7_OK_OR_FAIL(q7_partition_offsets(part, &ls, &hw));
    cr_assert_eq(ls, 0, "%s: partition %d starts at %" PRId64, what, p, ls);
    total += hw;
    cr_assert_gt(hw, f_max_acked[p], "%s: partition %d ends at %" PRId64 " but offset %" PRId64
                 " was acknowledged", what, p, hw, f_max_acked[p]);
    for (int64_t off = 0; off < hw;) {
      q7_record r[256];
      int n = q7_partition_read(part, off, r, 256);
      cr_assert_gt(n, 0, "%s: partition %d read at %" PRId64 " (end %" PRId64 "): %d %s", what, p,
                   off, hw, n, q7_last_error());
      for (int i = 0; i < n; i++, off++) {
        uint32_t a, b;
        cr_assert_eq(r[i].offset, off, "%s: partition %d: offset %" PRId64 " where %" PRId64
                     " belongs", what, p, r[i].offset, off);
        cr_assert(parse_id(&r[i], &a, &b), "%s: partition %d offset %" PRId64 ": not a record "
                  "the producer sent", what, p, off);
        cr_assert(a >= 100 && a < 100 + rounds_done && b < F_PER_ROUND,
                  "%s: partition %d offset %" PRId64 ": id %u/%u out of range", what, p, off, a,
                  b);
        const char *bad = differs(&r[i], a, b, &c);
        cr_assert_null(bad, "%s: partition %d offset %" PRId64 " (round %u seq %u): %s differ",
                       what, p, off, a - 100, b, bad);
        size_t bit = (size_t)(a - 100) * F_PER_ROUND + b;
        cr_assert(!(seen[bit / 8] & (1u << (bit % 8))), "%s: round %u seq %u stored twice", what,
                  a - 100, b);
        seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
        fslot *s = &fbook[p][off];
        if (s->acked) {
          cr_assert(s->round == a - 100 && s->seq == b, "%s: partition %d offset %" PRId64
                    ": acknowledged as round %u seq %u, holds round %u seq %u", what, p, off,
                    s->round, s->seq, a - 100, b);
          f_acked_checked++;
        }
        f_checked++;
      }
    }
    if (f_committed[p] > 0) {
      int64_t next = -1;
      int rc = q7_committed(q, "g", "f", p, &next);
      cr_assert_eq(rc, Q7_OK, "%s: no committed offset for partition %d (reported %" PRId64
                   "): %d %s", what, p, f_committed[p], rc, q7_last_error());
      cr_assert_geq(next, f_committed[p], "%s: partition %d committed %" PRId64 " below the "
                    "acknowledged commit %" PRId64, what, p, next, f_committed[p]);
    }
  }
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  return total;
}

Test(replica, failover_every_acknowledged_record_is_on_each_mirror_after_sigkill, .timeout = 60)
{
  uint64_t seed = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)mono_ms() << 40;
  const char *env = getenv("Q7_TEST_SEED");
  if (env && *env)
    seed = strtoull(env, NULL, 10);
  fprintf(stderr, "test_replica failover: seed %" PRIu64 " (Q7_TEST_SEED=%" PRIu64 " repeats it)\n",
          seed, seed);
  seed_g = seed;
  uint64_t rng = seed;
  shared_new();
  fbook = calloc(F_PARTS, sizeof *fbook);
  unsigned char *seen = calloc((size_t)F_ROUNDS * F_PER_ROUND / 8 + 1, 1);
  cr_assert(fbook && seen);
  for (int p = 0; p < F_PARTS; p++)
    f_max_acked[p] = -1, f_committed[p] = 0;
  f_acks = f_commits = f_checked = f_acked_checked = 0;

  q7 *q = open_primary(2);
  make_topic(q, "f", F_PARTS, 3, 2);
  Q7_OK_OR_FAIL(q7_close(q)); /* no store open across the forks */

  int early = 0, ahead = 0;
  bool was_ahead = false;
  int64_t t_start = mono_ms(), open_ms = 6;
  uint32_t round = 0;
  for (; round < F_ROUNDS && mono_ms() - t_start < 35000; round++) {
    int pfd[2];
    cr_assert_eq(pipe(pfd), 0);
    fo_arg a = { round, pfd[1] };
    rng = mix64(rng);
    /* A third of the kills land while the child opens the store (and
     * q7_open catches the mirrors up), two thirds when the last kill left
     * a mirror ahead of the primary (q7_open must repair it); the rest
     * while it produces. */
    int delay = rng % 3 < (was_ahead ? 2u : 1u) ? 1 + (int)(mix64(rng) % (uint64_t)(open_ms + 1))
                                                : 1 + (int)(mix64(rng) % 200);
    int64_t t0 = mono_ms();
    int k = spawn(child_failover, &a);
    close(pfd[1]);
    bool ready = false;
    reports msgs = { .fd = pfd[0], .size = sizeof(fmsg), .fn = f_on_msg, .arg = &ready,
                     .what = "message", .end_s = 20 };
    bool open = reports_drain(&msgs, t0 + delay, round);
    int st;
    if (!open) { /* the child ended on its own: a failed check */
      st = reap(k, 20000);
      cr_assert_fail("round %u: the producer exited %d before the kill: line %d: %s", round, st,
                     sh->line, sh->msg);
    }
    kill(kids[k], SIGKILL);
    st = reap(k, 20000);
    cr_assert_eq(st, 128 + SIGKILL, "round %u: the producer ended with %d (line %d: %s)", round,
                 st, sh->line, sh->msg);
    while (reports_drain(&msgs, -1, round))
      ;
    close(pfd[0]);
    early += !ready;
    if (ready && was_ahead) /* how long q7_open takes to repair a mirror */
      open_ms = f_ready_at - t0;
    int64_t before = f_acked_checked;
    int64_t pe = f_verify(P, "the primary opened alone", round + 1, seen);
    int64_t e1 = f_verify(M[1], "mirror 1 opened alone", round + 1, seen);
    int64_t e2 = f_verify(M[2], "mirror 2 opened alone", round + 1, seen);
    was_ahead = e1 > pe || e2 > pe;
    ahead += was_ahead;
    cr_log_info("round %u: killed after %d ms (%s, ready after %" PRId64 " ms), %" PRId64 " acknowledged so far, %" PRId64
                " acknowledged records checked this round; ends: primary %" PRId64 ", mirrors %"
                PRId64 " %" PRId64, round, delay, ready ? "producing" : "still opening", ready ? f_ready_at - t0 : -1, f_acks,
                f_acked_checked - before, pe, e1, e2);
  }
  cr_assert_geq(round, 3, "only %u rounds in 35 s", round);
  cr_assert_gt(f_acks, 0, "no record was acknowledged in %u rounds", round);
  fprintf(stderr, "test_replica failover: %u rounds (%d killed while opening, %d left a mirror "
          "ahead of the primary), %" PRId64
          " acknowledged, %" PRId64 " group commits; %" PRId64 " records checked on 3 replicas, "
          "%" PRId64 " of them acknowledged\n", round, early, ahead, f_acks, f_commits, f_checked,
          f_acked_checked);
  free(fbook);
  free(seen);
}
