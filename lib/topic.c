/* topic.c - topics: names, metadata, create/delete/open, partitions. */
#include "q7_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Metadata value of a topic: u64 id, i32 partitions, then "k=v\n" config. */
#define TMETA_HDR 12

int
q7__name_check(const char *name)
{
  if (!name)
    return q7__err(Q7_EINVAL, "topic name is NULL");
  size_t n = strlen(name);
  if (n == 0)
    return q7__err(Q7_EINVAL, "topic name \"\" is empty; names are 1 to 249 characters");
  if (n > 249)
    return q7__err(Q7_EINVAL, "topic name \"%.40s...\" has %zu characters; at most 249", name, n);
  if (!strcmp(name, ".") || !strcmp(name, ".."))
    return q7__err(Q7_EINVAL, "topic name \"%s\" is not allowed", name);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
          c == '.' || c == '_' || c == '-'))
      return q7__err(Q7_EINVAL,
                     "topic name \"%.60s\": character 0x%02x at %zu is not in [A-Za-z0-9._-]",
                     name, c, i);
  }
  return Q7_OK;
}

int
q7__tmeta_get(q7 *q, MDB_txn *txn, const char *name, q7__tmeta *m)
{
  MDB_val k = { strlen(name), (void *)name }, v;
  int rc = mdb_get(txn, q->dbi_topics, &k, &v);
  if (rc == MDB_NOTFOUND)
    return q7__err(Q7_ENOENT, "no topic \"%s\"", name);
  if (rc)
    return q7__mdb_err(rc, "read topic");
  if (v.mv_size < TMETA_HDR)
    return q7__err(Q7_ECORRUPT, "topic \"%s\": malformed metadata", name);
  memset(m, 0, sizeof *m);
  memcpy(&m->id, v.mv_data, 8);
  memcpy(&m->partitions, (char *)v.mv_data + 8, 4);
  if (m->partitions < 1 || m->partitions > Q7__MAX_PARTITIONS)
    return q7__err(Q7_ECORRUPT, "topic \"%s\": malformed partition count", name);
  if (!(m->conf = q7_conf_new()))
    return Q7_ENOMEM;
  rc = q7__conf_load(m->conf, (char *)v.mv_data + TMETA_HDR, v.mv_size - TMETA_HDR);
  if (rc) {
    q7_conf_destroy(m->conf);
    m->conf = NULL;
  }
  return rc;
}

int
q7__tmeta_load(q7 *q, const char *name, q7__tmeta *m)
{
  MDB_txn *txn;
  int rc = q7__meta_begin(q, MDB_RDONLY, &txn);
  if (rc)
    return rc;
  rc = q7__tmeta_get(q, txn, name, m);
  mdb_txn_abort(txn);
  return rc;
}

void
q7__tmeta_free(q7__tmeta *m)
{
  q7_conf_destroy(m->conf);
  m->conf = NULL;
}

static int
tmeta_put(q7 *q, MDB_txn *txn, const char *name, const q7__tmeta *m)
{
  size_t clen;
  char *text = q7__conf_dump(m->conf, Q7S_TOPIC, &clen);
  if (!text)
    return q7__err(Q7_ENOMEM, "out of memory");
  MDB_val k = { strlen(name), (void *)name }, v = { TMETA_HDR + clen, NULL };
  int rc = mdb_put(txn, q->dbi_topics, &k, &v, MDB_RESERVE);
  if (!rc) {
    memcpy(v.mv_data, &m->id, 8);
    memcpy((char *)v.mv_data + 8, &m->partitions, 4);
    memcpy((char *)v.mv_data + TMETA_HDR, text, clen);
  }
  free(text);
  return rc ? q7__mdb_err(rc, "write topic") : Q7_OK;
}

/* Topic keys must be topic keys; the rest is a mistake worth naming. */
static int
topic_conf_check(const q7 *q, const q7_conf *c, bool check_rf)
{
  if (!c)
    return Q7_OK;
  for (int k = 0; k < Q7K__COUNT; k++) {
    int scope = 0;
    if (!c->val[k])
      continue;
    q7__conf_key(q7__conf_name((enum q7__key)k), &scope);
    if (!(scope & Q7S_TOPIC))
      return q7__err(Q7_EINVAL, "config %s is not a topic config", q7__conf_name((enum q7__key)k));
  }
  int64_t rf = q7__conf_int(c, Q7K_REPLICATION_FACTOR), mi = q7__conf_int(c, Q7K_MIN_INSYNC);
  if (check_rf && rf > 1 + q->n_mirrors)
    return q7__err(Q7_EREPLICA,
                   "replication.factor %" PRId64 " is larger than the store's %d replicas "
                   "(the primary and %d mirrors in replica.dirs)", rf, 1 + q->n_mirrors,
                   q->n_mirrors);
  if (mi > rf)
    return q7__err(Q7_EINVAL, "min.insync.replicas %" PRId64 " exceeds replication.factor %" PRId64,
                   mi, rf);
  return Q7_OK;
}

