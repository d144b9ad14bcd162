/* test_multiproc.c - several processes on one store: concurrent producers
 * keep offsets dense and unique, a consumer in another process sees every
 * record in order, commits wake consumers across processes, and consumer
 * groups span processes.
 *
 * LMDB forbids using an environment across fork(), so the parent opens the
 * store only after its last fork, or not at all: a child creates the topics. */
#include "helpers.h"
#include "fixture.h"
#include "proc.h"
#include "kids.h"

#include <criterion/logging.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* ------------------------------------------------------------ fixture */

/* The store (setup_nostore: no store open across the forks) and the
 * children, stopped by PID before the store is closed. */
static void
teardown_kids(void)
{
  kids_kill_all();
  teardown();
}

/* Block until the parent closes the write end of @fd (everyone starts at
 * once), bounded. */
static void
wait_go(int fd)
{
  char c;
  struct pollfd pfd = { fd, POLLIN, 0 };
  if (poll(&pfd, 1, 30000) > 0)
    (void)!read(fd, &c, 1);
}

/* ----------------------------------------------------- setup child */

typedef struct setup_arg {
  const char *topic;
  int32_t parts;
} setup_arg;

static int
child_setup(void *arg)
{
  setup_arg *a = arg;
  q7 *cq;
  if (q7_open(&cq, dir, NULL))
    return 2;
  if (q7_topic_create(cq, a->topic, a->parts, NULL))
    return 3;
  return q7_close(cq) ? 4 : 0;
}

static void
create_topic_in_child(const char *topic, int32_t parts)
{
  setup_arg a = { topic, parts };
  int rc = reap(spawn(child_setup, &a), 60000);
  cr_assert_eq(rc, 0, "setup child exited %d", rc);
}

/* ================================================ concurrent producers */

enum { PROCS = 4, EACH = 500, TOTAL = PROCS * EACH };

typedef struct prod_arg {
  int id;
  int go_fd;
} prod_arg;

static int
child_produce(void *arg)
{
  prod_arg *a = arg;
  wait_go(a->go_fd);
  q7 *cq;
  q7_topic *t;
  q7_producer *p;
  if (q7_open(&cq, dir, NULL) || q7_topic_open(cq, "t", &t) || q7_producer_new(cq, NULL, &p))
    return 2;
  int64_t last = -1;
  for (int i = 0; i < EACH; i++) {
    char v[32];
    int n = snprintf(v, sizeof v, "c%d-%d", a->id, i);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = (size_t)n };
    int64_t off;
    int32_t part;
    if (q7_producer_send_sync(p, &m, &part, &off))
      return 3;
    if (part != 0 || off <= last || off >= TOTAL)
      return 4; /* offsets of one producer increase */
    last = off;
  }
  if (q7_producer_close(p))
    return 5;
  q7_topic_close(t);
  return q7_close(cq) ? 6 : 0;
}

/* Parse "cID-SEQ". */
static bool
parse_val(const q7_record *r, int *id, int *seq)
{
  char buf[32];
  if (!r->value || r->value_len >= sizeof buf)
    return false;
  memcpy(buf, r->value, r->value_len);
  buf[r->value_len] = 0;
  return sscanf(buf, "c%d-%d", id, seq) == 2 && *id >= 0 && *id < PROCS && *seq >= 0 &&
         *seq < EACH;
}

typedef struct cons_arg {
  int ready_fd, go_fd;
} cons_arg;

/* Reads partition 0 from the beginning while the producers run: every
 * offset once, in order, each producer's records in its send order. */
