#!/usr/bin/env bash
# mqpipe-replay loses nothing when the broker comes back without replay's
# session: the publishes in flight at the crash, which Paho gives back, are
# sent again. The broker is frozen (SIGSTOP) so that a window of publishes
# awaits its acknowledgements, killed, and restarted from a snapshot taken
# before replay connected: the recorder's kept session is in it (so the
# broker queues for it while it reconnects), replay's is not.
source "$(dirname "$0")/lib.sh"
it_setup
broker_stop
sed 's/^autosave_interval .*/autosave_interval 3600/' "$MQPIPE_ROOT/broker-config/test.conf.in" >"$T/snapshot.conf.in"
broker_start "$T/b" "$T/snapshot.conf.in" || fail "cannot start the broker"

"$BIN/mqpipe-record" -b "$BROKER_URI" -t 'x/#' -c -i it-rec-lost -o "$T/rec.jsonl" 2>"$T/rec.err" &
PIDS+=("$!")
wait_for 20 log_has "$T/rec.err" recording || fail "recorder did not start: $(cat "$T/rec.err")"
kill -USR1 "$BROKER_PID" # mosquitto writes its snapshot: the recorder's session, nothing of replay's
wait_for 20 test -s "$T/b/mosquitto.db" || fail "no snapshot written"

note "1000 messages at 200/s; the broker is frozen 2 s in, killed 1 s later, restarted from the snapshot"
seq 1 1000 | awk '{ printf "{\"t\":%.4f,\"topic\":\"x/%d\",\"payload\":\"%d\",\"qos\":1}\n", $1 / 200, $1, $1 }' >"$T/in.jsonl"
"$BIN/mqpipe-replay" -b "$BROKER_URI" "$T/in.jsonl" 2>"$T/replay.err" &
RP=$!
wait_for 20 bash -c "jq -r .payload '$T/rec.jsonl' 2>/dev/null | grep -qx 400" || fail "recorder got no message 400"
kill -STOP "$BROKER_PID"
sleep 1
stop_pid "$BROKER_PID" KILL
broker_restart "$T/b" || fail "broker restart"
wait "$RP" || fail "replay: $(tail -5 "$T/replay.err")"
grep -q "1000 messages sent .* 1000 acknowledged, 0 refused, 0 unanswered" "$T/replay.err" || fail "replay: $(cat "$T/replay.err")"
again=$(sed -n 's/.* \([0-9]*\) sent again after a drop$/\1/p' "$T/replay.err")
[ "${again:-0}" -gt 0 ] || fail "nothing was in flight at the crash, the test proves nothing: $(cat "$T/replay.err")"
note "replay sent $again again"

note "the recorder has every message"
wait_for 30 bash -c "[ \$(jq -r .payload '$T/rec.jsonl' | sort -u | wc -l) -ge 1000 ]" ||
	fail "the recorder misses $(comm -23 <(seq 1 1000 | sort) <(jq -r .payload "$T/rec.jsonl" | sort -u) | wc -l) of 1000: $(comm -23 <(seq 1 1000 | sort) <(jq -r .payload "$T/rec.jsonl" | sort -u) | sort -n | head -5 | tr '\n' ' ')"
echo "ok"
