#!/usr/bin/env bash
# Dashboard fan-in: a dashboard.request fans out to the six sources (worker
# latencies from a profile file) and comes back as one dashboard.ready in
# each of the aggregator's modes. Only facts that hold by construction are
# asserted, so the test is safe on a slow machine: classic pays its start-up
# after the trigger, future merges the five fast inputs before the slow one
# lands, every mode checkpoints inputs as they arrive.
source "$(dirname "$0")/lib.sh"
it_setup
subscribe ready dashboard.ready
# external_market is the slow branch: 1000 ms, the others 10-50 ms.
echo '{"sales":[10,10],"inventory":[20,20],"marketing":[30,30],"weather":[40,40],
       "competitor_pricing":[50,50],"external_market":[1000,1000]}' >"$T/profile.json"
start_agent dispatcher mqpipe-dispatcher -d "$T/dispatcher.db"
start_counter
start_agent worker mqpipe-worker -i it-w -d "$T/w.db" --profile "$T/profile.json"
AGG_PID=

ready_of() { grep "^dashboard.ready {\"request_id\":\"$1\"," "$T/ready.out" | cut -d' ' -f2- || true; }

for mode in classic eager future; do
	note "$mode"
	[ -n "$AGG_PID" ] && stop_pid "$AGG_PID" TERM
	start_agent "agg-$mode" mqpipe-aggregator -d "$T/aggregator.db" --mode "$mode" --setup-ms 200 --poll-ms 25
	AGG_PID=$AGENT_PID
	pub dashboard.request "{\"request_id\":\"d-$mode\",\"time_range\":\"7d\"}"
	# Inputs are checkpointed as they arrive, whatever the mode.
	wait_for 20 bash -c "[ \$(sqlite3 '$T/aggregator.db' \"SELECT count(*) FROM agg_input WHERE request_id='d-$mode'\") -eq 5 ]" ||
		fail "$mode: the five fast inputs were not checkpointed"
	wait_for 30 bash -c "grep -q '\"request_id\":\"d-$mode\"' '$T/ready.out'" ||
		fail "$mode: no dashboard.ready: $(tail -n 3 "$T/agg-$mode.log")"
	ready_of "d-$mode" | "$MQPIPE_ROOT/scripts/schemas" validate dashboard.ready || fail "$mode: schema"
	got=$(ready_of "d-$mode" | jq -c '[.mode, .total_inputs, .dashboard_type, .time_range, (.sources | keys | length),
		.sources.sales.time_range]')
	[ "$got" = "[\"$mode\",6,\"executive\",\"7d\",6,\"7d\"]" ] || fail "$mode: $got"
	e2e=$(ready_of "d-$mode" | jq .e2e_ms)
	pre=$(ready_of "d-$mode" | jq .pre_resolved)
	note "$mode: e2e_ms=$e2e pre_resolved=$pre"
	[ "$e2e" -ge 1000 ] || fail "$mode: e2e $e2e is shorter than the slowest branch"
	case $mode in
	classic) [ "$e2e" -ge 1200 ] && [ "$pre" -eq 0 ] || fail "classic did not pay its start-up after the trigger" ;;
	eager) [ "$pre" -eq 0 ] || fail "eager merged early" ;;
	future) [ "$pre" -eq 5 ] || fail "future did not merge the fast inputs early" ;;
	esac
	log_has "$T/agg-$mode.log" "event=async_inputs_retrieved .*request_id=d-$mode pre_resolved=$pre total_inputs=6" ||
		fail "$mode: no async_inputs_retrieved line"
done
for s in sales inventory marketing external_market weather competitor_pricing; do
	log_has "$T/worker.log" "event=function_complete function=$s request_id=d-future .*status=success" ||
		fail "no function_complete line for $s"
done
[ "$(sqlite3 "$T/aggregator.db" "SELECT count(*) FROM agg_input")" -eq 0 ] || fail "checkpoints left"
echo "ok"
