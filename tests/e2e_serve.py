#!/usr/bin/env python3
"""e2e_serve.py BUILD_DIR - `q7 serve`, Burrow's HTTP API v3 over libq7 stores.

Run by `make check` from the repository root as
`python3 tests/e2e_serve.py build`; exits non-zero on failure, and the last
line of output is unittest's summary.

Two stores are made through the Python binding (examples/python/q7.py, on
BUILD_DIR/libq7.so.0) with a store clock that stamps each commit at a chosen
time before now, so every Burrow status the public API can produce is there:
OK, WARN, STOP, STALL and REWIND partitions (ERR groups), an expired group
(NOTFOUND) and a partition never committed.  `BUILD_DIR/tools/q7 serve` then
runs on an ephemeral port and every endpoint's status code, headers and JSON
(keys, key order, types, values) is checked, with the 404/405/301 rules,
DELETE with and without --allow-delete, oversized paths and headers, the
loopback default, /metrics, clean shutdown on SIGINT/SIGTERM, and the status
page at / in headless Chromium when /usr/bin/chromium exists.
"""

import http.client
import json
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = "build"
if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
    BUILD = sys.argv.pop(1)
if not os.path.isabs(BUILD):
    BUILD = os.path.join(ROOT, BUILD)
TOOL = os.path.join(BUILD, "tools", "q7")
LIB = os.path.join(BUILD, "libq7.so.0")
CHROMIUM = "/usr/bin/chromium"

sys.path.insert(0, os.path.join(ROOT, "examples", "python"))
import q7  # noqa: E402

HOST = socket.gethostname()
SEC = 1000
DAY = 86400 * SEC
START_TIMEOUT = 15    # seconds for the server to print its port
STOP_TIMEOUT = 10     # seconds for it to exit on a signal
HTTP_TIMEOUT = 10
EVIL = "<img src=x onerror=alert(1)>&\"'"   # a group name that must stay text

NOT_FOUND_BODY = b'{"error":true,"message":"invalid request type","result":{}}\n'
OFFSET_KEYS = ["offset", "timestamp", "observedAt", "lag"]
PARTITION_KEYS = ["topic", "partition", "owner", "client_id", "status", "start", "end",
                  "current_lag", "complete"]
GROUP_KEYS = ["cluster", "group", "status", "complete", "partitions", "partition_count",
              "maxlag", "totallag"]


# ------------------------------------------------------------ the stores
class Fixture:
    """One store, written with a store clock we move by hand."""

    def __init__(self, path, now):
        self.now = now
        self.t = [now]
        self.store = q7.Store(path, {"sync": False}, clock=lambda: self.t[0])

    def topics(self, **parts):
        for name, n in parts.items():
            self.store.create_topic(name, n)

    def produce(self, topic, partition, n):
        with self.store.topic(topic) as t, self.store.producer() as p:
            for i in range(n):
                p.send_sync(t, b"v%d" % i, partition=partition)

    def commit(self, group, topic, partition, offset, ago_ms):
        self.t[0] = self.now - ago_ms
        with self.store.consumer(group, {"enable.auto.commit": False}) as c:
            c.commit(topic, partition, offset)
        self.t[0] = self.now

    def close(self):
        self.store.close()


def build_store_a(path, now):
    """Cluster "a": one group per Burrow verdict.

    ok-group      orders: p0 caught up (4 commits), p1 caught up (1), p2 never
    warn-group    clicks p0: 10 commits, offsets and lags (1..10) rising -> WARN
    single-commit clicks p0: one commit with lag 50 -> STOP, complete 0.1
    stop-group    payments p0: 2 commits long ago, lag > 0 -> STOP
    stall-group   refunds p0: 10 commits of offset 5, lag 25 -> STALL
    rewind-group  ledger p0: offsets 10, 20, 15, 18 -> REWIND
    expired-group orders p1: last commit 8 days ago (> lag.expire.ms) -> NOTFOUND
    audit: a topic nobody reads.
    """
    f = Fixture(path, now)
    f.topics(orders=3, clicks=1, payments=1, refunds=1, ledger=1, audit=1)
    f.produce("orders", 0, 20)
    f.produce("orders", 1, 10)
    f.produce("audit", 0, 3)
    for i, off in enumerate((5, 10, 15, 20)):
        f.commit("ok-group", "orders", 0, off, (400 - 100 * i) * SEC)
    f.commit("ok-group", "orders", 1, 10, 100 * SEC)
    f.commit("expired-group", "orders", 1, 3, 8 * DAY)
    for i in range(10):
        f.produce("clicks", 0, 10)
        f.commit("warn-group", "clicks", 0, 9 * (i + 1), (1000 - 100 * i) * SEC)
    f.commit("single-commit", "clicks", 0, 50, 5 * SEC)
    f.produce("payments", 0, 50)
    f.commit("stop-group", "payments", 0, 10, 5000 * SEC)
    f.commit("stop-group", "payments", 0, 20, 4990 * SEC)
    f.produce("refunds", 0, 30)
    for i in range(10):
        f.commit("stall-group", "refunds", 0, 5, (1000 - 100 * i) * SEC)
    f.produce("ledger", 0, 40)
    for off, ago in ((10, 1000), (20, 800), (15, 600), (18, 400)):
        f.commit("rewind-group", "ledger", 0, off, ago * SEC)
    f.close()


