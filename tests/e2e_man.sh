#!/bin/sh
# e2e_man.sh BUILD - check the manual pages under man/.
#
#   1. every page lints clean: `mandoc -Tlint -W warning` prints nothing.  A
#      `.so` stub (one line, `.so man3/TARGET.3`) is checked as a stub: its
#      target must exist and be a full page, and linting the stub with the
#      `.so` resolved (from man/) may print only mandoc's notice that `.so`
#      is used -- any other message fails;
#   2. every function declared Q7_API in include/q7.h has man/man3/NAME.3
#      and is named in the NAME section of the page it leads to; every full
#      page has the sections of STYLE.md; no page documents a function the
#      header no longer declares;
#   3. `man -l man/man3/q7_open.3` renders (skipped if man is missing), and
#      so do the stubs, through man-db, from man/;
#   4. the example program of q7(7) compiles against include/q7.h and BUILD
#      and runs (skipped if BUILD has no libq7.so or there is no cc).
#
# Run from the repository root: sh tests/e2e_man.sh build
B=${1:-build}
MAN=man
HDR=include/q7.h
fails=0
tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_man.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

fail() {
  echo "e2e_man: FAIL: $*" >&2
  fails=$((fails + 1))
}
note() {
  echo "e2e_man: $*"
}

[ -f "$HDR" ] || { echo "e2e_man: run from the repository root ($HDR not found)" >&2; exit 2; }
[ -d "$MAN/man3" ] || { echo "e2e_man: $MAN/man3 not found" >&2; exit 2; }
command -v mandoc >/dev/null 2>&1 || { echo "e2e_man: mandoc is not installed (Debian: mandoc)" >&2; exit 2; }

# A stub is a page whose only line is `.so man3/TARGET.3`; print TARGET's
# path relative to man/, or nothing for a full page.
so_target() {
  if [ "$(wc -l < "$1")" -eq 1 ] && grep -q '^\.so ' "$1"; then
    sed -n 's/^\.so \(man[0-9]\/[A-Za-z0-9_.]*\)$/\1/p' "$1"
    grep -q '^\.so man[0-9]/[A-Za-z0-9_.]*$' "$1" || echo "BAD"
  fi
}

# The names in the NAME section of a full page: the words before `\-`.
page_names() {
  awk '/^\.SH NAME/ { on = 1; next } /^\.SH/ { on = 0 } on' "$1" |
    sed -n 's/ *\\-.*//p' | tr ',' '\n' | sed 's/^ *//; s/ *$//' | grep -v '^$'
}

# ---------------------------------------------------------------- 1. lint
pages=0
for f in "$MAN"/man3/*.3 "$MAN"/man7/*.7 "$MAN"/man1/*.1; do
  [ -f "$f" ] || continue
  pages=$((pages + 1))
  rel=${f#"$MAN"/}
  t=$(so_target "$f")
  if [ -z "$t" ]; then
    if ! out=$(mandoc -Tlint -W warning "$f" 2>&1) || [ -n "$out" ]; then
      fail "mandoc -Tlint -W warning $f:"
      printf '%s\n' "$out" >&2
    fi
    continue
  fi
  if [ "$t" = BAD ]; then
    fail "$f: a one-line page must be exactly '.so manN/NAME.N'"
    continue
  fi
  if [ ! -f "$MAN/$t" ]; then
    fail "$f: .so target $MAN/$t does not exist"
    continue
  fi
  if [ -n "$(so_target "$MAN/$t")" ]; then
    fail "$f: .so target $MAN/$t is itself a stub"
    continue
  fi
  # Lint the stub with its .so resolved; the only message allowed is
  # mandoc's notice that .so is used, naming this very stub and target.
  out=$(cd "$MAN" && mandoc -Tlint -W warning "$rel" 2>&1)
  other=$(printf '%s\n' "$out" | grep -v '^$' |
    grep -Fxv "mandoc: $rel:1:2: WARNING: .so is fragile, better use ln(1): so $t")
  if [ -n "$other" ]; then
    fail "mandoc -Tlint -W warning $rel (from $MAN/):"
    printf '%s\n' "$other" >&2
  fi
done
[ "$pages" -gt 0 ] || fail "no pages under $MAN/"
note "linted $pages pages"

# ------------------------------------------------- 2. coverage of q7.h
# Function names of the Q7_API declarations, which may span lines.
awk '
  /^[ \t]*Q7_API[ \t]/ { decl = ""; on = 1 }
  on { decl = decl " " $0
       if (index(decl, "(")) {
         sub(/\(.*/, "", decl); n = split(decl, w, /[ \t*]+/); print w[n]; on = 0 } }
' "$HDR" | sort -u > "$tmp/funcs"
nfuncs=$(wc -l < "$tmp/funcs")
[ "$nfuncs" -gt 0 ] || fail "found no Q7_API function in $HDR"

