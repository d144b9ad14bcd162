#!/usr/bin/env python3
"""test_python.py BUILD_DIR - the Python ctypes binding (examples/python/q7.py)
against BUILD_DIR/libq7.so.0, and the Python quickstart.

Run by `make check` from the repository root as
`python3 tests/test_python.py build`; exits non-zero on failure, and the last
line of output is unittest's summary.
"""

import gc
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import weakref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = "build"
if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    BUILD = sys.argv.pop(1)
LIB = os.path.abspath(os.path.join(BUILD, "libq7.so.0"))
if not os.path.exists(LIB) and not os.path.isabs(BUILD):
    LIB = os.path.join(ROOT, BUILD, "libq7.so.0")
EXAMPLES = os.path.join(ROOT, "examples", "python")

sys.path.insert(0, EXAMPLES)
import q7  # noqa: E402

NOW = 1_700_000_000_123  # the store clock of the tests that fix it


def setUpModule():
    if not os.path.exists(LIB):
        raise RuntimeError("no library at %s (build it first: make B=%s all)" % (LIB, BUILD))
    q7.load(LIB)


def murmur2(data):
    """Kafka's Utils.murmur2, in Python (as a signed 32-bit int)."""
    m, M = 0x5BD1E995, 0xFFFFFFFF
    h = (0x9747B28C ^ len(data)) & M
    n4 = len(data) // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & M
        k ^= k >> 24
        k = (k * m) & M
        h = (h * m) & M
        h ^= k
    tail, rem = data[4 * n4:], len(data) % 4
    if rem == 3:
        h ^= tail[2] << 16
    if rem >= 2:
        h ^= tail[1] << 8
    if rem >= 1:
        h ^= tail[0]
        h = (h * m) & M
    h ^= h >> 13
    h = (h * m) & M
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


class Token:
    """An opaque object nobody but the producer references."""

    def __init__(self, i):
        self.i = i


class Q7TestCase(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="q7-py-")
        self.addCleanup(tmp.cleanup)
        self.tmp = tmp.name

    def closing(self, handle):
        """Close @handle at the end of the test (cleanups run last-first,
        so children close before their store)."""
        self.addCleanup(handle.close)
        return handle

    def open_store(self, name="store", conf=None, clock=None):
        conf = dict({"sync": False}, **(conf or {}))
        return self.closing(q7.Store(os.path.join(self.tmp, name), conf, clock=clock))

    def assertQ7Error(self, code, fn, *args, **kwargs):
        with self.assertRaises(q7.Q7Error) as cm:
            fn(*args, **kwargs)
        self.assertEqual(cm.exception.code, code, str(cm.exception))
        return cm.exception

    def drain(self, consumer, want, timeout_s=10.0):
        """Poll until @want records came (or the time is up)."""
        got, deadline = [], time.monotonic() + timeout_s
        while len(got) < want and time.monotonic() < deadline:
            got += consumer.poll(1000, timeout_ms=200)
        return got


class TestLibrary(Q7TestCase):
    def test_version_matches_header(self):
        with open(os.path.join(ROOT, "include", "q7.h")) as f:
            h = f.read()
        parts = [re.search(r"#define Q7_VERSION_%s (\d+)" % w, h).group(1)
                 for w in ("MAJOR", "MINOR", "PATCH")]
        self.assertEqual(q7.version(), ".".join(parts))

    def test_pinned_error_codes_and_text(self):
        self.assertEqual((q7.EINVAL, q7.ENOENT, q7.EEXIST, q7.ERANGE, q7.ETOOBIG, q7.EBUSY,
                          q7.ESTATE), (-1, -2, -3, -4, -5, -10, -14))
        self.assertEqual(q7.strerror(q7.EINVAL), "invalid argument")
        self.assertEqual(q7.strerror(-12345), "unknown error")

    def test_struct_layouts(self):
        # LP64 offsets of the frozen structs, from q7.h.
        self.assertEqual([(f, getattr(q7.q7_record, f).offset) for f, _ in q7.q7_record._fields_],
                         [("topic", 0), ("partition", 8), ("offset", 16), ("timestamp_ms", 24),
                          ("key", 32), ("key_len", 40), ("value", 48), ("value_len", 56),
                          ("headers", 64), ("headers_len", 72)])
        self.assertEqual([(f, getattr(q7.q7_msg, f).offset) for f, _ in q7.q7_msg._fields_],
                         [("topic", 0), ("partition", 8), ("key", 16), ("key_len", 24),
                          ("value", 32), ("value_len", 40), ("timestamp_ms", 48),
                          ("headers", 56), ("header_count", 64), ("opaque", 72)])
        self.assertEqual(q7.ctypes.sizeof(q7.q7_header), 24)
        self.assertEqual(q7.q7_delivery.err.offset, 24)
        self.assertEqual(q7.q7_delivery.opaque.offset, 32)


