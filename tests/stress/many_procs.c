/* many_procs.c - many processes on one store: 8 producer processes and 4
 * consumer processes in 2 consumer groups, for a given time.
 *
 *   many_procs [SECONDS [RATE [DIR]]]
 *
 * SECONDS defaults to 60; RATE is records per second per producer (default
 * 8000, so about 64k records/s in all and a store of a few hundred MB in a
 * minute; 0: as fast as they go); DIR defaults to a fresh directory in
 * $TMPDIR, removed when every check passed.
 *
 * Producers 0-3 send batches with delivery reports, producers 4-7 use
 * send_sync; every record carries (producer, seq) and bytes derived from
 * them.  Each group has two members that subscribe to the topic, process
 * each record (log it) and commit after each poll; one member of each group
 * leaves and rejoins every few seconds, so partitions change hands under
 * load.  When the producers are done the consumers drain and stop, and the
 * parent (which opens the store only after its last fork) checks:
 *   - every delivery was reported once, with an offset, and no offset twice;
 *   - each partition is dense from 0 to its high watermark, every record
 *     intact, every acknowledged record at its offset, none stored twice;
 *   - each group consumed every offset of every partition exactly once,
 *     and what it consumed is what is stored.
 * Prints throughput and one "ok"/"FAIL" line per check, then "N passed,
 * N failed"; exits 0 only if all passed.  Every child is bounded in time
 * and killed by PID if it overruns. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <q7.h>

#include "../proc.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { NPROD = 8, NCONS = 4, NPARTS = 8, MAXV = 256, MAX_PER_PROD = 2000000, MAGIC = 0x4d505331 };

static char store[4200], logs[4200];
static int duration = 60;
static long rate = 8000;
static pid_t pids[NPROD + NCONS + 1];

/* Record (prod, seq): 16 to 600 bytes, its id first. */
static size_t
make_value(unsigned char *v, uint32_t prod, uint32_t seq)
{
  uint64_t x = mix64((uint64_t)prod << 32 | seq);
  size_t len = 16 + x % (MAXV - 16);
  for (size_t i = 16; i < len; i += 8) {
    x = mix64(x);
    memcpy(v + i, &x, len - i < 8 ? len - i : 8);
  }
  uint32_t h[4] = { MAGIC, prod, seq, (uint32_t)len };
  memcpy(v, h, 16);
  return len;
}

static bool
value_ok(const void *val, size_t len, uint32_t *prod, uint32_t *seq)
{
  static unsigned char want[MAXV];
  uint32_t h[4];
  if (len < 16)
    return false;
  memcpy(h, val, 16);
  if (h[0] != MAGIC || h[1] >= NPROD || h[3] != len)
    return false;
  *prod = h[1];
  *seq = h[2];
  return make_value(want, h[1], h[2]) == len && memcmp(want, val, len) == 0;
}

static void
die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "many_procs[%d]: ", (int)getpid());
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  _exit(2);
}

/* One line of a log: what a child did with one record. */
typedef struct entry {
  int32_t partition;
  uint32_t prod, seq;
  int64_t offset;
} entry;

static FILE *
log_open(const char *kind, int id)
{
  char p[4300];
  snprintf(p, sizeof p, "%s/%s.%d", logs, kind, id);
  FILE *f = fopen(p, "w");
  if (!f)
    die("cannot write %s: %s", p, strerror(errno));
  return f;
}

/* ------------------------------------------------------------ producers */

typedef struct prod_state {
  FILE *log;
  uint32_t id;
  int64_t delivered, failed;
} prod_state;

static void
on_delivery(const q7_delivery *d, void *arg)
{
  prod_state *s = arg;
  uint32_t seq = (uint32_t)(uintptr_t)d->opaque;
  if (d->err != Q7_OK) {
    fprintf(stderr, "many_procs: producer %u seq %u: delivery failed: %s\n", s->id, seq,
            q7_strerror(d->err));
    s->failed++;
    return;
  }
  entry e = { d->partition, s->id, seq, d->offset };
  fwrite(&e, sizeof e, 1, s->log);
  s->delivered++;
}

