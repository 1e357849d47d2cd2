#!/usr/bin/env bash
# Validated ingestion over MQTT 5 request/response, with mosquitto_rr as the
# client: a valid record is stored and answered 200 with its id; an invalid
# one 400 with every bad field; a request without a response topic (MQTT 5
# without one, or a v3.1.1 client) is answered on user.ingest.result; a
# repeated correlation data (on the same response topic) or request_id gets
# the first answer and stores nothing new, across a restart; user.list pages
# through a few hundred records with its cursor.
source "$(dirname "$0")/lib.sh"
it_setup
start_agent ingest mqpipe-ingest -d "$T/ingest.db"
rr() { mosquitto_rr -p "$BROKER_PORT" -q 1 -e "replies/it/$1" -W 10 "${@:2}"; }
users() { sqlite3 -cmd ".timeout 5000" "$T/ingest.db" "SELECT count(*) FROM user"; }

case_valid_json() {
	local out
	out=$(rr 1 -t user.ingest -m '{"user_name":"Rishabh","email":"rishabh@gmail.com","pincode":3055}')
	[ "$(jq -c '[.status, .id, .user.user_name, .user.email, .user.pincode]' <<<"$out")" = \
		'[200,1,"Rishabh","rishabh@gmail.com","3055"]' ] || fail "valid JSON: $out"
	jq -e '.user.created_at > 1700000000000' <<<"$out" >/dev/null || fail "created_at: $out"
	"$MQPIPE_ROOT/scripts/schemas" validate user.ingest.result <<<"$out" || fail "reply schema"
}
it_case valid-json-answered-on-response-topic case_valid_json

case_query_string() { # the seed's
	local out
	out=$(rr 1 -t user.ingest -m 'user_name=Ada+Lovelace%21&email=ada@math.com&pincode=012345')
	[ "$(jq -c '[.status, .user.user_name, .user.pincode]' <<<"$out")" = '[200,"Ada Lovelace!","012345"]' ] ||
		fail "query string: $out"
}
it_case query-string case_query_string

case_every_bad_field() {
	local out
	out=$(rr 1 -t user.ingest -m 'user_name=&email=bad@example.org&pincode=12')
	[ "$(jq -c '[.status, [.errors[].field]]' <<<"$out")" = '[400,["user_name","email","pincode"]]' ] ||
		fail "400: $out"
	"$MQPIPE_ROOT/scripts/schemas" validate user.ingest.result <<<"$out" || fail "400 schema"
}
it_case every-bad-field-in-one-400 case_every_bad_field

case_decoder_errors() {
	local out
	out=$(rr 1 -t user.ingest -m 'user_name=x%zz&pincode=1&pincode=2')
	[ "$(jq -c '[.status, [.errors[].field]]' <<<"$out")" = '[400,["user_name","pincode"]]' ] ||
		fail "decoder errors: $out"
}
it_case query-decoder-errors-400 case_decoder_errors

case_bad_json() {
	local out
	out=$(rr 1 -t user.ingest -m '{"user_name": "x",')
	[ "$(jq -c '[.status, .errors[0].field]' <<<"$out")" = '[400,"body"]' ] || fail "bad JSON: $out"
}
it_case bad-json-400-body case_bad_json

case_refused_not_stored() { # the two valid records only
	[ "$(users)" -eq 2 ] || fail "refused records were stored: $(users)"
}
it_case refused-records-not-stored case_refused_not_stored valid-json-answered-on-response-topic query-string

case_no_response_topic() { # user.ingest.result, for MQTT 5 and v3.1.1 clients
	subscribe res user.ingest.result
	mosquitto_pub -p "$BROKER_PORT" -q 1 -V 5 -t user.ingest -m 'user_name=five&email=f5@x.com&pincode=5555'
	mosquitto_pub -p "$BROKER_PORT" -q 1 -V 311 -t user.ingest -m 'user_name=old&email=old@x.com&pincode=3111'
	wait_for 20 bash -c "[ \$(wc -l <'$T/res.out') -ge 2 ]" || fail "no fallback replies: $(cat "$T/res.out")"
	grep -q '^user.ingest.result {"status":200,"id":[0-9]*,"user":{"user_name":"five"' "$T/res.out" || fail "$(cat "$T/res.out")"
	grep -q '^user.ingest.result {"status":200,"id":[0-9]*,"user":{"user_name":"old"' "$T/res.out" || fail "$(cat "$T/res.out")"
}
it_case no-response-topic-answers-on-result case_no_response_topic