int
q7_topic_create(q7 *q, const char *name, int32_t partitions, const q7_conf *topic_conf)
{
  if (!q)
    return q7__err(Q7_EINVAL, "q7_topic_create: store is NULL");
  int rc = q7__topic_create_id(q, name, partitions, topic_conf, 0);
  if (!rc && q->n_mirrors)
    rc = q7__replica_sync_meta(q);
  return rc;
}

int
q7__topic_create_id(q7 *q, const char *name, int32_t partitions, const q7_conf *topic_conf,
                    uint64_t want_id)
{
  MDB_txn *txn = NULL;
  q7__tmeta m = { 0 };
  char path[4096];
  int rc;
  bool made_dir = false;

  if (!q)
    return q7__err(Q7_EINVAL, "q7_topic_create: store is NULL");
  if ((rc = q7__name_check(name)))
    return rc;
  if (partitions < 1 || partitions > Q7__MAX_PARTITIONS)
    return q7__err(Q7_EINVAL, "topic \"%s\": partition count %d is outside [1, %d]", name,
                   (int)partitions, Q7__MAX_PARTITIONS);
  /* The replication factor is checked where the topic is made, not where
   * a mirror copies it. */
  if ((rc = topic_conf_check(q, topic_conf, want_id == 0)))
    return rc;
  if ((rc = q7_conf_dup(topic_conf, &m.conf)))
    return rc;
  m.partitions = partitions;

  if ((rc = q7__meta_begin(q, 0, &txn)))
    goto fail;
  MDB_val k = { strlen(name), (void *)name }, v;
  rc = mdb_get(txn, q->dbi_topics, &k, &v);
  if (rc == 0) {
    rc = q7__err(Q7_EEXIST, "topic \"%s\" already exists", name);
    goto fail;
  }
  if (rc != MDB_NOTFOUND) {
    rc = q7__mdb_err(rc, "read topic");
    goto fail;
  }
  uint64_t id = 1;
  MDB_val ik = { 7, (void *)"next_id" };
  if (mdb_get(txn, q->dbi_info, &ik, &v) == 0 && v.mv_size == 8)
    memcpy(&id, v.mv_data, 8);
  uint64_t next = id;
  if (want_id)
    id = want_id; /* a mirror takes the primary's id */
  uint64_t nid = id + 1 > next ? id + 1 : next;
  v.mv_size = 8;
  v.mv_data = &nid;
  if ((rc = mdb_put(txn, q->dbi_info, &ik, &v, 0))) {
    rc = q7__mdb_err(rc, "write topic id");
    goto fail;
  }
  m.id = id;
  if ((rc = tmeta_put(q, txn, name, &m)))
    goto fail;

  /* Directories are made while this transaction holds the metadata writer
   * lock, so no other process creates or deletes a topic meanwhile. */
  snprintf(path, sizeof path, "%s/topics/%s", q->dir, name);
  q7__rm_rf(path);
  if (mkdir(path, 0700) < 0) {
    rc = q7__errno_err(errno, "cannot create topic directory", path);
    goto fail;
  }
  made_dir = true;
  for (int32_t i = 0; i < partitions; i++) {
    q7__pe *pe;
    if ((rc = q7__pe_get(q, name, id, i, true, &pe)))
      goto fail;
    q7__pe_put(pe);
  }
  rc = mdb_txn_commit(txn);
  txn = NULL;
  if (rc) {
    rc = q7__mdb_err(rc, "commit topic");
    goto fail;
  }
  q7__tmeta_free(&m);
  q7__pe_drop_idle(q, name); /* opened before the commit: reload later */
  return Q7_OK;
fail:
  if (txn)
    mdb_txn_abort(txn);
  if (made_dir)
    q7__rm_rf(path);
  q7__tmeta_free(&m);
  return rc;
}

