#!/usr/bin/env bash
# scripts/bench's command line and its dashboard chart, without running a
# benchmark: a usage error prints the usage on standard error and exits 64
# before anything is built; --help prints the header; the chart drawn from a
# dashboard result is an SVG with the three panels, its text as text (no
# embedded fonts); a tiny run of the state benchmark goes through (every
# success rate it checks is right, every message sent is stored or folded);
# so does a tiny run of the shards benchmark (every counter, sharded or
# behind the router, counts every event; each process's CPU is reported).
source "$(dirname "$0")/lib.sh"
T=$(mktemp -d /tmp/mqpipe-it.XXXXXX)
trap 'rm -rf "$T"' EXIT
bench=$MQPIPE_ROOT/scripts/bench

usage_error() { # usage_error ARGS...: exit 64, usage on stderr, nothing on stdout
	local code=0
	"$bench" "$@" >"$T/out" 2>"$T/err" || code=$?
	[ "$code" -eq 64 ] || fail "scripts/bench $*: exit $code, not 64"
	grep -q '^usage: scripts/bench' "$T/err" || fail "scripts/bench $*: no usage on stderr: $(cat "$T/err")"
	[ ! -s "$T/out" ] || fail "scripts/bench $*: wrote to stdout: $(cat "$T/out")"
}
note "usage errors"
usage_error
usage_error nope
usage_error counter --runs x
usage_error counter --events 0
usage_error page --runs 3
usage_error dashboard --latency-scale -1
usage_error dashboard --setup-ms soon
usage_error state --modules 0
usage_error state --per-week x
usage_error shards --events 0
usage_error shards --modules 3
usage_error shards --rate -1

note "--help"
"$bench" --help >"$T/help" || fail "scripts/bench --help failed"
for b in counter broker-crash jobs dashboard ingest alerts replay record page state shards; do
	grep -q "^  scripts/bench $b" "$T/help" || fail "--help does not list $b"
done
"$bench" dashboard --help | grep -q -- '--svg PATH' || fail "dashboard --help has no --svg"

note "the chart"
py=python3
python3 -c 'import matplotlib' 2>/dev/null || py=/usr/bin/python3 # Debian's python3-matplotlib
cat >"$T/dashboard.json" <<'JSON'
{"requests": 20, "setup_ms": 500, "latency_scale": 1.0, "modes": {
 "classic": {"n": 20, "e2e_mean_ms": 2277, "e2e_p50_ms": 2189, "e2e_p95_ms": 3303, "overhead_mean_ms": 501.2, "overhead_p50_ms": 501.0, "overhead_p95_ms": 501.6, "pre_resolved_mean": 0, "slowest_branch_mean_ms": 1776},
 "eager": {"n": 20, "e2e_mean_ms": 1844, "e2e_p50_ms": 1851, "e2e_p95_ms": 2388, "overhead_mean_ms": 60.3, "overhead_p50_ms": 58.1, "overhead_p95_ms": 97.6, "pre_resolved_mean": 0, "slowest_branch_mean_ms": 1787},
 "future": {"n": 20, "e2e_mean_ms": 2027, "e2e_p50_ms": 2031, "e2e_p95_ms": 2816, "overhead_mean_ms": 0.6, "overhead_p50_ms": 0.5, "overhead_p95_ms": 0.7, "pre_resolved_mean": 5, "slowest_branch_mean_ms": 2027}},
 "future_vs_classic_improvement_pct": 11.0, "future_vs_classic_improvement_same_branches_pct": 21.0}
JSON
"$py" - "$MQPIPE_ROOT/scripts/lib" "$T/dashboard.json" "$T/chart.svg" <<'PY' || fail "the chart was not drawn"
import json, sys
sys.path.insert(0, sys.argv[1])
from mqpipe_bench.chart import draw_dashboard
draw_dashboard(json.load(open(sys.argv[2])), sys.argv[3])
PY
head -c 200 "$T/chart.svg" | grep -q '<svg\|<?xml' || fail "the chart is not SVG"
for text in 'end-to-end latency' 'overhead over the slowest branch' 'pre-resolved inputs' classic eager future 2277 '0.5'; do
	grep -q ">$text<\|>$text \|$text<" "$T/chart.svg" || fail "the chart has no text '$text'"
