#!/bin/sh
# stress.sh BUILD [SECONDS] - the long reliability runs (`make stress`):
#   - test_crash with Q7_STRESS_ROUNDS rounds per test (default 200):
#     producers (send_sync and batched, sync on and off, with and without
#     retention sweeps) and consumers SIGKILLed at random moments;
#   - many_procs for SECONDS (default 60): 8 producer and 4 consumer
#     processes in 2 groups on one store, exactly-once per group.
# Set Q7_TEST_SEED to repeat a crash run.  Prints a closing
# "N passed, N failed" line; exits non-zero if anything failed.
B=${1:-build}
SECS=${2:-60}
ROUNDS=${Q7_STRESS_ROUNDS:-200}
pass=0; fail=0
step() { # name, command...
  name=$1; shift
  echo "---- $name"
  if "$@"; then pass=$((pass + 1)); echo "ok   $name"; else fail=$((fail + 1)); echo "FAIL $name"; fi
}
step "test_crash, $ROUNDS rounds per test" env Q7_STRESS_ROUNDS="$ROUNDS" "$B/tests/test_crash" --jobs 2
step "many_procs, $SECS s" "$B/tests/stress/many_procs" "$SECS"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
