#!/usr/bin/env python3
"""mqpipe installed the way a Debian admin does, under a real systemd.

Boots a fresh Debian 12 in systemd-nspawn (systemd as PID 1, a network
namespace of its own: everything talks over the container's loopback, no
host port is used), builds the .deb from the tree under test, copies it in,
runs README "## Install"'s ```sh blocks (between <!-- install:begin --> and
<!-- install:end -->) in order, and checks the result: every unit active
(Type=notify readiness), each agent's /var/lib/mqpipe-<agent> with its
database, the journal's priorities, a SIGKILL and a hang (SIGSTOP, the
watchdog) each recovered with every expected output of the sample traces,
the live page served, then the secure profile, then Prometheus.

The container's root comes from mmdebstrap (Debian's packages, the host's
apt sources) and is cached as a tarball in $MQPIPE_CT_CACHE
(/var/cache/mqpipe-test), keyed by the package list and the sources.

Exit 0 on success, 1 on a failed check; 0 with a "SKIP: ..." line when the
machine cannot run the container. SIGTERM (scripts/test's timeout) stops the
container and removes the work directory before exiting.
"""
import argparse
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CACHE = os.environ.get("MQPIPE_CT_CACHE", "/var/cache/mqpipe-test")
SUITE = "bookworm"
# Everything the container needs, installed from Debian's mirror when the
# rootfs is made (the container itself has no network): the .deb's runtime
# libraries, mosquitto, the tools the checks use, and Prometheus.
PACKAGES = sorted([
    "systemd", "systemd-sysv", "dbus", "mosquitto", "mosquitto-clients",
    "libpaho-mqtt1.3", "libcjson1", "libsqlite3-0", "libssl3", "python3",
    "curl", "sqlite3", "openssl", "prometheus", "prometheus-mqtt-exporter",
])
AGENTS = ["counter", "dispatcher", "worker", "aggregator", "ingest", "alerter"]
OUTPUT_TOPICS = ["success_rate", "job.summary", "dashboard.ready", "alerts/#",
                 "deadletter/#", "replies/#"]
CPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
T0 = time.monotonic()


class Skip(Exception):
    pass


class Fail(Exception):
    pass


def note(msg):
    print("-- [%3ds] %s" % (time.monotonic() - T0, msg), flush=True)


def wait_for(secs, pred, what):
    """Polls pred() every 0.2 s for secs seconds; raises Fail naming what."""
    end = time.monotonic() + secs
    while True:
        r = pred()
        if r:
            return r
        if time.monotonic() > end:
            raise Fail("timed out after %ds waiting for %s" % (secs, what))
        time.sleep(0.2)


# ---- the root file system ---------------------------------------------------

def apt_sources():
    """The host's Debian sources as one-line 'deb URI SUITE COMPONENTS'
    entries (deb822 .sources and classic .list files); others are left out,
    since only Debian's mirror serves the container's packages."""
    out = []
    files = ["/etc/apt/sources.list"]
    d = "/etc/apt/sources.list.d"
    if os.path.isdir(d):
        files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    for f in files:
        try:
            text = open(f).read()
        except OSError:
            continue
        if f.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    m = re.match(r"^([A-Za-z-]+):\s*(.*)$", line)
                    if m:
                        fields[m.group(1).lower()] = m.group(2).split()
                if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0] == "no":
                    continue
                for uri in fields.get("uris", []):
                    for suite in fields.get("suites", []):
                        out.append("deb %s %s %s" % (uri, suite, " ".join(fields.get("components", ["main"]))))
        elif f.endswith(".list"):
            for line in text.splitlines():
                line = re.sub(r"\[[^]]*\]", "", line.split("#")[0]).split()
                if len(line) >= 3 and line[0] == "deb":
                    out.append(" ".join(line))
    debian = [s for s in out if re.search(r"/debian(-security)?/?\s", s + " ") and SUITE in s]
    if not debian:
        raise Skip("no Debian %s source in /etc/apt/sources.list*" % SUITE)
    return debian


