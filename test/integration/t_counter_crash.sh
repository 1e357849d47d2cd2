#!/usr/bin/env bash
# SIGKILL at any moment loses no input and counts none twice: the counter is
# killed five times, at random moments, while a fleet's traffic streams in and
# is restarted each time; afterwards every expected success_rate has arrived with the exact
# values (a repeat after a crash is allowed, but only with the same content).
source "$(dirname "$0")/lib.sh"
it_setup
here=$(dirname "$0")

awk -v seed=11 -v modules=200 -v recv="$T/recv.txt" -v diag="$T/diag.txt" -f "$here/gen_modules.awk"
awk -f "$here/expect_rates.awk" "$T/recv.txt" "$T/diag.txt" | sort >"$T/expected.txt"
expected=$(lines "$T/expected.txt")
note "$(lines "$T/recv.txt") messages, $expected new diagnostics"

start_counter
subscribe rates success_rate

# Stream recv_message then diagnostics in slices so the kills land mid-stream.
(
	split -l 1000 "$T/recv.txt" "$T/r."
	for f in "$T"/r.*; do mosquitto_pub -p "$BROKER_PORT" -q 1 -t recv_message -l <"$f"; done
	split -l 100 "$T/diag.txt" "$T/d."
	for f in "$T"/d.*; do mosquitto_pub -p "$BROKER_PORT" -q 1 -t weekly_diagnostic -l <"$f"; sleep 0.05; done
	touch "$T/published"
) &
PIDS+=($!)

kills=0
for _ in 1 2 3 4 5; do
	delay=0.$((RANDOM % 6 + 2)) # 0.2 to 0.7 s into each life
	sleep "$delay"
	kill -KILL "$COUNTER_PID"
	kills=$((kills + 1))
	note "SIGKILL #$kills after ${delay}s, $(lines "$T/rates.out") outputs so far"
	sleep 0.2
	start_counter
done
wait_for 120 test -f "$T/published" || fail "publisher did not finish"
wait_for 120 bash -c "[ \$(sed 's/^success_rate //' '$T/rates.out' | jq -r '.moduleid + \" \" + (.timestamp|tostring)' | sort -u | wc -l) -ge $expected ]" ||
	fail "missing outputs after the kills"

rates_of "$T/rates.out" >"$T/got.txt"
dupes=$(($(lines "$T/rates.out") - $(lines "$T/got.txt")))
compare_rates "$T/expected.txt" "$T/got.txt" || fail "outputs after $kills kills differ from the expected ones"
unique=$(sed -E 's/"module[Ii]d"/"m"/' "$T/recv.txt" | sort -u | wc -l)
[ "$(db 'SELECT count(*) FROM recv_message')" -eq "$unique" ] || fail "stored messages != $unique"
echo "all ok: $kills kills, $expected rates exact, $dupes repeated outputs"
