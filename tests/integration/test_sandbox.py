"""The seccomp sandbox (lib/core/sandbox.c): every daemon of a default instance
runs confined (no-new-privs and a seccomp filter, as /proc shows), a call
outside the profile kills the daemon with SIGSYS and master logs it and
restarts it, and `sandbox = no` turns the filter off.  Skipped when postern
was built without seccomp."""

import os
import re
import signal
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, connect, wait_until, main  # noqa: E402

ECHO = """
service echo {
    program = @BUILDDIR@/tests/integration/testdaemon
    listen = 127.0.0.1:%d/echo
    processes = 1
%s}
"""

SIGSYS = int(signal.SIGSYS)


def proc_status(pid):
    """The fields of /proc/PID/status as a dict."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


class Sandbox(unittest.TestCase):
    def make(self, extra=""):
        self.inst = Instance()
        self.port = self.inst.base + 100
        self.inst.append_config(ECHO % (self.port, extra))
        self.inst.start()
        wait_until(lambda: "profile=testdaemon" in self.inst.read_log(),
                   what="the echo daemon's sandbox line")
        if "event=sandbox state=off reason=unsupported" in self.inst.read_log():
            self.skipTest("postern was built without seccomp")
        if "profile=testdaemon action=log" in self.inst.read_log():
            self.skipTest("a log-only sandbox build (AddressSanitizer or "
                          "-DPOSTERN_SANDBOX_LOG)")

    def tearDown(self):
        if getattr(self, "inst", None) is not None:
            self.inst.cleanup()

    def ask(self, line):
        s, f = connect(self.port)
        try:
            self.assertEqual(f.readline(), b"ready echo\r\n")
            f.write(line.encode() + b"\r\n")
            return f.readline().decode()
        finally:
            s.close()

    def test_every_daemon_is_confined(self):
        self.make()
        log = self.inst.read_log()
        rows = [r for r in self.inst.status() if r["state"] == "running"]
        self.assertTrue(rows)
        for r in rows:
            st = proc_status(r["pid"])
            self.assertEqual(st.get("NoNewPrivs"), "1", r)
            self.assertEqual(st.get("Seccomp"), "2", r)   # filter mode
            # Every thread (smtpd's and local's worker too) is filtered.
            for tid in os.listdir("/proc/%d/task" % r["pid"]):
                with open("/proc/%d/task/%s/status" % (r["pid"], tid)) as f:
                    self.assertIn("Seccomp:\t2\n", f.read(), (r, tid))
            self.assertRegex(log, r"postern/%s\[%d\]: .*event=sandbox state=on "
                             r"profile=\S+ action=kill" % (re.escape(r["service"]),
                                                           r["pid"]))
        self.assertNotIn("event=daemon_died", log)

    def test_forbidden_call_kills_and_master_restarts(self):
        self.make()
        self.assertEqual(self.ask("hello"), "echo: hello\r\n")
        victim = self.inst.service_pids("echo")[0]
        # The daemon dies mid-command: no answer, the connection just ends.
        self.assertEqual(self.ask("forbidden"), "")
        wait_until(lambda: re.search(r"event=daemon_died service=echo instance=0 "
                                     r"signal=%d" % SIGSYS, self.inst.read_log()),
                   what="master logging the SIGSYS death")

        def restarted():
            pids = self.inst.service_pids("echo")
            return pids and pids[0] != victim
        wait_until(restarted, timeout=10, what="echo restarted")
        self.assertEqual({r["restarts"] for r in self.inst.status()
                          if r["service"] == "echo"}, {1})
        self.assertEqual(self.ask("again"), "echo: again\r\n")
        # Only the echo daemon died.
        self.assertEqual(len(re.findall("event=daemon_died", self.inst.read_log())), 1)

    def test_sandbox_no_turns_the_filter_off(self):
        self.make("    sandbox = no\n")
        pid = self.inst.service_pids("echo")[0]
        self.assertEqual(proc_status(pid).get("Seccomp"), "0")
        self.assertEqual(proc_status(pid).get("NoNewPrivs"), "1")
        self.assertIn("event=sandbox state=off reason=config profile=testdaemon",
                      self.inst.read_log())
        self.assertTrue(self.ask("forbidden").startswith("forbidden survived result="))
        self.assertEqual(self.inst.service_pids("echo"), [pid])
        self.assertNotIn("event=daemon_died", self.inst.read_log())


if __name__ == "__main__":
    main()