int
q7_topic_delete(q7 *q, const char *name)
{
  MDB_txn *txn = NULL;
  q7__tmeta m = { 0 };
  int rc;

  if (!q)
    return q7__err(Q7_EINVAL, "q7_topic_delete: store is NULL");
  if ((rc = q7__name_check(name)))
    return rc;
  if ((rc = q7__meta_begin(q, 0, &txn)))
    return rc;
  if ((rc = q7__tmeta_get(q, txn, name, &m)))
    goto fail;
  pthread_mutex_lock(&q->lock);
  bool busy = false;
  for (q7__pe *pe = q->parts; pe && !busy; pe = pe->next)
    busy = pe->refs > 0 && pe->topic_id == m.id && !strcmp(pe->topic, name);
  for (q7_topic *t = q->topics_open; t && !busy; t = t->open_next)
    busy = t->id == m.id && !strcmp(t->name, name);
  pthread_mutex_unlock(&q->lock);
  if (busy) {
    rc = q7__err(Q7_EBUSY, "topic \"%s\" has open handles in this process (topic, producer "
                 "or consumer)", name);
    goto fail;
  }
  MDB_val k = { strlen(name), (void *)name };
  if ((rc = mdb_del(txn, q->dbi_topics, &k, NULL))) {
    rc = q7__mdb_err(rc, "delete topic");
    goto fail;
  }
  if ((rc = q7__offsets_drop_topic(q, txn, name)) || (rc = q7__group_drop(q, txn, NULL, name)) < 0)
    goto fail;
  /* Tell other processes' handles, then move the files out of the way. */
  for (int32_t i = 0; i < m.partitions; i++) {
    q7__pe *pe;
    if (q7__pe_get(q, name, m.id, i, false, &pe) == Q7_OK) {
      q7__pe_mark_deleted(pe);
      q7__pe_put(pe);
    }
  }
  char from[4096], trash[4096], to[4200];
  snprintf(from, sizeof from, "%s/topics/%s", q->dir, name);
  snprintf(trash, sizeof trash, "%s/trash", q->dir);
  snprintf(to, sizeof to, "%s/%s.%" PRIu64, trash, name, m.id);
  mkdir(trash, 0700);
  if (rename(from, to) < 0 && errno != ENOENT) {
    rc = q7__errno_err(errno, "cannot remove topic directory", from);
    goto fail;
  }
  rc = mdb_txn_commit(txn);
  txn = NULL;
  if (rc) {
    rename(to, from);
    rc = q7__mdb_err(rc, "commit topic deletion");
    goto fail;
  }
  q7__pe_drop_idle(q, name);
  q7__rm_rf(to);
  q7__tmeta_free(&m);
  return q->n_mirrors ? q7__replica_sync_meta(q) : Q7_OK;
fail:
  if (txn)
    mdb_txn_abort(txn);
  q7__tmeta_free(&m);
  return rc;
}

int
q7_topic_foreach(q7 *q, int (*fn)(const char *name, int32_t partitions, void *arg), void *arg)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc;
  if (!q || !fn)
    return q7__err(Q7_EINVAL, "q7_topic_foreach: %s is NULL", !q ? "store" : "fn");
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    return rc;
  if ((rc = mdb_cursor_open(txn, q->dbi_topics, &cur))) {
    mdb_txn_abort(txn);
    return q7__mdb_err(rc, "list topics");
  }
  /* Copy names out first: @fn may call back into the store. */
  char **names = NULL;
  int32_t *counts = NULL;
  size_t n = 0, cap = 0;
  int ret = Q7_OK;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc(names, cap * sizeof *nn);
      int32_t *nc = nn ? realloc(counts, cap * sizeof *nc) : NULL;
      if (nn)
        names = nn;
      if (nc)
        counts = nc;
      if (!nn || !nc) {
        ret = q7__err(Q7_ENOMEM, "out of memory");
        break;
      }
    }
    if (v.mv_size < TMETA_HDR || !(names[n] = strndup(k.mv_data, k.mv_size))) {
      ret = v.mv_size < TMETA_HDR ? q7__err(Q7_ECORRUPT, "malformed topic metadata")
                                  : q7__err(Q7_ENOMEM, "out of memory");
      break;
    }
    memcpy(&counts[n], (char *)v.mv_data + 8, 4);
    n++;
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  for (size_t i = 0; i < n && ret == Q7_OK; i++)
    ret = fn(names[i], counts[i], arg);
  for (size_t i = 0; i < n; i++)
    free(names[i]);
  free(names);
  free(counts);
  return ret;
}

