/* test_groups_mp.c - acceptance tests of consumer groups across processes:
 * membership leases in the store, expiry of silent or dead members, hand-over
 * without a second owner, rebalance callbacks, fencing of zombies, and the
 * range / roundrobin shapes.
 *
 * Rules kept here (as in test_multiproc.c):
 *  - LMDB forbids using an environment across fork(): the parent forks every
 *    child first and opens the store only after its last fork; each child
 *    opens the store itself.  A child that must start later is forked early
 *    and waits for a 'g' on its command pipe.
 *  - Children report to the parent over a pipe each, in fixed 32-byte
 *    messages written in chunks of at most PIPE_BUF bytes (atomic), so a
 *    child killed mid-report leaves only whole messages behind.  Closing a
 *    command pipe tells a child to stop; every child is bounded in time and
 *    dies with the parent (PR_SET_PDEATHSIG).
 *  - Children are stopped by PID (SIGKILL + waitpid) in every path,
 *    including failed assertions (teardown).
 *  - Times are measured and printed; they are asserted only against
 *    generous bounds.
 *
 * Tests: the scenario end to end (3 processes on 12 partitions,
 * 4/4/4; one SIGKILLed mid-batch, its partitions taken over; a 4th joins;
 * a producer process throughout; every record processed, none twice except
 * the victim's uncommitted ones); a stopped member expired, fenced and
 * rejoining; rebalance callbacks (in one process); range and roundrobin
 * shapes; a dead process freeing its partitions long before its lease; and
 * a killed process not yet reaped counting as dead. */
#include "helpers.h"
#include "proc.h"

#include <criterion/logging.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#define MAXKIDS 16
#define MAXFDS 128
#define MAXP 32
#define MAXW 8

/* ------------------------------------------------------------ bits */

static int
popcount32(uint32_t m)
{
  return __builtin_popcount(m);
}

/* ------------------------------------------------------------ messages */

enum {
  M_READY = 1, /* a = pid: subscribed (member) or started (producer) */
  M_REC,       /* part, a = offset, b = seq, c = mono ns when processed */
  M_INTENT,    /* part, a = position about to be committed, b = commit number */
  M_DONE,      /* a = commit number, b = its return code, c = mono ns after it */
  M_ASSIGN,    /* a = mask of q7_consumer_assignment, b = count */
  M_CB,        /* part = event, a = mask, b = count, c = mono ns */
  M_ZSTOP,     /* a = mask held when it stops itself */
  M_ZRES,      /* part = p0, a = commit_offset rc, b = commit rc, c = seek rc */
  M_FAIL,      /* part = step, a = rc */
  M_PROD,      /* a = records produced, b = delivery errors */
};

typedef struct msg {
  int32_t type, part;
  int64_t a, b, c;
} msg;

_Static_assert(sizeof(msg) == 32, "msg is 32 bytes");
enum { CHUNK = 4096 / sizeof(msg) }; /* one atomic pipe write */

/* ------------------------------------------------------------ fixture */

static char *dir;
static q7 *q;
static pid_t kids[MAXKIDS];
static int n_kids;
static int fds[MAXFDS];
static int n_fds;

typedef struct rec {
  int32_t m, p;
  int64_t off, seq, t;
} rec;

static rec *recs;
static size_t n_recs, cap_recs;

typedef struct cev {
  int ev;
  uint32_t mask;
  int64_t t;
} cev;

typedef struct ccommit {
  int32_t p;
  int64_t v, t;
} ccommit;

/* The parent's view of one child. */
typedef struct pm {
  const char *name;
  int kid;
  pid_t pid;
  int cmd_w, rep_r;
  bool eof;
  unsigned char buf[8192];
  size_t len;
  bool ready;
  uint32_t mask;
  int64_t n_rec;
  int64_t recs_in_batch; /* records reported since its last commit result */
  /* commits: the intents of the commit in flight, and the confirmed ones */
  int64_t cur_k;
  int n_int;
  int32_t int_p[MAXP];
  int64_t int_v[MAXP];
  ccommit *cc;
  size_t n_cc, cap_cc;
  int refused; /* commits refused with Q7_ESTATE */
  cev ev[512];
  int n_ev;
  bool zstop, zres;
  uint32_t zmask;
  int32_t zp;
  int64_t zrc1, zrc2, zrcs;
  int ev_at_zres; /* callbacks reported before its commit attempts */
  bool prod;
  int64_t prod_total, prod_err;
  bool failed;
  int fail_step;
  int64_t fail_rc;
} pm;

static pm W[MAXW];
static int nW;

static void
setup(void)
{
  dir = tmpdir_new();
  q = NULL;
  n_kids = 0;
  n_fds = 0;
  nW = 0;
  recs = NULL;
  n_recs = cap_recs = 0;
  memset(W, 0, sizeof W);
  signal(SIGPIPE, SIG_IGN); /* a write to a dead child's pipe is EPIPE, not death */
}

/* Stop every child still running, by PID; close everything. */
static void
teardown(void)
{
  for (int i = 0; i < n_kids; i++) {
    if (kids[i] > 0) {
      kill(kids[i], SIGKILL); /* also ends a stopped child */
      waitpid(kids[i], NULL, 0);
      kids[i] = 0;
    }
  }
  if (q)
    q7_close(q);
  q = NULL;
  for (int i = 0; i < n_fds; i++)
    if (fds[i] >= 0)
      close(fds[i]);
  n_fds = 0;
  for (int i = 0; i < nW; i++)
    free(W[i].cc);
  nW = 0;
  free(recs);
  recs = NULL;
  tmpdir_rm(dir);
  dir = NULL;
}

static void
mkpipe(int p[2])
{
  cr_assert_eq(pipe(p), 0, "pipe: %s", strerror(errno));
  cr_assert_lt(n_fds + 2, MAXFDS);
  fds[n_fds++] = p[0];
  fds[n_fds++] = p[1];
}

static void
fd_close(int *fd)
{
  if (*fd < 0)
    return;
  for (int i = 0; i < n_fds; i++)
    if (fds[i] == *fd)
      fds[i] = -1;
  close(*fd);
  *fd = -1;
}

/* Run @fn(@arg) in a child that dies with the test and keeps only the pipe
 * ends @keep_a and @keep_b of every pipe made so far; returns its index. */
static int
spawn(int (*fn)(void *), void *arg, int keep_a, int keep_b)
{
  cr_assert_lt(n_kids, MAXKIDS);
  fflush(NULL);
  pid_t parent = getpid();
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(99);
    for (int i = 0; i < n_fds; i++)
      if (fds[i] >= 0 && fds[i] != keep_a && fds[i] != keep_b)
        close(fds[i]);
    _exit(fn(arg));
  }
  kids[n_kids] = pid;
  return n_kids++;
}

/* ------------------------------------------------------------ child side */

static msg obuf[CHUNK];
static int o_n;
static int o_fd = -1;

static bool
out_flush(void)
{
  bool ok = o_n == 0 || write_full(o_fd, obuf, (size_t)o_n * sizeof *obuf);
  o_n = 0;
  return ok;
}

static bool
out(int32_t type, int32_t part, int64_t a, int64_t b, int64_t c)
{
  if (o_n == CHUNK && !out_flush())
    return false;
  obuf[o_n++] = (msg){ type, part, a, b, c };
  return true;
}

/* Non-blocking look at a command pipe: 0 nothing, 1 a byte (in *c), -1 EOF. */
static int
cmd_check(int fd, char *c, int wait_ms)
{
  struct pollfd pfd = { fd, POLLIN, 0 };
  int r = poll(&pfd, 1, wait_ms);
  if (r <= 0)
    return 0;
  ssize_t k = read(fd, c, 1);
  if (k < 0 && errno == EINTR)
    return 0;
  return k == 1 ? 1 : -1;
}

static int
child_open(q7 **cq)
{
  q7_conf *sc = q7_conf_new();
  if (!sc || q7_conf_set(sc, "sync", "false"))
    return -1;
  int rc = q7_open(cq, dir, sc);
  q7_conf_destroy(sc);
  return rc;
}

static bool
parse_seq(const q7_record *r, int64_t *seq)
{
  char buf[32];
  long long s;
  if (!r->value || r->value_len == 0 || r->value_len >= sizeof buf)
    return false;
  memcpy(buf, r->value, r->value_len);
  buf[r->value_len] = 0;
  if (sscanf(buf, "s%lld", &s) != 1 || s < 0)
    return false;
  *seq = s;
  return true;
}

/* Setup: create topic "t" and produce @per records in each partition, with
 * values s0, s1, ... (seq = index in production order). */
typedef struct setup_arg {
  int32_t parts;
  int per;
} setup_arg;

static int
child_setup(void *arg)
{
  setup_arg *a = arg;
  q7 *cq;
  q7_topic *t;
  q7_producer *p;
  if (child_open(&cq) || q7_topic_create(cq, "t", a->parts, NULL))
    return 2;
  if (a->per > 0) {
    if (q7_topic_open(cq, "t", &t) || q7_producer_new(cq, NULL, &p))
      return 3;
    int64_t seq = 0;
    for (int i = 0; i < a->per; i++) {
      for (int32_t k = 0; k < a->parts; k++) {
        char v[32];
        int n = snprintf(v, sizeof v, "s%lld", (long long)seq++);
        q7_msg m = { .topic = t, .partition = k, .value = v, .value_len = (size_t)n };
        if (q7_producer_send(p, &m))
          return 4;
      }
    }
    if (q7_producer_close(p))
      return 5;
    q7_topic_close(t);
  }
  return q7_close(cq) ? 6 : 0;
}

