/* test_lag.c - consumer status as Burrow judges it (BURROW.md): the pure
 * rules of q7_evaluate_partition, then q7_group_status, the commit windows,
 * q7_commit_history, q7_group_foreach and q7_group_delete on a real store.
 *
 * Every expected verdict below is derived by hand from BURROW.md's rules
 * (R0-R6 in the code's order, the rollup, the window), not from running the
 * code: where the code disagrees with BURROW.md, a test here fails. */
#include "helpers.h"

#include <stdatomic.h>
#include <time.h>

/* ===================================================================== */
/*  q7_evaluate_partition, table-driven                                  */
/* ===================================================================== */

#define MAXW 8

/* |a - b| small enough: complete is a ratio of small integers. */
static bool
near(double a, double b)
{
  return a - b < 1e-9 && b - a < 1e-9;
}

typedef struct eval_case {
  const char *name;
  q7_commit w[MAXW];       /* oldest first */
  size_t n;
  size_t intervals;
  int64_t hw[4];           /* broker-offset samples */
  size_t n_hw;
  int64_t current_lag, now_ms, allowed_lag;
  int status;
  double complete;
} eval_case;

/* A commit: (offset, timestamp ms, lag at the time; -1 unknown). */
#define C(o, t, l) { (o), (t), (l) }
/* Five commits one second apart, 1000..5000 ms: the window spans 4000 ms,
 * so with now 6000 (1000 after the last) nothing is stopped. */
#define T5(o0, l0, o1, l1, o2, l2, o3, l3, o4, l4)                                          \
  { C(o0, 1000, l0), C(o1, 2000, l1), C(o2, 3000, l2), C(o3, 4000, l3), C(o4, 5000, l4) }
/* Offsets that move forward, lags 1..5 growing: WARN by R5 unless
 * something earlier fires. */
#define MOVING_GROWING T5(10, 1, 20, 2, 30, 3, 40, 4, 50, 5)

