"""q7 - a small ctypes binding for libq7 (standard library only).

    import q7
    q7.load("build/libq7.so.0")          # optional: else $Q7_LIB, else "libq7.so.0"
    with q7.Store("/tmp/demo", {"sync": False}) as store:
        store.create_topic("events", 3, exist_ok=True)
        with store.topic("events") as events, store.producer() as producer:
            producer.send(events, b"hello", key=b"user-1")
        with store.consumer("g", {"auto.offset.reset": "earliest"}) as consumer:
            consumer.subscribe("events")
            for record in consumer.poll(timeout_ms=1000):
                print(record.partition, record.offset, record.key, record.value)

Every handle (Store, Topic, Producer, Consumer) has close() and is a context
manager; a handle that is garbage collected, or still open at interpreter
exit, is closed then.  A negative return from libq7 raises Q7Error, whose
code is the pinned Q7_E* value and whose message comes from q7_strerror()
and q7_last_error().

Records are copied into Python bytes as soon as a poll or read returns, so
they stay valid after the next poll (in C they point into the store).
Keys, values and header values are bytes, or None for a NULL one (no key, a
tombstone, a null header); b"" is an empty but present one.
"""

import collections
import collections.abc
import ctypes
import itertools
import os
import threading
import weakref
from ctypes import (CFUNCTYPE, POINTER, Structure, byref, c_char, c_char_p, c_int,
                    c_int32, c_int64, c_size_t, c_void_p)

__all__ = [
    "Q7Error", "Store", "Topic", "Partition", "Producer", "Consumer", "Record",
    "Delivery", "load", "version", "strerror", "partition_for_key",
    "q7_record", "q7_msg", "q7_header", "q7_delivery",
]

# --------------------------------------------------------------- constants
# Pinned by the C API: never renumbered, never reused.
OK = 0
EINVAL = -1
ENOENT = -2
EEXIST = -3
ERANGE = -4
ETOOBIG = -5
EFULL = -6
EIO = -7
ECORRUPT = -8
ETIMEDOUT = -9
EBUSY = -10
ENOMEM = -11
EREPLICA = -12
EVERSION = -13
ESTATE = -14

ERROR_NAMES = {
    OK: "Q7_OK", EINVAL: "Q7_EINVAL", ENOENT: "Q7_ENOENT", EEXIST: "Q7_EEXIST",
    ERANGE: "Q7_ERANGE", ETOOBIG: "Q7_ETOOBIG", EFULL: "Q7_EFULL", EIO: "Q7_EIO",
    ECORRUPT: "Q7_ECORRUPT", ETIMEDOUT: "Q7_ETIMEDOUT", EBUSY: "Q7_EBUSY",
    ENOMEM: "Q7_ENOMEM", EREPLICA: "Q7_EREPLICA", EVERSION: "Q7_EVERSION",
    ESTATE: "Q7_ESTATE",
}

PARTITION_ANY = -1
OFFSET_END = -1
OFFSET_BEGINNING = -2
OFFSET_COMMITTED = -1000


class Q7Error(Exception):
    """A libq7 call failed.  code: the Q7_E* value (negative int);
    message: q7_strerror(code) and the q7_last_error() detail.
    sent: set by Producer.send_batch -- how many records of the batch were
    accepted before the refused one (records[sent]); None otherwise."""

    sent = None

    def __init__(self, code, message):
        super().__init__(code, message)
        self.code = code
        self.message = message

    @property
    def name(self):
        return ERROR_NAMES.get(self.code, "Q7_E?")

    def __str__(self):
        return "%s (%s %d)" % (self.message, self.name, self.code)


# ------------------------------------------------------ structs and types
# Opaque handles get distinct pointer types so that passing a topic where a
# store is expected is a ctypes.ArgumentError, not a crash.
class _q7(Structure):
    pass


class _q7_conf(Structure):
    pass


class _q7_topic(Structure):
    pass


class _q7_partition(Structure):
    pass


class _q7_producer(Structure):
    pass


class _q7_consumer(Structure):
    pass


Q7_P = POINTER(_q7)
CONF_P = POINTER(_q7_conf)
TOPIC_P = POINTER(_q7_topic)
PARTITION_P = POINTER(_q7_partition)
PRODUCER_P = POINTER(_q7_producer)
CONSUMER_P = POINTER(_q7_consumer)


# The four data structs, field for field as in q7.h (layout frozen for
# major version 0).  Byte pointers are c_void_p: the data is not
# NUL-terminated and may contain NULs.
class q7_record(Structure):
    _fields_ = [
        ("topic", c_char_p),
        ("partition", c_int32),
        ("offset", c_int64),
        ("timestamp_ms", c_int64),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("value", c_void_p),
        ("value_len", c_size_t),
        ("headers", c_void_p),
        ("headers_len", c_size_t),
    ]


class q7_header(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("value", c_void_p),
        ("value_len", c_size_t),
    ]


