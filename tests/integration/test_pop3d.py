"""pop3d(8) against a real dev-mode instance, with Python's poplib, raw
sockets, curl and fetchmail: CAPA, USER/PASS on loopback, STLS (and the
plaintext injection defence), implicit TLS on 995, AUTH PLAIN and LOGIN,
plaintext logins refused when the client is not considered secure,
byte-exact RETR (dot-stuffing, a last line without line end, 8-bit
content, a 10 MB message streamed), LIST/STAT sizes, UIDL stability,
DELE/RSET/QUIT, a dropped connection, delivery during a session,
[IN-USE], wrong passwords with the auth service's delay, a 1,000-message
mailbox, a streamed 10,000-message listing, 1,000 concurrent sessions
(and their memory), long lines, commands in the wrong state, the error
limit, TOP, pipelining, the idle timeout and shutdown; and a hostile
client: pipelined floods and RETRs never read (memory stays bounded),
message files swapped for symlinks, FIFOs and directories, the error
limit reached mid-batch, clear text after STLS, a half-closed socket.
The login scan of 30,000 unsized messages and a QUIT deleting 30,000 run
on pop3d's job threads while another session of the same process is
answered within 0.5 s; a client dropped mid-scan or mid-QUIT, and SIGTERM
during both, lose nothing."""

import base64
import os
import poplib
import re
import resource
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, wait_until, main  # noqa: E402

IO_TIMEOUT = 15.0
DOMAIN = "example.test"
CONCURRENT = 1000

CONFIG = """
auth_fail_delay = 300ms
auth_penalty_delay = 0
pop3d_timeout = 60s
pop3d_max_errors = 5
pop3d_login_attempts = 3
pop3d_max_connections_per_ip = 0
"""

# A second instance where loopback does not count as secure.
CONFIG_STRICT = """
auth_fail_delay = 0
auth_penalty_delay = 0
pop3d_loopback_secure = no
pop3d_timeout = 2s
"""

USERS = ("plain", "stls", "pop3s", "authp", "authl", "curl", "curls", "fetch",
         "fetchs", "bytes", "big", "uidl", "dele", "drop", "during", "inuse",
         "top", "pipe", "seen", "state", "huge", "flagfail", "flood", "unread",
         "swap", "victim", "batch", "half")


def password(user):
    return "pw-" + user + "-Secret9"


def addr(user):
    return user + "@" + DOMAIN


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


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


