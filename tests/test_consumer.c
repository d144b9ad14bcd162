/* test_consumer.c - q7_consumer_*: assignment and its starting offsets,
 * poll (order, no duplicates, no gaps, wake-ups, record lifetime), seek,
 * position, commits, auto-commit, committed offsets and lag, and resuming
 * after a consumer process is killed. */
#include "helpers.h"
#include "fixture.h"
#include "proc.h"

#include <criterion/logging.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

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

static q7_consumer *
consumer_make(const char *group, const char *const *kv)
{
  q7_conf *c = conf_of(kv);
  q7_consumer *k;
  Q7_OK_OR_FAIL(q7_consumer_new(q, group, c, &k));
  q7_conf_destroy(c);
  return k;
}

static int64_t
hw_of(const char *topic, int32_t part)
{
  q7_topic *t;
  q7_partition *p;
  int64_t hw;
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, part, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, NULL, &hw));
  q7_topic_close(t);
  return hw;
}

/* Record values are "P.O": partition and offset. */
static int
val_fmt(char *buf, size_t n, int32_t part, int64_t off)
{
  return snprintf(buf, n, "%d.%lld", (int)part, (long long)off);
}

static bool
val_ok(const q7_record *r)
{
  char want[48];
  int n = val_fmt(want, sizeof want, r->partition, r->offset);
  return r->value_len == (size_t)n && memcmp(r->value, want, (size_t)n) == 0;
}

/* Append @n records to @part of @topic: send_sync one by one when @sync,
 * else batched (several records per stored batch). */
static void
produce(const char *topic, int32_t part, int n, bool sync)
{
  q7_topic *t;
  q7_producer *p;
  q7_conf *c = NULL;
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  if (!sync) {
    const char *kv[] = { "batch.size", "300", "linger.ms", "600000", NULL };
    c = conf_of(kv);
  }
  Q7_OK_OR_FAIL(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  int64_t next = hw_of(topic, part);
  char v[48];
  for (int i = 0; i < n; i++) {
    int len = val_fmt(v, sizeof v, part, next + i);
    q7_msg m = { .topic = t, .partition = part, .value = v, .value_len = (size_t)len };
    if (sync) {
      int64_t off;
      Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, &off));
      cr_assert_eq(off, next + i);
    } else {
      Q7_OK_OR_FAIL(q7_producer_send(p, &m));
    }
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
  cr_assert_eq(hw_of(topic, part), next + n);
}

static void
topic_new(const char *name, int32_t parts)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, name, parts, NULL));
}

/* Poll once (bounded wait) and return the first record's offset, or -1. */
static int64_t
first_polled(q7_consumer *c, int timeout_ms)
{
  q7_record r[4];
  int n = q7_consumer_poll(c, r, 4, timeout_ms);
  cr_assert_geq(n, 0, "poll -> %d (%s)", n, q7_last_error());
  if (!n)
    return -1;
  cr_assert(val_ok(&r[0]), "record %lld holds the wrong value", (long long)r[0].offset);
  return r[0].offset;
}

static int64_t
position_of(q7_consumer *c, const char *topic, int32_t part)
{
  int64_t pos = -12345;
  Q7_OK_OR_FAIL(q7_consumer_position(c, topic, part, &pos));
  return pos;
}

/* ================================================ assignment and offsets */

Test(consumer, assign_absolute_offset_starts_there, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 10, false);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 4));
  cr_assert_eq(position_of(c, "t", 0), 4);
  q7_record r[20];
  int n = q7_consumer_poll(c, r, 20, 1000);
  cr_assert_eq(n, 6, "poll from 4 of 10 -> %d", n);
  for (int i = 0; i < n; i++) {
    cr_assert_eq(r[i].offset, 4 + i);
    cr_assert(val_ok(&r[i]));
    cr_assert_str_eq(r[i].topic, "t");
    cr_assert_eq(r[i].partition, 0);
  }
  cr_assert_eq(position_of(c, "t", 0), 10);
  /* Assigning again moves the position. */
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 8));
  cr_assert_eq(first_polled(c, 1000), 8);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, assign_beginning_and_end, .init = setup, .fini = teardown, .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 10, true);
  q7_consumer *b = consumer_make(NULL, NULL);
  q7_consumer *e = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(b, "t", 0, Q7_OFFSET_BEGINNING));
  Q7_OK_OR_FAIL(q7_consumer_assign(e, "t", 0, Q7_OFFSET_END));
  cr_assert_eq(position_of(b, "t", 0), 0);
  cr_assert_eq(position_of(e, "t", 0), 10);
  cr_assert_eq(first_polled(b, 1000), 0);
  q7_record r[4];
  cr_assert_eq(q7_consumer_poll(e, r, 4, 0), 0, "END consumer saw an old record");
  produce("t", 0, 1, true);
  cr_assert_eq(first_polled(e, 5000), 10);
  Q7_OK_OR_FAIL(q7_consumer_close(b));
  Q7_OK_OR_FAIL(q7_consumer_close(e));
}

