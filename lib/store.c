/* store.c - opening and closing a store: its directory, the metadata
 * environment, the notify page, and the clock. */
#include "q7_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_MAP (1024UL * 1024 * 1024)

const char *
q7_version(void)
{
#define Q7__S(x) #x
#define Q7__V(a, b, c) Q7__S(a) "." Q7__S(b) "." Q7__S(c)
  return Q7__V(Q7_VERSION_MAJOR, Q7_VERSION_MINOR, Q7_VERSION_PATCH);
}

int64_t
q7__mono_ms(void)
{
  return q7__mono_ns() / 1000000;
}

int64_t
q7__mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
deadline(struct timespec *ts, int64_t sec, long nsec)
{
  clock_gettime(CLOCK_MONOTONIC, ts);
  ts->tv_sec += sec;
  ts->tv_nsec += nsec;
  if (ts->tv_nsec >= 1000000000L) {
    ts->tv_sec++;
    ts->tv_nsec -= 1000000000L;
  }
}

void
q7__deadline_ms(struct timespec *ts, int64_t ms)
{
  deadline(ts, ms / 1000, (long)(ms % 1000) * 1000000L);
}

void
q7__deadline_ns(struct timespec *ts, int64_t ns)
{
  deadline(ts, ns / 1000000000, (long)(ns % 1000000000));
}

void
q7__cond_init_mono(pthread_cond_t *cv)
{
  pthread_condattr_t a;
  pthread_condattr_init(&a);
  pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
  pthread_cond_init(cv, &a);
  pthread_condattr_destroy(&a);
}

