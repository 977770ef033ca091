"""smtpd(8) transactions against a real dev-mode instance: pipelining and
reply order, the early-talker refusal, DATA without valid recipients,
BDAT, the envelope size limit, SIZE, 8BITMIME and SMTPUTF8, DSN
parameters, the SMTP smuggling defence, bare LF refused or normalized by
client (and smuggling in both modes, with both settings swapped), long
lines, 100 recipients and too many, and the recipient overshoot
allowance."""

import os
import re
import smtplib
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, main, tls_context, wait_until  # noqa: E402
from smtpd_base import (IO_TIMEOUT, LF_MESSAGE, LF_STORED, MAX_ENVELOPE,  # noqa: E402
                        MAX_ERRORS, MAX_RCPTS, MAX_SIZE, OVERSHOOT, USER, Raw,
                        SmtpdCase, env_get, parse_qfile, without_qmgr)

# A whole transaction after the end of data that a bare line end could
# fake: it must stay content, never become a second message.
SMUGGLED = (b"MAIL FROM:<evil@outside.example>\r\n"
            b"RCPT TO:<demo@example.test>\r\nDATA\r\n"
            b"Subject: smuggled\r\n\r\nevil\r\n.\r\n")


class Transaction(SmtpdCase):
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
            r.send(b"Subject: innocent\r\n\r\nhello" + seq + SMUGGLED)
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
                r.send(b"Subject: innocent\r\n\r\nhello" + seq + SMUGGLED)
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


if __name__ == "__main__":
    main()