int
q7_topic_open(q7 *q, const char *name, q7_topic **out)
{
  q7__tmeta m;
  int rc;
  if (!q || !out)
    return q7__err(Q7_EINVAL, "q7_topic_open: %s is NULL", !q ? "store" : "out");
  if ((rc = q7__name_check(name)))
    return rc;
  rc = q7__tmeta_load(q, name, &m);
  if (rc)
    return rc;
  q7_topic *t = calloc(1, sizeof *t);
  if (!t || !(t->name = strdup(name)) || !(t->parts = calloc((size_t)m.partitions, sizeof *t->parts))) {
    if (t)
      free(t->name);
    free(t);
    q7__tmeta_free(&m);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  t->q = q;
  t->id = m.id;
  t->count = m.partitions;
  t->max_message = q7__conf_int(m.conf, Q7K_MESSAGE_MAX_BYTES);
  static const int codecs[] = { -1, Q7__CODEC_NONE, Q7__CODEC_LZ4, Q7__CODEC_ZSTD };
  t->codec = codecs[q7__conf_choice(m.conf, Q7K_TOPIC_COMPRESSION)];
  for (int32_t i = 0; i < t->count; i++) {
    t->parts[i].topic = t;
    t->parts[i].index = i;
  }
  q7__tmeta_free(&m);
  pthread_mutex_lock(&q->lock);
  q->live_handles++;
  t->open_next = q->topics_open;
  q->topics_open = t;
  pthread_mutex_unlock(&q->lock);
  *out = t;
  return Q7_OK;
}

void
q7_topic_close(q7_topic *t)
{
  if (!t)
    return;
  for (int32_t i = 0; i < t->count; i++) {
    q7_partition *p = &t->parts[i];
    if (p->rtxn)
      q7__pe_read_end(p->pe, p->rtxn);
    q7__arena_free(&p->arena);
    q7__pe_put(p->pe);
  }
  q7 *q = t->q;
  pthread_mutex_lock(&q->lock);
  q->live_handles--;
  for (q7_topic **pp = &q->topics_open; *pp; pp = &(*pp)->open_next) {
    if (*pp == t) {
      *pp = t->open_next;
      break;
    }
  }
  pthread_mutex_unlock(&q->lock);
  free(t->parts);
  free(t->name);
  free(t);
}

const char *
q7_topic_name(const q7_topic *t)
{
  return t ? t->name : NULL;
}

int32_t
q7_topic_partition_count(const q7_topic *t)
{
  return t ? t->count : q7__err(Q7_EINVAL, "q7_topic_partition_count: topic is NULL");
}

int
q7__partition_check(const q7_topic *t, int32_t index)
{
  if (index < 0)
    return q7__err(Q7_EINVAL, "topic %s: negative partition %d", t->name, (int)index);
  if (index >= t->count)
    return q7__err(Q7_ENOENT, "topic %s has %d partitions; no partition %d", t->name,
                   (int)t->count, (int)index);
  return Q7_OK;
}

int
q7__topic_pe_open(q7_topic *t, int32_t index, q7__pe **out)
{
  q7_partition *p = &t->parts[index];
  if (!p->pe) {
    int rc = q7__pe_get(t->q, t->name, t->id, index, false, &p->pe);
    if (rc)
      return rc;
  }
  *out = p->pe;
  return Q7_OK;
}

int
q7_topic_partition(q7_topic *t, int32_t index, q7_partition **out)
{
  if (!t || !out)
    return q7__err(Q7_EINVAL, "q7_topic_partition: %s is NULL", !t ? "topic" : "out");
  int rc = q7__partition_check(t, index);
  if (rc)
    return rc;
  q7__pe *pe;
  if ((rc = q7__topic_pe(t, index, &pe)))
    return rc;
  *out = &t->parts[index];
  return Q7_OK;
}

int
q7_topic_set(q7 *q, const char *name, const char *key, const char *value)
{
  MDB_txn *txn;
  q7__tmeta m;
  int rc, scope = 0;
  if (!q || !key || !value)
    return q7__err(Q7_EINVAL, "q7_topic_set: %s is NULL", !q ? "store" : !key ? "key" : "value");
  if ((rc = q7__name_check(name)))
    return rc;
  int k = q7__conf_key(key, &scope);
  if (k < 0 || !(scope & Q7S_TOPIC))
    return q7__err(Q7_EINVAL, "config %s is not a topic config", key);
  if (k == Q7K_REPLICATION_FACTOR)
    return q7__err(Q7_EINVAL, "replication.factor of topic %s cannot be altered (replicas are "
                   "placed when the topic is created)", name);
  if ((rc = q7__meta_begin(q, 0, &txn)))
    return rc;
  if ((rc = q7__tmeta_get(q, txn, name, &m))) {
    mdb_txn_abort(txn);
    return rc;
  }
  if (!(rc = q7_conf_set(m.conf, key, value)) && !(rc = topic_conf_check(q, m.conf, false)) &&
      !(rc = tmeta_put(q, txn, name, &m))) {
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc)
      rc = q7__mdb_err(rc, "commit topic config");
  }
  if (txn)
    mdb_txn_abort(txn);
  q7__tmeta_free(&m);
  if (!rc && q->n_mirrors)
    rc = q7__replica_sync_meta(q);
  return rc;
}

