/* producer.c - batching producer with delivery reports, and send_sync.
 *
 * Records are encoded once, into the open batch of their partition.  A
 * batch is committed when it reaches batch.size bytes (by the sender), when
 * linger.ms has passed (by the producer's thread), or on flush.  At most one
 * batch per partition is being committed at a time, so a partition's
 * records keep the order they were sent in.  Reports are queued and handed
 * to the delivery callback only inside send/poll/flush/close, in the
 * caller's thread. */
#include "q7_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct slot {
  struct slot *next;
  char *topic;                    /* own copy: reports outlive nothing */
  uint64_t topic_id;
  int32_t partition;
  q7__pe *pe;                     /* own reference */
  int codec;                      /* Q7__CODEC_* of its batches */
  q7__batch b;                    /* records waiting */
  void **opaque;                  /* one per record of b */
  size_t cap_opaque;
  /* What the last commit left, for the next batch: growing a fresh buffer
   * by doubling for each batch copied it twice over and faulted in new
   * pages (batches pass malloc's mmap threshold). */
  q7__buf spare;
  void **spare_opaque;
  size_t cap_spare_opaque;
  int64_t deadline;               /* monotonic ms; valid when b.count > 0 */
  bool busy;                      /* a batch of this slot is being committed */
} slot;

typedef struct report {
  const char *topic;
  int32_t partition;
  int64_t offset;
  int err;
  void *opaque;
} report;

struct q7_producer {
  q7 *q;
  void (*cb)(const q7_delivery *d, void *arg);
  void *cb_arg;
  int64_t linger, batch_size, retries;
  int partitioner;                /* 0 murmur2_random, 1 murmur2, 2 random */
  int codec;                      /* compression.type of this producer */
  bool acks_all;
  uint64_t rng;
  pthread_mutex_t mu;
  pthread_cond_t cv_work, cv_done;
  slot *slots;
  int64_t inflight;               /* records sent, not yet reported */
  /* Reports: filled under mu by whoever commits, served by the caller's
   * thread from a second array swapped in under mu (no copy, no malloc).
   * Without a delivery callback only their number is kept. */
  report *reps, *spare;
  size_t cap_reps, cap_spare;
  _Atomic size_t n_ready;         /* records reported, not yet served */
  /* When the linger thread will look next (monotonic ms): INT64_MAX when
   * it waits for work, INT64_MIN while it runs.  A sender wakes it only
   * for a deadline earlier than that -- not once per batch, which cost a
   * futex wake and a lock hand-off every batch. */
  int64_t thread_wake;
  slot *last;                     /* the slot of the previous send */
  pthread_t thread;
  bool stop;
  uint32_t rr;                    /* keyless send_sync */
};

/* Report @n records of a batch; called with mu held.  Memory for reports is
 * reserved when a record is accepted, so this cannot fail. */
static void
push_reports(q7_producer *p, const char *topic, int32_t part, int64_t base, int err,
             void **opaque, uint32_t n)
{
  size_t at = atomic_load_explicit(&p->n_ready, memory_order_relaxed);
  if (p->cb) {
    for (uint32_t i = 0; i < n; i++) {
      report *r = &p->reps[at + i];
      r->topic = topic;
      r->partition = part;
      r->offset = err ? -1 : base + i;
      r->err = err;
      r->opaque = opaque[i];
    }
  }
  atomic_store_explicit(&p->n_ready, at + n, memory_order_release);
}

static int
reserve_reports(q7_producer *p)
{
  if (!p->cb)
    return Q7_OK;
  size_t need = (size_t)p->inflight + atomic_load(&p->n_ready) + 1;
  if (need <= p->cap_reps)
    return Q7_OK;
  size_t cap = p->cap_reps ? p->cap_reps * 2 : 64;
  while (cap < need)
    cap *= 2;
  report *r = realloc(p->reps, cap * sizeof *r);
  if (!r)
    return q7__err(Q7_ENOMEM, "producer: out of memory for delivery reports");
  p->reps = r;
  p->cap_reps = cap;
  return Q7_OK;
}

/* Commit the waiting records of @s.  Called with mu held; releases it while
 * writing.  Waits for a commit of the same slot already under way. */
