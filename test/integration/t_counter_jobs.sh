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

note "0 cases: complete when accepted"
accepted j0 0
wait_for 20 log_has "$T/trig.out" '"requestId":"j0"' || fail "no trigger for a job of 0 cases"
grep -q '^aggregate.trigger {"requestId":"j0","target":0,"completed":0}$' "$T/trig.out" || fail "$(cat "$T/trig.out")"

note "1 case"
accepted j1 1
pub compute.done "$(done_case j1 '"only"')"
wait_for 20 log_has "$T/trig.out" '"requestId":"j1","target":1,"completed":1' || fail "no trigger for j1"

note "7 cases, each done twice, the string \"3\" and the number 3 distinct"
accepted j7 7
for c in '"a"' '"b"' '"3"' 3 4 5 6; do done_case j7 "$c"; done_case j7 "$c"; done >"$T/j7.txt"
pub_lines compute.done "$T/j7.txt"
wait_for 20 log_has "$T/trig.out" '"requestId":"j7","target":7,"completed":7' || fail "no trigger for j7"

note "compute.done before job.accepted"
for c in 1 2 3 4 5; do pub compute.done "$(done_case early "$c")"; done
sleep 0.5
[ "$(triggers_of early)" -eq 0 ] || fail "triggered before the target was known"
accepted early 5
wait_for 20 log_has "$T/trig.out" '"requestId":"early","target":5,"completed":5' || fail "no trigger for early"

note "1000 cases"
accepted j1000 1000
seq 1 1000 | while read -r c; do done_case j1000 "$c"; done >"$T/j1000.txt"
pub_lines compute.done "$T/j1000.txt"
wait_for 60 log_has "$T/trig.out" '"requestId":"j1000","target":1000,"completed":1000' || fail "no trigger for j1000"

note "conflicts and bad cases are dead letters"
# An open job: a finished one may already be purged (--retain-jobs 2s) on a
# slow machine, and its requestId is then free for a new job.
accepted jc 1
accepted jc 2
pub compute.done '{"requestId":"j1","caseId":{"x":1}}'
wait_for 20 bash -c "[ \$(wc -l <'$T/dl.out') -ge 2 ]" || fail "dead letters: $(cat "$T/dl.out")"
grep -q "accepted with target 1, not 2" "$T/dl.out" || fail "conflicting job.accepted: $(cat "$T/dl.out")"
grep -q "string or a whole number" "$T/dl.out" || fail "bad caseId: $(cat "$T/dl.out")"

note "SIGKILL mid-job"
accepted big 3000
seq 1 3000 | while read -r c; do done_case big "$c"; done >"$T/big.txt"
pub_lines compute.done "$T/big.txt" &
feeder=$!
sleep 0.3
kill -KILL "$COUNTER_PID"
wait "$feeder"
start_counter --retain-jobs 2s
wait_for 60 log_has "$T/trig.out" '"requestId":"big","target":3000,"completed":3000' ||
	fail "no complete trigger after the SIGKILL: $(grep big "$T/trig.out")"
[ "$(db "SELECT count(*) FROM job_case WHERE request_id='big'")" -eq 3000 ] || fail "cases lost or doubled"

note "every job triggered, never with other values"
sleep 1
for j in j0 j1 j7 early j1000 big; do
	[ "$(triggers_of $j)" -ge 1 ] || fail "$j never triggered"
	[ "$(grep "\"requestId\":\"$j\"" "$T/trig.out" | sort -u | wc -l)" -eq 1 ] || fail "$j triggered with different values"
done
for j in j0 j1 j7 early j1000; do # no crash happened around these: exactly once
	[ "$(triggers_of $j)" -eq 1 ] || fail "$j triggered $(triggers_of $j) times"
done
cut -d' ' -f2- "$T/trig.out" | "$MQPIPE_ROOT/scripts/schemas" validate aggregate.trigger || fail "trigger breaks its schema"

note "finished jobs are purged after --retain-jobs"
sleep 2.5
accepted later 1 # purging rides on job.accepted, a few jobs at a time
accepted later2 1
wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' \"SELECT count(*) FROM job WHERE request_id IN ('j0','j1','j7','early')\") -eq 0 ]" ||
	fail "finished jobs were not purged: $(db 'SELECT request_id FROM job')"
[ "$(db "SELECT count(*) FROM job WHERE request_id='later'")" -eq 1 ] || fail "a live job was purged"
echo "all ok"
