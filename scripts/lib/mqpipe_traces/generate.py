"""The sample traces under test/traces/ and the outputs they must produce
(test/traces/README.md). Everything here is deterministic: the committed
files must come out byte for byte on any machine."""
import json
import os
import re
import subprocess
import tempfile

from .paths import ROOT
from .textsort import sorted_lines

T0 = 1767225600  # 2026-01-01 00:00 UTC


class Minstd:
    """MINSTD (x = 48271 x mod 2^31-1), the generator the traces were first
    drawn with in awk: every step is exact in doubles, so the same seed
    gives the same numbers everywhere (awk's rand() does not)."""

    def __init__(self, seed):
        """Starts the sequence at seed."""
        self.x = seed

    def rnd(self, n):
        """Returns the next number in [0, n), advancing the state."""
        self.x = (self.x * 48271) % 2147483647
        return int(self.x / 2147483647 * n)


def quote(s):
    """s as the inside of a JSON string (the payloads hold no backslash)."""
    return s.replace("\\", "\\\\").replace('"', '\\"')


def fleet_lines():
    """A week of 20 modules from 2026-01-01 00:00 UTC, squeezed into 6 s of
    trace: each day 0-11 messages and an end-of-day diagnostic with the
    cumulative attempts; resets (attempts start again), messages and
    diagnostics sent twice, a diagnostic repeated with other attempts (the
    first wins), both spellings of moduleId, a module with no attempts
    (rate null), one whose first day counts more messages than attempts
    (the 100 cap), and one malformed diagnostic (a dead letter). Returns
    the trace's lines (without newlines), in time order."""
    rng = Minstd(20260101)
    events = []  # (sort key, ts, topic, payload)

    def ev(ts, topic, payload):
        """Adds an event at ts, ordered by ts and then by when it was added."""
        events.append(("%012d %06d" % (ts, len(events) + 1), ts, topic, payload))

    def recv(m, ts):
        """A recv_message of module m at ts, either spelling, sometimes twice."""
        p = '{"%s":"%s","timestamp":%d}' % ("moduleId" if rng.rnd(2) else "moduleid", m, ts)
        ev(ts, "recv_message", p)
        if rng.rnd(10) == 0:
            ev(ts, "recv_message", p)

    for i in range(20):
        m = "fleet-%02d" % i
        attempts = 0
        for d in range(7):
            c = 0 if i == 5 else rng.rnd(12)
            for _ in range(c):
                recv(m, T0 + d * 86400 + 600 + rng.rnd(79000))
            if d > 0 and rng.rnd(100) < 15:
                attempts = 0
            if i != 5:
                attempts += c + rng.rnd(4)
            if i == 7 and d == 0:
                attempts = c - 2 if c > 2 else 0
            ts = T0 + d * 86400 + 86399
            diag = '{"moduleid":"%s","timestamp":%d,"attempts":%d}'
            ev(ts, "weekly_diagnostic", diag % (m, ts, attempts))
            r = rng.rnd(100)
            if r < 5:
                ev(ts, "weekly_diagnostic", diag % (m, ts, attempts))
            elif r < 8:
                ev(ts, "weekly_diagnostic", diag % (m, ts, attempts + 5))
    ev(T0 + 3 * 86400, "weekly_diagnostic", '{"moduleid":"fleet-99","timestamp":"last week","attempts":3}')
    events.sort(key=lambda e: e[0])  # the keys are unique
    return ['{"t":%.6f,"topic":"%s","qos":1,"retain":false,"payload":"%s"}'
            % ((ts - T0) * 6 / 604800, topic, quote(p)) for _, ts, topic, p in events]


def metrics_lines():
    """Six hours of four metrics, one point every 2-4 minutes each, squeezed
    into 3 s: spikes (4x), points out of order within their hour,
    redeliveries. Returns the trace's lines."""
    rng = Minstd(424242)
    names = ["cpu/host-1", "cpu/host-2", "queue/orders", "temp/room-3"]
    ts = [T0 + (m + 1) * 7 for m in range(4)]
    n = 480
    out = []
    for i in range(n):
        m = i % 4
        ts[m] += 120 + rng.rnd(121)
        t = ts[m]
        if rng.rnd(100) < 3:
            t -= rng.rnd(1800)
        v = 40 + rng.rnd(21)
        if rng.rnd(100) < 4:
            v *= 4
        p = '{"value":%d,"timestamp":%d}' % (v, t)
        line = '{"t":%.6f,"topic":"metrics/%s","qos":1,"retain":false,"payload":"%s"}' % (
            i * 3 / n, names[m], quote(p))
        out.append(line)
        if rng.rnd(100) < 2:
            out.append(line)
    return out


