#!/usr/bin/env bash
# Sealed windows folded (README "Sealed windows"): a fleet fed in rounds, one
# simulated week each, through a counter with a short --dedup-horizon. Every
# success rate is the one the README's rule gives over every message
# (fold_fleet.py computes it without folding), with repeats, both id
# spellings, resets, ties, late messages and late diagnostics within the
# horizon; once a week is sealed its messages are one count per diagnostic
# (no recv_message row is left), and what comes for a sealed week is a dead
# letter naming the window (a repeated diagnostic is still only ignored). A
# state from before sealed windows is upgraded and folded.
source "$(dirname "$0")/lib.sh"
it_setup
here=$(dirname "$0")
ROUNDS=5
HORIZON=3 # seconds; phase b of a round is published well within it

python3 "$here/fold_fleet.py" 11 120 $ROUNDS "$T"
note "$(cat "$T"/r*.a.recv | wc -l) messages, $(lines "$T/expected") new diagnostics, $(cat "$T/dead") dead letters to come"

start_counter --dedup-horizon $HORIZON
subscribe rates success_rate
subscribe dl 'deadletter/#'

# publish FILE TOPIC: its lines at QoS 1, when there are any.
publish() {
	[ -s "$1" ] || return 0
	pub_lines "$2" "$1"
}
# rates_are N: N success_rate events have arrived.
rates_are() { [ "$(lines "$T/rates.out")" -ge "$1" ]; }
# sealed: every diagnostic's window is sealed and folded.
sealed() {
	[ "$(db 'SELECT (SELECT count(*) FROM weekly_diagnostic WHERE folded IS NULL)
		+ (SELECT count(*) FROM fold_pending)')" = 0 ]
}

case_rounds() {
	local r want=0 dead=0
	for ((r = 0; r < ROUNDS; r++)); do
		want=$((want + $(cat "$T/r$r.rates")))
		publish "$T/r$r.a.recv" recv_message
		publish "$T/r$r.a.diag" weekly_diagnostic
		publish "$T/r$r.b.recv" recv_message
		publish "$T/r$r.b.diag" weekly_diagnostic
		wait_for 120 rates_are $want || fail "round $r: $(lines "$T/rates.out") of $want rates"
		wait_for 60 sealed || fail "round $r: windows still open $HORIZON s on"
		[ "$(db 'SELECT count(*) FROM recv_message')" = 0 ] ||
			fail "round $r: $(db 'SELECT count(*) FROM recv_message') messages left after the seal"
		dead=$((dead + $(lines "$T/r$r.c.recv") + $(lines "$T/r$r.c.diag")))
		publish "$T/r$r.c.recv" recv_message
		publish "$T/r$r.c.diag" weekly_diagnostic
	done
	wait_for 60 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' 'SELECT count(*) FROM deadletter') -ge $(cat "$T/dead") ]" ||
		fail "$(db 'SELECT count(*) FROM deadletter') dead letters of $(cat "$T/dead")"
	sleep 1 # a repeated diagnostic publishes nothing: nothing more may come
	[ "$(lines "$T/rates.out")" -eq "$want" ] || fail "$(lines "$T/rates.out") rates for $want new diagnostics"
}
it_case rounds case_rounds

case_exact() {
	rates_of "$T/rates.out" >"$T/got"
	compare_rates "$T/expected" "$T/got" || fail "success rates differ from the independent calculation"
}
it_case rates-exact-after-folding case_exact rounds

case_folded() {
	[ "$(db 'SELECT sum(folded) FROM weekly_diagnostic')" = "$(cat "$T/stored")" ] ||
		fail "folded $(db 'SELECT sum(folded) FROM weekly_diagnostic') of $(cat "$T/stored") distinct messages"
	[ "$(db 'SELECT count(*) FROM recv_message')" = 0 ] || fail "messages left one by one"
}
it_case messages-are-one-count-per-diagnostic case_folded rounds

case_dead() {
	local want
	want=$(cat "$T/dead")
	[ "$(db 'SELECT count(*) FROM deadletter')" = "$want" ] ||
		fail "$(db 'SELECT count(*) FROM deadletter') dead letters, want $want (a repeated diagnostic is not one)"
	[ "$(db "SELECT count(*) FROM deadletter WHERE reason LIKE '%sealed --dedup-horizon after that diagnostic%'")" = "$want" ] ||
		fail "a dead letter without the sealed window's reason: $(db 'SELECT reason FROM deadletter LIMIT 1')"
	wait_for 20 bash -c "[ \$(wc -l <'$T/dl.out') -ge $want ]" ||
		fail "$(lines "$T/dl.out") dead letters published of $want"
	grep -m1 '^deadletter/recv_message ' "$T/dl.out" | grep -q "falls in the window of module 'fold-" ||
		fail "no recv_message dead letter names its window: $(head -n 1 "$T/dl.out")"
}
it_case late-events-are-dead-letters case_dead rounds

# A state from before sealed windows: its diagnostics count as arrived at the
# upgrade, and their windows seal a horizon later, their messages folded.
# (The old schema is this one with the sealed-window step taken back off.)
case_upgrade() {
	local up=(-d "$T/old.db" -i it-counter-old -p up) pid before
	updb() { sqlite3 -cmd ".timeout 5000" "$T/old.db" "$1"; }
	start_agent old mqpipe-counter "${up[@]}"
	pid=$AGENT_PID
	subscribe up-rates up/success_rate
	for i in $(seq 1 20); do echo "{\"moduleId\":\"u1\",\"timestamp\":$i}"; done >"$T/up.recv"
	pub_lines up/recv_message "$T/up.recv"
	pub up/weekly_diagnostic '{"moduleid":"u1","timestamp":20,"attempts":20}'
	wait_for 30 bash -c "[ \$(wc -l <'$T/up-rates.out') -ge 1 ]" || fail "no rate before the upgrade"
	stop_pid "$pid"
	updb "DROP INDEX weekly_diagnostic_open; DROP TABLE fold_pending;
	      ALTER TABLE weekly_diagnostic DROP COLUMN folded;
	      ALTER TABLE weekly_diagnostic DROP COLUMN applied_ms;
	      UPDATE schema_version SET version = 2 WHERE component = 'counter';"
	before=$(($(date +%s) * 1000 - 1000))
	start_agent old mqpipe-counter "${up[@]}" --dedup-horizon 2
	[ "$(updb 'SELECT applied_ms >= '"$before"' FROM weekly_diagnostic')" = 1 ] ||
		fail "the stored diagnostic did not count as arrived at the upgrade: $(updb 'SELECT applied_ms FROM weekly_diagnostic')"
	wait_for 30 bash -c "[ \"\$(sqlite3 -cmd '.timeout 2000' '$T/old.db' 'SELECT folded FROM weekly_diagnostic')\" = 20 ]" ||
		fail "the old window was not folded: folded=$(updb 'SELECT folded FROM weekly_diagnostic')"
	[ "$(updb 'SELECT count(*) FROM recv_message')" = 0 ] || fail "old messages left one by one"
	for i in $(seq 21 25); do echo "{\"moduleId\":\"u1\",\"timestamp\":$i}"; done >"$T/up.recv"
	pub_lines up/recv_message "$T/up.recv"
	pub up/weekly_diagnostic '{"moduleid":"u1","timestamp":30,"attempts":25}'
	wait_for 30 bash -c "[ \$(wc -l <'$T/up-rates.out') -ge 2 ]" || fail "no rate after the upgrade"
	[ "$(tail -n 1 "$T/up-rates.out" | sed 's/^[^ ]* //' | jq -c '[.received, .success_rate]')" = "[25,100]" ] ||
		fail "the rate after the upgrade is not over the folded and the new messages: $(tail -n 1 "$T/up-rates.out")"
}
it_case upgrade-from-an-older-state case_upgrade

it_cases_done
