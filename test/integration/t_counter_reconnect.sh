#!/usr/bin/env bash
# The broker goes away and comes back: the counter reconnects by itself,
# subscribes again, publishes online again, and events published while it was
# disconnected (held in its persistent session) and after are all processed.
# Round trips stay far below Nagle's ~40 ms (TCP_NODELAY is set after every
# connect; a generous bound, so a busy machine still passes).
source "$(dirname "$0")/lib.sh"
it_setup
start_counter
subscribe rates success_rate

rtt_median_ms() { # rtt_median_ms MODULE N: N diagnostics one at a time, median ms
	local m=$1 n=$2 i t0 t1
	for i in $(seq 1 "$n"); do
		mosquitto_sub -p "$BROKER_PORT" -t success_rate -C 1 -W 10 >/dev/null &
		local s=$!
		sleep 0.1
		t0=$(date +%s%N)
		pub weekly_diagnostic "{\"moduleid\":\"$m\",\"timestamp\":$i,\"attempts\":1}"
		wait $s
		t1=$(date +%s%N)
		echo $(((t1 - t0) / 1000000))
	done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# mosquitto_pub's start-up is part of each sample (a few ms); Nagle adds ~40.
rtt=$(rtt_median_ms rtt-before 9)
note "round trip median ${rtt} ms (first connect)"
[ "$rtt" -lt 30 ] || fail "round trip median $rtt ms: is TCP_NODELAY set?"

note "clean broker restart"
broker_stop
sleep 0.5
broker_restart "$T/broker" || fail "broker did not restart"
wait_for 40 bash -c "[ \$(grep -c 'event=online' '$T/counter.log') -ge 2 ]" || fail "counter did not come back online"
log_has "$T/counter.log" 'cause="automatic reconnect"' || fail "no automatic reconnect logged"
pub recv_message '{"moduleId":"after","timestamp":1}'
pub weekly_diagnostic '{"moduleid":"after","timestamp":2,"attempts":1}'
wait_for 20 log_has "$T/rates.out" '"moduleid":"after"' || fail "no output after the broker restart"
rtt=$(rtt_median_ms rtt-after 9)
note "round trip median ${rtt} ms (after reconnect)"
[ "$rtt" -lt 30 ] || fail "round trip median $rtt ms after reconnect: TCP_NODELAY not set again?"

note "events published while the counter is stopped wait in its session"
stop_pid "$COUNTER_PID"
pub recv_message '{"moduleId":"queued","timestamp":1}'
pub weekly_diagnostic '{"moduleid":"queued","timestamp":2,"attempts":2}'
start_counter
wait_for 20 log_has "$T/rates.out" '"moduleid":"queued","timestamp":2,"success_rate":50' ||
	fail "queued events lost: $(cat "$T/rates.out")"
echo "all ok"
