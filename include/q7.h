/*
 * q7.h - libq7, partitioned persistent queues on LMDB.
 *
 * libq7 keeps Apache Kafka's model -- topics, partitions, producers,
 * consumers, consumer-group offsets, lag -- inside one process, or several
 * processes on one host, with LMDB as the storage engine.  This header is the
 * manual: read it top to bottom, in the order a program uses the library.
 *
 *   version -> errors -> configuration -> store -> topics and partitions ->
 *   records -> producer -> consumer -> offsets and lag -> retention ->
 *   consumer status -> replicas
 *
 * Conventions that hold for every function below:
 *
 *  - Every fallible call returns int: Q7_OK (0) or a negative Q7_E* code whose
 *    value is pinned forever.  Calls that count (polls) return a count >= 0 or
 *    a negative code.  q7_last_error() then names what was wrong.
 *  - Constructors fill an out-parameter only on success; on failure nothing
 *    needs closing.  Every *_close / *_destroy accepts NULL.
 *  - Every conf argument may be NULL for defaults; a conf is copied when a
 *    handle is made, so the caller may destroy it at once.
 *  - A partition index >= the partition count is Q7_ENOENT, a negative one
 *    (other than Q7_PARTITION_ANY where allowed) Q7_EINVAL.  A negative offset
 *    other than the named Q7_OFFSET_* constants is Q7_EINVAL.
 *  - Thread-safety labels, defined in q7(7):
 *      any thread     - no shared state at all;
 *      store-shared   - any number of threads may call it concurrently on one
 *                       store and its handles' store;
 *      handle-owned   - one thread at a time per handle (the handle may move
 *                       between threads).
 *  - Strings are UTF-8, NUL-terminated.  Binary data is (const void *, size_t).
 *
 * Since: 0.1 for everything in this file unless noted.
 */
#ifndef Q7_H
#define Q7_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && __GNUC__ >= 4
#define Q7_API __attribute__((visibility("default")))
#else
#define Q7_API
#endif

/* ===================================================================== */
/*  Version                                                              */
/* ===================================================================== */

#define Q7_VERSION_MAJOR 0
#define Q7_VERSION_MINOR 1
#define Q7_VERSION_PATCH 0

/* q7_version - the library's version, "MAJOR.MINOR.PATCH".
 * Returns a static string, never NULL.   Thread safety: any thread. */
Q7_API const char *q7_version(void);

/* ===================================================================== */
/*  Errors                                                               */
/* ===================================================================== */

/* Pinned values: never renumbered, never reused. */
#define Q7_OK        0
#define Q7_EINVAL   -1  /* bad argument: NULL, bad name, bad partition, bad config */
#define Q7_ENOENT   -2  /* no such topic, partition, group or committed offset */
#define Q7_EEXIST   -3  /* already exists */
#define Q7_ERANGE   -4  /* offset outside [log_start, high_watermark] */
#define Q7_ETOOBIG  -5  /* record larger than message.max.bytes */
#define Q7_EFULL    -6  /* storage full; nothing of the failed batch committed */
#define Q7_EIO      -7  /* I/O error from the operating system */
#define Q7_ECORRUPT -8  /* stored data failed its check (CRC, format) */
#define Q7_ETIMEDOUT -9 /* the timeout passed before the work was done */
#define Q7_EBUSY   -10  /* resource in use (live child handles, locked) */
#define Q7_ENOMEM  -11  /* out of memory */
#define Q7_EREPLICA -12 /* replication factor or in-sync replicas insufficient */
#define Q7_EVERSION -13 /* store written by a newer, incompatible format */
#define Q7_ESTATE  -14  /* call not valid in the handle's state */

/* q7_strerror - static text for an error code; never NULL (unknown codes get
 * "unknown error").   Thread safety: any thread. */
Q7_API const char *q7_strerror(int err);

/* q7_last_error - detail of the last failed q7_* call in the calling thread,
 * naming the topic, key, path or offset at fault.  The string is owned by the
 * library and valid until the next q7_* call in the same thread.  Never NULL
 * ("" when no call has failed yet).   Thread safety: any thread. */
Q7_API const char *q7_last_error(void);

/* ===================================================================== */
/*  Configuration                                                        */
/* ===================================================================== */

/* A q7_conf is a bag of string keys and values with Kafka's names.  One type
 * serves stores, producers and consumers; each of those reads the keys that
 * concern it and ignores the others, but every key set must be known to
 * libq7 and its value valid (checked at q7_conf_set).  Topic functions are
 * stricter: a key that is not a topic key is Q7_EINVAL there.
 *
 * Store keys:     sync (true), storage.max.bytes (0 = unlimited),
 *                 retention.check.interval.ms (300000), lag.window (10),
 *                 lag.expire.ms (604800000), replica.dirs ("")
 * Topic keys:     retention.ms (604800000, -1 forever), retention.bytes (-1),
 *                 replication.factor (1), min.insync.replicas (1),
 *                 message.max.bytes (1048588), cleanup.policy (delete),
 *                 compression.type (producer: keep the producer's; none,
 *                 lz4, zstd: store batches so, whatever the producer sent)
 * Producer keys:  acks (all; also -1, 1, 0 -- the same while a store has no
 *                 mirrors), linger.ms (5), batch.size (16384 bytes),
 *                 partitioner (murmur2_random: keyed records by murmur2,
 *                 keyless ones sticky per batch; murmur2: keyless records
 *                 hash as an empty key; random), retries (10),
 *                 compression.type (the topic key's "producer" default means
 *                 none here; lz4 or zstd compress each batch as
 *                 Kafka does, with liblz4.so.1 / libzstd.so.1 loaded when
 *                 first needed -- Q7_EIO at q7_producer_new if missing;
 *                 batches that would not shrink are stored plain, and plain
 *                 batches are read zero-copy)
 * Consumer keys:  auto.offset.reset (latest), enable.auto.commit (true),
 *                 auto.commit.interval.ms (5000), max.poll.records (500),
 *                 session.timeout.ms (45000), heartbeat.interval.ms (3000),
 *                 partition.assignment.strategy (range)
 * See q7_conf_set(3) for each key's meaning and range. */
