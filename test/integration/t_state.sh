#!/usr/bin/env bash
# Flags and environment alike, and one agent per state (README "Running it"):
# every MQPIPE_* variable is checked as its flag is (exit 64 naming it), a
# port outside 1..65535 is refused, a missing or unusable state directory
# exits 73 and creates nothing, and a second agent on a state another one
# holds exits 75 naming the file and the holder, while the first loses
# nothing.
source "$(dirname "$0")/lib.sh"
it_setup

# exits_with CODE PATTERN CMD...: CMD exits CODE within 20 s, its stderr
# matching PATTERN (grep -E). An agent that keeps running instead (the old
# MQPIPE_BROKER=garbage retried for ever) is killed and fails the test.
exits_with() {
	local want=$1 pattern=$2 rc
	shift 2
	set +e
	timeout 20 "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	[ $rc -eq "$want" ] || fail "'$*' exited $rc, not $want: $(head -c 400 "$T/err")"
	grep -qE -- "$pattern" "$T/err" || fail "'$*': stderr lacks '$pattern': $(head -c 400 "$T/err")"
}

# Each MQPIPE_* variable is checked like its flag: exit 64 naming it.
echo secret >"$T/pw"
long=$(head -c 200 /dev/zero | tr '\0' u)
case_env_checked() {
	local bin=$ENV_BIN e args=(-d "$T/env.db")
	[ $bin = mqpipe-record ] && args=(-t x)
	[ $bin = mqpipe-replay ] && { : >"$T/empty.jsonl"; args=("$T/empty.jsonl"); }
	for e in "MQPIPE_BROKER=garbage" "MQPIPE_BROKER=tcp://127.0.0.1:99999" "MQPIPE_BROKER=tcp://:1883" \
		"MQPIPE_BROKER=tcp://127.0.0.1:18x3" "MQPIPE_USERNAME=$long" "MQPIPE_PASSWORD_FILE=$T/none" \
		"MQPIPE_CAFILE=$T/none" "MQPIPE_CERT=$T/none" "MQPIPE_KEY=$T/none"; do
		exits_with 64 "^$bin: ${e%%=*}" env "$e" "$BIN/$bin" "${args[@]}"
		[ "$(wc -l <"$T/err")" -eq 1 ] || fail "$bin $e: more than one line: $(cat "$T/err")"
	done
}
for ENV_BIN in mqpipe-counter mqpipe-worker mqpipe-record mqpipe-replay; do
	it_case "$ENV_BIN-env-checked-like-flags" case_env_checked
done
case_env_no_db() {
	[ ! -e "$T/env.db" ] || fail "a usage error created the database"
}
it_case env-usage-error-creates-no-database case_env_no_db
case_env_load() {
	exits_with 64 "MQPIPE_BROKER" env MQPIPE_BROKER=garbage "$BIN/mqpipe-load" -n 1
}
it_case mqpipe-load-env-checked case_env_load
case_env_good() { # the agent comes online through MQPIPE_BROKER and MQPIPE_USERNAME
	local env_ok
	MQPIPE_BROKER=$BROKER_URI MQPIPE_USERNAME=it-user MQPIPE_PASSWORD_FILE=$T/pw \
		"$BIN/mqpipe-counter" -d "$T/env-ok.db" -i it-env-ok 2>"$T/env-ok.log" &
	PIDS+=($!)
	env_ok=$!
	wait_for 20 log_has "$T/env-ok.log" "event=online" || fail "MQPIPE_BROKER=$BROKER_URI: $(tail -n 3 "$T/env-ok.log")"
	kill -TERM $env_ok
	wait $env_ok || fail "the env-configured counter did not stop cleanly"
}
it_case good-env-values-pass case_env_good

case_ports() { # 1 to 65535
	local b
	for b in tcp://127.0.0.1:99999 tcp://127.0.0.1:0 tcp://127.0.0.1:65536 ssl://h:-1 ws://h:9001x tcp://h:1883/x; do
		exits_with 64 "^mqpipe-counter: --broker '$b'" "$BIN/mqpipe-counter" -b "$b" -d "$T/port.db"
	done
	[ ! -e "$T/port.db" ] || fail "a bad -b created the database"
}
it_case port-numbers-1-to-65535 case_ports

case_missing_dir() { # exit 73, nothing created
	exits_with 73 "state_dir_missing path=$T/no/such" "$BIN/mqpipe-counter" -b "$BROKER_URI" -d "$T/no/such/x.db"
	[ ! -e "$T/no" ] || fail "-d created $(find "$T/no")"
}
it_case d-into-missing-directory-exits-73 case_missing_dir