def jobs_lines():
    """Four jobs and two dashboard requests over 2.5 s: jobs of 5, 40 and 0
    cases, the first submitted twice (ignored), one whose length disagrees
    (a dead letter), and an executive and an operations dashboard. Returns
    the trace's lines."""
    rng = Minstd(7001)
    out = []

    def pub(t, topic, payload):
        """Adds a trace line at t."""
        out.append('{"t":%.1f,"topic":"%s","qos":1,"retain":false,"payload":"%s"}' % (t, topic, quote(payload)))

    def job(t, rid, n, length):
        """Submits job rid of n cases at t (with "length" unless None); returns its payload."""
        cases = ",".join('{"caseId":"%s-c%02d","workMs":%d}' % (rid, i, rng.rnd(21)) for i in range(1, n + 1))
        p = '{"requestId":"%s","requests":[%s]%s}' % (
            rid, cases, ',"length":"%s"' % length if length is not None else "")
        pub(t, "job.submit", p)
        return p

    first = job(0.0, "trace-job-1", 5, "5")
    pub(0.5, "dashboard.request", '{"request_id":"trace-dash-1","time_range":"24h"}')
    job(1.0, "trace-job-2", 40, None)
    pub(1.5, "job.submit", first)
    pub(1.5, "dashboard.request",
        '{"request_id":"trace-dash-2","dashboard_type":"operations","time_range":"7d"}')
    job(2.0, "trace-job-3", 0, "0")
    job(2.5, "trace-job-4", 3, "4")
    return out


# Ingestion requests, MQTT 5 style: each asks for its reply on
# replies/trace/K with correlation data trace-K. JSON objects and query
# strings, valid and not; request 14 reuses request 3's correlation data
# on its own response topic: another requester, so a request of its own
# (README "Ingestion"), stored; last, a user.list. The last column: the
# fields the request gets wrong (empty: valid).
INGEST_TABLE = [
    ("json", "Ada Lovelace", "ada@example.com", "1815", ""),
    ("query", "Grace+Hopper", "grace%40navy.com", "10001", ""),
    ("json", "Alan Turing", "alan@bletchley.org", "1912", "email"),
    ("json", "", "bob@example.com", "4242", "user_name"),
    ("query", "Carol", "carol.example.com", "123", "email,pincode"),
    ("json", "Dan", "Dan1@mail.com", "12345a", "pincode"),
    ("json", "Eve", "eve@example.com", "", "pincode"),
    ("query", "Frank%20Zappa", "frank@zappa.com", "654321", ""),
    ("json", "Grace", "grace@example.com", "0000", ""),
    ("query", "Heidi", "heidi@example.com", "1234567", "pincode"),
    ("json", "Ivan", "1van@example.com", "9999", "email"),
    ("query", "Judy+Ann", "judy@example.com", "2468", ""),
    ("json", "Mallory", "mallory@evil.com", "31337", ""),
    ("json", "Trent", "trent@example.com", "777777", ""),
]
# The user names the valid requests are stored under, in table order.
INGEST_STORED = ["Ada Lovelace", "Grace Hopper", "Frank Zappa", "Grace", "Judy Ann", "Mallory", "Trent"]


def ingest_lines():
    """The ingestion requests of INGEST_TABLE, then a user.list. Returns
    the trace's lines."""
    out = []
    for k, (kind, name, email, pin, _) in enumerate(INGEST_TABLE, 1):
        if kind == "json":
            fields = []
            if name != "" or k == 4:  # request 4: an empty user_name
                fields.append('"user_name":"%s"' % name)
            fields.append('"email":"%s"' % email)
            if pin != "":
                fields.append('"pincode":"%s"' % pin)
            p = "{" + ",".join(fields) + "}"
        else:
            p = "user_name=%s&email=%s&pincode=%s" % (name, email, pin)
        corr = "trace-3" if k == 14 else "trace-%d" % k
        out.append('{"t":%.1f,"topic":"user.ingest","qos":1,"retain":false,"payload":"%s",'
                   '"properties":{"response_topic":"replies/trace/%d","correlation_data":"%s"}}'
                   % (k * 0.1, quote(p), k, corr))
    out.append('{"t":%.1f,"topic":"user.list","qos":1,"retain":false,"payload":"{\\"limit\\":100}",'
               '"properties":{"response_topic":"replies/trace/list","correlation_data":"trace-list"}}'
               % ((len(INGEST_TABLE) + 5) * 0.1))
    return out


