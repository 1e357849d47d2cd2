#!/usr/bin/env bash
# Traces: mqpipe-record writes what it sees (payloads as text or base64,
# MQTT 5 properties kept); mqpipe-replay of that file into a prefix gives the
# same messages in the same order, properties included (recorded again and
# compared); a recorder SIGKILLed mid-stream leaves only whole lines;
# mosquitto_sub -F %J output and mqtt-recorder CSV replay too, a malformed
# line reported with its number and skipped; against a broker that allows
# only 20 unacknowledged publishes (mosquitto's default) replay --fast keeps
# its pace and an agent warns at connect; bad flags exit 64.
source "$(dirname "$0")/lib.sh"
it_setup
# Backgrounded recorders run the binary itself, so $! is its PID.
REC=("$BIN/mqpipe-record" -b "$BROKER_URI")
replay() { "$BIN/mqpipe-replay" -b "$BROKER_URI" "$@"; }

case_record_count() { # 200 messages, with binary payloads and properties; --count stops it
	local rp i
	"${REC[@]}" -t 'src/#' -o "$T/trace.jsonl" --count 200 2>"$T/rec.err" &
	rp=$!
	PIDS+=("$rp")
	wait_for 20 log_has "$T/rec.err" recording || fail "the recorder did not start: $(cat "$T/rec.err")"
	seq 1 150 | awk '{ printf "{\"n\":%d}\n", $1 }' | mosquitto_pub -p "$BROKER_PORT" -q 1 -t src/json -l
	for i in $(seq 1 25); do printf '\x00bin%d\xff' "$i" | mosquitto_pub -p "$BROKER_PORT" -q 1 -t src/bin -s; done
	for i in $(seq 1 25); do
		mosquitto_pub -p "$BROKER_PORT" -q 1 -t src/rr -m "req $i" -D publish response-topic "replies/$i" \
			-D publish correlation-data "c-$i" -D publish user-property who it
	done
	wait_for 30 bash -c "! kill -0 $rp 2>/dev/null" || fail "the recorder did not stop after --count"
	[ "$(wc -l <"$T/trace.jsonl")" -eq 200 ] || fail "recorded $(wc -l <"$T/trace.jsonl")"
}
it_case record-stops-after-count case_record_count

case_record_binary() {
	jq -e -s 'map(select(.topic == "src/bin")) | length == 25 and all(has("payload_b64"))' "$T/trace.jsonl" >/dev/null || fail "binary payloads"
}
it_case binary-payloads-recorded-as-base64 case_record_binary record-stops-after-count

case_record_properties() {
	jq -e -s 'map(select(.topic == "src/rr")) | all(.properties.response_topic != null and .properties.correlation_data != null and .properties.user == [["who","it"]])' \
		"$T/trace.jsonl" >/dev/null || fail "properties not kept: $(grep src/rr "$T/trace.jsonl" | head -1)"
}
it_case mqtt5-properties-recorded case_record_properties record-stops-after-count

case_record_t_rises() {
	jq -e -s '[.[].t] | . == sort' "$T/trace.jsonl" >/dev/null || fail "t does not rise"
}
it_case recorded-t-rises case_record_t_rises record-stops-after-count

case_replay_same() { # into a prefix, at 20x, and recorded again: the same messages
	local rp
	"${REC[@]}" -t 'copy/#' -o "$T/copy.jsonl" --count 200 2>"$T/rec2.err" &
	rp=$!
	PIDS+=("$rp")
	wait_for 20 log_has "$T/rec2.err" recording || fail "the second recorder did not start"
	replay -p copy --speed 20 "$T/trace.jsonl" 2>"$T/replay.err" || fail "replay: $(cat "$T/replay.err")"
	grep -q "200 messages sent .* 200 acknowledged, 0 refused, 0 unanswered, 0 lines skipped" "$T/replay.err" || fail "$(cat "$T/replay.err")"
	wait_for 30 bash -c "! kill -0 $rp 2>/dev/null" || fail "the copy was not complete: $(wc -l <"$T/copy.jsonl")"
	strip() { jq -c 'del(.t) | .topic |= sub("^copy/"; "")' "$1"; }
	diff <(strip "$T/trace.jsonl") <(strip "$T/copy.jsonl") >"$T/diff" || fail "the replay differs: $(head -5 "$T/diff")"
}
it_case replay-into-prefix-gives-same-messages case_replay_same record-stops-after-count

