"""pop3d(8) on the mailbox against a real dev-mode instance: byte-exact
RETR (dot-stuffing, a last line without line end, 8-bit content, a 10 MB
message streamed), TOP, LIST/STAT sizes, UIDL stability, DELE/RSET/QUIT,
a dropped connection, RETR marking messages seen, delivery during a
session, [IN-USE], a 1,000-message mailbox, a streamed 10,000-message
listing, and pipelining."""

import base64
import os
import poplib
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, wait_until  # noqa: E402
from pop3d_base import (SharedInstance, addr, crlf, crlf_fast, dotstuff,  # noqa: E402
                        password)


class Mailbox(SharedInstance):
    USERS = ("bytes", "big", "uidl", "dele", "drop", "during", "inuse", "top",
             "pipe", "seen", "huge", "flagfail")

    # --- messages ------------------------------------------------------------

    def test_byte_exact_retr_and_sizes(self):
        user = "bytes"
        t = int(time.time()) - 1000
        messages = [
            # lines starting with '.', a final line without line end
            b"Subject: dots\n\n.\n..\n.leading dot\nmiddle . dot\n.last line no eol",
            # 8-bit content, a CRLF line, a lone CR inside a line
            b"Subject: 8bit\nContent-Type: text/plain; charset=latin1\n\n"
            b"caf\xe9 na\xefve \xff\x80\nwindows line\r\nlone\rcr\n",
            # empty body, header only
            b"Subject: empty\n\n",
        ]
        names = []
        for i, content in enumerate(messages):
            base = "%d.M%dP9%d.host" % (t + i, i, i)
            vs = len(crlf(content))
            # Alternate names with and without ,W=.
            name = base + (",S=%d,W=%d" % (len(content), vs) if i % 2 == 0 else
                           ",S=%d" % len(content))
            self.place(user, name, content)
            names.append(base)
        # And one delivered through SMTP.
        smtp_body = b".dot after smtp\r\n8bit \xc3\xa9\r\n"
        self.deliver(user, smtp_body, "smtp one")
        r = self.raw()
        r.login(user)
        stat = r.cmd("STAT").split()
        self.assertEqual(int(stat[1]), 4)
        self.assertTrue(r.cmd("LIST").startswith(b"+OK"))
        sizes = {int(a): int(b) for a, b in
                 (l.split() for l in r.multi().decode().split("\r\n") if l)}
        self.assertEqual(sum(sizes.values()), int(stat[2]))
        for i, content in enumerate(messages):
            first = r.cmd("RETR %d" % (i + 1))
            self.assertEqual(first, b"+OK %d octets" % sizes[i + 1])
            body = r.multi()
            want = crlf(content)
            self.assertEqual(sizes[i + 1], len(want))
            # The terminator's CRLF is added when the last line has none.
            if not want.endswith(b"\r\n"):
                want += b"\r\n"
            self.assertEqual(body, dotstuff(want))
        self.assertTrue(r.cmd("RETR 4").startswith(b"+OK"))
        body = r.multi()
        self.assertTrue(body.endswith(b"\r\n..dot after smtp\r\n8bit \xc3\xa9\r\n"), body)
        self.assertEqual(len(body) - 1, sizes[4])   # one stuffed dot
        # poplib's view agrees.
        r.cmd("QUIT")
        p = self.pop(user)
        resp, lines, octets = p.retr(1)
        self.assertEqual(lines, [b"Subject: dots", b"", b".", b"..", b".leading dot",
                                 b"middle . dot", b".last line no eol"])
        p.quit()

    def test_retr_10mb_streams(self):
        user = "bytes"
        p = self.pop(user)
        p.quit()
        lines = [b"Subject: big", b"MIME-Version: 1.0",
                 b"Content-Type: multipart/mixed; boundary=BB", b"", b"--BB",
                 b"Content-Type: application/octet-stream",
                 b"Content-Transfer-Encoding: base64", b""]
        raw = os.urandom(7_700_000)
        b64 = base64.encodebytes(raw)      # 76-char lines: about 10.4 MB
        content = b"\n".join(lines) + b"\n" + b64 + b".\n--BB--\n"
        self.assertGreater(len(content), 10_000_000)
        name = "%d.Mbig.host" % int(time.time())
        self.place(user, name + ",S=%d" % len(content), content)

        pid = self.inst.service_pids("pop3d")[0]

        def hwm():
            with open("/proc/%d/status" % pid) as f:
                return int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
        before = hwm()
        r = self.raw()
        r.login(user)
        r.cmd("LIST")
        listing = r.multi().decode().split("\r\n")
        # The mailbox is shared with test_byte_exact_retr_and_sizes, so
        # the big one is found by its size, not by its place in the list.
        want = crlf_fast(content)
        big = [l.split() for l in listing if l and int(l.split()[1]) == len(want)]
        self.assertEqual(len(big), 1, listing)
        n, size = big[0]
        first = r.cmd("RETR " + n)
        self.assertEqual(first, b"+OK %s octets" % size.encode())
        t = time.monotonic()
        body = r.multi()
        elapsed = time.monotonic() - t
        self.assertEqual(body, dotstuff(want))
        self.assertLess(elapsed, 20)
        r.cmd("QUIT")
        # Streamed: pop3d's peak memory grew by far less than the message.
        self.assertLess(hwm() - before, 4096, "kB")

    def test_top(self):
        user = "top"
        self.place(user, "%d.Mtop.host" % int(time.time()),
                   b"Subject: top\nX: y\n\nbody 1\n.body 2\nbody 3\n")
        r = self.raw()
        r.login(user)
        self.assertTrue(r.cmd("TOP 1 0").startswith(b"+OK"))
        self.assertEqual(r.multi(), b"Subject: top\r\nX: y\r\n\r\n")
        self.assertTrue(r.cmd("TOP 1 2").startswith(b"+OK"))
        self.assertEqual(r.multi(), b"Subject: top\r\nX: y\r\n\r\nbody 1\r\n..body 2\r\n")
        self.assertTrue(r.cmd("TOP 1 100").startswith(b"+OK"))
        self.assertEqual(r.multi(), b"Subject: top\r\nX: y\r\n\r\nbody 1\r\n..body 2\r\nbody 3\r\n")
        self.assertTrue(r.cmd("TOP 1").startswith(b"-ERR"))
        self.assertTrue(r.cmd("TOP 2 1").startswith(b"-ERR"))
        self.assertTrue(r.cmd("TOP 1 x").startswith(b"-ERR"))
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        # TOP does not mark a message seen.
        self.assertFalse([n for _, n in self.files(user) if n.endswith(",S")])

    def test_uidl_stable_and_base_names(self):
        user = "uidl"
        self.deliver(user, b"one\r\n", "u1")
        self.place(user, "%d.Mx.host,S=5:2,F" % (int(time.time()) - 50), b"x\n\ny\n",
                   "cur")
        p = self.pop(user)
        first = p.uidl()[1]
        p.quit()
        self.deliver(user, b"two\r\n", "u2")
        p = self.pop(user)
        second = p.uidl()[1]
        p.quit()
        self.assertEqual(second[:len(first)], first)
        self.assertEqual(len(second), 3)
        bases = sorted(re.split(r"[,:]", n)[0] for _, n in self.files(user))
        self.assertEqual(sorted(l.split()[1].decode() for l in second), bases)
        self.assertEqual(len(set(bases)), 3)
        # UIDL n agrees with the listing.
        p = self.pop(user)
        self.assertEqual(p.uidl(2).split()[1:], second[1].split())
        p.quit()

    def test_dele_rset_quit(self):
        user = "dele"
        for i in range(3):
            self.deliver(user, b"msg %d\r\n" % i, "d%d" % i)
        p = self.pop(user)
        count, octets = p.stat()
        self.assertEqual(count, 3)
        p.dele(1)
        self.assertEqual(p.stat()[0], 2)
        # A deleted message is invisible to further commands.
        for cmd in ("RETR 1", "LIST 1", "UIDL 1", "TOP 1 0", "DELE 1"):
            with self.assertRaises(poplib.error_proto, msg=cmd):
                p._shortcmd(cmd)
        self.assertEqual(len(p.list()[1]), 2)
        self.assertTrue(p.rset().startswith(b"+OK"))
        self.assertEqual(p.stat(), (count, octets))
        p.quit()
        self.assertEqual(len(self.files(user)), 3)
        # DELE + QUIT removes.
        p = self.pop(user)
        p.dele(2)
        p.quit()
        self.assertEqual(len(self.files(user)), 2)
        p = self.pop(user)
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_dropped_connection_removes_nothing(self):
        user = "drop"
        self.deliver(user, b"keep me\r\n", "drop1")
        self.deliver(user, b"keep me too\r\n", "drop2")
        r = self.raw()
        r.login(user)
        self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
        self.assertTrue(r.cmd("RETR 2").startswith(b"+OK"))
        r.multi()
        r.close()
        # The lock is free again once pop3d saw the close.
        def relogin():
            try:
                p = self.pop(user)
            except poplib.error_proto:
                return None
            return p
        p = wait_until(relogin, timeout=10, what="mailbox unlocked")
        self.assertEqual(p.stat()[0], 2)
        p.quit()
        # Not flagged seen either.
        self.assertFalse([n for _, n in self.files(user) if re.search(r":2,[A-Z]*S", n)])

    def test_retr_marks_seen_and_new_moves_to_cur(self):
        user = "seen"
        self.deliver(user, b"see me\r\n", "seen1")
        self.assertEqual(self.files(user)[0][0], "new")
        p = self.pop(user)
        # pop3d_move_new_to_cur = yes: moved at login.
        self.assertEqual([s for s, _ in self.files(user)], ["cur"])
        p.retr(1)
        p.quit()
        self.assertRegex(self.files(user)[0][1], r":2,S$")

    def test_quit_ok_when_only_seen_flag_fails(self):
        # A 252-byte name moves to cur/ as NAME:2, (255 bytes) but cannot
        # take the S flag (256 > NAME_MAX).  The deletion worked, so QUIT
        # must say +OK: -ERR would tell the client it did not.
        user = "flagfail"
        now = int(time.time())
        head = "%d.M1." % now
        self.place(user, head + "h" * (252 - len(head)), b"Subject: l\n\nlong\n")
        self.place(user, "%d.M2.host" % now, b"Subject: d\n\ngone\n")
        r = self.raw()
        r.login(user)
        self.assertTrue(r.cmd("RETR 1").startswith(b"+OK"))
        self.assertEqual(r.multi(), b"Subject: l\r\n\r\nlong\r\n")
        self.assertTrue(r.cmd("DELE 2").startswith(b"+OK"))
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out")
        self.assertEqual([(s, len(n)) for s, n in self.files(user)], [("cur", 255)])
        wait_until(lambda: "op=flag" in self.inst.read_log(), what="flag failure log")

    def test_delivery_during_session(self):
        user = "during"
        self.deliver(user, b"before\r\n", "before")
        p = self.pop(user)
        self.assertEqual(p.stat()[0], 1)
        # Delivery is not blocked by the POP3 lock.
        self.deliver(user, b"during\r\n", "during")
        self.assertEqual(p.stat()[0], 1)
        self.assertEqual(len(p.list()[1]), 1)
        p.quit()
        p = self.pop(user)
        self.assertEqual(p.stat()[0], 2)
        p.quit()

    def test_second_session_in_use(self):
        user = "inuse"
        p = self.pop(user)
        r = self.raw()
        self.assertTrue(r.cmd("USER " + addr(user)).startswith(b"+OK"))
        reply = r.cmd("PASS " + password(user))
        self.assertTrue(reply.startswith(b"-ERR [IN-USE] "), reply)
        # Still in AUTHORIZATION; once the first session ends, a retry works.
        p.quit()
        r.login(user)
        self.assertTrue(r.cmd("STAT").startswith(b"+OK"))
        # Over pop3s with AUTH too.
        s = self.raw(self.pop3s, tls=True)
        token = base64.b64encode(b"\0" + addr(user).encode() + b"\0" +
                                 password(user).encode()).decode()
        self.assertTrue(s.cmd("AUTH PLAIN " + token).startswith(b"-ERR [IN-USE]"))
        # The refused session ending does not release the holder's lock.
        self.assertEqual(s.cmd("QUIT"), b"+OK Bye")
        self.assertTrue(s.closed(5))
        t = self.raw()
        self.assertTrue(t.cmd("USER " + addr(user)).startswith(b"+OK"))
        self.assertTrue(t.cmd("PASS " + password(user)).startswith(b"-ERR [IN-USE] "))
        self.assertTrue(r.cmd("STAT").startswith(b"+OK"))

    def test_1000_message_mailbox(self):
        user = "big"
        t = int(time.time()) - 100000
        expected = []
        for i in range(1000):
            content = b"Subject: n%d\n\n%s\n" % (i, b"x" * (i % 97))
            base = "%d.M%06dP1.host" % (t + i, i)
            vs = len(crlf(content))
            name = base + (",S=%d,W=%d" % (len(content), vs) if i % 2 else "")
            self.place(user, name, content)
            expected.append((base, vs))
        p = self.pop(user)
        self.assertEqual(p.stat(), (1000, sum(v for _, v in expected)))
        listing = p.list()[1]
        self.assertEqual([l.decode() for l in listing],
                         ["%d %d" % (i + 1, v) for i, (_, v) in enumerate(expected)])
        uidl = p.uidl()[1]
        self.assertEqual([l.decode() for l in uidl],
                         ["%d %s" % (i + 1, b) for i, (b, _) in enumerate(expected)])
        self.assertEqual(p.list(1000).split()[1:], [b"1000", str(expected[-1][1]).encode()])
        resp, lines, octets = p.retr(500)
        self.assertEqual(lines[0], b"Subject: n499")
        p.quit()

    def test_10000_message_listing_streams(self):
        # LIST and UIDL of 10,000 messages (about 400 KB) are streamed in
        # batches as the client reads, and sizes come from the names.
        user = "huge"
        t = int(time.time()) - 200000
        md = self.maildir(user)
        for sub in ("tmp", "new", "cur"):
            self.inst.makedirs(os.path.join(md, sub))
        content = b"Subject: h\n\nbody\n"
        vs = len(crlf(content))
        for i in range(10000):
            name = "%d.M%06dP2.host,S=%d,W=%d:2,S" % (t + i, i, len(content), vs)
            with open(os.path.join(md, "cur", name), "wb") as f:
                f.write(content)
        r = self.raw()
        r.login(user)
        self.assertEqual(r.cmd("STAT"), b"+OK 10000 %d" % (10000 * vs))
        r.sock.settimeout(30)
        self.assertTrue(r.cmd("UIDL").startswith(b"+OK"))
        time.sleep(0.5)     # let the server fill the socket and wait
        lines = r.multi().split(b"\r\n")[:-1]
        self.assertEqual(len(lines), 10000)
        self.assertEqual(lines[9999], b"10000 %d.M009999P2.host" % (t + 9999))
        self.assertTrue(r.cmd("DELE 5").startswith(b"+OK"))
        self.assertTrue(r.cmd("LIST").startswith(b"+OK"))
        lines = r.multi().split(b"\r\n")[:-1]
        self.assertEqual(len(lines), 9999)
        self.assertEqual(lines[4], b"6 %d" % vs)
        self.assertTrue(r.cmd("RSET").startswith(b"+OK"))
        self.assertTrue(r.cmd("NOOP").startswith(b"+OK"))

    # --- protocol ------------------------------------------------------------

    def test_pipelining(self):
        user = "pipe"
        self.deliver(user, b"pipelined\r\n", "pipe")
        r = self.raw()
        r.send("CAPA\r\nUSER %s\r\nPASS %s\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\n"
               "NOOP\r\nBOGUS\r\nQUIT\r\n" % (addr(user), password(user)))
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertIn(b"PIPELINING\r\n", r.multi())
        self.assertTrue(r.line().startswith(b"+OK"))      # USER
        self.assertTrue(r.line().startswith(b"+OK"))      # PASS
        self.assertTrue(r.line().startswith(b"+OK 1 "))   # STAT
        self.assertTrue(r.line().startswith(b"+OK"))      # LIST
        self.assertRegex(r.multi(), rb"^1 \d+\r\n$")
        self.assertTrue(r.line().startswith(b"+OK 1 "))   # UIDL 1
        self.assertTrue(r.line().startswith(b"+OK"))      # RETR
        self.assertIn(b"\r\npipelined\r\n", r.multi())
        self.assertTrue(r.line().startswith(b"+OK"))      # NOOP
        self.assertTrue(r.line().startswith(b"-ERR"))     # BOGUS
        self.assertTrue(r.line().startswith(b"+OK"))      # QUIT
        self.assertTrue(r.closed(5))


if __name__ == "__main__":
    main()
