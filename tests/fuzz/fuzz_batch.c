/* fuzz_batch.c - libFuzzer target for the batch and record decoder
 * (lib/record.c, lib/compress.c): q7__batch_open, q7__batch_inflate (lz4
 * and zstd batches, when the library has them), q7__batch_decode,
 * q7__riter_next and q7_record_header_next / q7_record_header on arbitrary
 * bytes.
 *
 * Input layout: byte 0 = flags, bytes 1..8 = base offset (little-endian),
 * byte 9 = records to skip, the rest = the stored batch value.  The value
 * is copied into a buffer of exactly its size, so any read past it is an
 * ASan report.  Besides "no crash", the target checks what the decoder
 * promises: every record it hands out lies inside the value, offsets are
 * base + index, header pointers lie inside the record's header block, and
 * a batch encoded by the library decodes back to what was encoded.
 *
 * Both record formats are read (format 1: libq7 0.1.0's fixed headers;
 * format 2: varints; layouts in lib/q7_int.h).  A reference parser here,
 * written from the layout rather than from lib/record.c, walks the records
 * of each batch that opens: where it finds them well formed, the decoder
 * and the record iterator must give the same records, timestamps and
 * positions; where it finds record j malformed, decoding a range that
 * starts at or before j and reaches it must be Q7_ECORRUPT.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined (tests/fuzz/run.sh). */
#include "q7_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifdef Q7__CODEC_LZ4
#define HAVE_CODECS 1
/* Decompression needs a store (it holds the codec libraries). */
static q7 *store;
static char store_dir[64];
/* Q7_FUZZ_SKIP_KNOWN=1: do not inflate batches that claim more than 16 MiB
 * of records, the known finding saved as
 * tests/fuzz/crashes/fuzz_batch/oom-inflate-trusts-raw-length, so that a
 * run can look past it until it is fixed. */
static bool skip_known;

static void
drop_store(void)
{
  q7_close(store);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  snprintf(store_dir, sizeof store_dir, "/tmp/q7fuzz.XXXXXX");
  if (!mkdtemp(store_dir) || q7_open(&store, store_dir, NULL)) {
    fprintf(stderr, "fuzz_batch: cannot open a store: %s\n", q7_last_error());
    abort();
  }
  /* Only its codec handles are used: the directory can go at once, so
   * that nothing is left behind when a run ends on a crash. */
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", store_dir);
  if (system(cmd) != 0)
    fprintf(stderr, "fuzz_batch: could not remove %s\n", store_dir);
  atexit(drop_store);
  const char *k = getenv("Q7_FUZZ_SKIP_KNOWN");
  skip_known = k && *k == '1';
  return 0;
}
#else
#define HAVE_CODECS 0
#endif

