#!/usr/bin/env bash
# Poison replies (README "Ingestion", "Security"), on a broker with passwords
# and an ACL that lets the ingest agent write only its result topics,
# replies/#, deadletter/#, its status and metrics:
# - ten user.ingest requests whose response topics are not under the reply
#   prefix (success_rate, job.submit, $SYS/x, …), then a legitimate one on
#   replies/…: the legitimate one is answered, each poison one gets a 400
#   naming its response topic on user.ingest.result, nothing appears where
#   they pointed, the agent never loses its connection, nothing of them is
#   stored, and after a restart nothing is sent again;
# - the same request twice (a redelivery is byte for byte the same), without
#   correlation data or request_id: stored once, answered twice alike;
# - an output the broker refuses (here with --reply-prefix '' and a response
#   topic the ACL forbids) leaves the outbox at once as a dead letter with
#   the reason and its payload, is counted in the metrics as refused, is
#   logged once, and is not sent again after a restart.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
B=$T/broker
mkdir -p "$B"
sed -e 's/^allow_anonymous true/allow_anonymous false/' "$MQPIPE_ROOT/broker-config/test.conf.in" >"$T/acl.conf.in"
printf 'password_file @DIR@/passwd\nacl_file @DIR@/acl\n' >>"$T/acl.conf.in"
AGENT_PW=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
CLIENT_PW=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
mosquitto_passwd -c -b "$B/passwd" mqpipe-ingest "$AGENT_PW" 2>/dev/null || fail "mosquitto_passwd"
mosquitto_passwd -b "$B/passwd" client "$CLIENT_PW" 2>/dev/null || fail "mosquitto_passwd"
printf '%s\n' "$AGENT_PW" >"$T/agent.password"
chmod 600 "$T/agent.password" "$B/passwd"
cat >"$B/acl" <<'EOF'
user mqpipe-ingest
topic read user.ingest
topic read user.list
topic write user.ingest.result
topic write user.list.result
topic write replies/#
topic write deadletter/#
pattern write mqpipe/status/%c
pattern write mqpipe/metrics/%c

user client
topic readwrite #
topic read $SYS/#
EOF
broker_start "$B" "$T/acl.conf.in" || fail "cannot start the broker"
note "broker with an ACL on $BROKER_URI, dir $T"
C=(-p "$BROKER_PORT" -u client -P "$CLIENT_PW")
ingest() { # ingest NAME DB [ARGS...]: the ingest agent as mqpipe-ingest
	start_agent "$1" mqpipe-ingest -u mqpipe-ingest --password-file "$T/agent.password" -d "$T/$2" "${@:3}"
}
sql() { sqlite3 -cmd ".timeout 5000" "$T/$1" "$2"; }
sub() { # sub NAME TOPIC...: a persistent subscriber writing "topic payload" to $T/NAME.out
	local name=$1 args=() t
	shift
	for t in "$@"; do args+=(-t "$t"); done
	mosquitto_sub "${C[@]}" -i "it-$name" -c -q 1 "${args[@]}" -E || fail "cannot subscribe $name"
	mosquitto_sub "${C[@]}" -i "it-$name" -c -q 1 "${args[@]}" -v >"$T/$name.out" &
	PIDS+=("$!")
}

ingest ingest ingest.db --metrics-interval 1
ING=$AGENT_PID
sub results user.ingest.result
sub pointed success_rate job.submit job.summary dashboard.ready 'alerts/#' replies 'repliesX/#' \
	'it/#' '$SYS/x'

# Ten requests with response topics off replies/, then a legitimate one.
poison=(success_rate job.submit '$SYS/x' dashboard.ready alerts/poison user.ingest replies repliesX/1
	it/replies/1 job.summary)
for i in "${!poison[@]}"; do
	corr=()
	[ $((i % 2)) -eq 0 ] && corr=(-D publish correlation-data "poison-$i")
	mosquitto_pub "${C[@]}" -V 5 -q 1 -t user.ingest -D publish response-topic "${poison[$i]}" "${corr[@]}" \
		-m "user_name=poison$i&email=poison$i@x.com&pincode=100$i" || fail "publish poison $i"
done
case_legit() {
	local legit
	legit=$(mosquitto_rr "${C[@]}" -q 1 -t user.ingest -e replies/it/legit -W 60 \
		-m 'user_name=Legit&email=legit@x.com&pincode=4242') || fail "the legitimate request got no answer"
	[ "$(jq -c '[.status, .user.user_name]' <<<"$legit")" = '[200,"Legit"]' ] || fail "legitimate answer: $legit"
}
it_case legitimate-request-answered-after-poison case_legit

# Each poison request: a 400 on user.ingest.result naming its response topic.
case_refusals() {
	wait_for 30 bash -c "[ \$(wc -l <'$T/results.out') -ge ${#poison[@]} ]" ||
		fail "$(lines "$T/results.out") of ${#poison[@]} refusals on user.ingest.result: $(cat "$T/results.out")"
}
it_case every-poison-request-refused case_refusals
case_refusal_names() {
	local t=${poison[POISON]}
	sed 's/^user.ingest.result //' "$T/results.out" |
		jq -s -e --arg q "'$t'" 'any(.[]; .status == 400 and (.errors | length) == 1
			and .errors[0].field == "response_topic" and (.errors[0].message | contains($q)))' >/dev/null ||
		fail "no 400 naming '$t': $(cat "$T/results.out")"
}
for POISON in "${!poison[@]}"; do
	it_case "poison-400-names-$(tr -c 'a-zA-Z0-9._\n' - <<<"${poison[POISON]}")" case_refusal_names every-poison-request-refused
