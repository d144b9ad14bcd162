/* q7.c - the q7 command-line tool: Kafka's console tools over one libq7
 * store.  main(), argument parsing and every subcommand but `serve`
 * (tools/serve.c).  Uses only <q7.h>.
 *
 * Exit status: 0 success, 1 failure (the library or the system said no),
 * 2 usage error.  Every failure is one line on stderr, "q7: ...". */
#include <q7.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#define EXIT_USAGE 2
#define POLL_BATCH 500
#define IDLE_MS 500        /* without --follow: stop after this long with no record */
#define FOLLOW_SLICE_MS 200

/* The topic keys of q7.h's Configuration section, shown by topic describe. */
static const char *const topic_keys[] = {
  "cleanup.policy", "compression.type", "message.max.bytes", "min.insync.replicas",
  "replication.factor", "retention.bytes", "retention.ms",
};

/* Set by SIGINT/SIGTERM while produce or consume runs. */
static volatile sig_atomic_t stop_signal;

/* ===================================================================== */
/*  Messages                                                             */
/* ===================================================================== */

/* @s made safe for a one-line message: control and non-ASCII bytes as \xHH,
 * at most @max bytes of it, "..." when cut.  Four rotating buffers. */
static const char *
clean_n(const char *s, size_t max)
{
  static char bufs[4][600];
  static int next;
  char *b = bufs[next++ & 3];
  size_t o = 0;
  for (size_t i = 0; s[i]; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (o + 8 >= sizeof bufs[0] || i >= max) {
      memcpy(b + o, "...", 4);
      return b;
    }
    if (ch < 0x20 || ch >= 0x7f) {
      o += (size_t)snprintf(b + o, 5, "\\x%02x", ch);
    } else {
      b[o++] = (char)ch;
    }
  }
  b[o] = 0;
  return b;
}

/* A user-supplied argument, quoted, for a message. */
const char *
tool_shown(const char *s)
{
  return clean_n(s, 120);
}

