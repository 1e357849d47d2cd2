"""The state benchmark: a fleet fed week by week, in compressed time, through
the real counter; the counter's database after each simulated month (4
weeks), its throughput and its round trip at the start and at the end, each
success rate checked against a calculation of its own."""
import json
import os
import random
import sqlite3
import subprocess
import time

from .clients import make_session, publish_paced, read_stamped, run, start_agent, sub_cmd, pub_cmd
from .counter import diagnostic
from .fixture import BenchError, stop_process
from .measure import mb, median, now, peak_kb, rank, write_result

WEEK = 7 * 86400
T0 = 1767225600            # 2026-01-01T00:00:00Z: week w starts at T0 + w*WEEK
MONTH = 4                  # weeks a simulated month (52 = 13 of them)
PART = 50000               # mosquitto_pub -l stops at 65 535 lines
PROBES = 300               # round-trip probes after each round of the first and last month
PROBE_GAP_S = 0.005
RESET_SHARE = 0.02         # modules whose attempts restart low, each week from the third on
CALIBRATION = 50000        # messages the counter's rate is first measured on


def module_name(m):
    """Module M's id (13 bytes, a realistic length)."""
    return f"module-{m:06d}"


def diag_ts(w):
    """The timestamp of week W's diagnostics: the week's last seconds but
    one (the probes take the last one)."""
    return T0 + (w + 1) * WEEK - 2


class Fleet:
    """What the modules sent, and what the counter must answer, by the
    README's rule ("The success rate") computed here on its own: a reset
    when attempts go down; received = the messages after the diagnostic
    just before the most recent reset."""

    def __init__(self, modules, per_week, seed=18):
        self.modules, self.per_week = modules, per_week
        self.rng = random.Random(seed)
        self.sent = [0] * modules           # messages sent so far
        self.cum = [0] * modules            # the module's own attempt counter
        self.last_attempts = [None] * modules
        self.at_last_diag = [0] * modules   # messages up to the last diagnostic
        self.base = [0] * modules           # messages up to the window's start
        self.expected = {}                  # (module name, ts) -> (received, attempts)
        self.resets = 0

    def write_messages(self, w, prefix):
        """Writes week W's recv_message lines, the fleet interleaved as in
        real time (message j of every module, then j+1), into part files of
        50 000 lines PREFIX.NNN; returns their names."""
        slot = WEEK // self.per_week
        base = T0 + w * WEEK
        names = [module_name(m) for m in range(self.modules)]
        parts, buf = [], []
        for j in range(self.per_week):
            start = base + j * slot
            for m, name in enumerate(names):
                buf.append(f'{{"moduleId":"{name}","timestamp":{start + m % (slot - 3)}}}\n')
                if len(buf) == PART:
                    parts.append(self._flush(prefix, len(parts), buf))
                    buf = []
        if buf:
            parts.append(self._flush(prefix, len(parts), buf))
        for m in range(self.modules):
            self.sent[m] += self.per_week
        return parts

    @staticmethod
    def _flush(prefix, n, lines):
        name = f"{prefix}.{n:03d}"
        with open(name, "w") as f:
            f.writelines(lines)
        return name

    def _apply(self, m, ts, attempts):
        """Module M's diagnostic (TS, ATTEMPTS), in timestamp order: records
        the answer it must get."""
        if self.last_attempts[m] is not None and attempts < self.last_attempts[m]:
            self.base[m] = self.at_last_diag[m]
        self.last_attempts[m] = attempts
        self.at_last_diag[m] = self.sent[m]
        self.expected[(module_name(m), ts)] = (self.sent[m] - self.base[m], attempts)

    def write_diagnostics(self, w, path):
        """Writes week W's weekly_diagnostic of every module to PATH:
        cumulative attempts (the week's messages and 0-3 failures), restarting
        from the week's own for ~2% of the modules from the third week on."""
        with open(path, "w") as f:
            for m in range(self.modules):
                fails = self.rng.randrange(4)
                if w >= 2 and self.rng.random() < RESET_SHARE:
                    self.cum[m] = self.per_week + fails
                    self.resets += 1
                else:
                    self.cum[m] += self.per_week + fails
                self._apply(m, diag_ts(w), self.cum[m])
                f.write(diagnostic(module_name(m), diag_ts(w), self.cum[m]) + "\n")

    def probes(self, w, n):
        """N diagnostics of modules spread over the fleet one second after
        week W's, with the same attempts (no reset, no message in between:
        the next week's answers stay the same). Returns the payloads."""
        out = []
        for i in range(min(n, self.modules)):
            m = i * self.modules // min(n, self.modules)
            self._apply(m, diag_ts(w) + 1, self.cum[m])
            out.append(diagnostic(module_name(m), diag_ts(w) + 1, self.cum[m]))
        return out

    def check(self, payload):
        """Raises BenchError unless PAYLOAD (a success_rate) is the answer
        expected; returns its (module, timestamp)."""
        try:
            sr = json.loads(payload)
            key = (sr["moduleid"], sr["timestamp"])
        except (ValueError, KeyError, TypeError):
            raise BenchError(f"unreadable success_rate: {payload}") from None
        if key not in self.expected:
            raise BenchError(f"success_rate for a diagnostic never sent: {payload}")
        received, attempts = self.expected[key]
        rate = min(100.0, 100.0 * received / attempts) if attempts else None
        got = sr.get("success_rate")
        # cJSON prints 15 significant digits: the rate agrees to those.
        close = got == rate or (isinstance(got, float) and rate and abs(got - rate) <= 1e-13 * rate)
        if (sr.get("received"), sr.get("attempts")) != (received, attempts) or not close:
            raise BenchError(f"wrong success_rate {payload}: expected received {received}, attempts {attempts}, "
                             f"success_rate {rate}")
        return key


