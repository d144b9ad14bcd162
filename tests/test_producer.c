/* test_producer.c - q7_producer_*: delivery reports, batching (linger.ms,
 * batch.size), partitioning, validation, send_sync and group commit,
 * storage.max.bytes, map growth, flush and close. */
#include "helpers.h"
#include "proc.h"
#include "fixture.h"

#include <criterion/logging.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixture */

static q7_conf *
conf_of(const char *const *kv)
{
  q7_conf *c;
  Q7_OK_OR_FAIL((c = q7_conf_new()) == NULL);
  for (; kv && kv[0]; kv += 2)
    Q7_OK_OR_FAIL(q7_conf_set(c, kv[0], kv[1]));
  return c;
}

static q7_topic *
topic_make(const char *name, int32_t parts, const q7_conf *tconf)
{
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_create(q, name, parts, tconf));
  Q7_OK_OR_FAIL(q7_topic_open(q, name, &t));
  return t;
}

static int64_t
hw_of(q7_topic *t, int32_t part)
{
  q7_partition *p;
  int64_t ls, hw;
  Q7_OK_OR_FAIL(q7_topic_partition(t, part, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  return hw;
}

/* Wait (bounded) until partition @part of @t holds @want records. */
static int64_t
wait_hw(q7_topic *t, int32_t part, int64_t want, int max_ms)
{
  int64_t end = mono_ms() + max_ms, hw;
  while ((hw = hw_of(t, part)) < want && mono_ms() < end)
    sleep_ms(2);
  return hw;
}

/* ------------------------------------------------- delivery report log */

#define DR_MAX 20000

typedef struct drlog {
  pthread_t owner;
  atomic_int inside;              /* a producer call of the owner is running */
  atomic_int calls, outside, wrong_thread, bad_opaque, bad_topic;
  const char *topic;              /* expected topic name, or NULL */
  int count[DR_MAX];
  int32_t part[DR_MAX];
  int64_t off[DR_MAX];
  int err[DR_MAX];
} drlog;

static void
dr_cb(const q7_delivery *d, void *arg)
{
  drlog *l = arg;
  atomic_fetch_add(&l->calls, 1);
  if (!pthread_equal(pthread_self(), l->owner))
    atomic_fetch_add(&l->wrong_thread, 1);
  if (!atomic_load(&l->inside))
    atomic_fetch_add(&l->outside, 1);
  if (l->topic && (!d->topic || strcmp(d->topic, l->topic)))
    atomic_fetch_add(&l->bad_topic, 1);
  intptr_t i = (intptr_t)d->opaque - 1;
  if (i < 0 || i >= DR_MAX) {
    atomic_fetch_add(&l->bad_opaque, 1);
    return;
  }
  l->count[i]++;
  l->part[i] = d->partition;
  l->off[i] = d->offset;
  l->err[i] = d->err;
}

static drlog *
drlog_new(const char *topic)
{
  drlog *l = calloc(1, sizeof *l);
  cr_assert(l);
  l->owner = pthread_self();
  l->topic = topic;
  return l;
}

/* A producer whose reports go to @l, with producer keys @kv. */
static q7_producer *
producer_make(drlog *l, const char *const *kv)
{
  q7_conf *c = conf_of(kv);
  q7_producer *p;
  if (l)
    q7_conf_set_delivery_cb(c, dr_cb, l);
  Q7_OK_OR_FAIL(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  return p;
}

/* Producer calls that may serve reports, bracketed so the callback can tell
 * whether it runs inside one. */
static int
P_send(drlog *l, q7_producer *p, const q7_msg *m)
{
  atomic_store(&l->inside, 1);
  int rc = q7_producer_send(p, m);
  atomic_store(&l->inside, 0);
  return rc;
}

static int
P_flush(drlog *l, q7_producer *p, int ms)
{
  atomic_store(&l->inside, 1);
  int rc = q7_producer_flush(p, ms);
  atomic_store(&l->inside, 0);
  return rc;
}

static int
P_poll(drlog *l, q7_producer *p, int ms)
{
  atomic_store(&l->inside, 1);
  int rc = q7_producer_poll(p, ms);
  atomic_store(&l->inside, 0);
  return rc;
}

static int
P_close(drlog *l, q7_producer *p)
{
  atomic_store(&l->inside, 1);
  int rc = q7_producer_close(p);
  atomic_store(&l->inside, 0);
  return rc;
}

static void
drlog_assert_clean(const drlog *l)
{
  cr_assert_eq(atomic_load(&l->wrong_thread), 0, "%d reports in another thread",
               atomic_load(&l->wrong_thread));
  cr_assert_eq(atomic_load(&l->outside), 0, "%d reports outside send/poll/flush/close",
               atomic_load(&l->outside));
  cr_assert_eq(atomic_load(&l->bad_opaque), 0, "reports with an unknown opaque");
  cr_assert_eq(atomic_load(&l->bad_topic), 0, "reports naming the wrong topic");
}

static q7_msg
msg(q7_topic *t, int32_t part, const void *val, size_t len, intptr_t opaque)
{
  q7_msg m = { 0 };
  m.topic = t;
  m.partition = part;
  m.value = val;
  m.value_len = len;
  m.opaque = (void *)opaque;
  return m;
}

/* ------------------------------------------------------- record reading */

/* Read the single record at @off of partition @part into @r (valid until the
 * next read on @t). */
static void
read_one(q7_topic *t, int32_t part, int64_t off, q7_record *r)
{
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_partition(t, part, &p));
  int n = q7_partition_read(p, off, r, 1);
  cr_assert_eq(n, 1, "read of offset %lld -> %d (%s)", (long long)off, n, q7_last_error());
  cr_assert_eq(r->offset, off);
  cr_assert_eq(r->partition, part);
}

static bool
value_is(const q7_record *r, const char *s)
{
  size_t n = strlen(s);
  return r->value_len == n && (n == 0 || memcmp(r->value, s, n) == 0);
}

/* ============================================================= tests */

Test(producer, send_flush_reports_every_record_once_with_dense_offsets, .init = setup,
     .fini = teardown, .timeout = 60)
{
  enum { N = 900, PARTS = 3 };
  q7_topic *t = topic_make("t", PARTS, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "50", "batch.size", "2000", NULL };
  q7_producer *p = producer_make(l, kv);
  char val[64];
  for (int i = 0; i < N; i++) {
    int n = snprintf(val, sizeof val, "rec-%d", i);
    q7_msg m = msg(t, i % PARTS, val, (size_t)n, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), N, "%d reports for %d records", atomic_load(&l->calls), N);
  drlog_assert_clean(l);

  /* Per partition: offsets 0..N/PARTS-1, each once, in send order. */
  int64_t next[PARTS] = { 0 };
  for (int i = 0; i < N; i++) {
    cr_assert_eq(l->count[i], 1, "record %d reported %d times", i, l->count[i]);
    cr_assert_eq(l->err[i], Q7_OK, "record %d: err %d", i, l->err[i]);
    cr_assert_eq(l->part[i], i % PARTS);
    cr_assert_eq(l->off[i], next[i % PARTS], "record %d: offset %lld, want %lld", i,
                 (long long)l->off[i], (long long)next[i % PARTS]);
    next[i % PARTS]++;
  }
  for (int k = 0; k < PARTS; k++)
    cr_assert_eq(hw_of(t, k), N / PARTS);
  /* The reported offset holds the record. */
  for (int i = 0; i < N; i += 37) {
    q7_record r;
    snprintf(val, sizeof val, "rec-%d", i);
    read_one(t, l->part[i], l->off[i], &r);
    cr_assert(value_is(&r, val), "offset %lld of partition %d is not %s", (long long)l->off[i],
              l->part[i], val);
  }
  Q7_OK_OR_FAIL(P_close(l, p));
  cr_assert_eq(atomic_load(&l->calls), N, "close reported again");
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  free(l);
}

Test(producer, reports_arrive_only_inside_producer_calls_in_calling_thread, .init = setup,
     .fini = teardown, .timeout = 60)
{
  enum { N = 20 };
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "1", NULL };
  q7_producer *p = producer_make(l, kv);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, 0, "x", 1, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  /* The producer's thread commits them after linger.ms ... */
  cr_assert_eq(wait_hw(t, 0, N, 10000), N, "linger did not commit the records");
  sleep_ms(50);
  /* ... but nobody called the producer, so nobody was told. */
  cr_assert_eq(atomic_load(&l->calls), 0, "%d reports arrived outside a producer call",
               atomic_load(&l->calls));
  int served = 0;
  for (int k = 0; k < 100 && served < N; k++) {
    int n = P_poll(l, p, 100);
    cr_assert_geq(n, 0, "poll -> %d", n);
    served += n;
  }
  cr_assert_eq(served, N, "poll served %d reports", served);
  cr_assert_eq(atomic_load(&l->calls), N);
  drlog_assert_clean(l);
  cr_assert_eq(P_poll(l, p, 0), 0, "poll served reports twice");
  Q7_OK_OR_FAIL(P_close(l, p));
  cr_assert_eq(atomic_load(&l->calls), N);
  q7_topic_close(t);
  free(l);
}

Test(producer, poll_returns_zero_when_nothing_is_pending, .init = setup, .fini = teardown,
     .timeout = 30)
{
  drlog *l = drlog_new(NULL);
  q7_producer *p = producer_make(l, NULL);
  cr_assert_eq(P_poll(l, p, 0), 0);
  cr_assert_eq(P_poll(l, p, 200), 0);
  Q7_OK_OR_FAIL(P_flush(l, p, 0));
  Q7_OK_OR_FAIL(P_close(l, p));
  cr_assert_eq(atomic_load(&l->calls), 0);
  free(l);
}

Test(producer, linger_commits_a_record_without_flush, .init = setup, .fini = teardown,
     .timeout = 60)
{
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "20", "batch.size", "10000000", NULL };
  q7_producer *p = producer_make(l, kv);
  q7_msg m = msg(t, 0, "lingering", 9, 1);
  Q7_OK_OR_FAIL(P_send(l, p, &m));
  cr_assert_eq(wait_hw(t, 0, 1, 10000), 1, "record not committed within 10 s of linger.ms=20");
  cr_assert_eq(atomic_load(&l->calls), 0, "report served outside a producer call");
  q7_record r;
  read_one(t, 0, 0, &r);
  cr_assert(value_is(&r, "lingering"));
  cr_assert_eq(P_poll(l, p, 1000), 1);
  cr_assert_eq(l->count[0], 1);
  cr_assert_eq(l->off[0], 0);
  cr_assert_eq(l->err[0], Q7_OK);
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

/* The producer's thread is woken only for a deadline earlier than the
 * one it sleeps to: a partial batch left after full ones (committed by the
 * sender), and a record after the thread has gone idle, are still
 * committed by linger.ms alone. */
Test(producer, linger_commits_the_tail_after_full_batches_and_after_idling, .init = setup,
     .fini = teardown, .timeout = 60)
{
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "30", "batch.size", "1000", NULL };
  q7_producer *p = producer_make(l, kv);
  char val[100];
  memset(val, 'v', sizeof val);
  int sent = 0;
  for (int round = 0; round < 3; round++) {
    /* Full batches (the sender commits them), then a partial one. */
    for (int i = 0; i < 45; i++, sent++) {
      q7_msg m = msg(t, 0, val, sizeof val, sent + 1);
      Q7_OK_OR_FAIL(P_send(l, p, &m));
    }
    cr_assert_eq(wait_hw(t, 0, sent, 10000), sent,
                 "round %d: %lld of %d committed 10 s after the last send (linger.ms=30)", round,
                 (long long)hw_of(t, 0), sent);
    /* Long enough for the thread to find nothing due, twice: idle. */
    sleep_ms(round == 0 ? 10 : 200);
  }
  cr_assert_eq(P_poll(l, p, 1000) > 0, 1);
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), sent);
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

