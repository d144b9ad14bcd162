/* test_hostile.c - damaged, foreign and hostile files around a store, and
 * names that try to leave it.  (Garbage and truncated data and metadata
 * files, a store directory that is a file, and flipped bytes read with
 * q7_partition_read are in test_store.c; this file adds what is missing.)
 *
 *   - lock files left by dead processes: a writer killed inside a write
 *     transaction of a partition or of the metadata, readers killed while
 *     holding records, garbage or empty lock files, a lock file that is a
 *     directory;
 *   - a store directory (or its topics/ or meta/) that is a symlink loop;
 *   - a topic directory deleted under a running store;
 *   - a flipped byte found by a consumer's poll: Q7_ECORRUPT naming the
 *     offset, the corrupt record never handed out, the records around it
 *     still delivered;
 *   - a compressed batch whose header claims a huge length;
 *   - a consumer committing after processing while another process grows
 *     the partition's map;
 *   - topic and group names that try to address paths outside the store,
 *     and the modes of everything a workload creates (0600 / 0700).
 *
 * Every case that could crash the library runs in a forked child, so a
 * crash or a hang (each child is bounded in time) fails the test with a
 * message instead of killing the runner.  The parent never opens a store
 * it will fork after. */
#include "helpers.h"
#include "files.h"
#include "proc.h"
#include "kids.h"
#include "q7_int.h"

#include <dirent.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

/* ------------------------------------------------------------ fixture */

/* What children report: a verdict, codes and the first error text. */
typedef struct shared {
  char msg[1024];
  int line;
  int rc[16];
  char err[16][256];
  int64_t n[8];
} shared;

static shared *sh;

static void
setup(void)
{
  dir = tmpdir_new();
  kids_reset();
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(sh, MAP_FAILED);
  memset(sh, 0, sizeof *sh);
}

static void
teardown(void)
{
  kids_kill_all();
  munmap(sh, sizeof *sh);
  tmpdir_rm(dir);
  dir = NULL;
}

TestSuite(hostile, .init = setup, .fini = teardown, .timeout = 120);

/* Keep the result and message of call @i. */
static int
note(int i, int rc)
{
  sh->rc[i] = rc;
  snprintf(sh->err[i], sizeof sh->err[i], "%s", rc ? q7_last_error() : "");
  return rc;
}

/* Run @fn in a child; it must exit 0 within @ms. */
static void
run_ok(int (*fn)(void *), void *arg, int ms, const char *what)
{
  sh->msg[0] = 0;
  sh->line = 0;
  int st = reap(spawn(fn, arg), ms);
  cr_assert_neq(st, -1, "%s: hung (killed after %d ms); %s", what, ms, sh->msg);
  cr_assert_lt(st, 128, "%s: the library crashed with signal %d (%s)", what, st - 128,
               strsignal(st - 128));
  cr_assert_eq(st, 0, "%s: line %d: %s", what, sh->line, sh->msg);
}

static bool
read_byte(int fd, int ms)
{
  struct pollfd p = { fd, POLLIN, 0 };
  char c;
  return poll(&p, 1, ms) == 1 && read(fd, &c, 1) == 1;
}

/* ------------------------------------------------- a store to damage */

typedef struct mk {
  const char *topic;
  int32_t parts;
  int n;                          /* records per partition, one batch each */
} mk;

static size_t
val_of(char *buf, size_t len, const char *topic, int32_t p, int64_t off)
{
  return (size_t)snprintf(buf, len, "%s/%d/%" PRId64 "/payload-%08" PRIx64, topic, (int)p, off,
                          (uint64_t)off * 2654435761u);
}

/* Child: create @topic and send_sync @n records to each partition. */
static int
child_make(void *arg)
{
  mk *m = arg;
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)), "open: %s", q7_last_error());
  WCHECK(!(rc = q7_topic_create(q, m->topic, m->parts, NULL)), "create: %s", q7_last_error());
  WCHECK(!(rc = q7_topic_open(q, m->topic, &t)) && !(rc = q7_producer_new(q, NULL, &p)),
         "open: %s", q7_last_error());
  for (int32_t part = 0; part < m->parts; part++) {
    for (int i = 0; i < m->n; i++) {
      char v[128];
      size_t len = val_of(v, sizeof v, m->topic, part, i);
      q7_msg msg = { .topic = t, .partition = part, .value = v, .value_len = len };
      int64_t off;
      WCHECK(!(rc = q7_producer_send_sync(p, &msg, NULL, &off)) && off == i,
             "send %d: %d %s", i, rc, q7_last_error());
    }
  }
  q7_producer_close(p);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "close: %s", q7_last_error());
  return 0;
}

static void
make_store(const char *topic, int32_t parts, int n)
{
  mk m = { topic, parts, n };
  run_ok(child_make, &m, 60000, "making the store");
}

/* In a child: the store opens; partition @part of @topic holds records
 * 0..@n-1 of val_of() (after @extra more of any content), and takes one
 * more record at offset @n + @extra. */
typedef struct chk {
  const char *topic;
  int32_t part;
  int n, extra;
} chk;

static int
check_store(const chk *c)
{
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_producer *pr;
  int rc;
  int64_t ls, hw;
  WCHECK(!(rc = q7_open(&q, dir, NULL)), "q7_open: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_topic_open(q, c->topic, &t)), "topic open: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_topic_partition(t, c->part, &p)), "partition: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_partition_offsets(p, &ls, &hw)), "offsets: %d %s", rc, q7_last_error());
  WCHECK(ls == 0 && hw == c->n + c->extra, "log [%" PRId64 ", %" PRId64 "), want [0, %d)", ls,
         hw, c->n + c->extra);
  q7_record r[64];
  int got = q7_partition_read(p, 0, r, 64);
  WCHECK(got == (c->n + c->extra < 64 ? c->n + c->extra : 64), "read: %d %s", got,
         q7_last_error());
  for (int i = 0; i < got && i < c->n; i++) {
    char v[128];
    size_t len = val_of(v, sizeof v, c->topic, c->part, i);
    WCHECK(r[i].offset == i && r[i].value_len == len && !memcmp(r[i].value, v, len),
           "record %d differs", i);
  }
  q7_partition_read(p, 0, NULL, 0);
  WCHECK(!(rc = q7_producer_new(q, NULL, &pr)), "producer: %s", q7_last_error());
  q7_msg m = { .topic = t, .partition = c->part, .value = "more", .value_len = 4 };
  int64_t off;
  WCHECK(!(rc = q7_producer_send_sync(pr, &m, NULL, &off)), "send: %d %s", rc, q7_last_error());
  WCHECK(off == c->n + c->extra, "new record at %" PRId64 ", want %d", off, c->n + c->extra);
  q7_producer_close(pr);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "close: %d %s", rc, q7_last_error());
  return 0;
}

