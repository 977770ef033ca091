#!/usr/bin/env python3
"""postern's SMTP acceptance benchmark, beside Postfix in the same run.

A benchmark, not a timed test: it prints a table of medians and exits 0
unless the benchmark itself could not run.  Python 3 standard library only.
Run it through smtp_accept.sh (as root), which installs Postfix's package
when it is missing; see tests/bench/README.md.

What it does, following shared BENCH-NOTES.md so the figures compare:

* a separate Postfix instance in a temporary directory (its own
  config_directory, queue_directory and data_directory), smtpd on
  127.0.0.1:HIGHPORT only, TLS off, one virtual domain example.test
  delivered by virtual(8) into one Maildir owned by a dedicated numeric
  uid, smtpd_relay_restrictions = permit_mynetworks,
  reject_unauth_destination, logging to a file through postlogd, and the
  shipped defaults for everything else (fsync behaviour included);
* a postern dev instance (`postern init --dev`) on another port base;
* smtp-sink on a third port as the protocol ceiling;
* for 4 KB messages at 1, 10 and 50 sessions, smtp-source against postern
  and Postfix alternately (postern, Postfix, postern, Postfix, ...), each
  run measuring:
    - messages/s accepted: N / wall time of smtp-source (every 250 in);
    - server CPU seconds per message: utime+stime of the server's whole
      process tree from /proc (every live process under its master, plus
      the cutime+cstime of each, which holds every child already reaped),
      sampled before and after the run, divided by N;
    - Postfix end-to-end: from the first connection until N files are in
      the Maildir's new/ (CPU is then sampled, so it covers delivery too);
    - postern: until N files are in spool/incoming/new ("accepted, in the
      spool"), or, once postern has a delivery agent (issue 5), in a
      Maildir under mail_dir ("end-to-end").

Every process it starts is recorded by pid and killed at the end if still
there; every temporary directory is removed (--keep keeps them).  It only
ever uses 127.0.0.1.
"""

import argparse
import grp
import os
import pwd
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf("SC_CLK_TCK")
SENDER = "sender@example.test"
RCPT = "demo@example.test"
MSG_LEN = 4096
TARGET_RATE = 1500.0        # issue 4: >= 1,500 msgs/s accepted at 10 sessions
TARGET_CPU_MS = 1.0         # issue 4: <= 1 ms server CPU per message
TARGET_E2E = 1000.0         # issue 5: >= 1,000 msgs/s end-to-end at 10 sessions
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"
POSTMAP = "/usr/sbin/postmap"

STARTED = set()             # pids of everything we started, for cleanup


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


class BenchError(Exception):
    """The benchmark itself could not run."""


# ---------------------------------------------------------------- /proc

def read_procs():
    """pid -> (ppid, own cpu ticks, reaped-children cpu ticks, state)."""
    procs = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                data = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: split after the last ')'.
        f = data.rsplit(")", 1)[1].split()
        # f[0]=state f[1]=ppid ... f[11]=utime f[12]=stime f[13]=cutime f[14]=cstime
        procs[int(name)] = (int(f[1]), int(f[11]) + int(f[12]),
                            int(f[13]) + int(f[14]), f[0])
    return procs


