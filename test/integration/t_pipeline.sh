#!/usr/bin/env bash
# The README's main command: scripts/pipeline demo starts a broker from
# broker-config/ and the agents with their state under MQPIPE_VAR, prints the
# sample fleet's success rates and a dead letter, a job's summary and a
# dashboard; status and down work after it.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
export MQPIPE_VAR=$T/var
cleanup_pipeline() {
	"$MQPIPE_ROOT/scripts/pipeline" down >/dev/null 2>&1 || true
	it_cleanup
}
trap cleanup_pipeline EXIT
for _ in 1 2 3 4 5 6 7 8 9 10; do
	MQPIPE_PORT=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
	port_in_use $MQPIPE_PORT || break
done
export MQPIPE_PORT

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
for panel in sales inventory marketing external_market weather competitor_pricing; do
	grep -qE "^  $panel +[^ ]" "$T/demo.out" || fail "the dashboard lacks its $panel panel"
done

"$MQPIPE_ROOT/scripts/pipeline" status >"$T/status.out"
grep -q "^counter .*running" "$T/status.out" || fail "status: $(cat "$T/status.out")"
for a in dispatcher worker aggregator ingest alerter; do
	grep -q "^$a .*running" "$T/status.out" || fail "status: $(cat "$T/status.out")"
done
grep -q '"state":"online"' "$T/status.out" || fail "status lacks the retained online status"

"$MQPIPE_ROOT/scripts/pipeline" demo >"$T/demo2.out" 2>&1 || fail "a second demo failed"
[ "$(grep -c '^sensor-' "$T/demo2.out")" -eq 7 ] || fail "a second demo printed other rates"

"$MQPIPE_ROOT/scripts/pipeline" down >/dev/null
"$MQPIPE_ROOT/scripts/pipeline" status >"$T/status2.out"
grep -q "^counter .*stopped" "$T/status2.out" || fail "down left the counter running: $(cat "$T/status2.out")"
grep -q "^dispatcher .*stopped" "$T/status2.out" || fail "down left the dispatcher running"
port_in_use $MQPIPE_PORT && fail "down left the broker running"
echo "all ok"