Test(consumer, assign_committed_starts_at_the_group_commit, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 2);
  produce("t", 0, 10, false);
  produce("t", 1, 10, false);
  const char *kv[] = { "enable.auto.commit", "false", "auto.offset.reset", "none", NULL };
  q7_consumer *a = consumer_make("g", kv);
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(a, "t", 0, 6));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(a, "t", 1, 10));
  Q7_OK_OR_FAIL(q7_consumer_close(a));
  q7_consumer *c = consumer_make("g", kv);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 1, Q7_OFFSET_COMMITTED));
  cr_assert_eq(position_of(c, "t", 0), 6);
  cr_assert_eq(position_of(c, "t", 1), 10);
  cr_assert_eq(first_polled(c, 1000), 6);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  /* Another group does not see g's commit. */
  q7_consumer *o = consumer_make("other", kv);
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_assign(o, "t", 0, Q7_OFFSET_COMMITTED));
  Q7_OK_OR_FAIL(q7_consumer_close(o));
}

Test(consumer, assign_committed_without_commit_follows_auto_offset_reset, .init = setup,
     .fini = teardown, .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 10, false);
  const char *earliest[] = { "auto.offset.reset", "earliest", NULL };
  const char *latest[] = { "auto.offset.reset", "latest", NULL };
  const char *none[] = { "auto.offset.reset", "none", NULL };

  q7_consumer *c = consumer_make("g", earliest);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
  cr_assert_eq(position_of(c, "t", 0), 0, "earliest must start at the log start");
  cr_assert_eq(first_polled(c, 1000), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c)); /* auto-commit on: commits 4 */

  c = consumer_make("g2", latest);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
  cr_assert_eq(position_of(c, "t", 0), 10, "latest must start at the end");
  q7_record r[4];
  cr_assert_eq(q7_consumer_poll(c, r, 4, 0), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c));

  c = consumer_make("g3", none);
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
  const char *tp[2];
  int32_t pp[2];
  cr_assert_eq(q7_consumer_assignment(c, tp, pp, 2), 0, "a failed assign left an assignment");
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_position(c, "t", 0, &(int64_t){ 0 }));
  Q7_OK_OR_FAIL(q7_consumer_close(c));

  /* Without a group there is nothing committed: the reset applies too. */
  c = consumer_make(NULL, earliest);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
  cr_assert_eq(position_of(c, "t", 0), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  c = consumer_make(NULL, none);
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, assign_rejects_bad_arguments, .init = setup, .fini = teardown, .timeout = 60)
{
  topic_new("t", 2);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_assign(NULL, "t", 0, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_assign(c, NULL, 0, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_assign(c, "../t", 0, 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_assign(c, "missing", 0, 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_assign(c, "t", 2, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_assign(c, "t", -1, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_assign(c, "t", 0, -7));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_assign(c, "t", 0, -999));
  const char *tp[4];
  int32_t pp[4];
  cr_assert_eq(q7_consumer_assignment(c, tp, pp, 4), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_consumer_close(NULL));
  q7_consumer *out = NULL;
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_new(NULL, "g", NULL, &out));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_new(q, "", NULL, &out));
  char longname[300];
  memset(longname, 'g', 256);
  longname[256] = 0;
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_new(q, longname, NULL, &out));
  cr_assert_null(out);
  longname[255] = 0; /* 255 bytes is allowed, as are spaces */
  Q7_OK_OR_FAIL(q7_consumer_new(q, longname, NULL, &out));
  Q7_OK_OR_FAIL(q7_consumer_close(out));
  Q7_OK_OR_FAIL(q7_consumer_new(q, "a group / with spaces", NULL, &out));
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(out, "t", 0, 0));
  int64_t next = -1;
  Q7_OK_OR_FAIL(q7_committed(q, "a group / with spaces", "t", 0, &next));
  cr_assert_eq(next, 0);
  Q7_OK_OR_FAIL(q7_consumer_close(out));
}

/* ================================================================ poll */

