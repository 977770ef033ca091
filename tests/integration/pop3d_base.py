"""What the pop3d(8) tests share: the users' passwords and addresses, a
raw POP3 client, what RETR makes of file content, and the test-case base
classes that start a dev-mode instance, once for a class of tests
(SharedInstance) or once for each test (OwnInstance, for tests that stop
it)."""

import os
import poplib
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, LineClient, tls_context, wait_until  # noqa: E402

IO_TIMEOUT = 15.0
DOMAIN = "example.test"

# The instance most tests share.
CONFIG = """
auth_fail_delay = 300ms
auth_penalty_delay = 0
pop3d_timeout = 60s
pop3d_max_errors = 5
pop3d_login_attempts = 3
pop3d_max_connections_per_ip = 0
"""

# Failed logins answered at once.
NO_DELAY = "auth_fail_delay = 0\nauth_penalty_delay = 0\n"


def password(user):
    return "pw-" + user + "-Secret9"


def addr(user):
    return user + "@" + DOMAIN


def add_users(inst, users):
    for u in users:
        p = subprocess.run([inst.postern_path, "-c", inst.conf, "user", "add", addr(u)],
                           input=password(u) + "\n", capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise AssertionError("user add %s: %s%s" % (u, p.stdout, p.stderr))


def crlf(data):
    """What RETR sends for file content: bare LF -> CRLF (CRLF stays)."""
    out = bytearray()
    prev = None
    for i in range(len(data)):
        b = data[i]
        if b == 0x0A and prev != 0x0D:
            out += b"\r\n"
        else:
            out.append(b)
        prev = b
    return bytes(out)


def crlf_fast(data):
    """crlf() for LF-only content (large messages)."""
    return data.replace(b"\n", b"\r\n")


def dotstuff(data):
    lines = data.split(b"\r\n")
    return b"\r\n".join((b"." + l) if l.startswith(b".") else l for l in lines)


class Raw(LineClient):
    """A raw POP3 client: send lines, read single-line and multi-line
    responses as bytes."""

    io_timeout = IO_TIMEOUT

    def __init__(self, port, tls=False, greet=True, timeout=IO_TIMEOUT):
        super().__init__(port, tls, timeout)
        if greet:
            g = self.line()
            assert g.startswith(b"+OK"), g

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed; have %r" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def multi(self):
        """The body of a multi-line response up to and without ".\r\n",
        exactly as sent (still dot-stuffed)."""
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                self.buf = self.buf[3:]
                return b""
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                body = self.buf[:i + 2]
                self.buf = self.buf[i + 5:]
                return body
            start = max(0, len(self.buf) - 4)
            self.fill()

    def cmd(self, text):
        self.send(text + "\r\n")
        return self.line()

    def login(self, user):
        assert self.cmd("USER " + addr(user)).startswith(b"+OK")
        r = self.cmd("PASS " + password(user))
        assert r.startswith(b"+OK"), r
        return r


class Base(unittest.TestCase):
    """Helpers shared by the test classes."""

    def setUp(self):
        self.raws = []

    def tearDown(self):
        for r in self.raws:
            r.close()

    def raw(self, port=None, tls=False, greet=True):
        r = Raw(port or self.pop3, tls, greet)
        self.raws.append(r)
        return r

    def maildir(self, user):
        return os.path.join(self.inst.dir, "mail", DOMAIN, user)

    def files(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(user), sub)
            if os.path.isdir(d):
                out += [(sub, n) for n in os.listdir(d) if not n.startswith(".")]
        return sorted(out)

    def place(self, user, name, content, sub="new"):
        """Put a message file straight into the Maildir's new/ (or cur/)."""
        md = self.maildir(user)
        for d in ("tmp", "new", "cur"):
            self.inst.makedirs(os.path.join(md, d))
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(content)
        os.rename(tmp, os.path.join(md, sub, name))

    def deliver(self, user, body, subject="test"):
        """Deliver through smtpd -> qmgr -> local; wait until it is stored."""
        before = len(self.files(user))
        msg = ("From: sender@outside.example\r\nTo: %s\r\nSubject: %s\r\n\r\n"
               % (addr(user), subject)).encode() + body
        with smtplib.SMTP("127.0.0.1", self.inst.base + 25, timeout=IO_TIMEOUT) as c:
            c.sendmail("sender@outside.example", [addr(user)], msg)
        wait_until(lambda: len(self.files(user)) > before, timeout=20,
                   what="delivery to " + user)

    def pop(self, user=None, port=None):
        p = poplib.POP3("127.0.0.1", port or self.pop3, timeout=IO_TIMEOUT)
        if user is not None:
            p.user(addr(user))
            p.pass_(password(user))
        return p


def start_instance(config, users):
    """A started dev-mode instance with these users."""
    inst = Instance(extra_config=config)
    add_users(inst, users)
    inst.start()
    return inst


class SharedInstance(Base):
    """One instance for all the tests of the class: CONFIG and USERS are
    the class's."""
    CONFIG = CONFIG
    USERS = ()

    @classmethod
    def setUpClass(cls):
        cls.inst = start_instance(cls.CONFIG, cls.USERS)
        cls.pop3 = cls.inst.base + 10
        cls.pop3s = cls.inst.base + 95

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()


class OwnInstance(Base):
    """A new instance for each test (tests that stop it)."""
    CONFIG = NO_DELAY
    USERS = ()

    def setUp(self):
        super().setUp()
        self.inst = start_instance(self.CONFIG, self.USERS)
        self.pop3 = self.inst.base + 10

    def tearDown(self):
        super().tearDown()
        self.inst.cleanup()
