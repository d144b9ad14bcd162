/* lag.c - LinkedIn Burrow's consumer status evaluation, exactly as Burrow's
 * evaluator applies it (rules R0-R6 in its order, then the group rollup;
 * see BURROW.md), over the commit windows kept by offsets.c. */
#include "q7_int.h"

#include <inttypes.h>
#include <stdlib.h>

const char *
q7_status_name(int status)
{
  static const char *const names[] = { "NOTFOUND", "OK", "WARN", "ERR", "STOP", "STALL",
                                       "REWIND" };
  return status >= 0 && status <= Q7_STATUS_REWIND ? names[status] : "UNKNOWN";
}

int
q7_evaluate_partition(const q7_commit *w, size_t n, size_t intervals, const int64_t *hw,
                      size_t n_hw, int64_t current_lag, int64_t now_ms, int64_t allowed_lag,
                      int *status, double *complete)
{
  if (!status || !complete || (!w && n) || (!hw && n_hw) || intervals == 0 || current_lag < 0)
    return q7__err(Q7_EINVAL, "q7_evaluate_partition: %s",
                   !status || !complete ? "NULL out-pointer"
                   : intervals == 0    ? "intervals is 0"
                   : current_lag < 0   ? "negative current_lag"
                                       : "NULL array with a non-zero length");
  *complete = n >= intervals ? 1.0 : (double)n / (double)intervals;
  *status = Q7_STATUS_OK;
  if (n == 0)
    return Q7_OK;
  /* R0: lag within what is allowed: fine, whatever the window says. */
  if (current_lag <= allowed_lag)
    return Q7_OK;
  /* R1: stopped committing for longer than the window spans, and the
   * partition did not catch up recently. */
  const q7_commit *first = &w[0], *last = &w[n - 1];
  bool recent_zero = false;
  for (size_t i = 0; i < n_hw; i++)
    recent_zero |= hw[i] <= last->offset;
  if (now_ms - last->timestamp_ms > last->timestamp_ms - first->timestamp_ms && !recent_zero) {
    *status = Q7_STATUS_STOP;
    return Q7_OK;
  }
  /* R2: offsets went backwards and never came back (only the first
   * decrease is examined, as Burrow does). */
  size_t r = 0;
  for (size_t i = 1; i < n && !r; i++)
    if (w[i].offset < w[i - 1].offset)
      r = i;
  if (r) {
    bool back = false;
    for (size_t j = r; j < n; j++)
      back |= w[j].offset >= w[r - 1].offset;
    if (!back) {
      *status = Q7_STATUS_REWIND;
      return Q7_OK;
    }
  }
  /* R3: some known lag within what is allowed. */
  for (size_t i = 0; i < n; i++)
    if (w[i].lag >= 0 && w[i].lag <= allowed_lag)
      return Q7_OK;
  /* R4: not moving at all. */
  bool same = true;
  for (size_t i = 1; i < n; i++)
    same &= w[i].offset == w[0].offset;
  if (same) {
    *status = Q7_STATUS_STALL;
    return Q7_OK;
  }
  /* R5: lag never went down. */
  int64_t prev = -1;
  for (size_t i = 0; i < n; i++) {
    if (w[i].lag < 0)
      continue;
    if (prev >= 0 && w[i].lag < prev)
      return Q7_OK; /* R6 */
    prev = w[i].lag;
  }
  *status = Q7_STATUS_WARN;
  return Q7_OK;
}

/* The report and everything it points to, in one allocation. */
typedef struct report_mem {
  q7_group_report r;
  size_t cap;
  q7_partition_report *parts;
  char *strings;                  /* group name then topic names */
  size_t str_len, str_cap;
} report_mem;

void
q7_group_report_free(q7_group_report *r)
{
  if (!r)
    return;
  report_mem *m = (report_mem *)r;
  free(m->parts);
  free(m->strings);
  free(m);
}

static int
rank(int status)
{
  return status == Q7_STATUS_STOP || status == Q7_STATUS_STALL || status == Q7_STATUS_REWIND
             ? Q7_STATUS_ERR : status;
}

/* Append @s to the string arena; returns its offset. */
static size_t
arena_add(report_mem *m, const char *s)
{
  size_t l = strlen(s) + 1;
  if (m->str_len + l > m->str_cap) {
    size_t cap = m->str_cap ? m->str_cap * 2 : 256;
    while (cap < m->str_len + l)
      cap *= 2;
    char *n = realloc(m->strings, cap);
    if (!n)
      return SIZE_MAX;
    m->strings = n;
    m->str_cap = cap;
  }
  memcpy(m->strings + m->str_len, s, l);
  m->str_len += l;
  return m->str_len - l;
}

