/* test_diskfull.c - a full disk, and a store at its storage.max.bytes.
 *
 * A store is filled with send_sync until a write fails; then:
 *   - the failure is Q7_EFULL with a message, and stays so while full;
 *   - no acknowledged record is damaged (read back byte for byte), the high
 *     watermark is the count acknowledged;
 *   - batched sends are each reported exactly once (Q7_OK or Q7_EFULL) and
 *     those reported delivered are stored;
 *   - the store closes, opens again and reads;
 *   - a retention sweep removes the older half, and producing resumes at
 *     the next offset, with everything kept still intact.
 * Two ways to be full: a real filesystem -- an 8 MiB tmpfs the test mounts
 * when it runs as root (mount -t tmpfs -o size=8m tmpfs DIR), skipped with
 * a message otherwise -- and storage.max.bytes on an ordinary directory.
 *
 * The store work runs in a forked child (a crash there fails the test, it
 * does not kill the runner); the parent mounts before the fork and unmounts
 * after the child is gone, in every path, before it asserts anything. */
#include "helpers.h"
#include "proc.h"
#include "kids.h"
#include "tmpfs.h"

#include <inttypes.h>
#include <stdarg.h>
#include <sys/mman.h>

static char *dir;

static void
setup(void)
{
  dir = tmpdir_new();
  mounted = false;
  kids_reset();
}

/* Every path out of a test comes here: child killed, tmpfs unmounted. */
static void
teardown(void)
{
  kids_kill_all();
  tmpfs_unmount("test_diskfull");
  tmpdir_rm(dir);
  dir = NULL;
}

/* ------------------------------------------------- shared with the child */

typedef struct result {
  char msg[1024];
  int line;                       /* of the first failed check, 0: none */
  int full_rc;                    /* what ended the filling */
  char full_msg[512];
  int64_t acked;                  /* send_sync records acknowledged */
  int64_t batched_ok, batched_full;
  int64_t removed, resumed;
  int sweep_rc;
  int64_t bytes_acked;
} result;

static result *sh;

enum { MAXLEN = 6200, TS0 = 1000000, HOUR = 3600000 };

/* Record @i: 100 to 6100 bytes, its index first, the rest from its index. */
static size_t
fill(unsigned char *v, int64_t i)
{
  uint64_t x = mix64((uint64_t)i);
  size_t len = 100 + x % 6000;
  for (size_t k = 0; k < len; k += 8) {
    x = mix64(x);
    memcpy(v + k, &x, len - k < 8 ? len - k : 8);
  }
  memcpy(v, &i, sizeof i);
  return len;
}

/* Records [from, to) of partition 0 are records from..to-1, intact. */
static int
check_range(q7_topic *t, int64_t from, int64_t to, const char *when)
{
  q7_partition *p;
  int64_t ls, hw;
  unsigned char *want = malloc(MAXLEN);
  int rc;
  WCHECK(!(rc = q7_topic_partition(t, 0, &p)), "%s: partition: %s", when, q7_last_error());
  WCHECK(!(rc = q7_partition_offsets(p, &ls, &hw)), "%s: offsets: %s", when, q7_last_error());
  WCHECK(ls == from && hw == to, "%s: log [%" PRId64 ", %" PRId64 "), want [%" PRId64
         ", %" PRId64 ")", when, ls, hw, from, to);
  for (int64_t off = from; off < to;) {
    q7_record r[64];
    int n = q7_partition_read(p, off, r, 64);
    WCHECK(n > 0, "%s: read at %" PRId64 ": %d %s", when, off, n, q7_last_error());
    for (int i = 0; i < n; i++, off++) {
      size_t len = fill(want, off);
      WCHECK(r[i].offset == off, "%s: offset %" PRId64 " where %" PRId64 " belongs", when,
             r[i].offset, off);
      WCHECK(r[i].value_len == len && memcmp(r[i].value, want, len) == 0,
             "%s: record %" PRId64 " damaged (%zu bytes, want %zu)", when, off, r[i].value_len,
             len);
      WCHECK(r[i].timestamp_ms == TS0 + off, "%s: record %" PRId64 " timestamp %" PRId64, when,
             off, r[i].timestamp_ms);
    }
  }
  q7_partition_read(p, 0, NULL, 0);
  free(want);
  return 0;
}

typedef struct dlog {
  int64_t count[16], off[16];
  int err[16];
  int bad;
} dlog;

static void
on_delivery(const q7_delivery *d, void *arg)
{
  dlog *l = arg;
  uintptr_t i = (uintptr_t)d->opaque;
  if (i < 1 || i > 16) {
    l->bad++;
    return;
  }
  l->count[i - 1]++;
  l->off[i - 1] = d->offset;
  l->err[i - 1] = d->err;
}

static q7_conf *
store_conf(const char *max_bytes)
{
  q7_conf *c = q7_conf_new();
  if (c && (q7_conf_set(c, "sync", "true") || q7_conf_set(c, "retention.check.interval.ms", "0") ||
            (max_bytes && q7_conf_set(c, "storage.max.bytes", max_bytes)))) {
    q7_conf_destroy(c);
    return NULL;
  }
  return c;
}