class q7_msg(Structure):
    _fields_ = [
        ("topic", TOPIC_P),
        ("partition", c_int32),
        ("key", c_void_p),
        ("key_len", c_size_t),
        ("value", c_void_p),
        ("value_len", c_size_t),
        ("timestamp_ms", c_int64),
        ("headers", POINTER(q7_header)),
        ("header_count", c_size_t),
        ("opaque", c_void_p),
    ]


class q7_delivery(Structure):
    _fields_ = [
        ("topic", c_char_p),
        ("partition", c_int32),
        ("offset", c_int64),
        ("err", c_int),
        ("opaque", c_void_p),
    ]


DELIVERY_CB = CFUNCTYPE(None, POINTER(q7_delivery), c_void_p)
CLOCK_CB = CFUNCTYPE(c_int64, c_void_p)
TOPIC_FN = CFUNCTYPE(c_int, c_char_p, c_int32, c_void_p)

# name: (restype, argtypes).  Every int-returning function but the
# iterator q7_record_header_next raises Q7Error on a negative result.
_PROTOTYPES = {
    "q7_version": (c_char_p, []),
    "q7_strerror": (c_char_p, [c_int]),
    "q7_last_error": (c_char_p, []),
    "q7_conf_new": (CONF_P, []),
    "q7_conf_destroy": (None, [CONF_P]),
    "q7_conf_set": (c_int, [CONF_P, c_char_p, c_char_p]),
    "q7_conf_get": (c_int, [CONF_P, c_char_p, POINTER(c_char), POINTER(c_size_t)]),
    "q7_conf_set_clock": (None, [CONF_P, CLOCK_CB, c_void_p]),
    "q7_conf_set_delivery_cb": (None, [CONF_P, DELIVERY_CB, c_void_p]),
    "q7_open": (c_int, [POINTER(Q7_P), c_char_p, CONF_P]),
    "q7_close": (c_int, [Q7_P]),
    "q7_store_path": (c_char_p, [Q7_P]),
    "q7_topic_create": (c_int, [Q7_P, c_char_p, c_int32, CONF_P]),
    "q7_topic_delete": (c_int, [Q7_P, c_char_p]),
    "q7_topic_foreach": (c_int, [Q7_P, TOPIC_FN, c_void_p]),
    "q7_topic_open": (c_int, [Q7_P, c_char_p, POINTER(TOPIC_P)]),
    "q7_topic_close": (None, [TOPIC_P]),
    "q7_topic_name": (c_char_p, [TOPIC_P]),
    "q7_topic_partition_count": (c_int32, [TOPIC_P]),
    "q7_topic_set": (c_int, [Q7_P, c_char_p, c_char_p, c_char_p]),
    "q7_topic_get": (c_int, [Q7_P, c_char_p, c_char_p, POINTER(c_char), POINTER(c_size_t)]),
    "q7_topic_partition": (c_int, [TOPIC_P, c_int32, POINTER(PARTITION_P)]),
    "q7_partition_offsets": (c_int, [PARTITION_P, POINTER(c_int64), POINTER(c_int64)]),
    "q7_partition_read": (c_int, [PARTITION_P, c_int64, POINTER(q7_record), c_size_t]),
    "q7_record_header": (c_int, [POINTER(q7_record), c_char_p, POINTER(c_void_p),
                                 POINTER(c_size_t)]),
    "q7_record_header_next": (c_int, [POINTER(q7_record), POINTER(c_size_t), POINTER(c_void_p),
                                      POINTER(c_size_t), POINTER(c_void_p), POINTER(c_size_t)]),
    "q7_producer_new": (c_int, [Q7_P, CONF_P, POINTER(PRODUCER_P)]),
    "q7_producer_close": (c_int, [PRODUCER_P]),
    "q7_producer_send": (c_int, [PRODUCER_P, POINTER(q7_msg)]),
    "q7_producer_send_batch": (c_int, [PRODUCER_P, POINTER(q7_msg), c_size_t,
                                       POINTER(c_size_t)]),
    "q7_producer_send_sync": (c_int, [PRODUCER_P, POINTER(q7_msg), POINTER(c_int32),
                                      POINTER(c_int64)]),
    "q7_producer_poll": (c_int, [PRODUCER_P, c_int]),
    "q7_producer_flush": (c_int, [PRODUCER_P, c_int]),
    "q7_partition_for_key": (c_int32, [c_void_p, c_size_t, c_int32]),
    "q7_consumer_new": (c_int, [Q7_P, c_char_p, CONF_P, POINTER(CONSUMER_P)]),
    "q7_consumer_close": (c_int, [CONSUMER_P]),
    "q7_consumer_subscribe": (c_int, [CONSUMER_P, c_char_p]),
    "q7_consumer_assign": (c_int, [CONSUMER_P, c_char_p, c_int32, c_int64]),
    "q7_consumer_unassign": (c_int, [CONSUMER_P, c_char_p, c_int32]),
    "q7_consumer_poll": (c_int, [CONSUMER_P, POINTER(q7_record), c_size_t, c_int]),
    "q7_consumer_seek": (c_int, [CONSUMER_P, c_char_p, c_int32, c_int64]),
    "q7_consumer_position": (c_int, [CONSUMER_P, c_char_p, c_int32, POINTER(c_int64)]),
    "q7_consumer_commit": (c_int, [CONSUMER_P]),
    "q7_consumer_commit_offset": (c_int, [CONSUMER_P, c_char_p, c_int32, c_int64]),
    "q7_consumer_assignment": (c_int, [CONSUMER_P, POINTER(c_char_p), POINTER(c_int32),
                                       c_size_t]),
    "q7_committed": (c_int, [Q7_P, c_char_p, c_char_p, c_int32, POINTER(c_int64)]),
    "q7_lag": (c_int, [Q7_P, c_char_p, c_char_p, c_int32, POINTER(c_int64)]),
    "q7_lag_max": (c_int, [Q7_P, c_char_p, c_char_p, POINTER(c_int64), POINTER(c_int32)]),
}
_UNCHECKED = {"q7_record_header_next"}