def tree_pids(root, procs=None):
    procs = procs if procs is not None else read_procs()
    if root not in procs:
        return []
    kids = {}
    for pid, p in procs.items():
        kids.setdefault(p[0], []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def tree_cpu(root):
    """CPU seconds used so far by root's whole process tree.

    Every live (or not yet reaped) process counts its own utime+stime plus
    cutime+cstime, which is the CPU of all the children it has reaped (and
    of theirs): every process that ever ran under root is counted once, as
    long as it was reaped by a process of the tree."""
    procs = read_procs()
    ticks = 0
    for pid in tree_pids(root, procs):
        _, own, reaped, _ = procs[pid]
        ticks += own + reaped
    return ticks / CLK_TCK


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_tree(root, sig=signal.SIGKILL):
    for pid in reversed(tree_pids(root)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# ---------------------------------------------------------------- helpers

def wait_until(pred, timeout, interval=0.01, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise BenchError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def port_free(port):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port_base(taken=()):
    """A base whose postern listener offsets are all free on 127.0.0.1."""
    offsets = (10, 25, 43, 65, 87, 93, 95)
    for _ in range(200):
        base = random.randrange(11000, 32000, 100)   # below the ephemeral ports
        if base in taken:
            continue
        if all(port_free(base + o) for o in offsets):
            return base
    raise BenchError("no free port range on 127.0.0.1")


def banner_ok(port):
    """Whether an SMTP server on 127.0.0.1:port greets with 220."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(5)
            line = s.recv(512)
            try:
                s.sendall(b"QUIT\r\n")
                s.recv(512)
            except OSError:
                pass
            return line.startswith(b"220")
    except OSError:
        return False


def count_files(d):
    try:
        with os.scandir(d) as it:
            return sum(1 for e in it if not e.name.startswith("."))
    except FileNotFoundError:
        return 0


def run(cmd, timeout=60, check=True, **kw):
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise BenchError("%s failed (%d):\n%s" % (" ".join(cmd), p.returncode, p.stdout))
    return p


def free_id():
    """A uid/gid pair that no account or group uses: the Maildir's owner."""
    for n in range(64999, 60000, -1):
        try:
            pwd.getpwuid(n)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(n)
            continue
        except KeyError:
            return n
    raise BenchError("no free uid for the Maildir owner")


# ---------------------------------------------------------------- servers

class Server:
    """One server under load: name, port, and the pid at the top of its tree."""
    label = "?"

    def root_pid(self):
        raise NotImplementedError

    def prepare(self):
        """Called before each run: note how many messages are there already.

        Nothing is deleted between runs: on this VM's ext4 (no journal) the
        inode allocator skips recently deleted inodes one by one, so a burst
        of deletions makes the next ~30 s of file creations much dearer --
        a cost that would belong to neither server."""

    def done_count(self):
        """Messages that reached the end point counted for this server."""
        raise NotImplementedError

    def stop(self):
        pass


class Postfix(Server):
    label = "Postfix"

    def __init__(self, base, port):
        self.port = port
        self.dir = os.path.join(base, "postfix")
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.vmail = os.path.join(self.dir, "vmail")
        self.logdir = os.path.join(self.dir, "log")
        self.maildir = os.path.join(self.vmail, "example.test", "demo")
        self.master = 0
        self.started = False
        self.version = run([shutil.which("postconf") or "/usr/sbin/postconf",
                            "-d", "-h", "mail_version"], check=False).stdout.strip()

    def setup(self):
        uid = free_id()
        for d in (self.dir, self.conf, self.logdir, self.vmail, self.queue):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        # One Maildir, owned by a dedicated uid that nothing else uses.
        for sub in ("", "cur", "new", "tmp"):
            d = os.path.join(self.maildir, sub)
            os.makedirs(d, exist_ok=True)
        for root, dirs, _ in os.walk(self.vmail):
            for d in [root] + [os.path.join(root, x) for x in dirs]:
                os.chown(d, uid, uid)
                os.chmod(d, 0o700 if d.startswith(self.maildir) else 0o755)
        src = "/etc/postfix/master.cf"
        if not os.path.exists(src):
            src = "/usr/share/postfix/master.cf.dist"
        self.write_master_cf(src)
        vmap = os.path.join(self.conf, "vmailbox")
        with open(vmap, "w") as f:
            f.write("%s example.test/demo/\n" % RCPT)
        main = """\
# Written by postern's tests/bench/smtp_accept.py: a loopback-only Postfix
# instance configured as in shared BENCH-NOTES.md; all else at the defaults.
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_tls_security_level = none
smtp_tls_security_level = none
virtual_mailbox_domains = example.test
virtual_mailbox_base = {vmail}
virtual_mailbox_maps = hash:{vmap}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{uid}
alias_maps =
alias_database =
maillog_file = {log}
maillog_file_prefixes = {dir}
""".format(queue=self.queue, data=self.data, vmail=self.vmail, vmap=vmap,
           uid=uid, log=os.path.join(self.logdir, "maillog"), dir=self.dir)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(main)
        run([POSTMAP, "-c", self.conf, "hash:" + vmap])

    def write_master_cf(self, src):
        """Debian's master.cf with smtpd moved to 127.0.0.1:PORT and chroot
        off (upstream's default since 3.0: a chroot under /tmp would lack the
        /etc files Debian's init script copies in)."""
        out = []
        with open(src) as f:
            for line in f:
                if line[:1] in ("#", " ", "\t", "\n") or not line.strip():
                    out.append(line)
                    continue
                col = line.split()
                if len(col) < 8:
                    out.append(line)
                    continue
                if col[0] == "smtp" and col[1] == "inet":
                    col[0] = "127.0.0.1:%d" % self.port
                if col[0] in ("submission", "submissions", "smtps") and col[1] == "inet":
                    out.append("#" + line)
                    continue
                col[4] = "n"
                out.append(" ".join(col[:8]) + (" " + " ".join(col[8:]) if col[8:] else "") + "\n")
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.writelines(out)

    def start(self):
        p = run([POSTFIX, "-c", self.conf, "start"], timeout=60, check=False)
        self.started = True
        if p.returncode != 0:
            raise BenchError("postfix -c %s start failed (%d): %s\n%s"
                             % (self.conf, p.returncode, p.stdout, self.log_tail()))
        pidfile = os.path.join(self.queue, "pid", "master.pid")

        def master():
            try:
                with open(pidfile) as f:
                    return int(f.read().split()[0])
            except (OSError, ValueError, IndexError):
                return 0
        self.master = wait_until(master, 15, what="Postfix master.pid")
        STARTED.add(self.master)
        wait_until(lambda: banner_ok(self.port), 15, interval=0.1,
                   what="Postfix smtpd on 127.0.0.1:%d" % self.port)

    def root_pid(self):
        return self.master

    def prepare(self):
        self.baseline = count_files(os.path.join(self.maildir, "new"))

    def done_count(self):
        return count_files(os.path.join(self.maildir, "new")) - self.baseline

    def queue_empty(self):
        return all(count_files(os.path.join(self.queue, q)) == 0
                   for q in ("incoming", "active", "deferred", "maildrop"))

    def stop(self):
        if self.started:
            run([POSTFIX, "-c", self.conf, "stop"], timeout=30, check=False)
            if self.master:
                try:
                    wait_until(lambda: not pid_alive(self.master), 10, 0.1)
                except BenchError:
                    kill_tree(self.master)
            self.started = False

    def log_tail(self, n=15):
        try:
            with open(os.path.join(self.logdir, "maillog")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def log_problems(self):
        try:
            with open(os.path.join(self.logdir, "maillog")) as f:
                return [l for l in f if " warning: " in l or " fatal: " in l
                        or " panic: " in l or "status=deferred" in l
                        or "status=bounced" in l]
        except OSError:
            return []


class Postern(Server):
    label = "postern"

    def __init__(self, builddir, base, extra_config, accept_only=False, root="/tmp"):
        self.builddir = builddir
        self.tool = os.path.join(builddir, "tools", "postern")
        self.base = base
        self.extra_config = extra_config
        self.accept_only = accept_only
        # Short path: Unix socket names are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="pb-", dir=root)
        self.conf = os.path.join(self.dir, "postern.conf")
        self.port = base + 25
        self.master = 0
        self.started = False
        self.why_not = ""
        self.delivers = False

    def postern(self, *args, check=True, timeout=60):
        return run([self.tool, "-c", self.conf] + list(args), timeout=timeout,
                   check=check)

    def setup(self):
        if not os.access(self.tool, os.X_OK):
            raise BenchError("%s not built: build postern first "
                             "(configure && make), or pass --builddir" % self.tool)
        os.chmod(self.dir, 0o755)
        run([self.tool, "init", "--dev", self.dir, "--port-base", str(self.base),
             "--force"])
        with open(self.conf, "a") as f:
            f.write("\n# smtp_accept.py: every session comes from 127.0.0.1, and\n"
                    "# Postfix exempts $mynetworks from its per-client limits\n"
                    "# (smtpd_client_event_limit_exceptions): do the same here.\n"
                    "smtpd_max_connections_per_ip = 0\n")
        if self.accept_only:
            # Issue 4's figure is smtpd's own: keep qmgr from delivering
            # (and competing for the CPU and the disk) during the run.
            with open(self.conf) as f:
                text = f.read()
            with open(self.conf, "w") as f:
                f.write(text.replace("service qmgr {\n",
                                     "service qmgr {\n    enable = no\n", 1))
        if self.extra_config:
            with open(self.conf, "a") as f:
                f.write("\n# added by smtp_accept.py --postern-config\n")
                f.write(self.extra_config.replace("\\n", "\n") + "\n")

    def status(self):
        rows = {}
        out = self.postern("status", check=False).stdout
        for line in out.splitlines()[2:]:
            f = line.split()
            if len(f) >= 6:
                rows.setdefault(f[0], []).append(f[5])
        return rows

    def start(self):
        self.postern("start")
        self.started = True
        pidfile = os.path.join(self.dir, "run", "master.pid")

        def master():
            try:
                with open(pidfile) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return 0
        self.master = wait_until(master, 15, what="postern master.pid")
        STARTED.add(self.master)

        def settled():
            st = self.status()
            if st and all(s in ("running", "not-installed")
                          for v in st.values() for s in v):
                return st
            return None
        st = wait_until(settled, 20, interval=0.1, what="postern daemons running")
        smtpd = st.get("smtpd", [])
        if "running" not in smtpd:
            self.why_not = ("postern's smtpd is not installed (no %s/libexec/smtpd)"
                            % self.builddir if "not-installed" in smtpd
                            else "postern's smtpd is not running: %s" % smtpd)
            return
        self.delivers = ("running" in st.get("qmgr", []) and
                         "running" in st.get("local", []))
        try:
            wait_until(lambda: banner_ok(self.port), 15, interval=0.1,
                       what="postern smtpd on 127.0.0.1:%d" % self.port)
        except BenchError as e:
            self.why_not = str(e)

    def root_pid(self):
        return self.master

    def incoming(self):
        return os.path.join(self.dir, "spool", "incoming", "new")

    def maildirs_new(self):
        out = []
        for root, dirs, _ in os.walk(os.path.join(self.dir, "mail")):
            if os.path.basename(root) == "new":
                out.append(root)
        return out

    def prepare(self):
        self.baseline = self.count()

    def count(self):
        if self.delivers:
            return sum(count_files(d) for d in self.maildirs_new())
        return count_files(self.incoming())

    def done_count(self):
        return self.count() - self.baseline

    def stop(self):
        if self.started:
            self.postern("stop", check=False)
            if self.master:
                try:
                    wait_until(lambda: not pid_alive(self.master), 15, 0.1)
                except BenchError:
                    kill_tree(self.master)
            self.started = False

    def log_tail(self, n=15):
        try:
            with open(os.path.join(self.dir, "run", "postern.log")) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


class Sink(Server):
    label = "smtp-sink"

    def __init__(self, port):
        self.port = port
        self.proc = None

    def start(self):
        # -c: count sessions; backlog as large as the kernel allows.
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "127.0.0.1:%d" % self.port, "511"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        STARTED.add(self.proc.pid)
        wait_until(lambda: banner_ok(self.port), 10, interval=0.05,
                   what="smtp-sink on 127.0.0.1:%d" % self.port)

    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# ---------------------------------------------------------------- one run

def smtp_source(port, sessions, n, timeout):
    """Run smtp-source; return (wall seconds, ok, output)."""
    cmd = [SMTP_SOURCE, "-s", str(sessions), "-m", str(n), "-l", str(MSG_LEN),
           "-f", SENDER, "-t", RCPT, "127.0.0.1:%d" % port]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    STARTED.add(p.pid)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
        return time.monotonic() - t0, False, "smtp-source timed out after %ds\n%s" % (timeout, out)
    wall = time.monotonic() - t0
    STARTED.discard(p.pid)
    return wall, p.returncode == 0 and "fatal" not in out and "error" not in out.lower(), out


def measure(server, sessions, n, timeout, wait_done=True):
    """One run against server: a dict of figures, or {'error': ...}."""
    server.prepare()
    root = server.root_pid()
    cpu0 = tree_cpu(root)
    t0 = time.monotonic()
    wall, ok, out = smtp_source(server.port, sessions, n, timeout)
    r = {"accept_s": wall}
    if not ok:
        r["error"] = out.strip()[-600:]
        return r
    cpu_accept = tree_cpu(root)
    r["cpu_accept"] = cpu_accept - cpu0
    r["rate"] = n / wall
    if wait_done:
        try:
            wait_until(lambda: server.done_count() >= n, timeout, interval=0.005,
                       what="%d messages at %s" % (n, server.label))
        except BenchError as e:
            r["error"] = "%s (%d there)" % (e, server.done_count())
            return r
        t_done = time.monotonic() - t0
        r["done_s"] = t_done
        r["done_rate"] = n / t_done
        r["done_n"] = server.done_count()
        # Let stragglers (log lines, queue manager bookkeeping) finish, so
        # the CPU covers all of this run's work and none of the next's.
        time.sleep(0.2)
    r["cpu"] = tree_cpu(root) - cpu0
    r["cpu_ms"] = 1000.0 * r["cpu"] / n
    return r


# ---------------------------------------------------------------- report

def med(runs, key):
    vals = [r[key] for r in runs if key in r and "error" not in r]
    return statistics.median(vals) if vals else None


def fmt(v, spec="%.0f"):
    return "-" if v is None else spec % v


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


def report(results, sessions_list, counts, postern, postfix, sink, args):
    lines = []
    p_end = ("end-to-end (in the Maildir)" if postern.delivers
             else "accepted (files in spool/incoming/new)")
    lines.append("")
    lines.append("postern vs Postfix %s, 4 KB messages, 1 recipient, 127.0.0.1; "
                 "medians of %d runs each, run alternately"
                 % (postfix.version, args.runs))
    lines.append("msgs/s = N / wall time of smtp-source (every 250 received); "
                 "CPU = server process tree, children included, per message")
    lines.append("postern end point: %s; Postfix: end-to-end (N files in the "
                 "Maildir's new/), its CPU covering delivery too" % p_end)
    lines.append(getattr(args, "probe", ""))
    lines.append("")
    hdr = ("%-9s %6s | %9s %9s %7s | %9s %9s | %8s %8s %7s | %9s"
           % ("sessions", "N", "postern", "Postfix", "ratio", "postern", "Postfix",
              "postern", "Postfix", "ratio", "smtp-sink"))
    lines.append("%-16s | %-27s | %-19s | %-26s | %9s"
                 % ("", "msgs/s accepted", "msgs/s to end point",
                    "CPU ms per message", "msgs/s"))
    lines.append(hdr)
    lines.append("-" * len(hdr))
    summary = {}
    for s in sessions_list:
        pr = results[("postern", s)]
        fr = results[("Postfix", s)]
        sr = results[("smtp-sink", s)]
        pa, fa = med(pr, "rate"), med(fr, "rate")
        pe, fe = med(pr, "done_rate"), med(fr, "done_rate")
        pc, fc = med(pr, "cpu_ms"), med(fr, "cpu_ms")
        sk = med(sr, "rate")
        summary[s] = (pa, pc, pe)
        lines.append("%-9d %6d | %9s %9s %7s | %9s %9s | %8s %8s %7s | %9s"
                     % (s, counts[s], fmt(pa), fmt(fa), fmt(ratio(pa, fa), "%.2fx"),
                        fmt(pe), fmt(fe), fmt(pc, "%.2f"), fmt(fc, "%.2f"),
                        fmt(ratio(pc, fc), "%.2fx"), fmt(sk)))
    lines.append("")
    lines.append("smtp-sink CPU per message: %s"
                 % ", ".join("%d sessions %s ms" % (s, fmt(med(results[("smtp-sink", s)], "cpu_ms"), "%.2f"))
                             for s in sessions_list))
    errs = [(k, r["error"]) for k, runs in sorted(results.items(), key=str)
            for r in runs if "error" in r]
    if postern.why_not:
        lines.append("postern: not measured: " + postern.why_not)
    for (label, s), e in errs[:6]:
        lines.append("run failed: %s at %d sessions: %s" % (label, s, e.replace("\n", " | ")[:300]))
    if 10 in summary:
        pa, pc, pe = summary[10]
        word = lambda ok: "-" if ok is None else ("PASS" if ok else "MISS")
        lines.append("")
        lines.append("issue 4 target, 10 sessions: >= %.0f msgs/s accepted: %s %s; "
                     "<= %.1f ms CPU/message: %s %s"
                     % (TARGET_RATE, fmt(pa), word(None if pa is None else pa >= TARGET_RATE),
                        TARGET_CPU_MS, fmt(pc, "%.2f"),
                        word(None if pc is None else pc <= TARGET_CPU_MS)))
        if postern.delivers:
            lines.append("issue 5 target, 10 sessions: >= %.0f msgs/s end-to-end: %s %s"
                         % (TARGET_E2E, fmt(pe), word(None if pe is None else pe >= TARGET_E2E)))
        else:
            lines.append("issue 5 target (>= %.0f msgs/s end-to-end): not measurable "
                         "until postern delivers (qmgr + local)" % TARGET_E2E)
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(
        description="postern SMTP acceptance benchmark beside Postfix "
                    "(see tests/bench/README.md)")
    ap.add_argument("--quick", action="store_true",
                    help="about a minute: fewer messages, 2 runs each")
    ap.add_argument("--runs", type=int, help="runs per server and session count (default 3, quick 2)")
    ap.add_argument("--sessions", default="1,10,50", help="session counts (default 1,10,50)")
    ap.add_argument("--messages", type=int,
                    help="messages per run at every session count "
                         "(default 500/2500/2500 for 1/10/50 sessions; quick 100/400/400)")
    ap.add_argument("--budget", type=int,
                    help="seconds for the whole run (default 280, quick 75): runs that "
                         "would not fit are skipped and the medians use fewer runs")
    ap.add_argument("--strace", type=int, default=0, metavar="N",
                    help="after the benchmark, one more 10-session run of N messages per "
                         "server under strace -c -f: syscalls and fsyncs per message")
    ap.add_argument("--builddir", default=os.environ.get("POSTERN_BUILDDIR") or
                    os.path.abspath(os.path.join(HERE, "..", "..")),
                    help="postern build tree (default: $POSTERN_BUILDDIR or ../.. of this script)")
    ap.add_argument("--postern-config", default="",
                    help="lines to append to the postern instance's postern.conf (\\n separates)")
    ap.add_argument("--accept-only", action="store_true",
                    help="postern without qmgr: smtpd's accept rate alone (issue 4)")
    ap.add_argument("--no-postfix", action="store_true", help="skip Postfix")
    ap.add_argument("--no-postern", action="store_true", help="skip postern")
    ap.add_argument("--timeout", type=int, default=120, help="seconds allowed per run")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories")
    ap.add_argument("--fs", choices=("disk", "loop"), default="disk",
                    help="disk: the servers' directories on the machine's own file "
                         "system (default); loop: both on a fresh ext4 file system "
                         "with a journal, in an image on that disk, loop-mounted "
                         "for the run (like for like when the root file system is "
                         "unusual, e.g. ext4 without a journal)")
    ap.add_argument("--hold", type=float, default=0,
                    help="after start-up, wait this many seconds (to attach perf/strace) -- "
                         "prints the pids")
    args = ap.parse_args()

    if os.geteuid() != 0:
        raise BenchError("run as root (Postfix's instance is started as root); "
                         "use tests/bench/smtp_accept.sh")
    for f in (SMTP_SOURCE, SMTP_SINK, POSTFIX, POSTMAP):
        if not os.access(f, os.X_OK):
            raise BenchError("%s missing: run through smtp_accept.sh, which installs "
                             "Debian's postfix package" % f)
    sessions_list = [int(x) for x in args.sessions.split(",") if x.strip()]
    args.runs = args.runs or (2 if args.quick else 3)
    default_n = ({1: 100, 10: 400, 50: 400} if args.quick
                 else {1: 500, 10: 2500, 50: 2500})
    budget = args.budget or (75 if args.quick else 280)
    counts = {s: args.messages or default_n.get(s, default_n[50]) for s in sessions_list}

    # Postfix under /var/tmp, postern under /tmp: both on the same disk, but
    # (through ext4's directory placement) in different inode groups, so
    # Postfix's deletion of its queue files does not make postern's file
    # creations dearer, nor the reverse (see Server.prepare).
    loop = LoopFs() if args.fs == "loop" else None
    if loop:
        loop.mount()
    base = tempfile.mkdtemp(prefix="postern-bench-", dir=loop.dir if loop else "/var/tmp")
    os.chmod(base, 0o755)
    proot = loop.dir if loop else "/tmp"
    for d in (base, proot):
        fstype = run(["stat", "-f", "-c", "%T", d], check=False).stdout.strip()
        if fstype in ("tmpfs", "ramfs"):
            log("warning: %s is on %s: fsync costs nothing there, figures will "
                "flatter both" % (d, fstype))
    pbase = free_port_base()
    fbase = free_port_base(taken=(pbase,))
    postern = Postern(args.builddir, pbase, args.postern_config, args.accept_only, proot)
    postfix = Postfix(base, fbase + 25)
    sink_port = fbase + 26 if port_free(fbase + 26) else fbase + 27
    sink = Sink(sink_port)
    servers = []
    t_start = time.monotonic()
    try:
        if not args.no_postern:
            postern.setup()
            postern.start()
            servers.append(postern)
        if not args.no_postfix:
            postfix.setup()
            postfix.start()
            servers.append(postfix)
        sink.start()
        log("postern %s (port %d, %s), Postfix %s (port %d), smtp-sink (port %d); "
            "scratch %s" % (postern.dir, postern.port,
                            postern.why_not or ("delivers" if postern.delivers else "accept only"),
                            postfix.version, postfix.port, sink.port, base))
        probe = "file creation, kernel CPU: %.0f us in postern's spool, %.0f us in Postfix's queue" % (
            create_cost(os.path.join(postern.dir, "spool")), create_cost(postfix.queue))
        log(probe)
        args.probe = probe
        active = [s for s in servers
                  if not (s is postern and postern.why_not)]
        if args.hold:
            for s in active + [sink]:
                log("%s root pid %d, tree %s" % (s.label, s.root_pid(), tree_pids(s.root_pid())))
            log("holding %.0fs" % args.hold)
            time.sleep(args.hold)
        # Warm up: start the servers' processes, fill caches; not measured.
        for s in active:
            r = measure(s, 10, 50, args.timeout)
            if "error" in r:
                log("warm-up against %s failed: %s\n%s" % (s.label, r["error"], s.log_tail()))
                if s is postern:
                    postern.why_not = "warm-up failed: " + r["error"].replace("\n", " | ")[:300]
                else:
                    raise BenchError("warm-up against Postfix failed")
        active = [s for s in active if not (s is postern and postern.why_not)]
        results = {}
        for s in sessions_list:
            for label in ("postern", "Postfix", "smtp-sink"):
                results[(label, s)] = []
            for i in range(args.runs):
                for srv in active:
                    prev = [x["done_s"] if "done_s" in x else x["accept_s"]
                            for x in results[(srv.label, s)]]
                    est = max(prev) if prev else 0
                    if i > 0 and time.monotonic() - t_start + 1.5 * est > budget:
                        log("%-8s %2d sessions run %d: skipped to stay within %ds"
                            % (srv.label, s, i + 1, budget))
                        continue
                    r = measure(srv, s, counts[s], args.timeout)
                    results[(srv.label, s)].append(r)
                    log("%-8s %2d sessions run %d: %s" % (srv.label, s, i + 1, brief(r)))
                    if srv is postfix and "error" not in r:
                        wait_until(postfix.queue_empty, 30, 0.05, "Postfix queue to drain")
            r = measure(sink, s, counts[s], args.timeout, wait_done=False)
            results[("smtp-sink", s)].append(r)
            log("%-8s %2d sessions: %s" % ("smtp-sink", s, brief(r)))
        report(results, sessions_list, counts, postern, postfix, sink, args)
        if args.strace:
            for srv in active:
                strace_run(srv, 10, args.strace, args.timeout)
        if not args.no_postfix:
            probs = postfix.log_problems()
            if probs:
                log("Postfix logged %d warnings/deferrals, first: %s" % (len(probs), probs[0].strip()))
        log("done in %.0fs" % (time.monotonic() - t_start))
    finally:
        for s in (sink, postfix, postern):
            try:
                s.stop()
            except Exception as e:  # keep cleaning up
                log("stopping %s: %s" % (s.label, e))
        for pid in list(STARTED):
            if pid_alive(pid):
                kill_tree(pid)
        if args.keep and not loop:
            log("kept %s and %s" % (base, postern.dir))
        else:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(postern.dir, ignore_errors=True)
        if loop:
            loop.unmount()


class LoopFs:
    """A fresh ext4 file system (with its journal, mkfs's default) in a
    sparse image under /var/tmp, loop-mounted on a short path under /tmp
    (Unix socket paths are limited to 107 bytes) for one run."""

    SIZE = "8G"

    def __init__(self):
        self.image = tempfile.mktemp(prefix="postern-bench-", suffix=".ext4", dir="/var/tmp")
        self.dir = tempfile.mkdtemp(prefix="pbfs-", dir="/tmp")
        self.mounted = False

    def mount(self):
        run(["truncate", "-s", self.SIZE, self.image])
        run(["mkfs.ext4", "-q", "-F", self.image])
        run(["mount", "-o", "loop", self.image, self.dir])
        self.mounted = True
        os.chmod(self.dir, 0o755)
        log("--fs loop: fresh journaled ext4 (%s image) on %s" % (self.SIZE, self.dir))

    def unmount(self):
        if self.mounted:
            run(["umount", self.dir], check=False)
            self.mounted = False
        for p in (self.image,):
            if os.path.exists(p):
                os.unlink(p)
        if os.path.isdir(self.dir):
            os.rmdir(self.dir)


def create_cost(d, n=500):
    """Kernel CPU microseconds to create (and close) one empty file in d.
    On this VM's ext4 it is ~20 us normally but far more within minutes of
    mass deletions nearby (the allocator skips recently freed inodes); a
    high figure here means the machine's recent history skews the run."""
    probe = tempfile.mkdtemp(prefix=".probe-", dir=d)
    t0 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    for i in range(n):
        os.close(os.open(os.path.join(probe, str(i)), os.O_CREAT | os.O_WRONLY, 0o600))
    t1 = resource.getrusage(resource.RUSAGE_SELF).ru_stime
    shutil.rmtree(probe, ignore_errors=True)
    return 1e6 * (t1 - t0) / n


def strace_run(server, sessions, n, timeout):
    """One more run with strace -c -f attached to every process of the
    server's tree: prints the syscalls per message, fsyncs first."""
    strace = shutil.which("strace")
    if not strace:
        log("strace not installed: apt-get install strace")
        return
    out = tempfile.mktemp(prefix="strace-", dir="/tmp")
    cmd = [strace, "-f", "-c", "-o", out]
    for pid in tree_pids(server.root_pid()):
        cmd += ["-p", str(pid)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    STARTED.add(p.pid)
    time.sleep(1.0)
    r = measure(server, sessions, n, timeout)
    p.send_signal(signal.SIGINT)
    try:
        p.wait(15)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    STARTED.discard(p.pid)
    try:
        with open(out) as f:
            text = f.read()
    except OSError:
        text = ""
    finally:
        if os.path.exists(out):
            os.unlink(out)
    rows = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 5 and f[0][0].isdigit() and not line.startswith("100.00"):
            calls = int(f[3])
            errors = int(f[4]) if len(f) == 6 else 0
            rows.append((f[-1], calls, errors, float(f[1])))
    rows.sort(key=lambda x: -x[1])
    total = sum(r[1] for r in rows)
    print("\n%s under strace -f -c, %d sessions, %d messages (%s): %.1f syscalls/message"
          % (server.label, sessions, n, brief(r), total / n))
    syncs = [x for x in rows if x[0] in ("fsync", "fdatasync", "sync_file_range", "syncfs")]
    files = [x for x in rows if x[0] in ("rename", "renameat", "renameat2", "link",
                                          "linkat", "unlink", "unlinkat", "open", "openat",
                                          "creat", "mkdir", "mkdirat")]
    print("  syncs per message: %s" % (", ".join("%s %.2f" % (x[0], x[1] / n) for x in syncs) or "none"))
    print("  file ops per message: %s" % ", ".join("%s %.2f" % (x[0], x[1] / n) for x in files))
    print("  top by count: %s" % ", ".join("%s %.1f%s" % (x[0], x[1] / n,
                                                          " (%d err)" % x[2] if x[2] else "")
                                           for x in rows[:15]))
    print("  top by time:  %s" % ", ".join("%s %.0fus" % (x[0], 1e6 * x[3] / n)
                                           for x in sorted(rows, key=lambda x: -x[3])[:8]),
          flush=True)


def brief(r):
    if "error" in r:
        return "FAILED: " + r["error"].replace("\n", " | ")[:200]
    s = "%.0f msgs/s accepted" % r["rate"]
    if "done_rate" in r:
        s += ", %.0f msgs/s to end point" % r["done_rate"]
    return s + ", %.2f ms CPU/msg" % r["cpu_ms"]


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        log("error: %s" % e)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
