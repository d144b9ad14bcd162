/* test_retention.c - retention.ms, retention.bytes, sweeps, offset_for_time. */
#include "helpers.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>

static char *dir;
static q7 *q;

static int64_t
fixed_clock(void *arg)
{
  return *(const _Atomic int64_t *)arg;
}
static _Atomic int64_t clock_now = 100000;

static void
setup(void)
{
  q7_conf *c;
  dir = tmpdir_new();
  clock_now = 100000;
  c = q7_conf_new();
  q7_conf_set(c, "sync", "false");
  q7_conf_set(c, "retention.check.interval.ms", "0");
  q7_conf_set_clock(c, fixed_clock, (void *)&clock_now);
  Q7_OK_OR_FAIL(q7_open(&q, dir, c));
  q7_conf_destroy(c);
}

static void
teardown(void)
{
  cr_assert_eq(q7_close(q), Q7_OK, "%s", q7_last_error());
  tmpdir_rm(dir);
}

static void
make_topic(const char *name, const char *key, const char *value)
{
  q7_conf *tc;
  tc = q7_conf_new();
  if (key)
    Q7_OK_OR_FAIL(q7_conf_set(tc, key, value));
  Q7_OK_OR_FAIL(q7_topic_create(q, name, 1, tc));
  q7_conf_destroy(tc);
}

/* Produce @n records to partition 0 with timestamps @ts[i], as one batch
 * (batched) or one batch each. */
static void
produce(q7_topic *t, const int64_t *ts, int n, bool batched)
{
  q7_producer *p;
  q7_conf *pc;
  pc = q7_conf_new();
  q7_conf_set(pc, "batch.size", "67108864");
  q7_conf_set(pc, "linger.ms", "100000");
  Q7_OK_OR_FAIL(q7_producer_new(q, pc, &p));
  q7_conf_destroy(pc);
  for (int i = 0; i < n; i++) {
    char v[32];
    int vl = snprintf(v, sizeof v, "value-%d", i);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = (size_t)vl,
                 .timestamp_ms = ts[i] };
    if (batched)
      Q7_OK_OR_FAIL(q7_producer_send(p, &m));
    else
      Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL));
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
}

static void
offsets(q7_topic *t, int64_t *ls, int64_t *hw)
{
  q7_partition *p;
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, ls, hw));
}

TestSuite(retention, .init = setup, .fini = teardown, .timeout = 60);

static void
time_rule(bool batched)
{
  q7_topic *t;
  int64_t ts[10], removed = -1, ls, hw;
  for (int i = 0; i < 10; i++)
    ts[i] = 1000 * (i + 1);
  make_topic("t", "retention.ms", "1000");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 10, batched);
  /* cutoff 6500 - 1000 = 5500: ts 1000..5000 go, 6000 stays. */
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 6500, &removed));
  cr_assert_eq(removed, 5);
  offsets(t, &ls, &hw);
  cr_assert_eq(ls, 5);
  cr_assert_eq(hw, 10);
  q7_partition *p;
  q7_record r[10];
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_FAILS_WITH(Q7_ERANGE, q7_partition_read(p, 4, r, 10));
  cr_assert_eq(q7_partition_read(p, 5, r, 10), 5);
  cr_assert_eq(r[0].offset, 5);
  cr_assert_eq(r[0].timestamp_ms, 6000);
  cr_assert(r[0].value_len == 7 && memcmp(r[0].value, "value-5", 7) == 0);
  /* A second sweep at the same time removes nothing. */
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 6500, &removed));
  cr_assert_eq(removed, 0);
  q7_topic_close(t);
}

Test(retention, time_removes_exact_prefix_one_batch_per_record) { time_rule(false); }
Test(retention, time_removes_exact_prefix_inside_one_batch) { time_rule(true); }

Test(retention, time_stops_at_first_record_that_stays)
{
  q7_topic *t;
  int64_t ts[] = { 1000, 9000, 2000, 3000 }, removed, ls, hw;
  make_topic("t", "retention.ms", "0");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 4, true);
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 5000, &removed));
  cr_assert_eq(removed, 1, "only the record before the first newer one goes");
  offsets(t, &ls, &hw);
  cr_assert_eq(ls, 1);
  q7_topic_close(t);
}

