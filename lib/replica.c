/* replica.c - replication to mirror directories, in process, like brokers.
 *
 * With replica.dirs set, the store has 1 + n replicas: the primary (its own
 * directory, replica 0) and n mirrors (replica 1..n), each a complete store
 * of its own, opened inside this one.  A topic of replication.factor RF
 * keeps each partition on the primary and on RF - 1 mirrors, placed
 * deterministically and spread like Kafka's assignment: partition p of the
 * topic with id t starts at mirror (t + p) mod n.
 *
 * Appends.  A batch is written to the primary and, inside the primary's
 * write transaction (so that appends to a partition stay in order across
 * processes), to every in-sync mirror of the partition with the same key
 * and the same bytes -- each mirror by its own worker thread, so that the
 * mirrors' fsyncs overlap.  With acks=all the records are delivered only if
 * at least min.insync.replicas replicas hold them; with acks=1 a
 * replication thread brings the mirrors up behind the producer.  Consumers
 * read up to the high watermark: the smallest end offset of the in-sync
 * replicas.
 *
 * In sync.  The primary's metadata table "isr" holds, per partition, the
 * mirrors that fell out of sync (an append failed: disk full, I/O error),
 * and per mirror whether it is down (its directory vanished or was
 * replaced: a watchdog checks the path every WATCH_MS, since LMDB keeps
 * writing into a deleted directory).  q7_replica_resync, and q7_open,
 * re-create a missing mirror, copy metadata and offsets, truncate what
 * diverged, copy what is missing, and put the mirror back in sync. */
#include "q7_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WATCH_MS 200
#define REPL_MS 20
#define COPY_CHUNK 256            /* batches a mirror write txn copies */

/* ----------------------------------------------------------- placement */

/* Mirror indexes (0-based) of partition @p of topic @id, RF - 1 of them. */
static int
placement(const q7 *q, uint64_t id, int32_t p, int rf, int *out)
{
  int n = q->n_mirrors, k = rf - 1 < n ? rf - 1 : n;
  for (int j = 0; j < k; j++)
    out[j] = (int)((id + (uint64_t)p + (uint64_t)j) % (uint64_t)n);
  return k;
}

int
q7__replica_load(q7__pe *pe)
{
  q7 *q = pe->q;
  q7__tmeta m;
  if (!q->n_mirrors)
    return Q7_OK;
  pthread_mutex_lock(&pe->repl_mu);
  int rc = Q7_OK;
  if (!pe->repl_loaded && !(rc = q7__tmeta_load(q, pe->topic, &m))) {
    if (m.id == pe->topic_id) {
      pe->rf = (int)q7__conf_int(m.conf, Q7K_REPLICATION_FACTOR);
      pe->n_rep = placement(q, pe->topic_id, pe->index, pe->rf, pe->rep);
      pe->repl_loaded = true;
    }
    q7__tmeta_free(&m);
  }
  pthread_mutex_unlock(&pe->repl_mu);
  return rc;
}

/* ------------------------------------------------------- in-sync state */

static size_t
pkey(unsigned char *k, const char *topic, int32_t p)
{
  size_t t = strlen(topic);
  k[0] = 'p';
  memcpy(k + 1, topic, t + 1);
  uint32_t u = (uint32_t)p;
  k[t + 2] = (unsigned char)(u >> 24);
  k[t + 3] = (unsigned char)(u >> 16);
  k[t + 4] = (unsigned char)(u >> 8);
  k[t + 5] = (unsigned char)u;
  return t + 6;
}

static void
mkey(unsigned char *k, int r)
{
  k[0] = 'm';
  k[1] = (unsigned char)r;
}

/* Bitmask of the mirrors (0-based) out of sync for a partition. */
static int
out_of_sync(q7 *q, MDB_txn *txn, const char *topic, int32_t p, uint64_t *mask)
{
  unsigned char kb[300];
  MDB_val k = { pkey(kb, topic, p), kb }, v;
  *mask = 0;
  int rc = mdb_get(txn, q->dbi_isr, &k, &v);
  if (rc == 0 && v.mv_size == 8)
    memcpy(mask, v.mv_data, 8);
  else if (rc && rc != MDB_NOTFOUND)
    return q7__mdb_err(rc, "read in-sync replicas");
  for (int r = 0; r < q->n_mirrors; r++) {
    unsigned char mk[2];
    mkey(mk, r);
    MDB_val k2 = { 2, mk };
    if (atomic_load(&q->mirrors[r].down) || mdb_get(txn, q->dbi_isr, &k2, &v) == 0)
      *mask |= 1ull << r;
  }
  return Q7_OK;
}

/* The in-sync mirrors of @pe's partition, as indexes into pe->rep, and
 * (if @min_isr) the topic's min.insync.replicas now. */
static int
insync(q7__pe *pe, bool *in, int64_t *min_isr)
{
  q7 *q = pe->q;
  MDB_txn *txn;
  uint64_t mask;
  int rc = q7__meta_begin(q, MDB_RDONLY, &txn);
  if (rc)
    return rc;
  rc = out_of_sync(q, txn, pe->topic, pe->index, &mask);
  q7__tmeta m;
  if (!rc && min_isr && q7__tmeta_get(q, txn, pe->topic, &m) == Q7_OK) {
    *min_isr = q7__conf_int(m.conf, Q7K_MIN_INSYNC); /* may be altered */
    q7__tmeta_free(&m);
  }
  mdb_txn_abort(txn);
  for (int j = 0; j < pe->n_rep; j++)
    in[j] = !rc && !(mask >> pe->rep[j] & 1) && q->mirrors[pe->rep[j]].store;
  return rc;
}

/* Mark (@out) or clear a partition's mirror @r; or the whole mirror when
 * @topic is NULL. */
static int
mark(q7 *q, const char *topic, int32_t p, int r, bool out)
{
  MDB_txn *txn;
  int rc = q7__meta_begin(q, 0, &txn);
  if (rc)
    return rc;
  unsigned char kb[300];
  MDB_val k, v;
  if (topic) {
    k.mv_size = pkey(kb, topic, p);
    k.mv_data = kb;
    uint64_t mask = 0;
    if (mdb_get(txn, q->dbi_isr, &k, &v) == 0 && v.mv_size == 8)
      memcpy(&mask, v.mv_data, 8);
    mask = out ? mask | 1ull << r : mask & ~(1ull << r);
    v.mv_size = 8;
    v.mv_data = &mask;
    rc = mask ? mdb_put(txn, q->dbi_isr, &k, &v, 0) : mdb_del(txn, q->dbi_isr, &k, NULL);
  } else {
    mkey(kb, r);
    k.mv_size = 2;
    k.mv_data = kb;
    v.mv_size = 1;
    v.mv_data = (void *)"1";
    rc = out ? mdb_put(txn, q->dbi_isr, &k, &v, 0) : mdb_del(txn, q->dbi_isr, &k, NULL);
  }
  if (rc && rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return q7__mdb_err(rc, "write in-sync replicas");
  }
  rc = mdb_txn_commit(txn);
  return rc ? q7__mdb_err(rc, "write in-sync replicas") : Q7_OK;
}