typedef struct q7_conf q7_conf;

/* q7_conf_new - a conf with every key at its default, owned by the caller
 * (q7_conf_destroy()).  Returns NULL only when out of memory (then
 * q7_last_error() says so).   Thread safety: any thread. */
Q7_API q7_conf *q7_conf_new(void);

/* q7_conf_destroy - free a conf.  NULL is a no-op.   Thread safety: handle-owned. */
Q7_API void q7_conf_destroy(q7_conf *conf);

/* q7_conf_dup - a copy of @conf (with its clock and callbacks).
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOMEM.   Thread safety: handle-owned. */
Q7_API int q7_conf_dup(const q7_conf *conf, q7_conf **out);

/* q7_conf_set - set @name to @value; both copied.
 * Returns Q7_OK; Q7_EINVAL for an unknown name or an invalid value (the
 * message names the key and says what is allowed), Q7_ENOMEM.
 * Thread safety: handle-owned. */
Q7_API int q7_conf_set(q7_conf *conf, const char *name, const char *value);

/* q7_conf_get - the value of @name (set or default) into @buf.
 * @len: in, the size of @buf; out, the length needed including the NUL.
 *       @buf may be NULL with *len 0 to ask for the length.
 * Returns Q7_OK; Q7_EINVAL (unknown name, NULL arguments); Q7_ERANGE when
 * @buf is too small (the value is out of the buffer's range: *len says how
 * much is needed, @buf untouched).
 * Thread safety: handle-owned (concurrent gets on one conf are fine). */
Q7_API int q7_conf_get(const q7_conf *conf, const char *name, char *buf, size_t *len);

/* q7_conf_set_clock - the clock every timestamp the store takes comes from:
 * default record timestamps, commit times, retention and lag "now".
 * @now_ms returns epoch milliseconds; called from any thread that uses the
 * store, so it must be thread-safe.  NULL restores the wall clock.
 * Durations (linger.ms, auto.commit.interval.ms, heartbeat.interval.ms) run
 * on the monotonic clock regardless; group member leases (session.timeout.ms)
 * are wall-clock epoch ms, since processes compare them, and ignore this
 * clock too.   Thread safety: handle-owned. */
Q7_API void q7_conf_set_clock(q7_conf *conf, int64_t (*now_ms)(void *arg), void *arg);

/* ===================================================================== */
/*  Store                                                                */
/* ===================================================================== */

typedef struct q7 q7;

/* q7_open - open (creating if missing) the store in directory @dir.
 * Several processes may open one store at once; within one process open a
 * directory once (LMDB's rule) and share the handle between threads.
 * @conf: store keys, may be NULL; copied.
 * @out:  on success a handle owned by the caller (q7_close()).
 * A directory that exists, holds other files and no store is refused
 * (Q7_EEXIST) rather than made into a store.
 * Returns Q7_OK, Q7_EINVAL (NULL, bad conf), Q7_EIO (cannot create or read
 * @dir, @dir is a file), Q7_EEXIST (a non-empty directory that is not a
 * store), Q7_EFULL (no space to create it), Q7_ECORRUPT
 * (files that are not a libq7 store, truncated files, metadata missing
 * beside existing topics), Q7_EVERSION (a newer format), Q7_EINVAL
 * (replica.dirs naming the store itself or over 16 mirrors), Q7_ENOMEM.
 * A mirror that cannot be opened does not fail the open: it starts out of
 * sync (see q7_replica_status, q7_replica_resync).
 * Thread safety: any thread. */
Q7_API int q7_open(q7 **out, const char *dir, const q7_conf *conf);

/* q7_close - close the store.  Every topic, producer and consumer made from
 * it must be closed first: otherwise Q7_EBUSY and the store stays open.
 * NULL is a no-op returning Q7_OK.   Thread safety: handle-owned. */
Q7_API int q7_close(q7 *q);

/* q7_store_path - the directory @q was opened on (owned by @q).
 * Thread safety: store-shared. */
Q7_API const char *q7_store_path(const q7 *q);

/* ===================================================================== */
/*  Topics and partitions                                                */
/* ===================================================================== */

typedef struct q7_topic q7_topic;
typedef struct q7_partition q7_partition;

/* q7_topic_create - create topic @name with @partitions partitions (1..10000).
 * @name: Kafka's rule, [A-Za-z0-9._-]{1,249} and not "." or "..".
 * @topic_conf: topic keys, may be NULL.
 * Returns Q7_OK, Q7_EINVAL (bad name, count or conf, a key that is not a
 * topic key), Q7_EREPLICA (replication.factor above the store's replica
 * count), Q7_EEXIST, Q7_EIO, Q7_EFULL, Q7_ENOMEM.   Thread safety: store-shared. */
