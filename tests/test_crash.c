/* test_crash.c - acknowledged records survive SIGKILL at random moments.
 *
 * Each round forks a child that opens the store and produces -- with
 * q7_producer_send_sync from two threads (two producers, so group commit is
 * in play), or with batched q7_producer_send and delivery reports -- and
 * writes every acknowledgement (thread, seq, partition, offset) to the
 * parent over a pipe.  The parent kills it with SIGKILL at a random moment
 * (sometimes while it is still opening the store), then forks a verifier
 * that opens the store and checks, for every partition:
 *   - every acknowledged record is at its offset, byte for byte (key, value,
 *     header: all a function of the record's id and the seed);
 *   - offsets are dense from the log start to the high watermark, and no
 *     read fails (a CRC failure is Q7_ECORRUPT, which fails the round);
 *   - no record is stored twice, and every stored record -- acknowledged or
 *     not -- is one the producer sent, intact.
 * Modes: sync=true and sync=false (process crash only), with and without a
 * background retention sweep every few milliseconds, and with lz4 or zstd
 * batches.  A second family kills
 * consumers of a group (subscribed, or assigned at the committed offset)
 * that commit after processing, and checks that each restart resumes at the
 * committed offset -- never past a record it had not processed, never below
 * its last acknowledged commit -- and that in the end every record was
 * processed.
 *
 * Rounds per test: Q7_STRESS_ROUNDS (default 20; make stress runs 200).
 * Seed: printed at the start of each test; Q7_TEST_SEED=N repeats a run.
 *
 * LMDB forbids carrying an environment across fork(): the parent never
 * opens the store; producers, consumers and verifiers are children, so a
 * crash of the library in a verifier fails the test instead of killing the
 * runner. */
#include "helpers.h"
#include "proc.h"
#include "kids.h"

#include <criterion/logging.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

/* ------------------------------------------------------------ fixture */


static char *dir;

static void
setup(void)
{
  dir = tmpdir_new();
  kids_reset();
}

/* Stop any child still running, by PID. */
static void
teardown(void)
{
  kids_kill_all();
  tmpdir_rm(dir);
  dir = NULL;
}

static uint64_t rng_state;

static uint64_t
rnd(void)
{
  rng_state = mix64(rng_state);
  return rng_state;
}

/* The seed of this test: Q7_TEST_SEED or fresh; printed either way. */
static uint64_t
test_seed(const char *test)
{
  uint64_t s = ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid() ^ (uint64_t)mono_ms() << 40;
  const char *env = getenv("Q7_TEST_SEED");
  if (env && *env)
    s = strtoull(env, NULL, 10);
  fprintf(stderr, "test_crash %s: seed %" PRIu64 " (Q7_TEST_SEED=%" PRIu64 " repeats it)\n",
          test, s, s);
  rng_state = s;
  return s;
}

static int
rounds(void)
{
  const char *env = getenv("Q7_STRESS_ROUNDS");
  int n = env && *env ? atoi(env) : 20;
  return n < 1 ? 1 : n > 100000 ? 100000 : n;
}

/* Memory every process of the test shares: children leave their verdict
 * and error text here. */
typedef struct shared {
  char msg[1024];
  int64_t checked;                /* records a verifier read and checked */
  int64_t acked_checked;          /* of them, acknowledged ones */
  int64_t below_start;            /* acknowledged records retention removed */
  int64_t hw[4], ls[4];
} shared;

static shared *
shared_new(void)
{
  shared *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(s, MAP_FAILED);
  memset(s, 0, sizeof *s);
  return s;
}

static shared *sh;