def payloads(lines, topic):
    """The payloads of the trace lines on topic, in order."""
    return [m["payload"] for m in map(json.loads, lines) if m["topic"] == topic]


def awk_lines(script, inputs, stdin=None):
    """Runs test/integration/SCRIPT (the independent calculations, shared
    with the integration tests) with awk over the files in inputs, or over
    stdin; returns its output lines."""
    r = subprocess.run(["awk", "-f", os.path.join(ROOT, "test/integration", script), *inputs],
                       input=stdin, capture_output=True, text=True, check=True)
    return r.stdout.splitlines()


def fleet_expected(fleet):
    """The fleet trace's outputs: success rates by expect_rates.awk, and the
    malformed diagnostic's dead letter."""
    recv = payloads(fleet, "recv_message")
    diag = [p for p in payloads(fleet, "weekly_diagnostic") if re.search(r'"timestamp":[0-9]', p)]
    with tempfile.TemporaryDirectory() as tmp:
        for name, ps in (("recv", recv), ("diag", diag)):
            with open(os.path.join(tmp, name), "w") as f:
                f.writelines(p + "\n" for p in ps)
        rates = awk_lines("expect_rates.awk", [os.path.join(tmp, "recv"), os.path.join(tmp, "diag")])
    return sorted_lines(["success_rate\t" + r.replace(" ", "\t") for r in rates]
                        + ["deadletter\tweekly_diagnostic\tcounter"])


def metrics_expected(metrics):
    """The metrics trace's alerts, by expect_alerts.awk."""
    feed = "".join("%s %s\n" % (m["topic"], m["payload"]) for m in map(json.loads, metrics))
    return sorted_lines(["alert\t" + a.replace(" ", "\t") for a in awk_lines("expect_alerts.awk", [], feed)])


def jobs_expected():
    """The jobs trace's outputs, from what jobs_lines meant."""
    sources = "competitor_pricing,external_market,inventory,marketing,sales,weather"
    return sorted_lines([
        "job.summary\ttrace-job-1\t5\t" + ",".join("trace-job-1-c%02d" % i for i in range(1, 6)),
        "job.summary\ttrace-job-2\t40\t" + ",".join("trace-job-2-c%02d" % i for i in range(1, 41)),
        "job.summary\ttrace-job-3\t0\t",
        "deadletter\tjob.submit\tdispatcher",
        "dashboard.ready\ttrace-dash-1\texecutive\t24h\t6\t" + sources,
        "dashboard.ready\ttrace-dash-2\toperations\t7d\t6\t" + sources,
    ])


def ingest_expected():
    """The ingest trace's replies: a 200 with the id it is stored under
    (valid requests are numbered from 1 in table order) or a 400 naming
    the fields in error; then the list of what was stored."""
    out, stored = [], 0
    for k, row in enumerate(INGEST_TABLE, 1):
        if row[4] == "":
            stored += 1
            out.append("replies/trace/%d\t200\t%d\t-" % (k, stored))
        else:
            out.append("replies/trace/%d\t400\t-\t%s" % (k, row[4]))
    out.append("replies/trace/list\t200\t%d\t%s" % (stored, ",".join(INGEST_STORED)))
    return sorted_lines(out)


def write_lines(path, lines):
    """Writes lines to path, each ending in a newline."""
    with open(path, "w", newline="\n") as f:
        f.writelines(line + "\n" for line in lines)


def generate(directory):
    """Writes the four sample traces and their expected outputs into
    directory (created if missing) and prints one summary line per trace."""
    os.makedirs(directory, exist_ok=True)
    traces = {"fleet": fleet_lines(), "metrics": metrics_lines(), "jobs": jobs_lines(), "ingest": ingest_lines()}
    expected = {"fleet": fleet_expected(traces["fleet"]), "metrics": metrics_expected(traces["metrics"]),
                "jobs": jobs_expected(), "ingest": ingest_expected()}
    for name, lines in traces.items():
        write_lines(os.path.join(directory, name + ".jsonl"), lines)
        write_lines(os.path.join(directory, name + ".expected"), expected[name])
    for name in traces:
        print("%-8s %5d messages  %5d expected outputs" % (name, len(traces[name]), len(expected[name])), flush=True)
