"""Integration tests for the queue tools: `postern queue` (list, delete,
hold, release, requeue), `postern flush`, mailq(1) and `sendmail -bp`.

They do not need qmgr: each test makes a dev instance with `postern init
--dev`, does not start it, and runs a fake queue manager in this process
on DIR/run/qmgr.ctl that speaks lib/core/qmgrproto.h's control protocol
("postern-qmgr-ctl/1"), answers canned listings and records every request.

The tools first check that master runs the way `postern status` does:
someone holds a lock on its pid file.  The tests stand in for master by
holding an exclusive flock on DIR/run/master.pid (with our pid in it)
for as long as the test runs.
"""

import fcntl
import os
import socket
import struct
import subprocess
import threading
import unittest

import harness
from harness import u32, u64, pstr, frame

SENDMAIL = os.path.join(harness.BUILDDIR, "tools", "sendmail")
MAILQ = os.path.join(harness.BUILDDIR, "tools", "mailq")

IPC_HELLO = 1
USER = 16
QMGR_LIST, QMGR_LISTING, QMGR_FLUSH, QMGR_DELETE = USER + 10, USER + 11, USER + 12, USER + 13
QMGR_HOLD, QMGR_RELEASE, QMGR_REQUEUE, QMGR_DONE = USER + 14, USER + 15, USER + 16, USER + 17
QMGR_LIST_MAX = 500
ACTIVE, DEFERRED, HOLD = 0, 1, 2
PENDING, RDEFERRED = 0, 1
PROTO = "postern-qmgr-ctl/1"

NOW = 1_700_000_000          # Tue Nov 14 2023, in the past: "next try now"
LATER = 4_000_000_000        # year 2096: a real next-try date






def message(mid, size=1000, arrival=NOW, sender="alice@example.test",
            state=DEFERRED, rcpts=(("bob@example.org", RDEFERRED,
                                    "connect to example.org: refused", LATER),)):
    """One listing entry, encoded as the protocol says."""
    out = pstr(mid) + u64(size) + u64(arrival) + pstr(sender) + u32(state) + \
        u32(len(rcpts))
    for addr, rstate, err, nxt in rcpts:
        out += pstr(addr) + u32(rstate) + pstr(err) + u64(nxt)
    return out


class FakeQmgr:
    """A control-socket server run in a thread: answers QMGR_LIST from
    self.messages (encoded entries) and other requests with self.done
    (affected, text); self.requests records (type, id, payload).  Set
    self.listing_hook to a function (start, max, id) -> raw bytes to send
    a broken answer instead."""

    def __init__(self, path):
        self.path = path
        self.messages = []
        self.done = (1, "ok")
        self.done_for = {}          # str arg -> (affected, text)
        self.requests = []
        self.listing_hook = None
        self.done_hook = None
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)       # the tools may not run as root
        self.sock.listen(8)
        self.stopping = False
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(self.path)
            c.close()
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()

    def serve(self):
        while not self.stopping:
            conn, _ = self.sock.accept()
            if self.stopping:
                conn.close()
                return
            try:
                self.session(conn)
            except (OSError, EOFError, AssertionError):
                pass
            finally:
                conn.close()

    @staticmethod
    def recv_exact(conn, n):
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def recv_frame(self, conn):
        ftype, n, fid = struct.unpack("=III", self.recv_exact(conn, 12))
        return ftype, fid, self.recv_exact(conn, n)

    def session(self, conn):
        conn.sendall(frame(IPC_HELLO, 0, pstr(PROTO)))
        ftype, _, payload = self.recv_frame(conn)
        assert ftype == IPC_HELLO and payload == pstr(PROTO)
        while True:
            ftype, fid, payload = self.recv_frame(conn)
            self.requests.append((ftype, fid, payload))
            if ftype == QMGR_LIST:
                start, mx = struct.unpack("=II", payload)
                if self.listing_hook:
                    conn.sendall(self.listing_hook(start, mx, fid))
                    continue
                page = self.messages[start:start + min(mx, QMGR_LIST_MAX)]
                conn.sendall(frame(QMGR_LISTING, fid, u32(len(self.messages)) +
                                   u32(len(page)) + b"".join(page)))
            else:
                arg = None
                if payload:
                    (n,) = struct.unpack("=I", payload[:4])
                    arg = payload[4:4 + n].decode()
                if self.done_hook:
                    conn.sendall(self.done_hook(fid))
                    continue
                affected, text = self.done_for.get(arg, self.done)
                conn.sendall(frame(QMGR_DONE, fid, u32(affected) + pstr(text)))