/* "q7: <fmt>" on stderr; returns EXIT_USAGE. */
int
tool_usage_err(const char *fmt, ...)
{
  va_list ap;
  fputs("q7: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_USAGE;
}

/* "q7: <fmt>" on stderr; returns 1. */
int
tool_fail(const char *fmt, ...)
{
  va_list ap;
  fputs("q7: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return 1;
}

/* "q7: <what>: <q7_strerror> (<q7_last_error>)"; returns 1.  Call it right
 * after the failed q7_* call: the detail is the thread's last error. */
int
tool_lib_err(int rc, const char *fmt, ...)
{
  char detail[600];
  snprintf(detail, sizeof detail, "%s", clean_n(q7_last_error(), (size_t)-1));
  va_list ap;
  fputs("q7: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, ": %s", q7_strerror(rc));
  if (detail[0])
    fprintf(stderr, " (%s)", detail);
  fputc('\n', stderr);
  return 1;
}

/* Progress on stderr, only when it is a terminal: "\rq7: <verb> N records". */
struct progress {
  bool on, shown;
  int64_t last_ms;
};

static int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
progress_tick(struct progress *p, const char *verb, int64_t n)
{
  if (!p->on)
    return;
  int64_t now = mono_ms();
  if (now - p->last_ms < 250)
    return;
  p->last_ms = now;
  p->shown = true;
  fprintf(stderr, "\rq7: %s %" PRId64 " records...", verb, n);
}

static void
progress_end(struct progress *p)
{
  if (p->shown)
    fputs("\r\033[K", stderr);
  p->shown = false;
}

static void
on_signal(int sig)
{
  stop_signal = sig;
}

/* SIGINT and SIGTERM set stop_signal; blocking reads and polls return early
 * (no SA_RESTART) so the command can finish cleanly. */
static void
catch_signals(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

/* ===================================================================== */
/*  Command lines                                                        */
/* ===================================================================== */

enum opt_id {
  O_HELP, O_DIR, O_PARTITIONS, O_CONFIG, O_KEYSEP, O_PARTITION, O_HEADER, O_GROUP,
  O_FROM_BEGINNING, O_MAX, O_FOLLOW, O_OFFSET, O_PRINT_KEY, O_PRINT_OFFSET,
  O_PRINT_HEADERS, O_NOW, O_MEMBERS, O_REPLICA_DIRS, O_COUNT
};

static const struct optdef {
  const char *name;   /* --name */
  char letter;        /* -l, or 0 */
  const char *arg;    /* the argument's name, NULL: none */
} optdefs[O_COUNT] = {
  [O_HELP] = { "help", 'h', NULL },
  [O_DIR] = { "dir", 'd', "DIR" },
  [O_PARTITIONS] = { "partitions", 0, "N" },
  [O_CONFIG] = { "config", 0, "KEY=VALUE" },
  [O_KEYSEP] = { "key-separator", 'k', "SEP" },
  [O_PARTITION] = { "partition", 0, "N" },
  [O_HEADER] = { "header", 0, "KEY=VALUE" },
  [O_GROUP] = { "group", 'g', "GROUP" },
  [O_FROM_BEGINNING] = { "from-beginning", 0, NULL },
  [O_MAX] = { "max", 0, "N" },
  [O_FOLLOW] = { "follow", 0, NULL },
  [O_OFFSET] = { "offset", 0, "N" },
  [O_PRINT_KEY] = { "print-key", 0, NULL },
  [O_PRINT_OFFSET] = { "print-offset", 0, NULL },
  [O_REPLICA_DIRS] = { "replica-dirs", 0, "DIRS" },
  [O_PRINT_HEADERS] = { "print-headers", 0, NULL },
  [O_NOW] = { "now", 0, "MS" },
  [O_MEMBERS] = { "members", 0, NULL },
};

#define BIT(o) (1u << (o))
#define COMMON (BIT(O_HELP) | BIT(O_DIR))

struct run;

struct cmd {
  const char *name;       /* "topic create" */
  const char *synopsis;   /* after "q7 [-d DIR] " */
  unsigned allowed;       /* BIT(O_*) */
  int min_pos, max_pos;
  const char *pos_name;   /* for "missing NAME" */
  const char *help;       /* after the usage line */
  int (*fn)(struct run *r);
};

/* A parsed command line. */
struct run {
  const struct cmd *cmd;
  const char *dir;
  const char **pos;       /* positional arguments */
  int npos;
  bool set[O_COUNT];
  const char *val[O_COUNT];
  const char **configs, **headers;  /* every --config, every --header */
  size_t nconfigs, nheaders;
};

static void
print_help(const struct cmd *c)
{
  printf("Usage: q7 [-d DIR] %s\n\n%s", c->synopsis, c->help);
  printf("  -d, --dir DIR     the store directory (default: $Q7_DIR)\n"
         "  -h, --help        this help\n");
}

/* Parse @argv (the words after the command's name) for @c, then run it.
 * --help anywhere wins over every other problem of the line. */
static int
run_cmd(const struct cmd *c, const char *dir, int argc, char **argv)
{
  struct run r;
  char err[400] = "";
  int rc = EXIT_USAGE;
  bool opts_done = false;

  memset(&r, 0, sizeof r);
  r.cmd = c;
  r.dir = dir;
  r.pos = calloc((size_t)argc + 1, sizeof *r.pos);
  r.configs = calloc((size_t)argc + 1, sizeof *r.configs);
  r.headers = calloc((size_t)argc + 1, sizeof *r.headers);
  if (!r.pos || !r.configs || !r.headers) {
    rc = tool_fail("out of memory");
    goto out;
  }
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i], *val = NULL;
    int id = -1;
    bool inline_val = false;
    if (opts_done || a[0] != '-' || !a[1]) {
      r.pos[r.npos++] = a;
      continue;
    }
    if (!strcmp(a, "--")) {
      opts_done = true;
      continue;
    }
    if (a[1] == '-') {
      const char *nm = a + 2;
      size_t len = strcspn(nm, "=");
      for (int k = 0; k < O_COUNT; k++)
        if (strlen(optdefs[k].name) == len && !memcmp(optdefs[k].name, nm, len))
          id = k;
      if (nm[len] == '=') {
        val = nm + len + 1;
        inline_val = true;
      }
    } else {
      for (int k = 0; k < O_COUNT; k++)
        if (optdefs[k].letter == a[1])
          id = k;
      if (id >= 0 && a[2]) {
        if (!optdefs[id].arg)
          id = -1; /* "-hx" is not an option */
        val = a + 2;
        inline_val = true;
      }
    }
    if (id < 0 || !(c->allowed & BIT(id))) {
      if (!err[0])
        snprintf(err, sizeof err, "unknown option '%s'", tool_shown(a));
      continue;
    }
    if (optdefs[id].arg && !inline_val) {
      if (i + 1 >= argc) {
        if (!err[0])
          snprintf(err, sizeof err, "option '%s' needs an argument (%s)", tool_shown(a),
                   optdefs[id].arg);
        continue;
      }
      val = argv[++i];
    } else if (!optdefs[id].arg && inline_val) {
      if (!err[0])
        snprintf(err, sizeof err, "option '--%s' takes no argument", optdefs[id].name);
      continue;
    }
    r.set[id] = true;
    r.val[id] = val;
    if (id == O_CONFIG)
      r.configs[r.nconfigs++] = val;
    if (id == O_HEADER)
      r.headers[r.nheaders++] = val;
  }
  if (r.set[O_HELP]) {
    print_help(c);
    rc = 0;
    goto out;
  }
  if (!err[0] && r.npos < c->min_pos)
    snprintf(err, sizeof err, "missing %s", c->pos_name);
  if (!err[0] && r.npos > c->max_pos)
    snprintf(err, sizeof err, "unexpected argument '%s'", tool_shown(r.pos[c->max_pos]));
  if (err[0]) {
    rc = tool_usage_err("%s: %s (see 'q7 %s --help')", c->name, err, c->name);
    goto out;
  }
  if (r.set[O_DIR])
    r.dir = r.val[O_DIR];
  rc = c->fn(&r);
out:
  free(r.pos);
  free(r.configs);
  free(r.headers);
  return rc;
}

/* An integer option in [lo, hi]; on a bad value, a usage error naming
 * @what ("a partition number") and EXIT_USAGE. */
static int
opt_int(struct run *r, int id, int64_t lo, int64_t hi, const char *what, int64_t *out)
{
  const char *s = r->val[id];
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (!s[0] || !(s[0] == '-' || s[0] == '+' || (s[0] >= '0' && s[0] <= '9')) || *end ||
      errno || v < lo || v > hi)
    return tool_usage_err("%s: --%s: '%s' is not %s (%" PRId64 "..%" PRId64 ")", r->cmd->name,
                     optdefs[id].name, tool_shown(s), what, lo, hi);
  *out = v;
  return 0;
}

/* Split "KEY=VALUE" of option @id: the key is copied into @key (malloc'd). */
static int
opt_kv(struct run *r, int id, const char *s, char **key, const char **value)
{
  const char *eq = strchr(s, '=');
  if (!eq || eq == s)
    return tool_usage_err("%s: --%s: '%s' is not KEY=VALUE", r->cmd->name, optdefs[id].name,
                     tool_shown(s));
  *key = strndup(s, (size_t)(eq - s));
  if (!*key)
    return tool_fail("out of memory");
  *value = eq + 1;
  return 0;
}

/* Open the store of @r.  Only @create may make a new directory: anywhere
 * else a missing directory is a mistake, not a wish for an empty store.
 * The tool never sweeps in the background (retention sweep does it). */
static int
open_store(struct run *r, bool create, q7 **q)
{
  struct stat st;
  if (!r->dir || !r->dir[0])
    return tool_usage_err("%s: no store directory: give -d DIR or set Q7_DIR", r->cmd->name);
  if (!create && stat(r->dir, &st) != 0 && errno == ENOENT)
    return tool_fail("%s: no store at '%s' (no such directory)", r->cmd->name, tool_shown(r->dir));
  q7_conf *conf = q7_conf_new();
  if (!conf)
    return tool_lib_err(Q7_ENOMEM, "open %s", tool_shown(r->dir));
  int rc = q7_conf_set(conf, "retention.check.interval.ms", "0");
  /* The store's mirrors: the store itself does not record them. */
  const char *mirrors = r->set[O_REPLICA_DIRS] ? r->val[O_REPLICA_DIRS]
                                                : getenv("Q7_REPLICA_DIRS");
  if (!rc && mirrors && *mirrors)
    rc = q7_conf_set(conf, "replica.dirs", mirrors);
  if (rc) {
    rc = tool_lib_err(rc, "open %s", tool_shown(r->dir));
    q7_conf_destroy(conf);
    return rc;
  }
  rc = q7_open(q, r->dir, conf);
  if (rc)
    rc = tool_lib_err(rc, "open %s", tool_shown(r->dir));
  q7_conf_destroy(conf);
  return rc;
}

/* Close the store, reporting a failure if no other was reported (@rc 0). */
int
tool_close_store(q7 *q, int rc)
{
  int e = q7_close(q);
  if (e && !rc)
    rc = tool_lib_err(e, "close store");
  return rc;
}

/* Check that @topic has partition @p (already >= 0); 1 with a message if not. */
static int
check_partition(struct run *r, q7 *q, const char *topic, int64_t p, int32_t *count)
{
  q7_topic *t;
  int rc = q7_topic_open(q, topic, &t);
  if (rc)
    return tool_lib_err(rc, "%s %s", r->cmd->name, tool_shown(topic));
  *count = q7_topic_partition_count(t);
  q7_topic_close(t);
  if (p >= *count)
    return tool_fail("%s %s: no partition %" PRId64 ": the topic has %" PRId32
                " partition%s (0..%" PRId32 ")",
                r->cmd->name, topic, p, *count, *count == 1 ? "" : "s", *count - 1);
  return 0;
}

/* ===================================================================== */
/*  topic                                                                */
/* ===================================================================== */

/* A conf holding every --config of @r, each checked by q7_conf_set. */
static int
configs_conf(struct run *r, q7_conf **out)
{
  int rc = 0;
  q7_conf *conf = q7_conf_new();
  if (!conf)
    return tool_lib_err(Q7_ENOMEM, "%s", r->cmd->name);
  for (size_t i = 0; i < r->nconfigs && !rc; i++) {
    char *k;
    const char *v;
    if ((rc = opt_kv(r, O_CONFIG, r->configs[i], &k, &v)))
      break;
    int e = q7_conf_set(conf, k, v);
    if (e)
      rc = tool_lib_err(e, "%s: --config %s", r->cmd->name, tool_shown(r->configs[i]));
    free(k);
  }
  if (rc)
    q7_conf_destroy(conf);
  else
    *out = conf;
  return rc;
}

static int
cmd_topic_create(struct run *r)
{
  int64_t parts = 1;
  q7_conf *conf = NULL;
  q7 *q;
  int rc;
  if (r->set[O_PARTITIONS] &&
      (rc = opt_int(r, O_PARTITIONS, 1, INT32_MAX, "a partition count", &parts)))
    return rc;
  if ((rc = configs_conf(r, &conf)))
    return rc;
  if ((rc = open_store(r, true, &q))) {
    q7_conf_destroy(conf);
    return rc;
  }
  const char *name = r->pos[0];
  int e = q7_topic_create(q, name, (int32_t)parts, conf);
  if (e)
    rc = tool_lib_err(e, "topic create %s", tool_shown(name));
  else
    printf("created topic %s with %" PRId64 " partition%s\n", name, parts, parts == 1 ? "" : "s");
  q7_conf_destroy(conf);
  return tool_close_store(q, rc);
}

static int
print_topic(const char *name, int32_t partitions, void *arg)
{
  (void)partitions;
  (void)arg;
  printf("%s\n", name);
  return 0;
}

static int
cmd_topic_list(struct run *r)
{
  q7 *q;
  int rc = open_store(r, false, &q);
  if (rc)
    return rc;
  int e = q7_topic_foreach(q, print_topic, NULL);
  if (e)
    rc = tool_lib_err(e, "topic list");
  return tool_close_store(q, rc);
}

/* The value of topic key @key into a malloc'd string, or NULL after a message. */
static char *
topic_value(q7 *q, const char *topic, const char *key)
{
  size_t len = 0;
  int e = q7_topic_get(q, topic, key, NULL, &len);
  if (e && e != Q7_ERANGE) {
    tool_lib_err(e, "topic describe %s: %s", topic, key);
    return NULL;
  }
  for (;;) {
    char *buf = malloc(len ? len : 1);
    if (!buf) {
      tool_fail("out of memory");
      return NULL;
    }
    size_t have = len;
    e = q7_topic_get(q, topic, key, buf, &len);
    if (!e)
      return buf;
    free(buf);
    if (e != Q7_ERANGE || len <= have) {
      tool_lib_err(e, "topic describe %s: %s", topic, key);
      return NULL;
    }
  }
}

static int
cmd_topic_describe(struct run *r)
{
  const char *name = r->pos[0];
  q7_topic *t = NULL;
  q7 *q;
  int rc = open_store(r, false, &q), e;
  if (rc)
    return rc;
  if ((e = q7_topic_open(q, name, &t))) {
    rc = tool_lib_err(e, "topic describe %s", tool_shown(name));
    goto out;
  }
  int32_t n = q7_topic_partition_count(t);
  printf("topic: %s\npartitions: %" PRId32 "\n", name, n);
  for (size_t i = 0; i < sizeof topic_keys / sizeof *topic_keys; i++) {
    char *v = topic_value(q, name, topic_keys[i]);
    if (!v) {
      rc = 1;
      goto out;
    }
    printf("config: %s=%s\n", topic_keys[i], v);
    free(v);
  }
  printf("%-9s  %-16s  %-14s  %s\n", "PARTITION", "LOG-START-OFFSET", "HIGH-WATERMARK", "RECORDS");
  for (int32_t i = 0; i < n; i++) {
    q7_partition *p;
    int64_t ls, hw;
    if ((e = q7_topic_partition(t, i, &p)) || (e = q7_partition_offsets(p, &ls, &hw))) {
      rc = tool_lib_err(e, "topic describe %s: partition %" PRId32, name, i);
      goto out;
    }
    printf("%-9" PRId32 "  %-16" PRId64 "  %-14" PRId64 "  %" PRId64 "\n", i, ls, hw, hw - ls);
  }
out:
  q7_topic_close(t);
  return tool_close_store(q, rc);
}

static int
cmd_topic_alter(struct run *r)
{
  const char *name = r->pos[0];
  q7_conf *conf;
  q7 *q;
  int rc;
  if (!r->nconfigs)
    return tool_usage_err("topic alter: nothing to alter: give --config KEY=VALUE (see 'q7 topic "
                     "alter --help')");
  /* Every value checked before the first is applied. */
  if ((rc = configs_conf(r, &conf)))
    return rc;
  q7_conf_destroy(conf);
  if ((rc = open_store(r, false, &q)))
    return rc;
  /* ... and every key must be one the topic takes, before any is set. */
  for (size_t i = 0; i < r->nconfigs && !rc; i++) {
    char *k, buf[64];
    const char *v;
    size_t len = sizeof buf;
    if ((rc = opt_kv(r, O_CONFIG, r->configs[i], &k, &v)))
      break;
    int e = strcmp(k, "replication.factor") ? q7_topic_get(q, name, k, buf, &len) : Q7_OK;
    if (e && e != Q7_ERANGE)
      rc = tool_lib_err(e, "topic alter %s: --config %s", tool_shown(name), tool_shown(r->configs[i]));
    else if (!strcmp(k, "replication.factor"))
      rc = tool_fail("topic alter %s: replication.factor cannot be altered (replicas are placed "
                "when the topic is created)", tool_shown(name));
    free(k);
  }
  for (size_t i = 0; i < r->nconfigs && !rc; i++) {
    char *k;
    const char *v;
    if ((rc = opt_kv(r, O_CONFIG, r->configs[i], &k, &v)))
      break;
    int e = q7_topic_set(q, name, k, v);
    if (e)
      rc = tool_lib_err(e, "topic alter %s: --config %s", tool_shown(name), tool_shown(r->configs[i]));
    free(k);
  }
  if (!rc)
    printf("altered topic %s\n", name);
  return tool_close_store(q, rc);
}

static int
cmd_topic_delete(struct run *r)
{
  const char *name = r->pos[0];
  q7 *q;
  int rc = open_store(r, false, &q);
  if (rc)
    return rc;
  int e = q7_topic_delete(q, name);
  if (e)
    rc = tool_lib_err(e, "topic delete %s", tool_shown(name));
  else
    printf("deleted topic %s\n", name);
  return tool_close_store(q, rc);
}

/* ===================================================================== */
/*  produce                                                              */
/* ===================================================================== */

struct delivery_state {
  int64_t ok, failed;
  int first_err;
  int64_t first_line;
};

static void
on_delivery(const q7_delivery *d, void *arg)
{
  struct delivery_state *s = arg;
  if (d->err == Q7_OK) {
    s->ok++;
    return;
  }
  if (!s->failed++) {
    s->first_err = d->err;
    s->first_line = (int64_t)(intptr_t)d->opaque;
  }
}

static int
cmd_produce(struct run *r)
{
  const char *topic = r->pos[0];
  const char *sep = r->val[O_KEYSEP];
  size_t seplen = sep ? strlen(sep) : 0;
  int64_t part = Q7_PARTITION_ANY;
  q7_header *hdrs = NULL;
  char **hnames = NULL;
  struct delivery_state ds = { 0, 0, 0, 0 };
  struct progress pr = { isatty(STDERR_FILENO) && !isatty(STDIN_FILENO), false, mono_ms() };
  q7_producer *p = NULL;
  q7_topic *t = NULL;
  q7_conf *conf = NULL;
  char *line = NULL, sync_detail[600] = "";
  size_t cap = 0;
  int64_t lineno = 0, sent = 0, sync_line = 0;
  int sync_err = 0, read_errno = 0;
  int rc, e;
  q7 *q = NULL;

  if (sep && !seplen)
    return tool_usage_err("produce: -k: the key separator must not be empty");
  if (r->set[O_PARTITION] &&
      (rc = opt_int(r, O_PARTITION, 0, INT32_MAX, "a partition number", &part)))
    return rc;
  hdrs = calloc(r->nheaders + 1, sizeof *hdrs);
  hnames = calloc(r->nheaders + 1, sizeof *hnames);
  if (!hdrs || !hnames) {
    rc = tool_fail("out of memory");
    goto out;
  }
  for (size_t i = 0; i < r->nheaders; i++) {
    const char *v;
    if ((rc = opt_kv(r, O_HEADER, r->headers[i], &hnames[i], &v)))
      goto out;
    hdrs[i] = (q7_header){ hnames[i], v, strlen(v) };
  }
  if ((rc = open_store(r, false, &q)))
    goto out;
  if ((e = q7_topic_open(q, topic, &t))) {
    rc = tool_lib_err(e, "produce %s", tool_shown(topic));
    goto out;
  }
  if (part >= 0) {
    int32_t n = q7_topic_partition_count(t);
    if (part >= n) {
      rc = tool_fail("produce %s: no partition %" PRId64 ": the topic has %" PRId32
                " partition%s (0..%" PRId32 ")",
                topic, part, n, n == 1 ? "" : "s", n - 1);
      goto out;
    }
  }
  if (!(conf = q7_conf_new())) {
    rc = tool_lib_err(Q7_ENOMEM, "produce %s", topic);
    goto out;
  }
  q7_conf_set_delivery_cb(conf, on_delivery, &ds);
  if ((e = q7_producer_new(q, conf, &p))) {
    rc = tool_lib_err(e, "produce %s", topic);
    goto out;
  }
  catch_signals();
  for (;;) {
    errno = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
      if (ferror(stdin) && !stop_signal)
        read_errno = errno ? errno : EIO;
      break;
    }
    lineno++;
    if (n > 0 && line[n - 1] == '\n')
      n--;
    q7_msg m;
    memset(&m, 0, sizeof m);
    m.topic = t;
    m.partition = (int32_t)part;
    m.value = line; /* never NULL: an empty line is an empty value, not a null one */
    m.value_len = (size_t)n;
    if (sep) {
      const char *at = memmem(line, (size_t)n, sep, seplen);
      if (at) {
        m.key = line;
        m.key_len = (size_t)(at - line);
        m.value = at + seplen;
        m.value_len = (size_t)n - m.key_len - seplen;
      }
    }
    m.headers = r->nheaders ? hdrs : NULL;
    m.header_count = r->nheaders;
    m.opaque = (void *)(intptr_t)lineno;
    if ((e = q7_producer_send(p, &m))) {
      snprintf(sync_detail, sizeof sync_detail, "%s", clean_n(q7_last_error(), (size_t)-1));
      sync_err = e;
      sync_line = lineno;
      break;
    }
    sent++;
    q7_producer_poll(p, 0);
    progress_tick(&pr, "produced", ds.ok);
    if (stop_signal || ds.failed)
      break;
  }
  e = q7_producer_flush(p, -1);
  progress_end(&pr);
  if (e && !sync_err) {
    rc = tool_lib_err(e, "produce %s: flush", topic);
    goto out;
  }
  if (sync_err) {
    rc = tool_fail("produce %s: line %" PRId64 ": %s%s%s%s; produced %" PRId64 " records", topic,
              sync_line, q7_strerror(sync_err), sync_detail[0] ? " (" : "", sync_detail,
              sync_detail[0] ? ")" : "", ds.ok);
  } else if (ds.failed) {
    rc = tool_fail("produce %s: %" PRId64 " of %" PRId64 " records failed, the first (line %" PRId64
              ") with: %s; produced %" PRId64 " records",
              topic, ds.failed, sent, ds.first_line, q7_strerror(ds.first_err), ds.ok);
  } else if (read_errno) {
    rc = tool_fail("produce %s: reading stdin: %s; produced %" PRId64 " records", topic,
              strerror(read_errno), ds.ok);
  } else if (stop_signal) {
    rc = tool_fail("produce %s: interrupted; produced %" PRId64 " records", topic, ds.ok);
  } else {
    fprintf(stderr, "produced %" PRId64 " records\n", ds.ok);
  }
out:
  q7_producer_close(p);
  q7_conf_destroy(conf);
  q7_topic_close(t);
  if (hnames)
    for (size_t i = 0; i < r->nheaders; i++)
      free(hnames[i]);
  free(hnames);
  free(hdrs);
  free(line);
  return q ? tool_close_store(q, rc) : rc;
}

/* ===================================================================== */
/*  consume                                                              */
/* ===================================================================== */

static void
print_record(const q7_record *rec, const struct run *r)
{
  if (r->set[O_PRINT_OFFSET])
    printf("%" PRId32 ":%" PRId64 "\t", rec->partition, rec->offset);
  if (r->set[O_PRINT_HEADERS]) {
    size_t it = 0, nl, vl;
    const char *nm;
    const void *v;
    for (int k = 0; q7_record_header_next(rec, &it, &nm, &nl, &v, &vl) == Q7_OK; k++) {
      if (k)
        putchar(',');
      fwrite(nm, 1, nl, stdout);
      putchar('=');
      fwrite(v, 1, vl, stdout);
    }
    putchar('\t');
  }
  if (r->set[O_PRINT_KEY]) {
    if (rec->key)
      fwrite(rec->key, 1, rec->key_len, stdout);
    else
      fputs("null", stdout);
    putchar('\t');
  }
  if (rec->value)
    fwrite(rec->value, 1, rec->value_len, stdout);
  else
    fputs("null", stdout);
  putchar('\n');
}

/* A failed commit of consume -g: Q7_ESTATE means this member had expired
 * and its partitions moved to another member, which reads them again from
 * the group's last commit (at least once); a warning, and the next poll
 * rejoins.  Anything else is the end.  Returns the exit status, 0 to go on. */
static int
commit_failed(int e, const char *topic)
{
  if (e != Q7_ESTATE)
    return tool_lib_err(e, "consume %s: commit", topic);
  char detail[600];
  snprintf(detail, sizeof detail, "%s", clean_n(q7_last_error(), (size_t)-1));
  fprintf(stderr, "q7: consume %s: warning: commit refused, this member's partitions moved to "
          "another (%s); they will be read again from the group's last commit\n", topic, detail);
  return 0;
}

static int
cmd_consume(struct run *r)
{
  const char *topic = r->pos[0], *group = r->val[O_GROUP];
  int64_t max = 0, part = -1, offset = -1, count = 0;
  bool follow = r->set[O_FOLLOW];
  struct progress pr = { isatty(STDERR_FILENO) && !isatty(STDOUT_FILENO), false, mono_ms() };
  q7_record *recs = NULL;
  q7_conf *conf = NULL;
  q7_consumer *c = NULL;
  int32_t nparts = 0;
  q7 *q = NULL;
  int rc, e;

  if (r->set[O_MAX] && (rc = opt_int(r, O_MAX, 1, INT64_MAX, "a record count", &max)))
    return rc;
  if (r->set[O_PARTITION] &&
      (rc = opt_int(r, O_PARTITION, 0, INT32_MAX, "a partition number", &part)))
    return rc;
  if (r->set[O_OFFSET] && (rc = opt_int(r, O_OFFSET, 0, INT64_MAX, "an offset", &offset)))
    return rc;
  if (r->set[O_OFFSET] && !r->set[O_PARTITION])
    return tool_usage_err("consume: --offset needs --partition (see 'q7 consume --help')");
  if (r->set[O_OFFSET] && r->set[O_FROM_BEGINNING])
    return tool_usage_err("consume: --offset and --from-beginning exclude each other");
  if (group && !group[0])
    return tool_usage_err("consume: -g: the group name must not be empty");
  if (!(recs = calloc(POLL_BATCH, sizeof *recs)))
    return tool_fail("out of memory");
  if ((rc = open_store(r, false, &q)))
    goto out;
  if (part >= 0 && (rc = check_partition(r, q, topic, part, &nparts)))
    goto out;
  if (!(conf = q7_conf_new())) {
    rc = tool_lib_err(Q7_ENOMEM, "consume %s", tool_shown(topic));
    goto out;
  }
  if ((e = q7_conf_set(conf, "auto.offset.reset",
                       r->set[O_FROM_BEGINNING] ? "earliest" : "latest")) ||
      (e = q7_conf_set(conf, "enable.auto.commit", "false"))) {
    rc = tool_lib_err(e, "consume %s", tool_shown(topic));
    goto out;
  }
  if ((e = q7_consumer_new(q, group, conf, &c))) {
    rc = tool_lib_err(e, "consume %s: group %s", tool_shown(topic), group ? tool_shown(group) : "(none)");
    goto out;
  }
  if (part >= 0) {
    /* One partition: from --offset, else (in a group) the committed
     * offset, else the beginning or the end. */
    int64_t from = offset >= 0 ? Q7_OFFSET_END
                   : group ? Q7_OFFSET_COMMITTED
                   : r->set[O_FROM_BEGINNING] ? Q7_OFFSET_BEGINNING : Q7_OFFSET_END;
    if ((e = q7_consumer_assign(c, topic, (int32_t)part, from)) ||
        (offset >= 0 && (e = q7_consumer_seek(c, topic, (int32_t)part, offset)))) {
      rc = tool_lib_err(e, "consume %s: partition %" PRId64, topic, part);
      goto out;
    }
  } else if (group) {
    if ((e = q7_consumer_subscribe(c, topic))) {
      rc = tool_lib_err(e, "consume %s", tool_shown(topic));
      goto out;
    }
  } else {
    q7_topic *t;
    if ((e = q7_topic_open(q, topic, &t))) {
      rc = tool_lib_err(e, "consume %s", tool_shown(topic));
      goto out;
    }
    nparts = q7_topic_partition_count(t);
    q7_topic_close(t);
    for (int32_t i = 0; i < nparts; i++) {
      e = q7_consumer_assign(c, topic, i,
                             r->set[O_FROM_BEGINNING] ? Q7_OFFSET_BEGINNING : Q7_OFFSET_END);
      if (e) {
        rc = tool_lib_err(e, "consume %s: partition %" PRId32, topic, i);
        goto out;
      }
    }
  }
  catch_signals();
  while (!stop_signal && (!max || count < max)) {
    size_t want = POLL_BATCH;
    if (max && (uint64_t)(max - count) < want)
      want = (size_t)(max - count);
    int n = q7_consumer_poll(c, recs, want, follow ? FOLLOW_SLICE_MS : IDLE_MS);
    if (n < 0) {
      rc = tool_lib_err(n, "consume %s", topic);
      goto out;
    }
    if (!n) {
      if (!follow)
        break;
      continue;
    }
    for (int i = 0; i < n; i++)
      print_record(&recs[i], r);
    if (fflush(stdout) || ferror(stdout)) {
      rc = tool_fail("consume %s: writing stdout: %s", topic, strerror(errno));
      goto out;
    }
    count += n;
    /* Committed only once printed: at least once, as Kafka's console
     * consumer. */
    if (group && (e = q7_consumer_commit(c)) && (rc = commit_failed(e, topic)))
      goto out;
    progress_tick(&pr, "consumed", count);
  }
  /* When nothing came, the group's position still: the next run starts
   * here.  (Otherwise the last batch's commit holds it; committing the same
   * offsets again would read as a stall to Burrow's rules.) */
  if (group && !count && (e = q7_consumer_commit(c)) && (rc = commit_failed(e, topic)))
    goto out;
  progress_end(&pr);
  fprintf(stderr, "consumed %" PRId64 " records\n", count);
out:
  progress_end(&pr);
  if (c && (e = q7_consumer_close(c)) && !rc)
    rc = tool_lib_err(e, "consume %s: close", topic);
  q7_conf_destroy(conf);
  free(recs);
  return q ? tool_close_store(q, rc) : rc;
}

/* ===================================================================== */
/*  groups, lag                                                          */
/* ===================================================================== */

static int
print_group(const char *group, void *arg)
{
  (void)arg;
  printf("%s\n", group);
  return 0;
}

static int
cmd_groups_list(struct run *r)
{
  q7 *q;
  int rc = open_store(r, false, &q);
  if (rc)
    return rc;
  int e = q7_group_foreach(q, print_group, NULL);
  if (e)
    rc = tool_lib_err(e, "groups list");
  return tool_close_store(q, rc);
}

static int
cmd_groups_delete(struct run *r)
{
  const char *group = r->pos[0];
  q7 *q;
  int rc = open_store(r, false, &q);
  if (rc)
    return rc;
  int e = q7_group_delete(q, group);
  if (e)
    rc = tool_lib_err(e, "groups delete %s", tool_shown(group));
  else
    printf("deleted group %s\n", group);
  return tool_close_store(q, rc);
}

/* --now MS into @now (0 when absent: the store's clock). */
static int
opt_now(struct run *r, int64_t *now)
{
  *now = 0;
  return r->set[O_NOW] ? opt_int(r, O_NOW, 0, INT64_MAX, "a time in epoch ms", now) : 0;
}

/* The report of the group of @r, or 1 with a message (also for NOTFOUND). */
static int
group_report(struct run *r, q7 *q, int64_t now, q7_group_report **out)
{
  const char *group = r->pos[0];
  int e;
  if ((e = q7_group_status(q, group, now, out)))
    return tool_lib_err(e, "%s %s", r->cmd->name, tool_shown(group));
  if ((*out)->status == Q7_STATUS_NOTFOUND) {
    q7_group_report_free(*out);
    *out = NULL;
    return tool_fail("%s: group '%s' not found (no committed offsets, or none newer than "
                "lag.expire.ms)", r->cmd->name, tool_shown(group));
  }
  return 0;
}

/* A table printed with columns as wide as their widest cell. */
#define COLS 6
struct table {
  size_t ncols, nrows, cap;
  char **cells;           /* nrows * ncols, malloc'd */
  size_t width[COLS];
};

static int
table_row(struct table *t, const char *const *cells)
{
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 16;
    char **c = realloc(t->cells, cap * t->ncols * sizeof *c);
    if (!c)
      return tool_fail("out of memory");
    t->cells = c;
    t->cap = cap;
  }
  for (size_t i = 0; i < t->ncols; i++) {
    char *s = strdup(cells[i]);
    if (!s) {
      for (size_t k = 0; k < i; k++)
        free(t->cells[t->nrows * t->ncols + k]);
      return tool_fail("out of memory");
    }
    t->cells[t->nrows * t->ncols + i] = s;
    if (strlen(s) > t->width[i])
      t->width[i] = strlen(s);
  }
  t->nrows++;
  return 0;
}

