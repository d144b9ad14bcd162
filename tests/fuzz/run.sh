#!/bin/sh
# run.sh BUILD SECONDS [TARGET...] - build each libFuzzer target of
# tests/fuzz/ with clang (-fsanitize=fuzzer,address,undefined, linking
# lib/*.c) into BUILD/fuzz/, then run each for SECONDS, one process each
# (the equivalent of -jobs=1), starting from the seeds in
# tests/fuzz/corpus/TARGET/.  New inputs go to BUILD/fuzz/corpus/TARGET/,
# crashes to BUILD/fuzz/artifacts/TARGET/; the seed corpus is never
# written.  Inputs kept in tests/fuzz/crashes/TARGET/ (each reproduces a
# library bug) replay first: one that still crashes fails the target, and
# the run then goes on with Q7_FUZZ_SKIP_KNOWN=1 so that the target can
# look past the known finding.  Prints the executions of each target and a
# closing "N passed, N failed" line; exits non-zero if a target crashed,
# still crashes on a saved input, or failed to build.  Targets default to
# every tests/fuzz/fuzz_*.c.
set -u
B=${1:?usage: run.sh BUILD SECONDS [TARGET...]}
SECS=${2:?usage: run.sh BUILD SECONDS [TARGET...]}
shift 2
CLANG=${CLANG:-clang}
FUZZ_FLAGS="-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -Iinclude -Ilib"

if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "fuzz: $CLANG not found (install clang for libFuzzer)"; exit 1
fi
if [ $# -eq 0 ]; then
  set -- $(for f in tests/fuzz/fuzz_*.c; do basename "$f" .c; done)
fi
mkdir -p "$B/fuzz"
pass=0; fail=0
for t in "$@"; do
  bin=$B/fuzz/$t
  log=$B/fuzz/$t.log
  corpus=$B/fuzz/corpus/$t
  arts=$B/fuzz/artifacts/$t
  mkdir -p "$corpus" "$arts"
  if ! $CLANG $FUZZ_FLAGS -o "$bin" "tests/fuzz/$t.c" lib/*.c -llmdb -lpthread -ldl; then
    echo "FAIL $t: does not build"; fail=$((fail + 1)); continue
  fi
  # Inputs of earlier crashes kept in the repository replay first.
  known=0
  for c in tests/fuzz/crashes/"$t"/*; do
    [ -f "$c" ] || continue
    if ! "$bin" -rss_limit_mb=2048 "$c" >"$log.replay" 2>&1; then
      echo "FAIL $t: saved input $c still crashes (see $log.replay)"
      known=1
    fi
  done
  [ $known -eq 1 ] && fail=$((fail + 1))
  # Corpus dirs: new inputs go to the first; the seeds are read only.
  # tests/fuzz/TARGET.flags: extra libFuzzer flags of a target, if any.
  extra=$(cat "tests/fuzz/$t.flags" 2>/dev/null)
  Q7_FUZZ_SKIP_KNOWN=$known "$bin" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$arts/" $extra "$corpus" "tests/fuzz/corpus/$t" \
    >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -1)
  corp=$(ls "$corpus" | wc -l)
  if [ $rc -eq 0 ]; then
    [ $known -eq 0 ] && pass=$((pass + 1))
    echo "ok   $t: ${execs:-?} executions in ${SECS}s, corpus $corp inputs"
  else
    [ $known -eq 0 ] && fail=$((fail + 1))
    echo "FAIL $t: exit $rc after ${execs:-?} executions; input in $arts/, log $log"
    grep -m3 -E 'ERROR|runtime error|check failed' "$log" | sed 's/^/     /'
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
