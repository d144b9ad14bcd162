/* quickstart - create a topic with 3 partitions, produce keyed records,
 * consume them in a group, commit, and show the lag.
 *
 *   usage: quickstart [DIR] [RECORDS]      (default ./q7-demo, 100000) */
#include <q7.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double
now_s(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
delivered(const q7_delivery *d, void *arg)
{
  long *failed = arg;
  if (d->err)
    ++*failed;
}

static int
die(const char *what, int rc)
{
  fprintf(stderr, "quickstart: %s: %s (%s)\n", what, q7_strerror(rc), q7_last_error());
  return 1;
}

int
main(int argc, char **argv)
{
  const char *dir = argc > 1 ? argv[1] : "q7-demo";
  long n = argc > 2 ? atol(argv[2]) : 100000, failed = 0;
  q7 *q;
  q7_topic *t;
  q7_conf *pc, *sc;
  q7_producer *p;
  q7_consumer *c;
  int rc;

  /* Durable by default; the demo trades fsync for speed, like acks=1 with
   * a page-cache flush: records survive a crash of this process. */
  sc = q7_conf_new();
  q7_conf_set(sc, "sync", "false");
  if ((rc = q7_open(&q, dir, sc)))
    return die("open", rc);
  q7_conf_destroy(sc);
  rc = q7_topic_create(q, "events", 3, NULL);
  if (rc && rc != Q7_EEXIST)
    return die("create topic", rc);
  if ((rc = q7_topic_open(q, "events", &t)))
    return die("open topic", rc);
  printf("store %s (libq7 %s): topic events, %d partitions\n", dir, q7_version(),
         q7_topic_partition_count(t));

  pc = q7_conf_new();
  q7_conf_set(pc, "batch.size", "131072");
  q7_conf_set_delivery_cb(pc, delivered, &failed);
  q7_producer_new(q, pc, &p);
  q7_conf_destroy(pc);
  double t0 = now_s();
  for (long i = 0; i < n; i++) {
    char key[32], value[128];
    int kl = snprintf(key, sizeof key, "user-%ld", i % 1000);
    int vl = snprintf(value, sizeof value, "{\"event\":%ld,\"kind\":\"click\"}", i);
    q7_msg m = { .topic = t, .partition = Q7_PARTITION_ANY, .key = key, .key_len = (size_t)kl,
                 .value = value, .value_len = (size_t)vl };
    if ((rc = q7_producer_send(p, &m)))
      return die("send", rc);
  }
  if ((rc = q7_producer_flush(p, -1)))
    return die("flush", rc);
  double t1 = now_s();
  printf("produced %ld keyed records in %.3f s (%.0f records/s), %ld failed\n", n, t1 - t0,
         n / (t1 - t0), failed);
  printf("key user-7 lands on partition %d, as Kafka's partitioner puts it\n",
         (int)q7_partition_for_key("user-7", 6, 3));

  q7_conf *cc;
  cc = q7_conf_new();
  q7_conf_set(cc, "auto.offset.reset", "earliest");
  q7_conf_set(cc, "enable.auto.commit", "false");
  q7_conf_set(cc, "max.poll.records", "10000");
  q7_consumer_new(q, "demo-group", cc, &c);
  q7_conf_destroy(cc);
  if ((rc = q7_consumer_subscribe(c, "events")))
    return die("subscribe", rc);
  q7_record recs[10000];
  long seen = 0, per[3] = { 0 };
  t0 = t1 = now_s();
  for (;;) {
    int got = q7_consumer_poll(c, recs, 10000, 200);
    if (got < 0)
      return die("poll", got);
    if (got == 0)
      break;
    for (int i = 0; i < got; i++)
      per[recs[i].partition]++;
    seen += got;
    t1 = now_s();
  }
  if ((rc = q7_consumer_commit(c)))
    return die("commit", rc);
  printf("consumed %ld records in group demo-group (%.0f records/s): %ld / %ld / %ld per "
         "partition\n", seen, seen / (t1 > t0 ? t1 - t0 : 1e-9), per[0], per[1], per[2]);
  for (int32_t i = 0; i < 3; i++) {
    int64_t committed, lag;
    q7_committed(q, "demo-group", "events", i, &committed);
    q7_lag(q, "demo-group", "events", i, &lag);
    printf("  partition %d: committed %" PRId64 ", lag %" PRId64 "\n", (int)i, committed, lag);
  }
  int64_t maxlag;
  int32_t where;
  q7_lag_max(q, "demo-group", "events", &maxlag, &where);
  printf("records-lag-max %" PRId64 " (partition %d)\n", maxlag, (int)where);
  q7_consumer_close(c);
  q7_producer_close(p);
  q7_topic_close(t);
  return q7_close(q) ? die("close", rc) : 0;
}
