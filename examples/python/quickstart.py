#!/usr/bin/env python3
"""quickstart.py - examples/quickstart.c in Python, through the ctypes binding.

Create a topic with 3 partitions, produce keyed records (counting delivery
reports), send one record synchronously, consume everything in a group,
commit, and show the committed offsets and the lag.

    usage: quickstart.py [--lib PATH] [DIR] [RECORDS]   (default ./q7-demo, 10000)

The library is PATH, else $Q7_LIB, else libq7.so.0 from the loader's path,
e.g.  Q7_LIB=build/libq7.so.0 python3 examples/python/quickstart.py /tmp/demo
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import q7  # noqa: E402

GROUP = "demo-group"
TOPIC = "events"


def main():
    ap = argparse.ArgumentParser(description="libq7 quickstart, in Python")
    ap.add_argument("--lib", help="path of libq7.so.0 (default: $Q7_LIB, else libq7.so.0)")
    ap.add_argument("dir", nargs="?", default="q7-demo", help="store directory")
    ap.add_argument("records", nargs="?", type=int, default=10000, help="records to send")
    args = ap.parse_args()
    try:
        q7.load(args.lib)
    except OSError as e:
        print("quickstart.py: cannot load libq7 (%s); pass --lib PATH or set Q7_LIB" % e,
              file=sys.stderr)
        return 2

    # Durable by default; the demo trades fsync for speed: records survive a
    # crash of this process, not a power loss.
    with q7.Store(args.dir, {"sync": False}) as store:
        store.create_topic(TOPIC, 3, exist_ok=True)
        with store.topic(TOPIC) as events:
            print("store %s (libq7 %s): topic %s, %d partitions"
                  % (store.path, q7.version(), events.name, events.partition_count))
            failed = produce(store, events, args.records)
        consumed = consume(store)

        ok = failed == 0
        for p in range(3):
            committed = store.committed(GROUP, TOPIC, p)
            lag = store.lag(GROUP, TOPIC, p)
            print("  partition %d: committed %d, lag %d" % (p, committed, lag))
            ok = ok and lag == 0
        lag, where = store.lag_max(GROUP, TOPIC)
        print("records-lag-max %d (partition %d)" % (lag, where))
    print("consumed %d records; %s" % (consumed, "ok" if ok else "FAILED"))
    return 0 if ok else 1


def produce(store, events, n):
    reports = {"delivered": 0, "failed": 0}

    def on_delivery(report):  # called inside send/poll/flush/close, in this thread
        reports["failed" if report.err else "delivered"] += 1

    # The producer keeps the ctypes callback object alive as long as it lives.
    with store.producer({"batch.size": 131072}, on_delivery=on_delivery) as producer:
        t0 = time.monotonic()
        for i in range(n):
            producer.send(events, '{"event":%d,"kind":"click"}' % i, key="user-%d" % (i % 1000))
        partition, offset = producer.send_sync(events, '{"event":"sync"}', key="user-7",
                                               headers={"source": b"quickstart.py"})
        producer.flush()
        dt = max(time.monotonic() - t0, 1e-9)
    print("produced %d keyed records in %.3f s (%.0f records/s): %d delivery reports, %d failed"
          % (n, dt, n / dt, reports["delivered"] + reports["failed"], reports["failed"]))
    print("send_sync put user-7 at partition %d offset %d; Kafka's partitioner says %d"
          % (partition, offset, q7.partition_for_key("user-7", 3)))
    missing = n - reports["delivered"] - reports["failed"]
    if missing:
        print("%d records were never reported" % missing, file=sys.stderr)
    return reports["failed"] + abs(missing)


def consume(store):
    conf = {"auto.offset.reset": "earliest", "enable.auto.commit": False,
            "max.poll.records": 10000}
    per = [0, 0, 0]
    with store.consumer(GROUP, conf) as consumer:
        consumer.subscribe(TOPIC)
        t0 = t1 = time.monotonic()
        while True:
            records = consumer.poll(10000, timeout_ms=200)
            if not records:
                break
            for r in records:
                per[r.partition] += 1
            t1 = time.monotonic()
        consumer.commit()
    seen = sum(per)
    print("consumed %d records in group %s (%.0f records/s): %d / %d / %d per partition"
          % (seen, GROUP, seen / max(t1 - t0, 1e-9), per[0], per[1], per[2]))
    return seen


if __name__ == "__main__":
    try:
        sys.exit(main())
    except q7.Q7Error as e:
        print("quickstart.py: %s" % e, file=sys.stderr)
        sys.exit(1)
