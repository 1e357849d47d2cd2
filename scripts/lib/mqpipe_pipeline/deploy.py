"""The deployment under $MQPIPE_VAR (default ./var): its broker from
broker-config/, its agents, their state files, logs and pid files; up and
down."""
import glob
import os
import pwd
import re
import subprocess
import sys
import time

from mqpipe_traces.broker import port_in_use, proc_alive, stop_pid
from mqpipe_traces.paths import ROOT, bin_dir
from mqpipe_traces.pipeline import AGENTS, SHARDED
MAX_SHARDS = 1024  # as the agents take (--shards)


class UsageError(Exception):
    """Bad arguments: the message is printed and the command exits 64."""


class Failed(Exception):
    """The command cannot go on: the message is printed and it exits 1."""


def first_free(want, candidates):
    """want when nothing listens there, else the first free port of
    candidates (want again when all are taken: the broker will say so)."""
    if not port_in_use(want):
        return want
    return next((p for p in candidates if not port_in_use(p)), want)


def count_online(log):
    """How many times the log at path log says event=online."""
    try:
        with open(log, errors="replace") as f:
            return f.read().count("event=online")
    except OSError:
        return 0


def spawn(cmd, log, cwd=None):
    """Starts cmd in a session of its own (so that the terminal's hang-up
    and Ctrl-C do not reach it), its stderr appended to log; returns its
    Popen."""
    with open(log, "ab") as err:
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                cwd=cwd, start_new_session=True)


