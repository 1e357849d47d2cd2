#!/usr/bin/env bash
# Dead letters kept are bounded (README "Bounded resources"): 12 000 bad
# ~1 KB events against --deadletter-max-bytes 400000 keep only the newest
# that fit, count the rest in metrics as deadletters_dropped, publish every
# one, and the files stop growing after the first round; dead letters older
# than --deadletter-max-age are dropped too.
source "$(dirname "$0")/lib.sh"
it_setup
MAX=400000
# (a short republish window: the published dead letters leave the outbox sooner)
start_counter --deadletter-max-bytes $MAX --metrics-interval 1 --republish-window 1
subscribe dl 'deadletter/#'

# metric NAME: the counter's last retained metrics value NAME.
metric() {
	mosquitto_sub -p "$BROKER_PORT" -t mqpipe/metrics/mqpipe-counter -C 1 -W 5 | jq -r ".$1"
}
metric_is() { [ "$(metric "$1")" = "$2" ]; }
# state_bytes: the counter's files (database, WAL, inbox), in bytes.
state_bytes() {
	local f sum=0
	for f in "$T/counter.db" "$T/counter.db-wal" "$T/counter.db.inbox"; do
		[ -f "$f" ] && sum=$((sum + $(stat -c %s "$f")))
	done
	echo $sum
}

# outbox_empty_after_an_input: sends a good message (it has no output), then
# says whether the outbox is empty.
nudges=0
outbox_empty_after_an_input() {
	nudges=$((nudges + 1))
	pub recv_message "{\"moduleId\":\"nudge\",\"timestamp\":$nudges}"
	sleep 0.5
	[ "$(db 'SELECT count(*) FROM outbox')" -eq 0 ]
}

pad=$(head -c 1000 /dev/zero | tr '\0' x)
round=4000
sizes=()
for r in 1 2 3; do
	# No timestamp: each is a dead letter. As a trace, for mqpipe-replay --fast.
	for ((i = (r - 1) * round + 1; i <= r * round; i++)); do
		echo "{\"t\":0,\"topic\":\"recv_message\",\"qos\":1,\"retain\":false,\"payload\":\"{\\\"moduleId\\\":\\\"bad-$i\\\",\\\"pad\\\":\\\"$pad\\\"}\"}"
	done >"$T/bad.jsonl"
	"$BIN/mqpipe-replay" -b "$BROKER_URI" --fast "$T/bad.jsonl" 2>"$T/replay.err" ||
		fail "round $r: replay failed: $(tail -n 3 "$T/replay.err")"
	wait_for 120 metric_is deadletters $((r * round)) ||
		fail "round $r: the counter dead-lettered $(metric deadletters) of $((r * round))"
	# The published dead letters stay in the outbox for --republish-window
	# (1 s here) after their acknowledgement, and go with the next input's
	# transaction: let them go before measuring.
	sleep 2
	wait_for 60 outbox_empty_after_an_input ||
		fail "round $r: the outbox keeps $(db 'SELECT count(*) FROM outbox') rows"
	kept=$(db 'SELECT sum(bytes) FROM deadletter')
	sizes+=("$(stat -c %s "$T/counter.db")")
	note "round $r: $((r * round)) dead letters, $(db 'SELECT count(*) FROM deadletter') kept ($kept bytes); database ${sizes[-1]} bytes, with WAL and inbox $(state_bytes)"
	[ "$kept" -le $MAX ] || fail "round $r keeps $kept bytes of dead letters, over $MAX"
done
total=$((3 * round))
n=$(db 'SELECT count(*) FROM deadletter')
[ "$n" -ge $((MAX / 1100)) ] || fail "only $n dead letters kept"
note "the newest are kept, the oldest dropped, the count in metrics"
[ "$(db "SELECT count(*) FROM deadletter WHERE CAST(payload AS TEXT) LIKE '{\"moduleId\":\"bad-$total\",%'")" -eq 1 ] ||
	fail "the newest dead letter is not kept"
[ "$(db "SELECT count(*) FROM deadletter WHERE CAST(payload AS TEXT) LIKE '{\"moduleId\":\"bad-1\",%'")" -eq 0 ] ||
	fail "the oldest dead letter is still kept"
oldest=$(db 'SELECT CAST(payload AS TEXT) FROM deadletter ORDER BY id LIMIT 1' | jq -r .moduleId)
[ "$oldest" = "bad-$((total - n + 1))" ] || fail "the kept ones are not the newest $n: the oldest is $oldest"
wait_for 20 metric_is deadletters_dropped $((total - n)) ||
	fail "deadletters_dropped is $(metric deadletters_dropped), want $((total - n))"
mosquitto_sub -p "$BROKER_PORT" -t mqpipe/metrics/mqpipe-counter -C 1 -W 5 |
	"$MQPIPE_ROOT/scripts/schemas" validate metrics || fail "metrics break their schema"
log_has "$T/counter.log" "event=deadletters_dropped" || fail "no deadletters_dropped log line"
note "every dead letter was still published"
wait_for 60 bash -c "[ \$(wc -l <'$T/dl.out') -ge $total ]" || fail "$(lines "$T/dl.out") of $total dead letters published"

# The database holds, besides the kept dead letters, the outbox (a round's
# published dead letters, until the republish window passed); its freed
# pages are reused. The WAL and the inbox are as large as the largest
# backlog, whatever it holds.
# Round 1 may end below the plateau (how many rows the republish window
# held when it ended depends on the machine's pace), and a round may end
# after the agent gave freed pages back (README "Space"), so the last round
# is compared with the largest before it: an unbounded table grows by a
# round's 4 MB of dead letters each time.
largest=$((sizes[0] > sizes[1] ? sizes[0] : sizes[1]))
note "the database stops growing: round 3 within 1 MB of the largest before it (sizes ${sizes[*]})"
[ "${sizes[2]}" -le $((largest + 1048576)) ] ||
	fail "the database grew from $largest to ${sizes[2]} bytes in the third round"
[ "$(state_bytes)" -le $((64 * 1048576)) ] || fail "the files hold $(state_bytes) bytes"

note "dead letters older than --deadletter-max-age go, counted"
kill -TERM "$COUNTER_PID"
wait "$COUNTER_PID" || fail "the counter did not stop cleanly"
before=$(db 'SELECT count(*) FROM deadletter')
start_counter --deadletter-max-bytes $MAX --deadletter-max-age 3 --metrics-interval 1 --republish-window 1
pub recv_message '{"moduleId":"young"}'
wait_for 20 bash -c "[ \$(sqlite3 -cmd '.timeout 5000' '$T/counter.db' \"SELECT count(*) FROM deadletter WHERE CAST(payload AS TEXT) LIKE '%young%'\") -eq 1 ]" ||
	fail "the young dead letter is not stored"
wait_for 30 bash -c "[ \$(sqlite3 -cmd '.timeout 5000' '$T/counter.db' 'SELECT count(*) FROM deadletter') -eq 0 ]" ||
	fail "dead letters older than 3 s are still kept: $(db 'SELECT count(*) FROM deadletter')"
wait_for 20 metric_is deadletters_dropped $((before + 1)) ||
	fail "deadletters_dropped is $(metric deadletters_dropped) after the expiry, want $((before + 1))"
log_has "$T/counter.log" "event=deadletters_expired" || fail "no deadletters_expired log line"
[ "$(db "SELECT value FROM runtime_meta WHERE key = 'deadletter_bytes'")" -eq 0 ] || fail "the running total is off"
echo "all ok: database ${sizes[*]} bytes after each round"