static void
table_print_free(struct table *t)
{
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t i = 0; i < t->ncols; i++) {
      const char *s = t->cells[r * t->ncols + i];
      if (i + 1 < t->ncols)
        printf("%-*s  ", (int)t->width[i], s);
      else
        printf("%s\n", s);
    }
  for (size_t k = 0; k < t->nrows * t->ncols; k++)
    free(t->cells[k]);
  free(t->cells);
}

static void
i64s(char *buf, int64_t v)
{
  if (v < 0)
    strcpy(buf, "-");
  else
    sprintf(buf, "%" PRId64, v);
}

struct members {
  struct table *tb;
  size_t n;
  int rc;
};

/* One row of groups describe --members. */
static int
member_row(const q7_member *m, void *arg)
{
  struct members *ms = arg;
  char id[24], pid[24], np[24];
  char *assign = malloc(m->partition_count * 12 + 2);
  if (!assign)
    return ms->rc = tool_fail("out of memory");
  size_t o = 0;
  for (size_t i = 0; i < m->partition_count; i++)
    o += (size_t)sprintf(assign + o, "%s%" PRId32, i ? "," : "", m->partitions[i]);
  if (!o)
    strcpy(assign, "-");
  sprintf(id, "%" PRIu64, m->member_id);
  sprintf(pid, "%" PRId32, m->pid);
  sprintf(np, "%zu", m->partition_count);
  const char *row[COLS] = { m->topic, id, pid, np, assign, m->expired ? "expired" : "active" };
  ms->rc = table_row(ms->tb, row);
  free(assign);
  ms->n++;
  return ms->rc;
}

