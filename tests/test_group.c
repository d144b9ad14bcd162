/* test_group.c - consumer groups in one process: q7_consumer_subscribe,
 * range and roundrobin assignment, rebalancing on join and leave, and
 * exactly-once consumption by members that commit after processing. */
#include "helpers.h"
#include "fixture.h"
#include "proc.h"

#include <criterion/logging.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* ------------------------------------------------------------ fixture */

static void
setup_nosync(void)
{
  q7_conf *c;
  dir = tmpdir_new();
  Q7_OK_OR_FAIL((c = q7_conf_new()) == NULL);
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", "false"));
  store_open(c);
  q7_conf_destroy(c);
}

static q7_consumer *
member(const char *group, const char *strategy, bool auto_commit)
{
  q7_conf *c;
  q7_consumer *k;
  Q7_OK_OR_FAIL((c = q7_conf_new()) == NULL);
  Q7_OK_OR_FAIL(q7_conf_set(c, "partition.assignment.strategy", strategy));
  Q7_OK_OR_FAIL(q7_conf_set(c, "enable.auto.commit", auto_commit ? "true" : "false"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "auto.commit.interval.ms", "600000"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "auto.offset.reset", "earliest"));
  Q7_OK_OR_FAIL(q7_consumer_new(q, group, c, &k));
  q7_conf_destroy(c);
  return k;
}

static q7_consumer *
subscribed(const char *group, const char *strategy, bool auto_commit, const char *topic)
{
  q7_consumer *k = member(group, strategy, auto_commit);
  Q7_OK_OR_FAIL(q7_consumer_subscribe(k, topic));
  return k;
}

static int
val_fmt(char *buf, size_t n, int32_t part, int64_t off)
{
  return snprintf(buf, n, "%d.%lld", (int)part, (long long)off);
}

static bool
val_ok(const q7_record *r)
{
  char want[48];
  int n = val_fmt(want, sizeof want, r->partition, r->offset);
  return r->value_len == (size_t)n && memcmp(r->value, want, (size_t)n) == 0;
}

