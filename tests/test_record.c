/* test_record.c - the batch/record codec, headers and CRC32C (lib/record.c,
 * lib/crc32c.c).  Batches are written in format 2 (varint records) and read
 * in formats 1 (libq7 0.1.0) and 2: format-1 batches are built by hand. */
#include "helpers.h"
#include "q7_int.h"

#include <inttypes.h>

/* The CRC's software path, compiled here under another name so it is tested
 * on CPUs where the library takes the SSE4.2 path. */
#define q7__crc32c test_crc32c_copy
#include "crc32c.c"
#undef q7__crc32c

/* ----------------------------------------------------------- helpers */

static inline uint32_t
rd32(const unsigned char *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void
wr32(unsigned char *p, uint32_t v)
{
  p[0] = (unsigned char)v;
  p[1] = (unsigned char)(v >> 8);
  p[2] = (unsigned char)(v >> 16);
  p[3] = (unsigned char)(v >> 24);
}

static inline void
wr64(unsigned char *p, uint64_t v)
{
  wr32(p, (uint32_t)v);
  wr32(p + 4, (uint32_t)(v >> 32));
}

/* Recompute the CRC of a batch edited on purpose. */
static void
reseal(unsigned char *d, size_t len)
{
  wr32(d, q7__crc32c(0, d + 4, len - 4));
}

static q7_msg
msg(const void *key, size_t key_len, const void *value, size_t value_len)
{
  q7_msg m;
  memset(&m, 0, sizeof m);
  m.partition = Q7_PARTITION_ANY;
  m.key = key;
  m.key_len = key_len;
  m.value = value;
  m.value_len = value_len;
  return m;
}

/* Records written out by hand, independently of the library's encoder. */
typedef struct {
  unsigned char d[8192];
  size_t n;
} bytes;

static void
put_raw(bytes *b, const void *p, size_t n)
{
  cr_assert_leq(n, sizeof b->d - b->n, "test buffer too small");
  if (n)
    memcpy(b->d + b->n, p, n);
  b->n += n;
}

static void
put_u8(bytes *b, unsigned v)
{
  unsigned char c = (unsigned char)v;
  put_raw(b, &c, 1);
}

static void
put_u32(bytes *b, uint32_t v)
{
  unsigned char c[4];
  wr32(c, v);
  put_raw(b, c, 4);
}

static void
put_u64(bytes *b, uint64_t v)
{
  unsigned char c[8];
  wr64(c, v);
  put_raw(b, c, 8);
}

/* Unsigned LEB128: 7 bits a byte, low first, high bit = more follow. */
static void
put_var(bytes *b, uint64_t v)
{
  do {
    unsigned c = v & 0x7f;
    v >>= 7;
    put_u8(b, v ? c | 0x80 : c);
  } while (v);
}

static size_t
var_len(uint64_t v)
{
  size_t n = 1;
  for (; v >= 0x80; v >>= 7)
    n++;
  return n;
}

/* Zigzag: 0, -1, 1, -2, 2 ... -> 0, 1, 2, 3, 4 ... */
static uint64_t
zz(int64_t v)
{
  return v >= 0 ? (uint64_t)v * 2 : ~(uint64_t)v * 2 + 1;
}

/* A format-1 record; a NULL key or value is stored as Q7__NULL_LEN. */
static void
f1_rec(bytes *b, int64_t ts, const char *k, size_t kl, const char *v, size_t vl, const void *h,
       size_t hl)
{
  put_u32(b, (uint32_t)(Q7__REC_HDR - 4 + kl + vl + hl));
  put_u64(b, (uint64_t)ts);
  put_u32(b, k ? (uint32_t)kl : Q7__NULL_LEN);
  put_u32(b, v ? (uint32_t)vl : Q7__NULL_LEN);
  put_u32(b, (uint32_t)hl);
  put_raw(b, k, kl);
  put_raw(b, v, vl);
  put_raw(b, h, hl);
}

/* A well-formed format-2 record, @delta its timestamp - first_ts. */
static void
f2_rec(bytes *b, int64_t delta, const char *k, size_t kl, const char *v, size_t vl,
       const void *h, size_t hl)
{
  uint64_t k1 = k ? kl + 1 : 0, v1 = v ? vl + 1 : 0;
  put_var(b, var_len(zz(delta)) + var_len(k1) + kl + var_len(v1) + vl + var_len(hl) + hl);
  put_var(b, zz(delta));
  put_var(b, k1);
  put_raw(b, k, kl);
  put_var(b, v1);
  put_raw(b, v, vl);
  put_var(b, hl);
  put_raw(b, h, hl);
}

/* A stored batch around @recs, malloc'd to its exact size (ASan sees any
 * read past it): header filled in, CRC correct. */
static unsigned char *
mkbatch(unsigned format, uint32_t count, int64_t first_ts, int64_t max_ts, const bytes *recs,
        size_t *len)
{
  *len = Q7__BATCH_HDR + recs->n;
  unsigned char *d = malloc(*len);
  cr_assert_not_null(d);
  d[4] = (unsigned char)format;
  d[5] = (unsigned char)(format >> 8);
  d[6] = d[7] = 0;
  wr32(d + 8, count);
  wr32(d + 12, (uint32_t)recs->n);
  wr64(d + 16, (uint64_t)first_ts);
  wr64(d + 24, (uint64_t)max_ts);
  if (recs->n)
    memcpy(d + Q7__BATCH_HDR, recs->d, recs->n);
  reseal(d, *len);
  return d;
}

/* The header block { u16 5, "trace", u32 3, "abc" }. */
static const unsigned char trace_abc[] = { 5, 0, 't', 'r', 'a', 'c', 'e', 3, 0, 0, 0, 'a', 'b', 'c' };

static q7__batch b;

static void
batch_setup(void)
{
  cr_assert_eq(q7__batch_init(&b), Q7_OK);
}

static void
batch_teardown(void)
{
  q7__batch_free(&b);
}

TestSuite(record, .init = batch_setup, .fini = batch_teardown);
TestSuite(crc32c);

/* A sealed batch of three varied records (copied, so tests may edit it). */
static unsigned char *
three_records(size_t *len)
{
  q7_header h[] = { { "trace", "abc", 3 } };
  q7_msg m0 = msg("k0", 2, "value0", 6);
  q7_msg m1 = msg(NULL, 0, NULL, 0);
  q7_msg m2 = msg("key-two", 7, "v2", 2);
  m2.headers = h;
  m2.header_count = 1;
  cr_assert_eq(q7__batch_add(&b, &m0, 100), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &m1, 300), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &m2, 200), Q7_OK);
  q7__batch_seal(&b);
  unsigned char *d = malloc(b.buf.len);
  memcpy(d, b.buf.data, b.buf.len);
  *len = b.buf.len;
  return d;
}

/* The same three records as libq7 0.1.0 stored them (format 1). */
static unsigned char *
three_records_v1(size_t *len)
{
  bytes r = { .n = 0 };
  f1_rec(&r, 100, "k0", 2, "value0", 6, NULL, 0);
  f1_rec(&r, 300, NULL, 0, NULL, 0, NULL, 0);
  f1_rec(&r, 200, "key-two", 7, "v2", 2, trace_abc, sizeof trace_abc);
  return mkbatch(1, 3, 100, 300, &r, len);
}

typedef unsigned char *(*maker)(size_t *len);
static const struct {
  const char *name;
  maker make;
} formats[] = { { "format 2", three_records }, { "format 1", three_records_v1 } };

/* Record @i of the three records, decoded from @d as offset base + @i. */
static void
check_rec(const q7_record *x, uint32_t i, int64_t base, const unsigned char *d, size_t len,
          const char *what)
{
  cr_assert_str_eq(x->topic, "tp", "%s", what);
  cr_assert_eq(x->partition, 7, "%s", what);
  cr_assert_eq(x->offset, base + i, "%s", what);
  /* Zero copy: pointers point into the batch. */
  if (x->key)
    cr_assert((const unsigned char *)x->key >= d + Q7__BATCH_HDR &&
              (const unsigned char *)x->key + x->key_len <= d + len, "%s", what);
  if (x->value)
    cr_assert((const unsigned char *)x->value >= d + Q7__BATCH_HDR &&
              (const unsigned char *)x->value + x->value_len <= d + len, "%s", what);
  if (i == 0) {
    cr_assert_eq(x->timestamp_ms, 100, "%s", what);
    cr_assert_eq(x->key_len, 2, "%s", what);
    cr_assert_eq(memcmp(x->key, "k0", 2), 0, "%s", what);
    cr_assert_eq(x->value_len, 6, "%s", what);
    cr_assert_eq(memcmp(x->value, "value0", 6), 0, "%s", what);
    cr_assert_null(x->headers, "%s", what);
    cr_assert_eq(x->headers_len, 0, "%s", what);
  } else if (i == 1) {
    cr_assert_eq(x->timestamp_ms, 300, "%s", what);
    cr_assert_null(x->key, "%s", what);
    cr_assert_eq(x->key_len, 0, "%s", what);
    cr_assert_null(x->value, "%s", what);
    cr_assert_eq(x->value_len, 0, "%s", what);
    cr_assert_null(x->headers, "%s", what);
    cr_assert_eq(x->headers_len, 0, "%s", what);
  } else {
    cr_assert_eq(x->timestamp_ms, 200, "%s", what);
    cr_assert_eq(x->key_len, 7, "%s", what);
    cr_assert_eq(memcmp(x->key, "key-two", 7), 0, "%s", what);
    cr_assert_eq(x->value_len, 2, "%s", what);
    cr_assert_eq(memcmp(x->value, "v2", 2), 0, "%s", what);
    cr_assert_eq(x->headers_len, sizeof trace_abc, "%s", what);
    cr_assert_eq(memcmp(x->headers, trace_abc, sizeof trace_abc), 0, "%s", what);
    const void *hv;
    size_t hl;
    Q7_OK_OR_FAIL(q7_record_header(x, "trace", &hv, &hl));
    cr_assert_eq(hl, 3, "%s", what);
    cr_assert_eq(memcmp(hv, "abc", 3), 0, "%s", what);
  }
}

/* What either three_records batch decodes to, from @skip on. */
static void
check_three(const unsigned char *d, size_t len, uint32_t skip, const char *what)
{
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 40, true, "test"));
  cr_assert_eq(v.count, 3, "%s", what);
  cr_assert_eq(v.first_ts, 100, "%s", what);
  cr_assert_eq(v.max_ts, 300, "%s", what);
  cr_assert_eq(v.len, len, "%s", what);
  q7_record r[4];
  memset(r, 0xa5, sizeof r);
  cr_assert_eq(q7__batch_decode(&v, 40, skip, r, 4, "tp", 7), 3 - (int)skip, "%s", what);
  for (uint32_t i = skip; i < 3; i++)
    check_rec(&r[i - skip], i, 40, d, len, what);
}

