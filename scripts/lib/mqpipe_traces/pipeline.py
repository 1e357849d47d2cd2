"""A fresh pipeline: its own broker on a free port, all six agents with
their state in a throw-away directory, and a recorder of every output."""
import glob
import os
import shlex
import subprocess
import tempfile
import time

from .broker import Broker, stop_pid
from .paths import bin_dir

AGENTS = ["counter", "dispatcher", "worker", "aggregator", "ingest", "alerter"]
# The agents that own a shard (README "Scaling out"): with shards > 1, one
# instance per shard, named <agent>-<K>.
SHARDED = ["counter", "dispatcher", "aggregator", "alerter"]
# Every topic an agent answers on (ingest replies go where the trace asks:
# replies/trace/…; under the secure profile replies may only go under
# replies/); the topics between agents are left out.
OUTPUTS = ["success_rate", "job.summary", "dashboard.ready", "alerts/#", "deadletter/#", "replies/#"]


class Failed(Exception):
    """The run cannot go on: the message says why, and the directory is kept."""


class Pipeline:
    """The pipeline's processes in one directory (.dir); stop() ends them
    all by PID and removes the directory unless .keep."""

    def __init__(self, keep=False, two_workers=False, shards=1, route_in_broker=False):
        """Makes the directory and starts the broker; two_workers: two
        workers sharing the cases (each killed on its own under faults);
        shards > 1: each sharded agent once per shard, and mqpipe-router
        in front, which the replays publish to (route_in_broker: the
        broker's mqpipe_route.so instead)."""
        self.keep = keep
        self.dir = tempfile.mkdtemp(prefix="mqpipe-traces.", dir=os.environ.get("TMPDIR") or "/tmp")
        self.procs = {}  # agent name -> Popen
        self.others = []  # the recorder and replays
        self.broker = None
        extra = shlex.split(os.environ.get("MQPIPE_AGENT_ARGS", ""))
        self.args = {a: ["-d", self.path(a + ".db"), *extra] for a in AGENTS}
        if two_workers:
            del self.args["worker"]
            for w in ("worker-1", "worker-2"):
                self.args[w] = ["-i", "mqpipe-" + w, "-d", self.path(w + ".db"), *extra]
        if shards > 1:
            for name in list(self.args):
                self.args[name] = ["--shards", str(shards), *self.args[name]]
            for a in SHARDED:
                del self.args[a]
                for k in range(shards):
                    self.args["%s-%d" % (a, k)] = ["--shards", str(shards), "--shard", str(k),
                                                   "-d", self.path("%s-%d.db" % (a, k)), *extra]
            if not route_in_broker:
                self.args["router"] = ["--shards", str(shards), "-d", self.path("router.db"), *extra]
        try:
            self.broker = Broker(self.path("broker"), shards if route_in_broker else 0)
        except RuntimeError:
            raise Failed(None)

    def path(self, name):
        """name inside the pipeline's directory."""
        return os.path.join(self.dir, name)

    def start_agent(self, name):
        """Starts (or restarts) agent name (worker-N runs mqpipe-worker, and
        counter-K mqpipe-counter), logging to NAME.log."""
        base, _, n = name.rpartition("-")
        binary = "mqpipe-" + (base if base and n.isdigit() else name)
        with open(self.path(name + ".log"), "ab") as log:
            self.procs[name] = subprocess.Popen([os.path.join(bin_dir(), binary), "-b", self.broker.uri,
                                                 *self.args[name]], stderr=log, stdin=subprocess.DEVNULL)

    def start(self, recorder_id):
        """Starts every agent and the recorder (a kept session, so what comes
        out while a restarted broker waits for it is queued) writing
        out.jsonl; waits until all are online. Raises Failed when they do
        not come up within 20 s."""
        for a in self.args:
            self.start_agent(a)
        filters = [x for t in OUTPUTS for x in ("-t", t)]
        with open(self.path("record.log"), "wb") as log:
            self.others.append(subprocess.Popen(
                [os.path.join(bin_dir(), "mqpipe-record"), "-b", self.broker.uri, "-c", "-i", recorder_id,
                 *filters, "-o", self.path("out.jsonl")], stderr=log, stdin=subprocess.DEVNULL))
        for _ in range(200):
            if self.online() >= len(self.args) and b"recording" in self.read("record.log"):
                return
            time.sleep(0.1)
        raise Failed("the fresh pipeline did not come up: see %s (--keep)" % self.dir)

    def read(self, name):
        """The bytes of name in the directory (empty when missing)."""
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except OSError:
            return b""

    def online(self):
        """How many logs in the directory say an agent came online."""
        return sum(1 for f in glob.glob(self.path("*.log")) if b"event=online" in self.read(os.path.basename(f)))

    def replay(self, traces, pace):
        """Starts a replay of each trace at pace (mqpipe-replay flags), all
        at once, each logging to replay.N.log; returns their Popens."""
        procs = []
        for n, t in enumerate(traces):
            with open(self.path("replay.%d.log" % n), "wb") as log:
                procs.append(subprocess.Popen([os.path.join(bin_dir(), "mqpipe-replay"), "-b", self.broker.uri,
                                               *pace, t], stderr=log, stdin=subprocess.DEVNULL))
        self.others.extend(procs)
        return procs

    def kill_agent(self, name):
        """SIGKILLs agent name and restarts it at once from its own state."""
        stop_pid(self.procs[name].pid, 9)
        self.procs[name].poll()
        self.start_agent(name)

    def stop(self):
        """Stops every process by PID, then removes the directory (or says
        it is kept)."""
        for p in list(self.procs.values()) + self.others:
            stop_pid(p.pid)
            p.poll()
        if self.broker:
            self.broker.stop()
        if self.keep:
            print("kept " + self.dir, flush=True)
        else:
            subprocess.run(["rm", "-rf", self.dir])
