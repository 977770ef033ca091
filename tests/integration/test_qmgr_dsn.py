"""Integration tests for qmgr(8)'s reports beyond bounces, in a dev
instance:

- NOTIFY=SUCCESS: after delivery the sender gets an RFC 3464 "delivered"
  report (Action: delivered, Status: 2.0.0) that returns the headers only,
  even with RET=FULL (RFC 3461 4.3); mail from the null sender gets none;
- postmaster notices go to postmaster_address, which `postern init` sets
  to the demo domain's postmaster alias: a double bounce (failed mail
  from <>) arrives in the demo user's Maildir;
- states a kill -9 leaves behind are finished at restart: a message whose
  recipients are all reported is removed, a success report still due goes
  out once without a second delivery;
- kill -9 of qmgr and local in a loop while NOTIFY=SUCCESS mail flows
  through a destination at qmgr_domain_concurrency: every message is
  delivered and reported, duplicates only within the window, no report
  on a report."""

import email
import os
import signal
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DOMAIN_LIMIT = 2
CONFIG = """
queue_retry_min = 1s
queue_retry_max = 2s
restart_delay_max = 1s
qmgr_local_concurrency = 4
qmgr_domain_concurrency = %d
""" % DOMAIN_LIMIT


def esc(v):
    """%XX-escape an envelope value the way lib/mail/qfile.c does."""
    return "".join("%%%02X" % b if b <= 0x20 or b >= 0x7F or b == 0x25 else chr(b)
                   for b in v.encode("utf-8"))


def queue_file(qid, sender, rcpt, message, notify=0):
    """A queue file in lib/mail/qfile.h's format (one recipient)."""
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
        cls.inst.close()

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

    def test_6_crash_window_states_recovered(self):
        # States a kill -9 can leave in spool/queue, found at restart:
        # (a) every recipient reported ("bounced") but the files not yet
        #     removed: removed, nothing delivered, nothing reported;
        # (b) delivered with NOTIFY=SUCCESS, the report not yet queued:
        #     the report goes out once and the mail is not delivered again.
        qdir = os.path.join(self.spool, "queue")
        stamp = int(time.time())
        qa, qb = "Z%dALLDONE" % stamp, "Z%dSUCCESSDUE" % stamp
        for qid, state, mid in ((qa, "bounced 0\n", "<alldone@remote.test>"),
                                (qb, "delivered 0 2.0.0 delivered to maildir\n",
                                 "<successdue@remote.test>")):
            data = queue_file(qid, "demo@example.test", "demo@example.test",
                              ("Subject: crash window\nMessage-ID: %s\n\n"
                               "crash window body\n" % mid).encode(), notify=2)
            with open(os.path.join(qdir, qid), "wb") as f:
                f.write(data)
            with open(os.path.join(qdir, qid + ".state"), "w") as f:
                f.write(state)
            self.inst.own(os.path.join(qdir, qid), os.path.join(qdir, qid + ".state"))
        for pid in self.inst.service_pids("qmgr"):
            os.kill(pid, signal.SIGKILL)
        self.wait_for(b"multipart/report", b"<successdue@remote.test>", timeout=15)
        harness.wait_until(self.spool_empty, timeout=10, what="empty spool")
        time.sleep(1.5)
        self.assertEqual([v for v in self.files() if b"crash window body" in v], [])
        self.assertEqual(len([v for v in self.files()
                              if b"<successdue@remote.test>" in v]), 1)
        self.assertEqual([v for v in self.files() if b"<alldone@remote.test>" in v], [])

    def test_7_kill_during_stream_with_success_reports(self):
        # kill -9 of qmgr and local, again and again, while mail asking
        # for NOTIFY=SUCCESS flows through a destination at its limit
        # (messages wait on its wait list): every message is delivered and
        # reported at least once, at most once more per kill (the window),
        # and no report is ever reported on.
        total = 200
        # Killing goes on for a while after the stream too: deliveries,
        # records and reports are still in progress then.
        kills, errors = harness.stream_while_killing(
            self.inst, self.port, total, 4,
            lambda n: ("Subject: k%d\r\nMessage-ID: <k%d@crash.test>\r\n\r\n"
                       "crash stream %d\r\n" % (n, n, n)).encode(),
            "demo@example.test", ["demo@example.test"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE"], every=0.25, after=4, limit=40)
        self.assertEqual(errors, [])
        self.assertGreater(kills, 0)

        def counts():
            mail, rep, meta = {}, {}, 0
            for v in self.files():
                i = v.find(b"@crash.test>")
                if i < 0:
                    continue
                mid = v[v.rfind(b"<k", 0, i):i]
                if b"multipart/report" not in v:
                    mail[mid] = mail.get(mid, 0) + 1
                elif v.count(b"Successful Mail Delivery Report") > 1:
                    meta += 1       # a report whose returned headers are a report's
                else:
                    rep[mid] = rep.get(mid, 0) + 1
            return mail, rep, meta
        harness.wait_until(lambda: len(counts()[0]) == total and len(counts()[1]) == total,
                           timeout=45, interval=0.5,
                           what="all %d messages and their reports" % total)
        harness.wait_until(self.spool_empty, timeout=15, what="empty spool")
        mail, rep, meta = counts()
        print("kills=%d duplicate_mail=%d duplicate_reports=%d" % (
            kills, sum(n - 1 for n in mail.values()), sum(n - 1 for n in rep.values())),
            file=sys.stderr)
        self.assertEqual(meta, 0)
        self.assertLessEqual(sum(n - 1 for n in mail.values()), DOMAIN_LIMIT * kills)
        self.assertLessEqual(sum(n - 1 for n in rep.values()), DOMAIN_LIMIT * kills)


if __name__ == "__main__":
    harness.main()