def publish_files(ws, topic, files):
    """Publishes each line of each of FILES on TOPIC at QoS 1 (one
    mosquitto_pub -l per file)."""
    for name in files:
        with open(name, "rb") as f:
            run(pub_cmd(ws, "-q", "1", "-t", topic, "-l"), stdin=f)


def timed_delivery(ws, sub_args, feed, count, stdout, timeout_s, what):
    """Starts mosquitto_sub with SUB_ARGS (ending with -C), gives it 0.2 s to
    subscribe, calls FEED() and waits for the subscriber: returns COUNT per
    second from just before FEED to its end. BenchError after TIMEOUT_S."""
    sub = ws.spawn(sub_cmd(ws, *sub_args), stdout=stdout)
    time.sleep(0.2)
    t0 = now()
    feed()
    try:
        sub.wait(timeout=max(1.0, timeout_s - (now() - t0)))
    except subprocess.TimeoutExpired:
        stop_process(sub)
        raise BenchError(f"{what}: not all answers within {timeout_s:.0f} s") from None
    return count / (now() - t0)


def counter_flags(ws):
    """True when this mqpipe-counter has --dedup-horizon."""
    out = subprocess.run([os.path.join(ws.bin, "mqpipe-counter"), "--help"], capture_output=True, text=True)
    return "--dedup-horizon" in out.stdout + out.stderr


def calibrate(ws, n):
    """The counter's rate, in events/s, on N messages of 1000 modules plus
    their diagnostics, in a database and session of its own (thrown away)."""
    cal = start_agent(ws, "calibrate", "mqpipe-counter", "-p", "cal", "-i", "bench-calibrate")
    mods = min(1000, n)
    lines = [f'{{"moduleId":"cal{i % mods}","timestamp":{i // mods + 1}}}\n' for i in range(n)]
    parts = []
    for k in range(0, n, PART):
        parts.append(Fleet._flush(ws.path("cal.recv"), len(parts), lines[k:k + PART]))
    with open(ws.path("cal.diag"), "w") as f:
        f.writelines(diagnostic(f"cal{i}", n, n) + "\n" for i in range(mods))

    def feed():
        publish_files(ws, "cal/recv_message", parts)
        publish_files(ws, "cal/weekly_diagnostic", [ws.path("cal.diag")])
    r = timed_delivery(ws, ("-q", "1", "-t", "cal/success_rate", "-C", str(mods)), feed, n + mods,
                       subprocess.DEVNULL, 120, "calibration")
    stop_process(cal)
    for name in parts + [ws.path("cal.diag")] + [ws.path("calibrate.db") + s for s in ("", "-wal", "-shm")]:
        if os.path.exists(name):
            os.remove(name)
    return r


