#!/usr/bin/env bash
# The counter as a Unix daemon: usage errors, help, retrying an absent broker,
# retained status with a last will, metrics, and a clean SIGTERM.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT

case_bad_flags() { # one line on stderr, exit 64
	local args rc
	for args in "--frobnicate" "--broker" "-b nonsense" "-l loud" "extra" "--metrics-interval 0"; do
		rc=0
		# shellcheck disable=SC2086
		"$BIN/mqpipe-counter" $args >"$T/out" 2>"$T/err" || rc=$?
		[ $rc -eq 64 ] || fail "'$args' exited $rc, not 64"
		[ "$(wc -l <"$T/err")" -eq 1 ] || fail "'$args' printed more than one line: $(cat "$T/err")"
		grep -q "mqpipe-counter: " "$T/err" || fail "'$args': no program name in $(cat "$T/err")"
	done
}
it_case bad-flags-one-line-exit-64 case_bad_flags
case_help() {
	grep -q -- "--broker URI" <("$BIN/mqpipe-counter" --help) || fail "--help"
}
it_case help-shows-flags case_help
case_version() {
	grep -qE "^mqpipe-counter [0-9]" <("$BIN/mqpipe-counter" -V) || fail "--version"
}
it_case version-printed case_version

# The broker unreachable at start: the counter keeps retrying, then comes
# online; a clean SIGTERM exits 0 with its retained status offline. One
# case: the exit status needs the counter to be a child of the case's
# shell. What it saw while online (status and metrics) is checked after it.
case_daemon_lifecycle() {
	local rc status
	it_pass port BROKER_PID BROKER_PORT BROKER_URI COUNTER_PID
	port=0
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		port_in_use $port || break
	done
	"$BIN/mqpipe-counter" -b "tcp://127.0.0.1:$port" -d "$T/counter.db" --metrics-interval 1 2>"$T/counter.log" &
	COUNTER_PID=$!
	PIDS+=("$COUNTER_PID")
	wait_for 10 log_has "$T/counter.log" "event=broker_unreachable" || fail "no broker_unreachable log"
	sleep 1.5
	kill -0 $COUNTER_PID || fail "the counter exited while the broker was away"
	mkdir -p "$T/broker"
	sed -e "s|@PORT@|$port|" -e "s|@DIR@|$T/broker|" -e "s|@USER@|$(id -un)|" "$MQPIPE_ROOT/broker-config/test.conf.in" >"$T/broker/mosquitto.conf"
	mosquitto -c "$T/broker/mosquitto.conf" >/dev/null 2>&1 &
	BROKER_PID=$!
	BROKER_PORT=$port
	BROKER_URI=tcp://127.0.0.1:$port
	wait_for 20 port_in_use "$port" || fail "the broker did not start on port $port"
	wait_for 60 log_has "$T/counter.log" "event=online" ||
		fail "did not come online once the broker was up: $(tail -n 5 "$T/counter.log")"
	# (an empty snapshot fails its own case below)
	mosquitto_sub -p $port -t mqpipe/status/mqpipe-counter -C 1 -W 5 >"$T/status.json" || true
	mosquitto_sub -p $port -t mqpipe/metrics/mqpipe-counter -C 1 -W 5 >"$T/metrics.json" || true
	note "SIGTERM: exit 0, retained status offline"
	kill -TERM $COUNTER_PID
	rc=0
	wait $COUNTER_PID || rc=$?
	[ $rc -eq 0 ] || fail "SIGTERM exit status $rc"
	log_has "$T/counter.log" "event=stopped" || fail "no stopped log"
	status=$(mosquitto_sub -p $port -t mqpipe/status/mqpipe-counter -C 1 -W 5)
	[ "$(echo "$status" | jq -r .state)" = offline ] || fail "status after SIGTERM: $status"
}
it_case absent-broker-retried-then-online-sigterm-exits-0-offline case_daemon_lifecycle