/* send_batch: many records in one call, across partitions and topics,
 * each reported once as if sent alone, in order per partition. */
Test(producer, send_batch_accepts_and_reports_every_record, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 3000, PARTS = 3 };
  q7_topic *t = topic_make("t", PARTS, NULL), *u = topic_make("u", 1, NULL);
  drlog *l = drlog_new(NULL);
  const char *kv[] = { "linger.ms", "100000", "batch.size", "4000", NULL };
  q7_producer *p = producer_make(l, kv);
  static q7_msg ms[N];
  static char vals[N][16];
  for (int i = 0; i < N; i++) {
    int n = snprintf(vals[i], sizeof vals[i], "b-%d", i);
    ms[i] = msg(i % 10 == 9 ? u : t, i % 10 == 9 ? 0 : i % PARTS, vals[i], (size_t)n, i + 1);
  }
  size_t got = 12345;
  atomic_store(&l->inside, 1);
  int rc = q7_producer_send_batch(p, ms, 1000, &got);
  cr_assert_eq(rc, Q7_OK, "%s", q7_last_error());
  cr_assert_eq(got, 1000);
  rc = q7_producer_send_batch(p, ms + 1000, N - 1000, NULL);
  atomic_store(&l->inside, 0);
  cr_assert_eq(rc, Q7_OK, "%s", q7_last_error());
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), N);
  drlog_assert_clean(l);
  int64_t next[PARTS + 1] = { 0 };
  for (int i = 0; i < N; i++) {
    int k = i % 10 == 9 ? PARTS : i % PARTS;
    cr_assert_eq(l->count[i], 1, "record %d reported %d times", i, l->count[i]);
    cr_assert_eq(l->err[i], Q7_OK);
    cr_assert_eq(l->off[i], next[k], "record %d: offset %lld, want %lld", i,
                 (long long)l->off[i], (long long)next[k]);
    next[k]++;
    if (i % 97 == 0) {
      q7_record r;
      read_one(k == PARTS ? u : t, k == PARTS ? 0 : k, l->off[i], &r);
      cr_assert(value_is(&r, vals[i]), "record %d not at its reported offset", i);
    }
  }
  cr_assert_eq(hw_of(u, 0), N / 10);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  q7_topic_close(u);
  free(l);
}