Q7_API int q7_topic_create(q7 *q, const char *name, int32_t partitions,
                           const q7_conf *topic_conf);

/* q7_topic_delete - delete topic @name, its records and its committed
 * offsets.  Handles on it in this process must be closed first (Q7_EBUSY);
 * handles in other processes get Q7_ENOENT on their next call.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT, Q7_EBUSY, Q7_EIO.
 * Thread safety: store-shared. */
Q7_API int q7_topic_delete(q7 *q, const char *name);

/* q7_topic_foreach - call @fn for every topic, in name order.  A non-zero
 * return from @fn stops the walk and is returned.  @name is valid only during
 * the call.  @fn must not create or delete topics.
 * Returns Q7_OK, @fn's non-zero value, Q7_EINVAL, Q7_EIO.
 * Thread safety: store-shared. */
Q7_API int q7_topic_foreach(q7 *q, int (*fn)(const char *name, int32_t partitions,
                                             void *arg), void *arg);

/* q7_topic_open - open a handle on an existing topic.
 * @name: copied.
 * @out:  on success a handle owned by the caller (q7_topic_close()); the
 *        store must outlive it.
 * Returns Q7_OK, Q7_EINVAL (bad name), Q7_ENOENT, Q7_ENOMEM, Q7_EIO.
 * Thread safety: store-shared; the handle itself is handle-owned. */
Q7_API int q7_topic_open(q7 *q, const char *name, q7_topic **out);

/* q7_topic_close - close a topic handle; records read through its partitions
 * become invalid.  NULL is a no-op.   Thread safety: handle-owned. */
Q7_API void q7_topic_close(q7_topic *t);

/* q7_topic_name - the topic's name, owned by the handle.  NULL for NULL.
 * Thread safety: handle-owned. */
Q7_API const char *q7_topic_name(const q7_topic *t);

/* q7_topic_partition_count - the number of partitions, or Q7_EINVAL for NULL.
 * Thread safety: handle-owned. */
Q7_API int32_t q7_topic_partition_count(const q7_topic *t);

/* q7_topic_set - alter one topic config key of topic @name; takes effect for
 * handles opened afterwards (and every later retention sweep).  Returns
 * Q7_OK, Q7_EINVAL (bad name, key or value -- replication.factor cannot be
 * altered; the message names it), Q7_ENOENT, Q7_EIO.
 * Thread safety: store-shared. */
Q7_API int q7_topic_set(q7 *q, const char *name, const char *key, const char *value);

/* q7_topic_get - read one topic config key of topic @name (as q7_conf_get).
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT, Q7_ERANGE (buffer too small).
 * Thread safety: store-shared.   Since: 0.1 (extension). */
Q7_API int q7_topic_get(q7 *q, const char *name, const char *key, char *buf, size_t *len);

/* q7_topic_partition - partition @index of @t.
 * @out: a borrowed handle that lives as long as @t.
 * Returns Q7_OK, Q7_EINVAL (NULL, negative index), Q7_ENOENT (index >= count),
 * Q7_EIO, Q7_ECORRUPT, Q7_EVERSION.   Thread safety: handle-owned (@t). */
Q7_API int q7_topic_partition(q7_topic *t, int32_t index, q7_partition **out);

/* q7_partition_offsets - the partition's first kept offset (@log_start) and
 * the offset the next record will get (@high_watermark).  Either pointer may
 * be NULL.  Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (topic deleted), Q7_EIO.
 * Thread safety: handle-owned. */
Q7_API int q7_partition_offsets(q7_partition *p, int64_t *log_start,
                                int64_t *high_watermark);

/* Forward; see Records. */
typedef struct q7_record q7_record;

/* q7_partition_read - up to @max records from @offset on, no group involved.
 * Records point into the store (zero copy) and stay valid until the next
 * q7_partition_read on any partition of the same topic handle, or its close;
 * q7_partition_read(p, off, NULL, 0) releases them.
 * Returns the number of records (0 when @offset == high watermark), or
 * Q7_EINVAL (NULL @out with @max > 0, negative offset), Q7_ERANGE (@offset
 * outside [log_start, high_watermark]), Q7_ECORRUPT (a batch failed its CRC;
 * the message names the offset), Q7_ENOENT (topic deleted), Q7_EIO.
 * Thread safety: handle-owned. */
Q7_API int q7_partition_read(q7_partition *p, int64_t offset, q7_record *out, size_t max);

/* q7_offset_for_time - the first offset whose record has a timestamp >=
 * @timestamp_ms (Kafka's offsetsForTimes), at or after the log start.
 * Exact whatever order producers stamped records in; O(log n) batch seeks
 * (a bisection on each batch key's running maximum timestamp) plus a scan
 * inside the batch found — and past it only where timestamps went
 * backwards.
 * Returns Q7_OK, Q7_ENOENT (no record is that new), Q7_EINVAL (NULL),
 * Q7_ECORRUPT, Q7_EIO.   Thread safety: handle-owned. */
Q7_API int q7_offset_for_time(q7_partition *p, int64_t timestamp_ms, int64_t *offset);

/* ===================================================================== */
/*  Records                                                              */
/* ===================================================================== */

/* A record handed out by a read or poll.  Layout frozen for major version 0.
 * Pointers point into the store (zero copy) and stay valid until the next
 * read/poll on the same handle or its close. */
