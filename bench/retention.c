/* bench/retention.c - what retention costs (issue 3):
 *  1. the longest producer stall while a sweep removes 1,000,000 records,
 *     against raw LMDB deleting the same batches in one transaction;
 *  2. the store's size on disk over 50 rounds of produce + sweep with
 *     retention.bytes = 10 MiB (must stop growing);
 *  3. the time to sweep a fixed N records while the log holds 1 M .. 20 M.
 * usage: retention DIR [max_log_millions]   (default 20) */
#include <q7.h>

#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
check(int rc, const char *what)
{
  if (rc) {
    fprintf(stderr, "retention bench: %s: %s (%s)\n", what, q7_strerror(rc), q7_last_error());
    exit(1);
  }
}

static q7 *
open_store(const char *dir)
{
  q7 *q;
  q7_conf *c;
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd))
    exit(1);
  c = q7_conf_new();
  q7_conf_set(c, "sync", "false");
  q7_conf_set(c, "retention.check.interval.ms", "0");
  check(q7_open(&q, dir, c), "open");
  q7_conf_destroy(c);
  return q;
}

/* Produce @n records of 16 + 100 bytes with timestamps ts0, ts0+1, ... */
static void
produce(q7 *q, q7_topic *t, int64_t n, int64_t ts0)
{
  q7_producer *p;
  q7_conf *pc;
  char key[16], val[100];
  memset(key, 'k', sizeof key);
  memset(val, 'v', sizeof val);
  pc = q7_conf_new();
  q7_conf_set(pc, "batch.size", "140000"); /* ~1000 records a batch */
  q7_conf_set(pc, "linger.ms", "1000");
  check(q7_producer_new(q, pc, &p), "producer");
  q7_conf_destroy(pc);
  for (int64_t i = 0; i < n; i++) {
    q7_msg m = { .topic = t, .partition = 0, .key = key, .key_len = sizeof key, .value = val,
                 .value_len = sizeof val, .timestamp_ms = ts0 + i };
    check(q7_producer_send(p, &m), "send");
  }
  check(q7_producer_close(p), "flush");
}

static int64_t
du_bytes(const char *dir)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "du -sb '%s'", dir);
  FILE *f = popen(cmd, "r");
  long long b = 0;
  if (!f || fscanf(f, "%lld", &b) != 1)
    b = -1;
  if (f)
    pclose(f);
  return b;
}

/* ---- 1. producer stall during a sweep of 1 M records ---- */

static _Atomic int stall_stop;
static double stall_max, stall_sum;
static long stall_n;

typedef struct stall_ctx {
  q7_producer *p;
  q7_topic *t;
} stall_ctx;

static void *
stall_loop(void *arg)
{
  stall_ctx *s = arg;
  char val[100];
  memset(val, 'v', sizeof val);
  while (!stall_stop) {
    q7_msg m = { .topic = s->t, .partition = 0, .value = val, .value_len = sizeof val,
                 .timestamp_ms = 4000000000000LL };
    double a = now_s();
    check(q7_producer_send_sync(s->p, &m, NULL, NULL), "send_sync during sweep");
    double d = now_s() - a;
    if (d > stall_max)
      stall_max = d;
    stall_sum += d;
    stall_n++;
  }
  return NULL;
}

static double
raw_lmdb_delete(const char *dir, int64_t n)
{
  /* The obvious hand-written LMDB queue (one record per value, as issue 9's
   * baseline a): delete the same records in one write transaction. */
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  char path[4200], cmd[8500];
  static char val[116];
  snprintf(path, sizeof path, "%s-raw", dir);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
  if (system(cmd))
    exit(1);
  memset(val, 'v', sizeof val);
  mdb_env_create(&env);
  mdb_env_set_mapsize(env, (size_t)4 << 30);
  if (mdb_env_open(env, path, MDB_NOSYNC, 0600))
    exit(1);
  mdb_txn_begin(env, NULL, 0, &txn);
  mdb_dbi_open(txn, NULL, 0, &dbi);
  for (uint64_t b = 0; b < (uint64_t)n; b++) {
    unsigned char kb[8];
    for (int i = 0; i < 8; i++)
      kb[i] = (unsigned char)(b >> (56 - 8 * i));
    k.mv_size = 8;
    k.mv_data = kb;
    v.mv_size = sizeof val;
    v.mv_data = val;
    mdb_put(txn, dbi, &k, &v, MDB_APPEND);
  }
  mdb_txn_commit(txn);
  double a = now_s();
  mdb_txn_begin(env, NULL, 0, &txn);
  mdb_cursor_open(txn, dbi, &cur);
  while (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0)
    mdb_cursor_del(cur, 0);
  mdb_cursor_close(cur);
  mdb_txn_commit(txn);
  double d = now_s() - a;
  mdb_env_close(env);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd))
    exit(1);
  return d;
}