int
q7__topic_put_conf(q7 *q, const char *name, const q7_conf *conf)
{
  MDB_txn *txn;
  q7__tmeta m;
  int rc;
  if ((rc = q7__meta_begin(q, 0, &txn)))
    return rc;
  if ((rc = q7__tmeta_get(q, txn, name, &m))) {
    mdb_txn_abort(txn);
    return rc;
  }
  q7_conf *c;
  if ((rc = q7_conf_dup(conf, &c)) == Q7_OK) {
    q7_conf_destroy(m.conf);
    m.conf = c;
    rc = tmeta_put(q, txn, name, &m);
  }
  if (!rc) {
    rc = mdb_txn_commit(txn);
    txn = NULL;
    rc = rc ? q7__mdb_err(rc, "write topic config") : Q7_OK;
  }
  if (txn)
    mdb_txn_abort(txn);
  q7__tmeta_free(&m);
  return rc;
}

int
q7_topic_get(q7 *q, const char *name, const char *key, char *buf, size_t *len)
{
  q7__tmeta m;
  int rc, scope = 0;
  if (!q || !key || !len)
    return q7__err(Q7_EINVAL, "q7_topic_get: %s is NULL", !q ? "store" : !key ? "key" : "len");
  if ((rc = q7__name_check(name)))
    return rc;
  if (q7__conf_key(key, &scope) < 0 || !(scope & Q7S_TOPIC))
    return q7__err(Q7_EINVAL, "config %s is not a topic config", key);
  rc = q7__tmeta_load(q, name, &m);
  if (rc)
    return rc;
  rc = q7_conf_get(m.conf, key, buf, len);
  q7__tmeta_free(&m);
  return rc;
}

int
q7_partition_offsets(q7_partition *p, int64_t *log_start, int64_t *high_watermark)
{
  int64_t ls, hw;
  if (!p)
    return q7__err(Q7_EINVAL, "q7_partition_offsets: partition is NULL");
  int rc = q7__pe_offsets_now(p->pe, &ls, &hw);
  if (rc)
    return rc;
  if (log_start)
    *log_start = ls;
  if (high_watermark)
    *high_watermark = hw;
  return Q7_OK;
}

int
q7_partition_read(q7_partition *p, int64_t offset, q7_record *out, size_t max)
{
  if (!p)
    return q7__err(Q7_EINVAL, "q7_partition_read: partition is NULL");
  q7_topic *t = p->topic;
  /* Release what the previous read of this topic handle handed out. */
  for (int32_t i = 0; i < t->count; i++) {
    if (t->parts[i].rtxn) {
      q7__pe_read_end(t->parts[i].pe, t->parts[i].rtxn);
      t->parts[i].rtxn = NULL;
    }
    q7__arena_reset(&t->parts[i].arena);
  }
  if (!out && max)
    return q7__err(Q7_EINVAL, "q7_partition_read: out is NULL with max %zu", max);
  if (offset < 0)
    return q7__err(Q7_EINVAL, "q7_partition_read: negative offset %" PRId64, offset);
  MDB_txn *txn;
  int64_t ls, hw;
  int rc = q7__pe_read_begin(p->pe, &txn);
  if (rc)
    return rc;
  if ((rc = q7__pe_offsets(p->pe, txn, &ls, &hw)))
    goto out;
  if (offset < ls || offset > hw) {
    rc = q7__err(Q7_ERANGE,
                 "topic %s partition %d: offset %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
                 t->name, (int)p->index, offset, ls, hw);
    goto out;
  }
  if (offset == hw || !max) {
    rc = 0;
    goto out;
  }
  if ((int64_t)max > hw - offset)
    max = (size_t)(hw - offset); /* never above the high watermark */
  rc = q7__pe_read(p->pe, txn, offset, out, max, &p->arena, &p->seen);
  if (rc > 0) {
    p->rtxn = txn;
    return rc;
  }
out:
  q7__pe_read_end(p->pe, txn);
  return rc;
}