while read -r fn; do
  f="$MAN/man3/$fn.3"
  if [ ! -f "$f" ]; then
    fail "$fn is declared Q7_API in $HDR but $f does not exist"
    continue
  fi
  t=$(so_target "$f")
  full=$f
  [ -n "$t" ] && [ "$t" != BAD ] && full="$MAN/$t"
  [ -f "$full" ] || continue     # reported above
  if ! page_names "$full" | grep -qx "$fn"; then
    fail "$fn is not named in the NAME section of $full"
  fi
done < "$tmp/funcs"

for f in "$MAN"/man3/*.3; do
  [ -f "$f" ] || continue
  fn=$(basename "$f" .3)
  grep -qx "$fn" "$tmp/funcs" || fail "$f documents $fn, which $HDR does not declare Q7_API"
  [ -z "$(so_target "$f")" ] || continue
  for sec in NAME SYNOPSIS DESCRIPTION "RETURN VALUE" ERRORS "THREAD SAFETY" "SEE ALSO"; do
    grep -q "^\.SH \"*$sec\"*\$" "$f" || fail "$f has no $sec section"
  done
  for n in $(page_names "$f"); do
    grep -qx "$n" "$tmp/funcs" || fail "$f names $n, which $HDR does not declare Q7_API"
  done
done
[ -f "$MAN/man7/q7.7" ] || fail "$MAN/man7/q7.7 (the overview) does not exist"
note "checked $nfuncs Q7_API functions against $MAN/man3"

# ------------------------------------------------------- 3. man renders
if command -v man >/dev/null 2>&1; then
  if ! out=$(MANPAGER=cat MANWIDTH=80 man -l "$MAN/man3/q7_open.3" 2>"$tmp/err"); then
    fail "man -l $MAN/man3/q7_open.3 failed:"
    cat "$tmp/err" >&2
  elif [ -s "$tmp/err" ]; then
    fail "man -l $MAN/man3/q7_open.3 printed:"
    cat "$tmp/err" >&2
  elif ! printf '%s\n' "$out" | grep -q 'q7_open, q7_close'; then
    fail "man -l $MAN/man3/q7_open.3 did not render its NAME section"
  fi
  # The stubs, as man-db resolves .so: relative to the top of the manual.
  for f in "$MAN"/man3/*.3; do
    t=$(so_target "$f")
    [ -n "$t" ] && [ "$t" != BAD ] && [ -f "$MAN/$t" ] || continue
    rel=${f#"$MAN"/}
    if ! out=$(cd "$MAN" && MANPAGER=cat MANWIDTH=80 man -l "$rel" 2>&1) ||
       ! printf '%s\n' "$out" | grep -q "$(basename "$f" .3)"; then
      fail "man -l $rel (from $MAN/) did not render:"
      printf '%s\n' "$out" | head -5 >&2
    fi
  done
  note "man -l renders q7_open.3 and the .so stubs"
else
  note "skip: man is not installed, man -l not checked"
fi

# ------------------------------------------------ 4. q7(7)'s example
CC=${CC:-cc}
if [ ! -e "$B/libq7.so" ]; then
  note "skip: $B/libq7.so not built, q7(7) example not compiled"
elif ! command -v "$CC" >/dev/null 2>&1; then
  note "skip: no C compiler ($CC), q7(7) example not compiled"
else
  # The first .EX block after .SH EXAMPLES, with roff's escapes undone.
  awk '/^\.SH EXAMPLES/ { ex = 1 } ex && /^\.EX/ { on = 1; next }
       on && /^\.EE/ { exit } on' "$MAN/man7/q7.7" |
    sed -e 's/\\-/-/g' -e 's/\\e/\\/g' > "$tmp/hello.c"
  if [ ! -s "$tmp/hello.c" ]; then
    fail "$MAN/man7/q7.7 has no example program (.EX block in EXAMPLES)"
  elif ! "$CC" -std=c11 -Wall -Wextra -Werror ${Q7_SAN_CFLAGS:-} -Iinclude -o "$tmp/hello" "$tmp/hello.c" \
         -L"$B" -lq7 -Wl,-rpath,"$(cd "$B" && pwd)" 2>"$tmp/err"; then
    fail "the example of q7(7) does not compile:"
    cat "$tmp/err" >&2
  elif ! "$tmp/hello" "$tmp/store" > "$tmp/run1" 2>&1 ||
       ! "$tmp/hello" "$tmp/store" > "$tmp/run2" 2>&1; then
    fail "the example of q7(7) failed:"
    cat "$tmp/run1" "$tmp/run2" >&2
  elif [ "$(grep -c '^read ' "$tmp/run1")" -ne 3 ] || [ "$(grep -c '^read ' "$tmp/run2")" -ne 3 ] ||
       ! grep -q '^records-lag-max 0$' "$tmp/run2"; then
    fail "the example of q7(7) did not read back its three records on each run:"
    cat "$tmp/run1" "$tmp/run2" >&2
  else
    note "the example of q7(7) compiles and runs"
  fi
fi

if [ "$fails" -gt 0 ]; then
  echo "e2e_man: $fails failure(s)" >&2
  exit 1
fi
note "ok"
