"""The feed: in the background, a steady live sample for the live page (12
modules, 3 hosts' CPU with spikes, a job every 15 s, a dashboard every
20 s, a bad payload every 30 s), started by demo and feed, ended by feed
stop and down."""
import os
import random
import signal
import sys
import time

from .clients import job, publish
from .deploy import launcher, spawn


def start(dep, secs):
    """Starts the feed for secs seconds unless it runs."""
    pid = dep.pid_of("feed")
    if pid:
        print("feed      already running (pid %d)" % pid, flush=True)
        return
    log = os.path.join(dep.log_dir, "feed.log")
    proc = spawn(launcher() + ["feed-run", str(secs)], log)
    dep.write(os.path.join(dep.run_dir, "feed.pid"), proc.pid)
    print("feed      publishing a live sample for %d s (pid %d, log %s)" % (secs, proc.pid, log), flush=True)


def stop(dep):
    """Ends the feed if it runs."""
    dep.stop("feed", "feed stopped")


def tick(port, run, start_ts, n):
    """Publishes tick n's events. Event time is the tick (start + n), so
    the rates are exact whatever the machine's pace: module k is received
    in (50 + 4k) % of ticks, and every 5 ticks each module's diagnostic
    counts every tick so far as an attempt."""
    ts = start_ts + n
    publish(port, "recv_message", ['{"moduleId":"pump-%02d.%s","timestamp":%d}' % (k, run, ts)
                                   for k in range(1, 13) if random.randrange(100) < 50 + 4 * k])
    if n % 5 == 0:
        publish(port, "weekly_diagnostic", ['{"moduleid":"pump-%02d.%s","timestamp":%d,"attempts":%d}'
                                            % (k, run, ts + 1, n) for k in range(1, 13)])
    for k in (1, 2, 3):
        v = 95 if n % 40 == k * 12 else 18 + random.randrange(6)
        publish(port, "metrics/feed/cpu-host%d.%s" % (k, run), ['{"value":%d,"timestamp":%d}' % (v, ts)])
    if n % 15 == 1:
        publish(port, "job.submit", [job("feed-%s-%d" % (run, n), 8)])
    if n % 20 == 2:
        publish(port, "dashboard.request", ['{"request_id":"feed-%s-%d","time_range":"24h"}' % (run, n)])
    if n % 30 == 3:
        publish(port, "recv_message", ['{"moduleId":"pump-01.%s","timestamp":"soon"}' % run])


def run(dep, secs):
    """The feed itself (scripts/pipeline feed-run SECONDS), one tick a
    second; ends with 0 after secs ticks or on SIGTERM."""
    signal.signal(signal.SIGTERM, lambda _s, _f: sys.exit(0))
    port, run_id, start_ts = dep.port(), time.strftime("%H%M%S"), int(time.time())
    try:
        for n in range(1, secs + 1):
            tick(port, run_id, start_ts, n)
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    return 0