def rootfs_tarball():
    """The cached rootfs tarball, made with mmdebstrap when missing (under a
    lock, into a temporary file renamed into place)."""
    sources = apt_sources()
    key = hashlib.sha256(json.dumps([SUITE, PACKAGES, sources]).encode()).hexdigest()[:16]
    os.makedirs(CACHE, exist_ok=True)
    tar = os.path.join(CACHE, "rootfs-%s-%s.tar" % (SUITE, key))
    with open(os.path.join(CACHE, ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(tar):
            note("cached rootfs %s" % tar)
            return tar
        note("making the rootfs with mmdebstrap (once; cached as %s)" % tar)
        tmp = tar[:-len(".tar")] + ".part.tar"
        cmd = ["mmdebstrap", "--quiet", "--variant=minbase", "--format=tar", "--include=" + ",".join(PACKAGES),
               SUITE, tmp] + sources
        start = time.monotonic()
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise Fail("mmdebstrap failed:\n" + r.stdout[-3000:])
        os.rename(tmp, tar)
        note("rootfs made in %ds" % (time.monotonic() - start))
    return tar


def prepare_root(tar, root):
    """Unpacks the rootfs into root and makes it a booted-before system:
    a machine id (so systemd-firstboot's ConditionFirstBoot is false), a
    hostname, /etc/hosts and a locale; no apt sources; Debian's prometheus units, enabled by their
    packages, stay off until the Install section's monitoring step."""
    subprocess.run(["tar", "-C", root, "-xf", tar], check=True)
    with open(os.path.join(root, "etc/machine-id"), "w") as f:
        f.write(open("/proc/sys/kernel/random/uuid").read().strip().replace("-", "") + "\n")
    with open(os.path.join(root, "etc/hostname"), "w") as f:
        f.write("mqpipe-ct\n")
    with open(os.path.join(root, "etc/locale.conf"), "w") as f:
        f.write("LANG=C.UTF-8\n")
    with open(os.path.join(root, "etc/hosts"), "w") as f:  # as Debian's installer writes it
        f.write("127.0.0.1\tlocalhost\n127.0.1.1\tmqpipe-ct\n::1\tlocalhost ip6-localhost ip6-loopback\n")
    # The container has no network: its apt has no sources (everything it
    # needs is installed already), so README's apt-get update and install
    # work offline.
    open(os.path.join(root, "etc/apt/sources.list"), "w").close()
    d = os.path.join(root, "etc/apt/sources.list.d")
    for f in os.listdir(d) if os.path.isdir(d) else []:
        os.unlink(os.path.join(d, f))
    wants = os.path.join(root, "etc/systemd/system/multi-user.target.wants")
    for u in ("prometheus.service", "prometheus-mqtt-exporter.service"):
        p = os.path.join(wants, u)
        if os.path.lexists(p):
            os.unlink(p)


# ---- the container ----------------------------------------------------------

class Container:
    """A systemd-nspawn container booted on root; commands run inside it
    through nsenter into its PID 1's namespaces (no machined: --register=no)."""

    def __init__(self, root, log):
        self.root = root
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            ["systemd-nspawn", "--quiet", "--keep-unit", "--register=no", "--private-network",
             "--console=pipe", "-D", root, "--boot", "--", "systemd.firstboot=off"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        self.leader = None

    def find_leader(self):
        def leader():
            if self.proc.poll() is not None:
                raise Skip("systemd-nspawn could not boot a container (exit %d): %s" % (
                    self.proc.returncode, open(self.log.name).read()[-500:].strip()))
            try:
                kids = open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)).read().split()
            except OSError:
                return None
            for k in kids:
                try:
                    if open("/proc/%s/comm" % k).read().strip() == "systemd":
                        return int(k)
                except OSError:
                    pass
            return None
        self.leader = wait_for(60, leader, "the container's systemd")

    def run(self, script, check=True, timeout=120, env=None):
        """Runs a bash script inside the container as root; returns the
        CompletedProcess (stdout and stderr together); raises Fail when check
        and it exits non-zero."""
        e = ["PATH=" + CPATH, "HOME=/root", "LANG=C.UTF-8", "TERM=dumb", "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0"]
        for k, v in (env or {}).items():
            e.append("%s=%s" % (k, v))
        cmd = ["nsenter", "-a", "-t", str(self.leader), "--", "env", "-i"] + e + [
            "bash", "-o", "pipefail", "-c", script]
        try:
            r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               timeout=timeout, cwd="/")
        except subprocess.TimeoutExpired:
            raise Fail("timed out after %ds in the container: %s" % (timeout, script))
        if check and r.returncode != 0:
            raise Fail("in the container, exit %d: %s\n%s" % (r.returncode, script, r.stdout[-3000:]))
        return r

    def out(self, script, **kw):
        return self.run(script, **kw).stdout.strip()

    def path(self, p):
        """The host's path of the container's file p."""
        return os.path.join(self.root, p.lstrip("/"))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # nspawn asks the container's systemd to halt
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# ---- the package and the README ---------------------------------------------

