/* record.c - the batch and record codec (layout in q7_int.h). */
#include "q7_int.h"

#include <inttypes.h>
#include <stdlib.h>

/* Little-endian fields; on little-endian hosts one unaligned move each. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
static inline void
put32(unsigned char *p, uint32_t v)
{
  memcpy(p, &v, 4);
}

static inline uint32_t
get32(const unsigned char *p)
{
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
#else
static inline void
put32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static inline uint32_t
get32(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
#endif

static inline void
put64(unsigned char *p, uint64_t v)
{
  put32(p, (uint32_t)v);
  put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t
get64(const unsigned char *p)
{
  return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

void
q7__be64_put(unsigned char *p, uint64_t v)
{
  for (int i = 7; i >= 0; i--, v >>= 8)
    p[i] = (unsigned char)v;
}

uint64_t
q7__be64_get(const unsigned char *p)
{
  uint64_t v = 0;
  for (int i = 0; i < 8; i++)
    v = v << 8 | p[i];
  return v;
}

int
q7__buf_reserve(q7__buf *b, size_t more)
{
  if (b->cap - b->len >= more)
    return Q7_OK;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < more) {
    if (cap > SIZE_MAX / 2)
      return q7__err(Q7_ENOMEM, "buffer of %zu bytes is too large", b->len + more);
    cap *= 2;
  }
  unsigned char *d = realloc(b->data, cap);
  if (!d)
    return q7__err(Q7_ENOMEM, "out of memory for a buffer of %zu bytes", cap);
  b->data = d;
  b->cap = cap;
  return Q7_OK;
}

void
q7__buf_free(q7__buf *b)
{
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int
q7__record_check(const q7_msg *m)
{
  if (m->key_len && !m->key)
    return q7__err(Q7_EINVAL, "record: key is NULL with key_len %zu", m->key_len);
  if (m->value_len && !m->value)
    return q7__err(Q7_EINVAL, "record: value is NULL with value_len %zu", m->value_len);
  if (m->header_count && !m->headers)
    return q7__err(Q7_EINVAL, "record: headers is NULL with header_count %zu", m->header_count);
  if (m->timestamp_ms < 0)
    return q7__err(Q7_EINVAL, "record: negative timestamp_ms %" PRId64, m->timestamp_ms);
  for (size_t i = 0; i < m->header_count; i++) {
    const q7_header *h = &m->headers[i];
    if (!h->name || !*h->name)
      return q7__err(Q7_EINVAL, "record: header %zu has %s name", i, h->name ? "an empty" : "a NULL");
    if (strlen(h->name) > 0xffff)
      return q7__err(Q7_EINVAL, "record: header %zu name longer than 65535 bytes", i);
    if (h->value_len && !h->value)
      return q7__err(Q7_EINVAL, "record: header \"%s\" value is NULL with length %zu", h->name,
                     h->value_len);
  }
  return Q7_OK;
}

size_t
q7__record_payload(const q7_msg *m)
{
  size_t n = m->key_len + m->value_len;
  for (size_t i = 0; i < m->header_count; i++)
    n += strlen(m->headers[i].name) + m->headers[i].value_len;
  return n;
}

size_t
q7__record_size(const q7_msg *m, size_t *headers_len)
{
  size_t h = 0;
  for (size_t i = 0; i < m->header_count; i++)
    h += 2 + strlen(m->headers[i].name) + 4 + m->headers[i].value_len;
  if (headers_len)
    *headers_len = h;
  size_t n = Q7__REC2_MAX_HDR + m->key_len + m->value_len + h;
  if (m->key_len >= Q7__NULL_LEN || m->value_len >= Q7__NULL_LEN || h >= Q7__NULL_LEN ||
      n >= Q7__NULL_LEN)
    return 0;
  return n;
}

unsigned char *
q7__record_put_headers(unsigned char *p, const q7_msg *m)
{
  for (size_t i = 0; i < m->header_count; i++) {
    const q7_header *h = &m->headers[i];
    size_t nl = strlen(h->name);
    p[0] = (unsigned char)nl;
    p[1] = (unsigned char)(nl >> 8);
    memcpy(p + 2, h->name, nl);
    p += 2 + nl;
    put32(p, h->value ? (uint32_t)h->value_len : Q7__NULL_LEN);
    p += 4;
    if (h->value_len)
      memcpy(p, h->value, h->value_len);
    p += h->value_len;
  }
  return p;
}

int
q7__batch_init(q7__batch *b)
{
  memset(b, 0, sizeof *b);
  int rc = q7__buf_reserve(&b->buf, Q7__BATCH_HDR);
  if (rc)
    return rc;
  b->buf.len = Q7__BATCH_HDR;
  return Q7_OK;
}

void
q7__batch_reset(q7__batch *b)
{
  b->buf.len = Q7__BATCH_HDR;
  b->codec = 0;
  b->count = 0;
  b->first_ts = b->max_ts = 0;
}

void
q7__batch_free(q7__batch *b)
{
  q7__buf_free(&b->buf);
  b->count = 0;
}

int
q7__batch_add(q7__batch *b, const q7_msg *m, int64_t ts)
{
  size_t hlen, n = q7__record_size(m, &hlen);
  if (!n)
    return q7__err(Q7_ETOOBIG, "record: larger than 4 GiB");
  return q7__batch_add_sized(b, m, ts, n, hlen);
}

int
q7__batch_add_sized(q7__batch *b, const q7_msg *m, int64_t ts, size_t n, size_t hlen)
{
  int rc = q7__buf_reserve(&b->buf, n);
  if (rc)
    return rc;
  return q7__batch_put(b, m, ts, n, hlen);
}

void
q7__batch_seal(q7__batch *b)
{
  unsigned char *h = b->buf.data;
  h[4] = (unsigned char)Q7__BATCH_FORMAT;
  h[5] = 0;
  h[6] = (unsigned char)b->codec; /* attributes: the compression codec */
  h[7] = 0;
  put32(h + 8, b->count);
  put32(h + 12, (uint32_t)(b->buf.len - Q7__BATCH_HDR));
  put64(h + 16, (uint64_t)b->first_ts);
  put64(h + 24, (uint64_t)b->max_ts);
  put32(h, q7__crc32c(0, h + 4, b->buf.len - 4));
}

