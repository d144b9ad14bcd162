/* offsets.c - committed group offsets, their history, and lag.
 *
 * Metadata table "offsets": key  group NUL topic NUL be32(partition)
 *                           value i64 next, then u32 n and n commits
 *                                 (offset, timestamp, high watermark),
 *                                 oldest first, at most lag.window. */
#include "q7_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define KEY_MAX (Q7__MAX_GROUP_LEN + 1 + 249 + 1 + 4)

int
q7__group_check(const char *group)
{
  if (!group)
    return q7__err(Q7_EINVAL, "group name is NULL");
  size_t n = strlen(group);
  if (n == 0 || n > Q7__MAX_GROUP_LEN)
    return q7__err(Q7_EINVAL, "group name must be 1 to %d bytes, got %zu", Q7__MAX_GROUP_LEN, n);
  return Q7_OK;
}

static size_t
okey(unsigned char *k, const char *group, const char *topic, int32_t partition)
{
  size_t g = strlen(group), t = strlen(topic);
  memcpy(k, group, g + 1);
  memcpy(k + g + 1, topic, t + 1);
  unsigned char *p = k + g + 1 + t + 1;
  uint32_t u = (uint32_t)partition;
  p[0] = (unsigned char)(u >> 24);
  p[1] = (unsigned char)(u >> 16);
  p[2] = (unsigned char)(u >> 8);
  p[3] = (unsigned char)u;
  return g + t + 6;
}

int
q7__offsets_get(q7 *q, MDB_txn *txn, const char *group, const char *topic, int32_t partition,
                int64_t *next)
{
  unsigned char kb[KEY_MAX];
  MDB_val k = { okey(kb, group, topic, partition), kb }, v;
  int rc = mdb_get(txn, q->dbi_offsets, &k, &v);
  if (rc == MDB_NOTFOUND)
    return q7__err(Q7_ENOENT, "group \"%s\" has no committed offset on topic %s partition %d",
                   group, topic, (int)partition);
  if (rc)
    return q7__mdb_err(rc, "read committed offset");
  if (v.mv_size < 12)
    return q7__err(Q7_ECORRUPT, "group \"%s\": malformed committed offset", group);
  memcpy(next, v.mv_data, 8);
  return Q7_OK;
}

static int
commit_one(q7 *q, MDB_txn *txn, const char *group, const q7__commit_req *r, int64_t now,
           int64_t hw)
{
  unsigned char kb[KEY_MAX];
  MDB_val k = { okey(kb, group, r->topic, r->partition), kb }, v;
  size_t win = (size_t)q->lag_window;
  q7__commit *hist = calloc(win + 1, sizeof *hist);
  uint32_t n = 0;
  if (!hist)
    return q7__err(Q7_ENOMEM, "out of memory");
  int rc = mdb_get(txn, q->dbi_offsets, &k, &v);
  if (rc == 0 && v.mv_size >= 12) {
    memcpy(&n, (char *)v.mv_data + 8, 4);
    if (v.mv_size < 12 + (size_t)n * sizeof *hist)
      n = 0; /* malformed history: start again rather than fail commits */
    size_t keep = n < win ? n : win;
    memcpy(hist, (char *)v.mv_data + 12 + (n - keep) * sizeof *hist, keep * sizeof *hist);
    n = (uint32_t)keep;
  }
  if (n > 0 && now < hist[n - 1].ts) {
    /* Burrow's min-distance merge (distance 0): a commit stamped before
     * the previous one takes its slot and keeps its time. */
    hist[n - 1].offset = r->next;
    hist[n - 1].hw = hw;
  } else {
    if (n == win) {
      memmove(hist, hist + 1, (win - 1) * sizeof *hist);
      n--;
    }
    hist[n].offset = r->next;
    hist[n].ts = now;
    hist[n].hw = hw;
    n++;
  }
  v.mv_size = 12 + n * sizeof *hist;
  rc = mdb_put(txn, q->dbi_offsets, &k, &v, MDB_RESERVE);
  if (!rc) {
    memcpy(v.mv_data, &r->next, 8);
    memcpy((char *)v.mv_data + 8, &n, 4);
    memcpy((char *)v.mv_data + 12, hist, n * sizeof *hist);
  }
  free(hist);
  return rc ? q7__mdb_err(rc, "write committed offset") : Q7_OK;
}

