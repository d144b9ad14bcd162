/* partitioner.c - Kafka's Java default partitioner, bit for bit:
 * murmur2 (seed 0x9747b28c) of the key bytes, toPositive(h) % partitions. */
#include "q7_int.h"

int32_t
q7__murmur2(const void *key, size_t len)
{
  const unsigned char *d = key;
  const uint32_t m = 0x5bd1e995u;
  const int r = 24;
  /* Java's int length: keys longer than 2^31 do not exist there. */
  uint32_t h = 0x9747b28cu ^ (uint32_t)len;
  size_t n4 = len / 4;

  for (size_t i = 0; i < n4; i++) {
    const unsigned char *p = d + i * 4;
    uint32_t k = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    k *= m;
    k ^= k >> r;
    k *= m;
    h *= m;
    h ^= k;
  }
  const unsigned char *t = d + (len & ~(size_t)3);
  switch (len % 4) {
  case 3: h ^= (uint32_t)t[2] << 16; /* fall through */
  case 2: h ^= (uint32_t)t[1] << 8;  /* fall through */
  case 1: h ^= (uint32_t)t[0]; h *= m;
  }
  h ^= h >> 13;
  h *= m;
  h ^= h >> 15;
  return (int32_t)h;
}

int32_t
q7_partition_for_key(const void *key, size_t len, int32_t partitions)
{
  if (partitions < 1)
    return q7__err(Q7_EINVAL, "q7_partition_for_key: partitions must be >= 1, got %d",
                   (int)partitions);
  if (!key && len)
    return q7__err(Q7_EINVAL, "q7_partition_for_key: NULL key with length %zu", len);
  uint32_t h = (uint32_t)q7__murmur2(key ? key : "", len);
  return (int32_t)((h & 0x7fffffffu) % (uint32_t)partitions);
}
