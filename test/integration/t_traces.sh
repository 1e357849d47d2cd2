#!/usr/bin/env bash
# The sample traces (test/traces/): they are exactly what scripts/traces
# generate writes; replayed into a fresh pipeline they produce their expected
# outputs (computed from the definitions, not by the agents). A trace
# recorded from a live pipeline driven by them, replayed into fresh
# pipelines at --fast and at another speed, gives the same outputs again;
# the fleet captured by mosquitto_sub -F %J, and as mqtt-recorder CSV,
# replays to the same success rates.
source "$(dirname "$0")/lib.sh"
it_setup
TRACES=$MQPIPE_ROOT/scripts/traces
SAMPLES=$MQPIPE_ROOT/test/traces

note "the committed samples are the generator's output"
"$TRACES" generate "$T/gen" >/dev/null
for f in "$SAMPLES"/*.jsonl "$SAMPLES"/*.expected; do
	cmp -s "$f" "$T/gen/$(basename "$f")" || fail "$(basename "$f") differs from scripts/traces generate"
done
[ "$(ls "$T/gen" | wc -l)" -eq "$(ls "$SAMPLES"/*.jsonl "$SAMPLES"/*.expected | wc -l)" ] || fail "file sets differ"

note "a live pipeline, driven by the samples at 4x, recorded"
for a in counter dispatcher worker aggregator ingest alerter; do start_agent "$a" "mqpipe-$a" -d "$T/$a.db"; done
"$BIN/mqpipe-record" -b "$BROKER_URI" -t recv_message -t weekly_diagnostic -t job.submit -t dashboard.request \
	-t user.ingest -t user.list -t 'metrics/#' -o "$T/live.jsonl" 2>"$T/rec-in.err" &
RIN=$!
PIDS+=("$RIN")
"$BIN/mqpipe-record" -b "$BROKER_URI" -t success_rate -t job.summary -t dashboard.ready -t 'alerts/#' \
	-t 'deadletter/#' -t 'replies/#' -o "$T/live-out.jsonl" 2>"$T/rec-out.err" &
ROUT=$!
PIDS+=("$ROUT")
wait_for 20 log_has "$T/rec-in.err" recording || fail "input recorder: $(cat "$T/rec-in.err")"
wait_for 20 log_has "$T/rec-out.err" recording || fail "output recorder: $(cat "$T/rec-out.err")"
sort "$SAMPLES"/*.expected >"$T/want.txt"
inputs=$(cat "$SAMPLES"/*.jsonl | wc -l)
pids=()
for f in "$SAMPLES"/*.jsonl; do
	"$BIN/mqpipe-replay" -b "$BROKER_URI" --speed 4 "$f" 2>>"$T/replay.err" &
	pids+=("$!")
done
for p in "${pids[@]}"; do wait "$p" || fail "replay: $(cat "$T/replay.err")"; done
want=$(wc -l <"$T/want.txt")
wait_for 60 bash -c "[ \$('$TRACES' normalize '$T/live-out.jsonl' | wc -l) -ge $want ]" || true
sleep 0.5
"$TRACES" normalize "$T/live-out.jsonl" >"$T/live-got.txt"
diff "$T/want.txt" "$T/live-got.txt" >"$T/diff.txt" || fail "the live pipeline's outputs differ: $(head -10 "$T/diff.txt")"
wait_for 20 bash -c "[ \$(wc -l <'$T/live.jsonl') -ge $inputs ]" || fail "recorded $(wc -l <"$T/live.jsonl") of $inputs inputs"
stop_pid "$RIN"
[ "$(wc -l <"$T/live.jsonl")" -eq "$inputs" ] || fail "recorded $(wc -l <"$T/live.jsonl") inputs, want $inputs"
note "$want outputs as expected from $inputs recorded inputs"

expects=()
for f in "$SAMPLES"/*.expected; do expects+=(--expect "$f"); done
note "the recorded trace into a fresh pipeline, --fast"
"$TRACES" run --fast "${expects[@]}" "$T/live.jsonl" || fail "replay --fast of the recorded trace"
note "the recorded trace into a fresh pipeline, --speed 8"
"$TRACES" run --speed 8 "${expects[@]}" "$T/live.jsonl" || fail "replay --speed 8 of the recorded trace"

note "the fleet as mosquitto_sub -F %J saw it, and as mqtt-recorder CSV"
mosquitto_sub -p "$BROKER_PORT" -q 1 -t 'copy/#' -F %J >"$T/fleet.sub.txt" &
SP=$!
PIDS+=("$SP")
sleep 0.3
fleet=$(wc -l <"$SAMPLES/fleet.jsonl")
"$BIN/mqpipe-replay" -b "$BROKER_URI" --speed 4 -p copy "$SAMPLES/fleet.jsonl" 2>"$T/copy.err" || fail "$(cat "$T/copy.err")"
wait_for 20 bash -c "[ \$(wc -l <'$T/fleet.sub.txt') -ge $fleet ]" || fail "mosquitto_sub saw $(wc -l <"$T/fleet.sub.txt")"
stop_pid "$SP"
sed -i 's|"topic":"copy/|"topic":"|' "$T/fleet.sub.txt"
"$TRACES" run --fast --expect "$SAMPLES/fleet.expected" "$T/fleet.sub.txt" || fail "the -F %J capture"
jq -r '[.topic, .payload, .qos, "False", (1767225600 + .t), 0] | @csv' "$SAMPLES/fleet.jsonl" |
	sed '1i topic,payload,qos,retain,time_now,time_delta' >"$T/fleet.csv"
"$TRACES" run --speed 3 --expect "$SAMPLES/fleet.expected" "$T/fleet.csv" || fail "the CSV"
echo "ok"