static void
commit_slot(q7_producer *p, slot *s)
{
  while (s->busy)
    pthread_cond_wait(&p->cv_done, &p->mu);
  if (!s->b.count)
    return;
  q7__batch b = s->b;
  void **opaque = s->opaque;
  size_t cap = s->cap_opaque;
  int rc = Q7_OK;
  s->busy = true;
  s->opaque = s->spare_opaque;
  s->cap_opaque = s->cap_spare_opaque;
  s->spare_opaque = NULL;
  s->cap_spare_opaque = 0;
  memset(&s->b, 0, sizeof s->b);
  if (s->spare.data) {
    s->b.buf = s->spare;
    s->spare = (q7__buf){ 0 };
    q7__batch_reset(&s->b);
  } else {
    rc = q7__batch_init(&s->b);
  }
  pthread_mutex_unlock(&p->mu);

  int64_t base = -1;
  q7__buf tmp = { 0 };
  if (!rc && s->codec)
    rc = q7__batch_compress(p->q, &b, s->codec, &tmp);
  q7__buf_free(&tmp);
  if (!rc) {
    q7__batch_seal(&b);
    for (int64_t attempt = 0;; attempt++) {
      rc = q7__pe_append(s->pe, &b, p->acks_all, &base);
      if (rc != Q7_EBUSY || attempt >= p->retries)
        break;
      struct timespec d = { 0, 1000000L << (attempt < 6 ? attempt : 6) };
      nanosleep(&d, NULL);
    }
  }
  pthread_mutex_lock(&p->mu);
  push_reports(p, s->topic, s->partition, base, rc, opaque, b.count);
  p->inflight -= b.count;
  s->busy = false;
  if (!s->spare.data && !b.codec) { /* a compressed one is sized for that */
    s->spare = b.buf;
    b.buf = (q7__buf){ 0 };
  }
  q7__batch_free(&b);
  if (!s->spare_opaque) {
    s->spare_opaque = opaque;
    s->cap_spare_opaque = cap;
  } else {
    free(opaque);
  }
  pthread_cond_broadcast(&p->cv_done);
}

static void *
linger_thread(void *arg)
{
  q7_producer *p = arg;
  bool looked = false; /* nothing was due at the last look, either */
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    int64_t now = q7__mono_ms(), next = -1;
    bool again = false;
    for (slot *s = p->slots; s; s = s->next) {
      if (!s->b.count || s->busy)
        continue;
      if (s->deadline <= now) {
        commit_slot(p, s);
        again = true; /* the list may have grown while unlocked */
        break;
      }
      if (next < 0 || s->deadline < next)
        next = s->deadline;
    }
    if (again)
      continue;
    /* Nothing waits (a busy sender is committing its batch, say): look
     * again after one linger.ms before sleeping for good, so that the
     * sender's next batch, due later than that, need not wake us. */
    if (next >= 0)
      looked = false;
    else if (!looked) {
      next = now + (p->linger > 0 ? p->linger : 1);
      looked = true;
    }
    p->thread_wake = next < 0 ? INT64_MAX : next;
    if (next < 0) {
      pthread_cond_wait(&p->cv_work, &p->mu);
    } else {
      struct timespec ts;
      q7__deadline_ms(&ts, next - now);
      pthread_cond_timedwait(&p->cv_work, &p->mu, &ts);
    }
    p->thread_wake = INT64_MIN;
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Hand queued reports to the callback, outside the lock. */
static int
serve_reports(q7_producer *p)
{
  pthread_mutex_lock(&p->mu);
  size_t n = atomic_load(&p->n_ready);
  if (!n) {
    pthread_mutex_unlock(&p->mu);
    return 0;
  }
  report *r = p->reps;
  if (p->cb) {
    /* Swap arrays; the one swapped in must hold every record in flight. */
    size_t need = (size_t)p->inflight + 1;
    if (p->cap_spare < need) {
      size_t cap = p->cap_reps > need ? p->cap_reps : need;
      report *sp = realloc(p->spare, cap * sizeof *sp);
      if (!sp) { /* serve later; nothing is lost */
        pthread_mutex_unlock(&p->mu);
        return 0;
      }
      p->spare = sp;
      p->cap_spare = cap;
    }
    size_t cap = p->cap_reps;
    p->reps = p->spare;
    p->cap_reps = p->cap_spare;
    p->spare = r;
    p->cap_spare = cap;
  }
  atomic_store(&p->n_ready, 0);
  pthread_mutex_unlock(&p->mu);
  if (p->cb) {
    for (size_t i = 0; i < n; i++) {
      q7_delivery d = { r[i].topic, r[i].partition, r[i].offset, r[i].err, r[i].opaque };
      p->cb(&d, p->cb_arg);
    }
  }
  return (int)n;
}

int
q7_producer_new(q7 *q, const q7_conf *conf, q7_producer **out)
{
  if (!q || !out)
    return q7__err(Q7_EINVAL, "q7_producer_new: %s is NULL", !q ? "store" : "out");
  q7_producer *p = calloc(1, sizeof *p);
  if (!p)
    return q7__err(Q7_ENOMEM, "out of memory");
  p->q = q;
  if (conf) {
    p->cb = conf->dr_cb;
    p->cb_arg = conf->dr_arg;
  }
  p->linger = q7__conf_int(conf, Q7K_LINGER_MS);
  p->batch_size = q7__conf_int(conf, Q7K_BATCH_SIZE);
  p->retries = q7__conf_int(conf, Q7K_RETRIES);
  p->partitioner = q7__conf_choice(conf, Q7K_PARTITIONER);
  p->acks_all = q7__conf_choice(conf, Q7K_ACKS) <= 1; /* "all" or "-1" */
  static const int codecs[] = { Q7__CODEC_NONE, Q7__CODEC_NONE, Q7__CODEC_LZ4, Q7__CODEC_ZSTD };
  p->codec = codecs[q7__conf_choice(conf, Q7K_TOPIC_COMPRESSION)];
  int crc = q7__codec_check(q, p->codec);
  if (crc) {
    free(p);
    return crc;
  }
  p->rng = (uint64_t)q7__mono_ms() * 0x9e3779b97f4a7c15ull | 1;
  pthread_mutex_init(&p->mu, NULL);
  q7__cond_init_mono(&p->cv_work);
  q7__cond_init_mono(&p->cv_done);
  p->thread_wake = INT64_MIN; /* it scans before it first waits */
  if (pthread_create(&p->thread, NULL, linger_thread, p)) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p);
    return q7__err(Q7_ENOMEM, "producer: cannot start its thread");
  }
  q7__handle_ref(q, 1);
  *out = p;
  return Q7_OK;
}