/* Append @n records to each of the @parts partitions of @topic. */
static void
produce_all(const char *topic, int32_t parts, int n)
{
  q7_topic *t;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  for (int32_t k = 0; k < parts; k++) {
    q7_partition *pp;
    int64_t hw;
    Q7_OK_OR_FAIL(q7_topic_partition(t, k, &pp));
    Q7_OK_OR_FAIL(q7_partition_offsets(pp, NULL, &hw));
    for (int i = 0; i < n; i++) {
      char v[48];
      int len = val_fmt(v, sizeof v, k, hw + i);
      q7_msg m = { .topic = t, .partition = k, .value = v, .value_len = (size_t)len };
      Q7_OK_OR_FAIL(q7_producer_send(p, &m));
    }
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
}

/* The partitions @c reads now, as a bit set. */
static unsigned
assigned(q7_consumer *c)
{
  const char *tp[64];
  int32_t pp[64];
  int n = q7_consumer_assignment(c, tp, pp, 64);
  cr_assert_geq(n, 0, "assignment -> %d (%s)", n, q7_last_error());
  cr_assert_leq(n, 64);
  unsigned set = 0;
  for (int i = 0; i < n; i++) {
    cr_assert(pp[i] >= 0 && pp[i] < 32);
    cr_assert_eq(set & (1u << pp[i]), 0, "partition %d listed twice", pp[i]);
    set |= 1u << pp[i];
  }
  return set;
}

/* Poll every member (nothing to read, or reads discarded) until the
 * assignments are @want[i] in some order of members, bounded. */
static bool
settle(q7_consumer **cs, int n, const unsigned *want)
{
  for (int round = 0; round < 200; round++) {
    q7_record r[8];
    for (int i = 0; i < n; i++)
      cr_assert_geq(q7_consumer_poll(cs[i], r, 8, 0), 0, "poll: %s", q7_last_error());
    bool ok = true;
    for (int i = 0; i < n && ok; i++)
      ok = assigned(cs[i]) == want[i];
    if (ok)
      return true;
    sleep_ms(1);
  }
  return false;
}

static void
assert_assignment(q7_consumer **cs, int n, const unsigned *want, const char *what)
{
  bool ok = settle(cs, n, want);
  char got[256] = "";
  for (int i = 0; i < n; i++) {
    size_t l = strlen(got);
    snprintf(got + l, sizeof got - l, " %#x", assigned(cs[i]));
  }
  cr_assert(ok, "%s: assignments never settled; have%s", what, got);
}

/* ================================================ assignment strategies */

Test(group, two_members_split_four_partitions_range, .init = setup, .fini = teardown,
     .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  q7_consumer *cs[2] = { subscribed("g", "range", false, "t"),
                         subscribed("g", "range", false, "t") };
  /* Range: contiguous halves, one each. */
  const unsigned want[2] = { 0x3, 0xc };
  const unsigned swapped[2] = { 0xc, 0x3 };
  bool ok = settle(cs, 2, want) || settle(cs, 2, swapped);
  cr_assert(ok, "range over 2 members: %#x and %#x", assigned(cs[0]), assigned(cs[1]));
  Q7_OK_OR_FAIL(q7_consumer_close(cs[0]));
  Q7_OK_OR_FAIL(q7_consumer_close(cs[1]));
}

Test(group, two_members_split_four_partitions_roundrobin, .init = setup, .fini = teardown,
     .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  q7_consumer *cs[2] = { subscribed("g", "roundrobin", false, "t"),
                         subscribed("g", "roundrobin", false, "t") };
  const unsigned want[2] = { 0x5, 0xa };
  const unsigned swapped[2] = { 0xa, 0x5 };
  bool ok = settle(cs, 2, want) || settle(cs, 2, swapped);
  cr_assert(ok, "roundrobin over 2 members: %#x and %#x", assigned(cs[0]), assigned(cs[1]));
  Q7_OK_OR_FAIL(q7_consumer_close(cs[0]));
  Q7_OK_OR_FAIL(q7_consumer_close(cs[1]));
}

Test(group, three_members_share_four_partitions_without_overlap, .init = setup,
     .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  const char *strat[] = { "range", "roundrobin" };
  for (int s = 0; s < 2; s++) {
    char g[8];
    snprintf(g, sizeof g, "g%d", s);
    q7_consumer *cs[3];
    for (int i = 0; i < 3; i++)
      cs[i] = subscribed(g, strat[s], false, "t");
    /* Every partition read by exactly one member; sizes 2, 1, 1. */
    unsigned all = 0;
    bool ok = false;
    for (int round = 0; round < 200 && !ok; round++) {
      q7_record r[8];
      for (int i = 0; i < 3; i++)
        cr_assert_geq(q7_consumer_poll(cs[i], r, 8, 0), 0);
      unsigned a[3] = { assigned(cs[0]), assigned(cs[1]), assigned(cs[2]) };
      all = a[0] | a[1] | a[2];
      int sizes = __builtin_popcount(a[0]) * 100 + __builtin_popcount(a[1]) * 10 +
                  __builtin_popcount(a[2]);
      ok = all == 0xf && !(a[0] & a[1]) && !(a[0] & a[2]) && !(a[1] & a[2]) &&
           (sizes == 211 || sizes == 121 || sizes == 112);
      if (ok && s == 0) /* range: each member's share is contiguous */
        for (int i = 0; i < 3; i++)
          ok = ok && (a[i] == 0x3 || a[i] == 0x6 || a[i] == 0xc || a[i] == 0x1 ||
                      a[i] == 0x2 || a[i] == 0x4 || a[i] == 0x8);
      if (ok && s == 1) /* roundrobin: the pair is two apart */
        for (int i = 0; i < 3; i++)
          ok = ok && (__builtin_popcount(a[i]) == 1 || a[i] == 0x5 || a[i] == 0xa ||
                      a[i] == 0x9);
      if (!ok)
        sleep_ms(1);
    }
    cr_assert(ok, "%s over 3 members: %#x %#x %#x", strat[s], assigned(cs[0]), assigned(cs[1]),
              assigned(cs[2]));
    for (int i = 0; i < 3; i++)
      Q7_OK_OR_FAIL(q7_consumer_close(cs[i]));
  }
}

Test(group, remaining_member_takes_every_partition_when_the_other_closes, .init = setup,
     .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  q7_consumer *a = subscribed("g", "range", false, "t");
  q7_consumer *b = subscribed("g", "range", false, "t");
  q7_consumer *cs[2] = { a, b };
  const unsigned half[2] = { 0x3, 0xc }, half2[2] = { 0xc, 0x3 };
  cr_assert(settle(cs, 2, half) || settle(cs, 2, half2), "never split");
  Q7_OK_OR_FAIL(q7_consumer_close(a));
  const unsigned all[1] = { 0xf };
  assert_assignment(&b, 1, all, "after the other member closed");
  /* And a new member splits it again. */
  q7_consumer *c = subscribed("g", "range", false, "t");
  cs[0] = b;
  cs[1] = c;
  cr_assert(settle(cs, 2, half) || settle(cs, 2, half2), "a rejoin did not split");
  Q7_OK_OR_FAIL(q7_consumer_close(b));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(group, single_member_reads_every_partition, .init = setup, .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 3, NULL));
  produce_all("t", 3, 5);
  q7_consumer *c = subscribed("g", "range", false, "t");
  int seen = 0;
  q7_record r[32];
  for (int i = 0; i < 100 && seen < 15; i++) {
    int n = q7_consumer_poll(c, r, 32, 100);
    cr_assert_geq(n, 0);
    seen += n;
  }
  cr_assert_eq(seen, 15, "one member of 3 partitions read %d of 15", seen);
  cr_assert_eq(assigned(c), 0x7);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(group, groups_are_independent, .init = setup, .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  q7_consumer *a = subscribed("g1", "range", false, "t");
  q7_consumer *b = subscribed("g2", "range", false, "t");
  q7_consumer *cs[2] = { a, b };
  const unsigned want[2] = { 0xf, 0xf };
  assert_assignment(cs, 2, want, "two groups");
  Q7_OK_OR_FAIL(q7_consumer_close(a));
  Q7_OK_OR_FAIL(q7_consumer_close(b));
}

Test(group, subscriber_starts_at_committed_offset_else_auto_offset_reset, .init = setup,
     .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 2, NULL));
  produce_all("t", 2, 10);
  q7_consumer *x = member("g", "range", false);
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(x, "t", 0, 7));
  Q7_OK_OR_FAIL(q7_consumer_close(x));
  q7_consumer *c = subscribed("g", "range", false, "t"); /* reset: earliest */
  int64_t first[2] = { -1, -1 };
  q7_record r[32];
  for (int i = 0; i < 100 && (first[0] < 0 || first[1] < 0); i++) {
    int n = q7_consumer_poll(c, r, 32, 100);
    cr_assert_geq(n, 0);
    for (int k = 0; k < n; k++)
      if (first[r[k].partition] < 0)
        first[r[k].partition] = r[k].offset;
  }
  cr_assert_eq(first[0], 7, "partition 0 started at %lld, committed 7", (long long)first[0]);
  cr_assert_eq(first[1], 0, "partition 1 started at %lld, earliest is 0", (long long)first[1]);
  int64_t pos;
  Q7_OK_OR_FAIL(q7_consumer_position(c, "t", 0, &pos));
  Q7_OK_OR_FAIL(q7_consumer_close(c));

  /* latest: a new group sees only what comes after. */
  q7_conf *lc;
  Q7_OK_OR_FAIL((lc = q7_conf_new()) == NULL);
  Q7_OK_OR_FAIL(q7_conf_set(lc, "auto.offset.reset", "latest"));
  q7_consumer *l;
  Q7_OK_OR_FAIL(q7_consumer_new(q, "late", lc, &l));
  q7_conf_destroy(lc);
  Q7_OK_OR_FAIL(q7_consumer_subscribe(l, "t"));
  cr_assert_eq(q7_consumer_poll(l, r, 32, 0), 0, "latest subscriber read old records");
  produce_all("t", 2, 1);
  int got = 0;
  for (int i = 0; i < 100 && got < 2; i++) {
    int n = q7_consumer_poll(l, r, 32, 100);
    cr_assert_geq(n, 0);
    for (int k = 0; k < n; k++)
      cr_assert_eq(r[k].offset, 10);
    got += n;
  }
  cr_assert_eq(got, 2);
  Q7_OK_OR_FAIL(q7_consumer_close(l));
}