/* It stops at the first record refused: those before it are sent, the
 * error and the index tell which one, those after it are not sent. */
Test(producer, send_batch_stops_at_the_first_bad_record, .init = setup, .fini = teardown,
     .timeout = 60)
{
  q7_topic *t = topic_make("t", 2, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  q7_msg ms[6];
  for (int i = 0; i < 6; i++)
    ms[i] = msg(t, i % 2, "ok", 2, i + 1);
  ms[3].partition = 7; /* out of range */
  size_t sent = 99;
  atomic_store(&l->inside, 1);
  int rc = q7_producer_send_batch(p, ms, 6, &sent);
  atomic_store(&l->inside, 0);
  cr_assert_eq(rc, Q7_ENOENT, "rc %d", rc);
  cr_assert_eq(sent, 3);
  cr_assert(strstr(q7_last_error(), "record 3 of 6"), "error names no index: %s",
            q7_last_error());
  cr_assert(strstr(q7_last_error(), "partition 7"), "error lost its cause: %s", q7_last_error());
  /* A NULL value with a length, at index 0: nothing is sent. */
  ms[3].partition = 1;
  ms[4].value = NULL;
  atomic_store(&l->inside, 1);
  rc = q7_producer_send_batch(p, ms + 4, 2, &sent);
  atomic_store(&l->inside, 0);
  cr_assert_eq(rc, Q7_EINVAL);
  cr_assert_eq(sent, 0);
  cr_assert(strstr(q7_last_error(), "record 0 of 2"), "%s", q7_last_error());
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), 3, "%d reports", atomic_load(&l->calls));
  for (int i = 0; i < 3; i++)
    cr_assert_eq(l->count[i], 1);
  cr_assert_eq(hw_of(t, 0) + hw_of(t, 1), 3);
  /* NULL producer, NULL array: refused; an empty batch is fine. */
  cr_assert_eq(q7_producer_send_batch(NULL, ms, 1, &sent), Q7_EINVAL);
  cr_assert_eq(sent, 0);
  cr_assert(strstr(q7_last_error(), "producer"));
  cr_assert_eq(q7_producer_send_batch(p, NULL, 1, &sent), Q7_EINVAL);
  cr_assert(strstr(q7_last_error(), "msgs"));
  cr_assert_eq(q7_producer_send_batch(p, NULL, 0, &sent), Q7_OK);
  cr_assert_eq(sent, 0);
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

/* Past 1 MiB a partition's file holds blocks allocated ahead of its data
 * (fallocate, keeping the size): at least a quarter MiB, at most 8 MiB
 * and a little.  The size LMDB and storage.max.bytes see is unchanged. */
Test(producer, partition_file_is_allocated_ahead_of_its_data, .init = setup, .fini = teardown,
     .timeout = 60)
{
  char probe[4200];
  snprintf(probe, sizeof probe, "%s/probe", dir);
  int fd = open(probe, O_CREAT | O_RDWR, 0600);
  cr_assert(fd >= 0);
  int fr = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 65536);
  close(fd);
  unlink(probe);
  if (fr != 0)
    cr_skip_test("the filesystem of %s has no fallocate (%s)", dir, strerror(errno));
  q7_topic *t = topic_make("t", 1, NULL);
  q7_producer *p = producer_make(NULL, NULL);
  static char val[1000];
  memset(val, 'a', sizeof val);
  for (int round = 0; round < 30; round++) {
    q7_msg ms[100];
    for (int i = 0; i < 100; i++)
      ms[i] = msg(t, 0, val, sizeof val, 0);
    Q7_OK_OR_FAIL(q7_producer_send_batch(p, ms, 100, NULL));
    Q7_OK_OR_FAIL(q7_producer_flush(p, -1));
  }
  char path[4200];
  snprintf(path, sizeof path, "%s/topics/t/0/data.mdb", dir);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  long long ahead = (long long)st.st_blocks * 512 - (long long)st.st_size;
  cr_assert_geq(st.st_size, 3000000, "3 MB of records in a file of %lld bytes",
                (long long)st.st_size);
  cr_assert_geq(ahead, 256 << 10, "only %lld bytes allocated ahead", ahead);
  cr_assert_leq(ahead, (8 << 20) + (1 << 20), "%lld bytes allocated ahead", ahead);
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
}

