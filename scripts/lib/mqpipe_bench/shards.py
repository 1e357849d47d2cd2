"""The shards benchmark (README "Performance", "Shards"): on one host, the
counter as one process (S = 1) against four (S = 4, --shards 4 --shard K),
fed by publishers that shard themselves and by plain publishers through
mqpipe-router --shards 4; the raw broker carrying the same messages as the
yardstick. Events/s and CPU seconds per 100 000 events of every process."""
import os
import subprocess
import time
import zlib

from .clients import pub_cmd, run, sub_cmd, wait_for_log, write_lines
from .fixture import BenchError
from .measure import median, write_result

SHARDS = 4
PUBLISHERS = 4       # parallel mosquitto_pub -l in every case, so the feed is the same
MODULES_PER_SHARD = 4
PER_100K = 100000
CASES = ("raw", "s1", "s4", "router", "plugin")
LABELS = {"raw": "raw broker", "s1": "S=1 counter", "s4": "S=4 sharded publishers",
          "router": "S=4 through the router", "plugin": "S=4 routed in the broker"}
PREFIX = {"s1": "s1", "s4": "s4", "router": "s4", "plugin": "s4p"}  # the agents' --prefix
TICKS = os.sysconf("SC_CLK_TCK")


def shard_of(key, shards=SHARDS):
    """A key's shard, as mqpipe-shard computes it (README "Scaling out")."""
    return zlib.crc32(key.encode()) % shards


def modules(tag):
    """MODULES_PER_SHARD module names of each shard (so every shard gets the
    same share of the events), named after TAG: a list of SHARDS lists."""
    out = [[] for _ in range(SHARDS)]
    i = 0
    while min(len(m) for m in out) < MODULES_PER_SHARD:
        name = f"{tag}-{i}"
        k = shard_of(name)
        if len(out[k]) < MODULES_PER_SHARD:
            out[k].append(name)
        i += 1
    return out


