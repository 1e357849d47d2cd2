#!/usr/bin/env bash
# Shards on one broker (README "Scaling out"): mqpipe-shard computes the
# documented hash (CRC-32 modulo S, as Python's zlib.crc32); the sample
# traces through mqpipe-router into four shards of every sharded agent give
# every expected output, also with agents and the router SIGKILLed; an input
# on the wrong shard and an input without its key are dead letters; an owner
# that finds its session gone asks for a republish, and producers answer it
# with that shard's recent outputs only.
source "$(dirname "$0")/lib.sh"
it_setup
TRACES=$MQPIPE_ROOT/scripts/traces
SAMPLES=$MQPIPE_ROOT/test/traces

case_shard_tool() {
	python3 -c 'import sys
for i in range(300): print("m-%d" % i)
print("m\u00e9tro-\u4e2d")' >"$T/keys"
	mapfile -t keys <"$T/keys"
	"$BIN/mqpipe-shard" --shards 7 "${keys[@]}" >"$T/got"
	python3 -c 'import sys, zlib
for k in open(sys.argv[1], encoding="utf-8").read().split("\n")[:-1]: print(zlib.crc32(k.encode()) % 7)' \
		"$T/keys" >"$T/want"
	cmp -s "$T/want" "$T/got" || fail "mqpipe-shard differs from zlib.crc32: $(diff "$T/want" "$T/got" | head -3)"
	[ "$("$BIN/mqpipe-shard" --shards 4 --topic recv_message m-2)" = "shard/2/recv_message" ] || fail "--topic"
	local rc=0
	"$BIN/mqpipe-shard" m-1 2>"$T/err" || rc=$?
	[ "$rc" -eq 64 ] && grep -q -- '--shards S is needed' "$T/err" || fail "no --shards: exit $rc $(cat "$T/err")"
	rc=0
	"$BIN/mqpipe-shard" --shards 0 m-1 2>/dev/null || rc=$?
	[ "$rc" -eq 64 ] || fail "--shards 0: exit $rc"
}
it_case shard-tool-is-crc32-modulo-s case_shard_tool

case_usage() {
	local rc=0
	"$BIN/mqpipe-router" -b "$BROKER_URI" -d "$T/r1.db" 2>"$T/r1.err" || rc=$?
	[ "$rc" -eq 64 ] && grep -q 'above 1 is needed' "$T/r1.err" || fail "router with one shard: exit $rc $(cat "$T/r1.err")"
	rc=0
	"$BIN/mqpipe-counter" --shards 4 -d "$T/c.db" 2>"$T/c.err" || rc=$?
	[ "$rc" -eq 64 ] && grep -q 'needs --shard K' "$T/c.err" || fail "counter without --shard: exit $rc"
	rc=0
	"$BIN/mqpipe-worker" --shards 4 --shard 1 -d "$T/w.db" 2>"$T/w.err" || rc=$?
	[ "$rc" -eq 64 ] && grep -q 'owns no shard' "$T/w.err" || fail "worker with --shard: exit $rc $(cat "$T/w.err")"
}
it_case usage-errors-exit-64 case_usage