/* ============================================================== errors */

Test(group, subscribe_errors, .init = setup, .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 2, NULL));
  Q7_OK_OR_FAIL(q7_topic_create(q, "u", 2, NULL));
  q7_consumer *nog;
  Q7_OK_OR_FAIL(q7_consumer_new(q, NULL, NULL, &nog));
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_subscribe(nog, "t"));
  Q7_OK_OR_FAIL(q7_consumer_close(nog));

  q7_consumer *c = member("g", "range", false);
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_subscribe(NULL, "t"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_subscribe(c, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_consumer_subscribe(c, "bad/name"));
  Q7_FAILS_WITH(Q7_ENOENT, q7_consumer_subscribe(c, "missing"));
  /* A failed subscribe leaves the consumer usable. */
  Q7_OK_OR_FAIL(q7_consumer_subscribe(c, "t"));
  Q7_FAILS_WITH(Q7_EEXIST, q7_consumer_subscribe(c, "t"));
  Q7_FAILS_WITH(Q7_EEXIST, q7_consumer_subscribe(c, "u"));
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_assign(c, "u", 0, Q7_OFFSET_BEGINNING));
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_unassign(c, "t", 0));
  const unsigned all[1] = { 0x3 };
  assert_assignment(&c, 1, all, "after refused calls");
  Q7_OK_OR_FAIL(q7_consumer_close(c));

  /* Manual assignments first: subscribe is refused. */
  c = member("g", "range", false);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_subscribe(c, "t"));
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