static const eval_case eval_cases[] = {
  /* n = 0 */
  { .name = "n0_is_ok_with_complete_0", .n = 0, .intervals = 5, .current_lag = 10,
    .now_ms = 6000, .status = Q7_STATUS_OK, .complete = 0.0 },

  /* R0: current_lag <= allowed_lag ends the evaluation, before STOP. */
  { .name = "r0_current_lag_0_is_ok_even_if_stopped",
    .w = { C(10, 1000, 5), C(10, 2000, 5) }, .n = 2, .intervals = 5, .current_lag = 0,
    .now_ms = 1000000000, .status = Q7_STATUS_OK, .complete = 0.4 },
  { .name = "r0_current_lag_equal_to_allowed_is_ok",
    .w = { C(10, 1000, 5), C(10, 2000, 5) }, .n = 2, .intervals = 5, .current_lag = 3,
    .allowed_lag = 3, .now_ms = 1000000000, .status = Q7_STATUS_OK, .complete = 0.4 },
  { .name = "r0_current_lag_one_above_allowed_goes_on_to_stop",
    .w = { C(10, 1000, 5), C(10, 2000, 5) }, .n = 2, .intervals = 5, .current_lag = 4,
    .allowed_lag = 3, .now_ms = 1000000000, .status = Q7_STATUS_STOP, .complete = 0.4 },
  { .name = "r0_current_lag_1_with_allowed_0_goes_on",
    .w = MOVING_GROWING, .n = 5, .intervals = 5, .current_lag = 1, .now_ms = 6000,
    .status = Q7_STATUS_WARN, .complete = 1.0 },

  /* R1: (now - last) > (last - first), strictly; 4000 == 4000 is not stopped. */
  { .name = "r1_equal_gap_and_span_is_not_stopped", .w = MOVING_GROWING, .n = 5,
    .intervals = 5, .current_lag = 5, .now_ms = 9000, .status = Q7_STATUS_WARN,
    .complete = 1.0 },
  { .name = "r1_one_ms_more_is_stopped", .w = MOVING_GROWING, .n = 5, .intervals = 5,
    .current_lag = 5, .now_ms = 9001, .status = Q7_STATUS_STOP, .complete = 1.0 },
  { .name = "r1_sample_equal_to_last_offset_is_recent_lag_zero", .w = MOVING_GROWING,
    .n = 5, .intervals = 5, .hw = { 60, 50 }, .n_hw = 2, .current_lag = 5, .now_ms = 9001,
    .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r1_sample_below_last_offset_is_recent_lag_zero", .w = MOVING_GROWING, .n = 5,
    .intervals = 5, .hw = { 40 }, .n_hw = 1, .current_lag = 5, .now_ms = 9001,
    .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r1_samples_all_above_last_offset_still_stop", .w = MOVING_GROWING, .n = 5,
    .intervals = 5, .hw = { 51, 60, 70 }, .n_hw = 3, .current_lag = 5, .now_ms = 9001,
    .status = Q7_STATUS_STOP, .complete = 1.0 },
  { .name = "r1_checked_before_r2_rewind", .w = T5(10, 1, 20, 2, 15, 3, 16, 4, 17, 5),
    .n = 5, .intervals = 5, .current_lag = 5, .now_ms = 9001, .status = Q7_STATUS_STOP,
    .complete = 1.0 },
  { .name = "r1_checked_before_r3_zero_lag", .w = T5(10, 0, 20, 1, 30, 2, 40, 3, 50, 4),
    .n = 5, .intervals = 5, .current_lag = 5, .now_ms = 9001, .status = Q7_STATUS_STOP,
    .complete = 1.0 },

  /* R2: only the first decrease, and only if nothing later reaches back. */
  { .name = "r2_rewind", .w = T5(10, 1, 20, 2, 15, 3, 16, 4, 17, 5), .n = 5, .intervals = 5,
    .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_REWIND, .complete = 1.0 },
  { .name = "r2_rewind_at_index_1", .w = T5(20, 1, 10, 2, 11, 3, 12, 4, 13, 5), .n = 5,
    .intervals = 5, .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_REWIND,
    .complete = 1.0 },
  { .name = "r2_rewind_at_the_last_commit", .w = T5(10, 1, 20, 2, 30, 3, 40, 4, 35, 5),
    .n = 5, .intervals = 5, .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_REWIND,
    .complete = 1.0 },
  { .name = "r2_checked_before_r3_zero_lag", .w = T5(10, 0, 20, 0, 15, 3, 16, 4, 17, 5),
    .n = 5, .intervals = 5, .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_REWIND,
    .complete = 1.0 },
  { .name = "r2_cancelled_when_a_later_offset_reaches_back_exactly",
    .w = T5(10, 1, 20, 2, 15, 3, 18, 4, 20, 5), .n = 5, .intervals = 5, .current_lag = 5,
    .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r2_only_the_first_decrease_is_examined",
    .w = T5(10, 1, 20, 2, 15, 3, 25, 4, 22, 5), .n = 5, .intervals = 5, .current_lag = 5,
    .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r2_first_decrease_recovered_second_not_examined",
    .w = T5(30, 1, 10, 2, 40, 3, 35, 4, 36, 5), .n = 5, .intervals = 5, .current_lag = 5,
    .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },

  /* R3: some known lag <= allowed_lag is OK; unknown lags are ignored. */
  { .name = "r3_a_zero_lag_is_ok", .w = T5(10, 0, 20, 1, 30, 2, 40, 3, 50, 4), .n = 5,
    .intervals = 5, .current_lag = 4, .now_ms = 6000, .status = Q7_STATUS_OK,
    .complete = 1.0 },
  { .name = "r3_a_lag_equal_to_allowed_is_ok", .w = T5(10, 2, 20, 3, 30, 4, 40, 5, 50, 6),
    .n = 5, .intervals = 5, .current_lag = 7, .allowed_lag = 2, .now_ms = 6000,
    .status = Q7_STATUS_OK, .complete = 1.0 },
  { .name = "r3_every_lag_above_allowed_goes_on",
    .w = T5(10, 2, 20, 3, 30, 4, 40, 5, 50, 6), .n = 5, .intervals = 5, .current_lag = 7,
    .allowed_lag = 1, .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r3_unknown_lag_is_not_a_small_lag",
    .w = T5(10, -1, 20, 1, 30, 2, 40, 3, 50, 4), .n = 5, .intervals = 5, .current_lag = 4,
    .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r3_all_unknown_counts_as_every", .w = T5(10, -1, 20, -1, 30, -1, 40, -1, 50, -1),
    .n = 5, .intervals = 5, .current_lag = 4, .now_ms = 6000, .status = Q7_STATUS_WARN,
    .complete = 1.0 },
  { .name = "r3_all_unknown_then_stall", .w = T5(10, -1, 10, -1, 10, -1, 10, -1, 10, -1),
    .n = 5, .intervals = 5, .current_lag = 4, .now_ms = 6000, .status = Q7_STATUS_STALL,
    .complete = 1.0 },
  { .name = "r3_checked_before_r4_stall",
    .w = { C(10, 1000, 0), C(10, 2000, 1), C(10, 3000, 2) }, .n = 3, .intervals = 5,
    .current_lag = 3, .now_ms = 4000, .status = Q7_STATUS_OK, .complete = 0.6 },

  /* R4: every offset equal, a single commit included. */
  { .name = "r4_single_commit_not_stopped_is_stall", .w = { C(10, 1000, 5) }, .n = 1,
    .intervals = 10, .current_lag = 5, .now_ms = 1000, .status = Q7_STATUS_STALL,
    .complete = 0.1 },
  { .name = "r4_single_commit_one_ms_later_is_stop", .w = { C(10, 1000, 5) }, .n = 1,
    .intervals = 10, .current_lag = 5, .now_ms = 1001, .status = Q7_STATUS_STOP,
    .complete = 0.1 },
  { .name = "r4_single_commit_far_in_the_past_is_stop", .w = { C(10, 1000, 5) }, .n = 1,
    .intervals = 10, .current_lag = 5, .now_ms = 100000000, .status = Q7_STATUS_STOP,
    .complete = 0.1 },
  { .name = "r4_single_commit_full_window_of_1", .w = { C(10, 1000, 5) }, .n = 1,
    .intervals = 1, .current_lag = 5, .now_ms = 1000, .status = Q7_STATUS_STALL,
    .complete = 1.0 },
  { .name = "r4_stall_before_r5_equal_lags",
    .w = { C(10, 1000, 5), C(10, 2000, 5), C(10, 3000, 5) }, .n = 3, .intervals = 5,
    .current_lag = 5, .now_ms = 4000, .status = Q7_STATUS_STALL, .complete = 0.6 },
  { .name = "r4_stall_before_r6_falling_lags",
    .w = { C(10, 1000, 5), C(10, 2000, 4), C(10, 3000, 3) }, .n = 3, .intervals = 5,
    .current_lag = 3, .now_ms = 4000, .status = Q7_STATUS_STALL, .complete = 0.6 },

  /* R5 / R6: lag never strictly smaller than its predecessor is WARN. */
  { .name = "r5_equal_lags_are_not_a_decrease", .w = T5(10, 5, 20, 5, 30, 5, 40, 5, 50, 5),
    .n = 5, .intervals = 5, .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_WARN,
    .complete = 1.0 },
  { .name = "r5_growing_lags_warn", .w = MOVING_GROWING, .n = 5, .intervals = 5,
    .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },
  { .name = "r6_one_decrease_is_ok", .w = T5(10, 5, 20, 6, 30, 4, 40, 7, 50, 8), .n = 5,
    .intervals = 5, .current_lag = 8, .now_ms = 6000, .status = Q7_STATUS_OK,
    .complete = 1.0 },
  { .name = "r6_decrease_at_the_last_commit_is_ok",
    .w = T5(10, 5, 20, 6, 30, 7, 40, 8, 50, 7), .n = 5, .intervals = 5, .current_lag = 8,
    .now_ms = 6000, .status = Q7_STATUS_OK, .complete = 1.0 },
  { .name = "r6_decrease_across_an_unknown_lag_is_ok",
    .w = { C(10, 1000, 5), C(20, 2000, -1), C(30, 3000, 3) }, .n = 3, .intervals = 5,
    .current_lag = 3, .now_ms = 4000, .status = Q7_STATUS_OK, .complete = 0.6 },
  { .name = "r5_increase_across_an_unknown_lag_warns",
    .w = { C(10, 1000, 3), C(20, 2000, -1), C(30, 3000, 5) }, .n = 3, .intervals = 5,
    .current_lag = 5, .now_ms = 4000, .status = Q7_STATUS_WARN, .complete = 0.6 },

  /* complete: n / intervals until full. */
  { .name = "complete_window_not_yet_full",
    .w = { C(10, 1000, 1), C(20, 2000, 2), C(30, 3000, 3) }, .n = 3, .intervals = 4,
    .current_lag = 3, .now_ms = 4000, .status = Q7_STATUS_WARN, .complete = 0.75 },
  { .name = "complete_window_full", .w = MOVING_GROWING, .n = 5, .intervals = 5,
    .current_lag = 5, .now_ms = 6000, .status = Q7_STATUS_WARN, .complete = 1.0 },

  /* Equal timestamps: the window spans 0 ms. */
  { .name = "equal_timestamps_now_equal_is_not_stopped",
    .w = { C(10, 5000, 1), C(20, 5000, 2), C(30, 5000, 3) }, .n = 3, .intervals = 5,
    .current_lag = 3, .now_ms = 5000, .status = Q7_STATUS_WARN, .complete = 0.6 },
  { .name = "equal_timestamps_one_ms_later_is_stopped",
    .w = { C(10, 5000, 1), C(20, 5000, 2), C(30, 5000, 3) }, .n = 3, .intervals = 5,
    .current_lag = 3, .now_ms = 5001, .status = Q7_STATUS_STOP, .complete = 0.6 },
  { .name = "equal_timestamps_falling_lags_ok",
    .w = { C(10, 5000, 3), C(20, 5000, 2), C(30, 5000, 1) }, .n = 3, .intervals = 5,
    .current_lag = 1, .now_ms = 5000, .status = Q7_STATUS_OK, .complete = 0.6 },
};

