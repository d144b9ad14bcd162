#!/bin/sh
# The library, tools, examples and tests build -Wall -Wextra -Werror with
# clang as with gcc.
set -eu
command -v clang >/dev/null || { echo "clang not installed; skipped"; exit 0; }
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
# A plain clang build, whatever make check was run with (SANITIZE=...).
env -u MAKEFLAGS -u MFLAGS make -s B="$d" CC=clang SANITIZE= build >/dev/null
echo "clang build clean: library, tools, examples and tests"