/* ========================================================= exactly once */

enum { EO_PARTS = 4 };

typedef struct tally {
  int *count;                     /* [partition * cap + offset] */
  int cap;
  atomic_int total, dups;
} tally;

static void
tally_init(tally *t, int cap)
{
  t->count = calloc((size_t)EO_PARTS * (size_t)cap, sizeof *t->count);
  t->cap = cap;
  atomic_store(&t->total, 0);
  atomic_store(&t->dups, 0);
}

/* Poll @c once, count its records, commit.  Returns the count. */
static int
step(q7_consumer *c, tally *t, size_t max, int timeout_ms, int *err)
{
  q7_record r[16];
  int n = q7_consumer_poll(c, r, max, timeout_ms);
  if (n < 0) {
    *err = n;
    return 0;
  }
  for (int i = 0; i < n; i++) {
    if (r[i].partition < 0 || r[i].partition >= EO_PARTS || r[i].offset < 0 ||
        r[i].offset >= t->cap || !val_ok(&r[i])) {
      *err = -1000;
      return 0;
    }
    /* Members are polled from one thread here, or own disjoint partitions
     * when threaded; a duplicate across members still shows as count 2. */
    if (__atomic_add_fetch(&t->count[r[i].partition * t->cap + r[i].offset], 1,
                           __ATOMIC_SEQ_CST) > 1)
      atomic_fetch_add(&t->dups, 1);
    atomic_fetch_add(&t->total, 1);
  }
  int rc = q7_consumer_commit(c);
  if (rc)
    *err = rc;
  return n;
}

