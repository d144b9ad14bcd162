/* ahead.c - fetch ahead: a consumer's helper thread maps the log ahead of
 * the consumer's position (fetch.ahead.bytes), as Kafka's clients fetch
 * ahead of the application.
 *
 * Reading a log through LMDB's map takes a page fault for every 64 KiB
 * the process has not touched yet: about a third of the time a consumer
 * spends catching up on a backlog.  The helper takes those faults on
 * another core, up to fetch.ahead.bytes past the position, so that poll
 * finds the pages mapped.  It only touches pages: poll still checks every
 * batch's CRC and decodes it, and nothing the helper does is ever needed
 * for a correct read.  Its errors are ignored: poll meets the same ones
 * and reports them.
 *
 * Poll tells it of a partition only while the consumer is behind (records
 * left past the position), so a consumer that keeps up never starts it.
 * The helper knows partitions by their environment, one slot each (at most
 * SLOTS), which poll fills in (q7__ahead_note) and the consumer empties
 * before it lets go of the partition (q7__ahead_forget).  While it works
 * on a partition the helper holds a reference of its own, so a slot
 * forgotten meanwhile costs nothing but the rest of that step.  It sleeps
 * when every slot is full or at its log's end, until poll moves a
 * position.
 */
#include "q7_int.h"

#include <stdlib.h>
#include <unistd.h>

/* Mapped per step, between two looks at the slots: short read
 * transactions, so that a map resize in this process never waits long. */
#define STEP_BYTES (4u << 20)
/* Partitions mapped ahead at once; a consumer assigned more has the first
 * it reads from mapped ahead, until it lets some go. */
#define SLOTS 64

typedef struct slot {
  q7__pe *pe;
  int64_t pos;  /* the consumer's position */
  int64_t next; /* the first offset not mapped yet */
  uint64_t gen; /* counts seeks back, which void the helper's step */
  bool idle;    /* full or at the end: nothing to do until pos moves */
} slot;

struct q7__ahead {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_t th;
  bool tried, started, stop, waiting;
  size_t window, page;
  slot s[SLOTS];
  size_t n, rr;
};

int
q7__ahead_new(size_t window, q7__ahead **out)
{
  q7__ahead *h = calloc(1, sizeof *h);
  if (!h)
    return q7__err(Q7_ENOMEM, "out of memory");
  pthread_mutex_init(&h->mu, NULL);
  pthread_cond_init(&h->cv, NULL);
  h->window = window;
  long page = sysconf(_SC_PAGESIZE);
  h->page = page > 0 ? (size_t)page : 4096;
  *out = h;
  return Q7_OK;
}

static slot *
find(q7__ahead *h, const q7__pe *pe)
{
  for (size_t i = 0; i < h->n; i++)
    if (h->s[i].pe == pe)
      return &h->s[i];
  return NULL;
}

/* Every page of [p, p + len) mapped; the loads cannot be dropped. */
static void
touch(const unsigned char *p, size_t len, size_t page)
{
  unsigned char acc = 0;
  for (size_t i = 0; i < len; i += page)
    acc ^= *(const volatile unsigned char *)(p + i);
  if (len)
    acc ^= *(const volatile unsigned char *)(p + len - 1);
  (void)acc;
}

/* Map from offset @next on, at most STEP_BYTES and never past h->window
 * bytes beyond the batch holding @pos.  Returns the first offset not
 * mapped; *@more: false when the window is full or the log ends. */
