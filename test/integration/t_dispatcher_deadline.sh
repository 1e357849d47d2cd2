#!/usr/bin/env bash
# Case deadlines (README "Case deadlines"): a job whose worker host is gone
# for good finishes within its case deadlines. Three hosts as network
# namespaces: "core" (broker, dispatcher, counter, aggregator, subscribers),
# "a" and "b" (a worker each), joined to core by veth pairs. Worker host a
# takes every case of a job and is SIGKILLed for good (every process, then its
# namespace); the broker drops its session after --session-expiry and the
# dispatcher resends the cases to b at their deadline: one summary, every case
# done once. With no worker at all, and the dispatcher SIGKILLed in between,
# a job ends with its cases marked failed after --case-attempts. A late
# compute.done changes nothing, and the dispatcher's sent cases end empty.
# With --shards 2 the owner reads its shard's compute.done and publishes a
# failed one to the job's shard.
# test-timeout: 240
source "$(dirname "$0")/lib.sh"
[ "$(id -u)" = 0 ] && ip netns list >/dev/null 2>&1 || { echo "SKIP: needs root and ip netns"; exit 0; }

NS=mqdl$$
NSC=${NS}c NSA=${NS}a NSB=${NS}b
CORE_URI=tcp://127.0.0.1:1883 A_URI=tcp://10.77.1.1:1883 B_URI=tcp://10.77.2.1:1883
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
deadline_cleanup() {
	local ns p
	it_cleanup
	for ns in "$NSA" "$NSB" "$NSC"; do # whatever is left in our namespaces is ours
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
		ip netns del "$ns" 2>/dev/null || true
	done
}
trap deadline_cleanup EXIT
inns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# Namespaces: core 10.77.1.1 <-> a 10.77.1.2, core 10.77.2.1 <-> b 10.77.2.2.
for ns in "$NSC" "$NSA" "$NSB"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
for h in a b; do
	n=$([ $h = a ] && echo 1 || echo 2) ns=$([ $h = a ] && echo "$NSA" || echo "$NSB")
	ip link add "${NS}$h" type veth peer name "${NS}c$h"
	ip link set "${NS}$h" netns "$ns"
	ip link set "${NS}c$h" netns "$NSC"
	ip -n "$ns" addr add "10.77.$n.2/24" dev "${NS}$h"
	ip -n "$NSC" addr add "10.77.$n.1/24" dev "${NS}c$h"
	ip -n "$ns" link set "${NS}$h" up
	ip -n "$NSC" link set "${NS}c$h" up
done

# The broker in core, on every address of core (only its veths reach it).
mkdir -p "$T/broker"
sed -e "s|^listener @PORT@ 127.0.0.1|listener 1883|" -e "s|@DIR@|$T/broker|" -e "s|@USER@|$(id -un)|" \
	"$MQPIPE_ROOT/broker-config/test.conf.in" >"$T/broker/mosquitto.conf"
ip netns exec "$NSC" mosquitto -c "$T/broker/mosquitto.conf" >"$T/broker/mosquitto.out" 2>&1 &
BROKER_PID=$!
wait_for 20 inns "$NSC" bash -c '(exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null' || fail "no broker"

# run_agent NS URI NAME BINARY [ARGS...]: an agent inside NS, logging to
# $T/NAME.log, online before this returns. Sets AGENT_PID.
run_agent() {
	local ns=$1 uri=$2 name=$3 bin=$4 before
	shift 4
	before=$(grep -cE 'event=online' "$T/$name.log" 2>/dev/null || true)
	ip netns exec "$ns" "$BIN/$bin" -b "$uri" "$@" 2>>"$T/$name.log" & # not inns: $! is the agent
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	wait_for 30 agent_online_after "$T/$name.log" "${before:-0}" ||
		fail "$name did not come online: $(tail -n 5 "$T/$name.log")"
}
# start_dispatcher ATTEMPTS: many while a host is lost (until the broker
# drops its session and the other host is up, a resend may go to it or to no
# one), 3 when every attempt is to fail.
start_dispatcher() {
	run_agent "$NSC" "$CORE_URI" dispatcher mqpipe-dispatcher -d "$T/dispatcher.db" \
		--case-timeout 2s --case-attempts "$1"
	DISPATCHER_PID=$AGENT_PID
}
cpub() { inns "$NSC" mosquitto_pub -p 1883 -q 1 -t "$1" -m "$2"; }
ddb() { sqlite3 -cmd ".timeout 5000" "$T/dispatcher.db" "$1"; }
summaries() { grep "^job.summary {\"requestId\":\"$1\"" "$T/out.out" | cut -d' ' -f2- || true; }
# a job.submit of N cases c1..cN, without workMs (the worker's --work-ms applies)
job_of() { jq -cn --arg r "$1" --argjson n "$2" '{requestId: $r, requests: [range(1; $n + 1) | {caseId: "c\(.)"}]}'; }

