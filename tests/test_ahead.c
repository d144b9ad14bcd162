/* test_ahead.c - fetch.ahead.bytes: a consumer's helper thread maps the log
 * ahead of the position.  It maps what it should and no more, it never
 * changes what poll returns (order, values, seeks, rebalances, unassign,
 * deleted topics), and it stops with the consumer at any moment. */
#include "helpers.h"
#include "fixture.h"
#include "proc.h"
#include "kids.h"

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>

#define MiB (1024 * 1024)
#define VLEN 2000

static q7_consumer *
consumer_make(const char *group, const char *ahead)
{
  q7_conf *c = q7_conf_new();
  q7_consumer *k;
  Q7_OK_OR_FAIL(q7_conf_set(c, "auto.offset.reset", "earliest"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "enable.auto.commit", "false"));
  if (ahead)
    Q7_OK_OR_FAIL(q7_conf_set(c, "fetch.ahead.bytes", ahead));
  Q7_OK_OR_FAIL(q7_consumer_new(q, group, c, &k));
  q7_conf_destroy(c);
  return k;
}

/* @n records of VLEN bytes into @part of @topic, from offset @from: the
 * offset in the first 8 bytes, then a letter of it. */
static void
produce(const char *topic, int32_t part, int64_t from, int64_t n)
{
  q7_topic *t;
  q7_producer *p;
  q7_conf *c = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(c, "batch.size", "262144"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "linger.ms", "600000"));
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, c, &p));
  q7_conf_destroy(c);
  static char v[VLEN];
  for (int64_t i = from; i < from + n; i++) {
    memset(v, 'a' + (int)(i % 26), sizeof v);
    memcpy(v, &i, sizeof i);
    q7_msg m = { .topic = t, .partition = part, .value = v, .value_len = sizeof v };
    Q7_OK_OR_FAIL(q7_producer_send(p, &m));
  }
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
}

static void
check_record(const q7_record *r, int64_t want)
{
  int64_t got;
  cr_assert_eq(r->offset, want, "partition %d: offset %lld, want %lld", (int)r->partition,
               (long long)r->offset, (long long)want);
  cr_assert_eq(r->value_len, VLEN);
  memcpy(&got, r->value, sizeof got);
  cr_assert_eq(got, want, "offset %lld holds record %lld", (long long)want, (long long)got);
  cr_assert_eq(((const char *)r->value)[VLEN - 1], 'a' + (int)(want % 26));
}

/* Poll @c until @n records of each of @parts partitions came, each in
 * order from @from[p]; the next offsets go back into @from. */
static void
read_all(q7_consumer *c, int32_t parts, int64_t *from, int64_t n, size_t max)
{
  q7_record r[512];
  int64_t got = 0, want = n * parts;
  for (int polls = 0; got < want && polls < 200000; polls++) {
    size_t room = (size_t)(want - got) < max ? (size_t)(want - got) : max;
    int k = q7_consumer_poll(c, r, room, 1000);
    cr_assert_geq(k, 0, "poll -> %d (%s)", k, q7_last_error());
    for (int i = 0; i < k; i++)
      check_record(&r[i], from[r[i].partition]++);
    got += k;
  }
  cr_assert_eq(got, want, "read %lld of %lld", (long long)got, (long long)want);
}

/* Bytes of this process's map of @path that are in its page tables. */
static long
mapped_kb(const char *path)
{
  FILE *f = fopen("/proc/self/smaps", "r");
  cr_assert(f, "/proc/self/smaps");
  char line[4096];
  long kb = 0;
  bool in = false;
  while (fgets(line, sizeof line, f)) {
    size_t len = strlen(line);
    if (len && line[len - 1] == '\n')
      line[--len] = 0;
    if (strchr(line, '-') && strchr(line, ' ') && strchr(line, '-') < strchr(line, ' ') &&
        !strncmp(line + strcspn(line, " "), " r", 2)) {
      in = len >= strlen(path) && !strcmp(line + len - strlen(path), path);
      continue;
    }
    long v;
    if (in && sscanf(line, "Rss: %ld kB", &v) == 1)
      kb += v;
  }
  fclose(f);
  return kb;
}