/* groups describe GROUP --members: as kafka-consumer-groups --describe
 * --members --verbose, one row per member. */
static int
describe_members(struct run *r, q7 *q)
{
  static const char *const head[COLS] = { "TOPIC", "CONSUMER-ID", "PID", "#PARTITIONS",
                                          "ASSIGNMENT", "STATE" };
  struct table tb = { .ncols = COLS };
  struct members ms = { &tb, 0, 0 };
  const char *group = r->pos[0];
  int rc = table_row(&tb, head), e;
  if (rc)
    return rc;
  e = q7_group_members(q, group, member_row, &ms);
  if (e && !ms.rc)
    rc = tool_lib_err(e, "groups describe %s", tool_shown(group));
  rc = rc ? rc : ms.rc;
  if (!rc && !ms.n) {
    /* No member now: a group only if it committed. */
    q7_group_report *g;
    int64_t now;
    if (!(rc = opt_now(r, &now)) && !(rc = group_report(r, q, now, &g)))
      q7_group_report_free(g);
  }
  if (rc) {
    for (size_t k = 0; k < tb.nrows * tb.ncols; k++)
      free(tb.cells[k]);
    free(tb.cells);
  } else {
    table_print_free(&tb);
  }
  return rc;
}

static int
cmd_groups_describe(struct run *r)
{
  static const char *const head[COLS] = { "TOPIC", "PARTITION", "CURRENT-OFFSET",
                                          "LOG-END-OFFSET", "LAG", "STATUS" };
  struct table tb = { .ncols = COLS };
  q7_group_report *g = NULL;
  q7_topic *t = NULL;
  int64_t now;
  q7 *q;
  int rc;
  if ((rc = opt_now(r, &now)) || (rc = open_store(r, false, &q)))
    return rc;
  if (r->set[O_MEMBERS]) {
    rc = describe_members(r, q);
    goto out;
  }
  if ((rc = group_report(r, q, now, &g)))
    goto out;
  if ((rc = table_row(&tb, head)))
    goto out;
  for (size_t i = 0; i < g->partition_count; i++) {
    const q7_partition_report *p = &g->partitions[i];
    char part[24], cur[24], leo[24], lag[24];
    int64_t hw = -1;
    if (p->end.offset >= 0) {
      /* The report's own snapshot: LAG is exactly LOG-END minus CURRENT. */
      hw = p->end.offset + p->current_lag;
    } else {
      /* Never committed: the log end now. */
      q7_partition *pp;
      if (t && strcmp(q7_topic_name(t), p->topic)) {
        q7_topic_close(t);
        t = NULL;
      }
      if (!t && q7_topic_open(q, p->topic, &t))
        t = NULL;
      if (!t || q7_topic_partition(t, p->partition, &pp) || q7_partition_offsets(pp, NULL, &hw))
        hw = -1;
    }
    sprintf(part, "%" PRId32, p->partition);
    i64s(cur, p->end.offset);
    i64s(leo, hw);
    i64s(lag, p->end.offset >= 0 ? p->current_lag : -1);
    const char *row[COLS] = { p->topic, part, cur, leo, lag, q7_status_name(p->status) };
    if ((rc = table_row(&tb, row)))
      goto out;
  }
out:
  if (tb.cells)
    table_print_free(&tb);
  q7_topic_close(t);
  q7_group_report_free(g);
  return tool_close_store(q, rc);
}

