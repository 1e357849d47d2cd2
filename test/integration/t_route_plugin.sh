#!/usr/bin/env bash
# Routing inside mosquitto (README "Routing inside mosquitto"): with
# mqpipe_route.so loaded, the broker itself puts each input published on a
# plain topic on its shard's topic too. The sample traces, published plain
# with no mqpipe-router running, give every expected output from four shards
# of every sharded agent; one publisher's inputs reach their shard in the
# order sent; an input without its key is a dead letter like the router's;
# --prefix is honoured; a wrong option stops the broker from starting.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
TRACES=$MQPIPE_ROOT/scripts/traces
SAMPLES=$MQPIPE_ROOT/test/traces
if ! broker_route_template "$T" 4 p; then
	[ ! -f /usr/include/mosquitto_plugin.h ] || fail "mosquitto-dev is installed but $BIN/../lib has no mqpipe_route.so"
	echo "SKIP: no mqpipe_route.so beside $BIN (mosquitto-dev was missing at build time)"
	exit 0
fi
broker_start "$T/broker" "$T/route.conf.in" || fail "cannot start mosquitto with mqpipe_route.so"
note "broker with mqpipe_route.so (4 shards, prefix p) on $BROKER_URI"

case_traces() {
	"$TRACES" run --fast --shards 4 --route-in-broker "$SAMPLES"/*.jsonl >"$T/traces.out" 2>&1 ||
		fail "the samples routed by the broker into 4 shards: $(tail -15 "$T/traces.out")"
	grep -q "outputs as expected" "$T/traces.out" || fail "$(tail -5 "$T/traces.out")"
}
it_case samples-routed-by-the-broker-give-expected-outputs case_traces

case_order() { # one publisher's 500 inputs for one key: on its shard, in order
	local key=m-1 k
	k=$("$BIN/mqpipe-shard" --shards 4 $key)
	subscribe order "p/shard/$k/recv_message"
	seq 1 500 | sed "s/.*/{\"moduleId\":\"$key\",\"timestamp\":&}/" >"$T/order.in"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t p/recv_message -l <"$T/order.in" || fail "publish"
	wait_for 30 bash -c "[ \$(wc -l <'$T/order.out') -ge 500 ]" || fail "$(wc -l <"$T/order.out") of 500 on shard/$k"
	sed 's/^[^ ]* //' "$T/order.out" | head -500 >"$T/order.got"
	cmp -s "$T/order.in" "$T/order.got" || fail "not in order: $(diff "$T/order.in" "$T/order.got" | head -4)"
}
it_case a-publishers-inputs-reach-their-shard-in-order case_order

case_keyless() { # as mqpipe-router: a dead letter naming the field, no shard copy
	subscribe keyless 'p/deadletter/#' 'p/shard/+/weekly_diagnostic'
	pub p/weekly_diagnostic '{"timestamp":5,"attempts":1}'
	wait_for 20 log_has "$T/keyless.out" '"agent":"router"' || fail "no dead letter: $(cat "$T/keyless.out")"
	grep -q '^p/deadletter/weekly_diagnostic .*"reason":"[^"]*moduleId' "$T/keyless.out" ||
		fail "the dead letter: $(cat "$T/keyless.out")"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t p/recv_message -n || fail "the broker refused an empty payload"
	wait_for 20 log_has "$T/keyless.out" '^p/deadletter/recv_message .*"reason":"empty payload' ||
		fail "no dead letter for an empty payload: $(cat "$T/keyless.out")"
	! grep -q '^p/shard/' "$T/keyless.out" || fail "a keyless input was routed: $(cat "$T/keyless.out")"
	port_in_use "$BROKER_PORT" || fail "the broker is gone: $(tail -3 "$T/broker/mosquitto.out")"
}
it_case input-without-its-key-is-a-dead-letter case_keyless

case_prefix() { # only P/<input> is routed; outputs and other prefixes pass as they are
	subscribe prefix '#'
	pub recv_message '{"moduleId":"m-1","timestamp":1}'
	pub q/recv_message '{"moduleId":"m-1","timestamp":1}'
	pub p/success_rate '{"moduleid":"m-1","timestamp":1,"success_rate":100}'
	pub p/metrics/cpu.load '{"value":1}'
	wait_for 20 log_has "$T/prefix.out" '^p/shard/[0-3]/metrics/cpu.load ' || fail "metrics not routed: $(cat "$T/prefix.out")"
	[ "$(grep -c '^p/shard/\|shard/' "$T/prefix.out")" -eq 1 ] || fail "routed more than p/metrics: $(cat "$T/prefix.out")"
}
it_case only-the-prefixs-inputs-are-routed case_prefix

case_bad_options() { # the broker does not start, and says which option
	local o d rc
	for o in "plugin_opt_shards 1" "plugin_opt_shards x" "plugin_opt_shard 4" "plugin_opt_prefix a/#"; do
		d=$T/bad-${o// /-}
		mkdir -p "$d"
		sed -e "/^plugin_opt_/d" -e "s|@PORT@|$(free_port)|" -e "s|@DIR@|$d|" -e "s|@USER@|$(id -un)|" \
			"$T/route.conf.in" >"$d/mosquitto.conf"
		[ "$o" = "plugin_opt_prefix a/#" ] && echo "plugin_opt_shards 4" >>"$d/mosquitto.conf"
		echo "$o" >>"$d/mosquitto.conf"
		rc=0
		timeout 20 bash -c "source '$MQPIPE_ROOT/scripts/lib/broker.sh'; broker__mosquitto '$d'" >"$d/out" 2>&1 || rc=$?
		[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "$o: mosquitto started (exit $rc)"
		grep -q "mqpipe_route: .*${o%% *}" "$d/mosquitto.log" "$d/out" ||
			fail "$o: no reason: $(cat "$d/mosquitto.log" "$d/out" | tail -3)"
	done
}
it_case a-wrong-option-stops-the-broker-with-its-reason case_bad_options
it_cases_done
