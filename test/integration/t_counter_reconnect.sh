#!/usr/bin/env bash
# The broker goes away and comes back: the counter reconnects by itself,
# subscribes again, publishes online again, and events published while it was
# disconnected (held in its persistent session) and after are all processed.
# TCP_NODELAY is set again after every connect (the connected line says on
# how many sockets; test_net checks the call itself, scripts/bench the latency).
source "$(dirname "$0")/lib.sh"
it_setup
start_counter
subscribe rates success_rate

nodelay_connects() { # how many connects set TCP_NODELAY on exactly one socket
	grep 'event=connected' "$T/counter.log" | grep -c 'nodelay_sockets=1' || true
}
[ "$(nodelay_connects)" -eq 1 ] || fail "TCP_NODELAY not set at the first connect: $(grep event=connected "$T/counter.log")"

note "clean broker restart"
broker_stop
sleep 0.5
broker_restart "$T/broker" || fail "broker did not restart"
wait_for 40 bash -c "[ \$(grep -c 'event=online' '$T/counter.log') -ge 2 ]" || fail "counter did not come back online"
log_has "$T/counter.log" 'cause="automatic reconnect"' || fail "no automatic reconnect logged"
pub recv_message '{"moduleId":"after","timestamp":1}'
pub weekly_diagnostic '{"moduleid":"after","timestamp":2,"attempts":1}'
wait_for 20 log_has "$T/rates.out" '"moduleid":"after"' || fail "no output after the broker restart"
wait_for 20 bash -c "[ \$(grep 'event=connected' '$T/counter.log' | grep -c 'nodelay_sockets=1') -ge 2 ]" ||
	fail "TCP_NODELAY not set again after the reconnect: $(grep event=connected "$T/counter.log")"

note "events published while the counter is stopped wait in its session"
stop_pid "$COUNTER_PID"
pub recv_message '{"moduleId":"queued","timestamp":1}'
pub weekly_diagnostic '{"moduleid":"queued","timestamp":2,"attempts":2}'
start_counter
wait_for 20 log_has "$T/rates.out" '"moduleid":"queued","timestamp":2,"success_rate":50' ||
	fail "queued events lost: $(cat "$T/rates.out")"
echo "all ok"
