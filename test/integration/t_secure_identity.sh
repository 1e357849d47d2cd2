#!/usr/bin/env bash
# Identities the broker enforces (README "Security"): on the secure profile an
# attacker holding only the publisher's password, asking for the counter's
# client id, can neither resume the stopped counter's session (a), wipe it
# with an MQTT 3.1.1 clean session (b), take the running counter's connection
# over during a stream (c), nor forge its retained status (d); and joining the
# workers' shared group is refused with a SUBACK failure, so two jobs still
# finish (e); the reader's password does no better (f). Measured by what the
# counter stored, what a reader receives, and job.summary. MQPIPE_SECURE
# names another profile directory to try the same attacks on (default
# broker-config/secure).
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
PROFILE=${MQPIPE_SECURE:-$MQPIPE_ROOT/broker-config/secure}
SEC=$T/broker
# Each concurrent client needs an identity of its own (one connection each):
# a feeder besides the attacker's publisher, two watchers besides the reader.
"$PROFILE/setup" "$SEC" --user mqpipe-feeder:publisher --user mqpipe-watch-1:reader \
	--user mqpipe-watch-2:reader >/dev/null || fail "setup"
broker_start "$SEC" "$PROFILE/test.conf.in" || fail "cannot start the secure broker"
note "secure broker on $BROKER_URI"
TLS=(-h 127.0.0.1 -p "$BROKER_PORT" --cafile "$SEC/ca.crt")
cred() { echo "-u $1 -P $(cat "$SEC/$1.password")"; }
# shellcheck disable=SC2207
ATTACKER=($(cred mqpipe-publisher)) FEEDER=($(cred mqpipe-feeder)) READER=($(cred mqpipe-reader))
# shellcheck disable=SC2207
WATCH1=($(cred mqpipe-watch-1)) WATCH2=($(cred mqpipe-watch-2))
agent() { # agent NAME BINARY [ARGS...]: an agent on its own identity
	local name=$1 bin=$2
	shift 2
	start_agent "$name" "$bin" -d "$T/$name.db" --cafile "$SEC/ca.crt" -u "$bin" \
		--password-file "$SEC/$bin.password" "$@"
}
count() { db "SELECT count(*) FROM recv_message WHERE module = '$1'"; }
events() { # events MODULE N: N recv_message lines for MODULE
	seq 1 "$2" | awk -v m="$1" '{ printf "{\"moduleId\":\"%s\",\"timestamp\":%d}\n", m, $1 }'
}
feed() { # feed MODULE N: the feeder publishes them at QoS 1
	events "$1" "$2" | mosquitto_pub "${TLS[@]}" "${FEEDER[@]}" -q 1 -t recv_message -l ||
		fail "the feeder could not publish"
}
has_count() { [ "$(count "$1")" -eq "$2" ]; }

agent counter mqpipe-counter
COUNTER_PID=$AGENT_PID
counter_connects() { grep -c "event=connected" "$T/counter.log" || true; }

case_a() { # hijack while down: the attacker resumes the counter's session
	it_pass COUNTER_PID
	stop_pid "$COUNTER_PID"
	feed hijack 50
	# A persistent 3.1.1 session under the counter's id: it would be handed the
	# queued events (and the ACL would drop them).
	mosquitto_sub "${TLS[@]}" "${ATTACKER[@]}" -i mqpipe-counter -c -q 1 -t recv_message -W 3 \
		>"$T/attack-a.out" 2>&1 || true
	agent counter mqpipe-counter
	COUNTER_PID=$AGENT_PID
	wait_for 30 has_count hijack 50 || fail "(a) the counter stored $(count hijack) of 50 events"
	! grep -q hijack "$T/attack-a.out" || fail "(a) the attacker read an event: $(head -2 "$T/attack-a.out")"
}
it_case a-hijack-while-down case_a

case_b() { # wipe by clean session: one MQTT 3.1.1 clean connect as the counter
	it_pass COUNTER_PID
	stop_pid "$COUNTER_PID"
	feed wipe 50
	mosquitto_pub "${TLS[@]}" "${ATTACKER[@]}" -V mqttv311 -i mqpipe-counter -q 1 -t attack/b -m x \
		>"$T/attack-b.out" 2>&1 || true
	agent counter mqpipe-counter
	COUNTER_PID=$AGENT_PID
	wait_for 30 has_count wipe 50 || fail "(b) the counter stored $(count wipe) of 50 events"
}
it_case b-wipe-by-clean-session case_b

case_c() { # live takeover: five connects as the counter during a 400-event stream
	local before stream i
	before=$(counter_connects)
	events stream 400 | while read -r line; do echo "$line"; sleep 0.01; done |
		mosquitto_pub "${TLS[@]}" "${FEEDER[@]}" -q 1 -t recv_message -l &
	stream=$!
	for i in 1 2 3 4 5; do
		sleep 0.4
		mosquitto_sub "${TLS[@]}" "${ATTACKER[@]}" -V 5 -i mqpipe-counter -q 1 -t recv_message -W 1 \
			>>"$T/attack-c.out" 2>&1 || true
	done
	wait "$stream" || fail "(c) the stream could not be published"
	wait_for 60 has_count stream 400 || fail "(c) the counter stored $(count stream) of 400 events"
	[ "$(counter_connects)" -eq "$before" ] ||
		fail "(c) the counter's connection was taken over: $(grep -E 'event=(connected|connection_lost)' "$T/counter.log" | tail -4)"
	proc_alive "$COUNTER_PID" || fail "(c) the counter died"
}
it_case c-live-takeover case_c

