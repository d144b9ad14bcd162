/* compress.c - batch compression as Kafka has it: lz4 and zstd per batch.
 *
 * libq7's core depends on LMDB and pthreads only, so the codecs are loaded
 * when a store first needs one (liblz4.so.1, libzstd.so.1, Debian's liblz4-1
 * and libzstd1), and the handles live on the store.  A compressed batch
 * keeps the plain header; its records area is u32 raw length, then the
 * compressed records.  The CRC covers the stored bytes, so it is checked
 * before anything is decompressed. */
#include "q7_int.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

/* The largest records area a batch may claim: batch.size is at most 64 MiB
 * and a record at most message.max.bytes (256 MiB) plus framing. */
#define MAX_RAW (512u * 1024 * 1024)

struct q7__codecs {
  void *lz4, *zstd;
  bool tried_lz4, tried_zstd;
  int (*lz4_compress)(const char *src, char *dst, int srcSize, int dstCapacity);
  int (*lz4_decompress)(const char *src, char *dst, int compressedSize, int dstCapacity);
  int (*lz4_bound)(int inputSize);
  size_t (*zstd_compress)(void *dst, size_t dstCapacity, const void *src, size_t srcSize,
                          int level);
  size_t (*zstd_decompress)(void *dst, size_t dstCapacity, const void *src, size_t srcSize);
  size_t (*zstd_bound)(size_t srcSize);
  unsigned (*zstd_is_error)(size_t code);
};

static const char *
codec_name(int codec)
{
  return codec == Q7__CODEC_LZ4 ? "lz4" : codec == Q7__CODEC_ZSTD ? "zstd" : "none";
}

/* The codec's functions, loading its library on first use (under q->lock). */
static int
load(q7 *q, int codec, struct q7__codecs **out)
{
  pthread_mutex_lock(&q->lock);
  if (!q->codecs && !(q->codecs = calloc(1, sizeof *q->codecs))) {
    pthread_mutex_unlock(&q->lock);
    return q7__err(Q7_ENOMEM, "out of memory");
  }
  struct q7__codecs *c = q->codecs;
  if (codec == Q7__CODEC_LZ4 && !c->tried_lz4) {
    c->tried_lz4 = true;
    if ((c->lz4 = dlopen("liblz4.so.1", RTLD_NOW | RTLD_LOCAL))) {
      *(void **)&c->lz4_compress = dlsym(c->lz4, "LZ4_compress_default");
      *(void **)&c->lz4_decompress = dlsym(c->lz4, "LZ4_decompress_safe");
      *(void **)&c->lz4_bound = dlsym(c->lz4, "LZ4_compressBound");
    }
  }
  if (codec == Q7__CODEC_ZSTD && !c->tried_zstd) {
    c->tried_zstd = true;
    if ((c->zstd = dlopen("libzstd.so.1", RTLD_NOW | RTLD_LOCAL))) {
      *(void **)&c->zstd_compress = dlsym(c->zstd, "ZSTD_compress");
      *(void **)&c->zstd_decompress = dlsym(c->zstd, "ZSTD_decompress");
      *(void **)&c->zstd_bound = dlsym(c->zstd, "ZSTD_compressBound");
      *(void **)&c->zstd_is_error = dlsym(c->zstd, "ZSTD_isError");
    }
  }
  bool ok = codec == Q7__CODEC_LZ4 ? c->lz4_compress && c->lz4_decompress && c->lz4_bound
                                   : c->zstd_compress && c->zstd_decompress && c->zstd_bound &&
                                       c->zstd_is_error;
  pthread_mutex_unlock(&q->lock);
  if (!ok)
    return q7__err(Q7_EIO, "compression %s: %s is not installed (Debian package %s)",
                   codec_name(codec), codec == Q7__CODEC_LZ4 ? "liblz4.so.1" : "libzstd.so.1",
                   codec == Q7__CODEC_LZ4 ? "liblz4-1" : "libzstd1");
  *out = c;
  return Q7_OK;
}

int
q7__codec_check(q7 *q, int codec)
{
  struct q7__codecs *c;
  return codec == Q7__CODEC_NONE ? Q7_OK : load(q, codec, &c);
}

void
q7__codecs_free(q7 *q)
{
  struct q7__codecs *c = q->codecs;
  if (!c)
    return;
  if (c->lz4)
    dlclose(c->lz4);
  if (c->zstd)
    dlclose(c->zstd);
  free(c);
  q->codecs = NULL;
}