/* Producer: until its command pipe closes (at most 80 s), 2 records per
 * partition every ~20 ms, explicit partition seq % parts, values "s<seq>";
 * then flush, close, and report how many it produced. */
typedef struct prod_arg {
  int cmd_fd, rep_fd;
  int32_t parts;
} prod_arg;

static void
prod_dr(const q7_delivery *d, void *arg)
{
  if (d->err)
    ++*(int64_t *)arg;
}

static int
child_producer(void *arg)
{
  prod_arg *a = arg;
  o_fd = a->rep_fd;
  o_n = 0;
  q7 *cq;
  q7_topic *t;
  q7_producer *p;
  q7_conf *pc;
  int64_t errs = 0, seq = 0;
  if (child_open(&cq) || q7_topic_open(cq, "t", &t) || !(pc = q7_conf_new()))
    return 2;
  q7_conf_set_delivery_cb(pc, prod_dr, &errs);
  if (q7_producer_new(cq, pc, &p))
    return 3;
  q7_conf_destroy(pc);
  out(M_READY, 0, getpid(), 0, 0);
  if (!out_flush())
    return 4;
  int64_t end = mono_ms() + 80000;
  while (mono_ms() < end) {
    char c;
    if (cmd_check(a->cmd_fd, &c, 0) < 0)
      break;
    for (int i = 0; i < 2 * a->parts; i++) {
      char v[32];
      int n = snprintf(v, sizeof v, "s%lld", (long long)seq);
      q7_msg m = { .topic = t, .partition = (int32_t)(seq % a->parts), .value = v,
                   .value_len = (size_t)n };
      if (q7_producer_send(p, &m))
        return 5;
      seq++;
    }
    if (q7_producer_flush(p, 30000))
      return 6;
    sleep_ms(20);
  }
  if (q7_producer_close(p))
    return 7;
  q7_topic_close(t);
  out(M_PROD, 0, seq, errs, 0);
  if (!out_flush())
    return 8;
  return q7_close(cq) ? 9 : 0;
}

/* A group member: subscribes to "t" in group "g" with manual commits, and
 * until its command pipe closes (at most 80 s) polls, "processes" (reports)
 * each record, reports the positions it is about to commit, commits
 * (q7_consumer_commit after every poll), reports the result, and reports its
 * assignment whenever it changes.  Command 'z': report what it holds and
 * stop itself (SIGSTOP) between two polls; once continued, try to commit
 * (commit_offset 1 on the first partition it held; seek it to the beginning
 * and q7_consumer_commit), report the results, and go on polling. */
typedef struct mem_arg {
  int cmd_fd, rep_fd;
  int32_t parts;
  const char *strategy;
  const char *session, *heartbeat;
  bool wait_go;
  int process_ms; /* time "processing" a non-empty poll, before the commit */
} mem_arg;

static void
child_rb(q7_consumer *c, int ev, const char *topic, const int32_t *parts, size_t n, void *arg)
{
  uint32_t m = 0;
  for (size_t i = 0; i < n; i++)
    m |= 1u << parts[i];
  out(M_CB, ev, m, (int64_t)n, mono_ns());
}

static uint32_t
held_mask(q7_consumer *c, int32_t parts)
{
  uint32_t m = 0;
  for (int32_t p = 0; p < parts; p++) {
    int64_t pos;
    if (q7_consumer_position(c, "t", p, &pos) == Q7_OK)
      m |= 1u << p;
  }
  return m;
}

static int
child_member(void *arg)
{
  mem_arg *a = arg;
  o_fd = a->rep_fd;
  o_n = 0;
  if (a->wait_go) {
    char c = 0;
    int64_t end = mono_ms() + 60000;
    int r = 0;
    while (r == 0 && mono_ms() < end)
      r = cmd_check(a->cmd_fd, &c, 100);
    if (r != 1 || c != 'g')
      return 20;
  }
  q7 *cq;
  q7_consumer *c;
  q7_conf *conf;
  if (child_open(&cq) || !(conf = q7_conf_new()))
    return 2;
  if (q7_conf_set(conf, "enable.auto.commit", "false") ||
      q7_conf_set(conf, "auto.offset.reset", "earliest") ||
      q7_conf_set(conf, "session.timeout.ms", a->session) ||
      q7_conf_set(conf, "heartbeat.interval.ms", a->heartbeat) ||
      q7_conf_set(conf, "partition.assignment.strategy", a->strategy))
    return 3;
  q7_conf_set_rebalance_cb(conf, child_rb, NULL);
  if (q7_consumer_new(cq, "g", conf, &c) || q7_consumer_subscribe(c, "t"))
    return 4;
  q7_conf_destroy(conf);
  out(M_READY, 0, getpid(), 0, 0);
  if (!out_flush())
    return 5;
  int64_t k = 0, end = mono_ms() + 80000;
  uint32_t last = ~0u;
  while (mono_ms() < end) {
    char cmd;
    int r = cmd_check(a->cmd_fd, &cmd, 0);
    if (r < 0)
      break;
    if (r > 0 && cmd == 'z') {
      uint32_t held = held_mask(c, a->parts);
      out(M_ZSTOP, 0, held, 0, 0);
      if (!out_flush())
        return 6;
      raise(SIGSTOP); /* a safe point: no transaction of ours is open */
      int32_t p0 = held ? __builtin_ctz(held) : 0;
      int rc1 = q7_consumer_commit_offset(c, "t", p0, 1);
      int rcs = q7_consumer_seek(c, "t", p0, Q7_OFFSET_BEGINNING);
      int rc2 = q7_consumer_commit(c);
      out(M_ZRES, p0, rc1, rc2, rcs);
      if (!out_flush())
        return 6;
    }
    q7_record rs[64];
    int n = q7_consumer_poll(c, rs, 64, 50);
    if (n < 0) {
      out(M_FAIL, 1, n, 0, 0);
      out_flush();
      return 7;
    }
    int64_t now = mono_ns();
    for (int i = 0; i < n; i++) {
      int64_t seq = -1;
      if (!parse_seq(&rs[i], &seq))
        seq = -1;
      out(M_REC, rs[i].partition, rs[i].offset, seq, now);
    }
    for (int32_t p = 0; p < a->parts; p++) {
      int64_t pos;
      if (q7_consumer_position(c, "t", p, &pos) == Q7_OK)
        out(M_INTENT, p, pos, k, 0);
    }
    if (!out_flush()) /* processed and reported before the commit */
      return 8;
    if (n > 0 && a->process_ms > 0)
      sleep_ms(a->process_ms);
    int rc = q7_consumer_commit(c);
    out(M_DONE, 0, k, rc, mono_ns());
    k++;
    if (rc != Q7_OK && rc != Q7_ESTATE) {
      out(M_FAIL, 2, rc, 0, 0);
      out_flush();
      return 9;
    }
    const char *tp[MAXP];
    int32_t pp[MAXP];
    int na = q7_consumer_assignment(c, tp, pp, MAXP);
    if (na < 0) {
      out(M_FAIL, 3, na, 0, 0);
      out_flush();
      return 10;
    }
    uint32_t mask = 0;
    for (int i = 0; i < na && i < MAXP; i++)
      mask |= 1u << pp[i];
    if (mask != last) {
      out(M_ASSIGN, 0, mask, na, 0);
      last = mask;
    }
    if (!out_flush())
      return 11;
  }
  q7_consumer_close(c);
  out_flush();
  return q7_close(cq) ? 12 : 0;
}

/* ------------------------------------------------------------ parent side */

static void
handle(pm *m, const msg *x)
{
  switch (x->type) {
  case M_READY:
    m->ready = true;
    break;
  case M_REC:
    if (n_recs == cap_recs) {
      cap_recs = cap_recs ? cap_recs * 2 : 4096;
      recs = realloc(recs, cap_recs * sizeof *recs);
      cr_assert(recs != NULL);
    }
    recs[n_recs++] = (rec){ (int32_t)(m - W), x->part, x->a, x->b, x->c };
    m->n_rec++;
    m->recs_in_batch++;
    break;
  case M_INTENT:
    if (x->b != m->cur_k) {
      m->cur_k = x->b;
      m->n_int = 0;
    }
    if (m->n_int < MAXP) {
      m->int_p[m->n_int] = x->part;
      m->int_v[m->n_int++] = x->a;
    }
    break;
  case M_DONE:
    if (x->a == m->cur_k && x->b == Q7_OK) {
      for (int i = 0; i < m->n_int; i++) {
        if (m->n_cc == m->cap_cc) {
          m->cap_cc = m->cap_cc ? m->cap_cc * 2 : 256;
          m->cc = realloc(m->cc, m->cap_cc * sizeof *m->cc);
          cr_assert(m->cc != NULL);
        }
        m->cc[m->n_cc++] = (ccommit){ m->int_p[i], m->int_v[i], x->c };
      }
    }
    if (x->b == Q7_ESTATE)
      m->refused++;
    m->recs_in_batch = 0;
    m->n_int = 0;
    m->cur_k = -1;
    break;
  case M_ASSIGN:
    m->mask = (uint32_t)x->a;
    break;
  case M_CB:
    if (m->n_ev < (int)(sizeof m->ev / sizeof m->ev[0]))
      m->ev[m->n_ev++] = (cev){ x->part, (uint32_t)x->a, x->c };
    break;
  case M_ZSTOP:
    m->zstop = true;
    m->zmask = (uint32_t)x->a;
    break;
  case M_ZRES:
    m->zres = true;
    m->zp = x->part;
    m->zrc1 = x->a;
    m->zrc2 = x->b;
    m->zrcs = x->c;
    m->ev_at_zres = m->n_ev;
    break;
  case M_FAIL:
    m->failed = true;
    m->fail_step = x->part;
    m->fail_rc = x->a;
    break;
  case M_PROD:
    m->prod = true;
    m->prod_total = x->a;
    m->prod_err = x->b;
    break;
  default:
    cr_assert_fail("%s: unknown message type %d", m->name, x->type);
  }
}