static q7_commit
to_commit(const q7__commit *c)
{
  q7_commit o = { c->offset, c->ts, c->hw > c->offset ? c->hw - c->offset : 0 };
  return o;
}

/* A partition of the group, as gathered from the offsets table. */
typedef struct gpart {
  size_t topic;                   /* arena offset */
  int32_t partition;
  uint32_t n;
  q7__commit *hist;
  uint64_t topic_id;
  int32_t topic_parts;
} gpart;

int
q7_group_status(q7 *q, const char *group, int64_t now_ms, q7_group_report **out)
{
  int rc;
  if (!q || !out)
    return q7__err(Q7_EINVAL, "q7_group_status: %s is NULL", !q ? "store" : "out");
  if ((rc = q7__group_check(group)))
    return rc;
  if (now_ms < 0)
    return q7__err(Q7_EINVAL, "q7_group_status: negative now_ms %" PRId64, now_ms);
  if (!now_ms)
    now_ms = q7__now(q) / 1000 * 1000;

  report_mem *m = calloc(1, sizeof *m);
  if (!m || arena_add(m, group) == SIZE_MAX) {
    free(m);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  gpart *gp = NULL;
  size_t ng = 0, capg = 0;
  int64_t newest = INT64_MIN;

  /* 1. The group's committed partitions, in key order: (topic, partition). */
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    goto fail_nomem_free;
  if ((rc = mdb_cursor_open(txn, q->dbi_offsets, &cur))) {
    mdb_txn_abort(txn);
    rc = q7__mdb_err(rc, "read offsets");
    goto fail_nomem_free;
  }
  size_t gl = strlen(group) + 1;
  k.mv_size = gl;
  k.mv_data = (void *)group;
  for (int g = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); g == 0;
       g = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    q7__okey key;
    int64_t next;
    const unsigned char *hist;
    uint32_t n;
    if (k.mv_size < gl || memcmp(k.mv_data, group, gl) != 0)
      break;
    if (q7__offsets_parse(&k, &v, &key, &next, &hist, &n))
      continue; /* a malformed entry is no reason to hide the others */
    if (ng == capg) {
      capg = capg ? capg * 2 : 16;
      gpart *ngp = realloc(gp, capg * sizeof *ngp);
      if (!ngp) {
        rc = q7__err(Q7_ENOMEM, "out of memory");
        break;
      }
      gp = ngp;
    }
    gpart *p = &gp[ng];
    memset(p, 0, sizeof *p);
    bool same_topic = ng && !strcmp(m->strings + gp[ng - 1].topic, key.topic);
    p->topic = same_topic ? gp[ng - 1].topic : arena_add(m, key.topic);
    p->partition = key.partition;
    p->n = n;
    if (p->topic == SIZE_MAX || !(p->hist = malloc((n ? n : 1) * sizeof *p->hist))) {
      rc = q7__err(Q7_ENOMEM, "out of memory");
      break;
    }
    memcpy(p->hist, hist, n * sizeof *p->hist);
    if (n && p->hist[n - 1].ts > newest)
      newest = p->hist[n - 1].ts;
    ng++;
  }
  mdb_cursor_close(cur);
  /* Topic metadata, in the same snapshot. */
  for (size_t i = 0; i < ng && !rc; i++) {
    if (i && gp[i].topic == gp[i - 1].topic) {
      gp[i].topic_id = gp[i - 1].topic_id;
      gp[i].topic_parts = gp[i - 1].topic_parts;
      continue;
    }
    q7__tmeta tm;
    int e = q7__tmeta_get(q, txn, m->strings + gp[i].topic, &tm);
    if (e == Q7_OK) {
      gp[i].topic_id = tm.id;
      gp[i].topic_parts = tm.partitions;
      q7__tmeta_free(&tm);
    } else if (e != Q7_ENOENT) {
      rc = e;
    }
  }
  mdb_txn_abort(txn);
  if (rc)
    goto fail;

  m->r.status = Q7_STATUS_OK;
  int64_t expire = q7__conf_int(q->conf, Q7K_LAG_EXPIRE_MS);
  if (ng == 0 || newest == INT64_MIN || now_ms - newest > expire) {
    m->r.status = Q7_STATUS_NOTFOUND;
    m->r.complete = 1.0;
    goto done;
  }

  /* 2. Every partition of every topic committed on: evaluate. */
  size_t total = 0;
  for (size_t i = 0; i < ng; i++)
    if ((!i || gp[i].topic != gp[i - 1].topic) && gp[i].topic_parts > 0)
      total += (size_t)gp[i].topic_parts;
  if (!(m->parts = calloc(total ? total : 1, sizeof *m->parts))) {
    rc = q7__err(Q7_ENOMEM, "out of memory");
    goto fail;
  }
  size_t np = 0, full = 0, gi = 0;
  for (size_t i = 0; i < ng && !rc; i = gi) {
    const char *topic = m->strings + gp[i].topic;
    for (gi = i; gi < ng && gp[gi].topic == gp[i].topic; gi++)
      ;
    if (gp[i].topic_parts <= 0)
      continue; /* deleted topic */
    size_t at = i;
    for (int32_t p = 0; p < gp[i].topic_parts && !rc; p++) {
      q7_partition_report *pr = &m->parts[np++];
      pr->topic = (const char *)(uintptr_t)gp[i].topic; /* fixed up below */
      pr->partition = p;
      pr->status = Q7_STATUS_OK;
      pr->start.offset = pr->end.offset = -1;
      pr->start.lag = pr->end.lag = -1;
      while (at < gi && gp[at].partition < p)
        at++;
      if (at >= gi || gp[at].partition != p || gp[at].n == 0)
        continue; /* never committed: OK, complete 0, lag 0 */
      const gpart *g = &gp[at];
      q7__pe *pe;
      int64_t ls, hw;
      if ((rc = q7__pe_get(q, topic, g->topic_id, p, false, &pe)))
        break;
      rc = q7__pe_offsets_now(pe, &ls, &hw);
      q7__pe_put(pe);
      if (rc)
        break;
      q7_commit w[1000];
      int64_t hws[1000];
      uint32_t n = g->n < 1000 ? g->n : 1000;
      for (uint32_t j = 0; j < n; j++) {
        w[j] = to_commit(&g->hist[g->n - n + j]);
        hws[j] = g->hist[g->n - n + j].hw;
      }
      pr->start = w[0];
      pr->end = w[n - 1];
      pr->current_lag = hw > w[n - 1].offset ? hw - w[n - 1].offset : 0;
      q7_evaluate_partition(w, n, (size_t)q->lag_window, hws, n, pr->current_lag, now_ms, 0,
                            &pr->status, &pr->complete);
    }
  }
  if (rc)
    goto fail;
  m->r.partitions = m->parts;
  m->r.partition_count = np;
  for (size_t i = 0; i < np; i++) {
    q7_partition_report *pr = &m->parts[i];
    pr->topic = m->strings + (size_t)(uintptr_t)pr->topic;
    if (rank(pr->status) > m->r.status)
      m->r.status = rank(pr->status);
    m->r.total_lag += pr->current_lag;
    if (!m->r.maxlag || pr->current_lag > m->r.maxlag->current_lag)
      m->r.maxlag = pr;
    full += pr->complete >= 1.0;
  }
  m->r.complete = np ? (double)full / (double)np : 0.0;
done:
  m->r.group = m->strings;
  for (size_t i = 0; i < ng; i++)
    free(gp[i].hist);
  free(gp);
  *out = &m->r;
  return Q7_OK;
fail:
  for (size_t i = 0; i < ng; i++)
    free(gp[i].hist);
  free(gp);
fail_nomem_free:
  q7_group_report_free(&m->r);
  return rc;
}