/* In a child: leave a message for the parent and return @code. */
static int
fail_with(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int
fail_with(int code, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(sh->msg, sizeof sh->msg, fmt, ap);
  va_end(ap);
  return code;
}

/* ================================================== record contents */

enum { NPARTS = 2, NTHREADS = 2, PER_THREAD_MAX = 4000, MAXV = 8192, MAGIC = 0x51374b31 };

typedef struct rid {
  uint32_t round, thread, seq;
} rid;

typedef struct content {
  bool has_key, has_hdr;
  unsigned char key[32];
  size_t key_len;
  unsigned char value[MAXV];
  size_t value_len;
  unsigned char hval[16];
  size_t hval_len;
} content;

static uint64_t seed_g;

static void
put32(unsigned char *p, uint32_t v)
{
  memcpy(p, &v, 4);
}

static uint32_t
get32(const unsigned char *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}

/* Everything about a record is a function of the seed and its id: whether
 * it has a key (possibly empty), its value (16 to 8000 bytes, the id first),
 * whether it has a header. */
static void
gen(rid id, content *c)
{
  uint64_t h = mix64(seed_g ^ ((uint64_t)id.round << 40) ^ ((uint64_t)id.thread << 32) ^ id.seq);
  c->has_key = h & 1;
  c->key_len = c->has_key ? (h >> 8) % 24 : 0;
  unsigned sel = (unsigned)((h >> 16) % 100);
  uint64_t l = h >> 24;
  c->value_len = sel < 85 ? 16 + l % 240 : sel < 98 ? 256 + l % 3000 : 4000 + l % 4000;
  c->has_hdr = h & 2;
  c->hval_len = c->has_hdr ? (h >> 36) % 16 : 0;
  uint64_t x = h;
  for (size_t i = 0; i < c->key_len; i++)
    c->key[i] = (unsigned char)(x = mix64(x));
  for (size_t i = 0; i < c->hval_len; i++)
    c->hval[i] = (unsigned char)(x = mix64(x));
  /* Compressible (for the lz4 and zstd modes): each 64 bytes repeat 8
   * random ones. */
  for (size_t i = 16; i < c->value_len; i += 8) {
    if ((i / 8) % 8 == 2)
      x = mix64(x);
    size_t n = c->value_len - i < 8 ? c->value_len - i : 8;
    memcpy(c->value + i, &x, n);
  }
  put32(c->value, MAGIC);
  put32(c->value + 4, id.round);
  put32(c->value + 8, id.thread);
  put32(c->value + 12, id.seq);
}

static q7_msg
msg_of(q7_topic *t, content *c, q7_header *h, int32_t partition)
{
  q7_msg m = { .topic = t, .partition = partition };
  m.key = c->has_key ? (const void *)c->key : NULL;
  m.key_len = c->key_len;
  m.value = c->value;
  m.value_len = c->value_len;
  if (c->has_hdr) {
    h->name = "crash";
    h->value = c->hval;
    h->value_len = c->hval_len;
    m.headers = h;
    m.header_count = 1;
  }
  return m;
}

/* Keyed records go where the partitioner puts them, keyless ones to an
 * explicit partition. */
static int32_t
partition_of(const content *c, rid id)
{
  return c->has_key ? Q7_PARTITION_ANY : (int32_t)((id.seq + id.thread) % NPARTS);
}

/* 0 if @r is exactly the record @id names; else what differs. */
static const char *
differs(const q7_record *r, rid id, content *c)
{
  gen(id, c);
  if (c->has_key != (r->key != NULL))
    return "key presence";
  if (r->key_len != c->key_len || (c->key_len && memcmp(r->key, c->key, c->key_len)))
    return "key bytes";
  if (r->value_len != c->value_len || memcmp(r->value, c->value, c->value_len))
    return "value bytes";
  const void *hv;
  size_t hl;
  int rc = q7_record_header(r, "crash", &hv, &hl);
  if (c->has_hdr) {
    if (rc != Q7_OK)
      return "header missing";
    if (hl != c->hval_len || (hl && memcmp(hv, c->hval, hl)))
      return "header bytes";
  } else if (rc != Q7_ENOENT || r->headers_len != 0) {
    return "unexpected header";
  }
  return NULL;
}

/* ================================================= the producer child */

enum { A_ACK = 1, A_DONE = 2 };

/* One acknowledgement, written whole (smaller than PIPE_BUF: atomic). */
typedef struct ack {
  uint32_t kind, thread, seq;
  int32_t partition;
  int64_t offset;
} ack;

typedef struct mode {
  const char *name;
  bool sync;                      /* store key sync */
  bool batched;                   /* send + delivery reports, else send_sync */
  bool retention;                 /* background sweeps every 5 ms, retention.bytes */
  int kill_max_ms;
  const char *compression;        /* producer compression.type, NULL: none */
} mode;

typedef struct prod_ctx {
  const mode *md;
  uint32_t round;
  int wfd;
  q7 *q;
} prod_ctx;

typedef struct thr {
  prod_ctx *pc;
  uint32_t id;
} thr;

static void
on_delivery(const q7_delivery *d, void *arg)
{
  thr *t = arg;
  if (d->err != Q7_OK) {
    fail_with(0, "round %u thread %u: delivery of seq %u failed: %d (%s)", t->pc->round, t->id,
              (unsigned)((uintptr_t)d->opaque - 1), d->err, q7_strerror(d->err));
    _exit(12);
  }
  ack a = { A_ACK, t->id, (uint32_t)((uintptr_t)d->opaque - 1), d->partition, d->offset };
  if (!write_full(t->pc->wfd, &a, sizeof a))
    _exit(13);
}

static void *
producer_thread(void *arg)
{
  thr *t = arg;
  prod_ctx *pc = t->pc;
  q7_topic *tp;
  q7_producer *p;
  q7_conf *pconf = q7_conf_new();
  static content cs[NTHREADS];
  content *c = &cs[t->id];
  if (!pconf)
    _exit(fail_with(20, "conf: %s", q7_last_error()));
  if (pc->md->compression && q7_conf_set(pconf, "compression.type", pc->md->compression))
    _exit(fail_with(21, "conf: %s", q7_last_error()));
  if (pc->md->batched) {
    if (q7_conf_set(pconf, "linger.ms", "2") || q7_conf_set(pconf, "batch.size", "4096"))
      _exit(fail_with(21, "conf: %s", q7_last_error()));
    q7_conf_set_delivery_cb(pconf, on_delivery, t);
  }
  int rc;
  if ((rc = q7_topic_open(pc->q, "t", &tp)) || (rc = q7_producer_new(pc->q, pconf, &p)))
    _exit(fail_with(22, "round %u: open: %s", pc->round, q7_last_error()));
  q7_conf_destroy(pconf);
  for (uint32_t seq = 0; seq < PER_THREAD_MAX; seq++) {
    rid id = { pc->round, t->id, seq };
    q7_header h;
    gen(id, c);
    q7_msg m = msg_of(tp, c, &h, partition_of(c, id));
    if (pc->md->batched) {
      m.opaque = (void *)(uintptr_t)(seq + 1);
      if ((rc = q7_producer_send(p, &m)))
        _exit(fail_with(23, "round %u: send seq %u: %d %s", pc->round, seq, rc, q7_last_error()));
      if (seq % 8 == 0)
        q7_producer_poll(p, 0);
    } else {
      ack a = { A_ACK, t->id, seq, -1, -1 };
      if ((rc = q7_producer_send_sync(p, &m, &a.partition, &a.offset)))
        _exit(fail_with(24, "round %u: send_sync seq %u: %d %s", pc->round, seq, rc,
                        q7_last_error()));
      if (!write_full(pc->wfd, &a, sizeof a))
        _exit(25);
    }
  }
  if (pc->md->batched && (rc = q7_producer_flush(p, 60000)))
    _exit(fail_with(26, "round %u: flush: %s", pc->round, q7_last_error()));
  ack done = { A_DONE, t->id, 0, 0, 0 };
  if (!write_full(pc->wfd, &done, sizeof done))
    _exit(27);
  /* Done before the kill: keep the handles open and wait for it. */
  return NULL;
}

static int
child_producer(void *arg)
{
  prod_ctx *pc = arg;
  q7_conf *sc = q7_conf_new();
  if (!sc || q7_conf_set(sc, "sync", pc->md->sync ? "true" : "false") ||
      q7_conf_set(sc, "retention.check.interval.ms", pc->md->retention ? "5" : "0"))
    return fail_with(30, "store conf: %s", q7_last_error());
  int rc = q7_open(&pc->q, dir, sc);
  q7_conf_destroy(sc);
  if (rc)
    return fail_with(31, "round %u: q7_open: %d %s", pc->round, rc, q7_last_error());
  pthread_t th[NTHREADS];
  thr ts[NTHREADS];
  for (uint32_t i = 0; i < NTHREADS; i++) {
    ts[i] = (thr){ pc, i };
    if (pthread_create(&th[i], NULL, producer_thread, &ts[i]))
      return fail_with(32, "pthread_create");
  }
  for (int i = 0; i < NTHREADS; i++)
    pthread_join(th[i], NULL);
  for (;;)
    pause();
}

/* ======================================================== bookkeeping */

/* What the parent knows of one offset of one partition. */
typedef struct slot {
  uint32_t round, thread, seq;
  bool acked;
} slot;

typedef struct book {
  slot *s[NPARTS];
  size_t cap[NPARTS];
  int64_t max_acked[NPARTS];      /* -1: none */
  int64_t acked;                  /* acknowledgements received, all rounds */
  int done_threads;               /* of this round: threads that sent everything */
  int64_t checked, acked_checked, removed;
} book;

static book bk;

static void
book_init(void)
{
  memset(&bk, 0, sizeof bk);
  for (int p = 0; p < NPARTS; p++)
    bk.max_acked[p] = -1;
}

static void
book_free(void)
{
  for (int p = 0; p < NPARTS; p++)
    free(bk.s[p]);
}

/* Record one acknowledgement; a second ack for an offset is a failure. */
static void
book_ack(const ack *a, uint32_t round)
{
  if (a->kind == A_DONE) {
    bk.done_threads++;
    return;
  }
  cr_assert_eq(a->kind, A_ACK, "round %u: bad message kind %u", round, a->kind);
  cr_assert(a->partition >= 0 && a->partition < NPARTS && a->offset >= 0 &&
                a->offset < (int64_t)1 << 40 && a->thread < NTHREADS &&
                a->seq < PER_THREAD_MAX,
            "round %u: acknowledgement out of range: thread %u seq %u partition %d offset %" PRId64,
            round, a->thread, a->seq, a->partition, a->offset);
  int32_t p = a->partition;
  size_t o = (size_t)a->offset;
  if (o >= bk.cap[p]) {
    size_t cap = bk.cap[p] ? bk.cap[p] : 4096;
    while (cap <= o)
      cap *= 2;
    slot *n = realloc(bk.s[p], cap * sizeof *n);
    cr_assert_not_null(n);
    memset(n + bk.cap[p], 0, (cap - bk.cap[p]) * sizeof *n);
    bk.s[p] = n;
    bk.cap[p] = cap;
  }
  slot *s = &bk.s[p][o];
  cr_assert(!s->acked,
            "round %u: offset %" PRId64 " of partition %d acknowledged twice (round %u thread %u "
            "seq %u, then round %u thread %u seq %u)",
            round, a->offset, p, s->round, s->thread, s->seq, round, a->thread, a->seq);
  *s = (slot){ round, a->thread, a->seq, true };
  if (a->offset > bk.max_acked[p])
    bk.max_acked[p] = a->offset;
  bk.acked++;
}

/* An acknowledgement read from the producer's pipe. */
static void
on_ack(const void *rep, uint32_t round, void *arg)
{
  ack a;
  memcpy(&a, rep, sizeof a);
  book_ack(&a, round);
}

/* ============================================================ verifier */

typedef struct verify_arg {
  const mode *md;
  uint32_t rounds_done;           /* ids of rounds < this may be stored */
  bool final;                     /* also write one record after the checks */
} verify_arg;

static int
child_verify(void *arg)
{
  verify_arg *va = arg;
  q7 *q;
  q7_topic *t;
  int rc;
  content *c = malloc(sizeof *c);
  size_t nbits = (size_t)va->rounds_done * NTHREADS * PER_THREAD_MAX;
  unsigned char *seen = calloc(nbits / 8 + 1, 1);
  if (!c || !seen)
    return fail_with(2, "out of memory");
  if ((rc = q7_open(&q, dir, NULL)))
    return fail_with(3, "q7_open after the crash: %d %s", rc, q7_last_error());
  if ((rc = q7_topic_open(q, "t", &t)))
    return fail_with(4, "q7_topic_open after the crash: %d %s", rc, q7_last_error());
  for (int32_t p = 0; p < NPARTS; p++) {
    q7_partition *part;
    int64_t ls, hw;
    if ((rc = q7_topic_partition(t, p, &part)) || (rc = q7_partition_offsets(part, &ls, &hw)))
      return fail_with(5, "partition %d: %d %s", p, rc, q7_last_error());
    sh->ls[p] = ls;
    sh->hw[p] = hw;
    if (bk.max_acked[p] >= hw)
      return fail_with(6, "partition %d: acknowledged offset %" PRId64
                       " lost: high watermark %" PRId64, p, bk.max_acked[p], hw);
    if (!va->md->retention && ls != 0)
      return fail_with(7, "partition %d: log start %" PRId64 " without retention", p, ls);
    if (va->md->retention && bk.max_acked[p] >= 0 && ls > bk.max_acked[p])
      return fail_with(8, "partition %d: retention removed the newest acknowledged record "
                       "(log start %" PRId64 ", acknowledged %" PRId64 ")", p, ls,
                       bk.max_acked[p]);
    for (int64_t o = 0; o < ls && o < (int64_t)bk.cap[p]; o++)
      sh->below_start += bk.s[p][o].acked;
    for (int64_t off = ls; off < hw;) {
      q7_record r[256];
      int n = q7_partition_read(part, off, r, 256);
      if (n < 0)
        return fail_with(9, "partition %d: read at %" PRId64 ": %d %s", p, off, n,
                         q7_last_error());
      if (n == 0)
        return fail_with(10, "partition %d: read at %" PRId64 " below hw %" PRId64
                         " returned nothing", p, off, hw);
      for (int i = 0; i < n; i++, off++) {
        if (r[i].offset != off)
          return fail_with(11, "partition %d: offset %" PRId64 " where %" PRId64
                           " belongs (not dense)", p, r[i].offset, off);
        if (r[i].value_len < 16 || get32(r[i].value) != MAGIC)
          return fail_with(12, "partition %d offset %" PRId64 ": not a record we sent "
                           "(%zu-byte value)", p, off, r[i].value_len);
        rid id = { get32((const unsigned char *)r[i].value + 4),
                   get32((const unsigned char *)r[i].value + 8),
                   get32((const unsigned char *)r[i].value + 12) };
        if (id.round >= va->rounds_done || id.thread >= NTHREADS || id.seq >= PER_THREAD_MAX)
          return fail_with(13, "partition %d offset %" PRId64 ": id %u/%u/%u out of range", p,
                           off, id.round, id.thread, id.seq);
        const char *what = differs(&r[i], id, c);
        if (what)
          return fail_with(14, "partition %d offset %" PRId64 " (round %u thread %u seq %u): "
                           "%s differ from what was sent", p, off, id.round, id.thread, id.seq,
                           what);
        size_t bit = ((size_t)id.round * NTHREADS + id.thread) * PER_THREAD_MAX + id.seq;
        if (seen[bit / 8] & (1u << (bit % 8)))
          return fail_with(15, "partition %d offset %" PRId64 ": round %u thread %u seq %u "
                           "stored twice", p, off, id.round, id.thread, id.seq);
        seen[bit / 8] |= (unsigned char)(1u << (bit % 8));
        if (off < (int64_t)bk.cap[p] && bk.s[p][off].acked) {
          slot *s = &bk.s[p][off];
          if (s->round != id.round || s->thread != id.thread || s->seq != id.seq)
            return fail_with(16, "partition %d offset %" PRId64 ": acknowledged as round %u "
                             "thread %u seq %u, holds round %u thread %u seq %u", p, off,
                             s->round, s->thread, s->seq, id.round, id.thread, id.seq);
          sh->acked_checked++;
        }
        sh->checked++;
      }
    }
    q7_partition_read(part, 0, NULL, 0);
  }
  if (va->final) {
    /* The store takes new records after all those crashes. */
    q7_producer *pr;
    q7_header h;
    rid id = { va->rounds_done, 0, 0 };
    gen(id, c);
    q7_msg m = msg_of(t, c, &h, 0);
    int32_t part;
    int64_t off;
    if ((rc = q7_producer_new(q, NULL, &pr)) ||
        (rc = q7_producer_send_sync(pr, &m, &part, &off)))
      return fail_with(17, "writing after the crashes: %d %s", rc, q7_last_error());
    if (off != sh->hw[0])
      return fail_with(18, "record written after the crashes went to offset %" PRId64
                       ", not the high watermark %" PRId64, off, sh->hw[0]);
    q7_producer_close(pr);
    if (va->md->retention && (rc = q7_retention_sweep(q, 0, NULL)))
      return fail_with(19, "retention sweep after the crashes: %d %s", rc, q7_last_error());
  }
  q7_topic_close(t);
  if ((rc = q7_close(q)))
    return fail_with(20, "q7_close: %s", q7_last_error());
  free(seen);
  free(c);
  return 0;
}

/* ========================================================= the rounds */

static int
child_create(void *arg)
{
  const mode *md = arg;
  q7 *q;
  q7_conf *tc = q7_conf_new();
  int rc;
  if (!tc)
    return fail_with(2, "conf");
  /* With retention: a partition keeps about 64 KiB, so sweeps remove
   * records in most rounds. */
  if (md->retention && (rc = q7_conf_set(tc, "retention.bytes", "65536")))
    return fail_with(3, "conf: %s", q7_last_error());
  if ((rc = q7_open(&q, dir, NULL)) || (rc = q7_topic_create(q, "t", NPARTS, tc)))
    return fail_with(4, "create: %d %s", rc, q7_last_error());
  q7_conf_destroy(tc);
  return q7_close(q) ? fail_with(5, "close: %s", q7_last_error()) : 0;
}

static void
run_producer_crashes(const mode *md)
{
  seed_g = test_seed(md->name);
  sh = shared_new();
  book_init();
  int n_rounds = rounds();
  int rc = reap(spawn(child_create, (void *)md), 60000);
  cr_assert_eq(rc, 0, "creating the topic: %d %s", rc, sh->msg);
  int kills = 0, early = 0, mid = 0;
  int64_t t0 = mono_ms();
  for (int round = 0; round < n_rounds; round++) {
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    prod_ctx pc = { md, (uint32_t)round, fds[1], NULL };
    sh->msg[0] = 0;
    /* Mostly anywhere in the first kill_max_ms; one round in eight in the
     * first few milliseconds, while the child opens the store. */
    int delay = rnd() % 8 == 0 ? (int)(rnd() % 6) : 1 + (int)(rnd() % (uint64_t)md->kill_max_ms);
    bk.done_threads = 0;
    int k = spawn(child_producer, &pc);
    close(fds[1]);
    int64_t kill_at = mono_ms() + delay;
    reports acks = { .fd = fds[0], .size = sizeof(ack), .fn = on_ack,
                     .what = "acknowledgement", .end_s = 30 };
    bool open = reports_drain(&acks, kill_at, (uint32_t)round);
    int st = kill_child(k);
    kills++;
    if (open)
      reports_drain(&acks, -1, (uint32_t)round);
    close(fds[0]);
    cr_assert_eq(st, 128 + SIGKILL,
                 "seed %" PRIu64 " round %d: the producer ended with %d before the kill: %s",
                 seed_g, round, st, sh->msg);
    if (delay < 6)
      early++;
    if (bk.done_threads < NTHREADS)
      mid++; /* killed while producing, not after */

    verify_arg va = { md, (uint32_t)round + 1, round == n_rounds - 1 };
    memset(sh, 0, sizeof *sh);
    rc = reap(spawn(child_verify, &va), 120000);
    cr_assert_eq(rc, 0, "seed %" PRIu64 " round %d (%s, killed after %d ms): verifier %s %d: %s",
                 seed_g, round, md->name, delay, rc > 128 ? "crashed with signal" : "exited",
                 rc > 128 ? rc - 128 : rc, sh->msg);
    bk.checked += sh->checked;
    bk.acked_checked += sh->acked_checked;
    bk.removed = sh->below_start;
    /* Every acknowledgement still in the log was checked. */
    int64_t expect = 0;
    for (int p = 0; p < NPARTS; p++)
      for (int64_t o = sh->ls[p]; o < (int64_t)bk.cap[p] && o < sh->hw[p]; o++)
        expect += bk.s[p][o].acked;
    cr_assert_eq(sh->acked_checked, expect, "round %d: %" PRId64 " acknowledged records checked"
                 " of %" PRId64, round, sh->acked_checked, expect);
  }
  fprintf(stderr,
          "test_crash %s: %d rounds, %d SIGKILLs (%d mid-production, %d aimed at the open), %" PRId64
          " acknowledged records, %" PRId64 " record reads checked (%" PRId64
          " of acknowledged ones), %" PRId64 " acknowledged records removed by retention, %.1f s\n",
          md->name, n_rounds, kills, mid, early, bk.acked, bk.checked, bk.acked_checked, bk.removed,
          (double)(mono_ms() - t0) / 1000.0);
  cr_assert_gt(bk.acked, 0, "no record was acknowledged in %d rounds: the kills came too early",
               n_rounds);
  book_free();
  munmap(sh, sizeof *sh);
}

TestSuite(crash, .init = setup, .fini = teardown);

static const mode m_sync = { "send_sync_sync", true, false, false, 150, NULL };
static const mode m_nosync = { "send_sync_nosync", false, false, false, 120, NULL };
static const mode m_batch_sync = { "batched_sync", true, true, false, 150, NULL };
static const mode m_batch_nosync = { "batched_nosync", false, true, false, 60, NULL };
static const mode m_ret_sync = { "retention_send_sync_sync", true, false, true, 150, NULL };
static const mode m_ret_batch = { "retention_batched_nosync", false, true, true, 60, NULL };
static const mode m_lz4 = { "batched_lz4_nosync", false, true, false, 60, "lz4" };
static const mode m_zstd = { "send_sync_zstd_sync_retention", true, false, true, 150, "zstd" };

Test(crash, send_sync_with_sync_keeps_every_acknowledged_record, .timeout = 3600)
{
  run_producer_crashes(&m_sync);
}

Test(crash, send_sync_without_sync_keeps_every_acknowledged_record, .timeout = 3600)
{
  run_producer_crashes(&m_nosync);
}

Test(crash, batched_send_with_sync_keeps_every_delivered_record, .timeout = 3600)
{
  run_producer_crashes(&m_batch_sync);
}

Test(crash, batched_send_without_sync_keeps_every_delivered_record, .timeout = 3600)
{
  run_producer_crashes(&m_batch_nosync);
}

Test(crash, send_sync_under_retention_sweeps_keeps_every_kept_record, .timeout = 3600)
{
  run_producer_crashes(&m_ret_sync);
}

Test(crash, batched_send_under_retention_sweeps_keeps_every_kept_record, .timeout = 3600)
{
  run_producer_crashes(&m_ret_batch);
}

Test(crash, lz4_batches_keep_every_delivered_record, .timeout = 3600)
{
  run_producer_crashes(&m_lz4);
}

Test(crash, zstd_send_sync_under_retention_keeps_every_kept_record, .timeout = 3600)
{
  run_producer_crashes(&m_zstd);
}

/* ===================================================== consumer crashes */

enum { C_PARTS = 3, C_PER_ROUND = 150 };
enum { M_START = 1, M_REC = 2, M_COMMIT = 3 };

/* A consumer's report: START (position it resumes at), REC (processed),
 * COMMIT (position committed and acknowledged). */
typedef struct cmsg {
  int32_t kind, partition;
  int64_t offset;
} cmsg;

typedef struct cons_ctx {
  uint32_t round;
  int wfd;
  bool subscribe;
  int max_poll;
  int64_t end[C_PARTS];           /* high watermarks: stop when all reached */
} cons_ctx;

static int
cvalue(char *buf, size_t len, int32_t p, int64_t off)
{
  return snprintf(buf, len, "p%d-o%" PRId64 "-%016" PRIx64, (int)p, off,
                  mix64(seed_g ^ (uint64_t)off ^ (uint64_t)p << 50));
}

/* Appends C_PER_ROUND records to each partition (not killed). */
static int
child_fill(void *arg)
{
  (void)arg;
  q7 *q;
  q7_topic *t;
  q7_producer *pr;
  q7_conf *sc = q7_conf_new();
  int rc;
  if (!sc || q7_conf_set(sc, "sync", "false"))
    return fail_with(2, "conf");
  if ((rc = q7_open(&q, dir, sc)) || (rc = q7_topic_open(q, "c", &t)) ||
      (rc = q7_producer_new(q, NULL, &pr)))
    return fail_with(3, "fill: open: %d %s", rc, q7_last_error());
  q7_conf_destroy(sc);
  for (int32_t p = 0; p < C_PARTS; p++) {
    q7_partition *part;
    int64_t hw;
    if ((rc = q7_topic_partition(t, p, &part)) || (rc = q7_partition_offsets(part, NULL, &hw)))
      return fail_with(4, "fill: offsets: %s", q7_last_error());
    for (int i = 0; i < C_PER_ROUND; i++) {
      char v[64];
      int n = cvalue(v, sizeof v, p, hw + i);
      q7_msg m = { .topic = t, .partition = p, .value = v, .value_len = (size_t)n };
      int64_t off;
      if ((rc = q7_producer_send_sync(pr, &m, NULL, &off)))
        return fail_with(5, "fill: send: %s", q7_last_error());
      if (off != hw + i)
        return fail_with(6, "fill: offset %" PRId64 ", want %" PRId64, off, hw + i);
    }
    sh->hw[p] = hw + C_PER_ROUND;
  }
  q7_producer_close(pr);
  q7_topic_close(t);
  return q7_close(q) ? fail_with(7, "close") : 0;
}

static void
csend(int fd, int32_t kind, int32_t p, int64_t off)
{
  cmsg m = { kind, p, off };
  if (!write_full(fd, &m, sizeof m))
    _exit(40);
}

static void
on_rebalance(q7_consumer *c, int event, const char *topic, const int32_t *parts, size_t n,
             void *arg)
{
  cons_ctx *cc = arg;
  if (event != Q7_REBALANCE_ASSIGNED)
    return;
  for (size_t i = 0; i < n; i++) {
    int64_t pos;
    if (q7_consumer_position(c, topic, parts[i], &pos))
      _exit(fail_with(41, "position: %s", q7_last_error()));
    csend(cc->wfd, M_START, parts[i], pos);
  }
}

/* Consume from the committed offsets, process (report) each record, commit
 * after each poll and report the commit; exit 0 once at the end. */
static int
child_consume(void *arg)
{
  cons_ctx *cc = arg;
  q7 *q;
  q7_consumer *c;
  q7_conf *cf = q7_conf_new();
  char mp[16];
  snprintf(mp, sizeof mp, "%d", cc->max_poll);
  if (!cf || q7_conf_set(cf, "enable.auto.commit", "false") ||
      q7_conf_set(cf, "auto.offset.reset", "earliest") ||
      q7_conf_set(cf, "max.poll.records", mp) ||
      q7_conf_set(cf, "session.timeout.ms", "3000") ||
      q7_conf_set(cf, "heartbeat.interval.ms", "500"))
    return fail_with(2, "conf: %s", q7_last_error());
  q7_conf_set_rebalance_cb(cf, on_rebalance, cc);
  int rc;
  if ((rc = q7_open(&q, dir, NULL)) || (rc = q7_consumer_new(q, "g", cf, &c)))
    return fail_with(3, "consumer open: %d %s", rc, q7_last_error());
  q7_conf_destroy(cf);
  if (cc->subscribe) {
    if ((rc = q7_consumer_subscribe(c, "c")))
      return fail_with(4, "subscribe: %d %s", rc, q7_last_error());
  } else {
    for (int32_t p = 0; p < C_PARTS; p++) {
      int64_t pos;
      if ((rc = q7_consumer_assign(c, "c", p, Q7_OFFSET_COMMITTED)) ||
          (rc = q7_consumer_position(c, "c", p, &pos)))
        return fail_with(5, "assign: %d %s", rc, q7_last_error());
      csend(cc->wfd, M_START, p, pos);
    }
  }
  int64_t pos[C_PARTS];
  for (int p = 0; p < C_PARTS; p++)
    pos[p] = -1;
  int64_t deadline = mono_ms() + 60000;
  for (;;) {
    if (mono_ms() > deadline)
      return fail_with(6, "round %u: consumer did not reach the end in 60 s", cc->round);
    q7_record r[64];
    int n = q7_consumer_poll(c, r, 64, 20);
    if (n < 0)
      return fail_with(7, "poll: %d %s", n, q7_last_error());
    for (int i = 0; i < n; i++) {
      char v[64];
      int len = cvalue(v, sizeof v, r[i].partition, r[i].offset);
      if (r[i].value_len != (size_t)len || memcmp(r[i].value, v, (size_t)len))
        return fail_with(8, "partition %d offset %" PRId64 ": wrong value", r[i].partition,
                         r[i].offset);
      csend(cc->wfd, M_REC, r[i].partition, r[i].offset);
    }
    if (n > 0) {
      if ((rc = q7_consumer_commit(c)))
        return fail_with(9, "commit: %d %s", rc, q7_last_error());
      for (int32_t p = 0; p < C_PARTS; p++)
        if (q7_consumer_position(c, "c", p, &pos[p]) == Q7_OK)
          csend(cc->wfd, M_COMMIT, p, pos[p]);
    }
    bool all = true;
    for (int32_t p = 0; p < C_PARTS; p++) {
      if (q7_consumer_position(c, "c", p, &pos[p]) != Q7_OK)
        pos[p] = -1; /* not assigned (yet) */
      all = all && pos[p] == cc->end[p];
    }
    if (all && n == 0)
      break;
  }
  /* At the end: commit once more and say so, so that the parent knows the
   * final commit even if an earlier one went unreported. */
  if ((rc = q7_consumer_commit(c)))
    return fail_with(11, "final commit: %d %s", rc, q7_last_error());
  for (int32_t p = 0; p < C_PARTS; p++)
    csend(cc->wfd, M_COMMIT, p, pos[p]);
  q7_consumer_close(c);
  return q7_close(q) ? fail_with(10, "close") : 0;
}

static int
child_create_c(void *arg)
{
  q7 *q;
  int rc;
  if ((rc = q7_open(&q, dir, NULL)) || (rc = q7_topic_create(q, "c", C_PARTS, NULL)))
    return fail_with(2, "create: %d %s", rc, q7_last_error());
  return q7_close(q) ? fail_with(3, "close") : 0;
}

/* What the parent knows of each partition. */
typedef struct cbook {
  int64_t expect;                 /* next offset this round's consumer must process; -1 unknown */
  int64_t committed;              /* last acknowledged commit */
  int64_t max_done;               /* highest offset processed, -1 none */
  unsigned char *done;            /* processed at least once, by offset */
  size_t cap;
} cbook;

static void
cbook_msg(cbook *cb, const cmsg *m, uint32_t round, int64_t *recs)
{
  cr_assert(m->partition >= 0 && m->partition < C_PARTS, "round %u: bad partition %d", round,
            m->partition);
  cbook *b = &cb[m->partition];
  int32_t p = m->partition;
  switch (m->kind) {
  case M_START:
    cr_assert_geq(m->offset, b->committed,
                  "seed %" PRIu64 " round %u partition %d: resumed at %" PRId64
                  ", below the acknowledged commit %" PRId64,
                  seed_g, round, p, m->offset, b->committed);
    cr_assert_leq(m->offset, b->max_done + 1,
                  "seed %" PRIu64 " round %u partition %d: resumed at %" PRId64
                  " but only offsets up to %" PRId64 " were processed (a gap)",
                  seed_g, round, p, m->offset, b->max_done);
    b->expect = m->offset;
    break;
  case M_REC:
    cr_assert_neq(b->expect, -1, "round %u partition %d: record before its start", round, p);
    cr_assert_eq(m->offset, b->expect,
                 "seed %" PRIu64 " round %u partition %d: processed offset %" PRId64
                 ", expected %" PRId64 " (skipped or repeated)",
                 seed_g, round, p, m->offset, b->expect);
    b->expect++;
    if ((size_t)m->offset >= b->cap) {
      size_t cap = b->cap ? b->cap * 2 : 4096;
      while (cap <= (size_t)m->offset)
        cap *= 2;
      b->done = realloc(b->done, cap);
      cr_assert_not_null(b->done);
      memset(b->done + b->cap, 0, cap - b->cap);
      b->cap = cap;
    }
    b->done[m->offset] = 1;
    if (m->offset > b->max_done)
      b->max_done = m->offset;
    (*recs)++;
    break;
  case M_COMMIT:
    cr_assert_eq(m->offset, b->expect, "round %u partition %d: committed %" PRId64
                 " while the position is %" PRId64, round, p, m->offset, b->expect);
    cr_assert_geq(m->offset, b->committed, "round %u partition %d: commit went back", round, p);
    b->committed = m->offset;
    break;
  default:
    cr_assert_fail("round %u: bad message kind %d", round, m->kind);
  }
}

/* What the consumers' messages go into. */
typedef struct cstate {
  cbook *cb;
  int64_t *recs;
} cstate;

/* A message read from a consumer's pipe. */
static void
on_cmsg(const void *rep, uint32_t round, void *arg)
{
  cstate *cs = arg;
  cmsg m;
  memcpy(&m, rep, sizeof m);
  cbook_msg(cs->cb, &m, round, cs->recs);
}

Test(crash, killed_consumers_resume_at_their_committed_offsets_without_gaps, .timeout = 3600)
{
  seed_g = test_seed("consumer");
  sh = shared_new();
  int n_rounds = rounds();
  int rc = reap(spawn(child_create_c, NULL), 60000);
  cr_assert_eq(rc, 0, "create: %s", sh->msg);
  cbook cb[C_PARTS];
  for (int p = 0; p < C_PARTS; p++)
    cb[p] = (cbook){ -1, 0, -1, NULL, 0 };
  int64_t end[C_PARTS] = { 0 }, recs = 0;
  cstate cs = { cb, &recs };
  int kills = 0, finished = 0;
  int64_t t0 = mono_ms();
  for (int round = 0; round <= n_rounds; round++) {
    bool last = round == n_rounds; /* one more, not killed: it must reach the end */
    cons_ctx cc = { (uint32_t)round, -1, rnd() % 2 == 0, 1 + (int)(rnd() % 40), { 0 } };
    if (!last) {
      rc = reap(spawn(child_fill, &cc), 60000);
      cr_assert_eq(rc, 0, "round %d: fill: %d %s", round, rc, sh->msg);
      for (int p = 0; p < C_PARTS; p++)
        end[p] = sh->hw[p];
    }
    memcpy(cc.end, end, sizeof end);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    cc.wfd = fds[1];
    for (int p = 0; p < C_PARTS; p++)
      cb[p].expect = -1;
    int delay = last ? 60000 : 1 + (int)(rnd() % 80);
    int k = spawn(child_consume, &cc);
    close(fds[1]);
    reports msgs = { .fd = fds[0], .size = sizeof(cmsg), .fn = on_cmsg, .arg = &cs,
                     .what = "consumer message", .end_s = 30 };
    bool open = reports_drain(&msgs, mono_ms() + delay, (uint32_t)round);
    int st;
    if (!last) {
      st = kill_child(k);
      kills++;
    } else {
      st = reap(k, 60000);
    }
    if (open)
      reports_drain(&msgs, -1, (uint32_t)round);
    close(fds[0]);
    if (st == 0)
      finished++;
    cr_assert(st == 0 || (!last && st == 128 + SIGKILL),
              "seed %" PRIu64 " round %d (%s): consumer ended %d: %s", seed_g, round,
              cc.subscribe ? "subscribed" : "assigned", st, sh->msg);
  }
  /* The last consumer reached the end: every record was processed, every
   * partition committed to its end. */
  for (int p = 0; p < C_PARTS; p++) {
    cr_assert_eq(cb[p].committed, end[p], "partition %d: committed %" PRId64 " of %" PRId64, p,
                 cb[p].committed, end[p]);
    for (int64_t o = 0; o < end[p]; o++)
      cr_assert((size_t)o < cb[p].cap && cb[p].done[o],
                "seed %" PRIu64 " partition %d: offset %" PRId64 " was never processed", seed_g,
                p, o);
    free(cb[p].done);
  }
  fprintf(stderr,
          "test_crash consumer: %d rounds, %d SIGKILLs, %d consumers finished, %" PRId64
          " records processed (%" PRId64 " distinct), %.1f s\n",
          n_rounds, kills, finished, recs, end[0] + end[1] + end[2],
          (double)(mono_ms() - t0) / 1000.0);
  munmap(sh, sizeof *sh);
}
