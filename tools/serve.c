/* serve.c - `q7 serve`: LinkedIn Burrow's HTTP API v3 over libq7 stores.
 *
 *   q7 serve [--listen ADDR:PORT] --cluster NAME=DIR [--cluster NAME=DIR ...]
 *            [--allow-delete] [--allow-remote]
 *
 * Each --cluster is one store, served as one Burrow "cluster", so Burrow's
 * clients and dashboards work unchanged: the paths, JSON field names, field
 * order, messages, status codes and error bodies are Burrow's (ced55ba, see
 * BURROW.md §4), and /metrics carries Burrow's Prometheus metric names.  `/`
 * is a self-contained status page that reads the same JSON API.
 *
 * Lag and status are computed for every request (q7_group_status with the
 * store's clock), never cached.  libmicrohttpd speaks HTTP, a thread per
 * connection; a store handle is store-shared, so connections use it
 * concurrently.  jansson writes every JSON document.  Only <q7.h> is used.
 *
 * Limits: request paths (with their query) over MAX_URI bytes are 414, header
 * sections over MAX_HEADERS bytes 431; libmicrohttpd refuses anything that
 * does not fit its per-connection pool (CONN_MEMORY) on its own.  The server
 * listens on loopback unless --allow-remote, and DELETE is 405 unless
 * --allow-delete.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>

#include <q7.h>

#include "tool.h"

#define DEFAULT_LISTEN  "127.0.0.1:8000"
#define MAX_URI         2048          /* bytes of path and query */
#define MAX_HEADERS     (8 * 1024)    /* bytes of the header section */
#define CONN_MEMORY     (32 * 1024)   /* libmicrohttpd's per-connection pool */
#define MAX_CONNECTIONS 64
#define CONN_TIMEOUT_S  30
#define MAX_SEGMENTS    8

/* jansson writes a double with this many significant digits: enough for
 * Burrow's float32 `complete` (0.1 stays "0.1"), and always a real ("1.0"). */
#define JSON_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(8))

/* Burrow's answer to a path it has no route for, byte for byte. */
static const char NOT_FOUND_BODY[] =
    "{\"error\":true,\"message\":\"invalid request type\",\"result\":{}}\n";
/* Burrow's answer when a reply cannot be encoded. */
static const char ENCODE_FAILED_BODY[] =
    "{\"error\":true,\"message\":\"could not encode JSON\",\"result\":{}}";

static const char *page(void);

typedef struct cluster {
  const char *name;             /* NAME, malloc'd */
  const char *dir;              /* DIR, in argv */
  q7 *q;
} cluster;

typedef struct server {
  cluster *clusters;
  size_t n;
  bool allow_delete;
  char host[256];               /* gethostname(), for request.host */
} server;

/* One request being answered. */
typedef struct req {
  server *srv;
  struct MHD_Connection *conn;
  const char *url;              /* the decoded path: Burrow's r.URL.Path */
} req;

enum route {
  RT_NONE, RT_PAGE, RT_ADMIN, RT_READY, RT_METRICS, RT_CLUSTERS, RT_CLUSTER, RT_TOPICS,
  RT_TOPIC, RT_TOPIC_CONSUMERS, RT_CONSUMERS, RT_CONSUMER, RT_STATUS, RT_LAG
};

/* ===================================================================== */
/*  Small helpers                                                        */
/* ===================================================================== */

typedef struct strv {
  char **v;
  size_t n, cap;
} strv;

static int
strv_add(strv *s, const char *str)
{
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 32;
    char **v = realloc(s->v, cap * sizeof *v);
    if (!v)
      return -1;
    s->v = v;
    s->cap = cap;
  }
  if (!(s->v[s->n] = strdup(str)))
    return -1;
  s->n++;
  return 0;
}