Test(consumer, poll_returns_records_in_order_never_twice_never_skipping, .init = setup,
     .fini = teardown, .timeout = 120)
{
  /* Batches of several records and single-record batches, interleaved, so
   * small polls start and stop inside batches. */
  topic_new("t", 1);
  for (int i = 0; i < 10; i++) {
    produce("t", 0, 37, false);
    produce("t", 0, 3, true);
  }
  const int64_t N = 400;
  cr_assert_eq(hw_of("t", 0), N);
  const size_t maxes[] = { 1, 3, 7, 64 };
  for (size_t mi = 0; mi < sizeof maxes / sizeof *maxes; mi++) {
    q7_consumer *c = consumer_make(NULL, NULL);
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
    q7_record r[64];
    int64_t next = 0;
    for (int polls = 0; next < N && polls < 2000; polls++) {
      int n = q7_consumer_poll(c, r, maxes[mi], 1000);
      cr_assert_geq(n, 0, "poll -> %d (%s)", n, q7_last_error());
      cr_assert_leq((size_t)n, maxes[mi], "poll returned %d > max %zu", n, maxes[mi]);
      for (int i = 0; i < n; i++) {
        cr_assert_eq(r[i].offset, next, "max %zu: got offset %lld, want %lld", maxes[mi],
                     (long long)r[i].offset, (long long)next);
        cr_assert(val_ok(&r[i]), "offset %lld: wrong value", (long long)next);
        next++;
      }
    }
    cr_assert_eq(next, N, "max %zu: read %lld of %lld", maxes[mi], (long long)next,
                 (long long)N);
    cr_assert_eq(q7_consumer_poll(c, r, 64, 0), 0, "a record came back twice");
    cr_assert_eq(position_of(c, "t", 0), N);
    Q7_OK_OR_FAIL(q7_consumer_close(c));
  }
}

/* Large batches (overflow pages), read twice by fresh consumers, over the
 * map's growth past its first 64 MiB (a remap): every record intact each
 * time, and each reader's memo of the batch it checked last stays right. */
static void
big_produce(q7_topic *t, int64_t from, int64_t n)
{
  q7_conf *c = q7_conf_new();
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_conf_set(c, "batch.size", "262144"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "linger.ms", "600000"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", "false"));
  Q7_OK_OR_FAIL(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  static char v[2000];
  for (int64_t i = from; i < from + n; i++) {
    memset(v, 'a' + (int)(i % 26), sizeof v);
    memcpy(v, &i, sizeof i);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = sizeof v };
    Q7_OK_OR_FAIL(q7_producer_send(p, &m));
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
}

static void
big_read_all(int64_t n)
{
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "big", 0, Q7_OFFSET_BEGINNING));
  q7_record r[500];
  int64_t next = 0;
  for (int polls = 0; next < n && polls < 100000; polls++) {
    int k = q7_consumer_poll(c, r, 500, 1000);
    cr_assert_geq(k, 0, "poll -> %d (%s)", k, q7_last_error());
    for (int i = 0; i < k; i++, next++) {
      int64_t got;
      cr_assert_eq(r[i].offset, next);
      cr_assert_eq(r[i].value_len, 2000);
      memcpy(&got, r[i].value, sizeof got);
      cr_assert_eq(got, next, "offset %lld holds record %lld", (long long)next, (long long)got);
      cr_assert_eq(((const char *)r[i].value)[1999], 'a' + (int)(next % 26));
    }
  }
  cr_assert_eq(next, n, "read %lld of %lld", (long long)next, (long long)n);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, large_batches_read_twice_across_a_map_growth, .init = setup, .fini = teardown,
     .timeout = 120)
{
  topic_new("big", 1);
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "big", &t));
  big_produce(t, 0, 10000); /* 20 MB */
  big_read_all(10000);
  big_read_all(10000);
  big_produce(t, 10000, 30000); /* 80 MB in all: past the first map */
  big_read_all(40000);
  big_read_all(40000);
  q7_topic_close(t);
}