done
! grep -q 'id="DejaVu\|<font\|@font-face' "$T/chart.svg" || fail "the chart embeds fonts"
[ "$(wc -c <"$T/chart.svg")" -lt 100000 ] || fail "the chart is $(wc -c <"$T/chart.svg") bytes"
note "state, tiny"
"$bench" state --modules 50 --weeks 6 --per-week 5 >"$T/state.out" 2>&1 ||
	fail "scripts/bench state failed: $(tail -5 "$T/state.out")"
grep -qE '^ +2 +6 +1800 ' "$T/state.out" || fail "no row for month 2: $(cat "$T/state.out")"
grep -q '^state  50 modules x 6 weeks x 5 messages' "$T/state.out" || fail "no summary: $(cat "$T/state.out")"
python3 - "$MQPIPE_ROOT/build/bench/state.json" <<'PY' || fail "build/bench/state.json: $(cat "$MQPIPE_ROOT/build/bench/state.json")"
import json, sys
r = json.load(open(sys.argv[1]))
last = r["months"][-1]
assert (r["modules"], r["weeks"], r["per_week"], len(r["months"])) == (50, 6, 5, 2)
assert last["recv_rows"] + (last["folded"] or 0) == 50 * 6 * 5
assert last["diag_rows"] >= 50 * 6
assert r["start"]["rtt_ms"]["n"] == 4 * 50 and r["end"]["rtt_ms"]["n"] == 2 * 50
PY
note "shards, tiny"
"$bench" shards --events 2000 --runs 1 >"$T/shards.out" 2>&1 ||
	fail "scripts/bench shards failed: $(tail -5 "$T/shards.out")"
rows=('raw broker' 'S=1 counter' 'S=4 sharded publishers' 'S=4 through the router')
[ ! -f "$BIN/../lib/mqpipe_route.so" ] || rows+=('S=4 routed in the broker')
for case in "${rows[@]}"; do
	grep -q "^$case " "$T/shards.out" || fail "no row for $case: $(cat "$T/shards.out")"
done
python3 - "$MQPIPE_ROOT/build/bench/shards.json" "$BIN" <<'PY' || fail "build/bench/shards.json: $(cat "$MQPIPE_ROOT/build/bench/shards.json")"
import json, os, sys
r = json.load(open(sys.argv[1]))
c = r["cases"]
assert (r["events"], r["runs"], r["shards"]) == (2000, 1, 4)
# the fifth case where the plugin was built (README "Routing inside mosquitto")
plugin = os.path.exists(os.path.join(sys.argv[2], "..", "lib", "mqpipe_route.so"))
assert set(c) == {"raw", "s1", "s4", "router"} | ({"plugin"} if plugin else set()), sorted(c)
assert not plugin or r["targets"]["in_broker_routing_over_s1_counter"] is not None
assert all(c[k]["eps"] > 0 for k in c)
assert "counter" in c["s1"]["cpu_s_per_100k"]
assert all(f"counter-{k}" in c["s4"]["cpu_s_per_100k"] for k in range(4))
assert "router" in c["router"]["cpu_s_per_100k"] and "counters" in c["router"]["cpu_s_per_100k"]
assert r["targets"]["router_over_s1_counter"] > 0
# the paced rounds: every counter fed the same rate (default 1000 ev/s)
p = r["paced"]
assert p["rate_per_counter"] == 1000 and (p["cases"]["s1"]["events"], p["cases"]["s4"]["events"]) == (500, 2000)
assert (p["cases"]["s1"]["target_eps"], p["cases"]["s4"]["target_eps"]) == (1000, 4000)
assert all(p["cases"][k]["eps"] > 0 for k in ("s1", "s4"))
assert p["s4_counters_over_s1_counter"] > 0 and p["s4_with_broker_over_s1_with_broker"] > 0
assert r["targets"]["paced_s4_counters_over_s1_counter"] == p["s4_counters_over_s1_counter"]
PY
note "ok"
