/* kafka.c - `q7 kafka export` and `q7 kafka import`: move a topic between a
 * libq7 store and an Apache Kafka cluster, through librdkafka.
 *
 *   q7 -d DIR kafka export TOPIC --brokers HOST:PORT [--kafka-topic NAME]
 *                          [--follow] [-X KEY=VALUE ...]
 *   q7 -d DIR kafka import KAFKA_TOPIC --brokers HOST:PORT [--topic NAME]
 *                          [--group GROUP] [--follow] [-X KEY=VALUE ...]
 *
 * export reads TOPIC as the libq7 consumer group q7-export-TOPIC (auto
 * commit off) and produces every record -- key, value, headers, timestamp --
 * with an idempotent librdkafka producer.  Each poll's records are produced,
 * then every delivery report of them is awaited, and only then is the libq7
 * position committed: at least once across crashes, never a loss; within one
 * producer session idempotence keeps Kafka from writing a retried batch
 * twice.  When the Kafka topic has the partition count of the libq7 topic,
 * each record keeps its partition index; otherwise Kafka's partitioner
 * places it (partitioner=murmur2_random: a keyed record on murmur2(key) mod
 * the Kafka count, as the Java client does; a keyless one anywhere).
 *
 * import is the reverse: a Kafka consumer group (auto commit off) whose
 * records are sent to a libq7 topic and flushed (durable), after which the
 * Kafka offsets are committed.  The libq7 topic is created with the Kafka
 * topic's partition count when it does not exist.
 *
 * Without --follow both stop once caught up (every partition they hold read
 * to its end); SIGINT or SIGTERM finish the batch in hand, commit it and
 * exit 0.  On a terminal, stderr shows records, records/s and the lag.  -X passes librdkafka settings
 * through (the producer's for export, the consumer's for import), after the
 * tool's own, so they may override them.
 *
 * Built only when librdkafka is there (the Makefile defines
 * Q7_HAVE_RDKAFKA when `pkg-config rdkafka` finds it); otherwise the command
 * says so and exits 2.  Uses only <q7.h> of libq7. */
#include <q7.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#ifndef Q7_HAVE_RDKAFKA

int
q7_tool_kafka(int argc, char **argv)
{
  (void)argc;
  (void)argv;
  fputs("q7 kafka: built without librdkafka (install librdkafka-dev and rebuild)\n", stderr);
  return 2;
}

#else /* Q7_HAVE_RDKAFKA */

#include <librdkafka/rdkafka.h>

#define EXIT_USAGE 2
#define EXPORT_BATCH 10000      /* libq7 records per poll, produced then flushed */
#define IMPORT_BATCH 10000      /* Kafka records sent to libq7 per flush and commit */
#define SLICE_MS 200            /* longest wait before a stop is noticed */
#define IDLE_MS 1000            /* without --follow: caught up after this long idle */
#define METADATA_MS 10000       /* how long to wait for the Kafka topic's metadata */
#define ASSIGN_WAIT_MS 30000    /* import without --follow: wait this long for partitions */
#define EXPORT_PREFIX "q7-export-"
#define IMPORT_PREFIX "q7-import-"

/* SIGINT/SIGTERM: the number received.  One finishes the batch in hand and
 * commits it; a second while waiting for Kafka gives up on that batch. */
static volatile sig_atomic_t signals;

static void
on_signal(int sig)
{
  (void)sig;
  if (signals < 100)
    signals++;
}

/* No SA_RESTART: a blocking wait in this thread returns early. */
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
/*  Messages                                                             */
/* ===================================================================== */

static int64_t
mono_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Progress on stderr while it is a terminal: records, records/s and lag. */
struct progress {
  bool on, shown;
  int64_t start_ms, last_ms, last_count;
};

static void
progress_init(struct progress *p)
{
  memset(p, 0, sizeof *p);
  p->on = isatty(STDERR_FILENO);
  p->start_ms = p->last_ms = mono_ms();
}

static bool
progress_due(const struct progress *p)
{
  return p->on && mono_ms() - p->last_ms >= 500;
}

static void
progress_show(struct progress *p, const char *what, int64_t count, int64_t lag)
{
  int64_t now = mono_ms();
  double secs = (double)(now - p->last_ms) / 1000.0;
  double rate = secs > 0 ? (double)(count - p->last_count) / secs : 0;
  p->last_ms = now;
  p->last_count = count;
  p->shown = true;
  fprintf(stderr, "\r\033[Kq7: %s: %" PRId64 " records, %.0f records/s, lag ", what, count, rate);
  if (lag >= 0)
    fprintf(stderr, "%" PRId64, lag);
  else
    fputs("?", stderr);
}

static void
progress_end(struct progress *p)
{
  if (p->shown)
    fputs("\r\033[K", stderr);
  p->shown = false;
}

/* "in S s (R records/s)" for the last line. */
static void
rate_text(char *buf, size_t len, int64_t count, int64_t start_ms)
{
  double secs = (double)(mono_ms() - start_ms) / 1000.0;
  if (secs <= 0)
    secs = 0.001;
  snprintf(buf, len, "in %.1f s (%.0f records/s)", secs, (double)count / secs);
}

/* ===================================================================== */
/*  Command line                                                         */
/* ===================================================================== */

struct args {
  const char *action;       /* "export" or "import" */
  const char *dir;
  const char *name;         /* the positional argument */
  const char *brokers;
  const char *kafka_topic;  /* export: --kafka-topic */
  const char *topic;        /* import: --topic */
  const char *group;        /* import: --group */
  bool follow;
  const char **props;       /* every -X, "KEY=VALUE" */
  size_t nprops;
};

static const char export_synopsis[] =
  "kafka export TOPIC --brokers HOST:PORT [--kafka-topic NAME] [--follow]\n"
  "          [-X KEY=VALUE ...]";
static const char import_synopsis[] =
  "kafka import KAFKA_TOPIC --brokers HOST:PORT [--topic NAME] [--group GROUP]\n"
  "          [--follow] [-X KEY=VALUE ...]";

static void
print_kafka_help(void)
{
  printf("Usage:\n  q7 [-d DIR] %s\n  q7 [-d DIR] %s\n\n"
         "'q7 kafka ACTION --help' for an action's options.\n",
         export_synopsis, import_synopsis);
}

