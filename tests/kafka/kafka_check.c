/* kafka_check.c - `q7 kafka export` and `q7 kafka import` against
 * librdkafka's built-in mock Kafka cluster (rdkafka_mock.h), which lives in
 * this process and listens on 127.0.0.1 only.  Driven by tests/e2e_kafka.sh:
 *
 *   kafka_check Q7_BINARY WORKDIR
 *
 * It runs the q7 tool as a child process against the mock cluster and
 * checks, printing counts:
 *
 *   1. export: 100,000 keyed records with headers and explicit timestamps
 *      (null and empty keys, values and header values among them) written
 *      through libq7 come back from Kafka byte for byte, partition for
 *      partition and offset for offset, exactly once each; the group
 *      q7-export-TOPIC committed the end; a second run exports nothing;
 *      keyed records sit where librdkafka's murmur2 partitioner and
 *      q7_partition_for_key both put them;
 *   2. crash: the exporter is SIGKILLed mid-way (brokers slowed down so that
 *      it is caught with work in flight) and restarted: every record is in
 *      Kafka, each partition being libq7's log with at most one stretch
 *      repeated -- records the killed session delivered but never committed
 *      -- and the committed offsets are the end;
 *   3. partition counts differ (libq7 4, Kafka 6): every record arrives;
 *      keyed ones on murmur2(key) mod 6, each key's records in libq7's order;
 *   4. import: 100,000 records produced with librdkafka land in a libq7 topic
 *      the tool creates with Kafka's partition count, byte for byte and
 *      partition for partition; the Kafka group committed the end;
 *   5. --follow: export and import keep streaming new records and stop
 *      cleanly on SIGTERM (exit 0, everything committed);
 *   6. import into a libq7 topic with another partition count: keyed records
 *      on murmur2(key) mod that count;
 *   7. errors: a missing Kafka topic is exit 1 with one "q7:" line.
 *
 * Every child is bounded in time and stopped by its PID.  Exit 0 when all
 * passed. */
#include <q7.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "../proc.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define N_EXPORT 100000
#define N_CRASH 100000
#define N_WIDE 20000
#define N_IMPORT 100000
#define N_FOLLOW 1000
#define PARTS 4
#define CHILD_TIMEOUT_MS 180000

static const char *q7bin, *workdir, *bootstraps;
static char store[1024];
static int failures;
static rd_kafka_mock_cluster_t *mcluster;

/* ===================================================================== */
/*  Helpers                                                              */
/* ===================================================================== */

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
note(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("kafka_check: ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
  va_end(ap);
}

static void
failf(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("kafka_check: FAIL: ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
  va_end(ap);
  failures++;
}

static void
die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fputs("kafka_check: FATAL: ", stdout);
  vprintf(fmt, ap);
  putchar('\n');
  fflush(stdout);
  va_end(ap);
  exit(1);
}

static void *
xcalloc(size_t n, size_t sz)
{
  void *p = calloc(n ? n : 1, sz ? sz : 1);
  if (!p)
    die("out of memory");
  return p;
}

static void *
xmemdup(const void *p, size_t n)
{
  void *d = malloc(n ? n : 1);
  if (!d)
    die("out of memory");
  if (n)
    memcpy(d, p, n);
  return d;
}

/* ===================================================================== */
/*  Records, as both sides see them                                      */
/* ===================================================================== */

struct hdr {
  char *name;
  long vlen;                 /* -1: null */
  char *val;
};

struct rec {
  int64_t offset, ts;
  long klen, vlen;           /* -1: null */
  char *key, *val;
  int nh;
  struct hdr *h;
  long seq;                  /* the "seq" header, -1 if none */
};

/* A growable list of records: one partition's log. */
struct log {
  struct rec *r;
  size_t n, cap;
};

static struct rec *
log_add(struct log *l)
{
  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 1024;
    l->r = realloc(l->r, l->cap * sizeof *l->r);
    if (!l->r)
      die("out of memory");
  }
  struct rec *r = &l->r[l->n++];
  memset(r, 0, sizeof *r);
  r->seq = -1;
  return r;
}

static void
logs_free(struct log *logs, int n)
{
  for (int p = 0; p < n; p++) {
    for (size_t i = 0; i < logs[p].n; i++) {
      struct rec *r = &logs[p].r[i];
      free(r->key);
      free(r->val);
      for (int k = 0; k < r->nh; k++) {
        free(r->h[k].name);
        free(r->h[k].val);
      }
      free(r->h);
    }
    free(logs[p].r);
    logs[p].r = NULL;
    logs[p].n = logs[p].cap = 0;
  }
}

static void
rec_set_seq(struct rec *r)
{
  for (int k = 0; k < r->nh; k++)
    if (!strcmp(r->h[k].name, "seq") && r->h[k].vlen > 0 && r->h[k].vlen < 20) {
      char buf[24];
      memcpy(buf, r->h[k].val, (size_t)r->h[k].vlen);
      buf[r->h[k].vlen] = 0;
      r->seq = strtol(buf, NULL, 10);
      return;
    }
}

/* Equal in everything but the offset.  *why says what differs. */
static bool
rec_equal(const struct rec *a, const struct rec *b, const char **why)
{
  if (a->ts != b->ts)
    return *why = "timestamp", false;
  if (a->klen != b->klen || (a->klen > 0 && memcmp(a->key, b->key, (size_t)a->klen)))
    return *why = "key", false;
  if (a->vlen != b->vlen || (a->vlen > 0 && memcmp(a->val, b->val, (size_t)a->vlen)))
    return *why = "value", false;
  if (a->nh != b->nh)
    return *why = "header count", false;
  for (int k = 0; k < a->nh; k++) {
    const struct hdr *x = &a->h[k], *y = &b->h[k];
    if (strcmp(x->name, y->name))
      return *why = "header name", false;
    if (x->vlen != y->vlen || (x->vlen > 0 && memcmp(x->val, y->val, (size_t)x->vlen)))
      return *why = "header value", false;
  }
  return true;
}

