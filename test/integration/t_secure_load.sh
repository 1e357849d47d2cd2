#!/usr/bin/env bash
# mqpipe-load on the secure profile (broker-config/secure/): it takes the
# common connection flags (--cafile, -u, --password-file) and their MQPIPE_*
# variables as the agents and the other tools do, so it drives the ingest
# agent over TLS as the publisher identity; its answers come back under
# replies/<user>/, the one reply topic the profile lets that identity read.
# Without credentials the broker refuses it, and it says so.
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap it_cleanup EXIT
SEC=$T/broker
"$MQPIPE_ROOT/broker-config/secure/setup" "$SEC" >/dev/null || fail "setup"
broker_start "$SEC" "$MQPIPE_ROOT/broker-config/secure/test.conf.in" || fail "cannot start the secure broker"
note "secure broker on $BROKER_URI"
[[ $BROKER_URI == ssl://* ]] || fail "not a TLS listener: $BROKER_URI"
start_agent ingest mqpipe-ingest -d "$T/ingest.db" --cafile "$SEC/ca.crt" -u mqpipe-ingest \
	--password-file "$SEC/mqpipe-ingest.password"
users() { sqlite3 "$T/ingest.db" "SELECT count(*) FROM user"; }

note "mqpipe-load with --cafile, -u and --password-file: every request answered, its 200s stored"
out=$(timeout 120 "$BIN/mqpipe-load" -b "$BROKER_URI" --cafile "$SEC/ca.crt" -u mqpipe-publisher \
	--password-file "$SEC/mqpipe-publisher.password" -n 200 --window 16 --json 2>"$T/load.err") ||
	fail "load with credentials: $out $(cat "$T/load.err")"
[ "$(jq '.answered == 200 and .lost == 0 and .other == 0 and .status_400 > 0' <<<"$out")" = true ] ||
	fail "load with credentials: $out"
[ "$(users)" -eq "$(jq .status_200 <<<"$out")" ] || fail "stored $(users) records, not $(jq .status_200 <<<"$out")"

note "the same from MQPIPE_USERNAME, MQPIPE_PASSWORD_FILE and MQPIPE_CAFILE"
before=$(users)
out=$(MQPIPE_BROKER=$BROKER_URI MQPIPE_USERNAME=mqpipe-publisher MQPIPE_PASSWORD_FILE=$SEC/mqpipe-publisher.password \
	MQPIPE_CAFILE=$SEC/ca.crt timeout 120 "$BIN/mqpipe-load" -n 50 --json 2>"$T/load-env.err") ||
	fail "load from the environment: $out $(cat "$T/load-env.err")"
[ "$(jq '.answered == 50 and .lost == 0' <<<"$out")" = true ] || fail "load from the environment: $out"
[ "$(users)" -eq $((before + $(jq .status_200 <<<"$out"))) ] || fail "stored $(users), not $before + $(jq .status_200 <<<"$out")"

note "without credentials the broker refuses it: a non-zero exit, nothing sent"
before=$(users)
rc=0
timeout 120 "$BIN/mqpipe-load" -b "$BROKER_URI" --cafile "$SEC/ca.crt" -n 5 --json >"$T/anon.out" 2>"$T/anon.err" || rc=$?
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] || fail "anonymous load exited $rc: $(cat "$T/anon.out" "$T/anon.err")"
[ -s "$T/anon.err" ] || fail "anonymous load said nothing"
[ "$(users)" -eq "$before" ] || fail "an anonymous request was stored"

note "a bad connection flag is a usage error, as for every agent and tool"
rc=0
"$BIN/mqpipe-load" --cafile "$T/none.crt" -n 1 2>"$T/usage.err" || rc=$?
[ "$rc" -eq 64 ] && grep -q "^mqpipe-load: --cafile $T/none.crt: cannot read the file" "$T/usage.err" ||
	fail "--cafile of a missing file: exit $rc, $(cat "$T/usage.err")"
echo "ok"
