"""The sample traces under test/traces/ and the outputs they must produce.

  scripts/traces generate [DIR]     write the sample traces and their expected
                                    outputs into DIR (default test/traces)
  scripts/traces run [--fast | --speed X | --rate N] [--expect FILE]... [--keep] TRACE...
                                    start a fresh pipeline (its own broker on a
                                    free port, all six agents, state in a
                                    throw-away directory), replay the traces
                                    into it at once, record what comes out and
                                    compare it with the expected outputs (each
                                    trace's NAME.expected beside it, or the
                                    --expect files); exit 1 if they differ
                                    --chaos N: meanwhile SIGKILL N random agents
                                    (two workers), restarting each, and report
                                    faults, losses and double counts (scripts/chaos)
                                    --broker-kills M: and SIGKILL the broker M
                                    times, 6 s apart, restarting it from its
                                    persistence (the report adds what it lost)
                                    --shards S: S shards (README "Scaling out"):
                                    counter, dispatcher, aggregator and alerter
                                    once per shard, mqpipe-router in front
                                    --route-in-broker: with --shards, the
                                    broker's mqpipe_route.so routes instead
                                    of mqpipe-router
                                    $MQPIPE_AGENT_ARGS: more flags for every
                                    agent (e.g. --republish-window 0)
  scripts/traces normalize [FILE]   one line per output, from mqpipe-record
                                    JSON Lines: the fields a replay must
                                    reproduce (see test/traces/README.md)"""
import argparse
import os
import re
import signal
import sys

from .paths import ROOT

USAGE = __doc__
EX_USAGE, EX_NOINPUT = 64, 66


def usage(status):
    """Prints the usage (on stdout, as the shell version did) and exits with status."""
    print(USAGE)
    sys.exit(status)


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as "scripts/traces CMD: ..."
    and the usage, with exit 64."""

    def error(self, message):
        """Reports message (an unknown flag as the shell version did) and exits 64."""
        if message.startswith("unrecognized arguments: "):
            message = "unknown flag '%s'" % message.split(": ", 1)[1].split(" ")[0]
        print("%s: %s" % (self.prog, message), file=sys.stderr)
        usage(EX_USAGE)


def count(value):
    """A --chaos or --broker-kills count: digits only."""
    if not re.fullmatch(r"[0-9]+", value):
        raise argparse.ArgumentTypeError("'%s' is not a count" % value)
    return int(value)


def run_parser():
    """The parser of `run`'s flags; pace is the mqpipe-replay flags (the last of
    --fast, --speed X, --rate N given; --speed 1 without any)."""
    p = Parser(prog="scripts/traces run", add_help=False, allow_abbrev=False)
    p.add_argument("--fast", dest="pace", action="store_const", const=["--fast"])
    for flag in ("--speed", "--rate"):
        p.add_argument(flag, dest="pace", type=lambda v, f=flag: [f, v])
    p.add_argument("--expect", action="append", default=[])
    p.add_argument("--chaos", type=count, default=0)
    p.add_argument("--broker-kills", type=count, default=0)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--shards", type=count, default=1)
    p.add_argument("--route-in-broker", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    p.add_argument("traces", nargs="*")
    p.set_defaults(pace=["--speed", "1"])
    return p


def cmd_run(argv):
    """scripts/traces run: checks the traces and expected files (exit 66
    when one cannot be read), then runs them (pipeline exit status)."""
    from .run import run
    a = run_parser().parse_intermixed_args(argv)
    if a.help:
        usage(0)
    if not a.traces:
        print("scripts/traces run: give at least one TRACE", file=sys.stderr)
        return EX_USAGE
    expect = list(a.expect)
    for t in a.traces:
        if not os.access(t, os.R_OK):
            print("scripts/traces run: cannot read '%s'" % t, file=sys.stderr)
            return EX_NOINPUT
        if a.expect:
            continue
        e = (t[:t.rindex(".")] if "." in t else t) + ".expected"  # as ${t%.*}.expected
        if not os.access(e, os.R_OK):
            print("scripts/traces run: no %s (give --expect FILE)" % e, file=sys.stderr)
            return EX_NOINPUT
        expect.append(e)
    if not 1 <= a.shards <= 1024:
        print("scripts/traces run: --shards: a whole number from 1 to 1024", file=sys.stderr)
        return EX_USAGE
    if a.route_in_broker and a.shards < 2:
        print("scripts/traces run: --route-in-broker needs --shards S above 1", file=sys.stderr)
        return EX_USAGE
    return run(a.traces, expect, a.pace, a.chaos, a.broker_kills, a.keep, a.shards, a.route_in_broker)


def cmd_generate(argv):
    """scripts/traces generate [DIR]: the samples into DIR (test/traces)."""
    from .generate import generate
    generate(argv[0] if argv else os.path.join(ROOT, "test/traces"))
    return 0


def cmd_normalize(argv):
    """scripts/traces normalize [FILE]: FILE (stdin) normalized on stdout;
    exit 2 when it cannot be read or stops parsing, 5 when a message could
    not be normalized (jq's codes: the shell version was jq)."""
    from .normalize import normalize_file
    try:
        lines, status = normalize_file(argv[0] if argv else None)
    except OSError as e:
        print("jq: error: Could not open %s: %s" % (argv[0], e.strerror), file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    for line in lines:
        out.write(line.encode("utf-8", "surrogateescape") + b"\n")
    out.flush()
    return status


COMMANDS = {"generate": cmd_generate, "normalize": cmd_normalize, "run": cmd_run}


def main(argv):
    """Dispatches argv[0] to its command; the usage with exit 64 for none
    or an unknown one, with exit 0 for -h/--help."""
    os.environ["LC_ALL"] = "C"  # the tools it runs sort and format the same everywhere
    # A fresh pipeline is stopped and removed on TERM and HUP too (Ctrl-C
    # raises KeyboardInterrupt), as the shell version's EXIT trap did.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    if not argv or argv[0] not in COMMANDS:
        usage(0 if argv and argv[0] in ("-h", "--help") else EX_USAGE)
    try:
        return COMMANDS[argv[0]](argv[1:])
    except BrokenPipeError:
        return 141
    except KeyboardInterrupt:
        return 130
