# Helpers for integration tests: each test is a bash script that sources this,
# calls it_setup (throw-away directory + broker on a free port), drives the
# real binaries in $MQPIPE_BIN with mosquitto_pub/mosquitto_sub, and exits
# non-zero through fail(). Everything it started is stopped by PID at exit.
set -euo pipefail
MQPIPE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$MQPIPE_ROOT/scripts/lib/broker.sh"
BIN=${MQPIPE_BIN:-$MQPIPE_ROOT/build/bin}
PIDS=()

fail() {
	echo "FAIL: $*" >&2
	# Inside a case (it_case), its reason for the case's line.
	[ -z "${IT_CASE_REASON:-}" ] || printf '%s\n' "$*" >"$IT_CASE_REASON"
	exit 1
}

note() {
	echo "-- $*"
}

it_cleanup() {
	local p
	for p in "${PIDS[@]}"; do stop_pid "$p" KILL; done
	[ -n "${BROKER_PID:-}" ] && stop_pid "$BROKER_PID"
	if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $T"; else rm -rf "$T"; fi
}

it_setup() {
	T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
	trap it_cleanup EXIT
	broker_start "$T/broker" || fail "cannot start mosquitto"
	note "broker on $BROKER_URI (pid $BROKER_PID), dir $T"
}

# wait_for SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds,
# for SECONDS of wall time (not a count of tries: a check that takes 0.3 s
# on a busy machine, such as a Python normalize, made "60" four minutes).
wait_for() {
	local end=$((SECONDS + $1))
	shift
	while :; do
		"$@" && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.1
	done
}

# log_has FILE PATTERN: the log holds a line matching PATTERN (grep -E).
log_has() {
	grep -qE "$2" "$1" 2>/dev/null
}

# lines FILE: number of lines in FILE (0 when missing).
lines() {
	[ -f "$1" ] && wc -l <"$1" | tr -d ' ' || echo 0
}

# start_agent NAME BINARY [ARGS...]: starts an agent logging to $T/NAME.log and
# waits until it is online. Sets AGENT_PID.
start_agent() {
	local name=$1 bin=$2
	shift 2
	local before
	before=$(grep -cE 'event=online|"event":"online"' "$T/$name.log" 2>/dev/null || true)
	"$BIN/$bin" -b "$BROKER_URI" "$@" 2>>"$T/$name.log" &
	AGENT_PID=$!
	PIDS+=("$AGENT_PID")
	wait_for 20 agent_online_after "$T/$name.log" "${before:-0}" ||
		fail "$name did not come online: $(tail -n 5 "$T/$name.log")"
}

agent_online_after() { # either log format
	[ "$(grep -cE 'event=online|"event":"online"' "$1" 2>/dev/null || true)" -gt "$2" ]
}

# start_counter [ARGS...]: the counter with its state in $T. Sets COUNTER_PID.
start_counter() {
	start_agent counter mqpipe-counter -d "$T/counter.db" "$@"
	COUNTER_PID=$AGENT_PID
}

# subscribe NAME TOPIC...: a mosquitto_sub with its own persistent session
# (created before this returns, so nothing published afterwards is missed)
# writing "topic payload" lines to $T/NAME.out. Sets SUB_PID.
subscribe() {
	local name=$1
	shift
	local args=() t
	for t in "$@"; do args+=(-t "$t"); done
	mosquitto_sub -p "$BROKER_PORT" -i "it-$name" -c -q 1 "${args[@]}" -E ||
		fail "cannot subscribe $name"
	mosquitto_sub -p "$BROKER_PORT" -i "it-$name" -c -q 1 "${args[@]}" -v >"$T/$name.out" &
	SUB_PID=$!
	PIDS+=("$SUB_PID")
}

# pub TOPIC MESSAGE: publishes one message at QoS 1.
pub() {
	mosquitto_pub -p "$BROKER_PORT" -q 1 -t "$1" -m "$2"
}