int
q7__batch_compress(q7 *q, q7__batch *b, int codec, q7__buf *tmp)
{
  struct q7__codecs *c;
  int rc;
  if (codec == Q7__CODEC_NONE || (rc = load(q, codec, &c)))
    return codec == Q7__CODEC_NONE ? Q7_OK : rc;
  size_t raw = b->buf.len - Q7__BATCH_HDR;
  if (raw > INT32_MAX)
    return Q7_OK; /* stays uncompressed */
  size_t bound = codec == Q7__CODEC_LZ4 ? (size_t)c->lz4_bound((int)raw) : c->zstd_bound(raw);
  tmp->len = 0;
  if ((rc = q7__buf_reserve(tmp, Q7__BATCH_HDR + 4 + bound)))
    return rc;
  const char *src = (const char *)b->buf.data + Q7__BATCH_HDR;
  char *dst = (char *)tmp->data + Q7__BATCH_HDR + 4;
  size_t n;
  if (codec == Q7__CODEC_LZ4) {
    int k = c->lz4_compress(src, dst, (int)raw, (int)bound);
    n = k > 0 ? (size_t)k : 0;
  } else {
    n = c->zstd_compress(dst, bound, src, raw, 3);
    if (c->zstd_is_error(n))
      n = 0;
  }
  if (n == 0 || n + 4 >= raw)
    return Q7_OK; /* incompressible: stored as is */
  memcpy(tmp->data, b->buf.data, Q7__BATCH_HDR);
  uint32_t r32 = (uint32_t)raw;
  memcpy(tmp->data + Q7__BATCH_HDR, &r32, 4); /* little-endian hosts; see record.c */
  tmp->len = Q7__BATCH_HDR + 4 + n;
  q7__buf swap = b->buf;
  b->buf = *tmp;
  *tmp = swap;
  b->codec = codec;
  return Q7_OK;
}

int
q7__batch_inflate(q7 *q, q7__bview *v, q7__arena *a, const char *what, int64_t base)
{
  struct q7__codecs *c;
  int rc;
  if (v->codec == Q7__CODEC_NONE || v->recs)
    return Q7_OK;
  /* Never trust a length before the CRC vouched for it, nor a huge one. */
  uint32_t want = 0, got_crc = 0;
  if (!v->checked) {
    got_crc = q7__crc32c(0, v->data + 4, v->len - 4);
    memcpy(&want, v->data, 4);
  }
  if (want != got_crc || v->raw_len > MAX_RAW)
    return q7__err(Q7_ECORRUPT, "%s: batch at offset %lld is corrupt (%s)", what,
                   (long long)base, want != got_crc ? "CRC" : "claimed length");
  if ((rc = load(q, v->codec, &c)))
    return rc;
  const unsigned char *src = v->data + Q7__BATCH_HDR + 4;
  size_t n = v->len - Q7__BATCH_HDR - 4;
  unsigned char *dst = q7__arena_alloc(a, v->raw_len ? v->raw_len : 1);
  if (!dst)
    return q7__err(Q7_ENOMEM, "out of memory for a %zu-byte batch", v->raw_len);
  size_t got;
  if (v->codec == Q7__CODEC_LZ4) {
    int k = n <= INT32_MAX && v->raw_len <= INT32_MAX
                ? c->lz4_decompress((const char *)src, (char *)dst, (int)n, (int)v->raw_len)
                : -1;
    got = k < 0 ? SIZE_MAX : (size_t)k;
  } else {
    got = c->zstd_decompress(dst, v->raw_len, src, n);
    if (c->zstd_is_error(got))
      got = SIZE_MAX;
  }
  if (got != v->raw_len)
    return q7__err(Q7_ECORRUPT, "%s: batch at offset %lld does not decompress (%s)", what,
                   (long long)base, codec_name(v->codec));
  v->recs = dst;
  v->recs_len = v->raw_len;
  return Q7_OK;
}

void *
q7__arena_alloc(q7__arena *a, size_t n)
{
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 8;
    void **b = realloc(a->blk, cap * sizeof *b);
    if (!b)
      return NULL;
    a->blk = b;
    a->cap = cap;
  }
  void *p = malloc(n);
  if (p)
    a->blk[a->n++] = p;
  return p;
}

void
q7__arena_reset(q7__arena *a)
{
  for (size_t i = 0; i < a->n; i++)
    free(a->blk[i]);
  a->n = 0;
}

void
q7__arena_free(q7__arena *a)
{
  q7__arena_reset(a);
  free(a->blk);
  a->blk = NULL;
  a->cap = 0;
}
