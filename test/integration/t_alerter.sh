#!/usr/bin/env bash
# Alerting on metric spikes: a generated series of six metrics (spikes,
# negative values, exact 3x, points on the hour boundary, long gaps, points
# out of order, points too late, redeliveries) is published in two halves
# with the alerter SIGKILLed and restarted between them; every alert must
# equal an independent calculation from the definition (expect_alerts.awk),
# and each point too late for its window is a dead letter (a point seen
# before is a repeat, even past its window); replayed slowly
# into a fresh alerter, the same alerts come. Then a rules file:
# success rates falling below a third of their hour, per module; and a bad
# rules file is refused at start, naming its line.
source "$(dirname "$0")/lib.sh"
it_setup
subscribe al 'alerts/#'
subscribe dl 'deadletter/#'
start_agent alerter mqpipe-alerter -d "$T/alerter.db"

awk -f "$MQPIPE_ROOT/test/integration/gen_metrics.awk" >"$T/points.txt"
awk -f "$MQPIPE_ROOT/test/integration/expect_alerts.awk" "$T/points.txt" | sort >"$T/want.txt"
late=$(awk '{ m = $1; ts = $2; sub(/.*"timestamp":/, "", ts); sub(/}.*/, "", ts); ts += 0
	if ((m in nw) && ts < nw[m] - 3600) { n++; next } if (!(m in nw) || ts > nw[m]) nw[m] = ts }
	END { print n + 0 }' "$T/points.txt")
note "$(wc -l <"$T/points.txt") points, $(wc -l <"$T/want.txt") alerts and $late late points expected"
case_series() {
	[ "$(wc -l <"$T/want.txt")" -ge 20 ] && [ "$late" -ge 5 ] || fail "the generated series tests too little"
}
it_case generated-series-tests-enough case_series

# publish HALF: each metric's points of that half, in their order.
publish_half() {
	local m
	for m in 0 1 2 3 4 5; do
		awk -v m="metrics/m$m" -v half="$1" '$1 == m { n++; lines[n] = $0 }
			END { for (i = 1; i <= n; i++) if ((i <= n / 2) == (half == 1)) { sub(/^[^ ]* /, "", lines[i]); print lines[i] } }' \
			"$T/points.txt" >"$T/half.txt"
		[ -s "$T/half.txt" ] && pub_lines "metrics/m$m" "$T/half.txt"
	done
	return 0
}
publish_half 1
sleep 0.5
stop_pid "$AGENT_PID" KILL
note "SIGKILLed after the first half"
start_agent alerter mqpipe-alerter -d "$T/alerter.db"
ALERTER_PID=$AGENT_PID
publish_half 2
want=$(wc -l <"$T/want.txt")
wait_for 30 bash -c "[ \$(cut -d' ' -f2- '$T/al.out' | sort -u | wc -l) -ge $want ] && [ \$(wc -l <'$T/dl.out') -ge $late ]" ||
	note "waited: $(cut -d' ' -f2- "$T/al.out" | sort -u | wc -l) alerts, $(wc -l <"$T/dl.out") dead letters"
sleep 1
case_alerts_equal() {
	cut -d' ' -f2- "$T/al.out" | sort -u |
		jq -r '[.metric, .timestamp, .value, .samples, .average] | @tsv' |
		awk -F'\t' '{ printf "%s %d %d %d %.6f\n", $1, $2, $3, $4, $5 }' | sort >"$T/got.txt"
	diff "$T/want.txt" "$T/got.txt" >"$T/diff.txt" || fail "alerts differ from the independent calculation:
$(head -20 "$T/diff.txt")"
	note "$want alerts equal"
}
it_case alerts-across-sigkill-equal-independent-calculation case_alerts_equal
case_late_points() {
	[ "$(grep -c 'its window is gone' "$T/dl.out")" -eq "$late" ] || fail "late points: $(grep -c 'its window is gone' "$T/dl.out") dead letters, want $late"
}
it_case late-points-dead-lettered case_late_points
case_alert_schema() {
	grep -m1 '^alerts/' "$T/al.out" | cut -d' ' -f2- | "$MQPIPE_ROOT/scripts/schemas" validate alert || fail "alert schema"
}
it_case alert-schema case_alert_schema