case_killed_recorder() { # SIGKILLed mid-stream: only whole lines
	local rp n
	"${REC[@]}" -t 'big/#' -o "$T/killed.jsonl" 2>/dev/null &
	rp=$!
	PIDS+=("$rp")
	sleep 0.5
	seq 1 20000 | mosquitto_pub -p "$BROKER_PORT" -q 1 -t big/x -l &
	PIDS+=($!)
	wait_for 20 bash -c "[ \$(wc -l <'$T/killed.jsonl') -ge 1000 ]" || fail "nothing recorded"
	kill -KILL "$rp"
	wait_for 20 bash -c "! kill -0 $rp 2>/dev/null" || fail "the recorder outlived SIGKILL"
	n=$(wc -l <"$T/killed.jsonl")
	jq -c . "$T/killed.jsonl" >/dev/null || fail "a line of the killed recorder's file does not parse"
	[ "$(tail -c 1 "$T/killed.jsonl" | od -An -c | tr -d ' ')" = '\n' ] || fail "the last line is cut"
	note "killed after $n lines, all whole"
}
it_case killed-recorder-leaves-whole-lines case_killed_recorder

case_foreign_sub() { # mosquitto_sub -F %J output, a line that is no JSON object skipped
	subscribe foreign 'x/#'
	# The QoS 0 line reaches only a connected subscriber (a broker queues no
	# QoS 0 for a kept session): wait until this one is, by a QoS 1 marker.
	pub x/ready 1
	wait_for 20 grep -q '^x/ready' "$T/foreign.out" || fail "the foreign subscriber is not connected"
	printf '%s\n' \
		'{"tst":"2026-11-21T18:04:13.147312Z+0000","topic":"x/sub","qos":1,"retain":0,"payloadlen":7,"payload":{"v":1}}' \
		'this is not a trace line' \
		'{"tst":"2026-11-21T18:04:13.247312Z+0000","topic":"x/sub","qos":0,"retain":0,"payloadlen":3,"payload":"abc"}' >"$T/sub.txt"
	replay --fast "$T/sub.txt" 2>"$T/sub.err" || fail "$(cat "$T/sub.err")"
	grep -q "sub.txt:2: not a JSON object, skipped" "$T/sub.err" || fail "$(cat "$T/sub.err")"
}
it_case mosquitto-sub-json-replayed-malformed-line-skipped case_foreign_sub

case_foreign_csv() { # mqtt-recorder CSV, a short line skipped
	printf '%s\n' 'topic,payload,qos,retain,time_now,time_delta' 'x/rec,"hello, ""world""",1,False,1700000000.5,0' \
		'x/rec,only,three' 'x/rec,"{""a"":1}",1,False,1700000000.75,0.25' >"$T/rec.csv"
	replay --rate 100 "$T/rec.csv" 2>"$T/csv.err" || fail "$(cat "$T/csv.err")"
	grep -q "rec.csv:3: expected 6 CSV fields" "$T/csv.err" || fail "$(cat "$T/csv.err")"
}
it_case mqtt-recorder-csv-replayed-short-line-skipped case_foreign_csv

