#!/usr/bin/env bash
# test-timeout: 240
# Topology "one broker" (README "Scaling out", "Topologies"): S = 4, three
# hosts as network namespaces: `core` runs the broker, mqpipe-router, the
# replays and the recorder; hosts `a` and `b` each own two shards (one
# counter, aggregator, alerter and dispatcher process per shard, each host's
# state in its own directory) and run a worker. The sample traces (fleet,
# metrics, jobs: the ingest agent is not sharded) through the router give
# every expected output exactly once; then, in a fresh deployment, with all
# of host b's processes SIGKILLed mid-replay and restarted, and shard 1
# moved from a to b mid-replay by README "Moving a shard" (SIGTERM on a,
# its files moved, started on b), every expected output still arrives and
# no natural key holds two different outputs.
source "$(dirname "$0")/lib_netns.sh"
netns_setup core a b
S=4
SAMPLES=$MQPIPE_ROOT/test/traces
TRACES=(fleet metrics jobs)
SHARDED=(counter aggregator alerter dispatcher)
declare -A OWNS=([a]="0 1" [b]="2 3")
OUTPUTS=(success_rate job.summary dashboard.ready 'alerts/#' 'deadletter/#')
for t in "${TRACES[@]}"; do cat "$SAMPLES/$t.expected"; done | LC_ALL=C sort >"$T/want.txt"

# owner_start RUN HOST AGENT K: spawns AGENT's instance of shard K on HOST,
# its state in $T/RUN/HOST/, and records its PID in OWNER_PID[AGENT-K].
declare -A OWNER_PID=()
owner_start() {
	local run=$1 h=$2 a=$3 k=$4
	netns_spawn "$h" "$run-$a-$k" "$URI" "mqpipe-$a" --shards $S --shard "$k" -d "$T/$run/$h/$a-$k.db"
	OWNER_PID[$a-$k]=$AGENT_PID
}

# host_start RUN HOST: every owner of HOST's shards and its worker; waits until online.
host_start() {
	local run=$1 h=$2 a k names=()
	for k in ${OWNS[$h]}; do
		for a in "${SHARDED[@]}"; do
			owner_start "$run" "$h" "$a" "$k"
			names+=("$run-$a-$k")
		done
	done
	netns_spawn "$h" "$run-worker-$h" "$URI" mqpipe-worker --shards $S -i "mqpipe-worker-$h" -d "$T/$run/$h/worker.db"
	OWNER_PID[worker-$h]=$AGENT_PID
	netns_online "${names[@]}" "$run-worker-$h"
}

# deploy RUN: a fresh broker on core (state in $T/RUN/broker), the router,
# the recorder of every output ($T/RUN.jsonl), hosts a and b.
deploy() {
	local run=$1
	mkdir -p "$T/$run/a" "$T/$run/b" "$T/$run/core"
	netns_broker core "$T/$run/broker"
	URI=$NB_URI
	netns_record core "$run" "$URI" "${OUTPUTS[@]}"
	netns_agent core "$run-router" "$URI" mqpipe-router --shards $S -d "$T/$run/core/router.db"
	host_start "$run" a
	host_start "$run" b
}

# undeploy: stops every process the case started (the broker last), by PID.
undeploy() {
	local i
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${PIDS[i]}"; done
}

# replay RUN PACE...: replays the traces on core, at once, into the router's plain topics; sets REPLAYS.
replay() {
	local run=$1 t
	shift
	REPLAYS=()
	for t in "${TRACES[@]}"; do
		ip netns exec "${NETNS[core]}" "$BIN/mqpipe-replay" -b "$URI" "$@" "$SAMPLES/$t.jsonl" 2>"$T/$run-replay-$t.log" &
		REPLAYS+=($!)
		PIDS+=($!)
	done
}

replays_done() {
	local p
	for p in "${REPLAYS[@]}"; do wait "$p" || fail "a replay failed: $(cat "$T"/*-replay-*.log | tail -3)"; done
}

# got RUN: how many outputs the recorder holds so far.
got() {
	normalized "$1" 2>/dev/null | wc -l
}

case_clean() {
	deploy r1
	replay r1 --speed 4
	replays_done
	wait_outputs r1 "$T/want.txt" 60 || fail "missing: $(comm -23 "$T/want.txt" <(normalized r1 | LC_ALL=C sort -u) | head -5)"
	normalized r1 | LC_ALL=C sort >"$T/r1.got"
	# Fault-free: every output exactly once, nothing else.
	diff "$T/want.txt" "$T/r1.got" >"$T/r1.diff" || fail "outputs differ (< expected, > got): $(head -8 "$T/r1.diff")"
	[ "$(grep -c . "$T/r1.got")" -eq 163 ] || fail "expected 163 outputs"
	undeploy
}
it_case samples-through-router-into-two-hosts-once-each case_clean

