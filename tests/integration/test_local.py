"""Integration tests for local(8), the local delivery agent: a dev
instance (demo@example.test, postmaster alias), queue files written here in
the qfile format, and a small client of the agent protocol connected to
run_dir/local, passing the queue file's fd with each request."""

import os
import re
import socket
import struct
import subprocess
import tempfile
import time
import unittest

import harness
from harness import pstr, recv_frame

IPC_HELLO = 1
AGENT_DELIVER = 16
AGENT_RESULT = 17
OK, TEMP, PERM = 0, 1, 2
# Readers notice a recompiled map within a second.
MAP_RECHECK = 1.2



class Agent:
    """A client of postern-agent/1."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.send(IPC_HELLO, 0, pstr("postern-agent/1"))
        t, _, payload = self.recv()
        assert t == IPC_HELLO and b"postern-agent/1" in payload
        self.next_id = 1

    def send(self, t, ident, payload, fds=()):
        data = struct.pack("=III", t, len(payload), ident) + payload
        if fds:
            socket.send_fds(self.s, [data], list(fds))
        else:
            self.s.sendall(data)

    def recv(self):
        return recv_frame(self.s, "the agent")

    def deliver(self, qpath, body_offset, sender, rcpts):
        """Send one request; return {rcpt: (status, esc, text, forwards)}."""
        ident = self.next_id
        self.next_id += 1
        p = pstr("QID%d" % ident) + struct.pack("=Q", body_offset) + pstr(sender)
        p += struct.pack("=I", len(rcpts))
        for i, r in enumerate(rcpts):
            p += struct.pack("=I", i) + pstr(r)
        fd = os.open(qpath, os.O_RDONLY)
        try:
            self.send(AGENT_DELIVER, ident, p, [fd])
        finally:
            os.close(fd)
        t, rid, payload = self.recv()
        assert t == AGENT_RESULT and rid == ident
        return parse_result(payload, rcpts)

    def close(self):
        self.s.close()


def crlf_size(data):
    """The size of data with every LF not after CR made CRLF."""
    return len(data) + len(re.findall(rb"(?<!\r)\n", data))


def parse_result(p, rcpts):
    off = 0

    def u32():
        nonlocal off
        v = struct.unpack_from("=I", p, off)[0]
        off += 4
        return v

    def s():
        nonlocal off
        n = u32()
        v = p[off:off + n].decode()
        off += n + 1
        return v

    out = {}
    for _ in range(u32()):
        idx, status, esc, text = u32(), u32(), s(), s()
        fwd = [s() for _ in range(u32())]
        out[rcpts[idx]] = (status, esc, text, fwd)
    assert off == len(p)
    return out


class LocalTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.inst = harness.Instance()
        cls.inst.start()
        cls.mail = os.path.join(cls.inst.dir, "mail")
        cls.sock = os.path.join(cls.inst.dir, "run", "local")
        harness.wait_until(lambda: os.path.exists(cls.sock), what="local socket")
        cls.qdir = tempfile.mkdtemp(prefix="ptq-", dir="/tmp")
        cls.nq = 0

    @classmethod
    def tearDownClass(cls):
        cls.inst.stop()
        cls.inst.cleanup()
        subprocess.run(["rm", "-rf", cls.qdir])

    def setUp(self):
        self.agent = Agent(self.sock)

    def tearDown(self):
        self.agent.close()

    def qfile(self, message, rcpts=("demo@example.test",), sender="s@remote.test"):
        """Write a queue file; return (path, body offset)."""
        LocalTest.nq += 1
        env = "POSTERN-QUEUE 1\nid Q%d\narrival 1.0\nsender %s\nbody 7BIT\n" \
              "smtputf8 0\nret NONE\nclient 127.0.0.1\nproto ESMTP\n" % (self.nq, sender)
        env += "".join("rcpt %s 0 -\n" % r for r in rcpts) + "\n"
        path = os.path.join(self.qdir, "q%d" % self.nq)
        with open(path, "wb") as f:
            f.write(env.encode() + message)
        return path, len(env.encode())

    def newdir(self, user, folder=""):
        return os.path.join(self.mail, "example.test", user, folder, "new")

    def files(self, user, folder=""):
        d = self.newdir(user, folder)
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def send(self, message, rcpts, sender="s@remote.test"):
        path, off = self.qfile(message, rcpts, sender)
        return self.agent.deliver(path, off, sender, list(rcpts))

    def test_01_deliver_byte_exact(self):
        before = self.files("demo")
        msg = b"Subject: t1\nFrom: s@remote.test\n\nline 1\r\n\n.\nlast without newline"
        r = self.send(msg, ["demo@example.test"])
        self.assertEqual(r["demo@example.test"][:2], (OK, "2.0.0"))
        new = [f for f in self.files("demo") if f not in before]
        self.assertEqual(len(new), 1)
        with open(os.path.join(self.newdir("demo"), new[0]), "rb") as f:
            got = f.read()
        want = b"Return-Path: <s@remote.test>\nDelivered-To: demo@example.test\n" + msg
        self.assertEqual(got, want)
        self.assertTrue(new[0].endswith(",S=%d,W=%d" % (len(want), crlf_size(want))),
                        new[0])

    def test_02_postmaster_alias_and_forward(self):
        with open(os.path.join(self.inst.dir, "maps", "aliases"), "a") as f:
            f.write("ext@example.test far@elsewhere.test\n"
                    "team@example.test demo@example.test, u2@example.test, u3@example.test\n")
        for u in ("u2", "u3"):
            p = subprocess.run([harness.POSTERN, "-c", self.inst.conf, "user", "add",
                                u + "@example.test"], input="pw12345678\n", text=True,
                               capture_output=True)
            self.assertEqual(p.returncode, 0, p.stderr)
        self.inst.postern("map", os.path.join(self.inst.dir, "maps", "aliases"))
        time.sleep(MAP_RECHECK)
        before = len(self.files("demo"))
        r = self.send(b"Subject: pm\n\nx\n", ["postmaster@example.test", "ext@example.test"])
        self.assertEqual(r["postmaster@example.test"][0], OK)
        self.assertEqual(len(self.files("demo")), before + 1)
        self.assertEqual(r["ext@example.test"][0], OK)
        self.assertEqual(r["ext@example.test"][3], ["far@elsewhere.test"])
        self.assertEqual(len(self.files("demo")), before + 1)
        # Fan-out to three local mailboxes.
        r = self.send(b"Subject: team\n\nx\n", ["team@example.test"])
        self.assertEqual(r["team@example.test"][0], OK)
        self.assertEqual(len(self.files("demo")), before + 2)
        self.assertEqual(len(self.files("u2")), 1)
        self.assertEqual(len(self.files("u3")), 1)

    def test_03_unknown_user(self):
        r = self.send(b"Subject: x\n\nx\n", ["nobody-here@example.test"])
        self.assertEqual(r["nobody-here@example.test"][:2], (PERM, "5.1.1"))

    def test_04_loop(self):
        r = self.send(b"Delivered-To: other@x\nDELIVERED-TO:\n <Demo@example.test>\n\nx\n",
                      ["demo@example.test"])
        self.assertEqual(r["demo@example.test"][:2], (PERM, "5.4.6"))

    def test_05_plus_tag(self):
        before = len(self.files("demo"))
        r = self.send(b"Subject: tag\n\nx\n", ["demo+news@example.test"])
        self.assertEqual(r["demo+news@example.test"][0], OK)
        self.assertEqual(len(self.files("demo")), before + 1)
        self.inst.makedirs(os.path.join(self.mail, "example.test", "demo", ".News"))
        r = self.send(b"Subject: tag2\n\nx\n", ["demo+news@example.test"])
        self.assertEqual(r["demo+news@example.test"][0], OK)
        self.assertEqual(len(self.files("demo")), before + 1)
        self.assertEqual(len(self.files("demo", ".News")), 1)

    def test_06_unwritable_then_retry(self):
        self.send(b"Subject: x\n\nx\n", ["u2@example.test"])
        new = self.newdir("u2")
        subprocess.run(["rm", "-rf", new], check=True)
        with open(new, "w") as f:      # new/ is a file: fails even for root
            f.write("x")
        path, off = self.qfile(b"Subject: retry\n\nx\n", ["u2@example.test"])
        r = self.agent.deliver(path, off, "s@remote.test", ["u2@example.test"])
        self.assertEqual(r["u2@example.test"][0], TEMP)
        self.assertEqual(r["u2@example.test"][1], "4.3.0")
        os.unlink(new)
        r = self.agent.deliver(path, off, "s@remote.test", ["u2@example.test"])
        self.assertEqual(r["u2@example.test"][0], OK)
        self.assertEqual(len(self.files("u2")), 1)
        tmp = os.path.join(self.mail, "example.test", "u2", "tmp")
        self.assertEqual(os.listdir(tmp), [])

    def test_07_symlink_refused(self):
        outside = tempfile.mkdtemp(prefix="pto-", dir="/tmp")
        try:
            self.send(b"Subject: x\n\nx\n", ["u3@example.test"])
            ud = os.path.join(self.mail, "example.test", "u3")
            subprocess.run(["rm", "-rf", ud], check=True)
            os.symlink(outside, ud)
            r = self.send(b"Subject: x\n\nx\n", ["u3@example.test"])
            self.assertEqual(r["u3@example.test"][0], TEMP)
            self.assertIn("symlink", r["u3@example.test"][2])
            self.assertEqual(os.listdir(outside), [])
            os.unlink(ud)
        finally:
            subprocess.run(["rm", "-rf", outside])

    def test_08_quota(self):
        self.inst.postern("user", "quota", "demo@example.test", "1k")
        time.sleep(MAP_RECHECK)
        try:
            r = self.send(b"Subject: big\n\n" + b"x" * 2000 + b"\n", ["demo@example.test"])
            self.assertEqual(r["demo@example.test"][:2], (TEMP, "4.2.2"))
            self.assertIn("mailbox full", r["demo@example.test"][2])
        finally:
            self.inst.postern("user", "quota", "demo@example.test", "0")
            time.sleep(MAP_RECHECK)

    def test_09_garbage_then_serves(self):
        self.agent.s.sendall(struct.pack("=III", 999, 4, 1) + b"junk")
        with self.assertRaises((EOFError, ConnectionResetError)):
            self.agent.recv()
        self.agent.close()
        self.agent = Agent(self.sock)
        r = self.send(b"Subject: after\n\nx\n", ["demo@example.test"])
        self.assertEqual(r["demo@example.test"][0], OK)

    def test_10_pipelined_requests(self):
        """Several requests in flight on one link; each answered once."""
        ids = []
        for i in range(5):
            path, off = self.qfile(b"Subject: p%d\n\nx\n" % i)
            ident = 100 + i
            p = pstr("P%d" % i) + struct.pack("=Q", off) + pstr("") + \
                struct.pack("=I", 1) + struct.pack("=I", 0) + pstr("demo@example.test")
            fd = os.open(path, os.O_RDONLY)
            self.agent.send(AGENT_DELIVER, ident, p, [fd])
            os.close(fd)
            ids.append(ident)
        got = []
        for _ in ids:
            t, rid, payload = self.agent.recv()
            self.assertEqual(t, AGENT_RESULT)
            self.assertEqual(parse_result(payload, ["demo@example.test"])
                             ["demo@example.test"][0], OK)
            got.append(rid)
        self.assertEqual(sorted(got), ids)

    def test_11_fan_out_sizes(self):
        """An alias fan-out: each copy byte-exact with its own
        Delivered-To, and its name's S= and W= right (the message is read
        once and written from memory to every mailbox)."""
        with open(os.path.join(self.inst.dir, "maps", "aliases"), "a") as f:
            f.write("crew@example.test demo@example.test, u2@example.test\n")
        self.inst.postern("map", os.path.join(self.inst.dir, "maps", "aliases"))
        time.sleep(MAP_RECHECK)
        msg = b"Subject: crew\r\n\nbare lf\ncrlf\r\n" + b"x" * 5000 + b"\nend"
        before = {u: self.files(u) for u in ("demo", "u2")}
        r = self.send(msg, ["crew@example.test"])
        self.assertEqual(r["crew@example.test"][0], OK)
        for u in ("demo", "u2"):
            new = [f for f in self.files(u) if f not in before[u]]
            self.assertEqual(len(new), 1, u)
            with open(os.path.join(self.newdir(u), new[0]), "rb") as f:
                got = f.read()
            want = b"Return-Path: <s@remote.test>\nDelivered-To: %s@example.test\n" \
                % u.encode() + msg
            self.assertEqual(got, want)
            self.assertTrue(new[0].endswith(",S=%d,W=%d" % (len(want), crlf_size(want))),
                            new[0])

    def test_12_large_message(self):
        """Past the in-memory limit the body is copied from the queue file."""
        line = b"0123456789" * 7 + b"\n"
        msg = b"Subject: large\n\n" + line * 2000 + b"crlf\r\n" + line * 2000
        before = self.files("demo")
        r = self.send(msg, ["demo@example.test"])
        self.assertEqual(r["demo@example.test"][0], OK)
        new = [f for f in self.files("demo") if f not in before]
        with open(os.path.join(self.newdir("demo"), new[0]), "rb") as f:
            got = f.read()
        self.assertEqual(got[-len(msg):], msg)
        self.assertTrue(new[0].endswith(",S=%d,W=%d" % (len(got), crlf_size(got))),
                        new[0])

    def test_13_maildir_replaced_between_deliveries(self):
        """local keeps Maildirs open: one renamed away and created afresh
        gets the next message, the old one nothing more."""
        self.send(b"Subject: a\n\nx\n", ["u3@example.test"])
        ud = os.path.join(self.mail, "example.test", "u3")
        old = ud + ".old"
        os.rename(ud, old)
        r = self.send(b"Subject: b\n\nx\n", ["u3@example.test"])
        self.assertEqual(r["u3@example.test"][0], OK)
        self.assertEqual(len(self.files("u3")), 1)
        self.assertEqual(len(os.listdir(os.path.join(old, "new"))), 1)
        subprocess.run(["rm", "-rf", old], check=True)
        # Only tmp/ removed: created again, the message delivered.
        subprocess.run(["rm", "-rf", os.path.join(ud, "tmp")], check=True)
        r = self.send(b"Subject: c\n\nx\n", ["u3@example.test"])
        self.assertEqual(r["u3@example.test"][0], OK)
        self.assertEqual(len(self.files("u3")), 2)

    def test_14_duplicates_delivered_once(self):
        """Two recipients of one request that lead to the same mailbox
        (an alias and its member): one copy, both recipients ok; a
        different +tag is a different delivery."""
        before = {u: len(self.files(u)) for u in ("demo", "u2")}
        rcpts = ["crew@example.test", "demo@example.test", "DEMO@Example.Test"]
        r = self.send(b"Subject: dup\n\nx\n", rcpts)
        for a in rcpts:
            self.assertEqual(r[a][:2], (OK, "2.0.0"), a)
        self.assertEqual(len(self.files("demo")), before["demo"] + 1)
        self.assertEqual(len(self.files("u2")), before["u2"] + 1)
        self.assertIn("event=duplicate", self.inst.read_log())
        r = self.send(b"Subject: dup2\n\nx\n", ["demo@example.test", "demo+x@example.test"])
        self.assertEqual(r["demo+x@example.test"][0], OK)
        self.assertEqual(len(self.files("demo")), before["demo"] + 3)

    def test_99_reload_closes_the_cache(self):
        """SIGHUP (postern reload): the retiring local closes its cached
        Maildirs; its successor delivers."""
        old = self.inst.service_pids("local")
        self.agent.close()
        self.inst.postern("reload")
        harness.wait_until(lambda: "event=maildir_cache_closed" in self.inst.read_log(),
                           what="the cache closed")
        harness.wait_until(lambda: [p for p in self.inst.service_pids("local")
                                    if p not in old], what="a new local")
        self.agent = Agent(self.sock)
        r = self.send(b"Subject: after reload\n\nx\n", ["demo@example.test"])
        self.assertEqual(r["demo@example.test"][0], OK)


class PlusFoldersOff(unittest.TestCase):
    """local_plus_folders = no: user+tag always goes to the INBOX."""

    def test_plus_tag_into_inbox(self):
        inst = harness.Instance(extra_config="local_plus_folders = no")
        qdir = tempfile.mkdtemp(prefix="ptq-", dir="/tmp")
        try:
            inst.start()
            sock = os.path.join(inst.dir, "run", "local")
            harness.wait_until(lambda: os.path.exists(sock), what="local socket")
            ud = os.path.join(inst.dir, "mail", "example.test", "demo")
            inst.makedirs(os.path.join(ud, ".News"))
            env = b"POSTERN-QUEUE 1\nid Q1\n\n"
            path = os.path.join(qdir, "q1")
            with open(path, "wb") as f:
                f.write(env + b"Subject: tag\n\nx\n")
            agent = Agent(sock)
            try:
                r = agent.deliver(path, len(env), "s@remote.test", ["demo+news@example.test"])
            finally:
                agent.close()
            self.assertEqual(r["demo+news@example.test"][0], OK)
            self.assertEqual(len(os.listdir(os.path.join(ud, "new"))), 1)
            self.assertFalse(os.path.exists(os.path.join(ud, ".News", "new")) and
                             os.listdir(os.path.join(ud, ".News", "new")))
            inst.stop()
        finally:
            inst.cleanup()
            subprocess.run(["rm", "-rf", qdir])


if __name__ == "__main__":
    harness.main()
