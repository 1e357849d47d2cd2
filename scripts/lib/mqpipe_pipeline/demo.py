"""scripts/pipeline demo: up, then a sample fleet's success rates, a job
and a dashboard, a metric spike's alert, the sample traces replayed into a
fresh pipeline, and the feed started for the live page."""
import glob
import os
import random
import subprocess
import time

from mqpipe_traces.jqtext import get, number, rounded, tostring, tsv_field
from mqpipe_traces.paths import ROOT

from . import feed
from .clients import Subscriber, job, publish

WEEK = 604800


def fleet(run, t0):
    """The fleet over three weeks from t0 (its recv_message and
    weekly_diagnostic lines): sensor-a has a reset before its third week,
    sensor-b loses nothing, sensor-c reports no attempts; one diagnostic
    is sent twice."""
    a, b, c = ("sensor-%s.%s" % (x, run) for x in "abc")
    recv = []
    for w in range(3):
        recv += ['{"moduleId":"%s","timestamp":%d}' % (a, t0 + w * WEEK + i * 3600) for i in range(1, (5 if w == 2 else 10) + 1)]
        recv += ['{"moduleid":"%s","timestamp":%d}' % (b, t0 + w * WEEK + i * 3600) for i in range(1, 9)]
    diag = ['{"moduleid":"%s","timestamp":%d,"attempts":%d}' % (m, t0 + w * WEEK - 1, n)
            for m, w, n in ((a, 1, 12), (b, 1, 8), (c, 1, 0), (a, 2, 25), (a, 2, 25), (b, 2, 16), (a, 3, 6), (b, 3, 24))]
    return recv, diag


def rate_row(r):
    """One success_rate as a table row."""
    ts = r.get("timestamp")
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if isinstance(ts, (int, float)) else tsv_field(ts)
    sr = r.get("success_rate")
    rate = "null" if sr is None else number(rounded(sr)) + " %" if isinstance(sr, (int, float)) else tostring(sr)
    return "%-16s %-20s %9s %9s %13s" % (tostring(r.get("moduleid")), when, tsv_field(r.get("received")),
                                         tsv_field(r.get("attempts")), rate)


def demo_fleet(port, run):
    """Publishes the fleet and one malformed diagnostic; prints the seven
    success rates and the dead letter."""
    recv, diag = fleet(run, int(time.time()) - 3 * WEEK)
    print("\npublishing %d recv_message and %d weekly_diagnostic events (one repeated, one malformed)…"
          % (len(recv), len(diag)), flush=True)
    rates = Subscriber(port, ["success_rate"], 7, 20)
    dead = Subscriber(port, ["deadletter/#"], 1, 20, verbose=True)
    time.sleep(0.3)
    publish(port, "recv_message", recv)
    publish(port, "weekly_diagnostic", diag)
    publish(port, "weekly_diagnostic", ['{"moduleid":"sensor-x","timestamp":"last week"}'])
    got = rates.objects()
    print("\n%-16s %-20s %9s %9s %13s" % ("MODULE", "WEEK_ENDING", "RECEIVED", "ATTEMPTS", "SUCCESS_RATE"))
    for r in got:
        print(rate_row(r))
    print("\ndead letter: %s" % " ".join(dead.lines()), flush=True)


def t(obj, *path):
    """jq's "\\(.a.b)": the value at path as text."""
    return tostring(get(obj, *path))


def dashboard_lines(d):
    """The dashboard's summary and its six panels."""
    s = d.get("sources")
    indices = get(s, "external_market", "indices") or []
    places = get(s, "weather", "locations") or []
    return [
        "dashboard %s (%s, %s): mode %s, %s of %s inputs merged early, end to end %s ms"
        % tuple(t(d, k) for k in ("request_id", "dashboard_type", "time_range", "mode", "pre_resolved", "total_inputs", "e2e_ms")),
        "  sales               $%s from %s orders, top: %s"
        % (t(s, "sales", "total_revenue"), t(s, "sales", "orders"), t(s, "sales", "top_products", 0, "name")),
        "  inventory           %s SKUs, %s low, %s out of stock"
        % (t(s, "inventory", "total_skus"), t(s, "inventory", "low_stock_items"), t(s, "inventory", "out_of_stock")),
        "  marketing           %s impressions, %s clicks (%s %%), %s conversions"
        % tuple(t(s, "marketing", k) for k in ("impressions", "clicks", "ctr_pct", "conversions")),
        "  external_market     %s; " % t(s, "external_market", "sentiment")
        + ", ".join("%s %s %%" % (t(i, "symbol"), t(i, "change_pct")) for i in indices),
        "  weather             " + ", ".join("%s %s °C %s" % (t(p, "city"), t(p, "temp_c"), t(p, "conditions")) for p in places),
        "  competitor_pricing  %s products tracked, %s price changes"
        % (t(s, "competitor_pricing", "products_tracked"), t(s, "competitor_pricing", "price_changes_24h")),
    ]


