#!/usr/bin/env bash
# Fan-out / fan-in end to end: dispatcher, counter, two workers sharing
# $share/workers/compute.request, and the aggregator. Jobs of 0, 1, 7 and
# 1000 cases each come back as one job.summary with every case once, in
# submission order; both workers take part; duplicated compute.done and
# compute.done before job.accepted change nothing; SIGKILLing the counter and
# a worker mid-job still completes it with every case exactly once.
source "$(dirname "$0")/lib.sh"
it_setup
subscribe sum job.summary
subscribe done compute.done
subscribe dl 'deadletter/#'
start_agent dispatcher mqpipe-dispatcher -d "$T/dispatcher.db"
start_counter
start_agent worker1 mqpipe-worker -i it-w1 -d "$T/w1.db" --work-ms 0-2 --concurrency 8
W1_PID=$AGENT_PID
start_agent worker2 mqpipe-worker -i it-w2 -d "$T/w2.db" --work-ms 0-2 --concurrency 8
start_agent aggregator mqpipe-aggregator -d "$T/aggregator.db"
AGENT_AGGREGATOR_PID=$AGENT_PID

# job ID N [CASE_JSON_EXTRA]: submits N cases "c0".."c<N-1>".
job() {
	awk -v id="$1" -v n="$2" -v extra="${3:-}" 'BEGIN {
		printf "{\"requestId\":\"%s\",\"requests\":[", id
		for (i = 0; i < n; i++) printf "%s{\"caseId\":\"c%d\"%s}", i ? "," : "", i, extra
		print "]}" }' >"$T/$1.json"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t job.submit -f "$T/$1.json"
}
summary_of() { grep "^job.summary {\"requestId\":\"$1\"," "$T/sum.out" | cut -d' ' -f2- || true; }
# check_summary ID N [MODE]: a summary of N cases, c0..c<N-1> in order.
check_summary() {
	local id=$1 n=$2 mode=${3:-future} got
	wait_for 60 bash -c "grep -q '^job.summary {\"requestId\":\"$id\",' '$T/sum.out'" ||
		fail "no summary for $id: $(tail -n 3 "$T/aggregator.log")"
	got=$(summary_of "$id" | jq -c --argjson n "$n" --arg mode "$mode" \
		'[.cases == $n, (.results | length) == $n, ([.results[].caseId] == [range(0; $n) | "c\(.)"]),
		  .mode == $mode, (.e2eMs | type) == "number"]')
	[ "$got" = "[true,true,true,true,true]" ] || fail "summary of $id: $got $(summary_of "$id" | head -c 300)"
}

# Jobs of 0, 1, 7 and 1000 cases, one case each.
job j0 0
job j1 1
job j7 7 ',"workMs":30'
job j1000 1000
case_job() {
	check_summary "j$JOB_N" "$JOB_N"
}
for JOB_N in 0 1 7 1000; do
	it_case "job-of-$JOB_N-cases-one-summary-in-order" case_job
done
case_work_ms() {
	summary_of j7 | jq -e '[.results[].processingMs] | all(. >= 30)' >/dev/null || fail "workMs not honoured"
}
it_case work-ms-honoured case_work_ms job-of-7-cases-one-summary-in-order
case_both_workers() {
	local w
	for w in it-w1 it-w2; do
		grep -q "\"requestId\":\"j1000\".*\"worker\":\"$w\"" "$T/done.out" || fail "$w did no case of j1000"
	done
}
it_case both-workers-take-part case_both_workers job-of-1000-cases-one-summary-in-order
case_summary_schema() {
	summary_of j1000 | "$MQPIPE_ROOT/scripts/schemas" validate job.summary || fail "job.summary schema"
}
it_case job-summary-matches-schema case_summary_schema job-of-1000-cases-one-summary-in-order
case_done_schema() {
	grep -m 20 '^compute.done ' "$T/done.out" | cut -d' ' -f2- | "$MQPIPE_ROOT/scripts/schemas" validate compute.done ||
		fail "compute.done schema"
}
it_case compute-done-matches-schema case_done_schema

case_early_done() { # compute.done before job.accepted, and each one twice
	local c d
	for c in 0 1 2; do
		d="{\"requestId\":\"early\",\"caseId\":\"c$c\",\"index\":$c,\"processingMs\":$c,\"result\":{\"n\":$c},\"worker\":\"sh\"}"
		pub compute.done "$d"
		pub compute.done "$d"
	done
	sleep 0.5
	[ -z "$(summary_of early)" ] || fail "a summary before job.accepted"
}
it_case no-summary-before-job-accepted case_early_done
case_early_summary() { # each case once
	pub job.accepted '{"requestId":"early","target":3,"kind":"job","acceptedAt":1700000000000}'
	check_summary early 3
}
it_case early-and-duplicated-done-summarised-once case_early_summary no-summary-before-job-accepted
case_late_duplicate() {
	pub compute.done '{"requestId":"early","caseId":"c1","processingMs":9,"result":9,"worker":"sh"}'
	sleep 0.5
	[ "$(summary_of early | wc -l)" -eq 1 ] || fail "a late duplicate made a second summary"
}
it_case late-duplicate-no-second-summary case_late_duplicate early-and-duplicated-done-summarised-once

