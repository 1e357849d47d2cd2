#!/usr/bin/env bash
# The README's main command: scripts/pipeline demo starts a broker from
# broker-config/ and the agents with their state under MQPIPE_VAR, prints the
# sample fleet's success rates and a dead letter, a job's summary and a
# dashboard, and the sample traces replayed into a fresh pipeline with all
# their outputs as expected, prints the live page's address (served by the
# broker) and leaves the feed running; status and down work after it.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
export MQPIPE_VAR=$T/var
cleanup_pipeline() {
	"$MQPIPE_ROOT/scripts/pipeline" down >/dev/null 2>&1 || true
	it_cleanup
}
trap cleanup_pipeline EXIT
MQPIPE_PORT=$(free_port) && MQPIPE_WEB_PORT=$(free_port) || fail "no free port"
export MQPIPE_PORT MQPIPE_WEB_PORT

"$MQPIPE_ROOT/scripts/pipeline" demo >"$T/demo.out" 2>&1 || fail "demo failed: $(tail -5 "$T/demo.out")"
cat "$T/demo.out"
for want in "83.33 %" "80 %" "null" "deadletter/weekly_diagnostic"; do
	grep -q "$want" "$T/demo.out" || fail "demo output lacks '$want'"
done
[ "$(grep -c '^sensor-' "$T/demo.out")" -eq 7 ] || fail "demo printed $(grep -c '^sensor-' "$T/demo.out") rates, want 7"
grep -q "sensor-a.* 5 .* 6 .*83.33 %" "$T/demo.out" || fail "the week after the reset is wrong"
[ -f "$MQPIPE_VAR/counter.db" ] || fail "no state under MQPIPE_VAR"
grep -qE '^job job-[0-9]+: 20 cases back in submission order, mode future' "$T/demo.out" || fail "no job summary"
grep -q 'first: case-01 .* last: case-20 ' "$T/demo.out" || fail "the summary is not in submission order"
grep -qE '^dashboard dash-[0-9]+ \(executive, 24h\): mode future, [0-9] of 6 inputs' "$T/demo.out" || fail "no dashboard"
grep -q '^all 178 outputs as expected' "$T/demo.out" || fail "the sample traces did not replay as expected"
for panel in sales inventory marketing external_market weather competitor_pricing; do
	grep -qE "^  $panel +[^ ]" "$T/demo.out" || fail "the dashboard lacks its $panel panel"
done

# The live page is served by the broker, and the feed keeps it busy: its
# modules' success rates come (exact: every tick is an attempt).
grep -q "^live page http://127.0.0.1:$MQPIPE_WEB_PORT/ " "$T/demo.out" || fail "up did not print the page's URL"
curl -sf "http://127.0.0.1:$MQPIPE_WEB_PORT/" | grep -q '<title>mqpipe' || fail "the broker does not serve the page"
grep -q "^feed      publishing a live sample for 600 s" "$T/demo.out" || fail "the demo did not start the feed"
mosquitto_sub -p "$MQPIPE_PORT" -t success_rate -C 12 -W 30 >"$T/feed.out" || fail "no success rates from the feed"
jq -e -s 'all(.moduleid | startswith("pump-")) and all(.attempts == 5 and .received <= 5)' "$T/feed.out" >/dev/null ||
	fail "feed: $(head -3 "$T/feed.out")"
"$MQPIPE_ROOT/scripts/pipeline" feed 5 | grep -q "already running" || fail "a second feed started"
"$MQPIPE_ROOT/scripts/pipeline" feed soon >/dev/null 2>&1 && fail "feed accepted 'soon'"

# status: a row per agent, online, from the retained status and metrics
# (reported every 2 s); the counter has applied the demo's 55 inputs.
counter_in() {
	"$MQPIPE_ROOT/scripts/pipeline" status >"$T/status.out"
	[ "$(awk '$1 == "mqpipe-counter" { print $7 }' "$T/status.out")" -ge 55 ] 2>/dev/null
}
wait_for 20 counter_in || fail "status: $(cat "$T/status.out")"
head -1 "$T/status.out" | grep -q "^broker: tcp://127.0.0.1:$MQPIPE_PORT" || fail "status: $(cat "$T/status.out")"
	grep -qE '^AGENT +STATE +PID +UPTIME +IN/S +OUT/S +IN +OUT +DEAD +ERR +P50_MS +P99_MS +OUTBOX +RSS_MB$' "$T/status.out" ||
	fail "status header: $(cat "$T/status.out")"
for a in counter dispatcher worker- aggregator ingest alerter; do
	grep -qE "^mqpipe-$a[^ ]* +online +[0-9]+ " "$T/status.out" || fail "status lacks $a online: $(cat "$T/status.out")"
done
awk '$1 == "mqpipe-counter" && $9 >= 1 { ok = 1 } END { exit !ok }' "$T/status.out" ||
	fail "status: the counter's dead letter is not counted: $(cat "$T/status.out")"
# top redraws until interrupted: wait (on a busy machine, a while) for its
# first table, then stop it (its trap ends it on TERM as on Ctrl-C).
"$MQPIPE_ROOT/scripts/pipeline" top >"$T/top.out" 2>&1 &
top_pid=$!
top_drawn() { grep -qE '^mqpipe-counter +online' "$T/top.out"; }
drawn=0
wait_for 60 top_drawn || drawn=1
kill "$top_pid" 2>/dev/null || true # TERM: a background job ignores INT
wait "$top_pid" 2>/dev/null || true
[ "$drawn" -eq 0 ] || fail "top: $(cat -v "$T/top.out")"

"$MQPIPE_ROOT/scripts/pipeline" demo >"$T/demo2.out" 2>&1 || fail "a second demo failed"
[ "$(grep -c '^sensor-' "$T/demo2.out")" -eq 7 ] || fail "a second demo printed other rates"

feed_pid=$(cat "$MQPIPE_VAR/run/feed.pid")
"$MQPIPE_ROOT/scripts/pipeline" down >/dev/null
proc_alive "$feed_pid" && fail "down left the feed running"
"$MQPIPE_ROOT/scripts/pipeline" status >"$T/status2.out"
grep -q "^broker: not running" "$T/status2.out" || fail "down left the broker running: $(cat "$T/status2.out")"
grep -q "^not running from .*: counter dispatcher worker aggregator ingest alerter$" "$T/status2.out" ||
	fail "down left agents running: $(cat "$T/status2.out")"
port_in_use $MQPIPE_PORT && fail "down left the broker running"
echo "all ok"