int64_t
q7__now(q7 *q)
{
  if (q->conf->clock)
    return q->conf->clock(q->conf->clock_arg);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
q7__handle_ref(q7 *q, int delta)
{
  pthread_mutex_lock(&q->lock);
  q->live_handles += delta;
  pthread_mutex_unlock(&q->lock);
}

static int64_t
file_size(const char *path)
{
#ifdef STATX_SIZE /* the size alone: see check_linked in partition.c */
  struct statx sx;
  if (statx(AT_FDCWD, path, AT_STATX_DONT_SYNC, STATX_SIZE, &sx) == 0 &&
      (sx.stx_mask & STATX_SIZE))
    return (int64_t)sx.stx_size;
#endif
  struct stat st;
  return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

int64_t
q7__store_bytes(q7 *q, const q7__pe *skip)
{
  char path[4400];
  int64_t total = 0;
  snprintf(path, sizeof path, "%s/meta/data.mdb", q->dir);
  total += file_size(path);
  snprintf(path, sizeof path, "%s/topics", q->dir);
  DIR *td = opendir(path);
  if (!td)
    return total;
  struct dirent *te;
  while ((te = readdir(td))) {
    if (te->d_name[0] == '.')
      continue;
    char tpath[4096];
    snprintf(tpath, sizeof tpath, "%s/topics/%s", q->dir, te->d_name);
    DIR *pd = opendir(tpath);
    if (!pd)
      continue;
    struct dirent *pe;
    while ((pe = readdir(pd))) {
      if (pe->d_name[0] == '.')
        continue;
      snprintf(path, sizeof path, "%s/%s", tpath, pe->d_name);
      if (skip && strcmp(path, skip->path) == 0)
        continue;
      char f[4420];
      snprintf(f, sizeof f, "%s/data.mdb", path);
      total += file_size(f);
    }
    closedir(pd);
  }
  closedir(td);
  return total;
}

int
q7__env_check_size(MDB_env *env, const char *path)
{
  MDB_envinfo info;
  MDB_stat st;
  struct stat fs;
  int fd;
  if (mdb_env_info(env, &info) || mdb_env_stat(env, &st) || mdb_env_get_fd(env, &fd) ||
      fstat(fd, &fs) < 0)
    return q7__err(Q7_EIO, "%s: cannot inspect the data file", path);
  uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
  if ((uint64_t)fs.st_size < need)
    return q7__err(Q7_ECORRUPT,
                   "%s/data.mdb is truncated: %lld bytes where its pages need %llu", path,
                   (long long)fs.st_size, (unsigned long long)need);
  return Q7_OK;
}

int
q7__meta_begin(q7 *q, unsigned flags, MDB_txn **txn)
{
  int rc = mdb_txn_begin(q->meta, NULL, flags, txn);
  if (rc == MDB_MAP_RESIZED) {
    /* Another process grew the meta map; adopt it (meta txns are short). */
    mdb_env_set_mapsize(q->meta, 0);
    rc = mdb_txn_begin(q->meta, NULL, flags, txn);
  }
  return rc ? q7__mdb_err(rc, "metadata transaction") : Q7_OK;
}

static int
rm_rf(const char *path)
{
  struct stat st;
  if (lstat(path, &st) < 0)
    return errno == ENOENT ? 0 : -1;
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    if (!d)
      return -1;
    struct dirent *e;
    while ((e = readdir(d))) {
      if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
        continue;
      char sub[4400];
      snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
      rm_rf(sub);
    }
    closedir(d);
    return rmdir(path);
  }
  return unlink(path);
}

int
q7__rm_rf(const char *path)
{
  return rm_rf(path);
}

static int
ensure_dir(const char *path)
{
  struct stat st;
  if (mkdir(path, 0700) < 0 && errno != EEXIST)
    return q7__err(errno == ENOSPC || errno == EDQUOT ? Q7_EFULL : Q7_EIO,
                   "cannot create directory %s: %s", path, strerror(errno));
  if (stat(path, &st) < 0)
    return q7__err(Q7_EIO, "cannot open %s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return q7__err(Q7_EIO, "%s is not a directory", path);
  return Q7_OK;
}

/* A directory holding other files and no store is not made into one: a
 * mistyped path must not litter someone's folder. */
static int
check_not_foreign(const char *dir)
{
  char path[4096];
  struct stat st;
  snprintf(path, sizeof path, "%s/meta", dir);
  if (stat(path, &st) == 0)
    return Q7_OK;
  DIR *d = opendir(dir);
  if (!d)
    return q7__err(Q7_EIO, "cannot read directory %s: %s", dir, strerror(errno));
  struct dirent *e;
  const char *foreign = NULL;
  while (!foreign && (e = readdir(d))) {
    const char *n = e->d_name;
    if (strcmp(n, ".") && strcmp(n, "..") && strcmp(n, "topics") && strcmp(n, "notify") &&
        strcmp(n, "trash") && strcmp(n, "reserve"))
      foreign = n;
  }
  int rc = Q7_OK;
  if (foreign)
    rc = q7__err(Q7_EEXIST,
                 "%s holds other files (\"%.100s\") and no libq7 store; refusing to create "
                 "a store there", dir, foreign);
  closedir(d);
  return rc;
}

static bool
dir_empty(const char *dir, const char *sub)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, sub);
  DIR *d = opendir(path);
  if (!d)
    return true;
  struct dirent *e;
  bool empty = true;
  while (empty && (e = readdir(d)))
    empty = e->d_name[0] == '.';
  closedir(d);
  return empty;
}

/* Remove what a crash left half-made: topic directories without a topic in
 * the metadata, and the trash of deletes.  Runs inside a meta write txn, so
 * no other process creates or deletes a topic meanwhile. */
static void
sweep_orphans(q7 *q, MDB_txn *txn)
{
  char path[4096];
  snprintf(path, sizeof path, "%s/trash", q->dir);
  rm_rf(path);
  snprintf(path, sizeof path, "%s/topics", q->dir);
  DIR *d = opendir(path);
  if (!d)
    return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
      continue;
    MDB_val k = { strlen(e->d_name), e->d_name }, v;
    if (mdb_get(txn, q->dbi_topics, &k, &v) == MDB_NOTFOUND) {
      char sub[4400];
      snprintf(sub, sizeof sub, "%s/topics/%s", q->dir, e->d_name);
      rm_rf(sub);
    }
  }
  closedir(d);
}