static int
child_check(void *arg)
{
  return check_store(arg);
}

/* ================================== lock files left by dead processes */

/* Child: open the LMDB environment at DIR/@rel itself, begin a write
 * transaction (taking the environment's writer lock), dirty a page, say so
 * on @fd, and wait to be killed. */
typedef struct holder {
  const char *rel;
  const char *db;                 /* a named table to write into */
  int fd;
  bool write;                     /* else a read transaction */
} holder;

static int
child_hold(void *arg)
{
  holder *h = arg;
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  int rc;
  WCHECK(!(rc = mdb_env_create(&env)), "env create");
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_maxreaders(env, 1022);
  mdb_env_set_mapsize(env, 1024UL * 1024 * 1024);
  WCHECK(!(rc = mdb_env_open(env, path_of(h->rel), MDB_NOTLS, 0600)), "env open %s: %s", h->rel,
         mdb_strerror(rc));
  WCHECK(!(rc = mdb_txn_begin(env, NULL, h->write ? 0 : MDB_RDONLY, &txn)), "txn: %s",
         mdb_strerror(rc));
  WCHECK(!(rc = mdb_dbi_open(txn, h->db, 0, &dbi)), "dbi %s: %s", h->db, mdb_strerror(rc));
  if (h->write) {
    MDB_val k = { 9, (void *)"zz-hostile" }, v = { 3, (void *)"xyz" };
    WCHECK(!(rc = mdb_put(txn, dbi, &k, &v, 0)), "put: %s", mdb_strerror(rc));
  }
  char c = 'h';
  WCHECK(write(h->fd, &c, 1) == 1, "write");
  for (;;)
    pause();
}

/* Start a holder of @rel and kill it once it holds its transaction. */
static void
hold_and_kill(const char *rel, const char *db, bool write)
{
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  holder h = { rel, db, fds[1], write };
  int k = spawn(child_hold, &h);
  close(fds[1]);
  bool held = read_byte(fds[0], 30000);
  close(fds[0]);
  kill(kids[k], SIGKILL);
  int st = reap(k, 30000);
  cr_assert(held, "the holder of %s never got its transaction: %s", rel, sh->msg);
  cr_assert_eq(st, 128 + SIGKILL, "holder ended %d", st);
}

Test(hostile, partition_writer_killed_inside_a_transaction_does_not_block_the_next_writer)
{
  make_store("t", 1, 5);
  hold_and_kill("topics/t/0", "log", true);
  /* The dead writer's lock is recovered; its uncommitted write is gone. */
  chk c = { "t", 0, 5, 0 };
  run_ok(child_check, &c, 30000, "writing after a writer died holding the lock");
}

Test(hostile, meta_writer_killed_inside_a_transaction_does_not_block_open)
{
  make_store("t", 1, 5);
  hold_and_kill("meta", "topics", true);
  chk c = { "t", 0, 5, 0 };
  run_ok(child_check, &c, 30000, "opening after a metadata writer died holding the lock");
}

/* Child: how many reader slots of DIR/@rel belong to pid sh->n[0]. */
static int
count_cb(const char *msg, void *ctx)
{
  int64_t *n = ctx;
  long pid;
  if (sscanf(msg, " %ld", &pid) == 1 && pid == (long)sh->n[0])
    (*n)++;
  return 0;
}

static int
child_count_readers(void *arg)
{
  const char *rel = arg;
  MDB_env *env;
  int rc;
  WCHECK(!(rc = mdb_env_create(&env)), "env create");
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_maxreaders(env, 1022);
  mdb_env_set_mapsize(env, 1024UL * 1024 * 1024);
  WCHECK(!(rc = mdb_env_open(env, path_of(rel), MDB_NOTLS | MDB_RDONLY, 0600)), "open %s: %s",
         rel, mdb_strerror(rc));
  int64_t n = 0;
  mdb_reader_list(env, count_cb, &n);
  sh->n[1] = n;
  mdb_env_close(env);
  return 0;
}

/* Child: a consumer that holds records of partition 0 (a read transaction
 * with a reader slot in the partition's lock file), then waits. */
static int
child_hold_records(void *arg)
{
  int fd = *(int *)arg;
  q7 *q;
  q7_consumer *c;
  q7_record r[4];
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_consumer_new(q, NULL, NULL, &c)) &&
             !(rc = q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING)),
         "consumer: %s", q7_last_error());
  WCHECK(q7_consumer_poll(c, r, 4, 5000) == 4, "poll: %s", q7_last_error());
  char b = 'r';
  WCHECK(write(fd, &b, 1) == 1, "write");
  for (;;)
    pause();
}

/* Child: keeps the store and partition 0 of "t" open (so the lock file is
 * not reset by the next opener) until killed. */
static int
child_keep_open(void *arg)
{
  int fd = *(int *)arg;
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_open(q, "t", &t)) &&
             !(rc = q7_topic_partition(t, 0, &p)),
         "keeper: %s", q7_last_error());
  char b = 'k';
  WCHECK(write(fd, &b, 1) == 1, "write");
  for (;;)
    pause();
}

static int
start_and_wait(int (*fn)(void *), const char *what)
{
  int fds[2];
  cr_assert_eq(pipe(fds), 0);
  int k = spawn(fn, &fds[1]);
  close(fds[1]);
  bool up = read_byte(fds[0], 30000);
  close(fds[0]);
  cr_assert(up, "%s never got ready: %s", what, sh->msg);
  return k;
}

Test(hostile, reader_slots_of_a_killed_consumer_are_cleared_when_the_partition_opens)
{
  make_store("t", 1, 5);
  /* While any process has the environment open, LMDB keeps its reader
   * table: a long-running process keeps the dead consumer's slot alive. */
  int keeper = start_and_wait(child_keep_open, "the keeper");
  int k = start_and_wait(child_hold_records, "the consumer");
  sh->n[0] = kids[k];
  cr_assert_eq(kill_child(k), 128 + SIGKILL);

  /* The dead consumer's slot is in the lock file... */
  run_ok(child_count_readers, (void *)"topics/t/0", 30000, "listing readers");
  cr_assert_geq(sh->n[1], 1, "no reader slot of the killed consumer (pid %" PRId64
                ") to clear: the test holds nothing", sh->n[0]);
  /* ...until a process opens the partition through the library. */
  chk c = { "t", 0, 5, 0 };
  run_ok(child_check, &c, 30000, "using the partition after a reader died");
  run_ok(child_count_readers, (void *)"topics/t/0", 30000, "listing readers");
  cr_assert_eq(sh->n[1], 0, "%" PRId64 " reader slots of the dead consumer (pid %" PRId64
               ") survive q7_open and use of the partition: they pin old pages forever",
               sh->n[1], sh->n[0]);
  cr_assert_eq(kill_child(keeper), 128 + SIGKILL);
}

