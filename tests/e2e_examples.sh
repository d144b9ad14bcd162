#!/bin/sh
# The examples run against a fresh store and say what they did.
set -eu
B=$1
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
"$B/examples/quickstart" "$d/store" 20000 > "$d/out"
grep -q 'produced 20000 keyed records' "$d/out"
grep -q 'consumed 20000 records' "$d/out"
grep -q 'records-lag-max 0' "$d/out"
"$B/examples/quickstart" "$d/store" 1000 > "$d/out2"   # re-run: resumes after the commit
grep -q 'consumed 1000 records' "$d/out2" || { cat "$d/out2"; exit 1; }
echo "quickstart ok"