static int
cmd_lag(struct run *r)
{
  static const char *const head[COLS] = { "TOPIC", "PARTITION", "STATUS",
                                          "LAG", "START-OFFSET", "END-OFFSET" };
  struct table tb = { .ncols = COLS };
  q7_group_report *g = NULL;
  int64_t now;
  q7 *q;
  int rc;
  if ((rc = opt_now(r, &now)) || (rc = open_store(r, false, &q)))
    return rc;
  if ((rc = group_report(r, q, now, &g)))
    goto out;
  printf("%s %s complete=%.2f totallag=%" PRId64 " maxlag=", g->group, q7_status_name(g->status),
         g->complete, g->total_lag);
  if (g->maxlag)
    printf("%s/%" PRId32 "\n", g->maxlag->topic, g->maxlag->partition);
  else
    printf("-\n");
  if ((rc = table_row(&tb, head)))
    goto out;
  for (size_t i = 0; i < g->partition_count; i++) {
    const q7_partition_report *p = &g->partitions[i];
    char part[24], lag[24], start[24], end[24];
    sprintf(part, "%" PRId32, p->partition);
    i64s(lag, p->current_lag);
    i64s(start, p->start.offset);
    i64s(end, p->end.offset);
    const char *row[COLS] = { p->topic, part, q7_status_name(p->status), lag, start, end };
    if ((rc = table_row(&tb, row)))
      goto out;
  }
out:
  if (tb.cells)
    table_print_free(&tb);
  q7_group_report_free(g);
  return tool_close_store(q, rc);
}