#define N_EVAL_CASES (sizeof eval_cases / sizeof eval_cases[0])

Test(evaluate, table_of_cases)
{
  size_t failed = 0;
  for (size_t i = 0; i < N_EVAL_CASES; i++) {
    const eval_case *c = &eval_cases[i];
    int status = -100;
    double complete = -1.0;
    int rc = q7_evaluate_partition(c->n ? c->w : NULL, c->n, c->intervals,
                                   c->n_hw ? c->hw : NULL, c->n_hw, c->current_lag, c->now_ms,
                                   c->allowed_lag, &status, &complete);
    if (rc != Q7_OK || status != c->status || !near(complete, c->complete)) {
      cr_log_error("case %s: rc %d (%s), status %s, complete %g; want rc 0, status %s, "
                   "complete %g",
                   c->name, rc, q7_last_error(), q7_status_name(status), complete,
                   q7_status_name(c->status), c->complete);
      failed++;
    }
  }
  cr_assert_eq(failed, 0, "%zu of %zu cases failed (named above)", failed, N_EVAL_CASES);
  cr_log_info("q7_evaluate_partition: %zu cases", N_EVAL_CASES);
}

Test(evaluate, inputs_are_not_modified)
{
  q7_commit w[] = MOVING_GROWING, copy[5];
  int64_t hw[] = { 51, 60 }, hwc[2];
  memcpy(copy, w, sizeof w);
  memcpy(hwc, hw, sizeof hw);
  int st;
  double cp;
  Q7_OK_OR_FAIL(q7_evaluate_partition(w, 5, 5, hw, 2, 5, 9001, 0, &st, &cp));
  cr_assert_eq(st, Q7_STATUS_STOP);
  cr_assert(memcmp(w, copy, sizeof w) == 0, "window modified");
  cr_assert(memcmp(hw, hwc, sizeof hw) == 0, "samples modified");
}

Test(evaluate, null_window_with_n_0_is_ok)
{
  int st = -1;
  double cp = -1;
  Q7_OK_OR_FAIL(q7_evaluate_partition(NULL, 0, 10, NULL, 0, 7, 1000, 0, &st, &cp));
  cr_assert_eq(st, Q7_STATUS_OK);
  cr_assert_eq(cp, 0.0);
}

Test(evaluate, bad_arguments)
{
  q7_commit w[] = { C(10, 1000, 5) };
  int st;
  double cp;
  Q7_FAILS_WITH(Q7_EINVAL, q7_evaluate_partition(w, 1, 10, NULL, 0, 5, 1000, 0, NULL, &cp));
  Q7_FAILS_WITH(Q7_EINVAL, q7_evaluate_partition(w, 1, 10, NULL, 0, 5, 1000, 0, &st, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_evaluate_partition(w, 1, 0, NULL, 0, 5, 1000, 0, &st, &cp));
  Q7_FAILS_WITH(Q7_EINVAL, q7_evaluate_partition(NULL, 1, 10, NULL, 0, 5, 1000, 0, &st, &cp));
  Q7_FAILS_WITH(Q7_EINVAL, q7_evaluate_partition(w, 1, 10, NULL, 0, -1, 1000, 0, &st, &cp));
  /* The same calls with the fault removed succeed. */
  Q7_OK_OR_FAIL(q7_evaluate_partition(w, 1, 10, NULL, 0, 0, 1000, 0, &st, &cp));
  cr_assert_eq(st, Q7_STATUS_OK);
}

Test(evaluate, status_names)
{
  static const char *const want[] = { "NOTFOUND", "OK", "WARN", "ERR", "STOP", "STALL",
                                      "REWIND" };
  cr_assert_eq(Q7_STATUS_NOTFOUND, 0);
  cr_assert_eq(Q7_STATUS_OK, 1);
  cr_assert_eq(Q7_STATUS_WARN, 2);
  cr_assert_eq(Q7_STATUS_ERR, 3);
  cr_assert_eq(Q7_STATUS_STOP, 4);
  cr_assert_eq(Q7_STATUS_STALL, 5);
  cr_assert_eq(Q7_STATUS_REWIND, 6);
  for (int i = 0; i <= 6; i++)
    cr_assert_str_eq(q7_status_name(i), want[i], "status %d", i);
  cr_assert_str_eq(q7_status_name(-1), "UNKNOWN");
  cr_assert_str_eq(q7_status_name(7), "UNKNOWN");
  cr_assert_str_eq(q7_status_name(1000), "UNKNOWN");
}

/* ===================================================================== */
/*  On a real store, with a fixed clock                                  */
/* ===================================================================== */

#define WINDOW 5
#define T0 1000000 /* whole seconds, in ms */

static char *dir;
static q7 *q;
static _Atomic int64_t clock_now = T0;

static int64_t
fixed_clock(void *arg)
{
  return *(const _Atomic int64_t *)arg;
}

static void
open_store(const char *expire_ms)
{
  q7_conf *c = q7_conf_new();
  cr_assert(c != NULL);
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", "false"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "retention.check.interval.ms", "0"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "lag.window", "5"));
  if (expire_ms)
    Q7_OK_OR_FAIL(q7_conf_set(c, "lag.expire.ms", expire_ms));
  q7_conf_set_clock(c, fixed_clock, (void *)&clock_now);
  Q7_OK_OR_FAIL(q7_open(&q, dir, c));
  q7_conf_destroy(c);
}

static void
setup(void)
{
  dir = tmpdir_new();
  clock_now = T0;
  open_store(NULL);
}

static void
teardown(void)
{
  cr_assert_eq(q7_close(q), Q7_OK, "%s", q7_last_error());
  tmpdir_rm(dir);
}

static void
make_topic(const char *name, int32_t partitions)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, name, partitions, NULL));
}