# pub_lines TOPIC FILE: publishes each line of FILE at QoS 1, in runs of
# 50 000 lines (mosquitto_pub -l stops at 65 535 at QoS 1: message ids wrap).
pub_lines() {
	local topic=$1 file=$2 dir
	dir=$(mktemp -d "$T/split.XXXXXX")
	split -l 50000 "$file" "$dir/part."
	local part
	for part in "$dir"/part.*; do
		mosquitto_pub -p "$BROKER_PORT" -q 1 -t "$topic" -l <"$part" || fail "publish $file"
	done
	rm -rf "$dir"
}

# db SQL: runs SQL against the counter's database (read-only use).
db() {
	sqlite3 -cmd ".timeout 5000" "$T/counter.db" "$1"
}

# rates_of FILE: "module timestamp received attempts rate" lines, sorted and
# unique, from mosquitto_sub -v output of success_rate events (rate rounded to
# 6 decimals, or null).
rates_of() {
	sed 's/^[^ ]*success_rate //' "$1" |
		jq -r '[.moduleid, .timestamp, .received, .attempts,
			(if .success_rate == null then "null" else (.success_rate * 1000000 | round / 1000000 | tostring) end)] | join(" ")' |
		sort -u
}

# compare_rates EXPECTED GOT: every expected line is in GOT with the same
# counts and a rate within 1e-5, and GOT holds nothing else (a module and
# timestamp twice with different values counts as something else).
compare_rates() {
	awk 'NR == FNR { want[$1 " " $2] = $0; next }
	     { key = $1 " " $2
	       if (!(key in want)) { print "unexpected or conflicting: " $0; bad++; next }
	       split(want[key], w, " ")
	       if ($3 != w[3] || $4 != w[4] || ($5 == "null") != (w[5] == "null") ||
	           ($5 != "null" && ($5 - w[5] > 1e-5 || w[5] - $5 > 1e-5))) { print "got " $0 " want " want[key]; bad++ }
	       delete want[key] }
	     END { for (k in want) { print "missing: " want[k]; bad++ } exit bad > 0 }' "$1" "$2"
}

# ---- cases --------------------------------------------------------------
# A test of several behaviours runs each as a case of its own, so a failure
# names what broke and the other cases still run (README "Tests"):
#
#   case_valid() { ...; [ ... ] || fail "..."; }
#   it_case valid-json case_valid
#   it_case repeat-after-restart case_restart valid-json   # needs valid-json
#   it_cases_done
#
# it_case NAME FUNCTION [NEEDED...]: runs FUNCTION in a subshell (set -e:
# fail() or any failing command ends the case) and prints "case NAME: ok"
# or "case NAME: FAIL REASON" (fail's message, or the command that failed).
# A case whose NEEDED cases did not all pass is not run: "case NAME: skip
# (needs X)". What a case leaves for the next ones goes through files in $T
# or it_pass; the processes it starts (PIDS) are stopped at exit as usual.
declare -A IT_CASE=() # case name -> ok, FAIL or skip
IT_CASES_FAILED=0

it_case() {
	local name=$1 fn=$2 need rc reason
	shift 2
	for need in "$@"; do
		if [ "${IT_CASE[$need]:-}" != ok ]; then
			IT_CASE[$name]=skip
			echo "case $name: skip (needs $need)"
			return 0
		fi
	done
	echo "-- case $name"
	local dir=$T/.case
	mkdir -p "$dir"
	: >"$dir/reason"
	: >"$dir/state"
	: >"$dir/pids"
	set +e
	(
		IT_CASE_REASON=$dir/reason IT_PASS=() IT_CASE_SHELL=$BASHPID
		trap 'printf "%s\n" "${PIDS[@]}" >"$dir/pids"; it__dump_pass >"$dir/state"' EXIT
		# The command that ended the case (not one failing harmlessly inside
		# a command substitution, where the ERR trap also runs under -E).
		trap '[ "$BASHPID" != "$IT_CASE_SHELL" ] || [ -s "$dir/reason" ] ||
			echo "line $LINENO: $BASH_COMMAND exited $?" >"$dir/reason"' ERR
		set -eE
		"$fn"
	)
	rc=$?
	set -e
	it__adopt_pids "$dir/pids"
	# shellcheck disable=SC1091
	source "$dir/state"
	if [ "$rc" -eq 0 ]; then
		IT_CASE[$name]=ok
		echo "case $name: ok"
	else
		IT_CASE[$name]=FAIL
		IT_CASES_FAILED=$((IT_CASES_FAILED + 1))
		reason=$(tr '\n' ' ' <"$dir/reason" | sed 's/ *$//' | cut -c1-400)
		echo "case $name: FAIL ${reason:-exit $rc}"
	fi
}