Test(consumer, poll_keeps_order_per_partition_over_many_partitions, .init = setup,
     .fini = teardown, .timeout = 120)
{
  enum { P = 3, PER = 150 };
  topic_new("t", P);
  for (int k = 0; k < P; k++)
    produce("t", k, PER, k != 1);
  q7_consumer *c = consumer_make(NULL, NULL);
  for (int k = 0; k < P; k++)
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", k, Q7_OFFSET_BEGINNING));
  int64_t next[P] = { 0 };
  int total = 0;
  q7_record r[5];
  for (int polls = 0; total < P * PER && polls < 1000; polls++) {
    int n = q7_consumer_poll(c, r, 5, 1000);
    cr_assert_geq(n, 0);
    for (int i = 0; i < n; i++) {
      int32_t k = r[i].partition;
      cr_assert(k >= 0 && k < P);
      cr_assert_eq(r[i].offset, next[k], "partition %d: offset %lld, want %lld", k,
                   (long long)r[i].offset, (long long)next[k]);
      cr_assert(val_ok(&r[i]));
      next[k]++;
      total++;
    }
  }
  cr_assert_eq(total, P * PER);
  for (int k = 0; k < P; k++)
    cr_assert_eq(next[k], PER);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, poll_returns_at_most_max_poll_records, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 20, false);
  const char *kv[] = { "max.poll.records", "3", NULL };
  q7_consumer *c = consumer_make(NULL, kv);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[100];
  int n = q7_consumer_poll(c, r, 100, 1000);
  cr_assert_eq(n, 3, "max.poll.records 3: poll returned %d", n);
  cr_assert_eq(r[2].offset, 2);
  cr_assert_eq(q7_consumer_poll(c, r, 0, 0), 0);
  cr_assert_eq(position_of(c, "t", 0), 3, "poll with max 0 moved the position");
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_poll(c, NULL, 4, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_poll(NULL, r, 4, 0));
  cr_assert_eq(first_polled(c, 1000), 3);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, poll_with_timeout_zero_returns_zero_when_empty, .init = setup, .fini = teardown,
     .timeout = 30)
{
  topic_new("t", 2);
  q7_consumer *c = consumer_make(NULL, NULL);
  q7_record r[4];
  cr_assert_eq(q7_consumer_poll(c, r, 4, 0), 0, "poll without assignment");
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 1, Q7_OFFSET_END));
  for (int i = 0; i < 20; i++)
    cr_assert_eq(q7_consumer_poll(c, r, 4, 0), 0);
  cr_assert_eq(q7_consumer_poll(c, r, 4, 50), 0, "a short timeout on an empty topic");
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

/* ------------------------------------------------------- wake-ups */

enum { WAKE_ROUNDS = 50 };

typedef struct waker {
  q7_topic *t;
  sem_t go;
  atomic_llong sent_ns;
  atomic_int stop;
  int rc;
} waker;

static void *
waker_thread(void *arg)
{
  waker *w = arg;
  q7_producer *p;
  if ((w->rc = q7_producer_new(q, NULL, &p)))
    return NULL;
  for (int i = 0; i < WAKE_ROUNDS; i++) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 30;
    if (sem_timedwait(&w->go, &dl) || atomic_load(&w->stop))
      break;
    sleep_ms(5 + i % 7); /* let the consumer go to sleep */
    char v[48];
    int n = val_fmt(v, sizeof v, 0, i);
    q7_msg m = { .topic = w->t, .partition = 0, .value = v, .value_len = (size_t)n };
    atomic_store(&w->sent_ns, mono_ns());
    if ((w->rc = q7_producer_send_sync(p, &m, NULL, NULL)))
      break;
  }
  q7_producer_close(p);
  return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

Test(consumer, poll_wakes_when_another_thread_produces, .init = setup_nostore, .fini = teardown,
     .timeout = 180)
{
  const char *skv[] = { "sync", "false", NULL };
  q7_conf *sc = conf_of(skv);
  store_open(sc);
  q7_conf_destroy(sc);
  topic_new("t", 1);
  waker w = { 0 };
  sem_init(&w.go, 0, 0);
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &w.t));
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_END));
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, waker_thread, &w), 0);
  int64_t lat[WAKE_ROUNDS];
  int rounds = 0;
  for (; rounds < WAKE_ROUNDS; rounds++) {
    q7_record r[4];
    sem_post(&w.go);
    int n = q7_consumer_poll(c, r, 4, 10000);
    int64_t now = mono_ns();
    if (n != 1 || r[0].offset != rounds) {
      atomic_store(&w.stop, 1);
      sem_post(&w.go);
      pthread_join(th, NULL);
      cr_assert_fail("round %d: poll -> %d (%s), offset %lld", rounds, n, q7_last_error(),
                     n > 0 ? (long long)r[0].offset : -1LL);
    }
    lat[rounds] = now - atomic_load(&w.sent_ns);
  }
  pthread_join(th, NULL);
  cr_assert_eq(w.rc, Q7_OK);
  qsort(lat, WAKE_ROUNDS, sizeof *lat, cmp_i64);
  double p50 = lat[WAKE_ROUNDS / 2] / 1e6, p99 = lat[(WAKE_ROUNDS * 99) / 100] / 1e6;
  cr_log_info("in-process wake-up, send_sync to poll return, %d rounds: p50 %.3f ms, "
              "p99 %.3f ms, max %.3f ms",
              WAKE_ROUNDS, p50, p99, lat[WAKE_ROUNDS - 1] / 1e6);
  cr_assert_lt(p99, 500.0, "p99 wake-up latency %.1f ms", p99);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  q7_topic_close(w.t);
  sem_destroy(&w.go);
}

/* ----------------------------------------------------- record lifetime */

