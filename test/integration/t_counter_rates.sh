#!/usr/bin/env bash
# Exact success rates for a few hundred modules with resets, duplicates, ties,
# the 100 cap and zero attempts, checked against an independent calculation.
source "$(dirname "$0")/lib.sh"
it_setup
here=$(dirname "$0")

awk -v seed=7 -v modules=300 -v recv="$T/recv.txt" -v diag="$T/diag.txt" -f "$here/gen_modules.awk"
awk -f "$here/expect_rates.awk" "$T/recv.txt" "$T/diag.txt" | sort >"$T/expected.txt"
expected=$(lines "$T/expected.txt")
note "$(lines "$T/recv.txt") recv_message, $(lines "$T/diag.txt") weekly_diagnostic, $expected new diagnostics"
[ "$expected" -gt 500 ] || fail "generator produced too few diagnostics"
grep -q ' null$' "$T/expected.txt" || fail "no zero-attempt case generated"
grep -q ' 100.000000$' "$T/expected.txt" || fail "no capped case generated"

start_counter
subscribe rates success_rate
pub_lines recv_message "$T/recv.txt"
pub_lines weekly_diagnostic "$T/diag.txt"

wait_for 120 bash -c "[ \$(wc -l <'$T/rates.out') -ge $expected ]" ||
	fail "only $(lines "$T/rates.out") of $expected success_rate events arrived"
sleep 1 # a repeated diagnostic must publish nothing: nothing more may come
[ "$(lines "$T/rates.out")" -eq "$expected" ] || fail "$(lines "$T/rates.out") events for $expected new diagnostics"

rates_of "$T/rates.out" >"$T/got.txt"
compare_rates "$T/expected.txt" "$T/got.txt" || fail "success rates differ from the independent calculation"

sed 's/^success_rate //' "$T/rates.out" | "$MQPIPE_ROOT/scripts/schemas" validate success_rate ||
	fail "a success_rate event breaks schemas/success_rate.schema.json"
unique=$(sed -E 's/"module[Ii]d"/"m"/' "$T/recv.txt" | sort -u | wc -l)
[ "$(db 'SELECT count(*) FROM recv_message')" -eq "$unique" ] || fail "stored messages != $unique unique"
[ "$(db 'SELECT count(*) FROM deadletter')" -eq 0 ] || fail "good input was dead-lettered"
echo "all ok: $expected rates exact"