/* Open (verified) and decode @d from @skip: the decoder's answer. */
static int
decode_at(const unsigned char *d, size_t len, uint32_t skip, q7_record *out, size_t max)
{
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 70, true, "t"));
  return q7__batch_decode(&v, 70, skip, out, max, "tp", 2);
}

/* ---------------------------------------------------- encode / decode */

Test(record, empty_batch_init_reserves_the_header)
{
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR);
  cr_assert_eq(b.count, 0);
}

Test(record, seal_writes_the_documented_header_and_format2_records)
{
  size_t len;
  unsigned char *d = three_records(&len);
  static const unsigned char want[] = {
    /* format 2, attributes 0, count 3, length 48, first_ts 100, max_ts 300 */
    2, 0, 0, 0, 3, 0, 0, 0, 48, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0x2c, 1, 0, 0, 0, 0, 0, 0,
    /* size 12, ts delta 0, key_len+1 3, "k0", value_len+1 7, "value0", headers_len 0 */
    12, 0, 3, 'k', '0', 7, 'v', 'a', 'l', 'u', 'e', '0', 0,
    /* size 5, delta +200 = zigzag 400 (two bytes), no key, null value, no headers */
    5, 0x90, 0x03, 0, 0, 0,
    /* size 28, delta +100 = zigzag 200, "key-two", "v2", 14 bytes of headers */
    28, 0xc8, 0x01, 8, 'k', 'e', 'y', '-', 't', 'w', 'o', 3, 'v', '2', 14,
    5, 0, 't', 'r', 'a', 'c', 'e', 3, 0, 0, 0, 'a', 'b', 'c',
  };
  cr_assert_eq(len, 4 + sizeof want);
  cr_assert_eq(rd32(d), q7__crc32c(0, d + 4, len - 4), "crc32c over [4, end)");
  cr_assert_eq(d[4] | d[5] << 8, Q7__BATCH_FORMAT);
  cr_assert_eq(Q7__BATCH_FORMAT, 2);
  cr_assert_eq(rd32(d + 12), len - Q7__BATCH_HDR, "length");
  for (size_t i = 0; i < sizeof want; i++)
    cr_assert_eq(d[4 + i], want[i], "byte %zu: %#x, want %#x", 4 + i, d[4 + i], want[i]);
  free(d);
}

/* Timestamps both ways of first_ts (zigzag), NULL and empty keys, values
 * and header values, varints of two bytes: byte for byte. */
Test(record, format2_exact_bytes_of_small_records)
{
  static char big[200], key127[127];
  memset(big, 'x', sizeof big);
  memset(key127, 'k', sizeof key127);
  q7_header hh[] = { { "n", NULL, 0 }, { "e", "", 0 } };
  q7_msg ms[] = {
    msg("", 0, NULL, 0), msg(NULL, 0, "", 0), msg(NULL, 0, NULL, 0), msg(NULL, 0, NULL, 0),
    msg(NULL, 0, NULL, 0), msg("k", 1, "v", 1), msg(NULL, 0, big, sizeof big),
    msg(key127, sizeof key127, NULL, 0),
  };
  ms[5].headers = hh;
  ms[5].header_count = 2;
  int64_t ts[] = { 1000, 999, 936, 935, 1064, 1000, 1000, 1000 };
  for (size_t i = 0; i < 8; i++)
    cr_assert_eq(q7__batch_add(&b, &ms[i], ts[i]), Q7_OK);
  cr_assert_eq(b.count, 8);
  cr_assert_eq(b.first_ts, 1000);
  cr_assert_eq(b.max_ts, 1064);
  q7__batch_seal(&b);
  static const unsigned char want[] = {
    4, 0, 1, 0, 0,       /* delta 0, empty key (len+1 = 1), null value, no headers */
    4, 1, 0, 1, 0,       /* delta -1 = zigzag 1, null key, empty value */
    4, 0x7f, 0, 0, 0,    /* delta -64 = zigzag 127: the last one-byte varint */
    5, 0x81, 1, 0, 0, 0, /* delta -65 = zigzag 129 */
    5, 0x80, 1, 0, 0, 0, /* delta +64 = zigzag 128 */
    /* "k", "v", headers { "n": null } { "e": "" } */
    20, 0, 2, 'k', 2, 'v', 14, 1, 0, 'n', 0xff, 0xff, 0xff, 0xff, 1, 0, 'e', 0, 0, 0, 0,
  };
  const unsigned char *r = b.buf.data + Q7__BATCH_HDR;
  for (size_t i = 0; i < sizeof want; i++)
    cr_assert_eq(r[i], want[i], "record byte %zu: %#x, want %#x", i, r[i], want[i]);
  /* 200 bytes of value: size 205 and value_len+1 201, two bytes each. */
  r += sizeof want;
  static const unsigned char big_hdr[] = { 0xcd, 0x01, 0, 0, 0xc9, 0x01 };
  cr_assert_eq(memcmp(r, big_hdr, sizeof big_hdr), 0);
  cr_assert_eq(memcmp(r + 6, big, sizeof big), 0);
  cr_assert_eq(r[6 + sizeof big], 0, "headers_len");
  r += 6 + sizeof big + 1;
  /* A key of 127 bytes: key_len+1 = 128 takes two bytes. */
  static const unsigned char k127_hdr[] = { 0x84, 0x01, 0, 0x80, 0x01 };
  cr_assert_eq(memcmp(r, k127_hdr, sizeof k127_hdr), 0);
  cr_assert_eq(memcmp(r + 5, key127, sizeof key127), 0);
  cr_assert_eq(r[5 + sizeof key127], 0, "null value");
  cr_assert_eq(r[6 + sizeof key127], 0, "headers_len");
  cr_assert_eq(r + 7 + sizeof key127, b.buf.data + b.buf.len, "records end the batch");

  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  cr_assert_eq(v.format, 2);
  q7_record out[8];
  cr_assert_eq(q7__batch_decode(&v, 0, 0, out, 8, "t", 0), 8);
  for (size_t i = 0; i < 8; i++) {
    cr_assert_eq(out[i].timestamp_ms, ts[i], "record %zu", i);
    cr_assert_eq(out[i].key == NULL, ms[i].key == NULL, "record %zu key", i);
    cr_assert_eq(out[i].key_len, ms[i].key_len, "record %zu", i);
    cr_assert_eq(out[i].value == NULL, ms[i].value == NULL, "record %zu value", i);
    cr_assert_eq(out[i].value_len, ms[i].value_len, "record %zu", i);
    cr_assert_eq(out[i].headers == NULL, i != 5, "record %zu headers", i);
  }
  cr_assert_eq(memcmp(out[6].value, big, sizeof big), 0);
  cr_assert_eq(memcmp(out[7].key, key127, sizeof key127), 0);
  const void *hv = "";
  size_t hl = 9;
  Q7_OK_OR_FAIL(q7_record_header(&out[5], "n", &hv, &hl));
  cr_assert_null(hv);
  cr_assert_eq(hl, 0);
  Q7_OK_OR_FAIL(q7_record_header(&out[5], "e", &hv, &hl));
  cr_assert_not_null(hv);
  cr_assert_eq(hl, 0);
}

Test(record, round_trip_of_three_records)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    for (uint32_t skip = 0; skip <= 3; skip++)
      check_three(d, len, skip, formats[f].name);
    q7__bview v;
    Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 40, true, "test"));
    cr_assert_eq(v.format, f == 0 ? 2 : 1);
    free(d);
  }
}

/* A batch of libq7 0.1.0, built by hand: values, NULLs, headers, extreme
 * timestamps and skips decode as they did. */
Test(record, format1_batch_decodes)
{
  static const unsigned char hnull[] = { 1, 0, 'n', 0xff, 0xff, 0xff, 0xff };
  bytes r = { .n = 0 };
  f1_rec(&r, 100, "k0", 2, "value0", 6, NULL, 0);
  f1_rec(&r, 300, NULL, 0, NULL, 0, NULL, 0);
  f1_rec(&r, 200, "key-two", 7, "v2", 2, trace_abc, sizeof trace_abc);
  f1_rec(&r, 0, "", 0, "", 0, NULL, 0);
  f1_rec(&r, INT64_MAX, NULL, 0, "", 0, NULL, 0);
  f1_rec(&r, 7, "", 0, NULL, 0, hnull, sizeof hnull);
  size_t len;
  unsigned char *d = mkbatch(1, 6, 100, INT64_MAX, &r, &len);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 1000, true, "test"));
  cr_assert_eq(v.format, 1);
  cr_assert_eq(v.count, 6);
  cr_assert_eq(v.first_ts, 100);
  cr_assert_eq(v.max_ts, INT64_MAX);
  q7_record out[8];
  memset(out, 0xa5, sizeof out);
  cr_assert_eq(q7__batch_decode(&v, 1000, 0, out, 8, "tp", 7), 6);
  for (uint32_t i = 0; i < 3; i++)
    check_rec(&out[i], i, 1000, d, len, "format 1, six records");
  for (int i = 0; i < 6; i++)
    cr_assert_eq(out[i].offset, 1000 + i);
  cr_assert_eq(out[3].timestamp_ms, 0);
  cr_assert_not_null(out[3].key, "empty key read as no key");
  cr_assert_eq(out[3].key_len, 0);
  cr_assert_not_null(out[3].value, "empty value read as null");
  cr_assert_eq(out[3].value_len, 0);
  cr_assert_null(out[3].headers);
  cr_assert_eq(out[4].timestamp_ms, INT64_MAX);
  cr_assert_null(out[4].key);
  cr_assert_not_null(out[4].value);
  cr_assert_eq(out[5].timestamp_ms, 7);
  cr_assert_not_null(out[5].key);
  cr_assert_null(out[5].value);
  cr_assert_eq(out[5].headers_len, sizeof hnull);
  const void *hv = "";
  size_t hl = 9;
  Q7_OK_OR_FAIL(q7_record_header(&out[5], "n", &hv, &hl));
  cr_assert_null(hv);
  cr_assert_eq(hl, 0);
  /* Skips, and a max smaller than what is left. */
  cr_assert_eq(q7__batch_decode(&v, 1000, 2, out, 2, "t", 1), 2);
  cr_assert_eq(out[0].offset, 1002);
  cr_assert_eq(memcmp(out[0].key, "key-two", 7), 0);
  cr_assert_eq(out[1].offset, 1003);
  cr_assert_eq(out[1].timestamp_ms, 0);
  cr_assert_eq(q7__batch_decode(&v, 1000, 5, out, 8, "t", 1), 1);
  cr_assert_eq(out[0].offset, 1005);
  cr_assert_eq(out[0].timestamp_ms, 7);
  cr_assert_eq(q7__batch_decode(&v, 1000, 6, out, 8, "t", 1), 0);
  cr_assert_eq(q7__batch_decode(&v, 1000, 0, out, 0, "t", 1), 0);
  free(d);
}