Test(consumer, records_stay_valid_until_the_next_poll, .init = setup_nostore, .fini = teardown,
     .timeout = 120)
{
  const char *skv[] = { "sync", "false", NULL };
  q7_conf *sc = conf_of(skv);
  store_open(sc);
  q7_conf_destroy(sc);
  topic_new("t", 1);
  produce("t", 0, 50, true);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[50];
  int n = q7_consumer_poll(c, r, 50, 1000);
  cr_assert_eq(n, 50);
  char *copy[50];
  for (int i = 0; i < n; i++) {
    copy[i] = malloc(r[i].value_len + 1);
    memcpy(copy[i], r[i].value, r[i].value_len);
  }
  /* Many more commits rewrite (copy-on-write) and free the pages the held
   * records sit in; they may be reused only once the records are released. */
  produce("t", 0, 3000, true);
  for (int i = 0; i < n; i++) {
    cr_assert_eq(r[i].offset, i);
    cr_assert(r[i].value_len && memcmp(r[i].value, copy[i], r[i].value_len) == 0,
              "record %d changed while held", i);
    cr_assert(val_ok(&r[i]));
  }
  cr_assert_eq(first_polled(c, 1000), 50);
  for (int i = 0; i < n; i++)
    free(copy[i]);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

/* ========================================================= seek, position */

Test(consumer, seek_moves_the_next_poll, .init = setup, .fini = teardown, .timeout = 60)
{
  topic_new("t", 2);
  produce("t", 0, 20, false);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[32];
  cr_assert_eq(q7_consumer_poll(c, r, 32, 1000), 20);
  Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, 5));
  cr_assert_eq(position_of(c, "t", 0), 5);
  int n = q7_consumer_poll(c, r, 32, 1000);
  cr_assert_eq(n, 15, "after seek to 5: %d records", n);
  for (int i = 0; i < n; i++)
    cr_assert_eq(r[i].offset, 5 + i);
  Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, Q7_OFFSET_BEGINNING));
  cr_assert_eq(first_polled(c, 1000), 0);
  Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, Q7_OFFSET_END));
  cr_assert_eq(position_of(c, "t", 0), 20);
  cr_assert_eq(q7_consumer_poll(c, r, 32, 0), 0);
  Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, 20)); /* the high watermark itself is valid */
  Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, 0));
  cr_assert_eq(first_polled(c, 1000), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, seek_outside_the_log_is_erange, .init = setup, .fini = teardown, .timeout = 60)
{
  topic_new("t", 2);
  produce("t", 0, 20, true);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 7));
  Q7_FAILS_WITH(Q7_ERANGE, q7_consumer_seek(c, "t", 0, 21));
  Q7_FAILS_WITH(Q7_ERANGE, q7_consumer_seek(c, "t", 0, 1000000));
  cr_assert_eq(position_of(c, "t", 0), 7, "a failed seek moved the position");
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_seek(c, "t", 0, -5));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_seek(c, "t", 0, Q7_OFFSET_COMMITTED));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_seek(c, "t", 1, 0)); /* not assigned */
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_seek(c, "other", 0, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_seek(c, "t", -1, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_seek(NULL, "t", 0, 0));
  cr_assert_eq(position_of(c, "t", 0), 7);
  cr_assert_eq(first_polled(c, 1000), 7);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, position_is_the_next_offset_to_return, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 2);
  produce("t", 0, 10, false);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 3));
  cr_assert_eq(position_of(c, "t", 0), 3);
  q7_record r[4];
  cr_assert_eq(q7_consumer_poll(c, r, 4, 1000), 4);
  cr_assert_eq(position_of(c, "t", 0), 7);
  int64_t pos;
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_position(c, "t", 1, &pos));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_position(c, "t", 0, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_position(NULL, "t", 0, &pos));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, unassign_stops_reading_a_partition, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 2);
  produce("t", 0, 5, true);
  produce("t", 1, 5, true);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 1, Q7_OFFSET_BEGINNING));
  const char *tp[4];
  int32_t pp[4];
  cr_assert_eq(q7_consumer_assignment(c, tp, pp, 4), 2);
  Q7_OK_OR_FAIL(q7_consumer_unassign(c, "t", 0));
  cr_assert_eq(q7_consumer_assignment(c, tp, pp, 4), 1);
  cr_assert_str_eq(tp[0], "t");
  cr_assert_eq(pp[0], 1);
  q7_record r[20];
  int n = q7_consumer_poll(c, r, 20, 1000);
  cr_assert_eq(n, 5);
  for (int i = 0; i < n; i++)
    cr_assert_eq(r[i].partition, 1, "record of an unassigned partition");
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_unassign(c, "t", 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_unassign(c, "nope", 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_position(c, "t", 0, &(int64_t){ 0 }));
  Q7_OK_OR_FAIL(q7_consumer_unassign(c, "t", 1));
  cr_assert_eq(q7_consumer_assignment(c, tp, pp, 4), 0);
  produce("t", 1, 1, true);
  cr_assert_eq(q7_consumer_poll(c, r, 20, 0), 0);
  /* Re-assigning works. */
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 2));
  cr_assert_eq(first_polled(c, 1000), 2);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