int
q7_commit_history(q7 *q, const char *group, const char *topic, int32_t partition,
                  q7_commit *out, size_t max, size_t *intervals)
{
  MDB_txn *txn;
  q7__tmeta tm;
  int rc;
  if (!q || (!out && max))
    return q7__err(Q7_EINVAL, "q7_commit_history: %s is NULL", !q ? "store" : "out");
  if ((rc = q7__group_check(group)) || (rc = q7__name_check(topic)))
    return rc;
  if (partition < 0)
    return q7__err(Q7_EINVAL, "q7_commit_history: negative partition %d", (int)partition);
  if (intervals)
    *intervals = (size_t)q->lag_window;
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    return rc;
  if ((rc = q7__tmeta_get(q, txn, topic, &tm))) {
    mdb_txn_abort(txn);
    return rc;
  }
  q7__tmeta_free(&tm);
  if (partition >= tm.partitions) {
    mdb_txn_abort(txn);
    return q7__err(Q7_ENOENT, "topic %s has %d partitions; no partition %d", topic,
                   (int)tm.partitions, (int)partition);
  }
  q7__commit hist[1000];
  int64_t next;
  rc = q7__offsets_history(q, txn, group, topic, partition, hist, 1000, &next);
  mdb_txn_abort(txn);
  for (int i = 0; i < rc && (size_t)i < max && i < 1000; i++)
    out[i] = to_commit(&hist[i]);
  return rc;
}
