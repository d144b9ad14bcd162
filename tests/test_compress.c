/* test_compress.c - lz4 and zstd batches: round trips, topic override,
 * reads inside a batch, retention and time lookup over compressed batches,
 * corrupt compressed data. */
#include "helpers.h"
#include "q7_int.h"

#include <lmdb.h>

static char *dir;
static q7 *q;

static void
setup(void)
{
  dir = tmpdir_new();
  q7_conf *c = q7_conf_new();
  q7_conf_set(c, "sync", "false");
  q7_conf_set(c, "retention.check.interval.ms", "0");
  Q7_OK_OR_FAIL(q7_open(&q, dir, c));
  q7_conf_destroy(c);
}

static void
teardown(void)
{
  cr_assert_eq(q7_close(q), Q7_OK, "%s", q7_last_error());
  tmpdir_rm(dir);
}

TestSuite(compress, .init = setup, .fini = teardown, .timeout = 60);

/* JSON-like text: compressible, like real payloads. */
static int
payload(char *buf, size_t cap, int i)
{
  return snprintf(buf, cap, "{\"user\":\"user-%d\",\"event\":\"click\",\"page\":\"/products/%d\","
                  "\"ts\":%d,\"tags\":[\"a\",\"b\",\"c\"]}", i % 97, i % 13, i);
}

static int64_t
produce(const char *topic, const char *producer_codec, int n)
{
  q7_topic *t;
  q7_producer *p;
  q7_conf *pc = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(pc, "compression.type", producer_codec));
  q7_conf_set(pc, "batch.size", "100000");
  q7_conf_set(pc, "linger.ms", "100000");
  Q7_OK_OR_FAIL(q7_topic_open(q, topic, &t));
  Q7_OK_OR_FAIL(q7_producer_new(q, pc, &p));
  q7_conf_destroy(pc);
  for (int i = 0; i < n; i++) {
    char v[256], k[32];
    int vl = payload(v, sizeof v, i), kl = snprintf(k, sizeof k, "k%d", i);
    q7_header h = { "h", "hv", 2 };
    q7_msg m = { .topic = t, .partition = 0, .key = k, .key_len = (size_t)kl, .value = v,
                 .value_len = (size_t)vl, .timestamp_ms = 1000 + i, .headers = &h,
                 .header_count = 1 };
    Q7_OK_OR_FAIL(q7_producer_send(p, &m));
  }
  q7_msg one = { .topic = t, .partition = 0, .value = "tail", .value_len = 4, .timestamp_ms = 1000 + n };
  int64_t off;
  Q7_OK_OR_FAIL(q7_producer_send_sync(p, &one, NULL, &off)); /* group commit path */
  Q7_OK_OR_FAIL(q7_producer_close(p));
  q7_topic_close(t);
  return off;
}

/* The codec byte of the first stored batch of a partition. */
static int
stored_codec(const char *topic, size_t *stored_bytes)
{
  char path[4200];
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  snprintf(path, sizeof path, "%s/topics/%s/0", dir, topic);
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_mapsize(env, 1 << 30);
  cr_assert_eq(mdb_env_open(env, path, MDB_RDONLY | MDB_NOTLS, 0600), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
  cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
  int codec = -1;
  *stored_bytes = 0;
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    if (codec < 0)
      codec = ((const unsigned char *)v.mv_data)[6];
    *stored_bytes += v.mv_size;
  }
  mdb_cursor_close(cur);
  mdb_txn_abort(txn);
  mdb_env_close(env);
  return codec;
}

static void
check_all(const char *topic, int n)
{
  q7_consumer *c;
  q7_conf *cc = q7_conf_new();
  q7_conf_set(cc, "max.poll.records", "700");
  Q7_OK_OR_FAIL(q7_consumer_new(q, NULL, cc, &c));
  q7_conf_destroy(cc);
  Q7_OK_OR_FAIL(q7_consumer_assign(c, topic, 0, 17)); /* start inside a batch */
  q7_record r[700];
  int got = 17;
  while (got < n) {
    int k = q7_consumer_poll(c, r, 700, 1000);
    cr_assert_gt(k, 0, "poll -> %d (%s)", k, q7_last_error());
    for (int i = 0; i < k && got < n; i++, got++) {
      char v[256], kk[32];
      int vl = payload(v, sizeof v, got), kl = snprintf(kk, sizeof kk, "k%d", got);
      cr_assert_eq(r[i].offset, got);
      cr_assert_eq(r[i].timestamp_ms, 1000 + got);
      cr_assert(r[i].value_len == (size_t)vl && !memcmp(r[i].value, v, (size_t)vl),
                "value of %d", got);
      cr_assert(r[i].key_len == (size_t)kl && !memcmp(r[i].key, kk, (size_t)kl));
      const void *hv;
      size_t hl;
      Q7_OK_OR_FAIL(q7_record_header(&r[i], "h", &hv, &hl));
      cr_assert(hl == 2 && !memcmp(hv, "hv", 2));
    }
  }
  q7_consumer_close(c);
}