static void
strv_free(strv *s)
{
  for (size_t i = 0; i < s->n; i++)
    free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Length of the valid UTF-8 sequence at @s (of @n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len;
  uint32_t min, cp;
  if (c < 0x80)
    return 1;
  if (c >= 0xC2 && c <= 0xDF)
    len = 2, min = 0x80;
  else if ((c & 0xF0) == 0xE0)
    len = 3, min = 0x800;
  else if (c >= 0xF0 && c <= 0xF4)
    len = 4, min = 0x10000;
  else
    return 0;
  if (n < len)
    return 0;
  cp = c & (0x7Fu >> len);
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

/* @s with every byte that is not valid UTF-8 replaced by U+FFFD, as Go's
 * encoding/json does; malloc'd, NULL when out of memory. */
static char *
utf8_clean(const char *s)
{
  size_t n = strlen(s), o = 0;
  char *out = malloc(n * 3 + 1);
  if (!out)
    return NULL;
  for (size_t i = 0; i < n;) {
    size_t l = utf8_seq((const unsigned char *)s + i, n - i);
    if (l) {
      memcpy(out + o, s + i, l);
      o += l;
      i += l;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    }
  }
  out[o] = '\0';
  return out;
}

/* A JSON string for any C string (invalid UTF-8 replaced); NULL only when
 * out of memory. */
static json_t *
jstr(const char *s)
{
  json_t *j = json_string(s);
  if (!j) {
    char *clean = utf8_clean(s);
    if (clean)
      j = json_string(clean);
    free(clean);
  }
  return j;
}

/* json_object_set_new / json_array_append_new that remember a failure
 * (out of memory) in *@bad; they take @v's reference either way. */
static void
put(json_t *o, const char *key, json_t *v, bool *bad)
{
  if (!o || !v || json_object_set_new(o, key, v)) {
    json_decref(v);
    *bad = true;
  }
}

static void
push(json_t *a, json_t *v, bool *bad)
{
  if (!a || !v || json_array_append_new(a, v)) {
    json_decref(v);
    *bad = true;
  }
}

static json_t *
jint(int64_t v)
{
  return json_integer((json_int_t)v);
}

static cluster *
find_cluster(server *s, const char *name)
{
  for (size_t i = 0; i < s->n; i++)
    if (!strcmp(s->clusters[i].name, name))
      return &s->clusters[i];
  return NULL;
}

static int
group_collect(const char *group, void *arg)
{
  return strv_add(arg, group) ? Q7_ENOMEM : 0;
}

static int
topic_collect(const char *name, int32_t partitions, void *arg)
{
  return strv_add(arg, name) ? Q7_ENOMEM : 0;
}

/* ===================================================================== */
/*  Replies                                                              */
/* ===================================================================== */

/* Queue a reply.  @extra: NULL, or pairs of header name and value ending
 * with NULL. */
static enum MHD_Result
send_reply(const req *r, unsigned code, const char *ctype, const char *body, size_t len,
           const char *const *extra)
{
  struct MHD_Response *resp =
      MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
  if (!resp)
    return MHD_NO;
  enum MHD_Result ok = MHD_YES;
  if (ctype)
    ok = MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
  for (size_t i = 0; ok == MHD_YES && extra && extra[i]; i += 2)
    ok = MHD_add_response_header(resp, extra[i], extra[i + 1]);
  if (ok == MHD_YES)
    ok = MHD_queue_response(r->conn, code, resp);
  MHD_destroy_response(resp);
  return ok;
}

static enum MHD_Result
send_text(const req *r, unsigned code, const char *text)
{
  return send_reply(r, code, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

/* Burrow's catch-all: 404, text/plain, nosniff, a fixed JSON body. */
static enum MHD_Result
send_not_found(const req *r)
{
  static const char *const hdr[] = { "X-Content-Type-Options", "nosniff", NULL };
  return send_reply(r, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8", NOT_FOUND_BODY,
                    sizeof NOT_FOUND_BODY - 1, hdr);
}

/* The start of every JSON reply: {"error":..,"message":..}. */
static json_t *
envelope(bool error, const char *message)
{
  return json_pack("{s:b,s:s}", "error", error, "message", message);
}

/* Finish @doc (takes it, may be NULL after a failed build) with "request"
 * and send it. */
static enum MHD_Result
send_json(const req *r, unsigned code, json_t *doc, bool bad, const char *const *extra)
{
  if (doc && !bad) {
    json_t *info = json_object();
    put(info, "url", jstr(r->url), &bad);
    put(info, "host", jstr(r->srv->host), &bad);
    put(doc, "request", info, &bad);
  }
  char *text = doc && !bad ? json_dumps(doc, JSON_FLAGS) : NULL;
  json_decref(doc);
  enum MHD_Result ok;
  if (text)
    ok = send_reply(r, code, "application/json", text, strlen(text), extra);
  else
    ok = send_reply(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "application/json", ENCODE_FAILED_BODY,
                    sizeof ENCODE_FAILED_BODY - 1, NULL);
  free(text);
  return ok;
}

/* {"error":true,"message":@message,"request":{...}} */
static enum MHD_Result
send_error(const req *r, unsigned code, const char *message, const char *const *extra)
{
  return send_json(r, code, envelope(true, message), false, extra);
}

/* A failed library call: 500 naming the error. */
static enum MHD_Result
send_store_error(const req *r, int rc)
{
  char msg[512];
  const char *detail = q7_last_error();
  snprintf(msg, sizeof msg, "store error: %s%s%s", q7_strerror(rc), *detail ? ": " : "",
           detail);
  return send_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, msg, NULL);
}

/* ===================================================================== */
/*  Burrow's payloads                                                    */
/* ===================================================================== */

/* ConsumerOffset: {"offset","timestamp","observedAt","lag"}; null for a
 * commit that is not there. */
static json_t *
consumer_offset(const q7_commit *c)
{
  if (c->offset < 0)
    return json_null();
  return json_pack("{s:I,s:I,s:I,s:o}", "offset", (json_int_t)c->offset, "timestamp",
                   (json_int_t)c->timestamp_ms, "observedAt", (json_int_t)c->timestamp_ms,
                   "lag", c->lag < 0 ? json_null() : jint(c->lag));
}

/* PartitionStatus, field order as Burrow writes it. */
static json_t *
partition_status(const q7_partition_report *p)
{
  bool bad = false;
  json_t *o = json_object();
  put(o, "topic", jstr(p->topic), &bad);
  put(o, "partition", jint(p->partition), &bad);
  put(o, "owner", json_string(""), &bad);
  put(o, "client_id", json_string(""), &bad);
  put(o, "status", json_string(q7_status_name(p->status)), &bad);
  put(o, "start", consumer_offset(&p->start), &bad);
  put(o, "end", consumer_offset(&p->end), &bad);
  put(o, "current_lag", jint(p->current_lag), &bad);
  put(o, "complete", json_real(p->complete), &bad);
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* ConsumerGroupStatus.  @rep NULL: NOTFOUND (unknown cluster or group).
 * @all: every partition (/lag), else only those worse than OK (/status). */
static json_t *
group_status(const char *cluster_name, const char *group, const q7_group_report *rep, bool all)
{
  bool bad = false;
  json_t *o = json_object();
  json_t *parts = json_array();
  put(o, "cluster", jstr(cluster_name), &bad);
  put(o, "group", jstr(group), &bad);
  put(o, "status", json_string(q7_status_name(rep ? rep->status : Q7_STATUS_NOTFOUND)), &bad);
  put(o, "complete", json_real(rep ? rep->complete : 1.0), &bad);
  for (size_t i = 0; rep && i < rep->partition_count; i++)
    if (all || rep->partitions[i].status > Q7_STATUS_OK)
      push(parts, partition_status(&rep->partitions[i]), &bad);
  put(o, "partitions", parts, &bad);
  put(o, "partition_count", jint(rep ? (int64_t)rep->partition_count : 0), &bad);
  put(o, "maxlag", rep && rep->maxlag ? partition_status(rep->maxlag) : json_null(), &bad);
  put(o, "totallag", jint(rep ? rep->total_lag : 0), &bad);
  if (bad) {
    json_decref(o);
    return NULL;
  }
  return o;
}

/* ConsumerPartition of consumer detail: the window as lag.window entries,
 * nulls first; "offsets":[] for a partition never committed. */
static json_t *
consumer_partition(q7 *q, const char *group, const q7_partition_report *p, int *rc)
{
  bool bad = false;
  size_t intervals = 0;
  q7_commit *hist = NULL;
  json_t *offsets = json_array();
  int n = q7_commit_history(q, group, p->topic, p->partition, NULL, 0, &intervals);
  if (n > 0) {
    size_t cap = (size_t)n > intervals ? (size_t)n : intervals;
    if (!(hist = calloc(cap, sizeof *hist))) {
      *rc = Q7_ENOMEM;
      goto fail;
    }
    n = q7_commit_history(q, group, p->topic, p->partition, hist, cap, NULL);
    if (n > (int)cap)
      n = (int)cap;
  }
  if (n < 0 && n != Q7_ENOENT) { /* ENOENT: the topic went away meanwhile */
    *rc = n;
    goto fail;
  }
  if (n > 0) {
    size_t have = (size_t)n < intervals ? (size_t)n : intervals;
    for (size_t i = have; i < intervals; i++)
      push(offsets, json_null(), &bad);
    for (size_t i = (size_t)n - have; i < (size_t)n; i++)
      push(offsets, consumer_offset(&hist[i]), &bad);
  }
  free(hist);
  json_t *o = json_pack("{s:o,s:s,s:s,s:I}", "offsets", offsets, "owner", "", "client_id", "",
                        "current-lag", (json_int_t)p->current_lag);
  if (!o || bad) {
    json_decref(o);
    *rc = Q7_ENOMEM;
    return NULL;
  }
  return o;
fail:
  free(hist);
  json_decref(offsets);
  return NULL;
}

/* ===================================================================== */
/*  Endpoints                                                            */
/* ===================================================================== */

static enum MHD_Result
do_clusters(const req *r)
{
  bool bad = false;
  json_t *doc = envelope(false, "cluster list returned");
  json_t *list = json_array();
  for (size_t i = 0; i < r->srv->n; i++)
    push(list, jstr(r->srv->clusters[i].name), &bad);
  put(doc, "clusters", list, &bad);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

/* Burrow's cluster module settings; a store stands where the brokers did,
 * and offsets are read at request time (no refresh intervals). */
static enum MHD_Result
do_cluster(const req *r, cluster *c)
{
  if (!c)
    return send_error(r, MHD_HTTP_NOT_FOUND, "cluster module not found", NULL);
  bool bad = false;
  json_t *doc = envelope(false, "cluster module detail returned");
  json_t *module = json_pack("{s:s,s:[o],s:{s:s,s:s,s:s,s:n,s:n},s:i,s:i}",
                             "class-name", "libq7",
                             "servers", jstr(q7_store_path(c->q)),
                             "client-profile", "name", "default", "client-id", "q7-serve",
                             "kafka-version", "", "tls", "sasl",
                             "topic-refresh", 0, "offset-refresh", 0);
  put(doc, "module", module, &bad);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

static enum MHD_Result
do_topics(const req *r, cluster *c)
{
  if (!c)
    return send_error(r, MHD_HTTP_NOT_FOUND, "cluster not found", NULL);
  strv names = { 0 };
  int rc = q7_topic_foreach(c->q, topic_collect, &names);
  if (rc) {
    strv_free(&names);
    return send_store_error(r, rc);
  }
  bool bad = false;
  json_t *doc = envelope(false, "topic list returned");
  json_t *list = json_array();
  for (size_t i = 0; i < names.n; i++)
    push(list, jstr(names.v[i]), &bad);
  put(doc, "topics", list, &bad);
  strv_free(&names);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

/* The high watermark of every partition of @name into @list. */
static int
topic_offsets(q7 *q, const char *name, json_t *list, bool *bad)
{
  q7_topic *t;
  int rc = q7_topic_open(q, name, &t);
  if (rc)
    return rc;
  int32_t n = q7_topic_partition_count(t);
  for (int32_t p = 0; p < n && !rc; p++) {
    q7_partition *part;
    int64_t hw = 0;
    if (!(rc = q7_topic_partition(t, p, &part)) && !(rc = q7_partition_offsets(part, NULL, &hw)))
      push(list, jint(hw), bad);
  }
  q7_topic_close(t);
  return rc;
}

static enum MHD_Result
do_topic(const req *r, cluster *c, const char *topic)
{
  if (!c)
    return send_error(r, MHD_HTTP_NOT_FOUND, "cluster or topic not found", NULL);
  bool bad = false;
  json_t *list = json_array();
  int rc = topic_offsets(c->q, topic, list, &bad);
  if (rc) {
    json_decref(list);
    if (rc == Q7_ENOENT || rc == Q7_EINVAL)
      return send_error(r, MHD_HTTP_NOT_FOUND, "cluster or topic not found", NULL);
    return send_store_error(r, rc);
  }
  json_t *doc = envelope(false, "topic offsets returned");
  put(doc, "offsets", list, &bad);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

/* The groups that committed on some partition of @topic (Burrow: none for
 * a topic it does not know). */
static enum MHD_Result
do_topic_consumers(const req *r, cluster *c, const char *topic)
{
  if (!c)
    return send_error(r, MHD_HTTP_NOT_FOUND, "cluster not found", NULL);
  strv groups = { 0 };
  int32_t parts = 0;
  q7_topic *t;
  int rc = q7_topic_open(c->q, topic, &t);
  if (rc == Q7_OK) {
    parts = q7_topic_partition_count(t);
    q7_topic_close(t);
  } else if (rc != Q7_ENOENT && rc != Q7_EINVAL) {
    return send_store_error(r, rc);
  }
  if (parts > 0 && (rc = q7_group_foreach(c->q, group_collect, &groups))) {
    strv_free(&groups);
    return send_store_error(r, rc);
  }
  bool bad = false;
  json_t *list = json_array();
  for (size_t i = 0; i < groups.n; i++) {
    for (int32_t p = 0; p < parts; p++) {
      int64_t next;
      if (q7_committed(c->q, groups.v[i], topic, p, &next) == Q7_OK) {
        push(list, jstr(groups.v[i]), &bad);
        break;
      }
    }
  }
  strv_free(&groups);
  json_t *doc = envelope(false, "consumers of topic returned");
  put(doc, "consumers", list, &bad);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

static enum MHD_Result
do_consumers(const req *r, cluster *c)
{
  if (!c)
    return send_error(r, MHD_HTTP_NOT_FOUND, "cluster not found", NULL);
  strv groups = { 0 };
  int rc = q7_group_foreach(c->q, group_collect, &groups);
  if (rc) {
    strv_free(&groups);
    return send_store_error(r, rc);
  }
  bool bad = false;
  json_t *doc = envelope(false, "consumer list returned");
  json_t *list = json_array();
  for (size_t i = 0; i < groups.n; i++)
    push(list, jstr(groups.v[i]), &bad);
  put(doc, "consumers", list, &bad);
  strv_free(&groups);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

/* The group's report, or NULL with *rc Q7_OK when it is NOTFOUND (unknown,
 * expired, or a name no group can have). */
static q7_group_report *
report_of(cluster *c, const char *group, int *rc)
{
  q7_group_report *rep = NULL;
  *rc = Q7_OK;
  if (!c)
    return NULL;
  int e = q7_group_status(c->q, group, 0, &rep);
  if (e == Q7_EINVAL)
    return NULL;
  if (e) {
    *rc = e;
    return NULL;
  }
  if (rep->status == Q7_STATUS_NOTFOUND) {
    q7_group_report_free(rep);
    return NULL;
  }
  return rep;
}

static enum MHD_Result
do_consumer(const req *r, cluster *c, const char *group)
{
  int rc;
  q7_group_report *rep = report_of(c, group, &rc);
  if (rc)
    return send_store_error(r, rc);
  if (!rep)
    return send_error(r, MHD_HTTP_NOT_FOUND, "cluster or consumer not found", NULL);
  bool bad = false;
  json_t *topics = json_object();
  for (size_t i = 0; i < rep->partition_count && !bad && !rc; i++) {
    const q7_partition_report *p = &rep->partitions[i];
    json_t *list = json_object_get(topics, p->topic);
    if (!list) {
      list = json_array();
      put(topics, p->topic, list, &bad);
      if (bad)
        break;
    }
    json_t *cp = consumer_partition(c->q, group, p, &rc);
    if (cp)
      push(list, cp, &bad);
  }
  q7_group_report_free(rep);
  if (rc) {
    json_decref(topics);
    return send_store_error(r, rc);
  }
  json_t *doc = envelope(false, "consumer detail returned");
  put(doc, "topics", topics, &bad);
  return send_json(r, MHD_HTTP_OK, doc, bad, NULL);
}

/* /status and /lag: 404 with the same body, error false, for NOTFOUND. */
static enum MHD_Result
do_status(const req *r, const char *cluster_name, cluster *c, const char *group, bool all)
{
  int rc;
  q7_group_report *rep = report_of(c, group, &rc);
  if (rc)
    return send_store_error(r, rc);
  bool bad = false;
  json_t *doc = envelope(false, "consumer status returned");
  put(doc, "status", group_status(cluster_name, group, rep, all), &bad);
  q7_group_report_free(rep);
  return send_json(r, rep ? MHD_HTTP_OK : MHD_HTTP_NOT_FOUND, doc, bad, NULL);
}

/* DELETE: Burrow answers "consumer group removed" whether or not the group
 * was there. */
static enum MHD_Result
do_delete(const req *r, cluster *c, const char *group)
{
  if (c) {
    int rc = q7_group_delete(c->q, group);
    if (rc && rc != Q7_ENOENT && rc != Q7_EINVAL)
      return send_store_error(r, rc);
  }
  return send_json(r, MHD_HTTP_OK, envelope(false, "consumer group removed"), false, NULL);
}

/* ===================================================================== */
/*  /metrics: Burrow's gauges in Prometheus' text format                 */
/* ===================================================================== */

/* Families in name order, as client_golang writes them. */
enum fam {
  F_CURRENT_OFFSET, F_LAG_TOTAL, F_PARTITION_LAG, F_CONSUMER_STATUS, F_TOPIC_OFFSET,
  F_PARTITION_STATUS, F_COUNT
};

static const struct {
  const char *name, *help;
} FAMILIES[F_COUNT] = {
  { "burrow_kafka_consumer_current_offset",
    "Latest offset that Burrow is storing for this partition" },
  { "burrow_kafka_consumer_lag_total",
    "The sum of all partition current lag values for the group" },
  { "burrow_kafka_consumer_partition_lag",
    "Number of messages the consumer group is behind by for a partition as reported by Burrow" },
  { "burrow_kafka_consumer_status",
    "The status of the consumer group. It is calculated from the highest status for the "
    "individual partitions. Statuses are an index list from NOTFOUND, OK, WARN, or ERR" },
  { "burrow_kafka_topic_partition_offset",
    "Latest offset the topic that Burrow is storing for this partition" },
  { "burrow_kafka_topic_partition_status",
    "The status of topic partition. It is calculated from the highest status for the "
    "individual partitions. Statuses are an index list from OK, WARN, STOP, STALL, REWIND" },
};

/* Label names in the order client_golang sorts them. */
enum { L_CLUSTER, L_GROUP, L_PARTITION, L_TOPIC, L_COUNT };
static const char *const LABELS[L_COUNT] = { "cluster", "consumer_group", "partition", "topic" };

typedef struct sample {
  enum fam fam;
  char *label[L_COUNT];         /* NULL: the family has no such label */
  int64_t value;
} sample;

typedef struct samples {
  sample *v;
  size_t n, cap;
  bool bad;
} samples;

static void
add_sample(samples *s, enum fam fam, const char *cluster_name, const char *group,
           const char *topic, int32_t partition, int64_t value)
{
  if (s->bad)
    return;
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 64;
    sample *v = realloc(s->v, cap * sizeof *v);
    if (!v) {
      s->bad = true;
      return;
    }
    s->v = v;
    s->cap = cap;
  }
  sample *m = &s->v[s->n];
  char part[16];
  const char *vals[L_COUNT] = { cluster_name, group, topic ? part : NULL, topic };
  snprintf(part, sizeof part, "%" PRId32, partition);
  memset(m, 0, sizeof *m);
  m->fam = fam;
  m->value = value;
  for (int i = 0; i < L_COUNT; i++)
    if (vals[i] && !(m->label[i] = utf8_clean(vals[i])))
      s->bad = true;
  s->n++;
}

static void
samples_free(samples *s)
{
  for (size_t i = 0; i < s->n; i++)
    for (int l = 0; l < L_COUNT; l++)
      free(s->v[i].label[l]);
  free(s->v);
}

static int
sample_cmp(const void *a, const void *b)
{
  const sample *x = a, *y = b;
  if (x->fam != y->fam)
    return x->fam < y->fam ? -1 : 1;
  for (int l = 0; l < L_COUNT; l++) {
    if (!x->label[l] || !y->label[l])
      continue;
    int c = strcmp(x->label[l], y->label[l]);
    if (c)
      return c;
  }
  return 0;
}

/* A float64 as Go's strconv.FormatFloat(v, 'g', -1, 64) writes it. */
static void
prom_value(FILE *f, int64_t v)
{
  if (v > -1000000 && v < 1000000) {
    fprintf(f, "%" PRId64, v);
    return;
  }
  double d = (double)v;
  char buf[64];
  for (int prec = 0; prec <= 16; prec++) {
    snprintf(buf, sizeof buf, "%.*e", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  fputs(buf, f);
}

static void
prom_label(FILE *f, const char *s)
{
  for (; *s; s++) {
    if (*s == '\\' || *s == '"')
      fprintf(f, "\\%c", *s);
    else if (*s == '\n')
      fputs("\\n", f);
    else
      fputc(*s, f);
  }
}

/* Burrow's gauges for one cluster. */
static int
cluster_samples(cluster *c, samples *s)
{
  strv groups = { 0 }, topics = { 0 };
  int rc = q7_group_foreach(c->q, group_collect, &groups);
  for (size_t g = 0; g < groups.n && !rc; g++) {
    q7_group_report *rep = report_of(c, groups.v[g], &rc);
    if (!rep)
      continue;
    add_sample(s, F_LAG_TOTAL, c->name, groups.v[g], NULL, 0, rep->total_lag);
    add_sample(s, F_CONSUMER_STATUS, c->name, groups.v[g], NULL, 0, rep->status);
    for (size_t i = 0; i < rep->partition_count; i++) {
      const q7_partition_report *p = &rep->partitions[i];
      add_sample(s, F_PARTITION_LAG, c->name, groups.v[g], p->topic, p->partition,
                 p->current_lag);
      if (p->complete >= 1.0) {
        add_sample(s, F_CURRENT_OFFSET, c->name, groups.v[g], p->topic, p->partition,
                   p->end.offset);
        add_sample(s, F_PARTITION_STATUS, c->name, groups.v[g], p->topic, p->partition,
                   p->status);
      }
    }
    q7_group_report_free(rep);
  }
  if (!rc)
    rc = q7_topic_foreach(c->q, topic_collect, &topics);
  for (size_t t = 0; t < topics.n && !rc; t++) {
    q7_topic *th;
    int e = q7_topic_open(c->q, topics.v[t], &th);
    if (e == Q7_ENOENT)
      continue; /* deleted meanwhile */
    if ((rc = e))
      break;
    int32_t n = q7_topic_partition_count(th);
    for (int32_t p = 0; p < n && !rc; p++) {
      q7_partition *part;
      int64_t hw;
      if (!(rc = q7_topic_partition(th, p, &part)) && !(rc = q7_partition_offsets(part, NULL, &hw)))
        add_sample(s, F_TOPIC_OFFSET, c->name, NULL, topics.v[t], p, hw);
    }
    q7_topic_close(th);
  }
  strv_free(&groups);
  strv_free(&topics);
  return rc;
}

static enum MHD_Result
do_metrics(const req *r)
{
  samples s = { 0 };
  int rc = 0;
  for (size_t i = 0; i < r->srv->n && !rc; i++)
    rc = cluster_samples(&r->srv->clusters[i], &s);
  if (rc || s.bad) {
    samples_free(&s);
    return rc ? send_store_error(r, rc) : send_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                                                     "out of memory\n");
  }
  qsort(s.v, s.n, sizeof *s.v, sample_cmp);
  char *body = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&body, &len);
  if (!f) {
    samples_free(&s);
    return send_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  for (size_t i = 0; i < s.n; i++) {
    const sample *m = &s.v[i];
    if (!i || s.v[i - 1].fam != m->fam)
      fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", FAMILIES[m->fam].name,
              FAMILIES[m->fam].help, FAMILIES[m->fam].name);
    fputs(FAMILIES[m->fam].name, f);
    const char *sep = "{";
    for (int l = 0; l < L_COUNT; l++) {
      if (!m->label[l])
        continue;
      fprintf(f, "%s%s=\"", sep, LABELS[l]);
      prom_label(f, m->label[l]);
      fputc('"', f);
      sep = ",";
    }
    fputs("} ", f);
    prom_value(f, m->value);
    fputc('\n', f);
  }
  samples_free(&s);
  bool failed = ferror(f) != 0;
  if (fclose(f) || failed) {
    free(body);
    return send_text(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
  }
  enum MHD_Result ok = send_reply(r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
                                  body, len, NULL);
  free(body);
  return ok;
}

/* ===================================================================== */
/*  Routing                                                              */
/* ===================================================================== */

/* Burrow's routes (httprouter): segments are non-empty and have no '/'.
 * @path is cut in place; *@c and *@x point into it. */
static enum route
match(char *path, char **c, char **x)
{
  char *seg[MAX_SEGMENTS];
  size_t n = 0;
  *c = *x = NULL;
  if (path[0] != '/')
    return RT_NONE;
  if (!strcmp(path, "/"))
    return RT_PAGE;
  for (char *p = path + 1;;) {
    if (n == MAX_SEGMENTS)
      return RT_NONE;
    seg[n++] = p;
    char *slash = strchr(p, '/');
    if (!slash)
      break;
    *slash = '\0';
    p = slash + 1;
  }
  for (size_t i = 0; i < n; i++)
    if (!*seg[i])
      return RT_NONE;
  if (n == 1 && !strcmp(seg[0], "metrics"))
    return RT_METRICS;
  if (!strcmp(seg[0], "burrow") && n >= 2 && !strcmp(seg[1], "admin")) {
    if (n == 2)
      return RT_ADMIN;
    if (n == 3 && !strcmp(seg[2], "ready"))
      return RT_READY;
    return RT_NONE;
  }
  if (n < 2 || strcmp(seg[0], "v3") || strcmp(seg[1], "kafka"))
    return RT_NONE;
  if (n == 2)
    return RT_CLUSTERS;
  *c = seg[2];
  if (n == 3)
    return RT_CLUSTER;
  bool topic = !strcmp(seg[3], "topic"), consumer = !strcmp(seg[3], "consumer");
  if (n == 4)
    return topic ? RT_TOPICS : consumer ? RT_CONSUMERS : RT_NONE;
  *x = seg[4];
  if (n == 5)
    return topic ? RT_TOPIC : consumer ? RT_CONSUMER : RT_NONE;
  if (n == 6 && topic && !strcmp(seg[5], "consumers"))
    return RT_TOPIC_CONSUMERS;
  if (n == 6 && consumer && !strcmp(seg[5], "status"))
    return RT_STATUS;
  if (n == 6 && consumer && !strcmp(seg[5], "lag"))
    return RT_LAG;
  return RT_NONE;
}

/* @path percent-encoded for a Location header (as Go's URL.EscapedPath). */
static void
escape_path(const char *path, char *out, size_t size)
{
  static const char keep[] = "-._~/!$&'()*+,;=:@";
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)path; *p && o + 4 < size; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        strchr(keep, *p))
      out[o++] = (char)*p;
    else
      o += (size_t)snprintf(out + o, size - o, "%%%02X", *p);
  }
  out[o] = '\0';
}

static enum MHD_Result
redirect(const req *r, const char *to, bool get)
{
  char loc[MAX_URI * 3 + 1];
  escape_path(to, loc, sizeof loc);
  const char *hdr[] = { MHD_HTTP_HEADER_LOCATION, loc, NULL };
  if (!get) /* 307 keeps the method (httprouter) */
    return send_reply(r, MHD_HTTP_TEMPORARY_REDIRECT, NULL, "", 0, hdr);
  /* Go's http.Redirect body; of the HTML specials only '&' and '\'' can be
   * left in @loc. */
  char body[sizeof loc * 5 + 64];
  size_t o = 0;
  o += (size_t)snprintf(body, sizeof body, "<a href=\"");
  for (const char *p = loc; *p; p++) {
    const char *ent = *p == '&' ? "&amp;" : *p == '\'' ? "&#39;" : NULL;
    if (ent) {
      memcpy(body + o, ent, strlen(ent));
      o += strlen(ent);
    } else {
      body[o++] = *p;
    }
  }
  snprintf(body + o, sizeof body - o, "\">Moved Permanently</a>.\n\n");
  return send_reply(r, MHD_HTTP_MOVED_PERMANENTLY, "text/html; charset=utf-8", body,
                    strlen(body), hdr);
}

static enum MHD_Result
header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4; /* ": " and CRLF */
  return MHD_YES;
}

static enum MHD_Result
query_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
  *(size_t *)cls += strlen(key) + (value ? strlen(value) + 1 : 0) + 1; /* '=' and '&' */
  return MHD_YES;
}

/* Whether the request comes with a body. */
static bool
has_body(struct MHD_Connection *conn)
{
  const char *len = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_LENGTH);
  return (len && strcmp(len, "0")) ||
         MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
}

/* libmicrohttpd calls this once the headers are in, then again after the
 * body (if any).  A request we serve (GET, HEAD or DELETE without a body) is
 * answered on the second call, so the connection may be kept alive; anything
 * else (a refusal, a request with a body) is answered at once, which makes
 * libmicrohttpd skip the body and close the connection. */
static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **state)
{
  static int seen;
  req r = { cls, conn, url };
  bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
  bool del = !strcmp(method, "DELETE");

  if (*state && *upload_size) { /* a body we did not ask for: drop it */
    *upload_size = 0;
    return MHD_YES;
  }
  if (!*state) {
    *state = &seen;
    size_t uri = strlen(url), headers = 0;
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, query_bytes, &uri);
    MHD_get_connection_values(conn, MHD_HEADER_KIND, header_bytes, &headers);
    if (uri > MAX_URI)
      return send_text(&r, MHD_HTTP_URI_TOO_LONG, "request path too long\n");
    if (headers > MAX_HEADERS)
      return send_text(&r, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
                       "request header fields too large\n");
    if ((get || del) && !has_body(conn))
      return MHD_YES; /* answer on the next call */
  }

  char path[MAX_URI + 1], *c, *x;
  if (strlen(url) > MAX_URI) /* checked above; kept here for the copy */
    return send_text(&r, MHD_HTTP_URI_TOO_LONG, "request path too long\n");
  memcpy(path, url, strlen(url) + 1);
  enum route rt = match(path, &c, &x);

  if (rt == RT_NONE) {
    /* httprouter: a trailing slash is redirected to the route without it */
    size_t len = strlen(url);
    if (len > 1 && url[len - 1] == '/') {
      memcpy(path, url, len - 1);
      path[len - 1] = '\0';
      enum route rt2 = match(path, &c, &x);
      if (rt2 != RT_NONE && (get || (del && rt2 == RT_CONSUMER))) {
        memcpy(path, url, len - 1);
        path[len - 1] = '\0';
        return redirect(&r, path, get);
      }
    }
    return send_not_found(&r);
  }

  bool may_delete = rt == RT_CONSUMER && r.srv->allow_delete;
  static const char *const allow_get[] = { MHD_HTTP_HEADER_ALLOW, "GET, HEAD", NULL };
  static const char *const allow_del[] = { MHD_HTTP_HEADER_ALLOW, "GET, HEAD, DELETE", NULL };
  if (del && rt == RT_CONSUMER && !may_delete)
    return send_error(&r, MHD_HTTP_METHOD_NOT_ALLOWED,
                      "consumer group removal is disabled (q7 serve --allow-delete enables it)",
                      allow_get);
  if (!get && !(del && may_delete))
    return send_error(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
                      may_delete ? allow_del : allow_get);

  cluster *cl = c ? find_cluster(r.srv, c) : NULL;
  switch (rt) {
  case RT_PAGE: {
    static const char *const hdr[] = {
      "Cache-Control", "no-cache", "X-Content-Type-Options", "nosniff",
      "Content-Security-Policy",
      "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
      "connect-src 'self'; img-src data:",
      NULL };
    return send_reply(&r, MHD_HTTP_OK, "text/html; charset=utf-8", page(), strlen(page()), hdr);
  }
  case RT_ADMIN:
    return send_text(&r, MHD_HTTP_OK, "GOOD");
  case RT_READY:
    return send_text(&r, MHD_HTTP_OK, "READY"); /* the stores open before we listen */
  case RT_METRICS:
    return do_metrics(&r);
  case RT_CLUSTERS:
    return do_clusters(&r);
  case RT_CLUSTER:
    return do_cluster(&r, cl);
  case RT_TOPICS:
    return do_topics(&r, cl);
  case RT_TOPIC:
    return do_topic(&r, cl, x);
  case RT_TOPIC_CONSUMERS:
    return do_topic_consumers(&r, cl, x);
  case RT_CONSUMERS:
    return do_consumers(&r, cl);
  case RT_CONSUMER:
    return del ? do_delete(&r, cl, x) : do_consumer(&r, cl, x);
  case RT_STATUS:
  case RT_LAG:
    return do_status(&r, c, cl, x, rt == RT_LAG);
  case RT_NONE:
    break;
  }
  return send_not_found(&r);
}

/* ===================================================================== */
/*  Command line                                                         */
/* ===================================================================== */

static void
usage(FILE *f)
{
  fputs("usage: q7 serve [--listen ADDR:PORT] --cluster NAME=DIR [--cluster NAME=DIR ...]\n"
        "                [--allow-delete] [--allow-remote]\n"
        "\n"
        "Serve LinkedIn Burrow's HTTP API v3 (/v3/kafka/...), Prometheus metrics\n"
        "(/metrics) and a status page (/) over libq7 stores, each store a cluster.\n"
        "\n"
        "  --listen ADDR:PORT  where to listen (default " DEFAULT_LISTEN "); port 0 picks a\n"
        "                      free one.  The first line on stdout is\n"
        "                      \"listening on ADDR:PORT\".\n"
        "  --cluster NAME=DIR  serve the store in DIR as cluster NAME ([A-Za-z0-9._-]+);\n"
        "                      repeat for several stores.\n"
        "  --allow-delete      let DELETE /v3/kafka/NAME/consumer/GROUP forget a group\n"
        "                      (405 otherwise).\n"
        "  --allow-remote      allow an ADDR that is not loopback.\n"
        "  --help              show this text.\n"
        "\n"
        "Stops on SIGINT or SIGTERM.\n",
        f);
}

static int
bad_usage(const char *fmt, const char *arg)
{
  fputs("q7 serve: ", stderr);
  fprintf(stderr, fmt, arg);
  fputs(" (q7 serve --help)\n", stderr);
  return 2;
}

static bool
valid_cluster_name(const char *s)
{
  if (!*s)
    return false;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '.' || *s == '_' || *s == '-'))
      return false;
  return true;
}