/* Wait (at most 10 s) until @path has @kb mapped; what is mapped then. */
static long
wait_mapped(const char *path, long kb)
{
  long now = mapped_kb(path);
  for (int64_t end = mono_ms() + 10000; now < kb && mono_ms() < end; now = mapped_kb(path))
    sleep_ms(5);
  return now;
}

static char *
data_path(const char *topic, int part)
{
  static char p[4096];
  snprintf(p, sizeof p, "%s/topics/%s/%d/data.mdb", dir, topic, part);
  return p;
}

static void
teardown_kids(void)
{
  kids_kill_all();
  teardown();
}

/* ====================================================================== */

Test(ahead, conf_takes_bytes_and_refuses_the_rest)
{
  q7_conf *c = q7_conf_new();
  char buf[32];
  size_t len = sizeof buf;
  Q7_OK_OR_FAIL(q7_conf_get(c, "fetch.ahead.bytes", buf, &len));
  cr_assert_str_eq(buf, "16777216", "16 MiB unless told");
  Q7_OK_OR_FAIL(q7_conf_set(c, "fetch.ahead.bytes", "0"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "fetch.ahead.bytes", "67108864"));
  Q7_OK_OR_FAIL(q7_conf_set(c, "fetch.ahead.bytes", "1099511627776"));
  const char *bad[] = { "-1", "1099511627777", "lots", "", "1.5" };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(c, "fetch.ahead.bytes", bad[i]));
    cr_assert(strstr(q7_last_error(), "fetch.ahead.bytes"), "%s: %s", bad[i], q7_last_error());
  }
  q7_conf_destroy(c);
}