Test(retention, forever_keeps_everything_and_now_zero_uses_store_clock)
{
  q7_topic *t;
  int64_t ts[] = { 1, 2, 3 }, removed = -1, ls, hw;
  make_topic("t", "retention.ms", "-1");
  make_topic("u", "retention.ms", "1000");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 3, true);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_topic_open(q, "u", &t));
  produce(t, ts, 3, true);
  clock_now = 500000;
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 0, &removed));
  cr_assert_eq(removed, 3, "u loses its 3 records, t keeps its own");
  offsets(t, &ls, &hw);
  cr_assert_eq(ls, 3);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  offsets(t, &ls, &hw);
  cr_assert_eq(ls, 0);
  cr_assert_eq(hw, 3);
  q7_topic_close(t);
}

Test(retention, offsets_are_never_reused_after_removing_all)
{
  q7_topic *t;
  int64_t ts[] = { 10, 20, 30 }, ls, hw;
  make_topic("t", "retention.ms", "1");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 3, false);
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 1000000, NULL));
  offsets(t, &ls, &hw);
  cr_assert_eq(ls, 3);
  cr_assert_eq(hw, 3);
  q7_producer *p;
  int64_t off;
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1,
               .timestamp_ms = 2000000 };
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, &off));
  cr_assert_eq(off, 3);
  q7_producer_close(p);
  q7_topic_close(t);
}

Test(retention, bytes_keeps_at_most_the_limit_and_no_less_than_needed)
{
  q7_topic *t;
  int64_t ts[200], ls, hw, removed;
  for (int i = 0; i < 200; i++)
    ts[i] = 1000 + i;
  make_topic("t", "retention.bytes", "1000");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 100, false); /* 100 batches of one record */
  produce(t, ts + 100, 100, true); /* one batch of 100 */
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 0, &removed));
  offsets(t, &ls, &hw);
  cr_assert_eq(removed, ls);
  cr_assert(ls > 100 && ls < 200, "the cut falls inside the big batch, got %lld", (long long)ls);
  /* A record (format 2) takes 5 bytes of varints plus its value, and one
   * more once its timestamp is 64 ms or more past the batch's first:
   * "value-64".."value-99" 14 bytes, "value-10".."value-63" 13.  The last
   * 74 hold 36 * 14 + 38 * 13 = 998 bytes, 75 would hold 1011. */
  cr_assert_eq(hw - ls, 74, "kept %lld records", (long long)(hw - ls));
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.bytes", "-1"));
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 0, &removed));
  cr_assert_eq(removed, 0);
  q7_topic_close(t);
}

Test(retention, invalid_values_name_the_key)
{
  make_topic("t", NULL, NULL);
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "retention.ms", "-2"));
  cr_assert(strstr(q7_last_error(), "retention.ms"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_topic_set(q, "t", "retention.bytes", "ten"));
  cr_assert(strstr(q7_last_error(), "retention.bytes"));
  Q7_FAILS_WITH(Q7_ENOENT, q7_topic_set(q, "nope", "retention.ms", "5"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_retention_sweep(NULL, 0, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_retention_sweep(q, -5, NULL));
  char buf[32];
  size_t len = sizeof buf;
  Q7_OK_OR_FAIL(q7_topic_set(q, "t", "retention.ms", "12345"));
  Q7_OK_OR_FAIL(q7_topic_get(q, "t", "retention.ms", buf, &len));
  cr_assert_str_eq(buf, "12345");
}

static void
consumer_behind(const char *reset, int want_rc, int64_t want_first)
{
  q7_topic *t;
  int64_t ts[10];
  for (int i = 0; i < 10; i++)
    ts[i] = 1000 * (i + 1);
  make_topic("t", "retention.ms", "1000");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 10, true);
  q7_consumer *c;
  q7_conf *cc;
  cc = q7_conf_new();
  q7_conf_set(cc, "auto.offset.reset", reset);
  Q7_OK_OR_FAIL(q7_consumer_new(q, "g", cc, &c));
  q7_conf_destroy(cc);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, 2));
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 6500, NULL)); /* log start -> 5 */
  q7_record r[20];
  int n = q7_consumer_poll(c, r, 20, 0);
  if (want_rc < 0) {
    cr_assert_eq(n, want_rc, "poll -> %d (%s)", n, q7_last_error());
  } else if (want_first < 0) {
    cr_assert_eq(n, 0, "latest: nothing until new records, got %d", n);
    int64_t pos;
    Q7_OK_OR_FAIL(q7_consumer_position(c, "t", 0, &pos));
    cr_assert_eq(pos, 10);
  } else {
    cr_assert_eq(n, 5);
    cr_assert_eq(r[0].offset, want_first);
  }
  q7_consumer_close(c);
  q7_topic_close(t);
}

