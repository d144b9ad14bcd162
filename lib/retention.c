/* retention.c - retention sweeps (retention.ms, retention.bytes), lookup by
 * timestamp, and the store's background sweeper.
 *
 * A sweep first finds, in a read transaction, the new log start of a
 * partition: past the longest prefix of records that must go, stopping at
 * the first that stays (exact to the record, as Kafka stops at the first
 * segment it keeps).  The work is proportional to the records removed: time
 * rules skip whole batches by their max timestamp, size rules by their byte
 * position in the key.  Then it publishes the new log start and deletes the
 * batches wholly below it, DELETE_CHUNK records per write transaction, so a
 * producer on the partition never waits for more than one short
 * transaction. */
#include "q7_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define DELETE_CHUNK 4096

/* First offset >= @from whose record satisfies keep(ts, abs_pos) — or the
 * log end.  Walks batch by batch from the one holding @from. */
typedef struct scan {
  int64_t cutoff_ts;              /* time rule: keep ts >= cutoff */
  int64_t min_pos;                /* size rule: keep abs pos >= min_pos */
  bool by_time;
} scan;

static int
find_first_kept(q7__pe *pe, MDB_txn *txn, const q7__ends *e, const scan *sc, int64_t *out)
{
  MDB_cursor *cur;
  MDB_val k, v;
  int64_t from = e->log_start;
  int rc;

  q7__arena arena = { 0 };
  *out = e->next;
  if (from >= e->next)
    return Q7_OK;
  if ((rc = mdb_cursor_open(txn, pe->log, &cur)))
    return q7__mdb_err(rc, "open cursor");
  rc = q7__pe_seek(pe, cur, from, &k, &v);
  while (rc == 0) {
    q7__arena_reset(&arena);
    q7__bkey bk;
    q7__bview bv;
    if (q7__bkey_get(&k, &bk) ||
        q7__batch_open(&bv, v.mv_data, v.mv_size, bk.base, false, pe->path)) {
      rc = q7__err(Q7_ECORRUPT, "topic %s partition %d: malformed batch during sweep",
                   pe->topic, (int)pe->index);
      break;
    }
    bool all_go = sc->by_time ? bv.max_ts < sc->cutoff_ts
                              : bk.pos + (int64_t)v.mv_size <= sc->min_pos;
    if (!all_go && (rc = q7__batch_inflate(pe->q, &bv, &arena, pe->path, bk.base)))
      break;
    if (!all_go) {
      q7__riter it = { &bv, Q7__BATCH_HDR, 0 };
      int64_t ts;
      size_t pos;
      int r;
      for (int64_t off = bk.base; (r = q7__riter_next(&it, &ts, &pos)) == 1; off++) {
        if (off < from)
          continue;
        bool keep = sc->by_time ? ts >= sc->cutoff_ts : bk.pos + (int64_t)pos >= sc->min_pos;
        if (keep) {
          *out = off;
          mdb_cursor_close(cur);
          q7__arena_free(&arena);
          return Q7_OK;
        }
      }
      if (r < 0) {
        rc = q7__err(Q7_ECORRUPT, "topic %s partition %d: batch at offset %" PRId64
                     " has a malformed record", pe->topic, (int)pe->index, bk.base);
        break;
      }
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
  }
  mdb_cursor_close(cur);
  q7__arena_free(&arena);
  if (rc == MDB_NOTFOUND)
    return Q7_OK;
  return rc > 0 || rc < -100 ? q7__mdb_err(rc, pe->path) : rc;
}

typedef struct del_arg {
  int64_t target;                 /* new log start */
  int64_t deleted;                /* records in batches deleted by this txn */
  bool more;                      /* batches below target remain */
} del_arg;

static int
delete_fn(q7__pe *pe, MDB_txn *txn, void *arg)
{
  del_arg *a = arg;
  q7__ends e;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = q7__pe_ends(pe, txn, &e);
  if (rc)
    return rc;
  if (a->target > e.log_start && (rc = q7__pe_set_log_start(pe, txn, a->target)))
    return rc;
  int64_t below = a->target > e.log_start ? a->target : e.log_start;
  a->deleted = 0;
  a->more = false;
  if ((rc = mdb_cursor_open(txn, pe->log, &cur)))
    return q7__mdb_err(rc, "open cursor");
  while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
    q7__bkey bk;
    if (q7__bkey_get(&k, &bk) || v.mv_size < Q7__BATCH_HDR) {
      rc = q7__err(Q7_ECORRUPT, "%s: malformed batch key", pe->path);
      break;
    }
    const unsigned char *h = v.mv_data;
    uint32_t count = (uint32_t)h[8] | (uint32_t)h[9] << 8 | (uint32_t)h[10] << 16 |
                     (uint32_t)h[11] << 24;
    if (bk.base + count > below)
      break;
    if (a->deleted >= DELETE_CHUNK) {
      a->more = true;
      break;
    }
    if ((rc = mdb_cursor_del(cur, 0)))
      break;
    a->deleted += count;
  }
  mdb_cursor_close(cur);
  if (rc == MDB_NOTFOUND)
    rc = 0;
  if (rc == MDB_MAP_FULL)
    return rc;
  return rc > 0 || rc < -100 ? q7__mdb_err(rc, pe->path) : rc;
}

