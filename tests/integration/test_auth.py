"""The auth service: a real instance, spoken to over its Unix socket by a
small client of the postern-auth/1 framing.  Answers for right and wrong
passwords, unknown and disabled users; timing that does not reveal whether
a user exists; the failure delay and the client address's growing
penalty, and that guessing elsewhere never slows a user's own logins;
200 concurrent requests; garbage
clients; and (as root) the peer check of a root-mode instance."""

import grp
import os
import pwd
import random
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, wait_until, main, pstr, pdata, frame, get_str  # noqa: E402

IPC_HELLO = 1
AUTH_REQ, AUTH_OK, AUTH_FAIL = 16, 17, 18
AUTH_FAIL_CREDENTIALS, AUTH_FAIL_TEMPORARY = 1, 2
PROTO = "postern-auth/1"
IO_TIMEOUT = 20.0

# Users of the test map: user -> (password, attributes).
USERS = {
    "alice@example.test": ("right", "quota=10M"),
    "bob@example.test": ("b0b pass", ""),
    "off@example.test": ("right", "enabled=no"),
}


def mkpasswd(password):
    """A yescrypt hash made by mkpasswd(1) (Debian's whois package)."""
    return subprocess.run(["mkpasswd", "-m", "yescrypt", "--stdin"], input=password,
                          stdout=subprocess.PIPE, text=True, check=True,
                          timeout=30).stdout.strip()


_HASHES = {}


def hash_for(password):
    if password not in _HASHES:
        _HASHES[password] = mkpasswd(password)
    return _HASHES[password]





def request_frame(fid, user, password, service="smtp", mech="PLAIN",
                  client="192.0.2.1", flags=0):
    pw = password.encode() if isinstance(password, str) else password
    return frame(AUTH_REQ, fid, pstr(service) + pstr(mech) + pstr(user) +
                 pdata(pw) + pstr(client) + struct.pack("=I", flags))


def recv_exact(sock, n):
    """n bytes, or b"" at EOF before the first byte; raises on a short read."""
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            if out:
                raise EOFError("EOF inside a frame")
            return b""
        out += chunk
    return out



