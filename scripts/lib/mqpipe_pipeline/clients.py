"""mosquitto_pub and mosquitto_sub, as a user drives the pipeline: the demo
and the feed publish through them (QoS 1) like any device would."""
import json
import random
import subprocess


def publish(port, topic, lines):
    """Publishes each of lines (strings) as one message on topic; returns
    mosquitto_pub's exit status (0 for no lines: nothing to send)."""
    if not lines:
        return 0
    return subprocess.run(["mosquitto_pub", "-p", str(port), "-q", "1", "-t", topic, "-l"],
                          input="".join(line + "\n" for line in lines), text=True,
                          stdout=subprocess.DEVNULL).returncode


class Subscriber:
    """A mosquitto_sub of count messages on topics within secs seconds
    (-C, -W), started at once; lines() waits for it and returns what came."""

    def __init__(self, port, topics, count, secs, verbose=False):
        cmd = ["mosquitto_sub", "-p", str(port), "-q", "1", "-C", str(count), "-W", str(secs)]
        for t in topics:
            cmd += ["-t", t]
        self.proc = subprocess.Popen(cmd + (["-v"] if verbose else []), stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True, errors="replace")

    def lines(self):
        out, _ = self.proc.communicate()
        return out.splitlines()

    def objects(self):
        """The JSON objects that came (anything else is skipped)."""
        got = []
        for line in self.lines():
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if isinstance(v, dict):
                got.append(v)
        return got


def job(request_id, cases):
    """A job.submit payload: cases case-01… with 10-50 ms of work each."""
    return json.dumps({"requestId": request_id,
                       "requests": [{"caseId": "case-%02d" % i, "workMs": random.randint(10, 50)}
                                    for i in range(1, cases + 1)],
                       "length": str(cases)}, separators=(",", ":"))