static int64_t
map_step(const q7__ahead *h, q7__pe *pe, int64_t pos, int64_t next, bool *more)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  q7__bkey bk;
  q7__bview bv;
  *more = false;
  if (q7__pe_read_begin(pe, &txn))
    return next;
  if (mdb_cursor_open(txn, pe->log, &cur)) {
    q7__pe_read_end(pe, txn);
    return next;
  }
  int rc = q7__pe_seek(pe, cur, pos, &k, &v);
  if (rc || q7__bkey_get(&k, &bk))
    goto done;
  int64_t from = bk.pos;
  if (next > pos && (q7__pe_seek(pe, cur, next, &k, &v) || q7__bkey_get(&k, &bk)))
    goto done;
  size_t mapped = 0;
  for (;;) {
    if (bk.pos - from >= (int64_t)h->window)
      goto done; /* full */
    if (mapped >= STEP_BYTES) {
      *more = true;
      goto done;
    }
    if (q7__batch_open(&bv, v.mv_data, v.mv_size, bk.base, false, pe->path))
      goto done; /* poll will say what is wrong */
    if (bk.base + bv.count > next) {
      touch(v.mv_data, v.mv_size, h->page);
      mapped += v.mv_size;
      next = bk.base + bv.count;
    }
    if (mdb_cursor_get(cur, &k, &v, MDB_NEXT) || q7__bkey_get(&k, &bk))
      goto done; /* the end */
  }
done:
  mdb_cursor_close(cur);
  q7__pe_read_end(pe, txn);
  return next;
}

static void *
run(void *arg)
{
  q7__ahead *h = arg;
  pthread_mutex_lock(&h->mu);
  while (!h->stop) {
    slot *s = NULL;
    for (size_t k = 0; k < h->n && !s; k++) {
      slot *t = &h->s[(h->rr + k) % h->n];
      if (!t->idle)
        s = t;
    }
    if (!s) {
      h->waiting = true;
      pthread_cond_wait(&h->cv, &h->mu);
      h->waiting = false;
      continue;
    }
    h->rr = (size_t)(s - h->s) + 1;
    q7__pe *pe = s->pe;
    int64_t pos = s->pos, next = s->next > s->pos ? s->next : s->pos;
    uint64_t gen = s->gen;
    q7__pe_hold(pe);
    pthread_mutex_unlock(&h->mu);
    bool more;
    next = map_step(h, pe, pos, next, &more);
    pthread_mutex_lock(&h->mu);
    /* Poll may have moved on meanwhile (the window moved with it), sought
     * back (the step is void), or let the partition go.  Our reference
     * is let go after this look: until then no other environment can
     * take this one's address. */
    if ((s = find(h, pe)) && s->gen == gen) {
      if (next > s->next)
        s->next = next;
      s->idle = !more && s->pos == pos;
    }
    pthread_mutex_unlock(&h->mu);
    q7__pe_put(pe);
    pthread_mutex_lock(&h->mu);
  }
  pthread_mutex_unlock(&h->mu);
  return NULL;
}

void
q7__ahead_note(q7__ahead *h, q7__pe *pe, int64_t position)
{
  pthread_mutex_lock(&h->mu);
  slot *s = find(h, pe);
  if (!s) {
    if (h->n == SLOTS)
      goto out;
    s = &h->s[h->n++];
    *s = (slot){ pe, position, position, 0, false };
  }
  if (position != s->pos) {
    if (position < s->pos) { /* a seek back: what lies ahead may be unmapped */
      s->next = position;
      s->gen++;
    }
    s->pos = position;
    s->idle = false;
  }
  if (!h->tried) {
    /* Once: without a thread, poll reads as it would without fetch.ahead. */
    h->tried = true;
    h->started = !pthread_create(&h->th, NULL, run, h);
  }
  if (h->waiting && !s->idle)
    pthread_cond_signal(&h->cv);
out:
  pthread_mutex_unlock(&h->mu);
}

void
q7__ahead_forget(q7__ahead *h, const q7__pe *pe)
{
  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  slot *s = find(h, pe);
  if (s)
    *s = h->s[--h->n];
  pthread_mutex_unlock(&h->mu);
}

void
q7__ahead_free(q7__ahead *h)
{
  if (!h)
    return;
  pthread_mutex_lock(&h->mu);
  h->stop = true;
  pthread_cond_signal(&h->cv);
  pthread_mutex_unlock(&h->mu);
  if (h->started)
    pthread_join(h->th, NULL);
  pthread_mutex_destroy(&h->mu);
  pthread_cond_destroy(&h->cv);
  free(h);
}
