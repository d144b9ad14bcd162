#!/bin/sh
# The library and examples build -Wall -Wextra -Werror with clang as with gcc.
set -eu
command -v clang >/dev/null || { echo "clang not installed; skipped"; exit 0; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
make -s B="$d" CC=clang all "$d/examples/quickstart" >/dev/null
echo "clang build clean"
