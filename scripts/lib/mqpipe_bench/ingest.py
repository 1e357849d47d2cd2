"""The ingest benchmark: request/response throughput of the ingest agent
against a plain responder, then latency at a steady rate."""
import json
import os
import subprocess
import time

from .clients import run, start_agent
from .fixture import BenchError
from .measure import jq_num, mb, median, peak_kb, write_result


def load(ws, n, *args):
    """Runs mqpipe-load for N requests with ARGS (a later -n wins); returns
    its JSON summary."""
    out = run([os.path.join(ws.bin, "mqpipe-load"), "-b", ws.broker.uri, "-n", str(n), "--json", *args],
              stdout=subprocess.PIPE).stdout
    return json.loads(out)


def bench_ingest(ws, args):
    """ingest: ARGS.events user.ingest requests (20 % invalid) per run, 64
    outstanding, to the ingest agent and alternately to mqpipe-load --echo;
    ARGS.runs runs, medians, then latency at 2000 requests/s. Prints them,
    writes build/bench/ingest.json; BenchError on lost or garbled answers."""
    n, runs = args.events, args.runs
    b = ws.start_broker()
    print(f"broker: {b.uri}  requests per run: {n}  runs: {runs}  window: 64", flush=True)
    ingest = start_agent(ws, "ingest", "mqpipe-ingest")
    with open(ws.path("echo.log"), "ab") as err:
        ws.spawn([os.path.join(ws.bin, "mqpipe-load"), "--echo", "-b", b.uri, "-t", "bench/echo"], stderr=err)
    time.sleep(0.5)
    load(ws, n, "-t", "bench/echo", "-n", "2000")  # warm both up
    load(ws, n, "-t", "bench/user.ingest", "-n", "2000")
    echo_rps, agent_rps = [], []
    for r in range(1, runs + 1):
        echo_rps.append(load(ws, n, "-t", "bench/echo")["rps"])
        out = load(ws, n, "-t", "bench/user.ingest")
        agent_rps.append(out["rps"])
        if not (out["answered"] == out["requests"] and out["other"] == 0):
            raise BenchError(f"ingest lost or garbled answers: {json.dumps(out)}")
        print("  run %d: plain responder %7.0f req/s   ingest %7.0f req/s  (%s x 200, %s x 400)"
              % (r, echo_rps[-1], agent_rps[-1], jq_num(out["status_200"]), jq_num(out["status_400"])), flush=True)
    e, a = median(echo_rps), median(agent_rps)
    steady = load(ws, n, "-t", "bench/user.ingest", "-n", "10000", "--rate", "2000")
    print()
    print("throughput  ingest %7.0f req/s  plain responder %7.0f req/s  ratio %.2f  (median of %d, target >= 0.8)"
          % (a, e, a / e, runs))
    s = {k: jq_num(v) for k, v in steady.items()}
    print(f"latency     at 2000 req/s: p50 {s['p50_ms']} ms  p95 {s['p95_ms']} ms  p99 {s['p99_ms']} ms  "
          f"max {s['max_ms']} ms  ({s['status_200']} x 200, {s['status_400']} x 400, {s['lost']} lost)")
    print("memory      ingest peak RSS %.1f MB" % mb(peak_kb(ingest)))
    write_result(ws.root, "ingest", {
        "requests_per_run": n, "runs": runs, "window": 64,
        "throughput": {"ingest_rps": a, "plain_responder_rps": e, "ratio": a / e},
        "steady_2000_rps": steady})