struct q7_record {
  const char *topic;        /* topic name, owned by the handle */
  int32_t partition;
  int64_t offset;
  int64_t timestamp_ms;     /* epoch ms, as produced */
  const void *key;          /* NULL with key_len 0: no key */
  size_t key_len;
  const void *value;        /* NULL with value_len 0: null value (tombstone) */
  size_t value_len;
  const void *headers;      /* encoded; read with q7_record_header() */
  size_t headers_len;
};

/* q7_record_header - the value of the first header named @name of @r.
 * @value, @len: out; point into the record (same lifetime).
 * Returns Q7_OK, Q7_ENOENT (no such header), Q7_EINVAL (NULL), Q7_ECORRUPT
 * (malformed header block).   Thread safety: any thread. */
Q7_API int q7_record_header(const q7_record *r, const char *name,
                            const void **value, size_t *len);

/* q7_record_header_next - iterate the headers of @r in order.  Start with
 * *@iter = 0; each call sets @name/@name_len/@value/@value_len (pointing into
 * the record) and advances *@iter.  Returns Q7_OK, Q7_ENOENT at the end,
 * Q7_EINVAL, Q7_ECORRUPT.   Thread safety: any thread.   Since: 0.1 (extension). */
Q7_API int q7_record_header_next(const q7_record *r, size_t *iter,
                                 const char **name, size_t *name_len,
                                 const void **value, size_t *value_len);

/* ===================================================================== */
/*  Producer                                                             */
/* ===================================================================== */

typedef struct q7_producer q7_producer;

#define Q7_PARTITION_ANY (-1)

/* A header to send; layout frozen for major version 0. */
typedef struct q7_header {
  const char *name;         /* NUL-terminated, non-empty */
  const void *value;        /* may be NULL with value_len 0 */
  size_t value_len;
} q7_header;

/* A record to send; layout frozen for major version 0.  Everything is copied
 * by q7_producer_send; nothing needs to outlive the call but @opaque. */
typedef struct q7_msg {
  q7_topic *topic;          /* an open topic handle */
  int32_t partition;        /* Q7_PARTITION_ANY: the partitioner picks */
  const void *key; size_t key_len;       /* NULL, 0: no key */
  const void *value; size_t value_len;   /* NULL, 0: null value */
  int64_t timestamp_ms;     /* 0: the store's clock now */
  const q7_header *headers; size_t header_count;
  void *opaque;             /* handed back in the delivery report */
} q7_msg;

/* A delivery report; layout frozen for major version 0.  Valid only during
 * the callback. */
typedef struct q7_delivery {
  const char *topic;
  int32_t partition;
  int64_t offset;           /* -1 when err != Q7_OK */
  int err;                  /* Q7_OK or the final error */
  void *opaque;             /* q7_msg.opaque */
} q7_delivery;

/* q7_conf_set_delivery_cb - the callback that reports each record sent with
 * q7_producer_send or q7_producer_send_batch, exactly once, with its offset
 * or its error.  Called only inside q7_producer_send/send_batch/poll/flush/
 * close, in the calling thread.
 * Thread safety: handle-owned (@conf). */
Q7_API void q7_conf_set_delivery_cb(q7_conf *conf,
                                    void (*cb)(const q7_delivery *d, void *arg),
                                    void *arg);

/* q7_producer_new - a producer on store @q.
 * @conf: producer keys and the delivery callback; may be NULL; copied.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOMEM, Q7_EIO (the compression library of
 * compression.type is not installed).
 * Thread safety: store-shared; the producer is handle-owned. */
Q7_API int q7_producer_new(q7 *q, const q7_conf *conf, q7_producer **out);

/* q7_producer_close - flush (waiting as long as it takes), serve the last
 * delivery reports, free the producer.  Records that failed are reported
 * through the callback; close itself returns Q7_OK.  NULL is a no-op.
 * Thread safety: handle-owned. */
Q7_API int q7_producer_close(q7_producer *p);

/* q7_producer_send - copy one record into the partition's current batch and
 * return.  The batch is committed when it reaches batch.size bytes, after
 * linger.ms (by the producer's own thread), or on flush; the delivery
 * callback then reports the record, with Q7_EFULL, Q7_EIO or Q7_EBUSY when
 * its batch could not be committed (Q7_EBUSY: the map had to grow while
 * records read in this process were still held, for longer than the
 * retries allowed).  The topic handle may be closed once send returns.
 * Returns Q7_OK, Q7_EINVAL (NULL, bad partition or header), Q7_ENOENT
 * (partition >= count, topic deleted), Q7_ETOOBIG (over message.max.bytes),
 * Q7_ENOMEM.  A report's err may also be Q7_EREPLICA (acks=all with too few
 * in-sync replicas: refused before writing, or -- too few held it after
 * the write -- left in the primary, where consumers may still read it).
 * Thread safety: handle-owned. */
Q7_API int q7_producer_send(q7_producer *p, const q7_msg *m);

/* q7_producer_send_batch - q7_producer_send for each of @msgs[0..@n) in
 * order, taking the producer's lock once for the lot (as librdkafka's
 * rd_kafka_produce_batch): the way to produce at full speed.  Records may
 * go to different topics and partitions; each is reported as if sent
 * alone.  It stops at the first record refused: @msgs[*sent] is that one,
 * those before it were accepted, those after it were not looked at.
 * @sent: out, may be NULL: how many were accepted.
 * Returns Q7_OK or the refused record's error (see q7_producer_send);
 * q7_last_error() names its index.  Q7_EINVAL for a NULL @p, or a NULL
 * @msgs with @n > 0.
 * Thread safety: handle-owned. */