static int
child_consume_all(void *arg)
{
  cons_arg *a = arg;
  q7 *cq;
  q7_consumer *c;
  if (q7_open(&cq, dir, NULL) || q7_consumer_new(cq, NULL, NULL, &c) ||
      q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING))
    return 2;
  char ok = 'r';
  if (!write_full(a->ready_fd, &ok, 1))
    return 3;
  wait_go(a->go_fd);
  int next_seq[PROCS] = { 0 };
  int64_t next = 0, end = mono_ms() + 90000;
  while (next < TOTAL && mono_ms() < end) {
    q7_record r[64];
    int n = q7_consumer_poll(c, r, 64, 200);
    if (n < 0)
      return 4;
    for (int i = 0; i < n; i++) {
      int id, seq;
      if (r[i].offset != next)
        return 5; /* gap or repeat */
      if (!parse_val(&r[i], &id, &seq))
        return 6;
      if (seq != next_seq[id])
        return 7; /* a producer's records out of its send order */
      next_seq[id]++;
      next++;
    }
  }
  if (next != TOTAL)
    return 8;
  q7_record r[4];
  if (q7_consumer_poll(c, r, 4, 0) != 0)
    return 9;
  if (q7_consumer_close(c))
    return 10;
  return q7_close(cq) ? 11 : 0;
}

Test(multiproc, four_producer_processes_get_dense_unique_offsets_in_send_order,
     .init = setup_nostore, .fini = teardown_kids, .timeout = 240)
{
  create_topic_in_child("t", 1);
  int go[2], ready[2];
  cr_assert_eq(pipe(go), 0);
  cr_assert_eq(pipe(ready), 0);
  cons_arg ca = { ready[1], go[0] };
  int ck = spawn_closing(child_consume_all, &ca, go[1]);
  prod_arg pa[PROCS];
  int pk[PROCS];
  for (int i = 0; i < PROCS; i++) {
    pa[i] = (prod_arg){ i, go[0] };
    pk[i] = spawn_closing(child_produce, &pa[i], go[1]);
  }
  close(go[0]);
  close(ready[1]);
  char c;
  cr_assert(read_full(ready[0], &c, 1, 60000), "consumer process never got ready");
  close(go[1]); /* go */
  for (int i = 0; i < PROCS; i++) {
    int rc = reap(pk[i], 180000);
    cr_assert_eq(rc, 0, "producer process %d exited %d", i, rc);
  }
  int rc = reap(ck, 120000);
  cr_assert_eq(rc, 0,
               "consumer process exited %d (5 gap/repeat, 6 bad value, 7 send order, 8 missing "
               "records, -1 timed out)",
               rc);
  close(ready[0]);

  /* Every process is gone: the parent may open the store now. */
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  q7_topic *t;
  q7_partition *p;
  int64_t ls, hw;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(ls, 0);
  cr_assert_eq(hw, TOTAL, "high watermark %lld after %d records", (long long)hw, TOTAL);
  int next_seq[PROCS] = { 0 };
  for (int64_t o = 0; o < hw;) {
    q7_record r[100];
    int n = q7_partition_read(p, o, r, 100);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
      int id, seq;
      cr_assert_eq(r[i].offset, o + i);
      cr_assert(parse_val(&r[i], &id, &seq), "offset %lld: bad value", (long long)(o + i));
      cr_assert_eq(seq, next_seq[id], "offset %lld: c%d-%d, want c%d-%d (lost, repeated or out "
                   "of order)", (long long)(o + i), id, seq, id, next_seq[id]);
      next_seq[id]++;
    }
    o += n;
  }
  for (int i = 0; i < PROCS; i++)
    cr_assert_eq(next_seq[i], EACH, "process %d: %d records stored", i, next_seq[i]);
  q7_partition_read(p, 0, NULL, 0);
  q7_topic_close(t);
}

/* ============================================= cross-process wake-ups */

enum { WAKE_ROUNDS = 30 };

typedef struct wake_report {
  int n;
  int64_t offset, at_ns;
} wake_report;

typedef struct wake_arg {
  int ready_fd, report_fd;
} wake_arg;