case_status() { # retained, online, with pid and version
	local status
	status=$(cat "$T/status.json")
	echo "$status" | jq -e --argjson pid $COUNTER_PID \
		'.agent == "counter" and .state == "online" and .pid == $pid and (.version | type == "string")' >/dev/null ||
		fail "status: $status"
}
it_case retained-status-online-with-pid-and-version case_status
case_status_schema() {
	"$MQPIPE_ROOT/scripts/schemas" validate status <"$T/status.json" || fail "status breaks its schema"
}
it_case status-matches-schema case_status_schema
case_metrics() { # retained, with the documented fields
	local metrics
	metrics=$(cat "$T/metrics.json")
	echo "$metrics" | jq -e '.agent == "counter" and (.handling_us | has("p50") and has("p95") and has("p99") and has("max"))
		and has("outbox_depth") and has("uptime_s") and has("rss_bytes") and has("deadletters") and has("errors")
		and (.in | type == "object") and (.out | type == "object")' >/dev/null || fail "metrics: $metrics"
}
it_case retained-metrics-with-documented-fields case_metrics
case_metrics_schema() {
	"$MQPIPE_ROOT/scripts/schemas" validate metrics <"$T/metrics.json" || fail "metrics break their schema"
}
it_case metrics-match-schema case_metrics_schema

case_last_will() { # SIGKILL: the broker publishes the last will (offline)
	local status
	start_counter --metrics-interval 1
	status=$(mosquitto_sub -p $port -t mqpipe/status/mqpipe-counter -C 1 -W 5)
	[ "$(echo "$status" | jq -r .state)" = online ] || fail "status after restart: $status"
	kill -KILL $COUNTER_PID
	wait_for 10 bash -c "mosquitto_sub -p $port -t mqpipe/status/mqpipe-counter -C 1 -W 2 | grep -q offline" ||
		fail "no offline will after SIGKILL"
}
it_case sigkill-broker-publishes-last-will case_last_will

case_prefix_output() { # --prefix namespaces every topic
	start_agent counter-ns mqpipe-counter -d "$T/ns.db" -p site1 -i counter-site1
	subscribe ns 'site1/#'
	pub site1/recv_message '{"moduleId":"p","timestamp":1}'
	pub site1/weekly_diagnostic '{"moduleid":"p","timestamp":2,"attempts":2}'
	wait_for 20 log_has "$T/ns.out" '^site1/success_rate ' || fail "no site1/success_rate: $(cat "$T/ns.out")"
	grep -q '^site1/success_rate {"moduleid":"p","timestamp":2,"success_rate":50,"received":1,"attempts":2}$' "$T/ns.out" ||
		fail "prefixed output: $(cat "$T/ns.out")"
}
it_case prefix-namespaces-inputs-and-outputs case_prefix_output
case_prefix_status() {
	grep -q '^site1/mqpipe/status/counter-site1 ' "$T/ns.out" || fail "prefixed status missing"
}
it_case prefix-namespaces-status case_prefix_status

case_sync_full() { # --sync full (and --log-format json, checked below)
	start_agent counter-full mqpipe-counter -d "$T/full.db" -i counter-full --sync full --log-format json
	[ "$(sqlite3 "$T/full.db" 'PRAGMA journal_mode')" = wal ] || fail "not WAL"
	pub recv_message '{"moduleId":"f","timestamp":1}'
	wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/full.db' 'SELECT count(*) FROM recv_message') -eq 1 ]" ||
		fail "--sync full did not store the message"
}
it_case sync-full-wal-stores case_sync_full
case_log_json() {
	grep '"event":"online"' "$T/counter-full.log" | jq -e '.level == "info" and .agent == "counter" and (.ts | type == "string")' >/dev/null ||
		fail "JSON log lines: $(head -2 "$T/counter-full.log")"
	jq -e . "$T/counter-full.log" >/dev/null || fail "a JSON log line does not parse"
}
it_case log-format-json-lines case_log_json
it_cases_done