Q7_API int q7_producer_send_batch(q7_producer *p, const q7_msg *msgs, size_t n, size_t *sent);

/* q7_producer_send_sync - commit one record now (and with sync=true fsync
 * it) before returning; concurrent callers in one process share one commit
 * and one fsync.  The delivery callback is not called for it.
 * @partition, @offset: out, may be NULL.
 * Returns Q7_OK or the errors of q7_producer_send plus Q7_EFULL, Q7_EIO,
 * Q7_ECORRUPT, Q7_EBUSY and Q7_EREPLICA (see q7_producer_send).
 * Thread safety: handle-owned. */
Q7_API int q7_producer_send_sync(q7_producer *p, const q7_msg *m,
                                 int32_t *partition, int64_t *offset);

/* q7_producer_poll - serve pending delivery reports, waiting up to
 * @timeout_ms (0: do not wait, -1: forever) for at least one while records
 * are in flight; with nothing in flight it returns 0 at once.
 * Returns the number of reports served, Q7_EINVAL.   Thread safety: handle-owned. */
Q7_API int q7_producer_poll(q7_producer *p, int timeout_ms);

/* q7_producer_flush - commit every pending batch and serve every report.
 * @timeout_ms: -1 forever.  Returns Q7_OK, Q7_ETIMEDOUT (records still
 * pending), Q7_EINVAL.   Thread safety: handle-owned. */
Q7_API int q7_producer_flush(q7_producer *p, int timeout_ms);

/* q7_partition_for_key - the partition Kafka's Java client picks for @key
 * among @partitions: murmur2 (seed 0x9747b28c) made positive, modulo
 * @partitions.  Returns the partition, or Q7_EINVAL for @partitions < 1 or a
 * NULL key with non-zero length.   Thread safety: any thread. */
Q7_API int32_t q7_partition_for_key(const void *key, size_t len, int32_t partitions);

/* ===================================================================== */
/*  Consumer                                                             */
/* ===================================================================== */

typedef struct q7_consumer q7_consumer;

#define Q7_OFFSET_END        (-1)
#define Q7_OFFSET_BEGINNING  (-2)
#define Q7_OFFSET_COMMITTED  (-1000)

/* q7_consumer_new - a consumer in consumer group @group (NULL: no group, no
 * commits, manual assignment only).  A group name is any non-empty UTF-8
 * string up to 255 bytes; it is a key in the store, never a path.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOMEM.
 * Thread safety: store-shared; the consumer is handle-owned. */
Q7_API int q7_consumer_new(q7 *q, const char *group, const q7_conf *conf,
                           q7_consumer **out);

/* q7_consumer_close - commit (if enable.auto.commit), leave the group, free.
 * Returns Q7_OK or the commit's error (freed either way).  NULL is a no-op.
 * Thread safety: handle-owned. */
Q7_API int q7_consumer_close(q7_consumer *c);

/* q7_consumer_subscribe - join @topic's consumer group @group: the group
 * shares the topic's partitions among its members -- in this process and in
 * every other process that opens the store -- by
 * partition.assignment.strategy (range or roundrobin), and rebalances when
 * a member joins, leaves or expires.  Membership lives in the store, with
 * no server: a member renews its lease from poll every heartbeat.interval.ms;
 * one silent for session.timeout.ms, or whose process died, is expired by
 * the next member that polls, and its partitions move to the others.
 * A partition changes hands only after its owner let go of it (committing
 * its position first when enable.auto.commit is on), so no two members
 * read it at once.  An expired member's commits are refused (Q7_ESTATE)
 * and its next poll rejoins under a new generation.  Positions start at the
 * committed offset, else auto.offset.reset.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no topic), Q7_ESTATE (no group, or
 * manual assignments exist), Q7_EEXIST (already subscribed), Q7_ENOMEM,
 * Q7_EIO.   Thread safety: handle-owned. */
Q7_API int q7_consumer_subscribe(q7_consumer *c, const char *topic);

/* Rebalance events, delivered inside q7_consumer_poll and q7_consumer_close
 * in the caller's thread, as Kafka's ConsumerRebalanceListener: REVOKED before a
 * partition is given up (the application may still commit it), ASSIGNED
 * after new partitions were taken, LOST when this member had expired and
 * its partitions already belong to others (its commits are refused). */
#define Q7_REBALANCE_ASSIGNED 1
#define Q7_REBALANCE_REVOKED  2
#define Q7_REBALANCE_LOST     3

/* @topic and @partitions are valid during the call only. */
typedef void q7_rebalance_cb(q7_consumer *c, int event, const char *topic,
                             const int32_t *partitions, size_t n, void *arg);

/* q7_conf_set_rebalance_cb - the rebalance callback of consumers made with
 * @conf (NULL: none).   Thread safety: handle-owned (@conf).
 * Since: 0.1 (extension). */
Q7_API void q7_conf_set_rebalance_cb(q7_conf *conf, q7_rebalance_cb *cb, void *arg);

