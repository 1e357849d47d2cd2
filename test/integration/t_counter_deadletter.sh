#!/usr/bin/env bash
# Every class of bad input becomes a dead letter with a reason, on
# deadletter/<topic> and in the deadletter table; the counter carries on.
source "$(dirname "$0")/lib.sh"
it_setup
start_counter
subscribe dl 'deadletter/#'
subscribe rates success_rate

long=$(printf 'm%.0s' $(seq 1 257))
# topic | payload | part of the expected reason
cases=(
	"recv_message|hello|not JSON"
	"recv_message|[1,2]|must be a JSON object"
	"recv_message|{\"timestamp\":1}|missing field 'moduleId'"
	"recv_message|{\"moduleId\":5,\"timestamp\":1}|must be a string"
	"recv_message|{\"moduleId\":\"\",\"timestamp\":1}|must not be empty"
	"recv_message|{\"moduleId\":\"$long\",\"timestamp\":1}|longer than 256 bytes"
	"recv_message|{\"moduleId\":\"m\",\"timestamp\":\"1\"}|must be a number"
	"recv_message|{\"moduleId\":\"m\",\"timestamp\":-1}|whole number from 0 to 9007199254740991"
	"recv_message|{\"moduleId\":\"m\",\"timestamp\":1.5}|whole number"
	"recv_message|{\"moduleId\":\"m\",\"timestamp\":9007199254740992}|whole number"
	"recv_message|{\"moduleId\":\"m\",\"timestamp\":1} trailing|after the value"
	"weekly_diagnostic|{\"moduleid\":\"m\",\"timestamp\":1}|missing field 'attempts'"
	"weekly_diagnostic|{\"moduleid\":\"m\",\"timestamp\":1,\"attempts\":4294967296}|from 0 to 4294967295"
	"weekly_diagnostic|{\"moduleid\":\"a\",\"moduleId\":\"b\",\"timestamp\":1,\"attempts\":1}|differ"
)
for c in "${cases[@]}"; do
	IFS='|' read -r topic payload _ <<<"$c"
	pub "$topic" "$payload"
