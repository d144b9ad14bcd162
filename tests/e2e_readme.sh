#!/bin/sh
# The README's C example compiles as printed (-Werror) and runs.
set -eu
B=$1
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
awk '/^```c$/{on=1; next} /^```$/{if(on) exit} on' README.md > "$d/readme.c"
lines=$(wc -l < "$d/readme.c")
[ "$lines" -le 25 ] || { echo "README example has $lines lines"; exit 1; }
${CC:-cc} -std=c11 -Wall -Wextra -Werror ${Q7_SAN_CFLAGS:-} -Iinclude -o "$d/readme" "$d/readme.c" \
  -L"$B" -lq7 -Wl,-rpath,"$B"
(cd "$d" && ./readme > out1 && ./readme > out2)
grep -q '^hello at ' "$d/out1" || { echo "README example printed:"; cat "$d/out1"; exit 1; }
grep -q '^hello at ' "$d/out2" || { echo "second run printed:"; cat "$d/out2"; exit 1; }