def build_store_b(path, now):
    """Cluster "b": b-ok caught up on jobs; EVIL with one lagging commit."""
    f = Fixture(path, now)
    f.topics(jobs=2)
    f.produce("jobs", 0, 5)
    f.produce("jobs", 1, 5)
    f.commit("b-ok", "jobs", 0, 5, 60 * SEC)
    f.commit("b-ok", "jobs", 1, 5, 60 * SEC)
    f.commit(EVIL, "jobs", 0, 2, 60 * SEC)
    f.close()


# ------------------------------------------------------------ the server
def start_server(*args):
    """Start `q7 serve ARGS`; returns (process, port, stderr file)."""
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([TOOL, "serve"] + list(args), stdout=subprocess.PIPE,
                            stderr=err, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT)
    line = proc.stdout.readline() if ready else ""
    m = re.match(r"listening on (\S+):(\d+)\n$", line)
    if not m:
        stop_server(proc)
        err.seek(0)
        raise AssertionError("q7 serve %s printed %r; stderr: %s"
                             % (" ".join(args), line, err.read().decode(errors="replace")))
    return proc, int(m.group(2)), err


def stop_server(proc, sig=signal.SIGTERM):
    """Signal the server by PID, wait, kill if it does not stop; returns its
    exit code (None if it had to be killed)."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT)
            code = None
        else:
            code = proc.returncode
    else:
        code = proc.returncode
    if proc.stdout:
        proc.stdout.close()
    return code


def request(port, method, path, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def quote(name):
    return urllib.parse.quote(name, safe="")


class ServeCase(unittest.TestCase):
    """The read-only server over clusters a and b, shared by the tests."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(TOOL):
            raise RuntimeError("no tool at %s (build it first: make B=%s)" % (TOOL, BUILD))
        q7.load(LIB)
        cls.tmp = tempfile.mkdtemp(prefix="q7-serve-")
        cls.now = int(time.time() * 1000)
        cls.dir_a = os.path.join(cls.tmp, "a")
        cls.dir_b = os.path.join(cls.tmp, "b")
        build_store_a(cls.dir_a, cls.now)
        build_store_b(cls.dir_b, cls.now)
        cls.proc, cls.port, cls.err = start_server(
            "--listen", "127.0.0.1:0", "--cluster", "a=" + cls.dir_a, "--cluster", "b=" + cls.dir_b)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "proc", None):
            stop_server(cls.proc)
            cls.err.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        # Every test leaves the shared server running and answering.
        self.assertIsNone(self.proc.poll(), "the server died")

    # helpers
    def get(self, path, method="GET", headers=None, port=None):
        return request(port or self.port, method, path, headers)

    def get_json(self, path, code=200, method="GET", port=None):
        status, headers, body = self.get(path, method, port=port)
        self.assertEqual(status, code, "%s %s: %r" % (method, path, body))
        self.assertEqual(headers["Content-Type"], "application/json", path)
        self.assertFalse(body.endswith(b"\n"), "Go's json.Marshal adds no newline")
        doc = json.loads(body)
        self.assertEqual(doc["request"], {"url": urllib.parse.unquote(path), "host": HOST})
        return doc

    def assertEnvelope(self, doc, error, message, payload):
        keys = ["error", "message"] + ([payload] if payload else []) + ["request"]
        self.assertEqual(list(doc), keys)
        self.assertIs(doc["error"], error)
        self.assertEqual(doc["message"], message)

    def assertError(self, path, code, message, method="GET"):
        doc = self.get_json(path, code, method)
        self.assertEnvelope(doc, True, message, None)

    def assertOffset(self, o, offset, ts=None, lag=None):
        self.assertEqual(list(o), OFFSET_KEYS)
        self.assertEqual(o["offset"], offset)
        self.assertIsInstance(o["timestamp"], int)
        self.assertEqual(o["observedAt"], o["timestamp"])
        if ts is not None:
            self.assertEqual(o["timestamp"], ts)
        if lag is not None:
            self.assertEqual(o["lag"], lag)

    def assertPartition(self, p, topic, partition, status, current_lag, complete):
        self.assertEqual(list(p), PARTITION_KEYS)
        self.assertEqual((p["topic"], p["partition"], p["status"]), (topic, partition, status))
        self.assertEqual((p["owner"], p["client_id"]), ("", ""))
        self.assertEqual(p["current_lag"], current_lag)
        self.assertIsInstance(p["complete"], float)   # a JSON real, as Go writes float32
        self.assertAlmostEqual(p["complete"], complete, places=6)

    def status(self, cluster, group, kind="status", code=200):
        doc = self.get_json("/v3/kafka/%s/consumer/%s/%s" % (cluster, quote(group), kind), code)
        self.assertEnvelope(doc, False, "consumer status returned", "status")
        st = doc["status"]
        self.assertEqual(list(st), GROUP_KEYS)
        self.assertEqual((st["cluster"], st["group"]), (cluster, group))
        self.assertIsInstance(st["complete"], float)
        self.assertIsInstance(st["partition_count"], int)
        self.assertIsInstance(st["totallag"], int)
        return st