/* Slots are found by the topic's identity, not its handle: a handle may
 * be closed and its address reused while the slot lives on. */
static slot *
find_slot(q7_producer *p, const q7_topic *t, int32_t part)
{
  for (slot *s = p->slots; s; s = s->next)
    if (s->topic_id == t->id && s->partition == part && !strcmp(s->topic, t->name))
      return s;
  return NULL;
}

static void
slot_free(slot *s)
{
  q7__batch_free(&s->b);
  q7__buf_free(&s->spare);
  q7__pe_put(s->pe);
  free(s->opaque);
  free(s->spare_opaque);
  free(s->topic);
  free(s);
}

/* Validate @m and pick its partition and timestamp; *size and *hlen are
 * its encoded size and the size of its headers. */
static int
prepare(q7_producer *p, const q7_msg *m, int32_t *part, int64_t *ts, bool sticky, size_t *size,
        size_t *hlen)
{
  if (!m || !m->topic)
    return q7__err(Q7_EINVAL, "send: %s is NULL", !m ? "message" : "message topic");
  q7_topic *t = m->topic;
  int rc;
  if (t->q != p->q)
    return q7__err(Q7_EINVAL, "send: topic %s belongs to another store", t->name);
  if ((rc = q7__record_check_fast(m)))
    return rc;
  size_t payload = m->key_len + m->value_len;
  if (m->header_count)
    payload = q7__record_payload(m);
  if (payload > (size_t)t->max_message || !(*size = q7__record_size_fast(m, hlen)))
    return q7__err(Q7_ETOOBIG, "send: record of %zu bytes exceeds message.max.bytes %" PRId64
                   " of topic %s", payload, t->max_message, t->name);
  if (m->partition == Q7_PARTITION_ANY) {
    if (p->partitioner == 2) { /* random: keys ignored (xorshift64) */
      p->rng ^= p->rng << 13;
      p->rng ^= p->rng >> 7;
      p->rng ^= p->rng << 17;
      *part = (int32_t)(p->rng % (uint64_t)t->count);
    } else if (m->key || p->partitioner == 1) /* murmur2: a NULL key hashes as empty */
      *part = q7_partition_for_key(m->key, m->key_len, t->count);
    else if (sticky) {
      *part = t->sticky % t->count;
      t->sticky_used = true;
    }
    else
      *part = (int32_t)(p->rr++ % (uint32_t)t->count);
  } else if ((rc = q7__partition_check(t, m->partition))) {
    return rc;
  } else {
    *part = m->partition;
  }
  *ts = m->timestamp_ms ? m->timestamp_ms : q7__now(p->q);
  return Q7_OK;
}