Test(record, empty_key_and_value_differ_from_null)
{
  q7_msg e = msg("", 0, "", 0);
  q7_msg n = msg(NULL, 0, NULL, 0);
  q7_msg ke = msg("", 0, NULL, 0);
  q7_msg ve = msg(NULL, 0, "", 0);
  cr_assert_eq(q7__batch_add(&b, &e, 1), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &n, 2), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &ke, 3), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &ve, 4), Q7_OK);
  q7__batch_seal(&b);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  q7_record r[4];
  cr_assert_eq(q7__batch_decode(&v, 0, 0, r, 4, "t", 0), 4);
  cr_assert_not_null(r[0].key, "empty key decoded as no key");
  cr_assert_eq(r[0].key_len, 0);
  cr_assert_not_null(r[0].value, "empty value decoded as null value");
  cr_assert_eq(r[0].value_len, 0);
  cr_assert_null(r[1].key);
  cr_assert_null(r[1].value);
  cr_assert_not_null(r[2].key);
  cr_assert_null(r[2].value);
  cr_assert_null(r[3].key);
  cr_assert_not_null(r[3].value);
}

Test(record, headers_round_trip_in_order_with_null_and_empty_values)
{
  q7_header h[] = {
    { "a", "1", 1 },
    { "empty", "", 0 },
    { "null", NULL, 0 },
    { "a", "second", 6 },
    { "bin", "\0\xff\0", 3 },
  };
  q7_msg m = msg("k", 1, "v", 1);
  m.headers = h;
  m.header_count = 5;
  cr_assert_eq(q7__batch_add(&b, &m, 5), Q7_OK);
  q7__batch_seal(&b);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  q7_record r;
  cr_assert_eq(q7__batch_decode(&v, 0, 0, &r, 1, "t", 0), 1);

  size_t it = 0, nl, vl;
  const char *name;
  const void *val;
  for (size_t i = 0; i < 5; i++) {
    Q7_OK_OR_FAIL(q7_record_header_next(&r, &it, &name, &nl, &val, &vl));
    cr_assert_eq(nl, strlen(h[i].name), "header %zu", i);
    cr_assert_eq(memcmp(name, h[i].name, nl), 0, "header %zu", i);
    cr_assert_eq(vl, h[i].value_len, "header %zu", i);
    if (h[i].value)
      cr_assert_not_null(val, "header %zu: empty value came back NULL", i);
    else
      cr_assert_null(val, "header %zu: null value came back non-NULL", i);
    if (vl)
      cr_assert_eq(memcmp(val, h[i].value, vl), 0, "header %zu", i);
  }
  cr_assert_eq(q7_record_header_next(&r, &it, &name, &nl, &val, &vl), Q7_ENOENT);
  cr_assert_eq(it, r.headers_len);
  /* And again at the end. */
  cr_assert_eq(q7_record_header_next(&r, &it, &name, &nl, &val, &vl), Q7_ENOENT);

  /* Lookup by name finds the first of duplicates. */
  Q7_OK_OR_FAIL(q7_record_header(&r, "a", &val, &vl));
  cr_assert_eq(vl, 1);
  cr_assert_eq(memcmp(val, "1", 1), 0);
  Q7_OK_OR_FAIL(q7_record_header(&r, "null", &val, &vl));
  cr_assert_null(val);
  cr_assert_eq(vl, 0);
  Q7_OK_OR_FAIL(q7_record_header(&r, "bin", &val, &vl));
  cr_assert_eq(vl, 3);
  cr_assert_eq(memcmp(val, "\0\xff\0", 3), 0);
}

Test(record, timestamps_first_and_max)
{
  int64_t ts[] = { 5000, 100, INT64_C(1700000000000), 0, 42 };
  q7_msg m = msg(NULL, 0, "x", 1);
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(q7__batch_add(&b, &m, ts[i]), Q7_OK);
  cr_assert_eq(b.first_ts, 5000);
  cr_assert_eq(b.max_ts, INT64_C(1700000000000));
  q7__batch_seal(&b);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  cr_assert_eq(v.first_ts, 5000);
  cr_assert_eq(v.max_ts, INT64_C(1700000000000));
  q7_record r[5];
  cr_assert_eq(q7__batch_decode(&v, 0, 0, r, 5, "t", 0), 5);
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(r[i].timestamp_ms, ts[i], "record %zu", i);
}

/* Extreme timestamps, and deltas from first_ts whose zigzag takes all ten
 * bytes of a varint: each record's size is what the varint needs, and each
 * timestamp comes back.  The codec takes any i64 (q7__record_check keeps
 * producers to >= 0): the delta wraps, never overflows. */
Test(record, extreme_timestamps_round_trip)
{
  static const int64_t runs[][5] = {
    { 0, INT64_MAX, 0, INT64_MAX, 1 },              /* +INT64_MAX: zigzag 2^64 - 2 */
    { INT64_MAX, 0, 1, INT64_MAX - 1, INT64_MAX },  /* -INT64_MAX: zigzag 2^64 - 3 */
    { INT64_C(1700000000000), 5, INT64_C(1700000000001), 0, INT64_C(1699999999999) },
    { INT64_C(1) << 62, 0, (INT64_C(1) << 62) - 1, INT64_C(1) << 61, INT64_MAX },
    { INT64_MAX, INT64_MIN, -1, 0, INT64_MIN + 1 }, /* outside what producers send */
  };
  q7_msg m = msg(NULL, 0, "x", 1);
  for (size_t run = 0; run < sizeof runs / sizeof runs[0]; run++) {
    q7__batch_reset(&b);
    int64_t max = runs[run][0];
    for (size_t i = 0; i < 5; i++) {
      int64_t t = runs[run][i];
      /* The delta as the format defines it: modulo 2^64. */
      int64_t delta = (int64_t)((uint64_t)t - (uint64_t)runs[run][0]);
      size_t before = b.buf.len;
      cr_assert_eq(q7__batch_add(&b, &m, t), Q7_OK);
      /* size, zigzag delta, key_len+1, value_len+1, "x", headers_len */
      cr_assert_eq(b.buf.len - before, 1 + var_len(zz(delta)) + 4, "run %zu record %zu", run, i);
      cr_assert_eq(b.buf.data[before + 1 + var_len(zz(delta))], 0, "run %zu record %zu", run, i);
      if (t > max)
        max = t;
    }
    q7__batch_seal(&b);
    q7__bview v;
    Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
    cr_assert_eq(v.first_ts, runs[run][0], "run %zu", run);
    cr_assert_eq(v.max_ts, max, "run %zu", run);
    q7_record r[5];
    cr_assert_eq(q7__batch_decode(&v, 0, 0, r, 5, "t", 0), 5);
    for (size_t i = 0; i < 5; i++)
      cr_assert_eq(r[i].timestamp_ms, runs[run][i], "run %zu record %zu: %" PRId64, run, i,
                   r[i].timestamp_ms);
  }
  /* The ten-byte cases above are ten bytes indeed. */
  cr_assert_eq(var_len(zz(INT64_MAX)), 10);
  cr_assert_eq(var_len(zz(-INT64_MAX)), 10);
  /* The first record's ten bytes, written out: 0 then INT64_MAX. */
  q7__batch_reset(&b);
  cr_assert_eq(q7__batch_add(&b, &m, 0), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &m, INT64_MAX), Q7_OK);
  static const unsigned char want[] = { 14, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0x01, 0, 2, 'x', 0 };
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR + 6 + sizeof want);
  cr_assert_eq(memcmp(b.buf.data + Q7__BATCH_HDR + 6, want, sizeof want), 0);
}

Test(record, one_record)
{
  q7_msg m = msg("only", 4, "one", 3);
  cr_assert_eq(q7__batch_add(&b, &m, 9), Q7_OK);
  q7__batch_seal(&b);
  /* size, delta, key_len+1, "only", value_len+1, "one", headers_len */
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR + 1 + 1 + 1 + 4 + 1 + 3 + 1);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 123456789012LL, true, "test"));
  cr_assert_eq(v.count, 1);
  q7_record r[2];
  cr_assert_eq(q7__batch_decode(&v, 123456789012LL, 0, r, 2, "t", 3), 1);
  cr_assert_eq(r[0].offset, 123456789012LL);
  cr_assert_eq(r[0].timestamp_ms, 9);
  cr_assert_eq(memcmp(r[0].value, "one", 3), 0);
}

Test(record, thousand_records_round_trip_and_skip)
{
  char k[32], val[64];
  for (int i = 0; i < 1000; i++) {
    int kl = snprintf(k, sizeof k, "key-%d", i);
    int vl = snprintf(val, sizeof val, "value-%d-%s", i, i % 2 ? "odd" : "even");
    q7_msg m = msg(k, (size_t)kl, val, (size_t)vl);
    cr_assert_eq(q7__batch_add(&b, &m, 1000 + i), Q7_OK);
  }
  q7__batch_seal(&b);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 5000, true, "test"));
  cr_assert_eq(v.count, 1000);
  cr_assert_eq(v.max_ts, 1999);
  q7_record *r = calloc(1000, sizeof *r);
  cr_assert_eq(q7__batch_decode(&v, 5000, 0, r, 1000, "t", 0), 1000);
  for (int i = 0; i < 1000; i++) {
    int kl = snprintf(k, sizeof k, "key-%d", i);
    int vl = snprintf(val, sizeof val, "value-%d-%s", i, i % 2 ? "odd" : "even");
    cr_assert_eq(r[i].offset, 5000 + i);
    cr_assert_eq(r[i].timestamp_ms, 1000 + i);
    cr_assert_eq(r[i].key_len, (size_t)kl);
    cr_assert_eq(memcmp(r[i].key, k, (size_t)kl), 0, "record %d key", i);
    cr_assert_eq(r[i].value_len, (size_t)vl);
    cr_assert_eq(memcmp(r[i].value, val, (size_t)vl), 0, "record %d value", i);
  }

  /* Skip inside the batch, and a max smaller than what is left. */
  memset(r, 0, 1000 * sizeof *r);
  cr_assert_eq(q7__batch_decode(&v, 5000, 500, r, 10, "t", 0), 10);
  for (int i = 0; i < 10; i++) {
    int kl = snprintf(k, sizeof k, "key-%d", 500 + i);
    cr_assert_eq(r[i].offset, 5500 + i);
    cr_assert_eq(r[i].timestamp_ms, 1500 + i);
    cr_assert_eq(memcmp(r[i].key, k, (size_t)kl), 0);
  }
  /* Skip to the last record; more room than records left. */
  cr_assert_eq(q7__batch_decode(&v, 5000, 999, r, 1000, "t", 0), 1);
  cr_assert_eq(r[0].offset, 5999);
  /* Skip everything. */
  cr_assert_eq(q7__batch_decode(&v, 5000, 1000, r, 1000, "t", 0), 0);
  /* max 0. */
  cr_assert_eq(q7__batch_decode(&v, 5000, 0, r, 0, "t", 0), 0);
  free(r);
}