class TestAdmin(ServeCase):
    def test_admin_is_good(self):
        status, headers, body = self.get("/burrow/admin")
        self.assertEqual((status, body), (200, b"GOOD"))
        self.assertTrue(headers["Content-Type"].startswith("text/plain"))
        status, _, body = self.get("/burrow/admin/ready")
        self.assertEqual((status, body), (200, b"READY"))

    def test_keep_alive(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT)
        try:
            for path in ("/burrow/admin", "/v3/kafka", "/v3/kafka/a/consumer/ok-group/lag"):
                conn.request("GET", path)
                resp = conn.getresponse()
                resp.read()
                self.assertEqual(resp.status, 200)
                self.assertNotEqual(resp.headers.get("Connection"), "close")
                self.assertFalse(resp.will_close)
        finally:
            conn.close()

    def test_head_has_headers_and_no_body(self):
        status, headers, body = self.get("/v3/kafka", "HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Content-Type"], "application/json")
        self.assertGreater(int(headers["Content-Length"]), 0)


class TestClusters(ServeCase):
    def test_cluster_list(self):
        doc = self.get_json("/v3/kafka")
        self.assertEnvelope(doc, False, "cluster list returned", "clusters")
        self.assertEqual(doc["clusters"], ["a", "b"])

    def test_cluster_detail(self):
        doc = self.get_json("/v3/kafka/a")
        self.assertEnvelope(doc, False, "cluster module detail returned", "module")
        m = doc["module"]
        self.assertEqual(list(m), ["class-name", "servers", "client-profile", "topic-refresh",
                                   "offset-refresh"])
        self.assertEqual(m["servers"], [self.dir_a])
        self.assertEqual(list(m["client-profile"]),
                         ["name", "client-id", "kafka-version", "tls", "sasl"])
        self.assertIsInstance(m["topic-refresh"], int)
        self.assertError("/v3/kafka/nosuch", 404, "cluster module not found")


class TestTopics(ServeCase):
    def test_topic_list(self):
        doc = self.get_json("/v3/kafka/a/topic")
        self.assertEnvelope(doc, False, "topic list returned", "topics")
        self.assertEqual(doc["topics"],
                         ["audit", "clicks", "ledger", "orders", "payments", "refunds"])
        self.assertError("/v3/kafka/nosuch/topic", 404, "cluster not found")

    def test_topic_offsets_are_high_watermarks(self):
        doc = self.get_json("/v3/kafka/a/topic/orders")
        self.assertEnvelope(doc, False, "topic offsets returned", "offsets")
        self.assertEqual(doc["offsets"], [20, 10, 0])
        self.assertEqual(self.get_json("/v3/kafka/a/topic/clicks")["offsets"], [100])
        for path in ("/v3/kafka/a/topic/nosuch", "/v3/kafka/nosuch/topic/orders",
                     "/v3/kafka/a/topic/.."):
            self.assertError(path, 404, "cluster or topic not found")

    def test_topic_consumers(self):
        doc = self.get_json("/v3/kafka/a/topic/clicks/consumers")
        self.assertEnvelope(doc, False, "consumers of topic returned", "consumers")
        self.assertEqual(doc["consumers"], ["single-commit", "warn-group"])
        self.assertEqual(self.get_json("/v3/kafka/a/topic/orders/consumers")["consumers"],
                         ["expired-group", "ok-group"])
        self.assertEqual(self.get_json("/v3/kafka/a/topic/audit/consumers")["consumers"], [])
        # Burrow knows no consumers of a topic it does not know: an empty list.
        self.assertEqual(self.get_json("/v3/kafka/a/topic/nosuch/consumers")["consumers"], [])
        self.assertError("/v3/kafka/nosuch/topic/clicks/consumers", 404, "cluster not found")