/* The record number @i of stream @seed, as sent: */
struct gen {
  bool key_null;
  char key[32];
  size_t key_len;
  bool val_null;
  unsigned char val[400];
  size_t val_len;
  int64_t ts;
  int32_t partition;         /* -1: the partitioner */
  int nh;
  char hname[5][16];
  bool hnull[5];
  unsigned char hval[5][48];
  size_t hlen[5];
};

static uint64_t
mix(uint64_t x)
{
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

static void
gen(int seed, long i, struct gen *g)
{
  memset(g, 0, sizeof *g);
  uint64_t s = mix((uint64_t)seed * 1000003u + (uint64_t)i);
  g->partition = -1;
  if (i % 50 == 7) {
    g->key_null = true;                      /* keyless */
    if (i % 100 == 7)
      g->partition = (int32_t)((i / 100) % PARTS); /* placed by hand */
  } else if (i % 211 == 3) {
    g->key_len = 0;                          /* an empty key, not a null one */
  } else {
    g->key_len = (size_t)snprintf(g->key, sizeof g->key, "user-%ld", (i * 7919 + seed) % 1500);
  }
  if (i % 97 == 5) {
    g->val_null = true;
  } else if (i % 89 == 4) {
    g->val_len = 0;
  } else {
    g->val_len = 1 + (size_t)(s % 120); /* the mock keeps 5 MiB a partition */
    uint64_t x = s;
    for (size_t k = 0; k < g->val_len; k++) {
      x = mix(x + k);
      g->val[k] = (unsigned char)x;          /* any byte, 0x00 and 0xff included */
    }
  }
  g->ts = i % 13 == 0 ? 1600000000000LL + i : 1700000000000LL + i * 3;
  /* Headers: always "seq"; then some of a binary one, a null one, an empty
   * one, and a repeated name. */
  int n = 0;
  snprintf(g->hname[n], sizeof g->hname[n], "seq");
  g->hlen[n] = (size_t)snprintf((char *)g->hval[n], sizeof g->hval[n], "%ld", i);
  n++;
  if (i % 3 == 0) {
    snprintf(g->hname[n], sizeof g->hname[n], "trace");
    g->hlen[n] = 16;
    for (int k = 0; k < 16; k++)
      g->hval[n][k] = (unsigned char)(s >> (k % 8 * 8));
    n++;
  }
  if (i % 5 == 0) {
    snprintf(g->hname[n], sizeof g->hname[n], "nil");
    g->hnull[n] = true;
    n++;
  }
  if (i % 7 == 0) {
    snprintf(g->hname[n], sizeof g->hname[n], "empty");
    g->hlen[n] = 0;
    n++;
  }
  if (i % 11 == 0) {
    snprintf(g->hname[n], sizeof g->hname[n], "seq");
    g->hlen[n] = 3;
    memcpy(g->hval[n], "dup", 3);
    n++;
  }
  g->nh = n;
}

/* ===================================================================== */
/*  The libq7 side                                                       */
/* ===================================================================== */

static q7 *
store_open(void)
{
  q7 *q;
  q7_conf *c = q7_conf_new();
  if (!c || q7_conf_set(c, "retention.check.interval.ms", "0"))
    die("q7 conf: %s", q7_last_error());
  int rc = q7_open(&q, store, c);
  q7_conf_destroy(c);
  if (rc)
    die("q7_open %s: %s (%s)", store, q7_strerror(rc), q7_last_error());
  return q;
}

/* Write records @from..@to-1 of stream @seed into libq7 topic @topic. */
static void
q7_fill(q7 *q, const char *topic, int seed, long from, long to)
{
  q7_topic *t;
  q7_producer *p;
  int rc;
  if ((rc = q7_topic_open(q, topic, &t)) || (rc = q7_producer_new(q, NULL, &p)))
    die("q7 topic %s: %s (%s)", topic, q7_strerror(rc), q7_last_error());
  for (long i = from; i < to; i++) {
    struct gen g;
    q7_header h[5];
    gen(seed, i, &g);
    for (int k = 0; k < g.nh; k++)
      h[k] = (q7_header){ g.hname[k], g.hnull[k] ? NULL : g.hval[k], g.hnull[k] ? 0 : g.hlen[k] };
    q7_msg m = {
      .topic = t,
      .partition = g.partition >= 0 ? g.partition : Q7_PARTITION_ANY,
      .key = g.key_null ? NULL : g.key, .key_len = g.key_len,
      .value = g.val_null ? NULL : g.val, .value_len = g.val_len,
      .timestamp_ms = g.ts, .headers = h, .header_count = (size_t)g.nh,
    };
    if ((rc = q7_producer_send(p, &m)))
      die("q7_producer_send: %s (%s)", q7_strerror(rc), q7_last_error());
  }
  if ((rc = q7_producer_flush(p, -1)))
    die("q7_producer_flush: %s", q7_strerror(rc));
  q7_producer_close(p);
  q7_topic_close(t);
}

/* Every record of libq7 topic @topic, per partition, into @logs. */
static int32_t
q7_read_all(q7 *q, const char *topic, struct log *logs, int32_t max_parts)
{
  q7_topic *t;
  q7_record recs[512];
  int rc = q7_topic_open(q, topic, &t);
  if (rc)
    die("q7_topic_open %s: %s", topic, q7_strerror(rc));
  int32_t n = q7_topic_partition_count(t);
  if (n > max_parts)
    die("topic %s has %d partitions", topic, (int)n);
  for (int32_t p = 0; p < n; p++) {
    q7_partition *part;
    int64_t off = 0, hw = 0;
    if ((rc = q7_topic_partition(t, p, &part)) || (rc = q7_partition_offsets(part, &off, &hw)))
      die("partition %d: %s", (int)p, q7_strerror(rc));
    while (off < hw) {
      int got = q7_partition_read(part, off, recs, 512);
      if (got <= 0)
        die("q7_partition_read %s/%d at %" PRId64 ": %s", topic, (int)p, off, q7_strerror(got));
      for (int i = 0; i < got; i++) {
        const q7_record *r = &recs[i];
        struct rec *x = log_add(&logs[p]);
        x->offset = r->offset;
        x->ts = r->timestamp_ms;
        x->klen = r->key ? (long)r->key_len : -1;
        x->key = r->key ? xmemdup(r->key, r->key_len) : NULL;
        x->vlen = r->value ? (long)r->value_len : -1;
        x->val = r->value ? xmemdup(r->value, r->value_len) : NULL;
        size_t it = 0, nl, vl;
        const char *nm;
        const void *v;
        int cnt = 0;
        while (q7_record_header_next(r, &it, &nm, &nl, &v, &vl) == Q7_OK)
          cnt++;
        x->h = xcalloc((size_t)cnt, sizeof *x->h);
        it = 0;
        while (q7_record_header_next(r, &it, &nm, &nl, &v, &vl) == Q7_OK) {
          struct hdr *h = &x->h[x->nh++];
          h->name = xcalloc(nl + 1, 1);
          memcpy(h->name, nm, nl);
          h->vlen = v ? (long)vl : -1;
          h->val = v ? xmemdup(v, vl) : NULL;
        }
        rec_set_seq(x);
      }
      off = recs[got - 1].offset + 1;
    }
    q7_partition_read(part, 0, NULL, 0);
  }
  q7_topic_close(t);
  return n;
}

static int64_t
q7_committed_sum(q7 *q, const char *group, const char *topic, int32_t n, int64_t *each)
{
  int64_t sum = 0;
  for (int32_t p = 0; p < n; p++) {
    int64_t c = 0;
    if (q7_committed(q, group, topic, p, &c))
      c = 0;
    if (each)
      each[p] = c;
    sum += c;
  }
  return sum;
}

static int64_t
q7_hw_sum(q7 *q, const char *topic)
{
  q7_topic *t;
  if (q7_topic_open(q, topic, &t))
    return 0;
  int64_t sum = 0;
  for (int32_t p = 0; p < q7_topic_partition_count(t); p++) {
    q7_partition *part;
    int64_t hw = 0;
    if (!q7_topic_partition(t, p, &part) && !q7_partition_offsets(part, NULL, &hw))
      sum += hw;
  }
  q7_topic_close(t);
  return sum;
}

/* ===================================================================== */
/*  The Kafka side                                                       */
/* ===================================================================== */

static rd_kafka_t *
kafka_client(rd_kafka_type_t type, const char *group)
{
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps, errstr, sizeof errstr) ||
      rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) ||
      (group && rd_kafka_conf_set(conf, "group.id", group, errstr, sizeof errstr)) ||
      (type == RD_KAFKA_CONSUMER &&
       (rd_kafka_conf_set(conf, "enable.auto.commit", "false", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.partition.eof", "false", errstr, sizeof errstr))) ||
      (type == RD_KAFKA_PRODUCER &&
       (rd_kafka_conf_set(conf, "partitioner", "murmur2_random", errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "enable.idempotence", "true", errstr, sizeof errstr))))
    die("rdkafka conf: %s", errstr);
  rd_kafka_t *rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
  if (!rk)
    die("rd_kafka_new: %s", errstr);
  return rk;
}

/* The high watermark of a partition.  The low one must be 0: the mock
 * cluster drops the oldest records of a partition past 5 MiB (or 100,000
 * batches), which would read as a loss. */
static int64_t
kafka_hw(rd_kafka_t *rk, const char *topic, int32_t p)
{
  int64_t lo, hi;
  rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
  if (err)
    die("watermarks of %s/%d: %s", topic, (int)p, rd_kafka_err2str(err));
  if (lo != 0)
    die("%s/%d starts at offset %" PRId64 ": the mock cluster dropped records (it keeps 5 MiB "
        "a partition); make the test's records smaller", topic, (int)p, lo);
  return hi;
}

static int64_t
kafka_hw_sum(const char *topic, int32_t n)
{
  rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, "kafka_check");
  int64_t sum = 0;
  for (int32_t p = 0; p < n; p++)
    sum += kafka_hw(rk, topic, p);
  rd_kafka_destroy(rk);
  return sum;
}