class QueueToolsTest(unittest.TestCase):

    def setUp(self):
        self.inst = harness.Instance()
        self.addCleanup(self.inst.cleanup)
        self.run_dir = os.path.join(self.inst.dir, "run")
        self.inst.makedirs(self.run_dir)
        self.qmgr = None

    def fake_master(self):
        """Hold master's pid file lock, as a running master does.  The
        file goes before the harness's cleanup, which kills the pid in it
        (here our own)."""
        path = os.path.join(self.run_dir, "master.pid")
        f = open(path, "w")
        f.write("%d\n" % os.getpid())
        f.flush()
        fcntl.flock(f, fcntl.LOCK_EX)

        def release():
            os.unlink(path)
            f.close()
        self.addCleanup(release)

    def fake_qmgr(self):
        self.fake_master()
        self.qmgr = FakeQmgr(os.path.join(self.run_dir, "qmgr.ctl"))
        self.addCleanup(self.qmgr.stop)
        return self.qmgr

    def queue(self, *args):
        return self.inst.postern(*args, check=False)

    def run_tool(self, argv):
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, errors="surrogateescape",
                              timeout=harness.COMMAND_TIMEOUT)

    def requests_of(self, ftype):
        return [r for r in self.qmgr.requests if r[0] == ftype]

    # --- errors before any request --------------------------------------

    def test_not_running(self):
        p = self.queue("queue")
        self.assertEqual(p.returncode, 1)
        self.assertIn("postern is not running", p.stderr)
        p = self.run_tool([MAILQ, "-C", self.inst.conf])
        self.assertEqual(p.returncode, 1)
        self.assertIn("mailq: postern is not running", p.stderr)

    def test_qmgr_not_running(self):
        self.fake_master()
        for args in (("queue",), ("flush",), ("queue", "delete", "ALL")):
            p = self.queue(*args)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn("the queue manager is not running (no %s/qmgr.ctl)"
                          % self.run_dir, p.stderr)

    def test_usage(self):
        for args in (("queue", "frobnicate"), ("queue", "delete"),
                     ("queue", "hold", "ALL", "X1"), ("queue", "delete", "a b"),
                     ("flush", "now")):
            p = self.queue(*args)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn("postern queue" if args[0] == "queue" else "flush", p.stderr)

    # --- listing ----------------------------------------------------------

    def test_empty(self):
        q = self.fake_qmgr()
        p = self.queue("queue")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, "Mail queue is empty\n", ""))
        self.assertEqual([r[2] for r in q.requests], [u32(0) + u32(QMGR_LIST_MAX)])

    def test_three_messages(self):
        q = self.fake_qmgr()
        q.messages = [
            message("AAAAAAAAAA0001aaa00001", size=2048, state=ACTIVE,
                    rcpts=(("carol@example.test", PENDING, "", 0),)),
            message("AAAAAAAAAA0002aaa00002", size=1000, sender=""),
            message("AAAAAAAAAA0003aaa00003", size=100, state=HOLD,
                    rcpts=(("d1@example.net", RDEFERRED, "452 mailbox full", NOW),
                           ("d2@example.net", PENDING, "", 0))),
        ]
        p = self.queue("queue")
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertTrue(lines[0].startswith("-Queue ID-"), lines[0])
        self.assertRegex(lines[1], r"^AAAAAAAAAA0001aaa00001\* +2048 \w{3} \w{3} [ \d]\d "
                         r"\d\d:\d\d:\d\d  alice@example\.test$")
        self.assertEqual(lines[2].strip(), "carol@example.test")
        self.assertEqual(lines[3].strip(), "(pending, next try now)")
        self.assertEqual(lines[4], "")
        self.assertRegex(lines[5], r"^AAAAAAAAAA0002aaa00002  +1000 .*  <>$")
        self.assertEqual(lines[6].strip(), "bob@example.org")
        self.assertRegex(lines[7].strip(), r"^\(deferred, next try \w{3} \w{3} [ \d]\d "
                         r"\d\d:\d\d:\d\d\)$")
        self.assertEqual(lines[8].strip(), "(connect to example.org: refused)")
        self.assertRegex(lines[10], r"^AAAAAAAAAA0003aaa00003! +100 ")
        self.assertEqual([l.strip() for l in lines[11:16]],
                         ["d1@example.net", "(deferred, next try now)",
                          "(452 mailbox full)", "d2@example.net",
                          "(pending, next try now)"])
        # 3148 bytes round up to 4 Kbytes.
        self.assertEqual(lines[-1], "-- 4 Kbytes in 3 messages")
        # Recipients line up under the sender.
        self.assertEqual(lines[2].index("carol"), lines[1].index("alice"))

    def test_paging(self):
        q = self.fake_qmgr()
        q.messages = [message("B%021d" % i, size=1024,
                              rcpts=(("r%d@example.org" % i, PENDING, "", 0),))
                      for i in range(1200)]
        p = self.queue("queue")
        self.assertEqual(p.returncode, 0, p.stderr)
        starts = [struct.unpack("=II", r[2]) for r in self.requests_of(QMGR_LIST)]
        self.assertEqual(starts, [(0, 500), (500, 500), (1000, 500)])
        ids = [l.split()[0] for l in p.stdout.splitlines() if l.startswith("B")]
        self.assertEqual(ids, ["B%021d" % i for i in range(1200)])
        self.assertEqual(p.stdout.splitlines()[-1], "-- 1200 Kbytes in 1200 messages")

    def test_odd_characters_escaped(self):
        q = self.fake_qmgr()
        evil = "x\x1b[31mred\x07\r\nfake\x7f\\@ex\u202eample.test"
        q.messages = [message("C0000000000000000000001",
                              sender="j\u00fcrgen@b\u00fccher.example",
                              rcpts=((evil, RDEFERRED, "550 \x1b]0;title\x07 \x9b bad", LATER),))]
        p = self.run_tool([harness.POSTERN, "-c", self.inst.conf, "queue"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        for ch in "\x1b\x07\r\x7f\u202e\x9b":
            self.assertNotIn(ch, out)
        self.assertIn("x\\x1b[31mred\\x07\\x0d\\x0afake\\x7f\\\\@ex\\xe2\\x80\\xaeample.test", out)
        self.assertIn("(550 \\x1b]0;title\\x07 \\xc2\\x9b bad)", out)
        self.assertIn("j\u00fcrgen@b\u00fccher.example", out)
        # Nothing but the lines the tool meant to print.
        self.assertEqual(len(out.splitlines()), 7)

    def test_mailq_and_sendmail_bp_same_listing(self):
        q = self.fake_qmgr()
        q.messages = [message("D%021d" % i) for i in range(3)]
        want = self.queue("queue")
        self.assertEqual(want.returncode, 0, want.stderr)
        for argv in ([MAILQ, "-C", self.inst.conf], [SENDMAIL, "-C", self.inst.conf, "-bp"]):
            p = self.run_tool(argv)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, want.stdout, ""), argv)
        p = self.run_tool([SENDMAIL, "-C", self.inst.conf, "-bp", "someone"])
        self.assertEqual(p.returncode, 64)

    # --- actions ----------------------------------------------------------

    def test_actions_send_the_right_frames(self):
        q = self.fake_qmgr()
        q.done = (3, "done")
        q.done_for["ZZZ"] = (0, "no such message")
        cases = [
            (("queue", "delete", "AAAAAAAAAA0001aaa00001"), QMGR_DELETE,
             "AAAAAAAAAA0001aaa00001", 0, "3 messages deleted"),
            (("queue", "hold", "ALL"), QMGR_HOLD, "ALL", 0, "3 messages held"),
            (("queue", "release", "ALL"), QMGR_RELEASE, "ALL", 0, "3 messages released"),
            (("queue", "requeue", "ALL"), QMGR_REQUEUE, "ALL", 0, "3 messages requeued"),
            (("queue", "delete", "ZZZ"), QMGR_DELETE, "ZZZ", 1, None),
            (("flush",), QMGR_FLUSH, None, 0, "3 messages scheduled for delivery now"),
        ]
        for args, ftype, arg, rc, out in cases:
            q.requests.clear()
            p = self.queue(*args)
            self.assertEqual(p.returncode, rc, (args, p.stderr))
            self.assertEqual(len(q.requests), 1, args)
            t, fid, payload = q.requests[0]
            self.assertEqual(t, ftype, args)
            self.assertEqual(payload, b"" if arg is None else pstr(arg), args)
            if out:
                self.assertEqual(p.stdout, out + "\n")
            else:
                self.assertIn("ZZZ: no such message", p.stderr)

    def test_several_ids_one_connection(self):
        q = self.fake_qmgr()
        q.done_for["X2"] = (0, "no such message")
        p = self.queue("queue", "hold", "X1", "X2", "X3")
        self.assertEqual(p.returncode, 1)
        self.assertEqual([r[2] for r in q.requests], [pstr("X1"), pstr("X2"), pstr("X3")])
        self.assertEqual(len(set(r[1] for r in q.requests)), 3)   # distinct ids
        self.assertEqual(p.stdout, "1 message held\n1 message held\n")

    # --- malformed answers --------------------------------------------------

    def assert_clean_failure(self, args, what="malformed answer"):
        p = self.queue(*args)
        self.assertEqual(p.returncode, 1, (args, p.stdout, p.stderr))
        self.assertIn(what, p.stderr)
        return p

    def test_malformed_listing(self):
        q = self.fake_qmgr()
        good = message("E0000000000000000000001")
        broken = {
            "short field": lambda s, m, i: frame(QMGR_LISTING, i, u32(1) + u32(1) + good[:-3]),
            "wrong type": lambda s, m, i: frame(QMGR_DONE, i, u32(1) + pstr("x")),
            "wrong id": lambda s, m, i: frame(QMGR_LISTING, i + 7, u32(0) + u32(0)),
            "leftover": lambda s, m, i: frame(QMGR_LISTING, i, u32(1) + u32(1) + good + b"!"),
            "no NUL": lambda s, m, i: frame(QMGR_LISTING, i, u32(1) + u32(1) +
                                            good.replace(b"1\0", b"1!", 1)),
            "bad state": lambda s, m, i: frame(QMGR_LISTING, i, u32(1) + u32(1) +
                                               message("E1", state=9)),
            "too many": lambda s, m, i: frame(QMGR_LISTING, i, u32(900) + u32(501)),
            "huge rcpt count": lambda s, m, i: frame(QMGR_LISTING, i, u32(1) + u32(1) +
                                                     pstr("E2") + u64(1) + u64(1) +
                                                     pstr("") + u32(0) + u32(0xffffffff)),
            "eof": lambda s, m, i: b"",
        }
        for name, hook in broken.items():
            q.listing_hook = hook
            p = self.queue("queue")
            self.assertEqual(p.returncode, 1, (name, p.stdout, p.stderr))
            self.assertTrue("malformed answer" in p.stderr or "no answer" in p.stderr,
                            (name, p.stderr))
            self.assertNotIn("E0000000000000000000001", p.stdout, name)

    def test_malformed_done(self):
        q = self.fake_qmgr()
        for name, hook in {
            "short": lambda i: frame(QMGR_DONE, i, u32(1)[:2]),
            "wrong type": lambda i: frame(QMGR_LISTING, i, u32(0) + u32(0)),
            "leftover": lambda i: frame(QMGR_DONE, i, u32(1) + pstr("ok") + b"x"),
        }.items():
            q.done_hook = hook
            self.assert_clean_failure(("flush",))
            self.assert_clean_failure(("queue", "delete", "ALL"))

    def test_root_mode_needs_root(self):
        """In root mode only root may use the control socket: anyone else
        is told so before anything is tried."""
        if os.getuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
            self.skipTest("needs root and setpriv")
        self.fake_qmgr()
        with open(self.inst.conf) as f:
            text = f.read()
        with open(self.inst.conf, "w") as f:
            f.write(text.replace("mode = dev", "mode = root"))
        os.chmod(self.inst.dir, 0o755)
        os.chmod(self.inst.conf, 0o644)
        nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        for argv, prog in (([MAILQ, "-C", self.inst.conf], "mailq"),
                           ([SENDMAIL, "-C", self.inst.conf, "-bp"], "sendmail"),
                           ([harness.POSTERN, "-c", self.inst.conf, "queue"], "postern queue")):
            p = self.run_tool(nobody + argv)
            self.assertEqual(p.returncode, 1, (argv, p.stderr))
            self.assertIn("%s: permission denied (ask the administrator, or run as root)"
                          % prog, p.stderr)
        self.assertEqual(self.qmgr.requests, [])
        p = self.run_tool([MAILQ, "-C", self.inst.conf])
        self.assertEqual((p.returncode, p.stdout), (0, "Mail queue is empty\n"), p.stderr)

    # --- memory -------------------------------------------------------------

    def test_valgrind_clean(self):
        if not os.path.exists("/usr/bin/valgrind"):
            self.skipTest("no valgrind")
        if harness.sanitized_build():
            self.skipTest("an AddressSanitizer build: valgrind cannot run it")
        q = self.fake_qmgr()
        q.messages = [message("F%021d" % i) for i in range(600)]
        for argv in ([harness.POSTERN, "-c", self.inst.conf, "queue"],
                     [harness.POSTERN, "-c", self.inst.conf, "queue", "delete", "X1", "X2"],
                     [MAILQ, "-C", self.inst.conf],
                     [SENDMAIL, "-C", self.inst.conf, "-bp"]):
            p = self.run_tool(["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=all",
                               "--error-exitcode=99"] + argv)
            self.assertEqual(p.returncode, 0, (argv, p.stderr[-2000:]))
        q.listing_hook = lambda s, m, i: frame(QMGR_LISTING, i, u32(1) + u32(1) + b"\1\0")
        p = self.run_tool(["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=all",
                           "--error-exitcode=99", harness.POSTERN, "-c", self.inst.conf, "queue"])
        self.assertEqual(p.returncode, 1, p.stderr[-2000:])


if __name__ == "__main__":
    harness.main()
