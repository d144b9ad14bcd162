/*
 * q7_int.h - private declarations shared by the files of lib/.  Never installed.
 *
 * Layering (lower never calls upward):
 *   producer.c consumer.c group.c          what applications drive
 *   offsets.c                               commits, committed, lag
 *   store.c topic.c partition.c notify.c    files, LMDB environments
 *   record.c crc32c.c partitioner.c conf.c err.c
 */
#ifndef Q7_INT_H
#define Q7_INT_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <lmdb.h>
#include <sys/types.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "q7.h"

#define Q7__HIDDEN __attribute__((visibility("hidden")))
#define Q7__PRINTF(a, b) __attribute__((format(printf, a, b)))

/* On-disk format version of the meta and partition environments. */
#define Q7__FORMAT 1u

#define Q7__MAX_PARTITIONS 10000
#define Q7__MAX_MIRRORS 16
/* A write function's answer: abort the transaction, report success. */
#define Q7_ABORT_OK 1
#define Q7__MAX_GROUP_LEN 255

/* ---------------------------------------------------------------- err.c */

/* Set the calling thread's last error and return @code. */
Q7__HIDDEN int q7__err(int code, const char *fmt, ...) Q7__PRINTF(2, 3);
/* Translate an LMDB or errno result; @what says what was being done. */
Q7__HIDDEN int q7__mdb_err(int rc, const char *what);
Q7__HIDDEN int q7__errno_err(int e, const char *what, const char *path);

/* --------------------------------------------------------------- conf.c */

enum q7__key {
  /* store */
  Q7K_SYNC, Q7K_STORAGE_MAX_BYTES, Q7K_RETENTION_CHECK_MS, Q7K_LAG_WINDOW,
  Q7K_LAG_EXPIRE_MS, Q7K_REPLICA_DIRS,
  /* topic */
  Q7K_RETENTION_MS, Q7K_RETENTION_BYTES, Q7K_REPLICATION_FACTOR,
  Q7K_MIN_INSYNC, Q7K_MESSAGE_MAX_BYTES, Q7K_CLEANUP_POLICY,
  Q7K_TOPIC_COMPRESSION,
  /* producer */
  Q7K_ACKS, Q7K_LINGER_MS, Q7K_BATCH_SIZE, Q7K_PARTITIONER, Q7K_RETRIES,
  /* consumer */
  Q7K_AUTO_OFFSET_RESET, Q7K_ENABLE_AUTO_COMMIT, Q7K_AUTO_COMMIT_MS,
  Q7K_MAX_POLL_RECORDS, Q7K_SESSION_TIMEOUT_MS, Q7K_HEARTBEAT_MS, Q7K_ASSIGNMENT_STRATEGY,
  Q7K_FETCH_AHEAD_BYTES,
  Q7K__COUNT
};

enum q7__scope { Q7S_STORE = 1, Q7S_TOPIC = 2, Q7S_PRODUCER = 4, Q7S_CONSUMER = 8 };

struct q7_conf {
  char *val[Q7K__COUNT];            /* NULL: default */
  int64_t (*clock)(void *arg);
  void *clock_arg;
  void (*dr_cb)(const q7_delivery *d, void *arg);
  void *dr_arg;
  q7_rebalance_cb *rb_cb;
  void *rb_arg;
};

/* Value of key @k (default if unset or conf NULL); never NULL. */
Q7__HIDDEN const char *q7__conf_str(const q7_conf *c, enum q7__key k);
Q7__HIDDEN int64_t q7__conf_int(const q7_conf *c, enum q7__key k);
Q7__HIDDEN bool q7__conf_bool(const q7_conf *c, enum q7__key k);
/* Index of the choice of an enum-valued key. */
Q7__HIDDEN int q7__conf_choice(const q7_conf *c, enum q7__key k);
/* Look up a key by name; -1 if unknown.  @scope receives its scope. */
Q7__HIDDEN int q7__conf_key(const char *name, int *scope);
Q7__HIDDEN const char *q7__conf_name(enum q7__key k);
/* Validate @value for key @k; Q7_OK or Q7_EINVAL with a message. */
Q7__HIDDEN int q7__conf_check(enum q7__key k, const char *value);
/* Serialise the set keys of @scope as "k=v\n" lines (malloc'd). */
Q7__HIDDEN char *q7__conf_dump(const q7_conf *c, int scope, size_t *len);
/* Set keys from "k=v\n" lines; Q7_ECORRUPT on malformed text. */
Q7__HIDDEN int q7__conf_load(q7_conf *c, const char *text, size_t len);

/* ------------------------------------------------------------- crc32c.c */

Q7__HIDDEN uint32_t q7__crc32c(uint32_t crc, const void *buf, size_t len);