static void
round_trip(const char *codec_name, int codec)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "t", 1, NULL));
  int n = 5000;
  int64_t tail = produce("t", codec_name, n);
  cr_assert_eq(tail, n);
  size_t stored;
  cr_assert_eq(stored_codec("t", &stored), codec, "stored codec");
  cr_log_info("%s: %d records of ~100 B stored in %zu bytes", codec_name, n, stored);
  if (codec)
    cr_assert_lt(stored, (size_t)n * 60, "%s compressed %zu bytes", codec_name, stored);
  check_all("t", n);
}

Test(compress, lz4_round_trip_byte_for_byte) { round_trip("lz4", Q7__CODEC_LZ4); }
Test(compress, zstd_round_trip_byte_for_byte) { round_trip("zstd", Q7__CODEC_ZSTD); }
Test(compress, none_stays_uncompressed) { round_trip("none", Q7__CODEC_NONE); }

Test(compress, topic_compression_overrides_the_producer)
{
  q7_conf *tc = q7_conf_new();
  Q7_OK_OR_FAIL(q7_conf_set(tc, "compression.type", "zstd"));
  Q7_OK_OR_FAIL(q7_topic_create(q, "z", 1, tc));
  q7_conf_destroy(tc);
  produce("z", "lz4", 2000);
  size_t stored;
  cr_assert_eq(stored_codec("z", &stored), Q7__CODEC_ZSTD);
  check_all("z", 2000);
}

Test(compress, bad_codec_name_is_einval)
{
  q7_conf *c = q7_conf_new();
  Q7_FAILS_WITH(Q7_EINVAL, q7_conf_set(c, "compression.type", "snappy"));
  cr_assert(strstr(q7_last_error(), "compression.type"));
  q7_conf_destroy(c);
}

Test(compress, retention_and_time_lookup_read_compressed_batches)
{
  q7_conf *tc = q7_conf_new();
  q7_conf_set(tc, "retention.ms", "1000");
  Q7_OK_OR_FAIL(q7_topic_create(q, "r", 1, tc));
  q7_conf_destroy(tc);
  produce("r", "zstd", 3000); /* timestamps 1000 .. 3999 */
  q7_topic *t;
  q7_partition *p;
  int64_t off, removed, ls, hw;
  Q7_OK_OR_FAIL(q7_topic_open(q, "r", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_OK_OR_FAIL(q7_offset_for_time(p, 2500, &off));
  cr_assert_eq(off, 1500);
  Q7_OK_OR_FAIL(q7_retention_sweep(q, 3200, &removed)); /* cutoff 2200 */
  cr_assert_eq(removed, 1200);
  Q7_OK_OR_FAIL(q7_partition_offsets(p, &ls, &hw));
  cr_assert_eq(ls, 1200);
  q7_record r[4];
  cr_assert_eq(q7_partition_read(p, 1200, r, 4), 4);
  cr_assert_eq(r[0].timestamp_ms, 2200);
  q7_topic_close(t);
}

Test(compress, garbage_compressed_data_with_a_good_crc_is_ecorrupt)
{
  Q7_OK_OR_FAIL(q7_topic_create(q, "g", 1, NULL));
  produce("g", "lz4", 500);
  /* Rewrite the first batch's compressed bytes and fix its CRC, so only
   * decompression can notice. */
  Q7_OK_OR_FAIL(q7_close(q));
  q = NULL;
  char path[4200];
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  MDB_cursor *cur;
  MDB_val k, v;
  snprintf(path, sizeof path, "%s/topics/g/0", dir);
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 4);
  mdb_env_set_mapsize(env, 1 << 30);
  cr_assert_eq(mdb_env_open(env, path, 0, 0600), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
  cr_assert_eq(mdb_cursor_open(txn, dbi, &cur), 0);
  cr_assert_eq(mdb_cursor_get(cur, &k, &v, MDB_FIRST), 0);
  unsigned char *copy = malloc(v.mv_size);
  memcpy(copy, v.mv_data, v.mv_size);
  for (size_t i = Q7__BATCH_HDR + 8; i < v.mv_size; i += 7)
    copy[i] ^= 0x5a;
  uint32_t crc = q7__crc32c(0, copy + 4, v.mv_size - 4);
  memcpy(copy, &crc, 4);
  MDB_val nv = { v.mv_size, copy };
  cr_assert_eq(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), 0);
  mdb_cursor_close(cur);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  free(copy);
  Q7_OK_OR_FAIL(q7_open(&q, dir, NULL));
  q7_topic *t;
  q7_partition *p;
  q7_record r[8];
  Q7_OK_OR_FAIL(q7_topic_open(q, "g", &t));
  Q7_OK_OR_FAIL(q7_topic_partition(t, 0, &p));
  Q7_FAILS_WITH(Q7_ECORRUPT, q7_partition_read(p, 0, r, 8));
  cr_assert(strstr(q7_last_error(), "offset 0"), "%s", q7_last_error());
  q7_topic_close(t);
}
