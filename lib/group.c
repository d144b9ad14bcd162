/* group.c - consumer groups across threads and processes, with no server:
 * membership lives in the store's metadata environment.
 *
 * Table "groups": key group NUL topic, value
 *   u32 version, i32 partitions, u64 generation, u64 next member id,
 *   u32 members, then per member { u64 id; i32 pid; u32 pid namespace; i64 lease
 *   expiry (wall ms); }, then per partition the u64 id of its owner (0: free).
 *
 * A member joins (generation + 1), renews its lease from poll every
 * heartbeat.interval.ms, and leaves at close (generation + 1).  A member
 * whose lease passed session.timeout.ms, or whose process is gone, is
 * expired by the next member that looks (generation + 1) and its partitions
 * are freed without a commit: a zombie cannot move the group's offsets,
 * since a commit is refused (Q7_ESTATE) unless the committer owns the
 * partition in the same transaction.
 *
 * Ownership is handed over, never shared: a member gives up the partitions
 * the strategy no longer gives it (committing first when auto-commit is on),
 * and another claims a partition only once it is free.  So no partition has
 * two owners in any generation, in any process. */
#include "q7_int.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define GS_VERSION 1u
#define LIVE_CHECK_MS 10
#define KEY_MAX (Q7__MAX_GROUP_LEN + 1 + 249 + 1)

typedef struct gmember {
  uint64_t id;
  int32_t pid;
  uint32_t pidns;                 /* inode of its PID namespace; 0: unknown */
  int64_t lease;
} gmember;

/* This process's PID namespace (the inode of /proc/self/ns/pid); the
 * store keeps it from q7_open (a stat through procfs per poll cost more
 * than the rest of a poll). */
uint32_t
q7__pidns(void)
{
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? (uint32_t)st.st_ino : 0;
}

typedef struct gstate {
  int32_t partitions;
  uint64_t generation, next_id;
  uint32_t n;
  gmember *m;                     /* sorted by id (join order) */
  uint64_t *owner;
} gstate;

static void
gs_free(gstate *g)
{
  free(g->m);
  free(g->owner);
  memset(g, 0, sizeof *g);
}

static int64_t
wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t
gkey(unsigned char *k, const char *group, const char *topic)
{
  size_t g = strlen(group), t = strlen(topic);
  memcpy(k, group, g + 1);
  memcpy(k + g + 1, topic, t);
  return g + 1 + t;
}