class TestRoundTrip(Q7TestCase):
    # key, value, headers, partition, timestamp_ms (None: the store clock)
    RECORDS = [
        (b"user-1", b"hello", [("trace", b"abc"), ("empty", b""), ("null", None)], -1, None),
        (bytes(range(256)), bytes(range(255, -1, -1)) * 4,
         [("bin", b"\x00\x01\x00\xff"), ("dup", b"first"), ("dup", b"second")], -1, 1),
        (None, b"no key", [], 1, 2 ** 62),
        (b"", b"", [], 2, None),
        (b"tomb", None, [("reason", b"deleted")], -1, 1_600_000_000_000),
        ("ünïcode-key".encode(), "välue ✓".encode(), [("ключ", "значение".encode())], -1,
         None),
        (b"big", bytes(range(251)) * 800, [], -1, None),
        (b"k\x00k", b"a\x00b\x00", [("h\x7f", b"\x00")], 0, 7),
        (None, None, [], 2, None),
    ]

    def test_send_poll_commit_round_trip(self):
        store = self.open_store(clock=lambda: NOW)
        store.create_topic("rt", 3)
        topic = self.closing(store.topic("rt"))
        self.assertEqual((topic.name, topic.partition_count), ("rt", 3))
        reports = []
        producer = self.closing(store.producer({"linger.ms": 60000}, on_delivery=reports.append))

        where = {}  # record index -> (partition, offset)
        for i, (key, value, headers, part, ts) in enumerate(self.RECORDS):
            kwargs = dict(key=key, partition=part, timestamp_ms=ts or 0, headers=headers)
            if i % 2:
                where[i] = producer.send_sync(topic, value, **kwargs)
            else:
                producer.send(topic, value, opaque=i, **kwargs)
        producer.flush()
        sent = [i for i in range(len(self.RECORDS)) if i % 2 == 0]
        self.assertEqual(sorted(r.opaque for r in reports), sent)
        for r in reports:
            self.assertEqual(r.err, 0)
            where[r.opaque] = (r.partition, r.offset)

        for i, (key, _, _, part, _) in enumerate(self.RECORDS):
            want = part if part >= 0 else q7.partition_for_key(key, 3)
            self.assertEqual(where[i][0], want, "record %d" % i)
        self.assertEqual(len(set(where.values())), len(self.RECORDS))

        consumer = store.consumer("rt-group", {"auto.offset.reset": "earliest",
                                               "enable.auto.commit": False})
        self.closing(consumer)
        consumer.subscribe("rt")
        got = self.drain(consumer, len(self.RECORDS))
        self.assertEqual(consumer.poll(timeout_ms=100), [])  # nothing twice
        self.assertEqual(sorted(consumer.assignment()), [("rt", 0), ("rt", 1), ("rt", 2)])
        consumer.commit()
        consumer.close()  # records must be Python copies, valid after this

        by_place = {(r.partition, r.offset): r for r in got}
        self.assertEqual(len(by_place), len(got))
        self.assertEqual(sorted(by_place), sorted(where.values()))
        for i, (key, value, headers, part, ts) in enumerate(self.RECORDS):
            r = by_place[where[i]]
            with self.subTest(record=i):
                self.assertEqual(r.topic, "rt")
                self.assertIs(type(r.key), bytes if key is not None else type(None))
                self.assertIs(type(r.value), bytes if value is not None else type(None))
                self.assertEqual(r.key, key)
                self.assertEqual(r.value, value)
                self.assertEqual(r.timestamp_ms, ts if ts else NOW)
                self.assertEqual(r.headers, headers)
                for name, hv in headers:
                    self.assertEqual(r.header(name), dict(reversed(headers))[name])
                with self.assertRaises(KeyError):
                    r.header("absent")

        # Partition reads see the same bytes; offsets are dense per partition.
        for p in range(3):
            mine = sorted(o for (pp, o) in where.values() if pp == p)
            self.assertEqual(mine, list(range(len(mine))))
            self.assertEqual(topic.offsets(p), (0, len(mine)))
            read = topic.read(p, 0, 100)
            self.assertEqual([(r.offset, r.key, r.value, r.timestamp_ms, r.headers_raw)
                              for r in read],
                             [(r.offset, r.key, r.value, r.timestamp_ms, r.headers_raw)
                              for r in sorted((by_place[k] for k in by_place if k[0] == p),
                                              key=lambda r: r.offset)])
            self.assertEqual(store.committed("rt-group", "rt", p), len(mine))
            self.assertEqual(store.lag("rt-group", "rt", p), 0)

        # Lag follows the high watermark.
        producer.send_sync(topic, b"x", partition=1)
        producer.send_sync(topic, b"y", partition=1)
        self.assertEqual(store.lag("rt-group", "rt", 1), 2)
        self.assertEqual(store.lag("rt-group", "rt", 0), 0)
        self.assertEqual(store.lag_max("rt-group", "rt"), (2, 1))

    def test_manual_assign_seek_and_commit_offset(self):
        store = self.open_store()
        store.create_topic("m", 2)
        topic = self.closing(store.topic("m"))
        producer = self.closing(store.producer())
        for i in range(10):
            producer.send_sync(topic, b"v%d" % i, partition=1)
        c = self.closing(store.consumer("mg"))
        c.assign("m", 1, q7.OFFSET_BEGINNING)
        self.assertEqual([r.value for r in self.drain(c, 10)], [b"v%d" % i for i in range(10)])
        self.assertEqual(c.position("m", 1), 10)
        c.seek("m", 1, 7)
        self.assertEqual([r.offset for r in c.poll(timeout_ms=1000)], [7, 8, 9])
        c.commit("m", 1, 4)
        self.assertEqual(store.committed("mg", "m", 1), 4)
        self.assertEqual(store.lag("mg", "m", 1), 6)


