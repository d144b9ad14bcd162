#!/bin/sh
# valgrind.sh BUILD TEST... - run Criterion test binaries under valgrind
# (memcheck, definite leaks are errors).  Criterion runs each test in a
# forked worker whose exit status does not reach the runner, so every
# process logs to its own file and any reported error fails the run.
B=$1; shift
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
fail=0
for t in "$@"; do
  name=$(basename "$t")
  valgrind -q --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --log-file="$logs/$name.%p" "$t" --jobs 1 -q >/dev/null 2>&1
  rc=$?
  bad=$(cat "$logs/$name".* 2>/dev/null | grep -c '^==[0-9]*== [A-Z]')
  if [ "$rc" -ne 0 ] || [ "$bad" -ne 0 ]; then
    echo "FAIL $name under valgrind (exit $rc)"; cat "$logs/$name".* | head -60; fail=1
  else
    echo "ok   $name under valgrind"
  fi
done
exit $fail
