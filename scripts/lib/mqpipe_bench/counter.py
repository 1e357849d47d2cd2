"""The counter's benchmarks: its live rate, drain, round trip and memory
against the raw broker (counter), and what a broker kill -9 loses of the
events queued for it (broker-crash)."""
import json
import signal
import sqlite3
import subprocess
import time

from .clients import (delivery_rate, make_session, publish, publish_lines, publish_paced, read_stamped, run,
                      start_counter, sub_cmd, wait_for_log, write_lines)
from .fixture import BenchError, stop_process
from .measure import mb, median, now, peak_kb, rank, rate, write_result


def recv_lines(module, n):
    """N recv_message payloads of MODULE, timestamps 1..N."""
    return (f'{{"moduleId":"{module}","timestamp":{i}}}' for i in range(1, n + 1))


def diagnostic(module, timestamp, attempts):
    """A weekly_diagnostic payload."""
    return f'{{"moduleid":"{module}","timestamp":{timestamp},"attempts":{attempts}}}'


def expect_received(path, events, what):
    """Raises BenchError unless the success_rate in PATH counted EVENTS."""
    text = open(path, errors="replace").read()
    if f'"received":{events},' not in text:
        raise BenchError(f"{what} lost events: {text.rstrip()}")


def round_trip(ws):
    """500 diagnostics one at a time (4 ms apart); one subscriber stamps both
    each diagnostic and its success_rate as they arrive. Returns the
    latencies in ms."""
    out = ws.path("rtt.out")
    with open(out, "w") as f:
        sub = ws.spawn(sub_cmd(ws, "-q", "1", "-t", "bench/weekly_diagnostic", "-t", "bench/success_rate",
                               "-F", "%U %t %p"), stdout=f)
    time.sleep(0.3)
    publish_paced(ws, "bench/weekly_diagnostic", (diagnostic("rtt", i, i) for i in range(1, 501)), 0.004)
    time.sleep(1)
    stop_process(sub)
    sent, lat = {}, []
    for ts, topic, payload in read_stamped(out):
        try:
            stamp = json.loads(payload)["timestamp"]
        except (ValueError, KeyError, TypeError):
            continue
        if topic.endswith("weekly_diagnostic"):
            sent[stamp] = ts
        elif stamp in sent:
            lat.append((ts - sent[stamp]) * 1000)
    return lat


