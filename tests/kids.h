/* kids.h - the children of a multi-process test: a table of their PIDs,
 * spawn, reap within a deadline, kill, and kill them all at teardown, so
 * that no child outlives its test.  Include after proc.h. */
#ifndef Q7_TEST_KIDS_H
#define Q7_TEST_KIDS_H

#include <errno.h>
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

/* Run @fn(@arg) in a child that dies with the test; returns its slot. */
static inline int
spawn(int (*fn)(void *), void *arg)
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
    _exit(fn(arg));
  }
  kids[k] = pid;
  return k;
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

#endif
