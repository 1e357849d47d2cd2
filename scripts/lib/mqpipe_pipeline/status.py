"""status and top: one row per agent instance (client id) from the retained
mqpipe/status/# and mqpipe/metrics/# (README "Metrics" says what each
column means); when an instance reports shards, a SHARD column after AGENT:
K/S for shard K's owner, -/S for the others (README "Scaling out")."""
import json
import math
import re
import shutil
import signal
import subprocess
import sys
import time

from mqpipe_traces.jqtext import number, rounded, tostring

COLUMNS = ["AGENT", "SHARD", "STATE", "PID", "UPTIME", "IN/S", "OUT/S", "IN", "OUT", "DEAD", "ERR",
           "P50_MS", "P99_MS", "OUTBOX", "RSS_MB"]
TOPIC = re.compile(r"^mqpipe/(status|metrics)/(\S+) (.*)$")


def retained(port):
    """{kind: {client id: body}} of the retained status and metrics (a body
    that is not a JSON object counts as {})."""
    # -W 1: retained messages come at once; then it times out (exit 27).
    r = subprocess.run(["mosquitto_sub", "-p", str(port), "-t", "mqpipe/status/#", "-t", "mqpipe/metrics/#",
                        "-v", "-W", "1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       stdin=subprocess.DEVNULL, text=True, errors="replace")
    out = {"status": {}, "metrics": {}}
    for line in r.stdout.splitlines():
        m = TOPIC.match(line)
        if not m:
            continue
        try:
            body = json.loads(m.group(3))
        except ValueError:
            body = None
        out[m.group(1)][m.group(2)] = body if isinstance(body, dict) else {}
    return out


def present(v):
    """jq's truthiness: everything but null and false."""
    return v is not None and v is not False


def given(v):
    """v, or "-" where jq's `// "-"` would give it (null, false)."""
    if v is None or v is False:
        return "-"
    return tostring(v) if isinstance(v, bool) or not isinstance(v, (int, float)) else number(v)


def duration(secs):
    if not isinstance(secs, (int, float)) or isinstance(secs, bool):
        return "-"
    s = math.floor(secs)
    if s >= 86400:
        return "%dd%dh" % (s // 86400, s % 86400 // 3600)
    if s >= 3600:
        return "%dh%dm" % (s // 3600, s % 3600 // 60)
    if s >= 60:
        return "%dm%ds" % (s // 60, s % 60)
    return "%ds" % s


def millis(us):
    return "-" if not isinstance(us, (int, float)) or isinstance(us, bool) else number(rounded(us / 1000))


def row(cid, st, mx):
    """The table's cells for client id cid from its status st and metrics mx."""
    state = given(st.get("state")) if present(st.get("state")) else "?"
    online = state == "online"
    shard = "%s/%s" % (given(st.get("shard")), given(st.get("shards"))) if present(st.get("shards")) else "-"
    pid = st.get("pid") if present(st.get("pid")) else mx.get("pid")
    handling = mx.get("handling_us") if isinstance(mx.get("handling_us"), dict) else {}
    rss = mx.get("rss_bytes")
    return [cid, shard, state, given(pid), duration(mx.get("uptime_s")),
            given(mx.get("in_per_s")) if online else "-", given(mx.get("out_per_s")) if online else "-",
            given(mx.get("messages_in")), given(mx.get("messages_out")), given(mx.get("deadletters")),
            given(mx.get("errors")), millis(handling.get("p50")), millis(handling.get("p99")),
            given(mx.get("outbox_depth")),
            number(rounded(rss / 1048576, 1)) if isinstance(rss, (int, float)) and not isinstance(rss, bool) else given(rss)]


def table(port):
    """The status table as text, a header and a line per instance."""
    got = retained(port)
    st, mx = got["status"], got["metrics"]
    rows = [COLUMNS] + [row(cid, st.get(cid, {}), mx.get(cid, {})) for cid in sorted(set(st) | set(mx))]
    sharded = any(r[1] != "-" for r in rows[1:])
    lines = []
    for r in rows:
        line = "%-26s" % r[0] + (" %-6s" % r[1] if sharded else "")
        lines.append(line + " %-8s %-8s %-7s %8s %8s %9s %9s %5s %4s %7s %7s %7s %7s" % tuple(r[2:]))
    return "\n".join(lines)


def status(dep):
    """Prints the broker's address, what is not running, and the table."""
    stopped = [n for n in dep.names() if not dep.pid_of(n)]
    pid = dep.pid_of("mosquitto")
    print("broker: tcp://127.0.0.1:%s (pid %d)" % (dep.port(), pid) if pid else "broker: not running")
    if stopped:
        print("not running from %s: %s" % (dep.var, " ".join(stopped)))
    if pid:
        print()
        print(table(dep.port()))
    return 0


def tput(cap):
    if shutil.which("tput"):
        subprocess.run(["tput", cap], stderr=subprocess.DEVNULL)


def top(dep):
    """Redraws the table every couple of seconds (the agents started here
    report every 2 s) until Ctrl-C or SIGTERM; exits 0 then."""
    if not dep.pid_of("mosquitto"):
        print("broker: not running (scripts/pipeline up)")
        return 1

    def stop(_sig, _frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, stop)
    tput("civis")
    try:
        while True:
            text = table(dep.port())
            sys.stdout.write("\033[H\033[2J")  # clear, without needing TERM
            print("mqpipe on tcp://127.0.0.1:%s   %s   (Ctrl-C to quit)\n" % (dep.port(), time.strftime("%T")))
            print(text, flush=True)
            time.sleep(1)
    except KeyboardInterrupt:
        tput("cnorm")
        return 0