/* Read whatever the children reported, waiting at most @ms for something. */
static void
pump(int ms)
{
  struct pollfd pf[MAXW];
  int idx[MAXW], n = 0;
  for (int i = 0; i < nW; i++) {
    if (!W[i].eof && W[i].rep_r >= 0) {
      pf[n] = (struct pollfd){ W[i].rep_r, POLLIN, 0 };
      idx[n++] = i;
    }
  }
  if (!n) {
    sleep_ms(ms);
    return;
  }
  if (poll(pf, (nfds_t)n, ms) <= 0)
    return;
  for (int j = 0; j < n; j++) {
    if (!(pf[j].revents & (POLLIN | POLLHUP | POLLERR)))
      continue;
    pm *m = &W[idx[j]];
    ssize_t k = read(m->rep_r, m->buf + m->len, sizeof m->buf - m->len);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0) {
      m->eof = true;
      continue;
    }
    m->len += (size_t)k;
    size_t off = 0;
    while (m->len - off >= sizeof(msg)) {
      msg x;
      memcpy(&x, m->buf + off, sizeof x);
      handle(m, &x);
      off += sizeof x;
    }
    memmove(m->buf, m->buf + off, m->len - off);
    m->len -= off;
  }
}

/* Pump for @ms. */
static void
pump_for(int ms)
{
  int64_t end = mono_ms() + ms;
  while (mono_ms() < end)
    pump(10);
}

/* Read @m's pipe to its end (the child is gone), bounded. */
static void
drain(pm *m, int ms)
{
  int64_t end = mono_ms() + ms;
  while (!m->eof && mono_ms() < end)
    pump(10);
}

/* Wait for @m to end (reading reports meanwhile), at most @ms; its exit
 * status (128 + signal if killed), or -1 after killing it at the bound. */
