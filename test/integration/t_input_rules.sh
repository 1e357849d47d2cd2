#!/usr/bin/env bash
# The input rules closed (README "Input rules", "Fan-out", "Workers",
# "Alerts"), each case on the development profile: what cJSON would cut or
# round, and what would be rewritten into another series, is a dead letter
# on deadletter/<topic> with a reason naming the field, and nothing stored
# changes. A job with a case no worker could run is refused whole; a case a
# worker refuses anyway still finishes its job, as failed in job.summary.
source "$(dirname "$0")/lib.sh"
it_setup
subscribe dl 'deadletter/#'
subscribe out alerts/# job.accepted compute.request compute.done job.summary

# pubf TOPIC BYTES: publishes printf-formatted BYTES (raw NULs included).
pubf() {
	local f
	f=$(mktemp "$T/payload.XXXXXX")
	printf "$2" >"$f"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t "$1" -f "$f"
}
# dl_count TOPIC: dead letters seen on deadletter/TOPIC.
dl_count() { grep -c "^deadletter/$1 " "$T/dl.out" || true; }
# expect_dl TOPIC N: waits for N dead letters on deadletter/TOPIC.
expect_dl() {
	wait_for 30 bash -c "[ \$(grep -c '^deadletter/$1 ' '$T/dl.out') -ge $2 ]" ||
		fail "want $2 dead letters on deadletter/$1: $(grep "^deadletter/$1 " "$T/dl.out" | cut -c1-300)"
}
# dl_has TOPIC TEXT: a dead letter on deadletter/TOPIC has TEXT in its reason.
dl_has() {
	grep "^deadletter/$1 " "$T/dl.out" | cut -d' ' -f2- |
		jq -s -e --arg r "$2" 'any(.[]; .reason | contains($r))' >/dev/null ||
		fail "no dead letter on deadletter/$1 with reason '$2': $(grep "^deadletter/$1 " "$T/dl.out" | cut -d' ' -f2- | jq -r .reason)"
}

now=$(date +%s)
t0=$((now - 3000))
printf '%s\n' '{"name": "by-module", "topic": "modules", "key": "module"}' >"$T/rules.jsonl"
adb() { sqlite3 -cmd ".timeout 5000" "$T/alerter.db" "$1"; }
ddb() { sqlite3 -cmd ".timeout 5000" "$T/dispatcher.db" "$1"; }

case_counter_ids() { # NUL and control characters in the counter's ids
	start_counter
	pub recv_message '{"moduleId":"victim","timestamp":1}'
	wait_for 20 bash -c "[ \"\$(sqlite3 '$T/counter.db' 'SELECT count(*) FROM recv_message')\" = 1 ]" ||
		fail "the first victim message was not stored"
	before=$(db "SELECT quote(module), ts FROM recv_message")
	pubf recv_message '{"moduleId":"victim\0x","timestamp":2}'
	pubf recv_message '{"moduleId":"victim\0y","timestamp":3}'
	pubf recv_message '{"moduleId":"victim\\u0000z","timestamp":4}'
	pubf recv_message '{"moduleId":"vic\001tim","timestamp":5}'
	pubf recv_message '{"moduleId":"victim",\001"timestamp":6}'
	pubf weekly_diagnostic '{"moduleid":"victim\0x","timestamp":7,"attempts":2}'
	pubf weekly_diagnostic '{"moduleid":"victim","timestamp":8,"attempts":2,"\0":1}'
	expect_dl recv_message 5
	expect_dl weekly_diagnostic 2
	[ "$(grep '^deadletter/recv_message ' "$T/dl.out" | cut -d' ' -f2- |
		jq -r 'select(.reason | contains("field '"'moduleId'"' holds a raw control character (byte 0x00)")) | .payload_b64' |
		while read -r b; do base64 -d <<<"$b" | tr '\0' '@'; echo; done | sort | tr '\n' ' ')" = '{"moduleId":"victim@x","timestamp":2} {"moduleId":"victim@y","timestamp":3} ' ] ||
		fail "the raw-NUL ids: $(grep '^deadletter/recv_message ' "$T/dl.out" | cut -d' ' -f2- | jq -r .reason)"
	dl_has recv_message "field 'moduleId' holds \\u0000 (NUL)"
	dl_has recv_message "field 'moduleId' holds a raw control character (byte 0x01)"
	dl_has recv_message "not JSON: control character 0x01 at byte 21"
	dl_has weekly_diagnostic "field 'moduleid' holds a raw control character (byte 0x00)"
	dl_has weekly_diagnostic "a member name holds a raw control character (byte 0x00)"
	[ "$(db "SELECT quote(module), ts FROM recv_message")" = "$before" ] ||
		fail "recv_message changed: $(db "SELECT quote(module), ts FROM recv_message")"
	[ "$(db "SELECT count(*) FROM weekly_diagnostic")" = 0 ] || fail "a diagnostic was stored"
	[ "$(db "SELECT count(*) FROM deadletter")" = 7 ] || fail "deadletter table: $(db 'SELECT count(*) FROM deadletter')"
}
it_case counter-ids-with-nul-or-control-characters case_counter_ids

