"""The alerts benchmark: the alerter's points/s against the raw broker, and
point -> alert latency."""
import re
import time

from .clients import (delivery_rate, make_session, publish_lines, publish_paced, read_stamped, start_agent, sub_cmd,
                      write_lines)
from .fixture import stop_process
from .measure import mb, median, peak_kb, rank, write_result

METRICS = 10000
METRIC = re.compile(r'.*"metric":"([^"]*)')  # the last "metric" field of a payload


def points(n, r):
    """Run R's N points over 10 000 metrics, starting where run R-1's ended
    so every window is live, then a spike of metric endR whose alert marks
    the end."""
    base = 1700000000 + r * 100000
    for i in range(n):
        yield f'{{"metric":"m{i % METRICS}","value":{100 + i % 7},"timestamp":{base + i // METRICS}}}'
    yield f'{{"metric":"end{r}","value":1,"timestamp":{base}}}'
    yield f'{{"metric":"end{r}","value":1000,"timestamp":{base + 1}}}'


def alert_latency(ws, spike_ts):
    """Each of 500 metrics gets a spike at SPIKE_TS, one at a time (4 ms
    apart); one subscriber stamps the point and its alert. Returns the
    latencies in ms."""
    out = ws.path("lat.out")
    with open(out, "w") as f:
        sub = ws.spawn(sub_cmd(ws, "-q", "1", "--nodelay", "-t", "bench/points", "-t", "bench/alerts/#",
                               "-F", "%U %t %p"), stdout=f)
    time.sleep(0.3)
    publish_paced(ws, "bench/points",
                  (f'{{"metric":"m{i}","value":100000,"timestamp":{spike_ts}}}' for i in range(500)), 0.004)
    time.sleep(1)
    stop_process(sub)
    sent, lat = {}, []
    for ts, topic, payload in read_stamped(out):
        m = METRIC.match(payload)
        if not m:
            continue
        metric = m.group(1).removeprefix("points/")
        if topic == "bench/points":
            sent[metric] = ts
        elif metric in sent:
            lat.append((ts - sent[metric]) * 1000)
    return lat


def bench_alerts(ws, args):
    """alerts: ARGS.events points over 10 000 metrics to the alerter until
    the last point's alert arrives, against a plain mosquitto_sub; ARGS.runs
    runs, medians; then alert latency for 500 spikes. Prints them and writes
    build/bench/alerts.json."""
    events, runs = args.events, args.runs
    b = ws.start_broker()
    with open(ws.path("rules.jsonl"), "w") as f:
        f.write('{"name":"bench","topic":"points","key":"metric"}\n')
    alerter = start_agent(ws, "alerter", "mqpipe-alerter", "--rules", ws.path("rules.jsonl"))
    print(f"broker: {b.uri}  points: {events} over {METRICS} metrics  runs: {runs}", flush=True)
    path = ws.path("points.txt")
    raw_rates, agent_rates = [], []
    for r in range(1, runs + 1):
        write_lines(path, points(events, r))
        total = events + 2
        make_session(ws, "bench-raw", "raw/points")
        raw_rates.append(delivery_rate(ws, ("-q", "1", "-i", "bench-raw", "-c", "-t", "raw/points", "-C", str(total)),
                                       lambda: publish_lines(ws, "raw/points", path), total))
        agent_rates.append(delivery_rate(ws, ("-q", "1", "-t", f"bench/alerts/points/end{r}", "-C", "1"),
                                         lambda: publish_lines(ws, "bench/points", path), total))
        print("  run %d: raw %8.0f points/s   alerter %8.0f points/s" % (r, raw_rates[-1], agent_rates[-1]), flush=True)
    lat = alert_latency(ws, 1700000000 + runs * 100000 + events // METRICS + 60)
    raw_med, agent_med = median(raw_rates), median(agent_rates)
    l50, l99 = (round(rank(lat, q), 3) for q in (0.5, 0.99)) if lat else (0, 0)
    print()
    print("throughput  alerter %8.0f points/s  raw broker %8.0f points/s  ratio %.2f  (median of %d, target >= 0.8)"
          % (agent_med, raw_med, agent_med / raw_med, runs))
    print("latency     point -> alert  p50 %.3f ms  p99 %.3f ms  (n=%d, target p99 < 5 ms)" % (l50, l99, len(lat)))
    print("memory      alerter peak RSS %.1f MB" % mb(peak_kb(alerter)))
    write_result(ws.root, "alerts", {
        "points": events, "metrics": METRICS, "runs": runs,
        "throughput": {"alerter_pps": agent_med, "raw_pps": raw_med, "ratio": agent_med / raw_med},
        "alert_latency_ms": {"p50": l50, "p99": l99, "n": len(lat)}})
