#!/bin/sh
# run.sh BUILD TEST... - every check `make check` promises, in order; stops
# at the first failure.  Prints a closing "N passed, N failed" line.
B=$1; shift
pass=0; fail=0
step() { # name, command...
  name=$1; shift
  if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
for t in "$@"; do
  step "$(basename "$t")" "$t" --jobs 2 -q
done
for sh in tests/e2e_*.sh; do
  [ -f "$sh" ] && step "$(basename "$sh")" sh "$sh" "$B"
done
for py in tests/test_*.py tests/e2e_*.py; do
  [ -f "$py" ] && step "$(basename "$py")" python3 "$py" "$B"
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