# ------------------------------------------------------------ the library
_default_lib = None
_load_lock = threading.Lock()


def _error(lib, code):
    """A Q7Error for @code; call right after the failing call (the detail
    is per thread and valid until the next q7_* call)."""
    detail = lib.q7_last_error() or b""
    text = (lib.q7_strerror(code) or b"").decode("utf-8", "replace")
    detail = detail.decode("utf-8", "replace")
    return Q7Error(code, "%s: %s" % (text, detail) if detail else text)


def _declare(lib):
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes

    def check(result, func, args):
        if result < 0:
            raise _error(lib, result)
        return result

    for name, (restype, _) in _PROTOTYPES.items():
        if restype in (c_int, c_int32) and name not in _UNCHECKED:
            getattr(lib, name).errcheck = check
    return lib


def load(path=None):
    """Load libq7 from @path, else $Q7_LIB, else "libq7.so.0" (the dynamic
    loader's search path), declare its functions, and make it the default
    for handles made afterwards.  Returns the ctypes.CDLL."""
    global _default_lib
    if path is None:
        path = os.environ.get("Q7_LIB") or "libq7.so.0"
    lib = _declare(ctypes.CDLL(os.fspath(path)))
    with _load_lock:
        _default_lib = lib
    return lib


def _get_lib(lib=None):
    if lib is None:
        with _load_lock:
            lib = _default_lib
        return lib if lib is not None else load()
    if isinstance(lib, ctypes.CDLL):
        return lib
    return load(lib)


def version(lib=None):
    """q7_version(): "MAJOR.MINOR.PATCH"."""
    return _get_lib(lib).q7_version().decode()


def strerror(code, lib=None):
    """q7_strerror(code)."""
    return _get_lib(lib).q7_strerror(code).decode("utf-8", "replace")


def partition_for_key(key, partitions, lib=None):
    """q7_partition_for_key: the partition Kafka's Java client picks for
    @key (bytes or str) among @partitions."""
    data = _bytes(key)
    if data is None:
        raise TypeError("partition_for_key: key must be bytes or str, not None")
    return _get_lib(lib).q7_partition_for_key(_ptr(data), len(data), partitions)


# ------------------------------------------------------------ conversions
def _cstr(s, what="string"):
    """str/bytes/PathLike -> NUL-terminated bytes (no embedded NUL)."""
    if isinstance(s, str):
        b = s.encode("utf-8", "surrogateescape")
    elif isinstance(s, (bytes, bytearray)):
        b = bytes(s)
    elif isinstance(s, os.PathLike):
        b = os.fsencode(s)
    else:
        raise TypeError("%s must be str or bytes, not %s" % (what, type(s).__name__))
    if b"\0" in b:
        raise ValueError("%s contains a NUL byte: %r" % (what, s))
    return b


def _bytes(data):
    """None stays None (a NULL pointer); str is UTF-8; bytes-likes copied."""
    if data is None:
        return None
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, bytes):
        return data
    return bytes(data)


def _ptr(data):
    """The address of a bytes object's buffer (non-NULL even for b"").
    The caller keeps @data alive across the call."""
    if data is None:
        return None
    return ctypes.cast(c_char_p(data), c_void_p).value


def _conf_value(v):
    if isinstance(v, bool):
        return b"true" if v else b"false"
    if isinstance(v, bytes):
        return v
    return _cstr(str(v), "config value")


def _copy(ptr, n):
    return None if not ptr else ctypes.string_at(ptr, n)