static int
reap(pm *m, int ms)
{
  int64_t end = mono_ms() + ms;
  int status;
  for (;;) {
    pid_t r = waitpid(m->pid, &status, WNOHANG);
    if (r == m->pid)
      break;
    if (r < 0 && errno != EINTR) {
      kids[m->kid] = 0;
      return -1;
    }
    if (mono_ms() > end) {
      kill(m->pid, SIGKILL);
      waitpid(m->pid, NULL, 0);
      kids[m->kid] = 0;
      return -1;
    }
    pump(5);
  }
  kids[m->kid] = 0;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

static int
kill_and_reap(pm *m)
{
  kill(m->pid, SIGKILL);
  return reap(m, 30000);
}

static pm *
new_pm(const char *name, int cmd[2], int rep[2])
{
  cr_assert_lt(nW, MAXW);
  pm *m = &W[nW++];
  memset(m, 0, sizeof *m);
  m->name = name;
  m->cur_k = -1;
  mkpipe(cmd);
  mkpipe(rep);
  return m;
}

static void
finish_spawn(pm *m, int kid, int cmd[2], int rep[2])
{
  m->kid = kid;
  m->pid = kids[kid];
  m->cmd_w = cmd[1];
  m->rep_r = rep[0];
  fd_close(&cmd[0]);
  fd_close(&rep[1]);
}

static pm *
add_member(const char *name, mem_arg *a)
{
  int cmd[2], rep[2];
  pm *m = new_pm(name, cmd, rep);
  a->cmd_fd = cmd[0];
  a->rep_fd = rep[1];
  finish_spawn(m, spawn(child_member, a, cmd[0], rep[1]), cmd, rep);
  return m;
}

static pm *
add_producer(prod_arg *a)
{
  int cmd[2], rep[2];
  pm *m = new_pm("producer", cmd, rep);
  a->cmd_fd = cmd[0];
  a->rep_fd = rep[1];
  finish_spawn(m, spawn(child_producer, a, cmd[0], rep[1]), cmd, rep);
  return m;
}

static void
send_cmd(pm *m, char c)
{
  cr_assert(write_full(m->cmd_w, &c, 1), "%s: command '%c': %s", m->name, c, strerror(errno));
}

static void
create_topic_in_child(int32_t parts, int per)
{
  setup_arg a = { parts, per };
  int kid = spawn(child_setup, &a, -1, -1);
  pm tmp = { .name = "setup", .kid = kid, .pid = kids[kid], .rep_r = -1, .cmd_w = -1 };
  int rc = reap(&tmp, 60000);
  cr_assert_eq(rc, 0, "setup child exited %d", rc);
}

/* The parent opens the store: only after its last fork. */
static void
parent_open(void)
{
  q7_conf *c;
  Q7_OK_OR_FAIL((c = q7_conf_new()) == NULL);
  Q7_OK_OR_FAIL(q7_conf_set(c, "sync", "false"));
  Q7_OK_OR_FAIL(q7_open(&q, dir, c));
  q7_conf_destroy(c);
}

/* ---- q7_group_members snapshots */

typedef struct gmem {
  uint64_t id, gen;
  int32_t pid;
  uint32_t mask;
  size_t n;
  int expired;
  int64_t lease;
} gmem;

typedef struct gsnap {
  int n;
  gmem m[16];
} gsnap;

static int
snap_fn(const q7_member *m, void *arg)
{
  gsnap *s = arg;
  if (s->n >= 16 || strcmp(m->topic, "t") != 0)
    return 0;
  gmem *g = &s->m[s->n++];
  *g = (gmem){ m->member_id, m->generation, m->pid, 0, m->partition_count, m->expired,
               m->lease_expires_ms };
  for (size_t i = 0; i < m->partition_count; i++)
    g->mask |= 1u << m->partitions[i];
  return 0;
}

static void
snap(gsnap *s)
{
  s->n = 0;
  Q7_OK_OR_FAIL(q7_group_members(q, "g", snap_fn, s));
}

/* The newest member of process @pid, or NULL. */
static const gmem *
snap_pid(const gsnap *s, pid_t pid)
{
  const gmem *r = NULL;
  for (int i = 0; i < s->n; i++)
    if (s->m[i].pid == pid)
      r = &s->m[i];
  return r;
}

static const char *
snap_str(const gsnap *s)
{
  static char b[1024];
  size_t o = 0;
  o += (size_t)snprintf(b + o, sizeof b - o, "%d member(s):", s->n);
  for (int i = 0; i < s->n && o < sizeof b; i++)
    o += (size_t)snprintf(b + o, sizeof b - o, " [id %" PRIu64 " pid %d owns %#x%s]",
                          s->m[i].id, (int)s->m[i].pid, s->m[i].mask,
                          s->m[i].expired ? " EXPIRED" : "");
  return b;
}

/* Do the live members, in join order, have exactly the pids @pids and the
 * partitions @want (and have the children themselves reported them)? */
static bool
shape_is(const gsnap *s, pm *const *who, const uint32_t *want, int n)
{
  if (s->n != n)
    return false;
  for (int i = 0; i < n; i++)
    if (s->m[i].pid != who[i]->pid || s->m[i].expired || s->m[i].mask != want[i] ||
        who[i]->mask != want[i])
      return false;
  return true;
}

static int64_t
committed_or(int32_t p, int64_t dflt)
{
  int64_t next;
  int rc = q7_committed(q, "g", "t", p, &next);
  if (rc == Q7_ENOENT)
    return dflt;
  cr_assert_eq(rc, Q7_OK, "q7_committed(%d): %s", (int)p, q7_last_error());
  return next;
}

static void
no_child_failed(void)
{
  for (int i = 0; i < nW; i++)
    cr_assert(!W[i].failed, "%s reported a failure at step %d: rc %lld (%s)", W[i].name,
              W[i].fail_step, (long long)W[i].fail_rc, q7_strerror((int)W[i].fail_rc));
}

/* ========================================= 1. the scenario, end to end */

static int
cmp_rec(const void *a, const void *b)
{
  const rec *x = a, *y = b;
  if (x->p != y->p)
    return x->p < y->p ? -1 : 1;
  if (x->t != y->t)
    return x->t < y->t ? -1 : 1;
  if (x->m != y->m)
    return x->m < y->m ? -1 : 1;
  return x->off < y->off ? -1 : x->off > y->off;
}

/* The offset the group had committed for @p when @X's tenure [s1, e1] on it
 * ended: its last confirmed commit of @p in [s1, e1 + 1] made before @before,
 * else s1 (it never committed in that tenure: the previous commit stands). */
static int64_t
tenure_commit(const pm *X, int32_t p, int64_t s1, int64_t e1, int64_t before)
{
  int64_t c = s1;
  for (size_t i = 0; i < X->n_cc; i++)
    if (X->cc[i].p == p && X->cc[i].t < before && X->cc[i].v >= s1 && X->cc[i].v <= e1 + 1)
      c = X->cc[i].v;
  return c;
}

/* A commit of @p by @X whose result never arrived (killed in between). */
static bool
pending_commit(const pm *X, int32_t p, int64_t *v)
{
  if (X->cur_k < 0)
    return false;
  for (int i = 0; i < X->n_int; i++) {
    if (X->int_p[i] == p) {
      *v = X->int_v[i];
      return true;
    }
  }
  return false;
}

/* The last confirmed commit of @p by @X (-1 if none). */
static int64_t
last_commit(const pm *X, int32_t p)
{
  int64_t c = -1;
  for (size_t i = 0; i < X->n_cc; i++)
    if (X->cc[i].p == p)
      c = X->cc[i].v;
  return c;
}

Test(groups_mp, scenario_3_members_12_partitions_kill_one_add_one_every_record_once,
     .init = setup, .fini = teardown, .timeout = 150)
{
  enum { P = 12 };
  const int SESSION = 500;
  create_topic_in_child(P, 0);

  /* Fork everything first: a producer, three members, and a fourth member
   * that waits for its go. */
  prod_arg pa = { .parts = P };
  pm *prod = add_producer(&pa);
  mem_arg ma[4];
  static const char *names[4] = { "member0", "member1", "member2", "member3" };
  pm *mem[4];
  for (int i = 0; i < 4; i++) {
    ma[i] = (mem_arg){ .parts = P, .strategy = "range", .session = "500", .heartbeat = "100",
                       .wait_go = i == 3, .process_ms = 20 };
    mem[i] = add_member(names[i], &ma[i]);
  }
  parent_open();
  q7_topic *t;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));

  /* 1. Three members split the twelve partitions 4/4/4 (range, by join
   * order), as q7_group_members and each member's own assignment say. */
  gsnap s = { 0 };
  bool ok = false;
  int64_t t0 = mono_ms(), end = t0 + 30000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    if (s.n != 3)
      continue;
    pm *order[3];
    int found = 0;
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++)
        if (s.m[i].pid == mem[j]->pid)
          order[found++] = mem[j];
    const uint32_t want[3] = { 0x00f, 0x0f0, 0xf00 };
    ok = found == 3 && shape_is(&s, order, want, 3);
  }
  cr_assert(ok, "three members never split 12 partitions 4/4/4 in 30 s: %s; members report "
            "%#x %#x %#x", snap_str(&s), mem[0]->mask, mem[1]->mask, mem[2]->mask);
  fprintf(stderr, "scenario: 4/4/4 after %lld ms: %s\n", (long long)(mono_ms() - t0),
          snap_str(&s));
  no_child_failed();

  /* Everyone processes records for a while, the victim included. */
  pm *K = mem[1];
  const uint32_t kmask = K->mask;
  end = mono_ms() + 20000;
  while (mono_ms() < end && !(mem[0]->n_rec && K->n_rec && mem[2]->n_rec))
    pump(10);
  cr_assert(mem[0]->n_rec && K->n_rec && mem[2]->n_rec,
            "not every member processed records within 20 s (%lld %lld %lld)",
            (long long)mem[0]->n_rec, (long long)K->n_rec, (long long)mem[2]->n_rec);
  pump_for(700);
  const uint64_t gen0 = s.m[0].gen;

  /* 2. SIGKILL one member while the producer runs -- aimed at the moment it
   * has reported (processed) a batch and is about to commit it, so that the
   * batch must be redelivered -- and the two others own its partitions
   * within session.timeout.ms plus a generous margin. */
  end = mono_ms() + 10000;
  while (mono_ms() < end && !(K->cur_k >= 0 && K->recs_in_batch > 0))
    pump(1);
  const bool mid = K->cur_k >= 0 && K->recs_in_batch > 0;
  const int64_t k_uncommitted = K->recs_in_batch;
  int64_t k0 = mono_ms();
  int krc = kill_and_reap(K);
  cr_assert_eq(krc, 128 + SIGKILL, "victim ended %d", krc);
  int64_t took = -1;
  end = k0 + 20000;
  while (mono_ms() < end) {
    snap(&s);
    uint32_t covered = 0;
    for (int i = 0; i < s.n; i++)
      if (!s.m[i].expired && (s.m[i].pid == mem[0]->pid || s.m[i].pid == mem[2]->pid))
        covered |= s.m[i].mask;
    if ((covered & kmask) == kmask) {
      took = mono_ms() - k0;
      break;
    }
    pump(5);
  }
  cr_assert_geq(took, 0, "20 s after SIGKILL the survivors do not own the victim's %#x: %s",
                kmask, snap_str(&s));
  fprintf(stderr, "scenario: victim's partitions %#x owned by the survivors %lld ms after "
          "SIGKILL (session.timeout.ms %d)\n", kmask, (long long)took, SESSION);
  cr_log_info("takeover after SIGKILL: %lld ms", (long long)took);
  cr_assert_leq(took, SESSION + 4500, "takeover took %lld ms, session.timeout.ms is %d",
                (long long)took, SESSION);
  /* ... and settle 6/6. */
  ok = false;
  end = mono_ms() + 20000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    pm *order[2] = { mem[0], mem[2] };
    if (s.n == 2 && s.m[0].pid == mem[2]->pid) {
      order[0] = mem[2];
      order[1] = mem[0];
    }
    const uint32_t want[2] = { 0x03f, 0xfc0 };
    ok = shape_is(&s, order, want, 2);
  }
  cr_assert(ok, "the two survivors never split 6/6: %s", snap_str(&s));
  const uint64_t gen1 = s.m[0].gen;
  cr_assert_gt(gen1, gen0, "the generation did not move when a member died (%" PRIu64 ")",
               gen1);
  fprintf(stderr, "scenario: victim killed %s (%lld records reported since its last commit "
          "result)\n", mid ? "between processing and committing a batch" : "between polls",
          (long long)k_uncommitted);
  drain(K, 10000);
  pump_for(700);

  /* 3. A fourth member joins and receives partitions: 4/4/4 again. */
  pm *N = mem[3];
  int64_t j0 = mono_ms();
  send_cmd(N, 'g');
  int64_t first = -1;
  ok = false;
  end = j0 + 30000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    const gmem *g = snap_pid(&s, N->pid);
    if (first < 0 && g && g->mask)
      first = mono_ms() - j0;
    if (s.n == 3) {
      pm *order[3];
      int found = 0;
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++)
          if (j != 1 && s.m[i].pid == mem[j]->pid)
            order[found++] = mem[j];
      const uint32_t want[3] = { 0x00f, 0x0f0, 0xf00 };
      ok = found == 3 && shape_is(&s, order, want, 3) && s.m[2].pid == N->pid;
    }
  }
  cr_assert(ok, "after the fourth member joined, no 4/4/4 split in 30 s: %s", snap_str(&s));
  cr_assert_eq(popcount32(N->mask), 4);
  cr_assert_gt(s.m[0].gen, gen1, "the generation did not move when a member joined");
  fprintf(stderr, "scenario: new member owned its first partition %lld ms after its go, "
          "4/4/4 after %lld ms\n", (long long)first, (long long)(mono_ms() - j0));
  pump_for(700);

  /* 4. Stop producing; let the group drain: everything committed. */
  fd_close(&prod->cmd_w);
  end = mono_ms() + 40000;
  while (!prod->prod && mono_ms() < end)
    pump(10);
  cr_assert(prod->prod, "the producer never reported its count");
  cr_assert_eq(prod->prod_err, 0, "%lld records failed delivery", (long long)prod->prod_err);
  int rc = reap(prod, 30000);
  cr_assert_eq(rc, 0, "producer exited %d", rc);
  const int64_t total = prod->prod_total;
  cr_assert_gt(total, 0);
  int64_t hw[P], sum_hw = 0;
  for (int32_t p = 0; p < P; p++) {
    q7_partition *pp;
    Q7_OK_OR_FAIL(q7_topic_partition(t, p, &pp));
    Q7_OK_OR_FAIL(q7_partition_offsets(pp, NULL, &hw[p]));
    sum_hw += hw[p];
  }
  cr_assert_eq(sum_hw, total, "the partitions hold %lld records, the producer sent %lld",
               (long long)sum_hw, (long long)total);
  bool drained = false;
  end = mono_ms() + 40000;
  while (!drained && mono_ms() < end) {
    pump(10);
    drained = true;
    for (int32_t p = 0; p < P && drained; p++)
      drained = committed_or(p, -1) == hw[p];
  }
  for (int32_t p = 0; p < P; p++)
    cr_assert_eq(committed_or(p, -1), hw[p],
                 "40 s after the producer stopped, partition %d committed at %lld of %lld",
                 (int)p, (long long)committed_or(p, -1), (long long)hw[p]);
  for (int i = 0; i < 4; i++) {
    if (i == 1)
      continue;
    fd_close(&mem[i]->cmd_w);
  }
  for (int i = 0; i < 4; i++) {
    if (i == 1)
      continue;
    rc = reap(mem[i], 30000);
    cr_assert_eq(rc, 0, "%s exited %d", mem[i]->name, rc);
    drain(mem[i], 10000);
  }
  no_child_failed();

  /* 5. The accounting.  What the store holds: */
  int64_t *seq_at[P];
  unsigned char *stored = calloc((size_t)total, 1);
  for (int32_t p = 0; p < P; p++) {
    seq_at[p] = malloc(((size_t)hw[p] + 1) * sizeof **seq_at);
    q7_partition *pp;
    Q7_OK_OR_FAIL(q7_topic_partition(t, p, &pp));
    for (int64_t o = 0; o < hw[p];) {
      q7_record r[256];
      int n = q7_partition_read(pp, o, r, 256);
      cr_assert_gt(n, 0, "read partition %d at %lld: %d (%s)", (int)p, (long long)o, n,
                   q7_last_error());
      for (int i = 0; i < n; i++) {
        int64_t sq;
        cr_assert(parse_seq(&r[i], &sq) && sq < total, "partition %d offset %lld: bad value",
                  (int)p, (long long)r[i].offset);
        cr_assert_eq(stored[sq], 0, "seq %lld stored twice", (long long)sq);
        stored[sq] = 1;
        seq_at[p][r[i].offset] = sq;
      }
      o += n;
    }
    q7_partition_read(pp, 0, NULL, 0);
  }
  free(stored);

  /* Every processing is of a record that is in the store, as stored. */
  unsigned char *seen = calloc((size_t)total, 1);
  for (size_t i = 0; i < n_recs; i++) {
    const rec *r = &recs[i];
    cr_assert(r->p >= 0 && r->p < P && r->off >= 0 && r->off < hw[r->p],
              "%s processed partition %d offset %lld, outside the log", W[r->m].name, (int)r->p,
              (long long)r->off);
    cr_assert_eq(r->seq, seq_at[r->p][r->off],
                 "%s processed partition %d offset %lld as seq %lld; the store has seq %lld",
                 W[r->m].name, (int)r->p, (long long)r->off, (long long)r->seq,
                 (long long)seq_at[r->p][r->off]);
    if (seen[r->seq] < 255)
      seen[r->seq]++;
  }

  /* Every produced record processed at least once. */
  int64_t missing = 0, once = 0, twice = 0;
  for (int64_t sq = 0; sq < total; sq++) {
    missing += seen[sq] == 0;
    once += seen[sq] == 1;
    twice += seen[sq] >= 2;
  }
  cr_assert_eq(missing, 0, "%lld of %lld produced records were never processed",
               (long long)missing, (long long)total);

  /* A record processed twice must be one the killed member processed at or
   * after its last committed offset of that partition (or one a member whose
   * commit was refused processed after its last commit). */
  int64_t dup_k = 0, dup_other = 0;
  for (int32_t p = 0; p < P; p++) {
    uint8_t *cnt = calloc((size_t)hw[p] + 1, 1);
    uint64_t *by = calloc((size_t)hw[p] + 1, sizeof *by);
    for (size_t i = 0; i < n_recs; i++) {
      if (recs[i].p != p)
        continue;
      cnt[recs[i].off]++;
      by[recs[i].off] |= 1ull << recs[i].m;
    }
    for (int64_t o = 0; o < hw[p]; o++) {
      if (cnt[o] < 2)
        continue;
      bool excused = false;
      for (int m = 0; m < nW && !excused; m++) {
        const pm *X = &W[m];
        if (!(by[o] & (1ull << m)) || (X != K && !X->refused))
          continue;
        int64_t c = last_commit(X, p), pv;
        if (X == K && pending_commit(X, p, &pv) && pv < c)
          c = pv;
        excused = o >= (c < 0 ? 0 : c);
        if (excused) {
          if (X == K)
            dup_k++;
          else
            dup_other++;
        }
      }
      cr_assert(excused,
                "partition %d offset %lld processed %d times (members mask %#llx), though no "
                "member that processed it was killed or refused after processing it past its "
                "last commit (victim %s last committed %lld there)",
                (int)p, (long long)o, cnt[o], (unsigned long long)by[o], K->name,
                (long long)last_commit(K, p));
      cr_assert_eq(cnt[o], 2, "partition %d offset %lld processed %d times", (int)p,
                   (long long)o, cnt[o]);
    }
    free(cnt);
    free(by);
  }

  /* Stricter: per partition, in processing time order, each member's run of
   * offsets continues exactly where the previous owner's committed position
   * was: a clean hand-over starts at the next offset; a restart below it
   * only after the victim (or a refused member), and exactly at its last
   * committed offset (or its commit in flight, whose result it never
   * reported). */
  qsort(recs, n_recs, sizeof *recs, cmp_rec);
  int64_t handovers = 0, restarts = 0, redelivered = 0;
  size_t i = 0;
  for (int32_t p = 0; p < P; p++) {
    int cur = -1;
    int64_t s1 = 0, e1 = -1;
    for (; i < n_recs && recs[i].p == p; i++) {
      const rec *r = &recs[i];
      if (r->m == cur && r->off == e1 + 1) {
        e1++;
        continue;
      }
      if (cur < 0) {
        cr_assert_eq(r->off, 0, "partition %d: first record processed is offset %lld",
                     (int)p, (long long)r->off);
      } else if (r->off == e1 + 1) {
        handovers++;
      } else if (r->off > e1 + 1) {
        cr_assert_fail("partition %d: %s processed up to %lld, then %s went on at %lld: "
                       "offsets %lld..%lld skipped", (int)p, W[cur].name, (long long)e1,
                       W[r->m].name, (long long)r->off, (long long)(e1 + 1),
                       (long long)(r->off - 1));
      } else {
        const pm *X = &W[cur];
        cr_assert(X == K || X->refused,
                  "partition %d: %s processed %lld..%lld, then %s processed from %lld again, "
                  "although %s was neither killed nor fenced (two owners, or a hand-over "
                  "without its commit)", (int)p, X->name, (long long)s1, (long long)e1,
                  W[r->m].name, (long long)r->off, X->name);
        int64_t c = tenure_commit(X, p, s1, e1, r->t), pv = -1;
        bool pend = X == K && pending_commit(X, p, &pv);
        cr_assert(r->off == c || (pend && r->off == pv),
                  "partition %d: %s processed %lld..%lld (its last commit there %lld%s), "
                  "%s restarted at %lld: not at the committed offset",
                  (int)p, X->name, (long long)s1, (long long)e1, (long long)c,
                  pend ? ", one in flight" : "", W[r->m].name, (long long)r->off);
        restarts++;
        redelivered += e1 - r->off + 1;
      }
      cur = r->m;
      s1 = e1 = r->off;
    }
    cr_assert_eq(e1, hw[p] - 1, "partition %d: last record processed %lld, high watermark %lld",
                 (int)p, (long long)e1, (long long)hw[p]);
  }
  cr_assert_eq((int64_t)n_recs, total + redelivered,
               "%zu processings of %lld records, %lld redelivered after the kill",
               n_recs, (long long)total, (long long)redelivered);

  int64_t k_after = 0;
  for (size_t j = 0; j < n_recs; j++) {
    if (&W[recs[j].m] != K)
      continue;
    int64_t c = last_commit(K, recs[j].p);
    k_after += recs[j].off >= (c < 0 ? 0 : c);
  }
  int refused = 0;
  for (int m = 0; m < nW; m++)
    refused += W[m].refused;
  if (refused)
    fprintf(stderr, "scenario: WARNING: %d commits refused (a member expired while running: "
            "a starved machine, or a bug)\n", refused);
  fprintf(stderr,
          "scenario: produced %lld; processings %zu: once %lld, twice %lld (victim %lld, "
          "others %lld); victim processed %lld (%lld at/after its last commit), member0 %lld, "
          "member2 %lld, member3 %lld; clean hand-overs %lld, restarts after the kill %lld\n",
          (long long)total, n_recs, (long long)once, (long long)twice, (long long)dup_k,
          (long long)dup_other, (long long)K->n_rec, (long long)k_after,
          (long long)mem[0]->n_rec, (long long)mem[2]->n_rec, (long long)mem[3]->n_rec,
          (long long)handovers, (long long)restarts);
  cr_assert_gt(mem[3]->n_rec, 0, "the member that joined last processed nothing");
  for (int32_t p = 0; p < P; p++)
    free(seq_at[p]);
  free(seen);
  q7_topic_close(t);
}