Test(hostile, garbage_lock_files_are_rebuilt_and_the_store_reads)
{
  make_store("t", 1, 5);
  write_garbage("meta/lock.mdb", 8192, 0x9e3779b9);
  write_garbage("topics/t/0/lock.mdb", 100000, 0x9e3779b9);
  chk c = { "t", 0, 5, 0 };
  run_ok(child_check, &c, 30000, "opening with garbage lock files");
}

Test(hostile, empty_lock_files_are_rebuilt_and_the_store_reads)
{
  make_store("t", 1, 5);
  write_file("meta/lock.mdb", "", 0);
  write_file("topics/t/0/lock.mdb", "", 0);
  chk c = { "t", 0, 5, 0 };
  run_ok(child_check, &c, 30000, "opening with empty lock files");
}

/* Child: q7_open, then topic "t" partition 0; results in rc[0], rc[1]. */
static int
child_try_open(void *arg)
{
  q7 *q = NULL;
  q7_topic *t;
  q7_partition *p;
  const char *d = arg ? arg : dir;
  if (note(0, q7_open(&q, d, NULL)))
    return 0;
  if (!note(1, q7_topic_open(q, "t", &t))) {
    note(1, q7_topic_partition(t, 0, &p));
    q7_topic_close(t);
  }
  q7_close(q);
  return 0;
}

Test(hostile, lock_file_that_is_a_directory_is_a_clear_error)
{
  make_store("t", 1, 5);
  cr_assert_eq(unlink(path_of("topics/t/0/lock.mdb")), 0);
  cr_assert_eq(mkdir(path_of("topics/t/0/lock.mdb"), 0700), 0);
  run_ok(child_try_open, NULL, 30000, "opening a partition whose lock file is a directory");
  cr_assert_eq(sh->rc[0], Q7_OK, "q7_open: %d %s", sh->rc[0], sh->err[0]);
  cr_assert(sh->rc[1] == Q7_EIO || sh->rc[1] == Q7_ECORRUPT,
            "partition with a directory for a lock file: %d (%s), want Q7_EIO or Q7_ECORRUPT",
            sh->rc[1], sh->err[1]);
  cr_assert(strstr(sh->err[1], "topics/t/0"), "message does not name the partition: %s",
            sh->err[1]);
}

/* ======================================================= symlink loops */

/* q7_open of @rel fails at once with a message naming the path. */
static void
open_fails_clearly(const char *rel, const char *what)
{
  char *p = path_of(rel);
  int64_t t0 = mono_ms();
  run_ok(child_try_open, p, 30000, what);
  cr_assert_neq(sh->rc[0], Q7_OK, "%s: q7_open succeeded", what);
  cr_assert(sh->rc[0] < 0 && sh->rc[0] != Q7_EINVAL && sh->rc[0] != Q7_ENOMEM,
            "%s: %d (%s), want an error about the directory", what, sh->rc[0], sh->err[0]);
  cr_assert(strstr(sh->err[0], rel), "%s: message does not name the path: %s", what,
            sh->err[0]);
  cr_assert_lt(mono_ms() - t0, 10000, "%s: took %" PRId64 " ms", what, mono_ms() - t0);
}

Test(hostile, store_directory_that_is_a_symlink_to_itself_is_a_clear_error)
{
  cr_assert_eq(symlink("loop", path_of("loop")), 0);
  open_fails_clearly("loop", "a store directory that links to itself");
  open_fails_clearly("loop/below", "a store below a self-link");
}

Test(hostile, store_directory_in_a_two_link_loop_is_a_clear_error)
{
  cr_assert_eq(symlink("b", path_of("a")), 0);
  cr_assert_eq(symlink("a", path_of("b")), 0);
  open_fails_clearly("a", "a store directory in a two-link loop");
}

Test(hostile, topics_or_meta_that_is_a_symlink_loop_is_a_clear_error)
{
  cr_assert_eq(mkdir(path_of("s1"), 0700), 0);
  cr_assert_eq(symlink("topics", path_of("s1/topics")), 0);
  open_fails_clearly("s1", "topics/ that links to itself");
  cr_assert_eq(mkdir(path_of("s2"), 0700), 0);
  cr_assert_eq(symlink("meta", path_of("s2/meta")), 0);
  open_fails_clearly("s2", "meta/ that links to itself");
}

/* ================================ a topic directory deleted underneath */

/* Child: a running store with producer and consumer on "t"; tells the
 * parent on ready_fd, waits for go_fd (the directory is gone by then),
 * then uses every handle again and closes.  Results: rc[0] send_sync,
 * rc[1] offsets, rc[2] poll, rc[3] read, rc[4] a new topic handle's
 * partition, rc[5] batched send's report, rc[6] q7_close. */
typedef struct run_arg {
  int ready_fd, go_fd;
} run_arg;

static int
child_running(void *arg)
{
  run_arg *a = arg;
  q7 *q;
  q7_topic *t, *t2;
  q7_partition *p, *p2;
  q7_producer *pr;
  q7_consumer *c;
  q7_record r[16];
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_open(q, "t", &t)) &&
             !(rc = q7_topic_partition(t, 0, &p)) && !(rc = q7_producer_new(q, NULL, &pr)) &&
             !(rc = q7_consumer_new(q, NULL, NULL, &c)) &&
             !(rc = q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING)),
         "setup: %d %s", rc, q7_last_error());
  WCHECK(q7_consumer_poll(c, r, 16, 5000) == 5, "first poll: %s", q7_last_error());
  char b = 'r';
  WCHECK(write(a->ready_fd, &b, 1) == 1, "write");
  WCHECK(read_byte(a->go_fd, 30000), "no go");

  q7_msg m = { .topic = t, .partition = 0, .value = "after", .value_len = 5 };
  int64_t off = -1;
  note(0, q7_producer_send_sync(pr, &m, NULL, &off));
  sh->n[0] = off;
  int64_t hw = -1;
  note(1, q7_partition_offsets(p, NULL, &hw));
  sh->n[1] = hw;
  rc = q7_consumer_poll(c, r, 16, 200);
  note(2, rc < 0 ? rc : Q7_OK);
  sh->n[2] = rc;
  rc = q7_partition_read(p, 0, r, 16);
  note(3, rc < 0 ? rc : Q7_OK);
  sh->n[3] = rc;
  q7_partition_read(p, 0, NULL, 0);
  if (!note(4, q7_topic_open(q, "t", &t2))) {
    note(4, q7_topic_partition(t2, 0, &p2));
    q7_topic_close(t2);
  }
  q7_consumer_close(c);
  q7_producer_close(pr);
  q7_topic_close(t);
  note(6, q7_close(q));
  return 0;
}

