"""The throw-away mosquitto of a fresh pipeline, started and restarted by
scripts/lib/broker.sh (the one free-port and start-up logic every script
and test shares) and stopped by PID."""
import os
import socket
import subprocess
import time

from .paths import ROOT, bin_dir

BROKER_SH = os.path.join(ROOT, "scripts/lib/broker.sh")


def proc_alive(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rsplit(") ", 1)[-1].split(" ", 1)[0] != "Z"


def port_in_use(port):
    """True when something accepts TCP connections on 127.0.0.1:PORT."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", int(port))) == 0


def stop_pid(pid, sig=15):
    """Signals pid (TERM by default) and waits until it is gone, escalating
    to KILL after 10 s; a pid already gone is not an error."""
    if not pid:
        return
    try:
        os.kill(pid, sig)
    except OSError:
        return
    for _ in range(200):
        if not proc_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, 9)
    except OSError:
        pass


def shell(script, env=None):
    """Runs script in bash with broker.sh sourced; returns its stdout
    words, or None when it failed (its stderr passes through)."""
    r = subprocess.run(["bash", "-c", 'source "$1"; ' + script, "broker", BROKER_SH],
                       stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                       env=dict(os.environ, MQPIPE_ROOT=ROOT, **(env or {})))
    return r.stdout.split() if r.returncode == 0 else None


class Broker:
    """A mosquitto in directory (broker.sh broker_start: the test template,
    a free loopback port, persistence in directory); .pid, .port, .uri."""

    def __init__(self, directory, route_shards=0):
        """Starts it; route_shards > 1: with mqpipe_route.so routing into
        that many shards (README "Routing inside mosquitto"). Raises
        RuntimeError when it cannot (broker.sh has said why)."""
        self.dir = directory
        start = 'broker_start "$D"'
        if route_shards > 1:
            start = ('{ broker_route_template "$D.conf" "$S" || { echo "no mqpipe_route.so beside $MQPIPE_BIN" >&2; false; }; } && '
                     'broker_start "$D" "$D.conf/route.conf.in"')
        words = shell(start + ' >/dev/null && echo "$BROKER_PID $BROKER_PORT $BROKER_URI"',
                      {"D": directory, "S": str(route_shards), "MQPIPE_BIN": bin_dir()})
        if not words:
            raise RuntimeError("the broker did not start")
        self.pid, self.port, self.uri = int(words[0]), words[1], words[2]

    def kill(self):
        """SIGKILLs it and waits until it is gone."""
        stop_pid(self.pid, 9)

    def restart(self):
        """Starts it again on its port from its persistence; returns False
        when it does not come back."""
        words = shell('BROKER_PORT=$P; broker_restart "$D" && echo "$BROKER_PID"',
                      {"D": self.dir, "P": self.port})
        if not words:
            return False
        self.pid = int(words[0])
        return True

    def stop(self):
        """Stops it (TERM, then KILL)."""
        stop_pid(self.pid)
