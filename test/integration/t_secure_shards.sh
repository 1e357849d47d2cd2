#!/usr/bin/env bash
# test-timeout: 240
# The secure profile with two shards (README "Security", "Scaling out"):
# setup --shards 2 makes an identity per shard instance and the router; every
# instance and the router, each under its own identity, runs the sample
# traces (published plain by a publisher identity, through the router) to
# their expected outputs, with no publish or subscription of theirs refused;
# a publisher sharding its own events may publish on a shard topic; an
# instance's identity cannot publish another agent's inputs.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
SEC=$T/broker
S=2
"$MQPIPE_ROOT/broker-config/secure/setup" "$SEC" --shards $S --workers 1 --user mqpipe-recorder:reader \
	--user mqpipe-replay-1:publisher --user mqpipe-replay-2:publisher \
	--user mqpipe-replay-3:publisher --user mqpipe-replay-4:publisher >/dev/null || fail "setup"
broker_start "$SEC" "$MQPIPE_ROOT/broker-config/secure/test.conf.in" || fail "cannot start the secure broker"
TLS=(-h 127.0.0.1 -p "$BROKER_PORT" --cafile "$SEC/ca.crt")
pw() { cat "$SEC/$1.password"; }

case_identities() {
	local a k
	for a in counter dispatcher aggregator alerter; do
		for k in 0 1; do
			grep -qx "mqpipe-$a-$k $a" "$SEC/identities" || fail "no identity mqpipe-$a-$k: $(cat "$SEC/identities")"
		done
	done
	grep -qx "mqpipe-router router" "$SEC/identities" || fail "no identity mqpipe-router"
	! grep -q '^mqpipe-counter-2 ' "$SEC/identities" || fail "an identity for a shard beyond S"
}
it_case setup-shards-makes-instance-identities case_identities

"$BIN/mqpipe-record" -b "$BROKER_URI" --cafile "$SEC/ca.crt" -u mqpipe-recorder --password-file "$SEC/mqpipe-recorder.password" \
	-t success_rate -t job.summary -t dashboard.ready -t 'alerts/#' -t 'deadletter/#' -t 'replies/#' \
	-o "$T/out.jsonl" 2>"$T/rec.err" &
PIDS+=("$!")
wait_for 20 log_has "$T/rec.err" recording || fail "recorder: $(cat "$T/rec.err")"

# Each process under its identity, as the template units' drop-ins set it:
# the user name is the client id, mqpipe-<agent>-<K>.
as_id() { # as_id NAME: the credential flags of an agent
	echo "--cafile $SEC/ca.crt -u $1 --password-file $SEC/$1.password"
}
for a in counter dispatcher aggregator alerter; do
	for k in 0 1; do
		# shellcheck disable=SC2046
		start_agent "$a-$k" "mqpipe-$a" --shards $S --shard $k -d "$T/$a-$k.db" $(as_id "mqpipe-$a-$k")
	done
done
# shellcheck disable=SC2046
start_agent router mqpipe-router --shards $S -d "$T/router.db" $(as_id mqpipe-router)
# shellcheck disable=SC2046
start_agent worker mqpipe-worker --shards $S -d "$T/worker.db" $(as_id mqpipe-worker-1)
# shellcheck disable=SC2046
start_agent ingest mqpipe-ingest -d "$T/ingest.db" $(as_id mqpipe-ingest)
note "8 shard instances, the router, a worker and ingest online on the secure broker"

case_client_ids() {
	log_has "$T/counter-1.log" "event=online .*client_id=mqpipe-counter-1 " ||
		fail "the instance's client id: $(grep event=online "$T/counter-1.log")"
}
it_case instance-client-id-is-its-identity case_client_ids

case_sample_traces() { # published plain, through the router: their expected outputs
	secure_sample_traces "$SEC"
}
it_case sample-traces-through-router-give-expected-outputs case_sample_traces
case_nothing_refused() {
	! grep -l "event=publish_refused\|event=subscribe_refused" "$T"/*.log ||
		fail "the broker refused an instance: $(grep -h "event=publish_refused\|event=subscribe_refused" "$T"/*.log | head -3)"
}
it_case instances-publishes-and-subscriptions-not-refused case_nothing_refused

case_publisher_shards_itself() { # a shard topic is an input a publisher may use
	local key=self-sharded k
	k=$("$BIN/mqpipe-shard" --shards $S "$key")
	mosquitto_pub "${TLS[@]}" -u mqpipe-replay-1 -P "$(pw mqpipe-replay-1)" -V 5 -q 1 -t "shard/$k/weekly_diagnostic" \
		-m "{\"moduleid\":\"$key\",\"timestamp\":100,\"attempts\":1}" >"$T/self.out" 2>&1 ||
		fail "the publisher could not publish on shard/$k/: $(cat "$T/self.out")"
	! grep -qi "not authori[sz]ed" "$T/self.out" || fail "the publisher was refused shard/$k/: $(cat "$T/self.out")"
	wait_for 20 grep -q "$key" "$T/out.jsonl" || fail "no success_rate for the self-sharded event: $(tail -3 "$T/counter-$k.log")"
}
it_case publisher-may-publish-on-shard-topics case_publisher_shards_itself
case_instance_not_publisher() { # an instance's identity cannot publish a plain input
	mosquitto_pub "${TLS[@]}" -u mqpipe-worker-1 -P "$(pw mqpipe-worker-1)" -V 5 -q 1 -t shard/0/recv_message \
		-m '{"moduleId":"forged","timestamp":1}' >"$T/forge.out" 2>&1 || true
	grep -qi "not authori[sz]ed" "$T/forge.out" || fail "a worker published on shard/0/recv_message: $(cat "$T/forge.out")"
}
it_case worker-cannot-publish-shard-inputs case_instance_not_publisher
it_cases_done