static int
sweep_partition(q7__pe *pe, int64_t now, int64_t rms, int64_t rbytes, int64_t *removed)
{
  MDB_txn *txn;
  q7__ends e;
  int64_t target;
  int rc = q7__pe_read_begin(pe, &txn);
  if (rc)
    return rc;
  if ((rc = q7__pe_offsets(pe, txn, &e.log_start, &e.next)) || (rc = q7__pe_ends(pe, txn, &e))) {
    q7__pe_read_end(pe, txn);
    return rc;
  }
  target = e.log_start;
  if (rms >= 0 && now - rms > 0) {
    scan sc = { .cutoff_ts = now - rms, .by_time = true };
    int64_t t;
    if (!(rc = find_first_kept(pe, txn, &e, &sc, &t)) && t > target)
      target = t;
  }
  if (!rc && rbytes >= 0) {
    scan sc = { .min_pos = e.end_pos - rbytes, .by_time = false };
    int64_t t;
    if (!(rc = find_first_kept(pe, txn, &e, &sc, &t)) && t > target)
      target = t;
  }
  q7__pe_read_end(pe, txn);
  if (rc)
    return rc;
  /* Publish the new start and free whole batches below it, chunk by chunk;
   * also finishes what an interrupted sweep left. */
  del_arg a = { .target = target };
  do {
    if ((rc = q7__pe_write_ex(pe, delete_fn, &a, true)) == Q7_EFULL)
      rc = q7__store_reserve_free(pe->q) ? q7__pe_write_ex(pe, delete_fn, &a, true) : rc;
    if (rc)
      return rc;
  } while (a.more);
  *removed += target - e.log_start;
  return Q7_OK;
}

typedef struct sweep_ctx {
  q7 *q;
  int64_t now, removed;
  int rc;
} sweep_ctx;

static int
sweep_topic(const char *name, int32_t partitions, void *arg)
{
  sweep_ctx *s = arg;
  q7 *q = s->q;
  q7__tmeta m;
  int rc;
  rc = q7__tmeta_load(q, name, &m);
  if (rc == Q7_ENOENT)
    return Q7_OK; /* deleted meanwhile */
  if (rc)
    return rc;
  int64_t rms = q7__conf_int(m.conf, Q7K_RETENTION_MS);
  int64_t rbytes = q7__conf_int(m.conf, Q7K_RETENTION_BYTES);
  for (int32_t i = 0; i < m.partitions && (rms >= 0 || rbytes >= 0); i++) {
    q7__pe *pe;
    if ((rc = q7__pe_get(q, name, m.id, i, false, &pe)))
      break;
    rc = sweep_partition(pe, s->now, rms, rbytes, &s->removed);
    q7__pe_put(pe);
    if (rc == Q7_ENOENT)
      rc = Q7_OK; /* deleted under us */
    if (rc)
      break;
  }
  (void)partitions;
  q7__tmeta_free(&m);
  return rc;
}

int
q7_retention_sweep(q7 *q, int64_t now_ms, int64_t *removed)
{
  if (!q)
    return q7__err(Q7_EINVAL, "q7_retention_sweep: store is NULL");
  if (now_ms < 0)
    return q7__err(Q7_EINVAL, "q7_retention_sweep: negative now_ms %" PRId64, now_ms);
  sweep_ctx s = { q, now_ms ? now_ms : q7__now(q), 0, 0 };
  pthread_mutex_lock(&q->sweep_mu);
  int rc = q7_topic_foreach(q, sweep_topic, &s);
  pthread_mutex_unlock(&q->sweep_mu);
  /* The mirrors hold the same records and configs: the same sweep. */
  if (!rc && q->n_mirrors)
    rc = q7__replica_sweep(q, s.now);
  if (!rc)
    q7__store_reserve_make(q); /* if a full disk used it up */
  if (removed)
    *removed = s.removed;
  return rc;
}