/* q7_consumer_assign - read @partition of @topic from @offset: absolute, or
 * Q7_OFFSET_BEGINNING, Q7_OFFSET_END, Q7_OFFSET_COMMITTED (falls back to
 * auto.offset.reset; with "none" the assign returns Q7_ENOENT).  Assigning
 * a partition again moves its position.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT, Q7_ESTATE (subscribed), Q7_ENOMEM.
 * Thread safety: handle-owned. */
Q7_API int q7_consumer_assign(q7_consumer *c, const char *topic, int32_t partition,
                              int64_t offset);

/* q7_consumer_unassign - stop reading @partition of @topic.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (not assigned), Q7_ESTATE (subscribed).
 * Thread safety: handle-owned.   Since: 0.1 (extension). */
Q7_API int q7_consumer_unassign(q7_consumer *c, const char *topic, int32_t partition);

/* q7_consumer_poll - up to @max records (and at most max.poll.records) from
 * the assigned partitions, in offset order within each partition.  Returns as
 * soon as at least one record is available, committed by any producer in any
 * process, or after @timeout_ms (0: do not wait, -1: forever) with 0.
 * Records stay valid until the next poll or close of @c.  Never returns a
 * record twice unless the consumer seeks back; never skips one.
 * Returns the count, or Q7_EINVAL, Q7_ERANGE (position below log_start
 * with auto.offset.reset=none), Q7_ECORRUPT, Q7_EIO, Q7_ENOENT (topic deleted).
 * Thread safety: handle-owned. */
Q7_API int q7_consumer_poll(q7_consumer *c, q7_record *out, size_t max, int timeout_ms);

/* q7_consumer_seek - move the position of an assigned partition to @offset
 * (absolute, Q7_OFFSET_BEGINNING or Q7_OFFSET_END).
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (not assigned), Q7_ERANGE.
 * Thread safety: handle-owned. */
Q7_API int q7_consumer_seek(q7_consumer *c, const char *topic, int32_t partition,
                            int64_t offset);

/* q7_consumer_position - the next offset @c will return for an assigned
 * partition.  Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (not assigned).
 * Thread safety: handle-owned. */
Q7_API int q7_consumer_position(q7_consumer *c, const char *topic, int32_t partition,
                                int64_t *next);

/* q7_consumer_commit - commit the position of every assigned partition, in
 * one transaction.
 * Returns Q7_OK, Q7_ESTATE (no group, or ownership as for
 * q7_consumer_commit_offset: nothing is committed then), Q7_EIO, Q7_EFULL.
 * Thread safety: handle-owned. */
Q7_API int q7_consumer_commit(q7_consumer *c);

/* q7_consumer_commit_offset - commit @next (the next offset to read, as in
 * Kafka) for one partition.  Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no such
 * topic or partition), Q7_ERANGE (@next above the high watermark), Q7_ESTATE
 * (no group; a subscribed member that does not own the partition now; a
 * consumer outside the membership on a partition a live member owns),
 * Q7_EIO, Q7_EFULL.   Thread safety: handle-owned. */
Q7_API int q7_consumer_commit_offset(q7_consumer *c, const char *topic,
                                     int32_t partition, int64_t next);

/* q7_consumer_assignment - the partitions @c reads now, into @topics and
 * @partitions (arrays of @max), returning how many there are (may exceed
 * @max).  Topic names are owned by @c and valid until its next call.  For a
 * subscribed consumer this is what its last poll took; rebalances happen
 * only in poll.  Returns the count, Q7_EINVAL (NULL @c, NULL arrays with
 * @max > 0).   Thread safety: handle-owned.
 * Since: 0.1 (extension). */
Q7_API int q7_consumer_assignment(q7_consumer *c, const char **topics,
                                  int32_t *partitions, size_t max);

/* ===================================================================== */
/*  Committed offsets and lag                                            */
/* ===================================================================== */

/* q7_committed - the committed next offset of @group on a partition.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (never committed, or no topic).
 * Thread safety: store-shared. */
Q7_API int q7_committed(q7 *q, const char *group, const char *topic,
                        int32_t partition, int64_t *next);

/* q7_lag - high watermark minus the committed offset (never negative).
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no committed offset or no topic).
 * Thread safety: store-shared. */
Q7_API int q7_lag(q7 *q, const char *group, const char *topic, int32_t partition,
                  int64_t *lag);

/* q7_lag_max - Kafka's records-lag-max: the largest lag of @group over the
 * partitions of @topic it committed on, and (if @partition is not NULL) the
 * first partition that has it.  Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no
 * commit on any partition).   Thread safety: store-shared. */
Q7_API int q7_lag_max(q7 *q, const char *group, const char *topic, int64_t *lag,
                      int32_t *partition);

/* ===================================================================== */
/*  Retention                                                            */
/* ===================================================================== */

/* Topic keys retention.ms (-1 forever) and retention.bytes (per partition,
 * -1 unlimited) bound what a partition keeps.  Removal advances the log
 * start; offsets are never reused.  It is exact to the record: the log start
 * moves past the longest prefix of records that must go and stops at the
 * first that stays; a batch's space is freed (and reused by LMDB for new
 * records) once all its records are below the log start.  The store sweeps
 * by itself every retention.check.interval.ms (store key; 0 turns the
 * background thread off). */

