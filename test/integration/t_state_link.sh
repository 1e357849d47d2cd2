#!/usr/bin/env bash
# One agent per state, whatever name the state goes by (README "Running it"):
# a second counter given a symbolic link to the first one's database, or a
# hard link, opens the same SQLite file (through a second WAL, for the hard
# link) beside the first; it must exit 75 (state_locked) before it comes
# online, as it does for ./x.db or dir/../x.db, naming the holder's pid when
# its lock file is found (the symbolic link) and leaving no WAL of its own.
source "$(dirname "$0")/lib.sh"
it_setup

start_counter
ln -s counter.db "$T/symlink.db"
ln "$T/counter.db" "$T/hardlink.db"
for name in symlink.db hardlink.db; do
	note "a second counter on $name"
	set +e
	timeout 20 "$BIN/mqpipe-counter" -b "$BROKER_URI" -d "$T/$name" -i "it-second-$name" \
		>"$T/second.out" 2>"$T/second.err"
	rc=$?
	set -e
	want="holder_pid=$COUNTER_PID"
	[ $name = hardlink.db ] && want="lock=$T/hardlink.db holder_pid=unknown msg=\"held by another process"
	[ $rc -eq 75 ] || fail "$name: the second counter exited $rc, not 75 ($(grep -oE "event=(online|state_locked)" "$T/second.err" | head -1))"
	grep -qF "$want" "$T/second.err" || fail "$name: no '$want': $(head -c 300 "$T/second.err")"
	grep -q "event=state_locked" "$T/second.err" || fail "$name: no state_locked: $(head -c 300 "$T/second.err")"
	log_has "$T/second.err" "event=online" && fail "$name: the second counter came online"
	[ ! -e "$T/$name-wal" ] || fail "$name: the second counter made $name-wal"
done
kill -0 "$COUNTER_PID" || fail "the first counter died"
echo "all ok"