def cpu_s(pid):
    """User + system CPU seconds of process PID so far (its threads
    included); 0 when it has ended."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def start(ws, name, binary, prefix, *args):
    """Starts BINARY under PREFIX with its state in DIR/NAME.db (log
    DIR/NAME.log); waits for event=online. Returns its Popen."""
    log = ws.path(f"{name}.log")
    with open(log, "ab") as err:
        p = ws.spawn([os.path.join(ws.bin, binary), "-b", ws.broker.uri, "-p", prefix,
                      "-d", ws.path(f"{name}.db"), *args], stderr=err)
    if not wait_for_log(log, "event=online", 15):
        tail = open(log, errors="replace").read().splitlines()[-3:]
        raise BenchError(f"{name} did not come online: " + "\n".join(tail))
    return p


def feed_files(ws, case, r, events):
    """Writes the PUBLISHERS input files of CASE's run R: EVENTS recv_message
    lines round-robin over the run's modules, publisher j carrying the
    modules of shard j (so a sharding publisher has one topic), and the
    diagnostics closing each module's week. Returns (paths, diagnostics by
    shard, {module: events})."""
    mods = modules(f"{case}{r}")
    flat = [m for k in range(SHARDS) for m in mods[k]]
    counts = {m: 0 for m in flat}
    lines = [[] for _ in range(SHARDS)]
    for i in range(events):
        m = flat[i % len(flat)]
        counts[m] += 1
        lines[shard_of(m)].append(f'{{"moduleId":"{m}","timestamp":{counts[m]}}}')
    paths = []
    for k in range(SHARDS):
        paths.append(ws.path(f"feed{k}.txt"))
        write_lines(paths[-1], lines[k])
    diags = [[f'{{"moduleid":"{m}","timestamp":{counts[m] + 1},"attempts":{counts[m]}}}' for m in mods[k]]
             for k in range(SHARDS)]
    return paths, diags, counts


def topics(case, k):
    """(recv_message topic, weekly_diagnostic topic) publisher K of CASE
    publishes to."""
    if case == "raw":
        return f"raw/{k}/recv_message", None
    if case == "s1":
        return "s1/recv_message", "s1/weekly_diagnostic"
    if case == "s4":
        return f"s4/shard/{k}/recv_message", f"s4/shard/{k}/weekly_diagnostic"
    return f"{PREFIX[case]}/recv_message", f"{PREFIX[case]}/weekly_diagnostic"  # plain: routed


def pace(procs, paths, rate):
    """Feeds each of PROCS (mosquitto_pub -l reading a pipe) the lines of its
    file in PATHS at RATE events/s in all, shared alike, in 10 ms slices,
    then closes the pipes; BenchError when a publisher ends before."""
    feeds = [open(path, "rb").read().splitlines(keepends=True) for path in paths]
    sent = [0] * len(feeds)
    t0 = time.monotonic()
    while any(n < len(f) for n, f in zip(sent, feeds)):
        due = int((time.monotonic() - t0) * rate / len(feeds)) + 1
        for k, (p, f) in enumerate(zip(procs, feeds)):
            if sent[k] < min(due, len(f)):
                try:
                    p.stdin.write(b"".join(f[sent[k]:due]))
                    p.stdin.flush()
                except BrokenPipeError:
                    raise BenchError(f"mosquitto_pub exited {p.wait()} with {len(f) - sent[k]} events unsent")
                sent[k] = min(due, len(f))
        time.sleep(0.01)
    for p in procs:
        p.stdin.close()


def publish_all(ws, case, paths, diags, rate=0):
    """The PUBLISHERS mosquitto_pub -l at once, one per file (RATE > 0: at
    RATE events/s in all, else as fast as they go), then (after all have
    ended) each module's diagnostic on its publisher's topic."""
    procs, files = [], []
    for k, path in enumerate(paths):
        cmd = pub_cmd(ws, "-q", "1", "-t", topics(case, k)[0], "-l")
        if rate:
            procs.append(subprocess.Popen(cmd, stdin=subprocess.PIPE))
        else:
            files.append(open(path, "rb"))
            procs.append(subprocess.Popen(cmd, stdin=files[-1]))
    if rate:
        pace(procs, paths, rate)
    for p in procs:
        code = p.wait()
        if code != 0:
            raise BenchError(f"mosquitto_pub exited {code}")
    for f in files:
        f.close()
    if case == "raw":
        return
    for k in range(SHARDS):
        with open(ws.path("diag.txt"), "w") as f:
            f.write("\n".join(diags[k]) + "\n")
        with open(ws.path("diag.txt"), "rb") as f:
            run(pub_cmd(ws, "-q", "1", "-t", topics(case, k)[1], "-l"), stdin=f)


def check_rates(path, counts):
    """Raises BenchError unless every module's success_rate in PATH counted
    all its events."""
    text = open(path, errors="replace").read()
    for m, n in counts.items():
        if f'"moduleid":"{m}","timestamp":{n + 1},"success_rate":100,"received":{n},' not in text:
            raise BenchError(f"module {m}: no success_rate counting its {n} events: {text[:400]}")


def one_run(ws, case, r, events, procs, rate=0):
    """CASE's run R: EVENTS events (RATE > 0: published at RATE events/s)
    until the last success_rate (raw: until a subscriber has them all).
    Returns (events/s, {process: CPU seconds})."""
    paths, diags, counts = feed_files(ws, case + ("p" if rate else ""), r, events)
    out = ws.path(f"{case}.out")
    if case == "raw":
        sub_args = ("-q", "1", "-t", "raw/+/recv_message", "-C", str(events))
    else:
        sub_args = ("-q", "1", "-t", f"{PREFIX[case]}/success_rate", "-C", str(len(counts)))
    with open(out, "w") as f:
        sub = ws.spawn(sub_cmd(ws, *sub_args), stdout=f)
    time.sleep(0.3)
    before = {name: cpu_s(p.pid) for name, p in procs.items()}
    t0 = time.time()
    publish_all(ws, case, paths, diags, rate)
    try:
        sub.wait(timeout=600)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{case}: the subscriber did not get everything in 10 minutes")
    t1 = time.time()
    cpu = {name: cpu_s(p.pid) - before[name] for name, p in procs.items()}
    if case != "raw":
        check_rates(out, counts)
    return events / (t1 - t0), cpu


def per_100k(seconds, events):
    """CPU SECONDS over EVENTS as seconds per 100 000 events."""
    return seconds * PER_100K / events


def bench_shards(ws, args):
    """shards: ARGS.runs rounds of the four cases (raw broker, S = 1, S = 4
    with sharding publishers, S = 4 through the router), ARGS.events events
    each, alternated; medians of events/s and of CPU s per 100 000 events of
    each process. Prints them and writes build/bench/shards.json;
    BenchError when a counter misses events."""
    events, runs = args.events, args.runs
    # The plugin case: mqpipe_route.so routes s4p/<input> (README "Routing
    # inside mosquitto"), into four more counters; skipped without it.
    plugin = os.path.normpath(os.path.join(ws.bin, "..", "lib", "mqpipe_route.so"))
    cases = CASES if os.path.exists(plugin) else CASES[:-1]
    template = None
    if "plugin" in cases:
        template = ws.path("route.conf.in")
        with open(os.path.join(ws.root, "broker-config", "test.conf.in")) as f, open(template, "w") as out:
            out.write(f.read() + f"plugin {plugin}\nplugin_opt_shards {SHARDS}\nplugin_opt_prefix {PREFIX['plugin']}\n")
    else:
        print(f"no {plugin}: the in-broker case is skipped", flush=True)
    b = ws.start_broker(template)
    print(f"broker: {b.uri}  events: {events} per run  runs: {runs}  cores: {os.cpu_count()}", flush=True)
    s1 = start(ws, "counter", "mqpipe-counter", "s1")
    shards = [start(ws, f"counter-{k}", "mqpipe-counter", "s4", "--shards", str(SHARDS), "--shard", str(k))
              for k in range(SHARDS)]
    router = start(ws, "router", "mqpipe-router", "s4", "--shards", str(SHARDS))
    # (their own client ids: the default mqpipe-counter-K is taken above)
    routed = [start(ws, f"pcounter-{k}", "mqpipe-counter", PREFIX["plugin"], "--shards", str(SHARDS),
                    "--shard", str(k), "-i", f"mqpipe-pcounter-{k}") for k in range(SHARDS)] if "plugin" in cases else []
    watched = {
        "raw": {"broker": b.proc},
        "s1": {"broker": b.proc, "counter": s1},
        "s4": {"broker": b.proc, **{f"counter-{k}": p for k, p in enumerate(shards)}},
        "router": {"broker": b.proc, "router": router, **{f"counter-{k}": p for k, p in enumerate(shards)}},
        "plugin": {"broker": b.proc, **{f"counter-{k}": p for k, p in enumerate(routed)}},
    }
    rates = {c: [] for c in cases}
    cpus = {c: {} for c in cases}  # case -> process -> [s per 100k]
    for r in range(1, runs + 1):
        order = cases[r % len(cases):] + cases[:r % len(cases)]  # who goes first changes
        line = []
        for case in order:
            eps, cpu = one_run(ws, case, r, events, watched[case])
            rates[case].append(eps)
            counters = sum(v for name, v in cpu.items() if name.startswith("counter"))
            if case != "raw":
                cpu["counters"] = counters
            for name, v in cpu.items():
                cpus[case].setdefault(name, []).append(per_100k(v, events))
            extra = ""
            if case != "raw":
                extra = " (counters %.1f s" % per_100k(counters, events)
                extra += ", router %.1f s)" % per_100k(cpu["router"], events) if case == "router" else ")"
            line.append("%s %.0f ev/s%s" % (case, eps, extra))
        print(f"  run {r}: " + "   ".join(line), flush=True)

    result = {"events": events, "runs": runs, "shards": SHARDS, "cores": os.cpu_count(), "cases": {}}
    print()
    print("%-24s %9s %9s  %s" % ("case", "ev/s", "vs raw", "CPU s per 100 000 events (medians)"))
    raw = median(rates["raw"])
    for case in cases:
        eps = median(rates[case])
        med = {name: median(v) for name, v in cpus[case].items()}
        result["cases"][case] = {"eps": eps, "ratio_to_raw": eps / raw, "cpu_s_per_100k": med}
        order = ["counters", "router"] + sorted(n for n in med if n.startswith("counter-")) + ["broker"]
        if case == "s1":
            order = ["counter", "broker"]
        parts = ["%s %.2f" % (n, med[n]) for n in order if n in med]
        print("%-24s %9.0f %9.2f  %s" % (LABELS[case], eps, eps / raw, "  ".join(parts)))
    s1c = result["cases"]["s1"]["cpu_s_per_100k"]["counter"]
    s4c = result["cases"]["s4"]["cpu_s_per_100k"]["counters"]
    rc = result["cases"]["router"]["cpu_s_per_100k"]
    result["targets"] = {"s4_counters_over_s1_counter": s4c / s1c, "router_over_s1_counter": rc["router"] / s1c}
    print()
    print("cost per event, S=4 counters / S=1 counter: %.2f  (target <= 1)" % (s4c / s1c))
    print("router / S=1 counter:                        %.2f  (target < 1)" % (rc["router"] / s1c))
    if "plugin" in cases:
        # What routing costs inside the broker: its CPU over the broker's
        # with publishers that shard themselves (the same deliveries).
        pb = result["cases"]["plugin"]["cpu_s_per_100k"]["broker"]
        sb = result["cases"]["s4"]["cpu_s_per_100k"]["broker"]
        result["targets"]["in_broker_routing_over_s1_counter"] = (pb - sb) / s1c
        print("in-broker routing (broker %.2f - %.2f) / S=1 counter: %.2f  (target < 1)"
              % (pb, sb, (pb - sb) / s1c))
    if args.rate and events // SHARDS < SHARDS * MODULES_PER_SHARD:
        print(f"\npaced rounds skipped: S=1 would get fewer than one event per module ({events} // {SHARDS})")
    elif args.rate:
        result["paced"] = paced(ws, events, runs, args.rate, watched)
        result["targets"]["paced_s4_counters_over_s1_counter"] = result["paced"]["s4_counters_over_s1_counter"]
    write_result(ws.root, "shards", result)


def paced(ws, events, runs, rate, watched):
    """RUNS rounds of S = 1 and S = 4 (sharding publishers), alternated, with
    every counter fed RATE events/s: S = 1 EVENTS / SHARDS events at RATE,
    S = 4 EVENTS at SHARDS x RATE, so each counter carries the same stream
    as the one counter does, as each host's owners would. Prints and
    returns the medians."""
    plan = {"s1": (events // SHARDS, rate), "s4": (events, rate * SHARDS)}
    print(f"\npaced: every counter fed {rate} ev/s (S=1 {events // SHARDS} events at {rate} ev/s, "
          f"S=4 {events} at {rate * SHARDS})", flush=True)
    rates = {c: [] for c in plan}
    cpus = {c: {} for c in plan}
    for r in range(1, runs + 1):
        line = []
        for case in (("s1", "s4") if r % 2 else ("s4", "s1")):
            n, pace_rate = plan[case]
            eps, cpu = one_run(ws, case, r, n, watched[case], pace_rate)
            cpu["counters"] = sum(v for name, v in cpu.items() if name.startswith("counter"))
            rates[case].append(eps)
            for name, v in cpu.items():
                cpus[case].setdefault(name, []).append(per_100k(v, n))
            line.append("%s %.0f ev/s (counters %.2f s)" % (case, eps, per_100k(cpu["counters"], n)))
        print(f"  run {r}: " + "   ".join(line), flush=True)
    out = {"rate_per_counter": rate, "cases": {}}
    print("%-24s %9s %9s  %s" % ("case", "ev/s", "target", "CPU s per 100 000 events (medians)"))
    for case, (n, pace_rate) in plan.items():
        med = {name: median(v) for name, v in cpus[case].items()}
        out["cases"][case] = {"events": n, "target_eps": pace_rate, "eps": median(rates[case]), "cpu_s_per_100k": med}
        order = ["counter", "broker"] if case == "s1" else \
            ["counters"] + sorted(x for x in med if x.startswith("counter-")) + ["broker"]
        print("%-24s %9.0f %9d  %s" % (LABELS[case], median(rates[case]), pace_rate,
                                       "  ".join("%s %.2f" % (x, med[x]) for x in order if x in med)))
    one, four = out["cases"]["s1"]["cpu_s_per_100k"], out["cases"]["s4"]["cpu_s_per_100k"]
    out["s4_counters_over_s1_counter"] = four["counters"] / one["counter"]
    # What the deployment pays per event: its owners and its broker.
    out["s4_with_broker_over_s1_with_broker"] = (four["counters"] + four["broker"]) / (one["counter"] + one["broker"])
    print("\ncost per event at the same rate per counter, S=4 counters / S=1 counter: %.2f  (target <= 1)"
          % out["s4_counters_over_s1_counter"])
    print("the same with the broker, (counters + broker) S=4 / S=1:                %.2f"
          % out["s4_with_broker_over_s1_with_broker"])
    return out