class TestConsumers(ServeCase):
    def test_consumer_list(self):
        doc = self.get_json("/v3/kafka/a/consumer")
        self.assertEnvelope(doc, False, "consumer list returned", "consumers")
        self.assertEqual(doc["consumers"], ["expired-group", "ok-group", "rewind-group",
                                            "single-commit", "stall-group", "stop-group",
                                            "warn-group"])
        self.assertEqual(sorted(self.get_json("/v3/kafka/b/consumer")["consumers"]),
                         sorted(["b-ok", EVIL]))
        self.assertError("/v3/kafka/nosuch/consumer", 404, "cluster not found")

    def test_consumer_detail(self):
        doc = self.get_json("/v3/kafka/a/consumer/ok-group")
        self.assertEnvelope(doc, False, "consumer detail returned", "topics")
        self.assertEqual(list(doc["topics"]), ["orders"])
        parts = doc["topics"]["orders"]
        self.assertEqual(len(parts), 3)
        for p in parts:
            self.assertEqual(list(p), ["offsets", "owner", "client_id", "current-lag"])
            self.assertEqual((p["owner"], p["client_id"], p["current-lag"]), ("", "", 0))
        # p0: 4 commits in a window of 10, nulls first, oldest first.
        offs = parts[0]["offsets"]
        self.assertEqual(len(offs), 10)
        self.assertEqual(offs[:6], [None] * 6)
        for o, off, ago in zip(offs[6:], (5, 10, 15, 20), (400, 300, 200, 100)):
            self.assertOffset(o, off, self.now - ago * SEC, 20 - off)
        self.assertEqual(parts[1]["offsets"][:9], [None] * 9)
        self.assertOffset(parts[1]["offsets"][9], 10, self.now - 100 * SEC, 0)
        # Never committed: "offsets": [] (as Burrow).
        self.assertEqual(parts[2]["offsets"], [])

    def test_consumer_detail_full_window(self):
        doc = self.get_json("/v3/kafka/a/consumer/warn-group")
        (p,) = doc["topics"]["clicks"]
        self.assertEqual(p["current-lag"], 10)
        self.assertEqual(len(p["offsets"]), 10)
        for i, o in enumerate(p["offsets"]):
            self.assertOffset(o, 9 * (i + 1), self.now - (1000 - 100 * i) * SEC, i + 1)

    def test_consumer_detail_not_found(self):
        for path in ("/v3/kafka/a/consumer/nosuch", "/v3/kafka/a/consumer/expired-group",
                     "/v3/kafka/nosuch/consumer/ok-group"):
            self.assertError(path, 404, "cluster or consumer not found")