Test(ahead, maps_the_window_past_the_position_and_no_more, .init = setup, .fini = teardown,
     .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  produce("t", 0, 0, 16000); /* 32 MB */
  const char *path = data_path("t", 0);

  /* Without the helper, a poll of one record maps little. */
  q7_consumer *plain = consumer_make(NULL, "0");
  Q7_OK_OR_FAIL(q7_consumer_assign(plain, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[512];
  cr_assert_eq(q7_consumer_poll(plain, r, 1, 1000), 1);
  check_record(&r[0], 0);
  long base = mapped_kb(path);
  sleep_ms(100);
  cr_assert_lt(mapped_kb(path), 2048, "no helper, yet %ld kB mapped", mapped_kb(path));
  Q7_OK_OR_FAIL(q7_consumer_close(plain));

  /* With an 8 MiB window, the helper maps about 8 MiB past the position. */
  q7_consumer *c = consumer_make(NULL, "8388608");
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  cr_assert_eq(q7_consumer_poll(c, r, 1, 1000), 1);
  check_record(&r[0], 0);
  long kb = wait_mapped(path, base + 7 * 1024);
  cr_assert_geq(kb, base + 7 * 1024, "the helper mapped %ld kB, want about 8 MiB", kb);
  sleep_ms(200);
  kb = mapped_kb(path);
  /* The window, one batch past it and the kernel's fault-around. */
  cr_assert_leq(kb, base + 8 * 1024 + 256 + 64 + 64, "mapped %ld kB: past the window", kb);

  /* It follows the position: read 16 MB, and the window moves with it. */
  int64_t from[1] = { 1 };
  read_all(c, 1, from, 8000 - 1, 512);
  kb = wait_mapped(path, 23 * 1024);
  cr_assert_geq(kb, 23 * 1024, "after reading 16 MB, %ld kB mapped", kb);
  /* ... and to the end, where it stops. */
  read_all(c, 1, from, 8000, 512);
  cr_assert_eq(q7_consumer_poll(c, r, 512, 0), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(ahead, reads_what_a_consumer_without_it_reads, .init = setup, .fini = teardown,
     .timeout = 120)
{
  /* Two partitions, a small window (full and refilled often), polls that
   * start and stop inside batches, and records produced while reading. */
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 2, NULL));
  produce("t", 0, 0, 3000);
  produce("t", 1, 0, 2000);
  const char *windows[] = { "0", NULL, "1", "300000", "4194304" };
  for (size_t w = 0; w < sizeof windows / sizeof *windows; w++) {
    q7_consumer *c = consumer_make(NULL, windows[w]);
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 1, Q7_OFFSET_BEGINNING));
    int64_t from[2] = { 0, 0 };
    read_all(c, 1, from, 1000, 37); /* 1000 records, in all, of either */
    from[0] = from[1] = 0;
    Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, 0));
    Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 1, 0));
    read_all(c, 2, from, 2000, 512);
    produce("t", 1, 2000 + (int64_t)w * 500, 500);
    q7_record r[512];
    int k;
    for (int polls = 0; polls < 10000 && (k = q7_consumer_poll(c, r, 101, 0)) != 0; polls++) {
      cr_assert_gt(k, 0, "poll -> %d (%s)", k, q7_last_error());
      for (int i = 0; i < k; i++)
        check_record(&r[i], from[r[i].partition]++);
    }
    cr_assert_eq(from[0], 3000);
    cr_assert_eq(from[1], 2500 + (int64_t)w * 500);
    /* Back to the start: the helper's progress is void, not trusted. */
    Q7_OK_OR_FAIL(q7_consumer_seek(c, "t", 0, 10));
    from[0] = 10;
    k = q7_consumer_poll(c, r, 512, 1000);
    cr_assert_gt(k, 0, "poll after seek: %d (%s)", k, q7_last_error());
    for (int i = 0; i < k; i++)
      if (r[i].partition == 0)
        check_record(&r[i], from[0]++);
    Q7_OK_OR_FAIL(q7_consumer_close(c));
    from[0] = from[1] = 0;
    c = consumer_make(NULL, windows[w]); /* then the whole log, fresh */
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 1, Q7_OFFSET_BEGINNING));
    int64_t end1 = 2500 + (int64_t)w * 500;
    int64_t total = 0;
    for (int polls = 0; total < 3000 + end1 && polls < 100000; polls++) {
      k = q7_consumer_poll(c, r, 512, 1000);
      cr_assert_geq(k, 0, "poll -> %d (%s)", k, q7_last_error());
      for (int i = 0; i < k; i++)
        check_record(&r[i], from[r[i].partition]++);
      total += k;
    }
    cr_assert_eq(total, 3000 + end1);
    Q7_OK_OR_FAIL(q7_consumer_close(c));
  }
}