inns "$NSC" mosquitto_sub -p 1883 -i it-out -c -q 1 -t job.summary -t compute.done -t compute.request -t 'deadletter/#' -E
ip netns exec "$NSC" mosquitto_sub -p 1883 -i it-out -c -q 1 -t job.summary -t compute.done -t compute.request -t 'deadletter/#' -v >"$T/out.out" &
PIDS+=($!)
run_agent "$NSC" "$CORE_URI" counter mqpipe-counter -d "$T/counter.db"
run_agent "$NSC" "$CORE_URI" aggregator mqpipe-aggregator -d "$T/aggregator.db"
start_dispatcher 20

case_lost_host() {
	# Host a takes all 20 cases and would work on them for ten minutes.
	run_agent "$NSA" "$A_URI" worker-a mqpipe-worker -i mqpipe-worker-a -d "$T/worker-a.db" \
		--work-ms 600000 --session-expiry 1s
	cpub job.submit "$(job_of lost 20)"
	wait_for 30 bash -c "[ \"\$(sqlite3 -cmd '.timeout 2000' '$T/worker-a.db' \"SELECT count(*) FROM work_case WHERE request_id = 'lost'\" 2>/dev/null)\" = 20 ]" ||
		fail "host a did not take the cases"
	run_agent "$NSB" "$B_URI" worker-b mqpipe-worker -i mqpipe-worker-b -d "$T/worker-b.db" \
		--session-expiry 1s
	# Host a is lost for good: every process of it, then the host itself.
	local p
	for p in $(ip netns pids "$NSA"); do kill -KILL "$p"; done
	wait_for 20 bash -c "[ -z \"\$(ip netns pids '$NSA')\" ]" || fail "host a still runs"
	ip netns del "$NSA"
	note "host a killed with its 20 cases"
	wait_for 20 log_has "$T/broker/mosquitto.log" "Expiring client mqpipe-worker-a due to timeout" ||
		fail "the broker kept the lost worker's session"
	wait_for 60 bash -c "grep -q '^job.summary {\"requestId\":\"lost\"' '$T/out.out'" ||
		fail "no summary for the job of the lost host: $(tail -n 3 "$T/dispatcher.log")"
	summaries lost >"$T/lost.summary"
	[ "$(jq -r '[.cases, (.results | length), (.results | map(.caseId) | unique | length),
		(.results | map(select(.result.status == "success")) | length)] | join(" ")' "$T/lost.summary")" = "20 20 20 20" ] ||
		fail "summary: $(cat "$T/lost.summary")"
	[ "$(grep -c '^compute.done {"requestId":"lost"' "$T/out.out")" -eq 20 ] ||
		fail "cases done more than once: $(grep -c '^compute.done {"requestId":"lost"' "$T/out.out")"
	log_has "$T/dispatcher.log" 'event=cases_expired resent=' || fail "no resend logged"
}
it_case lost-worker-host-job-finishes case_lost_host

case_every_attempt_fails() { # no worker at all, and the dispatcher SIGKILLed meanwhile
	local p
	for p in $(ip netns pids "$NSB"); do kill -KILL "$p"; done
	wait_for 20 log_has "$T/broker/mosquitto.log" "Expiring client mqpipe-worker-b due to timeout" ||
		fail "the broker kept worker b's session"
	cpub job.submit '{"requestId":"doomed","requests":[{"caseId":"x"},{"caseId":7}]}'
	wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 2000' '$T/dispatcher.db' \"SELECT count(*) FROM sent_case WHERE request_id = 'doomed'\")\" = 2 ]" ||
		fail "the cases were not sent"
	stop_pid "$DISPATCHER_PID" KILL
	start_dispatcher 3
	it_pass DISPATCHER_PID
	wait_for 60 bash -c "grep -q '^job.summary {\"requestId\":\"doomed\"' '$T/out.out'" ||
		fail "no summary for the job no worker finished: $(tail -n 3 "$T/dispatcher.log")"
	summaries doomed >"$T/doomed.summary"
	[ "$(jq -c '[.results[] | [.caseId, .result.status, .result.error]]' "$T/doomed.summary")" = \
		'[["x","failed","no worker finished the case within 3 attempts"],[7,"failed","no worker finished the case within 3 attempts"]]' ] ||
		fail "summary: $(cat "$T/doomed.summary")"
	[ "$(grep -c '^compute.request {"requestId":"doomed"' "$T/out.out")" -ge 6 ] ||
		fail "not sent 3 times each: $(grep '^compute.request {"requestId":"doomed"' "$T/out.out")"
	grep '^compute.done {"requestId":"doomed"' "$T/out.out" | cut -d' ' -f2- |
		"$MQPIPE_ROOT/scripts/schemas" validate compute.done || fail "failed compute.done schema"
	"$MQPIPE_ROOT/scripts/schemas" validate job.summary <"$T/doomed.summary" ||
		fail "job.summary schema"
}
it_case every-attempt-fails-case-marked-failed case_every_attempt_fails lost-worker-host-job-finishes