/* ========================================= 2. a zombie is fenced */

Test(groups_mp, stopped_member_is_expired_its_commits_refused_and_it_rejoins, .init = setup,
     .fini = teardown, .timeout = 90)
{
  enum { P = 4, PER = 25 };
  create_topic_in_child(P, PER);
  mem_arg za = { .parts = P, .strategy = "range", .session = "500", .heartbeat = "100" };
  mem_arg sa = za;
  pm *Z = add_member("zombie", &za);
  pm *S = add_member("survivor", &sa);
  parent_open();

  /* Both members split the topic and consumed and committed everything. */
  gsnap s = { 0 };
  bool ok = false;
  int64_t end = mono_ms() + 30000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    const gmem *z = snap_pid(&s, Z->pid), *v = snap_pid(&s, S->pid);
    ok = s.n == 2 && z && v && popcount32(z->mask) == 2 && popcount32(v->mask) == 2 &&
         Z->mask == z->mask && S->mask == v->mask;
    for (int32_t p = 0; p < P && ok; p++)
      ok = committed_or(p, -1) == PER;
  }
  cr_assert(ok, "never split 2/2 with everything committed in 30 s: %s", snap_str(&s));
  const gmem *zg = snap_pid(&s, Z->pid);
  const uint64_t zid = zg->id, sid = snap_pid(&s, S->pid)->id;
  const uint32_t zmask = zg->mask;
  const size_t recs_before = n_recs;
  cr_assert_eq(recs_before, (size_t)(P * PER), "%zu records processed, want %d", recs_before,
               P * PER);

  /* The zombie stops itself between two polls (SIGSTOP) and stays stopped.
   * It raises SIGSTOP itself, at a point where it holds no LMDB write
   * transaction: a process frozen inside one (a SIGSTOP from outside can
   * land there) holds the store's writer lock and stalls every member until
   * it runs again -- LMDB's rule, not what this test is about. */
  send_cmd(Z, 'z');
  int st = 0;
  bool stopped = false;
  end = mono_ms() + 20000;
  while (!stopped && mono_ms() < end) {
    pid_t r = waitpid(Z->pid, &st, WNOHANG | WUNTRACED);
    stopped = r == Z->pid && WIFSTOPPED(st);
    cr_assert(r == 0 || stopped, "the zombie ended instead of stopping (status %#x)", st);
    pump(5);
  }
  cr_assert(stopped, "the zombie never stopped");
  pump_for(20);
  cr_assert(Z->zstop && Z->zmask == zmask, "the zombie held %#x when it stopped, want %#x",
            Z->zmask, zmask);
  snap(&s);
  zg = snap_pid(&s, Z->pid);
  int64_t t_stop = mono_ms();
  cr_assert(zg && zg->id == zid, "the stopped zombie is already gone: %s", snap_str(&s));
  const int64_t zlease = zg->lease;

  /* The survivor takes its partitions once its lease has passed, not before. */
  int64_t took = -1, at_wall = 0;
  end = t_stop + 20000;
  while (mono_ms() < end) {
    snap(&s);
    const gmem *v = snap_pid(&s, S->pid);
    if (v && v->mask == 0xf) {
      at_wall = wall_ms();
      took = mono_ms() - t_stop;
      break;
    }
    pump(5);
  }
  cr_assert_geq(took, 0, "20 s after the zombie stopped the survivor does not own all: %s",
                snap_str(&s));
  fprintf(stderr, "zombie: survivor owns everything %lld ms after the stop was seen "
          "(session.timeout.ms 500; %lld ms past the zombie's lease)\n", (long long)took,
          (long long)(at_wall - zlease));
  cr_assert_geq(at_wall, zlease, "the partitions moved %lld ms before the stopped member's "
                "lease expired", (long long)(zlease - at_wall));
  cr_assert_leq(took, 500 + 4500);
  const gmem *zz = snap_pid(&s, Z->pid);
  cr_assert(!zz || zz->expired, "the zombie is listed as live after losing everything: %s",
            snap_str(&s));
  int64_t before[P];
  for (int32_t p = 0; p < P; p++) {
    before[p] = committed_or(p, -1);
    cr_assert_eq(before[p], PER);
  }

  /* Continued, its commits are refused and the group's offsets stay. */
  kill(Z->pid, SIGCONT);
  end = mono_ms() + 20000;
  while (!Z->zres && mono_ms() < end)
    pump(10);
  cr_assert(Z->zres, "the zombie never reported its commit attempts");
  cr_assert(zmask & (1u << Z->zp), "the zombie tried partition %d, not one it had (%#x)",
            (int)Z->zp, zmask);
  cr_assert_eq(Z->zrc1, Q7_ESTATE,
               "the zombie's q7_consumer_commit_offset(partition %d, 1) returned %lld, want "
               "Q7_ESTATE", (int)Z->zp, (long long)Z->zrc1);
  cr_assert_eq(Z->zrcs, Q7_OK, "seek on a still-listed partition: %lld", (long long)Z->zrcs);
  cr_assert_eq(Z->zrc2, Q7_ESTATE,
               "the zombie's q7_consumer_commit (position 0 on partition %d) returned %lld, "
               "want Q7_ESTATE", (int)Z->zp, (long long)Z->zrc2);
  for (int32_t p = 0; p < P; p++)
    cr_assert_eq(committed_or(p, -1), before[p],
                 "partition %d: the group's committed offset moved from %lld to %lld after "
                 "the zombie's commits", (int)p, (long long)before[p],
                 (long long)committed_or(p, -1));

  /* Its next poll rejoins: a new member id, and partitions again (2/2);
   * it is told LOST for what it had, then ASSIGNED for the new ones.  (The
   * store may show the rejoin before the child's reports of it arrive.) */
  int lost = -1, assigned = -1;
  ok = false;
  end = mono_ms() + 20000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    lost = assigned = -1;
    for (int e = 0; e < Z->n_ev; e++) {
      if (Z->ev[e].ev == Q7_REBALANCE_LOST && lost < 0)
        lost = e;
      if (Z->ev[e].ev == Q7_REBALANCE_ASSIGNED && lost >= 0)
        assigned = e;
    }
    const gmem *z = snap_pid(&s, Z->pid), *v = snap_pid(&s, S->pid);
    ok = s.n == 2 && z && v && !z->expired && z->id != zid && popcount32(z->mask) == 2 &&
         popcount32(v->mask) == 2 && Z->mask == z->mask && assigned >= 0;
  }
  cr_assert_geq(lost, 0, "the zombie got no LOST callback (%d callbacks)", Z->n_ev);
  cr_assert(ok, "the zombie never rejoined with 2 partitions and an ASSIGNED after its LOST: "
            "%s (it reports %#x)", snap_str(&s), Z->mask);
  const gmem *z = snap_pid(&s, Z->pid);
  cr_assert_gt(z->id, zid, "new member id %" PRIu64 " not above the old %" PRIu64, z->id, zid);
  cr_assert_gt(z->id, sid);
  cr_assert_eq(Z->ev[lost].mask, zmask, "LOST for %#x, it had %#x", Z->ev[lost].mask, zmask);
  cr_assert_geq(lost, Z->ev_at_zres, "the zombie was told LOST before it was stopped");
  cr_assert_geq(assigned, 0, "no ASSIGNED after LOST");
  /* Nothing was processed again: the zombie's rewind was not committed. */
  pump_for(300);
  for (int32_t p = 0; p < P; p++)
    cr_assert_eq(committed_or(p, -1), PER);
  cr_assert_eq(n_recs, recs_before, "%zu records processed again after the zombie came back",
               n_recs - recs_before);
  fd_close(&Z->cmd_w);
  fd_close(&S->cmd_w);
  int rz = reap(Z, 30000), rs = reap(S, 30000);
  cr_assert(rz == 0 && rs == 0, "members exited %d and %d", rz, rs);
  no_child_failed();
}