static int
child_wait_polls(void *arg)
{
  wake_arg *a = arg;
  q7 *cq;
  q7_consumer *c;
  if (q7_open(&cq, dir, NULL) || q7_consumer_new(cq, NULL, NULL, &c) ||
      q7_consumer_assign(c, "t", 0, Q7_OFFSET_END))
    return 2;
  for (int i = 0; i < WAKE_ROUNDS; i++) {
    char ok = 'r';
    if (!write_full(a->ready_fd, &ok, 1))
      return 3;
    q7_record r[4];
    int n = q7_consumer_poll(c, r, 4, 10000);
    wake_report w = { n, n > 0 ? r[0].offset : -1, mono_ns() };
    if (!write_full(a->report_fd, &w, sizeof w))
      return 4;
    if (n != 1)
      return 5;
  }
  q7_consumer_close(c);
  return q7_close(cq) ? 6 : 0;
}

static int
cmp_i64(const void *a, const void *b)
{
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return x < y ? -1 : x > y;
}

Test(multiproc, a_commit_wakes_a_polling_consumer_in_another_process, .init = setup_nostore,
     .fini = teardown_kids, .timeout = 240)
{
  create_topic_in_child("t", 1);
  int ready[2], report[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(report), 0);
  wake_arg wa = { ready[1], report[1] };
  int ck = spawn(child_wait_polls, &wa);
  close(ready[1]);
  close(report[1]);

  /* The parent opens the store after its last fork. */
  q7_conf *sc;
  Q7_OK_OR_FAIL((sc = q7_conf_new()) == NULL);
  Q7_OK_OR_FAIL(q7_conf_set(sc, "sync", "false"));
  Q7_OK_OR_FAIL(q7_open(&q, dir, sc));
  q7_conf_destroy(sc);
  q7_topic *t;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  int64_t lat[WAKE_ROUNDS];
  for (int i = 0; i < WAKE_ROUNDS; i++) {
    char c;
    cr_assert(read_full(ready[0], &c, 1, 60000), "round %d: child not ready", i);
    sleep_ms(10 + i % 5); /* let it block in poll */
    char v[16];
    int n = snprintf(v, sizeof v, "w%d", i);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = (size_t)n };
    int64_t sent = mono_ns(), off;
    Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, &off));
    cr_assert_eq(off, i);
    wake_report w;
    cr_assert(read_full(report[0], &w, sizeof w, 60000), "round %d: no report", i);
    cr_assert_eq(w.n, 1, "round %d: the child's poll returned %d", i, w.n);
    cr_assert_eq(w.offset, i);
    lat[i] = w.at_ns - sent;
  }
  int rc = reap(ck, 30000);
  cr_assert_eq(rc, 0, "child exited %d", rc);
  qsort(lat, WAKE_ROUNDS, sizeof *lat, cmp_i64);
  double p50 = lat[WAKE_ROUNDS / 2] / 1e6, p99 = lat[(WAKE_ROUNDS * 99) / 100] / 1e6;
  cr_log_info("cross-process wake-up, send_sync to poll return, %d rounds: p50 %.3f ms, "
              "p99 %.3f ms, min %.3f ms",
              WAKE_ROUNDS, p50, p99, lat[0] / 1e6);
  cr_assert_lt(p99, 1000.0, "p99 cross-process wake-up %.1f ms", p99);
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
  close(ready[0]);
  close(report[0]);
}

/* ============================================ groups across processes */

typedef struct grp_arg {
  int id, stop_fd, report_fd;
} grp_arg;

typedef struct grp_report {
  int id;
  unsigned mask;
} grp_report;

/* Subscribe and poll until the parent closes the stop pipe (bounded to
 * 60 s), reporting the assignment each time it changes. */
static int
child_group_member(void *arg)
{
  grp_arg *a = arg;
  q7 *cq;
  q7_consumer *c;
  q7_conf *conf;
  if (q7_open(&cq, dir, NULL) || !(conf = q7_conf_new()) ||
      q7_conf_set(conf, "enable.auto.commit", "false") ||
      q7_consumer_new(cq, "g", conf, &c) || q7_consumer_subscribe(c, "t"))
    return 2;
  q7_conf_destroy(conf);
  int64_t start = mono_ms();
  unsigned last = ~0u;
  while (mono_ms() - start < 60000) {
    struct pollfd pfd = { a->stop_fd, POLLIN, 0 };
    if (poll(&pfd, 1, 0) > 0)
      break; /* EOF: stop */
    q7_record r[8];
    if (q7_consumer_poll(c, r, 8, 50) < 0)
      return 3;
    const char *tp[8];
    int32_t pp[8];
    int n = q7_consumer_assignment(c, tp, pp, 8);
    if (n < 0)
      return 4;
    unsigned mask = 0;
    for (int i = 0; i < n && i < 8; i++)
      mask |= 1u << pp[i];
    if (mask != last) {
      grp_report rep = { a->id, mask };
      if (!write_full(a->report_fd, &rep, sizeof rep))
        return 5;
      last = mask;
    }
  }
  q7_consumer_close(c);
  return q7_close(cq) ? 6 : 0;
}

