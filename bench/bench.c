/* bench/bench.c - libq7 against raw LMDB doing the same work by hand, and
 * against the peers a user would pick instead (SQLite in WAL mode, Redis
 * Streams), in one run.  Every figure is the median of REPS repetitions and
 * is reported as a ratio to its baseline measured in the same run: these
 * machines are shared and noisy, so ratios within a run are what count.
 *
 *   usage: bench [-o DIR] [-w W1,W3,...] [--w9-millions N] [--quick]
 *
 * Baselines: (a) raw LMDB, one record per value, MDB_APPEND, the obvious
 * hand-built queue; (a') raw LMDB, 1000 records per value, written by hand
 * (the limit of libq7's own layout); (b) SQLite, WAL, a table as the queue;
 * (c) Redis Streams via hiredis, pipelined (redis-server started here on
 * 127.0.0.1 and stopped by PID; skipped when absent).
 *
 * Records: 16-byte key, 100-byte value, unless a workload says otherwise. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <q7.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REPS 3
/* The headline workloads: more repetitions, the systems taking turns, so
 * that the machine's drift (other tenants, the host reclaiming freed
 * memory) falls on all of them alike. */
#define TURNS 7
#define KEY_LEN 16
#define VAL_LEN 100

static const char *root = "/tmp/q7-bench";
static int quick;
static FILE *csv, *tsv;         /* results; ratios for the chart */

/* ------------------------------------------------------------ helpers */

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what, int rc)
{
  fprintf(stderr, "bench: %s: %d %s (%s)\n", what, rc, rc < 0 && rc > -20 ? q7_strerror(rc) :
          mdb_strerror(rc), q7_last_error());
  exit(1);
}

#define CK(call)                                                                              \
  do {                                                                                        \
    int rc__ = (call);                                                                        \
    if (rc__)                                                                                 \
      die(#call, rc__);                                                                       \
  } while (0)

static void
rm_rf(const char *path)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system(cmd))
    exit(1);
}

static char *
path_of(const char *name)
{
  static char buf[8][4096];
  static int i;
  char *p = buf[i++ % 8];
  snprintf(p, 4096, "%s/%s", root, name);
  return p;
}