static int64_t
hw_of(const char *topic, int32_t partition)
{
  q7_topic *t;
  q7_partition *p;
  int64_t ls, hw;
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, partition, &p));
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  q7_topic_close(t);
  return hw;
}

/* Produce to @partition of @topic until its high watermark is @hw. */
static void
produce_to(const char *topic, int32_t partition, int64_t hw)
{
  q7_topic *t;
  q7_producer *p;
  int64_t now = hw_of(topic, partition);
  cr_assert(now <= hw, "%s/%d: high watermark %lld already above %lld", topic, partition,
            (long long)now, (long long)hw);
  if (now == hw)
    return;
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  for (; now < hw; now++) {
    q7_msg m = { .topic = t, .partition = partition, .value = "v", .value_len = 1 };
    Q7_OK_OR_FAIL(q7_producer_send(p, &m));
  }
  Q7_OK_OR_FAIL(q7_producer_flush(p, -1));
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
  cr_assert_eq(hw_of(topic, partition), hw);
}

static q7_consumer *
group_consumer(const char *group)
{
  q7_conf *c = q7_conf_new();
  q7_consumer *k;
  Q7_OK_OR_FAIL(q7_conf_set(c, "enable.auto.commit", "false"));
  Q7_OK_OR_FAIL(q7_consumer_new(q, group, c, &k));
  q7_conf_destroy(c);
  return k;
}

/* Commit @next for @group at store time @at. */
static void
commit_at(const char *group, const char *topic, int32_t partition, int64_t next, int64_t at)
{
  q7_consumer *k = group_consumer(group);
  clock_now = at;
  Q7_OK_OR_FAIL(q7_consumer_commit_offset(k, topic, partition, next));
  Q7_OK_OR_FAIL(q7_consumer_close(k));
}

/* A history: before commit i the high watermark is hw[i], the group commits
 * next[i] at T0 + 1000 i; at the end the high watermark is final_hw. */
typedef struct history {
  int64_t hw[WINDOW], next[WINDOW];
  int n;
  int64_t final_hw;
} history;

/* lags 5,4,3,2,1, current 1: a decrease -> OK (R6). */
static const history H_OK = { { 10, 20, 30, 40, 50 }, { 5, 16, 27, 38, 49 }, 5, 50 };
/* lags 1,2,3,4,5, current 5: never decreasing -> WARN (R5). */
static const history H_WARN = { { 10, 20, 30, 40, 50 }, { 9, 18, 27, 36, 45 }, 5, 50 };
/* offset 5 throughout, lags 5..9, current 9 -> STALL (R4). */
static const history H_STALL = { { 10, 11, 12, 13, 14 }, { 5, 5, 5, 5, 5 }, 5, 14 };
/* 10,20,15,16,17 under hw 30, current 13 -> REWIND (R2). */
static const history H_REWIND = { { 30, 30, 30, 30, 30 }, { 10, 20, 15, 16, 17 }, 5, 30 };
/* two commits at T0, T0+1000 (samples 10, 20 above offset 8), current 22:
 * at T0+5000, 4000 > 1000 -> STOP (R1), complete 2/5. */
static const history H_STOP = { { 10, 20 }, { 5, 8 }, 2, 30 };

#define NOW (T0 + 5000) /* 1000 after the 5th commit: no full window is stopped */

static void
build(const char *group, const char *topic, int32_t partition, const history *h)
{
  for (int i = 0; i < h->n; i++) {
    produce_to(topic, partition, h->hw[i]);
    commit_at(group, topic, partition, h->next[i], T0 + 1000 * i);
  }
  produce_to(topic, partition, h->final_hw);
}

static q7_group_report *
status(const char *group, int64_t now)
{
  q7_group_report *r = NULL;
  Q7_OK_OR_FAIL(q7_group_status(q, group, now, &r));
  cr_assert(r != NULL);
  cr_assert_str_eq(r->group, group);
  return r;
}

static void
assert_commit(q7_commit c, int64_t offset, int64_t ts, int64_t lag, const char *what)
{
  cr_assert(c.offset == offset && c.timestamp_ms == ts && c.lag == lag,
            "%s: (%lld, %lld, %lld), want (%lld, %lld, %lld)", what, (long long)c.offset,
            (long long)c.timestamp_ms, (long long)c.lag, (long long)offset, (long long)ts,
            (long long)lag);
}

TestSuite(lag, .init = setup, .fini = teardown, .timeout = 120);

Test(lag, partition_statuses_and_group_rollup)
{
  make_topic("t", 6);
  build("g", "t", 0, &H_OK);
  build("g", "t", 1, &H_WARN);
  build("g", "t", 2, &H_STALL);
  build("g", "t", 3, &H_REWIND);
  build("g", "t", 4, &H_STOP);
  /* partition 5: never committed */

  q7_group_report *r = status("g", NOW);
  cr_assert_eq(r->status, Q7_STATUS_ERR, "group %s", q7_status_name(r->status));
  cr_assert_eq(r->partition_count, 6);
  cr_assert(r->partitions != NULL);
  static const int want[] = { Q7_STATUS_OK, Q7_STATUS_WARN, Q7_STATUS_STALL,
                              Q7_STATUS_REWIND, Q7_STATUS_STOP, Q7_STATUS_OK };
  static const int64_t lag[] = { 1, 5, 9, 13, 22, 0 };
  static const double complete[] = { 1.0, 1.0, 1.0, 1.0, 0.4, 0.0 };
  for (int i = 0; i < 6; i++) {
    const q7_partition_report *p = &r->partitions[i];
    cr_assert_str_eq(p->topic, "t");
    cr_assert_eq(p->partition, i);
    cr_assert_eq(p->status, want[i], "partition %d: %s, want %s", i, q7_status_name(p->status),
                 q7_status_name(want[i]));
    cr_assert_eq(p->current_lag, lag[i], "partition %d: lag %lld", i, (long long)p->current_lag);
    cr_assert(near(p->complete, complete[i]), "partition %d: complete %g", i,
              p->complete);
  }
  /* start and end: the oldest and newest commit of the window */
  assert_commit(r->partitions[0].start, 5, T0, 5, "p0 start");
  assert_commit(r->partitions[0].end, 49, T0 + 4000, 1, "p0 end");
  assert_commit(r->partitions[4].start, 5, T0, 5, "p4 start");
  assert_commit(r->partitions[4].end, 8, T0 + 1000, 12, "p4 end");
  /* never committed: offset -1 */
  cr_assert_eq(r->partitions[5].start.offset, -1);
  cr_assert_eq(r->partitions[5].end.offset, -1);
  cr_assert_eq(r->total_lag, 1 + 5 + 9 + 13 + 22);
  cr_assert(near(r->complete, 4.0 / 6.0), "complete %g", r->complete);
  cr_assert_eq(r->maxlag, &r->partitions[4], "maxlag is partition %d",
               r->maxlag ? r->maxlag->partition : -1);
  q7_group_report_free(r);
}