/* ========================================= 3. rebalance callbacks */

typedef struct rbev {
  int who, ev;
  uint32_t mask;
  pthread_t th;
  int inside; /* which consumer's poll/close was running */
  bool topic_ok;
  int n, rc[MAXP];
} rbev;

static rbev rbe[64];
static int n_rbe;
static int inside; /* the consumer (1, 2, 3) in whose poll or close we are */

typedef struct rbctx {
  int who;
  int64_t revoked_commit; /* commit this in REVOKED (-1: do not) */
} rbctx;

static void
rb_cb(q7_consumer *c, int ev, const char *topic, const int32_t *parts, size_t n, void *arg)
{
  rbctx *x = arg;
  if (n_rbe >= 64)
    return;
  rbev *e = &rbe[n_rbe++];
  memset(e, 0, sizeof *e);
  e->who = x->who;
  e->ev = ev;
  e->th = pthread_self();
  e->inside = inside;
  e->topic_ok = topic && !strcmp(topic, "t");
  for (size_t i = 0; i < n; i++)
    e->mask |= 1u << parts[i];
  e->n = (int)n;
  for (size_t i = 0; i < n && i < MAXP; i++) {
    if (ev == Q7_REBALANCE_REVOKED && x->revoked_commit >= 0)
      e->rc[i] = q7_consumer_commit_offset(c, topic, parts[i], x->revoked_commit);
    else if (ev == Q7_REBALANCE_LOST)
      e->rc[i] = q7_consumer_commit_offset(c, topic, parts[i], 1);
  }
}

static int
cpoll(int who, q7_consumer *c, q7_record *r, size_t max, int ms)
{
  inside = who;
  int n = q7_consumer_poll(c, r, max, ms);
  inside = 0;
  return n;
}

static uint32_t
amask(q7_consumer *c)
{
  const char *tp[MAXP];
  int32_t pp[MAXP];
  int n = q7_consumer_assignment(c, tp, pp, MAXP);
  cr_assert_geq(n, 0, "q7_consumer_assignment: %s", q7_last_error());
  uint32_t m = 0;
  for (int i = 0; i < n; i++)
    m |= 1u << pp[i];
  return m;
}

/* The index of the first event of @who / @ev at or after @from, or -1. */
static int
find_ev(int from, int who, int ev)
{
  for (int i = from; i < n_rbe; i++)
    if (rbe[i].who == who && rbe[i].ev == ev)
      return i;
  return -1;
}

static q7_consumer *
rb_consumer(rbctx *x, const char *session)
{
  q7_conf *c;
  q7_consumer *k;
  Q7_OK_OR_FAIL((c = q7_conf_new()) == NULL);
  Q7_OK_OR_FAIL(q7_conf_set(c, "enable.auto.commit", "false"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "auto.offset.reset", "earliest"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "session.timeout.ms", session));
  Q7_OK_OR_FAIL(q7_conf_set(c, "heartbeat.interval.ms", "100"));
  q7_conf_set_rebalance_cb(c, rb_cb, x);
  Q7_OK_OR_FAIL(q7_consumer_new(q, "g", c, &k));
  q7_conf_destroy(c);
  Q7_OK_OR_FAIL(q7_consumer_subscribe(k, "t"));
  return k;
}

typedef struct poll_job {
  q7_consumer *c;
  int who, n;
  pthread_t self;
} poll_job;

static void *
poll_thread(void *arg)
{
  poll_job *j = arg;
  j->self = pthread_self();
  j->n = cpoll(j->who, j->c, NULL, 0, 0);
  return NULL;
}

