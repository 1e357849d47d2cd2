#!/usr/bin/env bash
# test-timeout: 240
# Topology "bridged edges" (README "Scaling out", "Topologies"): three hosts
# as network namespaces. `core` runs the core broker, the shard owners (S =
# 2: counter, aggregator, alerter, dispatcher once per shard, on the core
# broker) and the recorder of every output; hosts `a` and `b` each run an
# edge mosquitto bridged to the core with the README's bridge lines, a
# mqpipe-router on their edge (one per ingress broker), a worker on their
# edge (one member each of the core's worker group, through the bridge's
# `$share/workers/` prefix) and publishers on their own edge: a replays the
# fleet and metrics traces, b the jobs trace. Every case is done exactly
# once (one compute.done per (requestId, caseId) reaches the core, and both
# edges' workers did some), and every expected output arrives once.
source "$(dirname "$0")/lib_netns.sh"
netns_setup core a b
S=2
SAMPLES=$MQPIPE_ROOT/test/traces
SHARDED=(counter aggregator alerter dispatcher)
OUTPUTS=(success_rate job.summary dashboard.ready 'alerts/#' 'deadletter/#')
cat "$SAMPLES"/{fleet,metrics,jobs}.expected | LC_ALL=C sort >"$T/want.txt"

# bridge_conf EDGE CORE_ADDR: the bridge section of EDGE's mosquitto.conf,
# exactly as README "Topologies" gives it (the order of the `in` lines
# matters to the test only: see case_bridges).
bridge_conf() {
	cat <<EOF
# MQTT 5 bridges are refused (protocol error) when the bridging broker
# announces no limit: max_inflight_messages 0.
max_inflight_messages 1000

connection mqpipe-edge-$1
address $2:1883
bridge_protocol_version mqttv50
remote_clientid mqpipe-bridge-$1
cleansession false
notifications false
restart_timeout 1 5
# Cases: this edge is one member of the core's worker group.
topic compute.request in 1 "" \$share/workers/
# Republish requests of the owners, to the routers and workers here.
topic mqpipe/republish/# in 1
# Routed inputs and the workers' compute.done, to the owners.
topic shard/# out 1
# The routers' dead letters; every agent's status and metrics.
topic deadletter/# out 1
topic mqpipe/status/# out 1
topic mqpipe/metrics/# out 1
EOF
}

case_bridges() {
	netns_broker core "$T/core"
	CORE=$NB_URI
	local e
	for e in a b; do
		bridge_conf "$e" "${NETADDR[core]}" >"$T/bridge-$e.conf"
		netns_broker "$e" "$T/edge-$e" "$T/bridge-$e.conf"
		declare -g "EDGE_$e=$NB_URI"
	done
	# Both bridges subscribed on the core: a probe on the core reaches each
	# edge through its `in` lines (subscribed in order, so the $share one is
	# in place before the republish one carries the probe). Two levels
	# below mqpipe/republish/: no agent reads it (they take one level).
	for e in a b; do
		local sub=(mosquitto_sub -h "${NETADDR[$e]}" -p 1883 -c -i "it-probe-$e-$$" -q 1 -t 'mqpipe/republish/probe/#')
		netns_run "$e" "${sub[@]}" -E
		ip netns exec "${NETNS[$e]}" "${sub[@]}" -v >"$T/probe-$e.out" &
		PIDS+=($!)
	done
	wait_for 30 bash -c "ip netns exec ${NETNS[core]} mosquitto_pub -h ${NETADDR[core]} -p 1883 -q 1 -t mqpipe/republish/probe/x -m x;
		grep -q probe '$T/probe-a.out' && grep -q probe '$T/probe-b.out'" ||
		fail "the bridges did not come up: $(tail -3 "$T/edge-a/mosquitto.log" "$T/edge-b/mosquitto.log")"
	it_pass CORE EDGE_a EDGE_b
}
it_case edges-bridged-to-core case_bridges

case_samples() {
	netns_record core out "$CORE" "${OUTPUTS[@]}"
	local sub=(mosquitto_sub -h "${NETADDR[core]}" -p 1883 -c -i "it-done-$$" -q 1 -t 'shard/+/compute.done')
	netns_run core "${sub[@]}" -E
	ip netns exec "${NETNS[core]}" "${sub[@]}" >"$T/done.out" &
	PIDS+=($!)
	local a k e names=()
	for k in $(seq 0 $((S - 1))); do
		for a in "${SHARDED[@]}"; do
			netns_spawn core "$a-$k" "$CORE" "mqpipe-$a" --shards $S --shard "$k" -d "$T/core/$a-$k.db"
			names+=("$a-$k")
		done
	done
	for e in a b; do
		local uri=EDGE_$e
		netns_spawn "$e" "router-$e" "${!uri}" mqpipe-router --shards $S -d "$T/edge-$e/router.db"
		netns_spawn "$e" "worker-$e" "${!uri}" mqpipe-worker --shards $S -i "mqpipe-worker-$e" -d "$T/edge-$e/worker.db"
		names+=("router-$e" "worker-$e")
	done
	netns_online "${names[@]}"
	# Publishers on their own edge, into its router.
	local replays=() t
	for t in fleet metrics; do
		ip netns exec "${NETNS[a]}" "$BIN/mqpipe-replay" -b "$EDGE_a" --speed 4 "$SAMPLES/$t.jsonl" 2>"$T/replay-$t.log" &
		replays+=($!)
	done
	ip netns exec "${NETNS[b]}" "$BIN/mqpipe-replay" -b "$EDGE_b" --speed 4 "$SAMPLES/jobs.jsonl" 2>"$T/replay-jobs.log" &
	replays+=($!)
	PIDS+=("${replays[@]}")
	for t in "${replays[@]}"; do wait "$t" || fail "a replay failed: $(tail -3 "$T"/replay-*.log)"; done
	wait_outputs out "$T/want.txt" 60 || fail "missing: $(comm -23 "$T/want.txt" <(normalized out | LC_ALL=C sort -u) | head -5)"
	normalized out | LC_ALL=C sort >"$T/got.txt"
	diff "$T/want.txt" "$T/got.txt" >"$T/diff.txt" || fail "outputs differ (< expected, > got): $(head -8 "$T/diff.txt")"
	# Every case done exactly once: one compute.done per (requestId, caseId).
	jq -r '[.requestId, (.caseId | tostring), (.worker // "-")] | join(" ")' "$T/done.out" >"$T/cases.txt"
	local cases doubled
	cases=$(cut -d' ' -f1,2 "$T/cases.txt" | sort -u | wc -l)
	doubled=$(cut -d' ' -f1,2 "$T/cases.txt" | sort | uniq -d | head -3)
	[ -z "$doubled" ] || fail "cases done twice: $doubled"
	# trace-job-1 (5), trace-job-2 (40), two dashboards of six sources each.
	[ "$cases" -eq 57 ] || fail "$cases cases done, 57 expected: $(cut -d' ' -f1 "$T/cases.txt" | sort | uniq -c | tr '\n' ' ')"
	for e in a b; do
		grep -q " mqpipe-worker-$e\$" "$T/cases.txt" || fail "the worker on edge $e did no case: $(cut -d' ' -f3 "$T/cases.txt" | sort | uniq -c)"
	done
	note "cases per worker: $(cut -d' ' -f3 "$T/cases.txt" | sort | uniq -c | tr '\n' ' ')"
}
it_case samples-from-both-edges-every-case-once case_samples edges-bridged-to-core
it_cases_done