int
q7_offset_for_time(q7_partition *p, int64_t timestamp_ms, int64_t *offset)
{
  if (!p || !offset)
    return q7__err(Q7_EINVAL, "q7_offset_for_time: %s is NULL", !p ? "partition" : "offset");
  q7__pe *pe = p->pe;
  MDB_txn *txn;
  MDB_cursor *cur = NULL;
  MDB_val k, v;
  q7__ends e;
  q7__bkey bk;
  q7__bview bv;
  q7__arena arena = { 0 };
  int rc = q7__pe_read_begin(pe, &txn);
  if (rc)
    return rc;
  if ((rc = q7__pe_offsets(pe, txn, &e.log_start, &e.next)) || (rc = q7__pe_ends(pe, txn, &e)))
    goto out;
  if (e.log_start >= e.next || e.tmax < timestamp_ms) {
    rc = q7__err(Q7_ENOENT, "topic %s partition %d: no record has a timestamp >= %" PRId64,
                 pe->topic, (int)pe->index, timestamp_ms);
    goto out;
  }
  if ((rc = mdb_cursor_open(txn, pe->log, &cur))) {
    rc = q7__mdb_err(rc, "open cursor");
    goto out;
  }
  /* Bisect on the keys' running max timestamp: the first batch whose
   * running max reaches the target holds the answer, since every batch
   * before it has only older records. */
  int64_t lo = e.log_start, hi = e.next - 1;
  while (lo < hi) {
    int64_t mid = lo + (hi - lo) / 2;
    if ((rc = q7__pe_seek(pe, cur, mid, &k, &v)))
      goto out;
    if (q7__bkey_get(&k, &bk) ||
        (rc = q7__batch_open(&bv, v.mv_data, v.mv_size, bk.base, false, pe->path))) {
      rc = q7__err(Q7_ECORRUPT, "%s: malformed batch", pe->path);
      goto out;
    }
    if (bk.tmax >= timestamp_ms)
      hi = bk.base > lo ? bk.base : lo;
    else
      lo = bk.base + bv.count;
  }
  /* Scan forward from there: exact even when producer timestamps go
   * backwards (then the scan may pass several batches). */
  if ((rc = q7__pe_seek(pe, cur, lo, &k, &v)))
    goto out;
  do {
    q7__arena_reset(&arena);
    int64_t ts;
    size_t pos;
    int r;
    if (q7__bkey_get(&k, &bk) ||
        (rc = q7__batch_open(&bv, v.mv_data, v.mv_size, bk.base, false, pe->path))) {
      rc = q7__err(Q7_ECORRUPT, "%s: malformed batch", pe->path);
      goto out;
    }
    if ((rc = q7__batch_inflate(pe->q, &bv, &arena, pe->path, bk.base)))
      goto out;
    q7__riter it = { &bv, Q7__BATCH_HDR, 0 };
    for (int64_t off = bk.base; (r = q7__riter_next(&it, &ts, &pos)) == 1; off++) {
      if (off >= e.log_start && ts >= timestamp_ms) {
        *offset = off;
        rc = Q7_OK;
        goto out;
      }
    }
    if (r < 0) {
      rc = q7__err(Q7_ECORRUPT, "%s: malformed record in batch %" PRId64, pe->path, bk.base);
      goto out;
    }
  } while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0);
  rc = q7__err(Q7_ENOENT, "topic %s partition %d: no record has a timestamp >= %" PRId64,
               pe->topic, (int)pe->index, timestamp_ms);
out:
  q7__arena_free(&arena);
  if (cur)
    mdb_cursor_close(cur);
  q7__pe_read_end(pe, txn);
  return rc;
}

static void *
sweeper(void *arg)
{
  q7 *q = arg;
  pthread_mutex_lock(&q->sweep_mu);
  while (!q->sweeper_stop) {
    struct timespec ts;
    q7__deadline_ms(&ts, q->sweep_interval);
    int e = 0;
    while (!q->sweeper_stop && e != ETIMEDOUT)
      e = pthread_cond_timedwait(&q->sweep_cv, &q->sweep_mu, &ts);
    if (q->sweeper_stop)
      break;
    pthread_mutex_unlock(&q->sweep_mu);
    /* Errors here have no caller; the next sweep tries again and an
     * explicit q7_retention_sweep reports them. */
    q7_retention_sweep(q, 0, NULL);
    pthread_mutex_lock(&q->sweep_mu);
  }
  pthread_mutex_unlock(&q->sweep_mu);
  return NULL;
}

int
q7__retention_start(q7 *q)
{
  q->sweep_interval = q7__conf_int(q->conf, Q7K_RETENTION_CHECK_MS);
  if (!q->sweep_interval)
    return Q7_OK;
  if (pthread_create(&q->sweeper, NULL, sweeper, q))
    return q7__err(Q7_ENOMEM, "cannot start the retention thread");
  q->sweeper_on = true;
  return Q7_OK;
}

void
q7__retention_stop(q7 *q)
{
  if (!q->sweeper_on)
    return;
  pthread_mutex_lock(&q->sweep_mu);
  q->sweeper_stop = true;
  pthread_cond_broadcast(&q->sweep_cv);
  pthread_mutex_unlock(&q->sweep_mu);
  pthread_join(q->sweeper, NULL);
  q->sweeper_on = false;
}
