/* bench/replica.c - what replication to mirror directories costs.
 *
 * Produce throughput with 0, 1 and 2 mirrors (replica.dirs; topic
 * replication.factor 1, 2, 3; min.insync.replicas = replication.factor;
 * producer acks=all), in two modes:
 *   (a) sync=false, batches of 1000 records (q7_producer_send, flushed
 *       every 1000), 100-byte values;
 *   (b) sync=true, durable q7_producer_send_sync one record at a time.
 * Each figure is the median of 3 runs on fresh directories.  Printed:
 * records/s, the throughput relative to 0 mirrors, and for the durable case
 * the time per commit of 2 mirrors relative to 1 mirror (the target: under
 * 1.6x, the mirrors' fsyncs overlapping rather than adding up).
 *
 * usage: replica DIR [records_batched [records_durable]]
 *        (defaults 500000 and 500; DIR on the disk to measure, not tmpfs) */
#include <q7.h>

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { RUNS = 3, VALUE = 100, BATCH = 1000 };

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
    fprintf(stderr, "replica bench: %s: %s (%s)\n", what, q7_strerror(rc), q7_last_error());
    exit(1);
  }
}

static void
rm_rf(const char *path)
{
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd)) {
    fprintf(stderr, "replica bench: %s failed\n", cmd);
    exit(1);
  }
}

static const char *base;

/* A fresh store under BASE/run with @mirrors mirrors and a topic "t" of one
 * partition, replication.factor 1 + @mirrors. */
static q7 *
fresh(int mirrors, bool sync)
{
  char root[4096], primary[4200], dirs[3 * 4200] = "";
  snprintf(root, sizeof root, "%s/run", base);
  rm_rf(root);
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", root);
  if (system(cmd))
    exit(1);
  snprintf(primary, sizeof primary, "%s/primary", root);
  for (int i = 1; i <= mirrors; i++) {
    char m[4200];
    snprintf(m, sizeof m, "%s%s/mirror%d", i > 1 ? "," : "", root, i);
    strcat(dirs, m);
  }
  q7_conf *c = q7_conf_new();
  check(q7_conf_set(c, "replica.dirs", dirs), "replica.dirs");
  check(q7_conf_set(c, "sync", sync ? "true" : "false"), "sync");
  check(q7_conf_set(c, "retention.check.interval.ms", "0"), "retention.check.interval.ms");
  q7 *q;
  check(q7_open(&q, primary, c), "open");
  q7_conf_destroy(c);
  q7_conf *tc = q7_conf_new();
  char rf[16];
  snprintf(rf, sizeof rf, "%d", 1 + mirrors);
  check(q7_conf_set(tc, "replication.factor", rf), "replication.factor");
  check(q7_conf_set(tc, "min.insync.replicas", rf), "min.insync.replicas");
  check(q7_topic_create(q, "t", 1, tc), "topic create");
  q7_conf_destroy(tc);
  return q;
}

static int64_t delivered, failed;

static void
on_delivery(const q7_delivery *d, void *arg)
{
  (void)arg;
  if (d->err)
    failed++;
  else
    delivered++;
}

/* (a): @n records, sync=false, committed 1000 at a time; records/s. */
static double
run_batched(int mirrors, int64_t n)
{
  q7 *q = fresh(mirrors, false);
  q7_topic *t;
  q7_producer *p;
  q7_conf *pc = q7_conf_new();
  check(q7_conf_set(pc, "acks", "all"), "acks");
  check(q7_conf_set(pc, "batch.size", "4000000"), "batch.size");
  check(q7_conf_set(pc, "linger.ms", "60000"), "linger.ms");
  q7_conf_set_delivery_cb(pc, on_delivery, NULL);
  check(q7_topic_open(q, "t", &t), "topic open");
  check(q7_producer_new(q, pc, &p), "producer");
  q7_conf_destroy(pc);
  char val[VALUE];
  memset(val, 'v', sizeof val);
  delivered = failed = 0;
  double t0 = now_s();
  for (int64_t i = 0; i < n; i++) {
    memcpy(val, &i, sizeof i);
    q7_msg m = { .topic = t, .partition = 0, .value = val, .value_len = sizeof val };
    check(q7_producer_send(p, &m), "send");
    if ((i + 1) % BATCH == 0)
      check(q7_producer_flush(p, -1), "flush");
  }
  check(q7_producer_flush(p, -1), "flush");
  double dt = now_s() - t0;
  if (delivered != n || failed) {
    fprintf(stderr, "replica bench: %" PRId64 " delivered, %" PRId64 " failed of %" PRId64 "\n",
            delivered, failed, n);
    exit(1);
  }
  q7_producer_close(p);
  q7_topic_close(t);
  check(q7_close(q), "close");
  return n / dt;
}

