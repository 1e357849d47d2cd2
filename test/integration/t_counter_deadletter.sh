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
wait_for 30 bash -c "[ \$(wc -l <'$T/dl.out') -ge $total ]" || fail "only $(lines "$T/dl.out") of $total dead letters"
wait_for 30 log_has "$T/rates.out" '"moduleid":"ok"' || fail "the counter stopped after bad input"

i=0
for c in "${cases[@]}"; do
	IFS='|' read -r topic payload reason <<<"$c"
	i=$((i + 1))
	line=$(sed -n "${i}p" "$T/dl.out")
	[ "${line%% *}" = "deadletter/$topic" ] || fail "case $i on ${line%% *}, want deadletter/$topic"
	echo "${line#* }" | jq -e --arg t "$topic" --arg p "$payload" --arg r "$reason" \
		'.agent == "counter" and .topic == $t and .payload == $p and (.reason | contains($r))
		 and (.received_at | type == "number")' >/dev/null ||
		fail "case $i ($payload): ${line#* } lacks reason '$reason'"
done
line=$(sed -n "$((i + 1))p" "$T/dl.out")
echo "${line#* }" | jq -e '.payload == "" and (.reason | contains("empty"))' >/dev/null || fail "empty payload: $line"
line=$(sed -n "$((i + 2))p" "$T/dl.out")
echo "${line#* }" | jq -e --arg b "$(base64 -w0 "$T/bad-utf8")" \
	'.payload_b64 == $b and (has("payload") | not) and (.reason | contains("UTF-8"))' >/dev/null ||
	fail "invalid UTF-8: $line"
cut -d' ' -f2- "$T/dl.out" | "$MQPIPE_ROOT/scripts/schemas" validate deadletter ||
	fail "a dead letter breaks schemas/deadletter.schema.json"
[ "$(db 'SELECT count(*) FROM deadletter')" -eq "$total" ] || fail "deadletter table holds $(db 'SELECT count(*) FROM deadletter'), want $total"
[ "$(db "SELECT count(*) FROM deadletter WHERE payload = x'$(od -An -tx1 "$T/bad-utf8" | tr -d ' \n')'")" -eq 1 ] ||
	fail "the binary payload is not stored byte for byte"
[ "$(db 'SELECT count(*) FROM recv_message')" -eq 1 ] || fail "a bad message was stored"
kill -0 "$COUNTER_PID" || fail "the counter died"

# Over --max-payload (default 1 MiB): a dead letter holding the first 256
# bytes, and the agent never holds the payload whole.
head -c 3000000 /dev/zero | tr '\0' 'x' >"$T/huge"
mosquitto_pub -p "$BROKER_PORT" -q 1 -t recv_message -f "$T/huge"
pub recv_message '{"moduleId":"after-huge","timestamp":12}'
wait_for 30 bash -c "[ \$(wc -l <'$T/dl.out') -ge $((total + 1)) ]" || fail "no dead letter for a 3 MB payload"
line=$(sed -n "$((total + 1))p" "$T/dl.out")
echo "${line#* }" | jq -e '(.payload | length) == 256 and (.reason | contains("payload of 3000000 bytes is over the limit of 1048576"))' \
	>/dev/null || fail "3 MB payload: $(cut -c1-300 <<<"$line")"
wait_for 20 bash -c "[ \$(sqlite3 '$T/counter.db' 'SELECT count(*) FROM recv_message') -eq 2 ]" ||
	fail "the counter stopped after the huge payload"
[ "$(awk '/^VmHWM/ { print $2 }' "/proc/$COUNTER_PID/status")" -lt 65536 ] || fail "the counter's memory grew past 64 MB"
echo "all ok: $((total + 1)) dead letters"
