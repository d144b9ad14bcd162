/* crc32c.c - CRC-32C (Castagnoli), as Kafka's record batches use.
 *
 * SSE4.2's crc32 instruction when the CPU has it (8 bytes a step), else
 * slicing-by-8 over tables computed at compile time of the polynomial. */
#include "q7_int.h"

#define POLY 0x82f63b78u

/* The CRC of one byte: eight bit steps of the reflected polynomial. */
static uint32_t
step8(uint32_t c)
{
  for (int i = 0; i < 8; i++)
    c = (c >> 1) ^ (POLY & (0u - (c & 1u)));
  return c;
}

/* Table row k: the CRC of byte b followed by k zero bytes. */
static uint32_t
tab(int k, uint32_t b)
{
  uint32_t c = step8(b);
  for (int i = 0; i < k; i++)
    c = (c >> 8) ^ step8(c & 0xff);
  return c;
}

typedef struct { uint32_t t[8][256]; } crc_tables;

static void
tables_init(crc_tables *ct)
{
  for (int k = 0; k < 8; k++)
    for (uint32_t b = 0; b < 256; b++)
      ct->t[k][b] = tab(k, b);
}

static uint32_t
crc_sw(uint32_t crc, const unsigned char *p, size_t len)
{
  /* Computed per call: the software path is a fallback for CPUs without
   * SSE4.2 and for tests; no mutable global state is kept. */
  static _Thread_local crc_tables ct;
  static _Thread_local int ready;
  if (!ready) {
    tables_init(&ct);
    ready = 1;
  }
  while (len >= 8) {
    uint32_t lo, hi;
    memcpy(&lo, p, 4);
    memcpy(&hi, p + 4, 4);
    lo ^= crc;
    crc = ct.t[7][lo & 0xff] ^ ct.t[6][(lo >> 8) & 0xff] ^ ct.t[5][(lo >> 16) & 0xff] ^
          ct.t[4][lo >> 24] ^ ct.t[3][hi & 0xff] ^ ct.t[2][(hi >> 8) & 0xff] ^
          ct.t[1][(hi >> 16) & 0xff] ^ ct.t[0][hi >> 24];
    p += 8;
    len -= 8;
  }
  while (len--)
    crc = (crc >> 8) ^ ct.t[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/* Three streams: the crc32 instruction has a latency of 3 cycles and a
 * throughput of 1, so one chain runs at a third of the speed the CPU has.
 * Blocks of STRIDE bytes are checked in three independent chains and joined
 * with the zero-extension operator: the CRC register after a block A
 * followed by B equals shift(A's register, |B|) ^ B's register from 0. */
#define STRIDE 512

/* shift(x) = x followed by STRIDE zero bytes, as four byte tables, built
 * by linearity from 32 basis vectors. */
typedef struct { uint32_t t[4][256]; } shift_tables;

__attribute__((target("sse4.2"))) static void
shift_init(shift_tables *st)
{
  for (int k = 0; k < 4; k++) {
    uint32_t basis[8];
    for (int i = 0; i < 8; i++) {
      uint64_t v = 1u << (8 * k + i);
      for (int z = 0; z < STRIDE / 8; z++)
        v = _mm_crc32_u64(v, 0);
      basis[i] = (uint32_t)v;
    }
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t v = 0;
      for (int i = 0; i < 8; i++)
        if (b >> i & 1)
          v ^= basis[i];
      st->t[k][b] = v;
    }
  }
}

static uint32_t
shift(const shift_tables *st, uint32_t x)
{
  return st->t[0][x & 0xff] ^ st->t[1][(x >> 8) & 0xff] ^ st->t[2][(x >> 16) & 0xff] ^
         st->t[3][x >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t
crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
  static _Thread_local shift_tables st;
  static _Thread_local int ready;
  uint64_t c = crc;
  if (len >= 3 * STRIDE) {
    if (!ready) {
      shift_init(&st);
      ready = 1;
    }
    while (len >= 3 * STRIDE) {
      uint64_t c1 = 0, c2 = 0;
      for (size_t i = 0; i < STRIDE; i += 8) {
        uint64_t a, b, d;
        memcpy(&a, p + i, 8);
        memcpy(&b, p + STRIDE + i, 8);
        memcpy(&d, p + 2 * STRIDE + i, 8);
        c = _mm_crc32_u64(c, a);
        c1 = _mm_crc32_u64(c1, b);
        c2 = _mm_crc32_u64(c2, d);
      }
      c = shift(&st, shift(&st, (uint32_t)c) ^ (uint32_t)c1) ^ (uint32_t)c2;
      p += 3 * STRIDE;
      len -= 3 * STRIDE;
    }
  }
  while (len >= 8) {
    uint64_t v;
    memcpy(&v, p, 8);
    c = _mm_crc32_u64(c, v);
    p += 8;
    len -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (len--)
    c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

uint32_t
q7__crc32c(uint32_t crc, const void *buf, size_t len)
{
  crc = ~crc;
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2"))
    return ~crc_hw(crc, buf, len);
#endif
  return ~crc_sw(crc, buf, len);
}