Test(retention, consumer_behind_log_start_earliest_continues_at_log_start)
{
  consumer_behind("earliest", 0, 5);
}
Test(retention, consumer_behind_log_start_latest_goes_to_end) { consumer_behind("latest", 0, -1); }
Test(retention, consumer_behind_log_start_none_is_erange)
{
  consumer_behind("none", Q7_ERANGE, 0);
}

Test(retention, offset_for_time_monotone_and_backwards)
{
  q7_topic *t;
  q7_partition *p;
  int64_t off = -1;
  int64_t ts[] = { 100, 200, 300, 400, 500, 150, 600, 700 };
  make_topic("t", NULL, NULL);
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, 4, false);        /* 4 batches, monotone */
  produce(t, ts + 4, 4, true);     /* one batch: 500 150 600 700 */
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  struct { int64_t ts, want; } cases[] = {
    { 0, 0 }, { 100, 0 }, { 101, 1 }, { 300, 2 }, { 301, 3 }, { 401, 4 }, { 500, 4 },
    { 501, 6 }, { 600, 6 }, { 700, 7 },
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    Q7_OK_OR_FAIL(q7_offset_for_time(p, cases[i].ts, &off));
    cr_assert_eq(off, cases[i].want, "ts %lld -> %lld, want %lld", (long long)cases[i].ts,
                 (long long)off, (long long)cases[i].want);
  }
  Q7_FAILS_WITH(Q7_ENOENT, q7_offset_for_time(p, 701, &off));
  Q7_FAILS_WITH(Q7_EINVAL, q7_offset_for_time(p, 1, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_offset_for_time(NULL, 1, &off));
  q7_topic_close(t);
}

Test(retention, offset_for_time_many_batches_and_after_sweep)
{
  q7_topic *t;
  q7_partition *p;
  enum { N = 3000 };
  static int64_t ts[N];
  for (int i = 0; i < N; i++)
    ts[i] = 10 * (i + 1); /* 0 would mean "now" */
  make_topic("t", "retention.ms", "10000");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  produce(t, ts, N, false);
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  for (int i = 0; i < N; i += 7) {
    int64_t off;
    Q7_OK_OR_FAIL(q7_offset_for_time(p, 10 * i + 5, &off));
    cr_assert_eq(off, i, "ts %d -> %lld, want %d", 10 * i + 5, (long long)off, i);
  }
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 20005, NULL)); /* cutoff 10005: 1000 go */
  int64_t off;
  Q7_OK_OR_FAIL(q7_offset_for_time(p, 0, &off));
  cr_assert_eq(off, 1000, "never below the log start");
  q7_topic_close(t);
}

Test(retention, background_thread_sweeps_and_stops_at_close)
{
  q7 *q2;
  q7_conf *c;
  char *d2 = tmpdir_new();
  c = q7_conf_new();
  q7_conf_set(c, "sync", "false");
  q7_conf_set(c, "retention.check.interval.ms", "20");
  q7_conf_set_clock(c, fixed_clock, (void *)&clock_now);
  Q7_OK_OR_FAIL(q7_open(&q2, d2, c));
  q7_conf_destroy(c);
  q7_conf *tc;
  tc = q7_conf_new();
  q7_conf_set(tc, "retention.ms", "1000");
  Q7_OK_OR_FAIL(q7_topic_create(q2, "t", 1, tc));
  q7_conf_destroy(tc);
  q7_topic *t;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_topic_open(q2, "t", &t));
  Q7_OK_OR_FAIL(q7_producer_new(q2, NULL, &p));
  q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1, .timestamp_ms = 1 };
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL));
  q7_partition *part;
  int64_t ls = 0, hw;
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &part));
  for (int i = 0; i < 500 && ls == 0; i++) {
    struct timespec d = { 0, 10000000 };
    nanosleep(&d, NULL);
    Q7_OK_OR_FAIL(q7_partition_offsets(part, &ls, &hw));
  }
  cr_assert_eq(ls, 1, "the background sweep removed the old record");
  q7_producer_close(p);
  q7_topic_close(t);
  Q7_OK_OR_FAIL(q7_close(q2));
  tmpdir_rm(d2);
}

/* A sweep racing a producer and a consumer: the consumer sees increasing
 * offsets, never a record twice, every value matching its offset. */
static _Atomic int stop_flag;
static q7_topic *race_t;