/* Run the store, delete DIR/topics/t under it, let it go on. */
static void
delete_under_running_store(void)
{
  make_store("t", 1, 5);
  make_store("u", 1, 3);
  int ready[2], go[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(go), 0);
  run_arg a = { ready[1], go[0] };
  int k = spawn(child_running, &a);
  close(ready[1]);
  close(go[0]);
  bool up = read_byte(ready[0], 30000);
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", path_of("topics/t"));
  int removed = up ? system(cmd) : -1;
  char b = 'g';
  cr_assert_eq(write(go[1], &b, 1), 1);
  close(go[1]);
  int st = reap(k, 60000);
  close(ready[0]);
  cr_assert(up, "the running store never got ready: %s", sh->msg);
  cr_assert_eq(removed, 0, "rm -rf topics/t failed");
  cr_assert_neq(st, -1, "the running store hung after its topic directory was deleted");
  cr_assert_lt(st, 128, "the running store crashed with signal %d (%s) after its topic "
               "directory was deleted", st - 128, strsignal(st - 128));
  cr_assert_eq(st, 0, "line %d: %s", sh->line, sh->msg);
  fprintf(stderr, "test_hostile: after rm -rf topics/t under a running store: send_sync %d "
          "(offset %" PRId64 ") \"%s\"; offsets %d (hw %" PRId64 "); poll %d (%" PRId64 " records);"
          " read %d (%" PRId64 "); reopen handle %d \"%s\"; close %d\n",
          sh->rc[0], sh->n[0], sh->err[0], sh->rc[1], sh->n[1], sh->rc[2], sh->n[2], sh->rc[3],
          sh->n[3], sh->rc[4], sh->err[4], sh->rc[6]);
  for (int i = 0; i < 7; i++)
    cr_assert(sh->rc[i] <= 0 && sh->rc[i] >= Q7_ESTATE && (sh->rc[i] == 0 || sh->err[i][0]),
              "call %d: %d without a clear message (%s)", i, sh->rc[i], sh->err[i]);
  cr_assert_eq(sh->rc[6], Q7_OK, "q7_close: %s", sh->err[6]);
}

/* Child: a new process finds the topic's partition missing (a clear
 * error), can delete the broken topic, create it again and use it; the
 * other topic is untouched. */
static int
child_after_delete(void *arg)
{
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_producer *pr;
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)), "q7_open after the topic directory went: %d %s", rc,
         q7_last_error());
  WCHECK(!(rc = q7_topic_open(q, "t", &t)), "topic open: %d %s", rc, q7_last_error());
  rc = q7_topic_partition(t, 0, &p);
  WCHECK(rc == Q7_ENOENT, "partition of the deleted directory: %d (%s), want Q7_ENOENT", rc,
         q7_last_error());
  WCHECK(strstr(q7_last_error(), "topics/t/0"), "message does not name the path: %s",
         q7_last_error());
  WCHECK(!(rc = q7_producer_new(q, NULL, &pr)), "producer: %s", q7_last_error());
  q7_msg m = { .topic = t, .partition = 0, .value = "x", .value_len = 1 };
  rc = q7_producer_send_sync(pr, &m, NULL, NULL);
  WCHECK(rc == Q7_ENOENT, "send to the deleted directory: %d (%s), want Q7_ENOENT", rc,
         q7_last_error());
  q7_topic_close(t);
  WCHECK(!(rc = q7_topic_delete(q, "t")), "deleting the broken topic: %d %s", rc,
         q7_last_error());
  WCHECK(!(rc = q7_topic_create(q, "t", 1, NULL)), "re-creating it: %d %s", rc, q7_last_error());
  WCHECK(!(rc = q7_topic_open(q, "t", &t)), "open: %s", q7_last_error());
  int64_t off = -1;
  m.topic = t;
  WCHECK(!(rc = q7_producer_send_sync(pr, &m, NULL, &off)) && off == 0,
         "send to the re-created topic: %d offset %" PRId64 " %s", rc, off, q7_last_error());
  q7_producer_close(pr);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "close: %s", q7_last_error());
  return 0;
}

Test(hostile, topic_directory_deleted_under_a_running_store_gives_clear_errors_and_recovers)
{
  delete_under_running_store();
  run_ok(child_after_delete, NULL, 30000, "a new process after the topic directory went");
  chk c = { "u", 0, 3, 0 };
  run_ok(child_check, &c, 30000, "the other topic");
}

Test(hostile, topic_directory_deleted_under_a_running_store_is_not_acknowledged_into)
{
  /* LMDB goes on writing to the unlinked files: a record acknowledged
   * there is lost at close, and no other process ever sees it. */
  delete_under_running_store();
  cr_assert_neq(sh->rc[0], Q7_OK,
                "send_sync acknowledged offset %" PRId64 " into a partition whose directory "
                "had been deleted: the record is lost when the store closes",
                sh->n[0]);
}

/* ===================================== flipped bytes seen by a consumer */

/* Flip one byte at @at of the batch holding offset @nth (one record per
 * batch) of partition DIR/@rel.  The parent does this in a child. */
typedef struct flip {
  const char *rel;
  int nth;
  size_t at;
} flip;

static int
child_flip(void *arg)
{
  flip *f = arg;
  MDB_env *env = raw_env(f->rel);
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  WCHECK(!mdb_txn_begin(env, NULL, 0, &txn) && !mdb_dbi_open(txn, "log", 0, &dbi) &&
             !mdb_cursor_open(txn, dbi, &cur) && !mdb_cursor_get(cur, &k, &v, MDB_FIRST),
         "raw open");
  for (int i = 0; i < f->nth; i++)
    WCHECK(!mdb_cursor_get(cur, &k, &v, MDB_NEXT), "batch %d missing", i + 1);
  WCHECK(f->at < v.mv_size, "flip past the batch");
  unsigned char *copy = malloc(v.mv_size);
  memcpy(copy, v.mv_data, v.mv_size);
  copy[f->at] ^= 0x20;
  MDB_val nv = { v.mv_size, copy };
  WCHECK(!mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), "put");
  mdb_cursor_close(cur);
  WCHECK(!mdb_txn_commit(txn), "commit");
  mdb_env_close(env);
  free(copy);
  return 0;
}

/* Child: a consumer reads partition 0 from the beginning with polls of
 * up to 16: records it got go in n[] (offsets), errors in rc[]/err[]. */