done
# An empty payload and invalid UTF-8 (sent from a file, as bytes).
mosquitto_pub -p "$BROKER_PORT" -q 1 -t recv_message -n
printf '{"moduleId":"\xff\xfe","timestamp":1}' >"$T/bad-utf8"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t weekly_diagnostic -f "$T/bad-utf8"
total=$((${#cases[@]} + 2))

# The counter carries on: a good pair still gives its rate.
pub recv_message '{"moduleId":"ok","timestamp":10}'
pub weekly_diagnostic '{"moduleid":"ok","timestamp":11,"attempts":1}'

case_all_arrive() {
	wait_for 30 bash -c "[ \$(wc -l <'$T/dl.out') -ge $total ]" || fail "only $(lines "$T/dl.out") of $total dead letters"
}
it_case every-bad-input-dead-lettered case_all_arrive

case_carries_on() {
	wait_for 30 log_has "$T/rates.out" '"moduleid":"ok"' || fail "the counter stopped after bad input"
}
it_case counter-carries-on-after-bad-input case_carries_on

# One case per class of bad input: its dead letter, in publishing order.
case_class() {
	local topic payload reason line
	IFS='|' read -r topic payload reason <<<"${cases[CLASS - 1]}"
	line=$(sed -n "${CLASS}p" "$T/dl.out")
	[ "${line%% *}" = "deadletter/$topic" ] || fail "case $CLASS on ${line%% *}, want deadletter/$topic"
	echo "${line#* }" | jq -e --arg t "$topic" --arg p "$payload" --arg r "$reason" \
		'.agent == "counter" and .topic == $t and .payload == $p and (.reason | contains($r))
		 and (.received_at | type == "number")' >/dev/null ||
		fail "case $CLASS ($payload): ${line#* } lacks reason '$reason'"
}
for ((CLASS = 1; CLASS <= ${#cases[@]}; CLASS++)); do
	IFS='|' read -r topic _ reason <<<"${cases[CLASS - 1]}"
	it_case "$(printf 'class-%02d-%s-%s' "$CLASS" "$topic" "$(tr -cs 'a-zA-Z0-9' - <<<"${reason,,}" | sed 's/-*$//')")" \
		case_class every-bad-input-dead-lettered
done

case_empty() {
	local line
	line=$(sed -n "$((${#cases[@]} + 1))p" "$T/dl.out")
	echo "${line#* }" | jq -e '.payload == "" and (.reason | contains("empty"))' >/dev/null || fail "empty payload: $line"
}
it_case empty-payload case_empty every-bad-input-dead-lettered

case_bad_utf8() {
	local line
	line=$(sed -n "$((${#cases[@]} + 2))p" "$T/dl.out")
	echo "${line#* }" | jq -e --arg b "$(base64 -w0 "$T/bad-utf8")" \
		'.payload_b64 == $b and (has("payload") | not) and (.reason | contains("UTF-8"))' >/dev/null ||
		fail "invalid UTF-8: $line"
}
it_case invalid-utf8-as-base64 case_bad_utf8 every-bad-input-dead-lettered

case_schema() {
	cut -d' ' -f2- "$T/dl.out" | "$MQPIPE_ROOT/scripts/schemas" validate deadletter ||
		fail "a dead letter breaks schemas/deadletter.schema.json"
}
it_case dead-letters-match-schema case_schema every-bad-input-dead-lettered

case_table() {
	[ "$(db 'SELECT count(*) FROM deadletter')" -eq "$total" ] || fail "deadletter table holds $(db 'SELECT count(*) FROM deadletter'), want $total"
	[ "$(db "SELECT count(*) FROM deadletter WHERE payload = x'$(od -An -tx1 "$T/bad-utf8" | tr -d ' \n')'")" -eq 1 ] ||
		fail "the binary payload is not stored byte for byte"
}
it_case deadletter-table-byte-for-byte case_table every-bad-input-dead-lettered

case_nothing_stored() {
	[ "$(db 'SELECT count(*) FROM recv_message')" -eq 1 ] || fail "a bad message was stored"
	kill -0 "$COUNTER_PID" || fail "the counter died"
}
it_case bad-messages-not-stored case_nothing_stored counter-carries-on-after-bad-input

# Over --max-payload (default 1 MiB): a dead letter holding the first 256
# bytes, and the agent never holds the payload whole.
case_huge() {
	local line
	head -c 3000000 /dev/zero | tr '\0' 'x' >"$T/huge"
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t recv_message -f "$T/huge"
	pub recv_message '{"moduleId":"after-huge","timestamp":12}'
	wait_for 30 bash -c "[ \$(wc -l <'$T/dl.out') -ge $((total + 1)) ]" || fail "no dead letter for a 3 MB payload"
	line=$(sed -n "$((total + 1))p" "$T/dl.out")
	echo "${line#* }" | jq -e '(.payload | length) == 256 and (.reason | contains("payload of 3000000 bytes is over the limit of 1048576"))' \
		>/dev/null || fail "3 MB payload: $(cut -c1-300 <<<"$line")"
	wait_for 20 bash -c "[ \$(sqlite3 '$T/counter.db' 'SELECT count(*) FROM recv_message') -eq 2 ]" ||
		fail "the counter stopped after the huge payload"
}
it_case over-max-payload-first-256-bytes case_huge every-bad-input-dead-lettered bad-messages-not-stored

case_memory() {
	[ "$(awk '/^VmHWM/ { print $2 }' "/proc/$COUNTER_PID/status")" -lt 65536 ] || fail "the counter's memory grew past 64 MB"
}
it_case counter-memory-under-64mb case_memory over-max-payload-first-256-bytes
it_cases_done