/* ===================================================================== */
/*  retention, replica                                                   */
/* ===================================================================== */

static int
cmd_retention_sweep(struct run *r)
{
  int64_t now, removed = 0;
  q7 *q;
  int rc;
  if ((rc = opt_now(r, &now)) || (rc = open_store(r, false, &q)))
    return rc;
  int e = q7_retention_sweep(q, now, &removed);
  if (e)
    rc = tool_lib_err(e, "retention sweep");
  else
    printf("removed %" PRId64 " records\n", removed);
  return tool_close_store(q, rc);
}

/* q7_topic_foreach callback: verify every mirror copy of one topic. */
struct verify_ctx {
  q7 *q;
  int replicas;
  long checked, differ;
};

static int
verify_topic(const char *name, int32_t partitions, void *arg)
{
  struct verify_ctx *v = arg;
  for (int32_t p = 0; p < partitions; p++) {
    for (int r = 1; r < v->replicas; r++) {
      int64_t end;
      int in_sync;
      int e = q7_replica_status(v->q, name, p, r, &end, &in_sync);
      if (e == Q7_ENOENT)
        continue; /* this mirror holds no copy of the partition */
      if (e)
        return tool_lib_err(e, "replica verify %s/%d", tool_shown(name), (int)p);
      e = q7_replica_verify(v->q, name, p, r);
      v->checked++;
      if (e == Q7_ECORRUPT) {
        v->differ++;
        printf("%s\t%d\treplica %d\tDIFFERS\t%s\n", name, (int)p, r, q7_last_error());
      } else if (e) {
        return tool_lib_err(e, "replica verify %s/%d replica %d", tool_shown(name), (int)p, r);
      } else {
        printf("%s\t%d\treplica %d\tok\t%s\n", name, (int)p, r,
               in_sync ? "in sync" : "out of sync");
      }
    }
  }
  return 0;
}