int
q7__batch_open(q7__bview *v, const void *data, size_t len, int64_t base, bool verify,
               const char *what)
{
  const unsigned char *h = data;
  if (len < Q7__BATCH_HDR)
    return q7__err(Q7_ECORRUPT, "%s: batch at offset %" PRId64 " is truncated (%zu bytes)", what,
                   base, len);
  if (verify) {
    uint32_t want = get32(h), got = q7__crc32c(0, h + 4, len - 4);
    if (want != got)
      return q7__err(Q7_ECORRUPT,
                     "%s: batch at offset %" PRId64 " fails its CRC (stored %08x, computed %08x)",
                     what, base, want, got);
  }
  uint32_t fmt = (uint32_t)h[4] | (uint32_t)h[5] << 8;
  uint32_t attr = (uint32_t)h[6] | (uint32_t)h[7] << 8;
  if (fmt != 1 && fmt != 2)
    return q7__err(fmt > Q7__BATCH_FORMAT ? Q7_EVERSION : Q7_ECORRUPT,
                   "%s: batch at offset %" PRId64 " has format %u, this library reads 1 to %u",
                   what, base, fmt, Q7__BATCH_FORMAT);
  uint32_t codec = attr & 7;
  if (codec != Q7__CODEC_NONE && codec != Q7__CODEC_LZ4 && codec != Q7__CODEC_ZSTD)
    return q7__err(Q7_EVERSION, "%s: batch at offset %" PRId64 " uses compression %u", what,
                   base, codec);
  v->count = get32(h + 8);
  if (v->count == 0 || get32(h + 12) != len - Q7__BATCH_HDR ||
      (codec && len < Q7__BATCH_HDR + 4))
    return q7__err(Q7_ECORRUPT, "%s: batch at offset %" PRId64 " has a bad header", what, base);
  v->data = h;
  v->len = len;
  v->checked = verify;
  v->format = fmt;
  v->first_ts = (int64_t)get64(h + 16);
  v->max_ts = (int64_t)get64(h + 24);
  v->codec = (int)codec;
  if (codec) {
    v->raw_len = get32(h + Q7__BATCH_HDR);
    v->recs = NULL;
    v->recs_len = 0;
    if (v->raw_len < (size_t)v->count * (fmt == 1 ? Q7__REC_HDR : Q7__REC2_MIN))
      return q7__err(Q7_ECORRUPT, "%s: batch at offset %" PRId64 " has a bad length", what,
                     base);
  } else {
    v->raw_len = v->recs_len = len - Q7__BATCH_HDR;
    v->recs = h + Q7__BATCH_HDR;
  }
  return Q7_OK;
}

