#!/usr/bin/env bash
# The bounded chaos run: 20 SIGKILLs of random agents (two workers among
# them) and 2 of the broker while the sample traces are replayed; nothing
# expected may be missing, no natural key may hold two different outputs,
# and the counter must hold exactly the distinct messages sent.
# test-alone
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
"$MQPIPE_ROOT/scripts/chaos" --kills 20 --broker-kills 2 --speed 0.4 >"$T/chaos.out" 2>&1 || fail "chaos: $(tail -25 "$T/chaos.out")"
cat "$T/chaos.out"
grep -q '^faults injected:   22 SIGKILLs (.*broker 2' "$T/chaos.out" || fail "not 20 + 2 kills"
grep -q '^outputs missing:   0 of 178$' "$T/chaos.out" || fail "outputs missing"
grep -q '^outputs doubled:   0 ' "$T/chaos.out" || fail "outputs doubled"
grep -q '^state mismatches:  0 ' "$T/chaos.out" || fail "state mismatch"
grep -q '^all 178 outputs as expected$' "$T/chaos.out" || fail "outputs differ"
echo "ok"