# repeat_is_no_deadletter SERIES NEWEST: a point at 100000, one at NEWEST,
# the first again (a repeat: nothing), then one never seen at 100001 (late: the
# one dead letter).
repeat_is_no_deadletter() {
	local t=metrics/repeat/$1
	pub "$t" '{"value":5,"timestamp":100000}'
	pub "$t" "{\"value\":5,\"timestamp\":$2}"
	pub "$t" '{"value":5,"timestamp":100000}'
	pub "$t" '{"value":5,"timestamp":100001}'
	wait_for 20 log_has "$T/dl.out" "^deadletter/$t " || fail "the late point on $t was not refused"
	sleep 0.5
	[ "$(grep -c "^deadletter/$t " "$T/dl.out")" -eq 1 ] || fail "$(grep "$t" "$T/dl.out")"
	grep -q "^deadletter/$t .*timestamp 100001 is more than window_s" "$T/dl.out" || fail "$(grep "$t" "$T/dl.out")"
}
# A point delivered again after its window moved on (a broker restart) is a repeat, not late.
case_repeat_x() { repeat_is_no_deadletter x 104000; }
it_case repeat-after-window-moved-is-no-dead-letter case_repeat_x
# ... even once its series moved on by more than two windows (the points are kept 10 min after arrival).
case_repeat_y() { repeat_is_no_deadletter y 110000; }
it_case repeat-after-two-windows-is-no-dead-letter case_repeat_y

case_slow_replay() { # the same series replayed slowly into a fresh alerter gives the same alerts
	start_agent alerter-slow mqpipe-alerter -i it-alerter-slow -p slow -d "$T/slow.db"
	subscribe slow 'slow/alerts/#'
	local m
	for m in 0 1 2 3 4 5; do
		awk -v m="metrics/m$m" '$1 == m { sub(/^[^ ]* /, ""); print }' "$T/points.txt" |
			while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.001; done |
			mosquitto_pub -p "$BROKER_PORT" -q 1 -t "slow/metrics/m$m" -l
	done
	wait_for 30 bash -c "[ \$(cut -d' ' -f2- '$T/slow.out' | sort -u | wc -l) -ge $want ]" || true
	sleep 0.5
	cut -d' ' -f2- "$T/slow.out" | sort -u |
		jq -r '[.metric, .timestamp, .value, .samples, .average] | @tsv' |
		awk -F'\t' '{ printf "%s %d %d %d %.6f\n", $1, $2, $3, $4, $5 }' | sort >"$T/slow.txt"
	diff "$T/want.txt" "$T/slow.txt" >"$T/diff.txt" || fail "the slow replay differs: $(head -10 "$T/diff.txt")"
}
it_case slow-replay-gives-same-alerts case_slow_replay

case_rules_file() { # success rates falling below a third of their hour, per module
	cat >"$T/rules.jsonl" <<'RULES'
# the seed's rule stays; this one watches success_rate per module
{"name": "rate-drop", "topic": "success_rate", "value": "success_rate", "key": "moduleid", "factor": 0.3333333, "direction": "below"}
RULES
	stop_pid "$ALERTER_PID"
	start_agent alerter mqpipe-alerter -d "$T/alerter.db" --rules "$T/rules.jsonl"
	sr() { echo "{\"moduleid\":\"$1\",\"timestamp\":$2,\"success_rate\":$3,\"received\":1,\"attempts\":1}"; }
	{ sr a 1000 90; sr b 1000 90; sr a 1600 95; sr b 1600 95; sr a 2200 null; sr a 2800 20; sr b 2800 40; } >"$T/sr.txt"
	pub_lines success_rate "$T/sr.txt"
	wait_for 20 log_has "$T/al.out" '^alerts/success_rate/a ' || fail "no rate-drop alert: $(cat "$T/al.out" | tail -3)"
	sleep 0.5
	[ "$(grep -c '^alerts/success_rate/' "$T/al.out")" -eq 1 ] || fail "$(grep '^alerts/success_rate/' "$T/al.out")"
	grep -q '"metric":"success_rate/a","value":20,"average":92.5,' "$T/al.out" || fail "$(grep success_rate/a "$T/al.out")"
}
it_case rules-file-rate-drop-per-module case_rules_file

case_bad_rules() { # refused at start, naming its line
	local rc
	printf '{"name":"x","topic":"metrics/#"}\n\n{"name":"y","topic":"a/#/b"}\n' >"$T/bad.jsonl"
	set +e
	"$BIN/mqpipe-alerter" -d "$T/other.db" --rules "$T/bad.jsonl" 2>"$T/bad.err"
	rc=$?
	set -e
	[ "$rc" -eq 64 ] || fail "exit $rc"
	grep -q "bad.jsonl: line 3: 'topic' is not a valid MQTT topic filter" "$T/bad.err" || fail "$(cat "$T/bad.err")"
}
it_case bad-rules-file-refused-naming-its-line case_bad_rules
it_cases_done