/* SPEC, Consumer: "members in the same process and in other processes that
 * open the same store rebalance when members join or leave". */
Test(multiproc, group_members_in_two_processes_share_the_partitions, .init = setup_nostore,
     .fini = teardown_kids, .timeout = 120)
{
  create_topic_in_child("t", 4);
  int stop[2], report[2];
  cr_assert_eq(pipe(stop), 0);
  cr_assert_eq(pipe(report), 0);
  grp_arg ga[2] = { { 0, stop[0], report[1] }, { 1, stop[0], report[1] } };
  int k0 = spawn_closing(child_group_member, &ga[0], stop[1]);
  int k1 = spawn_closing(child_group_member, &ga[1], stop[1]);
  close(stop[0]);
  close(report[1]);
  /* Follow both assignments until they split the topic, for up to 20 s. */
  unsigned m[2] = { 0, 0 };
  bool split = false;
  int64_t end = mono_ms() + 20000;
  while (!split && mono_ms() < end) {
    grp_report rep;
    if (!read_full(report[0], &rep, sizeof rep, (int)(end - mono_ms())))
      break;
    cr_assert(rep.id == 0 || rep.id == 1);
    m[rep.id] = rep.mask;
    split = m[0] && m[1] && !(m[0] & m[1]) && (m[0] | m[1]) == 0xf;
  }
  close(stop[1]);
  int r0 = reap(k0, 30000), r1 = reap(k1, 30000);
  close(report[0]);
  cr_assert(r0 == 0 && r1 == 0, "members exited %d and %d", r0, r1);
  cr_assert(split,
            "two processes in one group never split 4 partitions in 20 s: assignments %#x and "
            "%#x",
            m[0], m[1]);
}

/* ===================================== a producer process killed mid-write */

typedef struct ack {
  int32_t seq;
  int32_t pad;
  int64_t offset;
} ack;

typedef struct killp_arg {
  char tag;                       /* 'a' or 'b' */
  int count;                      /* records to send (the victim never ends) */
  int ack_fd;
} killp_arg;

/* send_sync "TAG-SEQ" records, writing each acknowledgement to ack_fd. */
static int
child_ack_producer(void *arg)
{
  killp_arg *a = arg;
  q7 *cq;
  q7_topic *t;
  q7_producer *p;
  if (q7_open(&cq, dir, NULL) || q7_topic_open(cq, "t", &t) || q7_producer_new(cq, NULL, &p))
    return 2;
  for (int i = 0; i < a->count; i++) {
    char v[32];
    int n = snprintf(v, sizeof v, "%c-%d", a->tag, i);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = (size_t)n };
    ack k = { i, 0, -1 };
    if (q7_producer_send_sync(p, &m, NULL, &k.offset))
      return 3;
    if (!write_full(a->ack_fd, &k, sizeof k))
      return 4;
  }
  if (q7_producer_close(p))
    return 5;
  q7_topic_close(t);
  return q7_close(cq) ? 6 : 0;
}

/* Drain acks from @fd until EOF or @ms. */
static size_t
read_acks(int fd, ack *out, size_t max, int ms)
{
  size_t n = 0;
  while (n < max && read_full(fd, &out[n], sizeof *out, ms))
    n++;
  return n;
}