class TestStatus(ServeCase):
    def test_ok_group(self):
        st = self.status("a", "ok-group")
        self.assertEqual(st["status"], "OK")
        self.assertEqual(st["partitions"], [])          # /status: worse than OK only
        self.assertEqual((st["partition_count"], st["totallag"]), (3, 0))
        self.assertEqual(st["complete"], 0.0)
        self.assertPartition(st["maxlag"], "orders", 0, "OK", 0, 0.4)

        lag = self.status("a", "ok-group", "lag")
        self.assertEqual(lag["status"], "OK")
        ps = lag["partitions"]
        self.assertEqual(len(ps), 3)
        self.assertPartition(ps[0], "orders", 0, "OK", 0, 0.4)
        self.assertOffset(ps[0]["start"], 5, self.now - 400 * SEC, 15)
        self.assertOffset(ps[0]["end"], 20, self.now - 100 * SEC, 0)
        self.assertPartition(ps[1], "orders", 1, "OK", 0, 0.1)
        self.assertPartition(ps[2], "orders", 2, "OK", 0, 0.0)   # never committed
        self.assertIsNone(ps[2]["start"])
        self.assertIsNone(ps[2]["end"])

    def test_warn_group(self):
        for kind in ("status", "lag"):
            st = self.status("a", "warn-group", kind)
            self.assertEqual(st["status"], "WARN")
            self.assertEqual((st["partition_count"], st["totallag"], st["complete"]),
                             (1, 10, 1.0))
            (p,) = st["partitions"]
            self.assertPartition(p, "clicks", 0, "WARN", 10, 1.0)
            self.assertOffset(p["start"], 9, self.now - 1000 * SEC, 1)
            self.assertOffset(p["end"], 90, self.now - 100 * SEC, 10)
            self.assertEqual(st["maxlag"], p)

    def test_err_groups(self):
        for group, topic, pstatus, lag, complete in (
                ("stop-group", "payments", "STOP", 30, 0.2),
                ("single-commit", "clicks", "STOP", 50, 0.1),
                ("stall-group", "refunds", "STALL", 25, 1.0),
                ("rewind-group", "ledger", "REWIND", 22, 0.4)):
            with self.subTest(group=group):
                st = self.status("a", group)
                self.assertEqual(st["status"], "ERR")
                (p,) = st["partitions"]
                self.assertPartition(p, topic, 0, pstatus, lag, complete)
                self.assertEqual(st["totallag"], lag)

    def test_not_found_is_404_without_error(self):
        for cluster, group in (("a", "nosuch"), ("a", "expired-group"), ("nosuch", "ok-group"),
                               ("a", "no such"), ("a", "x" * 300)):
            for kind in ("status", "lag"):
                with self.subTest(cluster=cluster, group=group, kind=kind):
                    st = self.status(cluster, group, kind, code=404)
                    self.assertEqual(st, {"cluster": cluster, "group": group,
                                          "status": "NOTFOUND", "complete": 1.0,
                                          "partitions": [], "partition_count": 0,
                                          "maxlag": None, "totallag": 0})

    def test_invalid_utf8_in_path_is_replaced(self):
        status, _, body = self.get("/v3/kafka/a/consumer/%FF/status")
        self.assertEqual(status, 404)
        doc = json.loads(body)
        self.assertEqual(doc["status"]["group"], "\ufffd")
        self.assertEqual(doc["request"]["url"], "/v3/kafka/a/consumer/\ufffd/status")

    def test_lag_is_computed_per_request(self):
        before = self.status("b", "b-ok", "lag")
        self.assertEqual(before["status"], "OK")
        store = q7.Store(self.dir_b, {"sync": False})
        try:
            with store.topic("jobs") as t, store.producer() as p:
                for _ in range(7):
                    p.send_sync(t, b"more", partition=1)
        finally:
            store.close()
        after = self.status("b", "b-ok", "lag")
        self.assertEqual(after["totallag"], before["totallag"] + 7)
        self.assertEqual(after["partitions"][1]["current_lag"],
                         before["partitions"][1]["current_lag"] + 7)
        self.assertEqual(after["status"], "OK")   # caught up at its last commit


class TestRouting(ServeCase):
    def assertNotFound(self, path, method="GET"):
        status, headers, body = self.get(path, method)
        self.assertEqual(status, 404, path)
        self.assertEqual(headers["Content-Type"], "text/plain; charset=utf-8")
        self.assertEqual(headers["X-Content-Type-Options"], "nosniff")
        self.assertEqual(body, NOT_FOUND_BODY)

    def test_unknown_paths(self):
        for path in ("/nosuch", "/v3", "/v3/kafka/a/bogus", "/v3/kafka/a/consumer/g/extra",
                     "/v3/kafka//topic", "/burrow/admin/x", "/v3/kafka/a/topic/t/consumers/x",
                     "/nosuch/", "/v3/kafka/a/consumer/ok-group/lag//"):
            with self.subTest(path=path):
                self.assertNotFound(path)
        self.assertNotFound("/nosuch", "POST")

    def test_trailing_slash_redirects(self):
        for path in ("/v3/kafka/", "/v3/kafka/a/", "/v3/kafka/a/consumer/ok-group/lag/",
                     "/burrow/admin/", "/metrics/"):
            with self.subTest(path=path):
                status, headers, _ = self.get(path)
                self.assertEqual(status, 301)
                self.assertEqual(headers["Location"], path[:-1])
        status, headers, _ = self.get("/v3/kafka/a/consumer/no%20such/")
        self.assertEqual((status, headers["Location"]), (301, "/v3/kafka/a/consumer/no%20such"))

    def test_wrong_method_is_405(self):
        for method, path in (("POST", "/v3/kafka"), ("PUT", "/v3/kafka/a/consumer/ok-group"),
                             ("DELETE", "/v3/kafka/a/topic/orders"), ("PATCH", "/burrow/admin"),
                             ("POST", "/")):
            with self.subTest(method=method, path=path):
                status, headers, body = self.get(path, method)
                self.assertEqual(status, 405)
                self.assertEqual(headers["Content-Type"], "application/json")
                self.assertEqual(headers["Allow"], "GET, HEAD")
                doc = json.loads(body)
                self.assertEqual(list(doc), ["error", "message", "request"])
                self.assertIs(doc["error"], True)

    def test_post_with_a_body_is_refused(self):
        status, _, _ = request(self.port, "POST", "/v3/kafka", body=b"x" * 100000,
                               headers={"Content-Type": "application/json"})
        self.assertEqual(status, 405)

    def test_delete_without_allow_delete_is_405(self):
        doc = self.get_json("/v3/kafka/a/consumer/ok-group", 405, "DELETE")
        self.assertEnvelope(doc, True, doc["message"], None)
        self.assertIn("--allow-delete", doc["message"])
        self.assertIn("ok-group", self.get_json("/v3/kafka/a/consumer")["consumers"])
        self.assertEqual(self.status("a", "ok-group")["status"], "OK")