static int
cmp_d(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double
pct(double *v, int n, double p)
{
  qsort(v, (size_t)n, sizeof *v, cmp_d);
  int i = (int)(p * (n - 1) + 0.5);
  return v[i];
}

/* "key-000000001234": cheap, so that the bench measures the stores. */
static void
fill_key(char *k, int64_t i)
{
  memcpy(k, "key-", 4);
  for (int d = KEY_LEN - 1; d >= 4; d--, i /= 10)
    k[d] = (char)('0' + i % 10);
}

static char val_buf[1024];

/* A row of the report: one figure of libq7 and its ratio to a baseline. */
static void
report(const char *w, const char *what, const char *sys, double v, const char *unit,
       const char *base, double bv, const char *target)
{
  double ratio = bv > 0 ? v / bv : 0;
  printf("%-4s %-44s %-12s %14.0f %-9s", w, what, sys, v, unit);
  if (base)
    printf("  %5.2fx %-14s %s", ratio, base, target ? target : "");
  printf("\n");
  fflush(stdout);
  if (csv)
    fprintf(csv, "%s,\"%s\",%s,%.3f,%s,%s,%.4f,\"%s\"\n", w, what, sys, v, unit,
            base ? base : "", base ? ratio : 0.0, target ? target : "");
  if (tsv && base && target && *target)
    fprintf(tsv, "\"%s %s vs %s\"\t%.3f\n", w, strcmp(sys, "libq7") ? sys : "", base, ratio);
}

/* ------------------------------------------------------ raw LMDB (a, a') */

typedef struct raw {
  MDB_env *env;
  MDB_dbi dbi;
} raw;

static void
raw_open(raw *r, const char *path, int sync, size_t map)
{
  rm_rf(path);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
  if (system(cmd))
    exit(1);
  CK(mdb_env_create(&r->env));
  mdb_env_set_mapsize(r->env, map);
  CK(mdb_env_open(r->env, path, sync ? 0 : MDB_NOSYNC, 0600));
  MDB_txn *txn;
  CK(mdb_txn_begin(r->env, NULL, 0, &txn));
  CK(mdb_dbi_open(txn, NULL, 0, &r->dbi));
  CK(mdb_txn_commit(txn));
}

static void
raw_close(raw *r)
{
  mdb_env_close(r->env);
}

static void
be64(unsigned char *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

/* The value a hand-built queue stores: timestamp, key, value. */
static size_t
raw_record(unsigned char *out, int64_t i, size_t vlen)
{
  int64_t ts = 1700000000000 + i;
  memcpy(out, &ts, 8);
  fill_key((char *)out + 8, i);
  memcpy(out + 8 + KEY_LEN, val_buf, vlen);
  return 8 + KEY_LEN + vlen;
}

/* (a): one record per value, a commit per @batch records. */
static double
raw_write_per_record(const char *path, int64_t n, int batch, int sync, size_t vlen)
{
  raw r;
  unsigned char rec[8 + KEY_LEN + 1024], kb[8];
  raw_open(&r, path, sync, (size_t)16 << 30);
  double t0 = now_s();
  for (int64_t i = 0; i < n;) {
    MDB_txn *txn;
    CK(mdb_txn_begin(r.env, NULL, 0, &txn));
    for (int j = 0; j < batch && i < n; j++, i++) {
      be64(kb, (uint64_t)i);
      MDB_val k = { 8, kb }, v = { raw_record(rec, i, vlen), rec };
      CK(mdb_put(txn, r.dbi, &k, &v, MDB_APPEND));
    }
    CK(mdb_txn_commit(txn));
  }
  double d = now_s() - t0;
  raw_close(&r);
  return n / d;
}

/* (a'): @batch records per value, by hand (length-prefixed, no CRC). */
static double
raw_write_batched(const char *path, int64_t n, int batch, int sync, size_t vlen)
{
  raw r;
  size_t rsz = 4 + 8 + KEY_LEN + vlen;
  unsigned char *buf = malloc(rsz * (size_t)batch), kb[8];
  raw_open(&r, path, sync, (size_t)16 << 30);
  double t0 = now_s();
  for (int64_t i = 0; i < n;) {
    size_t off = 0;
    int64_t base = i;
    for (int j = 0; j < batch && i < n; j++, i++) {
      uint32_t l = (uint32_t)(rsz - 4);
      memcpy(buf + off, &l, 4);
      off += 4 + raw_record(buf + off + 4, i, vlen);
    }
    MDB_txn *txn;
    CK(mdb_txn_begin(r.env, NULL, 0, &txn));
    be64(kb, (uint64_t)base);
    MDB_val k = { 8, kb }, v = { off, buf };
    CK(mdb_put(txn, r.dbi, &k, &v, MDB_APPEND));
    CK(mdb_txn_commit(txn));
  }
  double d = now_s() - t0;
  raw_close(&r);
  free(buf);
  return n / d;
}

/* (a) read: a cursor over every record, touching each. */
static double
raw_scan(const char *path, int64_t n)
{
  raw r;
  CK(mdb_env_create(&r.env));
  mdb_env_set_mapsize(r.env, (size_t)16 << 30);
  CK(mdb_env_open(r.env, path, MDB_NOSYNC | MDB_RDONLY, 0600));
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  uint64_t sum = 0;
  int64_t got = 0;
  CK(mdb_txn_begin(r.env, NULL, MDB_RDONLY, &txn));
  CK(mdb_dbi_open(txn, NULL, 0, &r.dbi));
  double t0 = now_s();
  CK(mdb_cursor_open(txn, r.dbi, &cur));
  while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
    sum += v.mv_size + ((const unsigned char *)v.mv_data)[8];
    got++;
  }
  double d = now_s() - t0;
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  mdb_env_close(r.env);
  if (got != n || !sum)
    die("raw scan count", (int)(got - n));
  return n / d;
}

/* --------------------------------------------------------------- libq7 */

static q7 *
q7_fresh(const char *path, int sync)
{
  q7 *q;
  q7_conf *c = q7_conf_new();
  rm_rf(path);
  q7_conf_set(c, "sync", sync ? "true" : "false");
  q7_conf_set(c, "retention.check.interval.ms", "0");
  CK(q7_open(&q, path, c));
  q7_conf_destroy(c);
  return q;
}

static q7_producer *
producer(q7 *q, int batch_records, size_t vlen)
{
  q7_producer *p;
  q7_conf *c = q7_conf_new();
  char bs[32];
  /* A record takes 24 bytes of framing plus key and value. */
  snprintf(bs, sizeof bs, "%zu", (size_t)batch_records * (24 + KEY_LEN + vlen));
  q7_conf_set(c, "batch.size", bs);
  q7_conf_set(c, "linger.ms", "100000");
  CK(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  return p;
}

/* Send records @from .. @from+@n-1: with q7_producer_send_batch, 1000 a
 * call (the bulk path), or, when per_record is set, q7_producer_send
 * once per record. */
static int per_record;

static void
q7_send_n(q7_producer *p, q7_topic *t, int32_t part, int64_t from, int64_t n, size_t vlen)
{
  enum { CALL = 1000 };
  q7_msg m[CALL];
  char key[CALL][KEY_LEN];
  for (int64_t i = from; i < from + n;) {
    int k = 0;
    for (; k < CALL && i < from + n; k++, i++) {
      fill_key(key[k], i);
      m[k] = (q7_msg){ .topic = t, .partition = part, .key = key[k], .key_len = KEY_LEN,
                       .value = val_buf, .value_len = vlen, .timestamp_ms = 1700000000000 + i };
      if (per_record)
        CK(q7_producer_send(p, &m[k]));
    }
    if (!per_record)
      CK(q7_producer_send_batch(p, m, (size_t)k, NULL));
  }
}

/* Produce @n records into a fresh store; returns records/s. */
static double
q7_write(const char *path, int64_t n, int batch, int sync, size_t vlen)
{
  q7 *q = q7_fresh(path, sync);
  q7_topic *t;
  CK(q7_topic_create(q, "bench", 1, NULL));
  CK(q7_topic_open(q, "bench", &t));
  q7_producer *p = producer(q, batch, vlen);
  double t0 = now_s();
  q7_send_n(p, t, 0, 0, n, vlen);
  CK(q7_producer_flush(p, -1));
  double d = now_s() - t0;
  q7_producer_close(p);
  q7_topic_close(t);
  q7_close(q);
  return n / d;
}

/* Consume @n records from the start of a fresh store handle; @ahead: the
 * consumer's fetch.ahead.bytes, or NULL for the default. */
static double
q7_consume_all(const char *path, int64_t n, const char *ahead)
{
  q7 *q;
  q7_conf *c = q7_conf_new();
  q7_conf_set(c, "retention.check.interval.ms", "0");
  CK(q7_open(&q, path, c));
  q7_conf_destroy(c);
  q7_consumer *cs;
  c = q7_conf_new();
  q7_conf_set(c, "auto.offset.reset", "earliest");
  q7_conf_set(c, "enable.auto.commit", "false");
  q7_conf_set(c, "max.poll.records", "10000");
  if (ahead)
    q7_conf_set(c, "fetch.ahead.bytes", ahead);
  CK(q7_consumer_new(q, "bench", c, &cs));
  q7_conf_destroy(c);
  CK(q7_consumer_subscribe(cs, "bench"));
  static q7_record r[10000];
  /* Joining the group and opening the partition happen outside the timed
   * loop, as the raw scan's environment open does: a poll for 0 records
   * does both and reads nothing. */
  if (q7_consumer_poll(cs, r, 0, 0) < 0)
    die("poll for 0", -1);
  int64_t got = 0;
  uint64_t sum = 0;
  double t0 = now_s();
  while (got < n) {
    int k = q7_consumer_poll(cs, r, 10000, 1000);
    if (k <= 0)
      die("poll", k);
    for (int i = 0; i < k; i++)
      sum += r[i].value_len + ((const unsigned char *)r[i].value)[0];
    got += k;
  }
  double d = now_s() - t0;
  q7_consumer_close(cs); /* no commit: each repetition reads from the start */
  q7_close(q);
  if (!sum)
    die("consume", 0);
  return n / d;
}

/* -------------------------------------------------------------- SQLite */

static double
sqlite_write(const char *path, int64_t n, int batch, int sync)
{
  sqlite3 *db;
  sqlite3_stmt *st;
  char file[4200], key[KEY_LEN];
  rm_rf(path);
  snprintf(file, sizeof file, "mkdir -p '%s'", path);
  if (system(file))
    exit(1);
  snprintf(file, sizeof file, "%s/q.db", path);
  if (sqlite3_open(file, &db))
    die("sqlite open", 1);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
  sqlite3_exec(db, sync ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=OFF", NULL, NULL,
               NULL);
  sqlite3_exec(db, "CREATE TABLE q(off INTEGER PRIMARY KEY, ts INTEGER, k BLOB, v BLOB)", NULL,
               NULL, NULL);
  sqlite3_prepare_v2(db, "INSERT INTO q VALUES(?,?,?,?)", -1, &st, NULL);
  double t0 = now_s();
  for (int64_t i = 0; i < n;) {
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (int j = 0; j < batch && i < n; j++, i++) {
      fill_key(key, i);
      sqlite3_bind_int64(st, 1, i);
      sqlite3_bind_int64(st, 2, 1700000000000 + i);
      sqlite3_bind_blob(st, 3, key, KEY_LEN, SQLITE_STATIC);
      sqlite3_bind_blob(st, 4, val_buf, VAL_LEN, SQLITE_STATIC);
      if (sqlite3_step(st) != SQLITE_DONE)
        die("sqlite insert", 1);
      sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
  }
  double d = now_s() - t0;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n / d;
}

static double
sqlite_scan(const char *path, int64_t n)
{
  sqlite3 *db;
  sqlite3_stmt *st;
  char file[4200];
  snprintf(file, sizeof file, "%s/q.db", path);
  if (sqlite3_open(file, &db))
    die("sqlite open", 1);
  sqlite3_prepare_v2(db, "SELECT off, ts, k, v FROM q ORDER BY off", -1, &st, NULL);
  int64_t got = 0;
  uint64_t sum = 0;
  double t0 = now_s();
  while (sqlite3_step(st) == SQLITE_ROW) {
    const unsigned char *v = sqlite3_column_blob(st, 3);
    sum += (uint64_t)sqlite3_column_bytes(st, 3) + v[0];
    got++;
  }
  double d = now_s() - t0;
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (got != n || !sum)
    die("sqlite scan count", (int)(got - n));
  return n / d;
}

/* --------------------------------------------------------------- Redis */

static pid_t redis_pid = -1;
static int redis_port;

static void
redis_stop(void)
{
  if (redis_pid > 0) {
    kill(redis_pid, SIGTERM);
    waitpid(redis_pid, NULL, 0);
    redis_pid = -1;
  }
}

static int
redis_start(void)
{
  if (access("/usr/bin/redis-server", X_OK))
    return -1;
  redis_port = 20000 + (int)(getpid() % 20000);
  char port[16];
  snprintf(port, sizeof port, "%d", redis_port);
  redis_pid = fork();
  if (redis_pid == 0) {
    int fd = open("/dev/null", O_WRONLY);
    dup2(fd, 1);
    dup2(fd, 2);
    execl("/usr/bin/redis-server", "redis-server", "--bind", "127.0.0.1", "--port", port,
          "--save", "", "--appendonly", "no", "--protected-mode", "yes", (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 100; i++) { /* up to 5 s */
    redisContext *c = redisConnect("127.0.0.1", redis_port);
    if (c && !c->err) {
      redisFree(c);
      atexit(redis_stop);
      return 0;
    }
    if (c)
      redisFree(c);
    usleep(50000);
  }
  redis_stop();
  return -1;
}

static double
redis_write(int64_t n, int batch)
{
  redisContext *c = redisConnect("127.0.0.1", redis_port);
  if (!c || c->err)
    die("redis connect", 1);
  redisReply *r = redisCommand(c, "DEL q");
  freeReplyObject(r);
  char key[KEY_LEN];
  double t0 = now_s();
  for (int64_t i = 0; i < n;) {
    int sent = 0;
    for (int j = 0; j < batch && i < n; j++, i++, sent++) {
      fill_key(key, i);
      const char *argv[] = { "XADD", "q", "*", "k", key, "v", val_buf };
      size_t lens[] = { 4, 1, 1, 1, KEY_LEN, 1, VAL_LEN };
      redisAppendCommandArgv(c, 7, argv, lens);
    }
    for (int j = 0; j < sent; j++) {
      if (redisGetReply(c, (void **)&r) != REDIS_OK)
        die("redis reply", 1);
      freeReplyObject(r);
    }
  }
  double d = now_s() - t0;
  redisFree(c);
  return n / d;
}

/* ------------------------------------------------------------ workloads */

#define MED(expr)                                                                             \
  ({                                                                                          \
    double v__[REPS];                                                                         \
    for (int r__ = 0; r__ < REPS; r__++)                                                      \
      v__[r__] = (expr);                                                                      \
    median(v__, REPS);                                                                        \
  })

/* Two systems in turn, @reps times each; their medians into @a and @b. */
#define IN_TURNS(reps, a, expr_a, b, expr_b)                                                  \
  do {                                                                                        \
    double va__[reps], vb__[reps];                                                            \
    for (int r__ = 0; r__ < (reps); r__++) {                                                  \
      va__[r__] = (expr_a);                                                                   \
      vb__[r__] = (expr_b);                                                                   \
    }                                                                                         \
    (a) = median(va__, reps);                                                                 \
    (b) = median(vb__, reps);                                                                 \
  } while (0)

static int64_t N1 = 1000000;

static void
w1_w3(void)
{
  double vq1[TURNS], vq[TURNS], va[TURNS], vab[TURNS];
  for (int r = 0; r < TURNS; r++) {
    per_record = 1;
    vq1[r] = q7_write(path_of("q7-w1"), N1, 1000, 0, VAL_LEN);
    per_record = 0;
    vq[r] = q7_write(path_of("q7-w1"), N1, 1000, 0, VAL_LEN);
    va[r] = raw_write_per_record(path_of("raw-a"), N1, 1000, 0, VAL_LEN);
    vab[r] = raw_write_batched(path_of("raw-ab"), N1, 1000, 0, VAL_LEN);
  }
  double q1 = median(vq1, TURNS), q = median(vq, TURNS), a = median(va, TURNS),
         ab = median(vab, TURNS);
  report("W1", "produce 1M in batches of 1000, sync=false", "libq7", q, "rec/s", "raw LMDB (a)",
         a, ">= 2x");
  report("W1", "", "libq7", q, "rec/s", "raw batched (a')", ab, ">= 0.8x");
  report("W1", "the same, one send call per record", "libq7", q1, "rec/s", "raw LMDB (a)", a,
         "");
  report("W1", "", "libq7", q1, "rec/s", "raw batched (a')", ab, "");
  double s = MED(sqlite_write(path_of("sqlite"), N1, 1000, 0));
  report("W1", "", "libq7", q, "rec/s", "SQLite WAL", s, ">= 10x");
  if (redis_pid > 0) {
    double rd = MED(redis_write(quick ? N1 / 4 : N1, 1000));
    report("W1", "", "libq7", q, "rec/s", "Redis Streams", rd, ">= 50x");
  } else {
    printf("W1   Redis Streams: skipped (redis-server not installed)\n");
  }
  /* W3 reads what W1 wrote (the last repetition's stores): the consumer as
   * it comes (its fetch-ahead helper maps the log on the second core), and
   * without the helper. */
  double vqc[TURNS], vq0[TURNS], vac[TURNS];
  for (int r = 0; r < TURNS; r++) {
    vqc[r] = q7_consume_all(path_of("q7-w1"), N1, NULL);
    vq0[r] = q7_consume_all(path_of("q7-w1"), N1, "0");
    vac[r] = raw_scan(path_of("raw-a"), N1);
  }
  double qc = median(vqc, TURNS), q0 = median(vq0, TURNS), ac = median(vac, TURNS);
  double sc = MED(sqlite_scan(path_of("sqlite"), N1));
  report("W3", "consume 1M in order, group consumer", "libq7", qc, "rec/s",
         "raw cursor (a)", ac, ">= 2x");
  report("W3", "", "libq7", qc, "rec/s", "SQLite scan", sc, ">= 5x");
  report("W3", "the same, fetch.ahead.bytes=0 (no helper)", "libq7", q0, "rec/s",
         "raw cursor (a)", ac, "");
  const char *stores[] = { "q7-w1", "raw-a", "raw-ab", "sqlite" };
  for (size_t i = 0; i < sizeof stores / sizeof *stores; i++)
    rm_rf(path_of(stores[i]));
}

static void
w2(void)
{
  int64_t n = quick ? N1 / 5 : N1;
  double q, a;
  IN_TURNS(REPS, q, q7_write(path_of("q7-w2"), n, 1000, 1, VAL_LEN), a,
           raw_write_per_record(path_of("raw-w2"), n, 1000, 1, VAL_LEN));
  report("W2", "produce, durable (sync=true), 1000/commit", "libq7", q, "rec/s",
         "raw LMDB (a) dur.", a, ">= 0.8x");
}

static void
w5(void)
{
  int64_t n = quick ? 50000 : 200000;
  double q, ab;
  IN_TURNS(REPS, q, q7_write(path_of("q7-w5"), n, 1000, 0, 1024), ab,
           raw_write_batched(path_of("raw-w5"), n, 1000, 0, 1024));
  report("W5", "produce 1 KiB values, batches of 1000", "libq7", q * (24 + KEY_LEN + 1024) / 1e6,
         "MB/s", "raw batched (a')", ab * (24 + KEY_LEN + 1024) / 1e6, ">= 0.8x");
}

/* W4: sequential durable send_sync latency, against one raw durable commit
 * of the same record; the two take turns, one call each, so that the disk's
 * and the machine's drift falls on both alike. */
static void
w4(void)
{
  int n = quick ? 500 : 2000;
  double *lq = malloc(sizeof(double) * (size_t)n), *la = malloc(sizeof(double) * (size_t)n);
  q7 *q = q7_fresh(path_of("q7-w4"), 1);
  q7_topic *t;
  q7_producer *p;
  CK(q7_topic_create(q, "bench", 1, NULL));
  CK(q7_topic_open(q, "bench", &t));
  CK(q7_producer_new(q, NULL, &p));
  raw r;
  unsigned char rec[256], kb[8];
  raw_open(&r, path_of("raw-w4"), 1, (size_t)1 << 30);
  char key[KEY_LEN];
  for (int i = 0; i < n; i++) {
    fill_key(key, i);
    q7_msg m = { .topic = t, .partition = 0, .key = key, .key_len = KEY_LEN, .value = val_buf,
                 .value_len = VAL_LEN };
    double a = now_s();
    CK(q7_producer_send_sync(p, &m, NULL, NULL));
    lq[i] = now_s() - a;
    a = now_s();
    MDB_txn *txn;
    CK(mdb_txn_begin(r.env, NULL, 0, &txn));
    be64(kb, (uint64_t)i);
    MDB_val k = { 8, kb }, v = { raw_record(rec, i, VAL_LEN), rec };
    CK(mdb_put(txn, r.dbi, &k, &v, MDB_APPEND));
    CK(mdb_txn_commit(txn));
    la[i] = now_s() - a;
  }
  q7_producer_close(p);
  q7_topic_close(t);
  q7_close(q);
  raw_close(&r);
  double q50 = pct(lq, n, 0.5), q99 = pct(lq, n, 0.99), a50 = pct(la, n, 0.5),
         a99 = pct(la, n, 0.99);
  report("W4", "send_sync, sync=true: p50 latency", "libq7", q50 * 1e6, "us",
         "raw durable commit", a50 * 1e6, "<= 1.1x");
  report("W4", "send_sync, sync=true: p99 latency", "libq7", q99 * 1e6, "us",
         "raw durable commit", a99 * 1e6, "");
  free(lq);
  free(la);
}

/* W6: two partitions written by two threads, against one. */
typedef struct w6arg {
  q7 *q;
  int32_t part;
  int64_t n;
} w6arg;

static void *
w6_thread(void *arg)
{
  w6arg *a = arg;
  q7_topic *t;
  CK(q7_topic_open(a->q, "bench", &t));
  q7_producer *p = producer(a->q, 1000, VAL_LEN);
  q7_send_n(p, t, a->part, 0, a->n, VAL_LEN);
  CK(q7_producer_flush(p, -1));
  q7_producer_close(p);
  q7_topic_close(t);
  return NULL;
}

static double
w6_run(int threads, int64_t n)
{
  q7 *q = q7_fresh(path_of("q7-w6"), 0);
  CK(q7_topic_create(q, "bench", 2, NULL));
  pthread_t th[2];
  w6arg args[2];
  double t0 = now_s();
  for (int i = 0; i < threads; i++) {
    args[i] = (w6arg){ q, i, n };
    pthread_create(&th[i], NULL, w6_thread, &args[i]);
  }
  for (int i = 0; i < threads; i++)
    pthread_join(th[i], NULL);
  double d = now_s() - t0;
  q7_close(q);
  return threads * n / d;
}

static void
w6(void)
{
  int64_t n = quick ? N1 / 4 : N1;
  double one, two;
  IN_TURNS(TURNS, one, w6_run(1, n), two, w6_run(2, n));
  report("W6", "two partitions by two threads, sync=false", "libq7", two, "rec/s",
         "one partition", one, ">= 1.8x");
}

/* W7: 8 threads doing durable send_sync (group commit) vs one. */
typedef struct w7arg {
  q7 *q;
  int n;
} w7arg;

static void *
w7_thread(void *arg)
{
  w7arg *a = arg;
  q7_topic *t;
  q7_producer *p;
  CK(q7_topic_open(a->q, "bench", &t));
  CK(q7_producer_new(a->q, NULL, &p));
  for (int i = 0; i < a->n; i++) {
    q7_msg m = { .topic = t, .partition = 0, .value = val_buf, .value_len = VAL_LEN };
    CK(q7_producer_send_sync(p, &m, NULL, NULL));
  }
  q7_producer_close(p);
  q7_topic_close(t);
  return NULL;
}

static double
w7_run(int threads, int per)
{
  q7 *q = q7_fresh(path_of("q7-w7"), 1);
  CK(q7_topic_create(q, "bench", 1, NULL));
  pthread_t th[8];
  w7arg a = { q, per };
  double t0 = now_s();
  for (int i = 0; i < threads; i++)
    pthread_create(&th[i], NULL, w7_thread, &a);
  for (int i = 0; i < threads; i++)
    pthread_join(th[i], NULL);
  double d = now_s() - t0;
  q7_close(q);
  return threads * per / d;
}

static void
w7(void)
{
  int per = quick ? 100 : 250;
  double one, eight;
  IN_TURNS(TURNS, one, w7_run(1, per * 8), eight, w7_run(8, per));
  report("W7", "8 threads send_sync, sync=true (group commit)", "libq7", eight, "rec/s",
         "one thread", one, ">= 5x");
}

/* W8: poll wake-up latency, consumer in this process or another. */
static int64_t
mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

typedef struct w8arg {
  q7 *q;
  int n;
  double *lat;
} w8arg;

static void
w8_consume(q7 *q, int n, double *lat, int fd)
{
  q7_consumer *c;
  CK(q7_consumer_new(q, NULL, NULL, &c));
  CK(q7_consumer_assign(c, "bench", 0, Q7_OFFSET_END));
  if (fd >= 0 && write(fd, "r", 1) != 1) /* ready */
    exit(1);
  q7_record r[16];
  for (int got = 0; got < n;) {
    int k = q7_consumer_poll(c, r, 16, 2000);
    if (k < 0)
      die("w8 poll", k);
    int64_t now = mono_ns();
    for (int i = 0; i < k; i++, got++) {
      int64_t sent;
      memcpy(&sent, r[i].value, 8);
      double l = (now - sent) / 1e9;
      if (fd >= 0) {
        if (write(fd, &l, sizeof l) != sizeof l)
          exit(1);
      } else {
        lat[got] = l;
      }
    }
    if (k == 0)
      break;
  }
  q7_consumer_close(c);
}

static void *
w8_thread(void *arg)
{
  w8arg *a = arg;
  w8_consume(a->q, a->n, a->lat, -1);
  return NULL;
}

static void
w8_produce(q7 *q, int n)
{
  q7_topic *t;
  q7_producer *p;
  CK(q7_topic_open(q, "bench", &t));
  CK(q7_producer_new(q, NULL, &p));
  for (int i = 0; i < n; i++) {
    usleep(2000);
    int64_t ns = mono_ns();
    q7_msg m = { .topic = t, .partition = 0, .value = &ns, .value_len = sizeof ns };
    CK(q7_producer_send_sync(p, &m, NULL, NULL));
  }
  q7_producer_close(p);
  q7_topic_close(t);
}

static void
w8(void)
{
  int n = quick ? 100 : 300;
  double *lat = malloc(sizeof(double) * (size_t)n);
  const char *path = path_of("q7-w8");
  q7 *q = q7_fresh(path, 0);
  CK(q7_topic_create(q, "bench", 1, NULL));
  /* In process. */
  pthread_t th;
  w8arg a = { q, n, lat };
  pthread_create(&th, NULL, w8_thread, &a);
  usleep(100000);
  w8_produce(q, n);
  pthread_join(th, NULL);
  double i50 = pct(lat, n, 0.5) * 1e6, i99 = pct(lat, n, 0.99) * 1e6;
  q7_close(q);
  /* Across processes: the child opens the store itself (no store is used
   * across fork). */
  int pfd[2];
  if (pipe(pfd))
    exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    close(pfd[0]);
    q7 *cq;
    CK(q7_open(&cq, path, NULL));
    w8_consume(cq, n, NULL, pfd[1]);
    q7_close(cq);
    _exit(0);
  }
  close(pfd[1]);
  char ready;
  if (read(pfd[0], &ready, 1) != 1)
    die("w8 child", 1);
  CK(q7_open(&q, path, NULL));
  w8_produce(q, n);
  int got = 0;
  double l;
  while (got < n && read(pfd[0], &l, sizeof l) == sizeof l)
    lat[got++] = l;
  waitpid(pid, NULL, 0);
  close(pfd[0]);
  q7_close(q);
  double x50 = got ? pct(lat, got, 0.5) * 1e6 : -1, x99 = got ? pct(lat, got, 0.99) * 1e6 : -1;
  printf("W8   poll wake-up, same process: p50 %.0f us, p99 %.0f us (target p99 < 1000 us); "
         "other process: p50 %.0f us, p99 %.0f us (target p99 < 10000 us)\n",
         i50, i99, x50, x99);
  if (csv) {
    fprintf(csv, "W8,\"wake-up p50 same process\",libq7,%.1f,us,,0,\"\"\n", i50);
    fprintf(csv, "W8,\"wake-up p99 same process\",libq7,%.1f,us,,0,\"< 1000 us\"\n", i99);
    fprintf(csv, "W8,\"wake-up p50 other process\",libq7,%.1f,us,,0,\"\"\n", x50);
    fprintf(csv, "W8,\"wake-up p99 other process\",libq7,%.1f,us,,0,\"< 10000 us\"\n", x99);
  }
  free(lat);
}

/* W9: produce throughput with 1 M and with many records already there;
 * then the memory a consumer keeps while reading 10 M of them. */
static long
anon_kb(void)
{
  FILE *f = fopen("/proc/self/smaps_rollup", "r");
  char line[256];
  long kb = -1;
  while (f && fgets(line, sizeof line, f))
    if (sscanf(line, "Anonymous: %ld kB", &kb) == 1)
      break;
  if (f)
    fclose(f);
  return kb;
}

/* Before each probe, write back what the filling left dirty and drop the
 * log from the page cache.  With sync=false a 50 M fill leaves gigabytes
 * dirty, and a probe run while the kernel writes them out measures the
 * disk; and on this VM page-cache pages first used past about 2.5 GB are
 * several times slower to fill (the host backs guest memory on first
 * touch), which a probe would measure instead of the library.  Both
 * probes start the same way, from a clean page cache. */
static void
settle(const char *path)
{
  char f[4200];
  int fd = open(path, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    syncfs(fd);
    close(fd);
  }
  snprintf(f, sizeof f, "%s/topics/bench/0/data.mdb", path);
  if ((fd = open(f, O_RDONLY)) >= 0) {
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
  }
}

static void
w9(int64_t millions)
{
  /* Two partitions, one holding 1 M records and one @millions M, probed
   * in turns: each probe appends 1 M more, from a clean page cache, so
   * that both meet the machine in the same state. */
  const char *path = path_of("q7-w9"), *path1 = path_of("q7-w9-1m");
  q7 *q = q7_fresh(path, 0), *q1 = q7_fresh(path1, 0);
  q7_topic *t, *t1;
  CK(q7_topic_create(q, "bench", 1, NULL));
  CK(q7_topic_open(q, "bench", &t));
  CK(q7_topic_create(q1, "bench", 1, NULL));
  CK(q7_topic_open(q1, "bench", &t1));
  q7_producer *p = producer(q, 1000, VAL_LEN), *p1 = producer(q1, 1000, VAL_LEN);
  int64_t have = 0, have1 = 0, probe = 1000000;
  q7_send_n(p1, t1, 0, have1, probe, VAL_LEN);
  CK(q7_producer_flush(p1, -1));
  have1 += probe;
  fprintf(stderr, "W9: filling the partition to %" PRId64 " M records...\n", millions);
  while (have < millions * 1000000) {
    int64_t k = millions * 1000000 - have;
    if (k > 5000000)
      k = 5000000;
    q7_send_n(p, t, 0, have, k, VAL_LEN);
    CK(q7_producer_flush(p, -1));
    have += k;
  }
  double v1[TURNS], vn[TURNS];
  for (int r = 0; r < TURNS; r++) {
    settle(path1);
    double t0 = now_s();
    q7_send_n(p1, t1, 0, have1, probe, VAL_LEN);
    CK(q7_producer_flush(p1, -1));
    v1[r] = probe / (now_s() - t0);
    have1 += probe;
    settle(path);
    t0 = now_s();
    q7_send_n(p, t, 0, have, probe, VAL_LEN);
    CK(q7_producer_flush(p, -1));
    vn[r] = probe / (now_s() - t0);
    have += probe;
  }
  double at1 = median(v1, TURNS), atn = median(vn, TURNS);
  char what[64];
  snprintf(what, sizeof what, "produce 1M with %" PRId64 "M already in the partition",
           millions);
  report("W9", what, "libq7", atn, "rec/s", "with 1M there", at1, ">= 0.9x");
  q7_producer_close(p);
  q7_topic_close(t);
  q7_producer_close(p1);
  q7_topic_close(t1);
  q7_close(q1);
  rm_rf(path1);

  /* Memory: a consumer reading 10 M records keeps a flat heap. */
  int64_t n = have < 10000000 ? have : 10000000;
  q7_consumer *c;
  q7_conf *cc = q7_conf_new();
  q7_conf_set(cc, "max.poll.records", "10000");
  CK(q7_consumer_new(q, NULL, cc, &c));
  q7_conf_destroy(cc);
  CK(q7_consumer_assign(c, "bench", 0, Q7_OFFSET_BEGINNING));
  static q7_record rr[10000];
  long start = anon_kb(), peak = start;
  struct rusage ru0, ru1;
  getrusage(RUSAGE_SELF, &ru0);
  for (int64_t got = 0; got < n;) {
    int k = q7_consumer_poll(c, rr, 10000, 1000);
    if (k <= 0)
      die("w9 poll", k);
    got += k;
    if (got % 1000000 < 10000) {
      long a = anon_kb();
      if (a > peak)
        peak = a;
    }
  }
  getrusage(RUSAGE_SELF, &ru1);
  q7_consumer_close(c);
  printf("MEM  consumer read %" PRId64 " records: anonymous memory (heap, not the map) %ld kB "
         "at start, %ld kB peak (%+ld kB); peak RSS with the map %ld MB\n",
         n, start, peak, peak - start, ru1.ru_maxrss / 1024);
  if (csv)
    fprintf(csv, "MEM,\"heap growth reading %" PRId64 " records\",libq7,%ld,kB,,0,\"flat\"\n", n,
            peak - start);
  q7_close(q);
  rm_rf(path);
}

/* W10: status of a group over 1,000 partitions. */
static void
w10(void)
{
  q7 *q = q7_fresh(path_of("q7-w10"), 0);
  CK(q7_topic_create(q, "wide", 1000, NULL));
  q7_topic *t;
  q7_producer *p;
  q7_consumer *c;
  CK(q7_topic_open(q, "wide", &t));
  CK(q7_producer_new(q, NULL, &p));
  CK(q7_consumer_new(q, "g", NULL, &c));
  for (int32_t i = 0; i < 1000; i++) {
    for (int j = 0; j < 3; j++) {
      q7_msg m = { .topic = t, .partition = i, .value = "x", .value_len = 1 };
      CK(q7_producer_send_sync(p, &m, NULL, NULL));
      CK(q7_consumer_commit_offset(c, "wide", i, j));
    }
  }
  q7_consumer_close(c);
  q7_producer_close(p);
  q7_topic_close(t);
  double v[7];
  for (int r = 0; r < 7; r++) {
    q7_group_report *rep;
    double t0 = now_s();
    CK(q7_group_status(q, "g", 0, &rep));
    v[r] = (now_s() - t0) * 1e3;
    if (rep->partition_count != 1000)
      die("w10 count", (int)rep->partition_count);
    q7_group_report_free(rep);
  }
  double ms = median(v, 7);
  printf("W10  status of a group over 1000 partitions: %.2f ms (median of 7; target < 10 ms)\n",
         ms);
  if (csv)
    fprintf(csv, "W10,\"group status, 1000 partitions\",libq7,%.3f,ms,,0,\"< 10 ms\"\n", ms);
  q7_close(q);
}

/* WC: compression on a compressible payload (JSON-like text). */
static int
json_value(char *buf, size_t cap, int64_t i)
{
  return snprintf(buf, cap, "{\"user\":\"user-%" PRId64 "\",\"event\":\"click\",\"page\":"
                  "\"/products/%" PRId64 "\",\"ts\":%" PRId64 ",\"ok\":true}",
                  i % 977, i % 131, 1700000000000 + i);
}

static int64_t
dir_bytes(const char *path)
{
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "du -sb '%s'", path);
  FILE *f = popen(cmd, "r");
  long long b = -1;
  if (f && fscanf(f, "%lld", &b) != 1)
    b = -1;
  if (f)
    pclose(f);
  return b;
}

static double
wc_write(const char *path, const char *codec, int64_t n)
{
  q7 *q = q7_fresh(path, 0);
  q7_topic *t;
  q7_producer *p;
  q7_conf *c = q7_conf_new();
  q7_conf_set(c, "batch.size", "131072");
  q7_conf_set(c, "linger.ms", "100000");
  q7_conf_set(c, "compression.type", codec);
  CK(q7_topic_create(q, "bench", 1, NULL));
  CK(q7_topic_open(q, "bench", &t));
  CK(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  char key[KEY_LEN], v[200];
  double t0 = now_s();
  for (int64_t i = 0; i < n; i++) {
    fill_key(key, i);
    int vl = json_value(v, sizeof v, i);
    q7_msg m = { .topic = t, .partition = 0, .key = key, .key_len = KEY_LEN, .value = v,
                 .value_len = (size_t)vl };
    CK(q7_producer_send(p, &m));
  }
  CK(q7_producer_flush(p, -1));
  double d = now_s() - t0;
  q7_producer_close(p);
  q7_topic_close(t);
  q7_close(q);
  return n / d;
}

static void
wc(void)
{
  int64_t n = quick ? 200000 : N1;
  const char *codecs[] = { "none", "lz4", "zstd" };
  double base_w = 0, base_r = 0;
  int64_t base_b = 0;
  for (int i = 0; i < 3; i++) {
    char name[64];
    snprintf(name, sizeof name, "q7-wc-%s", codecs[i]);
    double w = MED(wc_write(path_of(name), codecs[i], n));
    double r = MED(q7_consume_all(path_of(name), n, NULL));
    int64_t b = dir_bytes(path_of(name));
    if (i == 0) {
      base_w = w;
      base_r = r;
      base_b = b;
    }
    char what[80];
    snprintf(what, sizeof what, "JSON-like ~100 B values, compression %s", codecs[i]);
    report("WC", what, "produce", w, "rec/s", "none", base_w, "");
    report("WC", "", "consume", r, "rec/s", "none", base_r, "");
    report("WC", "", "on disk", (double)b, "bytes", "none", (double)base_b, "");
  }
}

/* LAG: what keeping the commit history for lag evaluation costs a commit. */
static double
lag_commits(int window, int n)
{
  q7 *q;
  q7_conf *c = q7_conf_new();
  char w[16];
  snprintf(w, sizeof w, "%d", window);
  rm_rf(path_of("q7-lag"));
  q7_conf_set(c, "sync", "false");
  q7_conf_set(c, "lag.window", w);
  q7_conf_set(c, "retention.check.interval.ms", "0");
  CK(q7_open(&q, path_of("q7-lag"), c));
  q7_conf_destroy(c);
  CK(q7_topic_create(q, "bench", 1, NULL));
  q7_topic *t;
  q7_producer *p;
  q7_consumer *cs;
  CK(q7_topic_open(q, "bench", &t));
  CK(q7_producer_new(q, NULL, &p));
  for (int i = 0; i < 100; i++) {
    q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1 };
    CK(q7_producer_send_sync(p, &m, NULL, NULL));
  }
  CK(q7_consumer_new(q, "g", NULL, &cs));
  double t0 = now_s();
  for (int i = 0; i < n; i++)
    CK(q7_consumer_commit_offset(cs, "bench", 0, i % 100));
  double d = now_s() - t0;
  q7_consumer_close(cs);
  q7_producer_close(p);
  q7_topic_close(t);
  q7_close(q);
  return n / d;
}

static void
lag(void)
{
  int n = quick ? 5000 : 20000;
  double w1 = MED(lag_commits(1, n)), w10 = MED(lag_commits(10, n)),
         w100 = MED(lag_commits(100, n));
  report("LAG", "commits/s keeping a window of 10 commits", "libq7", w10, "commits/s",
         "window of 1", w1, "~1x");
  report("LAG", "commits/s keeping a window of 100 commits", "libq7", w100, "commits/s",
         "window of 1", w1, "");
}

static bool
want(const char *list, const char *w)
{
  if (!list)
    return true;
  char buf[256];
  snprintf(buf, sizeof buf, ",%s,", list);
  char key[16];
  snprintf(key, sizeof key, ",%s,", w);
  return strstr(buf, key) != NULL;
}

/* Between workloads: the last one's stores go, and what it wrote goes to
 * disk, so that neither the kernel's writeback of it (on one of two
 * cores) nor the page cache it holds is measured as part of the next.
 * (Pages the next workload takes fresh, where the last one's could have
 * been reclaimed, are slow to fill on this VM: see settle().) */
static void
quiet(void)
{
  char cmd[4200];
  rm_rf(root);
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", root);
  if (system(cmd))
    die("mkdir", 1);
  sync();
}

#define RUN(name, call)                                                                       \
  do {                                                                                        \
    if (want(only, name)) {                                                                   \
      quiet();                                                                                \
      call;                                                                                   \
    }                                                                                         \
  } while (0)

int
main(int argc, char **argv)
{
  const char *only = NULL, *out = NULL;
  int64_t w9m = 50;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc)
      out = argv[++i];
    else if (!strcmp(argv[i], "-w") && i + 1 < argc)
      only = argv[++i];
    else if (!strcmp(argv[i], "--w9-millions") && i + 1 < argc)
      w9m = atoll(argv[++i]);
    else if (!strcmp(argv[i], "--quick"))
      quick = 1;
    else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
      root = argv[++i];
    else {
      fprintf(stderr, "usage: bench [-o CSV] [-w W1,W2,...] [--w9-millions N] [--quick] "
                      "[--dir DIR]\n");
      return 2;
    }
  }
  if (quick) {
    N1 = 200000;
    if (w9m > 5)
      w9m = 5;
  }
  memset(val_buf, 'v', sizeof val_buf);
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", root);
  if (system(cmd))
    return 1;
  if (out && !(csv = fopen(out, "w"))) {
    perror(out);
    return 1;
  }
  if (out) {
    char tp[4200];
    snprintf(tp, sizeof tp, "%s.ratios.tsv", out);
    if (!(tsv = fopen(tp, "w"))) {
      perror(tp);
      return 1;
    }
  }
  if (csv)
    fprintf(csv, "workload,what,system,value,unit,baseline,ratio,target\n");
  char host[256] = "?";
  FILE *f = popen("lscpu | sed -n 's/^Model name: *//p'", "r");
  if (f && fgets(host, sizeof host, f))
    host[strcspn(host, "\n")] = 0;
  if (f)
    pclose(f);
  printf("libq7 %s bench: %ld cores, %s; LMDB %s; SQLite %s; medians of %d runs, the systems taking turns (W1, W3, "
         "W6, W7: %d; W4: one call each)%s\n",
         q7_version(), sysconf(_SC_NPROCESSORS_ONLN), host, MDB_VERSION_STRING,
         sqlite3_libversion(), REPS, TURNS, quick ? " (quick sizes)" : "");
  printf("%-4s %-44s %-12s %14s %-9s  %s\n", "", "workload", "system", "value", "unit",
         "ratio to baseline (target)");
  if (want(only, "W1") || want(only, "W3")) {
    quiet();
    if (redis_start())
      fprintf(stderr, "bench: redis-server not available; Redis Streams skipped\n");
    w1_w3();
    redis_stop();
  }
  RUN("W2", w2());
  RUN("W4", w4());
  RUN("W5", w5());
  RUN("W6", w6());
  RUN("W7", w7());
  RUN("W8", w8());
  /* W9 before W10: a thousand partitions leave the process holding some
   * 2 GB of LMDB's per-environment buffers, which W9's heap figure is not
   * about. */
  RUN("W9", w9(w9m));
  RUN("W10", w10());
  RUN("WC", wc());
  RUN("LAG", lag());
  if (csv)
    fclose(csv);
  if (tsv)
    fclose(tsv);
  rm_rf(root);
  return 0;
}