case_late_done() { # the lost worker's late compute.done, then a job to mark the stream's point
	cpub compute.done '{"requestId":"lost","caseId":"c1","processingMs":600000,"result":{"status":"success","late":true},"worker":"mqpipe-worker-a"}'
	cpub compute.done '{"requestId":"doomed","caseId":"x","processingMs":5,"result":{"status":"success"},"worker":"mqpipe-worker-a"}'
	run_agent "$NSB" "$B_URI" worker-b mqpipe-worker -i mqpipe-worker-b -d "$T/worker-b.db" \
		--session-expiry 1s
	cpub job.submit "$(job_of marker 1)"
	wait_for 30 bash -c "grep -q '^job.summary {\"requestId\":\"marker\"' '$T/out.out'" || fail "no marker summary"
	summaries lost | cmp -s - "$T/lost.summary" || fail "lost summary changed or came again: $(summaries lost)"
	summaries doomed | cmp -s - "$T/doomed.summary" || fail "doomed summary changed or came again: $(summaries doomed)"
}
it_case late-compute-done-changes-nothing case_late_done every-attempt-fails-case-marked-failed

case_state_empty() {
	wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 2000' '$T/dispatcher.db' 'SELECT count(*) FROM sent_case')\" = 0 ]" ||
		fail "sent cases left: $(ddb 'SELECT request_id, case_id, attempt FROM sent_case LIMIT 5')"
	! grep -q '^deadletter/' "$T/out.out" || fail "dead letters: $(grep '^deadletter/' "$T/out.out")"
}
it_case sent-cases-end-empty case_state_empty late-compute-done-changes-nothing

case_sharded() { # S = 2: the owner reads shard/<K>/compute.done and fails to the job's shard
	local k
	k=$("$BIN/mqpipe-shard" --shards 2 sj)
	inns "$NSC" mosquitto_sub -p 1883 -i it-s2 -c -q 1 -t 's2/#' -E
	ip netns exec "$NSC" mosquitto_sub -p 1883 -i it-s2 -c -q 1 -t 's2/#' -v >"$T/s2.out" &
	PIDS+=($!)
	run_agent "$NSC" "$CORE_URI" d2 mqpipe-dispatcher -p s2 --shards 2 --shard "$k" -d "$T/d2.db" \
		--case-timeout 3s --case-attempts 2
	cpub "s2/shard/$k/job.submit" '{"requestId":"sj","requests":[{"caseId":"a"},{"caseId":"b"}]}'
	wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 2000' '$T/d2.db' 'SELECT count(*) FROM sent_case')\" = 2 ]" ||
		fail "not sent: $(cat "$T/s2.out")"
	cpub "s2/shard/$k/compute.done" '{"requestId":"sj","caseId":"a","processingMs":1,"result":{"status":"success"}}'
	wait_for 20 bash -c "grep -q '^s2/shard/$k/compute.done {\"requestId\":\"sj\",\"caseId\":\"b\"' '$T/s2.out'" ||
		fail "no failed compute.done on the job's shard: $(cat "$T/s2.out")"
	grep "^s2/shard/$k/compute.done {\"requestId\":\"sj\",\"caseId\":\"b\"" "$T/s2.out" | grep -q 'within 2 attempts' ||
		fail "failed compute.done: $(cat "$T/s2.out")"
	[ "$(grep -c '^s2/compute.request {"requestId":"sj","caseId":"b"' "$T/s2.out")" -eq 2 ] ||
		fail "case b not sent twice: $(cat "$T/s2.out")"
	[ "$(grep -c '^s2/shard/[0-9]*/compute.done {"requestId":"sj","caseId":"a"' "$T/s2.out")" -eq 1 ] ||
		fail "case a failed though done: $(cat "$T/s2.out")"
	wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 2000' '$T/d2.db' 'SELECT count(*) FROM sent_case')\" = 0 ]" ||
		fail "sent cases left"
}
it_case sharded-owner-reads-its-shard case_sharded

case_flags() {
	local rc=0
	"$BIN/mqpipe-dispatcher" --help | grep -q -- '--case-timeout DURATION' || fail "--case-timeout not in --help"
	"$BIN/mqpipe-dispatcher" --help | grep -q -- '--case-attempts N' || fail "--case-attempts not in --help"
	"$BIN/mqpipe-worker" --help | grep -q -- '--session-expiry DURATION' || fail "--session-expiry not in --help"
	"$BIN/mqpipe-dispatcher" --case-timeout 0 2>/dev/null || rc=$?
	[ "$rc" -eq 64 ] || fail "--case-timeout 0: exit $rc"
	rc=0
	"$BIN/mqpipe-dispatcher" --case-attempts 0 2>/dev/null || rc=$?
	[ "$rc" -eq 64 ] || fail "--case-attempts 0: exit $rc"
	rc=0
	"$BIN/mqpipe-worker" --session-expiry soon 2>/dev/null || rc=$?
	[ "$rc" -eq 64 ] || fail "--session-expiry soon: exit $rc"
}
it_case flags-documented-and-checked case_flags

it_cases_done
