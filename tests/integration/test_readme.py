"""The README's example commands, pasted into a shell after ./quickstart,
work.  Every command in the README's indented code blocks is run, in
order, against a started dev instance that stands in for the quickstart's
./run (its paths and ports substituted), unless the table below says why
it is not run here; a command that fails, or an entry of the table that no
longer matches a README command, fails the test."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import unittest

import harness

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "README.md")

# Commands not run here, with the reason.
NOT_RUN = {
    "./quickstart": "starts the instance this test stands in for",
    "./quickstart test": "runs every test, this one included",
    "autoreconf -fi && ./configure && make && make check":
        "the build and test run that .ci/run itself makes",
    "make distcheck": "rebuilds and reruns the whole suite (minutes)",
    "tools/postern init": "root mode without a directory writes the system's "
        "$(sysconfdir)/postern; test_root_mode.py runs root mode in a directory",
    "tools/postern start": "starts that system-wide root-mode instance on ports 25, 110 ...",
}

# What some commands must print (a regular expression searched for).
EXPECT = {
    "map -q postmaster@example.test": r"^demo@example\.test$",
    "user list": r"alice@example\.org\s+enabled",
    "pop3s://127.0.0.1:10095/ ": r"^1 \d+",
    "pop3s://127.0.0.1:10095/1 ": r"Subject: ",
    "run/postern.conf status": r"smtpd\s+0\s+\d+.*running",
}


def readme_commands():
    """The commands of the README's indented code blocks, in order, with
    continuation lines joined; of a transcript block (lines `$ command`
    followed by output), only the commands."""
    with open(README) as f:
        lines = f.read().split("\n")
    blocks, cur, prev_blank = [], None, True
    for line in lines:
        if line.startswith("    ") and (cur is not None or prev_blank):
            if cur is None:
                cur = []
                blocks.append(cur)
            cur.append(line[4:].rstrip())
        elif line.strip() != "" or cur is None:
            cur = None
        prev_blank = line.strip() == ""
    out = []
    for block in blocks:
        joined = []
        for text in block:
            if joined and joined[-1].endswith("\\"):
                joined[-1] = joined[-1][:-1].rstrip() + " " + text.strip()
            else:
                joined.append(text.strip())
        if any(t.startswith("$ ") for t in joined):
            out += [t[2:] for t in joined if t.startswith("$ ")]
        else:
            out += [t for t in joined if t]
    return out


def without_comment(cmd):
    """cmd without a trailing shell comment (outside quotes)."""
    quote = None
    for k, ch in enumerate(cmd):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or cmd[k - 1] in " \t"):
            return cmd[:k].rstrip()
    return cmd


class Readme(unittest.TestCase):

    def setUp(self):
        self.inst = harness.Instance()          # the quickstart's ./run
        self.addCleanup(self.inst.cleanup)
        self.inst.start()
        self.other = tempfile.mkdtemp(prefix="pt-readme-", dir="/tmp")
        os.rmdir(self.other)                    # init --dev makes it
        self.other_base = harness.free_port_base()
        self.stage = tempfile.mkdtemp(prefix="pt-stage-", dir="/tmp")
        self.addCleanup(self.cleanup_other)

    def cleanup_other(self):
        try:
            with open(os.path.join(self.other, "run", "master.pid")) as f:
                pid = int(f.read().strip())
            for p in [pid] + harness.children_of(pid):
                os.kill(p, signal.SIGKILL)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.other, ignore_errors=True)
        shutil.rmtree(self.stage, ignore_errors=True)

    def localize(self, cmd):
        """The command as it runs against this test's instances."""
        cmd = cmd.replace("/tmp/mail", self.other)
        cmd = cmd.replace("--port-base 20000", "--port-base %d" % self.other_base)
        cmd = cmd.replace("DESTDIR=/tmp/stage", "DESTDIR=" + self.stage)
        cmd = re.sub(r"(?<![\w/.])run/", self.inst.dir + "/", cmd)
        return re.sub(r"127\.0\.0\.1:100(\d\d)",
                      lambda m: "127.0.0.1:%d" % (self.inst.base + int(m.group(1))), cmd)

    def test_readme_commands(self):
        commands = readme_commands()
        self.assertGreater(len(commands), 15, commands)
        for cmd in NOT_RUN:
            self.assertIn(cmd, [without_comment(c) for c in commands],
                          "NOT_RUN lists a command the README no longer has")
        ran = 0
        for cmd in commands:
            if without_comment(cmd) in NOT_RUN:
                continue
            local = self.localize(cmd)
            p = subprocess.run(["sh", "-c", local], cwd=harness.BUILDDIR,
                               input="pasted-Passw0rd\n", capture_output=True,
                               text=True, timeout=harness.COMMAND_TIMEOUT)
            self.assertEqual(p.returncode, 0, "README command failed:\n  %s\nran as:\n"
                             "  %s\nstdout:\n%s\nstderr:\n%s" % (cmd, local, p.stdout,
                                                                 p.stderr))
            for key, pattern in EXPECT.items():
                if key in cmd + " ":
                    self.assertRegex(p.stdout, re.compile(pattern, re.M),
                                     "README command: " + cmd)
            ran += 1
            if cmd.startswith("printf"):
                # Both messages sent above are in the demo Maildir before
                # the POP3 examples read them back.
                new = os.path.join(self.inst.dir, "mail", "example.test", "demo", "new")
                harness.wait_until(lambda: os.path.isdir(new) and
                                   len(os.listdir(new)) == 2, timeout=20,
                                   what="the README's two messages in the Maildir")
        self.assertGreater(ran, 15)


if __name__ == "__main__":
    harness.main()
