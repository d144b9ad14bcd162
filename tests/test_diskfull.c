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

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char *dir;
static char mnt[4200];
static bool mounted;
static pid_t kid;

static void
setup(void)
{
  dir = tmpdir_new();
  mounted = false;
  kid = 0;
}

static bool
unmount_it(void)
{
  if (!mounted)
    return true;
  for (int i = 0; i < 50; i++) {
    if (umount2(mnt, 0) == 0) {
      mounted = false;
      return true;
    }
    if (errno != EBUSY)
      break;
    struct timespec d = { 0, 20000000L };
    nanosleep(&d, NULL);
  }
  if (umount2(mnt, MNT_DETACH) == 0) {
    mounted = false;
    return true;
  }
  fprintf(stderr, "test_diskfull: cannot unmount %s: %s\n", mnt, strerror(errno));
  return false;
}

/* Every path out of a test comes here: child killed, tmpfs unmounted. */
static void
teardown(void)
{
  if (kid > 0) {
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    kid = 0;
  }
  unmount_it();
  tmpdir_rm(dir);
  dir = NULL;
}

static int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

static result *res;

#define WCHECK(cond, ...)                                                  \
  do {                                                                     \
    if (!(cond)) {                                                         \
      res->line = __LINE__;                                                \
      snprintf(res->msg, sizeof res->msg, __VA_ARGS__);                    \
      return 1;                                                            \
    }                                                                      \
  } while (0)

static uint64_t
mix64(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

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
    res->bytes_acked += (int64_t)len;
  }
  res->acked = n;
  res->full_rc = rc;
  snprintf(res->full_msg, sizeof res->full_msg, "%s", q7_last_error());
  WCHECK(rc == Q7_EFULL || !strict, "filling ended after %" PRId64 " records (%" PRId64 " bytes) with %d "
         "(%s), want Q7_EFULL: %s", n, res->bytes_acked, rc, q7_strerror(rc), res->full_msg);
  WCHECK(res->full_msg[0], "Q7_EFULL without a message");
  WCHECK(res->bytes_acked > 2 * 1024 * 1024, "full after only %" PRId64 " bytes",
         res->bytes_acked);

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
      res->batched_ok++;
    } else {
      WCHECK((l->err[i] == Q7_EFULL || (!strict && l->err[i] < 0)) && l->off[i] == -1, "batched record %d: err %d offset %"
             PRId64, i, l->err[i], l->off[i]);
      res->batched_full++;
    }
  }
  WCHECK(!l->bad, "a delivery report with an unknown opaque");
  WCHECK(!(rc = q7_producer_close(pb)), "producer close: %d", rc);
  WCHECK(res->batched_full > 0, "the store took %" PRId64 " more batched records: not full",
         res->batched_ok);
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
  res->sweep_rc = rc = q7_retention_sweep(q, TS0 + HOUR + half, &res->removed);
  WCHECK(rc == Q7_OK, "retention sweep on a full store: %d (%s) %s", rc, q7_strerror(rc),
         q7_last_error());
  WCHECK(res->removed == half, "sweep removed %" PRId64 ", want %" PRId64, res->removed, half);
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
    res->resumed++;
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

/* Fork the scenario; its status as 0, the exit code, or 128 + signal; -1
 * after killing it for taking longer than @ms. */
static int
run_child(const job *j, int ms)
{
  res = mmap(NULL, sizeof *res, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (res == MAP_FAILED)
    return -2;
  memset(res, 0, sizeof *res);
  fflush(NULL);
  kid = fork();
  if (kid < 0)
    return -2;
  if (kid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    _exit(fill_until_full(j->path, j->max_bytes, j->strict, j->recover));
  }
  int64_t end = mono_ms() + ms;
  int st;
  for (;;) {
    pid_t r = waitpid(kid, &st, WNOHANG);
    if (r == kid)
      break;
    if (mono_ms() > end || (r < 0 && errno != EINTR)) {
      kill(kid, SIGKILL);
      waitpid(kid, NULL, 0);
      kid = 0;
      return -1;
    }
    struct timespec d = { 0, 5000000L };
    nanosleep(&d, NULL);
  }
  kid = 0;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void
assert_scenario(int st, const char *what)
{
  cr_assert_neq(st, -2, "%s: fork/mmap failed", what);
  cr_assert_neq(st, -1, "%s: the store work hung (killed after its time); last: %s", what,
                res->msg);
  cr_assert_lt(st, 128, "%s: the library crashed with signal %d (%s) after %" PRId64
               " acknowledged records; fill ended with %d (%s)", what, st - 128,
               strsignal(st - 128), res->acked, res->full_rc, res->full_msg);
  cr_assert_eq(st, 0, "%s: line %d: %s", what, res->line, res->msg);
  fprintf(stderr,
          "test_diskfull %s: full after %" PRId64 " records (%" PRId64 " bytes): %d \"%s\"; "
          "batched after full: %" PRId64 " delivered, %" PRId64 " EFULL; sweep removed %" PRId64
          ", %" PRId64 " records produced after it\n",
          what, res->acked, res->bytes_acked, res->full_rc, res->full_msg, res->batched_ok,
          res->batched_full, res->removed, res->resumed);
}

/* Mount an 8 MiB tmpfs at DIR/mnt and run @j there (path filled in);
 * unmounts before asserting anything.  Skips when it cannot mount. */
static void
on_tmpfs(job *j, const char *what)
{
  if (geteuid() != 0) {
    fprintf(stderr, "test_diskfull: skipped %s: not root (cannot mount a tmpfs)\n", what);
    cr_skip_test("not root: cannot mount a small tmpfs");
  }
  snprintf(mnt, sizeof mnt, "%s/mnt", dir);
  cr_assert_eq(mkdir(mnt, 0700), 0, "mkdir %s: %s", mnt, strerror(errno));
  if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700") != 0) {
    fprintf(stderr, "test_diskfull: skipped %s: mount: %s\n", what, strerror(errno));
    cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
  }
  mounted = true;
  char path[4300];
  snprintf(path, sizeof path, "%s/store", mnt);
  j->path = path;
  int st = run_child(j, 240000);
  bool unmounted = unmount_it(); /* before any assertion */
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