class Deployment:
    """The processes and files of one $MQPIPE_VAR."""

    def __init__(self):
        self.var = os.environ.get("MQPIPE_VAR") or os.path.join(ROOT, "var")
        self.bin = bin_dir()
        self.run_dir = os.path.join(self.var, "run")
        self.log_dir = os.path.join(self.var, "log")

    def read(self, path, default):
        """The first word of file path, or default when it is missing."""
        try:
            with open(path) as f:
                return f.read().split()[0]
        except (OSError, IndexError):
            return default

    def write(self, path, value):
        with open(path, "w") as f:
            f.write("%s\n" % value)

    def shards(self):
        """The deployment's S, kept in $VAR/shards: fixed for the life of
        its states (a key's shard changes with S); 1 without that file."""
        s = self.read(os.path.join(self.var, "shards"), "1")
        return int(s) if s.isdigit() else 1

    def names(self):
        """The processes of this deployment: one per agent, or with S > 1
        one per shard of each sharded agent (counter-0 …) and the router."""
        s = self.shards()
        out = []
        for a in AGENTS:
            out += ["%s-%d" % (a, k) for k in range(s)] if s > 1 and a in SHARDED else [a]
        return out + (["router"] if s > 1 else [])

    def set_shards(self, want):
        """Records S = want for $VAR, unless its states are of another S.
        Raises UsageError for a bad S or a mismatch."""
        if not re.fullmatch(r"[1-9][0-9]*", want) or int(want) > MAX_SHARDS:
            raise UsageError("scripts/pipeline up: --shards S, a number from 1 to %d" % MAX_SHARDS)
        have = self.shards()
        if not os.path.exists(os.path.join(self.var, "shards")) and not glob.glob(os.path.join(self.var, "*.db")):
            have = int(want)
        if have != int(want):
            raise UsageError('scripts/pipeline up: %s holds the states of %d shard(s); S is fixed for their life'
                             ' (README "Scaling out"):\n'
                             "  'scripts/pipeline down' and remove %s, or choose another MQPIPE_VAR"
                             % (self.var, have, self.var))
        os.makedirs(self.var, exist_ok=True)
        self.write(os.path.join(self.var, "shards"), want)

    def pid_of(self, name):
        """The pid in $VAR/run/NAME.pid if that process lives, else None."""
        pid = self.read(os.path.join(self.run_dir, name + ".pid"), "")
        return int(pid) if pid.isdigit() and proc_alive(int(pid)) else None

    def port(self):
        return self.read(os.path.join(self.run_dir, "port"), os.environ.get("MQPIPE_PORT") or "1883")

    def web_port(self):
        return self.read(os.path.join(self.run_dir, "web_port"), os.environ.get("MQPIPE_WEB_PORT") or "9001")

    def build(self):
        """Installs what is missing (scripts/bootstrap) and builds build/
        when a source is newer than the binaries."""
        if subprocess.run([os.path.join(ROOT, "scripts/bootstrap")]).returncode != 0:
            raise Failed("scripts/bootstrap failed")
        probe = os.path.join(self.bin, "mqpipe-dispatcher")
        if os.access(probe, os.X_OK):
            built = os.stat(probe).st_mtime
            sources = [os.path.join(ROOT, "CMakeLists.txt")] + [
                os.path.join(d, f) for d, _, fs in os.walk(os.path.join(ROOT, "agents")) for f in fs]
            if not any(os.stat(p).st_mtime > built for p in sources if os.path.exists(p)):
                return
        print("building (cmake -S . -B build)…", flush=True)
        build = os.path.join(ROOT, "build")
        for cmd in (["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
                    ["cmake", "--build", build, "-j%d" % (os.cpu_count() or 2)]):
            if subprocess.run(cmd, stdout=subprocess.DEVNULL).returncode != 0:
                raise Failed("the build failed: %s" % " ".join(cmd))

    def broker_config(self, port, web_port):
        """The development configuration (broker-config/mosquitto.conf)
        with this run's ports, paths and user."""
        with open(os.path.join(ROOT, "broker-config/mosquitto.conf")) as f:
            conf = f.read()
        for pattern, value in ((r"^listener 1883 127\.0\.0\.1$", "listener %s 127.0.0.1" % port),
                               (r"^listener 9001 lo$", "listener %s lo" % web_port),
                               (r"^http_dir .*$", "http_dir %s/broker-config/www" % ROOT),
                               (r"^persistence_location .*$", "persistence_location %s/mosquitto/" % self.var),
                               (r"^log_dest stderr$", "log_dest file %s/mosquitto.log" % self.log_dir)):
            conf = re.sub(pattern, lambda _m, v=value: v, conf, flags=re.M)
        return conf + "user %s\n" % pwd.getpwuid(os.getuid()).pw_name

    def start_broker(self):
        """Starts mosquitto unless it runs; on MQPIPE_PORT (default 1883), or
        the next free port from 1884 when another process holds it."""
        for d in (self.run_dir, self.log_dir, os.path.join(self.var, "mosquitto")):
            os.makedirs(d, exist_ok=True)
        if self.pid_of("mosquitto"):
            return
        want = os.environ.get("MQPIPE_PORT") or "1883"
        port = first_free(want, map(str, range(1884, 2000)))
        if port != want:
            print("note: port %s is held by another process (a system mosquitto? 'systemctl stop mosquitto')." % want)
            print("      mqpipe's broker uses port %s instead: add '-p %s' to the mosquitto_pub/sub examples."
                  % (port, port))
        want_web = os.environ.get("MQPIPE_WEB_PORT") or "9001"
        web_port = first_free(want_web, map(str, range(9002, 9100)))
        if web_port != want_web:
            print("note: port %s is held by another process; the live page is on port %s instead." % (want_web, web_port))
        conf = os.path.join(self.run_dir, "mosquitto.conf")
        self.write(conf, self.broker_config(port, web_port).rstrip("\n"))
        log = os.path.join(self.log_dir, "mosquitto.log")
        # In the foreground, in a session of its own: its pid is ours to keep.
        broker = spawn(["mosquitto", "-c", conf], log)
        for _ in range(100):
            if port_in_use(port) or broker.poll() is not None:
                break
            time.sleep(0.05)
        if broker.poll() is not None or not port_in_use(port):
            stop_pid(broker.pid)
            raise Failed("mosquitto did not start: see %s" % log)
        self.write(os.path.join(self.run_dir, "mosquitto.pid"), broker.pid)
        self.write(os.path.join(self.run_dir, "port"), port)
        self.write(os.path.join(self.run_dir, "web_port"), web_port)
        print("broker    tcp://127.0.0.1:%s (pid %d, config %s)" % (port, broker.pid, conf), flush=True)

    def start_agent(self, name):
        """Starts name (an agent, or AGENT-K: shard K's instance) unless it
        runs, and waits (up to 10 s) until its log says it is online."""
        pid = self.pid_of(name)
        if pid:
            print("%s   already running (pid %d)" % (name, pid), flush=True)
            return
        agent, args, s = name, [], self.shards()
        if s > 1:
            args = ["--shards", str(s)]
            m = re.fullmatch(r"([a-z]+)-([0-9]+)", name)
            if m:
                agent = m.group(1)
                args += ["--shard", m.group(2)]
        log = os.path.join(self.log_dir, name + ".log")
        db = os.path.join(self.var, name + ".db")
        before = count_online(log)
        proc = spawn([os.path.join(self.bin, "mqpipe-" + agent), "-b", "tcp://127.0.0.1:" + self.port(),
                      "-d", db, "--metrics-interval", "2", *args], log)
        self.write(os.path.join(self.run_dir, name + ".pid"), proc.pid)
        for _ in range(100):
            if count_online(log) > before:
                break
            if proc.poll() is not None:
                with open(log, errors="replace") as f:
                    raise Failed("%s exited: %s" % (name, "\n".join(f.read().splitlines()[-3:])))
            time.sleep(0.1)
        print("%s   online (pid %d, state %s, log %s)" % (name, proc.pid, db, log), flush=True)

    def up(self):
        """Builds if needed and starts the broker and every process."""
        self.build()
        self.start_broker()
        for name in self.names():
            self.start_agent(name)
        s = self.shards()
        if s > 1:
            print('shards    %d: publish plain inputs as before (mqpipe-router routes them), or on shard/<K>/'
                  ' (README "Scaling out")' % s)
        print('live page http://127.0.0.1:%s/ (served by the broker; README "Live page")' % self.web_port(), flush=True)

    def stop(self, name, said):
        """Stops name by its pid file (SIGTERM: it finishes and commits),
        printing said when it ran, and removes the file."""
        pid = self.pid_of(name)
        if pid:
            stop_pid(pid)
            print(said, flush=True)
        try:
            os.unlink(os.path.join(self.run_dir, name + ".pid"))
        except FileNotFoundError:
            pass

    def down(self):
        """Stops the feed, every process, then the broker."""
        self.stop("feed", "feed stopped")
        for name in self.names():
            self.stop(name, name + " stopped")
        self.stop("mosquitto", "broker stopped")
        for f in ("port", "web_port"):
            try:
                os.unlink(os.path.join(self.run_dir, f))
            except FileNotFoundError:
                pass


def launcher():
    """The scripts/pipeline command itself (the feed runs as its child)."""
    return [sys.executable, os.path.join(ROOT, "scripts/pipeline")]