class _Conf:
    """A q7_conf for the duration of a with block (libq7 copies it)."""

    def __init__(self, lib, settings):
        self.lib = lib
        self.ptr = lib.q7_conf_new()
        if not self.ptr:
            raise MemoryError("q7_conf_new: out of memory")
        try:
            for k, v in dict(settings or {}).items():
                lib.q7_conf_set(self.ptr, _cstr(k, "config key"), _conf_value(v))
        except BaseException:
            lib.q7_conf_destroy(self.ptr)
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lib.q7_conf_destroy(self.ptr)
        self.ptr = None


def _get_string(fn, *args):
    """Call a q7_*_get(..., buf, len) function, growing the buffer."""
    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = c_size_t(size)
        try:
            fn(*args, buf, byref(n))
            return buf.value.decode("utf-8", "surrogateescape")
        except Q7Error as e:
            if e.code != ERANGE or n.value <= size:
                raise
            size = n.value


def _release(fn, ptr, *keepalive):
    """Finalizer: close a handle at garbage collection or exit, quietly."""
    try:
        fn(ptr)
    except Exception:
        pass


class _Handle:
    """Shared bits: the pointer, the library, close-on-collect, with."""

    _what = "handle"

    def _check_open(self):
        if not self._ptr:
            raise Q7Error(ESTATE, "%s is closed" % self._what)
        return self._ptr

    @property
    def closed(self):
        return not self._ptr

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ------------------------------------------------------------------ store
class Store(_Handle):
    """q7_open: a store in directory @path (created if missing).

    conf:  store keys, e.g. {"sync": False}.
    clock: optional callable returning epoch milliseconds; every time the
           store takes (default record timestamps, commit times, lag "now")
           comes from it (q7_conf_set_clock).  It may be called from any
           thread using the store.
    lib:   a ctypes.CDLL from load(), or a library path; default: load().
    """

    _what = "store"

    def __init__(self, path, conf=None, clock=None, lib=None):
        self._lib = lib = _get_lib(lib)
        self._ptr = None
        self._clock_cb = None
        if clock is not None:
            self._clock_cb = CLOCK_CB(lambda arg: int(clock()))
        ptr = Q7_P()
        if conf or clock is not None:
            with _Conf(lib, conf) as c:
                if self._clock_cb is not None:
                    lib.q7_conf_set_clock(c.ptr, self._clock_cb, None)
                lib.q7_open(byref(ptr), _cstr(path, "store path"), c.ptr)
        else:
            lib.q7_open(byref(ptr), _cstr(path, "store path"), None)
        self._ptr = ptr
        # The clock callback must outlive the store: the finalizer holds it.
        self._fin = weakref.finalize(self, _release, lib.q7_close, ptr, self._clock_cb)

    def close(self):
        """q7_close.  Raises Q7Error(EBUSY) while topics, producers or
        consumers of this store are open (the store then stays open)."""
        if not self._ptr:
            return
        self._lib.q7_close(self._ptr)
        self._fin.detach()
        self._ptr = None

    @property
    def path(self):
        return self._lib.q7_store_path(self._check_open()).decode("utf-8", "surrogateescape")

    def __repr__(self):
        if not self._ptr:
            return "<q7.Store closed>"
        return "<q7.Store %s>" % self.path

    # topics
    def create_topic(self, name, partitions=1, conf=None, exist_ok=False):
        """q7_topic_create; with exist_ok an existing topic is not an error."""
        ptr = self._check_open()
        try:
            with _Conf(self._lib, conf) as c:
                self._lib.q7_topic_create(ptr, _cstr(name, "topic name"), partitions,
                                          c.ptr if conf else None)
        except Q7Error as e:
            if not (exist_ok and e.code == EEXIST):
                raise

    def delete_topic(self, name):
        self._lib.q7_topic_delete(self._check_open(), _cstr(name, "topic name"))

    def topics(self):
        """{name: partition count} of every topic, in name order."""
        ptr = self._check_open()
        found = {}

        def each(name, partitions, arg):
            found[name.decode("utf-8", "surrogateescape")] = partitions
            return 0

        self._lib.q7_topic_foreach(ptr, TOPIC_FN(each), None)
        return found

    def topic(self, name):
        """q7_topic_open: a Topic handle on an existing topic."""
        return Topic(self, name)

    def set_topic_config(self, name, key, value):
        self._lib.q7_topic_set(self._check_open(), _cstr(name, "topic name"),
                               _cstr(key, "config key"), _conf_value(value))

    def topic_config(self, name, key):
        return _get_string(self._lib.q7_topic_get, self._check_open(),
                           _cstr(name, "topic name"), _cstr(key, "config key"))

    # clients
    def producer(self, conf=None, on_delivery=None):
        return Producer(self, conf, on_delivery)

    def consumer(self, group=None, conf=None):
        return Consumer(self, group, conf)

    # offsets and lag
    def committed(self, group, topic, partition):
        """q7_committed: the group's committed next offset (Q7Error ENOENT
        when it never committed there)."""
        out = c_int64()
        self._lib.q7_committed(self._check_open(), _cstr(group, "group"),
                               _cstr(topic, "topic name"), partition, byref(out))
        return out.value

    def lag(self, group, topic, partition):
        out = c_int64()
        self._lib.q7_lag(self._check_open(), _cstr(group, "group"), _cstr(topic, "topic name"),
                         partition, byref(out))
        return out.value

    def lag_max(self, group, topic):
        """q7_lag_max: (largest lag, first partition that has it)."""
        lag, part = c_int64(), c_int32()
        self._lib.q7_lag_max(self._check_open(), _cstr(group, "group"),
                             _cstr(topic, "topic name"), byref(lag), byref(part))
        return lag.value, part.value