class TestLimits(ServeCase):
    def test_long_path_is_refused(self):
        status, _, _ = self.get("/v3/kafka/a/consumer/" + "x" * 3000)
        self.assertEqual(status, 414)
        status, _, _ = self.get("/v3/kafka?" + "q=" + "x" * 3000)
        self.assertEqual(status, 414)
        # Just under the limit is served.
        path = "/v3/kafka/a/consumer/" + "x" * (2048 - 28) + "/status"
        self.assertLessEqual(len(path), 2048)
        self.assertEqual(self.get(path)[0], 404)   # NOTFOUND group

    def test_huge_path_is_refused_by_the_http_layer(self):
        try:
            status, _, _ = self.get("/v3/kafka/" + "x" * 100000)
        except (ConnectionError, http.client.HTTPException):
            status = None   # closed without an answer: refused all the same
        self.assertIn(status, (None, 400, 414, 431))
        self.assertEqual(self.get("/burrow/admin")[0], 200)

    def test_large_headers_are_refused(self):
        self.assertEqual(self.get("/v3/kafka", headers={"X-Pad": "p" * 4000})[0], 200)
        status, _, _ = self.get("/v3/kafka", headers={"X-Pad": "p" * 9000})
        self.assertEqual(status, 431)
        many = {"X-Pad-%d" % i: "p" * 100 for i in range(100)}
        self.assertEqual(self.get("/v3/kafka", headers=many)[0], 431)
        try:
            status, _, _ = self.get("/v3/kafka", headers={"X-Pad": "p" * 200000})
        except (ConnectionError, http.client.HTTPException):
            status = None
        self.assertIn(status, (None, 400, 413, 431))
        self.assertEqual(self.get("/burrow/admin")[0], 200)


class TestMetrics(ServeCase):
    LINE = re.compile(r'^([a-z_]+)\{((?:[a-z_]+="(?:[^"\\]|\\.)*",?)*)\} (\S+)$')

    def metrics(self):
        status, headers, body = self.get("/metrics")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/plain; version=0.0.4; charset=utf-8")
        samples, families = {}, []
        for line in body.decode().splitlines():
            if line.startswith("# HELP "):
                families.append(line.split()[2])
                continue
            if line.startswith("# TYPE "):
                self.assertEqual(line, "# TYPE %s gauge" % families[-1])
                continue
            m = self.LINE.match(line)
            self.assertIsNotNone(m, line)
            self.assertEqual(m.group(1), families[-1])
            samples[m.group(1) + "{" + m.group(2) + "}"] = float(m.group(3))
        return families, samples

    def test_metric_families(self):
        families, _ = self.metrics()
        self.assertEqual(families, sorted(families))
        self.assertEqual(families, ["burrow_kafka_consumer_current_offset",
                                    "burrow_kafka_consumer_lag_total",
                                    "burrow_kafka_consumer_partition_lag",
                                    "burrow_kafka_consumer_status",
                                    "burrow_kafka_topic_partition_offset",
                                    "burrow_kafka_topic_partition_status"])

    def test_metric_values(self):
        _, s = self.metrics()
        g = 'cluster="a",consumer_group="%s"'
        p = 'cluster="a",consumer_group="%s",partition="%d",topic="%s"'
        expect = {
            "burrow_kafka_consumer_lag_total{%s}" % (g % "warn-group"): 10,
            "burrow_kafka_consumer_status{%s}" % (g % "warn-group"): 2,
            "burrow_kafka_consumer_status{%s}" % (g % "ok-group"): 1,
            "burrow_kafka_consumer_status{%s}" % (g % "stop-group"): 3,
            "burrow_kafka_consumer_partition_lag{%s}" % (p % ("warn-group", 0, "clicks")): 10,
            "burrow_kafka_consumer_partition_lag{%s}" % (p % ("ok-group", 2, "orders")): 0,
            "burrow_kafka_consumer_current_offset{%s}" % (p % ("warn-group", 0, "clicks")): 90,
            "burrow_kafka_topic_partition_status{%s}" % (p % ("warn-group", 0, "clicks")): 2,
            "burrow_kafka_topic_partition_status{%s}" % (p % ("stall-group", 0, "refunds")): 5,
            'burrow_kafka_topic_partition_offset{cluster="a",partition="0",topic="orders"}': 20,
            'burrow_kafka_topic_partition_offset{cluster="a",partition="2",topic="orders"}': 0,
            'burrow_kafka_consumer_status{cluster="b",consumer_group="<img src=x '
            'onerror=alert(1)>&\\"\'"}': 3,
        }
        for key, value in expect.items():
            self.assertEqual(s.get(key), value, key)
        # Only full windows carry current_offset and partition status (Burrow).
        self.assertNotIn("burrow_kafka_consumer_current_offset{%s}"
                         % (p % ("stop-group", 0, "payments")), s)
        self.assertNotIn("burrow_kafka_topic_partition_status{%s}"
                         % (p % ("ok-group", 0, "orders")), s)
        # NOTFOUND groups are left out.
        self.assertFalse([k for k in s if "expired-group" in k])