static int
ids_fn(const q7_member *m, void *arg)
{
  uint64_t *ids = arg;
  if (ids[0] < 8)
    ids[1 + ids[0]++] = m->member_id;
  return 0;
}

Test(groups_mp, rebalance_callbacks_revoked_before_assigned_commit_inside_lost_when_expired,
     .init = setup, .fini = teardown, .timeout = 60)
{
  enum { PER = 10 };
  n_rbe = 0;
  inside = 0;
  parent_open(); /* no child in this test */
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  q7_topic *t;
  q7_producer *pr;
  Q7_OK_OR_FAIL(q7_topic_open(q, "t", &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, NULL, &pr));
  for (int i = 0; i < PER; i++)
    for (int32_t p = 0; p < 4; p++) {
      q7_msg m = { .topic = t, .partition = p, .value = "s0", .value_len = 2 };
      Q7_OK_OR_FAIL(q7_producer_send_sync(pr, &m, NULL, NULL));
    }
  Q7_OK_OR_FAIL(q7_producer_close(pr));
  q7_topic_close(t);
  const pthread_t main_th = pthread_self();
  q7_record r[64];

  /* A alone: ASSIGNED with all 4, inside its poll, in its thread. */
  rbctx ca = { 1, 7 }, cb = { 2, -1 }, cb2 = { 3, -1 };
  q7_consumer *A = rb_consumer(&ca, "1500");
  cr_assert_eq(n_rbe, 0, "a callback before any poll");
  int got = 0;
  int64_t end = mono_ms() + 10000;
  while (got < 4 * PER && mono_ms() < end) {
    int n = cpoll(1, A, r, 64, 100);
    cr_assert_geq(n, 0, "poll: %s", q7_last_error());
    got += n;
  }
  cr_assert_eq(got, 4 * PER);
  int e = find_ev(0, 1, Q7_REBALANCE_ASSIGNED);
  cr_assert_eq(e, 0, "A's first callback is not ASSIGNED (%d events)", n_rbe);
  cr_assert_eq(rbe[e].mask, 0xf, "A was assigned %#x alone", rbe[e].mask);
  cr_assert_eq(rbe[e].inside, 1, "ASSIGNED outside A's poll");
  cr_assert(pthread_equal(rbe[e].th, main_th), "ASSIGNED in another thread");
  cr_assert(rbe[e].topic_ok);
  cr_assert_eq(n_rbe, 1, "%d callbacks, want only A's ASSIGNED", n_rbe);

  /* B joins; until A lets go, B gets nothing. */
  q7_consumer *B = rb_consumer(&cb, "1500");
  cr_assert_geq(cpoll(2, B, r, 64, 0), 0);
  cr_assert_eq(amask(B), 0, "B reads %#x while A still owns everything", amask(B));
  cr_assert_eq(find_ev(0, 2, Q7_REBALANCE_ASSIGNED), -1, "B was told ASSIGNED before A let go");

  /* A's next poll (in another thread) revokes 2 and 3, in that thread; it
   * may still commit them inside the callback. */
  int mark = n_rbe;
  poll_job job = { A, 1, -1, 0 };
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, poll_thread, &job), 0);
  pthread_join(th, NULL);
  cr_assert_geq(job.n, 0);
  int rv = find_ev(mark, 1, Q7_REBALANCE_REVOKED);
  cr_assert_geq(rv, 0, "A's poll after B joined delivered no REVOKED");
  cr_assert_eq(rbe[rv].mask, 0xc, "A revoked %#x, want 0xc (range: B takes 2 and 3)",
               rbe[rv].mask);
  cr_assert(pthread_equal(rbe[rv].th, job.self), "REVOKED not in the polling thread");
  cr_assert_eq(rbe[rv].inside, 1);
  for (int i = 0; i < rbe[rv].n; i++)
    cr_assert_eq(rbe[rv].rc[i], Q7_OK,
                 "commit_offset inside REVOKED returned %d: the member still owns them",
                 rbe[rv].rc[i]);
  for (int32_t p = 2; p < 4; p++)
    cr_assert_eq(committed_or(p, -1), 7, "partition %d committed %lld, want 7 (from REVOKED)",
                 (int)p, (long long)committed_or(p, -1));
  cr_assert_eq(amask(A), 0x3);
  ca.revoked_commit = -1; /* from here on A commits nothing in REVOKED */

  /* B gets 2 and 3 after A's REVOKED, and starts at what A committed. */
  int as = -1;
  int64_t firsts[4] = { -1, -1, -1, -1 };
  got = 0;
  end = mono_ms() + 5000;
  while ((as < 0 || got < 6) && mono_ms() < end) {
    int n = cpoll(2, B, r, 64, 100);
    cr_assert_geq(n, 0);
    for (int i = 0; i < n; i++) {
      if (firsts[r[i].partition] < 0)
        firsts[r[i].partition] = r[i].offset;
      got++;
    }
    as = find_ev(mark, 2, Q7_REBALANCE_ASSIGNED);
  }
  cr_assert_geq(as, 0, "B never got ASSIGNED");
  cr_assert_eq(rbe[as].mask, 0xc);
  cr_assert_gt(as, rv, "B's ASSIGNED came before A's REVOKED");
  cr_assert_eq(rbe[as].inside, 2);
  cr_assert_eq(got, 6, "B read %d records, want 3 + 3 from offset 7", got);
  cr_assert(firsts[2] == 7 && firsts[3] == 7, "B started at %lld and %lld, want 7 (committed)",
            (long long)firsts[2], (long long)firsts[3]);
  cr_assert(firsts[0] < 0 && firsts[1] < 0, "B read partitions it does not own");
  Q7_OK_OR_FAIL(q7_consumer_commit(B));

  /* B closes (REVOKED inside its close); A gets 2 and 3 back. */
  mark = n_rbe;
  inside = 2;
  Q7_OK_OR_FAIL(q7_consumer_close(B));
  inside = 0;
  rv = find_ev(mark, 2, Q7_REBALANCE_REVOKED);
  cr_assert_geq(rv, 0, "no REVOKED at B's close");
  cr_assert_eq(rbe[rv].mask, 0xc);
  cr_assert_eq(rbe[rv].inside, 2);
  as = -1;
  end = mono_ms() + 5000;
  while (as < 0 && mono_ms() < end) {
    cr_assert_geq(cpoll(1, A, r, 64, 100), 0);
    as = find_ev(mark, 1, Q7_REBALANCE_ASSIGNED);
  }
  cr_assert_geq(as, 0, "A never got 2 and 3 back after B closed");
  cr_assert_eq(rbe[as].mask, 0xc, "A was assigned %#x after B left", rbe[as].mask);
  cr_assert_eq(rbe[as].inside, 1);
  cr_assert_eq(amask(A), 0xf);

  /* LOST: B2 joins; A stops polling past session.timeout.ms while B2 polls;
   * A's next poll says LOST (its commits refused), then rejoins. */
  q7_consumer *B2 = rb_consumer(&cb2, "1500");
  end = mono_ms() + 10000;
  uint32_t ma = 0, mb = 0;
  while (!(ma == 0x3 && mb == 0xc) && mono_ms() < end) {
    cr_assert_geq(cpoll(1, A, r, 64, 20), 0);
    cr_assert_geq(cpoll(3, B2, r, 64, 20), 0);
    ma = amask(A);
    mb = amask(B2);
  }
  cr_assert(ma == 0x3 && mb == 0xc, "A and B2 never split: %#x %#x", ma, mb);
  uint64_t ids0[9] = { 0 };
  Q7_OK_OR_FAIL(q7_group_members(q, "g", ids_fn, ids0));
  cr_assert_eq(ids0[0], 2, "%llu members, want 2", (unsigned long long)ids0[0]);
  const uint64_t a_id = ids0[1], b2_id = ids0[2];
  mark = n_rbe;
  int64_t silent = mono_ms();
  end = silent + 1500 + 8000;
  while (mono_ms() < end && amask(B2) != 0xf)
    cr_assert_geq(cpoll(3, B2, r, 64, 50), 0);
  int64_t took = mono_ms() - silent;
  cr_assert_eq(amask(B2), 0xf, "B2 does not own everything %lld ms after A went silent",
               (long long)took);
  cr_assert_geq(took, 1000, "A's partitions moved %lld ms after it went silent, its "
                "session.timeout.ms is 1500", (long long)took);
  fprintf(stderr, "callbacks: B2 owns everything %lld ms after A went silent "
          "(session.timeout.ms 1500)\n", (long long)took);
  cr_assert_eq(find_ev(mark, 1, Q7_REBALANCE_LOST), -1, "LOST before A polled");
  cr_assert_geq(cpoll(1, A, r, 64, 0), 0);
  int lo = find_ev(mark, 1, Q7_REBALANCE_LOST);
  cr_assert_geq(lo, 0, "A's first poll after expiry delivered no LOST");
  cr_assert_eq(rbe[lo].mask, 0x3, "LOST %#x, A had 0x3", rbe[lo].mask);
  cr_assert_eq(rbe[lo].inside, 1);
  cr_assert(pthread_equal(rbe[lo].th, main_th));
  cr_assert_eq(find_ev(mark, 1, Q7_REBALANCE_REVOKED), -1, "REVOKED for lost partitions");
  for (int i = 0; i < rbe[lo].n; i++)
    cr_assert_eq(rbe[lo].rc[i], Q7_ESTATE, "commit_offset inside LOST returned %d, want "
                 "Q7_ESTATE", rbe[lo].rc[i]);
  for (int32_t p = 0; p < 2; p++)
    cr_assert_eq(committed_or(p, -1), -1, "a commit from LOST moved partition %d to %lld",
                 (int)p, (long long)committed_or(p, -1));
  /* A rejoined under a new member id; it gets ASSIGNED after the LOST. */
  as = -1;
  end = mono_ms() + 5000;
  while (as < 0 && mono_ms() < end) {
    cr_assert_geq(cpoll(3, B2, r, 64, 20), 0);
    cr_assert_geq(cpoll(1, A, r, 64, 20), 0);
    as = find_ev(lo, 1, Q7_REBALANCE_ASSIGNED);
  }
  cr_assert_geq(as, 0, "A never got partitions after rejoining");
  cr_assert_gt(as, lo);
  uint64_t ids1[9] = { 0 };
  Q7_OK_OR_FAIL(q7_group_members(q, "g", ids_fn, ids1));
  cr_assert_eq(ids1[0], 2, "%llu members after the rejoin", (unsigned long long)ids1[0]);
  cr_assert_eq(ids1[1], b2_id, "B2 is not the first member any more");
  cr_assert(ids1[2] != a_id && ids1[2] > b2_id, "A's member id %llu after rejoining (was %llu)",
            (unsigned long long)ids1[2], (unsigned long long)a_id);
  Q7_OK_OR_FAIL(q7_consumer_close(A));
  Q7_OK_OR_FAIL(q7_consumer_close(B2));
}