Test(ahead, unassign_and_group_rebalance_while_it_maps, .init = setup, .fini = teardown,
     .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 4, NULL));
  for (int p = 0; p < 4; p++)
    produce("t", p, 0, 1500);
  /* Manual assignment: let a partition go while the helper works on it. */
  q7_consumer *c = consumer_make(NULL, "67108864");
  for (int p = 0; p < 4; p++)
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", p, Q7_OFFSET_BEGINNING));
  q7_record r[512];
  for (int round = 0; round < 20; round++) {
    int k = q7_consumer_poll(c, r, 64, 1000);
    cr_assert_gt(k, 0, "poll -> %d (%s)", k, q7_last_error());
    int32_t p = round % 4;
    Q7_OK_OR_FAIL(q7_consumer_unassign(c, "t", p));
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", p, Q7_OFFSET_BEGINNING));
  }
  Q7_OK_OR_FAIL(q7_consumer_close(c));

  /* A group: a second member joins halfway and leaves; every record is
   * read, in order per partition, and none twice. */
  q7_consumer *a = consumer_make("g", "67108864"), *b = consumer_make("g", "1048576");
  Q7_OK_OR_FAIL(q7_consumer_subscribe(a, "t"));
  int64_t from[4] = { 0, 0, 0, 0 }, got = 0;
  bool b_in = false, b_out = false;
  for (int polls = 0; got < 6000 && polls < 100000; polls++) {
    int k = q7_consumer_poll(a, r, 200, 100);
    cr_assert_geq(k, 0, "a: poll -> %d (%s)", k, q7_last_error());
    for (int i = 0; i < k; i++)
      check_record(&r[i], from[r[i].partition]++);
    got += k;
    if (b_in && !b_out) {
      k = q7_consumer_poll(b, r, 200, 100);
      cr_assert_geq(k, 0, "b: poll -> %d (%s)", k, q7_last_error());
      for (int i = 0; i < k; i++)
        check_record(&r[i], from[r[i].partition]++);
      got += k;
      if (k > 0) {
        Q7_OK_OR_FAIL(q7_consumer_commit(b));
        Q7_OK_OR_FAIL(q7_consumer_commit(a));
        Q7_OK_OR_FAIL(q7_consumer_close(b)); /* right after a poll: the helper is busy */
        b = NULL;
        b_out = true;
      }
    }
    if (!b_in && got > 1000) {
      Q7_OK_OR_FAIL(q7_consumer_commit(a));
      Q7_OK_OR_FAIL(q7_consumer_subscribe(b, "t"));
      b_in = true;
    }
  }
  cr_assert(b_out, "the second member never read");
  cr_assert_eq(got, 6000, "read %lld of 6000", (long long)got);
  Q7_OK_OR_FAIL(q7_consumer_close(b));
  Q7_OK_OR_FAIL(q7_consumer_close(a));
}

Test(ahead, closes_at_any_moment, .init = setup, .fini = teardown, .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  produce("t", 0, 0, 4000);
  q7_record r[8];
  for (int i = 0; i < 50; i++) {
    q7_consumer *c = consumer_make(NULL, i % 2 ? "1048576" : "1073741824");
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, (int64_t)(i * 61) % 4000));
    if (i % 5) /* a few close before the helper ever starts */
      cr_assert_gt(q7_consumer_poll(c, r, 8, 1000), 0, "%s", q7_last_error());
    if (i % 3 == 0)
      sleep_ms(i % 7);
    Q7_OK_OR_FAIL(q7_consumer_close(c));
  }
}

/* Deletes "t" when told to (a byte on its pipe), and says so (a byte back).
 * Forked before the consumer starts its helper: a fork while another
 * thread holds the allocator's lock can leave the child stuck. */
static int go_pipe[2], done_pipe[2];

static int
delete_t(void *arg)
{
  (void)arg;
  char c;
  if (!read_full(go_pipe[0], &c, 1, 60000))
    return 1;
  q7 *q2;
  if (q7_open(&q2, dir, NULL))
    return 2;
  int rc = q7_topic_delete(q2, "t");
  q7_close(q2);
  return !rc && write_full(done_pipe[1], "d", 1) ? 0 : 3;
}

