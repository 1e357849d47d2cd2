#!/usr/bin/env bash
# The counter's jobs half: job.accepted gives a job's target, each
# (requestId, caseId) of compute.done counts once, and aggregate.trigger is
# published once per job when every case is done, in either order of arrival;
# jobs of 0, 1, 7 and 1000 cases; conflicts are dead letters; a SIGKILL
# mid-job loses nothing; finished jobs are purged after --retain-jobs.
source "$(dirname "$0")/lib.sh"
it_setup
start_counter --retain-jobs 2s
subscribe trig aggregate.trigger
subscribe dl 'deadletter/#'

accepted() { pub job.accepted "{\"requestId\":\"$1\",\"target\":$2,\"kind\":\"job\",\"acceptedAt\":1700000000000}"; }
done_case() { echo "{\"requestId\":\"$1\",\"caseId\":$2,\"processingMs\":1,\"result\":null,\"worker\":\"w\"}"; }
triggers_of() { grep -c "\"requestId\":\"$1\"" "$T/trig.out" || true; }

case_j0() { # complete when accepted
	accepted j0 0
	wait_for 20 log_has "$T/trig.out" '"requestId":"j0"' || fail "no trigger for a job of 0 cases"
	grep -q '^aggregate.trigger {"requestId":"j0","target":0,"completed":0}$' "$T/trig.out" || fail "$(cat "$T/trig.out")"
}
it_case job-of-0-cases-complete-when-accepted case_j0

case_j1() {
	accepted j1 1
	pub compute.done "$(done_case j1 '"only"')"
	wait_for 20 log_has "$T/trig.out" '"requestId":"j1","target":1,"completed":1' || fail "no trigger for j1"
}
it_case job-of-1-case case_j1

case_j7() { # each done twice, the string "3" and the number 3 distinct
	local c
	accepted j7 7
	for c in '"a"' '"b"' '"3"' 3 4 5 6; do done_case j7 "$c"; done_case j7 "$c"; done >"$T/j7.txt"
	pub_lines compute.done "$T/j7.txt"
	wait_for 20 log_has "$T/trig.out" '"requestId":"j7","target":7,"completed":7' || fail "no trigger for j7"
}
it_case job-of-7-cases-each-done-twice case_j7

case_early() {
	local c
	for c in 1 2 3 4 5; do pub compute.done "$(done_case early "$c")"; done
	sleep 0.5
	[ "$(triggers_of early)" -eq 0 ] || fail "triggered before the target was known"
	accepted early 5
	wait_for 20 log_has "$T/trig.out" '"requestId":"early","target":5,"completed":5' || fail "no trigger for early"
}
it_case compute-done-before-job-accepted case_early

case_j1000() {
	accepted j1000 1000
	seq 1 1000 | while read -r c; do done_case j1000 "$c"; done >"$T/j1000.txt"
	pub_lines compute.done "$T/j1000.txt"
	wait_for 60 log_has "$T/trig.out" '"requestId":"j1000","target":1000,"completed":1000' || fail "no trigger for j1000"
}
it_case job-of-1000-cases case_j1000

# Conflicts and bad cases are dead letters. An open job: a finished one may
# already be purged (--retain-jobs 2s) on a slow machine, and its requestId
# is then free for a new job.
case_dead_letters() {
	accepted jc 1
	accepted jc 2
	pub compute.done '{"requestId":"j1","caseId":{"x":1}}'
	wait_for 20 bash -c "[ \$(wc -l <'$T/dl.out') -ge 2 ]" || fail "dead letters: $(cat "$T/dl.out")"
}
it_case conflicts-and-bad-cases-dead-lettered case_dead_letters
case_conflict() {
	grep -q "accepted with target 1, not 2" "$T/dl.out" || fail "conflicting job.accepted: $(cat "$T/dl.out")"
}
it_case conflicting-job-accepted-dead-letter case_conflict conflicts-and-bad-cases-dead-lettered
case_bad_case_id() {
	grep -q "string or a whole number" "$T/dl.out" || fail "bad caseId: $(cat "$T/dl.out")"
}
it_case bad-caseid-dead-letter case_bad_case_id conflicts-and-bad-cases-dead-lettered