def db_figures(db):
    """The counter's database: file bytes (with its -wal), bytes in use
    ((page_count - freelist_count) * page_size), rows of recv_message and
    weekly_diagnostic, and the messages folded (None without the column),
    read through a read-only connection while the counter runs."""
    files = sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s))
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        # One read transaction: a fold that commits between two of these
        # reads would count its messages both as rows and as folded.
        con.execute("BEGIN")
        q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        used = (q("PRAGMA page_count") - q("PRAGMA freelist_count")) * q("PRAGMA page_size")
        recv, diags = q("SELECT count(*) FROM recv_message"), q("SELECT count(*) FROM weekly_diagnostic")
        cols = [r[1] for r in con.execute("PRAGMA table_info(weekly_diagnostic)")]
        folded = q("SELECT coalesce(sum(folded), 0) FROM weekly_diagnostic") if "folded" in cols else None
        tables = dict(con.execute("SELECT s.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_schema s"
                                  " ON s.name = d.name GROUP BY s.tbl_name").fetchall())
    finally:
        con.close()
    return {"file_bytes": files, "used_bytes": used, "recv_rows": recv, "diag_rows": diags, "folded": folded,
            "recv_bytes": tables.get("recv_message", 0), "diag_bytes": tables.get("weekly_diagnostic", 0)}


def probe_round(ws, fleet, w):
    """The round trip after week W's round: PROBES diagnostics one at a time,
    one subscriber stamping each and its success_rate (checked). Returns the
    latencies in ms."""
    out = ws.path("rtt.out")
    payloads = fleet.probes(w, PROBES)
    with open(out, "w") as f:
        sub = ws.spawn(sub_cmd(ws, "-q", "1", "-t", "bench/weekly_diagnostic", "-t", "bench/success_rate",
                               "-F", "%U %t %p"), stdout=f)
    time.sleep(0.3)
    publish_paced(ws, "bench/weekly_diagnostic", payloads, PROBE_GAP_S)
    deadline = now() + 30
    while True:
        rows = read_stamped(out)
        if sum(1 for _, t, _ in rows if t.endswith("success_rate")) >= len(payloads) or now() > deadline:
            break
        time.sleep(0.1)
    stop_process(sub)
    sent, lat = {}, []
    for ts, topic, payload in read_stamped(out):
        try:
            p = json.loads(payload)
            key = (p.get("moduleid") or p.get("moduleId"), p["timestamp"])
        except (ValueError, KeyError, TypeError):
            continue
        if topic.endswith("weekly_diagnostic"):
            sent[key] = ts
        elif key in sent:
            fleet.check(payload)
            lat.append((ts - sent[key]) * 1000)
    if len(lat) < len(payloads):
        raise BenchError(f"round trip after week {w + 1}: {len(lat)} of {len(payloads)} probes answered")
    return lat


def read_deadletters(path):
    """The dead letters the counter published so far (lines of PATH)."""
    with open(path, errors="replace") as f:
        return [line.rstrip("\n") for line in f if line.strip()]