static int
producer(uint32_t id)
{
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  q7_conf *pc = q7_conf_new();
  prod_state s = { log_open("prod", (int)id), id, 0, 0 };
  bool batched = id < NPROD / 2;
  if (batched) {
    q7_conf_set(pc, "linger.ms", "2");
    q7_conf_set(pc, "batch.size", "32768");
    q7_conf_set_delivery_cb(pc, on_delivery, &s);
  }
  q7_conf *sc = q7_conf_new();
  q7_conf_set(sc, "sync", "false");
  if (q7_open(&q, store, sc) || q7_topic_open(q, "mp", &t) || q7_producer_new(q, pc, &p))
    die("producer %u: open: %s", id, q7_last_error());
  q7_conf_destroy(pc);
  q7_conf_destroy(sc);
  int64_t start = mono_ms(), end = start + duration * 1000L;
  static unsigned char v[MAXV];
  uint32_t seq = 0;
  for (; seq < MAX_PER_PROD && (seq % 64 || mono_ms() < end); seq++) {
    if (rate > 0 && seq % 64 == 0) {
      /* Ahead of RATE records per second: wait for the schedule. */
      int64_t due = start + (int64_t)seq * 1000 / rate, now = mono_ms();
      if (due > now) {
        struct timespec d = { (due - now) / 1000, (long)((due - now) % 1000) * 1000000L };
        nanosleep(&d, NULL);
      }
    }
    size_t len = make_value(v, id, seq);
    /* Half the records keyed (the partitioner spreads them), half not. */
    char key[16];
    int kl = snprintf(key, sizeof key, "k%u", (seq * 2654435761u) % 1000);
    q7_msg m = { .topic = t, .partition = Q7_PARTITION_ANY, .key = seq % 2 ? key : NULL,
                 .key_len = seq % 2 ? (size_t)kl : 0, .value = v, .value_len = len,
                 .opaque = (void *)(uintptr_t)seq };
    int rc;
    if (batched) {
      if ((rc = q7_producer_send(p, &m)))
        die("producer %u: send %u: %s", id, seq, q7_last_error());
      if (seq % 256 == 0)
        q7_producer_poll(p, 0);
    } else {
      entry e = { -1, id, seq, -1 };
      if ((rc = q7_producer_send_sync(p, &m, &e.partition, &e.offset)))
        die("producer %u: send_sync %u: %s", id, seq, q7_last_error());
      fwrite(&e, sizeof e, 1, s.log);
      s.delivered++;
    }
  }
  if (q7_producer_close(p))
    die("producer %u: close: %s", id, q7_last_error());
  q7_topic_close(t);
  q7_close(q);
  fclose(s.log);
  if (s.failed || s.delivered != seq) {
    fprintf(stderr, "many_procs: producer %u: %u sent, %" PRId64 " delivered, %" PRId64
            " failed\n", id, seq, s.delivered, s.failed);
    return 3;
  }
  return 0;
}

/* ------------------------------------------------------------ consumers */

typedef struct cons_state {
  FILE *log;
  int id;
  int64_t consumed, commits, rejoins;
} cons_state;

static q7_consumer *
member(q7 *q, int id)
{
  q7_consumer *c;
  q7_conf *cf = q7_conf_new();
  q7_conf_set(cf, "enable.auto.commit", "false");
  q7_conf_set(cf, "auto.offset.reset", "earliest");
  q7_conf_set(cf, "max.poll.records", "500");
  q7_conf_set(cf, "session.timeout.ms", "10000");
  q7_conf_set(cf, "heartbeat.interval.ms", "1000");
  char g[8];
  snprintf(g, sizeof g, "g%d", id / 2);
  if (q7_consumer_new(q, g, cf, &c) || q7_consumer_subscribe(c, "mp"))
    die("consumer %d: %s", id, q7_last_error());
  q7_conf_destroy(cf);
  return c;
}

/* Poll, process (log), commit; until @stop_fd reports EOF and nothing came
 * for 3 s.  Member 1 of each group leaves and rejoins every 4 s meanwhile. */