# it_pass VAR...: inside a case, hands VAR (a global: its value when the
# case ends) to the test and the cases after it, e.g. the PID of an agent
# it restarted.
it_pass() {
	IT_PASS+=("$@")
}

it__dump_pass() { # the it_pass variables as global declarations
	local v
	for v in "${IT_PASS[@]}"; do
		declare -p "$v" 2>/dev/null | sed -e 's/^declare -- /declare -g /' -e 's/^declare -\([a-zA-Z]*\) /declare -g\1 /'
	done
}

it__adopt_pids() { # FILE: the PIDs a case started, to be stopped at exit
	local p q known
	[ -f "$1" ] || return 0
	while read -r p; do
		[ -n "$p" ] || continue
		known=0
		for q in "${PIDS[@]}"; do [ "$q" = "$p" ] && known=1 && break; done
		[ "$known" = 1 ] || PIDS+=("$p")
	done <"$1"
}

# it_cases_done: ends a test of cases: exit 1 if any failed, else "ok".
it_cases_done() {
	[ "$IT_CASES_FAILED" -eq 0 ] || { echo "FAIL: $IT_CASES_FAILED case(s) failed" >&2; exit 1; }
	echo "ok"
}

# secure_sample_traces SEC [EXCLUDE]: replays each sample trace on the secure
# broker under its own publisher identity, mqpipe-replay-N (made by the secure
# setup's --user), and waits until $T/out.jsonl, a recording, holds every
# expected output (normalized, lines matching EXCLUDE left out); fails with
# the difference. A replay is given 120 s: one that hangs fails with its log.
secure_sample_traces() {
	local sec=$1 exclude=${2:-} pids=() n=0 f p
	sort "$MQPIPE_ROOT"/test/traces/*.expected >"$T/want.txt"
	for f in "$MQPIPE_ROOT"/test/traces/*.jsonl; do
		n=$((n + 1))
		[ -f "$sec/mqpipe-replay-$n.password" ] || fail "no identity mqpipe-replay-$n for trace $f"
		timeout 120 "$BIN/mqpipe-replay" -b "$BROKER_URI" --cafile "$sec/ca.crt" -u "mqpipe-replay-$n" \
			--password-file "$sec/mqpipe-replay-$n.password" --speed 4 "$f" 2>>"$T/replay.err" &
		pids+=("$!")
	done
	for p in "${pids[@]}"; do wait "$p" || fail "replay (exit $?): $(tail -5 "$T/replay.err")"; done
	SECURE__WANT=$(wc -l <"$T/want.txt") SECURE__EXCLUDE=$exclude
	wait_for 60 secure__enough || true
	sleep 0.5
	secure__got >"$T/got.txt"
	diff "$T/want.txt" "$T/got.txt" >"$T/diff.txt" ||
		fail "$(grep -c '^<' "$T/diff.txt") expected outputs missing, $(grep -c '^>' "$T/diff.txt") unexpected: $(head -10 "$T/diff.txt")"
	note "$SECURE__WANT outputs as expected"
}
secure__got() { # the recorded outputs, normalized, without those matching SECURE__EXCLUDE
	if [ -n "$SECURE__EXCLUDE" ]; then grep -v -- "$SECURE__EXCLUDE" "$T/out.jsonl"; else cat "$T/out.jsonl"; fi |
		"$MQPIPE_ROOT/scripts/traces" normalize
}
secure__enough() { [ "$(secure__got | wc -l)" -ge "$SECURE__WANT" ]; }