done
case_refusal_schema() {
	sed 's/^user.ingest.result //' "$T/results.out" | "$MQPIPE_ROOT/scripts/schemas" validate user.ingest.result ||
		fail "the refusals do not match the schema"
}
it_case refusals-match-schema case_refusal_schema every-poison-request-refused
case_nothing_where_pointed() {
	[ ! -s "$T/pointed.out" ] || fail "something was published where a poison request pointed: $(cat "$T/pointed.out")"
}
it_case nothing-published-where-poison-pointed case_nothing_where_pointed every-poison-request-refused
case_kept_connection() {
	! log_has "$T/ingest.log" 'event=connection_lost' || fail "the agent lost its connection: $(grep connection_lost "$T/ingest.log")"
	! log_has "$T/ingest.log" 'event=publish_refused' || fail "the broker refused an output: $(grep publish_refused "$T/ingest.log")"
}
it_case poison-costs-no-connection-and-no-refusal case_kept_connection every-poison-request-refused
case_poison_not_stored() {
	[ "$(sql ingest.db 'SELECT group_concat(user_name) FROM user')" = Legit ] ||
		fail "records: $(sql ingest.db 'SELECT group_concat(user_name) FROM user'), want only Legit"
}
it_case poison-requests-not-stored case_poison_not_stored every-poison-request-refused legitimate-request-answered-after-poison

# The same request twice, without correlation data or request_id: stored once.
case_twice_alike() {
	local k
	for k in 1 2; do
		mosquitto_pub "${C[@]}" -V 5 -q 1 -t user.ingest -D publish response-topic replies/it/dup \
			-m 'user_name=Dup&email=dup@x.com&pincode=5555' || fail "publish dup $k"
		mosquitto_pub "${C[@]}" -V 311 -q 1 -t user.ingest -m 'user_name=Old&email=old@x.com&pincode=3111' ||
			fail "publish old $k"
	done
	wait_for 30 bash -c "[ \$(grep -c '\"user_name\":\"Old\"' '$T/results.out') -ge 2 ]" ||
		fail "no two answers for the v3.1.1 request: $(cat "$T/results.out")"
	[ "$(grep '"user_name":"Old"' "$T/results.out" | sort -u | wc -l)" -eq 1 ] || fail "two different answers: $(grep Old "$T/results.out")"
}
it_case same-request-twice-answered-alike case_twice_alike
case_twice_stored_once() {
	# The answers to replies/it/dup came after the first ones on the same connection.
	[ "$(sql ingest.db "SELECT count(*) FROM user WHERE user_name IN ('Dup', 'Old')")" -eq 2 ] ||
		fail "repeats stored: $(sql ingest.db "SELECT user_name FROM user")"
	[ "$(sql ingest.db "SELECT count(*) FROM user WHERE user_name = 'Dup'")" -eq 1 ] || fail "Dup not stored once"
}
it_case same-request-twice-stored-once case_twice_stored_once same-request-twice-answered-alike
case_different_stored() {
	mosquitto_pub "${C[@]}" -V 5 -q 1 -t user.ingest -D publish response-topic replies/it/dup \
		-m 'user_name=Other&email=dup@x.com&pincode=5555' || fail "publish other"
	wait_for 30 bash -c "[ \$(sqlite3 -cmd '.timeout 5000' '$T/ingest.db' \"SELECT count(*) FROM user WHERE user_name = 'Other'\") -eq 1 ]" ||
		fail "a different request was not stored"
}
it_case different-request-stored case_different_stored same-request-twice-stored-once