static void
print_action_help(bool export)
{
  if (export) {
    printf("Usage: q7 [-d DIR] %s\n\n"
           "Produce every record of libq7 topic TOPIC -- key, value, headers, timestamp --\n"
           "to a Kafka topic with an idempotent producer.  Reads TOPIC as consumer group\n"
           "q7-export-TOPIC and commits each batch only after Kafka acknowledged all of\n"
           "it: at least once across crashes, never a loss.  With the same partition\n"
           "count on both sides every record keeps its partition; otherwise keyed\n"
           "records go to murmur2(key) mod the Kafka count and keyless ones anywhere.\n"
           "The Kafka topic must exist.  Stops once every partition is read to its end\n"
           "and prints \"exported N records ...\" on stderr.\n\n"
           "Options:\n"
           "  --brokers HOST:PORT     Kafka's bootstrap servers (comma-separated)\n"
           "  --kafka-topic NAME      the Kafka topic (default: TOPIC)\n"
           "  --follow                keep exporting new records until SIGINT or SIGTERM\n"
           "  -X KEY=VALUE            a librdkafka producer setting; repeat for more\n",
           export_synopsis);
  } else {
    printf("Usage: q7 [-d DIR] %s\n\n"
           "Consume Kafka topic KAFKA_TOPIC as Kafka consumer group GROUP and send every\n"
           "record -- key, value, headers, timestamp -- to a libq7 topic, committing the\n"
           "Kafka offsets only once the records are durable in libq7.  The libq7 topic is\n"
           "created with the Kafka topic's partition count when missing (and the store\n"
           "with it).  With the same partition count on both sides every record keeps its\n"
           "partition; otherwise keyed records go to murmur2(key) mod the libq7 count.\n"
           "Stops at the end of every partition and prints \"imported N records ...\".\n\n"
           "Options:\n"
           "  --brokers HOST:PORT     Kafka's bootstrap servers (comma-separated)\n"
           "  --topic NAME            the libq7 topic (default: KAFKA_TOPIC)\n"
           "  -g, --group GROUP       the Kafka consumer group (default:\n"
           "                          q7-import-KAFKA_TOPIC)\n"
           "  --follow                keep importing new records until SIGINT or SIGTERM\n"
           "  -X KEY=VALUE            a librdkafka consumer setting; repeat for more\n",
           import_synopsis);
  }
  printf("  -d, --dir DIR           the store directory (default: $Q7_DIR)\n"
         "  -h, --help              this help\n");
}

/* Is @a the option --@name or, when @letter, -@letter?  Its value, if it
 * takes one, goes to *@val: inline (--name=V, -xV) or the next word. */
enum { NO_MATCH, MATCHED, MISSING };

static int
match_opt(int argc, char **argv, int *i, const char *name, char letter, bool takes,
          const char **val)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  const char *inl = NULL;
  if (a[0] == '-' && a[1] == '-' && !strncmp(a + 2, name, n) && (!a[2 + n] || a[2 + n] == '=')) {
    if (a[2 + n] == '=')
      inl = a + 3 + n;
  } else if (letter && a[0] == '-' && a[1] == letter) {
    if (a[2])
      inl = a + 2;
  } else {
    return NO_MATCH;
  }
  if (!takes)
    return inl ? NO_MATCH : MATCHED;
  if (inl) {
    *val = inl;
    return MATCHED;
  }
  if (*i + 1 >= argc)
    return MISSING;
  *val = argv[++*i];
  return MATCHED;
}

/* Parse argv[2..] of `kafka ACTION ...`.  Returns 0 to run, -1 when help
 * was printed, or EXIT_USAGE with the message said. */
static int
parse_args(int argc, char **argv, struct args *a)
{
  bool export = !strcmp(a->action, "export");
  char err[400] = "";
  bool help = false, opts_done = false;
  int npos = 0;
  const char *extra = NULL;

  a->props = calloc((size_t)argc + 1, sizeof *a->props);
  if (!a->props)
    return tool_fail("out of memory");
  for (int i = 2; i < argc; i++) {
    const char *s = argv[i], *v = NULL;
    int m;
    if (opts_done || s[0] != '-' || !s[1]) {
      if (npos++ == 0)
        a->name = s;
      else if (!extra)
        extra = s;
      continue;
    }
    if (!strcmp(s, "--")) {
      opts_done = true;
      continue;
    }
    static const struct {
      const char *name;
      char letter;
      bool takes;
      int only;               /* 0 both, 1 export, 2 import */
    } opts[] = {
      { "help", 'h', false, 0 }, { "dir", 'd', true, 0 }, { "brokers", 0, true, 0 },
      { "follow", 0, false, 0 }, { "X", 'X', true, 0 }, { "kafka-topic", 0, true, 1 },
      { "topic", 0, true, 2 }, { "group", 'g', true, 2 },
    };
    int k, nopts = (int)(sizeof opts / sizeof *opts);
    m = NO_MATCH;
    for (k = 0; k < nopts; k++) {
      if (opts[k].only && opts[k].only != (export ? 1 : 2))
        continue;
      if ((m = match_opt(argc, argv, &i, opts[k].name, opts[k].letter, opts[k].takes, &v)))
        break;
    }
    if (m == NO_MATCH) {
      if (!err[0])
        snprintf(err, sizeof err, "unknown option '%s'", tool_shown(s));
      continue;
    }
    if (m == MISSING) {
      if (!err[0])
        snprintf(err, sizeof err, "option '%s' needs an argument", tool_shown(s));
      continue;
    }
    switch (opts[k].name[0] == 'k' ? 'K' : opts[k].name[0]) {
    case 'h': help = true; break;
    case 'd': a->dir = v; break;
    case 'b': a->brokers = v; break;
    case 'f': a->follow = true; break;
    case 'X': a->props[a->nprops++] = v; break;
    case 'K': a->kafka_topic = v; break;
    case 't': a->topic = v; break;
    case 'g': a->group = v; break;
    }
  }
  if (help) {
    print_action_help(export);
    return -1;
  }
  if (!err[0] && !a->name)
    snprintf(err, sizeof err, "missing %s", export ? "TOPIC" : "KAFKA_TOPIC");
  if (!err[0] && extra)
    snprintf(err, sizeof err, "unexpected argument '%s'", tool_shown(extra));
  if (!err[0] && (!a->brokers || !a->brokers[0]))
    snprintf(err, sizeof err, "missing --brokers HOST:PORT");
  for (size_t k = 0; !err[0] && k < a->nprops; k++) {
    const char *eq = strchr(a->props[k], '=');
    if (!eq || eq == a->props[k])
      snprintf(err, sizeof err, "-X: '%s' is not KEY=VALUE", tool_shown(a->props[k]));
  }
  if (!err[0] && a->kafka_topic && !a->kafka_topic[0])
    snprintf(err, sizeof err, "--kafka-topic: the topic name must not be empty");
  if (!err[0] && a->topic && !a->topic[0])
    snprintf(err, sizeof err, "--topic: the topic name must not be empty");
  if (!err[0] && a->group && !a->group[0])
    snprintf(err, sizeof err, "--group: the group name must not be empty");
  if (err[0])
    return tool_usage_err("kafka %s: %s (see 'q7 kafka %s --help')", a->action, err, a->action);
  return 0;
}

