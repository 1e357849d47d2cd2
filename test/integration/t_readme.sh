#!/usr/bin/env bash
# The README's examples work verbatim: each ```sh block after an
# "<!-- example -->" line runs against a real broker and the agents, and what it
# prints must equal the ```text block that follows it. mosquitto_pub/sub are
# pointed at this test's broker port; nothing else in the commands changes.
source "$(dirname "$0")/lib.sh"
it_setup
start_counter --metrics-interval 2
start_agent dispatcher mqpipe-dispatcher -d "$T/dispatcher.db"
start_agent worker mqpipe-worker -i it-worker -d "$T/worker.db" --latency-scale 0.2
start_agent aggregator mqpipe-aggregator -d "$T/aggregator.db"
start_agent ingest mqpipe-ingest -d "$T/ingest.db"
start_agent alerter mqpipe-alerter -d "$T/alerter.db"
"$MQPIPE_ROOT/scripts/schemas" check-readme || fail "README topic table out of date"

awk -v dir="$T" '
	/^<!-- example -->$/ { n++; want = 1; next }
	want == 1 && /^```sh$/ { mode = "sh"; next }
	want == 1 && mode == "" && /^```text$/ { mode = "text"; next }
	mode != "" && /^```$/ { if (mode == "text") want = 0; mode = ""; next }
	mode == "sh" { print > (dir "/example" n ".sh") }
	mode == "text" { print > (dir "/example" n ".want") }
' "$MQPIPE_ROOT/README.md"
count=$(ls "$T"/example*.sh | wc -l)
[ "$count" -ge 4 ] || fail "found only $count README examples"

for sh in "$T"/example*.sh; do
	want=${sh%.sh}.want
	[ -f "$want" ] || fail "$(basename "$sh") has no output block"
	# The first single-message publish waits a moment so that a backgrounded
	# subscriber is in (a streaming "-l" publisher never needs to).
	rm -f "$T/first"
	out=$(PORT=$BROKER_PORT FIRST="$T/first" bash -c '
		mosquitto_pub() {
			case " $* " in *" -l "*) ;; *) [ -e "$FIRST" ] || { sleep 0.5; touch "$FIRST"; } ;; esac
			command mosquitto_pub -p "$PORT" "$@"
		}
		mosquitto_sub() { command mosquitto_sub -p "$PORT" "$@"; }
		mosquitto_rr() { command mosquitto_rr -p "$PORT" "$@"; }
		export -f mosquitto_pub mosquitto_sub mosquitto_rr
		source "$0"' "$sh")
	if [ "$out" != "$(cat "$want")" ]; then
		echo "--- $(basename "$sh"):"; cat "$sh"
		echo "--- printed:"; echo "$out"
		echo "--- README says:"; cat "$want"
		fail "README example $(basename "$sh") prints something else"
	fi
	note "$(basename "$sh") ok"
done
echo "all ok: $count examples"