/* ============================================================ commits, lag */

Test(consumer, commit_and_commit_offset_set_committed_and_lag, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 2);
  produce("t", 0, 10, false);
  produce("t", 1, 4, true);
  const char *kv[] = { "enable.auto.commit", "false", NULL };
  q7_consumer *c = consumer_make("g", kv);
  int64_t next = -1, lag = -1;
  int32_t where = -1;
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "g", "t", 0, &next));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag(q, "g", "t", 0, &lag));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag_max(q, "g", "t", &lag, &where));

  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[6];
  cr_assert_eq(q7_consumer_poll(c, r, 6, 1000), 6);
  Q7_OK_OR_FAIL(q7_consumer_commit(c));
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 6, "commit stored %lld, position was 6", (long long)next);
  Q7_OK_OR_FAIL(q7_lag(q, "g", "t", 0, &lag));
  cr_assert_eq(lag, 4);
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "g", "t", 1, &next));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag(q, "g", "t", 1, &lag));
  Q7_OK_OR_FAIL(q7_lag_max(q, "g", "t", &lag, &where));
  cr_assert_eq(lag, 4);
  cr_assert_eq(where, 0);

  /* commit_offset on a partition the consumer does not read. */
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 1, 1));
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 1, &next));
  cr_assert_eq(next, 1);
  Q7_OK_OR_FAIL(q7_lag(q, "g", "t", 1, &lag));
  cr_assert_eq(lag, 3);
  Q7_OK_OR_FAIL(q7_lag_max(q, "g", "t", &lag, &where));
  cr_assert_eq(lag, 4);
  cr_assert_eq(where, 0);
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 1, 0));
  Q7_OK_OR_FAIL(q7_lag_max(q, "g", "t", &lag, NULL));
  cr_assert_eq(lag, 4);
  Q7_OK_OR_FAIL(q7_lag_max(q, "g", "t", &lag, &where));
  cr_assert_eq(where, 0, "a tie must name the first partition");
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 0, 10)); /* == high watermark */
  Q7_OK_OR_FAIL(q7_lag(q, "g", "t", 0, &lag));
  cr_assert_eq(lag, 0);
  Q7_OK_OR_FAIL(q7_lag_max(q, "g", "t", &lag, &where));
  cr_assert_eq(lag, 4);
  cr_assert_eq(where, 1);
  /* Committing an earlier offset is allowed (a rewind). */
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 0, 2));
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 2);
  /* Lag follows the high watermark. */
  produce("t", 0, 5, true);
  Q7_OK_OR_FAIL(q7_lag(q, "g", "t", 0, &lag));
  cr_assert_eq(lag, 13);

  /* Errors. */
  Q7_FAILS_WITH(Q7_ERANGE, q7_consumer_commit_offset(c, "t", 0, 16));
  Q7_FAILS_WITH(Q7_ERANGE, q7_consumer_commit_offset(c, "t", 1, 5));
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 2, "a refused commit changed the committed offset");
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_commit_offset(c, "t", 0, -3));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_commit_offset(c, "t", 2, 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_commit_offset(c, "missing", 0, 0));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_commit_offset(c, "t", -1, 0));
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "g", "missing", 0, &next));
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "g", "t", 2, &next));
  Q7_FAILS_WITH(Q7_EINVAL, q7_committed(q, "g", "t", -1, &next));
  Q7_FAILS_WITH(Q7_EINVAL, q7_committed(q, NULL, "t", 0, &next));
  Q7_FAILS_WITH(Q7_EINVAL, q7_committed(q, "g", "t", 0, NULL));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag(q, "g", "missing", 0, &lag));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag(q, "g", "t", 2, &lag));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag(q, "nobody", "t", 0, &lag));
  Q7_FAILS_WITH(Q7_EINVAL, q7_lag(q, "g", "t", 0, NULL));
  Q7_FAILS_WITH(Q7_ENOENT, q7_lag_max(q, "nobody", "t", &lag, &where));
  Q7_FAILS_WITH(Q7_EINVAL, q7_lag_max(q, "g", "t", NULL, &where));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_commit(NULL));

  /* Auto-commit is off: close does not commit. */
  Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, 9));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 2, "close committed with enable.auto.commit=false");
}

Test(consumer, commits_survive_reopening_the_store, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 8, true);
  const char *kv[] = { "enable.auto.commit", "false", NULL };
  q7_consumer *c = consumer_make("g", kv);
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(c, "t", 0, 5));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  store_open(NULL);
  int64_t next = -1, lag = -1;
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 5);
  Q7_OK_OR_FAIL(q7_lag(q, "g", "t", 0, &lag));
  cr_assert_eq(lag, 3);
}