static int
decode1(const q7__bview *v, int64_t base, uint32_t skip, q7_record *out, size_t max,
        const char *topic, int32_t partition)
{
  const unsigned char *p = v->recs, *end = v->recs + v->recs_len;
  uint32_t i = 0;
  size_t n = 0;
  /* Records before @skip: only their sizes. */
  for (; i < skip && i < v->count; i++) {
    if ((size_t)(end - p) < Q7__REC_HDR)
      goto corrupt;
    uint32_t size = get32(p);
    if (size < Q7__REC_HDR - 4 || size > (size_t)(end - p) - 4)
      goto corrupt;
    p += 4 + (size_t)size;
  }
  uint32_t last = v->count - i < max ? v->count : i + (uint32_t)max;
  for (; i < last; i++) {
    size_t room = (size_t)(end - p);
    if (room < Q7__REC_HDR)
      goto corrupt;
    uint32_t size = get32(p), kl = get32(p + 12), vl = get32(p + 16), hl = get32(p + 20);
    size_t kn = kl == Q7__NULL_LEN ? 0 : kl, vn = vl == Q7__NULL_LEN ? 0 : vl;
    /* One check covers all: the lengths add up to the record's size and
     * the record fits (sizes are < 2^32, so the sum cannot wrap). */
    if ((uint64_t)size > room - 4 || (uint64_t)(Q7__REC_HDR - 4) + kn + vn + hl != size)
      goto corrupt;
    const unsigned char *d = p + Q7__REC_HDR;
    q7_record *r = &out[n++];
    r->topic = topic;
    r->partition = partition;
    r->offset = base + i;
    r->timestamp_ms = (int64_t)get64(p + 4);
    r->key = kl == Q7__NULL_LEN ? NULL : d;
    r->key_len = kn;
    r->value = vl == Q7__NULL_LEN ? NULL : d + kn;
    r->value_len = vn;
    r->headers = hl ? d + kn + vn : NULL;
    r->headers_len = hl;
    p += 4 + (size_t)size;
  }
  return (int)n;
corrupt:
  return q7__err(Q7_ECORRUPT, "topic %s partition %d: batch at offset %" PRId64
                 " has a malformed record", topic, (int)partition, base);
}

/* A varint read: where the next field starts (NULL: malformed) and the
 * value.  Returned in registers: the decoder's cursor never has its
 * address taken, and stays in a register. */
typedef struct vres {
  const unsigned char *next;
  uint64_t value;
} vres;

/* The varint at @q within [q, end); NULL when it runs past end or past 10
 * bytes. */