def build_debs(work):
    """Builds the package(s) with dpkg-buildpackage in a copy of the tree
    under test (its files as git sees them, plus the live page's bundle,
    which is not committed): scripts/package does that (into build/deb/,
    reusing an unchanged tree's build, and runs lintian); returns the .deb
    paths."""
    pkg = os.path.join(ROOT, "scripts", "package")
    if os.path.exists(pkg):
        note("scripts/package (dpkg-buildpackage -b -us -uc in a copy of the tree, lintian)")
        start = time.monotonic()
        r = subprocess.run([pkg], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise Fail("scripts/package failed (exit %d): %s" % (r.returncode, r.stderr[-3000:]))
        debs = [l for l in r.stdout.split() if l.endswith(".deb")]
        if not debs:
            raise Fail("scripts/package made no .deb")
        note("%s in %ds" % (", ".join(os.path.basename(d) for d in debs), time.monotonic() - start))
        return debs
    src = os.path.join(work, "src", "mqpipe")
    os.makedirs(src)
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           check=True, stdout=subprocess.PIPE).stdout.split(b"\0")
    extra = ["broker-config/www/vendor/mqtt.min.js"]
    for f in [x.decode() for x in files if x] + extra:
        s = os.path.join(ROOT, f)
        if not os.path.isfile(s):
            continue
        os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
        shutil.copy2(s, os.path.join(src, f))
    if not os.path.isdir(os.path.join(src, "debian")):
        raise Fail("the tree has no debian/ directory: nothing to install")
    r = subprocess.run(["dpkg-checkbuilddeps"], cwd=src, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise Fail("build dependencies missing on this machine (scripts/bootstrap): " + r.stdout.strip())
    note("dpkg-buildpackage -b -us -uc in a copy of the tree")
    start = time.monotonic()
    env = dict(os.environ, DEB_BUILD_OPTIONS="parallel=%d nocheck" % (os.cpu_count() or 2))
    r = subprocess.run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise Fail("dpkg-buildpackage failed:\n" + r.stdout[-3000:])
    debs = sorted(os.path.join(work, "src", f) for f in os.listdir(os.path.join(work, "src"))
                  if f.endswith(".deb"))
    if not debs:
        raise Fail("dpkg-buildpackage made no .deb")
    note("built %s in %ds" % (", ".join(os.path.basename(d) for d in debs), time.monotonic() - start))
    return debs


def install_blocks():
    """README "## Install"'s ```sh blocks between the install markers, in
    order, each as (heading above it, text)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    m = re.search(r"<!-- install:begin -->(.*?)<!-- install:end -->", text, re.S)
    if not m:
        raise Fail("README.md has no <!-- install:begin --> ... <!-- install:end --> section")
    blocks, heading = [], ""
    for part in re.finditer(r"^(#{2,4} [^\n]*)$|^```sh\n(.*?)^```", m.group(1), re.M | re.S):
        if part.group(1):
            heading = part.group(1)
        else:
            blocks.append((heading, part.group(2)))
    if not blocks:
        raise Fail("README's install section has no ```sh block")
    return blocks


def block_kind(heading, body, before):
    """Which checks a block leads to: build (run on the host: the test has
    built the package already), secure (it sets the secure profile up),
    monitor (it configures Prometheus), shards (it starts shard instances),
    or else the kind of the block before it (a check of the step above; the
    first: dev)."""
    if "dpkg-buildpackage" in body or "scripts/package" in body:
        return "build"
    h = heading.lower()
    if "/etc/mqpipe/shards" in body:
        return "shards"
    if "monitor" in h or "prometheus" in h or "prometheus.yml" in body or "mqtt-exporter.yaml" in body:
        return "monitor"
    if "secure" in h or "secure/setup" in body or "mqpipe-secure.conf" in body:
        return "secure"
    return before or "dev"


# ---- the checks ---------------------------------------------------------------

class System:
    """The checks, on a booted container with the package copied in."""

    def __init__(self, ct, work):
        self.ct = ct
        self.work = work
        self.phase = 0
        self.publisher = "mosquitto_pub -q 1"  # the development profile: anonymous on loopback

    def units(self):
        """The mqpipe units systemd knows of (loaded), by name."""
        out = self.ct.out("systemctl list-units --all --plain --no-legend --type=service 'mqpipe-*' | awk '{print $1}'")
        return [u for u in out.split() if u.endswith(".service")]

    def show(self, unit, prop):
        return self.ct.out("systemctl show -p %s --value %s" % (prop, unit))

    def check_active(self):
        """Every agent has an active unit: Type=notify, so active means the
        agent told systemd READY=1 (it is online)."""
        def all_active():
            us = self.units()
            states = {u: self.show(u, "ActiveState") for u in us}
            if us and all(s == "active" for s in states.values()):
                return us
            self.last_states = states
            return None
        try:
            us = wait_for(60, all_active, "every mqpipe unit active")
        except Fail:
            raise Fail("units not active: %s\n%s" % (self.last_states, self.ct.out(
                "systemctl status --no-pager 'mqpipe-*' | tail -40", check=False)))
        for a in AGENTS:
            if not [u for u in us if re.match(r"mqpipe-%s(@[^.]+)?\.service$" % a, u)]:
                raise Fail("no unit of the %s: %s" % (a, us))
        for u in us:
            t = self.show(u, "Type")
            if t != "notify":
                raise Fail("%s is Type=%s, not notify" % (u, t))
        note("active (Type=notify, READY=1 sent): %s" % " ".join(us))
        return us

    def check_state_dirs(self, units):
        """DynamicUser + StateDirectory: /var/lib/<dir> links to
        /var/lib/private/<dir>, owned by the unit's dynamic user, holding the
        agent's SQLite database."""
        for u in units:
            d = self.show(u, "StateDirectory")
            if not d.startswith("mqpipe-"):
                raise Fail("%s: StateDirectory=%r" % (u, d))
            pid = self.show(u, "MainPID")
            uid = self.ct.out("awk '/^Uid:/ {print $2}' /proc/%s/status" % pid)
            dyn = self.show(u, "DynamicUser")
            link = self.ct.out("readlink /var/lib/%s" % d, check=False)
            owner = self.ct.out("stat -L -c %%u /var/lib/%s" % d)
            dbs = self.ct.out("ls /var/lib/%s/ | grep '\\.db$' || true" % d).split()
            if dyn != "yes" or link != "private/" + d or owner != uid or int(uid) < 61184 or not dbs:
                raise Fail("%s: DynamicUser=%s, /var/lib/%s -> %r owned by %s, agent uid %s, databases %s" % (
                    u, dyn, d, link, owner, uid, dbs))
            tables = self.ct.out("sqlite3 /var/lib/%s/%s 'select count(*) from sqlite_master'" % (d, dbs[0]))
            if int(tables) == 0:
                raise Fail("%s: /var/lib/%s/%s has no tables" % (u, d, dbs[0]))
        note("each agent's state in /var/lib/mqpipe-<agent> (DynamicUser uid, its database)")

    def journal(self, unit, since=""):
        out = self.ct.out("journalctl -q -o json -u %s %s" % (unit, since))
        return [json.loads(l) for l in out.splitlines() if l.startswith("{")]

    def check_journal(self, units):
        """Each agent's lines are in the journal with their priorities: its
        start at info (6); a bad message makes the counter's dead-letter
        warning (4)."""
        for u in units:
            pid = self.show(u, "MainPID")
            lines = [j for j in self.journal(u) if j.get("_PID") == pid]
            if not [j for j in lines if j.get("PRIORITY") == "6" and "online" in str(j.get("MESSAGE"))]:
                raise Fail("%s: no info (PRIORITY 6) line saying online in the journal: %s" % (u, lines[-5:]))
        self.ct.run("mosquitto_pub -q 1 -t weekly_diagnostic -m 'not json (mqpipe-ct)'")

        def warned():
            return [j for j in self.journal("mqpipe-counter")
                    if j.get("PRIORITY") == "4" and "deadletter" in str(j.get("MESSAGE"))
                    and "weekly_diagnostic" in str(j.get("MESSAGE"))]
        w = wait_for(30, warned, "the counter's dead-letter warning (PRIORITY 4) in the journal")
        note("journal: every agent's start at PRIORITY 6, the dead letter at 4: %s" % w[-1]["MESSAGE"])

    def traces(self):
        """The installed sample traces and their expected outputs."""
        out = self.ct.out("find /usr/share -name fleet.jsonl -path '*mqpipe*' | head -1")
        if not out:
            raise Fail("the package has no sample traces (fleet.jsonl under /usr/share)")
        d = os.path.dirname(out)
        names = sorted(f[:-6] for f in os.listdir(self.ct.path(d)) if f.endswith(".jsonl"))
        want = []
        for n in names:
            want += open(self.ct.path("%s/%s.expected" % (d, n))).read().splitlines()
        return d, names, sorted(want)

    def start_recorder(self):
        """mqpipe-record of every output, as a transient unit in the
        container, its session kept; returns its output file."""
        self.phase += 1
        out = "/root/ct/out-%d.jsonl" % self.phase
        topics = " ".join("-t '%s'" % t for t in OUTPUT_TOPICS)
        unit = "ct-record-%d" % self.phase
        self.ct.run("mkdir -p /root/ct && systemd-run -q --unit=%s /usr/bin/mqpipe-record -c -i mqpipe-ct-%d %s -o %s"
                    % (unit, self.phase, topics, out))
        wait_for(30, lambda: "recording" in self.ct.out("journalctl -q -u %s" % unit, check=False),
                 "the recorder")
        return unit, out

    def outputs(self, out):
        p = self.ct.path(out)
        if not os.path.exists(p):
            return []
        r = subprocess.run([os.path.join(ROOT, "scripts/traces"), "normalize", p], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, check=True)
        return r.stdout.splitlines()

    def replay_with(self, fault, what):
        """Replays every sample trace at its recorded pace (fleet: 6 s) with
        the installed mqpipe-replay; 2 s in, runs fault (a shell command) in
        the container; returns when the replays end."""
        d, names, _ = self.traces()
        replays = " ".join("mqpipe-replay %s/%s.jsonl 2>>/root/ct/replay.err & " % (d, n) for n in names)
        self.ct.run("set -e; %s sleep 2; %s; wait" % (replays, fault),
                    timeout=120)
        note("replayed %s, %s meanwhile" % (" ".join(names), what))

    def check_outputs(self, out, want, what):
        """Every expected output arrived; a repeat of an expected output is
        allowed (at-least-once across a crash) and reported."""
        def enough():
            return len(set(self.outputs(out))) >= len(set(want))
        try:
            wait_for(120, enough, "every expected output")
        except Fail:
            pass
        time.sleep(1)
        got = self.outputs(out)
        missing = sorted(set(want) - set(got))
        extra = sorted(set(got) - set(want))
        if missing or extra:
            raise Fail("%s: %d expected outputs missing, %d unexpected:\n%s" % (
                what, len(missing), len(extra), "\n".join(["< " + l for l in missing[:10]] +
                                                          ["> " + l for l in extra[:10]])))
        note("%s: all %d expected outputs (%d repeats)" % (what, len(want), len(got) - len(want)))

    def restarts(self, unit):
        return int(self.show(unit, "NRestarts") or 0)

    def fresh_state(self, units):
        """Stops the agents and empties their state, so the traces replay
        into a fresh pipeline again."""
        self.ct.run("systemctl stop %s && rm -rf %s" % (" ".join(units), " ".join(
            "/var/lib/private/%s" % self.show(u, "StateDirectory") for u in units)))
        self.ct.run("systemctl start %s" % " ".join(units))
        self.check_active()

    def check_sigkill(self):
        """SIGKILL the counter mid-replay: Restart=on-failure brings it back
        and every expected output arrives."""
        _, _, want = self.traces()
        unit, out = self.start_recorder()
        before = self.restarts("mqpipe-counter")
        pid = self.show("mqpipe-counter", "MainPID")
        self.replay_with("systemctl kill -s KILL mqpipe-counter", "SIGKILL to mqpipe-counter")
        wait_for(30, lambda: self.restarts("mqpipe-counter") > before and
                 self.show("mqpipe-counter", "ActiveState") == "active", "the counter restarted")
        if self.show("mqpipe-counter", "MainPID") == pid:
            raise Fail("the counter has the same PID after SIGKILL")
        self.check_outputs(out, want, "after SIGKILL")
        self.ct.run("systemctl stop %s" % unit)

    def check_watchdog(self, units):
        """SIGSTOP the counter mid-replay: the watchdog (shortened to 5 s by a
        test drop-in) kills it, Restart= brings it back, every output
        arrives."""
        self.ct.run("mkdir -p /etc/systemd/system/mqpipe-counter.service.d && "
                    "printf '[Service]\\nWatchdogSec=5\\n' >/etc/systemd/system/mqpipe-counter.service.d/ct-watchdog.conf"
                    " && systemctl daemon-reload")
        self.fresh_state(units)
        _, _, want = self.traces()
        unit, out = self.start_recorder()
        before = self.restarts("mqpipe-counter")
        self.replay_with("systemctl kill -s STOP mqpipe-counter", "SIGSTOP to mqpipe-counter")
        wait_for(60, lambda: self.restarts("mqpipe-counter") > before and
                 self.show("mqpipe-counter", "ActiveState") == "active", "the watchdog's restart of the counter")
        wd = [j["MESSAGE"] for j in self.journal("mqpipe-counter") if "atchdog" in str(j.get("MESSAGE"))]
        if not wd:
            raise Fail("no watchdog line in the counter's journal")
        note("systemd: %s" % wd[-1])
        self.check_outputs(out, want, "after the hang")
        self.ct.run("systemctl stop %s && rm -r /etc/systemd/system/mqpipe-counter.service.d/ct-watchdog.conf"
                    " && systemctl daemon-reload" % unit)

    def check_page(self):
        """The installed broker serves the live page and its MQTT bundle."""
        page = self.ct.out("curl -fsS http://127.0.0.1:9001/")
        if "<html" not in page.lower():
            raise Fail("http://127.0.0.1:9001/ is not a page: %s" % page[:200])
        js = self.ct.out("curl -fsS http://127.0.0.1:9001/vendor/mqtt.min.js | wc -c")
        if int(js) < 10000:
            raise Fail("vendor/mqtt.min.js is %s bytes" % js)
        note("the broker serves the live page (%d bytes) and vendor/mqtt.min.js (%s bytes)" % (len(page), js))

    def check_dev(self):
        units = self.check_active()
        self.check_state_dirs(units)
        self.check_journal(units)
        self.check_page()
        self.fresh_state(units)  # whatever README's own checks left there
        self.check_sigkill()
        self.check_watchdog(units)

    def check_secure(self):
        """Under the secure profile: every unit active on TLS with its own
        identity; the publisher's message is processed (the reader sees its
        success rate); an anonymous client is refused."""
        units = self.check_active()
        for u in units:
            env = self.show(u, "Environment")
            if "ssl://" not in env:
                raise Fail("%s does not use the secure broker: %s" % (u, env))
        s = "/etc/mqpipe/secure"
        tls = "-h 127.0.0.1 -p 8883 --cafile %s/ca.crt" % s
        self.ct.run("systemd-run -q --unit=ct-secure-sub bash -c 'mosquitto_sub %s -u mqpipe-reader "
                    "-P \"$(cat %s/mqpipe-reader.password)\" -q 1 -t success_rate -C 1 -W 60 >/root/ct/secure.out'"
                    % (tls, s))
        time.sleep(1)
        pub = "mosquitto_pub %s -u mqpipe-publisher -P \"$(cat %s/mqpipe-publisher.password)\" -q 1" % (tls, s)
        self.publisher = pub
        self.ct.run("%s -t recv_message -m '{\"moduleId\":\"ct-secure\",\"timestamp\":1767225700}' && "
                    "%s -t weekly_diagnostic -m '{\"moduleid\":\"ct-secure\",\"timestamp\":1767311999,\"attempts\":2}'"
                    % (pub, pub))
        got = wait_for(60, lambda: "ct-secure" in open(self.ct.path("/root/ct/secure.out")).read()
                       if os.path.exists(self.ct.path("/root/ct/secure.out")) else None,
                       "the reader's success_rate for the publisher's messages")
        note("secure: the publisher's messages processed: %s" % open(self.ct.path("/root/ct/secure.out")).read().strip())
        r = self.ct.run("mosquitto_pub %s -q 1 -t recv_message -m x" % tls, check=False)
        if r.returncode == 0 or "not authori" not in r.stdout.lower():
            raise Fail("an anonymous client was not refused on 8883: exit %d %s" % (r.returncode, r.stdout))
        note("secure: anonymous refused (%s)" % r.stdout.strip())
        return got

    def check_monitor(self):
        """Prometheus, configured as the Install section says, answers a
        query on the counter's message rate (README "Monitoring with
        Prometheus"), while messages keep arriving."""
        q = 'rate(mqpipe_messages_in_total{client_id="mqpipe-counter"}[1m])'
        feed = self.ct.path("/root/ct/feed.sh")
        os.makedirs(os.path.dirname(feed), exist_ok=True)
        with open(feed, "w") as f:
            f.write("for i in $(seq 1 150); do %s -t recv_message -m "
                    "\"{\\\"moduleId\\\":\\\"ct-prom\\\",\\\"timestamp\\\":$((1767225600 + i))}\"; sleep 1; done\n"
                    % self.publisher)
        self.ct.run("systemd-run -q --unit=ct-prom-feed bash /root/ct/feed.sh")

        def answer():
            r = self.ct.run("curl -fsS --get --data-urlencode %s http://127.0.0.1:9090/api/v1/query"
                            % shquote("query=" + q), check=False)
            if r.returncode != 0:
                return None
            res = json.loads(r.stdout)["data"]["result"]
            return [x for x in res if float(x["value"][1]) > 0] or None
        res = wait_for(150, answer, "Prometheus' answer to %s above 0" % q)
        self.ct.run("systemctl stop ct-prom-feed", check=False)
        note("Prometheus: %s = %s" % (q, res[0]["value"][1]))

    def check_shards(self):
        """Two shards' template instances, mqpipe-counter@0 and @1, on the
        secure profile: active, each online under its own identity with its
        shard in its retained status, each with its own state files in the
        counter's state directory beside the S = 1 counter's, and an event
        on shard 1's topic counted by its owner (README "Under systemd")."""
        units = ["mqpipe-counter@0.service", "mqpipe-counter@1.service"]
        wait_for(60, lambda: all(self.show(u, "ActiveState") == "active" for u in units),
                 "mqpipe-counter@0 and @1 active")
        s = "/etc/mqpipe/secure"
        tls = "-h 127.0.0.1 -p 8883 --cafile %s/ca.crt" % s
        reader = "-u mqpipe-reader -P \"$(cat %s/mqpipe-reader.password)\"" % s
        st = self.ct.out("mosquitto_sub %s %s -t 'mqpipe/status/#' -v -W 3 || true" % (tls, reader))
        got = {}
        for line in st.splitlines():
            topic, _, body = line.partition(" ")
            if topic.startswith("mqpipe/status/"):
                got[topic] = json.loads(body)
        for k in (0, 1):
            b = got.get("mqpipe/status/mqpipe-counter-%d" % k, {})
            if b.get("state") != "online" or b.get("shards") != 2 or b.get("shard") != k:
                raise Fail("mqpipe-counter@%d: status %s (all: %s)" % (k, b, st))
        files = self.ct.out("ls /var/lib/mqpipe-counter/").split()
        for f in ("counter.db", "counter-0.db", "counter-1.db"):
            if f not in files:
                raise Fail("/var/lib/mqpipe-counter/ lacks %s: %s" % (f, files))
        # ct-shard-1 is of shard 1 of 2 (mqpipe-shard --shards 2).
        key = "ct-shard-1"
        k = self.ct.out("mqpipe-shard --shards 2 %s" % key)
        self.ct.run("systemd-run -q --unit=ct-shard-sub bash -c 'mosquitto_sub %s %s -q 1 -t success_rate "
                    "-C 1 -W 60 >/root/ct/shard.out'" % (tls, reader))
        time.sleep(1)
        self.ct.run("%s -t shard/%s/weekly_diagnostic -m '{\"moduleid\":\"%s\",\"timestamp\":1767311999,"
                    "\"attempts\":2}'" % (self.publisher, k, key))
        out = self.ct.path("/root/ct/shard.out")
        wait_for(30, lambda: key in open(out).read() if os.path.exists(out) else None,
                 "the success_rate of shard %s's event" % k)
        owner = self.ct.out("sqlite3 /var/lib/mqpipe-counter/counter-%s.db .dump | grep -c %s || true" % (k, key))
        if owner == "0":
            raise Fail("counter-%s.db does not hold %s" % (k, key))
        note("shards: mqpipe-counter@0 and @1 online with shards 2, their files in /var/lib/mqpipe-counter, "
             "shard %s's event counted by its owner" % k)


def shquote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def run(args):
    for tool in ("systemd-nspawn", "nsenter", "mmdebstrap", "dpkg-buildpackage", "jq"):
        if not shutil.which(tool):
            raise Skip("%s is not installed (Debian packages systemd-container, util-linux, mmdebstrap, "
                       "dpkg-dev, jq)" % tool)
    if os.geteuid() != 0:
        raise Skip("systemd-nspawn needs root")
    tar = rootfs_tarball()
    if args.rootfs_only:
        return
    work = tempfile.mkdtemp(prefix="mqpipe-ct.", dir="/var/tmp")
    ct = None
    try:
        debs = build_debs(work)
        blocks = install_blocks()
        root = os.path.join(work, "root")
        os.makedirs(root)
        prepare_root(tar, root)
        os.makedirs(os.path.join(root, "root/debs"))
        for d in debs:
            shutil.copy2(d, os.path.join(root, "root/debs", os.path.basename(d)))
        note("booting Debian %s under systemd-nspawn" % SUITE)
        ct = Container(root, os.path.join(work, "nspawn.log"))
        ct.find_leader()
        # Until PID 1 has set up its private socket, systemctl cannot connect.
        wait_for(60, lambda: ct.run("test -S /run/systemd/private", check=False).returncode == 0,
                 "the container's systemd to listen")
        state = ct.run("timeout 90 systemctl is-system-running --wait", check=False).stdout.strip()
        if state != "running":
            raise Fail("the container's systemd is %s: %s" % (state, ct.out("systemctl --failed --no-pager", check=False)))
        note("systemd %s is PID 1, the system is running" % ct.out("systemctl --version | head -1 | cut -d' ' -f2"))
        sysm = System(ct, work)
        checks = {"dev": sysm.check_dev, "secure": sysm.check_secure, "monitor": sysm.check_monitor,
                  "shards": sysm.check_shards}
        kind_before = None
        done = []
        for n, (heading, body) in enumerate(blocks, 1):
            kind = block_kind(heading, body, kind_before)
            if kind == "build":
                note("README block %d: built above, on the host" % n)
                continue
            if kind_before and kind != kind_before and kind_before in checks and kind_before not in done:
                checks[kind_before]()
                done.append(kind_before)
            kind_before = kind
            note("README block %d (%s): %s" % (n, kind, body.strip().splitlines()[0][:70]))
            # As README says: root, in a directory holding the .deb files.
            r = ct.run("cd /root/debs && set -ex\n" + body, check=False, timeout=180)
            if r.returncode != 0:
                raise Fail("README block %d failed (exit %d):\n%s" % (n, r.returncode, r.stdout[-3000:]))
        if kind_before in checks and kind_before not in done:
            checks[kind_before]()
            done.append(kind_before)
        for k in ("dev", "secure", "monitor", "shards"):
            if k in done:
                continue
            raise Fail("README's install section has no %s step to check" % k)
    finally:
        if ct:
            ct.stop()
        if args.keep:
            print("kept %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the work directory (the rootfs, the build)")
    ap.add_argument("--rootfs-only", action="store_true",
                    help="only make (or find) the cached rootfs, e.g. ahead of a CI run")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the finally clauses stop the container
    try:
        run(args)
    except Skip as e:
        print("SKIP: %s" % e)
        return 0
    except Fail as e:
        print("FAIL: %s" % e)
        return 1
    except (subprocess.CalledProcessError, OSError) as e:
        print("FAIL: %s" % e)
        return 1
    note("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