static bool
is_loopback(const struct sockaddr *sa)
{
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
  }
  return false;
}

/* "ADDR:PORT" (ADDR may be "[v6]") into a bound, listening socket.  Returns
 * the socket, -2 for a usage error, -1 for a failure (both reported). */
static int
listen_on(const char *spec, bool allow_remote, char *shown, size_t shown_len)
{
  char host[256];
  const char *colon = strrchr(spec, ':');
  if (!colon || colon == spec || !colon[1] || (size_t)(colon - spec) >= sizeof host) {
    bad_usage("--listen wants ADDR:PORT, not \"%s\"", spec);
    return -2;
  }
  size_t hl = (size_t)(colon - spec);
  memcpy(host, spec, hl);
  host[hl] = '\0';
  if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
    memmove(host, host + 1, hl - 2);
    host[hl - 2] = '\0';
  }
  const char *port = colon + 1;
  char *end;
  errno = 0;
  long pn = strtol(port, &end, 10);
  if (*end || errno || pn < 0 || pn > 65535 || port[0] == '-' || port[0] == '+') {
    bad_usage("--listen: bad port in \"%s\"", spec);
    return -2;
  }

  struct addrinfo hints = { 0 }, *ai = NULL;
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  int e = getaddrinfo(host, port, &hints, &ai);
  if (e) {
    fprintf(stderr, "q7 serve: --listen %s: %s\n", spec, gai_strerror(e));
    return -2;
  }
  if (!allow_remote && !is_loopback(ai->ai_addr)) {
    fprintf(stderr, "q7 serve: refusing to listen on %s: not a loopback address "
            "(add --allow-remote to serve other hosts)\n", spec);
    freeaddrinfo(ai);
    return -2;
  }
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
      bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 128)) {
    fprintf(stderr, "q7 serve: cannot listen on %s: %s\n", spec, strerror(errno));
    if (fd >= 0)
      close(fd);
    freeaddrinfo(ai);
    return -1;
  }
  freeaddrinfo(ai);

  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  char addr[INET6_ADDRSTRLEN] = "?";
  unsigned bound = 0;
  if (!getsockname(fd, (struct sockaddr *)&ss, &sl)) {
    if (ss.ss_family == AF_INET6) {
      const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;
      inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof addr);
      bound = ntohs(s6->sin6_port);
      snprintf(shown, shown_len, "[%s]:%u", addr, bound);
    } else {
      const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;
      inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof addr);
      bound = ntohs(s4->sin_port);
      snprintf(shown, shown_len, "%s:%u", addr, bound);
    }
  } else {
    snprintf(shown, shown_len, "%s", spec);
  }
  return fd;
}