Test(ahead, deleted_topic_under_it, .init = setup, .fini = teardown_kids, .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  produce("t", 0, 0, 4000);
  cr_assert_eq(pipe(go_pipe), 0);
  cr_assert_eq(pipe(done_pipe), 0);
  int k = spawn(delete_t, NULL);
  q7_consumer *c = consumer_make(NULL, "67108864");
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  q7_record r[64];
  cr_assert_eq(q7_consumer_poll(c, r, 64, 1000), 64);
  /* Deleted by another process (this one has it open: Q7_EBUSY here). */
  char d;
  cr_assert(write_full(go_pipe[1], "g", 1));
  cr_assert(read_full(done_pipe[0], &d, 1, 60000), "the child did not delete t");
  cr_assert_eq(reap(k, 30000), 0, "the child could not delete t");
  int rc = q7_consumer_poll(c, r, 64, 100);
  cr_assert_eq(rc, Q7_ENOENT, "poll of a deleted topic: %d (%s)", rc, q7_last_error());
  cr_assert(strstr(q7_last_error(), "t"), "%s", q7_last_error());
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  /* The same name again, new records: read from the start. */
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  produce("t", 0, 0, 1000);
  c = consumer_make(NULL, "67108864");
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  int64_t from[1] = { 0 };
  read_all(c, 1, from, 1000, 512);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

Test(ahead, maps_at_most_64_partitions_and_takes_more_as_others_go, .init = setup,
     .fini = teardown, .timeout = 120)
{
  enum { P = 70, N = 600 }; /* 1.2 MB a partition; a poll maps its first 256 kB batch */
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", P, NULL));
  for (int p = 0; p < P; p++)
    produce("t", p, 0, N);
  q7_consumer *c = consumer_make(NULL, "1048576");
  for (int p = 0; p < P; p++)
    Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", p, Q7_OFFSET_BEGINNING));
  /* One record of each partition: each poll takes the next partition. */
  int64_t from[P] = { 0 };
  q7_record r[1];
  for (int i = 0; i < P; i++) {
    cr_assert_eq(q7_consumer_poll(c, r, 1, 1000), 1, "%s", q7_last_error());
    check_record(&r[0], from[r[0].partition]++);
  }
  for (int p = 0; p < P; p++)
    cr_assert_eq(from[p], 1, "partition %d: %lld records", p, (long long)from[p]);
  /* Mapped ahead: the whole log of 64 of them, no more. */
  int full = 0;
  bool ahead[P];
  for (int64_t end = mono_ms() + 10000; mono_ms() < end; sleep_ms(10)) {
    full = 0;
    for (int p = 0; p < P; p++)
      full += (ahead[p] = mapped_kb(data_path("t", p)) >= 700);
    if (full >= 64)
      break;
  }
  cr_assert_eq(full, 64, "%d partitions mapped ahead, want 64", full);
  sleep_ms(100);
  full = 0;
  for (int p = 0; p < P; p++)
    full += mapped_kb(data_path("t", p)) >= 700;
  cr_assert_eq(full, 64, "then %d partitions mapped ahead", full);
  /* Let 10 of them go: the 6 left out get slots at their next read. */
  int gone = 0;
  for (int p = 0; p < P && gone < 10; p++)
    if (ahead[p]) {
      Q7_OK_OR_FAIL(q7_consumer_unassign(c, "t", p));
      from[p] = N; /* not read again */
      gone++;
    }
  for (int i = 0; i < P - 10; i++) {
    cr_assert_eq(q7_consumer_poll(c, r, 1, 1000), 1, "%s", q7_last_error());
    check_record(&r[0], from[r[0].partition]++);
  }
  for (int64_t end = mono_ms() + 10000; mono_ms() < end; sleep_ms(10)) {
    full = 0;
    for (int p = 0; p < P; p++)
      full += !ahead[p] && mapped_kb(data_path("t", p)) >= 700;
    if (full == P - 64)
      break;
  }
  cr_assert_eq(full, P - 64, "%d of the %d left out were mapped after others went", full,
               P - 64);
  /* And every record of the 60 still assigned reads intact. */
  q7_record rr[512];
  int64_t got = 0;
  for (int polls = 0; got < 60 * (N - 2) && polls < 10000; polls++) {
    int k = q7_consumer_poll(c, rr, 512, 1000);
    cr_assert_geq(k, 0, "poll -> %d (%s)", k, q7_last_error());
    for (int i = 0; i < k; i++)
      check_record(&rr[i], from[rr[i].partition]++);
    got += k;
  }
  cr_assert_eq(got, 60 * (N - 2));
  cr_assert_eq(q7_consumer_poll(c, rr, 512, 0), 0);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
}

/* Make this process's thread creation fail as it would at a limit: clone
 * and clone3 return EAGAIN (seccomp; no privilege needed). */
static bool
no_more_threads(void)
{
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
#ifdef __NR_clone3
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
#endif
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EAGAIN),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { (unsigned short)(sizeof f / sizeof f[0]), f };
  return !prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) &&
         !prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