case_alerter_timestamps() { # a huge timestamp, then a real spike
	start_agent alerter mqpipe-alerter -d "$T/alerter.db" --rules "$T/rules.jsonl"
	pub metrics/poison '{"value":1,"timestamp":99999999999999999}'
	pub metrics/poison '{"value":1,"timestamp":9007199254740991}'
	pub metrics/poison "{\"value\":1,\"timestamp\":${t0}000}"
	for i in 0 1 2; do pub metrics/poison "{\"value\":10,\"timestamp\":$((t0 + i * 60))}"; done
	pub metrics/poison "{\"value\":100,\"timestamp\":$((t0 + 180))}"
	expect_dl metrics/poison 3
	dl_has metrics/poison "field 'timestamp' must be a whole number from 0 to 9007199254740991"
	dl_has metrics/poison "field 'timestamp' (9007199254740991) is more than 86400 s ahead of the alerter's clock"
	dl_has metrics/poison "field 'timestamp' (${t0}000) is more than 86400 s ahead"
	wait_for 30 log_has "$T/out.out" "^alerts/poison .*\"timestamp\":$((t0 + 180))," ||
		fail "the real spike after the poison did not alert: $(grep poison "$T/dl.out" | cut -d' ' -f2- | jq -r .reason)"
	[ "$(adb "SELECT newest, count FROM series WHERE series = 'poison'")" = "$((t0 + 180))|4" ] ||
		fail "series poison: $(adb "SELECT newest, count FROM series WHERE series = 'poison'")"
}
it_case alerter-huge-timestamps-dead-lettered case_alerter_timestamps

case_alerter_names() { # series names and keys
	long=$(printf 'n%.0s' $(seq 1 600))
	pub "metrics/$long" '{"value":1,"timestamp":1}'
	pub "metrics/${long:0:511}a" '{"value":1,"timestamp":1}'
	pub "metrics/${long:0:511}b" '{"value":1,"timestamp":1}'
	pub "metrics/${long:0:511}" "{\"value\":1,\"timestamp\":$t0}"
	for k in '#' '+' 'a+b' '\u0001'; do pub modules "{\"module\":\"$k\",\"value\":1,\"timestamp\":$t0}"; done
	pub modules "{\"module\":\"ok\",\"value\":1,\"timestamp\":$t0}"
	expect_dl "metrics/$long" 1
	expect_dl "metrics/${long:0:511}a" 1
	expect_dl "metrics/${long:0:511}b" 1
	expect_dl modules 4
	dl_has "metrics/$long" "the series name would be 600 bytes, more than 511"
	dl_has "metrics/${long:0:511}a" "the series name would be 512 bytes, more than 511"
	dl_has modules "field 'module' must be a whole number or a string of 1 to 256 bytes that can be a topic level"
	wait_for 20 bash -c "[ \"\$(sqlite3 -cmd '.timeout 5000' '$T/alerter.db' \"SELECT count(*) FROM series WHERE series = 'modules/ok'\")\" = 1 ]" ||
		fail "the good keyed point was not taken"
	[ "$(adb "SELECT count(*) FROM series WHERE length(series) >= 511")" = 1 ] ||
		fail "long series: $(adb "SELECT length(series), count FROM series WHERE length(series) >= 511")"
	[ "$(adb "SELECT group_concat(series, ' ') FROM (SELECT series FROM series WHERE rule = 'by-module' ORDER BY 1)")" = "modules/ok" ] ||
		fail "keyed series: $(adb "SELECT series FROM series WHERE rule = 'by-module'")"
}
it_case alerter-series-names-and-keys case_alerter_names alerter-huge-timestamps-dead-lettered

