/* threads.c - every thread libq7 runs, at once, for ThreadSanitizer:
 * send_sync from several threads (group commit), a batching producer
 * (send and send_batch) and its linger thread, group consumers
 * rebalancing in threads (each with its fetch-ahead helper), a consumer
 * woken by commits, the background retention sweeper, mirror replication
 * (worker threads, replication thread, watchdog), and status reports.
 * Criterion cannot start under TSan (its BoxFort arena), hence this
 * standalone driver.   usage: threads DIR [SECONDS]
 * Prints "N passed, N failed"; TSan's own exit code reports a race. */
#include <q7.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static q7 *q;
static _Atomic int stop, errors;
static _Atomic long produced, consumed;

static void
bad(const char *what, int rc)
{
  fprintf(stderr, "threads: %s: %s (%s)\n", what, q7_strerror(rc), q7_last_error());
  errors++;
}

static void *
sync_sender(void *arg)
{
  q7_topic *t;
  q7_producer *p;
  int rc;
  (void)arg;
  if ((rc = q7_topic_open(q, "t", &t)) || (rc = q7_producer_new(q, NULL, &p))) {
    bad("sync sender", rc);
    return NULL;
  }
  for (long i = 0; !stop && i < 100000; i++) {
    q7_msg m = { .topic = t, .partition = 0, .value = "s", .value_len = 1 };
    if ((rc = q7_producer_send_sync(p, &m, NULL, NULL))) {
      bad("send_sync", rc);
      break;
    }
    produced++;
  }
  q7_producer_close(p);
  q7_topic_close(t);
  return NULL;
}

static void
delivered(const q7_delivery *d, void *arg)
{
  (void)arg;
  if (d->err)
    errors++;
  else
    produced++;
}

static void *
batch_sender(void *arg)
{
  q7_topic *t;
  q7_producer *p;
  q7_conf *c = q7_conf_new();
  int rc;
  (void)arg;
  q7_conf_set(c, "linger.ms", "1");
  q7_conf_set(c, "acks", "1");
  q7_conf_set_delivery_cb(c, delivered, NULL);
  if ((rc = q7_topic_open(q, "t", &t)) || (rc = q7_producer_new(q, c, &p))) {
    bad("batch sender", rc);
    q7_conf_destroy(c);
    return NULL;
  }
  q7_conf_destroy(c);
  for (long i = 0; !stop && i < 1000000; i++) {
    char k[16];
    int kl = snprintf(k, sizeof k, "k%ld", i % 97);
    q7_msg m = { .topic = t, .partition = Q7_PARTITION_ANY, .key = k, .key_len = (size_t)kl,
                 .value = "b", .value_len = 1 };
    if (i % 1024 == 0) { /* now and then, many at once: send_batch */
      q7_msg ms[32];
      for (int j = 0; j < 32; j++)
        ms[j] = m;
      if ((rc = q7_producer_send_batch(p, ms, 32, NULL))) {
        bad("send_batch", rc);
        break;
      }
    } else if ((rc = q7_producer_send(p, &m))) {
      bad("send", rc);
      break;
    }
    if (i % 64 == 0)
      q7_producer_poll(p, 0);
    if (i % 512 == 0)
      usleep(200);
  }
  q7_producer_close(p);
  q7_topic_close(t);
  return NULL;
}

static void
rebalanced(q7_consumer *c, int event, const char *topic, const int32_t *parts, size_t n,
           void *arg)
{
  (void)topic;
  (void)parts;
  (void)n;
  (void)arg;
  if (event == Q7_REBALANCE_REVOKED)
    q7_consumer_commit(c);
}

