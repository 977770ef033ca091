"""Root mode: `postern init` creates postern's system users, master runs as
root, each daemon runs as its own user with no supplementary groups but
those of the sockets it connects to, and each socket admits its peers only.
Needs root (CI runs as root); skipped otherwise."""

import grp
import os
import pwd
import re
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, connect, frame, pid_alive, pstr, wait_until, main  # noqa: E402

SERVICES = """
service echo_a {
    program = @BUILDDIR@/tests/integration/testdaemon
    user = postern-smtpd
    listen = 127.0.0.1:%d/a
}
service echo_b {
    program = @BUILDDIR@/tests/integration/testdaemon
    user = postern-queue
    listen = 127.0.0.1:%d/b
    processes = 2
}
"""


def proc_ids(pid):
    """(real, effective, saved uids), (same for gids) and groups of pid."""
    fields = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.split()
    return ([int(x) for x in fields["Uid"][:3]], [int(x) for x in fields["Gid"][:3]],
            fields.get("Groups", []), fields.get("NoNewPrivs", ["0"])[0])


@unittest.skipUnless(os.geteuid() == 0, "root mode needs root")
class RootMode(unittest.TestCase):
    def setUp(self):
        self.inst = Instance(root=True)
        self.a, self.b = self.inst.base + 100, self.inst.base + 101
        self.inst.append_config(SERVICES % (self.a, self.b))

    def tearDown(self):
        self.inst.cleanup()

    def test_users_created(self):
        for user in ("postern-smtpd", "postern-queue", "postern-mail",
                     "postern-relay", "postern-auth"):
            pw = pwd.getpwnam(user)
            self.assertNotEqual(pw.pw_uid, 0)
            self.assertEqual(pw.pw_shell, "/usr/sbin/nologin")
        grp.getgrnam("postern-drop")
        # Idempotent: a second init only rewrites the config.
        self.inst.postern("init", self.inst.dir, "--port-base", str(self.inst.base),
                          "--force")

    def test_init_names_its_paths(self):
        """`postern init` prints where it put things, and that is where
        the instance's files end up."""
        out = self.inst.init_output
        paths = dict(re.findall(r"^  (\S+) +(/\S*)", out, re.M))
        d = self.inst.dir
        self.assertEqual(paths.get("config"), self.inst.conf, out)
        self.assertEqual(paths.get("config_dir"), d, out)
        want = {"spool_dir": "spool", "run_dir": "run", "mail_dir": "mail"}
        for key, sub in want.items():
            self.assertEqual(paths.get(key), os.path.join(d, sub), out)
        self.assertTrue(os.path.isdir(paths["daemon_dir"]), out)
        self.assertTrue(os.path.exists(os.path.join(paths["config_dir"], "maps", "passwd")))
        self.inst.start()
        for key in want:
            self.assertTrue(os.path.isdir(paths[key]), key)
        self.assertTrue(os.path.exists(os.path.join(paths["run_dir"], "master.pid")))

    def test_each_daemon_runs_as_its_own_user(self):
        master = self.inst.start()
        self.assertEqual(proc_ids(master)[0], [0, 0, 0])
        expect = {"echo_a": "postern-smtpd", "echo_b": "postern-queue"}
        seen = 0
        for row in self.inst.status():
            if row["service"] not in expect:
                continue
            pw = pwd.getpwnam(expect[row["service"]])
            # master lists a process from fork on; the drop follows exec.
            wait_until(lambda: proc_ids(row["pid"])[3] == "1", timeout=5,
                       what="pid %d to finish its set-up" % row["pid"])
            uids, gids, groups, nnp = proc_ids(row["pid"])
            self.assertEqual(uids, [pw.pw_uid] * 3, row)
            self.assertEqual(gids, [pw.pw_gid] * 3, row)
            self.assertEqual(groups, [], "supplementary groups in %r" % row)
            self.assertEqual(nnp, "1", "no_new_privs not set in %r" % row)
            seen += 1
        self.assertEqual(seen, 3)
        # The dropped daemon really serves (and says who it is).
        s, f = connect(self.b)
        self.assertEqual(f.readline(), b"ready b\r\n")
        f.write(b"whoami\r\n")
        pw = pwd.getpwnam("postern-queue")
        self.assertTrue(f.readline().startswith(
            b"uid=%d gid=%d groups=0" % (pw.pw_uid, pw.pw_gid)))
        s.close()

    def test_cwd_and_root(self):
        """master and every daemon leave the directory they were started
        in (the test's, here) for /, and none is chrooted by default
        (docs/design.md says why, daemon by daemon)."""
        master = self.inst.start()
        rows = [r for r in self.inst.status() if r["pid"]]
        services = {r["service"] for r in rows}
        for name in ("smtpd", "qmgr", "local", "auth", "pop3d"):
            self.assertIn(name, services)
        for pid in [master] + [r["pid"] for r in rows]:
            if pid != master:
                wait_until(lambda: proc_ids(pid)[3] == "1", timeout=5,
                           what="pid %d to finish its set-up" % pid)
            self.assertEqual(os.readlink("/proc/%d/cwd" % pid), "/", pid)
            self.assertEqual(os.readlink("/proc/%d/root" % pid), "/", pid)

    def test_spool_directories_have_their_owners(self):
        self.inst.start()
        spool = os.path.join(self.inst.dir, "spool")
        want = {
            "incoming/new": ("postern-smtpd", "postern-queue", 0o2770),
            "maildrop/new": ("postern-queue", "postern-drop", 0o1730),
            "queue": ("postern-queue", "postern-queue", 0o700),
        }
        for sub, (user, group, mode) in want.items():
            st = os.stat(os.path.join(spool, sub))
            self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, user, sub)
            self.assertEqual(grp.getgrgid(st.st_gid).gr_name, group, sub)
            self.assertEqual(st.st_mode & 0o7777, mode, sub)
        st = os.stat(os.path.join(self.inst.dir, "mail"))
        self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, "postern-mail")

    def test_pop3d_serves_the_store_as_postern_mail(self):
        import poplib
        import subprocess
        self.inst.postern("domain", "add", "example.test")
        p = subprocess.run([self.inst.postern_path, "-c", self.inst.conf, "user", "add",
                            "root-pop@example.test"], input="Pw-root-pop1\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.inst.start()
        rows = [r for r in self.inst.status() if r["service"] == "pop3d" and r["pid"]]
        self.assertTrue(rows)
        pid = rows[0]["pid"]
        wait_until(lambda: proc_ids(pid)[3] == "1", timeout=5, what="pop3d set-up")
        mail = pwd.getpwnam("postern-mail")
        self.assertEqual(proc_ids(pid)[0], [mail.pw_uid] * 3)
        # A message put into the store (owned by postern-mail, 0700).
        md = os.path.join(self.inst.dir, "mail", "example.test", "root-pop")
        for d in (os.path.dirname(md), md, md + "/tmp", md + "/new", md + "/cur"):
            os.makedirs(d, mode=0o700, exist_ok=True)
            os.chown(d, mail.pw_uid, mail.pw_gid)
        msg = os.path.join(md, "new", "%d.M1P1.host" % int(time.time()))
        with open(msg, "wb") as f:
            f.write(b"Subject: root\n\n.hello\n")
        os.chown(msg, mail.pw_uid, mail.pw_gid)
        c = poplib.POP3("127.0.0.1", self.inst.base + 10, timeout=10)
        c.user("root-pop@example.test")
        c.pass_("Pw-root-pop1")
        self.assertEqual(c.stat(), (1, 25))
        self.assertEqual(c.retr(1)[1], [b"Subject: root", b"", b".hello"])
        c.dele(1)
        c.quit()
        self.assertEqual(os.listdir(md + "/new") + os.listdir(md + "/cur"), [])

    def test_stop_leaves_nothing(self):
        master = self.inst.start()
        pids = [r["pid"] for r in self.inst.status() if r["pid"]]
        self.assertEqual(len([r for r in self.inst.status()
                              if r["service"].startswith("echo_")]), 3)
        self.inst.stop()
        for pid in pids + [master]:
            self.assertFalse(pid_alive(pid))
        wait_until(lambda: self.inst.master_pid() == 0, what="pid file removed")


# How a connection attempt as another user ended (the child's exit code).
CLOSED, ANSWERED, NO_CONNECT, TIMEOUT, FAILED, NO_ACCESS = 10, 11, 12, 13, 14, 15


def connect_as(uid, gid, path, proto, timeout=10.0, groups=()):
    """Fork; the child drops to uid/gid and the supplementary groups
    (none by default), connects to the Unix socket at path, sends the
    protocol's hello and reports whether the link was closed without a
    byte of answer; NO_ACCESS if connect failed with EACCES."""
    pid = os.fork()
    if pid == 0:
        code = FAILED
        try:
            os.setgroups(list(groups))
            os.setgid(gid)
            os.setuid(uid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(path)
            except PermissionError:
                os._exit(NO_ACCESS)
            except OSError:
                os._exit(NO_CONNECT)
            try:
                s.sendall(frame(1, 0, pstr(proto)))
                code = ANSWERED if s.recv(1) else CLOSED
            except (BrokenPipeError, ConnectionResetError):
                code = CLOSED
            except socket.timeout:
                code = TIMEOUT
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return TIMEOUT


@unittest.skipUnless(os.geteuid() == 0, "root mode needs root")
class LocalPeers(unittest.TestCase):
    """local(8) serves only qmgr: its socket admits qmgr's group only
    (postern-mail:postern-queue 0660), and behind that the peer's uid
    (SO_PEERCRED) keeps out anyone else who has the group."""

    def setUp(self):
        self.inst = Instance(root=True)
        # The refusals are read from run/postern.log, not syslog.
        with open(self.inst.conf) as f:
            conf = f.read()
        self.assertIn("log_target = syslog\n", conf)
        with open(self.inst.conf, "w") as f:
            f.write(conf.replace("log_target = syslog\n", "log_target = stderr\n"))

    def tearDown(self):
        self.inst.cleanup()

    def test_only_qmgr_may_connect(self):
        self.inst.start()
        sock = os.path.join(self.inst.dir, "run", "local")
        wait_until(lambda: os.path.exists(sock), what="local's socket")
        local = self.inst.service_pids("local")
        self.assertTrue(local)
        mail = pwd.getpwnam("postern-mail")
        self.assertEqual(proc_ids(local[0])[0], [mail.pw_uid] * 3)
        nobody = pwd.getpwnam("nobody")
        smtpd = pwd.getpwnam("postern-smtpd")
        queue = pwd.getpwnam("postern-queue")
        for pw in (nobody, smtpd):
            # The socket's mode keeps them out...
            self.assertEqual(connect_as(pw.pw_uid, pw.pw_gid, sock, "postern-agent/1"),
                             NO_ACCESS, pw.pw_name)
            # ... and with qmgr's group, the peer check does.
            self.assertEqual(connect_as(pw.pw_uid, queue.pw_gid, sock, "postern-agent/1"),
                             CLOSED, pw.pw_name)
            wait_until(lambda: "event=peer_refused uid=%d " % pw.pw_uid
                       in self.inst.read_log(), what="the refusal logged")
        # qmgr's user is served (the agent answers the hello).
        self.assertEqual(connect_as(queue.pw_uid, queue.pw_gid, sock, "postern-agent/1"),
                         ANSWERED)
        self.assertNotIn("event=peer_refused uid=%d " % queue.pw_uid,
                         self.inst.read_log())
        # Refusing peers does not hurt local: the same process still runs.
        self.assertEqual(self.inst.service_pids("local"), local)


# Every socket master makes in run_dir in root mode: owner, group, mode
# (lib/core/services.c's builtin_sockets; master's own control socket).
SOCKETS = {
    "master.sock": ("root", "root", 0o600),
    "qmgr": ("postern-smtpd", "postern-drop", 0o660),
    "qmgr.ctl": ("postern-queue", "postern-queue", 0o600),
    "local": ("postern-mail", "postern-queue", 0o660),
    "relay": ("postern-relay", "postern-queue", 0o660),
    "auth": ("postern-auth", "postern-auth-client", 0o660),
}
# The daemons that get the auth client group, and so reach auth.
AUTH_CLIENTS = ("smtpd", "local", "pop3d", "imapd")


@unittest.skipUnless(os.geteuid() == 0, "root mode needs root")
class SocketAccess(unittest.TestCase):
    """Each socket in run_dir admits its real peers only: by owner,
    group and mode, before any server looks at SO_PEERCRED."""

    def setUp(self):
        self.inst = Instance(root=True)
        self.inst.start()
        self.run = os.path.join(self.inst.dir, "run")

    def tearDown(self):
        self.inst.cleanup()

    def sockets(self):
        import stat
        return sorted(n for n in os.listdir(self.run)
                      if stat.S_ISSOCK(os.lstat(os.path.join(self.run, n)).st_mode))

    def test_owner_group_and_mode_of_every_socket(self):
        names = self.sockets()
        for name in ("master.sock", "qmgr", "qmgr.ctl", "local", "auth"):
            self.assertIn(name, names)
        for name in names:
            self.assertIn(name, SOCKETS, "a socket nobody designed the access of")
            user, group, mode = SOCKETS[name]
            st = os.lstat(os.path.join(self.run, name))
            self.assertEqual(pwd.getpwuid(st.st_uid).pw_name, user, name)
            self.assertEqual(grp.getgrgid(st.st_gid).gr_name, group, name)
            self.assertEqual(st.st_mode & 0o7777, mode, name)

    def test_a_user_who_is_no_peer_gets_eacces(self):
        nobody = pwd.getpwnam("nobody")
        for name in self.sockets():
            self.assertEqual(connect_as(nobody.pw_uid, nobody.pw_gid,
                                        os.path.join(self.run, name), "x/1"),
                             NO_ACCESS, name)
        # qmgr's user reaches neither auth nor qmgr's own notice socket.
        queue = pwd.getpwnam("postern-queue")
        for name in ("auth", "qmgr"):
            self.assertEqual(connect_as(queue.pw_uid, queue.pw_gid,
                                        os.path.join(self.run, name), "x/1"),
                             NO_ACCESS, name)

    def test_the_real_peers_get_in(self):
        smtpd = pwd.getpwnam("postern-smtpd")
        mail = pwd.getpwnam("postern-mail")
        queue = pwd.getpwnam("postern-queue")
        nobody = pwd.getpwnam("nobody")
        authc = grp.getgrnam("postern-auth-client").gr_gid
        drop = grp.getgrnam("postern-drop").gr_gid
        qmgr = os.path.join(self.run, "qmgr")
        auth = os.path.join(self.run, "auth")
        # smtpd: its notices (as the socket's owner), auth (by the group).
        self.assertEqual(connect_as(smtpd.pw_uid, smtpd.pw_gid, qmgr,
                                    "postern-qmgr-notify/1", groups=[authc]), ANSWERED)
        self.assertEqual(connect_as(smtpd.pw_uid, smtpd.pw_gid, auth,
                                    "postern-auth/1", groups=[authc]), ANSWERED)
        # local and pop3d (postern-mail): auth.
        self.assertEqual(connect_as(mail.pw_uid, mail.pw_gid, auth,
                                    "postern-auth/1", groups=[authc]), ANSWERED)
        # sendmail(1) run by anyone, set-group-id postern-drop: the notice.
        self.assertEqual(connect_as(nobody.pw_uid, drop, qmgr,
                                    "postern-qmgr-notify/1"), ANSWERED)
        # qmgr: local.
        self.assertEqual(connect_as(queue.pw_uid, queue.pw_gid,
                                    os.path.join(self.run, "local"),
                                    "postern-agent/1"), ANSWERED)

    def test_daemons_have_exactly_their_sockets_groups(self):
        authc = str(grp.getgrnam("postern-auth-client").gr_gid)
        seen = set()
        for row in self.inst.status():
            if not row["pid"]:
                continue
            wait_until(lambda: proc_ids(row["pid"])[3] == "1", timeout=5,
                       what="pid %d to finish its set-up" % row["pid"])
            want = [authc] if row["service"] in AUTH_CLIENTS else []
            self.assertEqual(proc_ids(row["pid"])[2], want, row)
            seen.add(row["service"])
        for name in ("smtpd", "qmgr", "local", "auth", "pop3d"):
            self.assertIn(name, seen)


if __name__ == "__main__":
    main()