case_dispatcher_refuses() { # a job with a case no worker could run
	start_agent dispatcher mqpipe-dispatcher -d "$T/dispatcher.db"
	pub job.submit '{"requestId":"neg","requests":[{"caseId":"a"},{"caseId":"b","workMs":-5}]}'
	pub job.submit '{"requestId":"huge","requests":[{"caseId":1,"workMs":1e300}]}'
	pub job.submit '{"requestId":"src","requests":[{"caseId":1,"source":"tarot"}]}'
	pubf job.submit '{"requestId":"nul","requests":[{"caseId":"a\0b"}]}'
	expect_dl job.submit 4
	dl_has job.submit "requests[1] (caseId \"b\"): field 'workMs' must be a whole number from 0 to 3600000"
	dl_has job.submit "requests[0] (caseId 1): field 'workMs' must be a whole number from 0 to 3600000"
	dl_has job.submit "requests[0] (caseId 1): field 'source' is 'tarot', not a dashboard source"
	dl_has job.submit "field 'requests[0].caseId' holds a raw control character (byte 0x00)"
}
it_case dispatcher-refuses-unrunnable-job case_dispatcher_refuses

case_hand_dispatched() { # a job of two cases, for a worker to refuse one
	# No worker yet: the dispatcher's compute.requests for "hand" reach no one
	# but this test's subscriber, which stands in for the case-a worker.
	start_agent aggregator mqpipe-aggregator -d "$T/aggregator.db"
	pub job.submit '{"requestId":"hand","requests":[{"caseId":"a"},{"caseId":"b"}]}'
	wait_for 30 bash -c "[ \$(grep -c '^compute.request {\"requestId\":\"hand\"' '$T/out.out') -ge 2 ]" ||
		fail "hand was not dispatched: $(grep hand "$T/out.out")"
}
it_case later-good-job-dispatched case_hand_dispatched dispatcher-refuses-unrunnable-job

case_refused_jobs_not_dispatched() { # by the time a later job was
	local id
	for id in neg huge src nul; do
		! grep -q "\"requestId\":\"$id\"" "$T/out.out" || fail "job $id was dispatched"
		[ "$(ddb "SELECT count(*) FROM job WHERE request_id = '$id'")" = 0 ] || fail "job $id was stored"
	done
}
it_case refused-jobs-neither-dispatched-nor-stored case_refused_jobs_not_dispatched later-good-job-dispatched

case_refused_finishes() { # a case a worker refuses still finishes its job, failed
	local summary
	start_agent worker mqpipe-worker -i it-worker -d "$T/worker.db"
	pub compute.request '{"requestId":"hand","caseId":"a","index":0,"case":{"caseId":"a"}}'
	pub compute.request '{"requestId":"hand","caseId":"b","index":1,"case":{"caseId":"b","workMs":-5}}'
	expect_dl compute.request 1
	dl_has compute.request "case: field 'workMs' must be a whole number from 0 to 3600000"
	wait_for 60 log_has "$T/out.out" '^job.summary \{"requestId":"hand",' ||
		fail "the job with a refused case never finished: $(grep hand "$T/out.out" | tail -n 3)"
	summary=$(grep '^job.summary {"requestId":"hand",' "$T/out.out" | head -n 1 | cut -d' ' -f2-)
	echo "$summary" | jq -e '.cases == 2 and ([.results[].caseId] == ["a", "b"])
		and .results[0].result == {"status": "success"}
		and .results[1].result.status == "failed"
		and (.results[1].result.error | contains("workMs"))' >/dev/null || fail "summary: $summary"
	# The live page's "failed" column (broker-config/www/app.js) counts this:
	[ "$(echo "$summary" | jq '[.results[] | select(.result.status and .result.status != "success")] | length')" = 1 ] ||
		fail "the page would not count one failed case: $summary"
}
it_case refused-case-finishes-job-as-failed case_refused_finishes later-good-job-dispatched

case_summary_schema() {
	local summary
	summary=$(grep '^job.summary {"requestId":"hand",' "$T/out.out" | head -n 1 | cut -d' ' -f2-)
	echo "$summary" | "$MQPIPE_ROOT/scripts/schemas" validate job.summary || fail "job.summary breaks its schema"
}
it_case job-summary-schema case_summary_schema refused-case-finishes-job-as-failed
case_done_schema() {
	grep '^compute.done {"requestId":"hand"' "$T/out.out" | cut -d' ' -f2- | "$MQPIPE_ROOT/scripts/schemas" validate compute.done ||
		fail "compute.done breaks its schema"
}
it_case compute-done-schema case_done_schema refused-case-finishes-job-as-failed
case_deadletter_schema() {
	cut -d' ' -f2- "$T/dl.out" | "$MQPIPE_ROOT/scripts/schemas" validate deadletter || fail "a dead letter breaks its schema"
}
it_case deadletter-schema case_deadletter_schema
case_worker_dead_letter() {
	[ "$(sqlite3 -cmd '.timeout 5000' "$T/worker.db" "SELECT count(*) FROM deadletter")" = 1 ] || fail "the worker did not store its dead letter"
}
it_case worker-stores-its-dead-letter case_worker_dead_letter refused-case-finishes-job-as-failed
it_cases_done