Test(record, reset_starts_an_empty_batch)
{
  q7_msg m = msg("k", 1, "v", 1);
  cr_assert_eq(q7__batch_add(&b, &m, 1), Q7_OK);
  q7__batch_reset(&b);
  cr_assert_eq(b.count, 0);
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR);
  cr_assert_eq(q7__batch_add(&b, &m, 77), Q7_OK);
  q7__batch_seal(&b);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  cr_assert_eq(v.count, 1);
  cr_assert_eq(v.first_ts, 77);
  cr_assert_eq(v.max_ts, 77);
  q7_record r;
  cr_assert_eq(q7__batch_decode(&v, 0, 0, &r, 1, "t", 0), 1);
  cr_assert_eq(r.timestamp_ms, 77, "delta from the new batch's first_ts");
}

/* Varied records, with and without headers, timestamps up and down. */
static q7_msg
varied(int i, q7_header *h)
{
  static char val[300];
  static const char *keys[] = { NULL, "", "key" };
  for (size_t j = 0; j < sizeof val; j++)
    val[j] = (char)('a' + j % 26);
  size_t vl = (size_t)(i * 37) % sizeof val;
  q7_msg m = msg(keys[i % 3], keys[i % 3] ? strlen(keys[i % 3]) : 0, i % 5 == 4 ? NULL : val,
                 i % 5 == 4 ? 0 : vl);
  if (i % 4 == 0) {
    m.headers = h;
    m.header_count = 2;
  }
  return m;
}

/* q7__batch_put encodes inline while the buffer has room, and falls back to
 * q7__batch_add_sized (which grows it) when not: the bytes are the same
 * either way, and the same as q7__batch_add's. */
Test(record, put_inline_equals_add_sized_when_the_buffer_grows)
{
  q7_header h[] = { { "h", "hv", 2 }, { "n", NULL, 0 } };
  enum { N = 60 };
  q7__batch b2, b3;
  cr_assert_eq(q7__batch_init(&b2), Q7_OK);
  cr_assert_eq(q7__batch_init(&b3), Q7_OK);
  size_t total = 0, hlen;
  for (int i = 0; i < N; i++) {
    q7_msg m = varied(i, h);
    total += q7__record_size(&m, &hlen);
  }
  /* b: room for every record's upper bound, reserved up front. */
  cr_assert_eq(q7__buf_reserve(&b.buf, total), Q7_OK);
  size_t cap = b.buf.cap, cap2 = b2.buf.cap;
  const unsigned char *data = b.buf.data;
  for (int i = 0; i < N; i++) {
    q7_msg m = varied(i, h);
    int64_t ts = 5000 + (i % 7) * 1000 - i * 13;
    size_t n = q7__record_size(&m, &hlen);
    cr_assert_gt(n, 0);
    size_t before = b.buf.len;
    cr_assert_eq(q7__batch_put(&b, &m, ts, n, hlen), Q7_OK);
    cr_assert_leq(b.buf.len - before, n, "record %d: more bytes than the bound", i);
    cr_assert_eq(q7__batch_add_sized(&b2, &m, ts, n, hlen), Q7_OK);
    cr_assert_eq(q7__batch_add(&b3, &m, ts), Q7_OK);
  }
  cr_assert_eq(b.buf.cap, cap, "the inline path grew the buffer");
  cr_assert_eq(b.buf.data, data, "the inline path moved the buffer");
  cr_assert_gt(b2.buf.cap, cap2, "b2 never grew: the test does not cover growth");
  q7__batch_seal(&b);
  q7__batch_seal(&b2);
  q7__batch_seal(&b3);
  cr_assert_eq(b.count, N);
  cr_assert_eq(b2.count, N);
  cr_assert_eq(b.first_ts, b2.first_ts);
  cr_assert_eq(b.max_ts, b2.max_ts);
  cr_assert_eq(b.buf.len, b2.buf.len);
  cr_assert_eq(memcmp(b.buf.data, b2.buf.data, b.buf.len), 0);
  cr_assert_eq(b.buf.len, b3.buf.len);
  cr_assert_eq(memcmp(b.buf.data, b3.buf.data, b.buf.len), 0);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  q7_record r[N];
  cr_assert_eq(q7__batch_decode(&v, 0, 0, r, N, "t", 0), N);
  for (int i = 0; i < N; i++) {
    q7_msg m = varied(i, h);
    cr_assert_eq(r[i].timestamp_ms, 5000 + (i % 7) * 1000 - i * 13, "record %d", i);
    cr_assert_eq(r[i].key == NULL, m.key == NULL, "record %d", i);
    cr_assert_eq(r[i].value == NULL, m.value == NULL, "record %d", i);
    cr_assert_eq(r[i].value_len, m.value_len, "record %d", i);
    if (m.value_len)
      cr_assert_eq(memcmp(r[i].value, m.value, m.value_len), 0, "record %d", i);
    cr_assert_eq(r[i].headers_len, m.header_count ? 2u * (2 + 1 + 4) + 2 : 0, "record %d", i);
  }
  q7__batch_free(&b2);
  q7__batch_free(&b3);
}

/* q7__batch_put: a record whose bound is exactly the room left goes
 * inline; one more byte of bound and the buffer grows. */
Test(record, put_at_the_edge_of_the_room)
{
  static char val[4096];
  memset(val, 'v', sizeof val);
  size_t room = b.buf.cap - b.buf.len, hlen;
  cr_assert_gt(room, Q7__REC2_MAX_HDR);
  cr_assert_lt(room - Q7__REC2_MAX_HDR, sizeof val);
  q7_msg m = msg(NULL, 0, val, room - Q7__REC2_MAX_HDR);
  size_t n = q7__record_size(&m, &hlen);
  cr_assert_eq(n, room);
  size_t cap = b.buf.cap;
  cr_assert_eq(q7__batch_put(&b, &m, 1, n, hlen), Q7_OK);
  cr_assert_eq(b.buf.cap, cap, "a record fitting exactly grew the buffer");
  /* What is left is smaller than the smallest bound. */
  cr_assert_lt(b.buf.cap - b.buf.len, Q7__REC2_MAX_HDR);
  q7_msg e = msg(NULL, 0, NULL, 0);
  n = q7__record_size(&e, &hlen);
  cr_assert_eq(n, Q7__REC2_MAX_HDR);
  cr_assert_eq(q7__batch_put(&b, &e, 2, n, hlen), Q7_OK);
  cr_assert_gt(b.buf.cap, cap, "the fallback did not grow the buffer");
  q7__batch_seal(&b);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 0, true, "test"));
  q7_record r[2];
  cr_assert_eq(q7__batch_decode(&v, 0, 0, r, 2, "t", 0), 2);
  cr_assert_eq(r[0].value_len, room - Q7__REC2_MAX_HDR);
  cr_assert_null(r[1].value);
  cr_assert_eq(r[1].timestamp_ms, 2);
}

Test(record, be64_is_big_endian)
{
  unsigned char k[8];
  q7__be64_put(k, 0x0102030405060708ULL);
  const unsigned char want[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
  cr_assert_eq(memcmp(k, want, 8), 0);
  cr_assert_eq(q7__be64_get(k), 0x0102030405060708ULL);
  /* Byte order sorts like the number: LMDB's key order is offset order. */
  unsigned char a[8], c[8];
  q7__be64_put(a, 255);
  q7__be64_put(c, 256);
  cr_assert_lt(memcmp(a, c, 8), 0);
}

/* ---------------------------------------------------- record iterator */

/* q7__riter_next (retention, q7_offset_for_time) walks @d's records:
 * each one's timestamp and byte position in the value, then the end. */
static void
riter_walks(const unsigned char *d, size_t len, const int64_t *ts, const size_t *pos, uint32_t n,
            const char *what)
{
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 0, true, "test"));
  q7__riter it = { &v, Q7__BATCH_HDR, 0 };
  int64_t t;
  size_t p;
  for (uint32_t i = 0; i < n; i++) {
    int r = q7__riter_next(&it, &t, &p);
    cr_assert_eq(r, 1, "%s: record %u -> %d", what, i, r);
    cr_assert_eq(t, ts[i], "%s: record %u timestamp %" PRId64 ", want %" PRId64, what, i, t,
                 ts[i]);
    cr_assert_eq(p, pos[i], "%s: record %u at %zu, want %zu", what, i, p, pos[i]);
  }
  cr_assert_eq(q7__riter_next(&it, &t, &p), 0, "%s: no end after %u records", what, n);
}

Test(record, riter_gives_timestamps_and_positions_format1)
{
  size_t len;
  unsigned char *d = three_records_v1(&len);
  static const int64_t ts[] = { 100, 300, 200 };
  size_t pos[] = { Q7__BATCH_HDR, Q7__BATCH_HDR + Q7__REC_HDR + 8,
                   Q7__BATCH_HDR + 2 * Q7__REC_HDR + 8 };
  riter_walks(d, len, ts, pos, 3, "format 1");
  free(d);
}

Test(record, riter_gives_timestamps_and_positions_format2)
{
  size_t len;
  unsigned char *d = three_records(&len);
  static const int64_t ts[] = { 100, 300, 200 };
  static const size_t pos[] = { Q7__BATCH_HDR, Q7__BATCH_HDR + 13, Q7__BATCH_HDR + 13 + 6 };
  riter_walks(d, len, ts, pos, 3, "format 2");
  free(d);
  /* Deltas below first_ts and of ten bytes. */
  q7__batch_reset(&b);
  q7_msg m = msg("k", 1, "v", 1);
  static const int64_t ts2[] = { INT64_C(1) << 40, 0, INT64_MAX, 5 };
  size_t pos2[4];
  for (int i = 0; i < 4; i++) {
    pos2[i] = b.buf.len;
    cr_assert_eq(q7__batch_add(&b, &m, ts2[i]), Q7_OK);
  }
  q7__batch_seal(&b);
  riter_walks(b.buf.data, b.buf.len, ts2, pos2, 4, "format 2, far timestamps");
}

