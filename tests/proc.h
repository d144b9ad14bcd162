/* proc.h - small helpers of the tests that run child processes: time,
 * sleeping, a hash for test data, and reading or writing a pipe whole
 * within a deadline.  No Criterion here: the standalone programs
 * (tests/stress, tests/kafka) include it too. */
#ifndef Q7_TEST_PROC_H
#define Q7_TEST_PROC_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

static inline int64_t
mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock time, as record timestamps are. */
static inline int64_t
wall_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void
sleep_ms(int ms)
{
  struct timespec d = { ms / 1000, (long)(ms % 1000) * 1000000L };
  nanosleep(&d, NULL);
}

/* splitmix64: test data and random numbers that a seed repeats. */
static inline uint64_t
mix64(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static inline bool
write_full(int fd, const void *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    ssize_t k = write(fd, (const char *)buf + done, len - done);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    done += (size_t)k;
  }
  return true;
}

/* Read exactly @len bytes within @ms; false on timeout or EOF. */
static inline bool
read_full(int fd, void *buf, size_t len, int ms)
{
  size_t got = 0;
  int64_t end = mono_ms() + ms;
  while (got < len) {
    int64_t left = end - mono_ms();
    if (left <= 0)
      return false;
    struct pollfd pfd = { fd, POLLIN, 0 };
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      return false;
    ssize_t k = read(fd, (char *)buf + got, len - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0)
      return false;
    got += (size_t)k;
  }
  return true;
}

#endif