case_sigkill() { # mid-job
	local feeder
	accepted big 3000
	seq 1 3000 | while read -r c; do done_case big "$c"; done >"$T/big.txt"
	pub_lines compute.done "$T/big.txt" &
	feeder=$!
	sleep 0.3
	kill -KILL "$COUNTER_PID"
	wait "$feeder"
	start_counter --retain-jobs 2s
	it_pass COUNTER_PID
	wait_for 60 log_has "$T/trig.out" '"requestId":"big","target":3000,"completed":3000' ||
		fail "no complete trigger after the SIGKILL: $(grep big "$T/trig.out")"
	[ "$(db "SELECT count(*) FROM job_case WHERE request_id='big'")" -eq 3000 ] || fail "cases lost or doubled"
}
it_case sigkill-mid-job-loses-nothing case_sigkill

# Every job triggered, never with other values; exactly once where no crash
# happened around it.
sleep 1
declare -A JOB_CASE=([j0]=job-of-0-cases-complete-when-accepted [j1]=job-of-1-case
	[j7]=job-of-7-cases-each-done-twice [early]=compute-done-before-job-accepted
	[j1000]=job-of-1000-cases [big]=sigkill-mid-job-loses-nothing)
case_triggered() {
	[ "$(triggers_of "$JOB")" -ge 1 ] || fail "$JOB never triggered"
	[ "$(grep "\"requestId\":\"$JOB\"" "$T/trig.out" | sort -u | wc -l)" -eq 1 ] || fail "$JOB triggered with different values"
	[ "$JOB" = big ] || [ "$(triggers_of "$JOB")" -eq 1 ] || fail "$JOB triggered $(triggers_of "$JOB") times"
}
for JOB in j0 j1 j7 early j1000 big; do
	it_case "$JOB-triggered-$([ "$JOB" = big ] && echo with-one-value || echo once)" case_triggered "${JOB_CASE[$JOB]}"
done
case_trigger_schema() {
	cut -d' ' -f2- "$T/trig.out" | "$MQPIPE_ROOT/scripts/schemas" validate aggregate.trigger || fail "trigger breaks its schema"
}
it_case trigger-schema case_trigger_schema

case_purge() { # finished jobs are purged after --retain-jobs
	sleep 2.5
	accepted later 1 # purging rides on job.accepted, a few jobs at a time
	accepted later2 1
	wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' \"SELECT count(*) FROM job WHERE request_id IN ('j0','j1','j7','early')\") -eq 0 ]" ||
		fail "finished jobs were not purged: $(db 'SELECT request_id FROM job')"
	[ "$(db "SELECT count(*) FROM job WHERE request_id='later'")" -eq 1 ] || fail "a live job was purged"
}
it_case finished-jobs-purged-after-retain-jobs case_purge

# compute.done for a job never accepted (an unknown requestId) is forgotten
# after --retain-jobs too: each such compute.done forgets a few old ones.
case_orphans() {
	local c
	for c in 1 2 3; do done_case stray "$c"; done >"$T/stray.txt"
	pub_lines compute.done "$T/stray.txt"
	wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' \"SELECT count(*) FROM job_case WHERE request_id = 'stray'\") -eq 3 ]" ||
		fail "stray cases not stored"
	sleep 2.5
	pub compute.done "$(done_case stray2 1)"
	wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' \"SELECT (SELECT count(*) FROM job WHERE request_id = 'stray') + (SELECT count(*) FROM job_case WHERE request_id = 'stray')\") -eq 0 ]" ||
		fail "never-accepted job not forgotten: $(db "SELECT * FROM job WHERE request_id = 'stray'")"
	[ "$(db "SELECT count(*) FROM job_case WHERE request_id = 'stray2'")" -eq 1 ] || fail "the new stray was forgotten at once"
	log_has "$T/counter.log" 'event=orphan_forgotten jobs=1' || fail "no orphan_forgotten: $(tail -3 "$T/counter.log")"
}
it_case never-accepted-job-forgotten-after-retain-jobs case_orphans
it_cases_done
