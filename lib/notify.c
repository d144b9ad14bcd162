/* notify.c - commit wake-ups across threads and processes.
 *
 * DIR/notify is one page mapped shared by every process of the store.  Its
 * first word is a sequence bumped after each commit; idle consumers wait on
 * it with a (process-shared) futex, so a commit in any process wakes them
 * within microseconds, and nobody polls.  The second word counts waiters so
 * that producers skip the wake system call when nobody waits. */
#include "q7_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NOTIFY_SIZE 4096

struct shared {
  _Atomic uint32_t seq;
  _Atomic uint32_t waiters;
};

int
q7__notify_open(q7__notify *n, const char *dir)
{
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/notify", dir);
  n->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (n->fd < 0)
    return q7__errno_err(errno, "open", path);
  if (fstat(n->fd, &st) < 0 || (st.st_size < NOTIFY_SIZE && ftruncate(n->fd, NOTIFY_SIZE) < 0)) {
    int rc = q7__errno_err(errno, "size", path);
    close(n->fd);
    return rc;
  }
  n->map = mmap(NULL, NOTIFY_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, n->fd, 0);
  if (n->map == MAP_FAILED) {
    int rc = q7__errno_err(errno, "mmap", path);
    close(n->fd);
    return rc;
  }
  return Q7_OK;
}

void
q7__notify_close(q7__notify *n)
{
  if (n->map && n->map != MAP_FAILED)
    munmap(n->map, NOTIFY_SIZE);
  if (n->fd >= 0)
    close(n->fd);
  n->map = NULL;
  n->fd = -1;
}

uint32_t
q7__notify_seq(q7__notify *n)
{
  struct shared *s = n->map;
  return atomic_load_explicit(&s->seq, memory_order_acquire);
}

void
q7__notify_bump(q7__notify *n)
{
  struct shared *s = n->map;
  atomic_fetch_add_explicit(&s->seq, 1, memory_order_acq_rel);
  if (atomic_load_explicit(&s->waiters, memory_order_acquire))
    syscall(SYS_futex, &s->seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

void
q7__notify_wait(q7__notify *n, uint32_t seq, int timeout_ms)
{
  struct shared *s = n->map;
  struct timespec ts = { timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L };
  atomic_fetch_add_explicit(&s->waiters, 1, memory_order_acq_rel);
  if (atomic_load_explicit(&s->seq, memory_order_acquire) == seq)
    syscall(SYS_futex, &s->seq, FUTEX_WAIT, seq, timeout_ms < 0 ? NULL : &ts, NULL, 0);
  atomic_fetch_sub_explicit(&s->waiters, 1, memory_order_acq_rel);
}
