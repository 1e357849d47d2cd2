#!/usr/bin/env bash
# Under systemd: READY=1 once online, WATCHDOG=1 at half of WATCHDOG_USEC,
# STOPPING=1 on SIGTERM, and log lines with the sd-daemon <N> priority prefix.
source "$(dirname "$0")/lib.sh"
it_setup

python3 - "$T/notify.sock" >"$T/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
while True:
    try:
        data = s.recv(4096).decode()
    except socket.timeout:
        break
    print(data.replace("\n", " "), flush=True)
    if "STOPPING=1" in data:
        break
PY
PIDS+=($!)
wait_for 10 test -S "$T/notify.sock" || fail "no notify socket"

NOTIFY_SOCKET="$T/notify.sock" WATCHDOG_USEC=1000000 JOURNAL_STREAM=8:12345 \
	"$BIN/mqpipe-counter" -b "$BROKER_URI" -d "$T/counter.db" 2>"$T/counter.log" &
pid=$!
PIDS+=($pid)
wait_for 20 log_has "$T/notify.out" "READY=1" || fail "no READY=1: $(cat "$T/notify.out")"
wait_for 10 bash -c "[ \$(grep -c WATCHDOG=1 '$T/notify.out') -ge 3 ]" || fail "fewer than 3 WATCHDOG=1 in 10 s"
kill -TERM $pid
wait_for 10 log_has "$T/notify.out" "STOPPING=1" || fail "no STOPPING=1"
[ "$(grep -c READY=1 "$T/notify.out")" -eq 1 ] || fail "READY=1 sent more than once"
tail -n 1 "$T/notify.out" | grep -q STOPPING=1 || fail "something came after STOPPING=1: $(tail -n 2 "$T/notify.out")"
grep -q '^<6>ts=.* event=online' "$T/counter.log" || fail "no <6> priority prefix: $(head -3 "$T/counter.log")"
grep -q '^<4>\|^<6>' "$T/counter.log" || fail "no priority prefixes"
echo "all ok"
