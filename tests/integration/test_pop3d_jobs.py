"""pop3d(8)'s mailbox jobs against a real dev-mode instance: the login
scan of 30,000 unsized messages and a QUIT deleting 30,000 run on pop3d's
job threads while another session of the same process is answered within
0.5 s; a client dropped mid-scan or mid-QUIT, and SIGTERM during both,
lose nothing."""

import os
import poplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, wait_until  # noqa: E402
from pop3d_base import (IO_TIMEOUT, NO_DELAY, OwnInstance, SharedInstance,  # noqa: E402
                        addr, password)

BIG = 30000
# What "not stalled" means for a command of another session.
STALL_MAX = 0.5
BIG_BODY = b"Subject: big\n\nline one\n.dot line\nline three\n" * 3


class Jobs(SharedInstance):
    """The login scan of a Maildir of BIG messages without ",W=" and a
    QUIT deleting BIG messages run on pop3d's job threads: meanwhile the
    other sessions of the same (single) pop3d process are answered at
    once, and a client dropped mid-scan loses nothing."""

    CONFIG = NO_DELAY + "pop3d_timeout = 60s\n"
    USERS = ("bigscan", "bigquit", "bigdrop", "other", "third")

    def fill_big(self, user, sub="new", flags=""):
        """BIG files straight into new/ (or cur/), no ",W=" in the names."""
        md = self.maildir(user)
        for d in ("tmp", "new", "cur"):
            self.inst.makedirs(os.path.join(md, d))
        base = int(time.time()) - 100000
        d = os.path.join(md, sub)
        for i in range(BIG):
            fd = os.open(os.path.join(d, "%d.M%dP1.big%s" % (base + i, i, flags)),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, BIG_BODY)
            os.close(fd)
        self.inst.own(d)
        return BIG * (len(BIG_BODY) + BIG_BODY.count(b"\n"))

    def one_pop3d(self):
        pids = self.inst.service_pids("pop3d")
        self.assertEqual(len(pids), 1, "the dev instance runs one pop3d")
        return pids[0]

    def probe(self, r):
        """CAPA, STAT and NOOP on another session; the slowest answer."""
        worst = 0.0
        for cmd in ("CAPA", "STAT", "NOOP"):
            t = time.monotonic()
            line = r.cmd(cmd)
            if cmd == "CAPA":
                r.multi()
            worst = max(worst, time.monotonic() - t)
            self.assertTrue(line.startswith(b"+OK"), (cmd, line))
        return worst

    def wait_reply(self, r, timeout):
        """Whether a line from the server is waiting on r (without reading)."""
        if b"\r\n" in r.buf:
            return True
        r.sock.settimeout(timeout)
        try:
            chunk = r.sock.recv(65536)
        except socket.timeout:
            return False
        finally:
            r.sock.settimeout(IO_TIMEOUT)
        if not chunk:
            raise EOFError("closed")
        r.buf += chunk
        return True

    def busy_probe(self, big, other, what):
        """Probe `other` until `big` has its reply; returns the probes made
        while big was still waiting (at least one is required)."""
        probes = 0
        slowest = 0.0
        deadline = time.monotonic() + 120
        while not self.wait_reply(big, 0.02):
            self.assertLess(time.monotonic(), deadline, what + " never finished")
            worst = self.probe(other)
            self.assertLess(worst, STALL_MAX, "%s stalled another session %.3fs"
                            % (what, worst))
            slowest = max(slowest, worst)
            probes += 1
        sys.stderr.write("[slowest answer %.1f ms] " % (slowest * 1000))
        return probes

    def test_login_scan_does_not_stall_others(self):
        pid = self.one_pop3d()
        octets = self.fill_big("bigscan")
        self.place("other", "%d.Mo.host" % int(time.time()), b"Subject: o\n\nx\n")
        other = self.raw()
        other.login("other")
        big = self.raw()
        self.assertTrue(big.cmd("USER " + addr("bigscan")).startswith(b"+OK"))
        t0 = time.monotonic()
        big.send("PASS %s\r\nSTAT\r\n" % password("bigscan"))
        # A third user logs in while the scan runs: another job thread.
        third = self.raw()
        t = time.monotonic()
        third.login("third")
        self.assertLess(time.monotonic() - t, 5.0)
        probes = self.busy_probe(big, other, "login scan")
        scan = time.monotonic() - t0
        self.assertTrue(big.line().startswith(b"+OK Logged in, %d messages" % BIG))
        self.assertEqual(big.line(), b"+OK %d %d" % (BIG, octets))
        # A stalled loop answers one probe, at the end of the job.
        self.assertGreaterEqual(probes, 2, "the scan (%.2fs) left one probe" % scan)
        self.assertTrue(big.cmd("QUIT").startswith(b"+OK"))
        for r in (other, third):
            self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        self.assertEqual(self.one_pop3d(), pid)
        # The sizes are cached now: the next login is quick.
        p = self.pop("bigscan")
        self.assertEqual(p.stat(), (BIG, octets))
        p.quit()
        sys.stderr.write("[scan of %d: %.2fs, %d probes] " % (BIG, scan, probes))

    def test_quit_update_does_not_stall_others(self):
        pid = self.one_pop3d()
        self.fill_big("bigquit", "cur", ":2,")
        self.place("other", "%d.Mq.host" % int(time.time()), b"Subject: q\n\nx\n")
        big = self.raw()
        big.login("bigquit")
        # DELE every message, pipelined in batches.
        for start in range(1, BIG + 1, 1000):
            n = min(1000, BIG + 1 - start)
            big.send("".join("DELE %d\r\n" % i for i in range(start, start + n)))
            for _ in range(n):
                line = big.line()
                assert line.startswith(b"+OK"), line
        other = self.raw()
        other.login("other")
        t0 = time.monotonic()
        big.send("QUIT\r\n")
        probes = self.busy_probe(big, other, "QUIT update")
        took = time.monotonic() - t0
        self.assertEqual(big.line(), b"+OK Logging out")
        self.assertTrue(big.closed(5))
        self.assertEqual(self.files("bigquit"), [])
        # A stalled loop answers one probe, at the end of the job.
        self.assertGreaterEqual(probes, 2, "the update (%.2fs) left one probe" % took)
        self.assertTrue(other.cmd("QUIT").startswith(b"+OK"))
        self.assertEqual(self.one_pop3d(), pid)
        log = self.inst.read_log()
        self.assertIn("event=update session=", log)
        self.assertRegex(log, r"event=update session=\d+ user=bigquit\S* deleted=%d " % BIG)
        sys.stderr.write("[update of %d: %.2fs, %d probes] " % (BIG, took, probes))

    def test_client_dropped_mid_scan(self):
        pid = self.one_pop3d()
        octets = self.fill_big("bigdrop")
        before = len(self.files("bigdrop"))
        big = self.raw()
        self.assertTrue(big.cmd("USER " + addr("bigdrop")).startswith(b"+OK"))
        big.send("PASS %s\r\n" % password("bigdrop"))
        # The scan has started once it moves the first message to cur/.
        cur = os.path.join(self.maildir("bigdrop"), "cur")

        def scanning():
            with os.scandir(cur) as it:
                return any(True for _ in it)
        wait_until(scanning, timeout=30, interval=0.005, what="the scan")
        big.close()
        # The process goes on serving; the mailbox is unlocked once the
        # scan that was running has ended, and nothing is lost.
        other = self.raw()
        other.login("other")
        self.assertLess(self.probe(other), STALL_MAX)
        self.assertTrue(other.cmd("QUIT").startswith(b"+OK"))

        p = wait_until(lambda: self.try_pop("bigdrop"), timeout=120,
                       what="mailbox unlocked")
        self.assertEqual(p.stat(), (BIG, octets))
        p.quit()
        self.assertEqual(len(self.files("bigdrop")), before)
        self.assertEqual(self.one_pop3d(), pid)
        # The session was freed once its scan had ended (a waiting session
        # reads nothing, so it sees the hang-up then).
        self.assertRegex(self.inst.read_log(), r"event=disconnect session=\d+ "
                         r"client=\S+ user=bigdrop\S* .*reason=\"connection closed")

    def test_client_dropped_mid_update_still_updates(self):
        """QUIT was sent: the UPDATE goes on to the end without the client."""
        user = "bigquit"
        self.fill_big(user, "cur", ":2,")
        big = self.raw()
        big.login(user)
        n = 2000
        big.send("".join("DELE %d\r\n" % i for i in range(1, n + 1)))
        for _ in range(n):
            self.assertTrue(big.line().startswith(b"+OK"))
        big.send("QUIT\r\n")
        big.close()
        wait_until(lambda: len(self.files(user)) == BIG - n, timeout=60,
                   what="the update of a dropped client")
        p = wait_until(lambda: self.try_pop(user), timeout=30, what="unlocked")
        self.assertEqual(p.stat()[0], BIG - n)
        p.quit()
        # Leave the Maildir empty for the other test.
        md = self.maildir(user)
        for sub, name in self.files(user):
            os.unlink(os.path.join(md, sub, name))

    def try_pop(self, user):
        """A logged-in poplib client, or None ([IN-USE] while a job runs)."""
        p = self.pop()
        try:
            p.user(addr(user))
            p.pass_(password(user))
        except poplib.error_proto:
            p.close()
            return None
        return p