case_foreign_delivered() { # what a subscriber got from both, in order
	wait_for 20 bash -c "[ \$(wc -l <'$T/foreign.out') -ge 5 ]" || fail "foreign: $(cat "$T/foreign.out")"
	[ "$(grep -v '^x/ready' "$T/foreign.out")" = 'x/sub {"v":1}
x/sub abc
x/rec hello, "world"
x/rec {"a":1}' ] || fail "foreign replays: $(cat "$T/foreign.out")"
}
it_case foreign-formats-delivered-in-order case_foreign_delivered \
	mosquitto-sub-json-replayed-malformed-line-skipped mqtt-recorder-csv-replayed-short-line-skipped

note "a broker with mosquitto's default max_inflight_messages (20)"
# Paho waits a second each time that window is full: 10 000 messages took
# minutes before replay kept its own window within the broker's.
broker_stop
sed -i 's/^max_inflight_messages 0$/max_inflight_messages 20/' "$T/broker/mosquitto.conf"
broker_restart "$T/broker" || fail "the broker did not restart"

case_narrow_replay() { # --fast within a window of 20, every message acknowledged
	seq 1 10000 | awk '{ printf "{\"t\":0,\"topic\":\"narrow/x\",\"qos\":1,\"retain\":false,\"payload\":\"%d\"}\n", $1 }' >"$T/narrow.jsonl"
	subscribe narrow narrow/x
	timeout 60 "$BIN/mqpipe-replay" -b "$BROKER_URI" --fast "$T/narrow.jsonl" 2>"$T/narrow.err" ||
		fail "replay against a window of 20: $(cat "$T/narrow.err")"
	grep -q "10000 messages sent .* 10000 acknowledged" "$T/narrow.err" || fail "$(cat "$T/narrow.err")"
}
it_case replay-fast-keeps-pace-in-window-of-20 case_narrow_replay

case_narrow_delivered() { # each of the 10 000 once
	wait_for 20 bash -c "[ \$(wc -l <'$T/narrow.out') -eq 10000 ]" || fail "delivered $(wc -l <"$T/narrow.out")"
	[ "$(cut -d' ' -f2 "$T/narrow.out" | sort -u | wc -l)" -eq 10000 ] || fail "duplicates or losses"
}
it_case narrow-window-delivers-each-once case_narrow_delivered replay-fast-keeps-pace-in-window-of-20

case_narrow_warning() { # an agent warns at connect
	local cp
	"$BIN/mqpipe-counter" -b "$BROKER_URI" -d "$T/narrow.db" 2>"$T/narrow-counter.log" &
	cp=$!
	PIDS+=("$cp")
	wait_for 20 log_has "$T/narrow-counter.log" "event=broker_receive_maximum_low receive_maximum=20" ||
		fail "no warning: $(cat "$T/narrow-counter.log")"
	stop_pid "$cp"
}
it_case agent-warns-low-receive-maximum case_narrow_warning

case_replay_help() { # the tool's own usage, without the agents' flags
	"$BIN/mqpipe-replay" --help >"$T/help.txt"
	grep -q '^Usage: mqpipe-replay \[OPTION\]... FILE$' "$T/help.txt" || fail "replay --help: $(head -2 "$T/help.txt")"
	grep -q -- '--fast' "$T/help.txt" && ! grep -q -- '--db\|--sync' "$T/help.txt" || fail "replay --help: $(cat "$T/help.txt")"
}
it_case replay-help-own-usage case_replay_help

case_record_help() {
	"$BIN/mqpipe-record" --help | grep -q '^Usage: mqpipe-record -t FILTER' || fail "record --help"
}
it_case record-help-own-usage case_record_help

case_replay_bad_flags() {
	local args rc
	for args in "--speed 0 $T/sub.txt" "--fast --rate 5 $T/sub.txt" "--qos 3 $T/sub.txt" "" "a b"; do
		rc=0
		# shellcheck disable=SC2086
		"$BIN/mqpipe-replay" $args 2>/dev/null || rc=$?
		[ "$rc" -eq 64 ] || fail "mqpipe-replay $args: exit $rc"
	done
}
it_case replay-bad-flags-exit-64 case_replay_bad_flags

case_record_no_filter() {
	local rc=0
	"$BIN/mqpipe-record" -o "$T/x.jsonl" 2>/dev/null || rc=$?
	[ "$rc" -eq 64 ] || fail "mqpipe-record without -t: exit $rc"
}
it_case record-without-t-exits-64 case_record_no_filter
it_cases_done
