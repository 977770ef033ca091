"""Shared harness for postern's integration tests.

Each test builds a real instance with `postern init` in a temporary
directory, on loopback ports chosen to be free, starts it, talks to it with
real clients, and stops it.  Every process the test starts is recorded by
pid and killed at teardown if it is still there, so a failing test leaves
nothing running.  Every wait is bounded.

Run a test file directly with python3; it prints "N passed, N failed" last.
"""

import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import unittest

BUILDDIR = os.environ.get("POSTERN_BUILDDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
POSTERN = os.path.join(BUILDDIR, "tools", "postern")
TESTDAEMON = os.path.join(BUILDDIR, "tests", "integration", "testdaemon")
COMMAND_TIMEOUT = 60


def wait_until(predicate, timeout=10.0, interval=0.05, what="condition"):
    """Poll predicate until it returns a true value; fail after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pid_alive(pid):
    """Whether pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False


def children_of(pid):
    """The pids whose parent is pid."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(") ", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(name))
    return out


def port_free(port):
    """Whether 127.0.0.1:port can be bound now."""
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def stream_while_killing(inst, port, total, threads, make_msg, sender, rcpts,
                         rcpt_options=(), services=("qmgr", "local"), every=0.4,
                         after=0.0, limit=60.0):
    """Send total messages (make_msg(n) gives message n's bytes) from
    sender to rcpts over SMTP in threads sessions, while kill -9 hits
    every process of services every `every` seconds -- during the stream
    and for `after` seconds past it, at most `limit` seconds in all.  Each
    message is retried, as a client MTA would, until it is accepted or
    the kills have been over for longer than master's longest restart
    back-off (restart_delay_max, 60 s by default: a daemon killed again
    and again is restarted ever later).  Returns (kills, errors): how
    many processes were killed, and the messages that could not be
    sent."""
    import smtplib
    import threading
    kills, errors = [0], []
    deadline = time.monotonic() + limit + 75

    def permanent(e):
        # A 5xx is an answer, not an outage: never retried.
        if isinstance(e, smtplib.SMTPResponseException):
            return e.smtp_code >= 500
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            return all(code >= 500 for code, _ in e.recipients.values())
        return False

    def send(t):
        per = total // threads
        s = None
        for i in range(per):
            msg = make_msg(t * per + i)
            while True:
                try:
                    if s is None:
                        s = smtplib.SMTP("127.0.0.1", port, timeout=20)
                    s.sendmail(sender, rcpts, msg, rcpt_options=list(rcpt_options))
                    break
                except (smtplib.SMTPException, OSError) as e:
                    s = None
                    if permanent(e) or time.monotonic() > deadline:
                        errors.append(repr(e))
                        break
                    time.sleep(0.2)
        if s is not None:
            s.quit()

    ts = [threading.Thread(target=send, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    start = time.monotonic()
    while (any(t.is_alive() for t in ts) or time.monotonic() < start + after) \
            and time.monotonic() < start + limit:
        time.sleep(every)
        for svc in services:
            for pid in inst.service_pids(svc):
                try:
                    os.kill(pid, signal.SIGKILL)
                    kills[0] += 1
                except ProcessLookupError:
                    pass
    for t in ts:
        t.join(timeout=max(1, deadline - time.monotonic() + 30))
    return kills[0], errors


def fill_file(path, chunks=(64 << 10, 1 << 10)):
    """Write zeros to a new file at path until its file system is full
    (ENOSPC), in ever smaller chunks, so that every block is used.
    Raises any other OSError.  Returns path."""
    import errno
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    try:
        for chunk in chunks:
            try:
                while True:
                    os.write(fd, b"\0" * chunk)
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
    finally:
        os.close(fd)
    return path


def sanitized_build():
    """Whether the build under test uses AddressSanitizer (which valgrind
    cannot run)."""
    with open(POSTERN, "rb") as f:
        return b"__asan_init" in f.read()


def free_port_base():
    """A port base whose listener offsets (and a few spare ports above
    base+100 for test services) are all free."""
    # Below the kernel's ephemeral range (32768 and up by default): a
    # port there can be taken at any moment by some client's outgoing
    # connection, and the tests make thousands of those.
    lo, hi = 11000, 32700
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            hi = min(hi, int(f.read().split()[0]) - 200)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        base = random.randrange(lo, hi, 100)
        offsets = (10, 25, 43, 65, 87, 93, 95) + tuple(range(100, 110))
        if base in _held_bases or not hold_base(base):
            continue
        if all(port_free(base + o) for o in offsets):
            return base
        release_base(base)
    raise RuntimeError("no free port range on 127.0.0.1")


# Port bases this process holds.  A free port is not enough: the tests
# run in parallel, and an instance that is stopped and started again (or
# one not yet started) leaves its ports free for a moment, for another
# test process to pick.  So each base is also held by an flock(2) on a
# file named after it, for as long as its instance lives (released by
# Instance.cleanup, or when the process exits).
PORT_LOCK_DIR = "/tmp/postern-test-ports"
_held_bases = {}


def hold_base(base):
    """Take the lock on base; False if another process holds it."""
    import fcntl
    try:
        os.mkdir(PORT_LOCK_DIR, 0o1777)
        os.chmod(PORT_LOCK_DIR, 0o1777)     # whatever the umask
    except FileExistsError:
        pass
    fd = os.open(os.path.join(PORT_LOCK_DIR, str(base)),
                 os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return False
    _held_bases[base] = fd
    return True


def release_base(base):
    fd = _held_bases.pop(base, None)
    if fd is not None:
        os.close(fd)


class Instance:
    """A postern instance in a temporary directory."""

    def __init__(self, root=False, extra_config=""):
        # Short paths: Unix socket names are limited to 107 bytes.
        self.dir = tempfile.mkdtemp(prefix="pt-", dir="/tmp")
        if root:
            os.chmod(self.dir, 0o755)
        self.base = free_port_base()
        self.conf = os.path.join(self.dir, "postern.conf")
        self.pids = set()
        self.postern_path = POSTERN
        self.log = os.path.join(self.dir, "run", "postern.log")
        args = ["init"] + ([] if root else ["--dev"]) + \
            [self.dir, "--port-base", str(self.base), "--force"]
        out = self.postern(*args)
        self.init_output = out.stdout
        if extra_config:
            self.append_config(extra_config)

    def owner(self):
        """(uid, gid) the instance belongs to: the caller's, or, when the
        caller is root, postern-dev's (postern init --dev run as root
        gives a dev instance to that user; no daemon of it runs as root)."""
        st = os.stat(self.conf)
        return st.st_uid, st.st_gid

    def own(self, *paths):
        """Give paths (directories recursively) to the instance's owner,
        for files a test running as root makes for the daemons to use."""
        uid, gid = self.owner()
        for path in paths:
            os.chown(path, uid, gid, follow_symlinks=False)
            for top, dirs, files in os.walk(path):
                for name in dirs + files:
                    os.chown(os.path.join(top, name), uid, gid,
                             follow_symlinks=False)

    def makedirs(self, path, mode=0o700):
        """os.makedirs(path, mode, exist_ok=True), every directory it made
        belonging to the instance's owner."""
        made, d = [], path
        while not os.path.exists(d):
            made.append(d)
            d = os.path.dirname(d)
        os.makedirs(path, mode=mode, exist_ok=True)
        for d in made:
            self.own(d)

    def append_config(self, text):
        with open(self.conf, "a") as f:
            f.write("\n" + text.replace("@BUILDDIR@", BUILDDIR) + "\n")

    def postern(self, *args, check=True, timeout=COMMAND_TIMEOUT):
        """Run postern(8) against this instance; returns CompletedProcess."""
        cmd = [POSTERN, "-c", self.conf] + list(args) if args[0] != "init" else \
            [POSTERN] + list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError("postern %s failed (%d):\n%s%s" % (
                " ".join(args), p.returncode, p.stdout, p.stderr))
        return p

    def master_pid(self):
        try:
            with open(os.path.join(self.dir, "run", "master.pid")) as f:
                return int(f.read().strip())
        except (FileNotFoundError, ValueError):
            return 0

    def start(self):
        """Start the instance and wait until every daemon has finished its
        set-up (state running), so tests never see a half-started one."""
        self.postern("start")
        pid = wait_until(self.master_pid, what="master pid file")
        self.pids.add(pid)
        self.wait_running()
        return pid

    def wait_running(self, timeout=15):
        """Wait until no daemon is starting or restarting."""
        wait_until(lambda: all(r["state"] in ("running", "not-installed")
                               for r in self.status()),
                   timeout=timeout, what="every daemon running")

    def status(self):
        """Parse `postern status` into a list of dicts, one per process."""
        out = self.postern("status").stdout
        rows = []
        for line in out.splitlines()[2:]:
            f = line.split()
            rows.append({"service": f[0], "proc": int(f[1]),
                         "pid": 0 if f[2] == "-" else int(f[2]),
                         "restarts": int(f[4]), "state": f[5]})
        for r in rows:
            if r["pid"]:
                self.pids.add(r["pid"])
        return rows

    def service_pids(self, service):
        return [r["pid"] for r in self.status()
                if r["service"] == service and r["state"] == "running"]

    def read_log(self):
        try:
            with open(self.log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        return self.postern("stop")

    def close(self):
        """Stop the instance, then clean up even if the stop failed (a
        test class's tearDownClass)."""
        try:
            self.stop()
        finally:
            self.cleanup()

    def cleanup(self):
        """Kill anything of ours still alive, then remove the directory."""
        master = self.master_pid()
        if master:
            self.pids.add(master)
            self.pids.update(children_of(master))
        for pid in list(self.pids):
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
        release_base(self.base)


# --- postern's IPC framing (lib/core/ipc.h), for tests that speak it -------------
# A frame is a 12-byte header in host byte order (type, payload length, id)
# then the payload; a str is a u32 length, the bytes and a NUL; data is a
# u32 length and the bytes; the hello (type 1) carries the protocol name.

IPC_HELLO = 1


def u32(v):
    return struct.pack("=I", v)


def u64(v):
    return struct.pack("=Q", v)


def pstr(s):
    """An IPC str field (str is UTF-8 encoded, surrogates kept as bytes)."""
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else s
    return u32(len(b)) + b + b"\0"


def pdata(b):
    """An IPC data field."""
    return u32(len(b)) + b


def frame(ftype, fid, payload):
    """A whole frame."""
    return struct.pack("=III", ftype, len(payload), fid) + payload


def recv_frame(sock, who="the peer"):
    """(type, id, payload) of the next frame; EOFError if the link closes."""
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise EOFError("%s closed the link" % who)
            out += chunk
        return out
    t, n, ident = struct.unpack("=III", exact(12))
    return t, ident, exact(n)


def get_str(payload, off):
    """(the str field at off, the offset after it)."""
    (n,) = struct.unpack_from("=I", payload, off)
    s = payload[off + 4:off + 4 + n].decode()
    assert payload[off + 4 + n] == 0
    return s, off + 4 + n + 1


def connect(port, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s, s.makefile("rwb", buffering=0)


def tls_context():
    """A client TLS context that takes the instance's self-signed
    certificate (no name or chain check)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class LineClient:
    """A raw client of a line protocol on 127.0.0.1, in clear text or
    implicit TLS: it sends bytes or text, and what it received waits in
    buf for the subclass that reads its protocol's replies."""

    io_timeout = 10.0
    reset_is_close = True   # closed(): a connection reset is the close

    def __init__(self, port, tls=False, timeout=None):
        if timeout is None:
            timeout = self.io_timeout
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def closed(self, timeout=None):
        """Whether the server closes the connection (EOF, or a TLS error)
        within timeout; what it sends meanwhile is kept in buf."""
        self.sock.settimeout(self.io_timeout if timeout is None else timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return self.reset_is_close
        except ssl.SSLError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def main():
    """Run the calling module's tests and print the plain summary line."""
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    failed = len(r.failures) + len(r.errors) + len(r.unexpectedSuccesses)
    skipped = len(r.skipped)
    # A setUpClass error is an error without a test run: never below 0.
    passed = max(0, r.testsRun - failed - skipped)
    print("integration: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
    # Automake's harness: 77 means skipped, 0 pass, 1 fail.
    if failed:
        sys.exit(1)
    if passed == 0 and skipped:
        sys.exit(77)
    sys.exit(0)