# ---------------------------------------------------------------- records
class Record:
    """One record, copied out of the store: topic, partition, offset,
    timestamp_ms, key and value (bytes, or None when NULL) and headers."""

    __slots__ = ("topic", "partition", "offset", "timestamp_ms", "key", "value",
                 "headers_raw", "_lib")

    def __init__(self, lib, r):
        self._lib = lib
        self.topic = r.topic.decode("utf-8", "surrogateescape") if r.topic else None
        self.partition = r.partition
        self.offset = r.offset
        self.timestamp_ms = r.timestamp_ms
        self.key = _copy(r.key, r.key_len)
        self.value = _copy(r.value, r.value_len)
        self.headers_raw = _copy(r.headers, r.headers_len) or b""

    def _c(self):
        """A q7_record over our own copy (self.headers_raw, alive as long
        as self), for the header functions."""
        r = q7_record()
        r.partition = self.partition
        r.offset = self.offset
        r.timestamp_ms = self.timestamp_ms
        r.headers = _ptr(self.headers_raw)
        r.headers_len = len(self.headers_raw)
        return r

    def header(self, name):
        """q7_record_header: the value of the first header called @name
        (bytes, or None for a null value); KeyError when there is none."""
        r, value, n = self._c(), c_void_p(), c_size_t()
        try:
            self._lib.q7_record_header(byref(r), _cstr(name, "header name"), byref(value),
                                       byref(n))
        except Q7Error as e:
            if e.code == ENOENT:
                raise KeyError(name) from None
            raise
        return _copy(value.value, n.value)

    @property
    def headers(self):
        """Every header in order: a list of (name, value) pairs."""
        r, it = self._c(), c_size_t(0)
        name, name_len, value, value_len = c_void_p(), c_size_t(), c_void_p(), c_size_t()
        out = []
        while True:
            rc = self._lib.q7_record_header_next(byref(r), byref(it), byref(name),
                                                 byref(name_len), byref(value), byref(value_len))
            if rc == ENOENT:
                return out
            if rc < 0:
                raise _error(self._lib, rc)
            out.append((ctypes.string_at(name.value, name_len.value).decode(
                "utf-8", "surrogateescape"), _copy(value.value, value_len.value)))

    def __repr__(self):
        return ("Record(topic=%r, partition=%d, offset=%d, timestamp_ms=%d, key=%r, value=%r)"
                % (self.topic, self.partition, self.offset, self.timestamp_ms, self.key,
                   self.value if self.value is None or len(self.value) <= 64
                   else self.value[:64] + b"..."))


def _records(lib, arr, n):
    return [Record(lib, arr[i]) for i in range(n)]


# ----------------------------------------------------------------- topics
class _TopicRef:
    """The C topic handle, closed when its last user lets go: the Topic
    object and every producer that sent records to it (libq7 requires the
    topic handle to outlive the producer's records and reports)."""

    def __init__(self, lib, ptr):
        self.lib, self.ptr, self.refs = lib, ptr, 1
        self.lock = threading.Lock()

    def acquire(self):
        with self.lock:
            self.refs += 1

    def release(self):
        with self.lock:
            self.refs -= 1
            last = self.refs == 0
        if last:
            self.lib.q7_topic_close(self.ptr)


def _release_topic(ref):
    ref.release()


class Topic(_Handle):
    """q7_topic_open: a handle on topic @name of @store."""

    _what = "topic"

    def __init__(self, store, name):
        self._ptr = None
        self._store = store  # the store must outlive the topic
        self._lib = lib = store._lib
        ptr = TOPIC_P()
        lib.q7_topic_open(store._check_open(), _cstr(name, "topic name"), byref(ptr))
        self._ref = _TopicRef(lib, ptr)
        self._ptr = ptr
        self._fin = weakref.finalize(self, _release_topic, self._ref)
        self.name = lib.q7_topic_name(ptr).decode("utf-8", "surrogateescape")
        self.partition_count = lib.q7_topic_partition_count(ptr)

    def close(self):
        """q7_topic_close (deferred while a producer still holds the handle
        for records it sent; it is then closed with that producer)."""
        if not self._ptr:
            return
        self._ptr = None
        self._fin()

    def partition(self, index):
        return Partition(self, index)

    def offsets(self, partition):
        """(log_start, high_watermark) of a partition."""
        return self.partition(partition).offsets()

    def read(self, partition, offset, max_records=500):
        """q7_partition_read: up to @max_records records from @offset."""
        return self.partition(partition).read(offset, max_records)

    def __repr__(self):
        return "<q7.Topic %s, %d partitions%s>" % (self.name, self.partition_count,
                                                   " closed" if not self._ptr else "")