class TestDelete(unittest.TestCase):
    def setUp(self):
        q7.load(LIB)
        self.tmp = tempfile.mkdtemp(prefix="q7-serve-del-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dir = os.path.join(self.tmp, "c")
        f = Fixture(self.dir, int(time.time() * 1000))
        f.topics(t=1)
        f.produce("t", 0, 4)
        f.commit("doomed", "t", 0, 2, 10 * SEC)
        f.commit("keeper", "t", 0, 4, 10 * SEC)
        f.close()

    def serve(self, *extra):
        proc, port, err = start_server("--listen", "127.0.0.1:0", "--cluster",
                                       "c=" + self.dir, *extra)
        self.addCleanup(err.close)
        self.addCleanup(stop_server, proc)
        return port

    def test_delete_with_allow_delete(self):
        port = self.serve("--allow-delete")
        status, headers, body = request(port, "DELETE", "/v3/kafka/c/consumer/doomed")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "application/json")
        doc = json.loads(body)
        self.assertEqual(doc, {"error": False, "message": "consumer group removed",
                               "request": {"url": "/v3/kafka/c/consumer/doomed", "host": HOST}})
        self.assertEqual(list(doc), ["error", "message", "request"])
        consumers = json.loads(request(port, "GET", "/v3/kafka/c/consumer")[2])["consumers"]
        self.assertEqual(consumers, ["keeper"])
        self.assertEqual(request(port, "GET", "/v3/kafka/c/consumer/doomed/status")[0], 404)
        # Burrow answers the same for a group that is not there.
        self.assertEqual(request(port, "DELETE", "/v3/kafka/c/consumer/doomed")[0], 200)
        # Other paths still refuse DELETE, and name it in Allow.
        status, headers, _ = request(port, "POST", "/v3/kafka/c/consumer/keeper")
        self.assertEqual((status, headers["Allow"]), (405, "GET, HEAD, DELETE"))

    def test_delete_without_allow_delete(self):
        port = self.serve()
        status, headers, body = request(port, "DELETE", "/v3/kafka/c/consumer/doomed")
        self.assertEqual(status, 405)
        self.assertEqual(headers["Allow"], "GET, HEAD")
        self.assertIs(json.loads(body)["error"], True)
        consumers = json.loads(request(port, "GET", "/v3/kafka/c/consumer")[2])["consumers"]
        self.assertEqual(consumers, ["doomed", "keeper"])


