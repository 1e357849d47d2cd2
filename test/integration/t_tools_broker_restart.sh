#!/usr/bin/env bash
# The tools ride out a broker crash: mqpipe-replay's publishes cut off by a
# kill -9 of the broker are sent again once it is back (a kept session), so
# every one is acknowledged; mqpipe-record takes its subscriptions again at
# reconnect, so it records what comes after the restart, with a clean
# session or a kept one (-c, which needs -i).
source "$(dirname "$0")/lib.sh"
it_setup
case_c_needs_i() {
	! "$BIN/mqpipe-record" -b "$BROKER_URI" -c -t 'x/#' >/dev/null 2>"$T/usage.err" || fail "-c without -i accepted"
	grep -q "needs -i ID" "$T/usage.err" || fail "usage: $(cat "$T/usage.err")"
}
it_case record-c-without-i-refused case_c_needs_i

for s in kept clean; do
	flags=(-t 'x/#' -o "$T/$s.jsonl")
	[ "$s" = kept ] && flags+=(-c -i it-rec-kept)
	"$BIN/mqpipe-record" -b "$BROKER_URI" "${flags[@]}" 2>"$T/$s.err" &
	PIDS+=("$!")
	wait_for 20 log_has "$T/$s.err" recording || fail "$s recorder did not start: $(cat "$T/$s.err")"
done

# 900 messages at 60/s; the broker is killed 6 s in (after its 5 s
# autosave) and restarted.
case_replay_rides_out() {
	local rp
	it_pass BROKER_PID
	seq 1 900 | awk '{ printf "{\"t\":%.4f,\"topic\":\"x/%d\",\"payload\":\"%d\",\"qos\":1}\n", $1 / 60, $1, $1 }' >"$T/in.jsonl"
	"$BIN/mqpipe-replay" -b "$BROKER_URI" "$T/in.jsonl" 2>"$T/replay.err" &
	rp=$!
	PIDS+=("$rp")
	sleep 6
	stop_pid "$BROKER_PID" KILL
	broker_restart "$T/broker" || fail "broker restart"
	wait "$rp" || fail "replay: $(tail -3 "$T/replay.err")"
	grep -q "900 messages sent .* 900 acknowledged, 0 refused, 0 unanswered" "$T/replay.err" || fail "replay: $(cat "$T/replay.err")"
}
it_case replay-after-broker-kill-all-acknowledged case_replay_rides_out

# The kept session records everything published from 8 s on (the broker
# queues for it once it is back); the clean one everything from its
# resubscription on, which its reconnect backoff (1 s, then 2 s more) puts
# anywhere in the 7 s after the kill on a busy machine: no gap after the
# first message it recorded after the kill, and at least the last 2 s.
case_recorder() {
	local want got first s=$REC_SESSION
	wait_for 30 bash -c "jq -r .payload '$T/$s.jsonl' | grep -qx 900" || fail "$s recorder stopped recording: $(tail -3 "$T/$s.err")"
	first=480
	[ "$s" = kept ] || first=$(jq -r .payload "$T/$s.jsonl" | awk '$1 > 360' | sort -n | head -n 1)
	[ "$first" -le 780 ] || fail "$s recorder resumed only at message $first"
	want=$(seq "$first" 900 | sort)
	got=$(jq -r .payload "$T/$s.jsonl" | sort -u | awk -v f="$first" '$1 >= f')
	[ "$got" = "$want" ] || fail "$s recorder misses $(comm -23 <(echo "$want") <(echo "$got") | wc -l) of the $((901 - first)) from message $first"
	note "$s: $(jq -r .payload "$T/$s.jsonl" | sort -u | wc -l) of 900 recorded, none missing from message $first"
}
for REC_SESSION in kept clean; do
	it_case "$REC_SESSION-session-recorder-records-after-broker-kill" case_recorder
done
it_cases_done