static void *
race_producer(void *arg)
{
  q7_producer *p;
  q7_conf *pc;
  pc = q7_conf_new();
  q7_conf_set(pc, "linger.ms", "0");
  q7_producer_new(q, pc, &p);
  q7_conf_destroy(pc);
  for (int64_t i = 0; i < 200000 && !stop_flag; i++) {
    char v[32];
    int vl = snprintf(v, sizeof v, "rec-%lld", (long long)i);
    clock_now += 1;
    q7_msg m = { .topic = race_t, .partition = 0, .value = v, .value_len = (size_t)vl };
    if (q7_producer_send(p, &m)) {
      *(int *)arg = -1;
      break;
    }
  }
  q7_producer_close(p);
  return NULL;
}

Test(retention, sweep_races_producer_and_consumer, .timeout = 120)
{
  make_topic("race", "retention.ms", "2000");
  Q7_OK_OR_FAIL(q7_topic_open(q, "race", &race_t));
  stop_flag = 0;
  int perr = 0;
  pthread_t th;
  pthread_create(&th, NULL, race_producer, &perr);
  q7_consumer *c;
  q7_conf *cc;
  cc = q7_conf_new();
  q7_conf_set(cc, "auto.offset.reset", "earliest");
  Q7_OK_OR_FAIL(q7_consumer_new(q, NULL, cc, &c));
  q7_conf_destroy(cc);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "race", 0, Q7_OFFSET_BEGINNING));
  int64_t last = -1, seen = 0, swept = 0;
  q7_record r[256];
  time_t t0 = time(NULL);
  while (time(NULL) - t0 < 20 && seen < 100000) {
    int n = q7_consumer_poll(c, r, 256, 50);
    cr_assert(n >= 0, "poll -> %d (%s)", n, q7_last_error());
    for (int i = 0; i < n; i++) {
      char want[32];
      int wl = snprintf(want, sizeof want, "rec-%lld", (long long)r[i].offset);
      cr_assert_gt(r[i].offset, last, "offsets increase");
      cr_assert(r[i].value_len == (size_t)wl && memcmp(r[i].value, want, (size_t)wl) == 0,
                "record %lld intact", (long long)r[i].offset);
      last = r[i].offset;
    }
    seen += n;
    int64_t removed;
    Q7_OK_OR_FAIL(q7_retention_sweep(q, 0, &removed));
    swept += removed;
  }
  stop_flag = 1;
  pthread_join(th, NULL);
  cr_assert_eq(perr, 0, "producer failed");
  cr_assert_gt(seen, 0);
  cr_assert_gt(swept, 0, "the sweeps removed records meanwhile");
  cr_log_info("race: consumed %lld, swept %lld", (long long)seen, (long long)swept);
  q7_consumer_close(c);
  q7_topic_close(race_t);
}

Test(retention, space_is_reused_under_retention_bytes, .timeout = 120)
{
  q7_topic *t;
  make_topic("t", "retention.bytes", "1048576");
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  q7_producer *p;
  q7_conf *pc;
  pc = q7_conf_new();
  q7_conf_set(pc, "batch.size", "65536");
  Q7_OK_OR_FAIL(q7_producer_new(q, pc, &p));
  q7_conf_destroy(pc);
  char path[4200], v[1000];
  memset(v, 'v', sizeof v);
  snprintf(path, sizeof path, "%s/topics/t/0/data.mdb", dir);
  off_t at10 = 0, at40 = 0;
  for (int round = 1; round <= 40; round++) {
    for (int i = 0; i < 2000; i++) { /* ~2 MB a round */
      q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = sizeof v };
      Q7_OK_OR_FAIL(q7_producer_send(p, &m));
    }
    Q7_OK_OR_FAIL(q7_producer_flush(p, -1));
    Q7_OK_OR_FAIL(q7_retention_sweep(q, 0, NULL));
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    if (round == 10)
      at10 = st.st_size;
    if (round == 40)
      at40 = st.st_size;
  }
  cr_log_info("data.mdb: %lld bytes after 10 rounds, %lld after 40", (long long)at10,
              (long long)at40);
  cr_assert(at40 <= at10 + at10 / 10, "file keeps growing: %lld -> %lld", (long long)at10,
            (long long)at40);
  cr_assert(at40 < 8 * 1048576, "file %lld bytes for a 1 MiB retention", (long long)at40);
  q7_producer_close(p);
  q7_topic_close(t);
}