static void
tally_check(const tally *t, const int64_t *hw)
{
  for (int p = 0; p < EO_PARTS; p++) {
    for (int64_t o = 0; o < hw[p]; o++) {
      int k = t->count[p * t->cap + o];
      cr_assert_eq(k, 1, "partition %d offset %lld consumed %d times", p, (long long)o, k);
    }
  }
}

static void
hws(int64_t *hw)
{
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  for (int p = 0; p < EO_PARTS; p++) {
    q7_partition *pp;
    Q7_OK_OR_FAIL(q7_topic_partition(t, p, &pp));
    Q7_OK_OR_FAIL(q7_partition_offsets(pp, NULL, &hw[p]));
  }
  q7_topic_close(t);
}

Test(group, members_committing_after_each_poll_consume_every_record_once, .init = setup_nosync,
     .fini = teardown, .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", EO_PARTS, NULL));
  produce_all("t", EO_PARTS, 100);
  const char *strat[] = { "range", "roundrobin" };
  for (int s = 0; s < 2; s++) {
    char g[8];
    snprintf(g, sizeof g, "eo%d", s);
    tally t;
    tally_init(&t, 1000);
    int err = 0;
    int64_t expect = s == 0 ? 400 : 600; /* the second pass sees 200 more */
    q7_consumer *a = subscribed(g, strat[s], false, "t");
    for (int i = 0; i < 5; i++)
      step(a, &t, 7, 0, &err);
    q7_consumer *b = subscribed(g, strat[s], false, "t");
    for (int i = 0; i < 10; i++) {
      step(a, &t, 7, 0, &err);
      step(b, &t, 5, 0, &err);
    }
    q7_consumer *c = subscribed(g, strat[s], false, "t");
    for (int i = 0; i < 10; i++) {
      step(c, &t, 3, 0, &err);
      step(a, &t, 7, 0, &err);
      step(b, &t, 5, 0, &err);
    }
    if (s == 1)
      produce_all("t", EO_PARTS, 50);
    Q7_OK_OR_FAIL(q7_consumer_close(a)); /* leaves; its commits are current */
    for (int i = 0; i < 2000 && atomic_load(&t.total) < expect && !err; i++) {
      step(b, &t, 5, 0, &err);
      step(c, &t, 3, 0, &err);
    }
    cr_assert_eq(err, 0, "%s: error %d (%s)", strat[s], err, q7_last_error());
    cr_assert_eq(atomic_load(&t.dups), 0, "%s: %d records consumed twice", strat[s],
                 atomic_load(&t.dups));
    cr_assert_eq(atomic_load(&t.total), expect, "%s: consumed %d of %lld", strat[s],
                 atomic_load(&t.total), (long long)expect);
    int64_t hw[EO_PARTS];
    hws(hw);
    tally_check(&t, hw);
    /* The group's commits reached the end. */
    for (int p = 0; p < EO_PARTS; p++) {
      int64_t lag = -1;
      Q7_OK_OR_FAIL(q7_lag(q, g, "t", p, &lag));
      cr_assert_eq(lag, 0, "%s: partition %d lag %lld", strat[s], p, (long long)lag);
    }
    Q7_OK_OR_FAIL(q7_consumer_close(b));
    Q7_OK_OR_FAIL(q7_consumer_close(c));
    free(t.count);
  }
}

