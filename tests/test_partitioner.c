/* test_partitioner.c - Kafka's murmur2 partitioner (lib/partitioner.c). */
#include "helpers.h"
#include "q7_int.h"

#include <limits.h>

typedef struct {
  const char *key;
  size_t len;
  int32_t hash;
} vector;

/* Kafka's own org.apache.kafka.common.utils.UtilsTest#testMurmur2. */
static const vector kafka[] = {
  { "21", 2, -973932308 },
  { "foobar", 6, -790332482 },
  { "a-little-bit-long-string", 24, -985981536 },
  { "a-little-bit-longer-string", 26, -1486304829 },
  { "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 48, -58897971 },
  { "abc", 3, 479470107 },
};

/* Computed with a transcription of Kafka's Utils.murmur2 that reproduces the
 * vectors above: the empty key, tails of length 1, bytes >= 0x80 (Java's
 * bytes are signed; Kafka masks them) and a NUL byte. */
static const vector more[] = {
  { "", 0, 275646681 },
  { "a", 1, -1563381124 },
  { "hello", 5, 2132663229 },
  { "\x80\xff\xfe\x81\x90", 5, -1856869335 },
  { "\0", 1, 375494588 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static int32_t
expect_partition(int32_t h, int32_t n)
{
  return (int32_t)(((uint32_t)h & 0x7fffffffu) % (uint32_t)n);
}

Test(partitioner, murmur2_matches_kafka_vectors)
{
  for (size_t i = 0; i < N(kafka); i++)
    cr_assert_eq(q7__murmur2(kafka[i].key, kafka[i].len), kafka[i].hash, "murmur2(\"%s\")",
                 kafka[i].key);
}

Test(partitioner, murmur2_of_abc_bytes)
{
  const unsigned char abc[] = { 'a', 'b', 'c' };
  cr_assert_eq(q7__murmur2(abc, sizeof abc), 479470107);
}

Test(partitioner, murmur2_of_empty_short_and_high_bit_keys)
{
  for (size_t i = 0; i < N(more); i++)
    cr_assert_eq(q7__murmur2(more[i].key, more[i].len), more[i].hash, "vector %zu", i);
}

Test(partitioner, murmur2_reads_only_len_bytes)
{
  /* The bytes after the key do not matter. */
  char a[] = "foobarXYZ", b[] = "foobar123";
  cr_assert_eq(q7__murmur2(a, 6), -790332482);
  cr_assert_eq(q7__murmur2(b, 6), -790332482);
}

Test(partitioner, murmur2_does_not_depend_on_alignment)
{
  const char *s = "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8";
  char *buf = malloc(64);
  for (size_t off = 0; off < 8; off++) {
    memcpy(buf + off, s, 48);
    cr_assert_eq(q7__murmur2(buf + off, 48), -58897971, "offset %zu", off);
  }
  free(buf);
}

Test(partitioner, partition_for_key_is_positive_hash_modulo_n)
{
  const int32_t ns[] = { 1, 2, 3, 4, 6, 7, 10, 12, 16, 100, 1000, 9973, 10000, INT32_MAX };
  for (size_t i = 0; i < N(kafka); i++)
    for (size_t j = 0; j < N(ns); j++) {
      int32_t want = expect_partition(kafka[i].hash, ns[j]);
      int32_t got = q7_partition_for_key(kafka[i].key, kafka[i].len, ns[j]);
      cr_assert_eq(got, want, "key \"%s\", %d partitions: %d, want %d", kafka[i].key, ns[j], got,
                   want);
      cr_assert(got >= 0 && got < ns[j]);
    }
  for (size_t i = 0; i < N(more); i++)
    for (size_t j = 0; j < N(ns); j++)
      cr_assert_eq(q7_partition_for_key(more[i].key, more[i].len, ns[j]),
                   expect_partition(more[i].hash, ns[j]), "vector %zu, %d partitions", i, ns[j]);
}

Test(partitioner, partition_for_key_known_placements)
{
  /* Worked by hand from the vectors: toPositive, then modulo. */
  cr_assert_eq(q7_partition_for_key("21", 2, 10), 0);
  cr_assert_eq(q7_partition_for_key("foobar", 6, 10), 6);
  cr_assert_eq(q7_partition_for_key("a-little-bit-longer-string", 26, 10), 9);
  cr_assert_eq(q7_partition_for_key("abc", 3, 10), 7);
  cr_assert_eq(q7_partition_for_key("hello", 5, 3), 0);
  /* A negative hash is made positive by masking, not by abs(). */
  cr_assert_eq(q7_partition_for_key("21", 2, 7), (int32_t)((-973932308 & 0x7fffffff) % 7));
  cr_assert_neq((-973932308 & 0x7fffffff) % 7, (973932308 % 7));
}

Test(partitioner, one_partition_is_always_zero)
{
  for (size_t i = 0; i < N(kafka); i++)
    cr_assert_eq(q7_partition_for_key(kafka[i].key, kafka[i].len, 1), 0);
}

Test(partitioner, empty_key_is_a_key)
{
  cr_assert_eq(q7_partition_for_key("", 0, 10), expect_partition(275646681, 10));
  cr_assert_eq(q7_partition_for_key("", 0, 7), expect_partition(275646681, 7));
  /* NULL with length 0 is the empty key, not an error. */
  cr_assert_eq(q7_partition_for_key(NULL, 0, 10), expect_partition(275646681, 10));
  cr_assert_eq(q7_partition_for_key(NULL, 0, 7), expect_partition(275646681, 7));
}

Test(partitioner, fewer_than_one_partition_is_einval)
{
  const int32_t bad[] = { 0, -1, -2, INT32_MIN };
  for (size_t i = 0; i < N(bad); i++) {
    Q7_FAILS_WITH(Q7_EINVAL, q7_partition_for_key("abc", 3, bad[i]));
    Q7_FAILS_WITH(Q7_EINVAL, q7_partition_for_key("", 0, bad[i]));
  }
}

Test(partitioner, null_key_with_length_is_einval)
{
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_for_key(NULL, 1, 10));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_for_key(NULL, 3, 1));
  Q7_FAILS_WITH(Q7_EINVAL, q7_partition_for_key(NULL, SIZE_MAX, 10));
}

Test(partitioner, spreads_keys_over_partitions)
{
  int count[8] = { 0 };
  char k[16];
  for (int i = 0; i < 8000; i++) {
    int n = snprintf(k, sizeof k, "key-%d", i);
    int32_t p = q7_partition_for_key(k, (size_t)n, 8);
    cr_assert(p >= 0 && p < 8);
    count[p]++;
  }
  for (int p = 0; p < 8; p++)
    cr_assert(count[p] > 800 && count[p] < 1200, "partition %d got %d of 8000 keys", p,
              count[p]);
}
