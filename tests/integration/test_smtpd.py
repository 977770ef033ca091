"""smtpd(8) against a real dev-mode instance, with Python's smtplib, swaks
and raw sockets: delivery to a local user (queue file envelope and body),
STARTTLS on 25 and 587, implicit TLS on 465, AUTH PLAIN/LOGIN success and
failure, AUTH refused before TLS, submission rules, pipelining and reply
order, the early-talker refusal, BDAT, SIZE, 8BITMIME and SMTPUTF8, DSN
parameters, relay control, unknown users, the SMTP smuggling defence,
bare LF refused or normalized by client (and smuggling in both modes),
long lines, 100 recipients, the recipient overshoot allowance, a
disconnect mid-DATA, the idle timeout, the
per-address connection limit, garbage input, the error limit and the 421
at shutdown."""

import os
import re
import resource
import smtplib
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, wait_until, main  # noqa: E402

IO_TIMEOUT = 10.0
TIMEOUT_S = 3           # smtpd_timeout of the test instance
PER_IP = 10             # smtpd_max_connections_per_ip of the test instance
MAX_SIZE = 64 * 1024    # smtpd_max_message_size of the test instance
MAX_RCPTS = 150         # smtpd_max_recipients of the test instance
MAX_ENVELOPE = 32 * 1024  # smtpd_max_envelope_size of the test instance
OVERSHOOT = 20          # smtpd_recipient_overshoot_limit of the test instance
MAX_ERRORS = 10         # smtpd_max_errors (the default)
IDLE_CONNECTIONS = 5000

CONFIG = """
mynetworks = 10.255.255.0/24
smtpd_timeout = %ds
smtpd_data_timeout = %ds
smtpd_max_connections_per_ip = %d
smtpd_max_message_size = %d
smtpd_max_recipients = %d
smtpd_max_envelope_size = %d
smtpd_recipient_overshoot_limit = %d
auth_fail_delay = 0
auth_penalty_delay = 0
""" % (TIMEOUT_S, TIMEOUT_S, PER_IP, MAX_SIZE, MAX_RCPTS, MAX_ENVELOPE, OVERSHOOT)


def without_qmgr(inst):
    """These tests inspect spool/incoming/new: keep qmgr from emptying it."""
    with open(inst.conf) as f:
        text = f.read()
    with open(inst.conf, "w") as f:
        f.write(text.replace("service qmgr {\n", "service qmgr {\n    enable = no\n", 1))
    return inst

USER = "demo@example.test"

# A message as scripts and cron jobs hand it to smtplib.sendmail(): bytes
# with LF line ends, sent as they are (smtplib dot-stuffs the lines that
# start with a dot and, since the data does not end with CRLF, adds one:
# an empty line more, as any server stores it).
LF_MESSAGE = (b"Subject: from cron\nFrom: " + USER.encode() + b"\n\n"
              b"line one\n.dot line\n..two dots\nlast line\n")
# How the body of LF_MESSAGE ends in the queue file or the Maildir.
LF_STORED = b"\n\nline one\n.dot line\n..two dots\nlast line\n\n"


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def parse_qfile(path):
    """(envelope as a list of (name, value), body bytes) of a queue file."""
    with open(path, "rb") as f:
        data = f.read()
    head, _, body = data.partition(b"\n\n")
    env = []
    for line in head.decode().split("\n"):
        name, _, value = line.partition(" ")
        env.append((name, value))
    return env, body


def env_get(env, name):
    return [v for n, v in env if n == name]