/* Each partition status alone in a group: the rollup maps STOP, STALL,
 * REWIND to ERR. */
Test(lag, rollup_of_each_status_alone)
{
  static const struct {
    const char *name;
    const history *h;
    int partition_status, group_status;
  } cases[] = {
    { "ok", &H_OK, Q7_STATUS_OK, Q7_STATUS_OK },
    { "warn", &H_WARN, Q7_STATUS_WARN, Q7_STATUS_WARN },
    { "stop", &H_STOP, Q7_STATUS_STOP, Q7_STATUS_ERR },
    { "stall", &H_STALL, Q7_STATUS_STALL, Q7_STATUS_ERR },
    { "rewind", &H_REWIND, Q7_STATUS_REWIND, Q7_STATUS_ERR },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    make_topic(cases[i].name, 1);
    build(cases[i].name, cases[i].name, 0, cases[i].h);
    q7_group_report *r = status(cases[i].name, NOW);
    cr_assert_eq(r->partition_count, 1, "%s", cases[i].name);
    cr_assert_eq(r->partitions[0].status, cases[i].partition_status, "%s: partition %s",
                 cases[i].name, q7_status_name(r->partitions[0].status));
    cr_assert_eq(r->status, cases[i].group_status, "%s: group %s", cases[i].name,
                 q7_status_name(r->status));
    q7_group_report_free(r);
  }
  /* The STALL history (samples 10..14, all above offset 5) judged long after
   * its last commit: a full window that stopped is STOP, and still counts as
   * complete. */
  q7_group_report *r = status("stall", T0 + 4000 + 4001);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_STOP, "%s",
               q7_status_name(r->partitions[0].status));
  cr_assert_eq(r->status, Q7_STATUS_ERR);
  cr_assert_eq(r->partitions[0].complete, 1.0);
  cr_assert_eq(r->complete, 1.0);
  q7_group_report_free(r);
  r = status("stall", T0 + 4000 + 4000); /* gap == span: not stopped */
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_STALL, "%s",
               q7_status_name(r->partitions[0].status));
  q7_group_report_free(r);
}

/* WARN beats OK; ERR beats WARN whatever the order of the partitions. */
Test(lag, rollup_takes_the_worst)
{
  make_topic("t", 3);
  build("g", "t", 0, &H_WARN);
  build("g", "t", 1, &H_OK);
  q7_group_report *r = status("g", NOW);
  cr_assert_eq(r->status, Q7_STATUS_WARN, "%s", q7_status_name(r->status));
  q7_group_report_free(r);
  build("h", "t", 2, &H_STALL);
  commit_at("h", "t", 0, 50, T0 + 4000); /* lag 0: OK */
  r = status("h", NOW);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_OK);
  cr_assert_eq(r->partitions[2].status, Q7_STATUS_STALL);
  cr_assert_eq(r->status, Q7_STATUS_ERR, "%s", q7_status_name(r->status));
  q7_group_report_free(r);
  /* the worst comes first: a later, milder WARN does not replace it */
  make_topic("u", 2);
  build("i", "u", 0, &H_REWIND);
  build("i", "u", 1, &H_WARN);
  r = status("i", NOW);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_REWIND);
  cr_assert_eq(r->partitions[1].status, Q7_STATUS_WARN);
  cr_assert_eq(r->status, Q7_STATUS_ERR, "%s", q7_status_name(r->status));
  q7_group_report_free(r);
}

/* The store's broker-offset samples are the high watermarks recorded with
 * the window's commits: one at or below the newest committed offset is
 * "recent lag zero" and prevents STOP. */
Test(lag, recorded_high_watermark_prevents_stop)
{
  make_topic("t", 2);
  /* p0: samples 10, 20 with the last offset 12: 10 <= 12 */
  produce_to("t", 0, 10);
  commit_at("g", "t", 0, 5, T0);        /* lag 5 */
  produce_to("t", 0, 20);
  commit_at("g", "t", 0, 12, T0 + 1000); /* lag 8 */
  /* p1: samples 10, 20 with the last offset 8: both above */
  produce_to("t", 1, 10);
  commit_at("g", "t", 1, 5, T0);
  produce_to("t", 1, 20);
  commit_at("g", "t", 1, 8, T0 + 1000);
  q7_group_report *r = status("g", T0 + 10000); /* gap 9000 > span 1000 */
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_WARN, "p0: %s",
               q7_status_name(r->partitions[0].status));
  cr_assert_eq(r->partitions[1].status, Q7_STATUS_STOP, "p1: %s",
               q7_status_name(r->partitions[1].status));
  q7_group_report_free(r);
}

/* Partitions in (topic name, partition) order, whatever the order of the
 * commits; maxlag is the first with the strictly greatest lag. */