Test(group, auto_commit_hands_over_released_partitions_without_gap_or_repeat, .init = setup,
     .fini = teardown, .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", EO_PARTS, NULL));
  produce_all("t", EO_PARTS, 40);
  tally t;
  tally_init(&t, 1000);
  /* auto-commit on (interval 10 min): commits only when a partition is
   * given up and on close. */
  q7_consumer *a = subscribed("g", "range", true, "t");
  q7_record r[16];
  for (int i = 0; i < 200 && atomic_load(&t.total) < 160; i++) {
    int n = q7_consumer_poll(a, r, 16, 0);
    cr_assert_geq(n, 0);
    for (int k = 0; k < n; k++) {
      t.count[r[k].partition * t.cap + r[k].offset]++;
      atomic_fetch_add(&t.total, 1);
    }
  }
  cr_assert_eq(atomic_load(&t.total), 160);
  q7_consumer *b = subscribed("g", "range", true, "t");
  q7_consumer *cs[2] = { a, b };
  const unsigned half[2] = { 0x3, 0xc }, half2[2] = { 0xc, 0x3 };
  cr_assert(settle(cs, 2, half) || settle(cs, 2, half2), "never split");
  produce_all("t", EO_PARTS, 10);
  for (int i = 0; i < 400 && atomic_load(&t.total) < 200; i++) {
    for (int m = 0; m < 2; m++) {
      int n = q7_consumer_poll(cs[m], r, 16, 0);
      cr_assert_geq(n, 0);
      for (int k = 0; k < n; k++) {
        cr_assert_geq(r[k].offset, 40, "partition %d offset %lld read again after handover",
                      r[k].partition, (long long)r[k].offset);
        t.count[r[k].partition * t.cap + r[k].offset]++;
        atomic_fetch_add(&t.total, 1);
      }
    }
  }
  cr_assert_eq(atomic_load(&t.total), 200);
  int64_t hw[EO_PARTS];
  hws(hw);
  tally_check(&t, hw);
  Q7_OK_OR_FAIL(q7_consumer_close(a));
  Q7_OK_OR_FAIL(q7_consumer_close(b));
  for (int p = 0; p < EO_PARTS; p++) {
    int64_t next = -1;
    Q7_OK_OR_FAIL(q7_committed(q, "g", "t", p, &next));
    cr_assert_eq(next, 50, "partition %d committed %lld after close", p, (long long)next);
  }
  free(t.count);
}

/* Threads: members join and leave while a producer writes. */

enum { TH_MEMBERS = 3, TH_PER_PART = 300 };

typedef struct member_arg {
  int id;
  tally *t;
  atomic_int *produced_done;
  int64_t join_after_ms, leave_after_ms; /* 0: from the start / never */
  int err;
  int got;
} member_arg;

static void *
member_thread(void *arg)
{
  member_arg *m = arg;
  int64_t start = mono_ms();
  if (m->join_after_ms)
    sleep_ms((int)m->join_after_ms);
  q7_consumer *c;
  q7_conf *conf;
  if ((conf = q7_conf_new()) == NULL || q7_conf_set(conf, "enable.auto.commit", "false") ||
      q7_conf_set(conf, "auto.offset.reset", "earliest") ||
      q7_consumer_new(q, "th", conf, &c) || q7_consumer_subscribe(c, "t")) {
    m->err = -2000;
    return NULL;
  }
  q7_conf_destroy(conf);
  const int64_t total = (int64_t)EO_PARTS * TH_PER_PART;
  while (!m->err && mono_ms() - start < 60000) {
    if (m->leave_after_ms && mono_ms() - start > m->leave_after_ms)
      break;
    m->got += step(c, m->t, 10, 20, &m->err);
    if (atomic_load(m->produced_done) && atomic_load(&m->t->total) >= total)
      break;
  }
  int rc = q7_consumer_close(c);
  if (!m->err)
    m->err = rc;
  return NULL;
}