Test(record, riter_stops_at_a_record_past_the_end)
{
  for (int f = 1; f <= 2; f++) {
    bytes r = { .n = 0 };
    if (f == 1) {
      f1_rec(&r, 5, "k", 1, "v", 1, NULL, 0);
      put_u32(&r, Q7__REC_HDR - 4 + 1); /* one byte more than follow */
      put_u64(&r, 6);
      put_u32(&r, Q7__NULL_LEN);
      put_u32(&r, Q7__NULL_LEN);
      put_u32(&r, 0);
    } else {
      f2_rec(&r, 0, "k", 1, "v", 1, NULL, 0);
      static const unsigned char bad[] = { 5, 2, 0, 0, 0 }; /* size 5, 4 follow */
      put_raw(&r, bad, sizeof bad);
    }
    size_t len;
    unsigned char *d = mkbatch((unsigned)f, 2, 5, 6, &r, &len);
    q7__bview v;
    Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 0, true, "test"));
    q7__riter it = { &v, Q7__BATCH_HDR, 0 };
    int64_t t;
    size_t p;
    cr_assert_eq(q7__riter_next(&it, &t, &p), 1, "format %d", f);
    cr_assert_eq(t, 5, "format %d", f);
    cr_assert_eq(q7__riter_next(&it, &t, &p), Q7_ECORRUPT, "format %d", f);
    free(d);
    /* And a count larger than the records there are. */
    r.n = 0;
    if (f == 1)
      f1_rec(&r, 5, "k", 1, "v", 1, NULL, 0);
    else
      f2_rec(&r, 0, "k", 1, "v", 1, NULL, 0);
    d = mkbatch((unsigned)f, 2, 5, 5, &r, &len);
    Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 0, true, "test"));
    q7__riter it2 = { &v, Q7__BATCH_HDR, 0 };
    cr_assert_eq(q7__riter_next(&it2, &t, &p), 1, "format %d", f);
    cr_assert_eq(q7__riter_next(&it2, &t, &p), Q7_ECORRUPT, "format %d: count 2, one record", f);
    free(d);
  }
}

/* ---------------------------------------------------------- checks */

Test(record, check_rejects_inconsistent_messages)
{
  q7_header noname[] = { { "", "v", 1 } };
  q7_header nullname[] = { { NULL, "v", 1 } };
  q7_header nullval[] = { { "h", NULL, 3 } };
  q7_msg m = msg(NULL, 3, "v", 1);
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  m = msg("k", 1, NULL, 2);
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  m = msg("k", 1, "v", 1);
  m.header_count = 1;
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  m.headers = noname;
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  m.headers = nullname;
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  m.headers = nullval;
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  cr_assert(strstr(q7_last_error(), "\"h\""), "%s", q7_last_error());
  m = msg("k", 1, "v", 1);
  m.timestamp_ms = -1;
  Q7_FAILS_WITH(Q7_EINVAL, q7__record_check(&m));
  m.timestamp_ms = 0;
  Q7_OK_OR_FAIL(q7__record_check(&m));
}

Test(record, size_and_payload)
{
  q7_header h[] = { { "ab", "xyz", 3 } };
  q7_msg m = msg("kk", 2, "vvvv", 4);
  m.headers = h;
  m.header_count = 1;
  size_t hl = 0;
  /* An upper bound: every varint at its longest. */
  cr_assert_eq(q7__record_size(&m, &hl), Q7__REC2_MAX_HDR + 2 + 4 + (2 + 2 + 4 + 3));
  cr_assert_eq(hl, 2 + 2 + 4 + 3);
  cr_assert_eq(q7__record_payload(&m), 2 + 4 + 2 + 3);
  size_t fl;
  cr_assert_eq(q7__record_size_fast(&m, &fl), q7__record_size(&m, &hl));
  cr_assert_eq(fl, hl);
  m.headers = NULL;
  m.header_count = 0;
  cr_assert_eq(q7__record_size_fast(&m, &fl), Q7__REC2_MAX_HDR + 2 + 4);
  cr_assert_eq(fl, 0);
  cr_assert_eq(q7__record_size(&m, &hl), Q7__REC2_MAX_HDR + 2 + 4);
}

/* What q7__record_put writes stays within q7__record_size, varints at their
 * longest included (a ten-byte delta, lengths of three bytes). */
Test(record, record_put_stays_within_the_bound)
{
  static char big[70000];
  memset(big, 'b', sizeof big);
  q7_header h[] = { { "name", big, 20000 }, { "n", NULL, 0 } };
  static const size_t lens[] = { 0, 1, 126, 127, 128, 16382, 16383, 16384, 69999 };
  static const int64_t deltas[][2] = { { 0, 0 }, { 0, INT64_MAX }, { INT64_MAX, 0 },
                                       { 100, 99 }, { 0, 64 } };
  unsigned char *out = malloc(3 * sizeof big);
  for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
    for (size_t d = 0; d < 5; d++)
      for (int hc = 0; hc <= 2; hc += 2) {
        q7_msg m = msg(big, lens[k], big, lens[(k + d) % 9]);
        m.headers = hc ? h : NULL;
        m.header_count = (size_t)hc;
        size_t hlen, n = q7__record_size(&m, &hlen);
        cr_assert_gt(n, 0);
        size_t w = q7__record_put(out, &m, deltas[d][1], deltas[d][0], hlen);
        cr_assert_leq(w, n, "key %zu delta %zu headers %d: %zu bytes, bound %zu", lens[k], d, hc,
                      w, n);
        /* The exact size: the bound less what the varints did not need. */
        uint64_t body = var_len(zz((int64_t)((uint64_t)deltas[d][1] - (uint64_t)deltas[d][0]))) +
                        var_len(m.key_len + 1) + m.key_len + var_len(m.value_len + 1) +
                        m.value_len + var_len(hlen) + hlen;
        cr_assert_eq(w, var_len(body) + body);
      }
  free(out);
}

Test(record, size_over_4gib_is_zero_and_add_is_etoobig)
{
  static const char k = 'k';
  q7_msg m = msg(&k, (size_t)Q7__NULL_LEN, NULL, 0); /* never dereferenced */
  cr_assert_eq(q7__record_size(&m, NULL), 0);
  size_t hl;
  cr_assert_eq(q7__record_size_fast(&m, &hl), 0);
  m = msg(&k, (size_t)Q7__NULL_LEN - Q7__REC2_MAX_HDR, NULL, 0);
  cr_assert_eq(q7__record_size(&m, NULL), 0, "total over u32 must not wrap");
  cr_assert_eq(q7__record_size_fast(&m, &hl), 0);
  Q7_FAILS_WITH(Q7_ETOOBIG, q7__batch_add(&b, &m, 1));
  cr_assert_eq(b.count, 0);
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR);
  /* One byte less fits. */
  m = msg(&k, (size_t)Q7__NULL_LEN - Q7__REC2_MAX_HDR - 1, NULL, 0);
  cr_assert_eq(q7__record_size(&m, NULL), (size_t)Q7__NULL_LEN - 1);
  cr_assert_eq(q7__record_size_fast(&m, &hl), (size_t)Q7__NULL_LEN - 1);
  m = msg(NULL, 0, &k, (size_t)Q7__NULL_LEN - Q7__REC2_MAX_HDR);
  cr_assert_eq(q7__record_size(&m, NULL), 0);
}

/* ------------------------------------------------------- corruption */

Test(record, every_flipped_byte_is_ecorrupt_naming_the_offset)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    for (size_t i = 0; i < len; i++) {
      for (int bit = 0; bit < 8; bit++) {
        q7__bview v;
        d[i] ^= (unsigned char)(1u << bit);
        int rc = q7__batch_open(&v, d, len, 987654, true, "topic t partition 0");
        d[i] ^= (unsigned char)(1u << bit);
        cr_assert_eq(rc, Q7_ECORRUPT, "%s: byte %zu bit %d flipped -> %d", formats[f].name, i,
                     bit, rc);
        cr_assert(strstr(q7_last_error(), "987654"), "byte %zu: \"%s\" names no offset", i,
                  q7_last_error());
        cr_assert(strstr(q7_last_error(), "topic t partition 0"), "%s", q7_last_error());
      }
      /* A whole byte replaced, too. */
      unsigned char old = d[i];
      d[i] = (unsigned char)~old;
      q7__bview v;
      cr_assert_eq(q7__batch_open(&v, d, len, 987654, true, "t"), Q7_ECORRUPT, "%s: byte %zu",
                   formats[f].name, i);
      d[i] = old;
    }
    q7__bview v;
    Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 987654, true, "t"));
    free(d);
  }
}

/* Past the CRC (resealed): any value of any byte of the records decodes
 * or is Q7_ECORRUPT, with every pointer inside the batch, from any skip. */
Test(record, any_byte_value_past_the_crc_decodes_or_is_ecorrupt)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    int corrupt = 0;
    for (size_t i = Q7__BATCH_HDR; i < len; i++) {
      unsigned char old = d[i];
      for (unsigned x = 0; x < 256; x++) {
        d[i] = (unsigned char)x;
        reseal(d, len);
        q7__bview v;
        Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 9, true, "t"));
        for (uint32_t skip = 0; skip <= 3; skip++) {
          q7_record r[4];
          int n = q7__batch_decode(&v, 9, skip, r, 4, "t", 0);
          cr_assert(n == Q7_ECORRUPT || n == 3 - (int)skip, "%s: byte %zu = %#x skip %u -> %d",
                    formats[f].name, i, x, skip, n);
          corrupt += n == Q7_ECORRUPT;
          for (int j = 0; j < n; j++) {
            const unsigned char *lo = d + Q7__BATCH_HDR, *hi = d + len;
            const unsigned char *k = r[j].key, *val = r[j].value, *h = r[j].headers;
            cr_assert(!k || (k >= lo && r[j].key_len <= (size_t)(hi - k)), "byte %zu", i);
            cr_assert(!val || (val >= lo && r[j].value_len <= (size_t)(hi - val)), "byte %zu", i);
            cr_assert(!h || (h >= lo && r[j].headers_len <= (size_t)(hi - h)), "byte %zu", i);
            cr_assert(k || !r[j].key_len);
            cr_assert(val || !r[j].value_len);
            cr_assert(h || !r[j].headers_len);
          }
        }
      }
      d[i] = old;
    }
    cr_assert_gt(corrupt, 1000, "%s: the decoder caught almost nothing", formats[f].name);
    free(d);
  }
}

Test(record, truncated_batch_is_ecorrupt)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    q7__bview v;
    for (size_t n = 0; n < len; n++) {
      int rc = q7__batch_open(&v, d, n, 12, true, "t");
      cr_assert_eq(rc, Q7_ECORRUPT, "%s: batch cut to %zu of %zu bytes -> %d", formats[f].name, n,
                   len, rc);
      cr_assert(strstr(q7_last_error(), "12"), "%s", q7_last_error());
      /* Without the CRC check, the length field still catches it. */
      rc = q7__batch_open(&v, d, n, 12, false, "t");
      cr_assert_eq(rc, Q7_ECORRUPT, "unverified batch cut to %zu of %zu bytes -> %d", n, len, rc);
    }
    free(d);
  }
}