class AuthConn:
    """One link to the auth service (blocking, with timeouts)."""

    def __init__(self, path, hello=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(IO_TIMEOUT)
        try:
            self.sock.connect(path)
            if hello:
                self.sock.sendall(frame(IPC_HELLO, 0, pstr(PROTO)))
                ftype, _, payload = self.recv_frame()
                assert ftype == IPC_HELLO, ftype
                assert get_str(payload, 0)[0] == PROTO
        except BaseException:
            self.sock.close()
            raise

    def recv_frame(self):
        hdr = recv_exact(self.sock, 12)
        if not hdr:
            raise EOFError("connection closed")
        ftype, length, fid = struct.unpack("=III", hdr)
        payload = recv_exact(self.sock, length) if length else b""
        return ftype, fid, payload

    def fileno(self):
        return self.sock.fileno()

    def send(self, data):
        self.sock.sendall(data)

    def reply(self):
        """(id, ("OK", user, mailbox, quota)) or (id, ("FAIL", code, reason))."""
        ftype, fid, p = self.recv_frame()
        if ftype == AUTH_OK:
            user, off = get_str(p, 0)
            mailbox, off = get_str(p, off)
            (quota,) = struct.unpack_from("=Q", p, off)
            return fid, ("OK", user, mailbox, quota)
        assert ftype == AUTH_FAIL, ftype
        (code,) = struct.unpack_from("=I", p, 0)
        reason, _ = get_str(p, 4)
        return fid, ("FAIL", code, reason)

    def auth(self, user, password, **kw):
        """One request; returns (answer, seconds)."""
        fid = random.randrange(1, 1 << 31)
        start = time.monotonic()
        self.send(request_frame(fid, user, password, **kw))
        rid, ans = self.reply()
        assert rid == fid, (rid, fid)
        return ans, time.monotonic() - start

    def closed_by_peer(self, timeout=5.0):
        """Whether the service closes the link within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(4096):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()


def write_users(inst, users, owner=None):
    """Write the instance's password map source and compile it; make it
    the configured map if the config has none yet."""
    with open(inst.conf) as f:
        has_passwd = any(line.split("=")[0].strip() == "passwd" for line in f)
    path = os.path.join(inst.dir, "maps", "passwd")
    lines = ["# test users"]
    for user, (password, attrs) in users.items():
        lines.append(("%s %s %s" % (user, hash_for(password), attrs)).rstrip())
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    if has_passwd:
        inst.postern("map", path)
    else:
        inst.append_config("passwd = texthash:$config_dir/maps/passwd")
    if owner is not None:
        for name in os.listdir(os.path.dirname(path)):
            if name.startswith("passwd"):
                os.chown(os.path.join(inst.dir, "maps", name), owner.pw_uid, owner.pw_gid)


def auth_socket(inst):
    return os.path.join(inst.dir, "run", "auth")


def auth_running(inst):
    rows = [r for r in inst.status() if r["service"] == "auth"]
    return rows and rows[0]["state"] == "running" and rows[0]


class AuthTest(unittest.TestCase):
    delay = "0"          # auth_fail_delay
    penalty = "0"        # auth_penalty_delay
    penalty_max = "5s"   # auth_penalty_max
    config = ""

    def setUp(self):
        self.inst = Instance()
        write_users(self.inst, USERS)
        self.inst.append_config("auth_fail_delay = %s\nauth_penalty_delay = %s\n%s" % (
            self.delay, self.penalty, self.config or
            "auth_penalty_max = %s" % self.penalty_max))
        self.inst.start()
        self.row = wait_until(lambda: auth_running(self.inst), what="auth running")
        self.path = auth_socket(self.inst)
        wait_until(lambda: os.path.exists(self.path), what="auth socket")
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        try:
            self.inst.stop()
        except Exception:
            pass
        self.inst.cleanup()

    def connect(self, hello=True):
        c = AuthConn(self.path, hello)
        self.conns.append(c)
        return c


class Answers(AuthTest):
    def test_right_password(self):
        c = self.connect()
        ans, _ = c.auth("Alice@Example.TEST", "right", service="imap", mech="LOGIN")
        self.assertEqual(ans, ("OK", "alice@example.test", "example.test/alice/",
                               10 * 1024 * 1024))
        ans, _ = c.auth("bob@example.test", "b0b pass", service="pop3", mech="USER")
        self.assertEqual(ans, ("OK", "bob@example.test", "example.test/bob/", 0))
        self.assertRegex(self.inst.read_log(),
                         r"event=auth_ok .*user=alice@example.test client=192.0.2.1 "
                         r"service=imap mechanism=LOGIN")

    def test_failures(self):
        c = self.connect()
        for user, pw, reason in (("alice@example.test", "wrong", "bad_password"),
                                 ("alice@example.test", "", "bad_password"),
                                 ("alice@example.test", b"right\0", "bad_password"),
                                 ("nobody@example.test", "right", "unknown_user"),
                                 ("off@example.test", "right", "disabled")):
            ans, _ = c.auth(user, pw)
            self.assertEqual(ans[:2], ("FAIL", AUTH_FAIL_CREDENTIALS), (user, pw))
            # The reply does not say which.
            self.assertEqual(ans[2], "authentication failed")
            wait_until(lambda: "user=%s client=192.0.2.1 service=smtp mechanism=PLAIN "
                       "reason=%s" % (user, reason) in self.inst.read_log(),
                       timeout=5, what="the failure's log line")
        log = self.inst.read_log()
        self.assertNotIn("wrong", log)
        self.assertNotIn("right", log)

    def test_timing_does_not_reveal_users(self):
        c = self.connect()
        times = {"known": [], "unknown": [], "disabled": []}
        for _ in range(9):
            for kind, user in (("known", "alice@example.test"),
                               ("unknown", "nobody@example.test"),
                               ("disabled", "off@example.test")):
                ans, t = c.auth(user, "guess")
                self.assertEqual(ans[0], "FAIL")
                times[kind].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        for kind in ("unknown", "disabled"):
            ratio = med[kind] / med["known"]
            self.assertTrue(0.5 <= ratio <= 2.0, "median times %r" % med)

    def test_200_concurrent(self):
        conns = [self.connect() for _ in range(50)]
        want = {}
        fid = 1
        for i, c in enumerate(conns):
            batch = b""
            for j in range(4):
                user = ("alice@example.test", "bob@example.test")[(i + j) % 2]
                right = (i * 4 + j) % 3 != 0
                pw = USERS[user][0] if right else "nope"
                batch += request_frame(fid, user, pw, client="198.51.100.%d" % i)
                want[fid] = (c, user if right else None)
                fid += 1
            c.send(batch)
        got = 0
        pending = {c: 4 for c in conns}
        deadline = time.monotonic() + 60
        while pending:
            self.assertLess(time.monotonic(), deadline, "answers missing")
            ready, _, _ = select.select(list(pending), [], [], 5)
            for c in ready:
                rid, ans = c.reply()
                conn, user = want.pop(rid)
                self.assertIs(conn, c)
                if user is None:
                    self.assertEqual(ans[:2], ("FAIL", AUTH_FAIL_CREDENTIALS))
                else:
                    self.assertEqual(ans[:2], ("OK", user))
                got += 1
                pending[c] -= 1
                if not pending[c]:
                    del pending[c]
        self.assertEqual(got, 200)
        self.assertEqual(want, {})

    def test_garbage_clients(self):
        # Random bytes instead of a hello.
        c = self.connect(hello=False)
        c.send(bytes(random.randrange(256) for _ in range(200)))
        self.assertTrue(c.closed_by_peer())
        # A hello naming another protocol.
        c = self.connect(hello=False)
        c.send(frame(IPC_HELLO, 0, pstr("postern-qmgr/1")))
        self.assertTrue(c.closed_by_peer())
        # A valid hello, then a frame of an unknown type.
        c = self.connect()
        c.send(frame(99, 1, b"xxxx"))
        self.assertTrue(c.closed_by_peer())
        # A request with short fields, and one with a leftover byte.
        c = self.connect()
        c.send(frame(AUTH_REQ, 2, pstr("smtp") + pstr("PLAIN") + struct.pack("=I", 500) +
                     b"x" * 20))
        self.assertTrue(c.closed_by_peer())
        c = self.connect()
        good = request_frame(3, "alice@example.test", "right")
        c.send(frame(AUTH_REQ, 3, good[12:] + b"!"))
        self.assertTrue(c.closed_by_peer())
        # An over-long frame header.
        c = self.connect()
        c.send(struct.pack("=III", AUTH_REQ, 1 << 30, 4))
        self.assertTrue(c.closed_by_peer())
        # Half a frame, then close.
        c = self.connect()
        c.send(request_frame(5, "alice@example.test", "right")[:20])
        c.close()
        # A bad field value is an answer, not a disconnect.
        c = self.connect()
        ans, _ = c.auth("alice@example.test", "right", mech="CRAM-MD5")
        self.assertEqual(ans[:2], ("FAIL", AUTH_FAIL_CREDENTIALS))
        ans, _ = c.auth("x" * 300, "right")
        self.assertEqual(ans[:2], ("FAIL", AUTH_FAIL_CREDENTIALS))

        good = self.connect()
        ans, _ = good.auth("alice@example.test", "right")
        self.assertEqual(ans[0], "OK")
        row = auth_running(self.inst)
        self.assertEqual(row["pid"], self.row["pid"])
        self.assertEqual(row["restarts"], 0)
        self.assertIn("event=ipc_close proto=postern-auth/1", self.inst.read_log())


class Administration(AuthTest):
    """postern user edits reach the running service without a restart."""

    def user(self, *args, password=None):
        p = subprocess.run([self.inst.postern_path, "-c", self.inst.conf, "user"] +
                           list(args), input=password, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def answer(self, user, password):
        c = self.connect()
        return c.auth(user, password)[0][0]

    def test_user_changes_are_seen_live(self):
        pid = self.row["pid"]
        self.user("add", "Fresh@Example.Test", password="first pw\n")
        wait_until(lambda: self.answer("fresh@example.test", "first pw") == "OK",
                   timeout=5, what="the new user to log in")
        self.user("passwd", "fresh@example.test", password="second pw\n")
        wait_until(lambda: self.answer("fresh@example.test", "first pw") == "FAIL",
                   timeout=5, what="the old password to stop working")
        self.assertEqual(self.answer("fresh@example.test", "second pw"), "OK")
        self.user("disable", "fresh@example.test")
        wait_until(lambda: self.answer("fresh@example.test", "second pw") == "FAIL",
                   timeout=5, what="the disabled user to be refused")
        self.user("del", "fresh@example.test")
        # The same auth process served all of it.
        self.assertEqual(auth_running(self.inst)["pid"], pid)


def auth_lines(log, client):
    """The auth_fail and auth_ok lines for client, in order."""
    return [line for line in log.splitlines()
            if ("event=auth_fail " in line or "event=auth_ok " in line) and
            " client=%s " % client in line]


# Wall times are only lower bounds, with this much slack: the service's
# timers run on its loop's clock, read once per batch of events.
SLACK = 0.06


class Delays(AuthTest):
    """auth_fail_delay 200 ms on every failure; a penalty of 300 ms doubling
    per recent failure of the client address, capped at 1 s, on every
    answer to that address.  The delays applied are read from the service's
    log; wall times are lower bounds only, as a loaded machine adds to them."""
    delay = "200ms"
    penalty = "300ms"
    penalty_max = "1s"

    def wait_lines(self, client, n):
        return wait_until(lambda: len(auth_lines(self.inst.read_log(), client)) >= n
                          and auth_lines(self.inst.read_log(), client),
                          timeout=10, what="%d auth lines for %s" % (n, client))

    def test_brute_force_slows_down(self):
        c = self.connect()
        atk = "192.0.2.66"
        times = []
        for i, user in enumerate(("alice@example.test", "bob@example.test",
                                  "alice@example.test", "nobody@example.test",
                                  "alice@example.test", "bob@example.test")):
            ans, t = c.auth(user, "guess%d" % i, client=atk)
            self.assertEqual(ans[:2], ("FAIL", AUTH_FAIL_CREDENTIALS))
            times.append(t)
        # The fixed 200 ms, plus the penalty 0, 300, 600, then 1 s (the cap).
        want = [(0, 200), (300, 500), (600, 800), (1000, 1200), (1000, 1200),
                (1000, 1200)]
        lines = self.wait_lines(atk, 6)
        for i, (line, (penalty, delay), t) in enumerate(zip(lines, want, times)):
            self.assertIn("failures=%d " % (i + 1), line)
            self.assertIn("penalty_ms=%d delay_ms=%d" % (penalty, delay), line)
            self.assertGreaterEqual(t, delay / 1000.0 - SLACK, line)
        # The right password from there waits the penalty as well, so a
        # guesser that hangs up when no quick answer comes learns nothing.
        ans, t = c.auth("alice@example.test", "right", client=atk)
        self.assertEqual(ans[0], "OK")
        self.assertGreaterEqual(t, 0.99 - SLACK)
        self.assertIn("delay_ms=1000", self.wait_lines(atk, 7)[6])
        # That forgave the three guesses at alice; the three against bob
        # and nobody still count: bob's right password waits 300 ms *
        # 2^(3-1), capped at 1 s, and then only nobody's one is left.
        ans, t = c.auth("bob@example.test", "b0b pass", client=atk)
        self.assertEqual(ans[0], "OK")
        self.assertIn("event=auth_ok", self.wait_lines(atk, 8)[7])
        self.assertIn("delay_ms=1000", self.wait_lines(atk, 8)[7])
        ans, t = c.auth("bob@example.test", "b0b pass", client=atk)
        self.assertIn("delay_ms=300", self.wait_lines(atk, 9)[8])
        # Hanging up does not help either: a new connection is held the same.
        c.close()
        c2 = self.connect()
        _, t = c2.auth("alice@example.test", "guess", client=atk)
        self.assertGreaterEqual(t, 0.49 - SLACK)
        self.assertIn("penalty_ms=300 delay_ms=500", self.wait_lines(atk, 10)[9])

    def test_no_lockout_from_elsewhere(self):
        # Guesses at alice from another address, many of them at once.
        atk = self.connect()
        batch = b"".join(request_frame(100 + i, "alice@example.test", "guess%d" % i,
                                       client="203.0.113.66") for i in range(8))
        atk.send(batch)
        self.wait_lines("203.0.113.66", 8)
        # alice, from her own address, logs in at once (the guesses are
        # still in flight: the last is held 1.2 s).
        home = self.connect()
        ans, t = home.auth("alice@example.test", "right", client="198.51.100.7")
        self.assertEqual(ans[0], "OK")
        self.assertIn("delay_ms=0", self.wait_lines("198.51.100.7", 1)[0])
        # A typo of hers costs her the fixed delay and no penalty; the log
        # still shows how many failures her user has from anywhere.
        ans, t = home.auth("alice@example.test", "typo", client="198.51.100.7")
        self.assertEqual(ans[0], "FAIL")
        line = self.wait_lines("198.51.100.7", 2)[1]
        self.assertIn("failures=1 user_failures=1 penalty_ms=0 delay_ms=200", line)
        # Her next try waits her own typo's penalty, and then clears it.
        ans, t = home.auth("alice@example.test", "right", client="198.51.100.7")
        self.assertEqual(ans[0], "OK")
        self.assertGreaterEqual(t, 0.29 - SLACK)
        self.assertIn("delay_ms=300", self.wait_lines("198.51.100.7", 3)[2])
        ans, t = home.auth("alice@example.test", "right", client="198.51.100.7")
        self.assertIn("delay_ms=0", self.wait_lines("198.51.100.7", 4)[3])
        # Meanwhile the guesser's eight were answered, each later than the
        # one before, and its next try is still penalised.
        got = sorted(atk.reply()[0] for _ in range(8))
        self.assertEqual(got, list(range(100, 108)))
        self.assertIn("failures=8 user_failures=8 penalty_ms=1000 delay_ms=1200",
                      self.wait_lines("203.0.113.66", 8)[7])
        ans, t = atk.auth("alice@example.test", "right", client="203.0.113.66")
        self.assertEqual(ans[0], "OK")
        self.assertGreaterEqual(t, 0.99 - SLACK)

    def test_ipv6_prefix_shares_a_count(self):
        c = self.connect()
        _, t1 = c.auth("bob@example.test", "wrong", client="2001:db8:1:2::1")
        self.assertGreaterEqual(t1, 0.2 - SLACK)
        # Another address in the same /64, another user: held.
        ans, t2 = c.auth("alice@example.test", "right", client="2001:db8:1:2::99")
        self.assertEqual(ans[0], "OK")
        self.assertGreaterEqual(t2, 0.29 - SLACK)
        self.assertIn("delay_ms=300", self.wait_lines("2001:db8:1:2::99", 1)[0])
        # Another /64 starts afresh.
        ans, t3 = c.auth("alice@example.test", "right", client="2001:db8:1:3::1")
        self.assertEqual(ans[0], "OK")
        self.assertIn("delay_ms=0", self.wait_lines("2001:db8:1:3::1", 1)[0])


class OldCapName(AuthTest):
    """auth_fail_delay_max, auth_penalty_max's old name, still caps the
    penalty when auth_penalty_max is not set."""
    penalty = "300ms"
    config = "auth_fail_delay_max = 400ms"

    def test_old_name_caps_the_penalty(self):
        c = self.connect()
        for i in range(3):
            c.auth("alice@example.test", "guess%d" % i)
        lines = wait_until(lambda: len(auth_lines(self.inst.read_log(), "192.0.2.1")) >= 3
                           and auth_lines(self.inst.read_log(), "192.0.2.1"),
                           timeout=10, what="three failures")
        self.assertIn("penalty_ms=300 ", lines[1])
        self.assertIn("penalty_ms=400 ", lines[2])
        self.assertIn("event=deprecated_key key=auth_fail_delay_max", self.inst.read_log())


def run_as(user, fn, groups=()):
    """Run fn() in a child process as user with the supplementary groups
    named; returns its exit status."""
    pw = pwd.getpwnam(user)
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setgroups([grp.getgrnam(g).gr_gid for g in groups])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
            code = fn()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


@unittest.skipUnless(os.geteuid() == 0, "root mode needs root")
class RootPeerCheck(unittest.TestCase):
    def setUp(self):
        self.inst = Instance(root=True)
        auth_user = pwd.getpwnam("postern-auth")
        write_users(self.inst, USERS, owner=auth_user)
        self.inst.append_config("auth_fail_delay = 0")
        self.inst.start()
        wait_until(lambda: auth_running(self.inst), what="auth running")
        self.path = auth_socket(self.inst)
        wait_until(lambda: os.path.exists(self.path), what="auth socket")

    def tearDown(self):
        try:
            self.inst.stop()
        except Exception:
            pass
        self.inst.cleanup()

    def try_login(self):
        """0 logged in, 1 refused (link closed), 2 anything else, 4 the
        socket's mode said no (EACCES)."""
        c = None
        try:
            c = AuthConn(self.path)
            ans, _ = c.auth("alice@example.test", "right")
            return 0 if ans[0] == "OK" else 2
        except PermissionError:
            return 4
        except (EOFError, ConnectionResetError, BrokenPipeError):
            return 1
        except Exception:
            return 2
        finally:
            if c is not None:
                c.close()

    def test_peer_check(self):
        # The socket (postern-auth:postern-auth-client 0660) keeps out
        # whoever lacks the group ...
        self.assertEqual(run_as("nobody", self.try_login), 4)
        self.assertEqual(run_as("postern-queue", self.try_login), 4)
        # ... and auth answers only the daemons that authenticate users,
        # not another daemon's user that has the group.
        for user in ("nobody", "postern-queue", "postern-relay"):
            self.assertEqual(run_as(user, self.try_login, ["postern-auth-client"]),
                             1, user)
        # smtpd, local, pop3d and imapd (postern-mail) get in.
        for user in ("postern-smtpd", "postern-mail"):
            self.assertEqual(run_as(user, self.try_login, ["postern-auth-client"]),
                             0, user)
        self.assertEqual(self.try_login(), 0)
        # Root mode may log to syslog rather than the instance's log file.
        if "postern/auth" in self.inst.read_log():
            for user in ("nobody", "postern-queue"):
                uid = pwd.getpwnam(user).pw_uid
                wait_until(lambda: "event=peer_refused uid=%d " % uid
                           in self.inst.read_log(), timeout=5,
                           what="the refusal's log line")


if __name__ == "__main__":
    main()
