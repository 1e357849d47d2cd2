"""scripts/bench's command line: one subcommand per benchmark, the build,
then the benchmark in a fresh workspace."""
import argparse
import importlib.util
import os
import signal
import subprocess
import sys

from . import alerts, counter, dashboard, ingest, jobs, page, shards, state, tools
from .fixture import BenchError, Workspace

EX_USAGE = 64
DEBIAN_PYTHON = "/usr/bin/python3"

# name -> (the benchmark's function, the names of its options in OPTIONS)
BENCHMARKS = {
    "counter": (counter.bench_counter, ("events", "runs")),
    "broker-crash": (counter.bench_broker_crash, ("events",)),
    "jobs": (jobs.bench_jobs, ("runs",)),
    "dashboard": (dashboard.bench_dashboard, ("requests", "setup-ms", "latency-scale", "svg")),
    "ingest": (ingest.bench_ingest, ("events", "runs")),
    "alerts": (alerts.bench_alerts, ("events", "runs")),
    "replay": (tools.bench_replay, ("events", "runs")),
    "record": (tools.bench_record, ("events", "runs")),
    "page": (page.bench_page, ("events",)),
    "state": (state.bench_state, ("modules", "weeks", "per-week")),
    "shards": (shards.bench_shards, ("events", "runs", "rate")),
}
DEFAULT_EVENTS = {"ingest": 20000, "page": 20000, "shards": 40000}


def count(text):
    """A whole number >= 1 (argparse type)."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number >= 1")
    return int(text)


def whole(text):
    """A whole number >= 0 (argparse type)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number")
    return int(text)


def millis(text):
    """A whole number of milliseconds >= 0 (argparse type)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of milliseconds")
    return int(text)


def scale(text):
    """A positive factor, kept as written (it is handed on to the workers)."""
    try:
        ok = float(text) > 0
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"'{text}' is not a positive number")
    return text


OPTIONS = {
    "events": dict(type=count, metavar="N",
                   help="messages, events or points (default 100000; ingest, page: 20000; shards: 40000)"),
    "runs": dict(type=count, default=5, metavar="R", help="runs, the median is kept (default 5)"),
    "requests": dict(type=count, default=20, metavar="N", help="dashboard requests per mode (default 20)"),
    "setup-ms": dict(type=millis, default=500, metavar="MS", help="the aggregator's --setup-ms (default 500)"),
    "latency-scale": dict(type=scale, default="1", metavar="F", help="the workers' --latency-scale (default 1)"),
    "svg": dict(metavar="PATH", help="where the chart goes (default build/bench/dashboard.svg)"),
    "rate": dict(type=whole, default=1000, metavar="R",
                 help="shards: events/s per counter in the paced rounds, 0 for none (default 1000)"),
    "modules": dict(type=count, default=10000, metavar="N", help="modules in the fleet (default 10000)"),
    "weeks": dict(type=count, default=52, metavar="W", help="weeks simulated, one diagnostic each (default 52)"),
    "per-week": dict(type=count, default=30, metavar="M", help="messages per module and week (default 30)"),
}


class Parser(argparse.ArgumentParser):
    """argparse with the usage errors of a Unix tool: usage and the message
    on standard error, exit 64 (EX_USAGE)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(EX_USAGE, f"{self.prog}: {message}\n")


def section(doc, name):
    """The paragraph of DOC that describes benchmark NAME ("name: ...")."""
    out = []
    for line in doc.splitlines():
        if line.startswith(f"{name}:"):
            out = [line]
        elif out and line.startswith("  "):
            out.append(line)
        elif out:
            break
    return "\n".join(out)


def parser(doc):
    """The command-line parser; DOC (the entry script's header) is the help."""
    p = Parser(prog="scripts/bench", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter,
               usage="scripts/bench {%s} [options]" % ",".join(BENCHMARKS))
    subs = p.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (_, opts) in BENCHMARKS.items():
        s = subs.add_parser(name, prog=f"scripts/bench {name}", description=section(doc, name),
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        for opt in opts:
            s.add_argument(f"--{opt}", **OPTIONS[opt])
    return p


def wants_debian_python(args):
    """True when the chart needs python3-matplotlib, this python3 (pyenv, a
    venv) cannot import it, and Debian's python3 (which sees the Debian
    package) is another one: the caller runs again under Debian's."""
    return (args.benchmark == "dashboard" and importlib.util.find_spec("matplotlib") is None
            and os.path.exists(DEBIAN_PYTHON) and os.path.realpath(sys.executable) != os.path.realpath(DEBIAN_PYTHON))


def build(root):
    """scripts/bootstrap, then a RelWithDebInfo build in build/; raises
    CalledProcessError when either fails."""
    subprocess.run([os.path.join(root, "scripts", "bootstrap")], check=True)
    subprocess.run(["cmake", "-S", root, "-B", os.path.join(root, "build"), "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", os.path.join(root, "build"), f"-j{os.cpu_count() or 1}"],
                   check=True, stdout=subprocess.DEVNULL)
    os.makedirs(os.path.join(root, "build", "bench"), exist_ok=True)


def _terminate(signum, _frame):
    """SIGTERM/SIGHUP end the run through the workspace's cleanup."""
    raise SystemExit(128 + signum)


def main(argv, doc, script):
    """Runs the benchmark ARGV names; returns the exit status (0, 1 when the
    benchmark failed, 64 on a usage error (exits), 69 when a tool it needs is
    missing)."""
    args = parser(doc).parse_args(argv)
    if wants_debian_python(args):
        os.execv(DEBIAN_PYTHON, [DEBIAN_PYTHON, script, *argv])
    if "events" in BENCHMARKS[args.benchmark][1] and args.events is None:
        args.events = DEFAULT_EVENTS.get(args.benchmark, 100000)
    if args.benchmark == "dashboard":
        args.latency_scale_text, args.latency_scale = args.latency_scale, float(args.latency_scale)
        if args.svg:
            args.svg = os.path.abspath(args.svg)
    root = os.path.dirname(os.path.dirname(os.path.abspath(script)))
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    try:
        build(root)
        with Workspace(root, os.environ.get("MQPIPE_BIN", os.path.join(root, "build", "bin"))) as ws:
            BENCHMARKS[args.benchmark][0](ws, args)
    except page.Unavailable as e:
        print(e, file=sys.stderr)
        return page.EX_UNAVAILABLE
    except BenchError as e:
        print(f"scripts/bench {args.benchmark}: {e}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        cmd = " ".join(map(str, e.cmd))
        print(f"scripts/bench {args.benchmark}: {cmd} failed (exit {e.returncode})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