case_repeated_correlation() { # the first answer, nothing stored
	first=$(rr 2 -t user.ingest -D publish correlation-data req-42 -m 'user_name=A&email=a1@b.com&pincode=1234')
	local again
	again=$(rr 2 -t user.ingest -D publish correlation-data req-42 -m 'user_name=B&email=b1@b.com&pincode=4321')
	[ "$first" = "$again" ] || fail "repeat answered differently: $first / $again"
	before=$(users)
	it_pass first before
}
it_case repeated-correlation-data-first-answer case_repeated_correlation

case_repeats_across_restart() { # and a repeated request_id, on user.ingest.result
	pub user.ingest '{"request_id":"r-7","user_name":"C","email":"c@c.com","pincode":"7777"}'
	wait_for 20 log_has "$T/res.out" '"user_name":"C"' || fail "no answer for r-7"
	stop_pid "$AGENT_PID"
	start_agent ingest mqpipe-ingest -d "$T/ingest.db"
	it_pass AGENT_PID
	pub user.ingest '{"request_id":"r-7","user_name":"D","email":"d@d.com","pincode":"8888"}'
	local again
	again=$(rr 2 -t user.ingest -D publish correlation-data req-42 -m 'user_name=E&email=e1@b.com&pincode=1234')
	[ "$first" = "$again" ] || fail "the repeat after a restart answered differently: $again"
	wait_for 20 bash -c "[ \$(grep -c '\"user_name\":\"C\"' '$T/res.out') -ge 2 ]" || fail "r-7 repeat: $(cat "$T/res.out")"
	! grep -q '"user_name":"D"' "$T/res.out" || fail "the repeated request_id stored a new record"
	[ "$(users)" -eq $((before + 1)) ] || fail "repeats stored records: $(users), want $((before + 1))"
}
it_case repeats-answered-the-same-after-restart case_repeats_across_restart \
	repeated-correlation-data-first-answer no-response-topic-answers-on-result

case_user_list_paging() { # 300 more records, then user.list pages through all of them
	local total after=null pages=0 req page
	seq 1 300 | awk '{ printf "user_name=bulk%d&email=bulk%d@x.com&pincode=%04d\n", $1, $1, $1 }' >"$T/bulk.txt"
	total=$(($(users) + 300))
	pub_lines user.ingest "$T/bulk.txt"
	wait_for 30 bash -c "[ \$(sqlite3 -cmd '.timeout 5000' '$T/ingest.db' 'SELECT count(*) FROM user') -eq $total ]" ||
		fail "stored $(users) of $total"
	: >"$T/ids.txt"
	while :; do
		if [ "$after" = null ]; then req='{"limit":64}'; else req="{\"limit\":64,\"after\":\"$after\"}"; fi
		page=$(rr 5 -t user.list -m "$req")
		[ "$(jq -r .status <<<"$page")" = 200 ] || fail "list: $page"
		jq -r '.items[].id' <<<"$page" >>"$T/ids.txt"
		after=$(jq -r '.next' <<<"$page")
		pages=$((pages + 1))
		[ "$after" != null ] || break
		[ "$pages" -lt 20 ] || fail "paging does not end"
	done
	[ "$pages" -eq $(((total + 63) / 64)) ] || fail "$pages pages for $total records"
	[ "$(wc -l <"$T/ids.txt")" -eq "$total" ] || fail "listed $(wc -l <"$T/ids.txt") of $total"
	sort -n -c "$T/ids.txt" || fail "not oldest first"
	[ "$(sort -u "$T/ids.txt" | wc -l)" -eq "$total" ] || fail "a record listed twice"
}
it_case user-list-pages-through-all case_user_list_paging