/* Open every cluster's store; refuses a missing directory (a read-only
 * server should not create stores) and one store under two names. */
static int
open_clusters(server *s)
{
  char (*real)[PATH_MAX] = calloc(s->n, sizeof *real);
  if (!real) {
    fputs("q7 serve: out of memory\n", stderr);
    return 1;
  }
  int rc = 0;
  for (size_t i = 0; i < s->n && !rc; i++) {
    cluster *c = &s->clusters[i];
    struct stat st;
    const char *why = NULL;
    if (stat(c->dir, &st))
      why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
      why = "not a directory";
    else if (!realpath(c->dir, real[i]))
      why = strerror(errno);
    if (why) {
      fprintf(stderr, "q7 serve: cluster %s: %s: %s\n", c->name, c->dir, why);
      rc = 1;
      break;
    }
    for (size_t j = 0; j < i; j++) {
      if (!strcmp(real[i], real[j])) {
        fprintf(stderr, "q7 serve: clusters %s and %s are the same store %s\n",
                s->clusters[j].name, c->name, real[i]);
        rc = 2;
      }
    }
    if (rc)
      break;
    int e = q7_open(&c->q, c->dir, NULL);
    if (e) {
      fprintf(stderr, "q7 serve: cluster %s: cannot open the store in %s: %s%s%s\n", c->name,
              c->dir, q7_strerror(e), *q7_last_error() ? ": " : "", q7_last_error());
      rc = 1;
    }
  }
  free(real);
  return rc;
}

