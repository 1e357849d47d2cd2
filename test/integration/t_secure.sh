#!/usr/bin/env bash
# The secure profile (broker-config/secure/): an anonymous client is refused,
# and so is a wrong password; a client without TLS cannot reach the TLS
# listener; of all the pipeline's identities only the counter's can publish
# success_rate; the whole pipeline runs on it (the sample traces replayed by
# four publisher identities give their expected outputs, recorded by a
# reader identity); a reply off the reply prefix is answered 400 on the
# fallback topic and nothing is kept for it; a subscription a client is not entitled to is refused.
# (Each identity is one connection at a time: the client id is the user name,
# so every concurrent client here has an identity of its own.)
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
SEC=$T/broker
"$MQPIPE_ROOT/broker-config/secure/setup" "$SEC" --user mqpipe-recorder:reader \
	--user mqpipe-replay-1:publisher --user mqpipe-replay-2:publisher \
	--user mqpipe-replay-3:publisher --user mqpipe-replay-4:publisher >/dev/null || fail "setup"
broker_start "$SEC" "$MQPIPE_ROOT/broker-config/secure/test.conf.in" || fail "cannot start the secure broker"
note "secure broker on $BROKER_URI"
case_tls_listener() {
	[[ $BROKER_URI == ssl://* ]] || fail "not a TLS listener: $BROKER_URI"
}
it_case listener-is-tls case_tls_listener
TLS=(-h 127.0.0.1 -p "$BROKER_PORT" --cafile "$SEC/ca.crt")
pw() { cat "$SEC/mqpipe-$1.password"; }
case_setup_again() { # running setup again keeps every key, password and identity
	(cd "$SEC" && sha256sum ./*.password ca.key server.key identities) >"$T/before.sum"
	"$MQPIPE_ROOT/broker-config/secure/setup" "$SEC" >/dev/null || fail "setup, again"
	(cd "$SEC" && sha256sum -c --quiet "$T/before.sum") || fail "setup changed its keys or passwords"
}
it_case setup-again-keeps-keys-and-passwords case_setup_again
case_admin_mode() {
	[ "$(stat -c %a "$SEC/mqpipe-admin.password")" = 600 ] || fail "the admin's password is not mode 600"
}
it_case admin-password-mode-600 case_admin_mode
as() { # as USER: the credentials flags of mosquitto_pub/sub
	echo "-u mqpipe-$1 -P $(pw "$1")"
}
refused() { # refused COMMAND…: the command fails within 10 s
	! timeout 10 "$@" >"$T/refused.out" 2>&1
}

case_anonymous() {
	refused mosquitto_pub "${TLS[@]}" -q 1 -t recv_message -m '{}' || fail "anonymous publish accepted"
	grep -qi "not authori[sz]ed" "$T/refused.out" || fail "anonymous: $(cat "$T/refused.out")"
}
it_case anonymous-client-refused case_anonymous
case_wrong_password() {
	refused mosquitto_pub "${TLS[@]}" -u mqpipe-publisher -P wrong -q 1 -t recv_message -m '{}' || fail "wrong password accepted"
	grep -qi "not authori[sz]ed" "$T/refused.out" || fail "wrong password: $(cat "$T/refused.out")"
}
it_case wrong-password-refused case_wrong_password

case_plain_mqtt() { # a client without TLS cannot reach the TLS listener
	# shellcheck disable=SC2046
	refused mosquitto_pub -h 127.0.0.1 -p "$BROKER_PORT" $(as publisher) -q 1 -t recv_message -m '{}' ||
		fail "plain MQTT reached the TLS listener"
}
it_case plain-mqtt-cannot-reach-tls-listener case_plain_mqtt

"$BIN/mqpipe-record" -b "$BROKER_URI" --cafile "$SEC/ca.crt" -u mqpipe-recorder --password-file "$SEC/mqpipe-recorder.password" \
	-t success_rate -t job.summary -t dashboard.ready -t 'alerts/#' -t 'deadletter/#' -t 'replies/#' \
	-o "$T/out.jsonl" 2>"$T/rec.err" &
PIDS+=("$!")
wait_for 20 log_has "$T/rec.err" recording || fail "recorder: $(cat "$T/rec.err")"

# Before the agents start: a client borrowing an agent's identity would take
# its client id, and so its session.
case_counter_publishes() {
	local u
	for u in dispatcher worker-1 worker-2 aggregator ingest alerter publisher reader; do
		# shellcheck disable=SC2046
		mosquitto_pub "${TLS[@]}" $(as "$u") -V 5 -q 1 -t success_rate \
			-m "{\"moduleid\":\"forged-by-$u\",\"timestamp\":1,\"success_rate\":100,\"received\":1,\"attempts\":1}" \
			>"$T/forge-$u.out" 2>&1 || true
	done
	# shellcheck disable=SC2046
	mosquitto_pub "${TLS[@]}" $(as counter) -V 5 -q 1 -t success_rate \
		-m '{"moduleid":"by-the-counter","timestamp":1,"success_rate":100,"received":1,"attempts":1}' ||
		fail "the counter's credentials cannot publish success_rate"
	wait_for 20 grep -q by-the-counter "$T/out.jsonl" || fail "the counter's success_rate did not arrive"
}
it_case counter-identity-publishes-success-rate case_counter_publishes
case_forged_refused() { # by every other identity, published before the counter's
	! grep -q forged "$T/out.jsonl" || fail "a forged success_rate arrived: $(grep forged "$T/out.jsonl")"
	grep -qi "not authori[sz]ed" "$T/forge-dispatcher.out" || fail "the refusal was not reported: $(cat "$T/forge-dispatcher.out")"
}
it_case other-identities-cannot-publish-success-rate case_forged_refused counter-identity-publishes-success-rate

note "the pipeline on the secure profile"
for a in counter dispatcher aggregator ingest alerter; do
	start_agent "$a" "mqpipe-$a" -d "$T/$a.db" --cafile "$SEC/ca.crt" -u "mqpipe-$a" \
		--password-file "$SEC/mqpipe-$a.password"
done
# The worker from the environment, as a systemd drop-in would set it; its
# client id is its user name.
MQPIPE_USERNAME=mqpipe-worker-1 MQPIPE_PASSWORD_FILE=$SEC/mqpipe-worker-1.password MQPIPE_CAFILE=$SEC/ca.crt \
	start_agent worker mqpipe-worker -d "$T/worker.db"
case_worker_client_id() {
	log_has "$T/worker.log" "event=online .*client_id=mqpipe-worker-1 " || fail "the worker's client id: $(grep event=online "$T/worker.log")"
}
it_case worker-client-id-is-its-user-name case_worker_client_id

case_sample_traces() { # replayed by four publisher identities (without the counter's own success_rate from above)
	secure_sample_traces "$SEC" by-the-counter
}
it_case sample-traces-give-expected-outputs case_sample_traces
case_no_publish_refused() {
	! grep -l "event=publish_refused" "$T"/*.log || fail "the broker refused an agent's own output"
}
it_case agents-outputs-not-refused case_no_publish_refused
case_no_subscribe_refused() {
	! grep -l "event=subscribe_refused" "$T"/*.log || fail "the broker refused an agent's subscription"
}
it_case agents-subscriptions-not-refused case_no_subscribe_refused

case_reply_off_prefix() { # to the fallback topic as a 400; not published where the requester pointed
	local fb
	# shellcheck disable=SC2046
	mosquitto_sub "${TLS[@]}" $(as reader) -q 1 -t user.ingest.result -C 1 -W 20 >"$T/fallback.json" &
	fb=$!
	sleep 1
	# shellcheck disable=SC2046
	mosquitto_pub "${TLS[@]}" $(as publisher) -V 5 -q 1 -t user.ingest -D publish response-topic elsewhere/x \
		-m '{"user_name":"Zed","email":"zed@example.com","pincode":"1234"}'
	wait $fb || fail "no answer on user.ingest.result"
	[ "$(jq -r '.status' "$T/fallback.json")" = 400 ] &&
		jq -e '.errors[] | select(.field == "response_topic") | .message | contains("elsewhere/x")' "$T/fallback.json" >/dev/null ||
		fail "fallback answer: $(cat "$T/fallback.json")"
	log_has "$T/ingest.log" "event=reply_refused" || fail "no reply_refused: $(tail -3 "$T/ingest.log")"
	! log_has "$T/ingest.log" "event=publish_refused" || fail "ingest published where the requester pointed"
}
it_case reply-off-prefix-answered-400-on-fallback case_reply_off_prefix
case_reply_after_refusal() {
	local reply
	# shellcheck disable=SC2046
	reply=$(mosquitto_rr "${TLS[@]}" $(as publisher) -q 1 -t user.ingest -e replies/mqpipe-publisher/1 -W 10 \
		-m '{"user_name":"Yan","email":"yan@example.com","pincode":"4321"}') || fail "no reply after the refusal"
	[ "$(jq -r .status <<<"$reply")" = 200 ] || fail "reply: $reply"
}
it_case reply-on-prefix-answered-after-refusal case_reply_after_refusal
case_refused_not_stored() {
	[ "$(sqlite3 "$T/ingest.db" "SELECT count(*) FROM user WHERE user_name = 'Zed'")" = 0 ] ||
		fail "the refused request was stored"
}
it_case refused-request-not-stored case_refused_not_stored reply-off-prefix-answered-400-on-fallback
case_outbox_drained() { # nothing kept or retried
	# (acknowledgements are marked by a later transaction: allow it a moment)
	wait_for 20 bash -c "[ \$(sqlite3 '$T/ingest.db' 'SELECT count(*) FROM outbox WHERE acked_ms IS NULL') = 0 ]" ||
		fail "outputs wait in the ingest outbox: $(sqlite3 "$T/ingest.db" 'SELECT topic FROM outbox WHERE acked_ms IS NULL')"
}
it_case ingest-outbox-drained-after-refusal case_outbox_drained

# A client reads only what its roles allow: the publisher's subscriptions
# are refused (SUBACK failure), so neither the retained status nor a new
# success_rate reaches it; the reader gets both.
case_reader_reads() {
	local peek rd
	# shellcheck disable=SC2046
	mosquitto_sub "${TLS[@]}" $(as publisher) -q 1 -t success_rate -t 'mqpipe/status/#' -W 4 >"$T/peek.out" 2>&1 &
	peek=$!
	# shellcheck disable=SC2046
	mosquitto_sub "${TLS[@]}" $(as reader) -q 1 -t success_rate -t 'mqpipe/status/#' -W 4 >"$T/reader.out" 2>&1 &
	rd=$!
	sleep 1
	# shellcheck disable=SC2046
	mosquitto_pub "${TLS[@]}" $(as replay-1) -q 1 -t weekly_diagnostic -m '{"moduleid":"late","timestamp":2,"attempts":1}'
	wait $peek || true
	wait $rd || true
	grep -q '"state":"online"' "$T/reader.out" && grep -q '"late"' "$T/reader.out" || fail "the reader missed: $(cat "$T/reader.out")"
}
it_case reader-gets-status-and-success-rate case_reader_reads
case_publisher_refused() {
	! grep -q '"state"\|"late"' "$T/peek.out" || fail "the publisher read: $(cat "$T/peek.out")"
	grep -q "denied" "$T/peek.out" || fail "the publisher's subscriptions were not refused: $(cat "$T/peek.out")"
}
it_case publisher-subscriptions-refused case_publisher_refused reader-gets-status-and-success-rate
it_cases_done