#define CHECK(cond)                                                                        \
  do {                                                                                     \
    if (!(cond)) {                                                                         \
      fprintf(stderr, "fuzz_batch: %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                             \
    }                                                                                      \
  } while (0)

static volatile unsigned sink;

/* Read every byte of [p, p+n) so that ASan sees a bad pointer. */
static void
touch(const void *p, size_t n)
{
  const unsigned char *c = p;
  unsigned s = 0;
  for (size_t i = 0; i < n; i++)
    s += c[i];
  sink += s;
}

static bool
inside(const void *p, size_t n, const void *lo, size_t len)
{
  const unsigned char *a = p, *b = lo;
  return a >= b && a <= b + len && n <= (size_t)(b + len - a);
}

static void
walk_headers(const q7_record *r)
{
  size_t it = 0, prev = 0, nl, vl;
  const char *name;
  const void *val;
  int rc, steps = 0;
  while ((rc = q7_record_header_next(r, &it, &name, &nl, &val, &vl)) == Q7_OK) {
    CHECK(it > prev && it <= r->headers_len); /* progress, inside the block */
    CHECK(inside(name, nl, r->headers, r->headers_len));
    touch(name, nl);
    if (val) {
      CHECK(inside(val, vl, r->headers, r->headers_len));
      touch(val, vl);
    } else {
      CHECK(vl == 0);
    }
    prev = it;
    CHECK(++steps <= 65536);
  }
  CHECK(rc == Q7_ENOENT || rc == Q7_ECORRUPT);
  CHECK(q7_last_error()[0] != 0);
  const void *v;
  size_t len;
  rc = q7_record_header(r, "h", &v, &len);
  CHECK(rc == Q7_OK || rc == Q7_ENOENT || rc == Q7_ECORRUPT);
  if (rc == Q7_OK && v)
    CHECK(inside(v, len, r->headers, r->headers_len));
}

/* Where a batch's records are: in the value, or in the inflated copy. */
static const void *
recs_of(const q7__bview *v, size_t *len)
{
#if HAVE_CODECS
  *len = v->recs_len;
  return v->recs;
#else
  *len = v->len;
  return v->data;
#endif
}

/* ------------------------------------------------------------ reference */

/* A record as lib/q7_int.h lays it out, parsed here on its own. */
typedef struct {
  size_t start;                          /* within the records */
  int64_t ts;
  const unsigned char *key, *value, *headers; /* NULL: none */
  uint64_t key_len, value_len, headers_len;
} ref_rec;

/* Records the reference walks at most per batch. */
#define REF_MAX 4096u

static uint64_t
ref_le(const unsigned char *p, int n)
{
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* Unsigned LEB128 of at most ten bytes inside [*p, end); bits past the
 * 64th are dropped. */
static bool
ref_var(const unsigned char **p, const unsigned char *end, uint64_t *out)
{
  uint64_t v = 0;
  for (int i = 0; i < 10 && *p < end; i++) {
    unsigned c = *(*p)++;
    v |= (uint64_t)(c & 0x7f) << (7 * i);
    if (!(c & 0x80)) {
      *out = v;
      return true;
    }
  }
  return false;
}

/* The record at @at of [recs, recs + len): false if malformed.  On success
 * *next is where the following record starts. */
static bool
ref_parse(const unsigned char *recs, size_t len, unsigned format, int64_t first_ts, size_t at,
          ref_rec *r, size_t *next)
{
  const unsigned char *p = recs + at, *end = recs + len;
  r->start = at;
  if (format == 1) {
    if (len - at < Q7__REC_HDR)
      return false;
    uint64_t size = ref_le(p, 4), kl = ref_le(p + 12, 4), vl = ref_le(p + 16, 4),
             hl = ref_le(p + 20, 4);
    uint64_t kn = kl == Q7__NULL_LEN ? 0 : kl, vn = vl == Q7__NULL_LEN ? 0 : vl;
    if (size + 4 > len - at || Q7__REC_HDR - 4 + kn + vn + hl != size)
      return false;
    r->ts = (int64_t)ref_le(p + 4, 8);
    r->key = kl == Q7__NULL_LEN ? NULL : p + Q7__REC_HDR;
    r->key_len = kn;
    r->value = vl == Q7__NULL_LEN ? NULL : p + Q7__REC_HDR + kn;
    r->value_len = vn;
    r->headers = hl ? p + Q7__REC_HDR + kn + vn : NULL;
    r->headers_len = hl;
    *next = at + 4 + size;
    return true;
  }
  uint64_t size, zz, k1, v1, hl;
  if (!ref_var(&p, end, &size) || size > (uint64_t)(end - p))
    return false;
  const unsigned char *rend = p + size;
  if (!ref_var(&p, rend, &zz) || !ref_var(&p, rend, &k1))
    return false;
  uint64_t kn = k1 ? k1 - 1 : 0;
  if (kn > (uint64_t)(rend - p))
    return false;
  r->key = k1 ? p : NULL;
  r->key_len = kn;
  p += kn;
  if (!ref_var(&p, rend, &v1))
    return false;
  uint64_t vn = v1 ? v1 - 1 : 0;
  if (vn > (uint64_t)(rend - p))
    return false;
  r->value = v1 ? p : NULL;
  r->value_len = vn;
  p += vn;
  if (!ref_var(&p, rend, &hl) || hl != (uint64_t)(rend - p))
    return false;
  r->headers = hl ? p : NULL;
  r->headers_len = hl;
  /* zigzag: even n is n / 2, odd n is -(n + 1) / 2 */
  uint64_t delta = zz & 1 ? ~(zz >> 1) : zz >> 1;
  r->ts = (int64_t)((uint64_t)first_ts + delta);
  *next = (size_t)(rend - recs);
  return true;
}

/* Walk up to @lim records: how many in a row are well formed. */
static uint32_t
ref_walk(const q7__bview *v, ref_rec *refs, uint32_t lim)
{
  size_t at = 0;
  uint32_t i = 0;
  for (; i < lim; i++)
    if (!ref_parse(v->recs, v->recs_len, v->format, v->first_ts, at, &refs[i], &at))
      break;
  return i;
}

static void
check_decoded(const q7__bview *v, int64_t base, uint32_t skip, const q7_record *out, int n)
{
  size_t rlen;
  const void *recs = recs_of(v, &rlen);
  for (int i = 0; i < n; i++) {
    const q7_record *r = &out[i];
    CHECK(r->offset == base + (int64_t)skip + i);
    CHECK(r->partition == 3);
    CHECK(r->key || r->key_len == 0);
    CHECK(r->value || r->value_len == 0);
    if (r->key)
      CHECK(inside(r->key, r->key_len, recs, rlen));
    if (r->value)
      CHECK(inside(r->value, r->value_len, recs, rlen));
    if (r->headers)
      CHECK(inside(r->headers, r->headers_len, recs, rlen));
    else
      CHECK(r->headers_len == 0);
    touch(r->key, r->key_len);
    touch(r->value, r->value_len);
    touch(r->headers, r->headers_len);
    walk_headers(r);
  }
}

/* The decoder's record is the reference's. */
static void
check_same(const q7_record *r, const ref_rec *f)
{
  CHECK(r->timestamp_ms == f->ts);
  CHECK(r->key == f->key && r->key_len == f->key_len);
  CHECK(r->value == f->value && r->value_len == f->value_len);
  CHECK(r->headers == f->headers && r->headers_len == f->headers_len);
}

static void
decode_value(const unsigned char *data, size_t len, int64_t base, uint32_t skip, bool verify)
{
  q7__bview v;
  int rc = q7__batch_open(&v, data, len, base, verify, "fuzz");
  if (rc) {
    CHECK(rc == Q7_ECORRUPT || rc == Q7_EVERSION);
    CHECK(q7_last_error()[0] != 0);
    return;
  }
  CHECK(v.count >= 1 && v.data == data && v.len == len && len >= Q7__BATCH_HDR);
  CHECK(v.format == 1 || v.format == 2);
  CHECK(v.format == (unsigned)(data[4] | data[5] << 8));
  CHECK(v.first_ts == (int64_t)ref_le(data + 16, 8) && v.max_ts == (int64_t)ref_le(data + 24, 8));
#if HAVE_CODECS
  q7__arena arena = { 0 };
  if (v.codec != Q7__CODEC_NONE) {
    CHECK(v.recs == NULL);
    if (skip_known && v.raw_len > (16u << 20))
      return;
    rc = q7__batch_inflate(store, &v, &arena, "fuzz", base);
    if (rc) {
      CHECK(rc == Q7_ECORRUPT || rc == Q7_ENOMEM || rc == Q7_EIO);
      CHECK(q7_last_error()[0] != 0);
      q7__arena_free(&arena);
      return;
    }
    CHECK(v.recs != NULL && v.recs_len == v.raw_len);
    touch(v.recs, v.recs_len);
  } else {
    CHECK(v.recs == data + Q7__BATCH_HDR && v.recs_len == len - Q7__BATCH_HDR);
  }
#endif

  /* The reference: records [0, nv) well formed; record nv malformed when
   * nv < lim. */
  uint32_t lim = v.count < REF_MAX ? v.count : REF_MAX;
  ref_rec *refs = malloc(lim * sizeof *refs);
  CHECK(refs != NULL);
  uint32_t nv = ref_walk(&v, refs, lim);
  bool complete = nv == v.count, bad_known = nv < lim;

  q7_record out[64];
  int n = q7__batch_decode(&v, base, skip, out, 64, "t", 3);
  CHECK(n == Q7_ECORRUPT || (n >= 0 && n <= 64));
  if (n > 0)
    check_decoded(&v, base, skip, out, n);
  /* [skip, want) is what a decode of 64 asks for. */
  uint64_t want = (uint64_t)skip + 64 < v.count ? (uint64_t)skip + 64 : v.count;
  if (skip >= v.count) {
    if (complete)
      CHECK(n == 0);
    else
      CHECK(n == 0 || n == Q7_ECORRUPT);
  } else if (want <= nv) {
    /* Every record up to the last asked for is well formed. */
    CHECK(n == (int)(want - skip));
    for (int i = 0; i < n; i++)
      check_same(&out[i], &refs[skip + (uint32_t)i]);
  } else if (bad_known && skip <= nv) {
    /* The malformed record nv is among those asked for. */
    CHECK(n == Q7_ECORRUPT);
  }
  if (n == Q7_ECORRUPT)
    CHECK(q7_last_error()[0] != 0);
  /* Decoding one at a time gives the same records. */
  if (n > 0) {
    q7_record one;
    int m = q7__batch_decode(&v, base, skip + (uint32_t)(n - 1), &one, 1, "t", 3);
    CHECK(m == 1);
    CHECK(one.offset == out[n - 1].offset && one.value == out[n - 1].value &&
          one.value_len == out[n - 1].value_len && one.key == out[n - 1].key &&
          one.timestamp_ms == out[n - 1].timestamp_ms);
  }

  /* The record iterator: positions increase and stay inside the value;
   * over well-formed records, the reference's timestamps and positions. */
  q7__riter it = { &v, Q7__BATCH_HDR, 0 };
  int64_t ts;
  size_t pos, last = 0;
  uint32_t k = 0;
  int r;
  bool packed = false; /* positions of compressed records are estimates */
#if HAVE_CODECS
  packed = v.codec != Q7__CODEC_NONE;
#endif
  while ((r = q7__riter_next(&it, &ts, &pos)) == 1) {
    CHECK(pos >= Q7__BATCH_HDR && pos < len);
    /* A record takes a size and a timestamp at the least. */
    CHECK(packed || pos + (v.format == 1 ? Q7__REC_HDR : 2) <= len);
    CHECK(k == 0 || pos > last || (packed && pos == last));
    if (k < nv) {
      CHECK(ts == refs[k].ts);
      CHECK(packed || pos == Q7__BATCH_HDR + refs[k].start);
    }
    last = pos;
    CHECK(++k <= v.count);
  }
  CHECK(r == 0 || r == Q7_ECORRUPT);
  if (r == 0)
    CHECK(k == v.count);
  if (complete)
    CHECK(r == 0);
  CHECK(k >= nv); /* it stopped at no well-formed record */
  free(refs);
#if HAVE_CODECS
  q7__arena_free(&arena);
#endif
}

/* Bytes from the input as a record, encoded by the library, must come back
 * unchanged through seal -> open (verified) -> decode, in format 2, with
 * timestamps either side of the first (zigzag deltas up to ten bytes). */
static void
roundtrip(const uint8_t *d, size_t n)
{
  if (n < 4)
    return;
  size_t kl = d[0] % 17, vl = d[1] % 200, hn = d[2] % 4;
  bool empty_key = d[2] & 4, empty_value = d[2] & 8;
  int64_t t = d[3], tss[3];
  switch (d[3] & 3) {
  case 0: /* close together, rising */
    tss[0] = t, tss[1] = t + 1, tss[2] = t + 2;
    break;
  case 1: /* down by nearly INT64_MAX, then up */
    tss[0] = INT64_MAX - t, tss[1] = t, tss[2] = INT64_MAX;
    break;
  case 2: /* up by INT64_MAX - t, then below the first */
    tss[0] = t, tss[1] = INT64_MAX, tss[2] = 0;
    break;
  default: /* some way down, then back */
    tss[0] = INT64_C(1) << 40 | t, tss[1] = t, tss[2] = INT64_C(1) << 40;
    break;
  }
  int64_t max_ts = tss[0];
  for (int i = 1; i < 3; i++)
    if (tss[i] > max_ts)
      max_ts = tss[i];
  size_t flip = (size_t)d[0] << 8 | d[3];
  d += 4;
  n -= 4;
  if (kl + vl > n)
    return;
  q7_header h[4];
  char names[4][8];
  for (size_t i = 0; i < hn; i++) {
    snprintf(names[i], sizeof names[i], "h%zu", i);
    h[i].name = names[i];
    h[i].value = i % 2 ? d : NULL;
    h[i].value_len = i % 2 ? (n < 5 ? n : 5) : 0;
  }
  q7_msg m = { .key = kl || empty_key ? d : NULL, .key_len = kl,
               .value = vl || empty_value ? d + kl : NULL, .value_len = vl,
               .headers = hn ? h : NULL, .header_count = hn };
  q7__batch b;
  CHECK(q7__batch_init(&b) == Q7_OK);
  for (int i = 0; i < 3; i++) {
    size_t hlen, bound = q7__record_size(&m, &hlen), before = b.buf.len;
    CHECK(bound > 0);
    CHECK(q7__batch_add(&b, &m, tss[i]) == Q7_OK);
    CHECK(b.buf.len - before <= bound); /* q7__record_size is an upper bound */
  }
  CHECK(b.first_ts == tss[0] && b.max_ts == max_ts && b.count == 3);
#if HAVE_CODECS
  /* Compressed (when it pays) with the codec the input picks. */
  int codec = (flip >> 8) % 3 == 0 ? Q7__CODEC_NONE : (flip >> 8) % 3 == 1 ? Q7__CODEC_LZ4
                                                                              : Q7__CODEC_ZSTD;
  q7__buf tmp = { 0 };
  CHECK(q7__batch_compress(store, &b, codec, &tmp) == Q7_OK);
  q7__buf_free(&tmp);
  q7__arena arena = { 0 };
#endif
  q7__batch_seal(&b);
  CHECK(b.buf.data[4] == Q7__BATCH_FORMAT && b.buf.data[5] == 0);
  unsigned char *copy = malloc(b.buf.len);
  memcpy(copy, b.buf.data, b.buf.len);
  q7__bview v;
  CHECK(q7__batch_open(&v, copy, b.buf.len, 100, true, "rt") == Q7_OK);
#if HAVE_CODECS
  CHECK(q7__batch_inflate(store, &v, &arena, "rt", 100) == Q7_OK);
#endif
  CHECK(v.count == 3 && v.format == 2 && v.first_ts == tss[0] && v.max_ts == max_ts);
  q7_record out[3];
  CHECK(q7__batch_decode(&v, 100, 0, out, 3, "t", 3) == 3);
  for (int i = 0; i < 3; i++) {
    CHECK(out[i].offset == 100 + i && out[i].timestamp_ms == tss[i]);
    CHECK(out[i].key_len == kl && (kl == 0 || memcmp(out[i].key, d, kl) == 0));
    CHECK((out[i].key == NULL) == (m.key == NULL));
    CHECK(out[i].value_len == vl && (vl == 0 || memcmp(out[i].value, d + kl, vl) == 0));
    CHECK((out[i].value == NULL) == (m.value == NULL));
    for (size_t j = 0; j < hn; j++) {
      const void *hv;
      size_t hl;
      CHECK(q7_record_header(&out[i], names[j], &hv, &hl) == Q7_OK);
      CHECK(hl == h[j].value_len && (hl == 0 || memcmp(hv, h[j].value, hl) == 0));
      CHECK((hv == NULL) == (h[j].value == NULL));
    }
  }
  /* The record iterator gives the same timestamps. */
  q7__riter it = { &v, Q7__BATCH_HDR, 0 };
  int64_t ts;
  size_t pos;
  for (int i = 0; i < 3; i++) {
    CHECK(q7__riter_next(&it, &ts, &pos) == 1);
    CHECK(ts == tss[i]);
  }
  CHECK(q7__riter_next(&it, &ts, &pos) == 0);
  /* Any single flipped byte is caught by the CRC. */
  size_t at = flip % b.buf.len;
  copy[at] ^= 0x01;
  CHECK(q7__batch_open(&v, copy, b.buf.len, 100, true, "rt") == Q7_ECORRUPT);
  free(copy);
#if HAVE_CODECS
  q7__arena_free(&arena);
#endif
  q7__batch_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
  if (n < 10)
    return 0;
  uint8_t flags = d[0];
  uint64_t ub = 0;
  for (int i = 0; i < 8; i++)
    ub |= (uint64_t)d[1 + i] << (8 * i);
  /* Bases as the store makes them: offsets below 2^62. */
  int64_t base = (int64_t)(ub & ((UINT64_C(1) << 62) - 1));
  uint32_t skip = d[9];
  const uint8_t *val = d + 10;
  size_t len = n - 10;

  unsigned char *buf = calloc(len ? len : 1, 1);
  if (len)
    memcpy(buf, val, len);
  decode_value(buf, len, base, skip, false);
  if (flags & 1) {
    /* With a correct CRC, so the verified path gets past the check. */
    if (len >= 4) {
      uint32_t c = q7__crc32c(0, buf + 4, len - 4);
      memcpy(buf, &c, 4);
    }
    decode_value(buf, len, base, skip, true);
  }
  free(buf);

  /* The header iterator on the raw bytes as a header block. */
  unsigned char *hb = calloc(len ? len : 1, 1);
  if (len)
    memcpy(hb, val, len);
  q7_record r = { .topic = "t", .offset = base, .headers = len ? hb : NULL, .headers_len = len };
  walk_headers(&r);
  free(hb);

  if (flags & 2)
    roundtrip(val, len);
  return 0;
}