static void
close_clusters(server *s)
{
  for (size_t i = 0; i < s->n; i++) {
    q7_close(s->clusters[i].q);
    s->clusters[i].q = NULL;
  }
}

/* Option @name's value: "--name=value" or "--name value". */
static const char *
opt_value(int argc, char **argv, int *i, const char *name)
{
  size_t l = strlen(name);
  if (strncmp(argv[*i], name, l))
    return NULL;
  if (argv[*i][l] == '=')
    return argv[*i] + l + 1;
  if (argv[*i][l] == '\0' && *i + 1 < argc)
    return argv[++*i];
  return NULL;
}

int
q7_tool_serve(int argc, char **argv)
{
  server srv = { 0 };
  const char *listen_spec = DEFAULT_LISTEN;
  bool allow_remote = false, blocked = false;
  int rc = 0, fd = -1;
  struct MHD_Daemon *d = NULL;

  if (!(srv.clusters = calloc((size_t)(argc > 0 ? argc : 1), sizeof *srv.clusters))) {
    fputs("q7 serve: out of memory\n", stderr);
    return 1;
  }
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      goto done;
    } else if (!strcmp(a, "--allow-delete")) {
      srv.allow_delete = true;
    } else if (!strcmp(a, "--allow-remote")) {
      allow_remote = true;
    } else if ((v = opt_value(argc, argv, &i, "--listen"))) {
      listen_spec = v;
    } else if ((v = opt_value(argc, argv, &i, "--cluster"))) {
      const char *eq = strchr(v, '=');
      cluster *c = &srv.clusters[srv.n];
      if (!eq || !eq[1]) {
        rc = bad_usage("--cluster wants NAME=DIR, not \"%s\"", v);
        goto done;
      }
      char *name = strndup(v, (size_t)(eq - v));
      if (!name || !valid_cluster_name(name)) {
        rc = bad_usage("bad cluster name in \"%s\": use [A-Za-z0-9._-]+", v);
        free(name);
        goto done;
      }
      c->name = name;
      c->dir = eq + 1;
      srv.n++;
      if (find_cluster(&srv, name) != c) {
        rc = bad_usage("cluster %s given twice", name);
        goto done;
      }
    } else if (!strcmp(a, "--listen") || !strcmp(a, "--cluster")) {
      rc = bad_usage("%s needs a value", a);
      goto done;
    } else {
      rc = bad_usage("unknown argument \"%s\"", a);
      goto done;
    }
  }
  if (!srv.n) {
    rc = bad_usage("%s", "no store to serve: give --cluster NAME=DIR");
    goto done;
  }
  if (gethostname(srv.host, sizeof srv.host - 1))
    strcpy(srv.host, "localhost");

  /* Every thread started from here on -- the stores' own (retention) and
   * libmicrohttpd's -- inherits this mask, so SIGINT and SIGTERM reach only
   * the sigwait below. */
  sigset_t stop, old;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  pthread_sigmask(SIG_BLOCK, &stop, &old);
  blocked = true;

  char shown[INET6_ADDRSTRLEN + 16];
  fd = listen_on(listen_spec, allow_remote, shown, sizeof shown);
  if (fd < 0) {
    rc = fd == -2 ? 2 : 1;
    goto done;
  }
  if ((rc = open_clusters(&srv)))
    goto done;

  d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                       NULL, on_request, &srv,
                       MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
                       MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
                       MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                       MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S,
                       MHD_OPTION_END);
  if (!d) {
    fprintf(stderr, "q7 serve: cannot start the HTTP server on %s\n", shown);
    rc = 1;
    goto done;
  }
  fd = -1; /* libmicrohttpd's now */
  printf("listening on %s\n", shown);
  fflush(stdout);

  int sig = 0;
  while (sigwait(&stop, &sig) == 0 && sig != SIGINT && sig != SIGTERM)
    ;
  MHD_stop_daemon(d);
  close_clusters(&srv);
  /* After a clean stop the mask stays: the caller exits with our code, and a
   * second Ctrl-C meanwhile must not turn that into a killed process. */
  blocked = false;
