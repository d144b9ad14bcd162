/* test_record.c - the batch/record codec, headers and CRC32C (lib/record.c,
 * lib/crc32c.c). */
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

static inline uint64_t
rd64(const unsigned char *p)
{
  return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
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

/* ---------------------------------------------------- encode / decode */

Test(record, empty_batch_init_reserves_the_header)
{
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR);
  cr_assert_eq(b.count, 0);
}

Test(record, seal_writes_the_documented_header)
{
  size_t len;
  unsigned char *d = three_records(&len);
  cr_assert_eq(rd32(d), q7__crc32c(0, d + 4, len - 4), "crc32c over [4, end)");
  cr_assert_eq(d[4] | d[5] << 8, Q7__BATCH_FORMAT);
  cr_assert_eq(d[6] | d[7] << 8, 0, "attributes");
  cr_assert_eq(rd32(d + 8), 3, "count");
  cr_assert_eq(rd32(d + 12), len - Q7__BATCH_HDR, "length");
  cr_assert_eq((int64_t)rd64(d + 16), 100, "first_ts");
  cr_assert_eq((int64_t)rd64(d + 24), 300, "max_ts");
  /* First record: size, ts, key_len, value_len, headers_len. */
  const unsigned char *r = d + Q7__BATCH_HDR;
  cr_assert_eq(rd32(r), Q7__REC_HDR - 4 + 2 + 6);
  cr_assert_eq((int64_t)rd64(r + 4), 100);
  cr_assert_eq(rd32(r + 12), 2);
  cr_assert_eq(rd32(r + 16), 6);
  cr_assert_eq(rd32(r + 20), 0);
  cr_assert_eq(memcmp(r + Q7__REC_HDR, "k0value0", 8), 0);
  /* Second record: null key and null value are NULL_LEN. */
  r += 4 + rd32(r);
  cr_assert_eq(rd32(r + 12), Q7__NULL_LEN);
  cr_assert_eq(rd32(r + 16), Q7__NULL_LEN);
  free(d);
}

Test(record, round_trip_of_three_records)
{
  size_t len;
  unsigned char *d = three_records(&len);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 40, true, "test"));
  cr_assert_eq(v.count, 3);
  cr_assert_eq(v.max_ts, 300);
  cr_assert_eq(v.len, len);
  q7_record r[3];
  memset(r, 0xa5, sizeof r);
  cr_assert_eq(q7__batch_decode(&v, 40, 0, r, 3, "tp", 7), 3);

  cr_assert_str_eq(r[0].topic, "tp");
  cr_assert_eq(r[0].partition, 7);
  cr_assert_eq(r[0].offset, 40);
  cr_assert_eq(r[0].timestamp_ms, 100);
  cr_assert_eq(r[0].key_len, 2);
  cr_assert_eq(memcmp(r[0].key, "k0", 2), 0);
  cr_assert_eq(r[0].value_len, 6);
  cr_assert_eq(memcmp(r[0].value, "value0", 6), 0);
  cr_assert_null(r[0].headers);
  cr_assert_eq(r[0].headers_len, 0);

  cr_assert_eq(r[1].offset, 41);
  cr_assert_eq(r[1].timestamp_ms, 300);
  cr_assert_null(r[1].key);
  cr_assert_eq(r[1].key_len, 0);
  cr_assert_null(r[1].value);
  cr_assert_eq(r[1].value_len, 0);

  cr_assert_eq(r[2].offset, 42);
  cr_assert_eq(r[2].timestamp_ms, 200);
  cr_assert_eq(memcmp(r[2].key, "key-two", 7), 0);
  cr_assert_not_null(r[2].headers);
  const void *hv;
  size_t hl;
  Q7_OK_OR_FAIL(q7_record_header(&r[2], "trace", &hv, &hl));
  cr_assert_eq(hl, 3);
  cr_assert_eq(memcmp(hv, "abc", 3), 0);
  /* Zero copy: pointers point into the batch. */
  cr_assert((const unsigned char *)r[0].key >= d && (const unsigned char *)r[0].key < d + len);
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
  cr_assert_eq(v.max_ts, INT64_C(1700000000000));
  q7_record r[5];
  cr_assert_eq(q7__batch_decode(&v, 0, 0, r, 5, "t", 0), 5);
  for (size_t i = 0; i < 5; i++)
    cr_assert_eq(r[i].timestamp_ms, ts[i], "record %zu", i);
}

Test(record, one_record)
{
  q7_msg m = msg("only", 4, "one", 3);
  cr_assert_eq(q7__batch_add(&b, &m, 9), Q7_OK);
  q7__batch_seal(&b);
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR + Q7__REC_HDR + 7);
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, b.buf.data, b.buf.len, 123456789012LL, true, "test"));
  cr_assert_eq(v.count, 1);
  q7_record r[2];
  cr_assert_eq(q7__batch_decode(&v, 123456789012LL, 0, r, 2, "t", 3), 1);
  cr_assert_eq(r[0].offset, 123456789012LL);
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
  cr_assert_eq(v.max_ts, 77);
}