Test(lag, maxlag_first_of_the_greatest_in_topic_order)
{
  make_topic("b", 1);
  make_topic("a", 2);
  produce_to("b", 0, 10);
  produce_to("a", 0, 10);
  produce_to("a", 1, 10);
  commit_at("g", "b", 0, 3, T0);  /* lag 7 */
  commit_at("g", "a", 1, 3, T0);  /* lag 7 */
  commit_at("g", "a", 0, 7, T0);  /* lag 3 */
  q7_group_report *r = status("g", T0);
  cr_assert_eq(r->partition_count, 3);
  cr_assert_str_eq(r->partitions[0].topic, "a");
  cr_assert_eq(r->partitions[0].partition, 0);
  cr_assert_str_eq(r->partitions[1].topic, "a");
  cr_assert_eq(r->partitions[1].partition, 1);
  cr_assert_str_eq(r->partitions[2].topic, "b");
  cr_assert_eq(r->partitions[2].partition, 0);
  cr_assert_eq(r->total_lag, 17);
  cr_assert_eq(r->maxlag, &r->partitions[1], "maxlag %s/%d",
               r->maxlag ? r->maxlag->topic : "NULL", r->maxlag ? r->maxlag->partition : -1);
  q7_group_report_free(r);

  /* The tie at the top now includes the first partition: it wins. */
  commit_at("g", "a", 0, 3, T0 + 1000);
  r = status("g", T0 + 1000);
  cr_assert_eq(r->partitions[0].current_lag, 7);
  cr_assert_eq(r->maxlag, &r->partitions[0]);
  q7_group_report_free(r);

  /* A later, strictly greater lag wins. */
  commit_at("g", "b", 0, 2, T0 + 1000);
  r = status("g", T0 + 1000);
  cr_assert_eq(r->maxlag, &r->partitions[2]);
  cr_assert_eq(r->maxlag->current_lag, 8);
  q7_group_report_free(r);
}

Test(lag, maxlag_with_every_lag_zero_is_the_first_partition)
{
  make_topic("t", 2);
  produce_to("t", 0, 4);
  commit_at("g", "t", 1, 0, T0);
  commit_at("g", "t", 0, 4, T0);
  q7_group_report *r = status("g", T0);
  cr_assert_eq(r->total_lag, 0);
  cr_assert_eq(r->status, Q7_STATUS_OK);
  cr_assert_eq(r->maxlag, &r->partitions[0]);
  q7_group_report_free(r);
}

Test(lag, never_committed_partitions_count)
{
  make_topic("t", 4);
  produce_to("t", 0, 5);
  produce_to("t", 3, 9); /* records, but no commit: still lag 0 */
  commit_at("g", "t", 0, 2, T0);
  q7_group_report *r = status("g", T0);
  cr_assert_eq(r->partition_count, 4);
  for (int i = 1; i < 4; i++) {
    const q7_partition_report *p = &r->partitions[i];
    cr_assert_eq(p->partition, i);
    cr_assert_eq(p->status, Q7_STATUS_OK);
    cr_assert_eq(p->complete, 0.0);
    cr_assert_eq(p->current_lag, 0);
    cr_assert_eq(p->start.offset, -1);
    cr_assert_eq(p->end.offset, -1);
  }
  /* the one commit: lag 3, complete 1/5, not stopped at its own time: STALL */
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_STALL, "%s",
               q7_status_name(r->partitions[0].status));
  cr_assert(near(r->partitions[0].complete, 0.2));
  cr_assert_eq(r->total_lag, 3);
  cr_assert_eq(r->complete, 0.0);
  cr_assert_eq(r->maxlag, &r->partitions[0]);
  q7_group_report_free(r);
}

/* BURROW.md: "a window of one commit with lag is STOP with complete 0.1". */
Test(lag, one_commit_with_lag_later_is_stop)
{
  Q7_OK_OR_FAIL(q7_close(q));
  q7_conf *c = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", "false"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "retention.check.interval.ms", "0"));
  q7_conf_set_clock(c, fixed_clock, (void *)&clock_now);
  Q7_OK_OR_FAIL(q7_open(&q, dir, c)); /* lag.window at its default, 10 */
  q7_conf_destroy(c);
  make_topic("t", 1);
  produce_to("t", 0, 5);
  commit_at("g", "t", 0, 2, T0);
  q7_group_report *r = status("g", T0 + 60000);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_STOP, "%s",
               q7_status_name(r->partitions[0].status));
  cr_assert(near(r->partitions[0].complete, 0.1), "complete %g",
            r->partitions[0].complete);
  cr_assert_eq(r->status, Q7_STATUS_ERR);
  q7_group_report_free(r);
}

Test(lag, unknown_group_is_notfound)
{
  make_topic("t", 2);
  produce_to("t", 0, 5);
  commit_at("other", "t", 0, 1, T0);
  q7_group_report *r = status("nobody", T0);
  cr_assert_eq(r->status, Q7_STATUS_NOTFOUND);
  cr_assert_eq(r->complete, 1.0);
  cr_assert_eq(r->partition_count, 0);
  cr_assert_eq(r->total_lag, 0);
  cr_assert_null(r->maxlag);
  q7_group_report_free(r);
  /* a name that is a prefix of an existing group is another group */
  r = status("othe", T0);
  cr_assert_eq(r->status, Q7_STATUS_NOTFOUND);
  q7_group_report_free(r);
}

Test(lag, expired_group_is_notfound)
{
  Q7_OK_OR_FAIL(q7_close(q));
  open_store("10000");
  make_topic("t", 2);
  produce_to("t", 0, 5);
  produce_to("t", 1, 5);
  commit_at("g", "t", 0, 1, T0);
  commit_at("g", "t", 1, 1, T0 + 5000); /* the newest commit */
  q7_group_report *r = status("g", T0 + 5000 + 10000); /* exactly expire.ms old: kept */
  cr_assert_neq(r->status, Q7_STATUS_NOTFOUND);
  cr_assert_eq(r->partition_count, 2);
  q7_group_report_free(r);
  r = status("g", T0 + 5000 + 10001);
  cr_assert_eq(r->status, Q7_STATUS_NOTFOUND);
  cr_assert_eq(r->complete, 1.0);
  cr_assert_eq(r->partition_count, 0);
  cr_assert_null(r->maxlag);
  cr_assert_eq(r->total_lag, 0);
  q7_group_report_free(r);
}

/* now_ms 0: the store's clock, truncated to whole seconds.  Commits at
 * T0 and T0+400 (span 400), the high watermark then (10, 20) above the last
 * offset (8): at T0+900 untruncated the gap is 500 > 400 (STOP); truncated
 * to T0 the gap is negative (WARN, lags 5, 12). */