Test(consumer, commit_without_a_group_is_estate, .init = setup, .fini = teardown, .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 3, true);
  q7_consumer *c = consumer_make(NULL, NULL);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  cr_assert_eq(first_polled(c, 1000), 0);
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_commit(c));
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_commit_offset(c, "t", 0, 1));
  /* enable.auto.commit (default true) does nothing without a group. */
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(consumer, auto_commit_commits_on_poll_and_on_close, .init = setup, .fini = teardown,
     .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 10, false);
  const char *kv[] = { "enable.auto.commit", "true", "auto.commit.interval.ms", "0", NULL };
  q7_consumer *c = consumer_make("g", kv);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[32];
  cr_assert_eq(q7_consumer_poll(c, r, 32, 1000), 10);
  /* The next poll commits what the previous one returned. */
  cr_assert_eq(q7_consumer_poll(c, r, 32, 0), 0);
  int64_t next = -1;
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 10, "auto-commit on poll stored %lld", (long long)next);
  produce("t", 0, 5, true);
  cr_assert_eq(q7_consumer_poll(c, r, 32, 1000), 5);
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert(next == 10 || next == 15, "committed %lld", (long long)next);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 15, "close did not commit the position (committed %lld)", (long long)next);

  /* A long interval: the poll does not commit, close still does. */
  const char *kv2[] = { "auto.commit.interval.ms", "600000", NULL };
  c = consumer_make("g2", kv2);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 3));
  cr_assert_eq(q7_consumer_poll(c, r, 4, 1000), 4);
  cr_assert_eq(q7_consumer_poll(c, r, 4, 1000), 4);
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "g2", "t", 0, &next));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  Q7_OK_OR_FAIL(q7_committed(q, "g2", "t", 0, &next));
  cr_assert_eq(next, 11);
}

/* ===================================================== crash and resume */

enum { CRASH_ROUNDS = 6, CRASH_BATCH = 30000 };

/* The child: consume group "crash" from its committed offset, "process" each
 * record by writing its offset to @wfd, commit after each poll.  Runs until
 * killed (bounded to 60 s in case the parent is gone). */
static void
crash_child(const char *d, int wfd)
{
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  q7 *cq;
  q7_consumer *c;
  q7_conf *conf;
  if (q7_open(&cq, d, NULL) || (conf = q7_conf_new()) == NULL)
    _exit(2);
  if (q7_conf_set(conf, "enable.auto.commit", "false") ||
      q7_conf_set(conf, "auto.offset.reset", "earliest") ||
      q7_consumer_new(cq, "crash", conf, &c))
    _exit(3);
  if (q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED))
    _exit(4);
  int64_t ready = -1;
  if (write(wfd, &ready, sizeof ready) != sizeof ready)
    _exit(5);
  int64_t end = mono_ms() + 60000;
  while (mono_ms() < end) {
    q7_record r[16];
    int n = q7_consumer_poll(c, r, 16, 100);
    if (n < 0)
      _exit(6);
    for (int i = 0; i < n; i++) {
      if (!val_ok(&r[i]))
        _exit(7);
      if (write(wfd, &r[i].offset, sizeof r[i].offset) != sizeof r[i].offset)
        _exit(8);
    }
    if (n > 0 && q7_consumer_commit(c))
      _exit(9);
  }
  _exit(10);
}

/* Append to @buf whatever @fd has until @ms pass (or EOF when @ms < 0). */
typedef struct bytes {
  unsigned char *data;
  size_t len, cap;
} bytes;

