"""The jobs benchmark: a job through dispatcher, counter, worker and
aggregator from job.submit to job.summary, against the broker alone
carrying the same messages."""
import json
import threading
import time

from .clients import (make_session, publish_lines, pub_cmd, read_stamped, read_times, run, start_agent, sub_cmd,
                      write_lines)
from .fixture import BenchError
from .measure import mb, median, peak_kb, write_result


def write_job(ws, n, job_id):
    """Writes DIR/job.json (the N-case job.submit) and, as the pipeline
    renders them, its N compute.request (DIR/req.txt) and N compute.done
    (DIR/done.txt)."""
    with open(ws.path("job.json"), "w") as f:
        f.write(f'{{"requestId":"{job_id}","requests":['
                + ",".join(f'{{"caseId":"c{i}"}}' for i in range(n)) + "]}\n")
    write_lines(ws.path("req.txt"), (f'{{"requestId":"{job_id}","caseId":"c{i}","index":{i},'
                                     f'"case":{{"caseId":"c{i}"}}}}' for i in range(n)))
    write_lines(ws.path("done.txt"), (f'{{"requestId":"{job_id}","caseId":"c{i}","index":{i},"processingMs":0,'
                                      f'"result":{{"status":"success"}},"worker":"mqpipe-worker-bench"}}'
                                      for i in range(n)))


def broker_alone(ws, n):
    """The yardstick: N compute.request to one subscriber and N compute.done
    to two, from two mosquitto_pub -l at once; seconds from the first to the
    last message received, as the subscribers stamp them (mosquitto_sub -F
    %U: how long client processes live would flatter small jobs)."""
    subs = []
    for name in ("req", "done1", "done2"):  # persistent sessions, so nothing is missed
        make_session(ws, f"bench-{name}", f"raw/{name.rstrip('12')}")
    for name in ("req", "done1", "done2"):
        with open(ws.path(f"ts.{name}"), "w") as f:
            subs.append(ws.spawn(sub_cmd(ws, "-q", "1", "--nodelay", "-i", f"bench-{name}", "-c",
                                         "-t", f"raw/{name.rstrip('12')}", "-C", str(n), "-F", "%U"), stdout=f))
    time.sleep(0.3)
    errors = []

    def feed(topic, path):
        try:
            publish_lines(ws, topic, path)
        except Exception as e:  # reported below, in the main thread
            errors.append(e)
    feeders = [threading.Thread(target=feed, args=("raw/req", ws.path("req.txt"))),
               threading.Thread(target=feed, args=("raw/done", ws.path("done.txt")))]
    for t in feeders:
        t.start()
    for t in feeders:
        t.join()
    if errors:
        raise errors[0]
    for s in subs:
        s.wait()
    stamps = [t for name in ("req", "done1", "done2") for t in read_times(ws.path(f"ts.{name}"))]
    return max(stamps) - min(stamps)


def pipeline(ws, n, job_id):
    """The N-case job JOB_ID from job.submit to job.summary, as one
    subscriber stamps both. Returns seconds; BenchError unless the summary
    holds every case once."""
    out = ws.path("pipe.out")
    with open(out, "w") as f:
        sub = ws.spawn(sub_cmd(ws, "-q", "1", "--nodelay", "-t", "bench/job.submit", "-t", "bench/job.summary",
                               "-C", "2", "-F", "%U %t %p"), stdout=f)
    time.sleep(0.3)
    run(pub_cmd(ws, "-q", "1", "-t", "bench/job.submit", "-f", ws.path("job.json")))
    sub.wait()
    seen = {topic: (ts, payload) for ts, topic, payload in read_stamped(out)}
    if "bench/job.submit" not in seen or "bench/job.summary" not in seen:
        raise BenchError(f"no job.submit and job.summary of {job_id}")
    summary = json.loads(seen["bench/job.summary"][1])
    got = [summary.get("requestId"), len(summary.get("results", [])),
           len({r.get("caseId") for r in summary.get("results", [])})]
    if got != [job_id, n, n]:
        raise BenchError(f"summary of {job_id} incomplete: {json.dumps(got, separators=(',', ':'))}")
    return seen["bench/job.summary"][0] - seen["bench/job.submit"][0]


def jobs_case(ws, n, run_name):
    """One run of an N-case job through the pipeline and of the yardstick;
    returns (pipeline seconds, broker-alone seconds)."""
    job_id = f"job{n}-{run_name}"
    write_job(ws, n, job_id)
    raw_s = broker_alone(ws, n)
    return pipeline(ws, n, job_id), raw_s


def bench_jobs(ws, args):
    """jobs: a 1000-case job (ARGS.runs runs, medians) and a 100 000-case job
    through the four agents against the broker alone; prints times, cases/s,
    ratios and peak RSS, writes build/bench/jobs.json."""
    runs = args.runs
    b = ws.start_broker()
    print(f"broker: {b.uri}  runs of the 1000-case job: {runs}", flush=True)
    agents = {"dispatcher": start_agent(ws, "dispatcher", "mqpipe-dispatcher"),
              "counter": start_agent(ws, "counter", "mqpipe-counter"),
              "worker": start_agent(ws, "worker", "mqpipe-worker", "-i", "bench-worker", "--concurrency", "64"),
              "aggregator": start_agent(ws, "aggregator", "mqpipe-aggregator")}
    pipe, raw = [], []
    for r in range(1, runs + 1):
        p, s = jobs_case(ws, 1000, r)
        pipe.append(p)
        raw.append(s)
        print("  1000 cases, run %d: pipeline %.3f s  broker alone %.3f s" % (r, p, s), flush=True)
    p1k, r1k = median(pipe), median(raw)
    p100k, r100k = jobs_case(ws, 100000, "big")
    peaks = {name: peak_kb(p) for name, p in agents.items()}
    print()
    print("1000 cases     pipeline %.3f s (%6.0f cases/s)  broker alone %.3f s  ratio %.2f  (median of %d, target <= 2)"
          % (p1k, 1000 / p1k, r1k, p1k / r1k, runs))
    print("100000 cases   pipeline %.3f s (%6.0f cases/s)  broker alone %.3f s  ratio %.2f  (every case in the summary)"
          % (p100k, 100000 / p100k, r100k, p100k / r100k))
    print("memory         peak RSS dispatcher %.1f MB, counter %.1f MB, worker %.1f MB, aggregator %.1f MB"
          % tuple(mb(peaks[k]) for k in ("dispatcher", "counter", "worker", "aggregator")))
    write_result(ws.root, "jobs", {
        "runs": runs,
        "cases_1000": {"pipeline_s": p1k, "raw_s": r1k, "ratio": p1k / r1k},
        "cases_100000": {"pipeline_s": p100k, "raw_s": r100k, "ratio": p100k / r100k},
        "peak_rss_kb": peaks})