class Partition:
    """q7_topic_partition: a partition of an open topic (borrowed)."""

    def __init__(self, topic, index):
        self.topic = topic
        self.index = index
        self._lib = topic._lib
        self._p = PARTITION_P()
        self._lib.q7_topic_partition(topic._check_open(), index, byref(self._p))

    def offsets(self):
        """q7_partition_offsets: (log_start, high_watermark)."""
        self.topic._check_open()
        ls, hw = c_int64(), c_int64()
        self._lib.q7_partition_offsets(self._p, byref(ls), byref(hw))
        return ls.value, hw.value

    def read(self, offset, max_records=500):
        """q7_partition_read, copied; the read is released at once."""
        self.topic._check_open()
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        arr = (q7_record * max_records)()
        n = self._lib.q7_partition_read(self._p, offset, arr, max_records)
        out = _records(self._lib, arr, n)
        if n:
            try:  # give the read transaction back now that we have copies
                self._lib.q7_partition_read(self._p, offset, None, 0)
            except Q7Error:
                pass
        return out


# --------------------------------------------------------------- producer
_DeliveryBase = collections.namedtuple("Delivery", "topic partition offset err opaque")


class Delivery(_DeliveryBase):
    """A delivery report: topic, partition, offset (-1 on error), err
    (0 or a Q7_E* code) and the opaque object given to send()."""

    __slots__ = ()

    @property
    def error(self):
        """None, or a Q7Error for err (no detail: the report has none)."""
        if not self.err:
            return None
        return Q7Error(self.err, strerror(self.err))


def _close_producer(lib, ptr, callback, topic_refs):
    try:
        lib.q7_producer_close(ptr)
    except Exception:
        pass
    for ref in topic_refs:
        ref.release()


def _send_args(topic, value=None, key=None, partition=PARTITION_ANY, timestamp_ms=0,
               headers=None, opaque=None):
    """One send_batch record, as send() takes its arguments."""
    return topic, value, key, partition, timestamp_ms, headers, opaque