Test(record, add_raw_equals_add)
{
  q7_msg m = msg("key", 3, "value", 5);
  q7__buf raw = { 0 };
  cr_assert_eq(q7__record_append(&raw, &m, 11), Q7_OK);
  q7__batch b2;
  cr_assert_eq(q7__batch_init(&b2), Q7_OK);
  cr_assert_eq(q7__batch_add_raw(&b2, raw.data, raw.len, 11), Q7_OK);
  cr_assert_eq(q7__batch_add(&b, &m, 11), Q7_OK);
  q7__batch_seal(&b);
  q7__batch_seal(&b2);
  cr_assert_eq(b.buf.len, b2.buf.len);
  cr_assert_eq(memcmp(b.buf.data, b2.buf.data, b.buf.len), 0);
  q7__batch_free(&b2);
  q7__buf_free(&raw);
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
  cr_assert_eq(q7__record_size(&m, &hl), Q7__REC_HDR + 2 + 4 + (2 + 2 + 4 + 3));
  cr_assert_eq(hl, 2 + 2 + 4 + 3);
  cr_assert_eq(q7__record_payload(&m), 2 + 4 + 2 + 3);
}

Test(record, size_over_4gib_is_zero_and_append_is_etoobig)
{
  static const char k = 'k';
  q7_msg m = msg(&k, (size_t)Q7__NULL_LEN, NULL, 0); /* never dereferenced */
  cr_assert_eq(q7__record_size(&m, NULL), 0);
  m = msg(&k, (size_t)Q7__NULL_LEN - Q7__REC_HDR, NULL, 0);
  cr_assert_eq(q7__record_size(&m, NULL), 0, "total over u32 must not wrap");
  Q7_FAILS_WITH(Q7_ETOOBIG, q7__batch_add(&b, &m, 1));
  cr_assert_eq(b.count, 0);
  cr_assert_eq(b.buf.len, Q7__BATCH_HDR);
}

/* ------------------------------------------------------- corruption */

Test(record, every_flipped_byte_is_ecorrupt_naming_the_offset)
{
  size_t len;
  unsigned char *d = three_records(&len);
  for (size_t i = 0; i < len; i++) {
    for (int bit = 0; bit < 8; bit++) {
      q7__bview v;
      d[i] ^= (unsigned char)(1u << bit);
      int rc = q7__batch_open(&v, d, len, 987654, true, "topic t partition 0");
      d[i] ^= (unsigned char)(1u << bit);
      cr_assert_eq(rc, Q7_ECORRUPT, "byte %zu bit %d flipped -> %d", i, bit, rc);
      cr_assert(strstr(q7_last_error(), "987654"), "byte %zu: \"%s\" names no offset", i,
                q7_last_error());
      cr_assert(strstr(q7_last_error(), "topic t partition 0"), "%s", q7_last_error());
    }
    /* A whole byte replaced, too. */
    unsigned char old = d[i];
    d[i] = (unsigned char)~old;
    q7__bview v;
    cr_assert_eq(q7__batch_open(&v, d, len, 987654, true, "t"), Q7_ECORRUPT, "byte %zu", i);
    d[i] = old;
  }
  q7__bview v;
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 987654, true, "t"));
  free(d);
}

Test(record, truncated_batch_is_ecorrupt)
{
  size_t len;
  unsigned char *d = three_records(&len);
  q7__bview v;
  for (size_t n = 0; n < len; n++) {
    int rc = q7__batch_open(&v, d, n, 12, true, "t");
    cr_assert_eq(rc, Q7_ECORRUPT, "batch cut to %zu of %zu bytes -> %d", n, len, rc);
    cr_assert(strstr(q7_last_error(), "12"), "%s", q7_last_error());
    /* Without the CRC check, the length field still catches it. */
    rc = q7__batch_open(&v, d, n, 12, false, "t");
    cr_assert_eq(rc, Q7_ECORRUPT, "unverified batch cut to %zu of %zu bytes -> %d", n, len, rc);
  }
  free(d);
}

Test(record, zero_count_is_ecorrupt)
{
  size_t len;
  unsigned char *d = three_records(&len);
  wr32(d + 8, 0);
  reseal(d, len);
  q7__bview v;
  Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_open(&v, d, len, 3, true, "t"));
  cr_assert(strstr(q7_last_error(), "offset 3"), "%s", q7_last_error());
  free(d);
}

Test(record, length_field_not_matching_is_ecorrupt)
{
  size_t len;
  unsigned char *d = three_records(&len);
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

Test(record, count_larger_than_records_is_ecorrupt_at_decode)
{
  size_t len;
  unsigned char *d = three_records(&len);
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
  }
  free(d);
}

Test(record, bad_record_size_is_ecorrupt_at_decode)
{
  size_t len;
  unsigned char *d = three_records(&len);
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
  }
  free(d);
}

Test(record, bad_key_or_value_length_is_ecorrupt_at_decode)
{
  size_t len;
  unsigned char *d = three_records(&len);
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
  free(d);
}

Test(record, newer_batch_format_or_compression_is_eversion)
{
  size_t len;
  unsigned char *d = three_records(&len);
  q7__bview v;
  d[4] = 2;
  reseal(d, len);
  Q7_FAILS_WITH(Q7_EVERSION, q7__batch_open(&v, d, len, 5, true, "t"));
  cr_assert(strstr(q7_last_error(), "offset 5"), "%s", q7_last_error());
  d[4] = 0;
  reseal(d, len);
  Q7_FAILS_WITH(Q7_ECORRUPT, q7__batch_open(&v, d, len, 5, true, "t"));
  d[4] = 1;
  d[6] = 1; /* compression 1 */
  reseal(d, len);
  Q7_FAILS_WITH(Q7_EVERSION, q7__batch_open(&v, d, len, 5, true, "t"));
  d[6] = 0;
  reseal(d, len);
  Q7_OK_OR_FAIL(q7__batch_open(&v, d, len, 5, true, "t"));
  free(d);
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
    cr_log_warn("CPU lacks%s%s%s: those paths untested here", sse ? "" : " sse4.2",
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
