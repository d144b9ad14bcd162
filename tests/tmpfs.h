/* tmpfs.h - a small tmpfs for the tests of a full disk, at DIR/mnt: mounted
 * as root (the test is skipped otherwise), unmounted in every path (also by
 * teardown) before anything is asserted.  Include after helpers.h. */
#ifndef Q7_TEST_TMPFS_H
#define Q7_TEST_TMPFS_H

#include <errno.h>
#include <stdbool.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char mnt[4200];
static bool mounted;

/* Mount an 8 MiB tmpfs at @d/mnt, or skip the test saying why (@prog and
 * @what name the program and the test). */
static inline void
tmpfs_mount(const char *prog, const char *d, const char *what)
{
  if (geteuid() != 0) {
    fprintf(stderr, "%s: skipped %s: not root (cannot mount a tmpfs)\n", prog, what);
    cr_skip_test("not root: cannot mount a small tmpfs");
  }
  snprintf(mnt, sizeof mnt, "%s/mnt", d);
  cr_assert_eq(mkdir(mnt, 0700), 0, "mkdir %s: %s", mnt, strerror(errno));
  if (mount("tmpfs", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0700") != 0) {
    fprintf(stderr, "%s: skipped %s: mount: %s\n", prog, what, strerror(errno));
    cr_skip_test("cannot mount a tmpfs: %s", strerror(errno));
  }
  mounted = true;
}

/* Unmount it if mounted: a busy one is retried for a second, then
 * detached.  False, said by @prog, if it stays. */
static inline bool
tmpfs_unmount(const char *prog)
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
  fprintf(stderr, "%s: cannot unmount %s: %s\n", prog, mnt, strerror(errno));
  return false;
}

#endif