Test(producer, long_linger_holds_records_until_flush, .init = setup, .fini = teardown,
     .timeout = 60)
{
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "600000", "batch.size", "10000000", NULL };
  q7_producer *p = producer_make(l, kv);
  for (int i = 0; i < 5; i++) {
    q7_msg m = msg(t, 0, "held", 4, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  sleep_ms(200);
  cr_assert_eq(hw_of(t, 0), 0, "records committed before linger.ms or batch.size");
  cr_assert_eq(P_poll(l, p, 0), 0);
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(hw_of(t, 0), 5);
  cr_assert_eq(atomic_load(&l->calls), 5);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, batch_size_commits_records_without_flush, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 25 };
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "600000", "batch.size", "1000", NULL };
  q7_producer *p = producer_make(l, kv);
  char val[100];
  memset(val, 'b', sizeof val);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, 0, val, sizeof val, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  /* 2500 payload bytes against batch.size 1000: at least two full batches
   * are committed, the tail waits for linger.ms (10 minutes). */
  int64_t hw = hw_of(t, 0);
  cr_assert_geq(hw, 16, "only %lld of %d records committed past batch.size", (long long)hw, N);
  cr_assert_lt(hw, N, "the partial last batch was committed before linger.ms");
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(hw_of(t, 0), N);
  cr_assert_eq(atomic_load(&l->calls), N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(l->off[i], i);
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

#define FIXED_CLOCK 1700000000123LL

static int64_t
fixed_clock(void *arg)
{
  return *(const int64_t *)arg;
}

Test(producer, headers_and_timestamps_round_trip, .init = setup_nostore, .fini = teardown,
     .timeout = 60)
{
  static int64_t now = FIXED_CLOCK;
  q7_conf *sc;
  Q7_OK_OR_FAIL((sc = q7_conf_new()) == NULL);
  q7_conf_set_clock(sc, fixed_clock, &now);
  store_open(sc);
  q7_conf_destroy(sc);
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);

  const unsigned char bin[] = { 0, 1, 2, 0xff };
  q7_header hs[] = {
    { "a", "1", 1 },
    { "empty", NULL, 0 },
    { "a", "2", 1 },
    { "bin", bin, sizeof bin },
  };
  q7_msg m = msg(t, 0, "v0", 2, 1);
  m.key = "k0";
  m.key_len = 2;
  m.timestamp_ms = 42;
  m.headers = hs;
  m.header_count = 4;
  Q7_OK_OR_FAIL(P_send(l, p, &m));              /* offset 0: explicit ts, headers */
  q7_msg m1 = msg(t, 0, "v1", 2, 2);            /* offset 1: store clock */
  Q7_OK_OR_FAIL(P_send(l, p, &m1));
  q7_msg m2 = msg(t, 0, NULL, 0, 3);            /* offset 2: no key, null value */
  m2.timestamp_ms = 7;
  Q7_OK_OR_FAIL(P_send(l, p, &m2));
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  int64_t off;
  q7_msg m3 = msg(t, 0, "v3", 2, 0);            /* offset 3: send_sync, store clock */
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m3, NULL, &off));
  cr_assert_eq(off, 3);
  q7_msg m4 = msg(t, 0, "v4", 2, 0);            /* offset 4: send_sync, explicit */
  m4.timestamp_ms = 99;
  m4.headers = hs + 3;
  m4.header_count = 1;
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m4, NULL, &off));
  cr_assert_eq(off, 4);

  q7_partition *part;
  q7_record r[5];
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &part));
  cr_assert_eq(q7_partition_read(part, 0, r, 5), 5);
  cr_assert_eq(r[0].timestamp_ms, 42);
  cr_assert_eq(r[1].timestamp_ms, FIXED_CLOCK, "timestamp 0 gave %lld, not the store clock",
               (long long)r[1].timestamp_ms);
  cr_assert_eq(r[2].timestamp_ms, 7);
  cr_assert_eq(r[3].timestamp_ms, FIXED_CLOCK, "send_sync timestamp 0 gave %lld",
               (long long)r[3].timestamp_ms);
  cr_assert_eq(r[4].timestamp_ms, 99);

  cr_assert_eq(r[0].key_len, 2);
  cr_assert_eq(memcmp(r[0].key, "k0", 2), 0);
  cr_assert(value_is(&r[0], "v0"));
  cr_assert_str_eq(r[0].topic, "t");
  cr_assert_null(r[2].key);
  cr_assert_eq(r[2].key_len, 0);
  cr_assert_null(r[2].value, "a null value came back non-NULL");
  cr_assert_eq(r[2].value_len, 0);

  const void *v;
  size_t vl;
  Q7_OK_OR_FAIL(q7_record_header(&r[0], "a", &v, &vl));
  cr_assert(vl == 1 && memcmp(v, "1", 1) == 0, "first header \"a\" is not \"1\"");
  Q7_OK_OR_FAIL(q7_record_header(&r[0], "empty", &v, &vl));
  cr_assert_eq(vl, 0);
  cr_assert_null(v);
  Q7_OK_OR_FAIL(q7_record_header(&r[0], "bin", &v, &vl));
  cr_assert(vl == sizeof bin && memcmp(v, bin, sizeof bin) == 0);
  Q7_FAILS_WITH(Q7_ENOENT, q7_record_header(&r[0], "nope", &v, &vl));
  Q7_FAILS_WITH(Q7_ENOENT, q7_record_header(&r[1], "a", &v, &vl));

  /* All four headers, in order, duplicates kept. */
  size_t it = 0, i = 0;
  const char *name;
  size_t nl;
  int rc;
  while ((rc = q7_record_header_next(&r[0], &it, &name, &nl, &v, &vl)) == Q7_OK) {
    cr_assert_lt(i, 4, "more headers than sent");
    cr_assert_eq(nl, strlen(hs[i].name));
    cr_assert_eq(memcmp(name, hs[i].name, nl), 0, "header %zu name", i);
    cr_assert_eq(vl, hs[i].value_len, "header %zu length", i);
    if (vl)
      cr_assert_eq(memcmp(v, hs[i].value, vl), 0, "header %zu value", i);
    i++;
  }
  cr_assert_eq(rc, Q7_ENOENT);
  cr_assert_eq(i, 4, "%zu headers came back", i);
  it = 0;
  cr_assert_eq(q7_record_header_next(&r[1], &it, &name, &nl, &v, &vl), Q7_ENOENT);
  Q7_OK_OR_FAIL(q7_record_header(&r[4], "bin", &v, &vl));
  cr_assert(vl == sizeof bin && memcmp(v, bin, sizeof bin) == 0);
  cr_assert_eq(q7_partition_read(part, 0, NULL, 0), 0);

  Q7_OK_OR_FAIL(P_close(l, p));
  cr_assert_eq(atomic_load(&l->calls), 3, "send_sync records must not be reported");
  q7_topic_close(t);
  free(l);
}

Test(producer, keyed_records_land_on_partition_for_key, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 300, PARTS = 8 };
  q7_topic *t = topic_make("t", PARTS, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  char key[32];
  int used[PARTS] = { 0 };
  for (int i = 0; i < N; i++) {
    int n = snprintf(key, sizeof key, "user-%d", i);
    q7_msg m = msg(t, Q7_PARTITION_ANY, key, (size_t)n, i + 1);
    m.key = key;
    m.key_len = (size_t)n;
    if (i % 2) {
      Q7_OK_OR_FAIL(P_send(l, p, &m));
    } else {
      int32_t part;
      int64_t off;
      Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, &part, &off));
      cr_assert_eq(part, q7_partition_for_key(key, (size_t)n, PARTS), "send_sync of %s", key);
    }
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  drlog_assert_clean(l);
  for (int i = 1; i < N; i += 2) {
    int n = snprintf(key, sizeof key, "user-%d", i);
    int32_t want = q7_partition_for_key(key, (size_t)n, PARTS);
    cr_assert_eq(l->part[i], want, "key %s reported on %d, partition_for_key says %d", key,
                 l->part[i], want);
    q7_record r;
    read_one(t, want, l->off[i], &r);
    cr_assert(r.key_len == (size_t)n && memcmp(r.key, key, (size_t)n) == 0);
  }
  /* Every record sits in its key's partition. */
  int64_t total = 0;
  for (int k = 0; k < PARTS; k++) {
    q7_partition *pp;
    q7_record r[64];
    Q7_OK_OR_FAIL(q7_topic_partition(t, k, &pp));
    int64_t hw = hw_of(t, k);
    for (int64_t o = 0; o < hw;) {
      int n = q7_partition_read(pp, o, r, 64);
      cr_assert_gt(n, 0);
      for (int j = 0; j < n; j++)
        cr_assert_eq(q7_partition_for_key(r[j].key, r[j].key_len, PARTS), k);
      o += n;
    }
    used[k] = hw > 0;
    total += hw;
  }
  cr_assert_eq(total, N);
  int nused = 0;
  for (int k = 0; k < PARTS; k++)
    nused += used[k];
  cr_assert_geq(nused, 4, "%d keys all hashed to %d partitions", N, nused);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, keyless_send_sync_spreads_over_partitions, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 40, PARTS = 4 };
  q7_topic *t = topic_make("t", PARTS, NULL);
  q7_producer *p = producer_make(NULL, NULL);
  int per[PARTS] = { 0 };
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, Q7_PARTITION_ANY, "x", 1, 0);
    int32_t part = -1;
    Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, &part, NULL));
    cr_assert(part >= 0 && part < PARTS, "partition %d", part);
    per[part]++;
  }
  for (int k = 0; k < PARTS; k++) {
    cr_assert_gt(per[k], 0, "partition %d got no keyless record of %d", k, N);
    cr_assert_eq(hw_of(t, k), per[k]);
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
}

