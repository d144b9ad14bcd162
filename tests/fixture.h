/* fixture.h - a test's store: a fresh directory per test (setup opens a
 * store in it, setup_nostore leaves that to the test), closed and removed
 * by teardown.  Include after helpers.h. */
#ifndef Q7_TEST_FIXTURE_H
#define Q7_TEST_FIXTURE_H

static char *dir;
static q7 *q;

static inline void
store_open(const q7_conf *conf)
{
  Q7_OK_OR_FAIL(q7_open(&q, dir, conf));
}

static inline void
setup(void)
{
  dir = tmpdir_new();
  store_open(NULL);
}

static inline void
setup_nostore(void)
{
  dir = tmpdir_new();
}

static inline void
teardown(void)
{
  if (q)
    q7_close(q);
  q = NULL;
  tmpdir_rm(dir);
  dir = NULL;
}

#endif