Test(lag, now_0_is_the_store_clock_in_whole_seconds)
{
  make_topic("t", 1);
  produce_to("t", 0, 10);
  commit_at("g", "t", 0, 5, T0);       /* lag 5 */
  produce_to("t", 0, 20);
  commit_at("g", "t", 0, 8, T0 + 400); /* lag 12; both samples above 8 */
  q7_group_report *r = status("g", T0 + 900);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_STOP, "explicit now: %s",
               q7_status_name(r->partitions[0].status));
  q7_group_report_free(r);
  clock_now = T0 + 900;
  r = status("g", 0);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_WARN, "now 0 at T0+900: %s",
               q7_status_name(r->partitions[0].status));
  q7_group_report_free(r);
  clock_now = T0 + 1000;
  r = status("g", 0);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_STOP, "now 0 at T0+1000: %s",
               q7_status_name(r->partitions[0].status));
  q7_group_report_free(r);
}

Test(lag, commit_history_records_time_and_lag)
{
  make_topic("t", 2);
  produce_to("t", 0, 10);
  commit_at("g", "t", 0, 4, T0);
  produce_to("t", 0, 15);
  commit_at("g", "t", 0, 12, T0 + 1000);
  q7_commit h[8];
  size_t iv = 0;
  for (int i = 0; i < 8; i++)
    h[i] = (q7_commit){ -7, -7, -7 };
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 8, &iv), 2);
  cr_assert_eq(iv, WINDOW);
  assert_commit(h[0], 4, T0, 6, "h[0]");
  assert_commit(h[1], 12, T0 + 1000, 3, "h[1]");
  cr_assert_eq(h[2].offset, -7, "wrote past the count");
  /* max below the count: the count, only max written */
  h[0] = (q7_commit){ -7, -7, -7 };
  h[1] = (q7_commit){ -7, -7, -7 };
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 1, NULL), 2);
  assert_commit(h[0], 4, T0, 6, "h[0] with max 1");
  cr_assert_eq(h[1].offset, -7, "wrote past max");
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, NULL, 0, NULL), 2);
  /* never committed */
  cr_assert_eq(q7_commit_history(q, "g", "t", 1, h, 8, NULL), 0);
  cr_assert_eq(q7_commit_history(q, "nobody", "t", 0, h, 8, NULL), 0);
  /* errors */
  Q7_FAILS_WITH(Q7_ENOENT, q7_commit_history(q, "g", "nope", 0, h, 8, NULL));
  Q7_FAILS_WITH(Q7_ENOENT, q7_commit_history(q, "g", "t", 2, h, 8, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_commit_history(q, "g", "t", -1, h, 8, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_commit_history(NULL, "g", "t", 0, h, 8, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_commit_history(q, "", "t", 0, h, 8, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_commit_history(q, "g", "t", 0, NULL, 8, NULL));
}

Test(lag, window_keeps_the_last_lag_window_commits)
{
  make_topic("t", 1);
  produce_to("t", 0, 100);
  for (int i = 0; i < 8; i++)
    commit_at("g", "t", 0, 10 * (i + 1), T0 + 1000 * i);
  q7_commit h[10];
  size_t iv = 0;
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 10, &iv), WINDOW);
  cr_assert_eq(iv, WINDOW);
  for (int i = 0; i < WINDOW; i++)
    assert_commit(h[i], 10 * (i + 4), T0 + 1000 * (i + 3), 100 - 10 * (i + 4), "window");
  q7_group_report *r = status("g", T0 + 8000);
  assert_commit(r->partitions[0].start, 40, T0 + 3000, 60, "start");
  assert_commit(r->partitions[0].end, 80, T0 + 7000, 20, "end");
  cr_assert_eq(r->partitions[0].complete, 1.0);
  cr_assert_eq(r->partitions[0].status, Q7_STATUS_OK); /* lags fall */
  q7_group_report_free(r);
}

/* Burrow's min-distance merge with distance 0: a commit stamped earlier than
 * the previous one overwrites the previous slot, which keeps its time; a
 * commit stamped at the same time takes a new slot. */
Test(lag, earlier_commit_overwrites_the_previous_slot)
{
  make_topic("t", 1);
  produce_to("t", 0, 10);
  commit_at("g", "t", 0, 1, T0 + 5000);
  commit_at("g", "t", 0, 2, T0 + 6000);
  produce_to("t", 0, 12);
  commit_at("g", "t", 0, 3, T0 + 5500); /* the clock went backwards */
  q7_commit h[8];
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 8, NULL), 2);
  assert_commit(h[0], 1, T0 + 5000, 9, "h[0]");
  assert_commit(h[1], 3, T0 + 6000, 9, "h[1] merged");
  int64_t next = -1;
  Q7_OK_OR_FAIL(q7_committed(q, "g", "t", 0, &next));
  cr_assert_eq(next, 3);
  commit_at("g", "t", 0, 4, T0 + 6000); /* same time: a new slot */
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 8, NULL), 3);
  assert_commit(h[2], 4, T0 + 6000, 8, "h[2]");
  commit_at("g", "t", 0, 5, T0 + 7000);
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 8, NULL), 4);
  assert_commit(h[3], 5, T0 + 7000, 7, "h[3]");
}

/* A merge into a full window does not drop the oldest commit. */
Test(lag, earlier_commit_in_a_full_window)
{
  make_topic("t", 1);
  produce_to("t", 0, 100);
  for (int i = 0; i < WINDOW; i++)
    commit_at("g", "t", 0, i + 1, T0 + 1000 * i);
  commit_at("g", "t", 0, 50, T0);
  q7_commit h[8];
  cr_assert_eq(q7_commit_history(q, "g", "t", 0, h, 8, NULL), WINDOW);
  assert_commit(h[0], 1, T0, 99, "h[0] kept");
  assert_commit(h[WINDOW - 1], 50, T0 + 1000 * (WINDOW - 1), 50, "last merged");
}

typedef struct walk {
  char names[8][32];
  int n, stop_at, ret;
} walk;

static int
collect(const char *group, void *arg)
{
  walk *w = arg;
  cr_assert(w->n < 8);
  snprintf(w->names[w->n], sizeof w->names[0], "%s", group);
  w->n++;
  return w->n == w->stop_at ? w->ret : 0;
}