static void
drain(int fd, bytes *b, int ms)
{
  int64_t end = mono_ms() + (ms < 0 ? 30000 : ms);
  for (;;) {
    int64_t left = end - mono_ms();
    if (left <= 0)
      return;
    struct pollfd pfd = { fd, POLLIN, 0 };
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return;
    if (b->cap - b->len < 65536) {
      b->cap = b->cap * 2 + 65536;
      b->data = realloc(b->data, b->cap);
      cr_assert(b->data);
    }
    ssize_t k = read(fd, b->data + b->len, b->cap - b->len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return; /* EOF: every writer is gone */
    b->len += (size_t)k;
  }
}

Test(consumer, resumes_at_the_committed_offset_after_sigkill, .init = setup_nostore,
     .fini = teardown, .timeout = 300)
{
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  const char *env = getenv("Q7_TEST_SEED");
  if (env && *env)
    seed = (unsigned)strtoul(env, NULL, 10);
  cr_log_info("resumes_at_the_committed_offset_after_sigkill: seed %u (Q7_TEST_SEED)", seed);
  fprintf(stderr, "crash-resume seed %u\n", seed);
  srand(seed);

  /* The parent never holds the store open across a fork. */
  store_open(NULL);
  topic_new("t", 1);
  produce("t", 0, CRASH_BATCH, false);
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;

  int64_t prev = 0; /* committed offset before the round (log start at first) */
  for (int round = 0; round < CRASH_ROUNDS; round++) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork");
    if (pid == 0) {
      close(fds[0]);
      crash_child(dir, fds[1]);
    }
    close(fds[1]);
    /* Wait for the child to be consuming, let it run a random while
     * (reading what it processed so the pipe never fills), kill it. */
    bytes b = { 0 };
    int64_t until = mono_ms() + 30000;
    while (b.len < 8 && mono_ms() < until)
      drain(fds[0], &b, 10);
    int delay = rand() % 200;
    drain(fds[0], &b, delay);
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    drain(fds[0], &b, -1);
    close(fds[0]);
    int64_t ready = 0;
    if (b.len >= 8)
      memcpy(&ready, b.data, 8);
    cr_assert(b.len >= 8 && ready == -1,
              "seed %u round %d: child never got ready (status %#x)", seed, round, status);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "seed %u round %d: child ended with status %#x, not by SIGKILL", seed, round,
              status);
    cr_assert_eq(b.len % 8, 0);
    /* What the child processed, in order: from the committed offset on. */
    const int64_t *seen = (const int64_t *)(b.data + 8);
    size_t n = b.len / 8 - 1;
    for (size_t i = 0; i < n; i++)
      cr_assert_eq(seen[i], prev + (int64_t)i,
                   "seed %u round %d: child's record %zu was offset %lld, want %lld (gap or "
                   "repeat)",
                   seed, round, i, (long long)seen[i], (long long)(prev + (int64_t)i));
    free(b.data);

    store_open(NULL);
    int64_t committed = -1;
    int rc = q7_committed(q, "crash", "t", 0, &committed);
    if (rc == Q7_ENOENT)
      committed = 0; /* killed before its first commit: the log start */
    else
      cr_assert_eq(rc, Q7_OK, "q7_committed: %s", q7_last_error());
    cr_assert_geq(committed, prev, "seed %u round %d: committed went back %lld -> %lld", seed,
                  round, (long long)prev, (long long)committed);
    cr_assert_leq(committed, prev + (int64_t)n,
                  "seed %u round %d: committed %lld but only %lld..%lld were processed", seed,
                  round, (long long)committed, (long long)prev, (long long)(prev + (int64_t)n));
    cr_log_info("round %d: killed after %d ms, processed %zu, committed %lld", round, delay, n,
                (long long)committed);

    /* Keep records ahead of the consumer. */
    if (hw_of("t", 0) - committed < CRASH_BATCH * 2 / 3)
      produce("t", 0, CRASH_BATCH, false);

    /* A new member of the group resumes exactly at the committed offset. */
    const char *kv[] = { "enable.auto.commit", "false", "auto.offset.reset", "earliest", NULL };
    q7_consumer *c = consumer_make("crash", kv);
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_COMMITTED));
    cr_assert_eq(position_of(c, "t", 0), committed);
    int64_t first = first_polled(c, 5000);
    cr_assert_eq(first, committed, "seed %u round %d: resumed at %lld, committed %lld", seed,
                 round, (long long)first, (long long)committed);
    Q7_OK_OR_FAIL(q7_consumer_close(c));
    Q7_OK_OR_FAIL(q7_close(q));
    q = NULL;
    prev = committed;
  }
}

/* A position past the log end (an absolute assign) is reset by poll under
 * auto.offset.reset=latest; an auto-commit due in that poll must not turn it
 * into an error, nor commit an offset past the high watermark. */
Test(consumer, auto_commit_of_an_out_of_range_position_does_not_fail_poll, .init = setup,
     .fini = teardown, .timeout = 60)
{
  topic_new("t", 1);
  produce("t", 0, 10, true);
  const char *kv[] = { "enable.auto.commit", "true", "auto.commit.interval.ms", "0",
                       "auto.offset.reset", "latest", NULL };
  q7_consumer *c = consumer_make("g", kv);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 100));
  q7_record r[4];
  for (int i = 0; i < 3; i++) {
    int n = q7_consumer_poll(c, r, 4, 0);
    cr_assert_eq(n, 0, "poll %d of a position past the end (latest) -> %d (%s)", i, n,
                 q7_last_error());
  }
  cr_assert_eq(position_of(c, "t", 0), 10, "latest did not reset the position to the end");
  produce("t", 0, 1, true);
  cr_assert_eq(first_polled(c, 1000), 10);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  int64_t next = -1;
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 11);
}