static vres
vget_slow(const unsigned char *q, const unsigned char *end)
{
  uint64_t v = 0;
  for (int shift = 0; q < end && shift < 64; shift += 7) {
    unsigned char c = *q++;
    v |= (uint64_t)(c & 0x7f) << shift;
    if (c < 0x80)
      return (vres){ q, v };
  }
  return (vres){ NULL, 0 };
}

/* The varint at @cur (within @lim) into @out, moving @cur; inline for one and two
 * bytes (lengths, and timestamps up to 8 s apart in a batch); else goto
 * corrupt. */
#define VARINT(cur, lim, out)                                                                 \
  do {                                                                                        \
    if ((cur) < (lim) && (cur)[0] < 0x80) {                                                   \
      (out) = (cur)[0];                                                                       \
      (cur) += 1;                                                                             \
    } else if ((lim) - (cur) >= 2 && (cur)[1] < 0x80) {                                       \
      (out) = ((cur)[0] & 0x7fu) | (uint64_t)(cur)[1] << 7;                                   \
      (cur) += 2;                                                                             \
    } else {                                                                                  \
      vres r_ = vget_slow((cur), (lim));                                                      \
      if (!r_.next)                                                                           \
        goto corrupt;                                                                         \
      (cur) = r_.next;                                                                        \
      (out) = r_.value;                                                                       \
    }                                                                                         \
  } while (0)

static int
decode2(const q7__bview *v, int64_t base, uint32_t skip, q7_record *out, size_t max,
        const char *topic, int32_t partition)
{
  const unsigned char *p = v->recs, *end = v->recs + v->recs_len;
  uint32_t i = 0;
  size_t n = 0;
  uint64_t size;
  /* Records before @skip: only their sizes. */
  for (; i < skip && i < v->count; i++) {
    VARINT(p, end, size);
    if (size < Q7__REC2_MIN - 1 || size > (size_t)(end - p))
      goto corrupt;
    p += size;
  }
  uint32_t last = v->count - i < max ? v->count : i + (uint32_t)max;
  uint64_t first = (uint64_t)v->first_ts;
  for (; i < last; i++) {
    uint64_t zz, k1, v1, hl;
    VARINT(p, end, size);
    if (size > (size_t)(end - p))
      goto corrupt;
    const unsigned char *rend = p + size;
    VARINT(p, rend, zz);
    VARINT(p, rend, k1);
    size_t kn = k1 ? k1 - 1 : 0;
    if (kn > (size_t)(rend - p))
      goto corrupt;
    const unsigned char *key = p;
    p += kn;
    VARINT(p, rend, v1);
    size_t vn = v1 ? v1 - 1 : 0;
    if (vn > (size_t)(rend - p))
      goto corrupt;
    const unsigned char *val = p;
    p += vn;
    /* The headers fill the rest exactly. */
    VARINT(p, rend, hl);
    if (hl != (size_t)(rend - p) || k1 > Q7__NULL_LEN || v1 > Q7__NULL_LEN)
      goto corrupt;
    q7_record *r = &out[n++];
    r->topic = topic;
    r->partition = partition;
    r->offset = base + i;
    r->timestamp_ms = (int64_t)(first + (uint64_t)q7__unzigzag(zz));
    r->key = k1 ? key : NULL;
    r->key_len = kn;
    r->value = v1 ? val : NULL;
    r->value_len = vn;
    r->headers = hl ? p : NULL;
    r->headers_len = hl;
    p = rend;
  }
  return (int)n;
corrupt:
  return q7__err(Q7_ECORRUPT, "topic %s partition %d: batch at offset %" PRId64
                 " has a malformed record", topic, (int)partition, base);
}

int
q7__batch_decode(const q7__bview *v, int64_t base, uint32_t skip, q7_record *out, size_t max,
                 const char *topic, int32_t partition)
{
  if (!v->recs)
    return q7__err(Q7_ECORRUPT, "topic %s partition %d: batch at offset %" PRId64
                   " was not decompressed", topic, (int)partition, base);
  return v->format == 1 ? decode1(v, base, skip, out, max, topic, partition)
                        : decode2(v, base, skip, out, max, topic, partition);
}