Test(multiproc, a_producer_killed_mid_write_loses_no_acknowledged_record, .init = setup_nostore,
     .fini = teardown_kids, .timeout = 300)
{
  enum { ROUNDS = 3, SURVIVOR = 2000, MAXACK = 400000 };
  unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
  const char *env = getenv("Q7_TEST_SEED");
  if (env && *env)
    seed = (unsigned)strtoul(env, NULL, 10);
  cr_log_info("a_producer_killed_mid_write: seed %u (Q7_TEST_SEED)", seed);
  fprintf(stderr, "producer-kill seed %u\n", seed);
  srand(seed);
  create_topic_in_child("t", 1);
  ack *va = malloc(MAXACK * sizeof *va), *vb = malloc(MAXACK * sizeof *vb);
  int64_t base = 0; /* high watermark before the round */
  int a_total = 0, b_total = 0;
  for (int round = 0; round < ROUNDS; round++) {
    int pa[2], pb[2];
    cr_assert_eq(pipe(pa), 0);
    cr_assert_eq(pipe(pb), 0);
    killp_arg aa = { 'a', 1 << 30, pa[1] }, bb = { 'b', SURVIVOR, pb[1] };
    int ka = spawn(child_ack_producer, &aa);
    int kb = spawn(child_ack_producer, &bb);
    close(pa[1]);
    close(pb[1]);
    /* Let the victim get going, then kill it at a random moment while the
     * survivor is still writing; acks are read as they come so the pipe
     * never blocks the victim. */
    size_t na = read_acks(pa[0], va, 1, 60000);
    cr_assert_eq(na, 1, "seed %u round %d: victim never acknowledged a record", seed, round);
    int64_t kill_at = mono_ms() + rand() % 150;
    while (mono_ms() < kill_at && na < MAXACK)
      na += read_acks(pa[0], va + na, 1, (int)(kill_at - mono_ms() + 1));
    kill(kids[ka], SIGKILL);
    int ra = reap(ka, 30000);
    na += read_acks(pa[0], va + na, MAXACK - na, 5000);
    size_t nb = read_acks(pb[0], vb, MAXACK, 120000);
    int rb = reap(kb, 120000);
    close(pa[0]);
    close(pb[0]);
    cr_assert_eq(ra, 128 + SIGKILL, "seed %u round %d: victim ended %d", seed, round, ra);
    cr_assert_eq(rb, 0, "seed %u round %d: survivor exited %d after %zu records", seed, round,
                 rb, nb);
    cr_assert_eq(nb, SURVIVOR);

    /* Every acknowledged record is where its ack said; the victim's records
     * are a prefix of what it sent (at most one unacknowledged extra). */
    Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
    q7_topic *t;
    q7_partition *p;
    int64_t hw;
    Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
    Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
    Q7_OK_OR_FAIL(q7_partition_offsets(p, NULL, &hw));
    int64_t *aoff = malloc((na + 2) * sizeof *aoff), *boff = malloc(SURVIVOR * sizeof *boff);
    size_t sa = 0, sb = 0;
    for (int64_t o = base; o < hw;) {
      q7_record r[128];
      int n = q7_partition_read(p, o, r, 128);
      cr_assert_gt(n, 0, "read %lld: %d (%s)", (long long)o, n, q7_last_error());
      for (int i = 0; i < n; i++) {
        char buf[32] = "";
        char tag = 0;
        int seq = -1;
        if (r[i].value_len < sizeof buf)
          memcpy(buf, r[i].value, r[i].value_len);
        cr_assert(sscanf(buf, "%c-%d", &tag, &seq) == 2, "offset %lld: bad value",
                  (long long)r[i].offset);
        if (tag == 'a') {
          cr_assert_eq((size_t)seq, sa, "seed %u round %d: victim record %d at %lld, want %zu",
                       seed, round, seq, (long long)r[i].offset, sa);
          cr_assert_lt(sa, na + 1, "seed %u round %d: more than one unacknowledged record",
                       seed, round);
          aoff[sa++] = r[i].offset;
        } else {
          cr_assert_eq(tag, 'b');
          cr_assert_eq((size_t)seq, sb, "seed %u round %d: survivor record %d, want %zu", seed,
                       round, seq, sb);
          boff[sb++] = r[i].offset;
        }
      }
      o += n;
    }
    q7_partition_read(p, 0, NULL, 0);
    cr_assert_geq(sa, na, "seed %u round %d: %zu victim records acknowledged, %zu stored", seed,
                  round, na, sa);
    cr_assert_eq(sb, (size_t)SURVIVOR);
    for (size_t i = 0; i < na; i++)
      cr_assert_eq(va[i].offset, aoff[i], "victim ack %zu said %lld, stored at %lld", i,
                   (long long)va[i].offset, (long long)aoff[i]);
    for (size_t i = 0; i < nb; i++)
      cr_assert_eq(vb[i].offset, boff[i]);
    cr_assert_eq(hw - base, (int64_t)(sa + sb), "offsets not dense");
    cr_log_info("round %d: victim acknowledged %zu (stored %zu), survivor %zu", round, na, sa,
                nb);
    /* And the partition takes new records after the crash. */
    q7_producer *pr;
    Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &pr));
    q7_msg m = { .topic = t, .partition = 0, .value = "c-0", .value_len = 3 };
    int64_t off;
    Q7_OK_OR_FAIL(q7_producer_send_sync(pr, &m, NULL, &off));
    cr_assert_eq(off, hw);
    Q7_OK_OR_FAIL(q7_producer_close(pr));
    q7_topic_close(t);
    Q7_OK_OR_FAIL(q7_close(q));
    q = NULL;
    base = hw + 1;
    a_total += (int)sa;
    b_total += (int)sb;
    free(aoff);
    free(boff);
  }
  cr_assert_gt(a_total, 0);
  cr_assert_gt(b_total, 0, "the surviving process stored records too");
  free(va);
  free(vb);
}