/* ------------------------------------------------------------- record.c */

/*
 * A batch, as stored as one LMDB value.  Its key (Q7__KEY_LEN bytes, all
 * big-endian so that keys sort as offsets do and MDB_APPEND applies):
 *   be64 base offset   first offset of the batch
 *   be64 position      bytes of all batches before it in the partition's
 *                      history (so a partition's size is last - first, O(1))
 *   be64 max time      largest record timestamp up to and including this
 *                      batch (non-decreasing: q7_offset_for_time bisects it)
 * A lookup by offset searches with the 8-byte prefix alone.
 *
 * The value; all integers little-endian.
 *
 *   0  u32 crc32c      over bytes [4, end)
 *   4  u16 format      Q7__BATCH_FORMAT
 *   6  u16 attributes  bits 0-2: compression (0 none)
 *   8  u32 count       records in the batch (>= 1)
 *  12  u32 length      bytes of records that follow
 *  16  i64 first_ts    timestamp of the first record
 *  24  i64 max_ts      largest timestamp in the batch
 *  32  records
 *
 * A record (format 2, as Kafka's record v2: varints are unsigned LEB128,
 * as protobuf has them; the timestamp is zigzag-encoded):
 *   varint size            bytes after this field
 *   varint ts_delta        timestamp_ms - first_ts
 *   varint key_len + 1     0: no key
 *   key
 *   varint value_len + 1   0: null value
 *   value
 *   varint headers_len
 *   headers
 * 16 + 100 bytes take 122 bytes, against 140 in format 1.
 *
 * Format 1 (libq7 0.1.0), read still, never written:
 *   u32 size          bytes after this field
 *   i64 timestamp_ms
 *   u32 key_len       Q7__NULL_LEN: no key
 *   u32 value_len     Q7__NULL_LEN: null value
 *   u32 headers_len
 *   key, value, headers
 *
 * Headers, in both: repeated { u16 name_len; name; u32 value_len
 * (Q7__NULL_LEN: null); value }.
 */
#define Q7__BATCH_FORMAT 2u
#define Q7__KEY_LEN 24u
#define Q7__BATCH_HDR 32u
#define Q7__REC_HDR 24u                 /* format 1's fixed record header */
#define Q7__REC2_MIN 5u                 /* the smallest format-2 record */
#define Q7__REC2_MAX_HDR 30u            /* its varints at their longest */
#define Q7__NULL_LEN 0xffffffffu

typedef struct q7__buf {
  unsigned char *data;
  size_t len, cap;
} q7__buf;

Q7__HIDDEN int q7__buf_reserve(q7__buf *b, size_t more);
Q7__HIDDEN void q7__buf_free(q7__buf *b);

/* Most bytes a record takes in a batch, or 0 when a length overflows u32. */
Q7__HIDDEN size_t q7__record_size(const q7_msg *m, size_t *headers_len);
/* Bytes counted against message.max.bytes. */
Q7__HIDDEN size_t q7__record_payload(const q7_msg *m);
/* Validate the headers of @m (Q7_EINVAL with a message). */
Q7__HIDDEN int q7__record_check(const q7_msg *m);

/* The checks and size of q7__record_check and q7__record_size, inline for
 * the common record without headers (the producer's hot path). */
static inline int
q7__record_check_fast(const q7_msg *m)
{
  if (!m->header_count && !(m->key_len && !m->key) && !(m->value_len && !m->value) &&
      m->timestamp_ms >= 0)
    return Q7_OK;
  return q7__record_check(m);
}

static inline size_t
q7__record_size_fast(const q7_msg *m, size_t *headers_len)
{
  if (m->header_count)
    return q7__record_size(m, headers_len);
  *headers_len = 0;
  size_t n = Q7__REC2_MAX_HDR + m->key_len + m->value_len;
  if (m->key_len >= Q7__NULL_LEN || m->value_len >= Q7__NULL_LEN || n >= Q7__NULL_LEN)
    return 0;
  return n;
}