static int
child_poll_corrupt(void *arg)
{
  int mode = *(int *)arg; /* 0: assign; 1: subscribe in a group; 2: assign, fetch.ahead */
  q7 *q;
  q7_consumer *c;
  q7_conf *cf = q7_conf_new();
  int rc;
  WCHECK(cf && !q7_conf_set(cf, "auto.offset.reset", "earliest") &&
             !q7_conf_set(cf, "enable.auto.commit", "false") &&
             !q7_conf_set(cf, "fetch.ahead.bytes", mode == 2 ? "1048576" : "0"),
         "conf");
  WCHECK(!(rc = q7_open(&q, dir, NULL)) &&
             !(rc = q7_consumer_new(q, mode == 1 ? "g" : NULL, cf, &c)),
         "consumer: %s", q7_last_error());
  if (mode == 1)
    WCHECK(!(rc = q7_consumer_subscribe(c, "t")), "subscribe: %s", q7_last_error());
  else
    WCHECK(!(rc = q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING)), "assign: %s",
           q7_last_error());
  /* Poll until the error: what came before it, and the error itself. */
  int64_t got = 0;
  for (int i = 0; i < 20; i++) {
    q7_record r[16];
    rc = q7_consumer_poll(c, r, 16, 200);
    if (rc < 0) {
      note(0, rc);
      break;
    }
    for (int j = 0; j < rc && got < 6; j++)
      sh->n[got++] = r[j].offset;
    if (rc == 0 && got > 0)
      break;
  }
  sh->n[7] = got;
  /* The position stays at the corrupt record; a second poll says the same. */
  int64_t pos = -1;
  q7_consumer_position(c, "t", 0, &pos);
  sh->rc[1] = (int)pos;
  q7_record r[16];
  rc = q7_consumer_poll(c, r, 16, 0);
  note(2, rc < 0 ? rc : Q7_OK);
  /* Seeking past it, the rest reads. */
  note(3, q7_consumer_seek(c, "t", 0, 2));
  rc = q7_consumer_poll(c, r, 16, 1000);
  sh->rc[4] = rc;
  sh->rc[5] = rc > 0 ? (int)r[0].offset : -1;
  q7_consumer_close(c);
  q7_close(q);
  q7_conf_destroy(cf);
  return 0;
}

static void
corrupt_batch_one(void)
{
  make_store("t", 1, 4); /* four batches: offsets 0, 1, 2, 3 */
  flip f = { "topics/t/0", 1, Q7__BATCH_HDR + 3 }; /* in its record */
  run_ok(child_flip, &f, 30000, "flipping a byte");
}

static void
assert_poll_reports_offset_1(int mode)
{
  run_ok(child_poll_corrupt, &mode, 60000, "polling a corrupt batch");
  cr_assert_eq(sh->rc[0], Q7_ECORRUPT, "poll over a corrupt batch: %d (%s), want Q7_ECORRUPT",
               sh->rc[0], sh->err[0]);
  cr_assert(strstr(sh->err[0], "offset 1"), "the error does not name offset 1: %s", sh->err[0]);
  cr_assert(strstr(sh->err[0], "t"), "the error does not name the topic: %s", sh->err[0]);
  for (int64_t i = 0; i < sh->n[7]; i++)
    cr_assert_lt(sh->n[i], 1, "poll handed out offset %" PRId64 " before the error: the corrupt"
                 " record or one past it", sh->n[i]);
  cr_assert_eq(sh->rc[2], Q7_ECORRUPT, "a second poll: %d (%s), want the same error", sh->rc[2],
               sh->err[2]);
  cr_assert_eq(sh->rc[3], Q7_OK, "seek past the corrupt record: %s", sh->err[3]);
  cr_assert_eq(sh->rc[4], 2, "after seeking to 2: poll %d", sh->rc[4]);
  cr_assert_eq(sh->rc[5], 2, "after seeking to 2: first offset %d", sh->rc[5]);
}

Test(hostile, poll_over_a_flipped_byte_is_ecorrupt_naming_the_offset)
{
  corrupt_batch_one();
  assert_poll_reports_offset_1(0);
}

Test(hostile, poll_of_a_group_member_over_a_flipped_byte_is_ecorrupt_naming_the_offset)
{
  corrupt_batch_one();
  assert_poll_reports_offset_1(1);
}

Test(hostile, poll_with_fetch_ahead_over_a_flipped_byte_is_ecorrupt_naming_the_offset)
{
  /* The helper maps the corrupt batch first; poll still checks it. */
  corrupt_batch_one();
  assert_poll_reports_offset_1(2);
}

Test(hostile, poll_delivers_the_intact_records_before_a_corrupt_batch)
{
  /* Kafka hands out the records before a corrupt one and raises on the
   * next poll; here offset 0 is intact and must not become unreachable
   * (seeking past offset 1, as the error invites, would skip it). */
  corrupt_batch_one();
  int mode = 0;
  run_ok(child_poll_corrupt, &mode, 60000, "polling a corrupt batch");
  cr_assert_eq(sh->n[7], 1, "poll delivered %" PRId64 " records before the error (%d: %s); "
               "want offset 0", sh->n[7], sh->rc[0], sh->err[0]);
  cr_assert_eq(sh->n[0], 0);
  cr_assert_eq(sh->rc[0], Q7_ECORRUPT, "then: %d (%s)", sh->rc[0], sh->err[0]);
  cr_assert_eq(sh->rc[1], 1, "position after the error: %d, want 1 (at the corrupt record)",
               sh->rc[1]);
}

/* ====================================== names that try to leave the store */

/* Names a hostile caller might try for a topic; all must be refused. */
static const char *const bad_topics[] = {
  "..", ".", "../escape", "../../escape", "/tmp/escape", "a/b", "a/../../escape", "..\\escape",
  "x\ny", "con:", "~", "$HOME", "a b", "", "t\x7f",
};

/* Group names are keys, never paths: these are all valid groups. */
static const char *const odd_groups[] = {
  "../escape", "../../../../../../tmp/escape", "/abs/path", "a/b/c", "..", ".", "g\n1",
  "\xc3\xa9t\xc3\xa9",
};

/* Child: try every bad topic name in every call that takes one, and use
 * every odd group name for commits and lag; counts in n[0], n[1]. */