/* Kafka's sticky partitioner (KIP-480): keyless records stick to one
 * partition until its batch is committed -- full, lingered or flushed --
 * and the next batch starts on the next partition.  Called with mu held. */
static void
sticky_advance(q7_producer *p, q7_topic *t)
{
  if (!t->sticky_used)
    return;
  slot *s = find_slot(p, t, t->sticky % t->count);
  if (!s || s->b.count == 0) {
    t->sticky = (t->sticky + 1) % t->count;
    t->sticky_used = false;
  }
}

/* Validate @m and add it to its partition's batch, committing the batch
 * when full.  Called with mu held (released while a full batch commits). */
static int
send_locked(q7_producer *p, const q7_msg *m)
{
  int32_t part;
  int64_t ts;
  size_t size, hlen;
  q7__pe *pe;
  int rc;
  if (m && m->topic && !m->key && m->partition == Q7_PARTITION_ANY && p->partitioner == 0)
    sticky_advance(p, m->topic);
  if ((rc = prepare(p, m, &part, &ts, true, &size, &hlen)))
    return rc;
  if ((rc = q7__topic_pe(m->topic, part, &pe)))
    return rc;

  slot *s = p->last;
  if (!s || s->pe != pe)
    s = find_slot(p, m->topic, part);
  if (!s) {
    if (!(s = calloc(1, sizeof *s)) || q7__batch_init(&s->b) ||
        !(s->topic = strdup(m->topic->name))) {
      if (s)
        q7__batch_free(&s->b);
      free(s);
      return q7__err(Q7_ENOMEM, "producer: out of memory");
    }
    s->topic_id = m->topic->id;
    s->partition = part;
    s->pe = pe;
    s->codec = m->topic->codec >= 0 ? m->topic->codec : p->codec;
    q7__pe_hold(pe); /* the slot's own reference */
    s->next = p->slots;
    p->slots = s;
  }
  if ((rc = reserve_reports(p)))
    return rc;
  if (s->b.count == s->cap_opaque) {
    size_t cap = s->cap_opaque ? s->cap_opaque * 2 : 64;
    void **o = realloc(s->opaque, cap * sizeof *o);
    if (!o)
      return q7__err(Q7_ENOMEM, "producer: out of memory");
    s->opaque = o;
    s->cap_opaque = cap;
  }
  p->last = s;
  if ((rc = q7__batch_put(&s->b, m, ts, size, hlen)))
    return rc;
  s->opaque[s->b.count - 1] = m->opaque;
  p->inflight++;
  if (s->b.count == 1) {
    s->deadline = q7__mono_ms() + p->linger;
    if (s->deadline < p->thread_wake)
      pthread_cond_signal(&p->cv_work);
  }
  if ((int64_t)s->b.buf.len >= p->batch_size)
    commit_slot(p, s);
  return Q7_OK;
}

int
q7_producer_send(q7_producer *p, const q7_msg *m)
{
  if (!p)
    return q7__err(Q7_EINVAL, "q7_producer_send: producer is NULL");
  pthread_mutex_lock(&p->mu);
  int rc = send_locked(p, m);
  pthread_mutex_unlock(&p->mu);
  if (atomic_load_explicit(&p->n_ready, memory_order_relaxed))
    serve_reports(p);
  return rc;
}