static void *
member_thread(void *arg)
{
  q7_consumer *c;
  q7_conf *cc = q7_conf_new();
  int rc, rounds = (int)(long)arg;
  q7_conf_set(cc, "enable.auto.commit", "false");
  q7_conf_set(cc, "auto.offset.reset", "earliest");
  q7_conf_set(cc, "session.timeout.ms", "2000");
  q7_conf_set(cc, "heartbeat.interval.ms", "50");
  q7_conf_set(cc, "fetch.ahead.bytes", "1048576"); /* and each member's helper */
  q7_conf_set_rebalance_cb(cc, rebalanced, NULL);
  for (int r = 0; r < rounds && !stop; r++) { /* join, consume, leave: rebalances */
    if ((rc = q7_consumer_new(q, "g", cc, &c)) || (rc = q7_consumer_subscribe(c, "t"))) {
      bad("group member", rc);
      break;
    }
    q7_record recs[64];
    for (int i = 0; i < 40 && !stop; i++) {
      int n = q7_consumer_poll(c, recs, 64, 20);
      if (n < 0) {
        bad("group poll", n);
        break;
      }
      consumed += n;
      if (n > 0 && (rc = q7_consumer_commit(c)) && rc != Q7_ESTATE)
        bad("group commit", rc);
    }
    q7_consumer_close(c);
  }
  q7_conf_destroy(cc);
  return NULL;
}

static void *
waiter(void *arg)
{
  q7_consumer *c;
  int rc;
  (void)arg;
  if ((rc = q7_consumer_new(q, NULL, NULL, &c)) || (rc = q7_consumer_assign(c, "t", 0, 0))) {
    bad("waiter", rc);
    return NULL;
  }
  q7_record recs[16];
  while (!stop) {
    int n = q7_consumer_poll(c, recs, 16, 100);
    if (n < 0) {
      bad("waiter poll", n);
      break;
    }
  }
  q7_consumer_close(c);
  return NULL;
}

int
main(int argc, char **argv)
{
  const char *dir = argc > 1 ? argv[1] : "/tmp/q7-tsan";
  int secs = argc > 2 ? atoi(argv[2]) : 3, rc;
  char cmd[4200], mirror[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.mirror'", dir, dir);
  if (system(cmd))
    return 1;
  snprintf(mirror, sizeof mirror, "%s.mirror", dir);
  q7_conf *c = q7_conf_new();
  q7_conf_set(c, "sync", "false");
  q7_conf_set(c, "retention.check.interval.ms", "20");
  q7_conf_set(c, "replica.dirs", mirror);
  if ((rc = q7_open(&q, dir, c))) {
    bad("open", rc);
    return 1;
  }
  q7_conf_destroy(c);
  q7_conf *tc = q7_conf_new();
  q7_conf_set(tc, "replication.factor", "2");
  q7_conf_set(tc, "retention.ms", "1000");
  if ((rc = q7_topic_create(q, "t", 4, tc)))
    bad("create", rc);
  q7_conf_destroy(tc);

  pthread_t th[10];
  int n = 0;
  for (int i = 0; i < 3; i++)
    pthread_create(&th[n++], NULL, sync_sender, NULL);
  pthread_create(&th[n++], NULL, batch_sender, NULL);
  pthread_create(&th[n++], NULL, member_thread, (void *)1000L);
  pthread_create(&th[n++], NULL, member_thread, (void *)1000L);
  pthread_create(&th[n++], NULL, waiter, NULL);
  time_t t0 = time(NULL);
  while (time(NULL) - t0 < secs) {
    q7_group_report *r;
    if ((rc = q7_group_status(q, "g", 0, &r)))
      bad("status", rc);
    else
      q7_group_report_free(r);
    int64_t end;
    int in;
    if ((rc = q7_replica_status(q, "t", 0, 1, &end, &in)) && rc != Q7_ENOENT)
      bad("replica status", rc);
    usleep(20000);
  }
  stop = 1;
  for (int i = 0; i < n; i++)
    pthread_join(th[i], NULL);
  if ((rc = q7_close(q)))
    bad("close", rc);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s.mirror'", dir, dir);
  if (system(cmd))
    return 1;
  printf("threads: produced %ld, consumed %ld in %d s\n", (long)produced, (long)consumed, secs);
  printf("%d passed, %d failed\n", errors ? 0 : 1, errors ? 1 : 0);
  return errors ? 1 : 0;
}