case_user_list_schema() {
	rr 5 -t user.list -m '{"limit":2}' | "$MQPIPE_ROOT/scripts/schemas" validate user.list.result || fail "list schema"
}
it_case user-list-schema case_user_list_schema

case_user_list_bad_request() {
	local out
	out=$(rr 5 -t user.list -m '{"limit":5000,"after":"nope"}')
	[ "$(jq -c '[.status, [.errors[].field]]' <<<"$out")" = '[400,["limit","after"]]' ] || fail "bad list: $out"
}
it_case user-list-bad-request-400 case_user_list_bad_request

case_load() { # 500 random requests, every answer matched, its 200s are the new records
	local before out
	before=$(users)
	out=$("$BIN/mqpipe-load" -b "$BROKER_URI" -n 500 --window 16 --json)
	[ "$(jq '.answered == 500 and .lost == 0 and .other == 0 and .status_400 > 0' <<<"$out")" = true ] ||
		fail "load: $out"
	[ "$(users)" -eq $((before + $(jq .status_200 <<<"$out"))) ] || fail "load stored $(users), not $before + $(jq .status_200 <<<"$out")"
}
it_case mqpipe-load-answers-matched case_load

case_over_max_payload() { # a 400 naming the body, and a dead letter
	local bigsub big
	head -c 2000000 /dev/zero | tr '\0' 'a' >"$T/huge"
	# (mosquitto_rr has no -f, and one argument holds at most 128 KiB)
	mosquitto_sub -p "$BROKER_PORT" -q 1 -t replies/it/6 -C 1 -W 20 >"$T/big.out" &
	bigsub=$!
	sleep 0.3
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t user.ingest -f "$T/huge" -D publish response-topic replies/it/6 \
		-D publish correlation-data big-1
	wait "$bigsub" || fail "no answer to a 2 MB request"
	big=$(cat "$T/big.out")
	[ "$(jq -c '[.status, .errors[0].field]' <<<"$big")" = '[400,"body"]' ] || fail "2 MB request: $(cut -c1-300 <<<"$big")"
	jq -e '.errors[0].message | contains("payload of 2000000 bytes is over the limit of 1048576")' <<<"$big" >/dev/null ||
		fail "2 MB request: $big"
	[ "$(sqlite3 "$T/ingest.db" "SELECT count(*) FROM deadletter WHERE reason LIKE 'payload of 2000000 bytes%' AND length(payload) = 256")" -eq 1 ] ||
		fail "no dead letter for the 2 MB request"
}
it_case over-max-payload-400-and-dead-letter case_over_max_payload

case_retain_requests() { # after it, a repeat is a new request, and the table is bounded
	start_agent short mqpipe-ingest -i it-short -p short -d "$T/short.db" --retain-requests 1s
	srr() { mosquitto_rr -p "$BROKER_PORT" -q 1 -e "short/replies/it/$1" -W 10 "${@:2}"; }
	local one two three
	one=$(srr 1 -t short/user.ingest -D publish correlation-data k-1 -m 'user_name=F&email=f@b.com&pincode=1111')
	two=$(srr 1 -t short/user.ingest -D publish correlation-data k-1 -m 'user_name=G&email=g@b.com&pincode=2222')
	[ "$one" = "$two" ] || fail "within the retention a repeat answered differently: $one / $two"
	wait_for 20 bash -c "[ \$(sqlite3 '$T/short.db' 'SELECT count(*) FROM request') -eq 0 ]" ||
		fail "answers not forgotten: $(sqlite3 "$T/short.db" 'SELECT count(*) FROM request') left"
	three=$(srr 1 -t short/user.ingest -D publish correlation-data k-1 -m 'user_name=H&email=h@b.com&pincode=3333')
	[ "$(jq -r .user.user_name <<<"$three")" = H ] || fail "after the retention the repeat got the old answer: $three"
}
it_case retain-requests-bounds-repeats case_retain_requests
it_cases_done
