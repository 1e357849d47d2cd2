#!/usr/bin/env bash
# The dispatcher: job.accepted, then one compute.request per case in
# submission order; idempotent resubmits; conflicts and bad jobs dead-lettered;
# dashboard requests expanded into six sources; a SIGKILL in the middle of a
# large fan-out resumes without losing a case; and, with the counter and a
# shell stand-in for workers on $share/workers/compute.request, a job fans
# out and back in to one aggregate.trigger; sent jobs are forgotten after
# --retain-jobs.
source "$(dirname "$0")/lib.sh"
it_setup
start_agent dispatcher mqpipe-dispatcher -d "$T/dispatcher.db"
DISPATCHER_PID=$AGENT_PID
subscribe out job.accepted compute.request
subscribe dl 'deadletter/#'

case_job_of_three() {
	pub job.submit '{"requestId":"r3","requests":[{"caseId":"a","workMs":5},{"caseId":2},{"caseId":"c","x":[1]}],"length":"3"}'
	wait_for 20 bash -c "[ \$(grep -c '\"requestId\":\"r3\"' '$T/out.out') -ge 4 ]" || fail "r3: $(cat "$T/out.out")"
	grep '"requestId":"r3"' "$T/out.out" >"$T/r3.txt"
	[ "$(sed -n 1p "$T/r3.txt")" = 'job.accepted {"requestId":"r3","target":3,"kind":"job","acceptedAt":'"$(sed -n 1p "$T/r3.txt" | sed 's/.*"acceptedAt":\([0-9]*\)}/\1/')"'}' ] ||
		fail "job.accepted not first: $(cat "$T/r3.txt")"
	[ "$(sed -n 2,4p "$T/r3.txt")" = 'compute.request {"requestId":"r3","caseId":"a","index":0,"case":{"caseId":"a","workMs":5}}
compute.request {"requestId":"r3","caseId":2,"index":1,"case":{"caseId":2}}
compute.request {"requestId":"r3","caseId":"c","index":2,"case":{"caseId":"c","x":[1]}}' ] || fail "r3 cases: $(cat "$T/r3.txt")"
}
it_case job-accepted-then-cases-in-order case_job_of_three

# A job of 0 cases, a resubmit, a conflict, bad jobs.
pub job.submit '{"requestId":"r0","requests":[]}'
pub job.submit '{ "requestId" : "r3", "requests" : [{"caseId":"a","workMs":5},{"caseId":2},{"caseId":"c","x":[1]}], "length":"3" }'
pub job.submit '{"requestId":"r3","requests":[{"caseId":"a"}]}'
pub job.submit '{"requestId":"dup","requests":[{"caseId":1},{"caseId":1}]}'
pub job.submit '{"requestId":"len","requests":[{"caseId":1}],"length":2}'
case_bad_jobs() {
	wait_for 20 bash -c "[ \$(wc -l <'$T/dl.out') -ge 3 ]" || fail "dead letters: $(cat "$T/dl.out")"
}
it_case bad-jobs-dead-lettered case_bad_jobs
case_conflict() {
	grep -q "accepted before with other content" "$T/dl.out" || fail "no conflict dead letter"
}
it_case conflicting-resubmit-dead-lettered case_conflict bad-jobs-dead-lettered
case_duplicate_case() {
	grep -q "appears more than once" "$T/dl.out" || fail "no duplicate-caseId dead letter"
}
it_case duplicate-caseid-dead-lettered case_duplicate_case bad-jobs-dead-lettered
case_length() {
	grep -q "'length' is 2 but there are 1 requests" "$T/dl.out" || fail "no length dead letter"
}
it_case length-mismatch-dead-lettered case_length bad-jobs-dead-lettered
case_zero_cases() {
	grep -q '^job.accepted {"requestId":"r0","target":0,' "$T/out.out" || fail "no job.accepted for r0"
	[ "$(grep -c '"requestId":"r0"' "$T/out.out")" -eq 1 ] || fail "r0 sent compute requests"
}
it_case zero-case-job-accepted-without-requests case_zero_cases bad-jobs-dead-lettered
case_resubmit() {
	[ "$(grep -c '"requestId":"r3"' "$T/out.out")" -eq 4 ] || fail "the resubmit was dispatched again"
}
it_case identical-resubmit-not-dispatched-again case_resubmit bad-jobs-dead-lettered job-accepted-then-cases-in-order

case_dashboard() {
	pub dashboard.request '{"request_id":"d1","time_range":"7d"}'
	wait_for 20 bash -c "[ \$(grep -c '\"requestId\":\"d1\"' '$T/out.out') -ge 7 ]" || fail "d1: $(grep d1 "$T/out.out")"
	grep -q '^job.accepted {"requestId":"d1","target":6,"kind":"dashboard","acceptedAt":[0-9]*,"dashboard_type":"executive","time_range":"7d"}$' "$T/out.out" ||
		fail "d1 accepted: $(grep d1 "$T/out.out")"
	local s
	for s in sales inventory marketing external_market weather competitor_pricing; do
		grep -q "\"caseId\":\"$s\",\"index\":[0-5],\"case\":{\"caseId\":\"$s\",\"source\":\"$s\",\"dashboard_type\":\"executive\",\"time_range\":\"7d\"}" "$T/out.out" ||
			fail "no $s case"
	done
}
it_case dashboard-request-six-sources case_dashboard

case_sigkill_fanout() { # 20 000 cases with a SIGKILL in the middle of the fan-out
	awk 'BEGIN { printf "{\"requestId\":\"big\",\"requests\":["; for (i = 0; i < 20000; i++) printf "%s{\"caseId\":%d}", i ? "," : "", i; print "]}" }' >"$T/big.json"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t job.submit -f "$T/big.json"
	wait_for 20 bash -c "grep -q '\"requestId\":\"big\",\"caseId\":' '$T/out.out'" || fail "the fan-out did not start"
	kill -KILL "$DISPATCHER_PID"
	note "killed after $(grep -c '"requestId":"big","caseId"' "$T/out.out") cases"
	start_agent dispatcher mqpipe-dispatcher -d "$T/dispatcher.db"
	DISPATCHER_PID=$AGENT_PID
	it_pass DISPATCHER_PID
	wait_for 60 bash -c "[ \$(grep '\"requestId\":\"big\",\"caseId\"' '$T/out.out' | sort -u | wc -l) -ge 20000 ]" ||
		fail "cases lost: $(grep '"requestId":"big","caseId"' "$T/out.out" | sort -u | wc -l) of 20000"
}
it_case fanout-resumes-after-sigkill case_sigkill_fanout
case_accepted_first() {
	local first
	first=$(grep -m1 -n '"requestId":"big"' "$T/out.out")
	[[ $first == *job.accepted* ]] || fail "a compute.request came before job.accepted: $first"
	[ "$(grep -c '^job.accepted {"requestId":"big"' "$T/out.out")" -ge 1 ] || fail "no job.accepted for big"
}
it_case resumed-job-accepted-before-its-cases case_accepted_first fanout-resumes-after-sigkill
case_cursor() {
	[ "$(sqlite3 "$T/dispatcher.db" "SELECT sent, cases FROM job WHERE request_id='big'")" = "20000|20000" ] || fail "cursor"
	[ "$(sqlite3 "$T/dispatcher.db" "SELECT count(*) FROM job_case")" -eq 0 ] || fail "sent cases were not dropped"
}
it_case cursor-at-end-and-sent-cases-dropped case_cursor fanout-resumes-after-sigkill

case_schema_accepted() {
	grep '^job.accepted ' "$T/out.out" | cut -d' ' -f2- | "$MQPIPE_ROOT/scripts/schemas" validate job.accepted || fail "job.accepted schema"
}
it_case job-accepted-schema case_schema_accepted
case_schema_request() {
	grep -m50 '^compute.request ' "$T/out.out" | cut -d' ' -f2- | "$MQPIPE_ROOT/scripts/schemas" validate compute.request || fail "compute.request schema"
}
it_case compute-request-schema case_schema_request
case_schema_deadletter() {
	cut -d' ' -f2- "$T/dl.out" | "$MQPIPE_ROOT/scripts/schemas" validate deadletter || fail "deadletter schema"
}
it_case deadletter-schema case_schema_deadletter

case_fan_in() { # fan-out and fan-in through the counter, with a shell worker
	start_counter
	subscribe trig aggregate.trigger
	# Each stage is its own tracked process (FIFOs, not a pipe) so all are stopped.
	mkfifo "$T/requests" "$T/answers"
	mosquitto_sub -p "$BROKER_PORT" -i it-shell-worker -q 1 -t '$share/workers/compute.request' >"$T/requests" &
	PIDS+=($!)
	jq --unbuffered -c '{requestId, caseId, processingMs: 0, result: .case, worker: "sh"}' <"$T/requests" >"$T/answers" &
	PIDS+=($!)
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t compute.done -l <"$T/answers" &
	PIDS+=($!)
	sleep 0.5
	awk 'BEGIN { printf "{\"requestId\":\"e2e\",\"requests\":["; for (i = 0; i < 500; i++) printf "%s{\"caseId\":\"c%d\"}", i ? "," : "", i; print "]}" }' >"$T/e2e.json"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t job.submit -f "$T/e2e.json"
	pub job.submit '{"requestId":"e2e0","requests":[]}'
	wait_for 60 log_has "$T/trig.out" '"requestId":"e2e","target":500,"completed":500' || fail "no aggregate.trigger for e2e: $(cat "$T/trig.out")"
	wait_for 20 log_has "$T/trig.out" '"requestId":"e2e0","target":0,"completed":0' || fail "no aggregate.trigger for e2e0"
}
it_case fan-out-and-in-to-one-trigger case_fan_in

# Sent jobs are forgotten after --retain-jobs; a resubmit after that is a new job.
case_retain_forgotten() {
	start_agent retain mqpipe-dispatcher -i it-retain -p retain -d "$T/retain.db" --retain-jobs 2s
	subscribe rout 'retain/job.accepted' 'retain/compute.request'
	pub retain/job.submit '{"requestId":"old","requests":[{"caseId":"a"},{"caseId":"b"}]}'
	pub retain/job.submit '{"requestId":"none","requests":[]}'
	pub retain/dashboard.request '{"request_id":"dash"}'
	wait_for 20 bash -c "[ \$(grep -c 'compute.request' '$T/rout.out') -ge 8 ]" || fail "not dispatched: $(cat "$T/rout.out")"
	wait_for 30 bash -c "[ \$(sqlite3 '$T/retain.db' 'SELECT count(*) FROM job') -eq 0 ]" ||
		fail "jobs not forgotten: $(sqlite3 "$T/retain.db" 'SELECT request_id, sent, cases, done_ms FROM job')"
	[ "$(sqlite3 "$T/retain.db" 'SELECT count(*) FROM job_case')" -eq 0 ] || fail "cases left"
}
it_case sent-jobs-forgotten-after-retain-jobs case_retain_forgotten
case_retain_resubmit() {
	pub retain/job.submit '{"requestId":"old","requests":[{"caseId":"c"}]}'
	wait_for 20 log_has "$T/rout.out" '"requestId":"old","caseId":"c"' || fail "the resubmit was not dispatched: $(cat "$T/rout.out")"
	[ "$(grep -c '^retain/job.accepted {"requestId":"old"' "$T/rout.out")" -eq 2 ] || fail "not accepted anew: $(cat "$T/rout.out")"
}
it_case forgotten-requestid-resubmitted-is-a-new-job case_retain_resubmit sent-jobs-forgotten-after-retain-jobs
case_retain_flag() {
	local rc=0
	"$BIN/mqpipe-dispatcher" --help | grep -q -- '--retain-jobs DURATION' || fail "--retain-jobs not in --help"
	"$BIN/mqpipe-dispatcher" --retain-jobs soon 2>"$T/usage.err" || rc=$?
	[ "$rc" -eq 64 ] || fail "--retain-jobs soon: exit $rc"
}
it_case retain-jobs-flag-documented-and-checked case_retain_flag
it_cases_done
