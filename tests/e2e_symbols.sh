#!/bin/sh
# libq7.so exports exactly the Q7_API functions of q7.h, under SONAME libq7.so.0.
set -eu
B=$1
so=$B/libq7.so.0
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {sub(/@.*/, "", $3); print $3}' |
  grep -v '^LIBQ7_' | sort -u > "$d/exported"
sed -n 's/^Q7_API .*[ *]\(q7_[a-z0-9_]*\)(.*/\1/p' include/q7.h | sort -u > "$d/declared"
bad=$(grep -v '^q7_' "$d/exported" || true)
[ -z "$bad" ] || { echo "exported symbols without the q7_ prefix: $bad"; exit 1; }
if ! cmp -s "$d/exported" "$d/declared"; then
  echo "exported (<) and declared in q7.h (>) differ:"; diff "$d/exported" "$d/declared"; exit 1
fi
soname=$(objdump -p "$so" | awk '$1 == "SONAME" {print $2}')
[ "$soname" = libq7.so.0 ] || { echo "SONAME is '$soname'"; exit 1; }
echo "$(wc -l < "$d/exported") symbols exported, all declared in q7.h; SONAME $soname"