/* Records cut anywhere, with the header's length (and CRC) made to match:
 * decoding them is Q7_ECORRUPT, never a read past the end. */
Test(record, truncated_records_are_ecorrupt_at_decode)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    for (size_t n = Q7__BATCH_HDR; n < len; n++) {
      unsigned char *c = malloc(n);
      memcpy(c, d, n);
      wr32(c + 12, (uint32_t)(n - Q7__BATCH_HDR));
      reseal(c, n);
      q7_record r[4];
      int rc = decode_at(c, n, 0, r, 4);
      cr_assert_eq(rc, Q7_ECORRUPT, "%s: records cut to %zu bytes -> %d", formats[f].name,
                   n - Q7__BATCH_HDR, rc);
      free(c);
    }
    free(d);
  }
}

Test(record, zero_count_is_ecorrupt)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    wr32(d + 8, 0);
    reseal(d, len);
    q7__bview v;
    Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_open(&v, d, len, 3, true, "t"));
    cr_assert(strstr(q7_last_error(), "offset 3"), "%s", q7_last_error());
    free(d);
  }
}

Test(record, length_field_not_matching_is_ecorrupt)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    uint32_t l = rd32(d + 12);
    uint32_t bad[] = { l - 1, l + 1, 0, 0xffffffffu };
    for (size_t i = 0; i < 4; i++) {
      wr32(d + 12, bad[i]);
      reseal(d, len);
      q7__bview v;
      Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_open(&v, d, len, 0, true, "t"));
    }
    free(d);
  }
}

Test(record, count_larger_than_records_is_ecorrupt_at_decode)
{
  for (size_t f = 0; f < 2; f++) {
    size_t len;
    unsigned char *d = formats[f].make(&len);
    uint32_t counts[] = { 4, 1000, 0xffffffffu };
    for (size_t i = 0; i < 3; i++) {
      wr32(d + 8, counts[i]);
      reseal(d, len);
      q7__bview v;
      Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 70, true, "t"));
      q7_record r[8];
      Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_decode(&v, 70, 0, r, 8, "tp", 2));
      cr_assert(strstr(q7_last_error(), "70"), "%s", q7_last_error());
      cr_assert(strstr(q7_last_error(), "tp"), "%s", q7_last_error());
      /* Skipping past the real records meets the end too. */
      Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_decode(&v, 70, 3, r, 8, "tp", 2));
      /* And reading only the real ones is fine. */
      cr_assert_eq(q7__batch_decode(&v, 70, 1, r, 2, "tp", 2), 2, "%s", formats[f].name);
    }
    free(d);
  }
}

/* Format 1: the record sizes and lengths of libq7 0.1.0 batches. */
Test(record, format1_bad_record_size_is_ecorrupt_at_decode)
{
  size_t len;
  unsigned char *d = three_records_v1(&len);
  unsigned char *r0 = d + Q7__BATCH_HDR;
  uint32_t s = rd32(r0);
  uint32_t bad[] = { 0, Q7__REC_HDR - 5, s - 1, s + 1, (uint32_t)len, 0xffffffffu };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wr32(r0, bad[i]);
    reseal(d, len);
    q7__bview v;
    Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 0, true, "t"));
    q7_record r[3];
    int rc = q7__batch_decode(&v, 0, 0, r, 3, "t", 0);
    cr_assert_eq(rc, Q7_ECORRUPT, "record size %u -> %d", bad[i], rc);
    /* Skipped over, a bad size is caught too, but for s + 1 and s - 1
     * (a size alone cannot tell, and skipping reads sizes only). */
    if (bad[i] != s + 1 && bad[i] != s - 1) {
      rc = q7__batch_decode(&v, 0, 1, r, 3, "t", 0);
      cr_assert_eq(rc, Q7_ECORRUPT, "skipping a record of size %u -> %d", bad[i], rc);
    }
  }
  free(d);
}

Test(record, format1_bad_key_or_value_length_is_ecorrupt_at_decode)
{
  size_t len;
  unsigned char *d = three_records_v1(&len);
  unsigned char *r0 = d + Q7__BATCH_HDR;
  struct {
    size_t at;
    uint32_t v;
  } bad[] = {
    { 12, 3 }, { 12, 1 }, { 12, 0xfffffffeu }, { 12, Q7__NULL_LEN },
    { 16, 7 }, { 16, 0 }, { 16, 0x80000000u }, { 20, 1 }, { 20, 0xffffffffu },
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    unsigned char save[4];
    memcpy(save, r0 + bad[i].at, 4);
    wr32(r0 + bad[i].at, bad[i].v);
    reseal(d, len);
    q7__bview v;
    Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 0, true, "t"));
    q7_record r[3];
    int rc = q7__batch_decode(&v, 0, 0, r, 3, "t", 0);
    cr_assert_eq(rc, Q7_ECORRUPT, "field at %zu = %u -> %d", bad[i].at, bad[i].v, rc);
    memcpy(r0 + bad[i].at, save, 4);
  }
  reseal(d, len);
  check_three(d, len, 0, "format 1 restored");
  free(d);
}

/* Format 2, made by hand: each malformed record, placed in a batch that
 * goes on past it (so only the record's own bounds can catch it), is
 * Q7_ECORRUPT naming the batch; skipping over it too where its size alone
 * is bad.  good: a well-formed record { "k", "v" }. */
static const unsigned char good[] = { 6, 0, 2, 'k', 2, 'v', 0 };

static void
expect_corrupt2(const char *what, const unsigned char *rec, size_t n, uint32_t count,
                bool size_bad)
{
  bytes r = { .n = 0 };
  put_raw(&r, good, sizeof good);
  put_raw(&r, rec, n);
  put_raw(&r, good, sizeof good);
  put_raw(&r, good, sizeof good);
  size_t len;
  unsigned char *d = mkbatch(2, count, 0, 0, &r, &len);
  q7_record out[8];
  int rc = decode_at(d, len, 0, out, 8);
  cr_assert_eq(rc, Q7_ECORRUPT, "%s: decode -> %d", what, rc);
  cr_assert(strstr(q7_last_error(), "offset 70"), "%s: %s", what, q7_last_error());
  cr_assert(strstr(q7_last_error(), "tp"), "%s: %s", what, q7_last_error());
  rc = decode_at(d, len, 1, out, 8);
  cr_assert_eq(rc, Q7_ECORRUPT, "%s: decode from it -> %d", what, rc);
  /* Up to it, all is well. */
  cr_assert_eq(decode_at(d, len, 0, out, 1), 1, "%s", what);
  if (size_bad) {
    rc = decode_at(d, len, 2, out, 8);
    cr_assert_eq(rc, Q7_ECORRUPT, "%s: skipping it -> %d", what, rc);
  }
  free(d);
}

Test(record, format2_smallest_records_decode)
{
  /* The bounds the malformed cases below fall outside of: a record of
   * Q7__REC2_MIN bytes, and ten-byte varints. */
  static const unsigned char min[] = { 4, 0, 0, 0, 0 };
  cr_assert_eq(sizeof min, Q7__REC2_MIN);
  /* delta INT64_MAX = zigzag 2^64 - 2, in ten bytes */
  static const unsigned char ten[] = { 13, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0x01, 0, 0, 0 };
  /* delta -2^63 = zigzag 2^64 - 1 */
  static const unsigned char ten_min[] = { 13, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                           0xff, 0x01, 0, 0, 0 };
  bytes r = { .n = 0 };
  put_raw(&r, min, sizeof min);
  put_raw(&r, ten, sizeof ten);
  put_raw(&r, ten_min, sizeof ten_min);
  put_raw(&r, good, sizeof good);
  size_t len;
  unsigned char *d = mkbatch(2, 4, 0, INT64_MAX, &r, &len);
  q7_record out[4];
  cr_assert_eq(decode_at(d, len, 0, out, 4), 4);
  cr_assert_eq(out[0].timestamp_ms, 0);
  cr_assert_null(out[0].key);
  cr_assert_null(out[0].value);
  cr_assert_null(out[0].headers);
  cr_assert_eq(out[1].timestamp_ms, INT64_MAX);
  cr_assert_eq(out[2].timestamp_ms, INT64_MIN);
  cr_assert_eq(out[3].key_len, 1);
  cr_assert_eq(*(const char *)out[3].key, 'k');
  cr_assert_eq(*(const char *)out[3].value, 'v');
  cr_assert_eq(decode_at(d, len, 3, out, 4), 1);
  cr_assert_eq(out[0].offset, 73);
  free(d);
}

Test(record, format2_truncated_varint_is_ecorrupt)
{
  /* The size's varint at the end of the batch. */
  static const unsigned char cut1[] = { 0x80 }, cut2[] = { 0xff, 0xff };
  static const unsigned char *cuts[] = { cut1, cut2 };
  static const size_t cut_n[] = { 1, 2 };
  for (int i = 0; i < 2; i++) {
    bytes r = { .n = 0 };
    put_raw(&r, good, sizeof good);
    put_raw(&r, cuts[i], cut_n[i]);
    size_t len;
    unsigned char *d = mkbatch(2, 2, 0, 0, &r, &len);
    q7_record out[2];
    cr_assert_eq(decode_at(d, len, 0, out, 2), Q7_ECORRUPT, "cut %d", i);
    cr_assert_eq(decode_at(d, len, 1, out, 2), Q7_ECORRUPT, "cut %d", i);
    cr_assert_eq(decode_at(d, len, 2, out, 2), Q7_ECORRUPT, "cut %d, skipped", i);
    free(d);
  }
  /* A varint running past its record's end (the bytes after it would
   * end it): the delta, key length, value length, headers length. */
  static const unsigned char ts[] = { 1, 0x80 };
  static const unsigned char kl[] = { 2, 0, 0x80 };
  static const unsigned char vl[] = { 3, 0, 0, 0x80 };
  static const unsigned char hl[] = { 4, 0, 0, 0, 0x80 };
  static const unsigned char hl2[] = { 5, 0, 0, 0, 0x81, 0x80 };
  expect_corrupt2("delta varint cut", ts, sizeof ts, 4, true);
  expect_corrupt2("key length varint cut", kl, sizeof kl, 4, true);
  expect_corrupt2("value length varint cut", vl, sizeof vl, 4, true);
  expect_corrupt2("headers length varint cut", hl, sizeof hl, 4, false);
  expect_corrupt2("headers length varint cut after two bytes", hl2, sizeof hl2, 4, false);
  /* No record at all where one is due: size 0. */
  static const unsigned char zero[] = { 0 };
  expect_corrupt2("size 0", zero, sizeof zero, 4, true);
  static const unsigned char three[] = { 3, 0, 0, 0 };
  expect_corrupt2("size 3", three, sizeof three, 4, true);
}