static int
cmd_replica_verify(struct run *r)
{
  q7 *q;
  int rc = open_store(r, false, &q);
  if (rc)
    return rc;
  struct verify_ctx v = { q, q7_replica_count(q), 0, 0 };
  if (v.replicas <= 1) {
    printf("store %s has no mirrors here: give --replica-dirs DIR1,DIR2 (or set "
           "Q7_REPLICA_DIRS) as the programs that write it do\n", r->dir);
    return tool_close_store(q, 0);
  }
  int e = q7_topic_foreach(q, verify_topic, &v);
  if (e > 0)
    rc = e;
  else if (e)
    rc = tool_lib_err(e, "replica verify");
  else if (v.differ)
    rc = tool_fail("replica verify: %ld of %ld mirror copies differ from the primary", v.differ,
              v.checked);
  else
    fprintf(stderr, "replica verify: %ld mirror copies identical to the primary up to the "
            "high watermark\n", v.checked);
  return tool_close_store(q, rc);
}

/* ===================================================================== */
/*  main                                                                 */
/* ===================================================================== */

static const struct cmd cmds[] = {
  { "topic create", "topic create NAME [--partitions N] [--config KEY=VALUE ...]",
    COMMON | BIT(O_PARTITIONS) | BIT(O_CONFIG), 1, 1, "NAME",
    "Create topic NAME with N partitions (default 1) and the given topic configs\n"
    "(retention.ms, retention.bytes, message.max.bytes, cleanup.policy, ...).\n"
    "Creates the store directory if it does not exist.\n\n"
    "Options:\n"
    "  --partitions N          number of partitions, 1..10000 (default 1)\n"
    "  --config KEY=VALUE      a topic config; repeat for more\n",
    cmd_topic_create },
  { "topic list", "topic list", COMMON, 0, 0, "",
    "Print the name of every topic, one a line, in name order.\n\nOptions:\n", cmd_topic_list },
  { "topic describe", "topic describe NAME", COMMON, 1, 1, "NAME",
    "Print the partition count, every topic config, and per partition the log\n"
    "start offset, the high watermark and the number of records kept.\n\nOptions:\n",
    cmd_topic_describe },
  { "topic alter", "topic alter NAME --config KEY=VALUE ...", COMMON | BIT(O_CONFIG), 1, 1,
    "NAME",
    "Set topic configs of NAME; every value is checked before the first is set.\n\n"
    "Options:\n"
    "  --config KEY=VALUE      a topic config; repeat for more\n",
    cmd_topic_alter },
  { "topic delete", "topic delete NAME", COMMON, 1, 1, "NAME",
    "Delete topic NAME, its records and the offsets groups committed on it.\n\nOptions:\n",
    cmd_topic_delete },
  { "produce", "produce TOPIC [-k SEP] [--partition N] [--header KEY=VALUE ...]",
    COMMON | BIT(O_KEYSEP) | BIT(O_PARTITION) | BIT(O_HEADER), 1, 1, "TOPIC",
    "Send one record per line of standard input (without its newline) to TOPIC,\n"
    "then flush and print \"produced N records\" on stderr.\n\n"
    "Options:\n"
    "  -k, --key-separator SEP the key is the part of a line before the first SEP,\n"
    "                          the value the rest; lines without SEP have no key\n"
    "  --partition N           send every record to partition N (default: keyed\n"
    "                          records by murmur2 of the key, as Kafka)\n"
    "  --header KEY=VALUE      add a header to every record; repeat for more\n",
    cmd_produce },
  { "consume",
    "consume TOPIC [-g GROUP] [--from-beginning] [--max N] [--follow] [--partition N]\n"
    "          [--offset N] [--print-key] [--print-offset] [--print-headers]",
    COMMON | BIT(O_GROUP) | BIT(O_FROM_BEGINNING) | BIT(O_MAX) | BIT(O_FOLLOW) |
      BIT(O_PARTITION) | BIT(O_OFFSET) | BIT(O_PRINT_KEY) | BIT(O_PRINT_OFFSET) |
      BIT(O_PRINT_HEADERS),
    1, 1, "TOPIC",
    "Print the value of each record of TOPIC on its own line (\"null\" for a null\n"
    "value).  Stops when no record came for 500 ms, or after --max records; with\n"
    "--follow, runs until SIGINT or SIGTERM.  Prints \"consumed N records\" on stderr.\n\n"
    "Options:\n"
    "  -g, --group GROUP       read as consumer group GROUP: from its committed\n"
    "                          offsets, committing after printing\n"
    "  --from-beginning        start from the log start (in a group: where the\n"
    "                          group has no committed offset); default the end\n"
    "  --max N                 stop after N records\n"
    "  --follow                wait for new records until SIGINT or SIGTERM\n"
    "  --partition N           read partition N only\n"
    "  --offset N              start at offset N (needs --partition)\n"
    "  --print-offset          prefix \"PARTITION:OFFSET<TAB>\"\n"
    "  --print-headers         prefix \"KEY=VALUE,...<TAB>\"\n"
    "  --print-key             prefix \"KEY<TAB>\" (\"null\" when there is no key)\n",
    cmd_consume },
  { "groups list", "groups list", COMMON, 0, 0, "",
    "Print every consumer group with committed offsets, one a line.\n\nOptions:\n",
    cmd_groups_list },
  { "groups describe", "groups describe GROUP [--members] [--now MS]",
    COMMON | BIT(O_NOW) | BIT(O_MEMBERS), 1, 1, "GROUP",
    "Print a table, as kafka-consumer-groups --describe, one row per partition of\n"
    "every topic GROUP committed on: TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET\n"
    "LAG STATUS (\"-\" for a partition never committed).\n\n"
    "Options:\n"
    "  --members               instead, one row per member of the group now:\n"
    "                          TOPIC CONSUMER-ID PID #PARTITIONS ASSIGNMENT STATE\n"
    "  --now MS                evaluate at epoch milliseconds MS (default: now)\n",
    cmd_groups_describe },
  { "groups delete", "groups delete GROUP", COMMON, 1, 1, "GROUP",
    "Forget GROUP: its committed offsets and commit history.\n\nOptions:\n",
    cmd_groups_delete },
  { "lag", "lag GROUP [--now MS]", COMMON | BIT(O_NOW), 1, 1, "GROUP",
    "Print GROUP's status as Burrow evaluates it: a line\n"
    "\"GROUP STATUS complete=X totallag=N maxlag=TOPIC/PARTITION\", then a table\n"
    "TOPIC PARTITION STATUS LAG START-OFFSET END-OFFSET, one row per partition.\n\n"
    "Options:\n"
    "  --now MS                evaluate at epoch milliseconds MS (default: now)\n",
    cmd_lag },
  { "retention sweep", "retention sweep [--now MS]", COMMON | BIT(O_NOW), 0, 0, "",
    "Remove the records every topic's retention.ms and retention.bytes let go,\n"
    "now, and print \"removed N records\".\n\n"
    "Options:\n"
    "  --now MS                take epoch milliseconds MS as now (default: now)\n",
    cmd_retention_sweep },
  { "replica verify", "replica verify [--replica-dirs DIR1,DIR2,...]",
    COMMON | BIT(O_REPLICA_DIRS), 0, 0, "",
    "Compare every mirror copy of every partition with the primary, record by record,\n"
    "up to the high watermark; one line per copy (ok, or DIFFERS naming the offset).\n"
    "Exit 1 when any copy differs.  The mirrors are the store's replica.dirs.\n\n"
    "Options:\n"
    "  --replica-dirs DIRS     the mirror directories, comma-separated, in the order\n"
    "                          the store was opened with (default: $Q7_REPLICA_DIRS)\n",
    cmd_replica_verify },
};
#define NCMDS (sizeof cmds / sizeof *cmds)