/* ===================================== map growth seen from several processes */

enum { MG_LEN = 64 * 1024, MG_EACH = 800 }; /* 2 x 50 MiB: past a 64 MiB map */

static void
mg_fill(unsigned char *buf, int writer, int seq)
{
  uint32_t x = (uint32_t)(writer * 1000003 + seq) * 2654435761u + 1;
  for (size_t i = 0; i < MG_LEN; i++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    buf[i] = (unsigned char)x;
  }
  memcpy(buf, &writer, sizeof writer);
  memcpy(buf + 4, &seq, sizeof seq);
}

/* A record is "writer, seq" then its fill; 0 if it is intact. */
static int
mg_check(const q7_record *r, unsigned char *scratch, int *writer, int *seq)
{
  if (r->value_len != MG_LEN)
    return 1;
  memcpy(writer, r->value, sizeof *writer);
  memcpy(seq, (const char *)r->value + 4, sizeof *seq);
  if (*writer < 0 || *writer > 1 || *seq < 0 || *seq >= MG_EACH)
    return 2;
  mg_fill(scratch, *writer, *seq);
  return memcmp(scratch, r->value, MG_LEN) ? 3 : 0;
}

typedef struct mg_arg {
  int id, go_fd, ready_fd;
} mg_arg;

static int
child_mg_writer(void *arg)
{
  mg_arg *a = arg;
  wait_go(a->go_fd);
  q7 *cq;
  q7_conf *sc;
  q7_topic *t;
  q7_producer *p;
  if (!(sc = q7_conf_new()) || q7_conf_set(sc, "sync", "false") || q7_open(&cq, dir, sc) ||
      q7_topic_open(cq, "t", &t) || q7_producer_new(cq, NULL, &p))
    return 2;
  q7_conf_destroy(sc);
  unsigned char *buf = malloc(MG_LEN);
  int64_t last = -1;
  for (int i = 0; i < MG_EACH; i++) {
    mg_fill(buf, a->id, i);
    q7_msg m = { .topic = t, .partition = 0, .value = buf, .value_len = MG_LEN };
    int64_t off;
    int rc = q7_producer_send_sync(p, &m, NULL, &off);
    if (rc)
      return rc == Q7_EFULL ? 10 : rc == Q7_EBUSY ? 11 : 3;
    if (off <= last)
      return 4;
    last = off;
  }
  free(buf);
  if (q7_producer_close(p))
    return 5;
  q7_topic_close(t);
  return q7_close(cq) ? 6 : 0;
}

