"""The dashboard benchmark, the seed's: the three fan-in modes of the
aggregator side by side on the same dashboard requests."""
import json
import os
import statistics
import time

from .clients import publish, read_stamped, start_agent, sub_cmd
from .fixture import BenchError, stop_process
from .measure import pct, write_result

MODES = ("classic", "eager", "future")
CSV_HEADER = ("mode,n,e2e_mean_ms,e2e_p50_ms,e2e_p95_ms,overhead_mean_ms,overhead_p50_ms,"
              "overhead_p95_ms,pre_resolved_mean,slowest_branch_mean_ms\n")


def run_mode(ws, mode, requests):
    """Restarts the aggregator in MODE, sends REQUESTS dashboard requests
    250 ms apart while one subscriber stamps every compute.done and
    dashboard.ready, waits up to 20 s for all the dashboards; returns the
    stamped (seconds, topic, payload) lines."""
    out = ws.path(f"{mode}.out")
    with open(out, "w") as f:
        sub = ws.spawn(sub_cmd(ws, "-q", "1", "--nodelay", "-t", "bench/compute.done", "-t", "bench/dashboard.ready",
                               "-F", "%U %t %p"), stdout=f)
    time.sleep(0.3)
    for i in range(1, requests + 1):
        publish(ws, "bench/dashboard.request", f'{{"request_id":"{mode}-{i}"}}')
        time.sleep(0.25)

    def ready():
        return sum(1 for line in open(out, errors="replace") if " bench/dashboard.ready " in line)
    for _ in range(400):
        if ready() >= requests:
            break
        time.sleep(0.05)
    stop_process(sub)
    print(f"  {mode}: {ready()} of {requests} dashboards", flush=True)
    return read_stamped(out)


def mode_figures(mode, lines):
    """The figures of one mode from its stamped lines: e2e mean/p50/p95 (the
    aggregator's own e2e_ms), overhead of dashboard.ready over the last
    compute.done of its request (mean/p50/p95), the slowest branch, the
    pre-resolved inputs. BenchError when no dashboard arrived."""
    last_done, ready = {}, {}
    for ts, topic, payload in lines:
        ev = json.loads(payload)
        if topic.endswith("compute.done"):
            last_done[ev["requestId"]] = max(last_done.get(ev["requestId"], 0), ts)
        else:
            ready[ev["request_id"]] = (ts, ev)
    e2e = [ev["e2e_ms"] for _, ev in ready.values()]
    over = [(t - last_done[r]) * 1000 for r, (t, _) in ready.items() if r in last_done]
    slowest = [ev["e2e_ms"] - (t - last_done[r]) * 1000 for r, (t, ev) in ready.items() if r in last_done]
    pre = [ev["pre_resolved"] for _, ev in ready.values()]
    if not e2e or not over:
        raise BenchError(f"{mode}: no dashboard.ready")
    return {"n": len(e2e), "e2e_mean_ms": statistics.mean(e2e), "e2e_p50_ms": pct(e2e, 50),
            "e2e_p95_ms": pct(e2e, 95), "overhead_mean_ms": statistics.mean(over),
            "overhead_p50_ms": pct(over, 50), "overhead_p95_ms": pct(over, 95),
            "pre_resolved_mean": statistics.mean(pre), "slowest_branch_mean_ms": statistics.mean(slowest)}


def compare(result):
    """Adds future's improvement over classic to RESULT: in mean e2e, and at
    the same slowest branch (the mean over all modes, since each mode draws
    its own random branch latencies), where only the overhead differs."""
    modes = result["modes"]
    c, f = modes["classic"]["e2e_mean_ms"], modes["future"]["e2e_mean_ms"]
    result["future_vs_classic_improvement_pct"] = 100 * (c - f) / c
    slow = statistics.mean(m["slowest_branch_mean_ms"] for m in modes.values())
    oc, of = modes["classic"]["overhead_mean_ms"], modes["future"]["overhead_mean_ms"]
    result["future_vs_classic_improvement_same_branches_pct"] = 100 * (oc - of) / (slow + oc)