def demo_jobs(port, run):
    """A job of 20 cases (10-50 ms of work each) and an executive dashboard
    (the seed's source latencies, up to 3 s); prints the job's summary and
    the dashboard's six panels."""
    print("\nsubmitting job job-%s (20 cases) and dashboard request dash-%s…" % (run, run), flush=True)
    summaries = Subscriber(port, ["job.summary"], 1, 30)
    dashboards = Subscriber(port, ["dashboard.ready"], 1, 30)
    time.sleep(0.3)
    publish(port, "job.submit", [job("job-" + run, 20)])
    publish(port, "dashboard.request", ['{"request_id":"dash-%s","time_range":"24h"}' % run])
    print()
    for j in summaries.objects() or [None]:
        if j is None:
            print("no job.summary within 30 s: scripts/pipeline logs aggregator")
            continue
        print("job %s: %s cases back in submission order, mode %s, end to end %s ms"
              % (t(j, "requestId"), t(j, "cases"), t(j, "mode"), t(j, "e2eMs")))
        print("  first: %s (%s ms)  last: %s (%s ms)" % (t(j, "results", 0, "caseId"), t(j, "results", 0, "processingMs"),
                                                        t(j, "results", -1, "caseId"), t(j, "results", -1, "processingMs")))
    print()
    for d in dashboards.objects() or [None]:
        print("\n".join(dashboard_lines(d)) if d else "no dashboard.ready within 30 s: scripts/pipeline logs aggregator")


def demo_metrics(port, run):
    """A minute-by-minute CPU series of this run with one spike: prints the
    alerter's alert (a point too late for its window becomes a dead letter)."""
    now = int(time.time())
    topic = "metrics/demo/cpu-" + run
    print("\npublishing 12 minutes of %s, the last one a spike…" % topic, flush=True)
    alerts = Subscriber(port, ["alerts/demo/cpu-" + run], 1, 20)
    time.sleep(0.3)
    points = [(random.randint(18, 22), now - 60 * i) for i in range(11, 0, -1)] + [(87, now), (20, now - 7200)]
    publish(port, topic, ['{"value":%d,"timestamp":%d}' % p for p in points])
    for a in alerts.objects() or [None]:
        if a is None or not all(isinstance(a.get(k), (int, float)) for k in ("ratio", "average")):
            print("no alert within 20 s: scripts/pipeline logs alerter")
            continue
        print("alert on %s: %s is %s x the average %s of the last hour"
              % (t(a, "metric"), t(a, "value"), number(rounded(a["ratio"])), number(rounded(a["average"]))))


def demo(dep):
    """Runs the demo on dep (started if it is not up); returns the exit
    status (the replay's when it fails)."""
    dep.up()
    feed.stop(dep)  # its events would mix with the demo's
    port = dep.port()
    run = time.strftime("%H%M%S") + "%03d" % (time.time() * 1000 % 1000)  # each demo its own modules
    demo_fleet(port, run)
    demo_jobs(port, run)
    demo_metrics(port, run)
    print("\nreplaying the sample traces (test/traces/: a week of a fleet, jobs and dashboards,")
    print("ingestion, metric spikes) into a fresh, throw-away pipeline at 4x speed…", flush=True)
    traces = sorted(glob.glob(os.path.join(ROOT, "test/traces/*.jsonl")))
    rc = subprocess.run([os.path.join(ROOT, "scripts/traces"), "run", "--speed", "4", *traces]).returncode
    if rc != 0:
        return rc
    print("\n", flush=True)
    feed.start(dep, 600)
    print("The pipeline keeps running (scripts/pipeline status | logs | down), and the feed keeps")
    print("its live page, http://127.0.0.1:%s/, busy for 10 minutes (scripts/pipeline feed stop)." % dep.web_port())
    print("Or try:")
    print("  mosquitto_sub -p %s -t success_rate -v &" % port)
    print("""  mosquitto_pub -p %s -q 1 -t recv_message -m '{"moduleId":"m1","timestamp":100}'""" % port)
    print("""  mosquitto_pub -p %s -q 1 -t weekly_diagnostic -m '{"moduleid":"m1","timestamp":200,"attempts":2}'""" % port)
    return 0