class TestDelivery(Q7TestCase):
    def test_each_record_reported_once_with_opaque_and_offset(self):
        store = self.open_store()
        store.create_topic("dr", 3)
        topic = self.closing(store.topic("dr"))
        reports, threads = [], set()

        def on_delivery(d):
            reports.append(d)
            threads.add(threading.get_ident())

        # Small batches commit while sending; the rest wait for flush.
        producer = self.closing(store.producer({"linger.ms": 60000, "batch.size": 2048},
                                               on_delivery=on_delivery))
        n = 1000
        alive = []
        for i in range(n):
            token = Token(i)
            alive.append(weakref.ref(token))
            producer.send(topic, b"value-%d" % i, key=b"key-%d" % (i % 37), opaque=token)
        del token
        gc.collect()
        self.assertTrue(all(w() is not None for w in alive))  # the binding holds them
        self.assertGreater(len(reports), 0)                   # full batches reported at send
        self.assertEqual(producer.in_flight, n - len(reports))
        producer.flush()

        self.assertEqual(len(reports), n)
        self.assertEqual(sorted(d.opaque.i for d in reports), list(range(n)))
        self.assertEqual(threads, {threading.get_ident()})
        per = {0: [], 1: [], 2: []}
        for d in reports:
            i = d.opaque.i
            self.assertEqual((d.topic, d.err, d.error), ("dr", 0, None))
            self.assertEqual(d.partition, q7.partition_for_key(b"key-%d" % (i % 37), 3))
            per[d.partition].append(d.offset)
        for p, offsets in per.items():
            self.assertEqual(sorted(offsets), list(range(len(offsets))))
            self.assertEqual(topic.offsets(p)[1], len(offsets))
        for d in reports[::97]:
            (r,) = topic.read(d.partition, d.offset, 1)
            self.assertEqual(r.value, b"value-%d" % d.opaque.i)

        # Nothing more: not on poll, not for send_sync, not for a rejected
        # record, not on close.
        self.assertEqual(producer.poll(0), 0)
        producer.send_sync(topic, b"sync", key=b"key-1")
        self.assertQ7Error(q7.ENOENT, producer.send, topic, b"x", partition=3, opaque=Token(-1))
        producer.flush()
        self.assertEqual(producer.in_flight, 0)
        producer.close()
        self.assertEqual(len(reports), n)

        del reports[:], per, d, r
        gc.collect()
        self.assertEqual([w for w in alive if w() is not None], [])  # released once reported

    def test_send_batch_reports_each_record_once(self):
        store = self.open_store(clock=lambda: NOW)
        store.create_topic("batch", 2)
        topic = self.closing(store.topic("batch"))
        reports = []
        # Small batches commit during the call; the rest wait for flush.
        producer = self.closing(store.producer({"linger.ms": 60000, "batch.size": 2048},
                                               on_delivery=reports.append))
        n = 500
        alive, records = [], []
        for i in range(n):
            token = Token(i)
            alive.append(weakref.ref(token))
            headers = [("i", b"%d" % i)] if i % 5 == 0 else None
            if i % 2:  # tuples, as send()'s positional arguments
                records.append((topic, b"value-%d" % i, b"key-%d" % i, i % 3 % 2, 0, headers,
                                token))
            else:      # dicts, as its keyword arguments
                records.append(dict(topic=topic, value=b"value-%d" % i, key=b"key-%d" % i,
                                    partition=i % 3 % 2, headers=headers, opaque=token))
        self.assertEqual(producer.send_batch(iter(records)), n)
        del records, token
        gc.collect()
        self.assertTrue(all(w() is not None for w in alive))  # the binding holds them
        self.assertGreater(len(reports), 0)                   # full batches reported in the call
        self.assertEqual(producer.in_flight, n - len(reports))
        producer.flush()
        self.assertEqual(producer.in_flight, 0)

        self.assertEqual(len(reports), n)
        self.assertEqual(sorted(d.opaque.i for d in reports), list(range(n)))
        per = {0: [], 1: []}
        for d in reports:
            self.assertEqual((d.topic, d.err, d.partition), ("batch", 0, d.opaque.i % 3 % 2))
            per[d.partition].append((d.offset, d.opaque.i))
        for p, placed in per.items():
            placed.sort()
            self.assertEqual([o for o, _ in placed], list(range(len(placed))))
            self.assertEqual([i for _, i in placed], sorted(i for _, i in placed))  # in order
            self.assertEqual(topic.offsets(p), (0, len(placed)))
        where = {d.opaque.i: (d.partition, d.offset) for d in reports}

        c = self.closing(store.consumer("bg", {"auto.offset.reset": "earliest"}))
        c.subscribe(topic)
        got = self.drain(c, n)
        self.assertEqual(c.poll(timeout_ms=100), [])
        self.assertEqual(len(got), n)
        for r in got:
            i = int(r.key[len(b"key-"):])
            self.assertEqual((r.partition, r.offset), where[i])
            self.assertEqual((r.value, r.timestamp_ms), (b"value-%d" % i, NOW))
            self.assertEqual(r.headers, [("i", b"%d" % i)] if i % 5 == 0 else [])

        self.assertEqual(producer.send_batch([]), 0)
        del reports[:], d, per, where
        gc.collect()
        self.assertEqual([w for w in alive if w() is not None], [])  # released once reported

    def test_send_batch_stops_at_refused_record(self):
        store = self.open_store()
        store.create_topic("two", 2)
        topic = self.closing(store.topic("two"))
        reports = []
        producer = self.closing(store.producer({"linger.ms": 60000},
                                               on_delivery=reports.append))
        tokens = [Token(i) for i in range(6)]
        alive = [weakref.ref(t) for t in tokens]
        records = [(topic, b"v%d" % i, None, i % 2, 0, None, tokens[i]) for i in range(6)]
        records[3] = dict(topic=topic, value=b"v3", partition=2, opaque=tokens[3])
        del tokens
        e = self.assertQ7Error(q7.ENOENT, producer.send_batch, records)
        self.assertEqual(e.sent, 3)
        self.assertIn("record 3 of 6", e.message)
        self.assertEqual(producer.in_flight, 3)  # the refused and later ones forgotten
        del records, e
        gc.collect()
        self.assertEqual([w() is not None for w in alive], [True] * 3 + [False] * 3)
        producer.flush()
        self.assertEqual(sorted(d.opaque.i for d in reports), [0, 1, 2])
        self.assertTrue(all(d.err == 0 for d in reports))
        self.assertEqual((topic.offsets(0), topic.offsets(1)), ((0, 2), (0, 1)))

        # The first record refused: nothing sent; a bad argument in Python:
        # raised before anything is sent.
        e = self.assertQ7Error(q7.EINVAL, producer.send_batch,
                               [(topic, b"x", None, -2, 0, None, "bad"), (topic, b"y")])
        self.assertEqual(e.sent, 0)
        self.assertIn("record 0 of 2", e.message)
        with self.assertRaises(TypeError):
            producer.send_batch([(topic, b"ok", None, 0, 0, None, "ok"), ("two", b"not a Topic")])
        with self.assertRaises(TypeError):
            producer.send_batch([{"topic": topic, "valu": b"typo"}])
        self.assertEqual(producer.in_flight, 0)
        producer.flush()
        self.assertEqual(len(reports), 3)
        self.assertIsNone(q7.Q7Error(q7.EIO, "x").sent)

        # Without on_delivery there are no opaques to keep.
        quiet = self.closing(store.producer())
        self.assertEqual(quiet.send_batch([(topic, b"q%d" % i, None, 0) for i in range(4)]), 4)
        e = self.assertQ7Error(q7.ENOENT, quiet.send_batch,
                               [(topic, b"q4", None, 1), (topic, b"q5", None, 5)])
        self.assertEqual(e.sent, 1)
        quiet.flush()
        self.assertEqual((topic.offsets(0), topic.offsets(1)), ((0, 6), (0, 2)))

    def test_reports_only_inside_calls(self):
        store = self.open_store()
        store.create_topic("lazy", 1)
        topic = self.closing(store.topic("lazy"))
        reports = []
        producer = self.closing(store.producer({"linger.ms": 10}, on_delivery=reports.append))
        producer.send(topic, b"one", opaque="one")
        deadline = time.monotonic() + 10
        while topic.offsets(0)[1] == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the producer's thread commits after linger.ms
        self.assertEqual(topic.offsets(0)[1], 1)
        time.sleep(0.05)
        self.assertEqual(reports, [])  # committed, but not reported outside a call
        self.assertEqual(producer.poll(1000), 1)
        self.assertEqual(reports, [q7.Delivery("lazy", 0, 0, 0, "one")])

    def test_callback_kept_alive_by_the_producer(self):
        store = self.open_store()
        store.create_topic("cb", 1)
        topic = self.closing(store.topic("cb"))
        count = [0]

        def make():  # the callback is a lambda nobody else holds
            return store.producer(
                on_delivery=lambda d: count.__setitem__(0, count[0] + d.offset + 1))

        producer = self.closing(make())
        gc.collect()
        for i in range(3):
            producer.send(topic, b"x")
        producer.flush()
        self.assertEqual(count[0], 1 + 2 + 3)

    def test_callback_exception_is_raised_by_the_call(self):
        store = self.open_store()
        store.create_topic("boom", 1)
        topic = self.closing(store.topic("boom"))

        def on_delivery(d):
            raise ValueError("boom at %d" % d.offset)

        producer = self.closing(store.producer(on_delivery=on_delivery))
        producer.send(topic, b"x")
        with self.assertRaisesRegex(ValueError, "boom at 0"):
            producer.flush()
        producer.flush()  # raised once, not again
        self.assertEqual(topic.offsets(0), (0, 1))

    def test_topic_closed_before_producer_stays_valid(self):
        store = self.open_store()
        store.create_topic("early", 1)
        reports = []
        producer = self.closing(store.producer({"linger.ms": 60000}, on_delivery=reports.append))
        with store.topic("early") as topic:
            producer.send(topic, b"pending", opaque=1)
        self.assertEqual(reports, [])
        producer.close()  # flushes into the (deferred-closed) topic handle
        self.assertEqual(reports, [q7.Delivery("early", 0, 0, 0, 1)])
        store.close()     # every C handle is gone