static int
child_names(void *arg)
{
  q7 *q;
  q7_topic *t;
  q7_consumer *c;
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_create(q, "t", 1, NULL)),
         "open: %s", q7_last_error());
  for (size_t i = 0; i < sizeof bad_topics / sizeof *bad_topics; i++) {
    const char *n = bad_topics[i];
    WCHECK(q7_topic_create(q, n, 1, NULL) == Q7_EINVAL, "create \"%s\" accepted", n);
    WCHECK(q7_topic_open(q, n, &t) == Q7_EINVAL, "open \"%s\" accepted", n);
    WCHECK(q7_topic_delete(q, n) == Q7_EINVAL, "delete \"%s\" accepted", n);
    WCHECK(q7_topic_set(q, n, "retention.ms", "1") == Q7_EINVAL, "set \"%s\" accepted", n);
    int64_t x;
    WCHECK(q7_committed(q, "g", n, 0, &x) == Q7_EINVAL, "committed \"%s\" accepted", n);
    WCHECK(!q7_consumer_new(q, "g", NULL, &c), "consumer");
    WCHECK(q7_consumer_assign(c, n, 0, 0) == Q7_EINVAL, "assign \"%s\" accepted", n);
    WCHECK(q7_consumer_subscribe(c, n) == Q7_EINVAL, "subscribe \"%s\" accepted", n);
    WCHECK(q7_consumer_commit_offset(c, n, 0, 0) == Q7_EINVAL, "commit \"%s\" accepted", n);
    q7_consumer_close(c);
    sh->n[0]++;
  }
  for (size_t i = 0; i < sizeof odd_groups / sizeof *odd_groups; i++) {
    const char *g = odd_groups[i];
    WCHECK(!(rc = q7_consumer_new(q, g, NULL, &c)), "group \"%s\": %s", g, q7_last_error());
    WCHECK(!(rc = q7_consumer_commit_offset(c, "t", 0, 0)), "commit in \"%s\": %s", g,
           q7_last_error());
    q7_consumer_close(c);
    int64_t next = -1;
    WCHECK(!(rc = q7_committed(q, g, "t", 0, &next)) && next == 0, "committed of \"%s\"", g);
    sh->n[1]++;
  }
  WCHECK(!(rc = q7_close(q)), "close");
  return 0;
}

/* Every entry under @path, recursively, as "rel mode" lines into @out. */
static void
walk(const char *root, const char *rel, char *out, size_t cap, size_t *len, int depth)
{
  char path[6500];
  snprintf(path, sizeof path, "%s%s%s", root, *rel ? "/" : "", rel);
  DIR *d = opendir(path);
  if (!d || depth > 8) {
    if (d)
      closedir(d);
    return;
  }
  struct dirent *e;
  while ((e = readdir(d))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
      continue;
    char sub[2000], full[4400];
    snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
    snprintf(full, sizeof full, "%s/%s", root, sub);
    struct stat st;
    if (lstat(full, &st) < 0)
      continue;
    *len += (size_t)snprintf(out + *len, *len < cap ? cap - *len : 0, "%s %c%04o\n", sub,
                             S_ISDIR(st.st_mode) ? 'd' : S_ISREG(st.st_mode) ? 'f' : 'o',
                             (unsigned)(st.st_mode & 07777));
    if (S_ISDIR(st.st_mode))
      walk(root, sub, out, cap, len, depth + 1);
  }
  closedir(d);
}

Test(hostile, hostile_names_never_reach_outside_the_store)
{
  /* The store is DIR/a/b/store, so "../" from it lands in DIR/a/b, DIR/a
   * and DIR: all watched. */
  cr_assert_eq(mkdir(path_of("a"), 0700), 0);
  cr_assert_eq(mkdir(path_of("a/b"), 0700), 0);
  char *keep = dir;
  char store[4300];
  snprintf(store, sizeof store, "%s/a/b/store", keep);
  dir = store;
  sh->msg[0] = 0;
  int st = reap(spawn(child_names, NULL), 60000);
  dir = keep;
  cr_assert_eq(st, 0, "line %d: %s (status %d)", sh->line, sh->msg, st);
  cr_assert_eq(sh->n[0], (int64_t)(sizeof bad_topics / sizeof *bad_topics));
  cr_assert_eq(sh->n[1], (int64_t)(sizeof odd_groups / sizeof *odd_groups));
  /* Outside the store: only the directories the test made. */
  static char out[65536];
  size_t len = 0;
  walk(dir, "", out, sizeof out, &len, 0);
  char *line = strtok(out, "\n");
  int inside = 0;
  for (; line; line = strtok(NULL, "\n")) {
    if (!strncmp(line, "a/b/store/", 10)) {
      inside++;
      cr_assert(strncmp(line, "a/b/store/topics/", 17) != 0 ||
                    !strncmp(line, "a/b/store/topics/t", 18),
                "a topic directory that is not topic t: %s", line);
      continue;
    }
    cr_assert(!strncmp(line, "a ", 2) || !strncmp(line, "a/b ", 4) ||
                  !strncmp(line, "a/b/store ", 10),
              "a name reached outside the store: %s", line);
  }
  cr_assert_gt(inside, 4, "the store's own files are missing from the walk");
}

/* Child: a workload touching every kind of file, under umask 0. */
static int
child_workload(void *arg)
{
  umask(0);
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  q7_consumer *c;
  q7_conf *tc = q7_conf_new();
  int rc;
  WCHECK(tc && !q7_conf_set(tc, "retention.bytes", "100"), "conf");
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_create(q, "t", 2, tc)) &&
             !(rc = q7_topic_create(q, "gone", 1, NULL)) && !(rc = q7_topic_open(q, "t", &t)) &&
             !(rc = q7_producer_new(q, NULL, &p)),
         "setup: %s", q7_last_error());
  for (int i = 0; i < 50; i++) {
    q7_msg m = { .topic = t, .partition = i % 2, .value = "0123456789", .value_len = 10 };
    WCHECK(!(rc = q7_producer_send_sync(p, &m, NULL, NULL)), "send: %s", q7_last_error());
  }
  WCHECK(!(rc = q7_consumer_new(q, "grp", NULL, &c)) &&
             !(rc = q7_consumer_subscribe(c, "t")),
         "consumer: %s", q7_last_error());
  q7_record r[64];
  WCHECK(q7_consumer_poll(c, r, 64, 2000) >= 0, "poll: %s", q7_last_error());
  WCHECK(!(rc = q7_consumer_commit(c)), "commit: %s", q7_last_error());
  q7_consumer_close(c);
  WCHECK(!(rc = q7_retention_sweep(q, 0, NULL)), "sweep: %s", q7_last_error());
  WCHECK(!(rc = q7_topic_delete(q, "gone")), "delete: %s", q7_last_error());
  q7_producer_close(p);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "close: %s", q7_last_error());
  q7_conf_destroy(tc);
  return 0;
}