/* ===================================================================== */
/*  Shared                                                               */
/* ===================================================================== */

/* Open the store of @a; @create: make it when missing (import). */
static int
open_store(const struct args *a, bool create, q7 **q)
{
  struct stat st;
  if (!a->dir || !a->dir[0])
    return tool_usage_err("kafka %s: no store directory: give -d DIR or set Q7_DIR", a->action);
  if (!create && stat(a->dir, &st) != 0 && errno == ENOENT)
    return tool_fail("kafka %s: no store at '%s' (no such directory)", a->action, tool_shown(a->dir));
  q7_conf *conf = q7_conf_new();
  if (!conf)
    return tool_lib_err(Q7_ENOMEM, "open %s", tool_shown(a->dir));
  int rc = q7_conf_set(conf, "retention.check.interval.ms", "0");
  if (!rc)
    rc = q7_open(q, a->dir, conf);
  if (rc)
    rc = tool_lib_err(rc, "open %s", tool_shown(a->dir));
  q7_conf_destroy(conf);
  return rc;
}

/* What librdkafka tells about the connection, for the user: warnings and
 * errors, each distinct line at most once every 10 s.  Logs go through the
 * client's queue (log.queue), so this runs in the tool's one thread, from
 * rd_kafka_poll, rd_kafka_flush or rd_kafka_consumer_poll. */
struct kstate {
  const char *what;          /* "kafka export" */
  char last_log[64];
  int64_t last_log_ms;
  struct progress *pr;
  bool quiet;                /* the command failed and said why: no more */
};

static void
on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
  struct kstate *ks = rd_kafka_opaque(rk);
  /* A broker that cannot be reached is said by the error callback too. */
  if (!ks || ks->quiet || level > 4 || !strcmp(fac, "FAIL"))
    return;
  int64_t now = mono_ms();
  if (!strncmp(ks->last_log, buf, sizeof ks->last_log - 1) && now - ks->last_log_ms < 10000)
    return;
  snprintf(ks->last_log, sizeof ks->last_log, "%s", buf);
  ks->last_log_ms = now;
  if (ks->pr)
    progress_end(ks->pr);
  fprintf(stderr, "q7: %s: librdkafka %s: %s\n", ks->what, fac, buf);
}

/* Errors the client recovers from by itself (a broker down, a timeout) are
 * shown as log lines are; fatal ones end the command (the loops ask
 * rd_kafka_fatal_error). */
static void
on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
  (void)opaque;
  if (err != RD_KAFKA_RESP_ERR__FATAL)
    on_log(rk, 3, "ERROR", reason);
}

/* A librdkafka conf with the tool's settings @defs (NULL-terminated pairs),
 * then every -X.  Returns NULL with the message said and *@rc set. */
static rd_kafka_conf_t *
make_conf(const struct args *a, const char *const *defs, struct kstate *ks, int *rc)
{
  char errstr[512];
  rd_kafka_conf_t *conf = rd_kafka_conf_new();
  if (!conf) {
    *rc = tool_fail("out of memory");
    return NULL;
  }
  rd_kafka_conf_set_opaque(conf, ks);
  rd_kafka_conf_set_log_cb(conf, on_log);
  rd_kafka_conf_set_error_cb(conf, on_error);
  if (rd_kafka_conf_set(conf, "log.queue", "true", errstr, sizeof errstr)) {
    *rc = tool_fail("kafka %s: log.queue: %s", a->action, errstr);
    goto bad;
  }
  if (rd_kafka_conf_set(conf, "bootstrap.servers", a->brokers, errstr, sizeof errstr)) {
    *rc = tool_usage_err("kafka %s: --brokers: %s", a->action, errstr);
    goto bad;
  }
  for (size_t i = 0; defs[i]; i += 2)
    if (rd_kafka_conf_set(conf, defs[i], defs[i + 1], errstr, sizeof errstr)) {
      *rc = tool_fail("kafka %s: %s=%s: %s", a->action, defs[i], defs[i + 1], errstr);
      goto bad;
    }
  for (size_t i = 0; i < a->nprops; i++) {
    const char *p = a->props[i], *eq = strchr(p, '=');
    char *key = strndup(p, (size_t)(eq - p));
    if (!key) {
      *rc = tool_fail("out of memory");
      goto bad;
    }
    rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, eq + 1, errstr, sizeof errstr);
    free(key);
    if (r != RD_KAFKA_CONF_OK) {
      *rc = tool_usage_err("kafka %s: -X %s: %s", a->action, tool_shown(p), errstr);
      goto bad;
    }
  }
  return conf;
bad:
  rd_kafka_conf_destroy(conf);
  return NULL;
}

/* Returned when SIGINT or SIGTERM came before the work began: exit 0. */
#define STOPPED (-1)

/* The partition count of Kafka topic @topic, asking for up to METADATA_MS
 * (a topic being created has no leaders yet).  The request lists every
 * topic rather than naming this one, so that it never makes a broker with
 * auto.create.topics.enable create it.  Returns 0, the exit code (said),
 * or STOPPED. */