case_traces() {
	"$TRACES" run --fast --shards 4 "$SAMPLES"/*.jsonl >"$T/traces.out" 2>&1 ||
		fail "the samples through the router into 4 shards: $(tail -15 "$T/traces.out")"
}
it_case samples-through-router-into-4-shards case_traces

case_traces_kills() {
	"$TRACES" run --speed 2 --shards 4 --chaos 10 "$SAMPLES"/*.jsonl >"$T/chaos.out" 2>&1 ||
		fail "with SIGKILLs: $(tail -15 "$T/chaos.out")"
	grep -q 'outputs doubled:   0' "$T/chaos.out" && grep -q 'state mismatches:  0' "$T/chaos.out" ||
		fail "$(tail -8 "$T/chaos.out")"
}
it_case samples-into-4-shards-with-agents-and-router-killed case_traces_kills samples-through-router-into-4-shards

# Keys of shards 0..3 of 4 (mqpipe-shard --shards 4).
K0=m-1 K2=m-2
[ "$("$BIN/mqpipe-shard" --shards 4 $K0 $K2 | tr '\n' ' ')" = "0 2 " ] || fail "the test's keys moved shard"

case_wrong_shard() {
	subscribe dl 'deadletter/#'
	start_agent counter0 mqpipe-counter --shards 4 --shard 0 -d "$T/counter-0.db"
	pub shard/0/recv_message "{\"moduleId\":\"$K2\",\"timestamp\":5}"
	pub shard/0/recv_message "{\"moduleId\":\"$K0\",\"timestamp\":5}"
	wait_for 20 log_has "$T/dl.out" "is of shard 2 of 4" || fail "no dead letter: $(cat "$T/dl.out")"
	grep -q "^deadletter/recv_message .*moduleId 'm-2' is of shard 2 of 4, not of this instance's shard 0" "$T/dl.out" ||
		fail "$(cat "$T/dl.out")"
	wait_for 20 bash -c "[ \$(sqlite3 '$T/counter-0.db' 'SELECT count(*) FROM recv_message') = 1 ]" ||
		fail "stored: $(sqlite3 "$T/counter-0.db" 'SELECT * FROM recv_message')"
	[ "$(sqlite3 "$T/counter-0.db" 'SELECT module FROM recv_message')" = "$K0" ] || fail "the wrong module was stored"
}
it_case input-of-another-shard-is-a-dead-letter case_wrong_shard

case_router_keyless() {
	subscribe rdl 'deadletter/#'
	start_agent router mqpipe-router --shards 4 -d "$T/router.db"
	pub recv_message '{"timestamp":5}'
	wait_for 20 log_has "$T/rdl.out" '"agent":"router"' || fail "no dead letter from the router: $(cat "$T/rdl.out")"
	grep -q '^deadletter/recv_message .*moduleId' "$T/rdl.out" || fail "$(cat "$T/rdl.out")"
}
it_case router-dead-letters-an-input-without-its-key case_router_keyless

case_republish() {
	subscribe s1 'shard/#' 'mqpipe/republish/#'
	pub recv_message "{\"moduleId\":\"$K2\",\"timestamp\":7}"
	pub recv_message "{\"moduleId\":\"$K0\",\"timestamp\":7}"
	wait_for 20 bash -c "[ \$(grep -c '^shard/' '$T/s1.out') -ge 2 ]" || fail "not routed: $(cat "$T/s1.out")"
	# A fresh owner of shard 2 has no session: it asks, and the router sends shard 2's again.
	start_agent counter2 mqpipe-counter --shards 4 --shard 2 -d "$T/counter-2.db"
	wait_for 20 log_has "$T/s1.out" '^mqpipe/republish/2 \{"shard":2,"shards":4,"client_id":"mqpipe-counter-2"\}' ||
		fail "no request: $(cat "$T/s1.out")"
	wait_for 20 bash -c "[ \$(grep -c '^shard/2/recv_message' '$T/s1.out') -ge 2 ]" || fail "not republished: $(cat "$T/s1.out")"
	[ "$(grep -c '^shard/0/recv_message' "$T/s1.out")" -eq 1 ] || fail "another shard's outputs were sent again"
	wait_for 20 bash -c "[ \$(sqlite3 '$T/counter-2.db' 'SELECT count(*) FROM recv_message') = 1 ]" ||
		fail "counter-2 did not get its message once"
	# With --ask-republish off a fresh owner asks nothing.
	start_agent counter3 mqpipe-counter --shards 4 --shard 3 -d "$T/counter-3.db" --ask-republish off
	sleep 1
	! grep -q '^mqpipe/republish/3' "$T/s1.out" || fail "asked with --ask-republish off"
}
it_case lost-session-asks-and-producers-send-that-shard-again case_republish router-dead-letters-an-input-without-its-key
it_cases_done
