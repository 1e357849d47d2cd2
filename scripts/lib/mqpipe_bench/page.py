"""The page benchmark: the live page in headless chromium under load
(test/browser/bench.mjs), against a plain mosquitto_sub."""
import json
import os
import shutil
import subprocess

from .fixture import BenchError, web_template
from .measure import jq_num, jq_round

RATE, MODULES = 2000, 10000
EX_UNAVAILABLE = 69


class Unavailable(BenchError):
    """A tool the benchmark needs is missing (exit 69)."""


def bench_page(ws, args):
    """page: the page with 10 000 modules while mqpipe-replay offers
    ARGS.events success_rate messages at 2000 msg/s; prints both rates, their
    ratio, frame rate, longest gap and long tasks from build/bench/page.json
    (which bench.mjs writes). Unavailable without chromium."""
    if shutil.which("chromium") is None:
        raise Unavailable("scripts/bench page: needs chromium (scripts/bootstrap installs it)")
    events = args.events
    template, web = web_template(ws.root, ws.dir)
    b = ws.start_broker(template)
    print(f"broker: {b.uri}  page: http://127.0.0.1:{web}/  modules: {MODULES}  messages: {events} at {RATE} msg/s",
          flush=True)
    out = os.path.join(ws.root, "build", "bench", "page.json")
    with open(out, "w") as f:
        subprocess.run(["node", os.path.join(ws.root, "test", "browser", "bench.mjs"), str(web), str(b.port), ws.bin,
                        ws.dir, str(RATE), str(events // RATE), str(MODULES)], stdout=f, check=True,
                       stdin=subprocess.DEVNULL)
    p = json.load(open(out))
    r = lambda x: jq_num(jq_round(x))  # noqa: E731  (jq's round, printed as jq prints it)
    r2 = lambda x: jq_num(jq_round(x * 100) / 100)  # noqa: E731  (to hundredths)
    print(f"page       {r(p['page_mps'])} msg/s (all {jq_num(p['messages'])} in {r2(p['page_s'])} s)")
    print(f"yardstick  {r(p['yardstick_mps'])} msg/s (mosquitto_sub, the same messages)")
    print(f"ratio      {r2(p['page_mps'] / p['yardstick_mps'])}  (target >= 0.95: the page keeps up)")
    print(f"frames     {r(p['fps'])} per second, longest gap {r(p['max_frame_gap_ms'])} ms; {jq_num(p['long_tasks'])} "
          f"long tasks (> 50 ms), the longest {r(p['longest_task_ms'])} ms")
