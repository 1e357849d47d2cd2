"""What the benchmarks compute from what they observe: medians, percentiles,
rates, peak memory, and the results files."""
import json
import math
import os
import statistics
import time


def now():
    """Wall-clock seconds (the same clock as mosquitto_sub's %U stamps)."""
    return time.time()


def median(values):
    """The median of VALUES; of an even count, the lower middle one."""
    return statistics.median_low(values)


def rank(values, q):
    """The Q-quantile (0 < Q <= 1) of VALUES by rank: the int(n*Q + 0.5)-th
    smallest (1-based); None for no values."""
    v = sorted(values)
    if not v:
        return None
    return v[min(len(v), max(1, int(len(v) * q + 0.5))) - 1]


def pct(values, p):
    """The P-th percentile (0-100) of VALUES, nearest rank over n-1 (the
    dashboard benchmark's definition)."""
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def rate(count, t0, t1):
    """COUNT per second between T0 and T1."""
    return count / (t1 - t0)


def peak_kb(proc):
    """The peak resident set (VmHWM, kB) of the live process PROC (a Popen);
    0 when it has ended."""
    try:
        with open(f"/proc/{proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def mb(kb):
    """Kilobytes as megabytes."""
    return kb / 1024


def jq_round(x):
    """jq's round: half away from zero."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def jq_num(x):
    """A number as jq prints it (2.0 as 2, 2.5 as 2.5)."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e17:
        return str(int(x))
    return str(x)


def write_result(root, name, result):
    """Writes RESULT as build/bench/NAME.json under ROOT."""
    out = os.path.join(root, "build", "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")