case_unusable_done() { # a compute.done the aggregator cannot use is a dead letter
	pub compute.done '{"requestId":"early","caseId":"c1","worker":"sh"}'
	wait_for 20 log_has "$T/dl.out" "deadletter/compute.done .*processingMs" || fail "no dead letter: $(cat "$T/dl.out")"
}
it_case unusable-compute-done-dead-lettered case_unusable_done

# SIGKILL the counter and a worker mid-job (classic mode: the summary needs
# the counter's trigger).
case_killed_mid_job() {
	subscribe trig aggregate.trigger
	stop_pid "$AGENT_AGGREGATOR_PID" TERM
	start_agent aggregator mqpipe-aggregator -d "$T/aggregator.db" --mode classic --setup-ms 50
	stop_pid "$W1_PID" KILL
	start_agent worker1 mqpipe-worker -i it-w1 -d "$T/w1.db" --work-ms 20 --concurrency 4
	W1_PID=$AGENT_PID
	it_pass COUNTER_PID W1_PID
	job big 600
	wait_for 60 bash -c "[ \$(grep -c '\"requestId\":\"big\"' '$T/done.out') -ge 100 ]" || fail "big did not start"
	kill -KILL "$COUNTER_PID" "$W1_PID"
	note "killed after $(grep -c '"requestId":"big"' "$T/done.out") cases done"
	sleep 1
	start_counter
	start_agent worker1 mqpipe-worker -i it-w1 -d "$T/w1.db" --work-ms 20 --concurrency 4
	W1_PID=$AGENT_PID
	check_summary big 600 classic
}
it_case killed-counter-and-worker-job-still-summarised case_killed_mid_job
case_killed_trigger() {
	grep -q '^aggregate.trigger {"requestId":"big","target":600,"completed":600}$' "$T/trig.out" || fail "trigger: $(cat "$T/trig.out")"
}
it_case trigger-after-kills-counts-all-600 case_killed_trigger killed-counter-and-worker-job-still-summarised
case_no_checkpoints() {
	[ "$(sqlite3 "$T/aggregator.db" "SELECT count(*) FROM agg_input")" -eq 0 ] || fail "checkpoints left after the summaries"
}
it_case no-checkpoints-left-after-summaries case_no_checkpoints killed-counter-and-worker-job-still-summarised
case_big_once() {
	[ "$(summary_of big | wc -l)" -eq 1 ] || fail "big summarised twice"
}
it_case killed-job-summarised-once case_big_once killed-counter-and-worker-job-still-summarised

# Inputs whose job.accepted never comes are forgotten after --retain-jobs.
case_orphan_inputs() {
	local c
	start_agent orphans mqpipe-aggregator -i it-orphans -p orphans -d "$T/orphans.db" --retain-jobs 2s
	for c in 1 2 3; do
		pub orphans/compute.done "{\"requestId\":\"never-accepted\",\"caseId\":\"c-$c\",\"processingMs\":1,\"result\":{\"status\":\"success\"},\"worker\":\"w\"}"
	done
	pub orphans/aggregate.trigger '{"requestId":"trigger-only","target":1,"completed":1}'
	wait_for 20 log_has "$T/orphans.log" 'event=orphan_forgotten request_id=never-accepted inputs=3' ||
		fail "orphan not forgotten: $(tail -3 "$T/orphans.log")"
}
it_case never-accepted-inputs-forgotten case_orphan_inputs
case_orphan_trigger() {
	wait_for 20 log_has "$T/orphans.log" 'event=orphan_forgotten request_id=trigger-only inputs=0' ||
		fail "trigger-only orphan not forgotten: $(tail -3 "$T/orphans.log")"
}
it_case trigger-only-job-forgotten case_orphan_trigger never-accepted-inputs-forgotten
case_orphan_rows() {
	[ "$(sqlite3 "$T/orphans.db" 'SELECT (SELECT count(*) FROM agg_job) + (SELECT count(*) FROM agg_input)')" -eq 0 ] ||
		fail "orphan rows left: $(sqlite3 "$T/orphans.db" 'SELECT * FROM agg_job')"
}
it_case no-orphan-rows-left case_orphan_rows never-accepted-inputs-forgotten trigger-only-job-forgotten

case_worker_bad_flags() {
	local args rc
	for args in "--concurrency 0" "--work-ms 5-1" "--latency-scale x" "--profile /nonexistent"; do
		rc=0
		# shellcheck disable=SC2086
		"$BIN/mqpipe-worker" $args 2>"$T/usage.err" || rc=$?
		[ "$rc" -eq 64 ] || fail "mqpipe-worker $args: exit $rc"
	done
}
it_case worker-bad-flags-exit-64 case_worker_bad_flags
case_profile_mode_named() { # a profile's unknown source, an unknown --mode: exit 64 naming them
	local rc=0 rc2=0
	echo '{"sales":[1,2],"tarot":[1,1]}' >"$T/profile.json"
	"$BIN/mqpipe-worker" --profile "$T/profile.json" 2>"$T/usage.err" || rc=$?
	"$BIN/mqpipe-aggregator" --mode lazy 2>>"$T/usage.err" || rc2=$?
	[ "$rc" -eq 64 ] && [ "$rc2" -eq 64 ] || fail "exit $rc/$rc2"
	grep -q "'tarot' is not a source" "$T/usage.err" || fail "$(cat "$T/usage.err")"
	grep -q "expected classic, eager or future" "$T/usage.err" || fail "$(cat "$T/usage.err")"
}
it_case unknown-profile-source-and-mode-exit-64-named case_profile_mode_named
it_cases_done