Test(producer, keyless_send_spreads_full_batches_over_partitions, .init = setup,
     .fini = teardown, .timeout = 60)
{
  enum { N = 400, PARTS = 4 };
  q7_topic *t = topic_make("t", PARTS, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "600000", NULL }; /* batch.size default 16384 */
  q7_producer *p = producer_make(l, kv);
  char val[500];
  memset(val, 'k', sizeof val);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, Q7_PARTITION_ANY, val, sizeof val, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  int per[PARTS] = { 0 };
  for (int i = 0; i < N; i++) {
    cr_assert_eq(l->err[i], Q7_OK);
    per[l->part[i]]++;
  }
  for (int k = 0; k < PARTS; k++) {
    cr_assert_gt(per[k], 0, "200 KB of keyless records left partition %d empty", k);
    cr_assert_eq(hw_of(t, k), per[k]);
  }
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

/* A slow keyless producer: every batch is committed by flush (or linger)
 * before it fills.  Kafka's sticky partitioner still moves on -- on each new
 * batch (KIP-480), or after batch.size bytes went to a partition (KIP-794);
 * 64 records of 500 bytes are two batch.size worth under either rule. */
Test(producer, keyless_send_moves_on_when_batches_are_flushed_before_full, .init = setup,
     .fini = teardown, .timeout = 60)
{
  enum { N = 64, PARTS = 4 };
  q7_topic *t = topic_make("t", PARTS, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  char val[500];
  memset(val, 's', sizeof val);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, Q7_PARTITION_ANY, val, sizeof val, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
    Q7_OK_OR_FAIL(P_flush(l, p, -1));
  }
  int used = 0;
  for (int k = 0; k < PARTS; k++)
    used += hw_of(t, k) > 0;
  cr_assert_geq(used, 2,
                "%d keyless records (%d bytes, flushed one by one) all went to one partition",
                N, N * 500);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, explicit_partition_overrides_the_key, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { PARTS = 4 };
  q7_topic *t = topic_make("t", PARTS, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  /* A key whose own partition is not 2. */
  char key[16];
  int n = 0;
  for (int i = 0; i < 100; i++) {
    n = snprintf(key, sizeof key, "k%d", i);
    if (q7_partition_for_key(key, (size_t)n, PARTS) != 2)
      break;
  }
  cr_assert_neq(q7_partition_for_key(key, (size_t)n, PARTS), 2);
  q7_msg m = msg(t, 2, "v", 1, 1);
  m.key = key;
  m.key_len = (size_t)n;
  Q7_OK_OR_FAIL(P_send(l, p, &m));
  int32_t part;
  int64_t off;
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, &part, &off));
  cr_assert_eq(part, 2);
  cr_assert_eq(off, 1);
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(l->part[0], 2);
  cr_assert_eq(l->off[0], 0);
  cr_assert_eq(hw_of(t, 2), 2);
  for (int k = 0; k < PARTS; k++)
    if (k != 2)
      cr_assert_eq(hw_of(t, k), 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, send_rejects_partition_out_of_range, .init = setup, .fini = teardown,
     .timeout = 60)
{
  q7_topic *t = topic_make("t", 4, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  const int32_t enoent[] = { 4, 5, 1000 };
  const int32_t einval[] = { -5, -2, INT32_MIN };
  for (size_t i = 0; i < sizeof enoent / sizeof *enoent; i++) {
    q7_msg m = msg(t, enoent[i], "x", 1, 1);
    Q7_FAILS_WITH(Q7_ENOENT, P_send(l, p, &m));
    Q7_FAILS_WITH(Q7_ENOENT, q7_producer_send_sync(p, &m, NULL, NULL));
  }
  for (size_t i = 0; i < sizeof einval / sizeof *einval; i++) {
    q7_msg m = msg(t, einval[i], "x", 1, 1);
    Q7_FAILS_WITH(Q7_EINVAL, P_send(l, p, &m));
    Q7_FAILS_WITH(Q7_EINVAL, q7_producer_send_sync(p, &m, NULL, NULL));
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), 0, "a rejected record was reported");
  for (int k = 0; k < 4; k++)
    cr_assert_eq(hw_of(t, k), 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, send_rejects_null_arguments, .init = setup, .fini = teardown, .timeout = 60)
{
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  q7_msg m = msg(t, 0, "x", 1, 1);
  q7_msg nt = msg(NULL, 0, "x", 1, 1);
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_send(NULL, &m));
  Q7_FAILS_WITH(Q7_EINVAL, P_send(l, p, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, P_send(l, p, &nt));
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_send_sync(NULL, &m, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_send_sync(p, NULL, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_send_sync(p, &nt, NULL, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_poll(NULL, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_flush(NULL, 0));
  q7_producer *out = NULL;
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_new(NULL, NULL, &out));
  cr_assert_null(out);
  Q7_FAILS_WITH(Q7_EINVAL, q7_producer_new(q, NULL, NULL));
  Q7_OK_OR_FAIL(q7_producer_close(NULL));
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(hw_of(t, 0), 0);
  cr_assert_eq(atomic_load(&l->calls), 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, send_rejects_record_over_message_max_bytes, .init = setup, .fini = teardown,
     .timeout = 60)
{
  const char *tkv[] = { "message.max.bytes", "1000", NULL };
  q7_conf *tc = conf_of(tkv);
  q7_topic *t = topic_make("t", 1, tc);
  q7_conf_destroy(tc);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  static char big[2000];
  memset(big, 'z', sizeof big);

  q7_msg over = msg(t, 0, big, 1001, 1);
  Q7_FAILS_WITH(Q7_ETOOBIG, P_send(l, p, &over));
  Q7_FAILS_WITH(Q7_ETOOBIG, q7_producer_send_sync(p, &over, NULL, NULL));
  q7_msg kv = msg(t, 0, big, 501, 2); /* key 500 + value 501 */
  kv.key = big;
  kv.key_len = 500;
  Q7_FAILS_WITH(Q7_ETOOBIG, P_send(l, p, &kv));
  q7_header h2 = { "hh", big, 999 }; /* name 2 + value 999 */
  q7_msg hm = msg(t, 0, NULL, 0, 3);
  hm.headers = &h2;
  hm.header_count = 1;
  Q7_FAILS_WITH(Q7_ETOOBIG, P_send(l, p, &hm));
  Q7_FAILS_WITH(Q7_ETOOBIG, q7_producer_send_sync(p, &hm, NULL, NULL));
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(hw_of(t, 0), 0, "a record over message.max.bytes was written");
  cr_assert_eq(atomic_load(&l->calls), 0, "a rejected record was reported");

  /* Exactly message.max.bytes is fine. */
  q7_msg at = msg(t, 0, big, 1000, 4);
  Q7_OK_OR_FAIL(P_send(l, p, &at));
  q7_header h1 = { "h", big, 999 };
  hm.headers = &h1;
  hm.opaque = (void *)5;
  Q7_OK_OR_FAIL(P_send(l, p, &hm));
  int64_t off;
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &at, NULL, &off));
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(hw_of(t, 0), 3);
  cr_assert_eq(l->count[3], 1);
  cr_assert_eq(l->count[4], 1);
  cr_assert_eq(l->count[0] + l->count[1] + l->count[2], 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, send_rejects_bad_headers_and_lengths, .init = setup, .fini = teardown,
     .timeout = 60)
{
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  q7_header nullname = { NULL, "v", 1 };
  q7_header empty = { "", "v", 1 };
  q7_header nullval = { "h", NULL, 3 };
  q7_header ok = { "ok", "v", 1 };
  q7_header mixed[] = { ok, empty };
  struct {
    const char *what;
    q7_msg m;
  } bad[] = {
    { "NULL header name", { .topic = t, .headers = &nullname, .header_count = 1 } },
    { "empty header name", { .topic = t, .headers = &empty, .header_count = 1 } },
    { "second header empty", { .topic = t, .headers = mixed, .header_count = 2 } },
    { "header value NULL, len 3", { .topic = t, .headers = &nullval, .header_count = 1 } },
    { "headers NULL, count 2", { .topic = t, .headers = NULL, .header_count = 2 } },
    { "key NULL, key_len 5", { .topic = t, .key = NULL, .key_len = 5 } },
    { "value NULL, value_len 3", { .topic = t, .value = NULL, .value_len = 3 } },
    { "negative timestamp", { .topic = t, .timestamp_ms = -5 } },
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    bad[i].m.partition = 0;
    int rc = P_send(l, p, &bad[i].m);
    cr_assert_eq(rc, Q7_EINVAL, "send with %s -> %d", bad[i].what, rc);
    cr_assert(q7_last_error()[0], "send with %s: no message", bad[i].what);
    rc = q7_producer_send_sync(p, &bad[i].m, NULL, NULL);
    cr_assert_eq(rc, Q7_EINVAL, "send_sync with %s -> %d", bad[i].what, rc);
    /* And with the partitioner picking. */
    bad[i].m.partition = Q7_PARTITION_ANY;
    rc = P_send(l, p, &bad[i].m);
    cr_assert_eq(rc, Q7_EINVAL, "send (any partition) with %s -> %d", bad[i].what, rc);
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(hw_of(t, 0), 0, "an invalid record was written");
  cr_assert_eq(atomic_load(&l->calls), 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, send_sync_returns_partition_and_consecutive_offsets, .init = setup,
     .fini = teardown, .timeout = 60)
{
  q7_topic *t = topic_make("t", 3, NULL);
  drlog *l = drlog_new("t");
  q7_producer *p = producer_make(l, NULL);
  char val[32];
  for (int i = 0; i < 50; i++) {
    int n = snprintf(val, sizeof val, "s%d", i);
    q7_msg m = msg(t, 1, val, (size_t)n, i + 1);
    int32_t part = -1;
    int64_t off = -1;
    Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, &part, &off));
    cr_assert_eq(part, 1);
    cr_assert_eq(off, i, "send_sync %d got offset %lld", i, (long long)off);
    /* Committed when it returns. */
    cr_assert_eq(hw_of(t, 1), i + 1);
  }
  q7_msg m = msg(t, 1, "last", 4, 0);
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL)); /* NULL outs are fine */
  cr_assert_eq(hw_of(t, 1), 51);
  q7_record r;
  read_one(t, 1, 17, &r);
  cr_assert(value_is(&r, "s17"));
  cr_assert_eq(P_poll(l, p, 0), 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  cr_assert_eq(atomic_load(&l->calls), 0, "send_sync called the delivery callback");
  q7_topic_close(t);
  free(l);
}

Test(producer, send_sync_orders_after_records_pending_on_the_partition, .init = setup,
     .fini = teardown, .timeout = 60)
{
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "600000", "batch.size", "10000000", NULL };
  q7_producer *p = producer_make(l, kv);
  for (int i = 0; i < 5; i++) {
    q7_msg m = msg(t, 0, "async", 5, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  q7_msg m = msg(t, 0, "sync", 4, 0);
  int64_t off;
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, &off));
  cr_assert_eq(off, 5, "send_sync overtook records sent before it (offset %lld)", (long long)off);
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  for (int i = 0; i < 5; i++) {
    cr_assert_eq(l->count[i], 1);
    cr_assert_eq(l->off[i], i);
  }
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

/* ------------------------------------------- concurrent group commit */

enum { GC_THREADS = 8, GC_EACH = 200 };

typedef struct gc_arg {
  q7_topic *t;
  int id;
  int rc;
  int each;                       /* 0: GC_EACH */
  int64_t off[GC_EACH];
} gc_arg;

static void *
gc_thread(void *arg)
{
  gc_arg *a = arg;
  q7_producer *p;
  char val[32];
  if ((a->rc = q7_producer_new(q, NULL, &p)))
    return NULL;
  int each = a->each ? a->each : GC_EACH;
  for (int i = 0; i < each; i++) {
    int n = snprintf(val, sizeof val, "t%d-%d", a->id, i);
    q7_msg m = msg(a->t, 0, val, (size_t)n, 0);
    int32_t part = -1;
    if ((a->rc = q7_producer_send_sync(p, &m, &part, &a->off[i])))
      break;
    if (part != 0) {
      a->rc = -1000;
      break;
    }
  }
  int rc = q7_producer_close(p);
  if (!a->rc)
    a->rc = rc;
  return NULL;
}

Test(producer, concurrent_send_sync_gives_dense_unique_offsets, .init = setup, .fini = teardown,
     .timeout = 180)
{
  /* Each thread has its own producer and its own topic handle (handles are
   * handle-owned); the store is shared. */
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  gc_arg *a = calloc(GC_THREADS, sizeof *a);
  pthread_t th[GC_THREADS];
  for (int i = 0; i < GC_THREADS; i++) {
    a[i].id = i;
    Q7_OK_OR_FAIL(q7_topic_open(q, "t", &a[i].t));
  }
  for (int i = 0; i < GC_THREADS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, gc_thread, &a[i]), 0);
  for (int i = 0; i < GC_THREADS; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < GC_THREADS; i++)
    cr_assert_eq(a[i].rc, Q7_OK, "thread %d: %d (%s)", i, a[i].rc, q7_strerror(a[i].rc));

  enum { TOTAL = GC_THREADS * GC_EACH };
  int *owner = malloc(TOTAL * sizeof *owner);
  for (int i = 0; i < TOTAL; i++)
    owner[i] = -1;
  for (int i = 0; i < GC_THREADS; i++) {
    for (int j = 0; j < GC_EACH; j++) {
      int64_t o = a[i].off[j];
      cr_assert(o >= 0 && o < TOTAL, "thread %d record %d: offset %lld out of 0..%d", i, j,
                (long long)o, TOTAL - 1);
      cr_assert_eq(owner[o], -1, "offset %lld given twice", (long long)o);
      owner[o] = i * GC_EACH + j;
      if (j)
        cr_assert_gt(o, a[i].off[j - 1], "thread %d: offsets not increasing", i);
    }
  }
  cr_assert_eq(hw_of(a[0].t, 0), TOTAL);
  /* The record at each offset is the one that was told that offset. */
  q7_partition *pp;
  q7_record r[100];
  char want[32];
  Q7_OK_OR_FAIL(q7_topic_partition(a[0].t, 0, &pp));
  for (int64_t o = 0; o < TOTAL;) {
    int n = q7_partition_read(pp, o, r, 100);
    cr_assert_gt(n, 0, "read at %lld -> %d", (long long)o, n);
    for (int k = 0; k < n; k++) {
      int w = owner[o + k];
      snprintf(want, sizeof want, "t%d-%d", w / GC_EACH, w % GC_EACH);
      cr_assert(value_is(&r[k], want), "offset %lld is not %s", (long long)(o + k), want);
    }
    o += n;
  }
  q7_partition_read(pp, 0, NULL, 0);
  for (int i = 0; i < GC_THREADS; i++)
    q7_topic_close(a[i].t);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  free(owner);
  free(a);
}

/* Callers leave one by one (thread i sends 25 * (i + 1)): a leader that
 * gathers for the callers of the last commit gives up after a bounded wait
 * when one has gone, and every caller still gets its own offset, durably. */
Test(producer, group_commit_with_callers_leaving_gives_dense_offsets_promptly, .init = setup,
     .fini = teardown, .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  gc_arg *a = calloc(GC_THREADS, sizeof *a);
  pthread_t th[GC_THREADS];
  int total = 0;
  for (int i = 0; i < GC_THREADS; i++) {
    a[i].id = i;
    a[i].each = 25 * (i + 1);
    total += a[i].each;
    Q7_OK_OR_FAIL(q7_topic_open(q, "t", &a[i].t));
  }
  int64_t t0 = mono_ms();
  for (int i = 0; i < GC_THREADS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, gc_thread, &a[i]), 0);
  for (int i = 0; i < GC_THREADS; i++)
    pthread_join(th[i], NULL);
  int64_t took = mono_ms() - t0;
  char *seen = calloc((size_t)total, 1);
  for (int i = 0; i < GC_THREADS; i++) {
    cr_assert_eq(a[i].rc, Q7_OK, "thread %d: %d (%s)", i, a[i].rc, q7_strerror(a[i].rc));
    for (int j = 0; j < a[i].each; j++) {
      int64_t o = a[i].off[j];
      cr_assert(o >= 0 && o < total, "offset %lld out of 0..%d", (long long)o, total - 1);
      cr_assert_eq(seen[o], 0, "offset %lld given twice", (long long)o);
      seen[o] = 1;
    }
  }
  cr_assert_eq(hw_of(a[0].t, 0), total);
  /* 900 durable sends; a gathering leader waits at most 1 ms a commit. */
  cr_assert_lt(took, 60000, "%d durable sends took %lld ms", total, (long long)took);
  for (int i = 0; i < GC_THREADS; i++)
    q7_topic_close(a[i].t);
  free(seen);
  free(a);
}

/* ------------------------------------------------- storage.max.bytes */

static void
fill_value(unsigned char *buf, size_t len, uint32_t seed)
{
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (unsigned char)x;
  }
}