class TestCommandLine(unittest.TestCase):
    def setUp(self):
        q7.load(LIB)
        self.tmp = tempfile.mkdtemp(prefix="q7-serve-cli-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.dir = os.path.join(self.tmp, "s")
        q7.Store(self.dir, {"sync": False}).close()

    def run_tool(self, *args):
        return subprocess.run([TOOL, "serve"] + list(args), capture_output=True, text=True,
                              timeout=START_TIMEOUT)

    def test_help(self):
        p = self.run_tool("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--cluster NAME=DIR", p.stdout)

    def test_bad_arguments(self):
        for args in ((), ("--cluster", "bad/name=" + self.dir), ("--cluster", "nodir"),
                     ("--cluster", "a=" + self.dir, "--cluster", "a=" + self.dir),
                     ("--cluster", "a=" + self.dir, "--cluster", "b=" + self.dir + "/."),
                     ("--cluster", "a=" + self.dir, "--frobnicate"),
                     ("--cluster", "a=" + self.dir, "--listen", "127.0.0.1"),
                     ("--cluster", "a=" + self.dir, "--listen", "127.0.0.1:99999"),
                     ("--cluster", "a=" + os.path.join(self.tmp, "missing"))):
            with self.subTest(args=args):
                p = self.run_tool(*args)
                self.assertNotEqual(p.returncode, 0)
                self.assertEqual(p.stdout, "")
                self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
                self.assertTrue(p.stderr.startswith("q7 serve: "), p.stderr)

    def test_non_loopback_is_refused(self):
        for addr in ("0.0.0.0:0", "[::]:0"):
            p = self.run_tool("--listen", addr, "--cluster", "a=" + self.dir)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn("--allow-remote", p.stderr)
            self.assertEqual(p.stdout, "")

    def test_allow_remote(self):
        proc, port, err = start_server("--listen", "0.0.0.0:0", "--allow-remote",
                                       "--cluster", "a=" + self.dir)
        self.addCleanup(err.close)
        self.addCleanup(stop_server, proc)
        self.assertEqual(request(port, "GET", "/burrow/admin")[2], b"GOOD")

    def test_stops_cleanly_on_sigint_and_sigterm(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            with self.subTest(sig=sig):
                proc, port, err = start_server("--listen", "127.0.0.1:0",
                                               "--cluster", "a=" + self.dir)
                self.addCleanup(err.close)
                # Idle connections, fresh or kept alive after a request, must
                # not hold the shutdown up.
                idle = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT)
                self.addCleanup(idle.close)
                alive = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
                self.addCleanup(alive.close)
                alive.request("GET", "/v3/kafka/a/consumer")
                self.assertEqual(alive.getresponse().read()[:14], b'{"error":false')
                started = time.monotonic()
                self.assertEqual(stop_server(proc, sig), 0)
                self.assertLess(time.monotonic() - started, STOP_TIMEOUT)
        # The store was closed: it opens again here at once.
        q7.Store(self.dir).close()


# ------------------------------------------------------------ the page
def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", head[16:24])


class TestPage(ServeCase):
    def test_page_is_self_contained(self):
        status, headers, body = self.get("/")
        self.assertEqual(status, 200)
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        page = body.decode()
        self.assertIn("<script>", page)
        self.assertNotRegex(page, r"(src|href)\s*=|@import|url\(|https?://")
        self.assertNotIn("innerHTML", page)
        self.assertIn("textContent", page)
        self.assertIn("/v3/kafka", page)
        self.assertIn("setTimeout(refresh, REFRESH_MS)", page)   # it refreshes itself

    def chromium(self, *args):
        """Run headless Chromium in its own process group; kill the group on
        timeout.  Returns stdout."""
        profile = tempfile.mkdtemp(prefix="q7-serve-chromium-")
        self.addCleanup(shutil.rmtree, profile, True)
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--user-data-dir=" + profile,
               "--virtual-time-budget=5000"] + list(args) + ["http://127.0.0.1:%d/" % self.port]
        # Chromium must not inherit a sanitizer runtime preloaded for libq7
        # (make check SANITIZE=1).
        env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                start_new_session=True, env=env)
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            raise
        self.assertEqual(proc.returncode, 0)
        return out.decode(errors="replace")

    @unittest.skipUnless(os.path.exists(CHROMIUM), "no %s (apt-get install chromium)" % CHROMIUM)
    def test_page_renders_in_chromium(self):
        dom = self.chromium("--dump-dom")
        expected = {"a": {"ok-group": "OK", "warn-group": "WARN", "stop-group": "ERR",
                          "single-commit": "ERR", "stall-group": "ERR",
                          "rewind-group": "ERR", "expired-group": "NOTFOUND"},
                    "b": {"b-ok": "OK"}}
        for cluster, groups in expected.items():
            self.assertIn('data-cluster="%s"' % cluster, dom)
            for group, status in groups.items():
                with self.subTest(group=group):
                    self.assertRegex(dom, r'<div class="group %s" data-group="%s" '
                                          r'data-status="%s">' % (status, group, status))
                    self.assertIn('<span class="name">%s</span>' % group, dom)
                    self.assertIn('<span class="badge %s">%s</span>' % (status, status), dom)
        self.assertRegex(dom, r'<span id="updated">updated [^<]+</span>')   # a refresh ran
        self.assertIn('<span class="meta total">total lag 10</span>', dom)   # warn-group
        self.assertIn("lag 25 · STALL", dom)
        # The hostile name is text, never markup.
        self.assertIn('<span class="name">&lt;img src=x onerror=alert(1)&gt;&amp;"\'</span>', dom)
        self.assertNotIn("<img", dom)

    @unittest.skipUnless(os.path.exists(CHROMIUM), "no %s (apt-get install chromium)" % CHROMIUM)
    def test_page_screenshot(self):
        shot = os.path.join(self.tmp, "page.png")
        self.chromium("--screenshot=" + shot, "--window-size=1200,800")
        self.assertTrue(os.path.exists(shot))
        self.assertEqual(png_size(shot), (1200, 800))
        self.assertGreater(os.path.getsize(shot), 20000)   # not a blank page
        keep = os.environ.get("Q7_SERVE_SCREENSHOT")
        if keep:
            shutil.copy(shot, keep)


if __name__ == "__main__":
    unittest.main(verbosity=2)
