"""pop3d(8) logins against a real dev-mode instance: CAPA, USER/PASS on
loopback, STLS (and the plaintext injection defence), implicit TLS on 995,
AUTH PLAIN and LOGIN, wrong passwords with the auth service's delay,
downloads by curl and fetchmail in clear text and TLS; and an instance
where loopback does not count as secure: plaintext logins refused, the
idle timeout."""

import base64
import os
import poplib
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, tls_context  # noqa: E402
from pop3d_base import DOMAIN, IO_TIMEOUT, SharedInstance, addr, password  # noqa: E402

# Where loopback does not count as secure.
CONFIG_STRICT = """
auth_fail_delay = 0
auth_penalty_delay = 0
pop3d_loopback_secure = no
pop3d_timeout = 2s
"""


class Logins(SharedInstance):
    USERS = ("plain", "stls", "pop3s", "authp", "authl", "curl", "curls", "fetch",
             "fetchs")

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


class Strict(SharedInstance):
    """pop3d_loopback_secure = no: a plaintext client is not secure."""

    CONFIG = CONFIG_STRICT
    USERS = ("strict",)

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


if __name__ == "__main__":
    main()