static int
consumer(int id, int stop_fd)
{
  cons_state s = { log_open("cons", id), id, 0, 0, 0 };
  q7 *q;
  q7_conf *sc = q7_conf_new();
  q7_conf_set(sc, "sync", "false");
  if (q7_open(&q, store, sc))
    die("consumer %d: open: %s", id, q7_last_error());
  q7_conf_destroy(sc);
  q7_consumer *c = member(q, id);
  bool stopping = false;
  int64_t idle_since = mono_ms(), next_rejoin = mono_ms() + 4000;
  int64_t hard_end = mono_ms() + (duration + 300) * 1000L;
  static q7_record r[500];
  for (;;) {
    if (mono_ms() > hard_end)
      die("consumer %d: still not drained long after the producers stopped", id);
    if (!stopping) {
      struct pollfd pf = { stop_fd, POLLIN, 0 };
      if (poll(&pf, 1, 0) > 0)
        stopping = true;
    }
    int n = q7_consumer_poll(c, r, 500, 100);
    if (n < 0)
      die("consumer %d: poll: %s", id, q7_last_error());
    for (int i = 0; i < n; i++) {
      entry e = { r[i].partition, 0, 0, r[i].offset };
      if (!value_ok(r[i].value, r[i].value_len, &e.prod, &e.seq)) {
        fprintf(stderr, "many_procs: consumer %d: partition %d offset %" PRId64
                " holds a damaged record\n", id, r[i].partition, r[i].offset);
        e.prod = UINT32_MAX;
      }
      fwrite(&e, sizeof e, 1, s.log);
    }
    s.consumed += n;
    if (n > 0) {
      int rc = q7_consumer_commit(c);
      if (rc)
        die("consumer %d: commit after processing: %s", id, q7_last_error());
      s.commits++;
      idle_since = mono_ms();
    } else if (stopping && mono_ms() - idle_since > 3000) {
      break;
    }
    if (id % 2 == 1 && !stopping && mono_ms() > next_rejoin) {
      /* Everything processed is committed: leave, and come back. */
      if (q7_consumer_close(c))
        die("consumer %d: close: %s", id, q7_last_error());
      c = member(q, id);
      s.rejoins++;
      next_rejoin = mono_ms() + 4000;
    }
  }
  if (q7_consumer_commit(c) || q7_consumer_close(c))
    die("consumer %d: final commit: %s", id, q7_last_error());
  q7_close(q);
  fclose(s.log);
  fprintf(stderr, "many_procs: consumer %d (group g%d): %" PRId64 " records, %" PRId64
          " commits, %" PRId64 " rejoins\n", id, id / 2, s.consumed, s.commits, s.rejoins);
  return 0;
}

/* ----------------------------------------------------------- the parent */

static int passed, failed;

static void
check(bool ok, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  printf("%s ", ok ? "ok  " : "FAIL");
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
  fflush(stdout);
  if (ok)
    passed++;
  else
    failed++;
}

static entry *
read_log(const char *kind, int id, size_t *n)
{
  char p[4300];
  snprintf(p, sizeof p, "%s/%s.%d", logs, kind, id);
  FILE *f = fopen(p, "r");
  *n = 0;
  if (!f)
    return NULL;
  fseek(f, 0, SEEK_END);
  long sz = ftell(f);
  fseek(f, 0, SEEK_SET);
  entry *e = malloc(sz > 0 ? (size_t)sz : 1);
  *n = fread(e, sizeof *e, (size_t)sz / sizeof *e, f);
  fclose(f);
  return e;
}

static pid_t
spawn_child(int (*fn)(int, int), int id, int arg)
{
  fflush(NULL);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    exit(2);
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    _exit(fn(id, arg));
  }
  return pid;
}

static int
producer_main(int id, int unused)
{
  (void)unused;
  return producer((uint32_t)id);
}

static int
setup_main(int id, int unused)
{
  (void)id;
  (void)unused;
  q7 *q;
  if (q7_open(&q, store, NULL) || q7_topic_create(q, "mp", NPARTS, NULL))
    die("setup: %s", q7_last_error());
  return q7_close(q) ? 2 : 0;
}

/* Wait for @pid until @deadline (monotonic ms); kill it by PID past that. */
static int
wait_child(pid_t pid, int64_t deadline, const char *what)
{
  int st;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid)
      break;
    if (r < 0 && errno != EINTR)
      return -1;
    if (mono_ms() > deadline) {
      fprintf(stderr, "many_procs: %s overran its time; killing pid %d\n", what, (int)pid);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      return -1;
    }
    struct timespec d = { 0, 20000000L };
    nanosleep(&d, NULL);
  }
  if (WIFSIGNALED(st)) {
    fprintf(stderr, "many_procs: %s died of signal %d\n", what, WTERMSIG(st));
    return 128 + WTERMSIG(st);
  }
  return WEXITSTATUS(st);
}

static void
kill_all(void)
{
  for (size_t i = 0; i < sizeof pids / sizeof *pids; i++) {
    if (pids[i] > 0) {
      kill(pids[i], SIGKILL);
      waitpid(pids[i], NULL, 0);
      pids[i] = 0;
    }
  }
}