static int
child_mg_reader(void *arg)
{
  mg_arg *a = arg;
  q7 *cq;
  q7_consumer *c;
  if (q7_open(&cq, dir, NULL) || q7_consumer_new(cq, NULL, NULL, &c) ||
      q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING))
    return 2;
  char ok = 'r';
  if (!write_full(a->ready_fd, &ok, 1))
    return 3;
  unsigned char *scratch = malloc(MG_LEN);
  int next_seq[2] = { 0, 0 };
  int64_t next = 0, end = mono_ms() + 200000;
  while (next < 2 * MG_EACH && mono_ms() < end) {
    q7_record r[16];
    int n = q7_consumer_poll(c, r, 16, 200);
    if (n < 0)
      return 4;
    for (int i = 0; i < n; i++) {
      int w, s;
      if (r[i].offset != next)
        return 5;
      if (mg_check(&r[i], scratch, &w, &s))
        return 6;
      if (s != next_seq[w])
        return 7;
      next_seq[w]++;
      next++;
    }
  }
  free(scratch);
  if (next != 2 * MG_EACH)
    return 8;
  q7_consumer_close(c);
  return q7_close(cq) ? 9 : 0;
}

Test(multiproc, map_growth_by_one_process_is_adopted_by_the_others, .init = setup_nostore,
     .fini = teardown_kids, .timeout = 400)
{
  create_topic_in_child("t", 1);
  int go[2], ready[2];
  cr_assert_eq(pipe(go), 0);
  cr_assert_eq(pipe(ready), 0);
  mg_arg args[3] = { { 0, go[0], -1 }, { 1, go[0], -1 }, { 2, go[0], ready[1] } };
  int kr = spawn_closing(child_mg_reader, &args[2], go[1]);
  int kw0 = spawn_closing(child_mg_writer, &args[0], go[1]);
  int kw1 = spawn_closing(child_mg_writer, &args[1], go[1]);
  close(go[0]);
  close(ready[1]);
  char c;
  cr_assert(read_full(ready[0], &c, 1, 60000), "reader never got ready");
  close(go[1]);
  int r0 = reap(kw0, 300000), r1 = reap(kw1, 300000);
  cr_assert(r0 == 0 && r1 == 0,
            "writers exited %d and %d (10 EFULL, 11 EBUSY, 3 other send error, -1 timeout)", r0,
            r1);
  int rr = reap(kr, 200000);
  cr_assert_eq(rr, 0, "reader exited %d (5 gap, 6 bad bytes, 7 order, 8 missing)", rr);
  close(ready[0]);

  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  q7_topic *t;
  q7_partition *p;
  int64_t hw;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, NULL, &hw));
  cr_assert_eq(hw, 2 * MG_EACH);
  unsigned char *scratch = malloc(MG_LEN);
  for (int64_t o = 0; o < hw;) {
    q7_record r[16];
    int n = q7_partition_read(p, o, r, 16);
    cr_assert_gt(n, 0);
    for (int i = 0; i < n; i++) {
      int w, s;
      cr_assert_eq(mg_check(&r[i], scratch, &w, &s), 0, "offset %lld damaged",
                   (long long)(o + i));
    }
    o += n;
  }
  q7_partition_read(p, 0, NULL, 0);
  free(scratch);
  q7_topic_close(t);
}

/* --------------------------------- a topic deleted by another process */

/* Appends keep the log's ends from their own commit; a topic deleted by
 * another process in between must still refuse the next append. */
typedef struct del_arg {
  int ready_wfd;                  /* producer -> parent: appended */
  int go_rfd;                     /* parent -> producer: deleted, send again */
} del_arg;