/* ========================================= 4. assignment shapes */

static void
shapes(const char *strategy, const uint32_t want[3])
{
  create_topic_in_child(7, 0);
  mem_arg a[3];
  pm *m[3];
  static const char *names[3] = { "first", "second", "third" };
  for (int i = 0; i < 3; i++) {
    /* session 3000: a slow machine must not reorder the joins */
    a[i] = (mem_arg){ .parts = 7, .strategy = strategy, .session = "3000", .heartbeat = "100",
                      .wait_go = true };
    m[i] = add_member(names[i], &a[i]);
  }
  parent_open();
  for (int i = 0; i < 3; i++) {
    send_cmd(m[i], 'g');
    int64_t end = mono_ms() + 20000;
    while (!m[i]->ready && mono_ms() < end)
      pump(10);
    cr_assert(m[i]->ready, "%s never subscribed", m[i]->name);
  }
  gsnap s = { 0 };
  bool ok = false;
  int64_t t0 = mono_ms(), end = t0 + 20000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    ok = shape_is(&s, m, want, 3);
  }
  cr_assert(ok, "%s: want %#x %#x %#x in join order, have %s (members report %#x %#x %#x)",
            strategy, want[0], want[1], want[2], snap_str(&s), m[0]->mask, m[1]->mask,
            m[2]->mask);
  fprintf(stderr, "%s: %s after %lld ms\n", strategy, snap_str(&s), (long long)(mono_ms() - t0));
  for (int i = 0; i < 3; i++)
    fd_close(&m[i]->cmd_w);
  for (int i = 0; i < 3; i++) {
    int rc = reap(m[i], 30000);
    cr_assert_eq(rc, 0, "%s exited %d", m[i]->name, rc);
  }
  no_child_failed();
}

Test(groups_mp, range_gives_three_processes_7_partitions_3_2_2_contiguous, .init = setup,
     .fini = teardown, .timeout = 60)
{
  const uint32_t want[3] = { 0x07, 0x18, 0x60 }; /* {0,1,2} {3,4} {5,6} */
  shapes("range", want);
}

Test(groups_mp, roundrobin_gives_three_processes_7_partitions_p_mod_3, .init = setup,
     .fini = teardown, .timeout = 60)
{
  const uint32_t want[3] = { 0x49, 0x12, 0x24 }; /* {0,3,6} {1,4} {2,5} */
  shapes("roundrobin", want);
}

/* ========================================= 5. a dead process frees at once */

Test(groups_mp, dead_process_frees_its_partitions_long_before_session_timeout, .init = setup,
     .fini = teardown, .timeout = 60)
{
  create_topic_in_child(4, 0);
  mem_arg a = { .parts = 4, .strategy = "range", .session = "30000", .heartbeat = "100" };
  mem_arg b = a;
  pm *A = add_member("victim", &a);
  pm *B = add_member("survivor", &b);
  parent_open();
  gsnap s = { 0 };
  bool ok = false;
  int64_t end = mono_ms() + 30000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    const gmem *x = snap_pid(&s, A->pid), *y = snap_pid(&s, B->pid);
    ok = s.n == 2 && x && y && popcount32(x->mask) == 2 && popcount32(y->mask) == 2 &&
         A->mask == x->mask && B->mask == y->mask;
  }
  cr_assert(ok, "never split 2/2: %s", snap_str(&s));
  const uint64_t aid = snap_pid(&s, A->pid)->id;
  int64_t k0 = mono_ms();
  int rc = kill_and_reap(A);
  cr_assert_eq(rc, 128 + SIGKILL);
  /* Its process is gone: listed, it is expired at once. */
  snap(&s);
  for (int i = 0; i < s.n; i++)
    cr_assert(s.m[i].id != aid || s.m[i].expired,
              "the member of a reaped process is listed as live: %s", snap_str(&s));
  int64_t took = -1;
  end = k0 + 20000;
  while (mono_ms() < end) {
    snap(&s);
    const gmem *y = snap_pid(&s, B->pid);
    if (y && y->mask == 0xf && s.n == 1) {
      took = mono_ms() - k0;
      break;
    }
    pump(5);
  }
  cr_assert_geq(took, 0, "20 s after SIGKILL the survivor does not own everything: %s",
                snap_str(&s));
  fprintf(stderr, "dead process: survivor owns everything %lld ms after SIGKILL "
          "(session.timeout.ms 30000)\n", (long long)took);
  cr_assert_lt(took, 5000, "a dead process's partitions took %lld ms to move (lease 30 s)",
               (long long)took);
  end = mono_ms() + 10000;
  while (B->mask != 0xf && mono_ms() < end)
    pump(10);
  cr_assert_eq(B->mask, 0xf, "the survivor reports %#x", B->mask);
  fd_close(&B->cmd_w);
  rc = reap(B, 30000);
  cr_assert_eq(rc, 0, "survivor exited %d", rc);
  no_child_failed();
}

/* The process state letter of @pid from /proc ('Z': dead, not yet reaped),
 * or 0 if it cannot be read. */
static char
proc_state(pid_t pid)
{
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f)
    return 0;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char *rp = strrchr(buf, ')');
  return rp && rp[1] == ' ' ? rp[2] : 0;
}

/* SPEC (q7_consumer_subscribe): a member "whose process died" is expired by
 * the next member that polls; q7_member.expired: "lease passed or process
 * gone".  A process killed but not yet reaped by its parent (a defunct
 * process) has died: it can never poll again. */
Test(groups_mp, killed_process_not_yet_reaped_by_its_parent_counts_as_dead, .init = setup,
     .fini = teardown, .timeout = 60)
{
  create_topic_in_child(4, 0);
  mem_arg a = { .parts = 4, .strategy = "range", .session = "30000", .heartbeat = "100" };
  mem_arg b = a;
  pm *A = add_member("victim", &a);
  pm *B = add_member("survivor", &b);
  parent_open();
  gsnap s = { 0 };
  bool ok = false;
  int64_t end = mono_ms() + 30000;
  while (!ok && mono_ms() < end) {
    pump(10);
    snap(&s);
    const gmem *x = snap_pid(&s, A->pid), *y = snap_pid(&s, B->pid);
    ok = s.n == 2 && x && y && popcount32(x->mask) == 2 && popcount32(y->mask) == 2 &&
         A->mask == x->mask && B->mask == y->mask;
  }
  cr_assert(ok, "never split 2/2: %s", snap_str(&s));
  const uint64_t aid = snap_pid(&s, A->pid)->id;
  /* Kill it; leave it unreaped (teardown reaps it) until it is defunct. */
  int64_t k0 = mono_ms();
  kill(A->pid, SIGKILL);
  char st = 0;
  end = k0 + 10000;
  while ((st = proc_state(A->pid)) != 'Z' && mono_ms() < end)
    pump(5);
  cr_assert_eq(st, 'Z', "the killed process is in state '%c', not defunct", st ? st : '?');
  snap(&s);
  for (int i = 0; i < s.n; i++)
    cr_assert(s.m[i].id != aid || s.m[i].expired,
              "a member whose process was SIGKILLed (defunct, not yet reaped) is listed as "
              "live: %s", snap_str(&s));
  int64_t took = -1;
  end = k0 + 5000;
  while (mono_ms() < end) {
    snap(&s);
    const gmem *y = snap_pid(&s, B->pid);
    if (y && y->mask == 0xf) {
      took = mono_ms() - k0;
      break;
    }
    pump(10);
  }
  fprintf(stderr, "defunct process: survivor owns everything after %lld ms (-1: not within "
          "5 s; session.timeout.ms 30000)\n", (long long)took);
  cr_assert_geq(took, 0, "5 s after its process was killed (defunct, not reaped), the dead "
                "member still owns its partitions: %s", snap_str(&s));
  int rc = reap(A, 30000);
  cr_assert_eq(rc, 128 + SIGKILL);
  fd_close(&B->cmd_w);
  rc = reap(B, 30000);
  cr_assert_eq(rc, 0, "survivor exited %d", rc);
  no_child_failed();
}