class Raw:
    """A raw SMTP client: write bytes, read replies (multi-line aware)."""

    def __init__(self, port, tls=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

    def line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed; have %r" % self.buf)
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line.rstrip(b"\r").decode("utf-8", "replace")

    def reply(self):
        """(code, text of the last line) of one possibly multi-line reply."""
        lines = [self.line()]
        while len(lines[-1]) > 3 and lines[-1][3] == "-":
            lines.append(self.line())
        return int(lines[-1][:3]), "\n".join(l[4:] for l in lines)

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.reply()

    def closed(self, timeout=IO_TIMEOUT):
        """Whether the server closes the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except (socket.timeout, ConnectionResetError):
            return False
        except ssl.SSLError:
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class Smtpd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = without_qmgr(Instance(extra_config=CONFIG))
        m = re.search(r"password: (\S+)", cls.inst.init_output)
        cls.password = m.group(1)
        cls.inst.start()
        cls.smtp = cls.inst.base + 25
        cls.submission = cls.inst.base + 87
        cls.smtps = cls.inst.base + 65
        cls.new = os.path.join(cls.inst.dir, "spool", "incoming", "new")
        cls.tmp = os.path.join(cls.inst.dir, "spool", "incoming", "tmp")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def setUp(self):
        self.raws = []

    def tearDown(self):
        for r in self.raws:
            r.close()

    # --- helpers ---------------------------------------------------------

    def raw(self, port=None, tls=False, ehlo=True):
        r = Raw(port or self.smtp, tls)
        self.raws.append(r)
        code, _ = r.reply()
        self.assertEqual(code, 220)
        if ehlo:
            self.assertEqual(r.cmd("EHLO client.example")[0], 250)
        return r

    def queued(self):
        return set(os.listdir(self.new))

    def qfile(self, qid):
        path = os.path.join(self.new, qid)
        wait_until(lambda: os.path.exists(path), timeout=5, what="queue file " + qid)
        return parse_qfile(path)

    def qid_of(self, text):
        m = re.search(r"queued as (\w+)", text)
        self.assertIsNotNone(m, text)
        return m.group(1)

    def no_tmp_files(self):
        return not os.listdir(self.tmp)

    def submit_client(self, port=None):
        c = smtplib.SMTP("127.0.0.1", port or self.submission, timeout=IO_TIMEOUT)
        c.ehlo("client.example")
        c.starttls(context=tls_context())
        c.ehlo("client.example")
        return c

    # --- tests -----------------------------------------------------------

    def test_plain_delivery_to_local_user(self):
        # smtplib dot-stuffs ".dot line"; smtpd must unstuff it.
        msg = b"Subject: plain\r\nFrom: a@outside.example\r\n\r\nline one\r\n.dot line\r\n"
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            code, _ = c.ehlo("client.example")
            self.assertEqual(code, 250)
            self.assertNotIn("auth", c.esmtp_features)  # no AUTH before TLS on 25
            for ext in ("pipelining", "size", "8bitmime", "smtputf8",
                        "enhancedstatuscodes", "dsn", "chunking", "starttls"):
                self.assertIn(ext, c.esmtp_features)
            c.mail("a@outside.example")
            c.rcpt(USER)
            code, text = c.data(msg)
            self.assertEqual(code, 250)
            self.assertTrue(text.startswith(b"2.0.0 Ok: queued as "), text)
        qid = self.qid_of(text.decode())
        env, body = self.qfile(qid)
        self.assertEqual(env[0], ("POSTERN-QUEUE", "1"))
        self.assertEqual(env_get(env, "id"), [qid])
        self.assertEqual(env_get(env, "sender"), ["a@outside.example"])
        self.assertEqual(env_get(env, "rcpt"), [USER + " 0 -"])
        self.assertEqual(env_get(env, "client"), ["127.0.0.1"])
        self.assertEqual(env_get(env, "helo"), ["client.example"])
        self.assertEqual(env_get(env, "proto"), ["ESMTP"])
        self.assertTrue(body.startswith(b"Received: from client.example ([127.0.0.1])\n"), body)
        self.assertIn(b"id " + qid.encode(), body)
        self.assertIn(b"for <demo@example.test>;", body)
        self.assertTrue(body.endswith(b"Subject: plain\nFrom: a@outside.example\n\n"
                                      b"line one\n.dot line\n"), body)
        self.assertNotIn(b"\r", body)
        # Port 25 adds no Date or Message-ID.
        self.assertNotIn(b"\nDate:", body)

    def test_swaks_delivery(self):
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.smtp,
                            "--from", "sw@outside.example", "--to", USER,
                            "--pipeline", "--body", "from swaks"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        qid = self.qid_of(p.stdout)
        env, body = self.qfile(qid)
        self.assertEqual(env_get(env, "sender"), ["sw@outside.example"])
        self.assertIn(b"from swaks", body)

    def test_swaks_submission_tls_auth_login(self):
        p = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % self.submission,
                            "-tls", "--auth", "LOGIN", "--auth-user", USER,
                            "--auth-password", self.password, "--from", USER,
                            "--to", "friend@remote.example", "--body", "relayed"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("235 2.7.0", p.stdout)
        env, body = self.qfile(self.qid_of(p.stdout))
        self.assertEqual(env_get(env, "proto"), ["ESMTPSA"])
        self.assertEqual(env_get(env, "auth"), [USER])
        self.assertTrue(env_get(env, "tls")[0].startswith("TLSv1."))

    def test_starttls_on_25(self):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            c.ehlo("client.example")
            code, text = c.starttls(context=tls_context())
            self.assertEqual(code, 220)
            self.assertEqual(c.ehlo("client.example")[0], 250)
            self.assertNotIn("starttls", c.esmtp_features)
            self.assertEqual(c.esmtp_features.get("auth", "").split(), ["PLAIN", "LOGIN"])
            c.mail("tls@outside.example")
            c.rcpt(USER)
            code, text = c.data(b"Subject: tls\r\n\r\nover tls\r\n")
            self.assertEqual(code, 250)
        env, body = self.qfile(self.qid_of(text.decode()))
        self.assertEqual(env_get(env, "proto"), ["ESMTPS"])
        self.assertIn(b"(using TLSv1.", body)

    def test_starttls_state_reset_and_injection(self):
        r = self.raw()
        # Anything pipelined after STARTTLS is discarded before the handshake.
        r.send("STARTTLS\r\nMAIL FROM:<inject@outside.example>\r\n")
        self.assertEqual(r.reply()[0], 220)
        r.sock = tls_context().wrap_socket(r.sock)
        # The session starts over: HELO/EHLO is needed again.
        self.assertEqual(r.cmd("MAIL FROM:<a@outside.example>"), (503, "5.5.1 Send HELO/EHLO first"))
        self.assertEqual(r.cmd("EHLO client.example")[0], 250)
        self.assertEqual(r.cmd("MAIL FROM:<a@outside.example>")[0], 250)

    def test_smtps_implicit_tls_adds_date_and_message_id(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps, timeout=IO_TIMEOUT,
                              context=tls_context()) as c:
            c.ehlo("client.example")
            self.assertNotIn("starttls", c.esmtp_features)
            c.login(USER, self.password)
            c.mail(USER)
            c.rcpt(USER)
            code, text = c.data(b"Subject: no date\r\n\r\nbody\r\n")
            self.assertEqual(code, 250)
        qid = self.qid_of(text.decode())
        env, body = self.qfile(qid)
        self.assertIn(b"\nDate: ", body)
        self.assertIn(b"\nMessage-ID: <" + qid.encode() + b"@", body)
        headers, _, rest = body.partition(b"\n\n")
        self.assertIn(b"Subject: no date", headers)
        self.assertIn(b"Message-ID:", headers)
        self.assertEqual(rest, b"body\n")
        self.assertIn(b"with ESMTPSA", body)
        self.assertIn(b"(authenticated as demo@example.test)", body)

    def test_auth_success_and_failure(self):
        c = self.submit_client()
        try:
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                c.login(USER, "wrong password")
            self.assertEqual(cm.exception.smtp_code, 535)
            self.assertIn(b"5.7.8", cm.exception.smtp_error)
            code, _ = c.login(USER, self.password)
            self.assertEqual(code, 235)
            self.assertEqual(c.docmd("AUTH", "PLAIN AGZvbwBiYXI=")[0], 503)
        finally:
            c.close()

    def test_auth_login_steps_and_cancel(self):
        import base64
        r = self.raw(self.smtps, tls=True)
        self.assertEqual(r.cmd("AUTH LOGIN"), (334, "VXNlcm5hbWU6"))
        self.assertEqual(r.cmd("*"), (501, "5.0.0 Authentication cancelled"))
        self.assertEqual(r.cmd("AUTH LOGIN"), (334, "VXNlcm5hbWU6"))
        self.assertEqual(r.cmd(base64.b64encode(USER.encode()).decode()),
                         (334, "UGFzc3dvcmQ6"))
        code, _ = r.cmd(base64.b64encode(self.password.encode()).decode())
        self.assertEqual(code, 235)
        r2 = self.raw(self.smtps, tls=True)
        self.assertEqual(r2.cmd("AUTH PLAIN")[0], 334)
        self.assertEqual(r2.cmd("not base64!")[0], 501)
        self.assertEqual(r2.cmd("AUTH CRAM-MD5")[0], 504)

    def test_auth_refused_before_tls(self):
        r = self.raw()
        self.assertEqual(r.cmd("AUTH PLAIN AGRlbW8AeA==")[0:1], (538,))
        r2 = self.raw(self.submission)
        self.assertEqual(r2.cmd("AUTH PLAIN AGRlbW8AeA=="),
                         (530, "5.7.0 Must issue a STARTTLS command first"))

    def test_submission_requires_tls_then_auth(self):
        r = self.raw(self.submission)
        self.assertEqual(r.cmd("MAIL FROM:<%s>" % USER),
                         (530, "5.7.0 Must issue a STARTTLS command first"))
        c = self.submit_client()
        try:
            code, text = c.mail(USER)
            self.assertEqual((code, text), (530, b"5.7.0 Authentication required"))
            c.login(USER, self.password)
            # smtpd_sender_login_match: only the user's own addresses.
            code, text = c.mail("someone.else@example.test")
            self.assertEqual(code, 553, text)
            self.assertTrue(text.startswith(b"5.7.1"), text)
            self.assertEqual(c.mail("<>")[0], 250)
            c.rset()
            self.assertEqual(c.mail(USER)[0], 250)
        finally:
            c.close()

    def test_sender_login_match_on_25_after_auth(self):
        # AUTH on port 25 (after STARTTLS) relays: it must not be a way
        # round smtpd_sender_login_match.
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            c.ehlo("client.example")
            c.starttls(context=tls_context())
            c.ehlo("client.example")
            c.login(USER, self.password)
            code, text = c.mail("someone.else@example.test")
            self.assertEqual(code, 553, text)
            self.assertTrue(text.startswith(b"5.7.1"), text)
            self.assertEqual(c.mail(USER)[0], 250)
        # Unauthenticated MX traffic keeps any sender.
        r = self.raw()
        self.assertEqual(r.cmd("MAIL FROM:<someone.else@example.test>")[0], 250)

    def test_helo_trailing_blanks_not_recorded(self):
        r = self.raw(ehlo=False)
        self.assertEqual(r.cmd("EHLO spaced.example \t ")[0], 250)
        self.assertEqual(r.cmd("MAIL FROM:<a@outside.example>")[0], 250)
        self.assertEqual(r.cmd("RCPT TO:<%s>" % USER)[0], 250)
        self.assertEqual(r.cmd("DATA")[0], 354)
        code, text = r.cmd("Subject: helo\r\n\r\nbody\r\n.")
        self.assertEqual(code, 250, text)
        env, body = self.qfile(self.qid_of(text))
        self.assertEqual(env_get(env, "helo"), ["spaced.example"])
        self.assertIn(b"Received: from spaced.example ([", body)

    def test_relay_denied_then_allowed_after_auth(self):
        r = self.raw()
        self.assertEqual(r.cmd("MAIL FROM:<x@outside.example>")[0], 250)
        code, text = r.cmd("RCPT TO:<victim@elsewhere.example>")
        self.assertEqual(code, 554)
        self.assertTrue(text.startswith("5.7.1"), text)
        c = self.submit_client()
        try:
            c.login(USER, self.password)
            c.mail(USER)
            self.assertEqual(c.rcpt("victim@elsewhere.example")[0], 250)
        finally:
            c.close()

    def test_unknown_local_user(self):
        r = self.raw()
        r.cmd("MAIL FROM:<x@outside.example>")
        code, text = r.cmd("RCPT TO:<nobody@example.test>")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith("5.1.1"), text)
        # The postmaster alias reaches the demo user.
        self.assertEqual(r.cmd("RCPT TO:<postmaster@example.test>")[0], 250)
        self.assertEqual(r.cmd("RCPT TO:<Postmaster>")[0], 250)

    def test_pipelined_transaction_reply_order(self):
        r = self.raw()
        r.send("MAIL FROM:<p@outside.example> RET=HDRS ENVID=env+2Did\r\n"
               "RCPT TO:<demo@example.test> NOTIFY=SUCCESS,FAILURE "
               "ORCPT=rfc822;demo@example.test\r\n"
               "RCPT TO:<nobody@example.test>\r\n"
               "RCPT TO:<demo+tag@example.test>\r\n"
               "DATA\r\n")
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.reply()[0], 550)
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.reply()[0], 354)
        r.send("Subject: pipe\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
        code, text = r.reply()
        self.assertEqual(code, 250)
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.reply()[0], 221)
        env, _ = self.qfile(self.qid_of(text))
        self.assertEqual(env_get(env, "ret"), ["HDRS"])
        self.assertEqual(env_get(env, "envid"), ["env-id"])
        rcpts = env_get(env, "rcpt")
        self.assertEqual(len(rcpts), 2)
        self.assertTrue(rcpts[0].startswith("demo@example.test 6 "), rcpts)
        self.assertIn("demo@example.test", rcpts[0].split(" ", 2)[2])
        self.assertEqual(rcpts[1], "demo+tag@example.test 0 -")

    def test_early_talker_refused(self):
        before = self.queued()
        r = self.raw()
        r.cmd("MAIL FROM:<e@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        r.send("DATA\r\nSubject: early\r\n\r\nbody\r\n.\r\n")
        code, text = r.reply()
        self.assertEqual(code, 554)
        self.assertTrue(text.startswith("5.5.0"), text)
        self.assertTrue(r.closed())
        self.assertEqual(self.queued(), before)

    def test_no_valid_recipients_data(self):
        r = self.raw()
        r.send("MAIL FROM:<n@outside.example>\r\nRCPT TO:<nobody@example.test>\r\nDATA\r\n")
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.reply()[0], 550)
        self.assertEqual(r.reply(), (554, "5.5.1 No valid recipients"))
        self.assertEqual(r.cmd("NOOP")[0], 250)

    def test_bdat(self):
        r = self.raw()
        r.cmd("MAIL FROM:<b@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        part1 = b"Subject: chunks\r\n\r\nfirst "
        part2 = b"part\r\nsecond line\r\n"
        r.send(b"BDAT %d\r\n" % len(part1) + part1 + b"BDAT %d LAST\r\n" % len(part2) + part2)
        code, text = r.reply()
        self.assertEqual(code, 250, text)
        code, text = r.reply()
        self.assertEqual(code, 250, text)
        env, body = self.qfile(self.qid_of(text))
        self.assertTrue(body.endswith(b"Subject: chunks\n\nfirst part\nsecond line\n"), body)
        # DATA after BDAT is refused; BDAT without MAIL has its chunk read
        # and thrown away, and the session stays in step.
        r.cmd("MAIL FROM:<b@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        r.send("BDAT 3\r\nabc")
        self.assertEqual(r.reply()[0], 250)
        self.assertEqual(r.cmd("DATA")[0], 503)
        self.assertEqual(r.cmd("RSET")[0], 250)
        r.send("BDAT 12 LAST\r\nNOOP\r\nQUIT\r\n")
        self.assertEqual(r.reply()[0], 503)
        self.assertEqual(r.cmd("NOOP")[0], 250)
        # Bare LF inside a BDAT chunk is refused too.
        r.cmd("MAIL FROM:<b@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        before = self.queued()
        r.send("BDAT 10 LAST\r\nbad\nline\r\n")
        code, text = r.reply()
        self.assertEqual(code, 554, text)
        self.assertEqual(self.queued(), before)

    def test_bdat_chunk_far_too_big_closes(self):
        # A chunk announced far over the size limit is not read: 552 and
        # the connection closes (inside a transaction, and without one).
        before = self.queued()
        r = self.raw()
        r.cmd("MAIL FROM:<b@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        r.send("BDAT %d LAST\r\nsome bytes\r\n" % (10 * 1024 ** 3))
        self.assertEqual(r.reply(), (552, "5.3.4 Message size exceeds fixed limit, "
                                          "closing connection"))
        self.assertTrue(r.closed())
        r = self.raw()
        r.send("BDAT %d\r\n" % (2 * MAX_SIZE + 2))
        self.assertEqual(r.reply()[0], 552)
        self.assertTrue(r.closed())
        # A first chunk in bounds and a second far over: the same.
        r = self.raw()
        r.cmd("MAIL FROM:<b@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        r.send("BDAT 5\r\nabc\r\n")
        self.assertEqual(r.reply()[0], 250)
        r.send("BDAT 18446744073709551615 LAST\r\n")
        self.assertEqual(r.reply()[0], 552)
        self.assertTrue(r.closed())
        self.assertEqual(self.queued(), before)
        self.assertTrue(wait_until(self.no_tmp_files, timeout=5, what="empty tmp/"))

    def test_bdat_chunk_over_size_is_read(self):
        # RFC 3030: a chunk that merely overflows the limit is read and
        # refused; the session goes on.
        before = self.queued()
        r = self.raw()
        r.cmd("MAIL FROM:<b@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        line = b"y" * 98 + b"\r\n"
        chunk = line * (MAX_SIZE // len(line) + 100)
        self.assertLess(len(chunk), 2 * MAX_SIZE)
        r.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        code, text = r.reply()
        self.assertEqual(code, 552, text)
        self.assertTrue(text.startswith("5.3.4"), text)
        self.assertEqual(r.cmd("NOOP")[0], 250)
        self.assertEqual(self.queued(), before)

    def test_envelope_size_limit(self):
        # Long ORCPTs fill the envelope long before smtpd_max_recipients:
        # 452 4.5.3 from there on, and the transaction still works.
        r = self.raw()
        self.assertEqual(r.cmd("MAIL FROM:<e@outside.example> ENVID=%s" % ("E" * 100))[0], 250)
        orcpt = "rfc822;" + "o" * 450 + "@example.test"
        ok = 0
        while ok < 100:
            code, text = r.cmd("RCPT TO:<demo+%d@example.test> NOTIFY=FAILURE ORCPT=%s"
                               % (ok, orcpt))
            if code != 250:
                break
            ok += 1
        self.assertEqual((code, text), (452, "4.5.3 Too many recipients (envelope too large)"))
        self.assertGreater(ok, 10)
        self.assertLess(ok, MAX_ENVELOPE // len(orcpt) + 1)
        # A short one may still fit, a long one does not.
        self.assertEqual(r.cmd("RCPT TO:<demo+x%d@example.test> ORCPT=%s" % (ok, orcpt))[0], 452)
        self.assertEqual(r.cmd("DATA")[0], 354)
        r.send("Subject: big envelope\r\n\r\nbody\r\n.\r\n")
        code, text = r.reply()
        self.assertEqual(code, 250, text)
        env, _ = self.qfile(self.qid_of(text))
        self.assertEqual(len(env_get(env, "rcpt")), ok)
        # A new transaction starts with an empty envelope.
        r.cmd("MAIL FROM:<e@outside.example>")
        self.assertEqual(r.cmd("RCPT TO:<demo@example.test> ORCPT=%s" % orcpt)[0], 250)
        self.assertEqual(r.cmd("RSET")[0], 250)

    def test_size_declared_and_actual(self):
        r = self.raw()
        code, text = r.cmd("MAIL FROM:<s@outside.example> SIZE=%d" % (MAX_SIZE + 1))
        self.assertEqual(code, 552)
        self.assertTrue(text.startswith("5.3.4"), text)
        before = self.queued()
        r.cmd("MAIL FROM:<s@outside.example> SIZE=1000")
        r.cmd("RCPT TO:<demo@example.test>")
        self.assertEqual(r.cmd("DATA")[0], 354)
        line = b"x" * 900 + b"\r\n"
        r.send(line * (MAX_SIZE // len(line) + 20) + b".\r\n")
        code, text = r.reply()
        self.assertEqual(code, 552)
        self.assertTrue(text.startswith("5.3.4"), text)
        self.assertEqual(r.cmd("NOOP")[0], 250)
        self.assertEqual(self.queued(), before)
        self.assertTrue(wait_until(self.no_tmp_files, timeout=5, what="empty tmp/"))

    def test_8bit_body_and_smtputf8(self):
        r = self.raw()
        self.assertEqual(r.cmd("MAIL FROM:<u@outside.example> BODY=8BITMIME")[0], 250)
        self.assertEqual(r.cmd("RCPT TO:<demo@example.test>")[0], 250)
        self.assertEqual(r.cmd("DATA")[0], 354)
        r.send("Subject: 8bit\r\n\r\nGrüße, naïve café\r\n.\r\n".encode("utf-8"))
        code, text = r.reply()
        self.assertEqual(code, 250)
        env, body = self.qfile(self.qid_of(text))
        self.assertEqual(env_get(env, "body"), ["8BITMIME"])
        self.assertIn("Grüße, naïve café\n".encode("utf-8"), body)
        # A UTF-8 local part needs SMTPUTF8.
        r.cmd("RSET")
        r.send("MAIL FROM:<u@outside.example>\r\n")
        self.assertEqual(r.reply()[0], 250)
        r.send("RCPT TO:<jörg@example.test>\r\n".encode("utf-8"))
        code, _ = r.reply()
        self.assertIn(code, (501, 553))
        r.cmd("RSET")
        r.send("MAIL FROM:<ü@outside.example> SMTPUTF8\r\n".encode("utf-8"))
        self.assertEqual(r.reply()[0], 250)
        r.send("RCPT TO:<jörg@example.test>\r\n".encode("utf-8"))
        code, _ = r.reply()
        self.assertIn(code, (250, 550))     # parsed; the policy decided

    def test_bare_lf_smuggling_refused(self):
        for seq in (b"\n.\n", b"\r.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n", b"\n.\r"):
            before = self.queued()
            r = self.raw()
            r.cmd("MAIL FROM:<smuggle@outside.example>")
            r.cmd("RCPT TO:<demo@example.test>")
            self.assertEqual(r.cmd("DATA")[0], 354)
            r.send(b"Subject: innocent\r\n\r\nhello" + seq +
                   b"MAIL FROM:<evil@outside.example>\r\n"
                   b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
                   b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
            code, text = r.reply()
            self.assertEqual(code, 554, "sequence %r: %s" % (seq, text))
            self.assertTrue(text.startswith("5.6.0"), text)
            # The smuggled commands were content, never commands.
            self.assertEqual(r.cmd("NOOP")[0], 250, "sequence %r" % seq)
            self.assertEqual(self.queued(), before, "sequence %r queued" % seq)
            r.close()

    def test_bare_lf_refused_from_strangers(self):
        # 127.0.0.1 is not in this instance's mynetworks: a script's
        # LF-only message on port 25 is refused (smtpd_bare_lf = reject).
        before = self.queued()
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            c.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                c.sendmail("lf@outside.example", [USER], LF_MESSAGE)
            self.assertEqual(cm.exception.smtp_code, 554)
            self.assertTrue(cm.exception.smtp_error.startswith(b"5.6.0"))
            self.assertEqual(c.noop()[0], 250)
        self.assertEqual(self.queued(), before)

    def test_bare_lf_normalized_after_auth(self):
        # Authenticated submission: the same message goes through with
        # its lines intact (smtpd_bare_lf_trusted = normalize).
        c = self.submit_client()
        try:
            c.login(USER, self.password)
            c.sendmail(USER, [USER], LF_MESSAGE)
            code, text = c.noop()
            self.assertEqual(code, 250)
        finally:
            c.close()
        newest = max(self.queued(), key=lambda q: os.stat(os.path.join(self.new, q)).st_mtime_ns)
        _, body = self.qfile(newest)
        self.assertIn(b"(authenticated as demo@example.test)", body)
        self.assertTrue(body.endswith(LF_STORED), body)
        self.assertNotIn(b"\r", body)

    def test_line_too_long(self):
        before = self.queued()
        r = self.raw()
        r.cmd("MAIL FROM:<l@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        self.assertEqual(r.cmd("DATA")[0], 354)
        r.send(b"Subject: long\r\n\r\n" + b"y" * 999 + b"\r\nshort\r\n.\r\n")
        code, text = r.reply()
        self.assertEqual(code, 500)
        self.assertTrue(text.startswith("5.5.2"), text)
        self.assertEqual(r.cmd("NOOP")[0], 250)
        self.assertEqual(self.queued(), before)
        # 998 bytes is fine.
        r.cmd("MAIL FROM:<l@outside.example>")
        r.cmd("RCPT TO:<demo@example.test>")
        r.cmd("DATA")
        r.send(b"Subject: long\r\n\r\n" + b"y" * 998 + b"\r\n.\r\n")
        self.assertEqual(r.reply()[0], 250)
        # An overlong command line.
        code, text = r.cmd("NOOP " + "z" * 3000)
        self.assertEqual(code, 500)
        self.assertEqual(r.cmd("NOOP")[0], 250)

    def test_100_recipients(self):
        rcpts = ["demo+%d@example.test" % i for i in range(100)]
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            c.ehlo("client.example")
            refused = c.sendmail("many@outside.example", rcpts,
                                 b"Subject: many\r\n\r\nto many\r\n")
            self.assertEqual(refused, {})
        newest = max(self.queued(), key=lambda q: os.stat(os.path.join(self.new, q)).st_mtime_ns)
        env, _ = self.qfile(newest)
        got = [v.split(" ")[0] for v in env_get(env, "rcpt")]
        self.assertEqual(sorted(got), sorted(rcpts))

    def test_too_many_recipients(self):
        r = self.raw()
        r.cmd("MAIL FROM:<many@outside.example>")
        r.send("".join("RCPT TO:<demo+%d@example.test>\r\n" % i
                       for i in range(MAX_RCPTS + 1)))
        codes = [r.reply()[0] for _ in range(MAX_RCPTS + 1)]
        self.assertEqual(codes[:MAX_RCPTS], [250] * MAX_RCPTS)
        self.assertEqual(codes[MAX_RCPTS], 452)

    def pipeline_rcpts(self, r, tag, excess, data=False):
        """Pipeline MAIL, MAX_RCPTS + excess RCPTs (and DATA) in one write;
        the replies to MAIL and the accepted RCPTs, checked, and the codes
        of the excess RCPTs' replies read so far (EOF ends the list)."""
        r.send("MAIL FROM:<many@outside.example>\r\n" +
               "".join("RCPT TO:<demo+%s%d@example.test>\r\n" % (tag, i)
                       for i in range(MAX_RCPTS + excess)) +
               ("DATA\r\n" if data else ""))
        self.assertEqual(r.reply()[0], 250)
        codes = [r.reply()[0] for _ in range(MAX_RCPTS)]
        self.assertEqual(codes, [250] * MAX_RCPTS)
        return [r.reply()[0] for _ in range(excess)]

    def test_recipient_overshoot_keeps_transaction(self):
        # More recipients than the limit, pipelined with DATA: 452 for
        # each excess one, which is no error while within the overshoot
        # allowance (more than smtpd_max_errors of them here), and the
        # message goes to the accepted ones (RFC 5321 4.5.3.1.10).
        self.assertGreater(OVERSHOOT, MAX_ERRORS)
        r = self.raw()
        excess = self.pipeline_rcpts(r, "o", OVERSHOOT, data=True)
        self.assertEqual(excess, [452] * OVERSHOOT)
        self.assertEqual(r.reply()[0], 354)
        r.send("Subject: overshoot\r\n\r\nto the first ones\r\n.\r\n")
        code, text = r.reply()
        self.assertEqual(code, 250, text)
        env, body = self.qfile(self.qid_of(text))
        got = [v.split(" ")[0] for v in env_get(env, "rcpt")]
        self.assertEqual(got, ["demo+o%d@example.test" % i for i in range(MAX_RCPTS)])
        self.assertTrue(body.endswith(b"\n\nto the first ones\n"), body)
        self.assertEqual(r.cmd("NOOP")[0], 250)

    def test_recipient_overshoot_past_allowance_counts(self):
        # The allowance is per transaction: a second one gets the same
        # again, and past it every excess RCPT is an error, so the
        # MAX_ERRORS-th one beyond it ends the session.
        r = self.raw()
        self.assertEqual(self.pipeline_rcpts(r, "a", OVERSHOOT), [452] * OVERSHOOT)
        self.assertEqual(r.cmd("RSET")[0], 250)
        excess = self.pipeline_rcpts(r, "b", OVERSHOOT + MAX_ERRORS)
        self.assertEqual(excess, [452] * (OVERSHOOT + MAX_ERRORS))
        self.assertEqual(r.reply(), (421, "4.7.0 Too many errors, closing connection"))
        self.assertTrue(r.closed())

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

    def test_halfclose_after_354_answered(self):
        s = Raw(self.smtp)
        self.raws.append(s)
        self.assertEqual(s.reply()[0], 220)
        s.send("EHLO client.example\r\nMAIL FROM:<h@outside.example>\r\n"
               "RCPT TO:<demo@example.test>\r\nDATA\r\n")
        self.assertEqual([s.reply()[0] for _ in range(4)], [250, 250, 250, 354])
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
        s = Raw(self.smtp)
        self.raws.append(s)
        self.assertEqual(s.reply()[0], 220)
        s.send("EHLO client.example\r\nMAIL FROM:<h@outside.example>\r\n"
               "RCPT TO:<demo@example.test>\r\nDATA\r\n")
        self.assertEqual([s.reply()[0] for _ in range(4)], [250, 250, 250, 354])
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


class BareLfTrusted(unittest.TestCase):
    """A client in mynetworks (127.0.0.1, the default) on port 25 gets
    smtpd_bare_lf_trusted = normalize: LF-only mail is delivered, and no
    smuggling variant yields a second message."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(extra_config="auth_fail_delay = 0\n")
        cls.inst.start()
        cls.smtp = cls.inst.base + 25
        cls.maildir_new = os.path.join(cls.inst.dir, "mail", "example.test", "demo", "new")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def delivered(self):
        """{file name: content} of the demo user's new mail."""
        if not os.path.isdir(self.maildir_new):
            return {}
        out = {}
        for name in os.listdir(self.maildir_new):
            with open(os.path.join(self.maildir_new, name), "rb") as f:
                out[name] = f.read()
        return out

    def wait_delivered(self, qids):
        """The delivered messages whose Received header names one of qids,
        once there is one for each."""
        def find():
            got = {q: [m for m in self.delivered().values()
                       if b" id " + q.encode() + b";" in m or
                       b" id " + q.encode() + b"\n" in m]
                   for q in qids}
            return got if all(got.values()) else None
        return wait_until(find, timeout=15, what="delivery of %s" % qids)

    def test_smtplib_lf_only_delivered(self):
        with smtplib.SMTP("127.0.0.1", self.smtp, timeout=IO_TIMEOUT) as c:
            c.ehlo("cron.example")
            c.mail("cron@outside.example")
            c.rcpt(USER)
            code, text = c.data(LF_MESSAGE)
            self.assertEqual(code, 250, text)
        qid = re.search(r"queued as (\w+)", text.decode()).group(1)
        msgs = self.wait_delivered([qid])[qid]
        self.assertEqual(len(msgs), 1)
        self.assertTrue(msgs[0].endswith(b"\nSubject: from cron\nFrom: " + USER.encode() +
                                         LF_STORED), msgs[0])
        self.assertNotIn(b"\r", msgs[0])

    def test_smuggling_normalized_is_one_message(self):
        # Each "." line after (or ended by) a bare line end, then a whole
        # smuggled transaction: with bare LFs normalized the smuggled
        # commands are content of the one message; a bare CR still
        # refuses it.  Never a second message: the reply after the first
        # is NOOP's.
        accepted = {}
        for seq in (b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\n\n.\n\n",
                    b"\r.\r\n", b"\r\n.\r", b"\r.\n", b"\n.\r"):
            r = Raw(self.smtp)
            try:
                self.assertEqual(r.reply()[0], 220)
                self.assertEqual(r.cmd("EHLO client.example")[0], 250)
                self.assertEqual(r.cmd("MAIL FROM:<smuggle@outside.example>")[0], 250)
                self.assertEqual(r.cmd("RCPT TO:<demo@example.test>")[0], 250)
                self.assertEqual(r.cmd("DATA")[0], 354)
                r.send(b"Subject: innocent\r\n\r\nhello" + seq +
                       b"MAIL FROM:<evil@outside.example>\r\n"
                       b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
                       b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")
                code, text = r.reply()
                if b"\r" in seq.replace(b"\r\n", b""):
                    self.assertEqual(code, 554, "sequence %r: %s" % (seq, text))
                    self.assertTrue(text.startswith("5.6.0"), text)
                else:
                    self.assertEqual(code, 250, "sequence %r: %s" % (seq, text))
                    accepted[seq] = re.search(r"queued as (\w+)", text).group(1)
                self.assertEqual(r.cmd("NOOP"), (250, "2.0.0 Ok"), "sequence %r" % seq)
                self.assertEqual(r.cmd("QUIT")[0], 221)
                self.assertTrue(r.closed())
            finally:
                r.close()
        self.assertEqual(len(accepted), 4)
        found = self.wait_delivered(list(accepted.values()))
        for seq, qid in accepted.items():
            self.assertEqual(len(found[qid]), 1, "sequence %r" % seq)
            m = found[qid][0]
            self.assertIn(b"\nhello\n", m)
            self.assertTrue(m.endswith(b"\nMAIL FROM:<evil@outside.example>\n"
                                       b"RCPT TO:<demo@example.test>\nDATA\n"
                                       b"Subject: smuggled\n\nevil\n"), m)
            self.assertEqual(m.count(b"Subject: "), 2, m)
        # The one message of each accepted session and nothing else.
        smuggled = [m for m in self.delivered().values() if b"evil" in m]
        self.assertEqual(len(smuggled), len(accepted))


class BareLfSwapped(unittest.TestCase):
    """Both settings are read: normalize for strangers, reject for
    authenticated clients (127.0.0.1 outside mynetworks here)."""

    @classmethod
    def setUpClass(cls):
        cls.inst = without_qmgr(Instance(extra_config=(
            "mynetworks = 10.255.255.0/24\nauth_fail_delay = 0\n"
            "smtpd_bare_lf = normalize\nsmtpd_bare_lf_trusted = reject\n")))
        cls.password = re.search(r"password: (\S+)", cls.inst.init_output).group(1)
        cls.inst.start()
        cls.new = os.path.join(cls.inst.dir, "spool", "incoming", "new")

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def test_stranger_normalized(self):
        with smtplib.SMTP("127.0.0.1", self.inst.base + 25, timeout=IO_TIMEOUT) as c:
            c.ehlo("client.example")
            c.mail("lf@outside.example")
            c.rcpt(USER)
            code, text = c.data(LF_MESSAGE)
            self.assertEqual(code, 250, text)
        qid = re.search(r"queued as (\w+)", text.decode()).group(1)
        _, body = parse_qfile(os.path.join(self.new, qid))
        self.assertTrue(body.endswith(b"\nSubject: from cron\nFrom: " + USER.encode() +
                                      LF_STORED), body)

    def test_authenticated_rejected(self):
        before = set(os.listdir(self.new))
        c = smtplib.SMTP("127.0.0.1", self.inst.base + 87, timeout=IO_TIMEOUT)
        try:
            c.ehlo("client.example")
            c.starttls(context=tls_context())
            c.ehlo("client.example")
            c.login(USER, self.password)
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                c.sendmail(USER, [USER], LF_MESSAGE)
            self.assertEqual(cm.exception.smtp_code, 554)
        finally:
            c.close()
        self.assertEqual(set(os.listdir(self.new)), before)
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
