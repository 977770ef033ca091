"""Format tests for lib/mail/dsn.c: tests/integration/dsngen writes delivery
status notifications from queue files, and Python's email package must
parse each as an RFC 3464 multipart/report with the right per-recipient
fields and the returned message attached."""

import email
import email.policy
import os
import subprocess
import tempfile
import unittest

import harness

DSNGEN = os.path.join(harness.BUILDDIR, "tests", "integration", "dsngen")
NOW = 1700000000


def esc(v):
    """%XX-escape an envelope value the way lib/mail/qfile.c does."""
    out = []
    for b in v.encode("utf-8"):
        if b <= 0x20 or b >= 0x7F or b == 0x25:
            out.append("%%%02X" % b)
        else:
            out.append(chr(b))
    return "".join(out)


def queue_file(sender, rcpts, message, ret="NONE", envid=None, smtputf8=0):
    """A queue file's bytes; rcpts is a list of (addr, notify, orcpt)."""
    lines = ["POSTERN-QUEUE 1", "id 4Xq7Zabc", "arrival 1699990000.000000",
             "sender " + (esc(sender) if sender else "<>"), "body 8BITMIME",
             "smtputf8 %d" % smtputf8, "ret " + ret]
    if envid is not None:
        lines.append("envid " + esc(envid))
    lines += ["client 192.0.2.1", "proto ESMTP"]
    for addr, notify, orcpt in rcpts:
        lines.append("rcpt %s %d %s" % (esc(addr), notify, esc(orcpt) if orcpt else "-"))
    return ("\n".join(lines) + "\n\n").encode() + message


def report_line(idx, action, status="-", remote="-", dtype="-", diag="-",
                last="-", until="-"):
    """A dsngen report line; free-text fields are %XX-escaped."""
    def x(v):
        if v == "-":
            return v
        return "".join(c if c.isalnum() or c in ".:<>@" else
                       "".join("%%%02X" % b for b in c.encode()) for c in v)
    return "\t".join(str(v) for v in (idx, action, x(status), x(remote), dtype,
                                        x(diag), last, until))


MSG = (b"From: Alice <alice@example.org>\nTo: bob@example.net\n"
       b"Subject: hello\nMessage-ID: <m1@example.org>\n\nHi Bob,\nsee you.\n")


