"""Integration tests for qmgr(8), the queue manager, in a dev instance:
mail from smtpd and sendmail(1) reaches the Maildir byte-exact and leaves
the spool empty; remote recipients stay deferred (relay agent not
available), never bounced; a recipient unknown at delivery time gets a
RFC 3464 bounce; a temporary local failure is retried and delivered once
fixed; the control socket lists, holds, releases and deletes; and kill -9
of qmgr and local during a 500-message stream loses nothing; and while a
full disk fails every pickup, qmgr logs the failure once per interval."""

import email
import errno
import os
import signal
import smtplib
import socket
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import pstr, recv_frame  # noqa: E402

CONFIG = """
queue_retry_min = 1s
queue_retry_max = 2s
restart_delay_max = 1s
qmgr_local_concurrency = 1
"""
SENDMAIL = os.path.join(harness.BUILDDIR, "tools", "sendmail")
MAP_RECHECK = 1.5       # readers notice a replaced map within a second

IPC_HELLO = 1
QMGR_LIST, QMGR_LISTING, QMGR_FLUSH, QMGR_DELETE = 26, 27, 28, 29
QMGR_HOLD, QMGR_RELEASE, QMGR_REQUEUE, QMGR_DONE = 30, 31, 32, 33



class Ctl:
    """A blocking client of run_dir/qmgr.ctl (lib/core/qmgrproto.h)."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.send(IPC_HELLO, 0, pstr("postern-qmgr-ctl/1"))
        t, _, p = self.recv()
        assert t == IPC_HELLO and p == pstr("postern-qmgr-ctl/1"), (t, p)
        self.next_id = 1

    def send(self, t, ident, payload):
        self.s.sendall(struct.pack("=III", t, len(payload), ident) + payload)

    def recv(self):
        return recv_frame(self.s, "qmgr")

    def call(self, t, payload=b""):
        self.next_id += 1
        self.send(t, self.next_id, payload)
        rt, ident, p = self.recv()
        assert ident == self.next_id
        return rt, p

    def op(self, t, qid="ALL"):
        rt, p = self.call(t, b"" if t == QMGR_FLUSH else pstr(qid))
        assert rt == QMGR_DONE
        n, = struct.unpack_from("=I", p)
        return n

    def list(self):
        return self.list_page(0, 500)

    def list_page(self, start, count):
        """(total messages, the entries from the start-th, at most count)."""
        rt, p = self.call(QMGR_LIST, struct.pack("=II", start, count))
        assert rt == QMGR_LISTING
        off = 0

        def u32():
            nonlocal off
            v, = struct.unpack_from("=I", p, off)
            off += 4
            return v

        def u64():
            nonlocal off
            v, = struct.unpack_from("=Q", p, off)
            off += 8
            return v

        def s():
            nonlocal off
            n = u32()
            v = p[off:off + n].decode()
            off += n + 1
            return v
        total, n = u32(), u32()
        msgs = []
        for _ in range(n):
            m = {"id": s(), "size": u64(), "arrival": u64(), "sender": s(),
                 "state": u32(), "rcpts": []}
            for _ in range(u32()):
                m["rcpts"].append({"addr": s(), "rstate": u32(), "error": s(),
                                   "next_try": u64()})
            msgs.append(m)
        assert off == len(p)
        return total, msgs

    def close(self):
        self.s.close()


class Qmgr(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = harness.Instance(extra_config=CONFIG)
        try:
            cls.inst.start()
        except BaseException:
            cls.inst.cleanup()      # tearDownClass does not run then
            raise
        cls.port = cls.inst.base + 25
        cls.queue = os.path.join(cls.inst.dir, "spool", "queue")
        cls.maildir = os.path.join(cls.inst.dir, "mail", "example.test", "demo")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def ctl(self):
        c = Ctl(os.path.join(self.inst.dir, "run", "qmgr.ctl"))
        self.addCleanup(c.close)
        return c

    def send(self, rcpts, msg, sender="sender@remote.test"):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
        try:
            s.sendmail(sender, rcpts, msg)
        finally:
            s.quit()

    def files(self):
        d = os.path.join(self.maildir, "new")
        if not os.path.isdir(d):
            return {}
        out = {}
        for name in os.listdir(d):
            with open(os.path.join(d, name), "rb") as f:
                out[name] = f.read()
        return out

    def wait_for(self, needle, timeout=10):
        def found():
            return [v for v in self.files().values() if needle in v]
        return harness.wait_until(found, timeout=timeout, what="delivery of %r" % needle)

    def spool_empty(self):
        return os.listdir(self.queue) == [] and \
            os.listdir(os.path.join(self.inst.dir, "spool", "incoming", "new")) == []

    def test_01_smtp_byte_exact(self):
        body = (b"From: a@remote.test\r\nTo: demo@example.test\r\n"
                b"Message-ID: <t01@remote.test>\r\nSubject: t01\r\n\r\n"
                b"line one\r\n..dot\r\n\xc3\xa9 8bit\r\n")
        self.send(["demo@example.test"], body)
        got = self.wait_for(b"<t01@remote.test>", timeout=5)
        self.assertEqual(len(got), 1)
        lf = body.replace(b"\r\n", b"\n")  # smtplib dot-stuffs, smtpd un-stuffs
        self.assertTrue(got[0].endswith(lf), got[0])
        added = got[0][:-len(lf)].decode().splitlines()
        self.assertTrue(added[0].startswith("Return-Path: <sender@remote.test>"), added)
        for line in added:
            self.assertTrue(line.split(":")[0] in ("Return-Path", "Delivered-To", "Received")
                            or line[0] in " \t", added)
        harness.wait_until(self.spool_empty, timeout=5, what="empty spool")

    def test_02_sendmail(self):
        p = subprocess.run([SENDMAIL, "-C", self.inst.conf, "demo@example.test"],
                           input=b"Subject: t02\nMessage-ID: <t02@local>\n\nvia sendmail\n",
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_for(b"<t02@local>")
        harness.wait_until(self.spool_empty, timeout=5, what="empty spool")

    def test_03_remote_deferred_not_bounced(self):
        before = len(self.files())
        self.send(["far@remote.test", "demo@example.test"],
                  b"Subject: t03\r\nMessage-ID: <t03@remote.test>\r\n\r\nx\r\n",
                  sender="demo@example.test")
        self.wait_for(b"<t03@remote.test>")

        c = self.ctl()

        def deferred():
            # Listed with the reason; no state file is written for it
            # (an unavailable agent is no delivery result: qmgr(8)).
            # The local recipient leaves the listing once local's result
            # is in: its file shows in new/ a moment before that.
            for m in c.list()[1]:
                if any("relay agent not available" in r["error"] for r in m["rcpts"]) \
                        and len(m["rcpts"]) == 1:
                    return m["id"]
            return None
        qid = harness.wait_until(deferred, timeout=5, what="deferred state")
        total, msgs = c.list()
        m = [m for m in msgs if m["id"] == qid][0]
        self.assertEqual(m["sender"], "demo@example.test")
        self.assertEqual([r["addr"] for r in m["rcpts"]], ["far@remote.test"])
        self.assertIn("relay agent not available", m["rcpts"][0]["error"])
        # The administrator's tools show the same, through the real qmgr.
        tools = os.path.join(harness.BUILDDIR, "tools")
        for cmd in ([harness.POSTERN, "-c", self.inst.conf, "queue"],
                    [os.path.join(tools, "mailq"), "-C", self.inst.conf],
                    [os.path.join(tools, "sendmail"), "-C", self.inst.conf, "-bp"]):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(qid, p.stdout)
            self.assertIn("far@remote.test", p.stdout)
            self.assertIn("relay agent not available", p.stdout)
        p = subprocess.run([harness.POSTERN, "-c", self.inst.conf, "queue", "hold", qid],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([harness.POSTERN, "-c", self.inst.conf, "queue", "release", qid],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        # Retried (queue_retry_max is 2s) but still there, and no bounce.
        time.sleep(4)
        self.assertTrue(os.path.exists(os.path.join(self.queue, qid)))
        self.assertEqual(len(self.files()), before + 1)
        # Hold, release, requeue, delete through the control socket.
        self.assertEqual(c.op(QMGR_HOLD, qid), 1)
        self.assertEqual([m["state"] for m in c.list()[1] if m["id"] == qid], [2])
        self.assertEqual(c.op(QMGR_RELEASE, qid), 1)
        self.assertEqual(c.op(QMGR_REQUEUE, qid), 1)
        self.assertEqual(c.op(QMGR_FLUSH), 0 + c.list()[0])
        self.assertEqual(c.op(QMGR_DELETE, "NOSUCHID"), 0)
        self.assertEqual(c.op(QMGR_DELETE, qid), 1)
        harness.wait_until(self.spool_empty, timeout=5, what="empty spool")
        self.assertEqual(len(self.files()), before + 1)

    def test_04_unknown_at_delivery_bounces(self):
        p = subprocess.run([harness.POSTERN, "-c", self.inst.conf, "user", "add",
                            "bob@example.test"], input="pw12345678\n", text=True,
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        time.sleep(MAP_RECHECK)
        qmgr = self.inst.service_pids("qmgr")[0]
        os.kill(qmgr, signal.SIGSTOP)
        try:
            self.send(["bob@example.test"],
                      b"Subject: t04\r\nMessage-ID: <t04@example.test>\r\n\r\nx\r\n",
                      sender="demo@example.test")
            self.inst.postern("user", "del", "bob@example.test")
            time.sleep(MAP_RECHECK)
        finally:
            os.kill(qmgr, signal.SIGCONT)
        got = self.wait_for(b"multipart/report", timeout=10)
        msg = email.message_from_bytes(got[0])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        parts = [p.get_content_type() for p in msg.walk()]
        self.assertIn("message/delivery-status", parts)
        self.assertIn(b"bob@example.test", got[0])
        self.assertIn(b"Action: failed", got[0])
        self.assertIn(b"<t04@example.test>", got[0])
        harness.wait_until(self.spool_empty, timeout=5, what="empty spool")

    def test_05_temporary_failure_retried(self):
        new = os.path.join(self.maildir, "new")
        os.rename(new, new + ".away")
        with open(new, "w") as f:
            f.write("not a directory\n")
        try:
            self.send(["demo@example.test"],
                      b"Subject: t05\r\nMessage-ID: <t05@remote.test>\r\n\r\nx\r\n")

            def deferred():
                for name in os.listdir(self.queue):
                    if name.endswith(".state"):
                        with open(os.path.join(self.queue, name)) as f:
                            if "defer 0" in f.read():
                                return True
                return False
            harness.wait_until(deferred, timeout=10, what="deferral")
        finally:
            os.unlink(new)
            os.rename(new + ".away", new)
        self.wait_for(b"<t05@remote.test>", timeout=10)
        harness.wait_until(self.spool_empty, timeout=5, what="empty spool")
        self.assertNotIn(b"multipart/report", b"".join(
            v for v in self.files().values() if b"t05" in v))

    def test_06_kill_during_stream(self):
        total = 500
        kills, errors = harness.stream_while_killing(
            self.inst, self.port, total, 5,
            lambda n: ("Subject: s%d\r\nMessage-ID: <s%d@stream.test>\r\n\r\n"
                       "message %d\r\n" % (n, n, n)).encode(),
            "sender@remote.test", ["demo@example.test"])
        self.assertEqual(errors, [])
        self.assertGreater(kills, 0)

        def counts():
            c = {}
            for v in self.files().values():
                i = v.find(b"@stream.test>")
                if i > 0:
                    mid = v[v.rfind(b"<s", 0, i):i]
                    c[mid] = c.get(mid, 0) + 1
            return c
        harness.wait_until(lambda: len(counts()) == total, timeout=60,
                           interval=0.5, what="all %d messages" % total)
        # The window: a request delivered but not yet recorded when a
        # process dies.  With one request in flight (the instance's
        # qmgr_local_concurrency), at most one duplicate per kill.
        dups = sum(n - 1 for n in counts().values())
        self.assertLessEqual(dups, kills)
        harness.wait_until(self.spool_empty, timeout=20, what="empty spool")


LOG_LIMIT_S = 10        # lib/core/log.h LOG_LIMIT_MS


@unittest.skipUnless(os.geteuid() == 0, "mounting a file system needs root")
class PickupDiskFull(unittest.TestCase):
    """A spool whose disk is full: messages in incoming/new cannot be moved
    into queue/ (the directory needs a block it cannot get), every scan
    fails for every file, and qmgr logs that once per interval, then with
    the count of lines left out; once there is space, the mail moves on."""

    def setUp(self):
        # A reserve the small disk can keep, so smtpd takes the messages.
        self.inst = harness.Instance(extra_config=CONFIG + "queue_minfree = 16k\n")
        self.spool = os.path.join(self.inst.dir, "spool")
        self.image = os.path.join(self.inst.dir, "spool.img")
        self.mounted = False
        self.addCleanup(self.inst.cleanup)
        self.inst.makedirs(self.spool)
        with open(self.image, "wb") as f:
            f.truncate(3 << 20)
        for cmd in (["mkfs.ext4", "-q", "-F", "-b", "1024", "-m", "0", "-N", "2048",
                     self.image],
                    ["mount", "-o", "loop", self.image, self.spool]):
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
            if p.returncode != 0:
                self.skipTest("cannot make a small ext4 here: " + p.stderr.strip())
        self.mounted = True
        self.addCleanup(self.umount)
        self.inst.own(self.spool)           # the new file system's root
        self.set_qmgr(False)
        self.inst.start()
        self.addCleanup(self.inst.stop)

    def umount(self):
        subprocess.run(["umount", "-l", self.spool], timeout=30)

    def set_qmgr(self, enable):
        with open(self.inst.conf) as f:
            text = f.read()
        off = "service qmgr {\n    enable = no\n"
        on = "service qmgr {\n"
        with open(self.inst.conf, "w") as f:
            f.write(text.replace(off, on, 1) if enable else text.replace(on, off, 1))

    def fill(self):
        """Use every block, then fill queue/'s directory blocks with
        entries (empty files need inodes only), so that a rename into it
        fails with ENOSPC.  Returns what to remove to free the space."""
        made = [harness.fill_file(os.path.join(self.spool, "filler"))]
        queue = os.path.join(self.spool, "queue")
        for i in range(100000):
            path = os.path.join(queue, ".fill%05d" % i)
            try:
                os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            except OSError as e:
                self.assertEqual(e.errno, errno.ENOSPC)
                break
            made.append(path)
        # The setup works: a rename into queue/ fails as qmgr's will.
        probe = os.path.join(self.spool, "incoming", "tmp", "probe")
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o600))
        with self.assertRaises(OSError) as cm:
            os.rename(probe, os.path.join(queue, "probe"))
        self.assertEqual(cm.exception.errno, errno.ENOSPC)
        os.unlink(probe)
        return made

    def notify(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(os.path.join(self.inst.dir, "run", "qmgr"))
        finally:
            s.close()

    def failures(self):
        return [line for line in self.inst.read_log().splitlines()
                if "event=pickup_failed" in line]

    def test_pickup_failures_are_rate_limited(self):
        port = self.inst.base + 25
        for i in range(3):
            c = smtplib.SMTP("127.0.0.1", port, timeout=20)
            try:
                c.sendmail("sender@remote.test", ["demo@example.test"],
                           b"Subject: %d\r\n\r\nbody\r\n" % i)
            finally:
                c.quit()
        new = os.path.join(self.spool, "incoming", "new")
        self.assertEqual(len(os.listdir(new)), 3)
        made = self.fill()

        self.set_qmgr(True)
        self.inst.postern("reload")
        harness.wait_until(lambda: self.inst.service_pids("qmgr"), timeout=15,
                           what="qmgr running")
        harness.wait_until(self.failures, timeout=10, what="a pickup failure logged")
        started = time.monotonic()
        for _ in range(30):         # each notice is a scan: 3 failures each
            self.notify()
            time.sleep(0.02)
        time.sleep(0.5)             # the last scans run
        lines = self.failures()
        self.assertEqual(len(lines), 1, lines[:4])
        self.assertIn("No space left on device", lines[0])
        self.assertNotIn("suppressed=", lines[0])
        self.assertEqual(len(os.listdir(new)), 3)

        # After the interval, the next failure is logged with the count.
        time.sleep(max(0, LOG_LIMIT_S + 0.5 - (time.monotonic() - started)))
        self.notify()
        harness.wait_until(lambda: len(self.failures()) >= 2, timeout=10,
                           what="the second pickup failure line")
        lines = self.failures()
        self.assertEqual(len(lines), 2, lines[:4])
        # The failures in between were counted: the first scan's other
        # two files and three for each later scan (notices close together
        # share a scan, so not one per notice under load).
        n = int(lines[1].rsplit("suppressed=", 1)[1].split()[0])
        self.assertGreaterEqual(n, 2 + 3 * 5)

        # Space again: the next scan moves all three on, nothing is lost.
        for path in made:
            os.unlink(path)
        self.notify()
        harness.wait_until(lambda: os.listdir(new) == [], timeout=15,
                           what="incoming/new emptied")
        maildir = os.path.join(self.inst.dir, "mail", "example.test", "demo", "new")
        harness.wait_until(lambda: os.path.isdir(maildir) and len(os.listdir(maildir)) == 3,
                           timeout=20, what="three messages delivered")


if __name__ == "__main__":
    harness.main()
