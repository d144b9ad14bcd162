/* conf.c - configuration: string keys with Kafka's names, checked on set. */
#include "q7_int.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <stdio.h>

enum kind { K_BOOL, K_INT, K_ENUM, K_STR };

typedef struct keydef {
  const char *name;
  int scope;
  enum kind kind;
  const char *def;
  int64_t min, max;           /* K_INT */
  const char *const *choices; /* K_ENUM, NULL-terminated */
  const char *help;
} keydef;

static const char *const acks_c[] = { "all", "-1", "1", "0", NULL };
/* Kafka's and librdkafka's names: murmur2_random (keyless records sticky),
 * murmur2 (keyless records hash as an empty key), random (keys ignored). */
static const char *const part_c[] = { "murmur2_random", "murmur2", "random", NULL };
/* Topic: producer (keep what the producer sent), none, lz4, zstd; a
 * producer treats producer as none. */
static const char *const tcomp_c[] = { "producer", "none", "lz4", "zstd", NULL };
static const char *const reset_c[] = { "latest", "earliest", "none", NULL };
static const char *const strat_c[] = { "range", "roundrobin", NULL };
static const char *const clean_c[] = { "delete", NULL };

#define I64MAX INT64_MAX
static const keydef keys[Q7K__COUNT] = {
  [Q7K_SYNC] = { "sync", Q7S_STORE, K_BOOL, "true", 0, 0, NULL, "fsync every commit" },
  [Q7K_STORAGE_MAX_BYTES] = { "storage.max.bytes", Q7S_STORE, K_INT, "0", 0, I64MAX, NULL,
                              "bytes the store's files may take, 0 unlimited" },
  [Q7K_RETENTION_CHECK_MS] = { "retention.check.interval.ms", Q7S_STORE, K_INT, "300000", 0,
                               I64MAX, NULL, "background sweep period, 0 off" },
  [Q7K_LAG_WINDOW] = { "lag.window", Q7S_STORE, K_INT, "10", 1, 1000, NULL,
                       "commits kept per partition for lag evaluation" },
  [Q7K_LAG_EXPIRE_MS] = { "lag.expire.ms", Q7S_STORE, K_INT, "604800000", 1, I64MAX, NULL,
                          "a group silent this long is NOTFOUND" },
  [Q7K_REPLICA_DIRS] = { "replica.dirs", Q7S_STORE, K_STR, "", 0, 0, NULL,
                         "comma-separated mirror directories" },
  [Q7K_RETENTION_MS] = { "retention.ms", Q7S_TOPIC, K_INT, "604800000", -1, I64MAX, NULL,
                         "keep records this long, -1 forever" },
  [Q7K_RETENTION_BYTES] = { "retention.bytes", Q7S_TOPIC, K_INT, "-1", -1, I64MAX, NULL,
                            "bytes kept per partition, -1 unlimited" },
  [Q7K_REPLICATION_FACTOR] = { "replication.factor", Q7S_TOPIC, K_INT, "1", 1, 64, NULL,
                               "replicas of each partition" },
  [Q7K_MIN_INSYNC] = { "min.insync.replicas", Q7S_TOPIC, K_INT, "1", 1, 64, NULL,
                       "in-sync replicas acks=all needs" },
  [Q7K_MESSAGE_MAX_BYTES] = { "message.max.bytes", Q7S_TOPIC, K_INT, "1048588", 1,
                              256 * 1024 * 1024, NULL,
                              "largest record: key + value + header names and values" },
  [Q7K_CLEANUP_POLICY] = { "cleanup.policy", Q7S_TOPIC, K_ENUM, "delete", 0, 0, clean_c,
                           "what retention does" },
  [Q7K_TOPIC_COMPRESSION] = { "compression.type", Q7S_TOPIC | Q7S_PRODUCER, K_ENUM, "producer", 0, 0,
                              tcomp_c, "batch compression" },
  [Q7K_ACKS] = { "acks", Q7S_PRODUCER, K_ENUM, "all", 0, 0, acks_c,
                 "replicas that must hold a record before it is delivered" },
  [Q7K_LINGER_MS] = { "linger.ms", Q7S_PRODUCER, K_INT, "5", 0, 900000, NULL,
                      "how long a batch waits for more records" },
  [Q7K_BATCH_SIZE] = { "batch.size", Q7S_PRODUCER, K_INT, "16384", 1, 64 * 1024 * 1024, NULL,
                       "bytes that make a batch full" },
  [Q7K_PARTITIONER] = { "partitioner", Q7S_PRODUCER, K_ENUM, "murmur2_random", 0, 0, part_c,
                        "how a partition is picked" },
  [Q7K_RETRIES] = { "retries", Q7S_PRODUCER, K_INT, "10", 0, INT32_MAX, NULL,
                    "retries of a commit that failed for a passing cause" },
  [Q7K_AUTO_OFFSET_RESET] = { "auto.offset.reset", Q7S_CONSUMER, K_ENUM, "latest", 0, 0, reset_c,
                              "where to start without a valid committed offset" },
  [Q7K_ENABLE_AUTO_COMMIT] = { "enable.auto.commit", Q7S_CONSUMER, K_BOOL, "true", 0, 0, NULL,
                               "commit positions periodically from poll" },
  [Q7K_AUTO_COMMIT_MS] = { "auto.commit.interval.ms", Q7S_CONSUMER, K_INT, "5000", 0, I64MAX,
                           NULL, "auto-commit period" },
  [Q7K_MAX_POLL_RECORDS] = { "max.poll.records", Q7S_CONSUMER, K_INT, "500", 1, 1000000, NULL,
                             "most records one poll returns" },
  [Q7K_SESSION_TIMEOUT_MS] = { "session.timeout.ms", Q7S_CONSUMER, K_INT, "45000", 1, 3600000,
                               NULL, "a silent member is expired after this" },
  [Q7K_HEARTBEAT_MS] = { "heartbeat.interval.ms", Q7S_CONSUMER, K_INT, "3000", 1, 3600000, NULL,
                         "how often poll renews a member's lease" },
  [Q7K_ASSIGNMENT_STRATEGY] = { "partition.assignment.strategy", Q7S_CONSUMER, K_ENUM, "range",
                                0, 0, strat_c, "how partitions are shared in a group" },
  [Q7K_FETCH_AHEAD_BYTES] = { "fetch.ahead.bytes", Q7S_CONSUMER, K_INT, "16777216", 0,
                              (int64_t)1 << 40, NULL,
                              "a helper thread maps this much of a backlog past the position" },
};