/* ------------------------------------------------------- mirror appends */

/* Hold mirror @r's store while using it: q7_replica_resync may re-open it. */
static void
use_mirror(q7 *q, int r)
{
  pthread_rwlock_rdlock(&q->mirrors[r].use);
}

static void
done_mirror(q7 *q, int r)
{
  pthread_rwlock_unlock(&q->mirrors[r].use);
}

/* The primary's own log (not lowered to the high watermark). */
static int
primary_ends(q7__pe *pe, q7__ends *e)
{
  MDB_txn *txn;
  int rc = q7__pe_read_begin(pe, &txn);
  if (rc)
    return rc;
  rc = q7__pe_ends(pe, txn, e);
  q7__pe_read_end(pe, txn);
  return rc;
}

static int
mirror_pe(q7__pe *pe, int j, q7__pe **out)
{
  q7 *m = pe->q->mirrors[pe->rep[j]].store;
  if (!m)
    return q7__err(Q7_EREPLICA, "mirror %d is not open", pe->rep[j] + 1);
  int rc = Q7_OK;
  pthread_mutex_lock(&pe->repl_mu);
  if (!pe->mpe[j])
    rc = q7__pe_get(m, pe->topic, pe->topic_id, pe->index, false, &pe->mpe[j]);
  *out = pe->mpe[j];
  pthread_mutex_unlock(&pe->repl_mu);
  return rc;
}

typedef struct copy_arg {
  q7__pe *src;                    /* the primary partition */
  MDB_val key, val;               /* the batch to append (key.mv_size 0: none) */
  int64_t upto;                   /* copy batches below this offset */
  bool diverged;
} copy_arg;

/* Inside a mirror write txn: bring the mirror up to @a->key's offset by
 * copying from the primary, then append the batch (idempotently). */