case_state_directory() { # an unusable STATE_DIRECTORY: exit 73
	exits_with 73 "state_dir_missing path=$T/gone" env STATE_DIRECTORY="$T/gone" "$BIN/mqpipe-counter" -b "$BROKER_URI"
	[ ! -e "$T/gone" ] || fail "STATE_DIRECTORY was created"
	: >"$T/a-file"
	exits_with 73 "not a directory" env STATE_DIRECTORY="$T/a-file" "$BIN/mqpipe-counter" -b "$BROKER_URI"
	# Read-only even for root (the tests may run as root, for whom chmod is no bar).
	exits_with 73 "state_unusable path=/proc/counter.db.lock" env STATE_DIRECTORY=/proc "$BIN/mqpipe-counter" -b "$BROKER_URI"
}
it_case unusable-state-directory-exits-73 case_state_directory
case_not_a_database() {
	echo "not a database, just text" >"$T/text.db"
	exits_with 73 "db_open_failed" "$BIN/mqpipe-counter" -b "$BROKER_URI" -d "$T/text.db"
	[ "$(cat "$T/text.db")" = "not a database, just text" ] || fail "the non-database file was changed"
}
it_case not-a-database-exits-73-unchanged case_not_a_database
case_default_var() { # the default ./var is the one directory an agent makes
	local cwd_pid
	mkdir "$T/cwd"
	(cd "$T/cwd" && exec "$BIN/mqpipe-counter" -b "$BROKER_URI" -i it-cwd) 2>"$T/cwd.log" &
	PIDS+=($!)
	cwd_pid=$!
	wait_for 20 log_has "$T/cwd.log" "event=online" || fail "default ./var: $(tail -n 3 "$T/cwd.log")"
	[ -f "$T/cwd/var/counter.db" ] || fail "no ./var/counter.db"
	kill -TERM $cwd_pid
	wait $cwd_pid || true
}
it_case default-var-directory-made case_default_var

# One agent per state: a second counter on the same -d exits 75, the first
# loses nothing; after a clean stop, and after a SIGKILL, the next agent
# takes the state. One case: the clean stop's exit status needs the first
# counter to be a child of the case's shell.
case_one_agent_per_state() {
	local n=3000 i feeder inbox_before
	start_counter --metrics-interval 1
	it_pass COUNTER_PID
	for i in $(seq 1 $n); do echo "{\"moduleId\":\"lock\",\"timestamp\":$i}"; done >"$T/events"
	pub_lines recv_message "$T/events" &
	feeder=$!
	PIDS+=($feeder)
	wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' 'SELECT count(*) FROM recv_message') -gt 0 ]" ||
		fail "the first counter stores nothing"
	inbox_before=$(stat -c %i "$T/counter.db.inbox")
	exits_with 75 "state_locked db=$T/counter.db lock=$T/counter.db.lock holder_pid=$COUNTER_PID" \
		"$BIN/mqpipe-counter" -b "$BROKER_URI" -d "$T/counter.db" -i it-second
	! log_has "$T/err" "event=online" || fail "the second counter came online"
	wait $feeder || fail "publishing the events failed"
	wait_for 60 bash -c "[ \$(sqlite3 -cmd '.timeout 2000' '$T/counter.db' 'SELECT count(*) FROM recv_message') -eq $n ]" ||
		fail "the first counter stored $(db 'SELECT count(*) FROM recv_message') of $n"
	kill -0 "$COUNTER_PID" || fail "the first counter died"
	[ "$(stat -c %i "$T/counter.db.inbox")" = "$inbox_before" ] || fail "the inbox was replaced"
	! log_has "$T/counter.log" "level=error" || fail "the first counter logged an error: $(grep level=error "$T/counter.log" | head -3)"
	note "after a clean stop, and after a SIGKILL, the next agent takes the state"
	kill -TERM "$COUNTER_PID"
	wait "$COUNTER_PID" || fail "the first counter did not stop cleanly"
	start_counter
	kill -KILL "$COUNTER_PID"
	wait "$COUNTER_PID" 2>/dev/null || true
	start_counter
	[ "$(db 'SELECT count(*) FROM recv_message')" -eq $n ] || fail "a restart lost events"
}
it_case second-agent-on-state-exits-75-next-takes-it case_one_agent_per_state
it_cases_done
