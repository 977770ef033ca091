"""pop3d(8) and a hostile or careless client, against a real dev-mode
instance: pipelined floods and RETRs never read (memory stays bounded),
message files swapped for symlinks, FIFOs and directories, the error
limit (also reached mid-batch, and counted in a row), clear text after
STLS, commands in the wrong state, long lines and garbage, 1,000
concurrent sessions (and their memory), half-closed sockets, and SIGTERM
ending sessions without deleting anything."""

import os
import poplib
import re
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, wait_until  # noqa: E402
from pop3d_base import (IO_TIMEOUT, NO_DELAY, OwnInstance, SharedInstance,  # noqa: E402
                        add_users, addr, crlf, dotstuff, password)

CONCURRENT = 1000


class Limits(SharedInstance):
    USERS = ("state", "flood", "unread", "swap", "victim", "batch", "half")

    @classmethod
    def setUpClass(cls):
        # The concurrency test needs a descriptor per connection, here
        # and in pop3d (which inherits the limit through master).
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = CONCURRENT + 300
        if hard == resource.RLIM_INFINITY or hard >= want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        super().setUpClass()

    # --- a hostile client ------------------------------------------------------

    def pop3d_rss_kb(self):
        """The resident memory of every pop3d process, summed."""
        total = 0
        for pid in self.inst.service_pids("pop3d"):
            with open("/proc/%d/status" % pid) as f:
                total += int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return total

    def test_pipelined_flood_without_reading_is_bounded(self):
        # 3,000,000 NOOPs (18 MB, more than the kernel's socket buffers
        # hold) sent without reading a reply: pop3d stops reading once the
        # replies back up, so its buffers do not grow, and every command
        # it took gets its reply once the client reads.
        r = self.raw()
        r.login("flood")
        before = self.pop3d_rss_kb()
        data = b"NOOP\r\n" * 3000000
        sent = 0
        r.sock.setblocking(False)
        deadline = time.monotonic() + 3
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += r.sock.send(data[sent:sent + 65536])
            except BlockingIOError:
                time.sleep(0.05)
        r.sock.settimeout(IO_TIMEOUT)
        self.assertLess(sent, len(data))    # pop3d pushed back
        self.assertLess(self.pop3d_rss_kb() - before, 16 * 1024)
        # Read the reply to every whole command, then finish the last one.
        reply = b"+OK Nothing to do\r\n"
        want = sent // 6 * len(reply)
        got = bytearray(r.buf)
        while len(got) < want:
            chunk = r.sock.recv(1 << 20)
            self.assertTrue(chunk, "closed after %d of %d bytes" % (len(got), want))
            got += chunk
        self.assertEqual(len(got), want)
        self.assertEqual(got.count(reply), want // len(reply))
        r.buf = b""
        if sent % 6:
            r.send(data[sent:sent - sent % 6 + 6])
            self.assertEqual(r.line(), reply[:-2])
        self.assertTrue(r.cmd("STAT").startswith(b"+OK"))

    def test_retr_never_read_is_bounded(self):
        self.place("unread", "%d.Mbig.host" % int(time.time()),
                   b"Subject: big\n\n" + b"x" * 100 + b"\n" * 80000)
        r = self.raw()
        r.login("unread")
        before = self.pop3d_rss_kb()
        r.send(b"RETR 1\r\n" * 200 + b"LIST\r\n" * 2000)
        time.sleep(1)
        self.assertLess(self.pop3d_rss_kb() - before, 16 * 1024)
        # The process still serves everyone else.
        p = self.pop("flood")
        self.assertEqual(p.noop(), b"+OK Nothing to do")
        p.quit()

    def test_message_replaced_by_symlink_fifo_or_directory(self):
        # Files swapped under an open session (what a user could plant
        # through another client) are refused, never followed; a FIFO
        # does not hang the process.  The victim's mail never leaks.
        now = int(time.time())
        secret = "%d.Msecret.host" % now
        self.place("victim", secret, b"Subject: s\n\nSECRET\n")
        for i in range(1, 5):
            self.place("swap", "%d.M%d.host" % (now, i), b"Subject: %d\n\nx\n" % i)
        r = self.raw()
        r.login("swap")
        cur = os.path.join(self.maildir("swap"), "cur")
        names = sorted(os.listdir(cur))
        for n in names:
            os.unlink(os.path.join(cur, n))
        os.symlink(os.path.join(self.maildir("victim"), "cur", secret + ":2,"),
                   os.path.join(cur, names[0]))
        os.mkfifo(os.path.join(cur, names[1]))
        os.mkdir(os.path.join(cur, names[2]))
        # Renamed meanwhile (new flags), and now a symlink.
        os.symlink("/etc/passwd", os.path.join(cur, names[3] + "S"))
        for i in range(1, 5):
            self.assertEqual(r.cmd("RETR %d" % i),
                             b"-ERR [SYS/TEMP] Cannot read the message")
            self.assertEqual(r.cmd("TOP %d 0" % i),
                             b"-ERR [SYS/TEMP] Cannot read the message")
        self.assertEqual(r.cmd("NOOP"), b"+OK Nothing to do")
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out")
        self.assertNotIn(b"SECRET", r.buf)
        self.assertTrue(os.path.exists("/etc/passwd"))

    def test_error_limit_mid_batch_deletes_nothing(self):
        self.place("batch", "%d.Mb.host" % int(time.time()), b"Subject: b\n\nb\n")
        r = self.raw()
        r.login("batch")
        r.send(b"DELE 1\r\n" + b"BOGUS\r\n" * 5 + b"QUIT\r\n")
        self.assertTrue(r.closed(5))
        self.assertTrue(r.buf.endswith(b"-ERR Too many errors, closing connection\r\n"))
        self.assertNotIn(b"Logging out", r.buf)
        p = wait_until(lambda: self.try_pop("batch"), what="mailbox unlocked")
        self.assertEqual(p.stat()[0], 1)
        p.quit()

    def try_pop(self, user):
        """A logged-in poplib client, or None while the mailbox is locked."""
        try:
            return self.pop(user)
        except poplib.error_proto:
            return None

    def test_stls_plaintext_in_a_later_segment(self):
        # Clear text sent after STLS but before the handshake is taken as
        # (broken) TLS, never as a command.
        r = self.raw()
        self.assertEqual(r.cmd("STLS"), b"+OK Begin TLS negotiation")
        r.send(b"CAPA\r\n")
        self.assertTrue(r.closed(5))
        self.assertNotIn(b"+OK", r.buf)

    def test_half_close_after_quit_updates(self):
        self.place("half", "%d.Mh.host" % int(time.time()), b"Subject: h\n\nh\n")
        r = self.raw()
        r.login("half")
        r.send(b"DELE 1\r\nQUIT\r\n")
        r.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(r.closed(5))
        self.assertEqual(r.buf, b"+OK Message 1 marked for deletion\r\n+OK Logging out\r\n")
        self.assertEqual(self.files("half"), [])

    def test_commands_in_wrong_state(self):
        # Four refusals per connection: pop3d_max_errors is 5.
        def refused(cmds, login):
            for i in range(0, len(cmds), 4):
                r = self.raw()
                if login:
                    r.login("state")
                for cmd in cmds[i:i + 4]:
                    self.assertTrue(r.cmd(cmd).startswith(b"-ERR"), cmd)
                self.assertTrue(r.cmd("NOOP" if login else "USER x").startswith(b"+OK"))
                self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
                r.closed(5)
        refused(["STAT", "LIST", "RETR 1", "DELE 1", "RSET", "TOP 1 1", "UIDL",
                 "NOOP"], False)
        refused(["USER x", "PASS y", "AUTH PLAIN", "STLS", "RETR 1", "RETR 0",
                 "RETR", "LIST 99", "DELE -1", "RETR 4294967296", "FOO",
                 "STAT x", "APOP a b", "UIDL 1 2"], True)
        r = self.raw()
        r.login("state")
        self.assertTrue(r.cmd("stat").startswith(b"+OK 0 0"))
        self.assertTrue(r.cmd("LiSt").startswith(b"+OK"))

    def test_error_limit(self):
        r = self.raw()
        for i in range(4):
            self.assertEqual(r.cmd("BOGUS%d" % i), b"-ERR Unknown command")
        self.assertEqual(r.cmd("BOGUS"), b"-ERR Too many errors, closing connection")
        self.assertTrue(r.closed(5))

    def test_line_too_long(self):
        r = self.raw()
        self.assertEqual(r.cmd("NOOP " + "x" * 600), b"-ERR Line too long")
        self.assertEqual(r.cmd("X" * 5000), b"-ERR Line too long")
        self.assertTrue(r.cmd("CAPA").startswith(b"+OK"))
        r.multi()
        # NUL bytes and garbage.
        self.assertTrue(r.cmd("US\0ER x").startswith(b"-ERR"))
        r.send(b"\xff\xfe\r\n")
        self.assertTrue(r.line().startswith(b"-ERR"))

    def test_garbage_does_not_crash(self):
        pid = self.inst.service_pids("pop3d")[0]
        junk = [b"\r\n", b" \r\n", b"\n", b"LIST \r\n", b"TOP 1 2 3\r\n",
                b"AUTH PLAIN =\r\n", b"AUTH LOGIN =\r\n", b"\x00\x00\r\n",
                b"USER \xff\r\nPASS \xff\r\n", b"A" * 100000 + b"\r\n"]
        for data in junk:
            r = self.raw()
            r.send(data)
            r.send(b"QUIT\r\n")
            r.closed(5)
        self.assertIn(pid, self.inst.service_pids("pop3d"))

    def test_1000_concurrent_sessions(self):
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < CONCURRENT + 100:
            self.skipTest("RLIMIT_NOFILE too low (%d)" % soft)
        pid = self.inst.service_pids("pop3d")[0]

        def rss():
            with open("/proc/%d/status" % pid) as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        before = rss()
        socks = []
        try:
            for _ in range(CONCURRENT):
                s = socket.create_connection(("127.0.0.1", self.pop3), timeout=IO_TIMEOUT)
                socks.append(s)
            for s in socks:
                f = b""
                while not f.endswith(b"\r\n"):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "closed before the greeting")
                    f += chunk
                self.assertTrue(f.startswith(b"+OK"), f)
            for s in socks:
                s.sendall(b"CAPA\r\n")
            for s in socks:
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, "closed before the CAPA response")
                    data += chunk
                self.assertIn(b"IMPLEMENTATION postern", data)
            # A few KB per session (sockets' kernel buffers not counted).
            grown = rss() - before
            print("pop3d: %d kB for %d sessions" % (grown, CONCURRENT), file=sys.stderr)
            self.assertLess(grown / CONCURRENT, 16, "%d kB" % grown)
        finally:
            for s in socks:
                s.close()
        # pop3d is still alive and serving.
        p = self.pop()
        p.quit()

    # --- half-close: responses to everything sent before the FIN ------

    def halfclose(self, data):
        """Send data in one write after the greeting, shut the write side
        down, and return everything read until the server's EOF."""
        r = self.raw()
        r.send(data)
        r.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(r.closed(10))
        return r.buf

    def login_lines(self, user):
        return b"USER %s\r\nPASS %s\r\n" % (addr(user).encode(), password(user).encode())

    def new_user(self, user):
        """Add a user while running; wait until logins see it."""
        add_users(self.inst, [user])
        wait_until(lambda: self.try_pop(user), what="user " + user).quit()

    def test_halfclose_pipelined_session_answered(self):
        self.new_user("hcpipe")
        body = b"Subject: hc\n\nline\n.dot\n"
        self.place("hcpipe", "%d.Mhc1.host" % int(time.time()), body)
        got = self.halfclose(self.login_lines("hcpipe") +
                             b"STAT\r\nRETR 1\r\nQUIT\r\n")
        lines = got.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"+OK"), got)
        self.assertTrue(lines[1].startswith(b"+OK"), got)
        self.assertEqual(lines[2], b"+OK 1 %d" % len(crlf(body)), got)
        self.assertTrue(lines[3].startswith(b"+OK"), got)
        self.assertTrue(got.endswith(b"\r\n" + dotstuff(crlf(body)) +
                                     b".\r\n+OK Logging out\r\n"), got)
        self.assertEqual(len(self.files("hcpipe")), 1)

    def test_halfclose_dele_quit_deletes(self):
        self.new_user("hcdele")
        self.place("hcdele", "%d.Mhc2.host" % int(time.time()), b"Subject: d\n\nd\n")
        got = self.halfclose(self.login_lines("hcdele") + b"DELE 1\r\nQUIT\r\n")
        self.assertTrue(got.endswith(b"+OK Message 1 marked for deletion\r\n"
                                     b"+OK Logging out\r\n"), got)
        self.assertEqual(self.files("hcdele"), [])

    def test_halfclose_dele_without_quit_deletes_nothing(self):
        self.new_user("hckeep")
        self.place("hckeep", "%d.Mhc3.host" % int(time.time()), b"Subject: k\n\nk\n")
        got = self.halfclose(self.login_lines("hckeep") + b"DELE 1\r\n")
        self.assertTrue(got.endswith(b"+OK Message 1 marked for deletion\r\n"), got)
        p = wait_until(lambda: self.try_pop("hckeep"), what="mailbox unlocked")
        self.assertEqual(p.stat()[0], 1)
        p.quit()
        self.assertEqual(len(self.files("hckeep")), 1)