int
q7__offsets_commit(q7 *q, const char *group, uint64_t member, const q7__commit_req *r, size_t n)
{
  MDB_txn *txn;
  int64_t *hw = calloc(n ? n : 1, sizeof *hw);
  int rc = Q7_OK;
  if (!hw)
    return q7__err(Q7_ENOMEM, "out of memory");
  for (size_t i = 0; i < n && !rc; i++) {
    int64_t ls;
    rc = q7__pe_offsets_now(r[i].pe, &ls, &hw[i]);
    /* Another process grew the map while this one holds records of the
     * partition: the snapshot the consumer holds still tells a high
     * watermark (at least as old as what it read). */
    if (rc == Q7_EBUSY && r[i].held)
      rc = q7__pe_offsets(r[i].pe, r[i].held, &ls, &hw[i]);
    if (!rc && (r[i].next < 0 || r[i].next > hw[i]))
      rc = q7__err(Q7_ERANGE,
                   "commit of group \"%s\" on topic %s partition %d: offset %" PRId64
                   " is above the high watermark %" PRId64,
                   group, r[i].topic, (int)r[i].partition, r[i].next, hw[i]);
  }
  if (rc || (rc = q7__meta_begin(q, 0, &txn))) {
    free(hw);
    return rc;
  }
  int64_t now = q7__now(q);
  /* Ownership and the commit in one transaction: a member expired or
   * rebalanced away cannot move the group's offsets. */
  for (size_t i = 0; i < n && !rc && member; i++)
    rc = q7__group_owns(q, txn, group, r[i].topic, r[i].partition, member);
  /* A consumer outside the group's membership (manual assignment) may not
   * move a partition a live member owns, as Kafka refuses it too. */
  for (size_t i = 0; i < n && !rc && !member; i++) {
    uint64_t owner;
    if (!(rc = q7__group_owner(q, txn, group, r[i].topic, r[i].partition, &owner)) && owner)
      rc = q7__err(Q7_ESTATE,
                   "group \"%s\": topic %s partition %d is owned by member %" PRIu64
                   "; a consumer outside the membership cannot commit it",
                   group, r[i].topic, (int)r[i].partition, owner);
  }
  for (size_t i = 0; i < n && !rc; i++)
    rc = commit_one(q, txn, group, &r[i], now, hw[i]);
  free(hw);
  if (rc) {
    mdb_txn_abort(txn);
    return rc;
  }
  if ((rc = mdb_txn_commit(txn)))
    return q7__mdb_err(rc, "commit offsets");
  if (q->n_mirrors) {
    /* Each mirror is a complete store: it holds the group's offsets too. */
    MDB_val *keys = calloc(n, sizeof *keys);
    unsigned char (*kb)[KEY_MAX] = calloc(n, KEY_MAX);
    if (!keys || !kb) {
      free(keys);
      free(kb);
      return q7__err(Q7_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
      keys[i].mv_size = okey(kb[i], group, r[i].topic, r[i].partition);
      keys[i].mv_data = kb[i];
    }
    rc = q7__replica_copy_offsets(q, -1, keys, n);
    free(keys);
    free(kb);
  }
  return rc;
}

int
q7__offsets_drop_topic(q7 *q, MDB_txn *txn, const char *topic)
{
  MDB_cursor *cur;
  MDB_val k, v;
  size_t tl = strlen(topic);
  int rc = mdb_cursor_open(txn, q->dbi_offsets, &cur);
  if (rc)
    return q7__mdb_err(rc, "open offsets");
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    const char *kd = k.mv_data;
    const char *nul = memchr(kd, 0, k.mv_size);
    if (!nul)
      continue;
    size_t rest = k.mv_size - (size_t)(nul + 1 - kd);
    if (rest == tl + 5 && memcmp(nul + 1, topic, tl) == 0 && nul[1 + tl] == 0)
      if ((rc = mdb_cursor_del(cur, 0)))
        break;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND || rc == 0 ? Q7_OK : q7__mdb_err(rc, "drop offsets");
}

int
q7_committed(q7 *q, const char *group, const char *topic, int32_t partition, int64_t *next)
{
  MDB_txn *txn;
  q7__tmeta m;
  int rc;
  if (!q || !next)
    return q7__err(Q7_EINVAL, "q7_committed: %s is NULL", !q ? "store" : "next");
  if ((rc = q7__group_check(group)) || (rc = q7__name_check(topic)))
    return rc;
  if (partition < 0)
    return q7__err(Q7_EINVAL, "q7_committed: negative partition %d", (int)partition);
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    return rc;
  if (!(rc = q7__tmeta_get(q, txn, topic, &m))) {
    if (partition >= m.partitions)
      rc = q7__err(Q7_ENOENT, "topic %s has %d partitions; no partition %d", topic,
                   (int)m.partitions, (int)partition);
    else
      rc = q7__offsets_get(q, txn, group, topic, partition, next);
    q7__tmeta_free(&m);
  }
  mdb_txn_abort(txn);
  return rc;
}

/* Lag of every committed partition of @topic, into @lags (-1: none). */
static int
topic_lags(q7 *q, const char *group, const char *topic, int32_t only, int64_t **lags,
           int32_t *count)
{
  MDB_txn *txn;
  q7__tmeta m;
  int rc;
  if ((rc = q7__group_check(group)) || (rc = q7__name_check(topic)))
    return rc;
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    return rc;
  if ((rc = q7__tmeta_get(q, txn, topic, &m))) {
    mdb_txn_abort(txn);
    return rc;
  }
  q7__tmeta_free(&m);
  if (only >= m.partitions) {
    mdb_txn_abort(txn);
    return q7__err(Q7_ENOENT, "topic %s has %d partitions; no partition %d", topic,
                   (int)m.partitions, (int)only);
  }
  int64_t *l = malloc((size_t)m.partitions * sizeof *l);
  if (!l) {
    mdb_txn_abort(txn);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  for (int32_t i = 0; i < m.partitions; i++) {
    l[i] = -1;
    if (only >= 0 && i != only)
      continue;
    int64_t next;
    if (q7__offsets_get(q, txn, group, topic, i, &next))
      continue;
    l[i] = next;
  }
  mdb_txn_abort(txn);
  /* The committed offset was read first: the high watermark only grows, so
   * the lag is never negative. */
  for (int32_t i = 0; i < m.partitions && !rc; i++) {
    if (l[i] < 0)
      continue;
    q7__pe *pe;
    int64_t ls, hw;
    if ((rc = q7__pe_get(q, topic, m.id, i, false, &pe)))
      break;
    rc = q7__pe_offsets_now(pe, &ls, &hw);
    q7__pe_put(pe);
    l[i] = hw > l[i] ? hw - l[i] : 0;
  }
  if (rc) {
    free(l);
    return rc;
  }
  *lags = l;
  *count = m.partitions;
  return Q7_OK;
}

int
q7_lag(q7 *q, const char *group, const char *topic, int32_t partition, int64_t *lag)
{
  int64_t *l;
  int32_t n;
  if (!q || !lag)
    return q7__err(Q7_EINVAL, "q7_lag: %s is NULL", !q ? "store" : "lag");
  if (partition < 0)
    return q7__err(Q7_EINVAL, "q7_lag: negative partition %d", (int)partition);
  int rc = topic_lags(q, group, topic, partition, &l, &n);
  if (rc)
    return rc;
  if (l[partition] < 0)
    rc = q7__err(Q7_ENOENT, "group \"%s\" has no committed offset on topic %s partition %d",
                 group, topic, (int)partition);
  else
    *lag = l[partition];
  free(l);
  return rc;
}

int
q7_lag_max(q7 *q, const char *group, const char *topic, int64_t *lag, int32_t *partition)
{
  int64_t *l;
  int32_t n, best = -1;
  if (!q || !lag)
    return q7__err(Q7_EINVAL, "q7_lag_max: %s is NULL", !q ? "store" : "lag");
  int rc = topic_lags(q, group, topic, -1, &l, &n);
  if (rc)
    return rc;
  for (int32_t i = 0; i < n; i++)
    if (l[i] >= 0 && (best < 0 || l[i] > l[best]))
      best = i;
  if (best < 0)
    rc = q7__err(Q7_ENOENT, "group \"%s\" has no committed offset on topic %s", group, topic);
  else {
    *lag = l[best];
    if (partition)
      *partition = best;
  }
  free(l);
  return rc;
}

int
q7__offsets_parse(const MDB_val *k, const MDB_val *v, q7__okey *key, int64_t *next,
                  const unsigned char **hist, uint32_t *n)
{
  const char *kd = k->mv_data;
  const char *g_end = memchr(kd, 0, k->mv_size);
  if (!g_end)
    return Q7_ECORRUPT;
  size_t rest = k->mv_size - (size_t)(g_end + 1 - kd);
  const char *t_end = memchr(g_end + 1, 0, rest);
  if (!t_end || (size_t)(kd + k->mv_size - (t_end + 1)) != 4 || v->mv_size < 12)
    return Q7_ECORRUPT;
  const unsigned char *pp = (const unsigned char *)t_end + 1;
  key->group = kd;
  key->topic = g_end + 1;
  key->partition = (int32_t)((uint32_t)pp[0] << 24 | (uint32_t)pp[1] << 16 |
                             (uint32_t)pp[2] << 8 | pp[3]);
  memcpy(next, v->mv_data, 8);
  memcpy(n, (char *)v->mv_data + 8, 4);
  if (v->mv_size < 12 + (size_t)*n * sizeof(q7__commit))
    return Q7_ECORRUPT;
  *hist = (const unsigned char *)v->mv_data + 12;
  return Q7_OK;
}

int
q7__offsets_history(q7 *q, MDB_txn *txn, const char *group, const char *topic,
                    int32_t partition, q7__commit *out, size_t max, int64_t *next)
{
  unsigned char kb[KEY_MAX];
  MDB_val k = { okey(kb, group, topic, partition), kb }, v;
  q7__okey key;
  const unsigned char *hist;
  uint32_t n;
  int rc = mdb_get(txn, q->dbi_offsets, &k, &v);
  if (rc == MDB_NOTFOUND)
    return 0;
  if (rc)
    return q7__mdb_err(rc, "read commit history");
  if (q7__offsets_parse(&k, &v, &key, next, &hist, &n))
    return q7__err(Q7_ECORRUPT, "group \"%s\": malformed commit history", group);
  for (uint32_t i = 0; i < n && i < max; i++)
    memcpy(&out[i], hist + i * sizeof *out, sizeof *out);
  return (int)n;
}

static int
cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

int
q7_group_foreach(q7 *q, int (*fn)(const char *group, void *arg), void *arg)
{
  MDB_txn *txn;
  MDB_val k, v;
  int rc;
  if (!q || !fn)
    return q7__err(Q7_EINVAL, "q7_group_foreach: %s is NULL", !q ? "store" : "fn");
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    return rc;
  /* Groups with commits, and groups with members that never committed. */
  char **names = NULL;
  size_t n = 0, cap = 0;
  int ret = Q7_OK;
  MDB_dbi dbis[2] = { q->dbi_offsets, q->dbi_groups };
  for (int d = 0; d < 2 && ret == Q7_OK; d++) {
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, dbis[d], &cur))) {
      ret = q7__mdb_err(rc, "list groups");
      break;
    }
    const char *last = NULL;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && ret == Q7_OK;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
      const char *g = k.mv_data;
      if (!memchr(g, 0, k.mv_size) || (last && !strcmp(last, g)))
        continue;
      if (n == cap) {
        cap = cap ? 2 * cap : 16;
        char **nn = realloc(names, cap * sizeof *nn);
        if (!nn) {
          ret = q7__err(Q7_ENOMEM, "out of memory");
          break;
        }
        names = nn;
      }
      if (!(names[n] = strdup(g))) {
        ret = q7__err(Q7_ENOMEM, "out of memory");
        break;
      }
      last = names[n++];
    }
    mdb_cursor_close(cur);
  }
  mdb_txn_abort(txn);
  if (n)
    qsort(names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n && ret == Q7_OK; i++)
    if (!i || strcmp(names[i], names[i - 1]))
      ret = fn(names[i], arg);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  return ret;
}