Test(group, members_in_threads_consume_every_record_once_across_rebalances,
     .init = setup_nosync, .fini = teardown, .timeout = 180)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", EO_PARTS, NULL));
  tally t;
  tally_init(&t, TH_PER_PART + 10);
  atomic_int done = 0;
  member_arg ms[TH_MEMBERS] = {
    { .id = 0, .t = &t, .produced_done = &done, .leave_after_ms = 300 },
    { .id = 1, .t = &t, .produced_done = &done },
    { .id = 2, .t = &t, .produced_done = &done, .join_after_ms = 150 },
  };
  pthread_t th[TH_MEMBERS];
  for (int i = 0; i < TH_MEMBERS; i++)
    cr_assert_eq(pthread_create(&th[i], NULL, member_thread, &ms[i]), 0);
  /* Produce in slices, while members come and go. */
  q7_topic *tp;
  q7_producer *p;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &tp));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  for (int i = 0; i < TH_PER_PART; i++) {
    for (int k = 0; k < EO_PARTS; k++) {
      char v[48];
      int len = val_fmt(v, sizeof v, k, i);
      q7_msg m = { .topic = tp, .partition = k, .value = v, .value_len = (size_t)len };
      Q7_OK_OR_FAIL(q7_producer_send_sync(p, &m, NULL, NULL));
    }
    if (i % 10 == 0)
      sleep_ms(20); /* about 600 ms: members join and leave meanwhile */
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(tp);
  atomic_store(&done, 1);
  for (int i = 0; i < TH_MEMBERS; i++)
    pthread_join(th[i], NULL);
  for (int i = 0; i < TH_MEMBERS; i++)
    cr_assert_eq(ms[i].err, 0, "member %d: error %d (%s)", i, ms[i].err,
                 ms[i].err < 0 && ms[i].err > -100 ? q7_strerror(ms[i].err) : "");
  cr_log_info("threaded group: members read %d, %d, %d records", ms[0].got, ms[1].got,
              ms[2].got);
  cr_assert_eq(atomic_load(&t.dups), 0, "%d records consumed twice", atomic_load(&t.dups));
  cr_assert_eq(atomic_load(&t.total), EO_PARTS * TH_PER_PART, "consumed %d of %d",
               atomic_load(&t.total), EO_PARTS * TH_PER_PART);
  int64_t hw[EO_PARTS];
  hws(hw);
  tally_check(&t, hw);
  free(t.count);
}

/* SPEC, Consumer: a member that stops heartbeating (polling) for
 * session.timeout.ms loses its partitions, which the others own within one
 * of their polls after that; the expired member's commits are refused with
 * Q7_ESTATE (the group's offsets do not move) and its next poll rejoins. */
Test(group, silent_member_loses_its_partitions_after_session_timeout, .init = setup,
     .fini = teardown, .timeout = 60)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  produce_all("t", 4, 10);
  q7_consumer *cs[2];
  for (int i = 0; i < 2; i++) {
    q7_conf *c;
    Q7_OK_OR_FAIL((c = q7_conf_new()) == NULL);
    Q7_OK_OR_FAIL(q7_conf_set(c, "session.timeout.ms", "300"));
    Q7_OK_OR_FAIL(q7_conf_set(c, "enable.auto.commit", "false"));
    Q7_OK_OR_FAIL(q7_conf_set(c, "auto.offset.reset", "earliest"));
    Q7_OK_OR_FAIL(q7_consumer_new(q, "g", c, &cs[i]));
    q7_conf_destroy(c);
    Q7_OK_OR_FAIL(q7_consumer_subscribe(cs[i], "t"));
  }
  const unsigned half[2] = { 0x3, 0xc }, half2[2] = { 0xc, 0x3 };
  cr_assert(settle(cs, 2, half) || settle(cs, 2, half2), "never split");
  q7_record r[64];
  cr_assert_geq(q7_consumer_poll(cs[0], r, 64, 0), 0);
  /* cs[0] goes silent; cs[1] keeps polling for up to 5 s. */
  int64_t end = mono_ms() + 5000;
  unsigned b = 0;
  while (mono_ms() < end && (b = assigned(cs[1])) != 0xf)
    cr_assert_geq(q7_consumer_poll(cs[1], r, 64, 50), 0);
  cr_assert_eq(b, 0xf, "the live member has %#x 5 s after the other went silent "
               "(session.timeout.ms 300)", b);
  /* The expired member may not move the group's offsets. */
  Q7_FAILS_WITH(Q7_ESTATE, q7_consumer_commit(cs[0]));
  int64_t next;
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "g", "t", 0, &next));
  Q7_OK_OR_FAIL(q7_consumer_close(cs[0]));
  Q7_OK_OR_FAIL(q7_consumer_close(cs[1]));
}