static int
read_without_a_thread(void *arg)
{
  (void)arg;
  q7 *q2;
  q7_consumer *c;
  q7_conf *sf = q7_conf_new(), *cf = q7_conf_new();
  /* No retention thread: the only other thread would be the helper. */
  if (!sf || q7_conf_set(sf, "retention.check.interval.ms", "0") || q7_open(&q2, dir, sf))
    return 2;
  q7_conf_destroy(sf);
  if (!cf || q7_conf_set(cf, "fetch.ahead.bytes", "1048576") ||
      q7_consumer_new(q2, NULL, cf, &c) || q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING))
    return 3;
  q7_conf_destroy(cf);
  q7_record *r = malloc(512 * sizeof *r);
  if (!r || !no_more_threads())
    return 4;
  int64_t next = 0;
  for (int polls = 0; next < 2000 && polls < 1000; polls++) {
    int k = q7_consumer_poll(c, r, 512, 1000);
    if (k < 0)
      return 6;
    for (int i = 0; i < k; i++, next++) {
      int64_t got;
      memcpy(&got, r[i].value, sizeof got);
      if (r[i].offset != next || got != next)
        return 7;
    }
  }
  if (next != 2000)
    return 8;
  char line[256];
  int threads = 0;
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof line, f))
    sscanf(line, "Threads: %d", &threads);
  if (f)
    fclose(f);
  if (threads != 1)
    return 9; /* the helper started after all: the test proves nothing */
  free(r);
  return q7_consumer_close(c) || q7_close(q2) ? 10 : 0;
}

Test(ahead, reads_as_without_it_when_its_thread_cannot_start, .init = setup,
     .fini = teardown_kids, .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  produce("t", 0, 0, 2000);
  int rc = reap(spawn(read_without_a_thread, NULL), 60000);
  cr_assert_eq(rc, 0, "the child: exit %d (4: no seccomp; 9: its helper started anyway)", rc);
}

static int
threads_now(void)
{
  char line[256];
  int threads = 0;
  FILE *f = fopen("/proc/self/status", "r");
  cr_assert(f, "/proc/self/status");
  while (fgets(line, sizeof line, f))
    sscanf(line, "Threads: %d", &threads);
  fclose(f);
  return threads;
}

Test(ahead, starts_only_when_the_consumer_falls_behind, .init = setup, .fini = teardown,
     .timeout = 120)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  produce("t", 0, 0, 10);
  int before = threads_now();
  q7_consumer *c = consumer_make(NULL, NULL); /* the default: 16 MiB */
  Q7_OK_OR_FAIL(q7_consumer_assign(c, "t", 0, Q7_OFFSET_BEGINNING));
  /* Keeping up: every poll reads to the end, and no helper starts. */
  int64_t from[1] = { 0 };
  read_all(c, 1, from, 10, 512);
  for (int i = 0; i < 5; i++) {
    produce("t", 0, from[0], 3);
    read_all(c, 1, from, 3, 512);
  }
  sleep_ms(50);
  cr_assert_eq(threads_now(), before, "a consumer that keeps up started a thread");
  /* Behind: a poll leaves records past the position, and it starts. */
  produce("t", 0, from[0], 2000);
  read_all(c, 1, from, 1, 512);
  int now = threads_now();
  for (int64_t end = mono_ms() + 10000; now == before && mono_ms() < end; now = threads_now())
    sleep_ms(5);
  cr_assert_eq(now, before + 1, "threads: %d, then %d", before, now);
  read_all(c, 1, from, 1999, 512);
  Q7_OK_OR_FAIL(q7_consumer_close(c));
  cr_assert_eq(threads_now(), before, "the helper outlived its consumer");
}