static int
child_del_producer(void *arg)
{
  del_arg *a = arg;
  q7 *cq;
  q7_topic *t;
  q7_producer *p;
  if (q7_open(&cq, dir, NULL) || q7_topic_open(cq, "t", &t) || q7_producer_new(cq, NULL, &p))
    return 2;
  for (int i = 0; i < 10; i++) {
    q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1 };
    int64_t off;
    if (q7_producer_send_sync(p, &m, NULL, &off) || off != i)
      return 3;
  }
  if (!write_full(a->ready_wfd, "r", 1))
    return 4;
  char c;
  if (!read_full(a->go_rfd, &c, 1, 30000))
    return 5;
  q7_msg m = { .topic = t, .partition = 0, .value = "late", .value_len = 4 };
  int rc = q7_producer_send_sync(p, &m, NULL, NULL);
  q7_producer_close(p);
  q7_topic_close(t);
  q7_close(cq);
  return rc == Q7_ENOENT ? 0 : 10 + (rc < 0 ? -rc : rc);
}

/* The same in a process that produces and consumes: its poll, whose read
 * transaction is the one right after another process's single commit (the
 * deletion), must not take that commit for its own append. */
static int
child_del_consumer(void *arg)
{
  del_arg *a = arg;
  q7 *cq;
  q7_topic *t;
  q7_producer *p;
  q7_consumer *c;
  if (q7_open(&cq, dir, NULL) || q7_topic_open(cq, "t", &t) || q7_producer_new(cq, NULL, &p) ||
      q7_consumer_new(cq, NULL, NULL, &c) || q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING))
    return 2;
  q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1 };
  if (q7_producer_send_sync(p, &m, NULL, NULL))
    return 3;
  q7_record r[4];
  if (q7_consumer_poll(c, r, 4, 5000) != 1)
    return 4;
  if (!write_full(a->ready_wfd, "r", 1))
    return 5;
  char g;
  if (!read_full(a->go_rfd, &g, 1, 30000))
    return 6;
  int rc = q7_consumer_poll(c, r, 4, 0);
  bool named = rc < 0 && strstr(q7_last_error(), "deleted");
  q7_consumer_close(c);
  q7_producer_close(p);
  q7_topic_close(t);
  q7_close(cq);
  return rc == Q7_ENOENT && named ? 0 : rc < 0 ? 10 - rc : 40 + rc;
}

static int
child_delete(void *arg)
{
  (void)arg;
  q7 *cq;
  if (q7_open(&cq, dir, NULL))
    return 2;
  int rc = q7_topic_delete(cq, "t");
  q7_close(cq);
  return rc ? 3 : 0;
}

/* Run @child, let another process delete "t", then tell @child to go on;
 * its exit status. */
static int
deleted_under(int (*child)(void *))
{
  create_topic_in_child("t", 1);
  int ready[2], go[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(go), 0);
  del_arg a = { ready[1], go[0] };
  int kp = spawn(child, &a);
  char c;
  cr_assert(read_full(ready[0], &c, 1, 60000), "the child did not append");
  cr_assert_eq(reap(spawn(child_delete, NULL), 60000), 0, "deleting the topic failed");
  cr_assert(write_full(go[1], "g", 1));
  int rc = reap(kp, 60000);
  for (int i = 0; i < 2; i++) {
    close(ready[i]);
    close(go[i]);
  }
  return rc;
}

Test(multiproc, an_append_after_another_process_deleted_the_topic_is_enoent,
     .init = setup_nostore, .fini = teardown_kids, .timeout = 120)
{
  int rc = deleted_under(child_del_producer);
  cr_assert_eq(rc, 0, "the append after the delete: exit %d (0: Q7_ENOENT; 10+n: error -n)",
               rc);
}

Test(multiproc, a_poll_after_another_process_deleted_the_topic_is_enoent, .init = setup_nostore,
     .fini = teardown_kids, .timeout = 120)
{
  int rc = deleted_under(child_del_consumer);
  cr_assert_eq(rc, 0, "the poll after the delete: exit %d (0: Q7_ENOENT naming the deletion; "
               "10+n: error -n; 40+n: n records)", rc);
}
