"""Durability order, proved from a trace (issue #19).

A postern instance runs under `strace -f` (master and every daemon it
starts) for a short load over SMTP and sendmail; durability.py then
proves from the trace that each message's data and name were fsync'd
before smtpd's 250 (before sendmail's exit), and each delivered Maildir
file's data and name before qmgr removed the queue file.  The same load
on a build configured --enable-test-skip-fsync (one fsync skipped in the
queue writer, one in the Maildir writer) must make the checker fail on
every message, so the test can fail.  The checker's rules are also
tested on hand-written traces.
"""

import os
import shlex
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import durability  # noqa: E402
import harness  # noqa: E402

SRCDIR = os.environ.get("POSTERN_SRCDIR") or harness.BUILDDIR
SENDMAIL = os.path.join(harness.BUILDDIR, "tools", "sendmail")
SMTP_MESSAGES = 40
SESSIONS = 4
SENDMAIL_MESSAGES = 3
SKIP_POINTS = "queue-dir,maildir-file"


# --- the checker's rules on hand-written traces --------------------------

D = "/s/spool/incoming/new"
M = "/m/d"
GOOD_SMTPD = [
    '10 openat(5</s/spool/incoming/new>, ".", O_WRONLY|O_TMPFILE, 0644) = 7</s/spool/incoming/new/#99>(deleted)',
    '10 clone3({flags=CLONE_VM|CLONE_THREAD}, 88) = 11',
    '11 fsync(7</s/spool/incoming/new/#99>(deleted) <unfinished ...>',
    '10 write(2<pipe:[1]>, "log", 3) = 3',
    '11 <... fsync resumed>) = 0',
    '11 linkat(AT_FDCWD</>, "/proc/self/fd/7", 5</s/spool/incoming/new>, "Q1", AT_SYMLINK_FOLLOW) = 0',
    '11 fsync(5</s/spool/incoming/new>) = 0',
    '10 sendto(9<TCP:[127.0.0.1:25->127.0.0.1:4000]>, "250 2.0.0 Ok: queued as Q1\\r\\n", 29, MSG_NOSIGNAL, NULL, 0) = 29',
]
GOOD_LOCAL = [
    '20 openat(4</m/d/tmp>, "X1", O_WRONLY|O_CREAT|O_EXCL, 0600) = 6</m/d/tmp/X1>',
    '20 fsync(6</m/d/tmp/X1>) = 0',
    '20 close(6</m/d/tmp/X1>) = 0',
    '20 renameat2(4</m/d/tmp>, "X1", 5</m/d/new>, "X1,S=10", RENAME_NOREPLACE) = 0',
    '20 fsync(5</m/d/new>) = 0',
    '30 unlinkat(8</s/spool/queue>, "Q1", 0) = 0',
    '30 unlinkat(8</s/spool/queue>, "Q1.state", 0) = 0',
]


def run_check(lines, maildirs=None):
    return durability.check(lines, "/s/spool", maildirs)


