"""Runs mqpipe on this machine: a mosquitto from broker-config/ and the agents,
with every state file, log and pid under var/.

  scripts/pipeline up [--shards S]   build if needed, start the broker and the agents;
                            with S > 1 one instance per shard of each sharded agent
                            (counter-0..S-1, …) and mqpipe-router (README "Scaling out");
                            S is kept in var/shards for the next up and demo
  scripts/pipeline down     stop the agents (SIGTERM: they finish and commit), then the broker
  scripts/pipeline status   each agent's state, rates, handling time and outbox depth
  scripts/pipeline top      the same table, redrawn every 2 s until Ctrl-C
  scripts/pipeline logs [AGENT] [-f]   the last lines of the logs (or follow them)
  scripts/pipeline demo     up, then publish a sample fleet and print its success rates,
                            submit a job and a dashboard request and print what comes back,
                            and replay test/traces/ into a fresh pipeline (scripts/traces run);
                            then start the feed for 10 minutes
  scripts/pipeline feed [S] in the background for S seconds (default 600), a steady live sample
                            for the live page: 12 modules, 3 hosts' CPU with spikes, a job
                            every 15 s, a dashboard every 20 s, a bad payload every 30 s
  scripts/pipeline feed stop   end it (down does too)

Environment: MQPIPE_PORT (default 1883; if something else holds it, the next
free port from 1884 is used and printed), MQPIPE_VAR (default ./var)."""
import glob
import os
import re
import sys

from . import demo, feed, status
from .deploy import Deployment, Failed, UsageError

USAGE = __doc__
EX_USAGE, EX_UNAVAILABLE = 64, 69


def cmd_up(dep, args):
    want = None
    while args:
        if args[0] == "--shards" and len(args) >= 2:
            want, args = args[1], args[2:]
        elif args[0].startswith("--shards="):
            want, args = args[0][len("--shards="):], args[1:]
        else:
            raise UsageError("scripts/pipeline up: unknown argument '%s' (up [--shards S])" % args[0])
    if want is not None:
        dep.set_shards(want)
    dep.up()
    return 0


def cmd_logs(dep, args):
    """tail -n 20 of the named agents' logs (all of them by default); -f
    follows them. Replaces this process with tail."""
    follow = "-f" in args
    logs = [os.path.join(dep.log_dir, a + ".log") for a in args if a != "-f"]
    logs = logs or sorted(glob.glob(os.path.join(dep.log_dir, "*.log")))
    if not logs:
        raise Failed("no logs under %s (scripts/pipeline up)" % dep.log_dir)
    sys.stdout.flush()
    os.execvp("tail", ["tail", "-n", "20"] + (["-F"] if follow else []) + logs)


def cmd_feed(dep, args):
    what = args[0] if args else "600"
    if len(args) > 1 or (what != "stop" and not re.fullmatch(r"[0-9]*[1-9][0-9]*", what)):
        raise UsageError("scripts/pipeline feed: SECONDS (a whole number) or stop")
    if what == "stop":
        feed.stop(dep)
        return 0
    if not dep.pid_of("mosquitto"):
        print("scripts/pipeline feed: the pipeline is not up (scripts/pipeline up)", file=sys.stderr)
        return EX_UNAVAILABLE
    feed.start(dep, int(what))
    return 0


def cmd_feed_run(dep, args):
    if len(args) != 1 or not args[0].isdigit():
        raise UsageError("scripts/pipeline feed-run SECONDS")
    return feed.run(dep, int(args[0]))


def no_args(fn):
    """fn(dep) as a command that takes no arguments."""
    def cmd(dep, args):
        if args:
            raise UsageError("scripts/pipeline: unexpected argument '%s' (scripts/pipeline --help)" % args[0])
        return fn(dep)
    return cmd


COMMANDS = {"up": cmd_up, "down": no_args(lambda dep: dep.down() or 0), "status": no_args(status.status),
            "top": no_args(status.top), "logs": cmd_logs, "demo": no_args(demo.demo), "feed": cmd_feed,
            "feed-run": cmd_feed_run}


def main(argv):
    """Dispatches argv[0] to its command: the usage on stdout with exit 0
    for -h/--help, on stderr with exit 64 for none, an unknown one or bad
    arguments; 1 when a command fails."""
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv or argv[0] not in COMMANDS:
        if argv:
            print("scripts/pipeline: unknown command '%s'" % argv[0], file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return EX_USAGE
    try:
        return COMMANDS[argv[0]](Deployment(), argv[1:])
    except UsageError as e:
        print(e, file=sys.stderr)
        return EX_USAGE
    except Failed as e:
        print(e, file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 141
    except KeyboardInterrupt:
        return 130
