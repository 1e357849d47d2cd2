"""The shared broker fixture: a throw-away directory, a mosquitto on a free
loopback port in it, and every process a benchmark starts, all stopped by
PID when the benchmark ends. The same configuration choices as
scripts/lib/broker.sh (broker-config/test.conf.in, @PORT@/@DIR@/@USER@)."""
import getpass
import os
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time

from mqpipe_traces.broker import port_in_use


class BenchError(Exception):
    """A benchmark cannot go on (lost messages, an agent that never came
    online...): the message is printed on standard error, exit status 1."""


def free_port():
    """A loopback port in 20000-59999 that nothing listens on (50 random
    tries; None when all were taken). Whoever binds it may still lose a race
    with another process, so callers retry on failure."""
    for _ in range(50):
        p = random.randrange(20000, 60000)
        if not port_in_use(p):
            return p
    return None


def stop_process(proc, sig=signal.SIGTERM):
    """Signals PROC (a Popen; TERM by default) and waits until it is gone,
    escalating to KILL after 10 s. Does nothing if it has already ended."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    except ProcessLookupError:
        pass


def web_template(root, dir_):
    """Writes DIR/web.conf.in: the test broker's template plus the development
    configuration's websockets listener serving the live page on a free port
    (as broker_web_template in broker.sh). Returns (path, web_port)."""
    port = free_port()
    if port is None:
        raise BenchError("no free port for the websockets listener")
    conf = open(os.path.join(root, "broker-config", "test.conf.in")).read()
    dev = open(os.path.join(root, "broker-config", "mosquitto.conf")).read().splitlines()
    block, inside = [], False
    for line in dev:
        inside = inside or line.startswith("listener 9001 ")
        if inside:
            if line.startswith("listener 9001 "):
                line = f"listener {port} " + line[len("listener 9001 "):]
            elif line.startswith("http_dir "):
                line = "http_dir " + os.path.join(root, "broker-config", "www")
            block.append(line)
            if line.startswith("http_dir "):
                break
    if "protocol websockets" not in block:
        raise BenchError("broker-config/mosquitto.conf has no websockets listener 9001")
    os.makedirs(dir_, exist_ok=True)
    path = os.path.join(dir_, "web.conf.in")
    with open(path, "w") as f:
        f.write(conf + "\n".join(block) + "\n")
    return path, port


class Broker:
    """One mosquitto in its own directory. start() picks the port; port, uri
    and proc are set while it runs."""

    def __init__(self, root):
        self.root = root
        self.dir = self.port = self.uri = self.proc = None

    def _launch(self, mode):
        # Through broker.sh's broker__mosquitto, which execs mosquitto (the
        # PID is the broker's) with a sanitizer build's run-times preloaded
        # when the configuration loads a plugin of ours built with them.
        out = open(os.path.join(self.dir, "mosquitto.out"), mode)
        sh = os.path.join(self.root, "scripts", "lib", "broker.sh")
        with out:
            self.proc = subprocess.Popen(["bash", "-c", 'source "$1"; broker__mosquitto "$2"', "broker", sh, self.dir],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=dict(os.environ, MQPIPE_ROOT=self.root))
        with open(os.path.join(self.dir, "mosquitto.pid"), "w") as f:
            f.write(f"{self.proc.pid}\n")

    def start(self, dir_, template=None):
        """Starts mosquitto with TEMPLATE (default broker-config/test.conf.in)
        in DIR on a free port, retrying other ports (10 tries) if another
        process takes the one picked. Returns self; raises BenchError."""
        template = template or os.path.join(self.root, "broker-config", "test.conf.in")
        self.dir = dir_
        os.makedirs(dir_, exist_ok=True)
        text = open(template).read()
        for _ in range(10):
            port = free_port()
            if port is None:
                continue
            conf = text.replace("@PORT@", str(port)).replace("@DIR@", dir_).replace("@USER@", getpass.getuser())
            with open(os.path.join(dir_, "mosquitto.conf"), "w") as f:
                f.write(conf)
            self._launch("w")
            for _ in range(100):
                if port_in_use(port):
                    self.port = port
                    scheme = "ssl" if re.search(r"^certfile", conf, re.M) else "tcp"
                    self.uri = f"{scheme}://127.0.0.1:{port}"
                    return self
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
            stop_process(self.proc)
        raise BenchError(f"could not start mosquitto (see {dir_}/mosquitto.log)")

    def restart(self):
        """Starts mosquitto again on the same port and directory (after a
        kill); raises BenchError if it does not listen within 10 s."""
        self._launch("a")
        for _ in range(200):
            if port_in_use(self.port):
                return
            time.sleep(0.05)
        raise BenchError("mosquitto did not come back after the restart")

    def setting(self, name):
        """The value of configuration line NAME, or None."""
        m = re.search(rf"^{re.escape(name)}\s+(\S+)", open(os.path.join(self.dir, "mosquitto.conf")).read(), re.M)
        return m and m.group(1)

    def stop(self, sig=signal.SIGTERM):
        """Stops the broker (TERM by default; KILL for a crash)."""
        stop_process(self.proc, sig)


class Workspace:
    """A benchmark's throw-away directory (/tmp/mqpipe-bench.XXXXXX), its
    broker and the processes started in it. Use it as a context manager:
    leaving it stops every process still running, then the broker, and
    removes the directory."""

    def __init__(self, root, bin_dir):
        self.root, self.bin = root, bin_dir
        self.dir = tempfile.mkdtemp(prefix="mqpipe-bench.", dir="/tmp")
        self.broker = Broker(root)
        self.procs = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            stop_process(p)
        self.broker.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        """NAME inside the throw-away directory."""
        return os.path.join(self.dir, name)

    def start_broker(self, template=None):
        """Starts the broker in DIR/broker; returns it."""
        return self.broker.start(self.path("broker"), template)

    def spawn(self, argv, stdout=subprocess.DEVNULL, stderr=None, stdin=subprocess.DEVNULL):
        """Starts ARGV in the background, registered for the final cleanup;
        returns its Popen."""
        p = subprocess.Popen(argv, stdout=stdout, stderr=stderr, stdin=stdin)
        self.procs.append(p)
        return p