static int
meta_open(q7 *q)
{
  char path[4096];
  MDB_txn *txn = NULL;
  int rc;

  snprintf(path, sizeof path, "%s/meta", q->dir);
  if ((rc = ensure_dir(path)))
    return rc;
  if ((rc = mdb_env_create(&q->meta)))
    return q7__mdb_err(rc, "create metadata environment");
  mdb_env_set_maxdbs(q->meta, 8);
  mdb_env_set_maxreaders(q->meta, 1022);
  mdb_env_set_mapsize(q->meta, META_MAP);
  rc = mdb_env_open(q->meta, path, MDB_NOTLS | (q->sync ? 0 : MDB_NOSYNC), 0600);
  if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH)
    return q7__err(rc == MDB_VERSION_MISMATCH ? Q7_EVERSION : Q7_ECORRUPT,
                   "%s/data.mdb is not a libq7 metadata file: %s", path, mdb_strerror(rc));
  if (rc)
    return q7__mdb_err(rc, path);
  int dead;
  mdb_reader_check(q->meta, &dead);
  if ((rc = q7__env_check_size(q->meta, path)))
    return rc;

  if ((rc = q7__meta_begin(q, 0, &txn)))
    return rc;
  if ((rc = mdb_dbi_open(txn, "info", MDB_CREATE, &q->dbi_info)) ||
      (rc = mdb_dbi_open(txn, "topics", MDB_CREATE, &q->dbi_topics)) ||
      (rc = mdb_dbi_open(txn, "offsets", MDB_CREATE, &q->dbi_offsets)) ||
      (rc = mdb_dbi_open(txn, "groups", MDB_CREATE, &q->dbi_groups)) ||
      (rc = mdb_dbi_open(txn, "isr", MDB_CREATE, &q->dbi_isr))) {
    rc = q7__mdb_err(rc, "open metadata tables");
    goto fail;
  }
  MDB_val k = { 6, (void *)"format" }, v;
  rc = mdb_get(txn, q->dbi_info, &k, &v);
  if (rc == MDB_NOTFOUND && !dir_empty(q->dir, "topics")) {
    /* Metadata gone (an emptied or replaced file) while topics exist:
     * starting afresh would sweep every topic away as an orphan. */
    rc = q7__err(Q7_ECORRUPT,
                 "%s holds no store metadata but %s/topics holds topics; refusing to "
                 "open (restore the metadata, or move topics/ away)", path, q->dir);
    goto fail;
  }
  if (rc == MDB_NOTFOUND) {
    uint32_t f = Q7__FORMAT;
    v.mv_size = sizeof f;
    v.mv_data = &f;
    if ((rc = mdb_put(txn, q->dbi_info, &k, &v, 0))) {
      rc = q7__mdb_err(rc, "write store format");
      goto fail;
    }
  } else if (rc) {
    rc = q7__mdb_err(rc, "read store format");
    goto fail;
  } else {
    uint32_t f;
    if (v.mv_size != sizeof f) {
      rc = q7__err(Q7_ECORRUPT, "%s: malformed format record", path);
      goto fail;
    }
    memcpy(&f, v.mv_data, sizeof f);
    if (f > Q7__FORMAT) {
      rc = q7__err(Q7_EVERSION, "%s: store format %u is newer than this library's %u", q->dir, f,
                   Q7__FORMAT);
      goto fail;
    }
  }
  sweep_orphans(q, txn);
  if ((rc = mdb_txn_commit(txn))) {
    txn = NULL;
    rc = q7__mdb_err(rc, "open metadata");
    goto fail;
  }
  return Q7_OK;
fail:
  if (txn)
    mdb_txn_abort(txn);
  return rc;
}