static int
kafka_partitions(rd_kafka_t *rk, const char *action, const char *topic, const char *brokers,
                 int32_t *count)
{
  int64_t deadline = mono_ms() + METADATA_MS;
  rd_kafka_resp_err_t err;
  for (;;) {
    const struct rd_kafka_metadata *md = NULL;
    int64_t left = deadline - mono_ms();
    bool found = false;
    /* A second at a time, showing what librdkafka says in between. */
    err = rd_kafka_metadata(rk, 1, NULL, &md, (int)(left > 1000 ? 1000 : left > 0 ? left : 1));
    rd_kafka_poll(rk, 0);
    if (!err) {
      err = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
      for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic))
          continue;
        found = true;
        err = md->topics[i].err;
        *count = md->topics[i].partition_cnt;
        for (int k = 0; !err && k < md->topics[i].partition_cnt; k++)
          if (md->topics[i].partitions[k].leader < 0)
            err = RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE;
      }
      rd_kafka_metadata_destroy(md);
      if (!err)
        break;
      if (!found)
        return tool_fail("kafka %s: Kafka topic '%s' does not exist at %s (create it first%s)", action,
                    tool_shown(topic), tool_shown(brokers),
                    !strcmp(action, "export") ? ", with the libq7 topic's partition count" : "");
    }
    if (signals)
      return STOPPED;
    if (mono_ms() >= deadline)
      return tool_fail("kafka %s: no metadata of Kafka topic '%s' from %s within %d s: %s", action,
                  tool_shown(topic), tool_shown(brokers), METADATA_MS / 1000, rd_kafka_err2str(err));
    if (err != RD_KAFKA_RESP_ERR__TIMED_OUT && err != RD_KAFKA_RESP_ERR__TRANSPORT)
      usleep(100 * 1000);
  }
  if (*count < 1)
    return tool_fail("kafka %s: Kafka topic '%s' has no partitions", action, tool_shown(topic));
  return 0;
}

/* 1 with the message when librdkafka raised a fatal error, else 0. */
static int
check_fatal(rd_kafka_t *rk, const char *what)
{
  char errstr[512];
  rd_kafka_resp_err_t err = rd_kafka_fatal_error(rk, errstr, sizeof errstr);
  if (!err)
    return 0;
  return tool_fail("%s: fatal Kafka error: %s: %s", what, rd_kafka_err2name(err), errstr);
}

/* ===================================================================== */
/*  export                                                               */
/* ===================================================================== */

struct export_dr {
  int64_t delivered, failed;
  rd_kafka_resp_err_t first_err;
  intptr_t first_index;        /* index in the poll's records */
  int32_t first_kafka_partition;
};

/* The opaque of an export's producer: its kstate first (for on_log), then
 * its delivery state. */
struct export_ctx {
  struct kstate ks;
  struct export_dr *dr;
};

static void
on_export_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
  (void)rk;
  struct export_dr *dr = ((struct export_ctx *)opaque)->dr;
  if (!m->err) {
    dr->delivered++;
    return;
  }
  if (!dr->failed++) {
    dr->first_err = m->err;
    dr->first_index = (intptr_t)m->_private;
    dr->first_kafka_partition = m->partition;
  }
}

/* What the group has yet to read of the partitions this member holds (how
 * many: *@held, if not NULL), or -1 when unknown. */
static int64_t
export_lag(q7_consumer *c, q7_topic *t, const char *topic, int *held)
{
  int32_t parts[256];
  const char *names[256];
  int n = q7_consumer_assignment(c, names, parts, 256);
  if (held)
    *held = n;
  if (n < 0 || n > 256)
    return -1;
  int64_t lag = 0;
  for (int i = 0; i < n; i++) {
    q7_partition *p;
    int64_t hw, pos;
    if (q7_topic_partition(t, parts[i], &p) || q7_partition_offsets(p, NULL, &hw) ||
        q7_consumer_position(c, topic, parts[i], &pos))
      return -1;
    lag += hw > pos ? hw - pos : 0;
  }
  return lag;
}

/* Without --follow: done once this member holds partitions and has read
 * each to its end.  (Holding none, it waits IDLE_MS.) */
static bool
caught_up(q7_consumer *c, q7_topic *t, const char *topic)
{
  int held;
  return export_lag(c, t, topic, &held) == 0 && held > 0;
}