Test(hostile, every_file_a_workload_creates_is_0600_and_every_directory_0700_under_umask_0)
{
  char *keep = dir;
  char store[4300];
  snprintf(store, sizeof store, "%s/s", keep);
  dir = store;
  sh->msg[0] = 0;
  int st = reap(spawn(child_workload, NULL), 60000);
  dir = keep;
  cr_assert_eq(st, 0, "line %d: %s (status %d)", sh->line, sh->msg, st);
  static char out[65536];
  size_t len = 0;
  walk(store, "", out, sizeof out, &len, 0);
  int files = 0, dirs = 0;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char *sp = strrchr(line, ' ');
    cr_assert_not_null(sp);
    if (sp[1] == 'd') {
      dirs++;
      cr_assert_str_eq(sp + 1, "d0700", "directory %s", line);
    } else {
      files++;
      cr_assert_str_eq(sp + 1, "f0600", "file %s", line);
    }
  }
  cr_assert_geq(files, 7, "only %d files", files);
  cr_assert_geq(dirs, 4, "only %d directories", dirs);
  struct stat sst;
  cr_assert_eq(stat(store, &sst), 0);
  cr_assert_eq(sst.st_mode & 07777, 0700, "the store directory has mode %o",
               (unsigned)(sst.st_mode & 07777));
}

/* ========================= another process grows the map under a consumer */

/* Child: a consumer polls records of partition 0 and keeps them (as one
 * does while processing), waits for @go, then commits after processing
 * and polls on.  rc[0] commit, rc[1] commit_offset, rc[2] the next poll. */
typedef struct grow_arg {
  int ready_fd, go_fd;
} grow_arg;

static int
child_commit_after_growth(void *arg)
{
  grow_arg *a = arg;
  q7 *q;
  q7_consumer *c;
  q7_conf *cf = q7_conf_new();
  q7_record r[4];
  int rc;
  WCHECK(cf && !q7_conf_set(cf, "enable.auto.commit", "false"), "conf");
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_consumer_new(q, "g", cf, &c)) &&
             !(rc = q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING)),
         "consumer: %s", q7_last_error());
  WCHECK(q7_consumer_poll(c, r, 4, 5000) == 4, "poll: %s", q7_last_error());
  char b = 'r';
  WCHECK(write(a->ready_fd, &b, 1) == 1, "write");
  WCHECK(read_byte(a->go_fd, 60000), "no go");
  /* The records of the poll are still held: processed, now committed. */
  int64_t t0 = mono_ms();
  note(0, q7_consumer_commit(c));
  note(1, q7_consumer_commit_offset(c, "t", 0, 4));
  sh->n[0] = mono_ms() - t0;
  rc = q7_consumer_poll(c, r, 4, 1000);
  note(2, rc < 0 ? rc : Q7_OK);
  q7_consumer_close(c);
  q7_close(q);
  q7_conf_destroy(cf);
  return 0;
}

/* Child: write 70 MiB to partition 0 of "t", past its 64 MiB first map. */
static int
child_grow(void *arg)
{
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  q7_conf *sc = q7_conf_new();
  int rc;
  enum { LEN = 512 * 1024 };
  WCHECK(sc && !q7_conf_set(sc, "sync", "false"), "conf");
  WCHECK(!(rc = q7_open(&q, dir, sc)) && !(rc = q7_topic_open(q, "t", &t)) &&
             !(rc = q7_producer_new(q, NULL, &p)),
         "grower: %s", q7_last_error());
  char *v = calloc(1, LEN);
  for (int i = 0; i < 140; i++) {
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = LEN };
    WCHECK(!(rc = q7_producer_send_sync(p, &m, NULL, NULL)), "grow %d: %d %s", i, rc,
           q7_last_error());
  }
  free(v);
  q7_producer_close(p);
  q7_topic_close(t);
  WCHECK(!(rc = q7_close(q)), "close");
  q7_conf_destroy(sc);
  return 0;
}

Test(hostile, commit_after_processing_works_when_another_process_grew_the_map, .timeout = 180)
{
  make_store("t", 1, 5);
  int ready[2], go[2];
  cr_assert_eq(pipe(ready), 0);
  cr_assert_eq(pipe(go), 0);
  grow_arg a = { ready[1], go[0] };
  int k = spawn(child_commit_after_growth, &a);
  close(ready[1]);
  close(go[0]);
  bool up = read_byte(ready[0], 30000);
  close(ready[0]);
  if (up)
    run_ok(child_grow, NULL, 120000, "growing the partition from another process");
  char b = 'g';
  cr_assert_eq(write(go[1], &b, 1), 1);
  close(go[1]);
  int st = reap(k, 60000);
  cr_assert(up, "the consumer never got ready: %s", sh->msg);
  cr_assert_eq(st, 0, "consumer: status %d, line %d: %s", st, sh->line, sh->msg);
  cr_assert_eq(sh->rc[0], Q7_OK, "q7_consumer_commit while holding the polled records, after "
               "another process grew the partition's map: %d (%s) after %" PRId64 " ms",
               sh->rc[0], sh->err[0], sh->n[0]);
  cr_assert_eq(sh->rc[1], Q7_OK, "q7_consumer_commit_offset: %d (%s)", sh->rc[1], sh->err[1]);
  cr_assert_eq(sh->rc[2], Q7_OK, "the next poll: %d (%s)", sh->rc[2], sh->err[2]);
}

/* ============================ a compressed batch with a hostile length */

/* Child: topic "z" compressed with lz4, records 0..3 one batch each. */
static int
child_make_lz4(void *arg)
{
  q7 *q;
  q7_topic *t;
  q7_producer *p;
  q7_conf *tc = q7_conf_new();
  int rc;
  WCHECK(tc && !q7_conf_set(tc, "compression.type", "lz4"), "conf: %s", q7_last_error());
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_create(q, "z", 1, tc)) &&
             !(rc = q7_topic_open(q, "z", &t)) && !(rc = q7_producer_new(q, NULL, &p)),
         "setup: %d %s", rc, q7_last_error());
  char v[2000];
  memset(v, 'z', sizeof v);
  for (int i = 0; i < 4; i++) {
    q7_msg m = { .topic = t, .partition = 0, .value = v, .value_len = sizeof v };
    WCHECK(!(rc = q7_producer_send_sync(p, &m, NULL, NULL)), "send: %s", q7_last_error());
  }
  q7_producer_close(p);
  q7_topic_close(t);
  q7_conf_destroy(tc);
  WCHECK(!(rc = q7_close(q)), "close");
  return 0;
}

/* Child: batch 1 of topics/z/0 claims 0xF0000000 bytes of records, its CRC
 * made right again (a hostile file, or a flip the CRC cannot see in the
 * paths that do not check it). */