Test(record, format2_varint_longer_than_ten_bytes_is_ecorrupt)
{
  /* Eleven bytes for the value 0; each in turn the size, the delta, the
   * key, value and headers lengths. */
  unsigned char rec[32];
  for (int field = 0; field < 5; field++) {
    size_t n = 0;
    if (field > 0)
      rec[n++] = 0; /* the size, set below */
    for (int f = 1; f < field; f++)
      rec[n++] = 0;
    for (int j = 0; j < 10; j++)
      rec[n++] = 0x80;
    rec[n++] = 0x00;
    for (int f = field + 1; f < 5; f++)
      rec[n++] = 0;
    if (field > 0)
      rec[0] = (unsigned char)(n - 1);
    char what[64];
    snprintf(what, sizeof what, "eleven-byte varint in field %d", field);
    expect_corrupt2(what, rec, n, 4, field == 0);
  }
  /* Ten bytes of which the last goes on. */
  static const unsigned char on[] = { 14, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0x01, 0, 0, 0 };
  expect_corrupt2("delta of eleven bytes, 0xff...", on, sizeof on, 4, false);
  /* A size that, read as ten bytes, is 2^64 - 1. */
  static const unsigned char huge[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01 };
  expect_corrupt2("size 2^64 - 1", huge, sizeof huge, 4, true);
}

Test(record, format2_size_past_the_end_is_ecorrupt)
{
  /* The last record of the batch: one byte more than follow. */
  bytes r = { .n = 0 };
  put_raw(&r, good, sizeof good);
  put_u8(&r, 7);
  put_raw(&r, good + 1, sizeof good - 1);
  size_t len;
  unsigned char *d = mkbatch(2, 2, 0, 0, &r, &len);
  q7_record out[2];
  cr_assert_eq(decode_at(d, len, 0, out, 2), Q7_ECORRUPT);
  cr_assert_eq(decode_at(d, len, 1, out, 2), Q7_ECORRUPT);
  cr_assert_eq(decode_at(d, len, 0, out, 1), 1);
  free(d);
  /* Sizes in the middle reaching past the end. */
  static const unsigned char s1[] = { 28, 0, 0, 0, 0 }, s2[] = { 0x80, 0x80, 0x04, 0, 0, 0, 0 },
                             s3[] = { 0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0, 0 };
  expect_corrupt2("size 28, 25 bytes follow", s1, sizeof s1, 4, true);
  expect_corrupt2("size 64 KiB", s2, sizeof s2, 4, true);
  expect_corrupt2("size 2^32 - 1", s3, sizeof s3, 4, true);
}

Test(record, format2_lengths_past_the_record_are_ecorrupt)
{
  /* key_len + 1 = 5 with 2 bytes left in the record (the batch has more). */
  static const unsigned char k[] = { 4, 0, 5, 0, 0 };
  /* value_len + 1 = 4 with 2 bytes left */
  static const unsigned char v[] = { 5, 0, 0, 4, 0, 0 };
  /* key_len + 1 = 2^64 - 1 */
  static const unsigned char kh[] = { 13, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0x01, 0, 0 };
  /* value_len + 1 = 2^32 + 1: past Q7__NULL_LEN + 1 as well */
  static const unsigned char vh[] = { 8, 0, 0, 0x81, 0x80, 0x80, 0x80, 0x10, 0 };
  /* a key exactly to the record's end: no room for the value length */
  static const unsigned char ke[] = { 4, 0, 3, 'a', 'b' };
  /* a value exactly to the record's end: no room for the headers length */
  static const unsigned char ve[] = { 4, 0, 0, 2, 'a' };
  expect_corrupt2("key past the record", k, sizeof k, 4, false);
  expect_corrupt2("value past the record", v, sizeof v, 4, false);
  expect_corrupt2("key length 2^64 - 2", kh, sizeof kh, 4, false);
  expect_corrupt2("value length 2^32", vh, sizeof vh, 4, false);
  expect_corrupt2("key to the end", ke, sizeof ke, 4, false);
  expect_corrupt2("value to the end", ve, sizeof ve, 4, false);
}

Test(record, format2_headers_not_filling_the_record_are_ecorrupt)
{
  /* headers_len 0, a byte left over */
  static const unsigned char less[] = { 5, 0, 0, 0, 0, 'x' };
  /* headers_len 7, 6 bytes there */
  static const unsigned char fewer[] = { 10, 0, 0, 0, 7, 1, 0, 'a', 0, 0, 0 };
  /* headers_len 1, nothing there */
  static const unsigned char more[] = { 4, 0, 0, 0, 1 };
  /* headers_len 2^64 - 1 */
  static const unsigned char huge[] = { 13, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0xff, 0xff, 0x01 };
  expect_corrupt2("headers short of the record", less, sizeof less, 4, false);
  expect_corrupt2("headers one byte short", fewer, sizeof fewer, 4, false);
  expect_corrupt2("headers past the record", more, sizeof more, 4, false);
  expect_corrupt2("headers length 2^64 - 1", huge, sizeof huge, 4, false);
  /* The well-formed twin of "fewer": 7 bytes { u16 1, "a", u32 0 }. */
  static const unsigned char ok[] = { 11, 0, 0, 0, 7, 1, 0, 'a', 0, 0, 0, 0 };
  bytes r = { .n = 0 };
  put_raw(&r, ok, sizeof ok);
  size_t len;
  unsigned char *d = mkbatch(2, 1, 0, 0, &r, &len);
  q7_record out[1];
  cr_assert_eq(decode_at(d, len, 0, out, 1), 1);
  cr_assert_eq(out[0].headers_len, 7);
  const void *hv;
  size_t hl = 9;
  Q7_OK_OR_FAIL(q7_record_header(&out[0], "a", &hv, &hl));
  cr_assert_eq(hl, 0);
  free(d);
}

Test(record, format2_count_larger_than_records_is_ecorrupt)
{
  bytes r = { .n = 0 };
  put_raw(&r, good, sizeof good);
  put_raw(&r, good, sizeof good);
  for (uint32_t count = 3; count <= 5; count++) {
    size_t len;
    unsigned char *d = mkbatch(2, count, 0, 0, &r, &len);
    q7_record out[8];
    for (uint32_t skip = 0; skip <= 2; skip++)
      cr_assert_eq(decode_at(d, len, skip, out, 8), Q7_ECORRUPT, "count %u skip %u", count, skip);
    cr_assert_eq(decode_at(d, len, 0, out, 2), 2, "the records there are");
    free(d);
  }
}

Test(record, format2_skip_over_a_malformed_size_is_ecorrupt)
{
  static const unsigned char zero[] = { 0 }, three[] = { 3, 0, 0, 0 }, past[] = { 20, 0, 0, 0, 0 };
  static const struct {
    const unsigned char *rec;
    size_t n;
  } bad[] = { { zero, 1 }, { three, 4 }, { past, 5 } };
  for (size_t i = 0; i < 3; i++) {
    /* First in the batch, skipped to reach the good record behind it. */
    bytes r = { .n = 0 };
    put_raw(&r, bad[i].rec, bad[i].n);
    put_raw(&r, good, sizeof good);
    size_t len;
    unsigned char *d = mkbatch(2, 2, 0, 0, &r, &len);
    q7_record out[2];
    cr_assert_eq(decode_at(d, len, 1, out, 2), Q7_ECORRUPT, "case %zu skipped", i);
    cr_assert_eq(decode_at(d, len, 0, out, 2), Q7_ECORRUPT, "case %zu", i);
    free(d);
  }
}

Test(record, newer_batch_format_or_compression_is_eversion)
{
  size_t len;
  unsigned char *d = three_records(&len);
  q7__bview v;
  d[4] = 3;
  reseal(d, len);
  Q7_FAILS_WITH(Q7_EVERSION, q7__batch_open(&v, d, len, 5, true, "t"));
  cr_assert(strstr(q7_last_error(), "offset 5"), "%s", q7_last_error());
  d[4] = 2;
  d[5] = 1; /* format 258 */
  reseal(d, len);
  Q7_FAILS_WITH(Q7_EVERSION, q7__batch_open(&v, d, len, 5, true, "t"));
  d[5] = 0;
  d[4] = 0;
  reseal(d, len);
  Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_open(&v, d, len, 5, true, "t"));
  d[4] = 2;
  d[6] = 1; /* compression 1 */
  reseal(d, len);
  Q7_FAILS_WITH(Q7_EVERSION, q7__batch_open(&v, d, len, 5, true, "t"));
  d[6] = 0;
  reseal(d, len);
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 5, true, "t"));
  cr_assert_eq(v.format, 2);
  free(d);
  /* Format 1 opens as format 1. */
  d = three_records_v1(&len);
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 5, true, "t"));
  cr_assert_eq(v.format, 1);
  free(d);
}

/* A compressed batch states its records' raw length: at least the smallest
 * record of its format per record. */
Test(record, compressed_raw_length_below_the_smallest_records_is_ecorrupt)
{
  for (unsigned f = 1; f <= 2; f++) {
    uint32_t min = f == 1 ? Q7__REC_HDR : Q7__REC2_MIN;
    for (uint32_t raw = 3 * min - 1; raw <= 3 * min; raw++) {
      bytes r = { .n = 0 };
      put_u32(&r, raw);
      put_raw(&r, "some compressed bytes", 21);
      size_t len;
      unsigned char *d = mkbatch(f, 3, 0, 0, &r, &len);
      d[6] = Q7__CODEC_LZ4;
      reseal(d, len);
      q7__bview v;
      int rc = q7__batch_open(&v, d, len, 0, true, "t");
      cr_assert_eq(rc, raw < 3 * min ? Q7_ECORRUPT : Q7_OK, "format %u raw %u -> %d", f, raw, rc);
      if (!rc) {
        cr_assert_eq(v.raw_len, raw);
        cr_assert_null(v.recs);
        cr_assert_eq(v.format, f);
      }
      free(d);
    }
  }
}

/* ---------------------------------------------------------- headers */

static q7_record
rec_with_headers(const void *h, size_t len)
{
  q7_record r;
  memset(&r, 0, sizeof r);
  r.topic = "t";
  r.offset = 31337;
  r.headers = h;
  r.headers_len = len;
  return r;
}

Test(record, header_missing_is_enoent)
{
  /* { u16 1, "a", u32 1, "x" } */
  static const unsigned char h[] = { 1, 0, 'a', 1, 0, 0, 0, 'x' };
  q7_record r = rec_with_headers(h, sizeof h);
  const void *v = (const void *)1;
  size_t l = 99;
  Q7_FAILS_WITH(Q7_ENOENT, q7_record_header(&r, "b", &v, &l));
  cr_assert(strstr(q7_last_error(), "\"b\""), "%s", q7_last_error());
  Q7_FAILS_WITH(Q7_ENOENT, q7_record_header(&r, "aa", &v, &l));
  Q7_FAILS_WITH(Q7_ENOENT, q7_record_header(&r, "", &v, &l));
  Q7_OK_OR_FAIL(q7_record_header(&r, "a", &v, &l));
  cr_assert_eq(l, 1);
  cr_assert_eq(*(const char *)v, 'x');
}