/* q7_retention_sweep - one sweep over every partition of every topic now:
 * records with a timestamp older than @now_ms - retention.ms go, then the
 * oldest while the partition holds more than retention.bytes (the bytes of
 * its stored batches from the log start to the end).
 * @now_ms:  "now" in epoch ms; 0 means the store's clock.
 * @removed: if not NULL, the number of records removed.
 * A sweep deletes in write transactions of at most a few thousand records,
 * so producers on the same partition wait at most for one of them.
 * Returns Q7_OK, Q7_EINVAL (NULL store, negative now), Q7_EIO, Q7_ECORRUPT,
 * Q7_EFULL.   Thread safety: store-shared. */
Q7_API int q7_retention_sweep(q7 *q, int64_t now_ms, int64_t *removed);

/* ===================================================================== */
/*  Consumer status (LinkedIn Burrow's model)                            */
/* ===================================================================== */

/* Every commit is recorded with its time and the partition's high watermark
 * at that moment; the last lag.window commits (store key, default 10) of
 * each (group, topic, partition) are kept in the store, so any process
 * evaluates the same history.  A commit stamped earlier than the previous
 * one overwrites the previous slot and keeps its time (Burrow's min-distance
 * merge with its default 0). */

#define Q7_STATUS_NOTFOUND 0
#define Q7_STATUS_OK       1
#define Q7_STATUS_WARN     2
#define Q7_STATUS_ERR      3
#define Q7_STATUS_STOP     4
#define Q7_STATUS_STALL    5
#define Q7_STATUS_REWIND   6

/* One commit of the window; layout frozen for major version 0. */
typedef struct q7_commit {
  int64_t offset;           /* the committed next offset; -1: no commit */
  int64_t timestamp_ms;     /* when it was committed */
  int64_t lag;              /* high watermark then minus offset, >= 0; -1: unknown */
} q7_commit;

/* A partition's status; layout frozen for major version 0. */
typedef struct q7_partition_report {
  const char *topic;
  int32_t partition;
  int status;               /* Q7_STATUS_OK, _WARN, _STOP, _STALL, _REWIND */
  q7_commit start, end;     /* oldest and newest commit of the window; offset -1 if none */
  int64_t current_lag;      /* high watermark now - newest commit, >= 0 */
  double complete;          /* window fill, 0..1 */
} q7_partition_report;

/* A group's status (what Burrow's /lag returns); layout frozen for major
 * version 0.  Everything it points to is owned by the report. */
typedef struct q7_group_report {
  const char *group;
  int status;               /* Q7_STATUS_NOTFOUND, _OK, _WARN, _ERR */
  double complete;          /* share of partitions with a full window */
  int64_t total_lag;
  size_t partition_count;
  const q7_partition_report *partitions;  /* every partition of every topic the
                                             group committed on, by (topic, partition) */
  const q7_partition_report *maxlag;      /* first with the strictly greatest
                                             current_lag; NULL if none */
} q7_group_report;

/* q7_evaluate_partition - Burrow's partition rules, in Burrow's order, on a
 * window of commits collected anywhere (pure; no store).
 * @window:     @n commits, oldest first (empty leading slots omitted).
 * @intervals:  the full window size, for @complete.
 * @hw_samples: @n_hw high-watermark samples (Burrow's broker offsets) for
 *              the STOP rule's "recent lag zero"; may be NULL with 0.
 * @current_lag: high watermark now minus the newest commit.
 * @now_ms:     used as given (Burrow truncates to whole seconds).
 * @allowed_lag: Burrow's allowed-lag (0 by default there).
 * @status, @complete: out.  @n 0 gives OK with complete 0.
 * Returns Q7_OK, Q7_EINVAL (NULL out-pointers, NULL window with @n > 0 or
 * NULL samples with @n_hw > 0, @intervals 0, negative @current_lag).
 * Thread safety: any thread. */
Q7_API int q7_evaluate_partition(const q7_commit *window, size_t n, size_t intervals,
                                 const int64_t *hw_samples, size_t n_hw,
                                 int64_t current_lag, int64_t now_ms, int64_t allowed_lag,
                                 int *status, double *complete);

/* q7_group_status - evaluate every partition of every topic @group committed
 * on, and roll the statuses up as Burrow does (the worst; STOP, STALL and
 * REWIND shown as ERR).  An unknown group, or one whose newest commit is
 * older than lag.expire.ms, is Q7_OK with status Q7_STATUS_NOTFOUND,
 * complete 1.0 and no partitions.  The committed offset and the high
 * watermark are read so that a lag is never negative.
 * @now_ms: 0 for the store's clock truncated to whole seconds (as Burrow).
 * @out:    on success a report owned by the caller (q7_group_report_free()).
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOMEM, Q7_EIO, Q7_ECORRUPT.
 * Thread safety: store-shared. */
Q7_API int q7_group_status(q7 *q, const char *group, int64_t now_ms, q7_group_report **out);

/* q7_group_report_free - free a report.  NULL is a no-op.
 * Thread safety: handle-owned (the report). */
Q7_API void q7_group_report_free(q7_group_report *r);

/* q7_status_name - "NOTFOUND", "OK", "WARN", "ERR", "STOP", "STALL",
 * "REWIND"; "UNKNOWN" for other values.  Static, never NULL.
 * Thread safety: any thread. */
Q7_API const char *q7_status_name(int status);

/* q7_commit_history - the window of commits of @group on one partition,
 * oldest first, into @out (up to @max; the count is returned and may exceed
 * @max).  @intervals, if not NULL, receives lag.window.
 * Returns the count, Q7_EINVAL, Q7_ENOENT (no topic or partition), Q7_EIO,
 * Q7_ECORRUPT.   Thread safety: store-shared.   Since: 0.1 (extension). */