class Checker(unittest.TestCase):
    def test_good_smtpd_trace(self):
        problems, counts = run_check(GOOD_SMTPD)
        self.assertEqual(problems, [])
        self.assertEqual(counts["smtpd"], 1)

    def test_missing_directory_fsync(self):
        problems, _ = run_check([l for l in GOOD_SMTPD
                                 if "fsync(5<" not in l])
        self.assertEqual(len(problems), 1)
        self.assertIn("before its name was fsync'd", problems[0])

    def test_directory_fsync_before_the_link_does_not_count(self):
        lines = list(GOOD_SMTPD)
        lines[5], lines[6] = lines[6], lines[5]
        problems, _ = run_check(lines)
        self.assertEqual(len(problems), 1)
        self.assertIn("before its name was fsync'd", problems[0])

    def test_directory_fsync_still_running_at_the_250(self):
        lines = list(GOOD_SMTPD)
        lines[6] = '11 fsync(5</s/spool/incoming/new> <unfinished ...>'
        lines.append('11 <... fsync resumed>) = 0')
        problems, _ = run_check(lines)
        self.assertEqual(len(problems), 1)

    def test_data_fsync_after_the_link(self):
        lines = [GOOD_SMTPD[0], GOOD_SMTPD[1], GOOD_SMTPD[5], GOOD_SMTPD[2],
                 GOOD_SMTPD[4], GOOD_SMTPD[6], GOOD_SMTPD[7]]
        problems, _ = run_check(lines)
        self.assertEqual(len(problems), 1)
        self.assertIn("named before its data was fsync'd", problems[0])

    def test_fsync_of_a_reused_descriptor_does_not_count(self):
        # fd 7 was fsync'd, closed and reopened for another file: the
        # fsync belonged to the first.
        lines = GOOD_SMTPD[:5] + [
            '11 close(7</s/spool/incoming/new/#99>(deleted)) = 0',
            '10 openat(5</s/spool/incoming/new>, ".", O_WRONLY|O_TMPFILE, 0644) = 7</s/spool/incoming/new/#98>(deleted)',
        ] + GOOD_SMTPD[5:]
        problems, _ = run_check(lines)
        self.assertEqual(len(problems), 1)
        self.assertIn("data", problems[0])

    def test_failed_fsync_does_not_count(self):
        lines = list(GOOD_SMTPD)
        lines[6] = '11 fsync(5</s/spool/incoming/new>) = -1 EIO (Input/output error)'
        problems, _ = run_check(lines)
        self.assertEqual(len(problems), 1)

    def test_250_for_a_name_never_made(self):
        problems, _ = run_check([GOOD_SMTPD[7]])
        self.assertIn("never named", problems[0])

    def test_unreadable_directory_file_fsync_after_link(self):
        # sendmail's maildrop/new cannot be opened for reading: the file
        # is fsync'd again under its new name after the link.
        lines = [
            '40 openat(5</s/spool/maildrop/new>, ".", O_WRONLY|O_TMPFILE, 0640) = 3</s/spool/maildrop/new/#7>(deleted)',
            '40 fsync(3</s/spool/maildrop/new/#7>(deleted)) = 0',
            '40 linkat(AT_FDCWD</>, "/proc/self/fd/3", 5</s/spool/maildrop/new>, "Q2", AT_SYMLINK_FOLLOW) = 0',
            '40 fsync(3</s/spool/maildrop/new/Q2>) = 0',
            '40 exit_group(0) = ?',
        ]
        problems, counts = run_check(lines)
        self.assertEqual(problems, [])
        self.assertEqual(counts["sendmail"], 1)
        problems, _ = run_check(lines[:3] + lines[4:])
        self.assertEqual(len(problems), 1)

    def test_good_local_trace(self):
        problems, counts = run_check(GOOD_LOCAL, {M: {"X1,S=10": "Q1"}})
        self.assertEqual(problems, [])
        self.assertEqual(counts["local"], 1)
        self.assertEqual(counts["queue_removed"], 1)

    def test_local_missing_data_fsync(self):
        problems, _ = run_check([l for l in GOOD_LOCAL if "fsync(6<" not in l],
                                {M: {"X1,S=10": "Q1"}})
        self.assertEqual(len(problems), 1)
        self.assertIn("data", problems[0])

    def test_local_new_fsync_after_the_unlink(self):
        lines = GOOD_LOCAL[:4] + GOOD_LOCAL[5:] + [GOOD_LOCAL[4]]
        problems, _ = run_check(lines, {M: {"X1,S=10": "Q1"}})
        self.assertEqual(len(problems), 1)
        self.assertIn("name", problems[0])

    def test_queue_file_removed_without_delivery(self):
        problems, _ = run_check(GOOD_LOCAL, {})
        self.assertEqual(len(problems), 1)
        self.assertIn("no delivered", problems[0])


# --- real instances under strace ----------------------------------------

