/* files.h - files in a test's directory dir: their paths, writing them
 * whole, and opening its LMDB files without libq7 (foreign and damaged
 * files around a store).  Include after helpers.h. */
#ifndef Q7_TEST_FILES_H
#define Q7_TEST_FILES_H

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdint.h>
#include <unistd.h>

static char *dir;

/* DIR/@rel, in one of 8 buffers taken in turn: a call may use several. */
static inline char *
path_of(const char *rel)
{
  static char p[8][4200];
  static int i;
  i = (i + 1) % 8;
  snprintf(p[i], sizeof p[i], "%s/%s", dir, rel);
  return p[i];
}

static inline void
write_file(const char *rel, const void *data, size_t len)
{
  int fd = open(path_of(rel), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  cr_assert_geq(fd, 0, "open %s: %s", rel, strerror(errno));
  cr_assert_eq(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* @len bytes that are not an LMDB file, the same for the same @seed. */
static inline void
write_garbage(const char *rel, size_t len, uint32_t seed)
{
  unsigned char *g = malloc(len);
  uint32_t x = seed;
  for (size_t i = 0; i < len; i++) {
    x = x * 1664525u + 1013904223u;
    g[i] = (unsigned char)(x >> 24);
  }
  write_file(rel, g, len);
  free(g);
}

/* Open the LMDB environment at DIR/@rel directly (no libq7). */
static inline MDB_env *
raw_env(const char *rel)
{
  MDB_env *env;
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_mapsize(env, 1024UL * 1024 * 1024);
  int rc = mdb_env_open(env, path_of(rel), 0, 0600);
  cr_assert_eq(rc, 0, "mdb_env_open %s: %s", rel, mdb_strerror(rc));
  return env;
}

#endif