Q7_API int q7_commit_history(q7 *q, const char *group, const char *topic, int32_t partition,
                             q7_commit *out, size_t max, size_t *intervals);

/* q7_group_foreach - call @fn for every group with committed offsets or
 * members, in name order; a non-zero return stops the walk and is returned.  @group is
 * valid during the call only.  Returns Q7_OK, @fn's value, Q7_EINVAL, Q7_EIO.
 * Thread safety: store-shared.   Since: 0.1 (extension). */
Q7_API int q7_group_foreach(q7 *q, int (*fn)(const char *group, void *arg), void *arg);

/* A member of a group, as q7_group_members reports it; layout frozen for
 * major version 0.  Pointers are valid during the callback only. */
typedef struct q7_member {
  const char *topic;        /* the topic it subscribed to */
  uint64_t member_id;       /* unique in the group and topic, never reused */
  int32_t pid;              /* its process */
  int64_t lease_expires_ms; /* epoch ms */
  uint64_t generation;      /* the group's current generation */
  const int32_t *partitions;/* what it owns now */
  size_t partition_count;
  int expired;              /* lease passed or process gone, not yet removed */
} q7_member;

/* q7_group_members - call @fn for every member of @group, by topic then
 * join order; a non-zero return stops the walk and is returned.
 * Returns Q7_OK, @fn's value, Q7_EINVAL, Q7_EIO.
 * Thread safety: store-shared.   Since: 0.1 (extension). */
Q7_API int q7_group_members(q7 *q, const char *group,
                            int (*fn)(const q7_member *m, void *arg), void *arg);

/* q7_group_delete - forget @group: its committed offsets, their history and
 * its membership (members still running rejoin at their next poll).
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no such group), Q7_EIO.
 * Thread safety: store-shared.   Since: 0.1 (extension). */
Q7_API int q7_group_delete(q7 *q, const char *group);

/* ===================================================================== */
/*  Replicas (mirror directories, like brokers)                          */
/* ===================================================================== */

/* With the store key replica.dirs ("DIR1,DIR2,..."), the store has 1 + n
 * replicas: replica 0, the primary (the store's own directory), and
 * mirrors 1..n in that order, each a complete store of its own -- opened
 * alone with q7_open it serves every record acknowledged with acks=all and
 * the group offsets committed, at the same offsets.  A topic's
 * replication.factor (at most 1 + n, else Q7_EREPLICA) places each
 * partition on the primary and on replication.factor - 1 mirrors, spread
 * deterministically (partition p of the topic with id t starts at mirror
 * (t + p) mod n).  Topic metadata and committed offsets go to every mirror.
 *
 * Producer acks=all: a record is delivered only when every in-sync replica
 * of its partition holds it and at least min.insync.replicas do (else
 * Q7_EREPLICA; nothing is written when too few are in sync beforehand).
 * The mirrors of a batch are written in parallel, so their fsyncs overlap.
 * acks=1: delivered once the primary holds it; a replication thread brings
 * the mirrors up behind.  Consumers see records only up to the high
 * watermark, the end offset every in-sync replica holds.
 *
 * A mirror whose directory vanishes or is replaced drops out of the
 * in-sync set within a second (a watchdog checks the path, since LMDB
 * keeps writing into a deleted directory); one whose append fails (disk
 * full, I/O error) drops out of the partition's.  q7_open and
 * q7_replica_resync catch mirrors up. */

/* q7_replica_count - the number of replicas of the store, 1 + the mirrors in
 * replica.dirs; Q7_EINVAL for NULL.   Thread safety: store-shared.
 * Since: 0.1 (extension). */
Q7_API int q7_replica_count(const q7 *q);

/* q7_replica_status - the end offset of one replica of a partition and
 * whether it is in sync.  @replica 0 is the primary (its own end, which
 * with acks=1 may be ahead of the high watermark: the mirrors' lag).  Either out-pointer
 * may be NULL.  Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no such topic,
 * partition or replica, or the replica holds no copy of the partition),
 * Q7_EIO.   Thread safety: store-shared. */
Q7_API int q7_replica_status(q7 *q, const char *topic, int32_t partition, int replica,
                             int64_t *end_offset, int *in_sync);

/* q7_replica_verify - compare mirror @replica's copy of a partition with
 * the primary's, record by record (offset, timestamp, key, value, headers),
 * up to the high watermark.  Returns Q7_OK when identical, Q7_ECORRUPT
 * naming the first differing offset, Q7_EINVAL, Q7_ENOENT (as
 * q7_replica_status).   Thread safety: store-shared. */
Q7_API int q7_replica_verify(q7 *q, const char *topic, int32_t partition, int replica);

/* q7_replica_resync - catch mirror @replica (1..n) up: re-create its
 * directory if missing, copy topic metadata and committed offsets, discard
 * what diverged from the primary, copy what is missing, and put it back in
 * sync.  Producers wait only for the last part of each partition's copy.
 * Returns Q7_OK, Q7_EINVAL, Q7_ENOENT (no such mirror), Q7_EIO, Q7_EFULL,
 * Q7_ECORRUPT.   Thread safety: store-shared. */
Q7_API int q7_replica_resync(q7 *q, int replica);

#ifdef __cplusplus
}
#endif

#endif /* Q7_H */
