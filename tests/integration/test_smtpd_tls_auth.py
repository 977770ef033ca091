"""smtpd(8) against a real dev-mode instance: delivery to a local user
(queue file envelope and body) with smtplib and swaks, STARTTLS on 25 and
587 (buffered clear text dropped), implicit TLS on 465 (Date and
Message-ID added), AUTH PLAIN/LOGIN success, failure and cancel, AUTH
refused before TLS, submission rules, the sender login match, relay
control and unknown users."""

import os
import smtplib
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import main, tls_context  # noqa: E402
from smtpd_base import IO_TIMEOUT, USER, SmtpdCase, env_get  # noqa: E402


class TlsAuth(SmtpdCase):
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


if __name__ == "__main__":
    main()