def build_skipping(points):
    """A copy of the source tree built with --enable-test-skip-fsync=points
    (only what a dev instance runs: the daemons); returns its directory."""
    top = tempfile.mkdtemp(prefix="pt-skipfsync-", dir="/tmp")
    os.chmod(top, 0o755)
    files = subprocess.run(
        ["git", "-C", SRCDIR, "ls-files", "-z", "--cached", "--others",
         "--exclude-standard"], capture_output=True, check=True,
        timeout=60).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        src = os.path.join(SRCDIR, name)
        if not os.path.isfile(src):
            continue              # deleted in the work tree
        os.makedirs(os.path.join(top, os.path.dirname(name)), exist_ok=True)
        shutil.copy2(src, os.path.join(top, name))
    # Configured as the build under test was (its maps' format, say,
    # must match the instance's), plus the switch.
    status = os.path.join(harness.BUILDDIR, "config.status")
    options = shlex.split(subprocess.run(
        [status, "--config"], capture_output=True, check=True,
        timeout=60).stdout.decode()) if os.path.exists(status) else []
    log = os.path.join(top, "build.log")
    with open(log, "w") as out:
        for cmd in (["autoreconf", "-fi"],
                    ["./configure", "-q"] + options +
                    ["--enable-test-skip-fsync=" + points],
                    ["make", "-j%d" % (os.cpu_count() or 2), "libexec-stamp"]):
            p = subprocess.run(cmd, cwd=top, stdout=out, stderr=subprocess.STDOUT,
                               timeout=900)
            if p.returncode != 0:
                with open(log) as f:
                    raise AssertionError("%s failed:\n%s" % (" ".join(cmd),
                                                             f.read()[-3000:]))
    return top


