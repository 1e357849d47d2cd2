#!/usr/bin/env bash
# A repeat is recognised per requester (README "Ingestion"): by the response
# topic together with the correlation data, else with the request_id. Two
# requesters whose correlation data (or request_id) happen to be equal, on
# two response topics, are two requests: each is stored and answered with
# its own record (before, the second got the first one's record, another
# user's email and pincode, and was not stored). A redelivery, same response
# topic and same correlation data, still gets the first answer and stores
# nothing; and the key a request is remembered by is at most 65 bytes (the
# requester's digest, then the correlation data or, past 32 bytes, its
# digest), whatever the size of its correlation data.
source "$(dirname "$0")/lib.sh"
it_setup
start_agent ingest mqpipe-ingest -d "$T/ingest.db"
sql() { sqlite3 -cmd ".timeout 5000" "$T/ingest.db" "$1"; }
ask() { # ask TOPIC CORRELATION PAYLOAD: the answer on TOPIC ('' CORRELATION: none)
	local corr=()
	[ -n "$2" ] && corr=(-D publish correlation-data "$2")
	mosquitto_rr -p "$BROKER_PORT" -q 1 -t user.ingest -e "$1" "${corr[@]}" -m "$3" -W 30 ||
		fail "no answer on $1"
}

note "the same correlation data from two requesters"
a=$(ask replies/alice/r 1 'user_name=Alice&email=alice@x.com&pincode=1111')
[ "$(jq -r .user.user_name <<<"$a")" = Alice ] || fail "Alice's answer: $a"
b=$(ask replies/bob/r 1 'user_name=Bob&email=bob@x.com&pincode=2222')
[ "$(jq -r .user.user_name <<<"$b")" = Bob ] || fail "Bob was answered with another record: $b"

note "the same request_id from two requesters (without correlation data)"
c=$(ask replies/carol/r '' '{"request_id":"r-1","user_name":"Carol","email":"carol@x.com","pincode":"3333"}')
[ "$(jq -r .user.user_name <<<"$c")" = Carol ] || fail "Carol's answer: $c"
d=$(ask replies/dave/r '' '{"request_id":"r-1","user_name":"Dave","email":"dave@x.com","pincode":"4444"}')
[ "$(jq -r .user.user_name <<<"$d")" = Dave ] || fail "Dave was answered with another record: $d"

[ "$(sql "SELECT group_concat(user_name, ',') FROM (SELECT user_name FROM user ORDER BY id)")" = Alice,Bob,Carol,Dave ] ||
	fail "stored: $(sql "SELECT group_concat(user_name, ',') FROM user"), want Alice,Bob,Carol,Dave"

note "a redelivery (same response topic, same correlation data): the first answer, stored once"
e=$(ask replies/bob/r 1 'user_name=Eve&email=eve@x.com&pincode=5555')
[ "$e" = "$b" ] || fail "the repeat was not answered with the first answer: $e, want $b"
[ "$(sql "SELECT count(*) FROM user WHERE user_name IN ('Bob', 'Eve')")" -eq 1 ] ||
	fail "the repeat was stored: $(sql "SELECT group_concat(user_name, ',') FROM user")"

note "60 KB of correlation data: a key of at most 65 bytes, and still recognised"
big=$(head -c 30000 /dev/urandom | od -An -tx1 | tr -d ' \n') # 60 000 hex digits
f=$(ask replies/frank/r "$big" 'user_name=Frank&email=frank@x.com&pincode=6666')
[ "$(jq -r .user.user_name <<<"$f")" = Frank ] || fail "Frank's answer: $f"
g=$(ask replies/frank/r "$big" 'user_name=Grace&email=grace@x.com&pincode=7777')
[ "$g" = "$f" ] || fail "the repeat with 60 KB of correlation data: $g, want $f"
[ "$(sql "SELECT max(length(key)) FROM request")" -le 65 ] ||
	fail "a key of $(sql "SELECT max(length(key)) FROM request") bytes, want at most 65"
[ "$(sql "SELECT count(*) FROM user WHERE user_name = 'Grace'")" -eq 0 ] || fail "the 60 KB repeat was stored"
echo "all ok"