/* Load the state of (@group, @topic) for a topic of @partitions. */
static int
gs_load(q7 *q, MDB_txn *txn, const char *group, const char *topic, int32_t partitions,
        gstate *g)
{
  unsigned char kb[KEY_MAX];
  MDB_val k = { gkey(kb, group, topic), kb }, v;
  memset(g, 0, sizeof *g);
  g->partitions = partitions;
  g->next_id = 1;
  int rc = mdb_get(txn, q->dbi_groups, &k, &v);
  if (rc && rc != MDB_NOTFOUND)
    return q7__mdb_err(rc, "read group membership");
  const unsigned char *p = v.mv_data;
  uint32_t ver = 0, n = 0;
  int32_t parts = 0;
  if (rc == 0 && v.mv_size >= 28) {
    memcpy(&ver, p, 4);
    memcpy(&parts, p + 4, 4);
    memcpy(&g->generation, p + 8, 8);
    memcpy(&g->next_id, p + 16, 8);
    memcpy(&n, p + 24, 4);
  }
  size_t need = 28 + (size_t)n * sizeof(gmember) + (size_t)(parts > 0 ? parts : 0) * 8;
  if (rc == 0 && (ver != GS_VERSION || v.mv_size != need || parts < 1))
    return q7__err(Q7_ECORRUPT, "group \"%s\" topic %s: malformed membership record", group,
                   topic);
  if (!(g->owner = calloc((size_t)partitions, sizeof *g->owner)) ||
      !(g->m = calloc(n + 1, sizeof *g->m))) {
    gs_free(g);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  if (rc == 0) {
    g->n = n;
    memcpy(g->m, p + 28, n * sizeof(gmember));
    if (parts == partitions) /* else the topic was re-created: owners reset */
      memcpy(g->owner, p + 28 + n * sizeof(gmember), (size_t)parts * 8);
  }
  return Q7_OK;
}

static int
gs_store(q7 *q, MDB_txn *txn, const char *group, const char *topic, const gstate *g)
{
  unsigned char kb[KEY_MAX];
  MDB_val k = { gkey(kb, group, topic), kb };
  if (g->n == 0) {
    int rc = mdb_del(txn, q->dbi_groups, &k, NULL);
    return rc && rc != MDB_NOTFOUND ? q7__mdb_err(rc, "write group membership") : Q7_OK;
  }
  MDB_val v = { 28 + g->n * sizeof(gmember) + (size_t)g->partitions * 8, NULL };
  int rc = mdb_put(txn, q->dbi_groups, &k, &v, MDB_RESERVE);
  if (rc)
    return q7__mdb_err(rc, "write group membership");
  unsigned char *p = v.mv_data;
  uint32_t ver = GS_VERSION;
  memcpy(p, &ver, 4);
  memcpy(p + 4, &g->partitions, 4);
  memcpy(p + 8, &g->generation, 8);
  memcpy(p + 16, &g->next_id, 8);
  memcpy(p + 24, &g->n, 4);
  memcpy(p + 28, g->m, g->n * sizeof(gmember));
  memcpy(p + 28 + g->n * sizeof(gmember), g->owner, (size_t)g->partitions * 8);
  return Q7_OK;
}

/* Is process @pid gone?  A process killed but not yet reaped by its parent
 * still answers kill(pid, 0): its state in /proc says zombie (Z) or dead (X).
 * Only meaningful within one PID namespace: member_dead asks it only then. */
static bool
process_gone(int32_t pid)
{
  if (kill(pid, 0) < 0)
    return errno == ESRCH;
  char path[64], buf[256];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *rp = strrchr(buf, ')'); /* the name may hold spaces and ')' */
  return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* A member is gone when its lease passed or its process no longer exists. */
static bool
member_dead(const gmember *m, int64_t now, uint32_t ns)
{
  if (m->lease < now)
    return true;
  /* A pid means something only in the member's own PID namespace; in
   * another (a container sharing the store) its lease alone decides.  ns
   * 0: by the lease alone. */
  if (!m->pidns || !ns || m->pidns != ns)
    return false;
  return m->pid > 0 && m->pid != getpid() && process_gone(m->pid);
}

/* Expire dead members and free what they owned; true if any was. */
static bool
gs_expire(gstate *g, int64_t now, uint32_t ns)
{
  bool changed = false;
  for (uint32_t i = 0; i < g->n;) {
    if (!member_dead(&g->m[i], now, ns)) {
      i++;
      continue;
    }
    for (int32_t p = 0; p < g->partitions; p++)
      if (g->owner[p] == g->m[i].id)
        g->owner[p] = 0;
    memmove(&g->m[i], &g->m[i + 1], (g->n - i - 1) * sizeof *g->m);
    g->n--;
    changed = true;
  }
  if (changed)
    g->generation++;
  return changed;
}

static gmember *
gs_find(gstate *g, uint64_t id)
{
  for (uint32_t i = 0; i < g->n; i++)
    if (g->m[i].id == id)
      return &g->m[i];
  return NULL;
}

/* Does the strategy give partition @p of @n to member number @k of @m? */
static bool
target(int strategy, size_t k, size_t m, int32_t p, int32_t n)
{
  if (m == 0)
    return false;
  if (strategy == 1)
    return (size_t)p % m == k;
  size_t per = (size_t)n / m, extra = (size_t)n % m;
  size_t lo = k * per + (k < extra ? k : extra);
  size_t hi = lo + per + (k < extra ? 1 : 0);
  return (size_t)p >= lo && (size_t)p < hi;
}

static size_t
member_index(const gstate *g, uint64_t id)
{
  for (uint32_t i = 0; i < g->n; i++)
    if (g->m[i].id == id)
      return i;
  return SIZE_MAX;
}

static int
topic_partitions(q7 *q, MDB_txn *txn, const char *topic, int32_t *n)
{
  q7__tmeta tm;
  int rc = q7__tmeta_get(q, txn, topic, &tm);
  if (!rc) {
    *n = tm.partitions;
    q7__tmeta_free(&tm);
  }
  return rc;
}

/* A transaction on the metadata (@flags: MDB_RDONLY or 0) and the state of
 * @c's group on its topic; on error nothing is left open. */
static int
gs_begin(q7_consumer *c, unsigned flags, MDB_txn **txn, gstate *g)
{
  int32_t parts;
  int rc = q7__meta_begin(c->q, flags, txn);
  if (rc)
    return rc;
  if ((rc = topic_partitions(c->q, *txn, c->sub_topic, &parts)) ||
      (rc = gs_load(c->q, *txn, c->group, c->sub_topic, parts, g)))
    mdb_txn_abort(*txn);
  return rc;
}

int
q7__group_join(q7_consumer *c)
{
  q7 *q = c->q;
  MDB_txn *txn;
  gstate g;
  int rc;
  if ((rc = gs_begin(c, 0, &txn, &g)))
    return rc;
  int64_t now = wall_ms();
  gs_expire(&g, now, c->q->pidns);
  gmember *m = &g.m[g.n++];
  m->id = g.next_id++;
  m->pid = (int32_t)getpid();
  m->pidns = c->q->pidns;
  m->lease = now + c->session_timeout;
  g.generation++;
  if (!(rc = gs_store(q, txn, c->group, c->sub_topic, &g))) {
    rc = mdb_txn_commit(txn);
    txn = NULL;
    rc = rc ? q7__mdb_err(rc, "join group") : Q7_OK;
  }
  if (txn)
    mdb_txn_abort(txn);
  if (!rc) {
    c->member_id = m->id;
    c->generation = 0;
    c->last_hb = q7__mono_ms();
    c->joined = true;
    q7__notify_bump(&q->notify); /* the others rebalance */
  }
  gs_free(&g);
  return rc;
}

void
q7__group_leave(q7_consumer *c)
{
  q7 *q = c->q;
  MDB_txn *txn;
  gstate g;
  if (!c->joined)
    return;
  c->joined = false;
  if (gs_begin(c, 0, &txn, &g))
    return;
  size_t i = member_index(&g, c->member_id);
  if (i != SIZE_MAX) {
    for (int32_t p = 0; p < g.partitions; p++)
      if (g.owner[p] == c->member_id)
        g.owner[p] = 0;
    memmove(&g.m[i], &g.m[i + 1], (g.n - i - 1) * sizeof *g.m);
    g.n--;
    g.generation++;
    if (!gs_store(q, txn, c->group, c->sub_topic, &g) && !mdb_txn_commit(txn)) {
      txn = NULL;
      q7__notify_bump(&q->notify);
    }
  }
  if (txn)
    mdb_txn_abort(txn);
  gs_free(&g);
}

int
q7__group_owns(q7 *q, MDB_txn *txn, const char *group, const char *topic, int32_t partition,
               uint64_t member)
{
  gstate g;
  int32_t parts;
  int rc;
  if ((rc = topic_partitions(q, txn, topic, &parts)) ||
      (rc = gs_load(q, txn, group, topic, parts, &g)))
    return rc;
  bool ok = gs_find(&g, member) && partition < g.partitions && g.owner[partition] == member &&
            !member_dead(gs_find(&g, member), wall_ms(), q->pidns);
  uint64_t gen = g.generation;
  gs_free(&g);
  if (!ok)
    return q7__err(Q7_ESTATE,
                   "group \"%s\": member %" PRIu64 " does not own topic %s partition %d in "
                   "generation %" PRIu64 " (expired or rebalanced); commit refused",
                   group, member, topic, (int)partition, gen);
  return Q7_OK;
}

int
q7__group_owner(q7 *q, MDB_txn *txn, const char *group, const char *topic, int32_t partition,
                uint64_t *owner)
{
  gstate g;
  int32_t parts;
  int rc;
  *owner = 0;
  if ((rc = topic_partitions(q, txn, topic, &parts)) ||
      (rc = gs_load(q, txn, group, topic, parts, &g)))
    return rc;
  if (partition < g.partitions && g.owner[partition]) {
    gmember *m = gs_find(&g, g.owner[partition]);
    if (m && !member_dead(m, wall_ms(), q->pidns))
      *owner = m->id;
  }
  gs_free(&g);
  return Q7_OK;
}

static void
callback(q7_consumer *c, int event, const int32_t *parts, size_t n)
{
  if (c->rebalance_cb && n)
    c->rebalance_cb(c, event, c->sub_topic, parts, n, c->rebalance_arg);
}

/* Drop every assignment without committing: this member lost them. */
static void
drop_all(q7_consumer *c, int event)
{
  int32_t *lost = malloc((c->n_as ? c->n_as : 1) * sizeof *lost);
  size_t n = 0;
  for (size_t i = 0; i < c->n_as && lost; i++)
    lost[n++] = c->as[i].partition;
  while (c->n_as)
    q7__consumer_drop(c, c->n_as - 1, false);
  if (lost)
    callback(c, event, lost, n);
  free(lost);
}

/* The write step of a sync: expire the dead, renew this member's lease,
 * free @revoked, claim the free partitions the strategy gives it.
 * *fenced is set when this member was expired meanwhile. */
static int
sync_txn(q7_consumer *c, const int32_t *revoked, size_t n_rev, int32_t *claimed, size_t *n_claim,
         bool *kept, bool *complete, uint64_t *gen, bool *fenced)
{
  q7 *q = c->q;
  MDB_txn *txn;
  gstate g;
  int rc;
  *n_claim = 0;
  *complete = true;
  *fenced = false;
  if ((rc = gs_begin(c, 0, &txn, &g)))
    return rc;
  int64_t now = wall_ms();
  uint64_t gen0 = g.generation;
  gmember *me = gs_find(&g, c->member_id);
  if (!me || member_dead(me, now, q->pidns)) {
    *fenced = true;
    mdb_txn_abort(txn);
    gs_free(&g);
    return Q7_OK;
  }
  me->lease = now + c->session_timeout;
  gs_expire(&g, now, q->pidns);
  size_t k = member_index(&g, c->member_id);
  bool freed = false;
  for (size_t i = 0; i < n_rev; i++) {
    int32_t p = revoked[i];
    kept[i] = target(c->strategy, k, g.n, p, g.partitions);
    if (!kept[i] && p < g.partitions && g.owner[p] == c->member_id) {
      g.owner[p] = 0;
      freed = true;
    }
  }
  for (int32_t p = 0; p < g.partitions; p++) {
    if (!target(c->strategy, k, g.n, p, g.partitions) || g.owner[p] == c->member_id)
      continue;
    if (g.owner[p] == 0) {
      g.owner[p] = c->member_id;
      claimed[(*n_claim)++] = p;
    } else {
      *complete = false; /* its owner has not let go yet */
    }
  }
  /* Partitions this member owns but holds no assignment for (a claim whose
   * take failed) are taken again. */
  for (int32_t p = 0; p < g.partitions; p++) {
    if (g.owner[p] != c->member_id)
      continue;
    bool have = false, listed = false;
    for (size_t i = 0; i < c->n_as; i++)
      have |= c->as[i].partition == p;
    for (size_t i = 0; i < *n_claim; i++)
      listed |= claimed[i] == p;
    if (!have && !listed && target(c->strategy, k, g.n, p, g.partitions))
      claimed[(*n_claim)++] = p;
  }
  *gen = g.generation;
  if (!(rc = gs_store(q, txn, c->group, c->sub_topic, &g))) {
    rc = mdb_txn_commit(txn);
    txn = NULL;
    rc = rc ? q7__mdb_err(rc, "group heartbeat") : Q7_OK;
  }
  if (txn)
    mdb_txn_abort(txn);
  if (!rc && (freed || g.generation != gen0))
    q7__notify_bump(&q->notify);
  gs_free(&g);
  return rc;
}

int
q7__group_sync(q7_consumer *c)
{
  q7 *q = c->q;
  MDB_txn *txn;
  gstate g;
  int rc;
  int64_t mono = q7__mono_ms();

  if (!c->joined && (rc = q7__group_join(c)))
    return rc;
  /* 1. A look, read-only: is there anything to do? */
  if ((rc = gs_begin(c, MDB_RDONLY, &txn, &g)))
    return rc;
  mdb_txn_abort(txn);
  int64_t now = wall_ms();
  gmember *me = gs_find(&g, c->member_id);
  bool fenced = !me || member_dead(me, now, 0);
  bool anyone_dead = false;
  /* Whether other members' processes still exist: every LIVE_CHECK_MS,
   * not every poll (each costs a read of /proc); leases every poll. */
  uint32_t ns = 0;
  if (mono >= c->next_live_check) {
    c->next_live_check = mono + LIVE_CHECK_MS;
    ns = q->pidns;
  }
  for (uint32_t i = 0; i < g.n; i++)
    anyone_dead |= member_dead(&g.m[i], now, ns);
  bool hb_due = mono - c->last_hb >= c->hb_interval;
  if (!fenced && !anyone_dead && !hb_due && g.generation == c->generation) {
    gs_free(&g);
    return Q7_OK;
  }
  if (fenced) {
    /* Expired: what it had is another's now.  Rejoin as a new member. */
    gs_free(&g);
    c->joined = false;
    drop_all(c, Q7_REBALANCE_LOST);
    if ((rc = q7__group_join(c)))
      return rc;
    return q7__group_sync(c);
  }

  /* 2. What the strategy takes away: tell the application, commit. */
  gs_expire(&g, now, q->pidns);
  size_t k = member_index(&g, c->member_id);
  size_t cap = (size_t)g.partitions + c->n_as + 1;
  int32_t *revoked = malloc(cap * sizeof *revoked), *claimed = malloc(cap * sizeof *claimed);
  bool *kept = calloc(cap, sizeof *kept);
  size_t n_rev = 0, n_claim = 0;
  if (!revoked || !claimed || !kept) {
    free(revoked);
    free(claimed);
    free(kept);
    gs_free(&g);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < c->n_as; i++)
    if (!target(c->strategy, k, g.n, c->as[i].partition, g.partitions))
      revoked[n_rev++] = c->as[i].partition;
  gs_free(&g);
  if (n_rev) {
    callback(c, Q7_REBALANCE_REVOKED, revoked, n_rev);
    if (c->auto_commit) {
      q7__commit_req *r = malloc(n_rev * sizeof *r);
      size_t m = 0;
      for (size_t i = 0; r && i < c->n_as; i++)
        for (size_t j = 0; j < n_rev; j++)
          if (c->as[i].partition == revoked[j])
            r[m++] = (q7__commit_req){ c->as[i].t->name, c->as[i].partition,
                                       c->as[i].position, c->as[i].pe, c->as[i].rtxn };
      if (r && m)
        q7__offsets_commit(q, c->group, c->member_id, r, m); /* fenced: dropped below */
      free(r);
    }
  }

  /* 3. Renew, free, claim -- one transaction. */
  bool complete;
  uint64_t gen;
  rc = sync_txn(c, revoked, n_rev, claimed, &n_claim, kept, &complete, &gen, &fenced);
  if (!rc && !fenced) {
    c->last_hb = mono;
    for (size_t j = 0; j < n_rev; j++) {
      if (kept[j])
        continue;
      for (size_t i = 0; i < c->n_as; i++) {
        if (c->as[i].partition == revoked[j]) {
          q7__consumer_drop(c, i, false);
          break;
        }
      }
    }
    size_t taken = 0;
    for (size_t j = 0; j < n_claim && !rc; j++) {
      q7_topic *t;
      if (!(rc = q7_topic_open(q, c->sub_topic, &t)) &&
          (rc = q7__consumer_take(c, t, claimed[j], Q7_OFFSET_COMMITTED)))
        q7_topic_close(t);
      if (!rc)
        claimed[taken++] = claimed[j];
    }
    callback(c, Q7_REBALANCE_ASSIGNED, claimed, taken);
    if (!rc && complete)
      c->generation = gen;
  }
  free(revoked);
  free(claimed);
  free(kept);
  if (!rc && fenced) {
    c->joined = false;
    drop_all(c, Q7_REBALANCE_LOST);
    return q7__group_sync(c);
  }
  return rc;
}

int
q7_group_members(q7 *q, const char *group,
                 int (*fn)(const q7_member *m, void *arg), void *arg)
{
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc;
  if (!q || !fn)
    return q7__err(Q7_EINVAL, "q7_group_members: %s is NULL", !q ? "store" : "fn");
  if ((rc = q7__group_check(group)))
    return rc;
  if ((rc = q7__meta_begin(q, MDB_RDONLY, &txn)))
    return rc;
  if ((rc = mdb_cursor_open(txn, q->dbi_groups, &cur))) {
    mdb_txn_abort(txn);
    return q7__mdb_err(rc, "read groups");
  }
  /* Gather first: @fn may call back into the store. */
  typedef struct row {
    char topic[250];
    q7_member m;
    int32_t *parts;
  } row;
  row *rows = NULL;
  size_t n = 0, cap = 0;
  size_t gl = strlen(group) + 1;
  int64_t now = wall_ms();
  k.mv_size = gl;
  k.mv_data = (void *)group;
  int ret = Q7_OK;
  for (int e = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); e == 0 && ret == Q7_OK;
       e = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (k.mv_size < gl || memcmp(k.mv_data, group, gl) != 0)
      break;
    char topic[250];
    size_t tl = k.mv_size - gl;
    if (tl >= sizeof topic)
      continue;
    memcpy(topic, (char *)k.mv_data + gl, tl);
    topic[tl] = 0;
    int32_t parts;
    gstate g;
    if (topic_partitions(q, txn, topic, &parts) || gs_load(q, txn, group, topic, parts, &g))
      continue;
    for (uint32_t i = 0; i < g.n && ret == Q7_OK; i++) {
      if (n == cap) {
        cap = cap ? cap * 2 : 8;
        row *nr = realloc(rows, cap * sizeof *nr);
        if (!nr) {
          ret = q7__err(Q7_ENOMEM, "out of memory");
          break;
        }
        rows = nr;
      }
      row *r = &rows[n];
      memcpy(r->topic, topic, tl + 1);
      r->parts = malloc(((size_t)g.partitions + 1) * sizeof *r->parts);
      if (!r->parts) {
        ret = q7__err(Q7_ENOMEM, "out of memory");
        break;
      }
      size_t np = 0;
      for (int32_t p = 0; p < g.partitions; p++)
        if (g.owner[p] == g.m[i].id)
          r->parts[np++] = p;
      r->m = (q7_member){ NULL, g.m[i].id, g.m[i].pid, g.m[i].lease, g.generation, NULL, np,
                          member_dead(&g.m[i], now, q->pidns) };
      n++;
    }
    gs_free(&g);
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  for (size_t i = 0; i < n && ret == Q7_OK; i++) {
    rows[i].m.topic = rows[i].topic;
    rows[i].m.partitions = rows[i].parts;
    ret = fn(&rows[i].m, arg);
  }
  for (size_t i = 0; i < n; i++)
    free(rows[i].parts);
  free(rows);
  return ret;
}

int
q7__group_drop(q7 *q, MDB_txn *txn, const char *group, const char *topic)
{
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = mdb_cursor_open(txn, q->dbi_groups, &cur), found = 0;
  if (rc)
    return q7__mdb_err(rc, "open groups");
  size_t gl = group ? strlen(group) + 1 : 0, tl = topic ? strlen(topic) : 0;
  for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    const char *kd = k.mv_data;
    const char *nul = memchr(kd, 0, k.mv_size);
    if (!nul)
      continue;
    size_t klen = (size_t)(nul - kd) + 1;
    bool match = group ? klen == gl && memcmp(kd, group, gl) == 0
                       : k.mv_size - klen == tl && memcmp(nul + 1, topic, tl) == 0;
    if (match) {
      if ((rc = mdb_cursor_del(cur, 0)))
        break;
      found++;
    }
  }
  mdb_cursor_close(cur);
  if (rc && rc != MDB_NOTFOUND)
    return q7__mdb_err(rc, "drop group membership");
  return found;
}