/* Every record in [0, n) of partition 0 of @t has the value fill_value(i). */
static void
check_filled(q7_topic *t, int64_t n, size_t len)
{
  q7_partition *pp;
  q7_record r[16];
  unsigned char *want = malloc(len);
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &pp));
  for (int64_t o = 0; o < n;) {
    int k = q7_partition_read(pp, o, r, 16);
    cr_assert_gt(k, 0, "read at %lld -> %d (%s)", (long long)o, k, q7_last_error());
    for (int j = 0; j < k && o + j < n; j++) {
      fill_value(want, len, (uint32_t)(o + j));
      cr_assert_eq(r[j].value_len, len, "record %lld: length %zu", (long long)(o + j),
                   r[j].value_len);
      cr_assert_eq(memcmp(r[j].value, want, len), 0, "record %lld differs", (long long)(o + j));
    }
    o += k;
  }
  q7_partition_read(pp, 0, NULL, 0);
  free(want);
}

Test(producer, storage_full_is_efull_and_keeps_acknowledged_records, .init = setup_nostore,
     .fini = teardown, .timeout = 180)
{
  enum { LEN = 8192, MAXN = 4000 };
  const char *skv[] = { "storage.max.bytes", "4194304", "sync", "false", NULL };
  q7_conf *sc = conf_of(skv);
  store_open(sc);
  q7_topic *t = topic_make("t", 1, NULL);
  q7_producer *p = producer_make(NULL, NULL);
  unsigned char *val = malloc(LEN);
  int64_t acked = 0;
  int rc = Q7_OK;
  for (int i = 0; i < MAXN; i++) {
    fill_value(val, LEN, (uint32_t)i);
    q7_msg m = msg(t, 0, val, LEN, 0);
    int64_t off = -1;
    rc = q7_producer_send_sync(p, &m, NULL, &off);
    if (rc)
      break;
    cr_assert_eq(off, acked, "offset %lld after %lld acknowledged", (long long)off,
                 (long long)acked);
    acked++;
  }
  cr_assert_eq(rc, Q7_EFULL, "after %lld records of %d bytes against 4 MiB: %d (%s)",
               (long long)acked, LEN, rc, q7_last_error());
  cr_assert(q7_last_error()[0]);
  cr_assert_gt(acked, 10, "EFULL after only %lld records", (long long)acked);
  cr_assert_lt(acked * LEN, 4194304, "%lld bytes acknowledged under a 4 MiB limit",
               (long long)(acked * LEN));
  /* Still full: nothing of the failed record is visible. */
  q7_msg m = msg(t, 0, val, LEN, 0);
  cr_assert_eq(q7_producer_send_sync(p, &m, NULL, NULL), Q7_EFULL);
  cr_assert_eq(hw_of(t, 0), acked);
  check_filled(t, acked, LEN);

  /* Asynchronous sends report EFULL, once each, in the calling thread. */
  drlog *l = drlog_new("t");
  q7_producer *pa = producer_make(l, NULL);
  for (int i = 0; i < 20; i++) {
    q7_msg ma = msg(t, 0, val, LEN, i + 1);
    Q7_OK_OR_FAIL(P_send(l, pa, &ma));
  }
  Q7_OK_OR_FAIL(P_flush(l, pa, -1));
  cr_assert_eq(atomic_load(&l->calls), 20);
  drlog_assert_clean(l);
  for (int i = 0; i < 20; i++) {
    cr_assert_eq(l->count[i], 1);
    cr_assert_eq(l->err[i], Q7_EFULL, "report %d: err %d", i, l->err[i]);
    cr_assert_eq(l->off[i], -1);
  }
  Q7_OK_OR_FAIL(P_close(l, pa));
  cr_assert_eq(hw_of(t, 0), acked);

  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;

  /* The store re-opens, with every acknowledged record intact. */
  store_open(sc);
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  cr_assert_eq(hw_of(t, 0), acked);
  check_filled(t, acked, LEN);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  q7_conf_destroy(sc);
  free(val);
  free(l);
}