# move_shard RUN K FROM TO: README "Moving a shard", step by step.
move_shard() {
	local run=$1 k=$2 from=$3 to=$4 a f
	# 1. Stop every instance of shard K on FROM (systemctl stop sends SIGTERM).
	for a in "${SHARDED[@]}"; do stop_pid "${OWNER_PID[$a-$k]}" TERM; done
	# Events for shard K arrive meanwhile: the broker queues them in the sessions.
	wait_for 20 bash -c "[ \$(grep -c '^shard/$k/' '$T/$run.shard$k.out') -gt $(grep -c "^shard/$k/" "$T/$run.shard$k.out") ]" ||
		fail "no event for shard $k came while it was stopped"
	# 2. Move its files: the database, its -wal and -shm if any, the inbox. Not the .lock (per host).
	ls "$T/$run/$from" >"$T/$run.files-before-move"
	for a in "${SHARDED[@]}"; do
		[ -f "$T/$run/$from/$a-$k.db" ] && [ -f "$T/$run/$from/$a-$k.db.inbox" ] ||
			fail "no $a-$k.db or its inbox on $from: $(cat "$T/$run.files-before-move")"
		for f in "$a-$k.db" "$a-$k.db-wal" "$a-$k.db-shm" "$a-$k.db.inbox"; do
			[ ! -e "$T/$run/$from/$f" ] || mv "$T/$run/$from/$f" "$T/$run/$to/$f"
		done
		rm -f "$T/$run/$from/$a-$k.db.lock"
	done
	# 3. Start them on TO.
	for a in "${SHARDED[@]}"; do owner_start "$run" "$to" "$a" "$k"; done
	for a in "${SHARDED[@]}"; do netns_online "$run-$a-$k"; done
	OWNS[$from]=$(tr ' ' '\n' <<<"${OWNS[$from]}" | grep -vx "$k" | tr '\n' ' ')
	OWNS[$to]="${OWNS[$to]} $k"
}

case_kill_and_move() {
	deploy r2
	# What the router sends shard 1: to see events arrive while it moves.
	local sub=(mosquitto_sub -h "${NETADDR[core]}" -p 1883 -c -i "it-shard1-$$" -q 1 -t 'shard/1/#')
	netns_run core "${sub[@]}" -E # the session first: nothing routed afterwards is missed
	ip netns exec "${NETNS[core]}" "${sub[@]}" -v >"$T/r2.shard1.out" &
	PIDS+=($!)
	replay r2 --speed 0.4
	wait_for 60 bash -c "[ \$('$MQPIPE_ROOT/scripts/traces' normalize '$T/r2.jsonl' 2>/dev/null | wc -l) -ge 10 ]" ||
		fail "no outputs mid-replay"
	note "SIGKILL every process of host b after $(got r2) outputs"
	local victims=() p
	for k in ${OWNS[b]}; do
		for a in "${SHARDED[@]}"; do victims+=("${OWNER_PID[$a-$k]}"); done
	done
	victims+=("${OWNER_PID[worker-b]}")
	kill -KILL "${victims[@]}"
	for p in "${victims[@]}"; do wait "$p" 2>/dev/null || true; done # gone (and no "Killed" notice)
	host_start r2 b
	note "host b back after $(got r2) outputs; moving shard 1 from a to b"
	move_shard r2 1 a b
	note "shard 1 on b after $(got r2) outputs (files on a before: $(tr '\n' ' ' <"$T/r2.files-before-move"))"
	[ ! -e "$T/r2/a/counter-1.db" ] && [ -f "$T/r2/b/counter-1.db" ] || fail "counter-1.db did not move"
	replays_done
	wait_outputs r2 "$T/want.txt" 90 || fail "missing: $(comm -23 "$T/want.txt" <(normalized r2 | LC_ALL=C sort -u) | head -5)"
	normalized r2 | LC_ALL=C sort >"$T/r2.every"
	LC_ALL=C sort -u "$T/r2.every" >"$T/r2.got"
	# Repeats of an output (the same line again, after the SIGKILL) are
	# at-least-once; anything not expected is a loss or a double count.
	diff "$T/want.txt" "$T/r2.got" >"$T/r2.diff" || fail "outputs differ (< expected, > got): $(head -8 "$T/r2.diff")"
	note "$(grep -c . "$T/r2.got") distinct outputs, $(grep -c . "$T/r2.every") received"
}
it_case host-killed-and-shard-moved-mid-replay-lose-and-double-nothing case_kill_and_move
it_cases_done
