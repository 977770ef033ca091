"""Integration tests for qmgr(8)'s reports beyond bounces, in a dev
instance:

- NOTIFY=SUCCESS: after delivery the sender gets an RFC 3464 "delivered"
  report (Action: delivered, Status: 2.0.0) that returns the headers only,
  even with RET=FULL (RFC 3461 4.3); mail from the null sender gets none;
- postmaster notices go to postmaster_address, which `postern init` sets
  to the demo domain's postmaster alias: a double bounce (failed mail
  from <>) arrives in the demo user's Maildir."""

import email
import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CONFIG = """
queue_retry_min = 1s
queue_retry_max = 2s
restart_delay_max = 1s
"""


def esc(v):
    """%XX-escape an envelope value the way lib/qfile.c does."""
    return "".join("%%%02X" % b if b <= 0x20 or b >= 0x7F or b == 0x25 else chr(b)
                   for b in v.encode("utf-8"))


def queue_file(qid, sender, rcpt, message, notify=0):
    """A queue file in lib/qfile.h's format (one recipient)."""
    lines = ["POSTERN-QUEUE 1", "id " + qid, "arrival %.6f" % time.time(),
             "sender " + (esc(sender) if sender else "<>"), "body 7BIT",
             "smtputf8 0", "ret NONE", "client 127.0.0.1", "proto ESMTP",
             "rcpt %s %d -" % (esc(rcpt), notify)]
    return ("\n".join(lines) + "\n\n").encode() + message


def reports(msg):
    """The per-recipient blocks of a multipart/report, as dicts."""
    parts = msg.get_payload()
    return [dict(b.items()) for b in parts[1].get_payload()[1:]]


class QmgrReports(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = harness.Instance(extra_config=CONFIG)
        try:
            cls.inst.start()
        except BaseException:
            cls.inst.cleanup()
            raise
        cls.port = cls.inst.base + 25
        cls.spool = os.path.join(cls.inst.dir, "spool")
        cls.maildir = os.path.join(cls.inst.dir, "mail", "example.test", "demo", "new")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.inst.stop()
        finally:
            cls.inst.cleanup()

    def files(self):
        if not os.path.isdir(self.maildir):
            return []
        out = []
        for name in sorted(os.listdir(self.maildir)):
            with open(os.path.join(self.maildir, name), "rb") as f:
                out.append(f.read())
        return out

    def wait_for(self, *needles, timeout=10):
        def found():
            return [v for v in self.files() if all(n in v for n in needles)]
        return harness.wait_until(found, timeout=timeout, what="mail with %r" % (needles,))

    def spool_empty(self):
        return os.listdir(os.path.join(self.spool, "queue")) == [] and \
            os.listdir(os.path.join(self.spool, "incoming", "new")) == []

    def send(self, sender, rcpts, body, mail_options=(), rcpt_options=()):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=20)
        try:
            s.sendmail(sender, rcpts, body, mail_options=list(mail_options),
                       rcpt_options=list(rcpt_options))
        finally:
            s.quit()

    def test_1_notify_success(self):
        body = (b"From: demo@example.test\r\nTo: demo@example.test\r\n"
                b"Subject: please confirm\r\nMessage-ID: <ok1@example.test>\r\n\r\n"
                b"the secret body text\r\n")
        self.send("demo@example.test", ["demo@example.test"], body,
                  mail_options=["RET=FULL", "ENVID=env-ok1"],
                  rcpt_options=["NOTIFY=SUCCESS"])
        self.wait_for(b"the secret body text")
        raw = self.wait_for(b"multipart/report", b"<ok1@example.test>")
        self.assertEqual(len(raw), 1)
        msg = email.message_from_bytes(raw[0])
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["Subject"], "Successful Mail Delivery Report")
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")
        self.assertEqual(msg.defects, [])
        parts = msg.get_payload()
        self.assertEqual([p.get_content_type() for p in parts],
                         ["text/plain", "message/delivery-status", "text/rfc822-headers"])
        head = parts[1].get_payload()[0]
        self.assertEqual(head["Original-Envelope-Id"], "env-ok1")
        rcpts = reports(msg)
        self.assertEqual(len(rcpts), 1)
        self.assertEqual(rcpts[0]["Final-Recipient"], "rfc822; demo@example.test")
        self.assertEqual(rcpts[0]["Action"], "delivered")
        self.assertEqual(rcpts[0]["Status"], "2.0.0")
        # Headers only, though RET=FULL: RET asks for content in failures.
        self.assertIn("Subject: please confirm", parts[2].get_payload())
        self.assertNotIn(b"the secret body text", raw[0])
        # The report itself came from <> (Return-Path), so it cannot loop.
        self.assertTrue(raw[0].startswith(b"Return-Path: <>"), raw[0][:80])
        harness.wait_until(self.spool_empty, timeout=10, what="empty spool")

    def test_2_no_success_report_to_null_sender(self):
        before = len(self.files())
        self.send("", ["demo@example.test"],
                  b"Subject: from nobody\r\nMessage-ID: <ok2@example.test>\r\n\r\nx\r\n",
                  rcpt_options=["NOTIFY=SUCCESS"])
        self.wait_for(b"<ok2@example.test>")
        harness.wait_until(self.spool_empty, timeout=10, what="empty spool")
        time.sleep(1.5)     # a report would be picked up within a scan
        self.assertTrue(self.spool_empty())
        self.assertEqual(len(self.files()), before + 1)

    def test_3_no_report_without_notify_success(self):
        before = len(self.files())
        self.send("demo@example.test", ["demo@example.test"],
                  b"Subject: plain\r\nMessage-ID: <ok3@example.test>\r\n\r\nx\r\n",
                  rcpt_options=["NOTIFY=FAILURE"])
        self.wait_for(b"<ok3@example.test>")
        harness.wait_until(self.spool_empty, timeout=10, what="empty spool")
        time.sleep(1.5)
        self.assertEqual(len(self.files()), before + 1)

    def test_4_init_sets_postmaster_address(self):
        with open(self.inst.conf) as f:
            conf = f.read()
        self.assertIn("\npostmaster_address = postmaster@example.test\n", conf)

    def test_5_double_bounce_reaches_postmaster(self):
        # Failed mail from <>: smtpd refuses unknown users at RCPT, so the
        # queue file is committed into incoming/new directly, the way
        # smtpd does (written aside, then renamed in).
        qid = "Z%dDBLBOUNCE" % int(time.time())
        data = queue_file(qid, "", "nosuchuser@example.test",
                          b"Subject: lost bounce\nMessage-ID: <db1@remote.test>\n\nx\n")
        tmp = os.path.join(self.spool, "incoming", "tmp", qid)
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, os.path.join(self.spool, "incoming", "new", qid))
        raw = self.wait_for(b"multipart/report", b"<db1@remote.test>", timeout=15)
        msg = email.message_from_bytes(raw[0])
        self.assertIn("postmaster@example.test", msg["To"])
        self.assertIn(b"This report is for the postmaster", raw[0])
        self.assertEqual(reports(msg)[0]["Action"], "failed")
        self.assertEqual(reports(msg)[0]["Final-Recipient"], "rfc822; nosuchuser@example.test")
        # Sent from the double-bounce address, and delivered through the
        # postmaster alias to the demo user.
        self.assertIn(b"Return-Path: <double-bounce@", raw[0])
        self.assertIn(b"\nTo: <postmaster@example.test>\n", raw[0])
        self.assertIn(b"\nDelivered-To: demo@example.test\n", raw[0])
        harness.wait_until(self.spool_empty, timeout=10, what="empty spool")


if __name__ == "__main__":
    harness.main()