Test(producer, records_past_the_initial_map_size_grow_the_map, .init = setup_nostore,
     .fini = teardown, .timeout = 600)
{
  /* 150 MiB in 1 MiB batches: well past the 64 MiB a partition map starts at. */
  enum { LEN = 64 * 1024, N = 2400 };
  const char *skv[] = { "sync", "false", NULL };
  q7_conf *sc = conf_of(skv);
  store_open(sc);
  q7_conf_destroy(sc);
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "batch.size", "1048576", "linger.ms", "600000", NULL };
  q7_producer *p = producer_make(l, kv);
  unsigned char *val = malloc(LEN);
  for (int i = 0; i < N; i++) {
    fill_value(val, LEN, (uint32_t)i);
    q7_msg m = msg(t, 0, val, LEN, i + 1);
    int rc = P_send(l, p, &m);
    cr_assert_eq(rc, Q7_OK, "send %d -> %d (%s)", i, rc, q7_last_error());
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), N);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(l->err[i], Q7_OK, "record %d: %d (%s)", i, l->err[i], q7_strerror(l->err[i]));
    cr_assert_eq(l->off[i], i);
  }
  /* send_sync after growth, too. */
  q7_msg m = msg(t, 0, "tail", 4, 0);
  int64_t off;
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, &off));
  cr_assert_eq(off, N);
  cr_assert_eq(hw_of(t, 0), N + 1);
  check_filled(t, N, LEN);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  free(val);
  free(l);
}