int
q7_record_header_next(const q7_record *r, size_t *iter, const char **name, size_t *name_len,
                      const void **value, size_t *value_len)
{
  if (!r || !iter || !name || !name_len || !value || !value_len)
    return q7__err(Q7_EINVAL, "q7_record_header_next: NULL argument");
  const unsigned char *h = r->headers;
  size_t pos = *iter, len = r->headers_len;
  if (pos >= len)
    return q7__err(Q7_ENOENT, "record at offset %" PRId64 ": no more headers", r->offset);
  if (len - pos < 2)
    goto corrupt;
  size_t nl = (size_t)h[pos] | (size_t)h[pos + 1] << 8;
  if (len - pos - 2 < nl + 4)
    goto corrupt;
  *name = (const char *)h + pos + 2;
  *name_len = nl;
  pos += 2 + nl;
  uint32_t vl = get32(h + pos);
  pos += 4;
  size_t vn = vl == Q7__NULL_LEN ? 0 : vl;
  if (len - pos < vn)
    goto corrupt;
  *value = vl == Q7__NULL_LEN ? NULL : h + pos;
  *value_len = vn;
  *iter = pos + vn;
  return Q7_OK;
corrupt:
  return q7__err(Q7_ECORRUPT, "record at offset %" PRId64 ": malformed headers", r->offset);
}

int
q7_record_header(const q7_record *r, const char *name, const void **value, size_t *len)
{
  if (!r || !name || !value || !len)
    return q7__err(Q7_EINVAL, "q7_record_header: NULL argument");
  size_t it = 0, nl = strlen(name), hn, vl;
  const char *hname;
  const void *v;
  int rc;
  while ((rc = q7_record_header_next(r, &it, &hname, &hn, &v, &vl)) == Q7_OK) {
    if (hn == nl && memcmp(hname, name, nl) == 0) {
      *value = v;
      *len = vl;
      return Q7_OK;
    }
  }
  if (rc == Q7_ENOENT)
    return q7__err(Q7_ENOENT, "record at offset %" PRId64 ": no header \"%s\"", r->offset, name);
  return rc;
}

int
q7__riter_next(q7__riter *it, int64_t *ts, size_t *pos)
{
  const q7__bview *v = it->v;
  size_t at = it->pos - Q7__BATCH_HDR; /* within the records */
  if (it->i >= v->count)
    return 0;
  if (!v->recs || at > v->recs_len)
    return Q7_ECORRUPT;
  const unsigned char *p = v->recs + at, *end = v->recs + v->recs_len;
  size_t len;
  if (v->format == 1) {
    if ((size_t)(end - p) < Q7__REC_HDR)
      return Q7_ECORRUPT;
    uint32_t size = get32(p);
    if (size < Q7__REC_HDR - 4 || size > (size_t)(end - p) - 4)
      return Q7_ECORRUPT;
    *ts = (int64_t)get64(p + 4);
    len = 4 + (size_t)size;
  } else {
    const unsigned char *q = p;
    uint64_t size, zz;
    VARINT(q, end, size);
    if (size > (size_t)(end - q))
      return Q7_ECORRUPT;
    len = (size_t)(q - p) + size;
    VARINT(q, p + len, zz);
    *ts = (int64_t)((uint64_t)v->first_ts + (uint64_t)q7__unzigzag(zz));
  }
  /* The position in the stored value: for a compressed batch, in proportion
   * (retention.bytes counts stored bytes). */
  *pos = v->codec ? Q7__BATCH_HDR + (size_t)((double)at * (double)(v->len - Q7__BATCH_HDR) /
                                             (double)(v->recs_len ? v->recs_len : 1))
                  : it->pos;
  it->pos += len;
  it->i++;
  return 1;
corrupt:
  return Q7_ECORRUPT;
}