# After a restart nothing is sent again.
case_outbox_empty() {
	wait_for 30 bash -c "[ \$(sqlite3 -cmd '.timeout 5000' '$T/ingest.db' 'SELECT count(*) FROM outbox WHERE acked_ms IS NULL') -eq 0 ]" ||
		fail "outbox not empty: $(sql ingest.db 'SELECT topic FROM outbox WHERE acked_ms IS NULL')"
	stop_pid "$ING"
	[ "$(sql ingest.db 'SELECT count(*) FROM outbox WHERE acked_ms IS NULL')" -eq 0 ] || fail "outbox not empty after the stop"
}
it_case outbox-empty-before-and-after-stop case_outbox_empty
case_restart_sends_nothing() {
	local before again
	before=$(lines "$T/results.out")
	ingest ingest ingest.db --metrics-interval 1
	ING=$AGENT_PID
	it_pass ING
	again=$(mosquitto_rr "${C[@]}" -q 1 -t user.ingest -e replies/it/again -W 60 \
		-m 'user_name=Again&email=again@x.com&pincode=4243') || fail "no answer after the restart"
	[ "$(jq -r .status <<<"$again")" = 200 ] || fail "after the restart: $again"
	[ "$(lines "$T/results.out")" -eq "$before" ] || fail "sent again after the restart: $(tail -n +$((before + 1)) "$T/results.out")"
	[ ! -s "$T/pointed.out" ] || fail "published where a poison request pointed: $(cat "$T/pointed.out")"
	! log_has "$T/ingest.log" 'event=outbox_replay' || fail "the restart replayed the outbox"
}
it_case nothing-sent-again-after-restart case_restart_sends_nothing outbox-empty-before-and-after-stop
case_records() {
	[ "$(sql ingest.db 'SELECT count(*) FROM user')" -eq "$(sql ingest.db 'SELECT count(DISTINCT user_name) FROM user')" ] ||
		fail "a record stored twice: $(sql ingest.db 'SELECT user_name FROM user')"
	[ "$(sql ingest.db "SELECT group_concat(user_name) FROM (SELECT user_name FROM user ORDER BY id)")" = Legit,Dup,Old,Other,Again ] ||
		fail "records: $(sql ingest.db "SELECT group_concat(user_name) FROM user")"
}
it_case every-record-stored-once-in-order case_records nothing-sent-again-after-restart different-request-stored
case_never_lost() {
	! log_has "$T/ingest.log" 'event=connection_lost' || fail "the agent lost its connection"
}
it_case connection-never-lost case_never_lost

# An output the broker refuses: a dead letter with the reason, counted, not sent again.
case_refused_dead_letter() {
	local row
	ingest open open.db -i it-open --reply-prefix '' --metrics-interval 1
	OPEN=$AGENT_PID
	it_pass OPEN
	sub forbidden 'forbidden/#'
	mosquitto_pub "${C[@]}" -V 5 -q 1 -t user.ingest -D publish response-topic forbidden/1 \
		-m 'user_name=Refused&email=refused@x.com&pincode=6666' || fail "publish refused"
	wait_for 30 bash -c "[ \$(sqlite3 -cmd '.timeout 5000' '$T/open.db' 'SELECT count(*) FROM deadletter') -ge 1 ]" ||
		fail "no dead letter for the refused reply: $(grep -E 'refused|error' "$T/open.log")"
	row=$(sql open.db "SELECT topic || '|' || reason FROM deadletter")
	[ "$row" = "forbidden/1|publish refused by the broker: 135 not authorized" ] || fail "dead letter: $row"
	jq -e '.status == 200 and .user.user_name == "Refused"' <<<"$(sql open.db 'SELECT CAST(payload AS TEXT) FROM deadletter')" >/dev/null ||
		fail "the dead letter lost the payload: $(sql open.db 'SELECT CAST(payload AS TEXT) FROM deadletter')"
	[ "$(sql open.db 'SELECT count(*) FROM outbox WHERE acked_ms IS NULL')" -eq 0 ] || fail "the refused reply is still in the outbox"
}
it_case refused-output-dead-lettered-with-payload case_refused_dead_letter
case_refused_counted() {
	wait_for 30 bash -c "mosquitto_sub -p $BROKER_PORT -u client -P $CLIENT_PW -t mqpipe/metrics/it-open -C 1 -W 5 |
		jq -e '.refused == 1 and .outbox_depth == 0' >/dev/null" || fail "metrics: $(mosquitto_sub "${C[@]}" -t mqpipe/metrics/it-open -C 1 -W 5)"
	mosquitto_sub "${C[@]}" -t mqpipe/metrics/it-open -C 1 -W 5 | "$MQPIPE_ROOT/scripts/schemas" validate metrics ||
		fail "metrics schema"
}
it_case refused-output-counted-in-metrics case_refused_counted refused-output-dead-lettered-with-payload
case_refused_logged() {
	[ "$(grep -c 'event=publish_refused' "$T/open.log")" -eq 1 ] || fail "not logged once: $(grep publish_refused "$T/open.log")"
	grep -q 'event=publish_refused.*reason=135.*action="dead-lettered"' "$T/open.log" || fail "$(grep publish_refused "$T/open.log")"
}
it_case refused-output-logged-once case_refused_logged refused-output-dead-lettered-with-payload
case_refused_not_again() {
	stop_pid "$OPEN"
	ingest open open.db -i it-open --reply-prefix '' --metrics-interval 1
	mosquitto_rr "${C[@]}" -q 1 -t user.ingest -e replies/it/open -W 60 \
		-m 'user_name=After&email=after@x.com&pincode=6667' >/dev/null || fail "no answer after the restart"
	[ "$(grep -c 'event=publish_refused' "$T/open.log")" -eq 1 ] || fail "sent again after the restart: $(grep publish_refused "$T/open.log")"
	[ "$(sql open.db 'SELECT count(*) FROM deadletter')" -eq 1 ] || fail "dead letters: $(sql open.db 'SELECT count(*) FROM deadletter')"
	[ ! -s "$T/forbidden.out" ] || fail "a subscriber saw the refused reply: $(cat "$T/forbidden.out")"
}
it_case refused-output-not-sent-again-after-restart case_refused_not_again refused-output-logged-once
it_cases_done