def bench_counter(ws, args):
    """counter: live rate against a plain mosquitto_sub (ARGS.runs runs of
    ARGS.events), drain of a kept session against mosquitto_sub's, the
    weekly_diagnostic -> success_rate round trip and the counter's peak RSS.
    Prints them and writes build/bench/counter.json; BenchError when the
    counter loses events."""
    events, runs = args.events, args.runs
    b = ws.start_broker()
    print(f"broker: {b.uri}  events: {events}  runs: {runs}", flush=True)
    recv, sr = ws.path("recv.txt"), ws.path("sr.out")
    raw_rates, agent_rates = [], []

    # Live: the publisher feeds a plain subscriber, then the counter.
    counter = start_counter(ws, "live")
    wait_for_log(ws.path("live.log"), "event=online", 5)
    for r in range(1, runs + 1):
        write_lines(recv, recv_lines(f"live{r}", events))
        make_session(ws, "bench-raw", "raw/recv_message")
        raw_sub = ("-q", "1", "-i", "bench-raw", "-c", "-t", "raw/recv_message", "-C", str(events))
        raw_rates.append(delivery_rate(ws, raw_sub, lambda: publish_lines(ws, "raw/recv_message", recv), events))

        def feed():
            publish_lines(ws, "bench/recv_message", recv)
            publish(ws, "bench/weekly_diagnostic", diagnostic(f"live{r}", events + 1, events))
        with open(sr, "w") as f:
            agent_rates.append(delivery_rate(ws, ("-q", "1", "-t", "bench/success_rate", "-C", "1"), feed, events, f))
        expect_received(sr, events, "counter")
        print("  run %d: raw %8.0f ev/s   counter %8.0f ev/s" % (r, raw_rates[-1], agent_rates[-1]), flush=True)
    peak = peak_kb(counter)

    lat = round_trip(ws)
    peak = max(peak, peak_kb(counter))

    # Drain: N events wait in the persistent session of a stopped consumer.
    stop_process(counter)
    write_lines(recv, recv_lines("drain", events))
    publish_lines(ws, "bench/recv_message", recv)
    publish(ws, "bench/weekly_diagnostic", diagnostic("drain", events + 1, events))
    make_session(ws, "bench-drain", "raw/drain")
    publish_lines(ws, "raw/drain", recv)
    t0 = now()
    run(sub_cmd(ws, "-q", "1", "-i", "bench-drain", "-c", "-t", "raw/drain", "-C", str(events)),
        stdout=subprocess.DEVNULL)
    drain_raw = rate(events, t0, now())

    drainer = []  # the counter started inside the timed feed
    with open(sr, "w") as f:
        drain_agent = delivery_rate(ws, ("-q", "1", "-t", "bench/success_rate", "-C", "1"),
                                    lambda: drainer.append(start_counter(ws, "drain")), events, f)
    expect_received(sr, events, "drain")
    peak = max(peak, peak_kb(drainer[0]))

    raw_med, agent_med = median(raw_rates), median(agent_rates)
    rtt50, rtt99 = (round(rank(lat, q), 3) for q in (0.5, 0.99)) if lat else (0, 0)
    print()
    print("live     counter %8.0f ev/s  raw broker %8.0f ev/s  ratio %.2f  (median of %d, target >= 0.9)"
          % (agent_med, raw_med, agent_med / raw_med, runs))
    print("drain    counter %8.0f ev/s  mosquitto_sub %8.0f ev/s  ratio %.2f  (target >= 0.5)"
          % (drain_agent, drain_raw, drain_agent / drain_raw))
    print("rtt      weekly_diagnostic -> success_rate  p50 %.3f ms  p99 %.3f ms  (n=%d, target p99 < 5 ms)"
          % (rtt50, rtt99, len(lat)))
    print("memory   counter peak RSS %.1f MB  (target < 16 MB)" % mb(peak))
    write_result(ws.root, "counter", {
        "events": events, "runs": runs,
        "live": {"counter_eps": agent_med, "raw_eps": raw_med, "ratio": agent_med / raw_med},
        "drain": {"counter_eps": drain_agent, "raw_eps": drain_raw, "ratio": drain_agent / drain_raw},
        "rtt_ms": {"p50": rtt50, "p99": rtt99, "n": len(lat)},
        "peak_rss_kb": peak})


def stored_count(db, module):
    """How many recv_message rows of MODULE the counter's database DB holds
    (0 while it has no table yet)."""
    try:
        con = sqlite3.connect(db, timeout=5)
        try:
            return con.execute("SELECT count(*) FROM recv_message WHERE module=?", (module,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def crash_case(ws, events, wait_s, module):
    """Queues EVENTS events of MODULE for the stopped counter, waits WAIT_S
    seconds, kills the broker with SIGKILL, restarts it, drains with the
    counter until the stored count stops moving. Returns how many were lost."""
    recv = ws.path("recv.txt")
    write_lines(recv, recv_lines(module, events))
    publish_lines(ws, "bench/recv_message", recv)
    time.sleep(wait_s)
    ws.broker.stop(signal.SIGKILL)
    ws.broker.restart()
    counter = start_counter(ws, f"crash-{module}")
    stored, last = 0, -1
    for i in range(1, 101):  # until the count stops moving
        time.sleep(0.3)
        stored = stored_count(ws.path("counter.db"), module)
        if stored == last and (stored > 0 or i > 10):
            break
        last = stored
    stop_process(counter)
    return events - stored


def bench_broker_crash(ws, args):
    """broker-crash: ARGS.events events queued in the stopped counter's
    session, the broker SIGKILLed at once and again 6 s after publishing
    (past the 5 s autosave). Prints how many each case lost and writes
    build/bench/broker-crash.json."""
    events = args.events
    b = ws.start_broker()
    print(f"broker: {b.uri}  events: {events}  autosave_interval: {b.setting('autosave_interval')} s", flush=True)
    counter = start_counter(ws, "crash-setup")  # create the counter's persistent session, then stop it
    time.sleep(1)
    stop_process(counter)
    lost_now = crash_case(ws, events, 0, "now")
    lost_later = crash_case(ws, events, 6, "later")
    print("broker SIGKILL right after publishing:   %d of %d queued events lost" % (lost_now, events))
    print("broker SIGKILL 6 s after publishing:     %d of %d queued events lost" % (lost_later, events))
    write_result(ws.root, "broker-crash",
                 {"events": events, "lost_kill_at_once": lost_now, "lost_kill_after_6s": lost_later})
