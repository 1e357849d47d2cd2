#!/usr/bin/env bash
# A retained input is applied once, not once per subscribe (README "Input
# rules"): anyone allowed to publish user.ingest (the secure profile's
# publisher role included) may set the retain flag, and mosquitto would hand
# the request to the ingest agent again at every subscribe, at each start;
# once --retain-requests had forgotten the first answer, each restart stored
# the record again. Agents subscribe with retain handling 2. One retained
# request and three restarts, 3 s apart with --retain-requests 2s: the user
# table holds it once.
source "$(dirname "$0")/lib.sh"
it_setup
ingest() { start_agent ingest mqpipe-ingest -d "$T/ingest.db" --retain-requests 2s; ING=$AGENT_PID; }
users() { sqlite3 -cmd ".timeout 5000" "$T/ingest.db" "SELECT count(*) FROM user WHERE user_name = 'Ret'"; }
has_one() { [ "$(users)" -eq 1 ]; }

ingest
mosquitto_pub -p "$BROKER_PORT" -q 1 -r -t user.ingest -m 'user_name=Ret&email=ret@x.com&pincode=1234' ||
	fail "cannot publish"
wait_for 30 has_one || fail "the request was not stored"
for i in 1 2 3; do
	sleep 3 # past --retain-requests
	stop_pid "$ING"
	ingest
	sleep 2 # what the broker hands over at subscribe comes within this
	[ "$(users)" -eq 1 ] || fail "after restart $i the record is stored $(users) times"
done
echo "all ok"