class ErrorLimit(SharedInstance):
    """The default pop3d_max_errors (20) counts refusals in a row: an
    accepted command starts the count again."""

    CONFIG = NO_DELAY
    USERS = ("errs",)

    def test_errors_between_good_commands_do_not_close(self):
        self.place("errs", "%d.Me.host" % int(time.time()), b"Subject: e\n\ne\n")
        r = self.raw()
        r.login("errs")
        # Fifteen refusals spread among good commands (more than the old
        # limit of 10 in all), then 19 in a row twice, with one between.
        for i in range(15):
            self.assertEqual(r.cmd("BOGUS%d" % i), b"-ERR Unknown command")
            if i % 3 == 2:
                self.assertTrue(r.cmd("STAT").startswith(b"+OK 1 "))
        for _ in range(2):
            for i in range(19):
                self.assertTrue(r.cmd("LIST x%d" % i).startswith(b"-ERR"), i)
            self.assertEqual(r.cmd("NOOP"), b"+OK Nothing to do")
        # A missing message number neither counts nor clears the count.
        for i in range(19):
            self.assertTrue(r.cmd("XYZ").startswith(b"-ERR"), i)
            if i == 9:
                self.assertEqual(r.cmd("RETR 7"), b"-ERR No such message")
        self.assertEqual(r.cmd("UIDL 1")[:5], b"+OK 1")
        self.assertEqual(r.cmd("QUIT"), b"+OK Logging out")
        self.assertTrue(r.closed(5))

    def test_twenty_in_a_row_close(self):
        self.place("errs", "%d.Mf.host" % int(time.time()), b"Subject: f\n\nf\n")
        r = self.raw()
        r.login("errs")
        self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
        # A missing message number between them does not clear the count.
        for i in range(19):
            self.assertEqual(r.cmd("BOGUS%d" % i), b"-ERR Unknown command")
            if i == 9:
                self.assertEqual(r.cmd("RETR 7"), b"-ERR No such message")
        self.assertEqual(r.cmd("BOGUS"), b"-ERR Too many errors, closing connection")
        self.assertTrue(r.closed(5))
        self.assertEqual(r.buf, b"")
        # Closed without QUIT: the DELE was not carried out.
        wait_until(lambda: "event=too_many_errors" in self.inst.read_log(), timeout=5,
                   what="the log line")
        self.assertRegex(self.inst.read_log(), r"event=too_many_errors .*errors=20")
        p = wait_until(lambda: self.try_pop(), what="mailbox unlocked")
        self.assertGreaterEqual(p.stat()[0], 1)
        p.quit()

    def try_pop(self):
        try:
            return self.pop("errs")
        except poplib.error_proto:
            return None


class Shutdown(OwnInstance):
    """SIGTERM (postern stop) ends sessions without deleting anything."""

    USERS = ("stop",)

    def test_stop_deletes_nothing(self):
        self.place("stop", "%d.Mstop.host" % int(time.time()), b"Subject: s\n\nx\n")
        r = self.raw()
        r.login("stop")
        self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
        idle = self.raw()
        self.inst.stop()
        self.assertEqual(r.line(), b"-ERR [SYS/TEMP] Server shutting down")
        self.assertTrue(r.closed(5))
        self.assertTrue(idle.line().startswith(b"-ERR [SYS/TEMP]"))
        self.assertEqual(len(self.files("stop")), 1)


if __name__ == "__main__":
    main()