int
q7__conf_key(const char *name, int *scope)
{
  if (!name)
    return -1;
  for (int k = 0; k < Q7K__COUNT; k++) {
    if (keys[k].name && strcmp(keys[k].name, name) == 0) {
      if (scope)
        *scope = keys[k].scope;
      return k;
    }
  }
  return -1;
}

const char *
q7__conf_name(enum q7__key k)
{
  return keys[k].name;
}

static int
parse_i64(const char *s, int64_t *out)
{
  char *end;
  if (!*s || isspace((unsigned char)*s) || *s == '+')
    return -1;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end)
    return -1;
  *out = v;
  return 0;
}

static int
parse_bool(const char *s)
{
  if (!strcmp(s, "true") || !strcmp(s, "1"))
    return 1;
  if (!strcmp(s, "false") || !strcmp(s, "0"))
    return 0;
  return -1;
}

static int
choice_index(const keydef *d, const char *s)
{
  for (int i = 0; d->choices[i]; i++)
    if (!strcmp(d->choices[i], s))
      return i;
  return -1;
}

int
q7__conf_check(enum q7__key k, const char *value)
{
  const keydef *d = &keys[k];
  int64_t v;
  char list[256];
  size_t off = 0;

  switch (d->kind) {
  case K_BOOL:
    if (parse_bool(value) < 0)
      return q7__err(Q7_EINVAL, "config %s: \"%s\" is not true or false", d->name, value);
    return Q7_OK;
  case K_INT:
    if (parse_i64(value, &v) < 0)
      return q7__err(Q7_EINVAL, "config %s: \"%s\" is not an integer", d->name, value);
    if (v < d->min || v > d->max)
      return q7__err(Q7_EINVAL, "config %s: %s is outside [%" PRId64 ", %" PRId64 "]", d->name,
                     value, d->min, d->max);
    return Q7_OK;
  case K_ENUM:
    if (choice_index(d, value) >= 0)
      return Q7_OK;
    for (int i = 0; d->choices[i] && off < sizeof list; i++)
      off += (size_t)snprintf(list + off, sizeof list - off, "%s%s", i ? ", " : "",
                              d->choices[i]);
    return q7__err(Q7_EINVAL, "config %s: \"%s\" is not one of %s", d->name, value, list);
  case K_STR:
    if (strchr(value, '\n'))
      return q7__err(Q7_EINVAL, "config %s: value holds a newline", d->name);
    return Q7_OK;
  }
  return Q7_OK;
}

q7_conf *
q7_conf_new(void)
{
  q7_conf *c = calloc(1, sizeof *c);
  if (!c)
    q7__err(Q7_ENOMEM, "q7_conf_new: out of memory");
  return c;
}

void
q7_conf_destroy(q7_conf *c)
{
  if (!c)
    return;
  for (int k = 0; k < Q7K__COUNT; k++)
    free(c->val[k]);
  free(c);
}

int
q7_conf_dup(const q7_conf *c, q7_conf **out)
{
  q7_conf *n;
  if (!out)
    return q7__err(Q7_EINVAL, "q7_conf_dup: out is NULL");
  if (!(n = q7_conf_new()))
    return Q7_ENOMEM;
  if (c) {
    for (int k = 0; k < Q7K__COUNT; k++) {
      if (c->val[k] && !(n->val[k] = strdup(c->val[k]))) {
        q7_conf_destroy(n);
        return q7__err(Q7_ENOMEM, "q7_conf_dup: out of memory");
      }
    }
    n->clock = c->clock;
    n->clock_arg = c->clock_arg;
    n->dr_cb = c->dr_cb;
    n->dr_arg = c->dr_arg;
    n->rb_cb = c->rb_cb;
    n->rb_arg = c->rb_arg;
  }
  *out = n;
  return Q7_OK;
}

