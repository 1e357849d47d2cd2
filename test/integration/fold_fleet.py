#!/usr/bin/env python3
"""A module fleet in rounds for t_counter_fold, and its success rates computed
independently of the C code, by the README's rule over every stored message
(no folding):

    fold_fleet.py SEED MODULES ROUNDS DIR

Each round is a simulated week, published in two phases (files in DIR):

  rN.a.recv, rN.a.diag   the week's messages of every module (some twice,
                         both id spellings), then its diagnostic (some twice,
                         some with other attempts: the first wins; about one
                         in five after a reset);
  rN.b.recv, rN.b.diag   still within --dedup-horizon: late messages of the
                         week (after its diagnostic) and, for some modules, a
                         late diagnostic inside the week, which splits its
                         window (its attempts sometimes lower: a reset);
  rN.c.recv, rN.c.diag   once the week is sealed: a repeat of one of its
                         messages, a new message inside it and a new
                         diagnostic inside it (each a dead letter), and a
                         repeated diagnostic (ignored).

It writes DIR/expected (module timestamp received attempts rate, one line per
new diagnostic), DIR/rN.rates (how many rates round N publishes), DIR/dead
(how many dead letters in all) and DIR/stored (the distinct messages kept).
"""
import os
import random
import sys


def spell(rng, module):
    return "moduleId" if rng.random() < 0.5 else "moduleid"


def recv_line(rng, module, ts):
    return '{"%s":"%s","timestamp":%d}' % (spell(rng, module), module, ts)


def diag_line(rng, module, ts, attempts):
    return '{"%s":"%s","timestamp":%d,"attempts":%d}' % (spell(rng, module), module, ts, attempts)


class Model:
    """Today's rule: a diagnostic counts the module's stored messages in
    (the diagnostic before the most recent reset, its timestamp]."""

    def __init__(self):
        self.msgs = {}   # module -> set of timestamps
        self.diags = {}  # module -> {timestamp: attempts}
        self.out = []

    def recv(self, m, ts):
        self.msgs.setdefault(m, set()).add(ts)

    def diag(self, m, ts, attempts):
        diags = self.diags.setdefault(m, {})
        if ts in diags:
            return False  # a repeat: the first one wins
        later, lower = attempts, -1
        for e in sorted((t for t in diags if t < ts), reverse=True):
            if later < diags[e]:
                lower = e
                break
            later = diags[e]
        diags[ts] = attempts
        received = sum(1 for t in self.msgs.get(m, ()) if lower < t <= ts)
        if attempts == 0:
            rate = "null"
        else:
            rate = "%.6f" % min(100.0, 100.0 * received / attempts)
        self.out.append("%s %d %d %d %s" % (m, ts, received, attempts, rate))
        return True


def main():
    seed, modules, rounds, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    rng = random.Random(seed)
    model = Model()
    dead = 0
    names = ["fold-%04d" % i for i in range(modules)]
    clock = {m: 1_700_000_000 + rng.randrange(100_000) for m in names}
    attempts = {m: 0 for m in names}
    week_start = {}
    last_diag = {}
    for r in range(rounds):
        files = {k: [] for k in ("a.recv", "a.diag", "b.recv", "b.diag", "c.recv", "c.diag")}
        rates = 0
        for m in names:
            week_start[m] = clock[m]
            if r > 0 and rng.random() < 0.2:
                attempts[m] = 0  # a reset
            n = rng.randrange(0, 16)
            for _ in range(n):
                clock[m] += 1 + rng.randrange(50)
                line = recv_line(rng, m, clock[m])
                files["a.recv"].append(line)
                model.recv(m, clock[m])
                if rng.random() < 0.1:
                    files["a.recv"].append(recv_line(rng, m, clock[m]))  # a repeat
            attempts[m] += n + rng.randrange(6)
            clock[m] += 0 if rng.random() < 0.2 else 1 + rng.randrange(30)  # a tie with a message
            ts = clock[m]
            files["a.diag"].append(diag_line(rng, m, ts, attempts[m]))
            rates += model.diag(m, ts, attempts[m])
            if rng.random() < 0.1:
                other = attempts[m] + (7 if rng.random() < 0.5 else 0)
                files["a.diag"].append(diag_line(rng, m, ts, other))  # the first wins
            last_diag[m] = (ts, attempts[m])
            clock[m] += 1
        # Phase b, within the horizon: each module's late events, in order.
        for m in names:
            ts, _ = last_diag[m]
            if rng.random() < 0.3 and ts > week_start[m]:
                late = rng.randrange(week_start[m], ts + 1)
                files["b.recv"].append(recv_line(rng, m, late))
                model.recv(m, late)
            if rng.random() < 0.25 and ts - week_start[m] >= 2:
                mid = rng.randrange(week_start[m] + 1, ts)
                if mid not in model.diags[m]:
                    a = rng.randrange(0, attempts[m] + 5)
                    files["b.diag"].append(diag_line(rng, m, mid, a))
                    rates += model.diag(m, mid, a)
        # Phase c, once the week is sealed: dead letters, and one repeat.
        for m in names:
            ts, a = last_diag[m]
            if rng.random() < 0.15:
                week = sorted(t for t in model.msgs.get(m, ()) if week_start[m] <= t <= ts)
                if week:
                    files["c.recv"].append(recv_line(rng, m, rng.choice(week)))  # an old repeat
                    dead += 1
            if rng.random() < 0.15:
                files["c.recv"].append(recv_line(rng, m, rng.randrange(week_start[m], ts + 1)))
                dead += 1
            if rng.random() < 0.15 and ts > week_start[m]:
                t = rng.randrange(week_start[m], ts)
                if t not in model.diags[m]:
                    files["c.diag"].append(diag_line(rng, m, t, a))
                    dead += 1
            if rng.random() < 0.15:
                files["c.diag"].append(diag_line(rng, m, ts, a + 1))  # a repeat: ignored
        for k, lines in files.items():
            with open(os.path.join(out, "r%d.%s" % (r, k)), "w") as f:
                f.write("".join(line + "\n" for line in lines))
        with open(os.path.join(out, "r%d.rates" % r), "w") as f:
            f.write("%d\n" % rates)
    with open(os.path.join(out, "expected"), "w") as f:
        f.write("".join(line + "\n" for line in sorted(model.out)))
    with open(os.path.join(out, "dead"), "w") as f:
        f.write("%d\n" % dead)
    with open(os.path.join(out, "stored"), "w") as f:
        f.write("%d\n" % sum(len(s) for s in model.msgs.values()))


if __name__ == "__main__":
    main()
