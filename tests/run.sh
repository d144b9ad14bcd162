#!/bin/sh
# run.sh BUILD TEST... - every check `make check` promises, in order; stops
# at the first failure.  Prints a closing "N passed, N failed" line.
B=$1; shift
pass=0; fail=0
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# A sanitized libq7 (make check SANITIZE=1): the scripts that compile
# programs against it add Q7_SAN_CFLAGS; Python, not built so, gets the
# runtime preloaded.
preload=""
if ldd "$B/libq7.so.0" 2>/dev/null | grep -q libasan; then
  preload="$(${CC:-cc} -print-file-name=libasan.so):$(${CC:-cc} -print-file-name=libubsan.so)"
  export Q7_SAN_CFLAGS="-fsanitize=address,undefined"
fi
step() { # name, command...
  name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
for t in "$@"; do
  step "$(basename "$t")" "$t" --jobs 2 -q
done
py() { # Python, with the sanitizer runtime preloaded if libq7 needs it
  if [ -n "$preload" ]; then
    LD_PRELOAD="$preload" ASAN_OPTIONS="detect_leaks=0:${ASAN_OPTIONS:-}" python3 "$@"
  else
    python3 "$@"
  fi
}
for sh in tests/e2e_*.sh; do
  [ -f "$sh" ] && step "$(basename "$sh")" sh "$sh" "$B"
done
for f in tests/test_*.py tests/e2e_*.py; do
  [ -f "$f" ] && step "$(basename "$f")" py "$f" "$B"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