static int
kafka_export(struct args *a)
{
  const char *topic = a->name;
  const char *ktopic = a->kafka_topic ? a->kafka_topic : topic;
  char what[64], group[300], rate[80];
  struct progress pr;
  struct export_dr dr;
  struct export_ctx ctx;
  q7 *q = NULL;
  q7_topic *t = NULL;
  q7_conf *cconf = NULL;
  q7_consumer *c = NULL;
  q7_record *recs = NULL;
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_t *rkt = NULL;
  int32_t nparts, kparts = 0;
  int64_t exported = 0, idle_since = mono_ms(), start_ms;
  bool same;
  int rc = 0, e;

  snprintf(what, sizeof what, "kafka export");
  if (strlen(topic) + sizeof EXPORT_PREFIX > 256)
    return tool_usage_err("kafka export: topic name too long for the group " EXPORT_PREFIX "TOPIC "
                     "(255 bytes at most)");
  snprintf(group, sizeof group, EXPORT_PREFIX "%s", topic);
  progress_init(&pr);
  memset(&dr, 0, sizeof dr);
  memset(&ctx, 0, sizeof ctx);
  ctx.ks.what = what;
  ctx.ks.pr = &pr;
  ctx.dr = &dr;

  if (!(recs = calloc(EXPORT_BATCH, sizeof *recs)))
    return tool_fail("out of memory");
  if ((rc = open_store(a, false, &q)))
    goto out;
  if ((e = q7_topic_open(q, topic, &t))) {
    rc = tool_lib_err(e, "kafka export %s", tool_shown(topic));
    goto out;
  }
  nparts = q7_topic_partition_count(t);

  static const char *const defs[] = {
    "client.id", "q7-export",
    "enable.idempotence", "true",
    "partitioner", "murmur2_random",
    NULL,
  };
  char errstr[512];
  rd_kafka_conf_t *kconf = make_conf(a, defs, &ctx.ks, &rc);
  if (!kconf)
    goto out;
  rd_kafka_conf_set_dr_msg_cb(kconf, on_export_dr);
  if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, kconf, errstr, sizeof errstr))) {
    rd_kafka_conf_destroy(kconf);
    rc = tool_fail("kafka export: %s", errstr);
    goto out;
  }
  rd_kafka_set_log_queue(rk, NULL);
  catch_signals();
  if ((rc = kafka_partitions(rk, "export", ktopic, a->brokers, &kparts))) {
    if (rc == STOPPED)
      rc = 0;
    goto out;
  }
  if (!(rkt = rd_kafka_topic_new(rk, ktopic, NULL))) {
    rc = tool_fail("kafka export: Kafka topic '%s': %s", tool_shown(ktopic),
              rd_kafka_err2str(rd_kafka_last_error()));
    goto out;
  }
  same = kparts == nparts;
  if (!same)
    fprintf(stderr, "q7: kafka export: note: Kafka topic %s has %" PRId32 " partitions, libq7 "
            "topic %s has %" PRId32 ": keyed records go to murmur2(key) mod %" PRId32
            " (each key stays together, in order, but not on its partition number), "
            "keyless ones anywhere\n", tool_shown(ktopic), kparts, tool_shown(topic), nparts, kparts);

  if (!(cconf = q7_conf_new())) {
    rc = tool_lib_err(Q7_ENOMEM, "kafka export %s", topic);
    goto out;
  }
  char batch[16];
  snprintf(batch, sizeof batch, "%d", EXPORT_BATCH);
  if ((e = q7_conf_set(cconf, "enable.auto.commit", "false")) ||
      (e = q7_conf_set(cconf, "auto.offset.reset", "earliest")) ||
      (e = q7_conf_set(cconf, "max.poll.records", batch))) {
    rc = tool_lib_err(e, "kafka export %s", topic);
    goto out;
  }
  if ((e = q7_consumer_new(q, group, cconf, &c))) {
    rc = tool_lib_err(e, "kafka export %s: group %s", topic, tool_shown(group));
    goto out;
  }
  if ((e = q7_consumer_subscribe(c, topic))) {
    rc = tool_lib_err(e, "kafka export %s", topic);
    goto out;
  }

  start_ms = mono_ms();
  while (!signals) {
    int n = q7_consumer_poll(c, recs, EXPORT_BATCH, SLICE_MS);
    if (n < 0) {
      rc = tool_lib_err(n, "kafka export %s", topic);
      goto out;
    }
    if (!n) {
      if (progress_due(&pr))
        progress_show(&pr, what, exported, export_lag(c, t, topic, NULL));
      if ((rc = check_fatal(rk, what)))
        goto out;
      if (!a->follow && (caught_up(c, t, topic) || mono_ms() - idle_since >= IDLE_MS))
        break;
      rd_kafka_poll(rk, 0);
      continue;
    }
    memset(&dr, 0, sizeof dr);
    for (int i = 0; i < n; i++) {
      const q7_record *r = &recs[i];
      rd_kafka_headers_t *hdrs = NULL;
      if (r->headers_len) {
        size_t it = 0, nl, vl;
        const char *nm;
        const void *v;
        hdrs = rd_kafka_headers_new(4);
        while ((e = q7_record_header_next(r, &it, &nm, &nl, &v, &vl)) == Q7_OK)
          rd_kafka_header_add(hdrs, nm, (ssize_t)nl, v, (ssize_t)vl);
        if (e != Q7_ENOENT) {
          rd_kafka_headers_destroy(hdrs);
          rc = tool_lib_err(e, "kafka export %s: partition %" PRId32 " offset %" PRId64, topic,
                       r->partition, r->offset);
          goto out; /* nothing of this poll committed */
        }
      }
      rd_kafka_resp_err_t err;
      for (;;) {
        err = rd_kafka_producev(
            rk, RD_KAFKA_V_RKT(rkt),
            RD_KAFKA_V_PARTITION(same ? r->partition : RD_KAFKA_PARTITION_UA),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_KEY((void *)r->key, r->key_len),
            RD_KAFKA_V_VALUE((void *)r->value, r->value_len),
            RD_KAFKA_V_TIMESTAMP(r->timestamp_ms),
            RD_KAFKA_V_HEADERS(hdrs),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)i),
            RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
          break;
        rd_kafka_poll(rk, 50);
      }
      if (err) {
        if (hdrs)
          rd_kafka_headers_destroy(hdrs);
        progress_end(&pr);
        rc = tool_fail("kafka export %s: partition %" PRId32 " offset %" PRId64 ": %s; nothing of "
                  "the last batch was committed (exported %" PRId64 " records before)",
                  topic, r->partition, r->offset, rd_kafka_err2str(err), exported);
        goto out;
      }
      rd_kafka_poll(rk, 0);
    }
    /* Every delivery report of this poll before the commit.  A second
     * signal gives up on the batch: it is exported again next time. */
    int seen = signals;
    while (rd_kafka_outq_len(rk) > 0) {
      rd_kafka_flush(rk, SLICE_MS);
      if ((rc = check_fatal(rk, what)))
        goto out;
      if (signals > seen && seen > 0) {
        progress_end(&pr);
        rc = tool_fail("kafka export %s: interrupted again while Kafka had not acknowledged the "
                  "last batch: it was not committed and will be exported again (exported %"
                  PRId64 " records before)", topic, exported);
        goto out;
      }
      if (!seen)
        seen = signals;
    }
    if (dr.failed) {
      const q7_record *r = &recs[dr.first_index >= 0 && dr.first_index < n ? dr.first_index : 0];
      progress_end(&pr);
      rc = tool_fail("kafka export %s: %" PRId64 " of %d records not delivered, the first "
                "(partition %" PRId32 " offset %" PRId64 ") with: %s; nothing of the last batch "
                "was committed (exported %" PRId64 " records before)",
                topic, dr.failed, n, r->partition, r->offset, rd_kafka_err2str(dr.first_err),
                exported);
      goto out;
    }
    /* Kafka holds every record of the poll: now the position. */
    if ((e = q7_consumer_commit(c))) {
      progress_end(&pr);
      if (e != Q7_ESTATE) {
        rc = tool_lib_err(e, "kafka export %s: commit", topic);
        goto out;
      }
      fprintf(stderr, "q7: kafka export %s: warning: commit refused, this member's partitions "
              "moved to another (%s); they will be exported again from the group's last "
              "commit\n", topic, tool_shown(q7_last_error()));
    }
    exported += n;
    idle_since = mono_ms();
    if (progress_due(&pr))
      progress_show(&pr, what, exported, export_lag(c, t, topic, NULL));
    if (!a->follow && caught_up(c, t, topic))
      break;
  }
  progress_end(&pr);
  rate_text(rate, sizeof rate, exported, start_ms);
  fprintf(stderr, "exported %" PRId64 " records to Kafka topic %s %s\n", exported,
          tool_shown(ktopic), rate);
