/* consumer.c - assignment, positions, poll, commits. */
#include "q7_int.h"

#include <inttypes.h>
#include <stdlib.h>

#define WAIT_SLICE_MS 100

int
q7_consumer_new(q7 *q, const char *group, const q7_conf *conf, q7_consumer **out)
{
  int rc;
  if (!q || !out)
    return q7__err(Q7_EINVAL, "q7_consumer_new: %s is NULL", !q ? "store" : "out");
  if (group && (rc = q7__group_check(group)))
    return rc;
  q7_consumer *c = calloc(1, sizeof *c);
  if (!c || (group && !(c->group = strdup(group)))) {
    free(c);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  c->q = q;
  c->reset = q7__conf_choice(conf, Q7K_AUTO_OFFSET_RESET);
  c->auto_commit = group && q7__conf_bool(conf, Q7K_ENABLE_AUTO_COMMIT);
  c->auto_commit_ms = q7__conf_int(conf, Q7K_AUTO_COMMIT_MS);
  c->next_auto_commit = q7__mono_ms() + c->auto_commit_ms;
  c->max_poll = q7__conf_int(conf, Q7K_MAX_POLL_RECORDS);
  c->strategy = q7__conf_choice(conf, Q7K_ASSIGNMENT_STRATEGY);
  c->session_timeout = q7__conf_int(conf, Q7K_SESSION_TIMEOUT_MS);
  c->hb_interval = q7__conf_int(conf, Q7K_HEARTBEAT_MS);
  if (c->hb_interval > c->session_timeout / 3)
    c->hb_interval = c->session_timeout / 3; /* renew well before expiry */
  if (conf) {
    c->rebalance_cb = conf->rb_cb;
    c->rebalance_arg = conf->rb_arg;
  }
  int64_t ahead = q7__conf_int(conf, Q7K_FETCH_AHEAD_BYTES);
  if (ahead && (rc = q7__ahead_new((size_t)ahead, &c->ahead))) {
    free(c->group);
    free(c);
    return rc;
  }
  q7__handle_ref(q, 1);
  *out = c;
  return Q7_OK;
}

static void
release_reads(q7_consumer *c)
{
  for (size_t i = 0; i < c->n_as; i++) {
    if (c->as[i].rtxn) {
      q7__pe_read_end(c->as[i].pe, c->as[i].rtxn);
      c->as[i].rtxn = NULL;
    }
    q7__arena_reset(&c->as[i].arena);
  }
}

static q7__assign *
find(q7_consumer *c, const char *topic, int32_t partition, size_t *idx)
{
  for (size_t i = 0; i < c->n_as; i++) {
    if (c->as[i].partition == partition && !strcmp(c->as[i].t->name, topic)) {
      if (idx)
        *idx = i;
      return &c->as[i];
    }
  }
  return NULL;
}

/* Apply auto.offset.reset; @why names the cause for the error message. */
static int
reset_position(q7_consumer *c, q7__assign *a, int64_t ls, int64_t hw, const char *why)
{
  switch (c->reset) {
  case 1: a->position = ls; return Q7_OK;
  case 0: a->position = hw; return Q7_OK;
  default:
    return q7__err(why[0] == 'n' ? Q7_ENOENT : Q7_ERANGE,
                   "topic %s partition %d: %s and auto.offset.reset is none", a->t->name,
                   (int)a->partition, why);
  }
}

int
q7__consumer_resolve(q7_consumer *c, q7__assign *a, int64_t offset)
{
  int64_t ls, hw;
  int rc = q7__pe_offsets_now(a->pe, &ls, &hw);
  if (rc)
    return rc;
  if (offset == Q7_OFFSET_BEGINNING) {
    a->position = ls;
  } else if (offset == Q7_OFFSET_END) {
    a->position = hw;
  } else if (offset == Q7_OFFSET_COMMITTED) {
    int64_t next;
    MDB_txn *txn;
    rc = Q7_ENOENT;
    if (c->group && !(rc = q7__meta_begin(c->q, MDB_RDONLY, &txn))) {
      rc = q7__offsets_get(c->q, txn, c->group, a->t->name, a->partition, &next);
      mdb_txn_abort(txn);
    }
    if (rc == Q7_OK)
      a->position = next;
    else if (rc == Q7_ENOENT)
      return reset_position(c, a, ls, hw, "no committed offset");
    else
      return rc;
  } else if (offset < 0) {
    return q7__err(Q7_EINVAL, "topic %s partition %d: offset %" PRId64 " is not valid",
                   a->t->name, (int)a->partition, offset);
  } else {
    a->position = offset; /* checked against the log at poll, as Kafka does */
  }
  return Q7_OK;
}

int
q7__consumer_take(q7_consumer *c, q7_topic *t, int32_t partition, int64_t offset)
{
  int rc;
  if (c->n_as == c->cap_as) {
    size_t cap = c->cap_as ? c->cap_as * 2 : 8;
    q7__assign *as = realloc(c->as, cap * sizeof *as);
    if (!as)
      return q7__err(Q7_ENOMEM, "out of memory");
    c->as = as;
    c->cap_as = cap;
  }
  q7__assign *a = &c->as[c->n_as];
  memset(a, 0, sizeof *a);
  a->t = t;
  a->partition = partition;
  if ((rc = q7__topic_pe(t, partition, &a->pe)) || (rc = q7__consumer_resolve(c, a, offset)))
    return rc;
  c->n_as++;
  return Q7_OK;
}

int
q7__consumer_drop(q7_consumer *c, size_t i, bool commit)
{
  q7__assign *a = &c->as[i];
  int rc = Q7_OK;
  if (commit && c->group) {
    q7__commit_req r = { a->t->name, a->partition, a->position, a->pe, a->rtxn };
    rc = q7__offsets_commit(c->q, c->group, c->sub_topic ? c->member_id : 0, &r, 1);
  }
  if (a->rtxn)
    q7__pe_read_end(a->pe, a->rtxn);
  q7__arena_free(&a->arena);
  q7__ahead_forget(c->ahead, a->pe);
  q7_topic_close(a->t);
  c->as[i] = c->as[--c->n_as];
  return rc;
}

static int
check_tp(q7_consumer *c, const char *topic, int32_t partition, const char *fn)
{
  int rc;
  if (!c)
    return q7__err(Q7_EINVAL, "%s: consumer is NULL", fn);
  if ((rc = q7__name_check(topic)))
    return rc;
  if (partition < 0)
    return q7__err(Q7_EINVAL, "%s: negative partition %d", fn, (int)partition);
  return Q7_OK;
}

int
q7_consumer_assign(q7_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
  int rc = check_tp(c, topic, partition, "q7_consumer_assign");
  if (rc)
    return rc;
  if (c->sub_topic)
    return q7__err(Q7_ESTATE, "q7_consumer_assign: consumer is subscribed to %s", topic);
  if (offset < 0 && offset != Q7_OFFSET_BEGINNING && offset != Q7_OFFSET_END &&
      offset != Q7_OFFSET_COMMITTED)
    return q7__err(Q7_EINVAL, "q7_consumer_assign: offset %" PRId64 " is not valid", offset);
  q7__assign *a = find(c, topic, partition, NULL);
  if (a) {
    int64_t keep = a->position;
    if ((rc = q7__consumer_resolve(c, a, offset)))
      a->position = keep;
    return rc;
  }
  q7_topic *t;
  if ((rc = q7_topic_open(c->q, topic, &t)))
    return rc;
  if ((rc = q7__partition_check(t, partition)) || (rc = q7__consumer_take(c, t, partition, offset)))
    q7_topic_close(t);
  return rc;
}

int
q7_consumer_unassign(q7_consumer *c, const char *topic, int32_t partition)
{
  size_t i;
  int rc = check_tp(c, topic, partition, "q7_consumer_unassign");
  if (rc)
    return rc;
  if (c->sub_topic)
    return q7__err(Q7_ESTATE, "q7_consumer_unassign: consumer is subscribed");
  if (!find(c, topic, partition, &i))
    return q7__err(Q7_ENOENT, "topic %s partition %d is not assigned", topic, (int)partition);
  return q7__consumer_drop(c, i, false);
}

int
q7_consumer_subscribe(q7_consumer *c, const char *topic)
{
  int rc;
  if (!c)
    return q7__err(Q7_EINVAL, "q7_consumer_subscribe: consumer is NULL");
  if ((rc = q7__name_check(topic)))
    return rc;
  if (!c->group)
    return q7__err(Q7_ESTATE, "q7_consumer_subscribe: consumer has no group");
  if (c->sub_topic)
    return q7__err(Q7_EEXIST, "q7_consumer_subscribe: already subscribed");
  if (c->n_as)
    return q7__err(Q7_ESTATE, "q7_consumer_subscribe: consumer has manual assignments");
  q7_topic *t;
  if ((rc = q7_topic_open(c->q, topic, &t)))
    return rc;
  q7_topic_close(t);
  c->sub_topic = strdup(topic);
  if (!c->sub_topic)
    return q7__err(Q7_ENOMEM, "out of memory");
  if ((rc = q7__group_join(c))) {
    free(c->sub_topic);
    c->sub_topic = NULL;
  }
  return rc;
}

/* Read from the assigned partitions, round robin, into @out. */
static int
fetch(q7_consumer *c, q7_record *out, size_t max)
{
  size_t n = 0;
  for (size_t k = 0; k < c->n_as && n < max; k++) {
    q7__assign *a = &c->as[(c->rr + k) % c->n_as];
    MDB_txn *txn = NULL;
    int64_t ls, hw;
    int rc = q7__pe_read_begin(a->pe, &txn);
    if (rc)
      txn = NULL;
    if (!rc)
      rc = q7__pe_offsets(a->pe, txn, &ls, &hw);
    if (!rc && (a->position < ls || a->position > hw))
      rc = reset_position(c, a, ls, hw, a->position < ls ? "position is below the log start"
                                                         : "position is above the log end");
    if (!rc && a->position < hw) {
      size_t room = max - n;
      if ((int64_t)room > hw - a->position)
        room = (size_t)(hw - a->position); /* never above the high watermark */
      rc = q7__pe_read(a->pe, txn, a->position, out + n, room, &a->arena, &a->seen);
    }
    if (rc > 0) {
      a->rtxn = txn;
      a->position += rc;
      n += (size_t)rc;
      /* Behind: map ahead what the next polls will read.  A consumer
       * that keeps up has nothing to map, and starts no thread. */
      if (c->ahead && a->position < hw)
        q7__ahead_note(c->ahead, a->pe, a->position);
      continue;
    }
    if (txn)
      q7__pe_read_end(a->pe, txn);
    if (rc < 0)
      return n ? (int)n : rc;
  }
  if (c->n_as)
    c->rr = (c->rr + 1) % c->n_as;
  return (int)n;
}

int
q7_consumer_poll(q7_consumer *c, q7_record *out, size_t max, int timeout_ms)
{
  if (!c)
    return q7__err(Q7_EINVAL, "q7_consumer_poll: consumer is NULL");
  if (!out && max)
    return q7__err(Q7_EINVAL, "q7_consumer_poll: out is NULL with max %zu", max);
  release_reads(c);
  if ((int64_t)max > c->max_poll)
    max = (size_t)c->max_poll;
  int64_t start = q7__mono_ms();
  int rc;
  if (c->auto_commit && start >= c->next_auto_commit) {
    /* As Kafka's auto-commit: a failure (say, a position assigned past the
     * end, reset below) is retried at the next interval, never fatal. */
    c->next_auto_commit = start + c->auto_commit_ms;
    q7_consumer_commit(c);
  }
  for (;;) {
    uint32_t seq = q7__notify_seq(&c->q->notify);
    if (c->sub_topic && (rc = q7__group_sync(c)))
      return rc;
    if (!max)
      return 0;
    if ((rc = fetch(c, out, max)))
      return rc;
    int64_t left = timeout_ms < 0 ? WAIT_SLICE_MS : timeout_ms - (q7__mono_ms() - start);
    if (left <= 0)
      return 0;
    q7__notify_wait(&c->q->notify, seq, left < WAIT_SLICE_MS ? (int)left : WAIT_SLICE_MS);
  }
}

int
q7_consumer_seek(q7_consumer *c, const char *topic, int32_t partition, int64_t offset)
{
  int rc = check_tp(c, topic, partition, "q7_consumer_seek");
  if (rc)
    return rc;
  q7__assign *a = find(c, topic, partition, NULL);
  if (!a)
    return q7__err(Q7_ENOENT, "q7_consumer_seek: topic %s partition %d is not assigned", topic,
                   (int)partition);
  if (offset < 0 && offset != Q7_OFFSET_BEGINNING && offset != Q7_OFFSET_END)
    return q7__err(Q7_EINVAL, "q7_consumer_seek: offset %" PRId64 " is not valid", offset);
  if (offset >= 0) {
    int64_t ls, hw;
    if ((rc = q7__pe_offsets_now(a->pe, &ls, &hw)))
      return rc;
    if (offset < ls || offset > hw)
      return q7__err(Q7_ERANGE,
                     "q7_consumer_seek: topic %s partition %d: offset %" PRId64
                     " is outside [%" PRId64 ", %" PRId64 "]",
                     topic, (int)partition, offset, ls, hw);
  }
  return q7__consumer_resolve(c, a, offset);
}

int
q7_consumer_position(q7_consumer *c, const char *topic, int32_t partition, int64_t *next)
{
  int rc = check_tp(c, topic, partition, "q7_consumer_position");
  if (rc)
    return rc;
  if (!next)
    return q7__err(Q7_EINVAL, "q7_consumer_position: next is NULL");
  q7__assign *a = find(c, topic, partition, NULL);
  if (!a)
    return q7__err(Q7_ENOENT, "q7_consumer_position: topic %s partition %d is not assigned",
                   topic, (int)partition);
  *next = a->position;
  return Q7_OK;
}

int
q7_consumer_commit(q7_consumer *c)
{
  if (!c)
    return q7__err(Q7_EINVAL, "q7_consumer_commit: consumer is NULL");
  if (!c->group)
    return q7__err(Q7_ESTATE, "q7_consumer_commit: consumer has no group");
  if (!c->n_as)
    return Q7_OK;
  q7__commit_req *r = malloc(c->n_as * sizeof *r);
  if (!r)
    return q7__err(Q7_ENOMEM, "out of memory");
  for (size_t i = 0; i < c->n_as; i++)
    r[i] = (q7__commit_req){ c->as[i].t->name, c->as[i].partition, c->as[i].position,
                             c->as[i].pe, c->as[i].rtxn };
  int rc = q7__offsets_commit(c->q, c->group, c->sub_topic ? c->member_id : 0, r, c->n_as);
  free(r);
  return rc;
}

int
q7_consumer_commit_offset(q7_consumer *c, const char *topic, int32_t partition, int64_t next)
{
  int rc = check_tp(c, topic, partition, "q7_consumer_commit_offset");
  if (rc)
    return rc;
  if (!c->group)
    return q7__err(Q7_ESTATE, "q7_consumer_commit_offset: consumer has no group");
  if (next < 0)
    return q7__err(Q7_EINVAL, "q7_consumer_commit_offset: negative offset %" PRId64, next);
  q7__assign *a = find(c, topic, partition, NULL);
  if (a) {
    q7__commit_req r = { a->t->name, partition, next, a->pe, a->rtxn };
    return q7__offsets_commit(c->q, c->group, c->sub_topic ? c->member_id : 0, &r, 1);
  }
  q7_topic *t;
  q7__pe *pe;
  if ((rc = q7_topic_open(c->q, topic, &t)))
    return rc;
  if (!(rc = q7__partition_check(t, partition)) && !(rc = q7__topic_pe(t, partition, &pe))) {
    q7__commit_req r = { t->name, partition, next, pe, NULL };
    rc = q7__offsets_commit(c->q, c->group, c->sub_topic ? c->member_id : 0, &r, 1);
  }
  q7_topic_close(t);
  return rc;
}

int
q7_consumer_assignment(q7_consumer *c, const char **topics, int32_t *partitions, size_t max)
{
  if (!c || (max && (!topics || !partitions)))
    return q7__err(Q7_EINVAL, "q7_consumer_assignment: NULL argument");
  /* As Kafka's assignment(): what poll left, never a rebalance of its own
   * (one here would hand partitions over between processing and commit). */
  for (size_t i = 0; i < c->n_as && i < max; i++) {
    topics[i] = c->as[i].t->name;
    partitions[i] = c->as[i].partition;
  }
  return (int)c->n_as;
}

int
q7_consumer_close(q7_consumer *c)
{
  if (!c)
    return Q7_OK;
  int rc = Q7_OK;
  release_reads(c);
  q7__ahead_free(c->ahead);
  c->ahead = NULL;
  if (c->sub_topic && c->rebalance_cb && c->n_as) {
    int32_t *parts = malloc(c->n_as * sizeof *parts);
    for (size_t i = 0; parts && i < c->n_as; i++)
      parts[i] = c->as[i].partition;
    if (parts)
      c->rebalance_cb(c, Q7_REBALANCE_REVOKED, c->sub_topic, parts, c->n_as, c->rebalance_arg);
    free(parts);
  }
  if (c->auto_commit)
    rc = q7_consumer_commit(c);
  if (c->sub_topic)
    q7__group_leave(c);
  while (c->n_as)
    q7__consumer_drop(c, c->n_as - 1, false);
  q7__handle_ref(c->q, -1);
  free(c->as);
  free(c->group);
  free(c->sub_topic);
  free(c);
  return rc;
}
