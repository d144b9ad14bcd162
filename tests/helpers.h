/* helpers.h - shared by the Criterion tests: a fresh store per test. */
#ifndef Q7_TEST_HELPERS_H
#define Q7_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <q7.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A new empty directory under $TMPDIR (or /tmp), removed by tmpdir_rm(). */
static inline char *
tmpdir_new(void)
{
  const char *base = getenv("TMPDIR");
  char *d = malloc(4096);
  snprintf(d, 4096, "%s/q7test.XXXXXX", base && *base ? base : "/tmp");
  cr_assert(mkdtemp(d) != NULL, "mkdtemp");
  return d;
}

static inline void
tmpdir_rm(char *d)
{
  if (!d)
    return;
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd) != 0)
    fprintf(stderr, "could not remove %s\n", d);
  free(d);
}

/* Assert a q7 call succeeded, printing q7_last_error() if not. */
#define Q7_OK_OR_FAIL(call)                                                                   \
  do {                                                                                        \
    int rc__ = (call);                                                                        \
    cr_assert_eq(rc__, Q7_OK, "%s -> %d (%s): %s", #call, rc__, q7_strerror(rc__),            \
                 q7_last_error());                                                            \
  } while (0)

/* Assert a q7 call failed with @code and set a non-empty message. */
#define Q7_FAILS_WITH(code, call)                                                             \
  do {                                                                                        \
    int rc__ = (call);                                                                        \
    cr_assert_eq(rc__, (code), "%s -> %d, want %d (%s)", #call, rc__, (code), q7_last_error()); \
    cr_assert(q7_last_error()[0] != 0, "%s: empty q7_last_error()", #call);                   \
  } while (0)

#endif