int
q7_group_delete(q7 *q, const char *group)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc, found = 0;
  if (!q)
    return q7__err(Q7_EINVAL, "q7_group_delete: store is NULL");
  if ((rc = q7__group_check(group)))
    return rc;
  if ((rc = q7__meta_begin(q, 0, &txn)))
    return rc;
  if ((rc = mdb_cursor_open(txn, q->dbi_offsets, &cur))) {
    mdb_txn_abort(txn);
    return q7__mdb_err(rc, "open offsets");
  }
  size_t gl = strlen(group) + 1;
  k.mv_size = gl;
  k.mv_data = (void *)group;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size < gl || memcmp(k.mv_data, group, gl) != 0)
      break;
    if ((rc = mdb_cursor_del(cur, 0)))
      break;
    found++;
  }
  mdb_cursor_close(cur);
  if (rc && rc != MDB_NOTFOUND) {
    mdb_txn_abort(txn);
    return q7__mdb_err(rc, "delete group");
  }
  int members = q7__group_drop(q, txn, group, NULL);
  if (members < 0) {
    mdb_txn_abort(txn);
    return members;
  }
  found += members;
  if (!found) {
    mdb_txn_abort(txn);
    return q7__err(Q7_ENOENT, "no group \"%s\"", group);
  }
  if ((rc = mdb_txn_commit(txn)))
    return q7__mdb_err(rc, "delete group");
  /* Mirrors hold the group's offsets too. */
  return q->n_mirrors ? q7__replica_copy_offsets(q, -1, NULL, 0) : Q7_OK;
}