Test(record, header_of_a_record_without_headers_is_enoent)
{
  q7_record r = rec_with_headers(NULL, 0);
  const void *v;
  size_t l, it = 0, nl;
  const char *n;
  Q7_FAILS_WITH(Q7_ENOENT, q7_record_header(&r, "a", &v, &l));
  cr_assert_eq(q7_record_header_next(&r, &it, &n, &nl, &v, &l), Q7_ENOENT);
}

Test(record, malformed_header_block_is_ecorrupt)
{
  static const struct {
    unsigned char b[16];
    size_t len;
  } bad[] = {
    { { 1 }, 1 },                                  /* half a name length */
    { { 5, 0, 'a', 'b' }, 4 },                     /* name longer than the block */
    { { 1, 0, 'a', 0, 0 }, 5 },                    /* value length cut */
    { { 1, 0, 'a', 2, 0, 0, 0, 'x' }, 8 },         /* value longer than the block */
    { { 1, 0, 'a', 0xfe, 0xff, 0xff, 0xff }, 7 }, /* huge value length */
    { { 1, 0, 'a', 0, 0, 0, 0, 9 }, 8 },           /* trailing byte */
    { { 0xff, 0xff, 'a', 0, 0, 0, 0 }, 7 },        /* huge name length */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    q7_record r = rec_with_headers(bad[i].b, bad[i].len);
    const void *v;
    size_t l;
    int rc = q7_record_header(&r, "zzz", &v, &l);
    cr_assert_eq(rc, Q7_ECORRUPT, "case %zu: q7_record_header -> %d", i, rc);
    cr_assert(strstr(q7_last_error(), "31337"), "case %zu: %s", i, q7_last_error());
    size_t it = 0, nl;
    const char *n;
    do
      rc = q7_record_header_next(&r, &it, &n, &nl, &v, &l);
    while (rc == Q7_OK);
    cr_assert_eq(rc, Q7_ECORRUPT, "case %zu: q7_record_header_next -> %d", i, rc);
  }
}

Test(record, header_null_arguments_are_einval)
{
  static const unsigned char h[] = { 1, 0, 'a', 0, 0, 0, 0 };
  q7_record r = rec_with_headers(h, sizeof h);
  const void *v;
  size_t l, it = 0, nl;
  const char *n;
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header(NULL, "a", &v, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header(&r, NULL, &v, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header(&r, "a", NULL, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header(&r, "a", &v, NULL));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header_next(NULL, &it, &n, &nl, &v, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header_next(&r, NULL, &n, &nl, &v, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header_next(&r, &it, NULL, &nl, &v, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header_next(&r, &it, &n, NULL, &v, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header_next(&r, &it, &n, &nl, NULL, &l));
  Q7_FAILS_WITH(Q7_EINVAL, q7_record_header_next(&r, &it, &n, &nl, &v, NULL));
  cr_assert_eq(it, 0, "iterator moved on a failed call");
}

/* ----------------------------------------------------------- CRC32C */

static const unsigned char *
pattern(int kind)
{
  static unsigned char buf[32];
  for (int i = 0; i < 32; i++)
    buf[i] = kind == 0 ? 0 : kind == 1 ? 0xff : kind == 2 ? (unsigned char)i
                                                          : (unsigned char)(31 - i);
  return buf;
}

Test(crc32c, check_value_of_123456789)
{
  cr_assert_eq(q7__crc32c(0, "123456789", 9), 0xE3069283u);
}

Test(crc32c, rfc3720_vectors)
{
  cr_assert_eq(q7__crc32c(0, pattern(0), 32), 0x8A9136AAu, "32 zero bytes");
  cr_assert_eq(q7__crc32c(0, pattern(1), 32), 0x62A8AB43u, "32 0xff bytes");
  cr_assert_eq(q7__crc32c(0, pattern(2), 32), 0x46DD794Eu, "0..31");
  cr_assert_eq(q7__crc32c(0, pattern(3), 32), 0x113FDB5Cu, "31..0");
}

Test(crc32c, empty_input_leaves_the_crc)
{
  cr_assert_eq(q7__crc32c(0, "", 0), 0);
  cr_assert_eq(q7__crc32c(0xE3069283u, "", 0), 0xE3069283u);
}

Test(crc32c, result_does_not_depend_on_splitting)
{
  unsigned char buf[301];
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof buf; i++) {
    x = x * 1103515245u + 12345u;
    buf[i] = (unsigned char)(x >> 16);
  }
  uint32_t whole = q7__crc32c(0, buf, sizeof buf);
  for (size_t a = 0; a <= sizeof buf; a++) {
    uint32_t c = q7__crc32c(0, buf, a);
    c = q7__crc32c(c, buf + a, sizeof buf - a);
    cr_assert_eq(c, whole, "split at %zu", a);
  }
  for (size_t a = 0; a <= 40; a++)
    for (size_t bb = a; bb <= 40; bb++) {
      uint32_t c = q7__crc32c(0, buf, a);
      c = q7__crc32c(c, buf + a, bb - a);
      c = q7__crc32c(c, buf + bb, sizeof buf - bb);
      cr_assert_eq(c, whole, "split at %zu and %zu", a, bb);
    }
  /* Byte by byte. */
  uint32_t c = 0;
  for (size_t i = 0; i < sizeof buf; i++)
    c = q7__crc32c(c, buf + i, 1);
  cr_assert_eq(c, whole);
  /* Unaligned starts. */
  unsigned char *copy = malloc(sizeof buf + 8);
  for (size_t off = 1; off < 8; off++) {
    memcpy(copy + off, buf, sizeof buf);
    cr_assert_eq(q7__crc32c(0, copy + off, sizeof buf), whole, "offset %zu", off);
  }
  free(copy);
}

Test(crc32c, software_path_matches_vectors_and_the_library)
{
  cr_assert_eq(~crc_sw(~0u, (const unsigned char *)"123456789", 9), 0xE3069283u);
  cr_assert_eq(~crc_sw(~0u, pattern(0), 32), 0x8A9136AAu);
  cr_assert_eq(~crc_sw(~0u, pattern(1), 32), 0x62A8AB43u);
  cr_assert_eq(~crc_sw(~0u, pattern(2), 32), 0x46DD794Eu);
  cr_assert_eq(~crc_sw(~0u, pattern(3), 32), 0x113FDB5Cu);
  unsigned char buf[1000];
  for (size_t i = 0; i < sizeof buf; i++)
    buf[i] = (unsigned char)(i * 7 + (i >> 3));
  for (size_t n = 0; n <= sizeof buf; n += 13)
    cr_assert_eq(~crc_sw(~0u, buf, n), q7__crc32c(0, buf, n), "length %zu", n);
  /* The copied entry point gives the library's answer too. */
  cr_assert_eq(test_crc32c_copy(0, buf, sizeof buf), q7__crc32c(0, buf, sizeof buf));
}

/* The hardware path checks long buffers in three interleaved streams joined
 * by a zero-extension table: it must equal a bitwise reference for every
 * length around and across the stride boundaries, and for any split. */
static uint32_t
crc_bitwise(const unsigned char *p, size_t n)
{
  uint32_t c = ~0u;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0x82f63b78u & (0u - (c & 1u)));
  }
  return ~c;
}

Test(crc32c, matches_bitwise_reference_for_every_length)
{
  enum { N = 7000 };
  static unsigned char b[N];
  uint32_t x = 12345;
  for (size_t i = 0; i < N; i++) {
    x = x * 1103515245u + 12345u;
    b[i] = (unsigned char)(x >> 16);
  }
  for (size_t n = 0; n < N; n += n < 3200 ? 1 : 61) {
    uint32_t want = crc_bitwise(b, n);
    cr_assert_eq(q7__crc32c(0, b, n), want, "length %zu", n);
    size_t h = n / 3;
    cr_assert_eq(q7__crc32c(q7__crc32c(0, b, h), b + h, n - h), want, "length %zu split", n);
  }
}

/* Each hardware path on its own, whatever the dispatcher would pick for a
 * length: the crc32 streams, 128-bit folding (PCLMULQDQ) and 512-bit
 * folding (VPCLMULQDQ), with a nonzero starting register and unaligned
 * starts.  Paths the CPU lacks are skipped by name, not silently. */
Test(crc32c, every_hardware_path_matches_bitwise_reference)
{
#if defined(__x86_64__)
  enum { N = 9000 };
  static unsigned char b[N + 64];
  uint32_t x = 777;
  for (size_t i = 0; i < sizeof b; i++) {
    x = x * 1103515245u + 12345u;
    b[i] = (unsigned char)(x >> 16);
  }
  bool sse = __builtin_cpu_supports("sse4.2"), clmul = sse && __builtin_cpu_supports("pclmul"),
       z = clmul && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("vpclmulqdq");
  if (!z)
    cr_log_info("CPU lacks%s%s%s: those paths untested here", sse ? "" : " sse4.2",
                clmul ? "" : " pclmul", z ? "" : " avx512f/vpclmulqdq");
  int checked = 0;
  for (size_t off = 0; off < 64; off += 13)
    for (size_t n = 0; n <= N; n += n < 1400 ? 1 : 97) {
      const unsigned char *p = b + off;
      /* crc_bitwise starts from ~0 and inverts; so do the paths here. */
      uint32_t want = crc_bitwise(p, n);
      if (sse)
        cr_assert_eq(~crc_hw(~0u, p, n), want, "crc32 streams, length %zu offset %zu", n, off);
      if (clmul && n >= FOLD_MIN)
        cr_assert_eq(~crc_fold(~0u, p, n), want, "pclmul, length %zu offset %zu", n, off);
      if (z && n >= FOLD512_MIN)
        cr_assert_eq(~crc_fold512(~0u, p, n), want, "vpclmul, length %zu offset %zu", n, off);
      /* A register carried in from an earlier part. */
      if (n >= 2 * FOLD512_MIN) {
        uint32_t mid = ~crc_bitwise(p, 100);
        if (clmul)
          cr_assert_eq(~crc_fold(mid, p + 100, n - 100), want, "pclmul after 100, length %zu", n);
        if (z)
          cr_assert_eq(~crc_fold512(mid, p + 100, n - 100), want, "vpclmul after 100, length %zu",
                       n);
      }
      checked++;
    }
  cr_assert_gt(checked, 1000);
#endif
}