/* Unsigned LEB128. */
static inline unsigned char *
q7__varint_put(unsigned char *p, uint64_t v)
{
  while (v >= 0x80) {
    *p++ = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  *p++ = (unsigned char)v;
  return p;
}

static inline size_t
q7__varint_len(uint64_t v)
{
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

static inline uint64_t
q7__zigzag(int64_t v)
{
  return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static inline int64_t
q7__unzigzag(uint64_t z)
{
  return (int64_t)((z >> 1) ^ (0 - (z & 1)));
}

/* A batch being built: header space reserved at the front of buf. */
typedef struct q7__batch {
  q7__buf buf;
  uint32_t count;
  int64_t first_ts, max_ts;
  int codec;                      /* set by q7__batch_compress */
} q7__batch;

Q7__HIDDEN int q7__batch_init(q7__batch *b);
Q7__HIDDEN void q7__batch_reset(q7__batch *b);
Q7__HIDDEN void q7__batch_free(q7__batch *b);
/* Encode @m into the batch (q7__batch_add_sized: with @n and @hlen as
 * q7__record_size gave them). */
Q7__HIDDEN int q7__batch_add(q7__batch *b, const q7_msg *m, int64_t ts);
Q7__HIDDEN int q7__batch_add_sized(q7__batch *b, const q7_msg *m, int64_t ts, size_t n,
                                   size_t hlen);
/* Encode @m's headers at @p (q7__record_put does the rest). */
Q7__HIDDEN unsigned char *q7__record_put_headers(unsigned char *p, const q7_msg *m);

/* memcpy for the short keys and values most records have, without a call:
 * two overlapping moves of a power of two cover any length up to 64. */
static inline void
q7__copy(unsigned char *d, const void *src, size_t n)
{
  const unsigned char *s = src;
  if (n > 64) {
    memcpy(d, s, n);
  } else if (n >= 32) {
    memcpy(d, s, 32);
    memcpy(d + n - 32, s + n - 32, 32);
  } else if (n >= 16) {
    memcpy(d, s, 16);
    memcpy(d + n - 16, s + n - 16, 16);
  } else if (n >= 8) {
    memcpy(d, s, 8);
    memcpy(d + n - 8, s + n - 8, 8);
  } else if (n >= 4) {
    memcpy(d, s, 4);
    memcpy(d + n - 4, s + n - 4, 4);
  } else if (n) {
    d[0] = s[0];
    d[n / 2] = s[n / 2];
    d[n - 1] = s[n - 1];
  }
}

/* Encode @m (format 2) at @p, its timestamp relative to @first_ts;
 * @hlen as q7__record_size gave it.  Returns the bytes written, at most
 * what q7__record_size gave. */
static inline size_t
q7__record_put(unsigned char *p, const q7_msg *m, int64_t ts, int64_t first_ts, size_t hlen)
{
  uint64_t zz = q7__zigzag((int64_t)((uint64_t)ts - (uint64_t)first_ts));
  uint64_t k1 = m->key ? (uint64_t)m->key_len + 1 : 0, v1 = m->value ? (uint64_t)m->value_len + 1 : 0;
  size_t body = q7__varint_len(zz) + q7__varint_len(k1) + m->key_len + q7__varint_len(v1) +
                m->value_len + q7__varint_len(hlen) + hlen;
  unsigned char *d = q7__varint_put(p, body);
  d = q7__varint_put(d, zz);
  d = q7__varint_put(d, k1);
  q7__copy(d, m->key, m->key_len);
  d = q7__varint_put(d + m->key_len, v1);
  q7__copy(d, m->value, m->value_len);
  d = q7__varint_put(d + m->value_len, hlen);
  if (m->header_count)
    d = q7__record_put_headers(d, m);
  return (size_t)(d - p);
}

/* q7__batch_add_sized, inline while the buffer has room. */
static inline int
q7__batch_put(q7__batch *b, const q7_msg *m, int64_t ts, size_t n, size_t hlen)
{
  if (b->buf.cap - b->buf.len < n)
    return q7__batch_add_sized(b, m, ts, n, hlen);
  if (!b->count++)
    b->first_ts = b->max_ts = ts;
  else if (ts > b->max_ts)
    b->max_ts = ts;
  b->buf.len += q7__record_put(b->buf.data + b->buf.len, m, ts, b->first_ts, hlen);
  return Q7_OK;
}
/* Write the header and CRC; the batch is then buf.data[0 .. buf.len). */
Q7__HIDDEN void q7__batch_seal(q7__batch *b);



/* A decoded view of a stored batch. */
typedef struct q7__bview {
  const unsigned char *data;    /* the whole value */
  size_t len;
  uint32_t count;
  uint32_t format;              /* 1 or 2: the record layout */
  int64_t first_ts, max_ts;
  int codec;                    /* Q7__CODEC_* */
  size_t raw_len;               /* bytes of the records, uncompressed */
  const unsigned char *recs;    /* the records; NULL until inflated */
  size_t recs_len;
  bool checked;                 /* the CRC holds (q7__batch_open's verify) */
} q7__bview;

/* Codecs, numbered as Kafka's attributes number them. */
#define Q7__CODEC_NONE 0
#define Q7__CODEC_LZ4 3
#define Q7__CODEC_ZSTD 4

/* Blocks that live until the next read of the handle that owns them. */
typedef struct q7__arena {
  void **blk;
  size_t n, cap;
} q7__arena;
Q7__HIDDEN void *q7__arena_alloc(q7__arena *a, size_t n);
Q7__HIDDEN void q7__arena_reset(q7__arena *a);
Q7__HIDDEN void q7__arena_free(q7__arena *a);

/* -------------------------------------------------------------- compress.c */

struct q7;
/* Compress the records of a built batch (before q7__batch_seal); @tmp is
 * scratch.  Incompressible batches stay as they are. */
Q7__HIDDEN int q7__batch_compress(struct q7 *q, q7__batch *b, int codec, q7__buf *tmp);
/* Point v->recs at the records, decompressing into @a when needed (and
 * checking the CRC first, unless v->checked). */
Q7__HIDDEN int q7__batch_inflate(struct q7 *q, q7__bview *v, q7__arena *a, const char *what,
                                 int64_t base);
Q7__HIDDEN int q7__codec_check(struct q7 *q, int codec);
Q7__HIDDEN void q7__codecs_free(struct q7 *q);

/* Check the header, lengths and (if @verify) the CRC of a stored value.
 * Q7_ECORRUPT with a message naming @base and @what on failure. */
Q7__HIDDEN int q7__batch_open(q7__bview *v, const void *data, size_t len, int64_t base,
                              bool verify, const char *what);
/* Decode records from a batch: skip @skip records, fill up to @max.
 * Returns the number filled or Q7_ECORRUPT. */
Q7__HIDDEN int q7__batch_decode(const q7__bview *v, int64_t base, uint32_t skip,
                                q7_record *out, size_t max, const char *topic,
                                int32_t partition);

/* Walk the records of a batch: each call gives the next record's timestamp
 * and byte position inside the value.  1: a record, 0: the end,
 * Q7_ECORRUPT: malformed.  Start with { v, Q7__BATCH_HDR, 0 }. */
typedef struct q7__riter {
  const q7__bview *v;
  size_t pos;
  uint32_t i;
} q7__riter;
Q7__HIDDEN int q7__riter_next(q7__riter *it, int64_t *ts, size_t *pos);

Q7__HIDDEN void q7__be64_put(unsigned char *p, uint64_t v);
Q7__HIDDEN uint64_t q7__be64_get(const unsigned char *p);

/* --------------------------------------------------------- partitioner.c */

Q7__HIDDEN int32_t q7__murmur2(const void *key, size_t len);

/* ------------------------------------------------------------- notify.c */

/* A word shared by every process of a store (DIR/notify, mmap'd): bumped
 * after each commit, waited on with a futex by idle consumers. */
typedef struct q7__notify {
  int fd;
  void *map;
} q7__notify;

Q7__HIDDEN int q7__notify_open(q7__notify *n, const char *dir);
Q7__HIDDEN void q7__notify_close(q7__notify *n);
Q7__HIDDEN uint32_t q7__notify_seq(q7__notify *n);
Q7__HIDDEN void q7__notify_bump(q7__notify *n);
/* Wait until the sequence differs from @seq or @timeout_ms passes. */
Q7__HIDDEN void q7__notify_wait(q7__notify *n, uint32_t seq, int timeout_ms);

/* ---------------------------------------------------------- partition.c */

/* A request of group commit (q7_producer_send_sync). */
typedef struct q7__gcreq {
  struct q7__gcreq *next;
  const q7_msg *m;                /* the caller's; valid while it waits */
  size_t size, hlen;              /* as q7__record_size gave them */
  int64_t ts;
  bool acks_all;
  int codec;
  int64_t offset;
  int rc;
  bool done;
} q7__gcreq;

/* One partition's LMDB environment, shared by every handle of the process. */
#define Q7__PE_BUCKETS 1024

/* A partition log's ends (q7__pe_ends). */
typedef struct q7__ends {
  int64_t log_start, next, end_pos, tmax;
  bool empty;
} q7__ends;

typedef struct q7__pe {
  struct q7__pe *next;            /* in q->parts, under q->lock */
  struct q7__pe *hnext;           /* in q->pe_hash, under q->lock */
  struct q7 *q;
  char *topic;
  uint64_t topic_id;
  int32_t index;
  char *path;
  int refs;                       /* under q->lock; 0: idle, kept open */
  uint64_t last_used;             /* for evicting idle environments */
  MDB_env *env;
  MDB_dbi log, meta;
  pthread_rwlock_t maplock;       /* rd: any txn or held records; wr: remap */
  unsigned psize;                 /* LMDB's page size */
  /* The log's ends after this process's last append, valid for the write
   * transaction right after it (LMDB's next txn id): an append then reads
   * neither the meta table nor the last two batches (whose pages a write
   * through pwrite left unmapped: a page fault a commit). */
  pthread_mutex_t ends_mu;
  q7__ends ends;
  size_t ends_txn;                /* 0: none */
  uint64_t prealloc_end;          /* file blocks allocated up to here */
  pthread_mutex_t gc_mu;          /* group commit */
  pthread_cond_t gc_cv;
  q7__gcreq *gc_head, **gc_tail;
  bool gc_leader;
  int gc_n;                       /* requests queued */
  int gc_expect;                  /* callers seen around the last commit */
  int64_t gc_cost_ns;             /* recent commit duration (EWMA) */
  pthread_cond_t gc_arrive;       /* a request queued while the leader gathers */
  bool gc_gathering;
  /* replication (replica.c), under repl_mu: set once by q7__replica_load */
  pthread_mutex_t repl_mu;
  bool repl_loaded;
  int rf, n_rep;
  int rep[Q7__MAX_MIRRORS];       /* mirror indexes holding a copy */
  struct q7__pe *mpe[Q7__MAX_MIRRORS]; /* their environments, opened on use */
} q7__pe;

Q7__HIDDEN int q7__pe_get(struct q7 *q, const char *topic, uint64_t topic_id, int32_t index,
                          bool create, q7__pe **out);
Q7__HIDDEN void q7__pe_put(q7__pe *pe);
/* One more reference to @pe (an idle one stops being idle); the _locked
 * form (below struct q7) with pe->q->lock held. */
Q7__HIDDEN void q7__pe_hold(q7__pe *pe);
/* Close the idle environments of @topic (before deleting it). */
Q7__HIDDEN void q7__pe_drop_idle(struct q7 *q, const char *topic);
/* Free an env that no handle uses (q7_close, topic delete). */
Q7__HIDDEN void q7__pe_destroy(q7__pe *pe);
/* Mark a partition deleted, for handles in other processes. */
Q7__HIDDEN int q7__pe_mark_deleted(q7__pe *pe);
/* Run @fn inside a write txn, committing if it returns Q7_OK; @fn returns
 * MDB_MAP_FULL untranslated so that the map grows and @fn runs again. */
Q7__HIDDEN int q7__pe_write(q7__pe *pe, int (*fn)(q7__pe *pe, MDB_txn *txn, void *arg),
                            void *arg);
/* @frees: the transaction frees space (may pass storage.max.bytes a little). */
Q7__HIDDEN int q7__pe_write_ex(q7__pe *pe, int (*fn)(q7__pe *pe, MDB_txn *txn, void *arg),
                               void *arg, bool frees);
/* Append a sealed batch; *base receives its first offset (set also when
 * the result is Q7_EREPLICA after the primary committed). */
Q7__HIDDEN int q7__pe_append(q7__pe *pe, const q7__batch *b, bool acks_all, int64_t *base);
/* Group commit of one record (send_sync), @size and @hlen as
 * q7__record_size gave them; @m is read by whichever caller leads. */
Q7__HIDDEN int q7__pe_commit_one(q7__pe *pe, const q7_msg *m, int64_t ts, size_t size,
                                 size_t hlen, bool acks_all, int codec, int64_t *offset);
/* Start / end a read: takes the map lock (shared) and a read txn. */
Q7__HIDDEN int q7__pe_read_begin(q7__pe *pe, MDB_txn **txn);
Q7__HIDDEN void q7__pe_read_end(q7__pe *pe, MDB_txn *txn);
/* Offsets as seen by @txn. */
Q7__HIDDEN int q7__pe_offsets(q7__pe *pe, MDB_txn *txn, int64_t *log_start, int64_t *hw);
/* The last batch a reader checked the CRC of: a poll that ends inside a
 * batch leaves the rest for the next, which need not check those bytes
 * again while they stay where they were (same place in the map, length,
 * base offset and stored CRC).  Polls of 500 records over batches of
 * 1000 checked every batch twice. */
typedef struct q7__seen {
  const void *data;
  size_t len;
  int64_t base;
  uint32_t crc;
} q7__seen;

/* Read records from @offset (in [log_start, hw)) inside @txn; compressed
 * batches are decompressed into @a (reset by the caller between reads).
 * @seen: the reader's memo, or NULL to check every batch. */
Q7__HIDDEN int q7__pe_read(q7__pe *pe, MDB_txn *txn, int64_t offset, q7_record *out, size_t max,
                           q7__arena *a, q7__seen *seen);
/* A batch key, decoded. */
typedef struct q7__bkey {
  int64_t base, pos, tmax;
} q7__bkey;
Q7__HIDDEN int q7__bkey_get(const MDB_val *k, q7__bkey *out);
/* The log's first offset kept, next offset, next byte position. */
Q7__HIDDEN int q7__pe_ends(q7__pe *pe, MDB_txn *txn, q7__ends *e);
Q7__HIDDEN int q7__pe_set_log_start(q7__pe *pe, MDB_txn *txn, int64_t log_start);
/* Position @cur on the batch holding @offset (which must be in the log). */
Q7__HIDDEN int q7__pe_seek(q7__pe *pe, MDB_cursor *cur, int64_t offset, MDB_val *k, MDB_val *v);
/* Offsets without a caller-held txn. */
Q7__HIDDEN int q7__pe_offsets_now(q7__pe *pe, int64_t *log_start, int64_t *hw);

/* ------------------------------------------------------------ replica.c */

/* A mirror directory: a complete store opened inside this one. */
struct q7__mjob;
typedef struct q7__mirror {
  char *dir;
  struct q7 *store;               /* NULL while it cannot be opened */
  dev_t dev;
  ino_t ino;                      /* the directory's identity at open */
  _Atomic int down;               /* path gone or replaced */
  pthread_rwlock_t use;           /* rd: using store; wr: re-opening it */
  pthread_t worker;               /* appends to this mirror */
  bool worker_on, stop;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct q7__mjob *head, **tail;
} q7__mirror;

/* What an append did to the mirrors, acted on once the primary committed. */
typedef struct q7__repl_result {
  int rc;                         /* Q7_EREPLICA: too few replicas hold it */
  uint64_t failed;                /* mirrors that fell out of sync */
  bool wake;                      /* acks=1: the replication thread follows */
} q7__repl_result;

Q7__HIDDEN int q7__replica_open(struct q7 *q);
Q7__HIDDEN void q7__replica_close(struct q7 *q);
Q7__HIDDEN int q7__replica_load(q7__pe *pe);
/* Inside the primary's write txn, after the batch was put there. */
Q7__HIDDEN int q7__replica_append(q7__pe *pe, bool acks_all, const MDB_val *key,
                                  const MDB_val *val, q7__repl_result *res);
Q7__HIDDEN void q7__replica_after(q7__pe *pe, const q7__repl_result *res);
/* Lower *hw to what every in-sync mirror holds. */
Q7__HIDDEN int q7__replica_hw(q7__pe *pe, int64_t *hw);
Q7__HIDDEN void q7__replica_release(q7__pe *pe);
Q7__HIDDEN int q7__replica_sync_meta(struct q7 *q);
/* Copy offsets entries (@keys, or all when NULL) to mirror @only (-1: every
 * mirror that is up). */
Q7__HIDDEN int q7__replica_copy_offsets(struct q7 *q, int only, const MDB_val *keys, size_t n);
Q7__HIDDEN int q7__replica_sweep(struct q7 *q, int64_t now);

/* -------------------------------------------------------------- store.c */

struct q7 {
  char *dir;
  uint32_t pidns;                 /* this process's PID namespace (group.c) */
  q7_conf *conf;
  bool sync;
  int64_t max_bytes;              /* 0: unlimited */
  int lag_window;
  MDB_env *meta;
  MDB_dbi dbi_info, dbi_topics, dbi_offsets, dbi_groups, dbi_isr;
  q7__notify notify;
  pthread_mutex_t lock;           /* parts, handle counts */
  q7__pe *parts;                  /* open partition environments */
  q7__pe *pe_hash[Q7__PE_BUCKETS]; /* the same, by (topic, partition) */
  int idle, idle_max;             /* unused ones kept open, and how many */
  uint64_t use_clock;
  int live_handles;               /* topics, producers, consumers */
  struct q7_topic *topics_open;   /* open topic handles, under lock */
  /* background retention */
  pthread_t sweeper;
  bool sweeper_on, sweeper_stop;
  pthread_mutex_t sweep_mu;       /* one sweep at a time in this process */
  pthread_cond_t sweep_cv;
  int64_t sweep_interval;
  struct q7__codecs *codecs;      /* compression libraries, loaded on use */
  /* replication */
  q7__mirror mirrors[Q7__MAX_MIRRORS];
  int n_mirrors;
  bool repl_init, repl_on, watch_on, repl_stop, repl_pending;
  pthread_t repl_thread, watch_thread;
  pthread_mutex_t repl_mu, resync_mu;
  pthread_cond_t repl_cv, watch_cv;
};

/* One more reference to @pe with pe->q->lock held (q7__pe_hold takes it). */
static inline void
q7__pe_hold_locked(q7__pe *pe)
{
  if (pe->refs++ == 0)
    pe->q->idle--;
}

Q7__HIDDEN int64_t q7__now(struct q7 *q);
Q7__HIDDEN int64_t q7__mono_ms(void);
Q7__HIDDEN int64_t q7__mono_ns(void);
/* The monotonic clock @ms (or @ns) from now, as pthread_cond_timedwait
 * takes it on a condition made by q7__cond_init_mono. */
Q7__HIDDEN void q7__deadline_ms(struct timespec *ts, int64_t ms);
Q7__HIDDEN void q7__deadline_ns(struct timespec *ts, int64_t ns);
Q7__HIDDEN void q7__cond_init_mono(pthread_cond_t *cv);
Q7__HIDDEN uint32_t q7__pidns(void);
Q7__HIDDEN void q7__handle_ref(struct q7 *q, int delta);
/* Bytes used by the store's data files, except @skip's. */
Q7__HIDDEN int64_t q7__store_bytes(struct q7 *q, const q7__pe *skip);
/* Meta write txn with map growth handled by the caller's retry. */
Q7__HIDDEN int q7__meta_begin(struct q7 *q, unsigned flags, MDB_txn **txn);
Q7__HIDDEN int q7__rm_rf(const char *path);
/* The filesystem reserve (DIR/reserve) for freeing space on a full disk. */
Q7__HIDDEN void q7__store_reserve_make(struct q7 *q);
Q7__HIDDEN bool q7__store_reserve_free(struct q7 *q);
/* q7_open for a mirror directory (no replica.dirs of its own). */
Q7__HIDDEN int q7__open_mirror(struct q7 **out, const char *dir, const q7_conf *conf);
/* Q7_ECORRUPT when an environment's file is shorter than its pages (a
 * truncated file would otherwise crash the process with SIGBUS). */
Q7__HIDDEN int q7__env_check_size(MDB_env *env, const char *path);

/* -------------------------------------------------------------- topic.c */

/* What the meta environment holds of a topic. */
typedef struct q7__tmeta {
  uint64_t id;
  int32_t partitions;
  q7_conf *conf;                  /* topic keys set at create / alter */
} q7__tmeta;

Q7__HIDDEN int q7__name_check(const char *name);
/* Create with a given topic id (a mirror copying the primary's). */
Q7__HIDDEN int q7__topic_create_id(struct q7 *q, const char *name, int32_t partitions,
                                   const q7_conf *conf, uint64_t id);
/* Replace the stored config of an existing topic. */
Q7__HIDDEN int q7__topic_put_conf(struct q7 *q, const char *name, const q7_conf *conf);
Q7__HIDDEN int q7__tmeta_get(struct q7 *q, MDB_txn *txn, const char *name, q7__tmeta *m);
/* The same in a read transaction of its own. */
Q7__HIDDEN int q7__tmeta_load(struct q7 *q, const char *name, q7__tmeta *m);
Q7__HIDDEN void q7__tmeta_free(q7__tmeta *m);

struct q7_partition {
  struct q7_topic *topic;
  int32_t index;
  q7__pe *pe;                     /* opened on first use */
  MDB_txn *rtxn;                  /* held while records are out */
  q7__arena arena;                /* decompressed batches handed out */
  q7__seen seen;
};

struct q7_topic {
  struct q7 *q;
  struct q7_topic *open_next;     /* in q->topics_open */
  char *name;
  uint64_t id;
  int32_t count;
  int64_t max_message;            /* message.max.bytes */
  int codec;                      /* topic compression.type; -1: the producer's */
  struct q7_partition *parts;
  int32_t sticky;                 /* keyless records: the sticky partition */
  bool sticky_used;               /* a record went there since it was picked */
};

Q7__HIDDEN int q7__topic_pe_open(struct q7_topic *t, int32_t index, q7__pe **out);

/* The environment of partition @index (< t->count) of @t, opened on first
 * use. */
static inline int
q7__topic_pe(struct q7_topic *t, int32_t index, q7__pe **out)
{
  if (t->parts[index].pe) {
    *out = t->parts[index].pe;
    return Q7_OK;
  }
  return q7__topic_pe_open(t, index, out);
}

/* The partition's env, opening it on first use. */
Q7__HIDDEN int q7__partition_check(const struct q7_topic *t, int32_t index);

/* ---------------------------------------------------------- retention.c */

Q7__HIDDEN int q7__retention_start(struct q7 *q);
Q7__HIDDEN void q7__retention_stop(struct q7 *q);

/* ------------------------------------------------------------ offsets.c */

/* One commit as kept in the lag window. */
typedef struct q7__commit {
  int64_t offset, ts, hw;
} q7__commit;

/* Commit @n (topic, partition, next) triples of @group in one transaction. */
typedef struct q7__commit_req {
  const char *topic;
  int32_t partition;
  int64_t next;
  q7__pe *pe;                     /* to read the high watermark */
  MDB_txn *held;                  /* a read txn the caller holds, or NULL */
} q7__commit_req;

/* @member non-zero: a subscribed member, which must own each partition. */
Q7__HIDDEN int q7__offsets_commit(struct q7 *q, const char *group, uint64_t member,
                                  const q7__commit_req *r, size_t n);
Q7__HIDDEN int q7__offsets_get(struct q7 *q, MDB_txn *txn, const char *group,
                               const char *topic, int32_t partition, int64_t *next);
/* A decoded key of the offsets table; strings point into the key. */
typedef struct q7__okey {
  const char *group, *topic;
  int32_t partition;
} q7__okey;
Q7__HIDDEN int q7__offsets_parse(const MDB_val *k, const MDB_val *v, q7__okey *key,
                                 int64_t *next, const unsigned char **hist, uint32_t *n);
/* The window of one partition into @out (up to @max); returns its length
 * (0: never committed) and the committed offset in *next. */
Q7__HIDDEN int q7__offsets_history(struct q7 *q, MDB_txn *txn, const char *group,
                                   const char *topic, int32_t partition, q7__commit *out,
                                   size_t max, int64_t *next);
/* Drop every committed offset on @topic (inside a meta write txn). */
Q7__HIDDEN int q7__offsets_drop_topic(struct q7 *q, MDB_txn *txn, const char *topic);
Q7__HIDDEN int q7__group_check(const char *group);

/* -------------------------------------------------------------- group.c */

struct q7_consumer;
/* Membership in the store, shared by every process. */
Q7__HIDDEN int q7__group_join(struct q7_consumer *c);
Q7__HIDDEN void q7__group_leave(struct q7_consumer *c);
/* Heartbeat and reconcile @c's assignment with its group's; from poll. */
Q7__HIDDEN int q7__group_sync(struct q7_consumer *c);
/* Drop the membership records of @group (topic NULL) or of every group on
 * @topic (group NULL) inside a meta write txn; returns how many, or < 0. */
Q7__HIDDEN int q7__group_drop(struct q7 *q, MDB_txn *txn, const char *group, const char *topic);
/* The live member owning a partition now, 0 if none (inside @txn). */
Q7__HIDDEN int q7__group_owner(struct q7 *q, MDB_txn *txn, const char *group, const char *topic,
                               int32_t partition, uint64_t *owner);
/* Q7_ESTATE unless @member owns the partition now (inside @txn). */
Q7__HIDDEN int q7__group_owns(struct q7 *q, MDB_txn *txn, const char *group, const char *topic,
                              int32_t partition, uint64_t member);

/* ----------------------------------------------------------- consumer.c */

typedef struct q7__assign {
  struct q7_topic *t;             /* owned by the consumer */
  int32_t partition;
  int64_t position;
  q7__pe *pe;
  MDB_txn *rtxn;                  /* held while records are out */
  q7__arena arena;                /* decompressed batches handed out */
  q7__seen seen;
  bool claimed;                   /* group: this member owns it */
} q7__assign;

struct q7_consumer {
  struct q7 *q;
  char *group;
  int reset;                      /* 0 latest, 1 earliest, 2 none */
  bool auto_commit;
  int64_t auto_commit_ms, next_auto_commit;
  int64_t max_poll;
  int strategy;                   /* 0 range, 1 roundrobin */
  q7__assign *as;
  size_t n_as, cap_as, rr;
  /* subscription (sub_topic non-NULL) */
  char *sub_topic;
  bool joined;
  uint64_t member_id;
  uint64_t generation;            /* of the group when last fully synced */
  int64_t session_timeout, hb_interval, last_hb;
  int64_t next_live_check;        /* monotonic ms: look at other members' pids */
  q7_rebalance_cb *rebalance_cb;
  void *rebalance_arg;
  struct q7__ahead *ahead;        /* fetch.ahead.bytes > 0: the helper */
};

Q7__HIDDEN int q7__consumer_take(struct q7_consumer *c, struct q7_topic *t, int32_t partition,
                                 int64_t offset);
Q7__HIDDEN int q7__consumer_drop(struct q7_consumer *c, size_t i, bool commit);
Q7__HIDDEN int q7__consumer_resolve(struct q7_consumer *c, q7__assign *a, int64_t offset);

/* -------------------------------------------------------------- ahead.c */

/* A consumer's fetch-ahead helper: a thread, started at the first note,
 * that maps up to @window bytes of each noted partition's log past the
 * consumer's position. */
typedef struct q7__ahead q7__ahead;
Q7__HIDDEN int q7__ahead_new(size_t window, q7__ahead **out);
/* The consumer's position in @pe, after a read. */
Q7__HIDDEN void q7__ahead_note(q7__ahead *h, q7__pe *pe, int64_t position);
/* Before the consumer lets go of @pe (NULL @h: nothing). */
Q7__HIDDEN void q7__ahead_forget(q7__ahead *h, const q7__pe *pe);
/* Stop and join the thread; free (NULL: nothing). */
Q7__HIDDEN void q7__ahead_free(q7__ahead *h);

#endif /* Q7_INT_H */