static int
child_claim_huge(void *arg)
{
  MDB_env *env = raw_env("topics/z/0");
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  WCHECK(!mdb_txn_begin(env, NULL, 0, &txn) && !mdb_dbi_open(txn, "log", 0, &dbi) &&
             !mdb_cursor_open(txn, dbi, &cur) && !mdb_cursor_get(cur, &k, &v, MDB_FIRST) &&
             !mdb_cursor_get(cur, &k, &v, MDB_NEXT),
         "raw open");
  unsigned char *b = malloc(v.mv_size);
  memcpy(b, v.mv_data, v.mv_size);
  WCHECK(v.mv_size > Q7__BATCH_HDR + 4 && (b[6] & 7) != 0, "batch 1 is not compressed (%zu "
         "bytes, attributes %d)", v.mv_size, b[6]);
  uint32_t huge = 0xF0000000u, crc;
  memcpy(b + Q7__BATCH_HDR, &huge, 4);
  crc = q7__crc32c(0, b + 4, v.mv_size - 4);
  memcpy(b, &crc, 4);
  MDB_val nv = { v.mv_size, b };
  WCHECK(!mdb_cursor_put(cur, &k, &nv, MDB_CURRENT) && !mdb_txn_commit(txn), "put");
  mdb_env_close(env);
  free(b);
  return 0;
}

/* Child, with its address space capped at 3 GiB (not under ASan, whose
 * shadow needs far more): reading and looking up by time around the batch
 * must say Q7_ECORRUPT, not try to allocate what the header claims (that
 * would be Q7_ENOMEM here, and 4 GiB of memory elsewhere). */
static int
child_read_huge(void *arg)
{
#if !defined(__SANITIZE_ADDRESS__)
  struct rlimit rl = { 3UL << 30, 3UL << 30 };
  setrlimit(RLIMIT_AS, &rl);
#endif
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_record r[8];
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_open(q, "z", &t)) &&
             !(rc = q7_topic_partition(t, 0, &p)),
         "open: %d %s", rc, q7_last_error());
  rc = q7_partition_read(p, 1, r, 8);
  note(0, rc < 0 ? rc : Q7_OK);
  sh->n[0] = rc;
  int64_t off;
  note(1, q7_offset_for_time(p, INT64_MAX / 2, &off));
  q7_partition_read(p, 0, NULL, 0);
  q7_topic_close(t);
  q7_close(q);
  return 0;
}

Test(hostile, compressed_batch_claiming_a_huge_length_is_ecorrupt_not_an_allocation)
{
  run_ok(child_make_lz4, NULL, 30000, "making an lz4 topic");
  run_ok(child_claim_huge, NULL, 30000, "editing the batch");
  run_ok(child_read_huge, NULL, 60000, "reading the hostile batch");
  cr_assert_eq(sh->rc[0], Q7_ECORRUPT, "reading a batch that claims 3.75 GiB of records: %d "
               "(%s); want Q7_ECORRUPT without allocating that", sh->rc[0], sh->err[0]);
  cr_assert(strstr(sh->err[0], "offset 1"), "the error does not name offset 1: %s", sh->err[0]);
  cr_assert(sh->rc[1] == Q7_ECORRUPT || sh->rc[1] == Q7_ENOENT,
            "offset_for_time over the batch: %d (%s)", sh->rc[1], sh->err[1]);
}

/* ======================================== a flipped bit in a batch key */

/* Child: the key of the last batch of topics/t/0 (base offset, position,
 * max time; not covered by the value's CRC) gets bit 62 of its base offset
 * flipped. */
static int
child_flip_key(void *arg)
{
  MDB_env *env = raw_env("topics/t/0");
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  WCHECK(!mdb_txn_begin(env, NULL, 0, &txn) && !mdb_dbi_open(txn, "log", 0, &dbi) &&
             !mdb_cursor_open(txn, dbi, &cur) && !mdb_cursor_get(cur, &k, &v, MDB_LAST),
         "raw open");
  WCHECK(k.mv_size == Q7__KEY_LEN, "key of %zu bytes", k.mv_size);
  unsigned char key[Q7__KEY_LEN], *val = malloc(v.mv_size);
  memcpy(key, k.mv_data, sizeof key);
  memcpy(val, v.mv_data, v.mv_size);
  key[0] ^= 0x40;
  MDB_val nk = { sizeof key, key }, nv = { v.mv_size, val };
  WCHECK(!mdb_cursor_del(cur, 0) && !mdb_put(txn, dbi, &nk, &nv, 0) && !mdb_txn_commit(txn),
         "rewrite");
  mdb_env_close(env);
  free(val);
  return 0;
}

/* Child: offsets, a read of everything, and one more record. */
static int
child_after_key_flip(void *arg)
{
  q7 *q;
  q7_topic *t;
  q7_partition *p;
  q7_producer *pr;
  q7_record r[16];
  int rc;
  WCHECK(!(rc = q7_open(&q, dir, NULL)) && !(rc = q7_topic_open(q, "t", &t)) &&
             !(rc = q7_topic_partition(t, 0, &p)) && !(rc = q7_producer_new(q, NULL, &pr)),
         "open: %d %s", rc, q7_last_error());
  int64_t ls = -1, hw = -1;
  note(0, q7_partition_offsets(p, &ls, &hw));
  sh->n[0] = hw;
  rc = q7_partition_read(p, 0, r, 16);
  note(1, rc < 0 ? rc : Q7_OK);
  sh->n[1] = rc;
  q7_partition_read(p, 0, NULL, 0);
  q7_msg m = { .topic = t, .partition = 0, .value = "n", .value_len = 1 };
  int64_t off = -1;
  note(2, q7_producer_send_sync(pr, &m, NULL, &off));
  sh->n[2] = off;
  q7_producer_close(pr);
  q7_topic_close(t);
  q7_close(q);
  return 0;
}

Test(hostile, flipped_bit_in_a_batch_key_is_ecorrupt_not_a_jump_in_offsets)
{
  make_store("t", 1, 4); /* batches at offsets 0, 1, 2, 3 */
  run_ok(child_flip_key, NULL, 30000, "flipping a key bit");
  run_ok(child_after_key_flip, NULL, 30000, "using the partition");
  fprintf(stderr, "test_hostile: after a key bit flip: offsets %d (hw %" PRId64 "), read %d (%"
          PRId64 "), send %d (offset %" PRId64 ")\n", sh->rc[0], sh->n[0], sh->rc[1], sh->n[1],
          sh->rc[2], sh->n[2]);
  /* The reads may notice; but the high watermark must not jump by 2^62
   * unnoticed, and no record may be appended out there. */
  cr_assert(sh->rc[0] == Q7_ECORRUPT || sh->n[0] == 4,
            "a flipped bit in the last batch's key (not covered by any CRC) moved the high "
            "watermark to %" PRId64 " without an error", sh->n[0]);
  cr_assert(sh->rc[2] != Q7_OK || sh->n[2] == 4,
            "after a flipped bit in the last batch's key, a record was appended at offset %"
            PRId64 " (reading from 0 gave %" PRId64 ")",
            sh->n[2], sh->n[1]);
}