out:
  progress_end(&pr);
  ctx.ks.quiet = rc != 0;
  if (c && (e = q7_consumer_close(c)) && !rc)
    rc = tool_lib_err(e, "kafka export %s: close", topic);
  if (rkt)
    rd_kafka_topic_destroy(rkt);
  if (rk) {
    /* Anything still queued failed or was abandoned, and was not committed:
     * purge it rather than wait. */
    if (rc)
      rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(rk, rc ? 0 : 10000);
    rd_kafka_destroy(rk);
  }
  q7_conf_destroy(cconf);
  q7_topic_close(t);
  free(recs);
  return q ? tool_close_store(q, rc) : rc;
}

/* ===================================================================== */
/*  import                                                               */
/* ===================================================================== */

/* Per Kafka partition: the next offset to commit once libq7 holds what came
 * before it, whether this member owns it, and whether it is at its end. */
struct kpart {
  int64_t next;              /* -1: nothing to commit */
  bool assigned, eof;
  int64_t position;          /* next offset read, for the lag; -1 unknown */
};

struct import_ctx {
  struct kstate ks;
  const struct args *a;
  const char *ktopic, *qtopic;
  rd_kafka_t *rk;
  q7_producer *p;
  struct kpart *parts;
  int32_t nparts;
  int64_t q7_ok, q7_failed;  /* delivery reports from libq7 */
  int q7_first_err;
  int rc;                    /* a failure inside the rebalance callback */
  bool broken;               /* failed: commit nothing more */
  int64_t imported;
};

static void
on_q7_delivery(const q7_delivery *d, void *arg)
{
  struct import_ctx *x = arg;
  if (d->err == Q7_OK) {
    x->q7_ok++;
    return;
  }
  if (!x->q7_failed++)
    x->q7_first_err = d->err;
}

/* Make room for partition @p in x->parts.  0 or 1 (out of memory). */
static int
grow_parts(struct import_ctx *x, int32_t p)
{
  if (p < x->nparts)
    return 0;
  struct kpart *np = realloc(x->parts, (size_t)(p + 1) * sizeof *np);
  if (!np)
    return 1;
  for (int32_t i = x->nparts; i <= p; i++)
    np[i] = (struct kpart){ -1, false, false, -1 };
  x->parts = np;
  x->nparts = p + 1;
  return 0;
}

/* Make what was sent durable in libq7, then commit the Kafka offsets of the
 * partitions in @only (NULL: every partition).  Returns 0 or the exit code
 * (said). */
static int
import_commit(struct import_ctx *x, const rd_kafka_topic_partition_list_t *only)
{
  int e = q7_producer_flush(x->p, -1);
  if (e)
    return tool_lib_err(e, "kafka import %s: flush", x->qtopic);
  if (x->q7_failed)
    return tool_fail("kafka import %s: %" PRId64 " records could not be written to libq7, the first "
                "with: %s; their Kafka offsets were not committed (they will be imported again)",
                x->qtopic, x->q7_failed, q7_strerror(x->q7_first_err));
  rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(x->nparts ? x->nparts : 1);
  for (int32_t i = 0; i < x->nparts; i++) {
    if (x->parts[i].next < 0)
      continue;
    if (only && !rd_kafka_topic_partition_list_find(only, x->ktopic, i))
      continue;
    rd_kafka_topic_partition_list_add(l, x->ktopic, i)->offset = x->parts[i].next;
  }
  int rc = 0;
  if (l->cnt) {
    rd_kafka_resp_err_t err = rd_kafka_commit(x->rk, l, 0);
    for (int i = 0; !err && i < l->cnt; i++)
      err = l->elems[i].err;
    if (err) {
      rc = tool_fail("kafka import %s: committing Kafka offsets of group %s: %s (the records are in "
                "libq7; they will be imported again)", x->qtopic, tool_shown(x->a->group),
                rd_kafka_err2str(err));
    } else {
      for (int i = 0; i < l->cnt; i++)
        x->parts[l->elems[i].partition].next = -1;
    }
  }
  rd_kafka_topic_partition_list_destroy(l);
  return rc;
}

static void
on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t *l,
             void *opaque)
{
  struct import_ctx *x = opaque;
  bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    for (int i = 0; i < l->cnt; i++) {
      if (strcmp(l->elems[i].topic, x->ktopic) || grow_parts(x, l->elems[i].partition))
        continue;
      struct kpart *kp = &x->parts[l->elems[i].partition];
      kp->assigned = true;
      kp->eof = false;
      kp->next = -1;
      kp->position = -1;
    }
    if (coop) {
      rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, l);
      if (e)
        rd_kafka_error_destroy(e);
    } else {
      rd_kafka_assign(rk, l);
    }
    return;
  }
  /* Revoked or lost: what was read of them goes to libq7 and, unless they
   * are lost already, their offsets are committed while they are still
   * ours. */
  if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS && !rd_kafka_assignment_lost(rk) &&
      !x->broken && !x->rc) {
    int rc = import_commit(x, l);
    if (rc && !x->rc)
      x->rc = rc;
  }
  for (int i = 0; i < l->cnt; i++)
    if (!strcmp(l->elems[i].topic, x->ktopic) && l->elems[i].partition < x->nparts) {
      x->parts[l->elems[i].partition].assigned = false;
      x->parts[l->elems[i].partition].next = -1;
    }
  if (coop) {
    rd_kafka_error_t *e = rd_kafka_incremental_unassign(rk, l);
    if (e)
      rd_kafka_error_destroy(e);
  } else {
    rd_kafka_assign(rk, NULL);
  }
}

static int64_t
import_lag(struct import_ctx *x)
{
  int64_t lag = 0;
  for (int32_t i = 0; i < x->nparts; i++) {
    int64_t lo, hi;
    if (!x->parts[i].assigned || x->parts[i].position < 0)
      continue;
    if (rd_kafka_get_watermark_offsets(x->rk, x->ktopic, i, &lo, &hi) || hi < 0)
      return -1;
    lag += hi > x->parts[i].position ? hi - x->parts[i].position : 0;
  }
  return lag;
}

