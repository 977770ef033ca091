"""master(8) and postern(8): init, check, start, status, kill -9 restart,
reload, stop, and process hygiene, on a dev-mode instance running a test
daemon under the real skeleton."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Instance, connect, wait_until, pid_alive, children_of,  # noqa: E402
                     POSTERN, TESTDAEMON, main)

ECHO = """
service echo {
    program = @BUILDDIR@/tests/integration/testdaemon
    listen = 127.0.0.1:%d/echo
    processes = 2
}
"""


def echo_instance(processes=2):
    inst = Instance()
    inst.echo_port = inst.base + 100
    inst.append_config((ECHO % inst.echo_port).replace("processes = 2",
                                                      "processes = %d" % processes))
    return inst



def set_nofile(inst, pid, n):
    """Set pid's open-file limit to n.  A daemon of a dev instance started
    by root runs as the instance's owner, and root without
    CAP_SYS_RESOURCE (a container) may not change another user's limits:
    do it as that user then."""
    import resource
    if os.geteuid() != 0 or inst.owner()[0] == 0:
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (n, n))
        return
    uid, gid = inst.owner()
    subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                    "--clear-groups", "prlimit", "--pid", str(pid),
                    "--nofile=%d:%d" % (n, n)], check=True, timeout=30)

class InitAndCheck(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()

    def tearDown(self):
        self.inst.cleanup()

    def test_init_writes_a_complete_instance(self):
        d = self.inst.dir
        for name in ("postern.conf", "cert.pem", "key.pem", "maps/passwd",
                     "maps/virtual_domains"):
            self.assertTrue(os.path.exists(os.path.join(d, name)), name)
        self.assertEqual(os.stat(os.path.join(d, "key.pem")).st_mode & 0o777, 0o600)
        self.assertEqual(os.stat(os.path.join(d, "maps/passwd")).st_mode & 0o777, 0o600)
        self.assertRegex(self.inst.init_output, r"demo user: demo@example.test  password: \S{16}")
        # It says where it put things.
        for key, path in (("config", self.inst.conf), ("config_dir", d),
                          ("spool_dir", d + "/spool"), ("run_dir", d + "/run"),
                          ("mail_dir", d + "/mail")):
            self.assertRegex(self.inst.init_output, r"(?m)^  %s +%s  \(" % (
                key, re.escape(path)))
        with open(self.inst.conf) as cf:
            conf = cf.read()
        b = self.inst.base
        for port in (b + 25, b + 87, b + 65, b + 10, b + 95, b + 43, b + 93):
            self.assertIn("127.0.0.1:%d/" % port, conf)
        # The certificate is a real one OpenSSL can read, for localhost.
        out = subprocess.run(["openssl", "x509", "-in", os.path.join(d, "cert.pem"),
                              "-noout", "-subject", "-ext", "subjectAltName"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("localhost", out.stdout)
        # The demo password hash is yescrypt.
        with open(os.path.join(d, "maps/passwd")) as pf:
            self.assertRegex(pf.read(), r"demo@example.test \$y\$")

    def test_init_prints_a_start_command_that_works(self):
        m = re.search(r"^start it with: (.*)$", self.inst.init_output, re.M)
        self.assertIsNotNone(m, self.inst.init_output)
        p = subprocess.run(m.group(1), shell=True, capture_output=True, text=True,
                           cwd="/", timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.inst.pids.add(wait_until(self.inst.master_pid, what="master pid"))
        self.inst.wait_running()
        self.inst.stop()

    def test_init_refuses_to_overwrite(self):
        p = self.inst.postern("init", "--dev", self.inst.dir, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("exists", p.stderr)

    def test_check_accepts_fresh_config(self):
        p = self.inst.postern("check")
        self.assertIn("OK", p.stdout)

    def test_check_refuses_typo_with_file_and_line(self):
        with open(self.inst.conf) as cf:
            lines = cf.read().count("\n")
        self.inst.append_config("stop_timout = 5s")
        p = self.inst.postern("check", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:%d:" % (self.inst.conf, lines + 2), p.stderr)
        self.assertIn("stop_timeout", p.stderr)  # the suggestion
        # start refuses the same config and leaves nothing running.
        p = self.inst.postern("start", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("stop_timout", p.stderr)
        self.assertEqual(self.inst.master_pid(), 0)

    def test_check_refuses_bad_value(self):
        self.inst.append_config("stop_timeout = forever")
        p = self.inst.postern("check", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"postern\.conf:\d+: .*stop_timeout")


def proc_uids(pid):
    """The real, effective, saved and file-system uids of pid."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return [int(u) for u in line.split()[1:]]
    return []