def bench_state(ws, args):
    """state: ARGS.modules modules, ARGS.weeks weekly rounds of ARGS.per_week
    messages and one diagnostic each, through the counter (with
    --dedup-horizon about a round when it has the flag). Prints a table per
    month and a summary; writes build/bench/state.json; BenchError on a wrong
    or missing success rate or a dead letter."""
    modules, weeks, per_week = args.modules, args.weeks, args.per_week
    if WEEK // per_week < 4:
        raise BenchError(f"--per-week {per_week}: at most {WEEK // 4} messages a week")
    started = now()
    b = ws.start_broker()
    round_msgs = modules * per_week
    round_events = round_msgs + modules
    print(f"broker: {b.uri}  modules: {modules}  weeks: {weeks}  messages per module and week: {per_week}  "
          f"events: {weeks * round_events}", flush=True)

    has_horizon = counter_flags(ws)
    cal_n = min(CALIBRATION, round_msgs)
    cal_rate = calibrate(ws, cal_n)
    round_s = round_events / cal_rate
    horizon = max(1, int(round_s + 0.999))
    print(f"counter rate, calibration ({cal_n} messages): {cal_rate:.0f} ev/s; a round of {round_events} events "
          f"~{round_s:.1f} s; the whole feed ~{weeks * round_s / 60:.1f} min", flush=True)
    flags = ["--metrics-interval", "1"]
    if has_horizon:
        flags += ["--dedup-horizon", f"{horizon}s"]
        print(f"counter: --dedup-horizon {horizon}s (about one round)", flush=True)
    else:
        print("counter: no --dedup-horizon flag (a counter from before issue 18): run as it is", flush=True)

    dl_out = ws.path("deadletters.out")
    with open(dl_out, "w") as f:
        ws.spawn(sub_cmd(ws, "-q", "1", "-t", "bench/deadletter/#"), stdout=f)
    counter = start_agent(ws, "counter", "mqpipe-counter", *flags)
    db = ws.path("counter.db")
    make_session(ws, "bench-raw", "raw/#")
    fleet = Fleet(modules, per_week)
    months_total = (weeks + MONTH - 1) // MONTH
    measured = lambda w: w < MONTH or w >= (months_total - 1) * MONTH  # noqa: E731  first and last month
    rates, raw, agent, rtt = [], {"start": [], "end": []}, {"start": [], "end": []}, {"start": [], "end": []}
    months, prev_used = [], None
    print()
    print("month weeks    events  file MB  used MB  B/module  B/module/week  recv_message (MB)    "
          "weekly_diag (MB)     folded  counter ev/s", flush=True)
    for w in range(weeks):
        recv = fleet.write_messages(w, ws.path("week.recv"))
        diag = ws.path("week.diag")
        fleet.write_diagnostics(w, diag)
        phase = "start" if w < MONTH else "end"

        def yardstick():
            raw[phase].append(timed_delivery(
                ws, ("-q", "1", "-i", "bench-raw", "-c", "-t", "raw/#", "-C", str(round_events)),
                lambda: (publish_files(ws, "raw/recv_message", recv),
                         publish_files(ws, "raw/weekly_diagnostic", [diag])),
                round_events, subprocess.DEVNULL, 60 + 20 * round_s, f"yardstick, week {w + 1}"))

        if measured(w) and w % 2 == 0:
            yardstick()
        out = ws.path("round.out")
        with open(out, "w") as f:
            r = timed_delivery(ws, ("-q", "1", "-t", "bench/success_rate", "-C", str(modules), "-F", "%p"),
                               lambda: (publish_files(ws, "bench/recv_message", recv),
                                        publish_files(ws, "bench/weekly_diagnostic", [diag])),
                               round_events, f, 120 + 20 * round_s, f"counter, week {w + 1}")
        rates.append(r)
        with open(out, errors="replace") as f:
            keys = {fleet.check(line.rstrip("\n")) for line in f if line.strip()}
        if len(keys) != modules:
            raise BenchError(f"week {w + 1}: {len(keys)} distinct success rates for {modules} modules")
        if measured(w):
            agent[phase].append(r)
            if w % 2 == 1:
                yardstick()
            rtt[phase].extend(probe_round(ws, fleet, w))
        for name in recv:
            os.remove(name)

        if (w + 1) % MONTH == 0 or w + 1 == weeks:
            dls = read_deadletters(dl_out)
            if dls:
                raise BenchError(f"{len(dls)} dead letters by week {w + 1}, the first: {dls[0]}")
            fig = db_figures(db)
            fig.update(month=len(months) + 1, weeks=w + 1, events=(w + 1) * round_events,
                       counter_eps=median(rates[-MONTH:]))
            span = (w + 1) - (months[-1]["weeks"] if months else 0)
            growth = (fig["used_bytes"] - (prev_used or 0)) / (modules * span)
            fig["growth_per_module_week"] = growth
            prev_used = fig["used_bytes"]
            months.append(fig)
            print("%5d %5d %9d %8.1f %8.1f %9.0f %14.0f %11d %6.1f %11d %6.1f %10s %13.0f" % (
                fig["month"], w + 1, fig["events"], fig["file_bytes"] / 1e6, fig["used_bytes"] / 1e6,
                fig["used_bytes"] / modules, growth, fig["recv_rows"], fig["recv_bytes"] / 1e6,
                fig["diag_rows"], fig["diag_bytes"] / 1e6,
                "-" if fig["folded"] is None else fig["folded"], fig["counter_eps"]), flush=True)
    peak = peak_kb(counter)

    # Every message sent is stored one by one or folded into a count.
    last = db_figures(db)
    stored = last["recv_rows"] + (last["folded"] or 0)
    if stored != weeks * round_msgs:
        raise BenchError(f"the counter holds {stored} messages (rows + folded) of {weeks * round_msgs} sent")
    stop_process(counter)

    if not agent["end"]:  # a run of one month: its end is its start
        agent["end"], raw["end"], rtt["end"] = agent["start"], raw["start"], rtt["start"]
    summary = {}
    print()
    for phase, label in (("start", "first month"), ("end", "last month")):
        a, y = median(agent[phase]), median(raw[phase])
        p50, p99 = rank(rtt[phase], 0.5), rank(rtt[phase], 0.99)
        summary[phase] = {"counter_eps": a, "raw_eps": y, "ratio": a / y, "rounds": len(agent[phase]),
                          "rtt_ms": {"p50": p50, "p99": p99, "n": len(rtt[phase])}}
        print("%-11s counter %8.0f ev/s  raw broker %8.0f ev/s  ratio %.2f (median of %d rounds)  "
              "rtt p50 %.3f ms  p99 %.3f ms (n=%d)" % (label, a, y, a / y, len(agent[phase]), p50, p99,
                                                       len(rtt[phase])))
    end = months[-1]
    wall = now() - started
    growth_late = [m["growth_per_module_week"] for m in months[1:]] or [end["growth_per_module_week"]]
    print("state  %d modules x %d weeks x %d messages: %.1f MB in use (%.0f B/module), growing %.0f B/module/week "
          "(median after the first month); throughput end/start %.2f, rtt p99 %.2f -> %.2f ms; counter peak RSS "
          "%.1f MB; weekly_diagnostic %.0f B a row, %.0f B/module/week; %s; %.0f s" % (
              modules, weeks, per_week, end["used_bytes"] / 1e6, end["used_bytes"] / modules, median(growth_late),
              summary["end"]["counter_eps"] / summary["start"]["counter_eps"], summary["start"]["rtt_ms"]["p99"],
              summary["end"]["rtt_ms"]["p99"], mb(peak), end["diag_bytes"] / max(1, end["diag_rows"]),
              end["diag_bytes"] / (modules * weeks),
              f"--dedup-horizon {horizon}s" if has_horizon else "no --dedup-horizon", wall))
    write_result(ws.root, "state", {
        "modules": modules, "weeks": weeks, "per_week": per_week, "events": weeks * round_events,
        "dedup_horizon_s": horizon if has_horizon else None, "calibration_eps": cal_rate,
        "resets": fleet.resets, "months": months, "start": summary["start"], "end": summary["end"],
        "growth_per_module_week_median": median(growth_late), "peak_rss_kb": peak, "wall_s": wall})