class Raw:
    """A raw POP3 client: send lines, read single-line and multi-line
    responses as bytes."""

    def __init__(self, port, tls=False, greet=True, timeout=IO_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if tls:
            self.sock = tls_context().wrap_socket(self.sock)
        self.buf = b""
        if greet:
            g = self.line()
            assert g.startswith(b"+OK"), g

    def starttls(self):
        self.sock = tls_context().wrap_socket(self.sock)

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else data.encode())

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

    def closed(self, timeout=IO_TIMEOUT):
        """Whether the server closes the connection within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


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


class Pop3d(Base):
    @classmethod
    def setUpClass(cls):
        # The concurrency test needs a descriptor per connection, here
        # and in pop3d (which inherits the limit through master).
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = CONCURRENT + 300
        if hard == resource.RLIM_INFINITY or hard >= want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        cls.inst = Instance(extra_config=CONFIG)
        add_users(cls.inst, USERS)
        cls.inst.start()
        cls.pop3 = cls.inst.base + 10
        cls.pop3s = cls.inst.base + 95

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    # --- logins and TLS ----------------------------------------------------

    def test_capa_and_user_pass_on_loopback(self):
        p = self.pop()
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        capa = p.capa()
        for c in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE",
                  "PIPELINING", "STLS"):
            self.assertIn(c, capa)
        self.assertEqual(capa["SASL"], ["PLAIN", "LOGIN"])
        self.assertEqual(capa["IMPLEMENTATION"], ["postern"])
        self.assertTrue(p.user(addr("plain")).startswith(b"+OK"))
        self.assertTrue(p.pass_(password("plain")).startswith(b"+OK"))
        self.assertEqual(p.stat(), (0, 0))
        # In TRANSACTION, CAPA no longer offers the login commands.
        capa = p.capa()
        self.assertNotIn("USER", capa)
        self.assertNotIn("STLS", capa)
        self.assertTrue(p.quit().startswith(b"+OK"))
        log = self.inst.read_log()
        self.assertRegex(log, r"event=login session=\d+ client=127\.0\.0\.1 "
                              r"user=plain@example\.test mech=USER tls=no")

    def test_stls(self):
        p = self.pop()
        self.assertTrue(p.stls(context=tls_context()).startswith(b"+OK"))
        capa = p.capa()
        self.assertNotIn("STLS", capa)
        self.assertIn("USER", capa)
        p.user(addr("stls"))
        self.assertTrue(p.pass_(password("stls")).startswith(b"+OK"))
        self.assertEqual(p.stat(), (0, 0))
        p.quit()
        self.assertRegex(self.inst.read_log(),
                         r"event=login .*user=stls@example\.test mech=USER tls=TLSv1\.[23]:")

    def test_stls_discards_pipelined_plaintext(self):
        # Commands sent after STLS in the same packet must not run (they
        # would be answered inside TLS as if the client sent them there).
        r = self.raw()
        r.send("STLS\r\nUSER " + addr("stls") + "\r\nPASS " + password("stls") + "\r\n")
        self.assertTrue(r.line().startswith(b"+OK"))
        self.assertEqual(r.buf, b"")
        r.starttls()
        r.buf = b""
        # The first response inside TLS is to our first TLS command.
        self.assertEqual(r.cmd("STAT"), b"-ERR Not logged in")
        self.assertTrue(r.cmd("USER " + addr("stls")).startswith(b"+OK"))

    def test_stls_twice_refused(self):
        r = self.raw()
        self.assertTrue(r.cmd("STLS").startswith(b"+OK"))
        r.starttls()
        self.assertTrue(r.cmd("STLS").startswith(b"-ERR"))

    def test_pop3s_implicit_tls(self):
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=tls_context(),
                            timeout=IO_TIMEOUT)
        self.assertTrue(p.getwelcome().startswith(b"+OK"))
        capa = p.capa()
        self.assertNotIn("STLS", capa)
        self.assertIn("USER", capa)
        p.user(addr("pop3s"))
        self.assertTrue(p.pass_(password("pop3s")).startswith(b"+OK"))
        self.assertEqual(p.stat(), (0, 0))
        p.quit()

    def test_auth_plain(self):
        token = base64.b64encode(b"\0" + addr("authp").encode() + b"\0" +
                                 password("authp").encode()).decode()
        # With an initial response.
        p = self.pop()
        self.assertTrue(p._shortcmd("AUTH PLAIN " + token).startswith(b"+OK"))
        self.assertEqual(p.stat(), (0, 0))
        p.quit()
        # Without: the server asks with "+ ".
        r = self.raw()
        r.send("AUTH PLAIN\r\n")
        self.assertEqual(r.line(), b"+ ")
        self.assertTrue(r.cmd(token).startswith(b"+OK"))
        self.assertTrue(r.cmd("STAT").startswith(b"+OK 0 0"))
        self.assertTrue(r.cmd("QUIT").startswith(b"+OK"))
        # pop3s, and a cancelled exchange.
        r = self.raw(self.pop3s, tls=True)
        self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
        self.assertEqual(r.cmd("*"), b"-ERR Authentication cancelled")
        self.assertTrue(r.cmd("AUTH PLAIN " + token).startswith(b"+OK"))

    def test_auth_login(self):
        r = self.raw()
        self.assertEqual(r.cmd("AUTH LOGIN"), b"+ VXNlcm5hbWU6")
        self.assertEqual(r.cmd(base64.b64encode(addr("authl").encode()).decode()),
                         b"+ UGFzc3dvcmQ6")
        self.assertTrue(r.cmd(base64.b64encode(password("authl").encode()).decode())
                        .startswith(b"+OK"))
        self.assertTrue(r.cmd("STAT").startswith(b"+OK"))
        r.cmd("QUIT")
        # With the user name as initial response, through poplib.
        p = self.pop()
        self.assertEqual(p._shortcmd("AUTH LOGIN " + base64.b64encode(
            addr("authl").encode()).decode()), b"+ UGFzc3dvcmQ6")
        self.assertTrue(p._shortcmd(base64.b64encode(password("authl").encode())
                                    .decode()).startswith(b"+OK"))
        p.quit()
        # Bad mechanism and bad base64.
        r = self.raw()
        self.assertTrue(r.cmd("AUTH CRAM-MD5").startswith(b"-ERR"))
        self.assertTrue(r.cmd("AUTH PLAIN !!!").startswith(b"-ERR"))
        self.assertTrue(r.cmd("AUTH").startswith(b"+OK"))
        self.assertEqual(r.multi(), b"PLAIN\r\nLOGIN\r\n")

    def test_wrong_password_delayed_then_closed(self):
        r = self.raw()
        times = []
        for i in range(3):
            self.assertTrue(r.cmd("USER nobody-%d@%s" % (i, DOMAIN)).startswith(b"+OK"))
            t = time.monotonic()
            reply = r.cmd("PASS wrong")
            times.append(time.monotonic() - t)
            self.assertTrue(reply.startswith(b"-ERR [AUTH] "), reply)
        # auth_fail_delay is 300 ms: every failure is answered late.
        self.assertGreater(min(times), 0.25, times)
        # pop3d_login_attempts = 3: the third failure closes the connection.
        self.assertTrue(r.closed(5))
        # The right password still works (and is not delayed as much).
        p = self.pop("plain")
        p.quit()

    def test_pass_without_user(self):
        r = self.raw()
        self.assertTrue(r.cmd("PASS x").startswith(b"-ERR"))
        self.assertTrue(r.cmd("APOP a b").startswith(b"-ERR"))

    # --- clients -------------------------------------------------------------

    def curl(self, *args):
        return subprocess.run(["curl", "-s", "-S", "--max-time", "30"] + list(args),
                              capture_output=True, timeout=60)

    @unittest.skipUnless(shutil.which("curl"), "curl not installed")
    def test_curl_pop3_and_pop3s(self):
        for user, scheme, port in (("curl", "pop3", self.pop3),
                                   ("curls", "pop3s", self.pop3s)):
            self.deliver(user, b"hello from curl\r\n.starts with a dot\r\n", "curl one")
            self.deliver(user, b"second\r\n", "curl two")
            url = "%s://127.0.0.1:%d/" % (scheme, port)
            cred = ["-k", "--user", "%s:%s" % (addr(user), password(user))]
            p = self.curl(*(cred + [url]))
            self.assertEqual(p.returncode, 0, p.stderr)
            listing = p.stdout.decode().split("\r\n")
            self.assertEqual(len([l for l in listing if l]), 2, p.stdout)
            sizes = [int(l.split()[1]) for l in listing if l]
            p = self.curl(*(cred + [url + "1"]))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn(b"Subject: curl one\r\n", p.stdout)
            self.assertIn(b"\r\n.starts with a dot\r\n", p.stdout)
            self.assertEqual(len(p.stdout), sizes[0])

    def fetchmail(self, user, ssl_on):
        home = tempfile.mkdtemp(prefix="fm-", dir=self.inst.dir)
        out = os.path.join(home, "mbox")
        rc = os.path.join(home, "fetchmailrc")
        port = self.pop3s if ssl_on else self.pop3
        with open(rc, "w") as f:
            f.write('poll 127.0.0.1 protocol pop3 port %d timeout 30\n'
                    '  user "%s" password "%s" is "%s" here\n'
                    '  %s\n'
                    '  mda "cat >> %s"\n' % (
                        port, addr(user), password(user), os.environ.get("USER", "root"),
                        "ssl no sslcertck" if ssl_on else 'sslproto ""', out))
        os.chmod(rc, 0o600)
        env = dict(os.environ, HOME=home, FETCHMAILHOME=home)
        p = subprocess.run(["fetchmail", "-f", rc, "--nokeep", "--nosyslog", "-N",
                            "--pidfile", os.path.join(home, "pid"),
                            "--idfile", os.path.join(home, "ids")],
                           capture_output=True, text=True, timeout=90, env=env)
        return p, out

    @unittest.skipUnless(shutil.which("fetchmail"), "fetchmail not installed")
    def test_fetchmail_downloads_and_deletes(self):
        for user, ssl_on in (("fetch", False), ("fetchs", True)):
            for i in range(3):
                self.deliver(user, b"fetchmail body %d\r\n..two dots\r\n" % i,
                             "fetch %d" % i)
            p, out = self.fetchmail(user, ssl_on)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(out, "rb") as f:
                data = f.read()
            for i in range(3):
                self.assertIn(b"Subject: fetch %d" % i, data)
                self.assertIn(b"fetchmail body %d" % i, data)
            self.assertIn(b"\n..two dots\n", data)
            # --nokeep: the mailbox is empty now.
            self.assertEqual(self.files(user), [])
            p = self.pop(user)
            self.assertEqual(p.stat(), (0, 0))
            p.quit()

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
        n, size = [l.split() for l in listing if l][-1]
        first = r.cmd("RETR " + n)
        self.assertEqual(first, b"+OK %s octets" % size.encode())
        t = time.monotonic()
        body = r.multi()
        elapsed = time.monotonic() - t
        want = crlf_fast(content)
        self.assertEqual(int(size), len(want))
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


class Strict(Base):
    """pop3d_loopback_secure = no: a plaintext client is not secure."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(extra_config=CONFIG_STRICT)
        add_users(cls.inst, ("strict",))
        cls.inst.start()
        cls.pop3 = cls.inst.base + 10
        cls.pop3s = cls.inst.base + 95

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

    def test_plaintext_login_refused(self):
        p = self.pop()
        capa = p.capa()
        self.assertNotIn("USER", capa)
        self.assertNotIn("SASL", capa)
        self.assertIn("STLS", capa)
        with self.assertRaises(poplib.error_proto) as cm:
            p.user(addr("strict"))
        self.assertTrue(str(cm.exception).startswith("b'-ERR [AUTH] "), cm.exception)
        token = base64.b64encode(b"\0" + addr("strict").encode() + b"\0" +
                                 password("strict").encode()).decode()
        with self.assertRaises(poplib.error_proto) as cm:
            p._shortcmd("AUTH PLAIN " + token)
        self.assertIn("[AUTH]", str(cm.exception))
        # After STLS the same login works.
        p.stls(context=tls_context())
        self.assertIn("USER", p.capa())
        p.user(addr("strict"))
        self.assertTrue(p.pass_(password("strict")).startswith(b"+OK"))
        p.quit()
        p = poplib.POP3_SSL("127.0.0.1", self.pop3s, context=tls_context(),
                            timeout=IO_TIMEOUT)
        self.assertTrue(p._shortcmd("AUTH PLAIN " + token).startswith(b"+OK"))
        p.quit()

    def test_idle_timeout_closes_without_deleting(self):
        self.deliver("strict", b"stay\r\n", "timeout")
        r = self.raw(self.pop3s, tls=True)
        r.login("strict")
        self.assertTrue(r.cmd("DELE 1").startswith(b"+OK"))
        t = time.monotonic()
        self.assertTrue(r.closed(10))
        self.assertGreater(time.monotonic() - t, 1.5)
        self.assertEqual(r.buf, b"")    # RFC 1939: no response
        self.assertEqual(len(self.files("strict")), 1)
        self.assertIn("event=timeout", self.inst.read_log())