case_d() { # status spoof: a retained offline for the counter
	mosquitto_sub "${TLS[@]}" "${WATCH1[@]}" -i mqpipe-watch-1 -c -q 1 -t mqpipe/status/mqpipe-counter -E ||
		fail "(d) the reader cannot subscribe"
	mosquitto_sub "${TLS[@]}" "${WATCH1[@]}" -i mqpipe-watch-1 -c -q 1 -t mqpipe/status/mqpipe-counter \
		>"$T/status.out" 2>&1 &
	PIDS+=("$!")
	wait_for 20 grep -q '"online"' "$T/status.out" || fail "(d) no status: $(cat "$T/status.out")"
	local forged='{"agent":"counter","state":"offline","pid":1,"version":"forged"}' id
	for id in mqpipe-counter attacker; do
		mosquitto_pub "${TLS[@]}" "${ATTACKER[@]}" -V 5 -i "$id" -r -q 1 -t mqpipe/status/mqpipe-counter \
			-m "$forged" >>"$T/attack-d.out" 2>&1 || true
	done
	# What a reader sees afterwards, and what it saw meanwhile: the real status.
	sleep 2
	mosquitto_sub "${TLS[@]}" "${READER[@]}" -q 1 -t mqpipe/status/mqpipe-counter -C 1 -W 10 \
		>"$T/status-now.out" || fail "(d) no retained status"
	! grep -q forged "$T/status.out" "$T/status-now.out" ||
		fail "(d) the reader saw the forged status: $(grep -h forged "$T/status.out" "$T/status-now.out" | head -1)"
	[ "$(jq -r .state "$T/status-now.out")" = online ] && [ "$(jq -r .pid "$T/status-now.out")" = "$COUNTER_PID" ] ||
		fail "(d) the retained status is not the counter's: $(cat "$T/status-now.out")"
}
it_case d-status-spoof case_d

job() { # job ID: a job of 20 cases
	seq 1 20 | jq -nc --arg id "$1" '{requestId: $id, requests: [inputs | {caseId: ., workMs: 5}]}' |
		mosquitto_pub "${TLS[@]}" "${FEEDER[@]}" -q 1 -t job.submit -s || fail "(e) cannot submit $1"
}
summary_of() { grep -q "\"requestId\":\"$1\"" "$T/summary.out"; }
case_e1() { # shared-group join: the attacker subscribes to $share/workers/compute.request
	agent dispatcher mqpipe-dispatcher
	agent aggregator mqpipe-aggregator
	start_agent worker mqpipe-worker -d "$T/worker.db" --cafile "$SEC/ca.crt" -u mqpipe-worker-1 \
		--password-file "$SEC/mqpipe-worker-1.password" --latency-scale 0.1
	mosquitto_sub "${TLS[@]}" "${WATCH2[@]}" -i mqpipe-watch-2 -c -q 1 -t job.summary -E || fail "(e) the reader cannot subscribe"
	mosquitto_sub "${TLS[@]}" "${WATCH2[@]}" -i mqpipe-watch-2 -c -q 1 -t job.summary >"$T/summary.out" 2>&1 &
	PIDS+=("$!")
	# A persistent session in the group, connected while the first job runs.
	local attacker
	mosquitto_sub "${TLS[@]}" "${ATTACKER[@]}" -i attacker-e -c -q 1 -t '$share/workers/compute.request' -W 8 \
		>"$T/attack-e.out" 2>&1 &
	attacker=$!
	sleep 1
	job attack-job-1
	wait_for 60 summary_of attack-job-1 || fail "(e) the first job did not finish: $(tail -2 "$T/worker.log")"
	wait "$attacker" || true
	grep -q "denied" "$T/attack-e.out" || fail "(e) the subscription was not refused: $(cat "$T/attack-e.out")"
}
it_case e-shared-group-join-refused case_e1
case_e2() { # so two jobs still finish, whole
	job attack-job-2
	wait_for 60 summary_of attack-job-2 || fail "(e) the second job did not finish"
	[ "$(jq -s 'map(select(.requestId == "attack-job-1")) | .[0].results | length' "$T/summary.out")" -eq 20 ] ||
		fail "(e) the first job's summary lacks cases: $(head -c 300 "$T/summary.out")"
}
it_case e-jobs-still-finish-whole case_e2 e-shared-group-join-refused

case_f() { # the reader's password does no better against the stopped counter
	stop_pid "$COUNTER_PID"
	feed by-reader 30
	mosquitto_sub "${TLS[@]}" "${READER[@]}" -i mqpipe-counter -c -q 1 -t recv_message -W 2 >"$T/attack-f.out" 2>&1 || true
	mosquitto_pub "${TLS[@]}" "${READER[@]}" -V mqttv311 -i mqpipe-counter -q 1 -t attack/f -m x >>"$T/attack-f.out" 2>&1 || true
	mosquitto_pub "${TLS[@]}" "${READER[@]}" -V 5 -i mqpipe-counter -r -q 1 -t mqpipe/status/mqpipe-counter \
		-m '{"agent":"counter","state":"offline","pid":1,"version":"forged-by-reader"}' >>"$T/attack-f.out" 2>&1 || true
	agent counter mqpipe-counter
	wait_for 30 has_count by-reader 30 || fail "(f) the counter stored $(count by-reader) of 30 events"
	! grep -q forged "$T/status.out" || fail "(f) the reader saw a forged status: $(grep forged "$T/status.out" | head -1)"
}
it_case f-reader-password-no-better case_f d-status-spoof
it_cases_done