/* The whole scenario, in a child, on the store at @path.  @strict: the
 * write that finds the store full must fail with Q7_EFULL (else any error
 * will do, to get on to the recovery); @recover: go on to the sweep. */
static int
fill_until_full(const char *path, const char *max_bytes, bool strict, bool recover)
{
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  unsigned char *v = malloc(MAXLEN);
  q7_conf *sc = store_conf(max_bytes), *tc = q7_conf_new();
  int rc;
  WCHECK(sc && tc && !q7_conf_set(tc, "retention.ms", "3600000"), "conf: %s", q7_last_error());
  WCHECK(!(rc = q7_open(&q, path, sc)), "q7_open: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_topic_create(q, "t", 1, tc)), "topic create: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_topic_open(q, "t", &t)) && !(rc = q7_producer_new(q, NULL, &p)),
         "open: %d %s", rc, q7_last_error());

  /* Fill. */
  int64_t n = 0;
  for (rc = Q7_OK; n < 20000; n++) {
    size_t len = fill(v, n);
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = len,
                 .timestamp_ms = TS0 + n };
    int64_t off = -1;
    if ((rc = q7_producer_send_sync(p, &m, NULL, &off)))
      break;
    WCHECK(off == n, "record %" PRId64 " acknowledged at offset %" PRId64, n, off);
    sh->bytes_acked += (int64_t)len;
  }
  sh->acked = n;
  sh->full_rc = rc;
  snprintf(sh->full_msg, sizeof sh->full_msg, "%s", q7_last_error());
  WCHECK(rc == Q7_EFULL || !strict, "filling ended after %" PRId64 " records (%" PRId64 " bytes) with %d "
         "(%s), want Q7_EFULL: %s", n, sh->bytes_acked, rc, q7_strerror(rc), sh->full_msg);
  WCHECK(sh->full_msg[0], "Q7_EFULL without a message");
  WCHECK(sh->bytes_acked > 2 * 1024 * 1024, "full after only %" PRId64 " bytes",
         sh->bytes_acked);

  /* Still full, and nothing of the failed records shows. */
  size_t len = fill(v, n);
  q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = len, .timestamp_ms = TS0 + n };
  rc = q7_producer_send_sync(p, &m, NULL, NULL);
  WCHECK(rc == Q7_EFULL || !strict, "second write on a full store: %d %s", rc, q7_last_error());
  if (check_range(t, 0, n, "when full"))
    return 1;

  /* Batched sends: each reported once; the delivered ones are stored. */
  q7_conf *pc = q7_conf_new();
  dlog *l = calloc(1, sizeof *l);
  q7_producer *pb;
  WCHECK(pc && l, "out of memory");
  q7_conf_set_delivery_cb(pc, on_delivery, l);
  WCHECK(!q7_conf_set(pc, "batch.size", "1") && !(rc = q7_producer_new(q, pc, &pb)),
         "batched producer: %s", q7_last_error());
  q7_conf_destroy(pc);
  for (int i = 0; i < 16; i++) {
    len = fill(v, n);
    q7_msg mb = { .topic = t, .partition = 0, .value = v, .value_len = len,
                  .timestamp_ms = TS0 + n, .opaque = (void *)(uintptr_t)(i + 1) };
    WCHECK(!(rc = q7_producer_send(pb, &mb)), "send %d: %d %s", i, rc, q7_last_error());
    WCHECK(!(rc = q7_producer_flush(pb, 30000)), "flush: %d %s", rc, q7_last_error());
    WCHECK(l->count[i] == 1, "batched record %d reported %" PRId64 " times", i, l->count[i]);
    if (l->err[i] == Q7_OK) {
      WCHECK(l->off[i] == n, "batched record %d delivered at %" PRId64 ", want %" PRId64, i,
             l->off[i], n);
      n++;
      sh->batched_ok++;
    } else {
      WCHECK((l->err[i] == Q7_EFULL || (!strict && l->err[i] < 0)) && l->off[i] == -1, "batched record %d: err %d offset %"
             PRId64, i, l->err[i], l->off[i]);
      sh->batched_full++;
    }
  }
  WCHECK(!l->bad, "a delivery report with an unknown opaque");
  WCHECK(!(rc = q7_producer_close(pb)), "producer close: %d", rc);
  WCHECK(sh->batched_full > 0, "the store took %" PRId64 " more batched records: not full",
         sh->batched_ok);
  if (check_range(t, 0, n, "after batched sends"))
    return 1;

  /* Close and open again. */
  WCHECK(!(rc = q7_producer_close(p)), "close producer: %d", rc);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "q7_close of a full store: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_open(&q, path, sc)), "q7_open of a full store: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_topic_open(q, "t", &t)), "topic open of a full store: %d %s", rc,
         q7_last_error());
  if (check_range(t, 0, n, "after reopening"))
    return 1;
  if (!recover) {
    q7_topic_close(t);
    WCHECK(!(rc = q7_close(q)), "close: %d %s", rc, q7_last_error());
    return 0;
  }

  /* A sweep removes the older half; producing resumes after it. */
  int64_t half = n / 2;
  sh->sweep_rc = rc = q7_retention_sweep(q, TS0 + HOUR + half, &sh->removed);
  WCHECK(rc == Q7_OK, "retention sweep on a full store: %d (%s) %s", rc, q7_strerror(rc),
         q7_last_error());
  WCHECK(sh->removed == half, "sweep removed %" PRId64 ", want %" PRId64, sh->removed, half);
  if (check_range(t, half, n, "after the sweep"))
    return 1;
  WCHECK(!(rc = q7_producer_new(q, NULL, &p)), "producer: %s", q7_last_error());
  for (int i = 0; i < 20; i++, n++) {
    len = fill(v, n);
    q7_msg mr = { .topic = t, .partition = 0, .value = v, .value_len = len,
                  .timestamp_ms = TS0 + n };
    int64_t off;
    rc = q7_producer_send_sync(p, &mr, NULL, &off);
    WCHECK(rc == Q7_OK, "producing after the sweep, record %d: %d (%s) %s", i, rc,
           q7_strerror(rc), q7_last_error());
    WCHECK(off == n, "record after the sweep at %" PRId64 ", want %" PRId64, off, n);
    sh->resumed++;
  }
  if (check_range(t, half, n, "after resuming"))
    return 1;
  WCHECK(!(rc = q7_producer_close(p)), "close: %d", rc);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "close: %d %s", rc, q7_last_error());
  q7_conf_destroy(sc);
  q7_conf_destroy(tc);
  free(l);
  free(v);
  return 0;
}