/* Has every assigned partition reached its end? */
static bool
import_caught_up(const struct import_ctx *x)
{
  int assigned = 0;
  for (int32_t i = 0; i < x->nparts; i++) {
    if (!x->parts[i].assigned)
      continue;
    assigned++;
    if (!x->parts[i].eof)
      return false;
  }
  return assigned > 0;
}

/* One Kafka record into libq7 (buffered).  0 or the exit code (said). */
static int
import_one(struct import_ctx *x, q7_topic *t, bool same, const rd_kafka_message_t *m,
           q7_header **hbuf, size_t *hcap)
{
  rd_kafka_headers_t *hdrs = NULL;
  size_t nh = 0;
  if (!rd_kafka_message_headers(m, &hdrs) && hdrs) {
    size_t cnt = rd_kafka_header_cnt(hdrs);
    if (cnt > *hcap) {
      q7_header *nb = realloc(*hbuf, cnt * sizeof *nb);
      if (!nb)
        return tool_fail("out of memory");
      *hbuf = nb;
      *hcap = cnt;
    }
    const char *name;
    const void *v;
    size_t vl;
    for (size_t k = 0; k < cnt && !rd_kafka_header_get_all(hdrs, k, &name, &v, &vl); k++)
      (*hbuf)[nh++] = (q7_header){ name, v, v ? vl : 0 };
  }
  rd_kafka_timestamp_type_t tstype;
  int64_t ts = rd_kafka_message_timestamp(m, &tstype);
  q7_msg qm;
  memset(&qm, 0, sizeof qm);
  qm.topic = t;
  qm.partition = same ? m->partition : Q7_PARTITION_ANY;
  qm.key = m->key;
  qm.key_len = m->key ? m->key_len : 0;
  qm.value = m->payload;
  qm.value_len = m->payload ? m->len : 0;
  qm.timestamp_ms = ts > 0 ? ts : 0;
  qm.headers = nh ? *hbuf : NULL;
  qm.header_count = nh;
  int e;
  for (;;) {
    e = q7_producer_send(x->p, &qm);
    if (e != Q7_ENOMEM)
      break;
    /* Too much in flight: make room. */
    if (q7_producer_flush(x->p, -1))
      break;
  }
  if (e)
    return tool_lib_err(e, "kafka import %s: Kafka partition %" PRId32 " offset %" PRId64,
                   x->qtopic, m->partition, m->offset);
  return 0;
}

