"""The clients a benchmark drives: mosquitto_pub/mosquitto_sub on the
workspace's broker (the yardsticks, and how the agents are fed), and the
mqpipe agents themselves."""
import os
import subprocess
import time

from .fixture import BenchError

PUBLISH_RUN = 50000  # mosquitto_pub -l stops at 65 535 lines


def sub_cmd(ws, *args):
    """The mosquitto_sub command line for the workspace's broker plus ARGS."""
    return ["mosquitto_sub", "-p", str(ws.broker.port), *args]


def pub_cmd(ws, *args):
    """The mosquitto_pub command line for the workspace's broker plus ARGS."""
    return ["mosquitto_pub", "-p", str(ws.broker.port), *args]


def run(argv, **kw):
    """Runs ARGV to its end; raises CalledProcessError when it fails."""
    return subprocess.run(argv, check=True, stdin=kw.pop("stdin", subprocess.DEVNULL), **kw)


def make_session(ws, client_id, topic):
    """Creates the kept (-c) QoS 1 session CLIENT_ID subscribed to TOPIC, so
    what is published while its client is away is queued for it."""
    run(sub_cmd(ws, "-q", "1", "-i", client_id, "-c", "-t", topic, "-E"))


def publish(ws, topic, message):
    """Publishes one MESSAGE on TOPIC at QoS 1."""
    run(pub_cmd(ws, "-q", "1", "-t", topic, "-m", message))


def write_lines(path, lines):
    """Writes LINES (strings without newline) to PATH, one a line."""
    with open(path, "w") as f:
        for line in lines:
            f.write(line)
            f.write("\n")


def publish_lines(ws, topic, path):
    """Publishes every line of PATH on TOPIC at QoS 1 with mosquitto_pub -l,
    in runs of 50 000 lines (each from its own part file beside PATH)."""
    parts, buf, n = [], [], 0
    with open(path, "rb") as f:
        for line in f:
            buf.append(line)
            if len(buf) == PUBLISH_RUN:
                parts.append(_write_part(path, n, buf))
                buf, n = [], n + 1
    if buf:
        parts.append(_write_part(path, n, buf))
    for part in parts:
        with open(part, "rb") as f:
            run(pub_cmd(ws, "-q", "1", "-t", topic, "-l"), stdin=f)


def _write_part(path, n, lines):
    """Writes part N of PATH; returns its name."""
    name = f"{path}.part{n:03d}"
    with open(name, "wb") as f:
        f.writelines(lines)
    return name


def publish_paced(ws, topic, lines, gap_s):
    """Publishes LINES on TOPIC at QoS 1 through one mosquitto_pub -l, one
    every GAP_S seconds (a latency probe, not a load)."""
    p = subprocess.Popen(pub_cmd(ws, "-q", "1", "-t", topic, "-l"), stdin=subprocess.PIPE)
    try:
        for line in lines:
            p.stdin.write((line + "\n").encode())
            p.stdin.flush()
            time.sleep(gap_s)
    finally:
        p.stdin.close()
    if p.wait() != 0:
        raise subprocess.CalledProcessError(p.returncode, p.args)


def read_stamped(path):
    """The lines of a mosquitto_sub -F '%U %t %p' output as (seconds, topic,
    payload) tuples; a line cut short when the subscriber was stopped is
    skipped."""
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            parts = line.rstrip("\n").split(" ", 2)
            if len(parts) == 3:
                try:
                    out.append((float(parts[0]), parts[1], parts[2]))
                except ValueError:
                    pass
    return out


def read_times(path):
    """The stamps of a mosquitto_sub -F '%U' output, as seconds."""
    with open(path) as f:
        return [float(line) for line in f if line.strip()]


def log_has(path, text):
    """True when the file PATH exists and contains TEXT."""
    try:
        with open(path, errors="replace") as f:
            return text in f.read()
    except FileNotFoundError:
        return False


def wait_for_log(path, text, timeout_s):
    """Waits until PATH contains TEXT, polling every 50 ms; returns whether it
    did within TIMEOUT_S seconds."""
    deadline = time.monotonic() + timeout_s
    while True:
        if log_has(path, text):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def start_agent(ws, name, binary, *args, log=None, online=True):
    """Starts BINARY (from the build's bin directory) under prefix bench on
    the workspace's broker, its state in DIR/NAME.db and its log appended to
    DIR/LOG.log (LOG defaults to NAME); ARGS come after (a later -d wins).
    With ONLINE, waits up to 10 s for its event=online line and raises
    BenchError without one. Returns its Popen."""
    logpath = ws.path(f"{log or name}.log")
    with open(logpath, "ab") as err:
        p = ws.spawn([os.path.join(ws.bin, binary), "-b", ws.broker.uri, "-p", "bench",
                      "-d", ws.path(f"{name}.db"), *args], stderr=err)
    if online and not wait_for_log(logpath, "event=online", 10):
        tail = open(logpath, errors="replace").read().splitlines()[-3:]
        raise BenchError(f"{name} did not come online: " + "\n".join(tail))
    return p


def start_counter(ws, log):
    """The counter as the counter benchmarks run it: state in DIR/counter.db,
    metrics every second, log DIR/LOG.log; not waited for."""
    return start_agent(ws, "counter", "mqpipe-counter", "--metrics-interval", "1", log=log, online=False)


def delivery_rate(ws, sub_args, feed, count, stdout=subprocess.DEVNULL):
    """Starts mosquitto_sub with SUB_ARGS (which make it end once it has
    what it waits for, e.g. -C N), gives it 0.2 s to subscribe, calls FEED()
    and waits for the subscriber: returns COUNT per second from just before
    FEED to the subscriber's end. Its messages go to STDOUT."""
    sub = ws.spawn(sub_cmd(ws, *sub_args), stdout=stdout)
    time.sleep(0.2)
    t0 = time.time()
    feed()
    sub.wait()
    return count / (time.time() - t0)