class Traced:
    """A dev instance whose master (and so every daemon) runs under strace;
    daemon_dir, if given, replaces the build's."""

    def __init__(self, test, daemon_dir=None):
        self.inst = harness.Instance()
        test.addCleanup(self.inst.cleanup)
        if daemon_dir:
            with open(self.inst.conf) as f:
                text = f.read()
            text = text.replace("daemon_dir = %s/libexec" % harness.BUILDDIR,
                                "daemon_dir = %s" % daemon_dir)
            with open(self.inst.conf, "w") as f:
                f.write(text)
        self.trace = os.path.join(self.inst.dir, "trace")
        # In the foreground master logs to its stderr: into the file
        # `postern start` would use, for read_log().
        self.inst.makedirs(os.path.dirname(self.inst.log))
        with open(self.inst.log, "ab") as log:
            self.strace = subprocess.Popen(
                durability.strace_command(self.trace) +
                [harness.POSTERN, "-c", self.inst.conf, "start", "-f"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        test.addCleanup(self.kill)
        harness.wait_until(lambda: self.inst.master_pid() or
                           self.strace.poll() is not None,
                           timeout=30, what="master under strace")
        if self.strace.poll() is not None:
            raise AssertionError("strace exited with %d:\n%s" % (
                self.strace.returncode, self.inst.read_log()[-2000:]))
        self.inst.pids.add(self.inst.master_pid())
        # The pid file comes before the control socket: until status
        # answers, "not yet" rather than a failure.
        def running():
            try:
                return all(r["state"] in ("running", "not-installed")
                           for r in self.inst.status())
            except AssertionError:
                return False
        try:
            harness.wait_until(running, timeout=120, interval=0.2,
                               what="every daemon running under strace")
        except AssertionError as e:
            raise AssertionError("%s\n%s" % (e, self.inst.read_log()[-3000:]))
        self.port = self.inst.base + 25
        self.maildir = os.path.join(self.inst.dir, "mail", "example.test", "demo")
        self.spool = os.path.join(self.inst.dir, "spool")
        self.sendmail_traces = []

    def kill(self):
        if self.strace.poll() is None:
            self.strace.kill()
            self.strace.wait(timeout=30)

    def load(self):
        """SMTP_MESSAGES over SESSIONS sessions, then SENDMAIL_MESSAGES
        through sendmail (each traced); waits until all are delivered and
        the queue is empty, then stops the instance."""
        errors = []

        def session(t):
            # Concurrent sessions, so that group commits hold several.
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
                for n in range(t, SMTP_MESSAGES, SESSIONS):
                    s.sendmail("sender@remote.test", ["demo@example.test"],
                               b"Subject: durability %d\r\n\r\nbody\r\n" % n)
                s.quit()
            except (smtplib.SMTPException, OSError) as e:
                errors.append(repr(e))
        threads = [threading.Thread(target=session, args=(t,))
                   for t in range(SESSIONS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        if errors:
            raise AssertionError("SMTP: %s" % errors)
        for n in range(SENDMAIL_MESSAGES):
            trace = "%s.sendmail.%d" % (self.trace, n)
            self.sendmail_traces.append(trace)
            p = subprocess.run(
                durability.strace_command(trace) +
                [SENDMAIL, "-C", self.inst.conf, "-i", "demo@example.test"],
                input=b"Subject: sendmail %d\n\nbody\n" % n,
                capture_output=True, timeout=harness.COMMAND_TIMEOUT)
            if p.returncode != 0:
                raise AssertionError("sendmail: %s" % p.stderr.decode())
        total = SMTP_MESSAGES + SENDMAIL_MESSAGES
        new = os.path.join(self.maildir, "new")
        queue = os.path.join(self.spool, "queue")
        harness.wait_until(lambda: os.path.isdir(new) and
                           len(os.listdir(new)) == total, timeout=120,
                           interval=0.2, what="%d messages delivered" % total)
        harness.wait_until(lambda: not os.listdir(queue), timeout=60,
                           what="an empty queue")
        self.inst.stop()
        self.strace.wait(timeout=60)

    def check(self):
        """(problems, counts) over the instance's trace and sendmail's."""
        maildirs = {self.maildir: durability.maildir_ids(self.maildir,
                                                     self.inst.read_log())}
        problems, counts = [], {}
        for path in [self.trace] + self.sendmail_traces:
            with open(path) as f:
                p, c = durability.check(f.readlines(), self.spool, maildirs)
            problems += p
            for k, v in c.items():
                counts[k] = counts.get(k, 0) + v
        return problems, counts


@unittest.skipUnless(shutil.which("strace"), "needs strace (tools/packages, set test)")
class Durability(unittest.TestCase):
    def setUp(self):
        if os.geteuid() != 0:
            self.skipTest("tracing daemons that change user needs root")

    def test_1_every_fsync_before_its_acknowledgement(self):
        t = Traced(self)
        t.load()
        problems, counts = t.check()
        self.assertEqual(problems, [])
        total = SMTP_MESSAGES + SENDMAIL_MESSAGES
        self.assertEqual(counts, {"smtpd": SMTP_MESSAGES,
                                  "sendmail": SENDMAIL_MESSAGES,
                                  "local": total, "queue_removed": total})
        self.assertNotIn("event=fsync_skipped", t.inst.read_log())

    @unittest.skipUnless(os.path.exists(os.path.join(SRCDIR, ".git")) and
                         shutil.which("git"), "needs the source tree's git")
    def test_2_a_skipped_fsync_is_caught(self):
        top = build_skipping(SKIP_POINTS)
        self.addCleanup(shutil.rmtree, top, True)
        t = Traced(self, daemon_dir=os.path.join(top, "libexec"))
        t.load()
        problems, counts = t.check()
        self.assertIn("event=fsync_skipped point=queue-dir", t.inst.read_log())
        self.assertIn("event=fsync_skipped point=maildir-file", t.inst.read_log())
        total = SMTP_MESSAGES + SENDMAIL_MESSAGES
        self.assertEqual(counts["smtpd"], SMTP_MESSAGES)
        # The skipped directory fsync: every 250 (sendmail is the normal
        # build's, so its messages pass).
        names = [p for p in problems if p.startswith("smtpd:") and
                 "before its name was fsync'd" in p]
        self.assertEqual(len(names), SMTP_MESSAGES, problems)
        # The skipped Maildir file fsync: every delivery.
        data = [p for p in problems if p.startswith("local") and
                "before its data was fsync'd" in p]
        self.assertEqual(len(data), total, problems)
        self.assertEqual(len(problems), SMTP_MESSAGES + total, problems)


if __name__ == "__main__":
    harness.main()
