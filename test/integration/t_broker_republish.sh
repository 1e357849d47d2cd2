#!/usr/bin/env bash
# A broker crash loses what it accepted since its last snapshot. The
# counter's output, acknowledged by the broker and queued for an offline
# subscriber, is lost with it; the counter publishes again what the broker
# acknowledged within --republish-window when it reconnects, so the
# subscriber still gets it, once the broker is back.
source "$(dirname "$0")/lib.sh"
it_setup
# No autosave during the test: the only snapshot is the clean stop below,
# so the kill surely loses everything after it.
broker_stop
sed -i 's/^autosave_interval .*/autosave_interval 3600/' "$T/broker/mosquitto.conf"
broker_restart "$T/broker" || fail "broker restart"

mosquitto_sub -p "$BROKER_PORT" -i it-sr -c -q 1 -t success_rate -E || fail "subscriber session"
start_counter
case_clean_restart() { # a clean restart saves both sessions
	it_pass BROKER_PID
	broker_stop
	broker_restart "$T/broker" || fail "broker restart"
	wait_for 30 log_has "$T/counter.log" 'event=connected .*cause="automatic reconnect"' || fail "the counter did not reconnect"
}
it_case counter-reconnects-after-clean-broker-restart case_clean_restart

case_acked() { # a success_rate queued for the offline subscriber
	local ts
	for ts in 1 2 3; do pub recv_message "{\"moduleId\":\"crash\",\"timestamp\":$ts}"; done
	pub weekly_diagnostic '{"moduleid":"crash","timestamp":10,"attempts":4}'
	wait_for 30 bash -c "[ \$(sqlite3 '$T/counter.db' 'SELECT count(*) FROM outbox WHERE acked_ms IS NOT NULL AND topic = \"success_rate\"') -ge 1 ]" ||
		fail "the broker never acknowledged the success_rate"
}
it_case broker-acknowledges-success-rate case_acked

case_republished() { # after kill -9 of the broker
	it_pass BROKER_PID
	stop_pid "$BROKER_PID" KILL
	broker_restart "$T/broker" || fail "broker restart after the kill"
	wait_for 30 log_has "$T/counter.log" 'event=outbox_republished rows=[1-9]' || fail "no republish: $(tail -3 "$T/counter.log")"
}
it_case counter-republishes-after-broker-kill case_republished broker-acknowledges-success-rate

case_subscriber_gets_it() {
	mosquitto_sub -p "$BROKER_PORT" -i it-sr -c -q 1 -t success_rate -C 1 -W 20 >"$T/sr.out" || fail "the success_rate was lost"
	jq -e '.moduleid == "crash" and .received == 3 and .attempts == 4' "$T/sr.out" >/dev/null || fail "got: $(cat "$T/sr.out")"
}
it_case offline-subscriber-still-gets-success-rate case_subscriber_gets_it counter-republishes-after-broker-kill
it_cases_done