class Producer(_Handle):
    """q7_producer_new on @store.

    conf:        producer keys, e.g. {"linger.ms": 5, "batch.size": 131072}.
    on_delivery: optional callable(Delivery), called exactly once for each
                 record sent with send() or send_batch(), only inside
                 send/send_batch/poll/flush/close and in the calling
                 thread.  An exception it raises is re-raised by the
                 call that ran it.
    """

    _what = "producer"

    def __init__(self, store, conf=None, on_delivery=None):
        self._ptr = None
        self._store = store
        self._lib = lib = store._lib
        self._pending = {}           # token -> opaque, records not yet reported
        self._tokens = itertools.count(1)
        self._errors = []            # exceptions raised by on_delivery
        self._topic_refs = {}        # id(_TopicRef) -> _TopicRef held for sent records
        self._cb = None
        if on_delivery is not None:
            self._cb = DELIVERY_CB(self._trampoline(on_delivery, self._pending, self._errors))
        ptr = PRODUCER_P()
        with _Conf(lib, conf) as c:
            if self._cb is not None:
                lib.q7_conf_set_delivery_cb(c.ptr, self._cb, None)
            lib.q7_producer_new(store._check_open(), c.ptr, byref(ptr))
        self._ptr = ptr
        # The C callback object must live as long as the producer: the
        # finalizer (and self) hold it.
        self._fin = weakref.finalize(self, _close_producer, lib, ptr, self._cb,
                                     self._topic_refs.values())

    @staticmethod
    def _trampoline(on_delivery, pending, errors):
        def cb(d, arg):
            try:
                d = d.contents
                token = d.opaque or 0
                opaque = pending.pop(token, None)
                topic = d.topic.decode("utf-8", "surrogateescape") if d.topic else None
                on_delivery(Delivery(topic, d.partition, d.offset, d.err, opaque))
            except BaseException as e:  # never let an exception unwind into C
                errors.append(e)
        return cb

    def _raise_callback_error(self):
        if self._errors:
            e = self._errors[0]
            del self._errors[:]
            raise e

    def _msg(self, topic, value, key, partition, timestamp_ms, headers, token, m=None):
        """The q7_msg of one record (filled into @m if given, e.g. an
        element of a q7_msg array) and the Python objects it points into,
        which the caller keeps alive across the call."""
        if not isinstance(topic, Topic):
            raise TypeError("topic must be a q7.Topic, not %s" % type(topic).__name__)
        if m is None:
            m = q7_msg()
        m.topic = topic._check_open()
        m.partition = partition
        keep = []
        key, value = _bytes(key), _bytes(value)
        keep += [key, value]
        m.key, m.key_len = _ptr(key), len(key) if key is not None else 0
        m.value, m.value_len = _ptr(value), len(value) if value is not None else 0
        m.timestamp_ms = timestamp_ms
        if headers:
            items = list(headers.items() if isinstance(headers, dict) else headers)
            arr = (q7_header * len(items))()
            for h, (name, hv) in zip(arr, items):
                name, hv = _cstr(name, "header name"), _bytes(hv)
                keep += [name, hv]
                h.name = name
                h.value, h.value_len = _ptr(hv), len(hv) if hv is not None else 0
            keep.append(arr)
            m.headers, m.header_count = arr, len(items)
        m.opaque = token
        return m, keep

    def _stage(self, topic, value, key, partition, timestamp_ms, headers, opaque, m=None):
        """Ready one record for send/send_batch: register @opaque under a
        fresh token (when reports are on), build its q7_msg (into @m if
        given) and hold @topic's handle for the producer's lifetime.
        Returns (m, keep, token); on an exception nothing stays registered."""
        token = None
        if self._cb is not None:
            token = next(self._tokens)
            self._pending[token] = opaque
        try:
            m, keep = self._msg(topic, value, key, partition, timestamp_ms, headers, token, m)
            ref = topic._ref
            if id(ref) not in self._topic_refs:
                ref.acquire()
                self._topic_refs[id(ref)] = ref
        except BaseException:
            self._forget(token)
            raise
        return m, keep, token

    def _forget(self, *tokens):
        """Drop the opaques of records libq7 did not accept (no report
        will come for them)."""
        for token in tokens:
            if token is not None:
                self._pending.pop(token, None)

    def send(self, topic, value=None, key=None, partition=PARTITION_ANY, timestamp_ms=0,
             headers=None, opaque=None):
        """q7_producer_send: queue one record for @topic (a Topic).
        value, key: bytes, str (UTF-8) or None.  headers: a dict or a list
        of (name, value) pairs.  timestamp_ms 0: the store's clock.  opaque:
        any object, handed back in the Delivery report."""
        ptr = self._check_open()
        try:
            m, keep, token = self._stage(topic, value, key, partition, timestamp_ms, headers,
                                         opaque)
            try:
                self._lib.q7_producer_send(ptr, byref(m))
            except BaseException:
                self._forget(token)
                raise
        finally:
            self._raise_callback_error()

    def send_batch(self, records):
        """q7_producer_send_batch: queue many records under one lock, in
        order.  @records: an iterable of tuples (topic, value, key,
        partition, timestamp_ms, headers, opaque) -- trailing ones may be
        left out -- or of dicts of send()'s keyword arguments, e.g.
        {"topic": t, "value": b"v", "key": b"k", "opaque": obj}.  Each
        record is reported as if sent alone.  Returns how many were sent
        (all of them).

        A record refused by libq7 stops the batch: Q7Error, whose .sent
        says how many came before it and were accepted (they will be
        reported; the rest were not sent) and whose message names it
        ("send_batch: record I of N: ...").  A record the binding cannot
        convert (TypeError, ValueError) is raised before anything is sent.
        As for send(), an exception raised by on_delivery during the call
        is raised instead."""
        ptr = self._check_open()
        records = list(records)
        n = len(records)
        arr = (q7_msg * n)()
        keep, tokens = [], []
        try:
            try:
                for i, r in enumerate(records):
                    if isinstance(r, collections.abc.Mapping):
                        args = _send_args(**r)
                    else:
                        args = _send_args(*r)
                    m, k, token = self._stage(*args, m=arr[i])
                    keep.append(k)
                    tokens.append(token)
            except BaseException as e:
                self._forget(*tokens)
                if isinstance(e, Exception) and hasattr(e, "add_note"):
                    e.add_note("send_batch: record %d of %d (nothing was sent)" % (i, n))
                raise
            sent = c_size_t(0)
            try:
                self._lib.q7_producer_send_batch(ptr, arr, n, byref(sent))
            except BaseException as e:
                self._forget(*tokens[sent.value:])
                if isinstance(e, Q7Error):
                    e.sent = sent.value
                raise
            return sent.value
        finally:
            self._raise_callback_error()

    def send_sync(self, topic, value=None, key=None, partition=PARTITION_ANY, timestamp_ms=0,
                  headers=None):
        """q7_producer_send_sync: commit one record now; returns
        (partition, offset).  No delivery report is made for it."""
        ptr = self._check_open()
        m, keep = self._msg(topic, value, key, partition, timestamp_ms, headers, None)
        part, off = c_int32(), c_int64()
        self._lib.q7_producer_send_sync(ptr, byref(m), byref(part), byref(off))
        return part.value, off.value

    def poll(self, timeout_ms=0):
        """q7_producer_poll: serve delivery reports; returns how many."""
        try:
            return self._lib.q7_producer_poll(self._check_open(), timeout_ms)
        finally:
            self._raise_callback_error()

    def flush(self, timeout_ms=-1):
        """q7_producer_flush: commit everything, serve every report
        (Q7Error ETIMEDOUT if records are still pending at the timeout)."""
        try:
            self._lib.q7_producer_flush(self._check_open(), timeout_ms)
        finally:
            self._raise_callback_error()

    @property
    def in_flight(self):
        """Records sent and not yet reported (counted when on_delivery is set)."""
        return len(self._pending)

    def close(self):
        """q7_producer_close: flush, serve the last reports, free."""
        if not self._ptr:
            return
        ptr, self._ptr = self._ptr, None
        self._fin.detach()
        try:
            self._lib.q7_producer_close(ptr)
        finally:
            for ref in list(self._topic_refs.values()):
                ref.release()
            self._topic_refs.clear()
            self._raise_callback_error()

    def __repr__(self):
        return "<q7.Producer%s>" % (" closed" if not self._ptr else "")


