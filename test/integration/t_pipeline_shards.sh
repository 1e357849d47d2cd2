#!/usr/bin/env bash
# test-timeout: 240
# scripts/pipeline up --shards 2 (README "Running it", "Scaling out"): one
# instance per shard of each sharded agent and the router, each online in
# status with its shard; plain events published as before go through the
# router to their shard's counter and give the expected success rates; the
# states' S is kept (an up with another S is refused); down stops every
# instance.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
export MQPIPE_VAR=$T/var
P=$MQPIPE_ROOT/scripts/pipeline
cleanup_pipeline() {
	"$P" down >/dev/null 2>&1 || true
	it_cleanup
}
trap cleanup_pipeline EXIT
MQPIPE_PORT=$(free_port) && MQPIPE_WEB_PORT=$(free_port) || fail "no free port"
export MQPIPE_PORT MQPIPE_WEB_PORT
INSTANCES="counter-0 counter-1 dispatcher-0 dispatcher-1 worker aggregator-0 aggregator-1 ingest alerter-0 alerter-1 router"

"$P" up --shards 2 >"$T/up.out" 2>&1 || fail "up --shards 2: $(tail -5 "$T/up.out")"
cat "$T/up.out"
for n in $INSTANCES; do
	grep -q "^$n   online " "$T/up.out" || fail "up did not start $n: $(cat "$T/up.out")"
done
[ "$(cat "$MQPIPE_VAR/shards")" = 2 ] || fail "S is not kept in var/shards"

case_status() { # every instance online, with its shard
	all_online() {
		"$P" status >"$T/status.out"
		local a k
		for a in counter dispatcher aggregator alerter; do
			for k in 0 1; do
				grep -qE "^mqpipe-$a-$k +$k/2 +online +[0-9]+ " "$T/status.out" || return 1
			done
		done
		grep -qE '^mqpipe-router +-/2 +online ' "$T/status.out" &&
			grep -qE '^mqpipe-worker-[^ ]+ +-/2 +online ' "$T/status.out" &&
			grep -qE '^mqpipe-ingest +-/2 +online ' "$T/status.out"
	}
	wait_for 30 all_online || fail "status: $(cat "$T/status.out")"
	grep -qE '^AGENT +SHARD +STATE +PID +UPTIME ' "$T/status.out" || fail "status header: $(head -3 "$T/status.out")"
	for n in $INSTANCES; do [ -f "$MQPIPE_VAR/$n.db" ] || fail "no $MQPIPE_VAR/$n.db"; done
}
it_case status-shows-every-instance-with-its-shard case_status

# Two modules of different shards (mqpipe-shard --shards 2).
K0=m-1 K1=m-4
[ "$("$BIN/mqpipe-shard" --shards 2 $K0 $K1 | tr '\n' ' ')" = "0 1 " ] || fail "the test's keys moved shard"
case_through_router() { # plain topics, as before: each key's shard counts it
	local p
	p=$(cat "$MQPIPE_VAR/run/port")
	mosquitto_sub -p "$p" -q 1 -t success_rate -C 2 -W 30 >"$T/rates.out" &
	local sub=$!
	sleep 0.5 # (a plain mosquitto_sub, no session: let it subscribe)
	printf '{"moduleId":"%s","timestamp":%d}\n' $K0 10 $K0 20 $K0 30 $K1 10 |
		mosquitto_pub -p "$p" -q 1 -t recv_message -l
	printf '{"moduleid":"%s","timestamp":100,"attempts":4}\n' $K0 $K1 |
		mosquitto_pub -p "$p" -q 1 -t weekly_diagnostic -l
	wait "$sub" || fail "success rates: $(cat "$T/rates.out")"
	jq -e -s --arg a $K0 --arg b $K1 'sort_by(.moduleid) == [
		{moduleid: $a, timestamp: 100, success_rate: 75, received: 3, attempts: 4},
		{moduleid: $b, timestamp: 100, success_rate: 25, received: 1, attempts: 4}]' "$T/rates.out" >/dev/null ||
		fail "success rates: $(cat "$T/rates.out")"
	log_has "$MQPIPE_VAR/log/router.log" "event=online" || fail "no router log"
}
it_case plain-events-through-router-to-their-shard case_through_router status-shows-every-instance-with-its-shard
case_counted_by_owner() { # each counter holds its own shard's module only
	sqlite3 "$MQPIPE_VAR/counter-1.db" .dump | grep -q "$K1" || fail "counter-1 does not hold $K1"
	! sqlite3 "$MQPIPE_VAR/counter-0.db" .dump | grep -q "\"$K1\"\|'$K1'" || fail "counter-0 holds $K1"
}
it_case each-module-in-its-owners-state case_counted_by_owner plain-events-through-router-to-their-shard

case_other_s_refused() {
	local rc=0
	"$P" up --shards 3 >"$T/up3.out" 2>&1 || rc=$?
	[ "$rc" -eq 64 ] && grep -q "holds the states of 2 shard(s)" "$T/up3.out" || fail "up --shards 3: exit $rc $(cat "$T/up3.out")"
	[ "$(cat "$MQPIPE_VAR/shards")" = 2 ] || fail "var/shards changed"
	rc=0
	"$P" up --shards x >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 64 ] || fail "up --shards x: exit $rc"
}
it_case up-with-another-s-refused case_other_s_refused

case_down() {
	"$P" down >/dev/null
	"$P" status >"$T/status2.out"
	grep -q "^broker: not running" "$T/status2.out" || fail "down left the broker running: $(cat "$T/status2.out")"
	grep -qx "not running from .*: $INSTANCES" "$T/status2.out" || fail "down left instances running: $(cat "$T/status2.out")"
	local f
	for f in "$MQPIPE_VAR"/run/*.pid; do [ -e "$f" ] && fail "a pid file is left: $f"; done
	true
}
it_case down-stops-every-instance case_down
it_cases_done