typedef struct job {
  const char *path;
  const char *max_bytes;
  bool strict, recover;
} job;

static int
child_scenario(void *arg)
{
  const job *j = arg;
  return fill_until_full(j->path, j->max_bytes, j->strict, j->recover);
}

/* Fork the scenario; its status as 0, the exit code, or 128 + signal; -1
 * after killing it for taking longer than @ms; -2 without shared memory. */
static int
run_child(const job *j, int ms)
{
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED)
    return -2;
  memset(sh, 0, sizeof *sh);
  return reap(spawn(child_scenario, (void *)j), ms);
}

static void
assert_scenario(int st, const char *what)
{
  cr_assert_neq(st, -2, "%s: fork/mmap failed", what);
  cr_assert_neq(st, -1, "%s: the store work hung (killed after its time); last: %s", what,
                sh->msg);
  cr_assert_lt(st, 128, "%s: the library crashed with signal %d (%s) after %" PRId64
               " acknowledged records; fill ended with %d (%s)", what, st - 128,
               strsignal(st - 128), sh->acked, sh->full_rc, sh->full_msg);
  cr_assert_eq(st, 0, "%s: line %d: %s", what, sh->line, sh->msg);
  fprintf(stderr,
          "test_diskfull %s: full after %" PRId64 " records (%" PRId64 " bytes): %d \"%s\"; "
          "batched after full: %" PRId64 " delivered, %" PRId64 " EFULL; sweep removed %" PRId64
          ", %" PRId64 " records produced after it\n",
          what, sh->acked, sh->bytes_acked, sh->full_rc, sh->full_msg, sh->batched_ok,
          sh->batched_full, sh->removed, sh->resumed);
}

/* Mount an 8 MiB tmpfs at DIR/mnt and run @j there (path filled in);
 * unmounts before asserting anything.  Skips when it cannot mount. */
static void
on_tmpfs(job *j, const char *what)
{
  tmpfs_mount("test_diskfull", dir, what);
  char path[4300];
  snprintf(path, sizeof path, "%s/store", mnt);
  j->path = path;
  int st = run_child(j, 240000);
  bool unmounted = tmpfs_unmount("test_diskfull"); /* before any assertion */
  assert_scenario(st, what);
  cr_assert(unmounted, "could not unmount %s", mnt);
}

TestSuite(diskfull, .init = setup, .fini = teardown);

Test(diskfull, full_tmpfs_is_efull_and_keeps_every_acknowledged_record, .timeout = 300)
{
  job j = { NULL, NULL, true, false };
  on_tmpfs(&j, "tmpfs 8 MiB, filling");
}

Test(diskfull, full_tmpfs_takes_records_again_after_a_retention_sweep, .timeout = 300)
{
  job j = { NULL, NULL, false, true };
  on_tmpfs(&j, "tmpfs 8 MiB, sweep and resume");
}

Test(diskfull, storage_max_bytes_is_efull_and_takes_records_again_after_a_sweep,
     .timeout = 300)
{
  char path[4300];
  snprintf(path, sizeof path, "%s/store", dir);
  job j = { path, "6291456", true, true }; /* 6 MiB */
  int st = run_child(&j, 240000);
  assert_scenario(st, "storage.max.bytes 6 MiB");
}