int
q7_conf_set(q7_conf *c, const char *name, const char *value)
{
  if (!c || !name || !value)
    return q7__err(Q7_EINVAL, "q7_conf_set: %s is NULL", !c ? "conf" : !name ? "name" : "value");
  int k = q7__conf_key(name, NULL);
  if (k < 0)
    return q7__err(Q7_EINVAL, "config: unknown key \"%s\"", name);
  int rc = q7__conf_check((enum q7__key)k, value);
  if (rc)
    return rc;
  char *v = strdup(value);
  if (!v)
    return q7__err(Q7_ENOMEM, "q7_conf_set: out of memory");
  free(c->val[k]);
  c->val[k] = v;
  return Q7_OK;
}

int
q7_conf_get(const q7_conf *c, const char *name, char *buf, size_t *len)
{
  if (!c || !name || !len)
    return q7__err(Q7_EINVAL, "q7_conf_get: %s is NULL", !c ? "conf" : !name ? "name" : "len");
  int k = q7__conf_key(name, NULL);
  if (k < 0)
    return q7__err(Q7_EINVAL, "config: unknown key \"%s\"", name);
  const char *v = q7__conf_str(c, (enum q7__key)k);
  size_t need = strlen(v) + 1, have = *len;
  *len = need;
  if (!buf || have < need)
    return q7__err(Q7_ERANGE, "q7_conf_get: %s needs a buffer of %zu bytes", name, need);
  memcpy(buf, v, need);
  return Q7_OK;
}

void
q7_conf_set_clock(q7_conf *c, int64_t (*now_ms)(void *arg), void *arg)
{
  if (!c)
    return;
  c->clock = now_ms;
  c->clock_arg = now_ms ? arg : NULL;
}

void
q7_conf_set_delivery_cb(q7_conf *c, void (*cb)(const q7_delivery *d, void *arg), void *arg)
{
  if (!c)
    return;
  c->dr_cb = cb;
  c->dr_arg = cb ? arg : NULL;
}

const char *
q7__conf_str(const q7_conf *c, enum q7__key k)
{
  if (c && c->val[k])
    return c->val[k];
  return keys[k].def;
}

int64_t
q7__conf_int(const q7_conf *c, enum q7__key k)
{
  int64_t v = 0;
  if (parse_i64(q7__conf_str(c, k), &v) < 0)
    parse_i64(keys[k].def, &v);
  return v;
}

bool
q7__conf_bool(const q7_conf *c, enum q7__key k)
{
  return parse_bool(q7__conf_str(c, k)) == 1;
}

int
q7__conf_choice(const q7_conf *c, enum q7__key k)
{
  int i = choice_index(&keys[k], q7__conf_str(c, k));
  return i < 0 ? 0 : i;
}

char *
q7__conf_dump(const q7_conf *c, int scope, size_t *len)
{
  size_t need = 1, off = 0;
  for (int k = 0; k < Q7K__COUNT; k++)
    if (c && c->val[k] && (keys[k].scope & scope))
      need += strlen(keys[k].name) + strlen(c->val[k]) + 2;
  char *s = malloc(need);
  if (!s)
    return NULL;
  for (int k = 0; k < Q7K__COUNT; k++)
    if (c && c->val[k] && (keys[k].scope & scope))
      off += (size_t)sprintf(s + off, "%s=%s\n", keys[k].name, c->val[k]);
  s[off] = 0;
  *len = off;
  return s;
}

int
q7__conf_load(q7_conf *c, const char *text, size_t len)
{
  const char *p = text, *end = text + len;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *eq = nl ? memchr(p, '=', (size_t)(nl - p)) : NULL;
    if (!nl || !eq)
      return q7__err(Q7_ECORRUPT, "topic config: malformed line");
    char name[64], value[1024];
    size_t nl_len = (size_t)(eq - p), vl = (size_t)(nl - eq - 1);
    if (nl_len >= sizeof name || vl >= sizeof value)
      return q7__err(Q7_ECORRUPT, "topic config: line too long");
    memcpy(name, p, nl_len);
    name[nl_len] = 0;
    memcpy(value, eq + 1, vl);
    value[vl] = 0;
    int rc = q7_conf_set(c, name, value);
    if (rc == Q7_EINVAL) {
      char why[512]; /* q7__err writes the buffer q7_last_error() reads */
      snprintf(why, sizeof why, "%s", q7_last_error());
      return q7__err(Q7_ECORRUPT, "topic config: %s", why);
    }
    if (rc)
      return rc;
    p = nl + 1;
  }
  return Q7_OK;
}

void
q7_conf_set_rebalance_cb(q7_conf *c, q7_rebalance_cb *cb, void *arg)
{
  if (!c)
    return;
  c->rb_cb = cb;
  c->rb_arg = cb ? arg : NULL;
}