static void
print_main_help(void)
{
  printf("Usage: q7 [-d DIR] COMMAND [ARGS...]\n\n"
         "Kafka's console tools over one libq7 store (a directory).\n\nCommands:\n");
  for (size_t i = 0; i < NCMDS; i++)
    printf("  %s\n", cmds[i].synopsis);
  printf("  serve [--listen ADDR:PORT] --cluster NAME=DIR ... [--allow-delete] [--allow-remote]\n"
         "  kafka export TOPIC --brokers HOST:PORT [--kafka-topic NAME] [--follow] [-X KEY=VALUE ...]\n"
         "  kafka import KAFKA_TOPIC --brokers HOST:PORT [--topic NAME] [--group GROUP] [--follow]\n"
         "          [-X KEY=VALUE ...]\n\n"
         "Options:\n"
         "  -d, --dir DIR     the store directory (default: $Q7_DIR)\n"
         "  -h, --help        this help; 'q7 COMMAND --help' for a command's\n"
         "  --version         the version of the tool and of libq7\n\n"
         "Exit status: 0 success, 1 failure, 2 usage error.  See q7(1).\n");
}

/* Help for the commands that start with @word (topic, groups, ...). */
static void
print_word_help(const char *word)
{
  size_t n = strlen(word);
  printf("Usage:\n");
  for (size_t i = 0; i < NCMDS; i++)
    if (!strncmp(cmds[i].name, word, n) && cmds[i].name[n] == ' ')
      printf("  q7 [-d DIR] %s\n", cmds[i].synopsis);
  printf("\n'q7 %s ACTION --help' for an action's options.\n", word);
}

/* The actions after @word, "create, list, ..." into @buf. */
static const char *
actions(const char *word, char *buf, size_t len)
{
  size_t n = strlen(word), o = 0;
  buf[0] = 0;
  for (size_t i = 0; i < NCMDS; i++)
    if (!strncmp(cmds[i].name, word, n) && cmds[i].name[n] == ' ')
      o += (size_t)snprintf(buf + o, len - o, "%s%s", o ? ", " : "", cmds[i].name + n + 1);
  return buf;
}

static bool
is_help(const char *a)
{
  return !strcmp(a, "-h") || !strcmp(a, "--help");
}

static int
dispatch(int argc, char **argv)
{
  const char *dir = getenv("Q7_DIR");
  bool help = false, version = false;
  char err[300] = "";
  int i;

  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || !a[1])
      break;
    if (!strcmp(a, "--")) {
      i++;
      break;
    }
    if (is_help(a)) {
      help = true;
    } else if (!strcmp(a, "--version")) {
      version = true;
    } else if (!strcmp(a, "-d") || !strcmp(a, "--dir")) {
      if (i + 1 >= argc) {
        if (!err[0])
          snprintf(err, sizeof err, "option '%s' needs an argument (DIR)", a);
      } else {
        dir = argv[++i];
      }
    } else if (!strncmp(a, "-d", 2)) {
      dir = a + 2;
    } else if (!strncmp(a, "--dir=", 6)) {
      dir = a + 6;
    } else if (!err[0]) {
      snprintf(err, sizeof err, "unknown option '%s'", tool_shown(a));
    }
  }
  if (err[0] && !help)
    for (int k = i; k < argc && !help; k++)
      help = is_help(argv[k]);
  if (help) {
    print_main_help();
    return 0;
  }
  if (err[0])
    return tool_usage_err("%s (see 'q7 --help')", err);
  if (version) {
    printf("q7 %d.%d.%d (libq7 %s)\n", Q7_VERSION_MAJOR, Q7_VERSION_MINOR, Q7_VERSION_PATCH,
           q7_version());
    return 0;
  }
  if (i >= argc)
    return tool_usage_err("missing command (see 'q7 --help')");

  const char *word = argv[i];
  if (!strcmp(word, "serve"))
    return q7_tool_serve(argc - i, argv + i);
  if (!strcmp(word, "kafka")) {
    if (dir && setenv("Q7_DIR", dir, 1))
      return tool_fail("out of memory");
    return q7_tool_kafka(argc - i, argv + i);
  }
  for (size_t k = 0; k < NCMDS; k++)
    if (!strcmp(cmds[k].name, word))
      return run_cmd(&cmds[k], dir, argc - i - 1, argv + i + 1);
  char list[200];
  if (!*actions(word, list, sizeof list))
    return tool_usage_err("unknown command '%s' (see 'q7 --help')", tool_shown(word));
  if (i + 1 >= argc)
    return tool_usage_err("%s: missing action (%s)", word, list);
  const char *action = argv[i + 1];
  if (is_help(action)) {
    print_word_help(word);
    return 0;
  }
  for (size_t k = 0; k < NCMDS; k++) {
    size_t n = strlen(word);
    if (!strncmp(cmds[k].name, word, n) && cmds[k].name[n] == ' ' &&
        !strcmp(cmds[k].name + n + 1, action))
      return run_cmd(&cmds[k], dir, argc - i - 2, argv + i + 2);
  }
  for (int k = i + 2; k < argc; k++)
    if (is_help(argv[k])) {
      print_word_help(word);
      return 0;
    }
  return tool_usage_err("%s: unknown action '%s' (%s)", word, tool_shown(action), list);
}

int
main(int argc, char **argv)
{
  int rc = dispatch(argc, argv);
  /* A full disk or a closed pipe under stdout is a failure, said once. */
  if (fflush(stdout) || ferror(stdout)) {
    int e = errno;
    if (!rc)
      rc = tool_fail("writing stdout: %s", strerror(e ? e : EIO));
  }
  return rc;
}