class DsnFormat(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="dsn-")

    def tearDown(self):
        for n in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, n))
        os.rmdir(self.tmp)

    def gen(self, qf, lines, *args):
        q = os.path.join(self.tmp, "q")
        r = os.path.join(self.tmp, "r")
        with open(q, "wb") as f:
            f.write(qf)
        with open(r, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = subprocess.run([DSNGEN, "-t", str(NOW)] + list(args) + [q, r],
                           capture_output=True, timeout=harness.COMMAND_TIMEOUT)
        self.assertEqual(p.returncode, 0, p.stderr)
        info = dict(kv.split("=") for kv in p.stderr.decode().split())
        self.assertNotIn(b"\r", p.stdout)
        return p.stdout, email.message_from_bytes(p.stdout), info

    def check_report(self, msg, raw):
        self.assertTrue(msg.is_multipart())
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")
        self.assertEqual(msg["MIME-Version"], "1.0")
        self.assertTrue(msg["From"].startswith("Mail Delivery System <MAILER-DAEMON@"))
        self.assertIsNotNone(msg["Date"])
        self.assertIsNotNone(msg["Message-ID"])
        parts = msg.get_payload()
        self.assertEqual(parts[0].get_content_type(), "text/plain")
        self.assertEqual(parts[1].get_content_type(), "message/delivery-status")
        self.assertEqual(msg.defects, [])
        for line in raw.split(b"\n"):
            self.assertLessEqual(len(line), 998)
        blocks = parts[1].get_payload()
        return parts, blocks[0], blocks[1:]

    def test_one_failed(self):
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("bob@example.net", 0, None)], MSG),
            [report_line(0, "failed", "5.1.1", "mx.example.net", "smtp",
                         "550 5.1.1 <bob@example.net>: no such user", NOW - 60)])
        parts, per_msg, rcpts = self.check_report(msg, raw)
        self.assertEqual(msg["To"], "<alice@example.org>")
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(per_msg["Reporting-MTA"], "dns; mx.example.test")
        self.assertIsNone(per_msg["Original-Envelope-Id"])
        self.assertEqual(per_msg["Arrival-Date"], "Tue, 14 Nov 2023 19:26:40 +0000")
        self.assertEqual(len(rcpts), 1)
        r = rcpts[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; bob@example.net")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertEqual(r["Remote-MTA"], "dns; mx.example.net")
        self.assertEqual(r["Diagnostic-Code"],
                         "smtp; 550 5.1.1 <bob@example.net>: no such user")
        self.assertIsNotNone(r["Last-Attempt-Date"])
        self.assertIsNone(r["Original-Recipient"])
        self.assertIn("<bob@example.net>", parts[0].get_payload())
        # RET absent and a failure: the whole message comes back.
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")
        inner = parts[2].get_payload()[0]
        self.assertEqual(inner["Subject"], "hello")
        self.assertEqual(inner.get_payload(), "Hi Bob,\nsee you.\n")
        self.assertEqual(info["returned"], "2")

    def test_mixed_with_orcpt_and_envid(self):
        rc = [("a@example.net", 0x4 | 0x8, "rfc822;orig-a@example.com"),
              ("b@example.net", 0x8, None),
              ("c@example.net", 0x2, "rfc822;orig-c@example.com")]
        raw, msg, info = self.gen(
            queue_file("alice@example.org", rc, MSG, ret="FULL", envid="QQ 314+1"),
            [report_line(0, "failed", "4.4.7", dtype="local", diag="delivery time expired"),
             report_line(1, "delayed", "4.2.2", "mx.example.net", "smtp",
                         "452 4.2.2 mailbox full", NOW - 10, NOW + 86400),
             report_line(2, "delivered", "2.0.0")])
        parts, per_msg, rcpts = self.check_report(msg, raw)
        self.assertEqual(per_msg["Original-Envelope-Id"], "QQ+20314+2B1")
        self.assertEqual([r["Action"] for r in rcpts], ["failed", "delayed", "delivered"])
        # The class follows the action: an expired 4.4.7 is reported 5.4.7.
        self.assertEqual([r["Status"] for r in rcpts], ["5.4.7", "4.2.2", "2.0.0"])
        self.assertEqual(rcpts[0]["Original-Recipient"], "rfc822; orig-a@example.com")
        self.assertEqual(rcpts[0]["Diagnostic-Code"], "X-Postern; delivery time expired")
        self.assertIsNone(rcpts[1]["Original-Recipient"])
        self.assertEqual(rcpts[1]["Will-Retry-Until"], "Wed, 15 Nov 2023 22:13:20 +0000")
        self.assertIsNone(rcpts[2]["Will-Retry-Until"])
        self.assertEqual(rcpts[2]["Original-Recipient"], "rfc822; orig-c@example.com")
        self.assertEqual(msg["Subject"], "Undelivered Mail Returned to Sender")
        self.assertEqual(parts[2].get_content_type(), "message/rfc822")

    def test_delay_only_returns_headers(self):
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("b@example.net", 0, None)], MSG),
            [report_line(0, "delayed", "4.4.1", until=NOW + 3600)])
        parts, _, rcpts = self.check_report(msg, raw)
        self.assertEqual(msg["Subject"], "Delayed Mail (still being retried)")
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertNotIn("Hi Bob", parts[2].get_payload())
        self.assertIn("Subject: hello", parts[2].get_payload())

    def test_success_report(self):
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("b@example.net", 2, None)], MSG),
            [report_line(0, "relayed", "2.0.0", "legacy.example.net")])
        parts, _, rcpts = self.check_report(msg, raw)
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(rcpts[0]["Action"], "relayed")

    def test_ret_hdrs(self):
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("b@example.net", 0, None)], MSG, ret="HDRS"),
            [report_line(0, "failed", "5.1.1")])
        parts, _, _ = self.check_report(msg, raw)
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        hdrs = email.message_from_string(parts[2].get_payload())
        self.assertEqual(hdrs["Message-ID"], "<m1@example.org>")
        self.assertEqual(info["returned"], "1")

    def test_ret_full_over_cap(self):
        big = MSG + b"x" * 70 + b"\n" * 1
        big += (b"y" * 70 + b"\n") * 2000
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("b@example.net", 0, None)], big, ret="FULL"),
            [report_line(0, "failed", "5.2.3")], "-m", "10000")
        parts, _, _ = self.check_report(msg, raw)
        self.assertEqual(parts[2].get_content_type(), "text/rfc822-headers")
        self.assertLess(len(raw), 5000)

    def test_utf8_addresses(self):
        rc = [("jöe@bücher.example", 0, "utf-8;jöe+x@bücher.example")]
        raw, msg, info = self.gen(
            queue_file("ålice@example.org", rc,
                       "Subject: grüße\n\nbody ✓\n".encode(), smtputf8=1),
            [report_line(0, "failed", "5.1.1")])
        parts, _, rcpts = self.check_report(msg, raw)
        self.assertEqual(rcpts[0]["Final-Recipient"],
                         "utf-8; j\\x{F6}e@b\\x{FC}cher.example")
        self.assertEqual(rcpts[0]["Original-Recipient"],
                         "utf-8; j\\x{F6}e\\x{2B}x@b\\x{FC}cher.example")
        self.assertEqual(info["smtputf8"], "1")
        self.assertEqual(info["body_8bit"], "1")
        self.assertIn("<ålice@example.org>".encode(), raw)
        self.assertIn("jöe@bücher.example",
                      parts[0].get_payload(decode=True).decode("utf-8"))
        # The status part stays ASCII.
        status = raw.split(b"message/delivery-status")[1].split(b"\n--")[0]
        self.assertTrue(all(b < 0x80 for b in status))

    def test_boundary_lookalike(self):
        body = b"Subject: trap\n\n--BOUNDARY\nContent-Type: text/html\n\n--BOUNDARY--\n"
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("b@example.net", 0, None)], body),
            [report_line(0, "failed", "5.1.1")], "-b", "BOUNDARY")
        parts, _, _ = self.check_report(msg, raw)
        self.assertEqual(len(parts), 3)
        self.assertNotEqual(msg.get_boundary(), "BOUNDARY")
        inner = parts[2].get_payload()[0]
        self.assertIn("--BOUNDARY--", inner.get_payload())

    def test_hostile_diagnostic(self):
        evil = "550 no\r\nBcc: victim@example.com\n\n--x\nFinal-Recipient: rfc822; f@x"
        raw, msg, info = self.gen(
            queue_file("alice@example.org", [("b@example.net", 0, None)], MSG),
            [report_line(0, "failed", "5.1.1\nX: y", "mx\nevil: 1", "smtp", evil)])
        parts, _, rcpts = self.check_report(msg, raw)
        self.assertIsNone(msg["Bcc"])
        self.assertEqual(len(rcpts), 1)
        self.assertEqual(rcpts[0]["Status"], "5.0.0")
        self.assertNotIn("\n", rcpts[0]["Diagnostic-Code"].replace("\n ", " "))
        self.assertEqual(len(parts), 3)
        for line in raw.split(b"\n"):
            self.assertFalse(line.startswith(b"Bcc"))

    def test_postmaster_notice(self):
        raw, msg, info = self.gen(
            queue_file("", [("b@example.net", 0, None)], MSG),
            [report_line(0, "failed", "5.1.1")], "-T", "postmaster@mx.example.test")
        parts, _, _ = self.check_report(msg, raw)
        self.assertEqual(msg["To"], "<postmaster@mx.example.test>")
        self.assertIn("null sender", parts[0].get_payload())


if __name__ == "__main__":
    harness.main()