def print_table(result):
    """Prints the per-mode table and the comparison line."""
    print()
    print(f"{'mode':8} {'n':>3} {'e2e mean':>9} {'p50':>7} {'p95':>7} {'slowest branch':>15} "
          f"{'overhead p50':>13} {'p95':>7} {'pre-resolved':>13}")
    for mode, m in result["modes"].items():
        print(f"{mode:8} {m['n']:3d} {m['e2e_mean_ms']:7.0f}ms {m['e2e_p50_ms']:5.0f}ms {m['e2e_p95_ms']:5.0f}ms "
              f"{m['slowest_branch_mean_ms']:13.0f}ms {m['overhead_p50_ms']:11.1f}ms {m['overhead_p95_ms']:5.1f}ms "
              f"{m['pre_resolved_mean']:10.1f} of 6")
    print(f"future vs classic: {result['future_vs_classic_improvement_pct']:.1f} % lower mean e2e; "
          f"{result['future_vs_classic_improvement_same_branches_pct']:.1f} % at the same branch latencies "
          f"(setup {result['setup_ms']} ms; target: future's overhead p50 <= 5 ms)")


def write_csv(path, result):
    """Writes the per-mode figures as CSV (floats rounded to 3 places)."""
    keys = ("n", "e2e_mean_ms", "e2e_p50_ms", "e2e_p95_ms", "overhead_mean_ms", "overhead_p50_ms",
            "overhead_p95_ms", "pre_resolved_mean", "slowest_branch_mean_ms")
    with open(path, "w") as fh:
        fh.write(CSV_HEADER)
        for mode, m in result["modes"].items():
            cells = [mode] + [m[k] for k in keys]
            fh.write(",".join(str(round(x, 3)) if isinstance(x, float) else str(x) for x in cells) + "\n")


def bench_dashboard(ws, args):
    """dashboard: for each mode ARGS.requests dashboards with the
    aggregator's --setup-ms and the workers' --latency-scale; prints the
    table, writes build/bench/dashboard.json and .csv, and draws the chart
    to ARGS.svg (default build/bench/dashboard.svg)."""
    requests, setup_ms, scale = args.requests, args.setup_ms, args.latency_scale
    b = ws.start_broker()
    print(f"broker: {b.uri}  requests per mode: {requests}  setup: {setup_ms} ms  "
          f"latency scale: {args.latency_scale_text}", flush=True)
    start_agent(ws, "dispatcher", "mqpipe-dispatcher")
    start_agent(ws, "counter", "mqpipe-counter")
    start_agent(ws, "worker", "mqpipe-worker", "-i", "bench-worker", "--latency-scale", args.latency_scale_text)
    result = {"requests": requests, "setup_ms": setup_ms, "latency_scale": scale, "modes": {}}
    aggregator, stamped = None, {}
    for mode in MODES:
        stop_process(aggregator)
        aggregator = start_agent(ws, f"aggregator-{mode}", "mqpipe-aggregator", "-d", ws.path("aggregator.db"),
                                 "--mode", mode, "--setup-ms", str(setup_ms), "--poll-ms", "100")
        stamped[mode] = run_mode(ws, mode, requests)
    for mode in MODES:
        result["modes"][mode] = mode_figures(mode, stamped[mode])
    compare(result)
    print_table(result)
    out = os.path.join(ws.root, "build", "bench")
    write_result(ws.root, "dashboard", result)
    write_csv(os.path.join(out, "dashboard.csv"), result)
    from .chart import draw_dashboard  # matplotlib only where the chart is drawn
    svg = args.svg or os.path.join(out, "dashboard.svg")
    draw_dashboard(result, svg)
    print(f"chart: {os.path.relpath(svg, ws.root) if svg.startswith(ws.root + os.sep) else svg}")