int
main(int argc, char **argv)
{
  if (argc > 1)
    duration = atoi(argv[1]);
  if (argc > 2)
    rate = atol(argv[2]);
  if (duration < 1 || duration > 86400 || rate < 0) {
    fprintf(stderr, "usage: many_procs [SECONDS [RATE [DIR]]]\n");
    return 2;
  }
  char base[4096];
  bool own = argc <= 3;
  if (own) {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/q7stress.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) {
      perror("mkdtemp");
      return 2;
    }
  } else {
    snprintf(base, sizeof base, "%s", argv[3]);
    mkdir(base, 0700);
  }
  snprintf(store, sizeof store, "%s/store", base);
  snprintf(logs, sizeof logs, "%s/logs", base);
  mkdir(logs, 0700);
  char rs[32];
  snprintf(rs, sizeof rs, rate ? "%ld records/s each" : "unthrottled", rate);
  printf("many_procs: %d producer processes (4 batched, 4 send_sync; %s), %d consumer "
         "processes in 2 groups, %d partitions, %d s, store %s (sync=false)\n",
         NPROD, rs, NCONS, NPARTS, duration, store);
  fflush(stdout);

  pid_t sp = spawn_child(setup_main, 0, 0);
  if (wait_child(sp, mono_ms() + 60000, "setup") != 0)
    return 2;

  int stop[2];
  if (pipe(stop) < 0)
    return 2;
  int64_t t0 = mono_ms();
  for (int i = 0; i < NCONS; i++) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(stop[1]);
      _exit(consumer(i, stop[0]));
    }
    pids[NPROD + i] = pid;
  }
  close(stop[0]);
  for (int i = 0; i < NPROD; i++)
    pids[i] = spawn_child(producer_main, i, 0);

  int bad = 0;
  for (int i = 0; i < NPROD; i++) {
    char what[32];
    snprintf(what, sizeof what, "producer %d", i);
    int st = wait_child(pids[i], t0 + (duration + 120) * 1000L, what);
    pids[i] = 0;
    bad += st != 0;
  }
  int64_t t_prod = mono_ms() - t0;
  close(stop[1]); /* the consumers drain and stop */
  for (int i = 0; i < NCONS; i++) {
    char what[32];
    snprintf(what, sizeof what, "consumer %d", i);
    int st = wait_child(pids[NPROD + i], mono_ms() + (duration + 400) * 1000L, what);
    pids[NPROD + i] = 0;
    bad += st != 0;
  }
  int64_t t_all = mono_ms() - t0;
  kill_all();
  check(bad == 0, "every producer and consumer process finished cleanly");

  /* ---- producers' acknowledgements */
  entry *acks[NPROD];
  size_t nacks[NPROD], total = 0;
  for (int i = 0; i < NPROD; i++) {
    acks[i] = read_log("prod", i, &nacks[i]);
    total += nacks[i];
  }
  printf("many_procs: produced %zu records in %.1f s: %.0f records/s\n", total,
         (double)t_prod / 1000.0, (double)total * 1000.0 / (double)(t_prod ? t_prod : 1));

  /* ---- the store, read by the parent (no fork after this) */
  q7 *q;
  q7_topic *t;
  int rc = q7_open(&q, store, NULL);
  check(rc == Q7_OK, "the store opens after the run (%s)", rc ? q7_last_error() : "");
  if (rc || q7_topic_open(q, "mp", &t)) {
    printf("%d passed, %d failed\n", passed, failed + 1);
    return 1;
  }
  int64_t hw[NPARTS], stored = 0;
  uint32_t *who[NPARTS];  /* producer of the record at each offset */
  uint32_t *whos[NPARTS]; /* and its seq */
  bool dense = true, intact = true;
  int64_t read_ms = mono_ms();
  for (int p = 0; p < NPARTS; p++) {
    q7_partition *part;
    int64_t ls;
    q7_topic_partition(t, p, &part);
    q7_partition_offsets(part, &ls, &hw[p]);
    dense = dense && ls == 0;
    who[p] = malloc((size_t)(hw[p] + 1) * sizeof **who);
    whos[p] = malloc((size_t)(hw[p] + 1) * sizeof **whos);
    for (int64_t off = 0; off < hw[p];) {
      q7_record r[512];
      int n = q7_partition_read(part, off, r, 512);
      if (n <= 0) {
        printf("many_procs: partition %d: read at %" PRId64 ": %d %s\n", p, off, n,
               q7_last_error());
        dense = false;
        break;
      }
      for (int i = 0; i < n; i++, off++) {
        uint32_t pr, sq;
        if (r[i].offset != off)
          dense = false;
        if (!value_ok(r[i].value, r[i].value_len, &pr, &sq)) {
          intact = false;
          pr = UINT32_MAX;
          sq = 0;
        }
        who[p][off] = pr;
        whos[p][off] = sq;
      }
    }
    q7_partition_read(part, 0, NULL, 0);
    stored += hw[p];
  }
  read_ms = mono_ms() - read_ms;
  check(dense, "every partition is dense from offset 0 to its high watermark");
  check(intact, "every stored record is intact (%" PRId64 " records read in %.1f s)", stored,
        (double)read_ms / 1000.0);
  check(stored == (int64_t)total, "records stored (%" PRId64 ") = records acknowledged (%zu)",
        stored, total);

  /* Each acknowledgement names a distinct offset holding that record. */
  bool at_offset = true, once = true;
  unsigned char *ackseen[NPARTS];
  for (int p = 0; p < NPARTS; p++)
    ackseen[p] = calloc((size_t)hw[p] + 1, 1);
  for (int i = 0; i < NPROD; i++) {
    for (size_t k = 0; k < nacks[i]; k++) {
      entry *e = &acks[i][k];
      if (e->partition < 0 || e->partition >= NPARTS || e->offset < 0 ||
          e->offset >= hw[e->partition]) {
        at_offset = false;
        continue;
      }
      if (ackseen[e->partition][e->offset]++)
        once = false;
      if (who[e->partition][e->offset] != e->prod || whos[e->partition][e->offset] != e->seq)
        at_offset = false;
    }
  }
  check(once, "no offset was acknowledged twice");
  check(at_offset, "every acknowledged record is at the offset its acknowledgement named");

  /* ---- each group consumed every offset exactly once */
  for (int g = 0; g < 2; g++) {
    unsigned char *cnt[NPARTS];
    for (int p = 0; p < NPARTS; p++)
      cnt[p] = calloc((size_t)hw[p] + 1, 1);
    bool match = true, range = true;
    size_t consumed = 0;
    for (int m = 0; m < 2; m++) {
      size_t n;
      entry *e = read_log("cons", g * 2 + m, &n);
      consumed += n;
      for (size_t k = 0; k < n; k++) {
        if (e[k].partition < 0 || e[k].partition >= NPARTS || e[k].offset < 0 ||
            e[k].offset >= hw[e[k].partition]) {
          range = false;
          continue;
        }
        if (cnt[e[k].partition][e[k].offset] < 255)
          cnt[e[k].partition][e[k].offset]++;
        if (who[e[k].partition][e[k].offset] != e[k].prod ||
            whos[e[k].partition][e[k].offset] != e[k].seq)
          match = false;
      }
      free(e);
    }
    int64_t missing = 0, repeated = 0;
    for (int p = 0; p < NPARTS; p++) {
      for (int64_t o = 0; o < hw[p]; o++) {
        missing += cnt[p][o] == 0;
        repeated += cnt[p][o] > 1;
      }
      free(cnt[p]);
    }
    printf("many_procs: group g%d consumed %zu records in %.1f s: %.0f records/s\n", g,
           consumed, (double)t_all / 1000.0,
           (double)consumed * 1000.0 / (double)(t_all ? t_all : 1));
    check(range, "group g%d consumed only offsets below the high watermarks", g);
    check(missing == 0, "group g%d consumed every record (%" PRId64 " never consumed)", g,
          missing);
    check(repeated == 0, "group g%d consumed no record twice (%" PRId64 " repeated)", g,
          repeated);
    check(match, "group g%d consumed what is stored at each offset", g);
  }
  /* Committed offsets: each group at the end of every partition. */
  bool committed = true;
  for (int g = 0; g < 2; g++) {
    char gn[8];
    snprintf(gn, sizeof gn, "g%d", g);
    for (int p = 0; p < NPARTS; p++) {
      int64_t next = -1;
      if (q7_committed(q, gn, "mp", p, &next) != Q7_OK ? hw[p] != 0 : next != hw[p])
        committed = false;
    }
  }
  check(committed, "both groups committed the end of every partition");

  q7_topic_close(t);
  q7_close(q);
  for (int i = 0; i < NPROD; i++)
    free(acks[i]);
  for (int p = 0; p < NPARTS; p++) {
    free(who[p]);
    free(whos[p]);
    free(ackseen[p]);
  }
  if (own && failed == 0) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0)
      fprintf(stderr, "many_procs: could not remove %s\n", base);
  } else if (failed) {
    printf("many_procs: kept %s for inspection\n", base);
  }
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