/* ---------------------------------------------------- flush and close */

Test(producer, flush_with_timeout_zero_commits_pending_records, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 100 };
  q7_topic *t = topic_make("t", 2, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "600000", "batch.size", "10000000", NULL };
  q7_producer *p = producer_make(l, kv);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, i % 2, "f", 1, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  int rc = P_flush(l, p, 0);
  cr_assert(rc == Q7_OK || rc == Q7_ETIMEDOUT, "flush(0) -> %d", rc);
  if (rc == Q7_OK) {
    cr_assert_eq(atomic_load(&l->calls), N, "flush(0) returned OK with %d of %d reported",
                 atomic_load(&l->calls), N);
    cr_assert_eq(hw_of(t, 0) + hw_of(t, 1), N);
  } else {
    cr_assert(q7_last_error()[0]);
  }
  Q7_OK_OR_FAIL(P_flush(l, p, -1));
  cr_assert_eq(atomic_load(&l->calls), N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(l->count[i], 1, "record %d reported %d times", i, l->count[i]);
  cr_assert_eq(hw_of(t, 0) + hw_of(t, 1), N);
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_flush(l, p, 0)); /* nothing pending */
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, flush_with_timeout_waits_for_every_report, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 300 };
  q7_topic *t = topic_make("t", 3, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "1", "batch.size", "200", NULL };
  q7_producer *p = producer_make(l, kv);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, Q7_PARTITION_ANY, "abcdefgh", 8, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  Q7_OK_OR_FAIL(P_flush(l, p, 30000));
  cr_assert_eq(atomic_load(&l->calls), N);
  int64_t total = 0;
  for (int k = 0; k < 3; k++)
    total += hw_of(t, k);
  cr_assert_eq(total, N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(l->count[i], 1);
  drlog_assert_clean(l);
  Q7_OK_OR_FAIL(P_close(l, p));
  q7_topic_close(t);
  free(l);
}

Test(producer, close_flushes_and_reports_pending_records, .init = setup, .fini = teardown,
     .timeout = 60)
{
  enum { N = 50 };
  q7_topic *t = topic_make("t", 1, NULL);
  drlog *l = drlog_new("t");
  const char *kv[] = { "linger.ms", "600000", "batch.size", "10000000", NULL };
  q7_producer *p = producer_make(l, kv);
  for (int i = 0; i < N; i++) {
    q7_msg m = msg(t, 0, "c", 1, i + 1);
    Q7_OK_OR_FAIL(P_send(l, p, &m));
  }
  cr_assert_eq(hw_of(t, 0), 0);
  Q7_OK_OR_FAIL(P_close(l, p));
  cr_assert_eq(hw_of(t, 0), N, "close did not commit pending records");
  cr_assert_eq(atomic_load(&l->calls), N, "close reported %d of %d", atomic_load(&l->calls), N);
  for (int i = 0; i < N; i++) {
    cr_assert_eq(l->count[i], 1);
    cr_assert_eq(l->err[i], Q7_OK);
    cr_assert_eq(l->off[i], i);
  }
  drlog_assert_clean(l);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  free(l);
}

Test(producer, store_close_is_ebusy_while_a_producer_is_open, .init = setup, .fini = teardown,
     .timeout = 30)
{
  q7_producer *p = producer_make(NULL, NULL);
  Q7_FAILS_WITH(Q7_EBUSY, q7_close(q));
  Q7_OK_OR_FAIL(q7_producer_close(p));
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
}