static int
kafka_import(struct args *a)
{
  const char *ktopic = a->name;
  const char *qtopic = a->topic ? a->topic : ktopic;
  char what[64], group[300], rate[80];
  struct progress pr;
  struct import_ctx x;
  q7 *q = NULL;
  q7_topic *t = NULL;
  q7_conf *pconf = NULL;
  rd_kafka_t *rk = NULL;
  rd_kafka_topic_partition_list_t *sub = NULL;
  q7_header *hbuf = NULL;
  size_t hcap = 0;
  int32_t kparts = 0, nparts;
  int64_t start_ms, first_ms = 0, waiting_since;
  bool same, closed = false;
  int rc = 0, e;

  snprintf(what, sizeof what, "kafka import");
  if (!a->group) {
    snprintf(group, sizeof group, IMPORT_PREFIX "%.255s", ktopic);
    a->group = group;
  }
  progress_init(&pr);
  memset(&x, 0, sizeof x);
  x.ks.what = what;
  x.ks.pr = &pr;
  x.a = a;
  x.ktopic = ktopic;
  x.qtopic = qtopic;

  static const char *const base_defs[] = {
    "client.id", "q7-import",
    "enable.auto.commit", "false",
    "auto.offset.reset", "earliest",
    "enable.partition.eof", "true",
    NULL,
  };
  const char *defs[16];
  size_t nd = 0;
  defs[nd++] = "group.id";
  defs[nd++] = a->group;
  for (size_t i = 0; base_defs[i]; i++)
    defs[nd++] = base_defs[i];
  defs[nd] = NULL;
  char errstr[512];
  rd_kafka_conf_t *kconf = make_conf(a, defs, &x.ks, &rc);
  if (!kconf)
    goto out;
  rd_kafka_conf_set_rebalance_cb(kconf, on_rebalance);
  /* The rebalance callback gets the import context; the log callback finds
   * its kstate at the same address. */
  rd_kafka_conf_set_opaque(kconf, &x);
  if ((rc = open_store(a, true, &q))) {
    rd_kafka_conf_destroy(kconf);
    goto out;
  }
  if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, kconf, errstr, sizeof errstr))) {
    rd_kafka_conf_destroy(kconf);
    rc = tool_fail("kafka import: %s", errstr);
    goto out;
  }
  x.rk = rk;
  rd_kafka_set_log_queue(rk, NULL);
  catch_signals();
  if ((rc = kafka_partitions(rk, "import", ktopic, a->brokers, &kparts))) {
    if (rc == STOPPED)
      rc = 0;
    goto out;
  }
  rd_kafka_poll_set_consumer(rk);
  if (grow_parts(&x, kparts - 1)) {
    rc = tool_fail("out of memory");
    goto out;
  }

  e = q7_topic_open(q, qtopic, &t);
  if (e == Q7_ENOENT) {
    if ((e = q7_topic_create(q, qtopic, kparts, NULL)) && e != Q7_EEXIST) {
      rc = tool_lib_err(e, "kafka import: create topic %s", tool_shown(qtopic));
      goto out;
    }
    if (!e)
      fprintf(stderr, "created topic %s with %" PRId32 " partitions\n", tool_shown(qtopic), kparts);
    e = q7_topic_open(q, qtopic, &t);
  }
  if (e) {
    rc = tool_lib_err(e, "kafka import %s", tool_shown(qtopic));
    goto out;
  }
  nparts = q7_topic_partition_count(t);
  same = nparts == kparts;
  if (!same)
    fprintf(stderr, "q7: kafka import: note: Kafka topic %s has %" PRId32 " partitions, libq7 "
            "topic %s has %" PRId32 ": keyed records go to murmur2(key) mod %" PRId32
            " (each key stays together, in order, but not on its partition number), "
            "keyless ones anywhere\n", tool_shown(ktopic), kparts, tool_shown(qtopic), nparts, nparts);

  if (!(pconf = q7_conf_new())) {
    rc = tool_lib_err(Q7_ENOMEM, "kafka import %s", qtopic);
    goto out;
  }
  if ((e = q7_conf_set(pconf, "batch.size", "1048576"))) {
    rc = tool_lib_err(e, "kafka import %s", qtopic);
    goto out;
  }
  q7_conf_set_delivery_cb(pconf, on_q7_delivery, &x);
  if ((e = q7_producer_new(q, pconf, &x.p))) {
    rc = tool_lib_err(e, "kafka import %s", qtopic);
    goto out;
  }

  sub = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(sub, ktopic, RD_KAFKA_PARTITION_UA);
  rd_kafka_resp_err_t kerr = rd_kafka_subscribe(rk, sub);
  if (kerr) {
    rc = tool_fail("kafka import: subscribe to %s: %s", tool_shown(ktopic), rd_kafka_err2str(kerr));
    goto out;
  }

  start_ms = waiting_since = mono_ms();
  while (!signals && !x.rc) {
    /* One batch: up to IMPORT_BATCH records, or what came before a pause. */
    int got = 0;
    bool failed = false;
    while (got < IMPORT_BATCH && !signals && !x.rc) {
      rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, got ? 10 : SLICE_MS);
      if (!m)
        break;
      if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        if (m->rkt && !strcmp(rd_kafka_topic_name(m->rkt), ktopic) &&
            !grow_parts(&x, m->partition)) {
          x.parts[m->partition].eof = true;
          x.parts[m->partition].position = m->offset;
        }
        rd_kafka_message_destroy(m);
        if (import_caught_up(&x))
          break;
        continue;
      }
      if (m->err) {
        /* The consumer recovers from most errors by itself: those are
         * warnings.  A topic that is gone or forbidden, or a fatal error,
         * ends the import. */
        bool final = m->err == RD_KAFKA_RESP_ERR__FATAL ||
                     m->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
                     m->err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
                     m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                     m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED;
        if (final) {
          progress_end(&pr);
          rc = tool_fail("kafka import %s: %s", tool_shown(ktopic), rd_kafka_message_errstr(m));
          rd_kafka_message_destroy(m);
          failed = true;
          break;
        }
        on_log(rk, 4, "CONSUME", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        continue;
      }
      if (!first_ms)
        first_ms = mono_ms();
      if (grow_parts(&x, m->partition)) {
        rd_kafka_message_destroy(m);
        rc = tool_fail("out of memory");
        failed = true;
        break;
      }
      rc = import_one(&x, t, same, m, &hbuf, &hcap);
      if (!rc) {
        struct kpart *kp = &x.parts[m->partition];
        kp->next = kp->position = m->offset + 1;
        kp->eof = false;
        x.imported++;
        got++;
      }
      rd_kafka_message_destroy(m);
      if (rc) {
        failed = true;
        break;
      }
    }
    /* What reached libq7 is committed in Kafka, even when failing. */
    int crc = import_commit(&x, NULL);
    if (!rc)
      rc = crc;
    if (rc || failed || x.rc)
      break;
    if ((rc = check_fatal(rk, what)))
      break;
    if (progress_due(&pr))
      progress_show(&pr, what, x.imported, import_lag(&x));
    if (!a->follow) {
      if (import_caught_up(&x))
        break;
      bool any = false;
      for (int32_t i = 0; i < x.nparts; i++)
        any |= x.parts[i].assigned;
      if (any)
        waiting_since = mono_ms();
      else if (mono_ms() - waiting_since >= ASSIGN_WAIT_MS) {
        progress_end(&pr);
        rc = tool_fail("kafka import %s: no partition of Kafka topic %s was assigned to this member "
                  "of group %s within %d s", tool_shown(qtopic), tool_shown(ktopic), tool_shown(a->group),
                  ASSIGN_WAIT_MS / 1000);
        break;
      }
    }
  }
  if (!rc && x.rc)
    rc = x.rc;
  x.broken = x.ks.quiet = rc != 0;
  /* Leaving the group revokes the partitions: the callback commits them
   * (unless the import failed: then what was committed stays). */
  progress_end(&pr);
  kerr = rd_kafka_consumer_close(rk);
  closed = true;
  if (!rc && x.rc)
    rc = x.rc;
  if (!rc && kerr)
    rc = tool_fail("kafka import %s: closing the Kafka consumer: %s", tool_shown(qtopic),
              rd_kafka_err2str(kerr));
  if (!rc) {
    rate_text(rate, sizeof rate, x.imported, first_ms ? first_ms : mono_ms());
    fprintf(stderr, "imported %" PRId64 " records into topic %s %s", x.imported,
            tool_shown(qtopic), rate);
    if (first_ms)
      fprintf(stderr, " after joining group %s (%.1f s)", tool_shown(a->group),
              (double)(first_ms - start_ms) / 1000.0);
    fputc('\n', stderr);
  }
out:
  progress_end(&pr);
  if (rc)
    x.broken = x.ks.quiet = true;
  if (rk) {
    if (!closed)
      rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
  if (sub)
    rd_kafka_topic_partition_list_destroy(sub);
  if (x.p)
    q7_producer_close(x.p);
  q7_conf_destroy(pconf);
  q7_topic_close(t);
  free(x.parts);
  free(hbuf);
  return q ? tool_close_store(q, rc) : rc;
}

/* ===================================================================== */
/*  q7 kafka                                                             */
/* ===================================================================== */

int
q7_tool_kafka(int argc, char **argv)
{
  struct args a;
  memset(&a, 0, sizeof a);
  a.dir = getenv("Q7_DIR");
  if (argc < 2)
    return tool_usage_err("kafka: missing action (export, import)");
  a.action = argv[1];
  if (!strcmp(a.action, "-h") || !strcmp(a.action, "--help")) {
    print_kafka_help();
    return 0;
  }
  if (strcmp(a.action, "export") && strcmp(a.action, "import")) {
    for (int i = 2; i < argc; i++)
      if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
        print_kafka_help();
        return 0;
      }
    return tool_usage_err("kafka: unknown action '%s' (export, import)", tool_shown(a.action));
  }
  int rc = parse_args(argc, argv, &a);
  if (!rc)
    rc = !strcmp(a.action, "export") ? kafka_export(&a) : kafka_import(&a);
  else if (rc < 0)
    rc = 0;
  free(a.props);
  return rc;
}

#endif /* Q7_HAVE_RDKAFKA */
