/* group.c - consumer groups inside one process: members of a group on a
 * topic share its partitions (range or roundrobin, Kafka's strategies).
 *
 * Ownership is handed over, never shared: a member first gives up the
 * partitions it no longer owns (committing its position when auto-commit is
 * on), and only then may another claim them, starting from the committed
 * offset.  So in no generation does a partition have two readers. */
#include "q7_int.h"

#include <stdlib.h>

struct q7__group {
  struct q7__group *next;
  char *name, *topic;
  int32_t partitions;
  uint64_t generation, next_member;
  q7_consumer *members;           /* in join order */
  size_t n_members;
  q7_consumer **owner;            /* per partition, NULL: free */
};

static struct q7__group *
group_find(q7 *q, const char *name, const char *topic)
{
  for (struct q7__group *g = q->groups; g; g = g->next)
    if (!strcmp(g->name, name) && !strcmp(g->topic, topic))
      return g;
  return NULL;
}

int
q7__group_join(q7_consumer *c)
{
  q7 *q = c->q;
  q7_topic *t;
  int rc = q7_topic_open(q, c->sub_topic, &t);
  if (rc)
    return rc;
  int32_t count = t->count;
  q7_topic_close(t);

  pthread_mutex_lock(&q->lock);
  struct q7__group *g = group_find(q, c->group, c->sub_topic);
  if (!g) {
    g = calloc(1, sizeof *g);
    if (!g || !(g->name = strdup(c->group)) || !(g->topic = strdup(c->sub_topic)) ||
        !(g->owner = calloc((size_t)count, sizeof *g->owner))) {
      if (g) {
        free(g->name);
        free(g->topic);
      }
      free(g);
      pthread_mutex_unlock(&q->lock);
      return q7__err(Q7_ENOMEM, "out of memory");
    }
    g->partitions = count;
    g->next = q->groups;
    q->groups = g;
  }
  c->member_id = ++g->next_member;
  c->grp_next = NULL;
  q7_consumer **pp = &g->members;
  while (*pp)
    pp = &(*pp)->grp_next;
  *pp = c;
  g->n_members++;
  g->generation++;
  c->grp = g;
  c->generation = 0;
  pthread_mutex_unlock(&q->lock);
  return Q7_OK;
}

/* Does member number @k of @m own partition @p of @n? */
static bool
target(int strategy, size_t k, size_t m, int32_t p, int32_t n)
{
  if (strategy == 1)
    return (size_t)p % m == k;
  size_t per = (size_t)n / m, extra = (size_t)n % m;
  size_t lo = k * per + (k < extra ? k : extra);
  size_t hi = lo + per + (k < extra ? 1 : 0);
  return (size_t)p >= lo && (size_t)p < hi;
}

int
q7__group_sync(q7_consumer *c)
{
  q7 *q = c->q;
  struct q7__group *g = c->grp;
  int rc = Q7_OK;

  pthread_mutex_lock(&q->lock);
  if (c->generation == g->generation) {
    pthread_mutex_unlock(&q->lock);
    return Q7_OK;
  }
  uint64_t gen = g->generation;
  size_t k = 0, m = g->n_members;
  for (q7_consumer *x = g->members; x && x != c; x = x->grp_next)
    k++;
  pthread_mutex_unlock(&q->lock);

  /* Give up what is no longer ours. */
  for (size_t i = c->n_as; i-- > 0;) {
    int32_t p = c->as[i].partition;
    if (target(c->strategy, k, m, p, g->partitions))
      continue;
    if ((rc = q7__consumer_drop(c, i, c->auto_commit)))
      break;
    pthread_mutex_lock(&q->lock);
    if (g->owner[p] == c)
      g->owner[p] = NULL;
    pthread_mutex_unlock(&q->lock);
    q7__notify_bump(&q->notify); /* wake the member that takes it */
  }
  if (rc)
    return rc;

  /* Claim what is ours and free. */
  bool complete = true;
  for (int32_t p = 0; p < g->partitions && !rc; p++) {
    if (!target(c->strategy, k, m, p, g->partitions))
      continue;
    bool have = false;
    for (size_t i = 0; i < c->n_as; i++)
      have |= c->as[i].partition == p;
    if (have)
      continue;
    pthread_mutex_lock(&q->lock);
    bool free_ = g->owner[p] == NULL;
    if (free_)
      g->owner[p] = c;
    pthread_mutex_unlock(&q->lock);
    if (!free_) {
      complete = false; /* its owner has not let go yet */
      continue;
    }
    q7_topic *t;
    if (!(rc = q7_topic_open(q, g->topic, &t)) &&
        (rc = q7__consumer_take(c, t, p, Q7_OFFSET_COMMITTED)))
      q7_topic_close(t);
    if (rc) {
      pthread_mutex_lock(&q->lock);
      g->owner[p] = NULL;
      pthread_mutex_unlock(&q->lock);
    }
  }
  if (!rc && complete)
    c->generation = gen;
  return rc;
}

void
q7__group_leave(q7_consumer *c)
{
  q7 *q = c->q;
  struct q7__group *g = c->grp;
  pthread_mutex_lock(&q->lock);
  for (q7_consumer **pp = &g->members; *pp; pp = &(*pp)->grp_next) {
    if (*pp == c) {
      *pp = c->grp_next;
      break;
    }
  }
  g->n_members--;
  for (int32_t p = 0; p < g->partitions; p++)
    if (g->owner[p] == c)
      g->owner[p] = NULL;
  g->generation++;
  if (!g->n_members) {
    for (struct q7__group **gp = &q->groups; *gp; gp = &(*gp)->next) {
      if (*gp == g) {
        *gp = g->next;
        break;
      }
    }
    free(g->owner);
    free(g->name);
    free(g->topic);
    free(g);
  }
  c->grp = NULL;
  pthread_mutex_unlock(&q->lock);
  q7__notify_bump(&q->notify);
}

void
q7__group_free_all(q7 *q)
{
  while (q->groups) {
    struct q7__group *g = q->groups;
    q->groups = g->next;
    free(g->owner);
    free(g->name);
    free(g->topic);
    free(g);
  }
}
