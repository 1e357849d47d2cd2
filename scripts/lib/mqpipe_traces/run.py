"""scripts/traces run: the traces replayed into a fresh pipeline, its
outputs compared with the expected ones; with faults, the chaos report."""
import collections
import os
import subprocess
import sys
import time

from . import chaos
from .normalize import normalize_file
from .pipeline import Failed, Pipeline
from .textsort import sorted_lines


def read_lines(path):
    """The lines of the file at path, without their newlines."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read().splitlines()


def write_lines(path, lines):
    """Writes lines to path, each ending in a newline."""
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.writelines(line + "\n" for line in lines)


def kind_of(line):
    """The output kind a normalized line counts under in the table: its
    first field, every ingest reply as one."""
    first = line.split("\t", 1)[0]
    return "ingest reply" if first.startswith("replies/") else first


def print_table(want, got):
    """Per kind of output: how many are expected, got, and matching (each
    expected line matched by one got line at most)."""
    print("%-16s %9s %9s %9s" % ("OUTPUT", "EXPECTED", "GOT", "MATCHING"))
    tally = [collections.Counter(map(kind_of, lines)) for lines in (want, got)]
    matching = collections.Counter(kind_of(line) for line in
                                   (collections.Counter(want) & collections.Counter(got)).elements())
    for k in sorted_lines(set(tally[0]) | set(tally[1])):
        print("%-16s %9d %9d %9d" % (k, tally[0][k], tally[1][k], matching[k]))


def wait_outputs(run, want):
    """Waits up to 60 s until the recorder holds as many distinct outputs as
    expected (a dashboard waits on its slowest source, so the last come
    after the replay ends), then a little for extras."""
    for _ in range(600):
        lines, _ = normalize_file(run.path("out.jsonl"), errors=open(os.devnull, "w"))
        if len(set(lines)) >= want:
            break
        time.sleep(0.1)
    time.sleep(0.5)


def run(traces, expect, pace, chaos_kills, broker_kills, keep, shards=1, route_in_broker=False):
    """Replays traces (at pace: mqpipe-replay flags) into a fresh pipeline
    and compares what comes out with the expect files; with chaos_kills or
    broker_kills, meanwhile injects those faults and prints their report.
    Returns the exit status: 0 when all is as expected, 1 otherwise (the
    directory then kept)."""
    faults = chaos_kills + broker_kills
    try:
        p = Pipeline(keep, two_workers=faults > 0, shards=shards, route_in_broker=route_in_broker)
    except Failed:
        return 1
    try:
        return compare(p, traces, expect, pace, chaos_kills, broker_kills)
    except Failed as e:
        if e.args[0]:
            print(e.args[0], file=sys.stderr, flush=True)
        p.keep = True
        return 1
    finally:
        p.stop()


def compare(p, traces, expect, pace, chaos_kills, broker_kills):
    """The body of run() over the started pipeline p; raises Failed."""
    faults = chaos_kills + broker_kills
    p.start("mqpipe-record-%d" % os.getpid())
    want = sorted_lines([line for e in expect for line in read_lines(e)])
    write_lines(p.path("want.txt"), want)
    print("replaying %s (%s) into a fresh pipeline on %s…"
          % (" ".join(os.path.basename(t) for t in traces), " ".join(pace), p.broker.uri), flush=True)
    replays = p.replay(traces, pace)
    kills = chaos.inject(p, chaos_kills, broker_kills) if faults else {}
    failed = False
    for n, r in enumerate(replays):
        if r.wait() != 0:
            failed = True
            tail = "\n".join(p.read("replay.%d.log" % n).decode(errors="replace").splitlines()[-3:])
            print("replay of %s failed: %s" % (traces[n], tail), file=sys.stderr, flush=True)
    if failed:
        raise Failed(None)
    wait_outputs(p, len(want))
    every, status = normalize_file(p.path("out.jsonl"))
    if status:
        raise Failed(None)
    write_lines(p.path("all.txt"), every)
    got = sorted_lines(set(every)) if faults else every
    write_lines(p.path("got.txt"), got)
    print_table(want, got)
    ok = chaos.report(p, traces, want, got, every, kills) if faults else True
    if not ok:
        raise Failed(None)
    diff = subprocess.run(["diff", p.path("want.txt"), p.path("got.txt")], stdout=subprocess.PIPE)
    with open(p.path("diff.txt"), "wb") as f:
        f.write(diff.stdout)
    if diff.returncode == 0:
        print("all %d outputs as expected" % len(want), flush=True)
        return 0
    print("outputs differ from the expected ones (< expected, > got):")
    print("\n".join(diff.stdout.decode(errors="replace").splitlines()[:20]), flush=True)
    raise Failed(None)
