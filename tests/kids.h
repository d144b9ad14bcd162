/* kids.h - the children of a multi-process test: a table of their PIDs,
 * spawn, reap within a deadline, kill, and kill them all at teardown, so
 * that no child outlives its test; their failed checks, and the reports
 * they write to a pipe.  Include after proc.h. */
#ifndef Q7_TEST_KIDS_H
#define Q7_TEST_KIDS_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

enum { MAX_KIDS = 8 };
static pid_t kids[MAX_KIDS];

static inline void
kids_reset(void)
{
  for (int i = 0; i < MAX_KIDS; i++)
    kids[i] = 0;
}

/* Stop any child still running, by PID. */
static inline void
kids_kill_all(void)
{
  for (int i = 0; i < MAX_KIDS; i++) {
    if (kids[i] > 0) {
      kill(kids[i], SIGKILL);
      waitpid(kids[i], NULL, 0);
      kids[i] = 0;
    }
  }
}

/* Run @fn(@arg) in a child that dies with the test; returns its slot.
 * The child first closes @close_fd unless it is -1: the write end of a
 * start pipe, which would else stay open in the child itself. */
static inline int
spawn_closing(int (*fn)(void *), void *arg, int close_fd)
{
  int k = 0;
  while (k < MAX_KIDS && kids[k] > 0)
    k++;
  cr_assert_lt(k, MAX_KIDS, "too many children");
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (close_fd >= 0)
      close(close_fd);
    _exit(fn(arg));
  }
  kids[k] = pid;
  return k;
}

static inline int
spawn(int (*fn)(void *), void *arg)
{
  return spawn_closing(fn, arg, -1);
}

/* Wait up to @ms for child @k: its exit status, 128 + signal, or -1 after
 * killing it for taking too long. */
static inline int
reap(int k, int ms)
{
  int64_t end = mono_ms() + ms;
  int status;
  for (;;) {
    pid_t r = waitpid(kids[k], &status, WNOHANG);
    if (r == kids[k])
      break;
    if (r < 0 && errno != EINTR) {
      kids[k] = 0;
      return -1;
    }
    if (mono_ms() > end) {
      kill(kids[k], SIGKILL);
      waitpid(kids[k], NULL, 0);
      kids[k] = 0;
      return -1;
    }
    sleep_ms(2);
  }
  kids[k] = 0;
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* SIGKILL child @k and wait for it: its status as reap() gives it. */
static inline int
kill_child(int k)
{
  kill(kids[k], SIGKILL);
  return reap(k, 30000);
}

/* In a child: note the first failed check in sh->line and sh->msg (the
 * test's memory shared with its children) and return 1. */
#define WCHECK(cond, ...)                                                  \
  do {                                                                     \
    if (!(cond)) {                                                         \
      sh->line = __LINE__;                                                 \
      snprintf(sh->msg, sizeof sh->msg, __VA_ARGS__);                      \
      return 1;                                                            \
    }                                                                      \
  } while (0)

/* The read end of a pipe a child writes fixed-size reports to: whole ones
 * go to @fn, a partial one waits in @buf for its rest. */
typedef struct reports {
  int fd;
  size_t size;                    /* of one report, at most sizeof buf */
  void (*fn)(const void *rep, uint32_t round, void *arg);
  void *arg;
  const char *what;               /* a report, in messages */
  int end_s;                      /* how long the pipe may take to end */
  size_t have;                    /* bytes in buf */
  char buf[16384];
} reports;

/* Hand on reports until @until (monotonic ms) or the end of the pipe;
 * false at the end.  @until < 0: to the end, which must come within
 * end_s.  @round is the caller's, for the messages. */
static inline bool
reports_drain(reports *rp, int64_t until, uint32_t round)
{
  for (;;) {
    int64_t left = until < 0 ? rp->end_s * 1000 : until - mono_ms();
    if (left < 0)
      return true;
    struct pollfd pfd = { rp->fd, POLLIN, 0 };
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    cr_assert_geq(r, 0, "poll: %s", strerror(errno));
    if (r == 0) {
      cr_assert_geq(until, 0, "round %u: no end of the %s pipe in %d s", round, rp->what,
                    rp->end_s);
      return true;
    }
    ssize_t k = read(rp->fd, rp->buf + rp->have, sizeof rp->buf - rp->have);
    if (k < 0 && errno == EINTR)
      continue;
    cr_assert_geq(k, 0, "read: %s", strerror(errno));
    if (k == 0) {
      cr_assert_eq(rp->have, 0, "round %u: torn %s", round, rp->what);
      return false;
    }
    rp->have += (size_t)k;
    size_t whole = rp->have / rp->size * rp->size;
    for (size_t i = 0; i < whole; i += rp->size)
      rp->fn(rp->buf + i, round, rp->arg);
    memmove(rp->buf, rp->buf + whole, rp->have - whole);
    rp->have -= whole;
  }
}

#endif