class ErrorLimit(Base):
    """The default pop3d_max_errors (20) counts refusals in a row: an
    accepted command starts the count again."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(extra_config="auth_fail_delay = 0\nauth_penalty_delay = 0\n")
        add_users(cls.inst, ("errs",))
        cls.inst.start()
        cls.pop3 = cls.inst.base + 10

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

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


class Shutdown(Base):
    """SIGTERM (postern stop) ends sessions without deleting anything."""

    def setUp(self):
        super().setUp()
        self.inst = Instance(extra_config="auth_fail_delay = 0\nauth_penalty_delay = 0\n")
        add_users(self.inst, ("stop",))
        self.inst.start()
        self.pop3 = self.inst.base + 10

    def tearDown(self):
        super().tearDown()
        self.inst.cleanup()

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


# --- Mailbox jobs: one big mailbox must not stall the other sessions -------

BIG = 30000
# What "not stalled" means for a command of another session.
STALL_MAX = 0.5
BIG_BODY = b"Subject: big\n\nline one\n.dot line\nline three\n" * 3


class Jobs(Base):
    """The login scan of a Maildir of BIG messages without ",W=" and a
    QUIT deleting BIG messages run on pop3d's job threads: meanwhile the
    other sessions of the same (single) pop3d process are answered at
    once, and a client dropped mid-scan loses nothing."""

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance(extra_config="auth_fail_delay = 0\nauth_penalty_delay = 0\n"
                            "pop3d_timeout = 60s\n")
        add_users(cls.inst, ("bigscan", "bigquit", "bigdrop", "other", "third"))
        cls.inst.start()
        cls.pop3 = cls.inst.base + 10

    @classmethod
    def tearDownClass(cls):
        cls.inst.close()

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


class JobsShutdown(Base):
    """SIGTERM during a big login scan and during a big UPDATE: the
    process exits promptly, nothing is lost, at most the deletions not
    done yet stay."""

    def setUp(self):
        super().setUp()
        self.inst = Instance(extra_config="auth_fail_delay = 0\nauth_penalty_delay = 0\n")
        add_users(self.inst, ("stopscan", "stopquit"))
        self.inst.start()
        self.pop3 = self.inst.base + 10

    def tearDown(self):
        super().tearDown()
        self.inst.cleanup()

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