# --------------------------------------------------------------- consumer
class Consumer(_Handle):
    """q7_consumer_new on @store in consumer group @group (None: no group,
    manual assignment only).  conf: consumer keys, e.g.
    {"auto.offset.reset": "earliest", "enable.auto.commit": False}."""

    _what = "consumer"

    def __init__(self, store, group=None, conf=None):
        self._ptr = None
        self._store = store
        self._lib = lib = store._lib
        self.group = group
        self._arr = None
        ptr = CONSUMER_P()
        with _Conf(lib, conf) as c:
            lib.q7_consumer_new(store._check_open(),
                                None if group is None else _cstr(group, "group"),
                                c.ptr, byref(ptr))
        self._ptr = ptr
        self._fin = weakref.finalize(self, _release, lib.q7_consumer_close, ptr)

    def close(self):
        """q7_consumer_close: commit if enable.auto.commit, leave, free."""
        if not self._ptr:
            return
        ptr, self._ptr = self._ptr, None
        self._fin.detach()
        self._lib.q7_consumer_close(ptr)

    @staticmethod
    def _name(topic):
        return _cstr(topic.name if isinstance(topic, Topic) else topic, "topic name")

    def subscribe(self, topic):
        self._lib.q7_consumer_subscribe(self._check_open(), self._name(topic))

    def assign(self, topic, partition, offset=OFFSET_COMMITTED):
        self._lib.q7_consumer_assign(self._check_open(), self._name(topic), partition, offset)

    def unassign(self, topic, partition):
        self._lib.q7_consumer_unassign(self._check_open(), self._name(topic), partition)

    def seek(self, topic, partition, offset):
        self._lib.q7_consumer_seek(self._check_open(), self._name(topic), partition, offset)

    def position(self, topic, partition):
        out = c_int64()
        self._lib.q7_consumer_position(self._check_open(), self._name(topic), partition,
                                       byref(out))
        return out.value

    def assignment(self):
        """[(topic, partition), ...] this consumer reads now."""
        ptr = self._check_open()
        size = 16
        while True:
            topics, parts = (c_char_p * size)(), (c_int32 * size)()
            n = self._lib.q7_consumer_assignment(ptr, topics, parts, size)
            if n <= size:
                return [(topics[i].decode("utf-8", "surrogateescape"), parts[i])
                        for i in range(n)]
            size = n

    def poll(self, max_records=500, timeout_ms=0):
        """q7_consumer_poll: a list of up to @max_records Records (copied),
        waiting up to @timeout_ms (-1: forever) for the first one."""
        ptr = self._check_open()
        if max_records < 1:
            raise ValueError("max_records must be at least 1")
        if self._arr is None or len(self._arr) < max_records:
            self._arr = (q7_record * max_records)()
        n = self._lib.q7_consumer_poll(ptr, self._arr, max_records, timeout_ms)
        return _records(self._lib, self._arr, n)

    def commit(self, topic=None, partition=None, offset=None):
        """q7_consumer_commit (every assigned partition's position), or with
        all three arguments q7_consumer_commit_offset (@offset is the next
        offset to read)."""
        ptr = self._check_open()
        if topic is None and partition is None and offset is None:
            self._lib.q7_consumer_commit(ptr)
        elif topic is None or partition is None or offset is None:
            raise TypeError("commit() takes no arguments or topic, partition and offset")
        else:
            self._lib.q7_consumer_commit_offset(ptr, self._name(topic), partition, offset)

    def __repr__(self):
        return "<q7.Consumer group=%r%s>" % (self.group, " closed" if not self._ptr else "")
