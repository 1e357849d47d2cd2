"""Faults in a running pipeline and what they cost (README "Guarantees"):
agents SIGKILLed at random and restarted at once from their own state,
the broker SIGKILLed and restarted from its persistence."""
import collections
import glob
import json
import random
import sqlite3
import time

from . import jqtext
from .pipeline import Failed
from .textsort import sorted_lines

# Seconds between an agent's kill and a broker kill: enough for the agent to
# restart, reconnect and take what the broker queued for it meanwhile.
AGENT_SETTLE_S = 2.0


def inject(p, n, m):
    """SIGKILLs n randomly chosen agents of pipeline p, one every 0.1-0.5 s,
    each restarted at once; what a crash can lose must come back from the
    inbox, the outbox and the broker's session. Meanwhile SIGKILLs the
    broker m times and restarts it on its port and persistence: the first
    6.5 s after the replays began (so its 5 s autosave holds every session,
    the replays' too), then 6 s apart, and never within AGENT_SETTLE_S of
    an agent's kill: what the broker queued for an agent that is down, since
    its last autosave, dies with the broker, a loss no agent can undo
    (README "Chaos"), so the broker is killed once the agent is back and has
    taken what was queued for it. Returns the kills per name; raises Failed
    when the broker does not come back."""
    kills = collections.Counter()
    names = list(p.procs)
    next_broker = time.monotonic() + 6.5
    last_agent_kill = 0.0
    k = 0
    while k < n or m > 0:
        time.sleep(random.randint(1, 5) / 10)
        if m > 0 and time.monotonic() >= next_broker:
            time.sleep(max(0.0, last_agent_kill + AGENT_SETTLE_S - time.monotonic()))
            p.broker.kill()
            kills["broker"] += 1
            if not p.broker.restart():
                raise Failed("the broker did not restart: see %s" % p.dir)
            m -= 1
            next_broker = time.monotonic() + 6.0
        elif k < n:
            victim = random.choice(names)
            p.kill_agent(victim)
            last_agent_kill = time.monotonic()
            kills[victim] += 1
            k += 1
    return kills


def natural_conflicts(lines):
    """How many natural keys (success_rate: module and timestamp; alert:
    metric and timestamp; a summary or dashboard: its request; a reply: its
    topic) hold two different outputs: something counted twice or computed
    differently. Exact repeats (at-least-once delivery) are not."""
    seen = collections.Counter()
    for line in set(lines):
        f = line.split("\t")
        if f[0] in ("success_rate", "alert"):
            key = tuple(f[:3])
        elif f[0] in ("job.summary", "dashboard.ready"):
            key = tuple(f[:2])
        elif f[0] == "deadletter":
            key = (line,)
        else:
            key = (f[0],)
        seen[key] += 1
    return sum(1 for c in seen.values() if c >= 2)


def distinct_messages(traces):
    """The distinct (module, timestamp) recv_message payloads in the traces."""
    keys = set()
    for t in traces:
        with open(t, encoding="utf-8", errors="replace") as f:
            for line in f:
                try:
                    m = json.loads(line)
                    p = json.loads(m["payload"]) if m.get("topic") == "recv_message" else None
                except (ValueError, KeyError, TypeError):
                    continue
                if isinstance(p, dict):
                    module = p.get("moduleId")
                    if module is None or module is False:  # jq's //
                        module = p.get("moduleid")
                    keys.add("%s %s" % (jqtext.tostring(module), jqtext.tostring(p.get("timestamp"))))
    return len(keys)


def stored_messages(db):
    """The distinct messages the counter holds: one by one, and folded into
    its sealed windows' counts (README "Sealed windows")."""
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT (SELECT count(*) FROM recv_message)"
                           " + (SELECT coalesce(sum(folded), 0) FROM weekly_diagnostic)").fetchone()[0]
    finally:
        con.close()


def count_rows(db, table):
    """SELECT count(*) FROM table in the SQLite database db."""
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM " + table).fetchone()[0]
    finally:
        con.close()


def line_count(path):
    """The newlines in the file at path (wc -l)."""
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def report(p, traces, want, got, every, kills):
    """Prints the faults and what they cost; returns False when an output
    is doubled or the counter's state does not match what was sent."""
    faults = ", ".join("%s %d" % (a, kills[a]) for a in sorted_lines(kills))
    missing = sum((collections.Counter(want) - collections.Counter(got)).values())
    conflicts = natural_conflicts(every)
    repeats = len(every) - len(set(every))
    sent = distinct_messages(traces)
    # With shards, the counter's state is one file per shard (README "Scaling out").
    counter_dbs = sorted(glob.glob(p.path("counter-*.db"))) or [p.path("counter.db")]
    stored = sum(stored_messages(db) for db in counter_dbs)
    print()
    print("faults injected:   %d SIGKILLs (%s)" % (sum(kills.values()), faults))
    print("events in:         %d" % sum(line_count(t) for t in traces))
    print("outputs missing:   %d of %d" % (missing, len(want)))
    print("outputs doubled:   %d (natural keys with two different outputs)" % conflicts)
    print("repeat deliveries: %d (the same output again: at-least-once, allowed)" % repeats)
    # A broker crash loses what it accepted since its last autosave: with
    # broker kills, fewer stored inputs are that loss, measured; more are
    # always a mismatch (something counted twice).
    diag_sent = sum(1 for line in want if line.startswith("success_rate\t"))
    diag_stored = sum(count_rows(db, "weekly_diagnostic") for db in counter_dbs)
    if kills["broker"]:
        lost = sent - stored + diag_sent - diag_stored
        mismatch = not (stored <= sent and diag_stored <= diag_sent)
    else:
        mismatch = not (stored == sent and diag_stored == diag_sent)
    print("state mismatches:  %d (counter holds %d of %d distinct messages, %d of %d diagnostics)"
          % (mismatch, stored, sent, diag_stored, diag_sent))
    if kills["broker"]:
        print("inputs lost:       %d (messages and diagnostics the broker accepted but never delivered:"
              " lost in its crashes)" % lost)
    return conflicts == 0 and not mismatch