@unittest.skipUnless(os.geteuid() == 0, "what root does with a dev instance")
class DevModeAsRoot(unittest.TestCase):
    """Root making and starting a dev-mode instance (the quickstart run as
    root, the README says) gets one that runs as postern-dev: no daemon,
    nor master, runs as root, and what admin commands write belongs to
    the instance's owner."""

    def setUp(self):
        self.inst = Instance()
        self.addCleanup(self.inst.cleanup)

    def test_no_process_runs_as_root(self):
        import pwd
        uid, gid = self.inst.owner()
        self.assertEqual(pwd.getpwuid(uid).pw_name, "postern-dev")
        for top, dirs, files in os.walk(self.inst.dir):
            for name in dirs + files:
                self.assertEqual(os.lstat(os.path.join(top, name)).st_uid, uid,
                                 os.path.join(top, name))
        master = self.inst.start()
        rows = self.inst.status()
        pids = [master] + [r["pid"] for r in rows if r["pid"]]
        self.assertGreaterEqual(len(pids), 6, rows)
        for pid in pids:
            self.assertEqual(proc_uids(pid), [uid] * 4, pid)
            # None keeps the directory it was started in (this test's).
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid), "/", pid)
        # Admin commands run by root write as the owner, so the daemons
        # can read what they write (the password map is 0600).
        subprocess.run([self.inst.postern_path, "-c", self.inst.conf, "user", "add",
                        "root-added@example.test"], input="pw-0123456789\n",
                       text=True, check=True, capture_output=True, timeout=60)
        subprocess.run([self.inst.postern_path, "map",
                        os.path.join(self.inst.dir, "maps", "aliases")],
                       check=True, capture_output=True, timeout=60)
        for name in os.listdir(os.path.join(self.inst.dir, "maps")):
            self.assertEqual(os.lstat(os.path.join(self.inst.dir, "maps", name)).st_uid,
                             uid, name)
        self.inst.stop()

    def test_master_refuses_a_root_owned_dev_instance(self):
        for top, dirs, files in os.walk(self.inst.dir):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), 0, 0)
        os.chown(self.inst.dir, 0, 0)
        p = self.inst.postern("start", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("never runs as root", p.stderr)
        self.assertEqual(self.inst.master_pid(), 0)


    def test_unreachable_directory_is_a_clear_error(self):
        import tempfile
        private = tempfile.mkdtemp(prefix="pt-priv-", dir="/tmp")   # 0700, root's
        self.addCleanup(shutil.rmtree, private, True)
        p = subprocess.run([self.inst.postern_path, "init", "--dev",
                            os.path.join(private, "inst")], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("postern-dev, who cannot reach", p.stderr)


class Supervision(unittest.TestCase):
    def setUp(self):
        self.inst = echo_instance()

    def tearDown(self):
        self.inst.cleanup()

    def echo(self, line, port=None):
        s, f = connect(port or self.inst.echo_port)
        try:
            self.assertEqual(f.readline(), b"ready echo\r\n")
            f.write(line.encode() + b"\r\n")
            return f.readline().decode().rstrip("\r\n")
        finally:
            s.close()

    def test_start_status_serve_stop(self):
        master = self.inst.start()
        rows = self.inst.status()
        echo = [r for r in rows if r["service"] == "echo"]
        self.assertEqual([r["proc"] for r in echo], [0, 1])
        self.assertTrue(all(r["state"] == "running" and r["pid"] > 0 for r in echo))
        # Daemons that are not built yet are listed as such, not started.
        self.assertIn("not-installed", {r["state"] for r in rows if r["service"] == "imapd"})
        self.assertEqual(self.echo("hello"), "echo: hello")
        pids = [r["pid"] for r in echo]
        running = [r["pid"] for r in rows if r["state"] == "running"]
        self.assertEqual(sorted(children_of(master)), sorted(running))
        self.assertTrue(set(pids) <= set(running))
        p = self.inst.stop()
        self.assertIn("stopped", p.stdout)
        for pid in pids + [master]:
            self.assertFalse(pid_alive(pid), "pid %d left behind" % pid)
        self.assertFalse(os.path.exists(os.path.join(self.inst.dir, "run", "master.pid")))
        self.assertIn("not running", self.inst.postern("status", check=False).stdout)

    def test_kill9_daemon_is_restarted_within_2s(self):
        self.inst.start()
        victim = self.inst.service_pids("echo")[0]
        time.sleep(0.3)
        os.kill(victim, signal.SIGKILL)
        t0 = time.monotonic()

        def restarted():
            rows = [r for r in self.inst.status() if r["service"] == "echo"]
            return len(rows) == 2 and all(r["state"] == "running" for r in rows) and \
                victim not in [r["pid"] for r in rows] and rows[0]["restarts"] == 1
        wait_until(restarted, timeout=2.0, what="restart after kill -9")
        self.assertLess(time.monotonic() - t0, 2.0)
        log = self.inst.read_log()
        self.assertRegex(log, r"event=daemon_died service=echo instance=\d signal=9")
        self.assertEqual(self.echo("after"), "echo: after")
        # The count survives a reload.
        before = set(self.inst.service_pids("echo"))
        self.inst.postern("reload")
        wait_until(lambda: len(self.inst.service_pids("echo")) == 2 and
                   not set(self.inst.service_pids("echo")) & before, what="reload")
        self.assertEqual({r["restarts"] for r in self.inst.status()
                          if r["service"] == "echo"}, {1})

    def test_restart_uses_the_config_master_validated(self):
        # An edit not yet reloaded (here a broken one) does not reach a
        # daemon that master restarts: it gets the text master checked.
        # (postern status reads the file too, so the test watches the log.)
        self.inst.start()
        victim = self.inst.service_pids("echo")[0]
        self.inst.append_config("bogus_key = 1")
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: len(re.findall(r"postern/echo\[\d+\]: level=info event=start ",
                                          self.inst.read_log())) == 3, timeout=5,
                   what="the restarted daemon to start")
        self.assertNotIn("config_error", self.inst.read_log())
        self.assertEqual(self.echo("same config"), "echo: same config")
        self.assertEqual(self.echo("again"), "echo: again")

    def test_crash_loop_backs_off(self):
        self.inst.start()
        deaths = 0
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            for pid in self.inst.service_pids("echo"):
                try:
                    os.kill(pid, signal.SIGKILL)
                    deaths += 1
                except ProcessLookupError:
                    pass
            time.sleep(0.02)
        # 250 ms, 500 ms, 1 s ... between restarts: a handful, not hundreds.
        self.assertGreater(deaths, 2)
        self.assertLess(deaths, 20)
        self.assertRegex(self.inst.read_log(), r"restart_in_ms=(500|1000)")

    def test_reload_applies_new_config_gracefully(self):
        self.inst.start()
        old = set(self.inst.service_pids("echo"))
        # A session open across the reload is served to its end.
        s, f = connect(self.inst.echo_port)
        self.assertEqual(f.readline(), b"ready echo\r\n")
        with open(self.inst.conf) as cf:
            conf = cf.read().replace("processes = 2", "processes = 3")
        with open(self.inst.conf, "w") as cf:
            cf.write(conf)
        self.inst.postern("reload")
        wait_until(lambda: len(self.inst.service_pids("echo")) == 3
                   and not (set(self.inst.service_pids("echo")) & old),
                   what="three new echo processes")
        f.write(b"still here\r\n")
        self.assertEqual(f.readline(), b"echo: still here\r\n")
        f.write(b"quit\r\n")
        self.assertEqual(f.readline(), b"bye\r\n")
        s.close()
        wait_until(lambda: not any(pid_alive(p) for p in old), what="old processes to retire")
        self.assertEqual(self.echo("new"), "echo: new")

    def test_reload_with_broken_config_keeps_running(self):
        self.inst.start()
        before = set(self.inst.service_pids("echo"))
        with open(self.inst.conf) as cf:
            good = cf.read()
        self.inst.append_config("bogus_key = 1")
        p = self.inst.postern("reload", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("bogus_key", p.stderr)
        # Even when signalled directly, master keeps the old config.
        os.kill(self.inst.master_pid(), signal.SIGHUP)
        wait_until(lambda: "event=reload_failed" in self.inst.read_log(),
                   what="reload_failed in the log")
        self.assertIn("bogus_key", self.inst.read_log())
        with open(self.inst.conf, "w") as cf:
            cf.write(good)
        self.assertEqual(set(self.inst.service_pids("echo")), before)
        self.assertEqual(self.echo("ok"), "echo: ok")

    def test_status_and_stop_work_after_a_broken_edit(self):
        # A broken edit must not leave the admin unable to see or stop
        # the running system: status and stop fall back to the settings
        # that locate master, and say so.
        master = self.inst.start()
        self.inst.append_config("bogus_key = 1\nservice broken {\n    nonsense = 2\n}")
        p = self.inst.postern("status", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("bogus_key", p.stderr)
        self.assertIn("using only its run_dir, pid_file and stop_timeout", p.stderr)
        self.assertIn("echo", p.stdout)
        p = self.inst.postern("stop", check=False)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("stopped", p.stdout)
        self.assertFalse(pid_alive(master))
        # reload still refuses the broken file.
        self.assertEqual(self.inst.postern("reload", check=False).returncode, 1)

    def test_out_of_descriptors_pauses_accepting(self):
        # accept() failing with EMFILE leaves the connection queued and the
        # listener readable: the daemon must rest, not spin or flood the
        # log, and accept again once descriptors are free.
        import resource
        self.inst.start()
        pid = self.inst.service_pids("echo")[0]
        others = [p for p in self.inst.service_pids("echo") if p != pid]
        for p in others:        # one process, so every connection reaches it
            os.kill(p, signal.SIGSTOP)
        socks = []
        try:
            used = len(os.listdir("/proc/%d/fd" % pid))
            set_nofile(self.inst, pid, used + 5)
            for _ in range(20):
                socks.append(connect(self.inst.echo_port)[0])
            wait_until(lambda: "event=accept_paused" in self.inst.read_log(),
                       what="accept_paused in the log")

            def cpu():
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            c0 = cpu()
            time.sleep(1.0)
            self.assertLess(cpu() - c0, 0.3, "spinning while out of descriptors")
            self.assertLess(self.inst.read_log().count("accept_paused"), 3)
            for s in socks:
                s.close()
            socks = []
            self.assertEqual(self.echo("again"), "echo: again")
            wait_until(lambda: "event=accept_resumed" in self.inst.read_log(),
                       what="accept_resumed in the log")
        finally:
            for s in socks:
                s.close()
            for p in others:
                os.kill(p, signal.SIGCONT)

    def test_second_start_is_refused(self):
        self.inst.start()
        p = self.inst.postern("start", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("already running", p.stderr)

    def test_port_in_use_is_a_clear_error(self):
        import socket
        blocker = socket.socket()
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", self.inst.echo_port))
        blocker.listen(1)
        try:
            p = self.inst.postern("start", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("127.0.0.1:%d" % self.inst.echo_port, p.stderr)
            self.assertIn("in use", p.stderr)
            self.assertEqual(self.inst.master_pid(), 0)
        finally:
            blocker.close()

    def test_children_hold_only_their_listeners(self):
        master = self.inst.start()
        for pid in self.inst.service_pids("echo"):
            fds = {}
            for fd in os.listdir("/proc/%d/fd" % pid):
                try:
                    fds[int(fd)] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
                except FileNotFoundError:
                    pass
            targets = " ".join(fds.values())
            self.assertNotIn("master.pid", targets)
            self.assertNotIn("postern.conf", targets)
            sockets = [fd for fd, t in fds.items() if t.startswith("socket:") and fd > 2]
            # One listener (fd 3); the rest are the daemon's own epoll/signalfd.
            self.assertEqual(sockets, [3], fds)
            with open("/proc/%d/environ" % pid, "rb") as ef:
                env = ef.read().split(b"\0")
            self.assertIn(b"POSTERN_LISTENERS=3:inet:echo:127.0.0.1:%d" % self.inst.echo_port, env)
            self.assertFalse(any(e.startswith(b"HOME=") for e in env))
        self.assertTrue(master)

    def test_foreground_sigterm_stops_everything(self):
        p = subprocess.Popen([POSTERN, "-c", self.inst.conf, "start", "-f"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.inst.pids.add(p.pid)
        try:
            wait_until(lambda: self.inst.master_pid() == p.pid and
                       len(self.inst.service_pids("echo")) == 2, what="two echo processes")
            kids = children_of(p.pid)
            self.assertTrue(set(self.inst.service_pids("echo")) <= set(kids))
            self.inst.pids.update(kids)
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=15)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn(b"event=stopped", err)
            for k in kids:
                self.assertFalse(pid_alive(k))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()

    def test_master_killed_takes_daemons_down(self):
        master = self.inst.start()
        kids = self.inst.service_pids("echo")
        os.kill(master, signal.SIGKILL)
        wait_until(lambda: not any(pid_alive(k) for k in kids), timeout=5,
                   what="daemons to exit after master died")
        # A new start works after the crash (stale pid file, stale sockets).
        self.inst.start()
        self.assertEqual(len(self.inst.service_pids("echo")), 2)


if __name__ == "__main__":
    main()
