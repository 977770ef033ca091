"""smtpd(8)'s limits and failures against a real dev-mode instance: a
disconnect mid-DATA, the idle timeout and a trickled command, the
per-address connection limit, commands out of sequence, the error limit,
garbage input, half-closed sockets (every reply sent), 5,000 idle
connections (and their memory), a full spool, the spool reserve
(queue_minfree), and the 421 at shutdown."""

import os
import re
import resource
import smtplib
import socket
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, main, wait_until  # noqa: E402
from smtpd_base import (IO_TIMEOUT, PER_IP, TIMEOUT_S, USER, Raw, SmtpdCase,  # noqa: E402
                        env_get, without_qmgr)

IDLE_CONNECTIONS = 5000


class Limits(SmtpdCase):
    def test_disconnect_mid_data_leaves_nothing(self):
        before = self.queued()
        r = self.raw()
        r.cmd("MAIL FROM:<d@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        self.assertEqual(r.cmd("DATA")[0], 354)
        r.send(b"Subject: cut\r\n\r\n" + b"partial line\r\n" * 500)
        time.sleep(0.2)
        r.close()
        self.assertTrue(wait_until(self.no_tmp_files, timeout=5, what="empty tmp/"))
        time.sleep(0.2)
        self.assertEqual(self.queued(), before)

    def test_idle_timeout(self):
        r = self.raw(ehlo=False)
        start = time.monotonic()
        r.sock.settimeout(TIMEOUT_S + 5)
        code, text = r.reply()
        self.assertEqual(code, 421)
        self.assertTrue(text.startswith("4.4.2"), text)
        self.assertGreaterEqual(time.monotonic() - start, TIMEOUT_S - 0.5)
        self.assertTrue(r.closed())

    def test_trickled_command_times_out(self):
        # Slowloris: a byte at a time, never finishing the line, must not
        # restart the command timeout with each read.
        r = self.raw()
        start = time.monotonic()
        got = b""
        r.sock.settimeout(0.8)
        for ch in b"NOOP NOOP NOOP NOOP":
            try:
                r.send(bytes([ch]))
            except OSError:
                break
            try:
                got += r.sock.recv(65536)
            except socket.timeout:
                pass
            except OSError:
                break
            if b"421" in got:
                break
        self.assertIn(b"421 4.4.2", got)
        self.assertLess(time.monotonic() - start, TIMEOUT_S + 3)

    def test_too_many_connections_per_ip(self):
        conns = []
        try:
            for _ in range(PER_IP):
                r = Raw(self.smtp)
                conns.append(r)
                self.assertEqual(r.reply()[0], 220)
            extra = Raw(self.smtp)
            conns.append(extra)
            code, text = extra.reply()
            self.assertEqual((code, text), (421, "4.7.0 Too many connections from your address"))
            self.assertTrue(extra.closed())
        finally:
            for r in conns:
                r.close()
        # The counts go back down.
        def fresh():
            r = Raw(self.smtp)
            try:
                return r.reply()[0] == 220
            finally:
                r.close()
        wait_until(fresh, timeout=5, what="a connection after the others closed")

    def test_commands_and_sequence(self):
        r = self.raw(ehlo=False)
        self.assertEqual(r.cmd("MAIL FROM:<a@outside.example>")[0], 503)
        self.assertEqual(r.cmd("HELO client.example")[0], 250)
        self.assertEqual(r.cmd("RCPT TO:<demo@example.test>"), (503, "5.5.1 Need MAIL command"))
        self.assertEqual(r.cmd("VRFY demo@example.test")[0:1], (252,))
        self.assertEqual(r.cmd("EXPN staff")[0], 502)
        self.assertEqual(r.cmd("HELP")[0], 214)
        self.assertEqual(r.cmd("FROB")[0:2], (500, "5.5.1 Command unrecognized"))
        self.assertEqual(r.cmd("MAIL FROM:<a@outside.example>")[0], 250)
        self.assertEqual(r.cmd("MAIL FROM:<a@outside.example>")[0], 503)
        self.assertEqual(r.cmd("MAIL FROM:<>")[0], 503)
        self.assertEqual(r.cmd("RSET")[0], 250)
        self.assertEqual(r.cmd("MAIL FROM:<>")[0], 250)     # the null sender
        self.assertEqual(r.cmd("QUIT")[0], 221)

    def test_error_limit(self):
        r = self.raw()
        for _ in range(9):
            self.assertEqual(r.cmd("BOGUS")[0], 500)
        code, text = r.cmd("BOGUS")
        self.assertEqual(code, 500)
        self.assertEqual(r.reply(), (421, "4.7.0 Too many errors, closing connection"))
        self.assertTrue(r.closed())

    def test_garbage_does_not_crash(self):
        junk = [b"\x00\x00\x00\r\n", b"\xff\xfe\xfd garbage\r\n", b"A" * 70000,
                b"MAIL FROM:<\x00@x>\r\n", b"EHLO \x00\r\n", b"\r\n\r\n\n\n",
                b"BDAT 99999999999999999999999\r\n", b"AUTH PLAIN \x00\r\n"]
        for j in junk:
            s = socket.create_connection(("127.0.0.1", self.smtp), timeout=IO_TIMEOUT)
            try:
                s.recv(1000)
                s.sendall(j)
                s.settimeout(1)
                try:
                    while s.recv(65536):
                        pass
                except (socket.timeout, ConnectionResetError):
                    pass
            finally:
                s.close()
        rows = [row for row in self.inst.status() if row["service"] == "smtpd"]
        self.assertTrue(all(row["restarts"] == 0 and row["state"] == "running"
                            for row in rows), rows)
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            self.assertEqual(c.noop()[0], 250)

    # --- half-close: replies to everything sent before the client's FIN ---

    def halfclose(self, data, port=None):
        """Send data in one write after the greeting, shut the write side
        down, and return every reply line read until the server's EOF."""
        s = socket.create_connection(("127.0.0.1", port or self.smtp), timeout=IO_TIMEOUT)
        try:
            got = b""
            while b"\n" not in got:
                chunk = s.recv(65536)
                self.assertTrue(chunk, "no greeting")
                got += chunk
            self.assertTrue(got.startswith(b"220 "), got)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        finally:
            s.close()
        return [l.decode("utf-8", "replace") for l in got.split(b"\r\n") if l]

    def test_halfclose_bdat_transaction_answered(self):
        # Everything in one write (BDAT may carry the message without
        # waiting), then the FIN: every reply still arrives.
        msg = b"Subject: half-close\r\n\r\nbody\r\n"
        lines = self.halfclose(b"EHLO client.example\r\nMAIL FROM:<h@outside.example>\r\n"
                               b"RCPT TO:<demo@example.test>\r\nBDAT %d LAST\r\n%s"
                               b"NOOP\r\nQUIT\r\n" % (len(msg), msg))
        last = [l for l in lines if l[3:4] == " "]
        self.assertEqual([l[:3] for l in last], ["250", "250", "250", "250", "250", "221"], lines)
        env, body = self.qfile(self.qid_of(last[3]))
        self.assertEqual(env_get(env, "sender"), ["h@outside.example"])
        self.assertTrue(body.endswith(b"Subject: half-close\n\nbody\n"), body)

    def session_at_354(self):
        """A raw session pipelined from EHLO to the 354 of DATA."""
        s = Raw(self.smtp)
        self.raws.append(s)
        self.assertEqual(s.reply()[0], 220)
        s.send("EHLO client.example\r\nMAIL FROM:<h@outside.example>\r\n"
               "RCPT TO:<demo@example.test>\r\nDATA\r\n")
        self.assertEqual([s.reply()[0] for _ in range(4)], [250, 250, 250, 354])
        return s

    def test_halfclose_after_354_answered(self):
        s = self.session_at_354()
        s.send(b"Subject: half-close data\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        s.sock.shutdown(socket.SHUT_WR)
        code, text = s.reply()
        self.assertEqual(code, 250, text)
        self.assertEqual(s.reply()[0], 221)
        self.assertTrue(s.closed())
        self.qfile(self.qid_of(text))
        log = self.inst.read_log()
        self.assertRegex(log, r"event=disconnect session=\d+ client=127\.0\.0\.1 "
                         r"msgs=1 rcpts=1 rejects=0 errors=0 reason=quit")

    def test_halfclose_fully_pipelined_data_is_early_talker(self):
        # The content before our 354 is refused (RFC 2920), and that reply
        # too reaches a client that already half-closed.
        before = self.queued()
        lines = self.halfclose(b"EHLO client.example\r\nMAIL FROM:<h@outside.example>\r\n"
                               b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
                               b"Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        last = [l for l in lines if l[3:4] == " "]
        self.assertEqual([l[:3] for l in last], ["250", "250", "250", "554"], lines)
        self.assertEqual(self.queued(), before)

    def test_halfclose_mid_data_leaves_nothing(self):
        before = self.queued()
        s = self.session_at_354()
        s.send(b"Subject: cut\r\n\r\nline\r\n.not the end\r\npartial")
        s.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(s.closed())
        self.assertEqual(s.buf, b"")
        self.assertTrue(wait_until(self.no_tmp_files, timeout=5, what="empty tmp/"))
        self.assertEqual(self.queued(), before)

    def test_halfclose_smtps_answered(self):
        s = Raw(self.smtps, tls=True)
        self.raws.append(s)
        self.assertEqual(s.reply()[0], 220)
        s.send("EHLO client.example\r\nNOOP\r\nMAIL FROM:<h@outside.example>\r\n"
               "RSET\r\nQUIT\r\n")
        # A TCP half-close under TLS, without close_notify (SSLSocket's
        # own shutdown() would drop the TLS layer).
        socket.socket.shutdown(s.sock, socket.SHUT_WR)
        codes = [s.reply()[0] for _ in range(5)]
        self.assertEqual(codes, [250, 250, 530, 250, 221])  # 530: AUTH first
        self.assertTrue(s.closed())


def smtpd_rss_kb(inst):
    """The summed resident size of the instance's smtpd processes."""
    total = 0
    for pid in inst.service_pids("smtpd"):
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


class IdleConnections(unittest.TestCase):
    """5,000 idle connections are held at a few kilobytes each."""

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard != resource.RLIM_INFINITY and hard < IDLE_CONNECTIONS + 200:
            self.skipTest("RLIMIT_NOFILE hard limit %d is too low" % hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (IDLE_CONNECTIONS + 200, hard))
        self.inst = without_qmgr(Instance(extra_config="smtpd_max_connections_per_ip = 0\n"))
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.inst.cleanup()

    def test_5000_idle_connections(self):
        self.inst.start()
        port = self.inst.base + 25
        before = smtpd_rss_kb(self.inst)
        for _ in range(IDLE_CONNECTIONS):
            self.socks.append(socket.create_connection(("127.0.0.1", port),
                                                       timeout=IO_TIMEOUT))
        for s in self.socks:
            self.assertTrue(s.recv(200).startswith(b"220 "))
        for s in self.socks[::2]:      # half of them have said EHLO too
            s.sendall(b"EHLO client.example\r\n")
        for s in self.socks[::2]:
            data = b""
            while not data.endswith(b"250 CHUNKING\r\n"):
                chunk = s.recv(4096)
                self.assertTrue(chunk)
                data += chunk
        grown = smtpd_rss_kb(self.inst) - before
        self.assertLess(grown / IDLE_CONNECTIONS, 16,
                        "%d kB for %d connections" % (grown, IDLE_CONNECTIONS))
        rows = [r for r in self.inst.status() if r["service"] == "smtpd"]
        self.assertTrue(all(r["restarts"] == 0 for r in rows), rows)


@unittest.skipUnless(os.geteuid() == 0, "mounting a small tmpfs needs root")
class DiskFull(unittest.TestCase):
    """A full spool answers 451 4.3.0, keeps nothing, and recovers."""

    def setUp(self):
        # A reserve below the tmpfs's size, so MAIL passes and the write
        # itself fails (SpoolReserve tests the reserve).
        self.inst = without_qmgr(Instance(extra_config="queue_minfree = 16k\n"))
        self.incoming = os.path.join(self.inst.dir, "spool", "incoming")
        self.inst.makedirs(self.incoming)
        uid, gid = self.inst.owner()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=256k,uid=%d,gid=%d,mode=0700" % (uid, gid), "tmpfs",
                            self.incoming], capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            self.inst.cleanup()
            self.skipTest("cannot mount a tmpfs here: " + p.stderr.strip())
        self.inst.start()

    def tearDown(self):
        try:
            self.inst.stop()
        finally:
            subprocess.run(["umount", "-l", self.incoming], timeout=30)
            self.inst.cleanup()

    def send(self, body):
        c = smtplib.SMTP("127.0.0.1", self.inst.base + 25, timeout=IO_TIMEOUT)
        try:
            c.ehlo("client.example")
            c.mail("sender@outside.example")
            c.rcpt(USER)
            return c.data(body)
        finally:
            c.close()

    def test_disk_full(self):
        new = os.path.join(self.incoming, "new")
        big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 8000   # ~600 KB
        code, text = self.send(big)
        self.assertEqual(code, 451, text)
        self.assertTrue(text.startswith(b"4.3.0"), text)
        self.assertEqual(os.listdir(new), [])
        self.assertEqual(os.listdir(os.path.join(self.incoming, "tmp")), [])
        # The same failure again, once more than there are smtpd
        # processes: refused the same way, logged once per process (each
        # has its lib/core/log.h rate limit), so some process was quiet.
        nprocs = len(self.inst.service_pids("smtpd"))
        for _ in range(nprocs):
            code, text = self.send(big)
            self.assertEqual(code, 451, text)
        failed = [re.search(r"smtpd\[(\d+)\]", line).group(1)
                  for line in self.inst.read_log().splitlines()
                  if "event=spool_write_failed" in line]
        self.assertEqual(len(failed), len(set(failed)), failed)
        # The space of the refused message is free again: mail flows.
        code, text = self.send(b"Subject: small\r\n\r\nhello\r\n")
        self.assertEqual(code, 250, text)
        self.assertEqual(len(os.listdir(new)), 1)


class SpoolReserve(unittest.TestCase):
    """queue_minfree: MAIL gets 452 4.3.1 before any content while the
    spool's free space is below the reserve, a SIZE= that does not fit
    above it gets 452 too (552 above the absolute limit, as before), and
    mail flows again once there is space or the reserve is lowered."""

    def setUp(self):
        self.inst = None
        self.incoming = None

    def tearDown(self):
        if self.inst is None:
            return
        try:
            self.inst.stop()
        finally:
            if self.incoming is not None:
                subprocess.run(["umount", "-l", self.incoming], timeout=30)
            self.inst.cleanup()

    def mount_tmpfs(self, options, config):
        """An instance whose spool/incoming is a tmpfs with these options."""
        if os.geteuid() != 0:
            self.skipTest("mounting a small tmpfs needs root")
        self.inst = without_qmgr(Instance(extra_config=config))
        incoming = os.path.join(self.inst.dir, "spool", "incoming")
        self.inst.makedirs(incoming)
        options += ",uid=%d,gid=%d,mode=0700" % self.inst.owner()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", incoming],
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            self.skipTest("cannot mount a tmpfs here: " + p.stderr.strip())
        self.incoming = incoming
        self.inst.start()

    def session(self):
        r = Raw(self.inst.base + 25)
        self.addCleanup(r.close)
        self.assertEqual(r.reply()[0], 220)
        self.assertEqual(r.cmd("EHLO client.example")[0], 250)
        return r

    def mail(self, r, params=""):
        code, text = r.cmd("MAIL FROM:<sender@outside.example>" + params)
        if code == 250:
            self.assertEqual(r.cmd("RSET")[0], 250)
        return code, text

    def new_files(self):
        return os.listdir(os.path.join(self.inst.dir, "spool", "incoming", "new"))

    def send_one(self, r):
        self.assertEqual(r.cmd("MAIL FROM:<sender@outside.example> SIZE=100")[0], 250)
        self.assertEqual(r.cmd("RCPT TO:<%s>" % USER)[0], 250)
        self.assertEqual(r.cmd("DATA")[0], 354)
        r.send(b"Subject: fits\r\n\r\nhello\r\n.\r\n")
        return r.reply()

    def test_reserve_above_free_space_then_reload(self):
        # 1024g is more than this machine's spool has free.
        self.inst = without_qmgr(Instance(extra_config="queue_minfree = 1024g\n"))
        self.inst.start()
        r = self.session()
        code, text = r.cmd("MAIL FROM:<sender@outside.example>")
        self.assertEqual((code, text), (452, "4.3.1 Insufficient system storage"))
        # No transaction: RCPT and DATA are refused, nothing is written.
        self.assertEqual(r.cmd("RCPT TO:<%s>" % USER)[0], 503)
        self.assertEqual(r.cmd("DATA")[0], 503)
        # The refusal does not count toward smtpd_max_errors (10).
        for _ in range(12):
            self.assertEqual(self.mail(r)[0], 452)
        self.assertEqual(self.new_files(), [])
        log = self.inst.read_log()
        self.assertIn("event=spool_full", log)
        self.assertEqual(log.count("event=spool_full"), 1, "rate-limited")
        # The reserve lowered and reloaded: mail is accepted again.
        with open(self.inst.conf) as f:
            text = f.read()
        with open(self.inst.conf, "w") as f:
            f.write(text.replace("queue_minfree = 1024g", "queue_minfree = 1m"))
        self.inst.postern("reload")
        def new_process_accepts():
            c = self.session()
            if self.mail(c)[0] == 250:
                return c
            c.close()
            return None
        r2 = wait_until(new_process_accepts, timeout=10,
                        what="MAIL accepted after the reload")
        code, text = self.send_one(r2)
        self.assertEqual(code, 250, text)
        self.assertEqual(len(self.new_files()), 1)

    def test_declared_size_against_free_space(self):
        self.mount_tmpfs("size=4m", "queue_minfree = 1m\n")
        r = self.session()
        self.assertEqual(self.mail(r)[0], 250)
        self.assertEqual(self.mail(r, " SIZE=100000")[0], 250)
        # 3.5 MB + the 1 MB reserve do not fit in 4 MB.
        self.assertEqual(self.mail(r, " SIZE=3500000"),
                         (452, "4.3.1 Insufficient system storage"))
        # Above smtpd_max_message_size (25m): 552 as before.
        code, text = self.mail(r, " SIZE=30000000")
        self.assertEqual(code, 552, text)
        self.assertTrue(text.startswith("5.3.4"), text)
        code, text = self.send_one(r)
        self.assertEqual(code, 250, text)

    def test_free_space_comes_back(self):
        self.mount_tmpfs("size=4m", "queue_minfree = 1m\n")
        r = self.session()
        self.assertEqual(self.mail(r)[0], 250)
        # Leave less than the reserve free.
        filler = os.path.join(self.incoming, "filler")
        free = os.statvfs(self.incoming).f_bavail * os.statvfs(self.incoming).f_frsize
        with open(filler, "wb") as f:
            f.write(b"x" * (free - (512 << 10)))
        # The free space is read at most once a second.
        wait_until(lambda: self.mail(r)[0] == 452, timeout=5,
                           what="MAIL refused on a full spool")
        code, text = r.cmd("MAIL FROM:<sender@outside.example>")
        self.assertEqual((code, text), (452, "4.3.1 Insufficient system storage"))
        self.assertEqual(self.new_files(), [])
        os.unlink(filler)
        wait_until(lambda: self.mail(r)[0] == 250, timeout=5,
                           what="MAIL accepted once space is back")
        code, text = self.send_one(r)
        self.assertEqual(code, 250, text)

    def test_too_few_inodes(self):
        # Fewer than 1000 free inodes: refused, whatever the bytes.
        self.mount_tmpfs("size=64m,nr_inodes=600", "queue_minfree = 1m\n")
        r = self.session()
        self.assertEqual(r.cmd("MAIL FROM:<sender@outside.example>"),
                         (452, "4.3.1 Insufficient system storage"))
        self.assertIn('reason="too few free inodes"', self.inst.read_log())
        subprocess.run(["mount", "-o", "remount,nr_inodes=5000", self.incoming],
                       check=True, timeout=30)
        wait_until(lambda: self.mail(r)[0] == 250, timeout=5,
                           what="MAIL accepted with inodes to spare")


class Shutdown(unittest.TestCase):
    def setUp(self):
        self.inst = without_qmgr(Instance())

    def tearDown(self):
        self.inst.cleanup()

    def test_shutdown_sends_421(self):
        self.inst.start()
        r = Raw(self.inst.base + 25)
        try:
            self.assertEqual(r.reply()[0], 220)
            self.assertEqual(r.cmd("EHLO client.example")[0], 250)
            self.inst.stop()
            code, text = r.reply()
            self.assertEqual(code, 421)
            self.assertTrue(text.startswith("4.3.2"), text)
        finally:
            r.close()


if __name__ == "__main__":
    main()