/* Every record of Kafka topic @topic (@n partitions), per partition. */
static void
kafka_read_all(const char *topic, int32_t n, struct log *logs)
{
  rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, "kafka_check");
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
  int64_t want = 0, *hi = xcalloc((size_t)n, sizeof *hi), got = 0;
  for (int32_t p = 0; p < n; p++) {
    hi[p] = kafka_hw(rk, topic, p);
    want += hi[p];
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (rd_kafka_assign(rk, l))
    die("rd_kafka_assign");
  int64_t deadline = mono_ms() + 60000;
  while (got < want) {
    if (mono_ms() > deadline) {
      for (int32_t p = 0; p < n; p++) {
        note("%s/%d: high watermark %" PRId64 ", read %zu, last offset %" PRId64, topic, (int)p,
             hi[p], logs[p].n, logs[p].n ? logs[p].r[logs[p].n - 1].offset : -1);
        for (size_t i = 1; i < logs[p].n; i++)
          if (logs[p].r[i].offset != logs[p].r[i - 1].offset + 1)
            note("  gap after offset %" PRId64 " (seq %ld) to %" PRId64 " (seq %ld)",
                 logs[p].r[i - 1].offset, logs[p].r[i - 1].seq, logs[p].r[i].offset,
                 logs[p].r[i].seq);
      }
      die("reading %s back from Kafka: %" PRId64 " of %" PRId64 " records in 60 s", topic, got,
          want);
    }
    rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
    if (!m)
      continue;
    if (m->err) {
      if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
        note("consumer: %s", rd_kafka_message_errstr(m));
      rd_kafka_message_destroy(m);
      continue;
    }
    if (m->partition < 0 || m->partition >= n || m->offset >= hi[m->partition]) {
      rd_kafka_message_destroy(m);
      continue;
    }
    struct rec *x = log_add(&logs[m->partition]);
    got++;
    x->offset = m->offset;
    rd_kafka_timestamp_type_t tt;
    x->ts = rd_kafka_message_timestamp(m, &tt);
    x->klen = m->key ? (long)m->key_len : -1;
    x->key = m->key ? xmemdup(m->key, m->key_len) : NULL;
    x->vlen = m->payload ? (long)m->len : -1;
    x->val = m->payload ? xmemdup(m->payload, m->len) : NULL;
    rd_kafka_headers_t *hs;
    if (!rd_kafka_message_headers(m, &hs)) {
      size_t cnt = rd_kafka_header_cnt(hs);
      x->h = xcalloc(cnt, sizeof *x->h);
      const char *nm;
      const void *v;
      size_t vl;
      for (size_t k = 0; k < cnt && !rd_kafka_header_get_all(hs, k, &nm, &v, &vl); k++) {
        struct hdr *h = &x->h[x->nh++];
        h->name = strdup(nm);
        h->vlen = v ? (long)vl : -1;
        h->val = v ? xmemdup(v, vl) : NULL;
      }
    }
    rec_set_seq(x);
    rd_kafka_message_destroy(m);
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_consumer_close(rk);
  rd_kafka_destroy(rk);
  free(hi);
}

/* Produce records @from..@to-1 of stream @seed to Kafka topic @topic with
 * librdkafka (keyed ones by murmur2, as the Java client). */
static void
kafka_fill(const char *topic, int seed, long from, long to)
{
  rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
  for (long i = from; i < to; i++) {
    struct gen g;
    gen(seed, i, &g);
    rd_kafka_headers_t *hs = rd_kafka_headers_new((size_t)g.nh);
    for (int k = 0; k < g.nh; k++)
      rd_kafka_header_add(hs, g.hname[k], -1, g.hnull[k] ? NULL : g.hval[k],
                          g.hnull[k] ? 0 : (ssize_t)g.hlen[k]);
    rd_kafka_resp_err_t err;
    do {
      err = rd_kafka_producev(
          rk, RD_KAFKA_V_TOPIC(topic),
          RD_KAFKA_V_PARTITION(g.partition >= 0 ? g.partition : RD_KAFKA_PARTITION_UA),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(g.key_null ? NULL : g.key, g.key_len),
          RD_KAFKA_V_VALUE(g.val_null ? NULL : g.val, g.val_len),
          RD_KAFKA_V_TIMESTAMP(g.ts), RD_KAFKA_V_HEADERS(hs), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
        rd_kafka_poll(rk, 100);
    } while (err == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    if (err)
      die("producev: %s", rd_kafka_err2str(err));
    rd_kafka_poll(rk, 0);
  }
  if (rd_kafka_flush(rk, 60000))
    die("flush to Kafka timed out");
  rd_kafka_destroy(rk);
}

/* The committed offsets of Kafka group @group on @topic, summed; -1 if any
 * partition has none. */
static int64_t
kafka_committed_sum(const char *group, const char *topic, int32_t n)
{
  rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, group);
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
  for (int32_t p = 0; p < n; p++)
    rd_kafka_topic_partition_list_add(l, topic, p);
  rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 10000);
  int64_t sum = 0;
  for (int i = 0; i < l->cnt; i++) {
    if (err || l->elems[i].err || l->elems[i].offset < 0) {
      sum = -1;
      break;
    }
    sum += l->elems[i].offset;
  }
  rd_kafka_topic_partition_list_destroy(l);
  rd_kafka_destroy(rk);
  return sum;
}

/* ===================================================================== */
/*  Children                                                             */
/* ===================================================================== */

static int nchild;

/* Start q7 with @args (NULL-terminated, after the program name); its
 * stderr goes to a file whose path lands in @errpath. */
static pid_t
spawn(const char *const *args, char *errpath, size_t errlen)
{
  const char *argv[32];
  int n = 0;
  argv[n++] = q7bin;
  for (int i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  snprintf(errpath, errlen, "%s/child%d.err", workdir, ++nchild);
  fflush(stdout);
  pid_t pid = fork();
  if (pid < 0)
    die("fork: %s", strerror(errno));
  if (pid == 0) {
    /* If this program dies, so does the child: a --follow run must not
     * outlive the mock cluster it talks to. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
      _exit(127);
    int fd = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int nul = open("/dev/null", O_RDWR);
    if (fd >= 0)
      dup2(fd, 2);
    if (nul >= 0) {
      dup2(nul, 0);
      dup2(nul, 1);
    }
    execv(q7bin, (char *const *)argv);
    _exit(127);
  }
  return pid;
}

/* Wait for @pid up to @ms; on timeout SIGKILL it and return -1.  Returns
 * the exit status, or 128+signal. */
static int
wait_child(pid_t pid, int ms)
{
  int64_t deadline = mono_ms() + ms;
  int st;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0)
      die("waitpid: %s", strerror(errno));
    if (mono_ms() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    sleep_ms(5);
  }
}

static void
show_err(const char *path, const char *label)
{
  FILE *f = fopen(path, "r");
  char line[1024];
  if (!f)
    return;
  while (fgets(line, sizeof line, f)) {
    /* Progress lines use \r; the check runs without a terminal, so none. */
    printf("kafka_check:   [%s] %s", label, line);
  }
  fclose(f);
}

/* Does @path contain @s? */
static bool
file_has(const char *path, const char *s)
{
  FILE *f = fopen(path, "r");
  char line[2048];
  bool found = false;
  if (!f)
    return false;
  while (!found && fgets(line, sizeof line, f))
    found = strstr(line, s) != NULL;
  fclose(f);
  return found;
}

/* Run q7 @args to the end; returns its exit status (-1 on timeout). */
static int
run_q7(const char *label, const char *const *args, int64_t *elapsed_ms)
{
  char errpath[1100];
  int64_t t0 = mono_ms();
  pid_t pid = spawn(args, errpath, sizeof errpath);
  int rc = wait_child(pid, CHILD_TIMEOUT_MS);
  if (elapsed_ms)
    *elapsed_ms = mono_ms() - t0;
  show_err(errpath, label);
  if (rc == -1)
    failf("%s: q7 did not finish within %d s (killed)", label, CHILD_TIMEOUT_MS / 1000);
  return rc;
}

/* ===================================================================== */
/*  Comparisons                                                          */
/* ===================================================================== */

/* Kafka's log of each partition must be libq7's: same records, same order,
 * same offsets.  Returns the number of records compared. */
static long
compare_exact(const char *what, struct log *q, struct log *k, int32_t n)
{
  long total = 0;
  for (int32_t p = 0; p < n; p++) {
    if (q[p].n != k[p].n) {
      failf("%s: partition %d holds %zu records in libq7 but %zu in Kafka", what, (int)p, q[p].n,
            k[p].n);
      continue;
    }
    for (size_t i = 0; i < q[p].n; i++) {
      const char *why = NULL;
      if (q[p].r[i].offset != k[p].r[i].offset) {
        failf("%s: partition %d record %zu: offset %" PRId64 " in libq7, %" PRId64 " in Kafka",
              what, (int)p, i, q[p].r[i].offset, k[p].r[i].offset);
        break;
      }
      if (!rec_equal(&q[p].r[i], &k[p].r[i], &why)) {
        failf("%s: partition %d offset %" PRId64 ": the %s differs", what, (int)p,
              q[p].r[i].offset, why);
        break;
      }
    }
    total += (long)k[p].n;
  }
  return total;
}

static long
count_keyed_checked(struct log *q, int32_t n)
{
  /* Keyed records must sit where librdkafka's murmur2 partitioner puts them
   * and where q7_partition_for_key puts them: the same function. */
  rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
  rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "murmur2-probe", NULL);
  long checked = 0;
  for (int32_t p = 0; p < n; p++)
    for (size_t i = 0; i < q[p].n; i++) {
      const struct rec *r = &q[p].r[i];
      if (r->klen < 0)
        continue;
      int32_t a = rd_kafka_msg_partitioner_murmur2(rkt, r->key, (size_t)r->klen, n, NULL, NULL);
      int32_t b = q7_partition_for_key(r->key, (size_t)r->klen, n);
      if (a != p || b != p) {
        failf("key of partition %d offset %" PRId64 ": librdkafka murmur2 says %d, "
              "q7_partition_for_key %d", (int)p, r->offset, (int)a, (int)b);
        break;
      }
      checked++;
    }
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);
  return checked;
}

/* ===================================================================== */
/*  The cases                                                            */
/* ===================================================================== */

static void
mock_topic(const char *name, int parts)
{
  rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(mcluster, name, parts, 3);
  if (err)
    die("mock topic %s: %s", name, rd_kafka_err2str(err));
}

static void
mock_rtt(int ms)
{
  for (int b = 1; b <= 3; b++)
    rd_kafka_mock_broker_set_rtt(mcluster, b, ms);
}

static void
case_export(q7 *q)
{
  struct log ql[PARTS] = { { 0 } }, kl[PARTS] = { { 0 } };
  int64_t ms;
  if (q7_topic_create(q, "exp", PARTS, NULL))
    die("topic create exp: %s", q7_last_error());
  mock_topic("exp", PARTS);
  q7_fill(q, "exp", 1, 0, N_EXPORT);
  const char *args[] = { "-d", store, "kafka", "export", "exp", "--brokers", bootstraps, NULL };
  int rc = run_q7("export", args, &ms);
  if (rc != 0) {
    failf("export: q7 kafka export exited %d", rc);
    return;
  }
  q7_read_all(q, "exp", ql, PARTS);
  kafka_read_all("exp", PARTS, kl);
  long n = compare_exact("export", ql, kl, PARTS);
  if (n != N_EXPORT)
    failf("export: %ld records in Kafka, want exactly %d", n, N_EXPORT);
  else
    note("export: %ld records in %.2f s (%.0f records/s, the tool's start included): "
         "identical in Kafka byte for byte, partition for partition, offset for offset; "
         "per partition %zu/%zu/%zu/%zu",
         n, ms / 1000.0, n / (ms / 1000.0), kl[0].n, kl[1].n, kl[2].n, kl[3].n);
  long keyed = count_keyed_checked(ql, PARTS);
  note("export: %ld keyed records on the partition both librdkafka's murmur2 and "
       "q7_partition_for_key pick", keyed);
  int64_t each[PARTS];
  int64_t c = q7_committed_sum(q, "q7-export-exp", "exp", PARTS, each);
  if (c != N_EXPORT)
    failf("export: group q7-export-exp committed %" PRId64 " records, want %d", c, N_EXPORT);
  else
    note("export: group q7-export-exp committed the end (%" PRId64 ")", c);
  /* Again: nothing new, nothing sent. */
  rc = run_q7("export again", args, NULL);
  int64_t again = kafka_hw_sum("exp", PARTS);
  if (rc != 0 || again != N_EXPORT)
    failf("export again: exit %d, Kafka holds %" PRId64 " records (want %d)", rc, again, N_EXPORT);
  else
    note("export again: nothing re-sent (Kafka still holds %" PRId64 ")", again);
  logs_free(ql, PARTS);
  logs_free(kl, PARTS);
}

static void
case_crash(q7 *q)
{
  struct log ql[PARTS] = { { 0 } }, kl[PARTS] = { { 0 } };
  int64_t at_kill[PARTS];
  char errpath[1100];
  if (q7_topic_create(q, "crash", PARTS, NULL))
    die("topic create crash: %s", q7_last_error());
  mock_topic("crash", PARTS);
  q7_fill(q, "crash", 2, 0, N_CRASH);
  /* Slow brokers: every produce request waits, so the exporter is caught
   * with a batch in flight. */
  mock_rtt(300);
  const char *args[] = { "-d", store, "kafka", "export", "crash", "--brokers", bootstraps, NULL };
  pid_t pid = spawn(args, errpath, sizeof errpath);
  int64_t deadline = mono_ms() + 120000, c = 0;
  while ((c = q7_committed_sum(q, "q7-export-crash", "crash", PARTS, NULL)) < N_CRASH / 4) {
    if (mono_ms() > deadline || waitpid(pid, NULL, WNOHANG) == pid)
      break;
    sleep_ms(2);
  }
  /* Kill it while Kafka holds records it has not committed yet: from now
   * on the brokers append at once but answer 3 s late, so the batch sent
   * after that commit is in Kafka a second later, unacknowledged. */
  mock_rtt(3000);
  sleep_ms(1000);
  kill(pid, SIGKILL);
  int st = wait_child(pid, 10000);
  show_err(errpath, "killed export");
  c = q7_committed_sum(q, "q7-export-crash", "crash", PARTS, at_kill);
  mock_rtt(0);
  int64_t in_kafka = kafka_hw_sum("crash", PARTS);
  if (st != 128 + SIGKILL || c >= N_CRASH) {
    failf("crash: the exporter was not killed mid-way (status %d, committed %" PRId64 " of %d)",
          st, c, N_CRASH);
    return;
  }
  note("crash: exporter SIGKILLed with %" PRId64 " records committed in libq7, %" PRId64
       " in Kafka", c, in_kafka);
  int rc = run_q7("restarted export", args, NULL);
  if (rc != 0) {
    failf("crash: the restarted exporter exited %d", rc);
    return;
  }
  q7_read_all(q, "crash", ql, PARTS);
  kafka_read_all("crash", PARTS, kl);
  long total = 0, dups = 0;
  for (int p = 0; p < PARTS; p++) {
    /* Kafka's log must be libq7's [0, x) followed by [at_kill, n): the
     * killed session delivered up to x without committing past at_kill. */
    size_t n = ql[p].n, kn = kl[p].n, cut = (size_t)at_kill[p];
    total += (long)kn;
    if (kn < n) {
      failf("crash: partition %d lost records: %zu in libq7, %zu in Kafka", p, n, kn);
      continue;
    }
    size_t x = kn - n + cut;
    if (x < cut || x > n) {
      failf("crash: partition %d: %zu records in Kafka do not fit a repeat from offset %zu", p,
            kn, cut);
      continue;
    }
    dups += (long)(x - cut);
    for (size_t i = 0; i < kn; i++) {
      size_t qi = i < x ? i : i - x + cut;
      const char *why = NULL;
      if (!rec_equal(&ql[p].r[qi], &kl[p].r[i], &why)) {
        failf("crash: partition %d Kafka offset %zu is not libq7 offset %zu (%s)", p, i, qi, why);
        break;
      }
    }
  }
  int64_t cend = q7_committed_sum(q, "q7-export-crash", "crash", PARTS, NULL);
  if (cend != N_CRASH)
    failf("crash: group committed %" PRId64 ", want %d", cend, N_CRASH);
  if (total - dups != N_CRASH)
    failf("crash: %ld distinct records in Kafka, want %d", total - dups, N_CRASH);
  else
    note("crash: after the restart all %d records are in Kafka, in order, %ld of them twice "
         "(delivered by the killed session, not yet committed); the group committed the end",
         N_CRASH, dups);
  logs_free(ql, PARTS);
  logs_free(kl, PARTS);
}

/* Partition counts differ: libq7 4, Kafka 6. */
static void
case_wide(q7 *q)
{
  enum { KP = 6 };
  struct log ql[PARTS] = { { 0 } }, kl[KP] = { { 0 } };
  if (q7_topic_create(q, "wide", PARTS, NULL))
    die("topic create wide: %s", q7_last_error());
  mock_topic("wide", KP);
  q7_fill(q, "wide", 3, 0, N_WIDE);
  char errpath[1100];
  const char *args[] = { "-d", store, "kafka", "export", "wide", "--brokers", bootstraps, NULL };
  pid_t pid = spawn(args, errpath, sizeof errpath);
  int rc = wait_child(pid, CHILD_TIMEOUT_MS);
  show_err(errpath, "export 4->6");
  if (rc != 0) {
    failf("wide: export exited %d", rc);
    return;
  }
  if (!file_has(errpath, "has 6 partitions"))
    failf("wide: the exporter did not say that the partition counts differ");
  q7_read_all(q, "wide", ql, PARTS);
  kafka_read_all("wide", KP, kl);
  /* Every seq once; keyed ones on murmur2(key) mod 6; per key, libq7's order. */
  char *seen = xcalloc(N_WIDE, 1);
  long total = 0, keyed = 0, bad = 0;
  for (int p = 0; p < KP; p++)
    for (size_t i = 0; i < kl[p].n; i++) {
      const struct rec *r = &kl[p].r[i];
      total++;
      if (r->seq < 0 || r->seq >= N_WIDE || seen[r->seq]++)
        bad++;
      if (r->klen >= 0) {
        keyed++;
        if (q7_partition_for_key(r->key, (size_t)r->klen, KP) != p && !bad++)
          failf("wide: seq %ld on Kafka partition %d, murmur2 says %d", r->seq, p,
                (int)q7_partition_for_key(r->key, (size_t)r->klen, KP));
      }
    }
  /* Order per key: the sequence of seqs of each key, on both sides. */
  long order_bad = 0, keys = 0;
  for (int k = 0; k < 1500 + 1; k++) {
    char key[32];
    int kl_len = k < 1500 ? snprintf(key, sizeof key, "user-%d", k) : 0;
    long qs[4096], ks[4096];
    int nq = 0, nk = 0;
    for (int p = 0; p < PARTS; p++)
      for (size_t i = 0; i < ql[p].n; i++)
        if (ql[p].r[i].klen == kl_len && !memcmp(ql[p].r[i].key, key, (size_t)kl_len) && nq < 4096)
          qs[nq++] = ql[p].r[i].seq;
    for (int p = 0; p < KP; p++)
      for (size_t i = 0; i < kl[p].n; i++)
        if (kl[p].r[i].klen == kl_len && !memcmp(kl[p].r[i].key, key, (size_t)kl_len) && nk < 4096)
          ks[nk++] = kl[p].r[i].seq;
    if (!nq && !nk)
      continue;
    keys++;
    if (nq != nk || memcmp(qs, ks, (size_t)nq * sizeof *qs))
      order_bad++;
  }
  if (bad || total != N_WIDE)
    failf("wide: %ld records in Kafka (want %d), %ld misplaced or repeated", total, N_WIDE, bad);
  else if (order_bad)
    failf("wide: %ld keys lost libq7's order", order_bad);
  else
    note("wide: libq7 4 partitions -> Kafka 6: all %ld records once, %ld keyed ones on "
         "murmur2(key) mod 6, each of %ld keys in libq7's order", total, keyed, keys);
  free(seen);
  logs_free(ql, PARTS);
  logs_free(kl, KP);
}

static void
case_import(q7 *q)
{
  struct log ql[PARTS] = { { 0 } }, kl[PARTS] = { { 0 } };
  int64_t ms;
  mock_topic("imp", PARTS);
  kafka_fill("imp", 4, 0, N_IMPORT);
  const char *args[] = { "-d", store, "kafka", "import", "imp", "--brokers", bootstraps, NULL };
  int rc = run_q7("import", args, &ms);
  if (rc != 0) {
    failf("import: q7 kafka import exited %d", rc);
    return;
  }
  int32_t n = q7_read_all(q, "imp", ql, PARTS);
  if (n != PARTS)
    failf("import: the libq7 topic has %d partitions, want %d", (int)n, PARTS);
  kafka_read_all("imp", PARTS, kl);
  long got = compare_exact("import", ql, kl, PARTS);
  if (got != N_IMPORT)
    failf("import: %ld records, want %d", got, N_IMPORT);
  else
    note("import: %ld records in %.2f s (%.0f records/s with the tool's start, the group join "
         "and the end-of-partition check): identical in libq7 byte for byte, partition for "
         "partition, offset for offset", got, ms / 1000.0, got / (ms / 1000.0));
  int64_t c = kafka_committed_sum("q7-import-imp", "imp", PARTS);
  if (c != N_IMPORT)
    failf("import: Kafka group q7-import-imp committed %" PRId64 ", want %d", c, N_IMPORT);
  else
    note("import: Kafka group q7-import-imp committed the end (%" PRId64 ")", c);
  logs_free(ql, PARTS);
  logs_free(kl, PARTS);
}

/* Start @args, wait until @done() holds, SIGTERM, expect exit 0. */
static void
follow_case(const char *label, const char *const *args, int64_t (*progress)(q7 *), q7 *q,
            int64_t first, void (*more)(q7 *), int64_t then)
{
  char errpath[1100];
  pid_t pid = spawn(args, errpath, sizeof errpath);
  int64_t deadline = mono_ms() + 120000, v = 0;
  while ((v = progress(q)) < first && mono_ms() < deadline && waitpid(pid, NULL, WNOHANG) == 0)
    sleep_ms(20);
  if (v < first) {
    kill(pid, SIGKILL);
    wait_child(pid, 10000);
    show_err(errpath, label);
    failf("%s: only %" PRId64 " of %" PRId64 " before the new records", label, v, first);
    return;
  }
  more(q);
  while ((v = progress(q)) < then && mono_ms() < deadline && waitpid(pid, NULL, WNOHANG) == 0)
    sleep_ms(20);
  kill(pid, SIGTERM);
  int rc = wait_child(pid, 15000);
  show_err(errpath, label);
  if (v < then)
    failf("%s: %" PRId64 " of %" PRId64 " after the new records", label, v, then);
  else if (rc != 0)
    failf("%s: exit status %d after SIGTERM, want 0", label, rc);
  else
    note("%s: streamed the %" PRId64 " new records, stopped on SIGTERM with exit 0", label,
         then - first);
}

static int64_t
exp_in_kafka(q7 *q)
{
  (void)q;
  return kafka_hw_sum("exp", PARTS);
}

static void
exp_more(q7 *q)
{
  q7_fill(q, "exp", 1, N_EXPORT, N_EXPORT + N_FOLLOW);
}

static int64_t
imp_in_q7(q7 *q)
{
  return q7_hw_sum(q, "follow");
}

static void
imp_more(q7 *q)
{
  (void)q;
  kafka_fill("imp", 4, N_IMPORT, N_IMPORT + N_FOLLOW);
}

static void
case_follow(q7 *q)
{
  const char *ea[] = { "-d", store, "kafka", "export", "exp", "--brokers", bootstraps,
                       "--follow", NULL };
  follow_case("export --follow", ea, exp_in_kafka, q, N_EXPORT, exp_more, N_EXPORT + N_FOLLOW);
  int64_t c = q7_committed_sum(q, "q7-export-exp", "exp", PARTS, NULL);
  if (c != N_EXPORT + N_FOLLOW)
    failf("export --follow: group committed %" PRId64 ", want %d", c, N_EXPORT + N_FOLLOW);
  const char *ia[] = { "-d", store, "kafka", "import", "imp", "--brokers", bootstraps,
                       "--topic", "follow", "--group", "g-follow", "--follow", NULL };
  follow_case("import --follow", ia, imp_in_q7, q, N_IMPORT, imp_more, N_IMPORT + N_FOLLOW);
  c = kafka_committed_sum("g-follow", "imp", PARTS);
  if (c != N_IMPORT + N_FOLLOW)
    failf("import --follow: Kafka group g-follow committed %" PRId64 ", want %d", c,
          N_IMPORT + N_FOLLOW);
  else
    note("follow: both committed the end (%d)", N_IMPORT + N_FOLLOW);
}

/* Import into a libq7 topic of 3 partitions from Kafka's 4. */
static void
case_narrow(q7 *q)
{
  struct log ql[3] = { { 0 } };
  if (q7_topic_create(q, "narrow", 3, NULL))
    die("topic create narrow: %s", q7_last_error());
  const char *args[] = { "-d", store, "kafka", "import", "imp", "--brokers", bootstraps,
                         "--topic", "narrow", "--group", "g-narrow", NULL };
  int rc = run_q7("import 4->3", args, NULL);
  if (rc != 0) {
    failf("narrow: import exited %d", rc);
    return;
  }
  q7_read_all(q, "narrow", ql, 3);
  long total = 0, keyed = 0, bad = 0;
  for (int p = 0; p < 3; p++)
    for (size_t i = 0; i < ql[p].n; i++) {
      total++;
      if (ql[p].r[i].klen >= 0) {
        keyed++;
        if (q7_partition_for_key(ql[p].r[i].key, (size_t)ql[p].r[i].klen, 3) != p)
          bad++;
      }
    }
  if (total != N_IMPORT + N_FOLLOW || bad)
    failf("narrow: %ld records (want %d), %ld keyed ones off murmur2", total,
          N_IMPORT + N_FOLLOW, bad);
  else
    note("narrow: Kafka 4 partitions -> libq7 3: all %ld records, %ld keyed ones on "
         "murmur2(key) mod 3", total, keyed);
  logs_free(ql, 3);
}

static void
case_errors(q7 *q)
{
  char errpath[1100];
  if (q7_topic_create(q, "lonely", 1, NULL))
    die("topic create lonely: %s", q7_last_error());
  const char *args[] = { "-d", store, "kafka", "export", "lonely", "--brokers", bootstraps, NULL };
  pid_t pid = spawn(args, errpath, sizeof errpath);
  int rc = wait_child(pid, 60000);
  if (rc != 1 || !file_has(errpath, "q7: kafka export: Kafka topic 'lonely' does not exist")) {
    show_err(errpath, "missing Kafka topic");
    failf("errors: export to a missing Kafka topic: exit %d", rc);
  } else {
    note("errors: export to a missing Kafka topic exits 1 saying so");
  }
}

int
main(int argc, char **argv)
{
  if (argc != 3) {
    fprintf(stderr, "usage: kafka_check Q7_BINARY WORKDIR\n");
    return 2;
  }
  q7bin = argv[1];
  workdir = argv[2];
  snprintf(store, sizeof store, "%s/store", workdir);
  signal(SIGPIPE, SIG_IGN);

  /* The mock cluster: 3 brokers on 127.0.0.1, in this process. */
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
  rd_kafka_t *mrk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (!mrk)
    die("rd_kafka_new: %s", errstr);
  mcluster = rd_kafka_mock_cluster_new(mrk, 3);
  if (!mcluster)
    die("rd_kafka_mock_cluster_new failed");
  bootstraps = rd_kafka_mock_cluster_bootstraps(mcluster);
  /* Only loopback addresses. */
  for (const char *s = bootstraps; *s;) {
    if (strncmp(s, "127.", 4) && strncmp(s, "localhost:", 10))
      die("the mock cluster is not on loopback: %s", bootstraps);
    s = strchr(s, ',');
    if (!s)
      break;
    s++;
  }
  note("mock Kafka cluster (librdkafka %s): %s", rd_kafka_version_str(), bootstraps);

  q7 *q = store_open();
  int64_t t0 = mono_ms();
  /* KAFKA_CHECK_ONLY=crash (say) runs one case, for debugging. */
  const char *only = getenv("KAFKA_CHECK_ONLY");
#define CASE(name)                                   \
  if (!only || !strcmp(only, #name))                 \
    case_##name(q)
  CASE(errors);
  CASE(export);
  CASE(crash);
  CASE(wide);
  CASE(import);
  if (!only)
    case_follow(q); /* needs export and import before it */
  if (!only)
    case_narrow(q);
#undef CASE
  q7_close(q);
  rd_kafka_mock_cluster_destroy(mcluster);
  rd_kafka_destroy(mrk);
  note("%s in %.1f s", failures ? "FAILED" : "all passed", (mono_ms() - t0) / 1000.0);
  return failures ? 1 : 0;
}
