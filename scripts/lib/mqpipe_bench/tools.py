"""The benchmarks of the trace tools: mqpipe-replay --fast against
mosquitto_pub -l (replay), mqpipe-record -c against mosquitto_sub -c
draining a kept session (record)."""
import json
import os
import subprocess
import sys

from .clients import delivery_rate, make_session, publish_lines, run, sub_cmd, write_lines
from .fixture import BenchError
from .measure import median, now, rate, write_result


def replay(ws, trace):
    """Publishes TRACE with mqpipe-replay --fast; BenchError (its standard
    error shown) when it fails."""
    with open(ws.path("replay.err"), "wb") as err:
        code = subprocess.call([os.path.join(ws.bin, "mqpipe-replay"), "-b", ws.broker.uri, "--fast", trace],
                               stderr=err, stdin=subprocess.DEVNULL)
    if code != 0:
        sys.stderr.write(open(ws.path("replay.err"), errors="replace").read())
        raise BenchError(f"mqpipe-replay failed (exit {code})")


def summary(ws, name, line, messages, runs, tool, yardstick):
    """Prints LINE with the medians of the tool's and the yardstick's rates
    (TOOL and YARDSTICK: (JSON key, rates)), their ratio and RUNS; writes
    build/bench/NAME.json."""
    t, y = median(tool[1]), median(yardstick[1])
    print()
    print(line % (t, y, t / y, runs))
    write_result(ws.root, name, {"messages": messages, "runs": runs, tool[0]: t, yardstick[0]: y, "ratio": t / y})


def bench_replay(ws, args):
    """replay: a trace of ARGS.events messages from mqpipe-replay --fast
    against the same lines from mosquitto_pub -l, each to a subscriber that
    must receive them all; ARGS.runs runs, medians. Prints them, writes
    build/bench/replay.json; BenchError when mqpipe-replay fails."""
    events, runs = args.events, args.runs
    b = ws.start_broker()
    print(f"broker: {b.uri}  messages: {events}  runs: {runs}", flush=True)
    lines = [f'{{"moduleId":"m{i % 100}","timestamp":{i}}}' for i in range(1, events + 1)]
    write_lines(ws.path("lines.txt"), lines)
    trace = '{"t":0,"topic":"raw/replay","qos":1,"retain":false,"payload":%s}'
    write_lines(ws.path("trace.jsonl"), (trace % json.dumps(line) for line in lines))
    pub, rep = [], []
    for r in range(1, runs + 1):
        sub_args = ("-q", "1", "-t", "raw/replay", "-C", str(events))
        pub.append(delivery_rate(ws, sub_args, lambda: publish_lines(ws, "raw/replay", ws.path("lines.txt")), events))
        rep.append(delivery_rate(ws, sub_args, lambda: replay(ws, ws.path("trace.jsonl")), events))
        print("  run %d: mosquitto_pub -l %8.0f msg/s   mqpipe-replay --fast %8.0f msg/s" % (r, pub[-1], rep[-1]),
              flush=True)
    summary(ws, "replay",
            "replay --fast %8.0f msg/s  mosquitto_pub -l %8.0f msg/s  ratio %.2f  (median of %d, target >= 1)",
            events, runs, ("replay_fast_mps", rep), ("mosquitto_pub_mps", pub))


def bench_record(ws, args):
    """record: ARGS.events messages queued in a kept session, drained by
    mqpipe-record -c into a file, against mosquitto_sub -c draining the same
    from its own; ARGS.runs runs, medians. Prints them, writes
    build/bench/record.json; BenchError when the file lacks messages."""
    events, runs = args.events, args.runs
    b = ws.start_broker()
    print(f"broker: {b.uri}  messages: {events}  runs: {runs}", flush=True)
    recv = ws.path("recv.txt")
    write_lines(recv, (f'{{"moduleId":"rec","timestamp":{i}}}' for i in range(1, events + 1)))
    record = [os.path.join(ws.bin, "mqpipe-record"), "-b", b.uri, "-c", "-i", "bench-rec", "-t", "rec/x"]
    subs, recs = [], []
    for r in range(1, runs + 1):
        # Make both sessions, then queue the messages for them while they are away.
        make_session(ws, "bench-rec-raw", "raw/rec")
        with open(ws.path("record.log"), "ab") as log:
            run(record + ["--duration", "1", "-o", "/dev/null"], stderr=log)
        publish_lines(ws, "raw/rec", recv)
        publish_lines(ws, "rec/x", recv)
        t0 = now()
        run(sub_cmd(ws, "-q", "1", "-i", "bench-rec-raw", "-c", "-t", "raw/rec", "-C", str(events)),
            stdout=subprocess.DEVNULL)
        subs.append(rate(events, t0, now()))
        t0 = now()
        with open(ws.path("record.log"), "ab") as log:
            run(record + ["--count", str(events), "-o", ws.path("rec.jsonl")], stderr=log)
        t1 = now()
        with open(ws.path("rec.jsonl"), "rb") as f:
            if sum(1 for _ in f) != events:
                raise BenchError("record lost messages")
        recs.append(rate(events, t0, t1))
        print("  run %d: mosquitto_sub -c %8.0f msg/s   mqpipe-record -c %8.0f msg/s" % (r, subs[-1], recs[-1]),
              flush=True)
    summary(ws, "record", "drain  mqpipe-record %8.0f msg/s  mosquitto_sub %8.0f msg/s  ratio %.2f  (median of %d)",
            events, runs, ("record_mps", recs), ("mosquitto_sub_mps", subs))