done:
  if (fd >= 0)
    close(fd);
  close_clusters(&srv);
  if (blocked) /* a signal that came during a failed start acts now */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
  for (size_t i = 0; i < srv.n; i++)
    free((char *)srv.clusters[i].name);
  free(srv.clusters);
  return rc;
}

/* ===================================================================== */
/*  The status page                                                      */
/* ===================================================================== */

/* Self-contained: no external assets.  It reads the JSON API and builds the
 * DOM with textContent only, so names never become markup. */
static const char PAGE[] =
"<!DOCTYPE html>\n"
"<html lang=\"en\">\n"
"<head>\n"
"<meta charset=\"utf-8\">\n"
"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
"<title>q7 serve: consumer lag</title>\n"
"<style>\n"
"body{margin:0;font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f5f7;color:#1f2430}\n"
"header{background:#1f2430;color:#fff;padding:10px 20px;display:flex;justify-content:space-between;align-items:baseline}\n"
"header h1{font-size:17px;margin:0;font-weight:600}\n"
"#updated{font-size:12px;color:#c3c8d2}\n"
"main{padding:10px 20px 30px}\n"
"section.cluster{margin:14px 0 24px}\n"
"section.cluster>h2{font-size:15px;margin:0 0 8px;color:#3a4150}\n"
"section.cluster>h2 .summary{font-weight:400;color:#5b6372;font-size:13px}\n"
".group{background:#fff;border:1px solid #dadde3;border-left:6px solid #8a919c;border-radius:4px;margin:8px 0;padding:8px 12px}\n"
".group.OK{border-left-color:#2f9e44}.group.WARN{border-left-color:#e8a400}.group.ERR{border-left-color:#d2322d}\n"
".ghead{display:flex;gap:14px;align-items:center;flex-wrap:wrap}\n"
".name{font-weight:600;font-size:15px;word-break:break-all}\n"
".badge{display:inline-block;min-width:70px;text-align:center;border-radius:3px;padding:1px 8px;font-size:12px;font-weight:700;color:#fff;background:#8a919c}\n"
".badge.OK{background:#2f9e44}.badge.WARN{background:#e8a400;color:#1f2430}.badge.ERR,.badge.STOP,.badge.STALL,.badge.REWIND{background:#d2322d}\n"
".meta{color:#5b6372;font-size:13px}\n"
".parts{margin-top:6px;display:grid;grid-template-columns:minmax(120px,max-content) 1fr minmax(150px,max-content);gap:3px 10px;align-items:center;font-size:12px}\n"
".plabel{color:#3a4150;white-space:nowrap}\n"
".bar{height:10px;background:#eceef2;border-radius:2px;overflow:hidden}\n"
".fill{height:100%;background:#2f9e44}\n"
".fill.WARN{background:#e8a400}.fill.STOP,.fill.STALL,.fill.REWIND{background:#d2322d}\n"
".plag{color:#5b6372;white-space:nowrap}\n"
".empty,.error{color:#5b6372;font-style:italic}\n"
".error{color:#d2322d}\n"
"</style>\n"
"</head>\n"
"<body>\n"
"<header><h1>q7 serve &middot; consumer groups</h1><span id=\"updated\">loading&hellip;</span></header>\n"
"<main id=\"clusters\"></main>\n"
"<script>\n"
"\"use strict\";\n"
"const REFRESH_MS = 5000;\n"
"const KNOWN = [\"NOTFOUND\", \"OK\", \"WARN\", \"ERR\", \"STOP\", \"STALL\", \"REWIND\"];\n"
"function known(s) { return KNOWN.indexOf(s) >= 0 ? s : \"UNKNOWN\"; }\n"
"function el(tag, cls, text) {\n"
"  const e = document.createElement(tag);\n"
"  if (cls) e.className = cls;\n"
"  if (text !== undefined) e.textContent = String(text);\n"
"  return e;\n"
"}\n"
"async function getJSON(path) {\n"
"  const r = await fetch(path, { cache: \"no-store\" });\n"
"  return { code: r.status, body: await r.json() };\n"
"}\n"
"function renderGroup(name, st, max) {\n"
"  const status = known(st && st.status);\n"
"  const g = el(\"div\", \"group \" + status);\n"
"  g.dataset.group = name;\n"
"  g.dataset.status = status;\n"
"  const head = el(\"div\", \"ghead\");\n"
"  head.appendChild(el(\"span\", \"name\", name));\n"
"  head.appendChild(el(\"span\", \"badge \" + status, status));\n"
"  const parts = (st && st.partitions) || [];\n"
"  if (status === \"NOTFOUND\") {\n"
"    head.appendChild(el(\"span\", \"meta\", \"no commit within lag.expire.ms\"));\n"
"  } else {\n"
"    head.appendChild(el(\"span\", \"meta total\", \"total lag \" + ((st && st.totallag) || 0)));\n"
"    head.appendChild(el(\"span\", \"meta\", parts.length + \" partition\" + (parts.length === 1 ? \"\" : \"s\")));\n"
"    const full = parts.filter(p => p.complete >= 1).length;\n"
"    const c = el(\"span\", \"meta\", full + \" of \" + parts.length + \" windows full\");\n"
"    c.title = \"Burrow's complete: the share of partitions whose window of commits is full\";\n"
"    head.appendChild(c);\n"
"  }\n"
"  g.appendChild(head);\n"
"  if (parts.length) {\n"
"    const grid = el(\"div\", \"parts\");\n"
"    for (const p of parts) {\n"
"      const ps = known(p.status);\n"
"      const lag = p.current_lag || 0;\n"
"      const bar = el(\"div\", \"bar\");\n"
"      const fill = el(\"div\", \"fill \" + ps);\n"
"      fill.style.width = (lag ? Math.max(0.5, 100 * lag / max) : 0) + \"%\";\n"
"      bar.appendChild(fill);\n"
"      bar.title = p.topic + \" [\" + p.partition + \"]: lag \" + lag;\n"
"      grid.appendChild(el(\"span\", \"plabel\", p.topic + \" [\" + p.partition + \"]\"));\n"
"      grid.appendChild(bar);\n"
"      grid.appendChild(el(\"span\", \"plag\", \"lag \" + lag + \" \\u00b7 \" + ps));\n"
"    }\n"
"    g.appendChild(grid);\n"
"  }\n"
"  return g;\n"
"}\n"
"async function renderCluster(name) {\n"
"  const sec = el(\"section\", \"cluster\");\n"
"  sec.dataset.cluster = name;\n"
"  const h = el(\"h2\", null, \"cluster \" + name);\n"
"  sec.appendChild(h);\n"
"  const base = \"/v3/kafka/\" + encodeURIComponent(name);\n"
"  const list = await getJSON(base + \"/consumer\");\n"
"  const groups = ((list.body && list.body.consumers) || []).slice().sort();\n"
"  if (!groups.length) sec.appendChild(el(\"p\", \"empty\", \"no consumer groups\"));\n"
"  const st = (await Promise.all(groups.map(g =>\n"
"    getJSON(base + \"/consumer/\" + encodeURIComponent(g) + \"/lag\").catch(() => null))))\n"
"    .map(r => (r && r.body && r.body.status) || null);\n"
"  /* one scale for the cluster's bars, so lags compare across groups */\n"
"  let max = 1;\n"
"  const count = {};\n"
"  for (const s of st) {\n"
"    for (const p of (s && s.partitions) || []) max = Math.max(max, p.current_lag || 0);\n"
"    const k = known(s && s.status);\n"
"    count[k] = (count[k] || 0) + 1;\n"
"  }\n"
"  const summary = KNOWN.filter(k => count[k]).map(k => count[k] + \" \" + k).join(\", \");\n"
"  h.appendChild(el(\"span\", \"summary\", \" \\u00b7 \" + groups.length + \" group\" +\n"
"    (groups.length === 1 ? \"\" : \"s\") + (summary ? \": \" + summary : \"\")));\n"
"  groups.forEach((g, i) => sec.appendChild(renderGroup(g, st[i], max)));\n"
"  return sec;\n"
"}\n"
"async function refresh() {\n"
"  const main = document.getElementById(\"clusters\");\n"
"  const updated = document.getElementById(\"updated\");\n"
"  try {\n"
"    const list = await getJSON(\"/v3/kafka\");\n"
"    const secs = await Promise.all((list.body.clusters || []).map(renderCluster));\n"
"    main.replaceChildren(...secs);\n"
"    updated.textContent = \"updated \" + new Date().toLocaleTimeString() + \" \\u00b7 every \" + REFRESH_MS / 1000 + \" s\";\n"
"  } catch (e) {\n"
"    updated.textContent = \"cannot reach the server: \" + e;\n"
"  }\n"
"  setTimeout(refresh, REFRESH_MS);\n"
"}\n"
"refresh();\n"
"</script>\n"
"</body>\n"
"</html>\n";

static const char *
page(void)
{
  return PAGE;
}