class JobsShutdown(OwnInstance):
    """SIGTERM during a big login scan and during a big UPDATE: the
    process exits promptly, nothing is lost, at most the deletions not
    done yet stay."""

    USERS = ("stopscan", "stopquit")

    fill_big = Jobs.fill_big

    def test_stop_during_scan_and_update(self):
        Jobs.fill_big(self, "stopscan")
        Jobs.fill_big(self, "stopquit", "cur", ":2,")
        q = self.raw()
        q.login("stopquit")
        n = BIG
        for start in range(1, n + 1, 1000):
            q.send("".join("DELE %d\r\n" % i for i in range(start, start + 1000)))
            for _ in range(1000):
                self.assertTrue(q.line().startswith(b"+OK"))
        pid = self.inst.service_pids("pop3d")[0]
        s = self.raw()
        self.assertTrue(s.cmd("USER " + addr("stopscan")).startswith(b"+OK"))
        s.send("PASS %s\r\n" % password("stopscan"))
        q.send("QUIT\r\n")
        time.sleep(0.05)
        t = time.monotonic()
        self.inst.stop()
        wait_until(lambda: not os.path.exists("/proc/%d" % pid) or
                   open("/proc/%d/stat" % pid).read().split()[2] == "Z",
                   timeout=30, what="pop3d exit")
        self.assertLess(time.monotonic() - t, 30)
        self.assertEqual(len(self.files("stopscan")), BIG)
        left = len(self.files("stopquit"))
        self.assertGreaterEqual(left, BIG - n)
        self.assertLessEqual(left, BIG)
        sys.stderr.write("[stopped: %d of %d deletions left] " % (left - (BIG - n), n))


if __name__ == "__main__":
    main()