Test(lag, group_foreach_in_name_order_and_stops)
{
  make_topic("t", 2);
  make_topic("u", 1);
  produce_to("t", 0, 5);
  commit_at("b", "t", 0, 1, T0);
  commit_at("b", "t", 1, 0, T0);
  commit_at("b", "u", 0, 0, T0);
  commit_at("a b", "t", 0, 1, T0);
  commit_at("c", "t", 0, 1, T0);
  commit_at("a", "u", 0, 0, T0);
  walk w = { .stop_at = 0 };
  Q7_OK_OR_FAIL(q7_group_foreach(q, collect, &w));
  cr_assert_eq(w.n, 4);
  cr_assert_str_eq(w.names[0], "a");
  cr_assert_str_eq(w.names[1], "a b");
  cr_assert_str_eq(w.names[2], "b");
  cr_assert_str_eq(w.names[3], "c");
  walk s = { .stop_at = 2, .ret = 7 };
  cr_assert_eq(q7_group_foreach(q, collect, &s), 7);
  cr_assert_eq(s.n, 2);
  walk e = { .stop_at = 1, .ret = -42 };
  cr_assert_eq(q7_group_foreach(q, collect, &e), -42);
  cr_assert_eq(e.n, 1);
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_foreach(NULL, collect, &w));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_foreach(q, NULL, &w));
}

Test(lag, group_foreach_with_no_groups)
{
  walk w = { .stop_at = 0 };
  Q7_OK_OR_FAIL(q7_group_foreach(q, collect, &w));
  cr_assert_eq(w.n, 0);
}

Test(lag, group_delete)
{
  make_topic("t", 2);
  produce_to("t", 0, 5);
  commit_at("a", "t", 0, 1, T0);
  commit_at("b", "t", 0, 2, T0);
  commit_at("b", "t", 1, 0, T0);
  commit_at("bb", "t", 0, 3, T0);
  Q7_OK_OR_FAIL(q7_group_delete(q, "b"));
  q7_group_report *r = status("b", T0);
  cr_assert_eq(r->status, Q7_STATUS_NOTFOUND);
  cr_assert_eq(r->partition_count, 0);
  q7_group_report_free(r);
  q7_commit h[4];
  cr_assert_eq(q7_commit_history(q, "b", "t", 0, h, 4, NULL), 0);
  int64_t next;
  Q7_FAILS_WITH(Q7_ENOENT, q7_committed(q, "b", "t", 0, &next));
  /* the others are untouched, "bb" included */
  Q7_OK_OR_FAIL(q7_committed(q, "bb", "t", 0, &next));
  cr_assert_eq(next, 3);
  Q7_OK_OR_FAIL(q7_committed(q, "a", "t", 0, &next));
  cr_assert_eq(next, 1);
  walk w = { .stop_at = 0 };
  Q7_OK_OR_FAIL(q7_group_foreach(q, collect, &w));
  cr_assert_eq(w.n, 2);
  cr_assert_str_eq(w.names[0], "a");
  cr_assert_str_eq(w.names[1], "bb");
  Q7_FAILS_WITH(Q7_ENOENT, q7_group_delete(q, "b"));
  Q7_FAILS_WITH(Q7_ENOENT, q7_group_delete(q, "nobody"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_delete(NULL, "a"));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_delete(q, ""));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_delete(q, NULL));
}

Test(lag, group_status_bad_arguments)
{
  q7_group_report *r = (q7_group_report *)0x1;
  char g256[257], g255[256];
  memset(g256, 'g', 256);
  g256[256] = 0;
  memset(g255, 'g', 255);
  g255[255] = 0;
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_status(NULL, "g", T0, &r));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_status(q, "g", T0, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_status(q, NULL, T0, &r));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_status(q, "", T0, &r));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_status(q, g256, T0, &r));
  Q7_FAILS_WITH(Q7_EINVAL, q7_group_status(q, "g", -1, &r));
  cr_assert_eq(r, (q7_group_report *)0x1, "out written on failure");
  /* 255 bytes is a valid name */
  r = status(g255, T0);
  cr_assert_eq(r->status, Q7_STATUS_NOTFOUND);
  q7_group_report_free(r);
  q7_group_report_free(NULL);
}

/* ===================================================================== */
/*  Time to evaluate a group of 1,000 partitions                         */
/* ===================================================================== */

static double
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

Test(lag, evaluates_1000_partitions, .timeout = 300)
{
  enum { P = 1000, ROUNDS = 3, RUNS = 5 };
  make_topic("big", P);
  q7_topic *t;
  q7_producer *p;
  q7_consumer *k = group_consumer("perf");
  Q7_OK_OR_FAIL(q7_topic_open(q, "big", &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &p));
  for (int round = 1; round <= ROUNDS; round++) {
    for (int32_t i = 0; i < P; i++)
      for (int j = 0; j < 2; j++) {
        q7_msg m = { .topic = t, .partition = i, .value = "v", .value_len = 1 };
        Q7_OK_OR_FAIL(q7_producer_send(p, &m));
      }
    Q7_OK_OR_FAIL(q7_producer_flush(p, -1));
    clock_now = T0 + 1000 * round;
    for (int32_t i = 0; i < P; i++) /* hw 2 round, lag 1 each time */
      Q7_OK_OR_FAIL(q7_consumer_commit_offset(k, "big", i, 2 * round - 1));
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
  Q7_OK_OR_FAIL(q7_consumer_close(k));
  q7_topic_close(t);

  double ms[RUNS];
  for (int run = 0; run < RUNS; run++) {
    q7_group_report *r = NULL;
    double t0 = mono_ms();
    int rc = q7_group_status(q, "perf", T0 + 4000, &r);
    ms[run] = mono_ms() - t0;
    cr_assert_eq(rc, Q7_OK, "%s", q7_last_error());
    cr_assert_eq(r->partition_count, P);
    cr_assert_eq(r->total_lag, P);
    /* lags 1,1,1 never fall: WARN everywhere; 3 of 5 commits */
    cr_assert_eq(r->status, Q7_STATUS_WARN, "%s", q7_status_name(r->status));
    cr_assert_eq(r->partitions[P - 1].status, Q7_STATUS_WARN);
    cr_assert(near(r->partitions[P - 1].complete, 0.6));
    cr_assert_eq(r->complete, 0.0);
    q7_group_report_free(r);
  }
  qsort(ms, RUNS, sizeof ms[0], cmp_double);
  cr_log_info("q7_group_status over %d partitions (%d commits each): median %.3f ms "
              "(min %.3f, max %.3f) of %d runs",
              P, ROUNDS, ms[RUNS / 2], ms[0], ms[RUNS - 1], RUNS);
  cr_assert_lt(ms[RUNS / 2], 1000.0, "median %.3f ms", ms[RUNS / 2]);
}