static void
bench_stall(const char *dir)
{
  q7 *q = open_store(dir);
  q7_topic *t;
  q7_conf *tc;
  tc = q7_conf_new();
  q7_conf_set(tc, "retention.ms", "1000");
  check(q7_topic_create(q, "s", 1, tc), "create");
  q7_conf_destroy(tc);
  check(q7_topic_open(q, "s", &t), "topic");
  produce(q, t, 1000000, 1);
  stall_ctx s = { NULL, t };
  check(q7_producer_new(q, NULL, &s.p), "producer");
  stall_stop = 0;
  stall_max = stall_sum = 0;
  stall_n = 0;
  pthread_t th;
  pthread_create(&th, NULL, stall_loop, &s);
  usleep(200000);
  double base_max = stall_max, base_avg = stall_n ? stall_sum / stall_n : 0;
  stall_max = 0;
  int64_t removed;
  double a = now_s();
  check(q7_retention_sweep(q, 2000000, &removed), "sweep");
  double sweep = now_s() - a;
  usleep(50000);
  stall_stop = 1;
  pthread_join(th, NULL);
  double raw = raw_lmdb_delete(dir, 1000000);
  printf("stall: sweep removed %" PRId64 " records in %.3f s; send_sync before: avg %.1f us, "
         "max %.1f us; longest send_sync during the sweep: %.2f ms; raw LMDB (a record per value) "
         "deleting the same records in one txn blocks writers %.2f ms (%.1fx longer)\n",
         removed, sweep, base_avg * 1e6, base_max * 1e6, stall_max * 1e3, raw * 1e3,
         raw / stall_max);
  q7_producer_close(s.p);
  q7_topic_close(t);
  q7_close(q);
}

/* ---- 2. space over 50 rounds with retention.bytes = 10 MiB ---- */

static void
bench_space(const char *dir)
{
  q7 *q = open_store(dir);
  q7_topic *t;
  q7_conf *tc;
  tc = q7_conf_new();
  q7_conf_set(tc, "retention.bytes", "10485760");
  q7_conf_set(tc, "retention.ms", "-1");
  check(q7_topic_create(q, "b", 1, tc), "create");
  q7_conf_destroy(tc);
  check(q7_topic_open(q, "b", &t), "topic");
  printf("space: du after round");
  int64_t at[51] = { 0 };
  for (int r = 1; r <= 50; r++) {
    produce(q, t, 150000, 1); /* ~20 MiB a round */
    check(q7_retention_sweep(q, 0, NULL), "sweep");
    at[r] = du_bytes(dir);
    if (r == 1 || r == 5 || r % 10 == 0)
      printf(" %d: %.1f MiB;", r, at[r] / 1048576.0);
  }
  printf(" growth from round 10 to 50: %+.1f%%\n", 100.0 * (at[50] - at[10]) / at[10]);
  q7_topic_close(t);
  q7_close(q);
}

/* ---- 3. sweep of fixed N while the log grows ---- */

/* Each size on a fresh store: pages freed by earlier sweeps and not yet
 * reused stay on LMDB's freelist, whose upkeep would be measured too. */
static void
bench_scale(const char *dir, int max_m)
{
  const int64_t N = 200000;
  int sizes[] = { 1, 2, 5, 10, 20, 50 };
  printf("scale: sweep of %" PRId64 " records with the log holding", N);
  for (size_t i = 0; i < sizeof sizes / sizeof *sizes && sizes[i] <= max_m; i++) {
    q7 *q = open_store(dir);
    q7_topic *t;
    q7_conf *tc;
    tc = q7_conf_new();
    q7_conf_set(tc, "retention.ms", "0");
    check(q7_topic_create(q, "g", 1, tc), "create");
    q7_conf_destroy(tc);
    check(q7_topic_open(q, "g", &t), "topic");
    produce(q, t, (int64_t)sizes[i] * 1000000, 1);
    double best = 1e9;
    int64_t removed_total = 0;
    for (int rep = 0; rep < 3; rep++) {
      int64_t removed;
      double a = now_s();
      check(q7_retention_sweep(q, 1 + removed_total + N, &removed), "sweep");
      double d = now_s() - a;
      if (removed != N) {
        fprintf(stderr, "scale: removed %" PRId64 ", expected %" PRId64 "\n", removed, N);
        exit(1);
      }
      removed_total += removed;
      if (d < best)
        best = d;
    }
    printf(" %dM: %.1f ms;", sizes[i], best * 1e3);
    fflush(stdout);
    q7_topic_close(t);
    q7_close(q);
  }
  printf("\n");
}

int
main(int argc, char **argv)
{
  const char *dir = argc > 1 ? argv[1] : "/tmp/q7-bench-retention";
  int max_m = argc > 2 ? atoi(argv[2]) : 20;
  bench_stall(dir);
  bench_space(dir);
  bench_scale(dir, max_m);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) ? 1 : 0;
}
