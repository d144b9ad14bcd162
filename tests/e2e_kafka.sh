#!/bin/sh
# e2e_kafka.sh BUILD - `q7 kafka export` and `q7 kafka import` against
# librdkafka's built-in mock Kafka cluster (no broker needed, 127.0.0.1 only).
#
#   1. without librdkafka (pkg-config rdkafka fails) the whole check is
#      skipped, saying so, with exit 0;
#   2. the tool built without librdkafka answers `q7 kafka ...` with
#      "q7 kafka: built without librdkafka ..." and exit 2 (compiled here
#      into a temporary directory, without -DQ7_HAVE_RDKAFKA);
#   3. tests/kafka/kafka_check.c, compiled here against BUILD/libq7.a and
#      librdkafka, runs BUILD/tools/q7 against the mock cluster it starts:
#      export of 100,000 records compared byte for byte and partition for
#      partition, an exporter killed mid-way and restarted (nothing lost),
#      different partition counts, import, --follow with SIGTERM.  See the
#      head of kafka_check.c.
#
# Everything runs in a temporary directory, bounded by `timeout`.
# Run from the repository root: sh tests/e2e_kafka.sh build
B=${1:-build}
Q7=$B/tools/q7
CC=${CC:-cc}
case $Q7 in /*) ;; *) Q7=$(pwd)/$Q7 ;; esac

if ! pkg-config --exists rdkafka 2>/dev/null; then
  echo "e2e_kafka: skip: librdkafka is not installed (pkg-config rdkafka failed; Debian: librdkafka-dev), q7 kafka not tested"
  exit 0
fi
[ -x "$Q7" ] || { echo "e2e_kafka: $Q7 is not built (make B=$B $B/tools/q7)" >&2; exit 2; }
[ -f "$B/libq7.a" ] || { echo "e2e_kafka: $B/libq7.a is not built" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_kafka.XXXXXX") || exit 1
pid=
trap '[ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
fails=0
fail() {
  echo "e2e_kafka: FAIL: $*" >&2
  fails=$((fails + 1))
}
note() {
  echo "e2e_kafka: $*"
}

# ------------------------------------------- the tool without librdkafka
if ! "$CC" -std=c11 -O0 -D_GNU_SOURCE ${Q7_SAN_CFLAGS:-} -Iinclude -o "$tmp/q7-plain" tools/*.c "$B/libq7.a" \
     -lmicrohttpd -ljansson -llmdb -lpthread 2>"$tmp/cc.err"; then
  fail "the tool does not build without librdkafka:"
  cat "$tmp/cc.err" >&2
else
  "$tmp/q7-plain" -d "$tmp/none" kafka export t --brokers 127.0.0.1:9 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ "$rc" -ne 2 ] || [ -s "$tmp/out" ] ||
     [ "$(cat "$tmp/err")" != "q7 kafka: built without librdkafka (install librdkafka-dev and rebuild)" ]; then
    fail "without librdkafka, q7 kafka exited $rc and said: $(cat "$tmp/err")"
  else
    note "without librdkafka: q7 kafka says so and exits 2"
  fi
fi

# --------------------------------------------- usage errors of the real one
"$Q7" kafka export t >"$tmp/out" 2>"$tmp/err"
rc=$?
if [ "$rc" -ne 2 ] || [ "$(wc -l < "$tmp/err")" -ne 1 ] || ! grep -q '^q7: kafka export: missing --brokers' "$tmp/err"; then
  fail "q7 kafka export without --brokers: exit $rc, said: $(cat "$tmp/err")"
fi
"$Q7" kafka export --help >"$tmp/out" 2>&1 && grep -q '^Usage: q7 \[-d DIR\] kafka export' "$tmp/out" ||
  fail "q7 kafka export --help printed no usage"
"$Q7" kafka import --help >"$tmp/out" 2>&1 && grep -q '^Usage: q7 \[-d DIR\] kafka import' "$tmp/out" ||
  fail "q7 kafka import --help printed no usage"
"$Q7" --help | grep -q '^  kafka export TOPIC' || fail "q7 --help does not list kafka export"
note "usage and help"

# ----------------------------------------------- against the mock cluster
# BUILD may have been built with SANITIZE=1 or SANITIZE=thread: link to match.
built=
for san in "" "-fsanitize=address,undefined" "-fsanitize=thread"; do
  if "$CC" -std=c11 -O2 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iinclude $san \
       -o "$tmp/kafka_check" tests/kafka/kafka_check.c "$B/libq7.a" \
       $(pkg-config --cflags --libs rdkafka) -llmdb -lpthread 2>"$tmp/cc${san:+-san}.err"; then
    built=yes
    break
  fi
done
if [ -z "$built" ]; then
  fail "tests/kafka/kafka_check.c does not compile:"
  cat "$tmp/cc.err" >&2
else
  mkdir "$tmp/work"
  timeout -s KILL 900 "$tmp/kafka_check" "$Q7" "$tmp/work" &
  pid=$!
  wait "$pid"
  rc=$?
  pid=
  [ "$rc" -eq 0 ] || fail "kafka_check exited $rc"
fi

if [ "$fails" -gt 0 ]; then
  echo "e2e_kafka: $fails failure(s)" >&2
  exit 1
fi
note "ok"