class TestPartitioning(Q7TestCase):
    def test_partition_for_key_is_kafkas(self):
        # Kafka's own murmur2 test vectors (UtilsTest.testMurmur2).
        vectors = {b"21": -973932308, b"foobar": -790332482,
                   b"a-little-bit-long-string": -985981536,
                   b"a-little-bit-longer-string": -1486304829,
                   b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
                   b"abc": 479470107}
        for key, h in vectors.items():
            self.assertEqual(murmur2(key), h)
        keys = list(vectors) + [b"", b"\x00", bytes(range(256))]
        keys += [b"user-%d" % i for i in range(50)]
        for key in keys:
            for n in (1, 2, 3, 7, 100, 10000):
                self.assertEqual(q7.partition_for_key(key, n), (murmur2(key) & 0x7FFFFFFF) % n,
                                 (key, n))
        self.assertEqual(q7.partition_for_key("user-7", 3), q7.partition_for_key(b"user-7", 3))
        self.assertQ7Error(q7.EINVAL, q7.partition_for_key, b"k", 0)

    def test_keyed_records_land_on_partition_for_key(self):
        store = self.open_store()
        store.create_topic("keyed", 7)
        topic = self.closing(store.topic("keyed"))
        reports = []
        producer = self.closing(store.producer(on_delivery=reports.append))
        keys = [bytes((i * 31 + j) % 256 for j in range(i % 21)) for i in range(300)]
        placed = {}
        for i, key in enumerate(keys):
            if i % 3 == 0:
                placed[i] = producer.send_sync(topic, b"%d" % i, key=key)
            else:
                producer.send(topic, b"%d" % i, key=key, opaque=i)
        producer.flush()
        for d in reports:
            placed[d.opaque] = (d.partition, d.offset)
        self.assertEqual(len(placed), len(keys))
        for i, key in enumerate(keys):
            self.assertEqual(placed[i][0], q7.partition_for_key(key, 7), i)
        self.assertEqual(len({p for p, _ in placed.values()}), 7)
        c = self.closing(store.consumer("kg", {"auto.offset.reset": "earliest"}))
        c.subscribe(topic)
        got = self.drain(c, len(keys))
        self.assertEqual(len(got), len(keys))
        for r in got:
            self.assertEqual(r.partition, q7.partition_for_key(r.key, 7))
            self.assertEqual(placed[int(r.value)], (r.partition, r.offset))