/* (b): @n durable send_sync, one at a time; records/s. */
static double
run_durable(int mirrors, int64_t n)
{
  q7 *q = fresh(mirrors, true);
  q7_topic *t;
  q7_producer *p;
  q7_conf *pc = q7_conf_new();
  check(q7_conf_set(pc, "acks", "all"), "acks");
  check(q7_topic_open(q, "t", &t), "topic open");
  check(q7_producer_new(q, pc, &p), "producer");
  q7_conf_destroy(pc);
  char val[VALUE];
  memset(val, 'd', sizeof val);
  double t0 = now_s();
  for (int64_t i = 0; i < n; i++) {
    memcpy(val, &i, sizeof i);
    q7_msg m = { .topic = t, .partition = 0, .value = val, .value_len = sizeof val };
    int64_t off;
    check(q7_producer_send_sync(p, &m, NULL, &off), "send_sync");
    if (off != i) {
      fprintf(stderr, "replica bench: record %" PRId64 " at offset %" PRId64 "\n", i, off);
      exit(1);
    }
  }
  double dt = now_s() - t0;
  for (int r = 1; r <= mirrors; r++) {
    int64_t end;
    int in;
    check(q7_replica_status(q, "t", 0, r, &end, &in), "replica status");
    if (!in || end != n) {
      fprintf(stderr, "replica bench: mirror %d ends at %" PRId64 " (in sync %d)\n", r, end, in);
      exit(1);
    }
  }
  q7_producer_close(p);
  q7_topic_close(t);
  check(q7_close(q), "close");
  return n / dt;
}

static int
cmp(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* The median of RUNS runs of @fn for 0, 1 and 2 mirrors, interleaved
 * (0, 1, 2, 0, 1, 2, ...) so that drift on a shared machine touches each
 * the same; the disk is synced before each run. */
static void
medians(double (*fn)(int, int64_t), int64_t n, double med[3], double lo[3], double hi[3])
{
  double v[3][RUNS];
  for (int i = 0; i < RUNS; i++)
    for (int m = 0; m <= 2; m++) {
      sync();
      v[m][i] = fn(m, n);
    }
  for (int m = 0; m <= 2; m++) {
    qsort(v[m], RUNS, sizeof v[m][0], cmp);
    lo[m] = v[m][0];
    hi[m] = v[m][RUNS - 1];
    med[m] = v[m][RUNS / 2];
  }
}

int
main(int argc, char **argv)
{
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: %s DIR [records_batched [records_durable]]\n", argv[0]);
    return 2;
  }
  base = argv[1];
  int64_t nb = argc > 2 ? strtoll(argv[2], NULL, 10) : 500000;
  int64_t nd = argc > 3 ? strtoll(argv[3], NULL, 10) : 500;
  if (nb < BATCH || nd < 1) {
    fprintf(stderr, "replica bench: at least %d batched and 1 durable record\n", BATCH);
    return 2;
  }
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", base);
  if (system(cmd))
    return 1;

  double b[3], d[3], lo[3], hi[3];
  printf("libq7 %s replication cost, %s, median of %d runs, acks=all, %d-byte values\n\n",
         q7_version(), base, RUNS, VALUE);
  printf("%-40s %7s %13s %13s %12s %s\n", "mode", "mirrors", "records/s", "per record",
         "vs 0 mirrors", "(min..max records/s)");
  medians(run_batched, nb, b, lo, hi);
  for (int m = 0; m <= 2; m++)
    printf("%-40s %7d %13.0f %10.2f us %11.2fx (%.0f..%.0f)\n",
           "(a) sync=false, batches of 1000", m, b[m], 1e6 / b[m], b[m] / b[0], lo[m], hi[m]);
  fflush(stdout);
  medians(run_durable, nd, d, lo, hi);
  for (int m = 0; m <= 2; m++)
    printf("%-40s %7d %13.0f %10.2f us %11.2fx (%.0f..%.0f)\n",
           "(b) sync=true, durable send_sync x1", m, d[m], 1e6 / d[m], d[m] / d[0], lo[m], hi[m]);
  double r21 = d[1] / d[2]; /* time per commit, 2 mirrors over 1 */
  printf("\n(b) time per durable commit: 1 mirror %.2fx of none, 2 mirrors %.2fx of none;\n"
         "    2 mirrors / 1 mirror = %.2fx (target < 1.60x: the mirrors' fsyncs overlap) %s\n",
         d[0] / d[1], d[0] / d[2], r21, r21 < 1.6 ? "MET" : "MISSED");
  printf("(a) time per record, 2 mirrors / 1 mirror = %.2fx\n", b[1] / b[2]);
  char root[4096];
  snprintf(root, sizeof root, "%s/run", base);
  rm_rf(root);
  return 0;
}