int
q7_open(q7 **out, const char *dir, const q7_conf *conf)
{
  if (!out || !dir || !*dir)
    return q7__err(Q7_EINVAL, "q7_open: %s", !out ? "out is NULL" : "directory is NULL or empty");
  if (strlen(dir) > 3000)
    return q7__err(Q7_EINVAL, "q7_open: directory path longer than 3000 bytes");
  q7 *q = calloc(1, sizeof *q);
  int rc;
  if (!q)
    return q7__err(Q7_ENOMEM, "q7_open: out of memory");
  q->notify.fd = -1;
  pthread_mutex_init(&q->lock, NULL);
  pthread_mutex_init(&q->sweep_mu, NULL);
  q7__cond_init_mono(&q->sweep_cv);
  if (!(q->dir = strdup(dir)) || q7_conf_dup(conf, &q->conf)) {
    rc = q7__err(Q7_ENOMEM, "q7_open: out of memory");
    goto fail;
  }
  q->pidns = q7__pidns();
  q->sync = q7__conf_bool(q->conf, Q7K_SYNC);
  q->max_bytes = q7__conf_int(q->conf, Q7K_STORAGE_MAX_BYTES);
  q->lag_window = (int)q7__conf_int(q->conf, Q7K_LAG_WINDOW);
  /* Idle partition environments kept open: two descriptors each. */
  struct rlimit rl;
  q->idle_max = 256;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    q->idle_max = rl.rlim_cur / 8 < 16 ? 16 : rl.rlim_cur / 8 > 2048 ? 2048 : (int)(rl.rlim_cur / 8);
  if ((rc = ensure_dir(dir)))
    goto fail;
  if ((rc = check_not_foreign(dir)))
    goto fail;
  char path[4096];
  snprintf(path, sizeof path, "%s/topics", dir);
  if ((rc = ensure_dir(path)))
    goto fail;
  if ((rc = meta_open(q)))
    goto fail;
  if ((rc = q7__notify_open(&q->notify, dir)))
    goto fail;
  q7__store_reserve_make(q);
  if ((rc = q7__replica_open(q)))
    goto fail;
  if ((rc = q7__retention_start(q)))
    goto fail;
  *out = q;
  return Q7_OK;
fail:
  {
    int keep = rc;
    char why[512];
    snprintf(why, sizeof why, "%s", q7_last_error());
    q7__replica_close(q);
    while (q->parts) {
      q7__pe *pe = q->parts;
      q->parts = pe->next;
      q7__pe_destroy(pe);
    }
    rc = q7__err(keep, "%s", why);
  }
  if (q->meta)
    mdb_env_close(q->meta);
  q7__notify_close(&q->notify);
  q7_conf_destroy(q->conf);
  free(q->dir);
  pthread_mutex_destroy(&q->lock);
  pthread_mutex_destroy(&q->sweep_mu);
  pthread_cond_destroy(&q->sweep_cv);
  free(q);
  return rc;
}

int
q7_close(q7 *q)
{
  if (!q)
    return Q7_OK;
  pthread_mutex_lock(&q->lock);
  int live = q->live_handles;
  pthread_mutex_unlock(&q->lock);
  if (live)
    return q7__err(Q7_EBUSY, "q7_close: %d topic, producer or consumer handles are still open",
                   live);
  q7__retention_stop(q);
  q7__replica_close(q);
  while (q->parts) {
    q7__pe *pe = q->parts;
    q->parts = pe->next;
    q7__pe_destroy(pe);
  }
  mdb_env_close(q->meta);
  q7__notify_close(&q->notify);
  q7__codecs_free(q);
  q7_conf_destroy(q->conf);
  free(q->dir);
  pthread_mutex_destroy(&q->lock);
  pthread_mutex_destroy(&q->sweep_mu);
  pthread_cond_destroy(&q->sweep_cv);
  free(q);
  return Q7_OK;
}

/* DIR/reserve: space set aside on the filesystem for the day it is full.
 * Freeing records needs a few pages too; a sweep that finds the disk full
 * deletes the reserve and tries again, and the reserve is made again once
 * there is room. */
#define RESERVE_BYTES (4 * 1024 * 1024)

void
q7__store_reserve_make(q7 *q)
{
  char path[4200];
  struct stat st;
  snprintf(path, sizeof path, "%s/reserve", q->dir);
  if (stat(path, &st) == 0 && st.st_size >= RESERVE_BYTES)
    return;
  int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return;
  if (posix_fallocate(fd, 0, RESERVE_BYTES) != 0) {
    close(fd);
    unlink(path); /* no room for it now; the next sweep tries again */
    return;
  }
  close(fd);
}

bool
q7__store_reserve_free(q7 *q)
{
  char path[4200];
  snprintf(path, sizeof path, "%s/reserve", q->dir);
  return unlink(path) == 0;
}

int
q7__open_mirror(q7 **out, const char *dir, const q7_conf *conf)
{
  return q7_open(out, dir, conf);
}

const char *
q7_store_path(const q7 *q)
{
  return q ? q->dir : NULL;
}