class TestErrors(Q7TestCase):
    def test_bad_topic_name(self):
        store = self.open_store()
        for name in ["bad/name", "has space", "..", ".", "naïve", "semi;colon", "a*b"]:
            with self.subTest(name=name):
                # A different failure first, so a stale message would show.
                self.assertQ7Error(q7.ENOENT, store.topic, "stale-topic")
                e = self.assertQ7Error(q7.EINVAL, store.create_topic, name, 1)
                self.assertEqual(e.code, -1)
                self.assertIn(name, e.message)
                self.assertNotIn("stale-topic", e.message)
                self.assertTrue(e.message.startswith("invalid argument"), e.message)
                self.assertIn("Q7_EINVAL", str(e))
                e = self.assertQ7Error(q7.EINVAL, store.topic, name)
                self.assertIn(name, e.message)
        self.assertQ7Error(q7.EINVAL, store.create_topic, "", 1)
        self.assertQ7Error(q7.EINVAL, store.create_topic, "x" * 250, 1)
        store.create_topic("x" * 249, 1)
        self.assertEqual(store.topics(), {"x" * 249: 1})

    def test_missing_topic(self):
        store = self.open_store()
        e = self.assertQ7Error(q7.ENOENT, store.topic, "missing")
        self.assertIn("missing", e.message)
        self.assertQ7Error(q7.ENOENT, store.delete_topic, "missing")
        self.assertQ7Error(q7.ENOENT, store.committed, "g", "missing", 0)
        c = self.closing(store.consumer("g"))
        e = self.assertQ7Error(q7.ENOENT, c.subscribe, "missing")
        self.assertIn("missing", e.message)
        self.assertQ7Error(q7.ENOENT, c.assign, "missing", 0, q7.OFFSET_BEGINNING)
        # Missing partitions and commits are ENOENT too.
        store.create_topic("two", 2)
        topic = self.closing(store.topic("two"))
        self.assertQ7Error(q7.ENOENT, topic.partition, 2)
        self.assertQ7Error(q7.EINVAL, topic.partition, -2)
        producer = self.closing(store.producer())
        self.assertQ7Error(q7.ENOENT, producer.send, topic, b"x", partition=2)
        self.assertQ7Error(q7.EINVAL, producer.send, topic, b"x", partition=-2)
        self.assertQ7Error(q7.ENOENT, store.committed, "g", "two", 0)
        self.assertQ7Error(q7.ENOENT, store.lag, "g", "two", 0)

    def test_record_too_big(self):
        store = self.open_store()
        store.create_topic("small", 1, {"message.max.bytes": 100})
        self.assertEqual(store.topic_config("small", "message.max.bytes"), "100")
        topic = self.closing(store.topic("small"))
        reports = []
        producer = self.closing(store.producer(on_delivery=reports.append))
        producer.send(topic, b"v" * 100, opaque="fits")
        producer.send(topic, b"v" * 90, key=b"k" * 5, headers=[("h", b"x" * 4)], opaque="fits2")
        e = self.assertQ7Error(q7.ETOOBIG, producer.send, topic, b"v" * 101, opaque="big")
        self.assertEqual(e.code, -5)
        self.assertIn("small", e.message)
        self.assertQ7Error(q7.ETOOBIG, producer.send_sync, topic, b"v" * 101)
        self.assertQ7Error(q7.ETOOBIG, producer.send, topic, b"v" * 51, key=b"k" * 50)
        self.assertQ7Error(q7.ETOOBIG, producer.send, topic, b"v" * 90,
                           headers=[("h", b"x" * 10)])
        producer.flush()
        self.assertEqual(sorted(d.opaque for d in reports), ["fits", "fits2"])
        self.assertEqual(topic.offsets(0), (0, 2))

        store.create_topic("default", 1)
        big = self.closing(store.topic("default"))
        self.assertQ7Error(q7.ETOOBIG, producer.send_sync, big, b"\0" * 1048589)
        self.assertEqual(producer.send_sync(big, b"\0" * 1048588), (0, 0))

    def test_other_errors(self):
        store = self.open_store()
        store.create_topic("t", 1)
        self.assertQ7Error(q7.EEXIST, store.create_topic, "t", 1)
        store.create_topic("t", 1, exist_ok=True)
        self.assertQ7Error(q7.EINVAL, store.create_topic, "zero", 0)
        e = self.assertQ7Error(q7.EINVAL, q7.Store, os.path.join(self.tmp, "s2"),
                               {"no.such.key": 1})
        self.assertIn("no.such.key", e.message)
        topic = store.topic("t")
        self.assertQ7Error(q7.EBUSY, store.close)
        topic.close()
        self.assertQ7Error(q7.ESTATE, topic.partition, 0)
        c = store.consumer(None)
        self.assertQ7Error(q7.ESTATE, c.subscribe, "t")
        self.assertQ7Error(q7.ESTATE, c.commit)
        c.close()
        store.close()
        self.assertTrue(store.closed)
        self.assertQ7Error(q7.ESTATE, store.topic, "t")


class TestQuickstart(Q7TestCase):
    def test_quickstart_runs(self):
        script = os.path.join(EXAMPLES, "quickstart.py")
        demo = os.path.join(self.tmp, "demo")
        env = dict(os.environ, Q7_LIB=LIB)
        for run in (1, 2):
            p = subprocess.run([sys.executable, script, demo, "3000"], env=env,
                               capture_output=True, text=True, timeout=300)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("3000 delivery reports, 0 failed", p.stdout)
            parts = re.findall(r"partition (\d): committed (\d+), lag (\d+)", p.stdout)
            self.assertEqual([int(x[0]) for x in parts], [0, 1, 2], p.stdout)
            self.assertEqual(sum(int(x[1]) for x in parts), 3001 * run, p.stdout)
            self.assertEqual([int(x[2]) for x in parts], [0, 0, 0], p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
