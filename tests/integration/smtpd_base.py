"""What the smtpd(8) tests share: the limits of the test instance, a raw
SMTP client, reading queue files, and the test-case base class that
starts one dev-mode instance without qmgr for a class of tests (so they
can inspect spool/incoming/new), with the helpers its tests use."""

import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, LineClient, tls_context, wait_until  # noqa: E402

IO_TIMEOUT = 10.0
TIMEOUT_S = 3           # smtpd_timeout of the test instance
PER_IP = 10             # smtpd_max_connections_per_ip of the test instance
MAX_SIZE = 64 * 1024    # smtpd_max_message_size of the test instance
MAX_RCPTS = 150         # smtpd_max_recipients of the test instance
MAX_ENVELOPE = 32 * 1024  # smtpd_max_envelope_size of the test instance
OVERSHOOT = 20          # smtpd_recipient_overshoot_limit of the test instance
MAX_ERRORS = 10         # smtpd_max_errors (the default)

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


class Raw(LineClient):
    """A raw SMTP client: write bytes, read replies (multi-line aware)."""

    io_timeout = IO_TIMEOUT
    reset_is_close = False   # closed(): a reset is not the clean close

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


class SmtpdCase(unittest.TestCase):
    """One instance (CONFIG, without qmgr) for all the tests of the class."""

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
