#!/bin/sh
# e2e_tool.sh BUILD - drive the q7 command-line tool (BUILD/tools/q7) as a
# user would, in temporary stores, and check what it prints and exits with:
#
#   1. help and version;
#   2. topic create/list/describe/alter/delete;
#   3. produce keyed lines and consume them back: values and keys round-trip,
#      one key always lands on one partition, empty lines, separators in
#      values, binary bytes and a 100 KB line survive; --partition, --header;
#   4. consumer groups: a second run sees only new records; groups list,
#      groups describe (columns, LAG = produced - consumed), lag;
#   5. retention sweep after topic alter --config retention.ms=1;
#   6. replica verify;
#   7. every error path: non-zero exit, exactly one line "q7: ..." on stderr,
#      nothing on stdout;
#   8. consume --follow stopped by SIGTERM exits 0 after committing; groups
#      describe --members shows it, and a second follower in another process
#      takes a share of the partitions.
#
# Run from the repository root: sh tests/e2e_tool.sh build
B=${1:-build}
Q7=$B/tools/q7
case $Q7 in /*) ;; *) Q7=$(pwd)/$Q7 ;; esac
[ -x "$Q7" ] || { echo "e2e_tool: $Q7 is not built (make B=$B $B/tools/q7)" >&2; exit 2; }

fails=0
bgpid=
bgpid2=
tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_tool.XXXXXX") || exit 1
trap 'for p in $bgpid $bgpid2; do kill -KILL "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
unset Q7_DIR
D=$tmp/store

fail() {
  echo "e2e_tool: FAIL: $*" >&2
  fails=$((fails + 1))
}
note() {
  echo "e2e_tool: $*"
}
# A short pause; sleep(1) with a fraction is not POSIX, so fall back to 1 s.
nap() {
  sleep 0.1 2>/dev/null || sleep 1
}

# run ARGS... - run q7 with stdin from /dev/null unless redirected by the
# caller; stdout in $tmp/out, stderr in $tmp/err, exit status in $rc.
run() {
  "$Q7" "$@" > "$tmp/out" 2> "$tmp/err"
  rc=$?
}
# ok DESC ARGS... - q7 ARGS must succeed.
ok() {
  desc=$1; shift
  run "$@" < /dev/null
  if [ "$rc" -ne 0 ]; then
    fail "$desc: q7 $* exited $rc:"
    cat "$tmp/err" >&2
    return 1
  fi
  return 0
}
# bad DESC CODE ARGS... - q7 ARGS (stdin: $tmp/in if it exists, else
# /dev/null) must exit CODE (any non-zero if CODE is "nz") with one line
# "q7: ..." on stderr and nothing on stdout.
bad() {
  desc=$1; code=$2; shift 2
  if [ -f "$tmp/in" ]; then run "$@" < "$tmp/in"; else run "$@" < /dev/null; fi
  if [ "$rc" -eq 0 ]; then
    fail "$desc: q7 $* succeeded"
  elif [ "$code" != nz ] && [ "$rc" -ne "$code" ]; then
    fail "$desc: q7 $* exited $rc, not $code"
  elif [ "$(grep -c '' "$tmp/err")" -ne 1 ] || ! grep -q '^q7: ..*' "$tmp/err"; then
    fail "$desc: q7 $* did not print exactly one line 'q7: ...' on stderr:"
    cat "$tmp/err" >&2
  elif [ -s "$tmp/out" ]; then
    fail "$desc: q7 $* printed on stdout:"
    cat "$tmp/out" >&2
  fi
  rm -f "$tmp/in"
}
# same DESC FILE EXPECTED_FILE
same() {
  if ! cmp -s "$2" "$3"; then
    fail "$1: got:"
    od -c "$2" | head -20 >&2
    echo "e2e_tool: expected:" >&2
    od -c "$3" | head -20 >&2
  fi
}
# stderr_is DESC TEXT - stderr is exactly the line TEXT.
stderr_is() {
  if [ "$(cat "$tmp/err")" != "$2" ] || [ "$(grep -c '' "$tmp/err")" -ne 1 ]; then
    fail "$1: stderr is not '$2':"
    cat "$tmp/err" >&2
  fi
}
# The table in $tmp/out with runs of blanks squeezed to one space.
squeezed() {
  tr -s ' \t' '  ' < "$tmp/out" | sed 's/ $//'
}

# ------------------------------------------------------------ 1. help
ok "--help" --help && grep -q '^Usage: q7 ' "$tmp/out" || fail "q7 --help printed no usage"
for c in topic groups; do
  ok "$c --help" "$c" --help && grep -q "q7 \[-d DIR\] $c " "$tmp/out" ||
    fail "q7 $c --help printed no usage"
done
for c in "topic create" "topic alter" produce consume "groups describe" lag "retention sweep"; do
  # shellcheck disable=SC2086
  ok "$c --help" $c --help && grep -q "^Usage: q7 \[-d DIR\] $c" "$tmp/out" ||
    fail "q7 $c --help printed no usage"
done
ok "help after a bad option" -d "$D" consume t --bogus --help &&
  grep -q '^Usage: q7 \[-d DIR\] consume' "$tmp/out" || fail "--help did not win over --bogus"
ok "--version" --version && grep -q '^q7 [0-9]*\.[0-9]*\.[0-9]* (libq7 [0-9.]*)$' "$tmp/out" ||
  fail "q7 --version: $(cat "$tmp/out")"
note "help and version"

# ----------------------------------------------------------- 2. topics
ok "topic create" -d "$D" topic create orders --partitions 4 &&
  [ "$(cat "$tmp/out")" = "created topic orders with 4 partitions" ] ||
  fail "topic create printed: $(cat "$tmp/out")"
ok "topic create (defaults)" -d "$D" topic create logs
ok "topic create (config)" -d "$D" topic create small --config message.max.bytes=100 \
  --config retention.ms=-1
ok "topic list" -d "$D" topic list
printf 'logs\norders\nsmall\n' > "$tmp/exp"
same "topic list" "$tmp/out" "$tmp/exp"

ok "topic describe" -d "$D" topic describe orders
grep -qx 'topic: orders' "$tmp/out" || fail "topic describe: no 'topic: orders'"
grep -qx 'partitions: 4' "$tmp/out" || fail "topic describe: no 'partitions: 4'"
grep -qx 'config: retention.ms=604800000' "$tmp/out" || fail "topic describe: default retention.ms"
grep -qx 'config: cleanup.policy=delete' "$tmp/out" || fail "topic describe: cleanup.policy"
[ "$(squeezed | grep -c '^[0-3] 0 0 0$')" -eq 4 ] || { fail "topic describe: partition rows:"; cat "$tmp/out" >&2; }
squeezed | grep -qx 'PARTITION LOG-START-OFFSET HIGH-WATERMARK RECORDS' ||
  fail "topic describe: no partition table header"
ok "topic describe (1 partition)" -d "$D" topic describe logs && grep -qx 'partitions: 1' "$tmp/out" ||
  fail "topic create without --partitions did not make 1 partition"
ok "topic describe (config)" -d "$D" topic describe small &&
  grep -qx 'config: message.max.bytes=100' "$tmp/out" || fail "topic create --config was not kept"

ok "topic alter" -d "$D" topic alter orders --config retention.bytes=1000000 \
  --config=retention.ms=86400000
ok "topic describe after alter" -d "$D" topic describe orders
grep -qx 'config: retention.bytes=1000000' "$tmp/out" || fail "topic alter: retention.bytes not set"
grep -qx 'config: retention.ms=86400000' "$tmp/out" || fail "topic alter: retention.ms not set"

ok "topic delete" -d "$D" topic delete logs
ok "topic list after delete" -d "$D" topic list
printf 'orders\nsmall\n' > "$tmp/exp"
same "topic list after delete" "$tmp/out" "$tmp/exp"
bad "describe a deleted topic" 1 -d "$D" topic describe logs
Q7_DIR=$D "$Q7" topic list > "$tmp/out" 2>&1 && cmp -s "$tmp/out" "$tmp/exp" ||
  fail "Q7_DIR did not name the store"
note "topics"

# --------------------------------------------------- 3. produce, consume
# 200 keyed lines over 10 keys, 3 keyless ones.
i=0
while [ $i -lt 200 ]; do
  echo "k$((i % 10)):value$i"
  i=$((i + 1))
done > "$tmp/keyed"
printf 'plain1\nplain2\nplain3\n' >> "$tmp/keyed"
run -d "$D" produce orders -k : < "$tmp/keyed"
[ "$rc" -eq 0 ] || fail "produce exited $rc: $(cat "$tmp/err")"
stderr_is "produce" "produced 203 records"

ok "consume" -d "$D" consume orders --from-beginning --print-key --print-offset
stderr_is "consume" "consumed 203 records"
[ "$(grep -c '' "$tmp/out")" -eq 203 ] || fail "consume printed $(grep -c '' "$tmp/out") lines, not 203"
# Every record: PARTITION:OFFSET TAB KEY TAB VALUE, keys as produced.
awk -F '\t' '
  NF != 3 || $1 !~ /^[0-3]:[0-9]+$/ { print "malformed line " NR ": " $0; bad = 1; next }
  { split($1, po, ":"); v = $3 }
  v ~ /^value[0-9]+$/ { n = substr(v, 6) + 0
    if ($2 != "k" (n % 10)) { print "value " v " has key " $2; bad = 1 }
    if (($2 in part) && part[$2] != po[1]) { print "key " $2 " on partitions " part[$2] " and " po[1]; bad = 1 }
    part[$2] = po[1]; parts[po[1]] = 1; next }
  v ~ /^plain[1-3]$/ { if ($2 != "null") { print "keyless " v " has key " $2; bad = 1 }; next }
  { print "unexpected value " v; bad = 1 }
  END { n = 0; for (p in parts) n++
        if (n < 2) { print "10 keys all on one partition"; bad = 1 }
        exit bad }' "$tmp/out" > "$tmp/why" || { fail "consume --print-key --print-offset:"; cat "$tmp/why" >&2; }
cut -f 3 "$tmp/out" | sort > "$tmp/got"
sed 's/^k[0-9]://' "$tmp/keyed" | sort > "$tmp/exp"
same "consumed values" "$tmp/got" "$tmp/exp"
# Offsets per partition are 0..n-1 with no gap or repeat.
cut -f 1 "$tmp/out" | sort -t : -k1,1n -k2,2n | awk -F : '
  $1 != p { p = $1; want = 0 } $2 != want { bad = 1 } { want++ } END { exit bad }' ||
  fail "consume: offsets of a partition are not 0, 1, 2, ..."
ok "consume --max" -d "$D" consume orders --from-beginning --max 7
[ "$(grep -c '' "$tmp/out")" -eq 7 ] || fail "consume --max 7 printed $(grep -c '' "$tmp/out") lines"
ok "consume from the end" -d "$D" consume orders
[ -s "$tmp/out" ] && fail "consume without --from-beginning printed old records"

# Odd lines round-trip exactly: separators in values, an empty key, empty
# lines, binary bytes, a 100 KB line, a last line without newline.
ok "topic create misc" -d "$D" topic create misc
awk 'BEGIN { s = "x"; while (length(s) < 100000) s = s s; print "big:" substr(s, 1, 100000) }' > "$tmp/big"
{
  printf 'a:b:c\n\n:emptykey\nnokey\nbin\001:\002\377\000end\n'
  cat "$tmp/big"
  printf 'tail:no-newline'
} > "$tmp/odd"
{
  printf 'a\tb:c\nnull\t\n\temptykey\nnull\tnokey\nbin\001\t\002\377\000end\n'
  sed 's/^big:/big\t/' "$tmp/big"
  printf 'tail\tno-newline\n'
} > "$tmp/exp"
run -d "$D" produce misc -k : < "$tmp/odd"
[ "$rc" -eq 0 ] || fail "produce of odd lines exited $rc: $(cat "$tmp/err")"
stderr_is "produce odd lines" "produced 7 records"
ok "consume odd lines" -d "$D" consume misc --from-beginning --print-key
same "odd lines round-trip" "$tmp/out" "$tmp/exp"
ok "produce nothing" -d "$D" produce misc
stderr_is "produce of empty input" "produced 0 records"

# A multi-byte separator, --partition, --header.
ok "topic create pinned" -d "$D" topic create pinned --partitions 3
printf 'x=>1\ny=>2\nz=>3\n' | "$Q7" -d "$D" produce pinned -k '=>' --partition 1 \
  --header src=e2e --header empty= > "$tmp/out" 2> "$tmp/err" || fail "produce --partition: $(cat "$tmp/err")"
ok "describe pinned" -d "$D" topic describe pinned
[ "$(squeezed | grep -c '^[0-2] 0 [03] [03]$')" -eq 3 ] && squeezed | grep -qx '1 0 3 3' ||
  { fail "produce --partition 1 did not land on partition 1:"; cat "$tmp/out" >&2; }
ok "consume --partition --print-headers" -d "$D" consume pinned --partition 1 --offset 1 \
  --print-offset --print-headers --print-key
printf '1:1\tsrc=e2e,empty=\ty\t2\n1:2\tsrc=e2e,empty=\tz\t3\n' > "$tmp/exp"
same "consume --partition 1 --offset 1 with headers" "$tmp/out" "$tmp/exp"
note "produce and consume"

# ------------------------------------------------------ 4. groups, lag
ok "topic create events" -d "$D" topic create events --partitions 2
seq_lines() { # FROM TO
  i=$1
  while [ "$i" -le "$2" ]; do echo "e$i"; i=$((i + 1)); done
}
seq_lines 1 10 | "$Q7" -d "$D" produce events 2> "$tmp/err" || fail "produce events: $(cat "$tmp/err")"
ok "group, first run" -d "$D" consume events -g g1 --from-beginning
sort "$tmp/out" > "$tmp/got"; seq_lines 1 10 | sort > "$tmp/exp"
same "group first run reads everything" "$tmp/got" "$tmp/exp"
seq_lines 11 15 | "$Q7" -d "$D" produce events 2> "$tmp/err" || fail "produce events: $(cat "$tmp/err")"
ok "group, second run" -d "$D" consume events -g g1 --from-beginning
sort "$tmp/out" > "$tmp/got"; seq_lines 11 15 | sort > "$tmp/exp"
same "group second run reads only the new records" "$tmp/got" "$tmp/exp"
ok "group, third run" -d "$D" consume events -g g1
[ -s "$tmp/out" ] && fail "group third run printed records: $(cat "$tmp/out")"
ok "group g2" -d "$D" consume events -g g2 --from-beginning --max 3
[ "$(grep -c '' "$tmp/out")" -eq 3 ] || fail "consume -g g2 --max 3 printed $(grep -c '' "$tmp/out") lines"

ok "groups list" -d "$D" groups list
printf 'g1\ng2\n' > "$tmp/exp"
same "groups list" "$tmp/out" "$tmp/exp"

ok "groups describe g2" -d "$D" groups describe g2
squeezed > "$tmp/tab"
[ "$(head -n 1 "$tmp/tab")" = "TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG STATUS" ] ||
  fail "groups describe header: $(head -n 1 "$tmp/tab")"
awk 'NR > 1 { rows++
       if ($1 != "events" || $2 !~ /^[01]$/) bad = 1
       if ($3 != "-" && $5 != $4 - $3) { print "row " NR ": LAG != LOG-END-OFFSET - CURRENT-OFFSET"; bad = 1 }
       if ($6 !~ /^(OK|WARN|STOP|STALL|REWIND)$/) { print "row " NR ": status " $6; bad = 1 }
       leo += $4; lag += ($5 == "-" ? $4 : $5) }
     END { if (rows != 2) { print rows " rows, not 2"; bad = 1 }
           if (leo != 15) { print "LOG-END-OFFSET sums to " leo ", not 15"; bad = 1 }
           if (lag != 12) { print "LAG sums to " lag ", not 15 - 3"; bad = 1 }
           exit bad }' "$tmp/tab" > "$tmp/why" || { fail "groups describe g2:"; cat "$tmp/why" "$tmp/out" >&2; }
ok "groups describe g1" -d "$D" groups describe g1
squeezed | awk 'NR > 1 { lag += $5; if ($3 != $4) bad = 1 } END { exit bad || lag != 0 }' ||
  { fail "groups describe g1: the group read everything, yet:"; cat "$tmp/out" >&2; }

ok "lag g2" -d "$D" lag g2
head -n 1 "$tmp/out" | grep -Eq '^g2 (OK|WARN|ERR) complete=[0-9]+\.[0-9]{2} totallag=12 maxlag=events/[01]$' ||
  fail "lag g2 first line: $(head -n 1 "$tmp/out")"
squeezed | sed -n 2p | grep -qx 'TOPIC PARTITION STATUS LAG START-OFFSET END-OFFSET' ||
  fail "lag g2 table header: $(sed -n 2p "$tmp/out")"
squeezed | awk 'NR > 2 { rows++; lag += $4; if ($1 != "events" || $3 !~ /^(OK|WARN|STOP|STALL|REWIND)$/) bad = 1 }
                END { exit bad || rows != 2 || lag != 12 }' ||
  { fail "lag g2 rows:"; cat "$tmp/out" >&2; }
# A minute from now (date +%s is not POSIX, but everywhere); far past
# lag.expire.ms the group is gone.
if secs=$(date +%s 2>/dev/null) && [ -n "$secs" ]; then
  ok "lag g1 --now" -d "$D" lag g1 --now $((secs * 1000 + 60000))
  head -n 1 "$tmp/out" | grep -Eq '^g1 OK complete=[0-9.]+ totallag=0 maxlag=events/0$' ||
    fail "lag g1 first line: $(head -n 1 "$tmp/out")"
fi
bad "lag long after lag.expire.ms" 1 -d "$D" lag g1 --now 4102444800000
note "groups and lag"

# ---------------------------------------------------------- 5. retention
R=$tmp/retention
ok "retention store" -d "$R" topic create r --partitions 2
seq_lines 1 15 | "$Q7" -d "$R" produce r 2> "$tmp/err" || fail "produce r: $(cat "$tmp/err")"
ok "retention sweep, nothing old" -d "$R" retention sweep
[ "$(cat "$tmp/out")" = "removed 0 records" ] || fail "first sweep: $(cat "$tmp/out")"
ok "retention.ms=1" -d "$R" topic alter r --config retention.ms=1
ok "retention sweep --now" -d "$R" retention sweep --now 4102444800000
[ "$(cat "$tmp/out")" = "removed 15 records" ] || fail "sweep after retention.ms=1: $(cat "$tmp/out")"
ok "describe after sweep" -d "$R" topic describe r
squeezed | awk '/^[01] / { n++; if ($2 != $3 || $4 != 0) bad = 1; hw += $3 }
                END { exit bad || n != 2 || hw != 15 }' ||
  { fail "after the sweep the log start is not the high watermark:"; cat "$tmp/out" >&2; }
ok "consume after sweep" -d "$R" consume r --from-beginning
[ -s "$tmp/out" ] && fail "records left after the sweep: $(cat "$tmp/out")"
note "retention"

# ------------------------------------------------------------ 6. replica
ok "replica verify" -d "$D" replica verify
[ "$(grep -c '' "$tmp/out")" -eq 1 ] && grep -q 'no mirrors' "$tmp/out" ||
  fail "replica verify: $(cat "$tmp/out")"
note "replica verify"

# ------------------------------------------------------------- 7. errors
bad "no command" 2
bad "unknown command" 2 -d "$D" frobnicate
bad "unknown global option" 2 --bogus topic list
bad "unknown option" 2 -d "$D" topic list --bogus
bad "option with a value it does not take" 2 -d "$D" consume orders --follow=yes
bad "missing dir argument" 2 -d
bad "no store directory" 2 topic list
bad "missing store" 1 -d "$tmp/nowhere" topic list
[ -e "$tmp/nowhere" ] && fail "topic list created the store directory"
bad "store is a file" 1 -d "$tmp/keyed" topic list
bad "missing action" 2 -d "$D" topic
bad "unknown action" 2 -d "$D" topic frob
bad "topic create without a name" 2 -d "$D" topic create
bad "extra argument" 2 -d "$D" topic list extra
bad "bad topic name" 1 -d "$D" topic create 'a/b'
bad "topic exists" 1 -d "$D" topic create orders
bad "bad --partitions" 2 -d "$D" topic create x --partitions abc
bad "zero --partitions" 2 -d "$D" topic create x --partitions 0
bad "too many partitions" 1 -d "$D" topic create x --partitions 10001
bad "bad config value" 1 -d "$D" topic create x --config retention.ms=abc
bad "config not KEY=VALUE" 2 -d "$D" topic create x --config retention.ms
bad "not a topic config" 1 -d "$D" topic create x --config acks=all
bad "unknown config" 1 -d "$D" topic alter orders --config no.such.key=1
bad "alter without --config" 2 -d "$D" topic alter orders
bad "alter a missing topic" 1 -d "$D" topic alter nope --config retention.ms=1
ok "no topic x" -d "$D" topic list && grep -qx x "$tmp/out" && fail "a failed create made topic x"
bad "describe a missing topic" 1 -d "$D" topic describe nope
bad "delete a missing topic" 1 -d "$D" topic delete nope
echo hello > "$tmp/in"
bad "produce to a missing topic" 1 -d "$D" produce nope
echo hello > "$tmp/in"
bad "produce to a missing partition" 1 -d "$D" produce orders --partition 4
echo hello > "$tmp/in"
bad "produce to a negative partition" 2 -d "$D" produce orders --partition -1
bad "produce with an empty -k" 2 -d "$D" produce orders -k ''
bad "produce with a bad --header" 2 -d "$D" produce orders --header =v
awk 'BEGIN { s = "y"; while (length(s) < 200) s = s s; print "ok"; print s }' > "$tmp/in"
bad "produce a record too large" 1 -d "$D" produce small
grep -q 'line 2' "$tmp/err" || fail "the too-large error does not name line 2: $(cat "$tmp/err")"
bad "consume a missing topic" 1 -d "$D" consume nope
bad "consume without a topic" 2 -d "$D" consume
bad "consume --partition -1" 2 -d "$D" consume orders --partition -1
bad "consume --partition abc" 2 -d "$D" consume orders --partition abc
bad "consume a missing partition" 1 -d "$D" consume orders --partition 4
bad "consume --max abc" 2 -d "$D" consume orders --max abc
bad "consume --max 0" 2 -d "$D" consume orders --max 0
bad "consume --max without a value" 2 -d "$D" consume orders --max
bad "consume --offset without --partition" 2 -d "$D" consume orders --offset 3
bad "consume --offset past the end" 1 -d "$D" consume orders --partition 0 --offset 999999
bad "consume with an empty group" 2 -d "$D" consume orders -g ''
bad "groups describe a missing group" 1 -d "$D" groups describe nogroup
bad "groups describe without a group" 2 -d "$D" groups describe
bad "lag of a missing group" 1 -d "$D" lag nogroup
bad "lag --now abc" 2 -d "$D" lag g1 --now abc
bad "groups delete a missing group" 1 -d "$D" groups delete nogroup
bad "retention sweep --now -1" 2 -d "$D" retention sweep --now -1
note "error paths"

# ------------------------------------------------ 8. --follow and SIGTERM
ok "topic create live" -d "$D" topic create live --partitions 2
echo first | "$Q7" -d "$D" produce live 2> "$tmp/err" || fail "produce live: $(cat "$tmp/err")"
: > "$tmp/fout"
"$Q7" -d "$D" consume live -g follower --from-beginning --follow > "$tmp/fout" 2> "$tmp/ferr" &
bgpid=$!
# wait_for LINE - until the follower printed LINE, at most ~10 s.
wait_for() {
  n=0
  while ! grep -qx "$1" "$tmp/fout" && [ $n -lt 100 ]; do nap; n=$((n + 1)); done
  grep -qx "$1" "$tmp/fout" || fail "consume --follow did not print '$1'"
}
wait_for first
echo second | "$Q7" -d "$D" produce live 2> "$tmp/err" || fail "produce live: $(cat "$tmp/err")"
wait_for second
ok "groups describe --members" -d "$D" groups describe follower --members
squeezed > "$tmp/tab"
[ "$(head -n 1 "$tmp/tab")" = "TOPIC CONSUMER-ID PID #PARTITIONS ASSIGNMENT STATE" ] ||
  fail "groups describe --members header: $(head -n 1 "$tmp/tab")"
awk -v pid="$bgpid" 'NR > 1 { rows++; if ($1 != "live" || $3 != pid || $4 != 2 || $5 != "0,1" || $6 != "active") bad = 1 }
                     END { exit bad || rows != 1 }' "$tmp/tab" ||
  { fail "groups describe --members with one follower:"; cat "$tmp/out" >&2; }
# A second follower in the same group, from another process, takes a share.
"$Q7" -d "$D" consume live -g follower --follow > "$tmp/fout2" 2> "$tmp/ferr2" &
bgpid2=$!
n=0
while [ $n -lt 100 ]; do
  "$Q7" -d "$D" groups describe follower --members > "$tmp/out" 2> "$tmp/err"
  [ "$(squeezed | awk 'NR > 1 && $4 == 1 && $6 == "active"' | wc -l)" -eq 2 ] && break
  nap; n=$((n + 1))
done
[ $n -lt 100 ] || { fail "two followers did not share the two partitions:"; cat "$tmp/out" "$tmp/err" >&2; }
kill -TERM "$bgpid2"
( sleep 10; kill -KILL "$bgpid2" 2>/dev/null ) &
watchdog=$!
wait "$bgpid2"
frc=$?
kill "$watchdog" 2>/dev/null
wait "$watchdog" 2>/dev/null
bgpid2=
[ "$frc" -eq 0 ] || fail "the second follower exited $frc after SIGTERM: $(cat "$tmp/ferr2")"
kill -TERM "$bgpid"
( sleep 10; kill -KILL "$bgpid" 2>/dev/null ) &
watchdog=$!
wait "$bgpid"
frc=$?
bgpid=
kill "$watchdog" 2>/dev/null
wait "$watchdog" 2>/dev/null
[ "$frc" -eq 0 ] || fail "consume --follow exited $frc after SIGTERM (137: killed by the watchdog)"
[ "$(cat "$tmp/ferr")" = "consumed 2 records" ] || fail "consume --follow stderr: $(cat "$tmp/ferr")"
printf 'first\nsecond\n' > "$tmp/exp"
same "consume --follow output" "$tmp/fout" "$tmp/exp"
ok "groups describe follower" -d "$D" groups describe follower
squeezed | awk 'NR > 1 { lag += $5; leo += $4 } END { exit lag != 0 || leo != 2 }' ||
  { fail "the follower did not commit what it printed:"; cat "$tmp/out" >&2; }
ok "groups describe --members, none left" -d "$D" groups describe follower --members
[ "$(grep -c '' "$tmp/out")" -eq 1 ] || { fail "members left after both followers stopped:"; cat "$tmp/out" >&2; }
note "consume --follow stops on SIGTERM"

if [ "$fails" -gt 0 ]; then
  echo "e2e_tool: $fails failure(s)" >&2
  exit 1
fi
note "ok"