int
q7_producer_send_batch(q7_producer *p, const q7_msg *msgs, size_t n, size_t *sent)
{
  size_t i = 0;
  int rc = Q7_OK;
  if (sent)
    *sent = 0;
  if (!p || (n && !msgs))
    return q7__err(Q7_EINVAL, "q7_producer_send_batch: %s is NULL", !p ? "producer" : "msgs");
  pthread_mutex_lock(&p->mu);
  for (; i < n; i++)
    if ((rc = send_locked(p, &msgs[i]))) {
      /* Name the record; the cause stays in the message. */
      char why[512];
      snprintf(why, sizeof why, "%s", q7_last_error());
      q7__err(rc, "send_batch: record %zu of %zu: %s", i, n, why);
      break;
    }
  pthread_mutex_unlock(&p->mu);
  if (sent)
    *sent = i;
  if (atomic_load_explicit(&p->n_ready, memory_order_relaxed))
    serve_reports(p);
  return rc;
}

int
q7_producer_send_sync(q7_producer *p, const q7_msg *m, int32_t *partition, int64_t *offset)
{
  int32_t part;
  int64_t ts, off = -1;
  q7__pe *pe;
  int rc;
  if (!p)
    return q7__err(Q7_EINVAL, "q7_producer_send_sync: producer is NULL");
  size_t size, hlen;
  if ((rc = prepare(p, m, &part, &ts, false, &size, &hlen)))
    return rc;
  if ((rc = q7__topic_pe(m->topic, part, &pe)))
    return rc;
  /* Records sent earlier to the same partition go first. */
  pthread_mutex_lock(&p->mu);
  slot *s = find_slot(p, m->topic, part);
  if (s)
    commit_slot(p, s);
  pthread_mutex_unlock(&p->mu);
  for (int64_t attempt = 0;; attempt++) {
    rc = q7__pe_commit_one(pe, m, ts, size, hlen, p->acks_all,
                           m->topic->codec >= 0 ? m->topic->codec : p->codec, &off);
    if (rc != Q7_EBUSY || attempt >= p->retries)
      break;
    struct timespec d = { 0, 1000000L << (attempt < 6 ? attempt : 6) };
    nanosleep(&d, NULL);
  }
  if (rc)
    return rc;
  if (partition)
    *partition = part;
  if (offset)
    *offset = off;
  return Q7_OK;
}

int
q7_producer_poll(q7_producer *p, int timeout_ms)
{
  if (!p)
    return q7__err(Q7_EINVAL, "q7_producer_poll: producer is NULL");
  if (timeout_ms != 0) {
    struct timespec ts;
    if (timeout_ms > 0)
      q7__deadline_ms(&ts, timeout_ms);
    pthread_mutex_lock(&p->mu);
    while (!atomic_load(&p->n_ready) && p->inflight > 0) {
      if (timeout_ms < 0)
        pthread_cond_wait(&p->cv_done, &p->mu);
      else if (pthread_cond_timedwait(&p->cv_done, &p->mu, &ts) == ETIMEDOUT)
        break;
    }
    pthread_mutex_unlock(&p->mu);
  }
  return serve_reports(p);
}

int
q7_producer_flush(q7_producer *p, int timeout_ms)
{
  if (!p)
    return q7__err(Q7_EINVAL, "q7_producer_flush: producer is NULL");
  struct timespec ts;
  int rc = Q7_OK;
  if (timeout_ms > 0)
    q7__deadline_ms(&ts, timeout_ms);
  pthread_mutex_lock(&p->mu);
  for (bool again = true; again;) {
    again = false;
    for (slot *s = p->slots; s; s = s->next) {
      if (s->b.count) { /* commit_slot first waits out a commit under way */
        commit_slot(p, s);
        again = true;
        break;
      }
    }
  }
  while (p->inflight > 0) {
    if (timeout_ms < 0) {
      pthread_cond_wait(&p->cv_done, &p->mu);
    } else if (timeout_ms == 0 ||
               pthread_cond_timedwait(&p->cv_done, &p->mu, &ts) == ETIMEDOUT) {
      if (p->inflight > 0)
        rc = q7__err(Q7_ETIMEDOUT, "flush: %" PRId64 " records still pending", p->inflight);
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  serve_reports(p);
  return rc;
}

int
q7_producer_close(q7_producer *p)
{
  if (!p)
    return Q7_OK;
  int rc = q7_producer_flush(p, -1);
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->cv_work);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  serve_reports(p);
  while (p->slots) {
    slot *s = p->slots;
    p->slots = s->next;
    slot_free(s);
  }
  q7__handle_ref(p->q, -1);
  free(p->reps);
  free(p->spare);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv_work);
  pthread_cond_destroy(&p->cv_done);
  free(p);
  return rc;
}