static int
mirror_append_fn(q7__pe *mpe, MDB_txn *txn, void *arg)
{
  copy_arg *a = arg;
  q7__ends e;
  int rc = q7__pe_ends(mpe, txn, &e);
  if (rc)
    return rc;
  int64_t base = a->key.mv_size ? (int64_t)q7__be64_get(a->key.mv_data) : a->upto;
  if (e.next < base) {
    /* Behind: copy the primary's committed batches [e.next, base). */
    MDB_txn *rt;
    MDB_cursor *cur;
    MDB_val k, v;
    int copied = 0;
    if ((rc = q7__pe_read_begin(a->src, &rt)))
      return rc;
    if ((rc = mdb_cursor_open(rt, a->src->log, &cur))) {
      q7__pe_read_end(a->src, rt);
      return q7__mdb_err(rc, "open cursor");
    }
    rc = q7__pe_seek(a->src, cur, e.next, &k, &v);
    while (rc == 0 && copied < (a->key.mv_size ? INT32_MAX : COPY_CHUNK)) {
      q7__bkey bk;
      if (q7__bkey_get(&k, &bk) || bk.base >= base)
        break;
      if (bk.base != e.next) { /* the primary no longer has what the mirror lacks */
        a->diverged = true;
        break;
      }
      const unsigned char *h = v.mv_data;
      uint32_t count;
      memcpy(&count, h + 8, 4);
      rc = mdb_put(txn, mpe->log, &k, &v, MDB_APPEND);
      if (rc)
        break;
      e.next = bk.base + count;
      copied++;
      rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    q7__pe_read_end(a->src, rt);
    if (rc == MDB_NOTFOUND || rc == Q7_ERANGE)
      rc = 0;
    if (rc == MDB_MAP_FULL)
      return rc;
    if (rc > 0 || rc < -100)
      return q7__mdb_err(rc, mpe->path);
    if (rc)
      return rc;
    if (a->diverged)
      return q7__err(Q7_EREPLICA, "%s: cannot catch up with the primary", mpe->path);
    if (!a->key.mv_size)
      return Q7_OK;
  }
  if (!a->key.mv_size)
    return Q7_OK;
  if (e.next > base) {
    /* Already there (another process caught this mirror up): the same bytes? */
    MDB_cursor *cur;
    MDB_val k, v;
    if ((rc = mdb_cursor_open(txn, mpe->log, &cur)))
      return q7__mdb_err(rc, "open cursor");
    rc = q7__pe_seek(mpe, cur, base, &k, &v);
    bool same = rc == 0 && k.mv_size == a->key.mv_size &&
                !memcmp(k.mv_data, a->key.mv_data, k.mv_size) && v.mv_size == a->val.mv_size &&
                !memcmp(v.mv_data, a->val.mv_data, v.mv_size);
    mdb_cursor_close(cur);
    if (!same) {
      a->diverged = true;
      return q7__err(Q7_EREPLICA, "%s: holds other records at offset %" PRId64, mpe->path,
                     base);
    }
    return Q7_ABORT_OK;
  }
  rc = mdb_put(txn, mpe->log, &a->key, &a->val, MDB_APPEND);
  if (rc == MDB_MAP_FULL)
    return rc;
  return rc ? q7__mdb_err(rc, mpe->path) : Q7_OK;
}

static int
mirror_write(q7__pe *mpe, copy_arg *a)
{
  int rc = q7__pe_write(mpe, mirror_append_fn, a);
  return rc == Q7_ABORT_OK ? Q7_OK : rc;
}

/* A job for a mirror's worker thread. */
typedef struct q7__mjob {
  struct q7__mjob *next;
  q7__pe *mpe;
  copy_arg a;
  int rc;
  bool done;
  pthread_mutex_t *mu;            /* the waiter's */
  pthread_cond_t *cv;
  int *left;
} q7__mjob;

static void *
worker(void *arg)
{
  q7__mirror *m = arg;
  pthread_mutex_lock(&m->mu);
  for (;;) {
    while (!m->head && !m->stop)
      pthread_cond_wait(&m->cv, &m->mu);
    if (!m->head && m->stop)
      break;
    q7__mjob *j = m->head;
    m->head = j->next;
    if (!m->head)
      m->tail = &m->head;
    pthread_mutex_unlock(&m->mu);
    j->rc = mirror_write(j->mpe, &j->a);
    pthread_mutex_lock(j->mu);
    j->done = true;
    if (--*j->left == 0)
      pthread_cond_broadcast(j->cv);
    pthread_mutex_unlock(j->mu);
    pthread_mutex_lock(&m->mu);
  }
  pthread_mutex_unlock(&m->mu);
  return NULL;
}

int
q7__replica_append(q7__pe *pe, bool acks_all, const MDB_val *key, const MDB_val *val,
                   q7__repl_result *res)
{
  q7 *q = pe->q;
  bool in[Q7__MAX_MIRRORS];
  int rc;
  memset(res, 0, sizeof *res);
  if (!q->n_mirrors || (rc = q7__replica_load(pe)) || pe->n_rep == 0)
    return Q7_OK;
  int64_t min_isr = 1;
  if ((rc = insync(pe, in, &min_isr)))
    return rc;
  int n_in = 1;
  for (int j = 0; j < pe->n_rep; j++)
    n_in += in[j];
  if (!acks_all) {
    res->wake = true; /* the replication thread follows */
    return Q7_OK;
  }
  if (n_in < min_isr)
    return q7__err(Q7_EREPLICA,
                   "topic %s partition %d: %d replicas in sync, min.insync.replicas is %" PRId64,
                   pe->topic, (int)pe->index, n_in, min_isr);
  q7__mjob jobs[Q7__MAX_MIRRORS];
  for (int j = 0; j < pe->n_rep; j++)
    if (in[j])
      use_mirror(q, pe->rep[j]);
  pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
  int left = 0, queued = 0;
  for (int j = 0; j < pe->n_rep; j++) {
    jobs[j] = (q7__mjob){ .rc = Q7_EREPLICA };
    if (!in[j])
      continue;
    q7__pe *mpe;
    if ((jobs[j].rc = mirror_pe(pe, j, &mpe)))
      continue;
    jobs[j].mpe = mpe;
    jobs[j].a = (copy_arg){ .src = pe, .key = *key, .val = *val };
    jobs[j].mu = &mu;
    jobs[j].cv = &cv;
    jobs[j].left = &left;
    queued++;
  }
  if (queued == 1) {
    for (int j = 0; j < pe->n_rep; j++)
      if (jobs[j].mpe)
        jobs[j].rc = mirror_write(jobs[j].mpe, &jobs[j].a);
  } else if (queued > 1) {
    left = queued;
    for (int j = 0; j < pe->n_rep; j++) {
      if (!jobs[j].mpe)
        continue;
      q7__mirror *m = &q->mirrors[pe->rep[j]];
      pthread_mutex_lock(&m->mu);
      *m->tail = &jobs[j];
      m->tail = &jobs[j].next;
      pthread_cond_signal(&m->cv);
      pthread_mutex_unlock(&m->mu);
    }
    pthread_mutex_lock(&mu);
    while (left > 0)
      pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
  }
  int held = 1;
  for (int j = 0; j < pe->n_rep; j++) {
    if (!in[j])
      continue;
    done_mirror(q, pe->rep[j]);
    if (jobs[j].rc == Q7_OK)
      held++;
    else
      res->failed |= 1ull << pe->rep[j];
  }
  if (held < min_isr)
    res->rc = q7__err(Q7_EREPLICA,
                      "topic %s partition %d: only %d replicas hold the batch, "
                      "min.insync.replicas is %" PRId64,
                      pe->topic, (int)pe->index, held, min_isr);
  return Q7_OK;
}

void
q7__replica_after(q7__pe *pe, const q7__repl_result *res)
{
  q7 *q = pe->q;
  for (int r = 0; r < q->n_mirrors; r++)
    if (res->failed >> r & 1)
      mark(q, pe->topic, pe->index, r, true);
  if (res->wake) {
    pthread_mutex_lock(&q->repl_mu);
    q->repl_pending = true;
    pthread_cond_signal(&q->repl_cv);
    pthread_mutex_unlock(&q->repl_mu);
  }
}

int
q7__replica_hw(q7__pe *pe, int64_t *hw)
{
  bool in[Q7__MAX_MIRRORS];
  int rc;
  if (!pe->q->n_mirrors || (rc = q7__replica_load(pe)) || pe->n_rep == 0)
    return Q7_OK;
  if ((rc = insync(pe, in, NULL)))
    return rc;
  for (int j = 0; j < pe->n_rep; j++) {
    q7__pe *mpe;
    int64_t ls, end;
    if (!in[j])
      continue;
    use_mirror(pe->q, pe->rep[j]);
    if (!mirror_pe(pe, j, &mpe) && !q7__pe_offsets_now(mpe, &ls, &end) && end < *hw)
      *hw = end;
    done_mirror(pe->q, pe->rep[j]);
  }
  return Q7_OK;
}

void
q7__replica_release(q7__pe *pe)
{
  for (int j = 0; j < Q7__MAX_MIRRORS; j++) {
    q7__pe_put(pe->mpe[j]);
    pe->mpe[j] = NULL;
  }
}

/* ------------------------------------------------ background threads */

/* Bring every in-sync mirror of @pe up to the primary (acks=1). */
static void
follow(q7__pe *pe)
{
  bool in[Q7__MAX_MIRRORS];
  q7__ends e;
  if (q7__replica_load(pe) || pe->n_rep == 0 || insync(pe, in, NULL) || primary_ends(pe, &e))
    return;
  for (int j = 0; j < pe->n_rep; j++) {
    q7__pe *mpe;
    int64_t mls, mend;
    if (!in[j])
      continue;
    use_mirror(pe->q, pe->rep[j]);
    if (!mirror_pe(pe, j, &mpe) && !q7__pe_offsets_now(mpe, &mls, &mend)) {
      for (int guard = 0; mend < e.next && guard < 100000; guard++) {
        copy_arg a = { .src = pe, .upto = e.next };
        if (mirror_write(mpe, &a)) {
          mark(pe->q, pe->topic, pe->index, pe->rep[j], true);
          break;
        }
        if (q7__pe_offsets_now(mpe, &mls, &mend))
          break;
      }
    }
    done_mirror(pe->q, pe->rep[j]);
  }
}

static void *
replicator(void *arg)
{
  q7 *q = arg;
  pthread_mutex_lock(&q->repl_mu);
  while (!q->repl_stop) {
    struct timespec ts;
    q7__deadline_ms(&ts, REPL_MS);
    while (!q->repl_stop && !q->repl_pending &&
           pthread_cond_timedwait(&q->repl_cv, &q->repl_mu, &ts) != ETIMEDOUT)
      ;
    if (q->repl_stop)
      break;
    q->repl_pending = false;
    pthread_mutex_unlock(&q->repl_mu);
    /* The open partitions of this process: those its producers write. */
    q7__pe *list[256];
    int n = 0;
    pthread_mutex_lock(&q->lock);
    for (q7__pe *pe = q->parts; pe && n < 256; pe = pe->next) {
      q7__pe_hold_locked(pe); /* an idle one too: not counted idle twice */
      list[n++] = pe;
    }
    pthread_mutex_unlock(&q->lock);
    for (int i = 0; i < n; i++) {
      follow(list[i]);
      q7__pe_put(list[i]);
    }
    pthread_mutex_lock(&q->repl_mu);
  }
  pthread_mutex_unlock(&q->repl_mu);
  return NULL;
}

/* A mirror is down when its directory is gone, replaced, or not one. */
static void *
watchdog(void *arg)
{
  q7 *q = arg;
  pthread_mutex_lock(&q->repl_mu);
  while (!q->repl_stop) {
    struct timespec ts;
    q7__deadline_ms(&ts, WATCH_MS);
    while (!q->repl_stop && pthread_cond_timedwait(&q->watch_cv, &q->repl_mu, &ts) != ETIMEDOUT)
      ;
    if (q->repl_stop)
      break;
    pthread_mutex_unlock(&q->repl_mu);
    for (int r = 0; r < q->n_mirrors; r++) {
      q7__mirror *m = &q->mirrors[r];
      struct stat st;
      char meta[4200];
      snprintf(meta, sizeof meta, "%s/meta/data.mdb", m->dir);
      use_mirror(q, r);
      bool ok = m->store && stat(m->dir, &st) == 0 && S_ISDIR(st.st_mode) &&
                st.st_dev == m->dev && st.st_ino == m->ino && access(meta, W_OK) == 0;
      done_mirror(q, r);
      if (!ok && !atomic_load(&m->down)) {
        atomic_store(&m->down, 1);
        mark(q, NULL, 0, r, true);
      }
    }
    pthread_mutex_lock(&q->repl_mu);
  }
  pthread_mutex_unlock(&q->repl_mu);
  return NULL;
}

/* ---------------------------------------------------- metadata copies */

typedef struct meta_ctx {
  q7 *q, *m;
  int rc;
} meta_ctx;

static int
ensure_topic(const char *name, int32_t partitions, void *arg)
{
  meta_ctx *c = arg;
  MDB_txn *txn;
  q7__tmeta pm, mm;
  int rc;
  (void)partitions;
  if ((rc = q7__meta_begin(c->q, MDB_RDONLY, &txn)))
    return rc;
  rc = q7__tmeta_get(c->q, txn, name, &pm);
  mdb_txn_abort(txn);
  if (rc)
    return rc == Q7_ENOENT ? Q7_OK : rc;
  if ((rc = q7__meta_begin(c->m, MDB_RDONLY, &txn))) {
    q7__tmeta_free(&pm);
    return rc;
  }
  int have = q7__tmeta_get(c->m, txn, name, &mm);
  mdb_txn_abort(txn);
  if (have == Q7_OK && (mm.id != pm.id || mm.partitions != pm.partitions)) {
    q7__tmeta_free(&mm);
    q7__pe_drop_idle(c->m, name);
    if ((rc = q7_topic_delete(c->m, name)) && rc != Q7_ENOENT) {
      q7__tmeta_free(&pm);
      return rc;
    }
    have = Q7_ENOENT;
  } else if (have == Q7_OK) {
    q7__tmeta_free(&mm);
  }
  if (have == Q7_ENOENT)
    rc = q7__topic_create_id(c->m, name, pm.partitions, pm.conf, pm.id);
  else if (have == Q7_OK)
    rc = q7__topic_put_conf(c->m, name, pm.conf);
  else
    rc = have;
  q7__tmeta_free(&pm);
  return rc;
}

typedef struct name_list {
  char **v;
  size_t n;
} name_list;

static int
collect(const char *name, int32_t partitions, void *arg)
{
  name_list *l = arg;
  (void)partitions;
  char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
  if (!nv)
    return Q7_ENOMEM;
  l->v = nv;
  if (!(l->v[l->n] = strdup(name)))
    return Q7_ENOMEM;
  l->n++;
  return 0;
}

/* Topics and committed offsets of mirror @r made equal to the primary's. */
static int
sync_meta(q7 *q, int r)
{
  q7 *m = q->mirrors[r].store;
  meta_ctx c = { q, m, 0 };
  name_list mine = { 0 };
  int rc = q7_topic_foreach(q, ensure_topic, &c);
  if (rc)
    return rc;
  /* Topics the primary no longer has. */
  if ((rc = q7_topic_foreach(m, collect, &mine)))
    goto out;
  for (size_t i = 0; i < mine.n && !rc; i++) {
    MDB_txn *txn;
    q7__tmeta tm;
    if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
      break;
    int e = q7__tmeta_get(q, txn, mine.v[i], &tm);
    mdb_txn_abort(txn);
    if (e == Q7_OK) {
      q7__tmeta_free(&tm);
    } else if (e == Q7_ENOENT) {
      q7__pe_drop_idle(m, mine.v[i]);
      rc = q7_topic_delete(m, mine.v[i]);
      if (rc == Q7_ENOENT)
        rc = Q7_OK;
    } else {
      rc = e;
    }
  }
  if (rc)
    goto out;
  rc = q7__replica_copy_offsets(q, r, NULL, 0);
out:
  for (size_t i = 0; i < mine.n; i++)
    free(mine.v[i]);
  free(mine.v);
  return rc;
}

static int copy_offsets_to(q7 *q, q7 *m, const MDB_val *keys, size_t n);

int
q7__replica_copy_offsets(q7 *q, int only, const MDB_val *keys, size_t n)
{
  int rc = Q7_OK;
  for (int r = 0; r < q->n_mirrors; r++) {
    if (only >= 0 && r != only)
      continue;
    if (only < 0)
      use_mirror(q, r);
    q7 *m = q->mirrors[r].store;
    if (!m || (only < 0 && atomic_load(&q->mirrors[r].down))) {
      if (only < 0)
        done_mirror(q, r);
      continue;
    }
    rc = copy_offsets_to(q, m, keys, n);
    if (only < 0)
      done_mirror(q, r);
    if (rc)
      return rc;
  }
  return Q7_OK;
}

static int
copy_offsets_to(q7 *q, q7 *m, const MDB_val *keys, size_t n)
{
  MDB_txn *pt, *mt;
  int rc;
  {
    if ((rc = q7__meta_begin(q, MDB_RDONLY, &pt)))
      return rc;
    if ((rc = q7__meta_begin(m, 0, &mt))) {
      mdb_txn_abort(pt);
      return rc;
    }
    MDB_val k, v;
    if (keys) {
      for (size_t i = 0; i < n && !rc; i++) {
        k = keys[i];
        if ((rc = mdb_get(pt, q->dbi_offsets, &k, &v)) == 0)
          rc = mdb_put(mt, m->dbi_offsets, &k, &v, 0);
      }
    } else {
      /* All of them: drop the mirror's, copy the primary's. */
      rc = mdb_drop(mt, m->dbi_offsets, 0);
      MDB_cursor *cur;
      if (!rc && !(rc = mdb_cursor_open(pt, q->dbi_offsets, &cur))) {
        for (int e = mdb_cursor_get(cur, &k, &v, MDB_FIRST); e == 0 && !rc;
             e = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
          rc = mdb_put(mt, m->dbi_offsets, &k, &v, 0);
        mdb_cursor_close(cur);
      }
    }
    mdb_txn_abort(pt);
    if (rc && rc != MDB_NOTFOUND) {
      mdb_txn_abort(mt);
      return q7__mdb_err(rc, "copy offsets to a mirror");
    }
    if ((rc = mdb_txn_commit(mt)))
      return q7__mdb_err(rc, "copy offsets to a mirror");
  }
  return Q7_OK;
}

int
q7__replica_sync_meta(q7 *q)
{
  int rc = Q7_OK;
  for (int r = 0; r < q->n_mirrors && !rc; r++) {
    use_mirror(q, r);
    if (q->mirrors[r].store && !atomic_load(&q->mirrors[r].down))
      rc = sync_meta(q, r);
    done_mirror(q, r);
  }
  return rc;
}

/* ------------------------------------------------------------ resync */

typedef struct cut_arg {
  int64_t from;                   /* drop batches with base >= from */
  int64_t log_start;              /* >= 0: also set the log start */
} cut_arg;

static int
cut_fn(q7__pe *mpe, MDB_txn *txn, void *arg)
{
  cut_arg *c = arg;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = mdb_cursor_open(txn, mpe->log, &cur);
  if (rc)
    return q7__mdb_err(rc, mpe->path);
  while ((rc = mdb_cursor_get(cur, &k, &v, MDB_LAST)) == 0) {
    q7__bkey bk;
    if (q7__bkey_get(&k, &bk) || bk.base < c->from)
      break;
    if ((rc = mdb_cursor_del(cur, 0)))
      break;
  }
  mdb_cursor_close(cur);
  if (rc == MDB_MAP_FULL)
    return rc;
  if (rc && rc != MDB_NOTFOUND)
    return q7__mdb_err(rc, mpe->path);
  return c->log_start >= 0 ? q7__pe_set_log_start(mpe, txn, c->log_start) : Q7_OK;
}

/* Is the mirror's batch (@k, @v) on the primary with the same key and bytes? */
static bool
same_on_primary(MDB_cursor *pc, const MDB_val *k, const MDB_val *v)
{
  MDB_val pk = *k, pv;
  return mdb_cursor_get(pc, &pk, &pv, MDB_SET) == 0 && pv.mv_size == v->mv_size &&
         !memcmp(pv.mv_data, v->mv_data, v->mv_size);
}

/* Where the mirror stops agreeing with the primary: *from, the first batch
 * to discard (the mirror's end when nothing is), and *reset when the
 * mirror's log start must move to the primary's.  @full compares every
 * batch the two share; otherwise, for a mirror that was in sync, only the
 * tail a crash can leave (batches the primary never committed). */
static int
divergence(q7__pe *pe, q7__pe *mpe, bool full, int64_t *from, int64_t *reset)
{
  MDB_txn *mt, *pt;
  MDB_cursor *mc = NULL, *pc = NULL;
  MDB_val k, v;
  q7__ends me, pe_e;
  int rc;
  *reset = -1;
  if ((rc = q7__pe_read_begin(mpe, &mt)))
    return rc;
  if ((rc = q7__pe_read_begin(pe, &pt))) {
    q7__pe_read_end(mpe, mt);
    return rc;
  }
  if ((rc = q7__pe_ends(mpe, mt, &me)) || (rc = q7__pe_ends(pe, pt, &pe_e)))
    goto out;
  *from = me.next;
  if (me.next < pe_e.log_start || me.empty) {
    /* Everything it has is older than what the primary keeps (or it has
     * nothing): start where the primary starts. */
    *from = me.empty ? me.next : INT64_MIN;
    if (me.next < pe_e.log_start || me.next > pe_e.next)
      *reset = pe_e.log_start, *from = INT64_MIN;
    goto out;
  }
  if ((rc = mdb_cursor_open(mt, mpe->log, &mc)) || (rc = mdb_cursor_open(pt, pe->log, &pc))) {
    rc = q7__mdb_err(rc, "open cursor");
    goto out;
  }
  if (full) {
    int64_t start = me.log_start > pe_e.log_start ? me.log_start : pe_e.log_start;
    int e = q7__pe_seek(mpe, mc, start, &k, &v) ? MDB_NOTFOUND : 0;
    for (; e == 0; e = mdb_cursor_get(mc, &k, &v, MDB_NEXT)) {
      q7__bkey bk;
      if (q7__bkey_get(&k, &bk))
        break;
      if (bk.base < pe_e.log_start)
        continue; /* the primary no longer has it: nothing to compare */
      if (!same_on_primary(pc, &k, &v)) {
        *from = bk.base;
        break;
      }
    }
  } else {
    for (int e = mdb_cursor_get(mc, &k, &v, MDB_LAST); e == 0;
         e = mdb_cursor_get(mc, &k, &v, MDB_PREV)) {
      q7__bkey bk;
      if (q7__bkey_get(&k, &bk) || bk.base < pe_e.log_start || same_on_primary(pc, &k, &v))
        break;
      *from = bk.base;
    }
  }
out:
  if (mc)
    mdb_cursor_close(mc);
  if (pc)
    mdb_cursor_close(pc);
  q7__pe_read_end(pe, pt);
  q7__pe_read_end(mpe, mt);
  return rc;
}

typedef struct final_arg {
  q7__pe *mpe;
  int rc;
} final_arg;

/* Under the primary's writer lock: copy what is left. */
static int
final_fn(q7__pe *pe, MDB_txn *txn, void *arg)
{
  final_arg *f = arg;
  q7__ends e;
  int rc = q7__pe_ends(pe, txn, &e);
  if (rc)
    return rc;
  for (;;) {
    int64_t mls, mend;
    if ((rc = q7__pe_offsets_now(f->mpe, &mls, &mend)) || mend >= e.next)
      break;
    copy_arg a = { .src = pe, .upto = e.next };
    if ((rc = mirror_write(f->mpe, &a)))
      break;
  }
  f->rc = rc;
  return Q7_ABORT_OK; /* nothing to commit on the primary */
}

static int
resync_partition(q7__pe *pe, int j, bool full)
{
  q7__pe *mpe;
  int rc = mirror_pe(pe, j, &mpe);
  if (rc)
    return rc;
  /* Cut only what diverged, in one transaction: a crash mid-repair leaves
   * a mirror that still holds every batch it shares with the primary. */
  int64_t from = INT64_MAX, reset = -1;
  if ((rc = divergence(pe, mpe, full, &from, &reset)))
    return rc;
  int64_t mls, mend;
  if ((rc = q7__pe_offsets_now(mpe, &mls, &mend)))
    return rc;
  if (from < mend || reset >= 0) {
    cut_arg c = { from, reset };
    if ((rc = q7__pe_write(mpe, cut_fn, &c)))
      return rc;
  }
  q7__ends pe_e;
  if ((rc = primary_ends(pe, &pe_e)))
    return rc;
  int64_t end = pe_e.next;
  /* Bulk copy without the primary's lock, then the rest under it. */
  for (int i = 0; i < 1000000; i++) {
    int64_t mls, me;
    if ((rc = q7__pe_offsets_now(mpe, &mls, &me)) || me >= end)
      break;
    copy_arg a = { .src = pe, .upto = end };
    if ((rc = mirror_write(mpe, &a)))
      return rc;
  }
  if (rc)
    return rc;
  final_arg f = { mpe, 0 };
  rc = q7__pe_write(pe, final_fn, &f);
  if (rc == Q7_ABORT_OK)
    rc = f.rc;
  if (rc)
    return rc;
  return mark(pe->q, pe->topic, pe->index, pe->rep[j], false);
}

typedef struct resync_ctx {
  q7 *q;
  int r;
  bool full;
} resync_ctx;

static int
resync_topic(const char *name, int32_t partitions, void *arg)
{
  resync_ctx *c = arg;
  q7 *q = c->q;
  q7__tmeta m;
  int rc;
  rc = q7__tmeta_load(q, name, &m);
  if (rc)
    return rc == Q7_ENOENT ? Q7_OK : rc;
  for (int32_t p = 0; p < partitions && !rc; p++) {
    q7__pe *pe;
    if ((rc = q7__pe_get(q, name, m.id, p, false, &pe)))
      break;
    if (!(rc = q7__replica_load(pe)))
      for (int j = 0; j < pe->n_rep && !rc; j++) {
        if (pe->rep[j] != c->r)
          continue;
        MDB_txn *t2;
        uint64_t mask = ~0ull;
        if (!q7__meta_begin(q, MDB_RDONLY, &t2)) {
          out_of_sync(q, t2, name, p, &mask);
          mdb_txn_abort(t2);
        }
        /* A mirror that was out of sync is compared in full. */
        rc = resync_partition(pe, j, c->full || (mask >> c->r & 1));
      }
    q7__pe_put(pe);
  }
  q7__tmeta_free(&m);
  return rc;
}

/* Open (or re-open) mirror @r's store, making its directory if missing.
 * A store still at the same directory is kept. */
static int
mirror_open(q7 *q, int r)
{
  q7__mirror *m = &q->mirrors[r];
  struct stat st;
  char meta[4200];
  snprintf(meta, sizeof meta, "%s/meta/data.mdb", m->dir);
  if (m->store && stat(m->dir, &st) == 0 && st.st_dev == m->dev && st.st_ino == m->ino &&
      access(meta, W_OK) == 0)
    return Q7_OK;
  pthread_rwlock_wrlock(&m->use);
  int rc = Q7_OK;
  if (m->store) {
    /* Release every partition's handle on the old store first. */
    pthread_mutex_lock(&q->lock);
    for (q7__pe *pe = q->parts; pe; pe = pe->next)
      for (int j = 0; j < pe->n_rep; j++)
        if (pe->rep[j] == r && pe->mpe[j]) {
          q7__pe *x = pe->mpe[j];
          pe->mpe[j] = NULL;
          pthread_mutex_unlock(&q->lock);
          q7__pe_put(x);
          pthread_mutex_lock(&q->lock);
        }
    pthread_mutex_unlock(&q->lock);
    if ((rc = q7_close(m->store)))
      goto out;
    m->store = NULL;
  }
  q7_conf *c;
  if ((rc = q7_conf_dup(q->conf, &c)))
    goto out;
  q7_conf_set(c, "replica.dirs", "");
  q7_conf_set(c, "retention.check.interval.ms", "0");
  rc = q7__open_mirror(&m->store, m->dir, c);
  q7_conf_destroy(c);
  if (rc) {
    char why[512];
    snprintf(why, sizeof why, "%s", q7_last_error());
    rc = q7__err(rc, "mirror %d (%s): %s", r + 1, m->dir, why);
    goto out;
  }
  if (stat(m->dir, &st) < 0) {
    rc = q7__err(Q7_EIO, "mirror %d: %s: %s", r + 1, m->dir, strerror(errno));
    goto out;
  }
  m->dev = st.st_dev;
  m->ino = st.st_ino;
out:
  pthread_rwlock_unlock(&m->use);
  return rc;
}

static int
resync(q7 *q, int r)
{
  bool was_down = atomic_load(&q->mirrors[r].down) || !q->mirrors[r].store;
  int rc = mirror_open(q, r);
  if (rc)
    return rc;
  use_mirror(q, r);
  if (!(rc = sync_meta(q, r))) {
    resync_ctx c = { q, r, was_down };
    rc = q7_topic_foreach(q, resync_topic, &c);
  }
  done_mirror(q, r);
  if (rc)
    return rc;
  atomic_store(&q->mirrors[r].down, 0);
  return mark(q, NULL, 0, r, false);
}

int
q7_replica_resync(q7 *q, int replica)
{
  if (!q)
    return q7__err(Q7_EINVAL, "q7_replica_resync: store is NULL");
  if (replica < 1 || replica > q->n_mirrors)
    return q7__err(replica < 0 ? Q7_EINVAL : Q7_ENOENT,
                   "q7_replica_resync: replica %d: the store has mirrors 1 to %d", replica,
                   q->n_mirrors);
  pthread_mutex_lock(&q->resync_mu);
  int rc = resync(q, replica - 1);
  pthread_mutex_unlock(&q->resync_mu);
  return rc;
}

/* ------------------------------------------------------ status, verify */

static int
partition_of(q7 *q, const char *topic, int32_t partition, q7__pe **out)
{
  q7__tmeta m;
  int rc;
  if ((rc = q7__name_check(topic)))
    return rc;
  if (partition < 0)
    return q7__err(Q7_EINVAL, "negative partition %d", (int)partition);
  rc = q7__tmeta_load(q, topic, &m);
  if (rc)
    return rc;
  if (partition >= m.partitions)
    rc = q7__err(Q7_ENOENT, "topic %s has %d partitions; no partition %d", topic,
                 (int)m.partitions, (int)partition);
  else
    rc = q7__pe_get(q, topic, m.id, partition, false, out);
  q7__tmeta_free(&m);
  if (!rc && (rc = q7__replica_load(*out))) {
    q7__pe_put(*out);
    return rc;
  }
  return rc;
}

static int
replica_slot(q7__pe *pe, int replica)
{
  for (int j = 0; j < pe->n_rep; j++)
    if (pe->rep[j] == replica - 1)
      return j;
  return -1;
}

int
q7_replica_count(const q7 *q)
{
  return q ? 1 + q->n_mirrors : q7__err(Q7_EINVAL, "q7_replica_count: store is NULL");
}

int
q7_replica_status(q7 *q, const char *topic, int32_t partition, int replica, int64_t *end_offset,
                  int *in_sync)
{
  q7__pe *pe;
  int rc;
  if (!q)
    return q7__err(Q7_EINVAL, "q7_replica_status: store is NULL");
  if (replica < 0 || replica > q->n_mirrors)
    return q7__err(replica < 0 ? Q7_EINVAL : Q7_ENOENT,
                   "q7_replica_status: replica %d: the store has replicas 0 to %d", replica,
                   q->n_mirrors);
  if ((rc = partition_of(q, topic, partition, &pe)))
    return rc;
  int64_t ls, end = -1;
  int sync = 0;
  if (replica == 0) {
    q7__ends e; /* the primary's own end, not the high watermark */
    if (!(rc = primary_ends(pe, &e)))
      end = e.next;
    sync = 1;
  } else {
    int j = replica_slot(pe, replica);
    bool in[Q7__MAX_MIRRORS];
    q7__pe *mpe;
    if (j < 0)
      rc = q7__err(Q7_ENOENT, "replica %d holds no copy of topic %s partition %d", replica,
                   topic, (int)partition);
    else if (!(rc = insync(pe, in, NULL))) {
      sync = in[j];
      use_mirror(q, replica - 1);
      if (mirror_pe(pe, j, &mpe) || q7__pe_offsets_now(mpe, &ls, &end))
        end = -1, sync = 0;
      done_mirror(q, replica - 1);
    }
  }
  q7__pe_put(pe);
  if (!rc) {
    if (end_offset)
      *end_offset = end;
    if (in_sync)
      *in_sync = sync;
  }
  return rc;
}

int
q7_replica_verify(q7 *q, const char *topic, int32_t partition, int replica)
{
  q7__pe *pe, *mpe;
  int rc;
  if (!q)
    return q7__err(Q7_EINVAL, "q7_replica_verify: store is NULL");
  if (replica < 1 || replica > q->n_mirrors)
    return q7__err(replica < 1 ? Q7_EINVAL : Q7_ENOENT,
                   "q7_replica_verify: replica %d: the store has mirrors 1 to %d", replica,
                   q->n_mirrors);
  if ((rc = partition_of(q, topic, partition, &pe)))
    return rc;
  int j = replica_slot(pe, replica);
  if (j < 0) {
    q7__pe_put(pe);
    return q7__err(Q7_ENOENT, "replica %d holds no copy of topic %s partition %d", replica,
                   topic, (int)partition);
  }
  use_mirror(q, replica - 1);
  if ((rc = mirror_pe(pe, j, &mpe))) {
    done_mirror(q, replica - 1);
    q7__pe_put(pe);
    return rc;
  }
  int64_t ls, hw;
  MDB_txn *pt = NULL, *mt = NULL;
  if ((rc = q7__pe_offsets_now(pe, &ls, &hw)) || (rc = q7__replica_hw(pe, &hw)) ||
      (rc = q7__pe_read_begin(pe, &pt)))
    goto out;
  if ((rc = q7__pe_read_begin(mpe, &mt))) {
    mt = NULL;
    goto out;
  }
  /* Record by record, from the later of the two log starts up to hw. */
  q7__ends me;
  if ((rc = q7__pe_ends(mpe, mt, &me)))
    goto out;
  int64_t off = ls > me.log_start ? ls : me.log_start;
  if (me.next < hw) {
    rc = q7__err(Q7_ECORRUPT, "replica %d of topic %s partition %d ends at %" PRId64
                 ", below the high watermark %" PRId64, replica, topic, (int)partition,
                 me.next, hw);
    goto out;
  }
  q7_record a[256], b[256];
  q7__arena aa = { 0 }, ab = { 0 };
  q7__seen sa = { 0 }, sb = { 0 }; /* each batch checked once */
  while (off < hw) {
    size_t want = hw - off < 256 ? (size_t)(hw - off) : 256;
    q7__arena_reset(&aa);
    q7__arena_reset(&ab);
    int na = q7__pe_read(pe, pt, off, a, want, &aa, &sa),
        nb = q7__pe_read(mpe, mt, off, b, want, &ab, &sb);
    if (na < 0 || nb < 0) {
      rc = na < 0 ? na : q7__err(Q7_ECORRUPT, "replica %d of topic %s partition %d: %s",
                                 replica, topic, (int)partition, q7_last_error());
      goto out;
    }
    int n = na < nb ? na : nb;
    for (int i = 0; i < n; i++) {
      bool same = a[i].offset == b[i].offset && a[i].timestamp_ms == b[i].timestamp_ms &&
                  a[i].key_len == b[i].key_len && a[i].value_len == b[i].value_len &&
                  a[i].headers_len == b[i].headers_len && !a[i].key == !b[i].key &&
                  !a[i].value == !b[i].value &&
                  (!a[i].key_len || !memcmp(a[i].key, b[i].key, a[i].key_len)) &&
                  (!a[i].value_len || !memcmp(a[i].value, b[i].value, a[i].value_len)) &&
                  (!a[i].headers_len || !memcmp(a[i].headers, b[i].headers, a[i].headers_len));
      if (!same) {
        rc = q7__err(Q7_ECORRUPT,
                     "replica %d of topic %s partition %d differs from the primary at offset "
                     "%" PRId64, replica, topic, (int)partition, a[i].offset);
        goto out;
      }
    }
    if (n == 0 || na != nb) {
      rc = q7__err(Q7_ECORRUPT, "replica %d of topic %s partition %d differs from the primary "
                   "at offset %" PRId64, replica, topic, (int)partition, off + n);
      goto out;
    }
    off += n;
  }
  q7__arena_free(&aa);
  q7__arena_free(&ab);
out:
  if (mt)
    q7__pe_read_end(mpe, mt);
  if (pt)
    q7__pe_read_end(pe, pt);
  done_mirror(q, replica - 1);
  q7__pe_put(pe);
  return rc;
}

/* -------------------------------------------------------- open, close */

int
q7__replica_open(q7 *q)
{
  const char *dirs = q7__conf_str(q->conf, Q7K_REPLICA_DIRS);
  int rc;
  pthread_mutex_init(&q->repl_mu, NULL);
  pthread_mutex_init(&q->resync_mu, NULL);
  q7__cond_init_mono(&q->repl_cv);
  q7__cond_init_mono(&q->watch_cv);
  q->repl_init = true;
  if (!*dirs)
    return Q7_OK;
  char *copy = strdup(dirs), *save = NULL;
  if (!copy)
    return q7__err(Q7_ENOMEM, "out of memory");
  for (char *d = strtok_r(copy, ",", &save); d; d = strtok_r(NULL, ",", &save)) {
    while (*d == ' ')
      d++;
    if (!*d)
      continue;
    if (q->n_mirrors == Q7__MAX_MIRRORS) {
      free(copy);
      return q7__err(Q7_EINVAL, "replica.dirs: at most %d mirrors", Q7__MAX_MIRRORS);
    }
    q7__mirror *m = &q->mirrors[q->n_mirrors];
    memset(m, 0, sizeof *m);
    if (!(m->dir = strdup(d))) {
      free(copy);
      return q7__err(Q7_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    pthread_rwlock_init(&m->use, NULL);
    m->tail = &m->head;
    q->n_mirrors++;
  }
  free(copy);
  for (int r = 0; r < q->n_mirrors; r++) {
    char a[4096], b[4096];
    if (realpath(q->mirrors[r].dir, a) && realpath(q->dir, b) && !strcmp(a, b))
      return q7__err(Q7_EINVAL, "replica.dirs: mirror %d is the store's own directory", r + 1);
  }
  /* Open each mirror and catch it up; one that cannot be opened starts out
   * of sync (q7_replica_resync brings it back). */
  for (int r = 0; r < q->n_mirrors; r++) {
    pthread_mutex_lock(&q->resync_mu);
    rc = resync(q, r);
    pthread_mutex_unlock(&q->resync_mu);
    if (rc) {
      atomic_store(&q->mirrors[r].down, 1);
      mark(q, NULL, 0, r, true);
    }
  }
  for (int r = 0; r < q->n_mirrors; r++) {
    if (pthread_create(&q->mirrors[r].worker, NULL, worker, &q->mirrors[r]))
      return q7__err(Q7_ENOMEM, "cannot start a replica thread");
    q->mirrors[r].worker_on = true;
  }
  if (pthread_create(&q->repl_thread, NULL, replicator, q))
    return q7__err(Q7_ENOMEM, "cannot start the replication thread");
  q->repl_on = true;
  if (pthread_create(&q->watch_thread, NULL, watchdog, q))
    return q7__err(Q7_ENOMEM, "cannot start the replica watchdog");
  q->watch_on = true;
  return Q7_OK;
}

void
q7__replica_close(q7 *q)
{
  if (!q->repl_init)
    return;
  pthread_mutex_lock(&q->repl_mu);
  q->repl_stop = true;
  pthread_cond_broadcast(&q->repl_cv);
  pthread_cond_broadcast(&q->watch_cv);
  pthread_mutex_unlock(&q->repl_mu);
  if (q->repl_on)
    pthread_join(q->repl_thread, NULL);
  if (q->watch_on)
    pthread_join(q->watch_thread, NULL);
  for (int r = 0; r < q->n_mirrors; r++) {
    q7__mirror *m = &q->mirrors[r];
    if (m->worker_on) {
      pthread_mutex_lock(&m->mu);
      m->stop = true;
      pthread_cond_signal(&m->cv);
      pthread_mutex_unlock(&m->mu);
      pthread_join(m->worker, NULL);
    }
  }
  /* Partition handles on the mirrors go before the mirrors. */
  for (q7__pe *pe = q->parts; pe; pe = pe->next)
    q7__replica_release(pe);
  for (int r = 0; r < q->n_mirrors; r++) {
    q7__mirror *m = &q->mirrors[r];
    q7_close(m->store);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    pthread_rwlock_destroy(&m->use);
    free(m->dir);
  }
  q->n_mirrors = 0;
  pthread_mutex_destroy(&q->repl_mu);
  pthread_mutex_destroy(&q->resync_mu);
  pthread_cond_destroy(&q->repl_cv);
  pthread_cond_destroy(&q->watch_cv);
  q->repl_init = false;
}

int
q7__replica_sweep(q7 *q, int64_t now)
{
  int rc = Q7_OK;
  for (int r = 0; r < q->n_mirrors && !rc; r++) {
    use_mirror(q, r);
    if (q->mirrors[r].store && !atomic_load(&q->mirrors[r].down))
      rc = q7_retention_sweep(q->mirrors[r].store, now, NULL);
    done_mirror(q, r);
  }
  return rc;
}
