"""The spool and the mail store on four kinds of file system: the
machine's own (a directory under /var/tmp), tmpfs, a loop-mounted ext4
image, and passfs -- a FUSE passthrough (tests/integration/passfs.py,
python3-fusepy) that, like many FUSE, NFS and overlay set-ups, has no
O_TMPFILE, refuses RENAME_NOREPLACE, gives DT_UNKNOWN from readdir and
caches attributes.  On each: 2,000 messages at 10 sessions are each
delivered exactly once and nothing is quarantined in spool/corrupt; then
a stream under kill -9 of qmgr, local and smtpd loses nothing
acknowledged; and with the disk full (all but the machine's own file
system, which a test must not fill) nothing gets 250 and what got 250
before is delivered once there is room.  An older build moved most acknowledged messages into
spool/corrupt on passfs (the link + unlink fallback, and pickup refusing
a cached link count of 2)."""

import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PASSFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "passfs.py")
SYSTEM_PYTHON = "/usr/bin/python3"     # Debian's python3-fusepy lives there
CONFIG = """
queue_retry_min = 1s
queue_retry_max = 2s
restart_delay_max = 1s
"""
TOTAL = 2000
SESSIONS = 10
KILL_TOTAL = 300
MID = re.compile(rb"Message-ID: <(m\d+)@fs\.test>")


def have_fusepy():
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run(
        [SYSTEM_PYTHON, "-c", "import fusepy"], capture_output=True,
        timeout=30).returncode == 0


class FsCase:
    """One file system under the whole instance's spool and mail store;
    a subclass says how to mount it at self.top (mount())."""

    kind = None
    only = None     # the tests a subclass runs, if not all

    def setUp(self):
        if self.only is not None and self._testMethodName not in self.only:
            self.skipTest("run on the machine's own file system (MachineFs)")
        if os.geteuid() != 0:
            self.skipTest("mounting a file system needs root")
        self.inst = harness.Instance(extra_config=CONFIG)
        self.addCleanup(self.inst.cleanup)
        self.top = os.path.join(self.inst.dir, "fs")
        self.inst.makedirs(self.top, 0o755)
        self.mount()
        self.inst.own(self.top)
        with open(self.inst.conf) as f:
            text = f.read()
        text = text.replace("spool_dir = $config_dir/spool",
                            "spool_dir = $config_dir/fs/spool")
        text = text.replace("mail_dir = $config_dir/mail",
                            "mail_dir = $config_dir/fs/mail")
        with open(self.inst.conf, "w") as f:
            f.write(text)
        self.spool = os.path.join(self.top, "spool")
        self.maildir = os.path.join(self.top, "mail", "example.test", "demo")
        self.inst.start()
        self.addCleanup(self.inst.stop)
        self.port = self.inst.base + 25

    def umount_later(self, path):
        self.addCleanup(lambda: subprocess.run(["umount", "-l", path],
                                               capture_output=True, timeout=30))

    def run_cmd(self, cmd):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            self.fail("%s: %s" % (" ".join(cmd), p.stderr.strip()))

    # --- what every file system must do -------------------------------

    def msg(self, n):
        return ("Subject: fs %d\r\nMessage-ID: <m%d@fs.test>\r\n\r\n"
                "message %d on %s\r\n" % (n, n, n, self.kind)).encode()

    def counts(self):
        c = {}
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir, sub)
            if not os.path.isdir(d):
                continue
            for name in os.listdir(d):
                try:
                    with open(os.path.join(d, name), "rb") as f:
                        m = MID.search(f.read(4096))
                except FileNotFoundError:
                    continue
                if m:
                    c[m.group(1)] = c.get(m.group(1), 0) + 1
        return c

    def corrupt(self):
        d = os.path.join(self.spool, "corrupt")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def spool_empty(self):
        # incoming/tmp is not looked at: where there is no O_TMPFILE, an
        # smtpd killed while writing leaves its unacknowledged file there
        # for the 36-hour sweep.
        for sub in ("queue", "incoming/new", "maildrop/new"):
            d = os.path.join(self.spool, sub)
            if os.path.isdir(d) and [n for n in os.listdir(d)
                                     if not n.startswith(".")]:
                return False
        return True

    def send_all(self, total, sessions):
        errors = []

        def worker(t):
            s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
            try:
                for n in range(t, total, sessions):
                    s.sendmail("sender@remote.test", ["demo@example.test"],
                               self.msg(n))
            except (smtplib.SMTPException, OSError) as e:
                errors.append(repr(e))
            finally:
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    pass
        ts = [threading.Thread(target=worker, args=(t,)) for t in range(sessions)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=600)
        return errors

    def test_1_each_message_delivered_once(self):
        errors = self.send_all(TOTAL, SESSIONS)
        self.assertEqual(errors, [])
        harness.wait_until(lambda: len(self.counts()) == TOTAL, timeout=300,
                           interval=0.5, what="all %d messages" % TOTAL)
        harness.wait_until(self.spool_empty, timeout=60, what="empty spool")
        c = self.counts()
        self.assertEqual(sorted(c.values()), [1] * TOTAL)
        self.assertEqual(self.corrupt(), [])
        log = self.inst.read_log()
        self.assertIn("event=fs_probe", log)
        self.assertNotIn("event=corrupt ", log)

    def test_2_kill_9_loses_nothing(self):
        kills, errors = harness.stream_while_killing(
            self.inst, self.port, KILL_TOTAL, 5, self.msg,
            "sender@remote.test", ["demo@example.test"],
            services=("qmgr", "local", "smtpd"), every=0.5, limit=120)
        self.assertEqual(errors, [])
        self.assertGreater(kills, 0)
        harness.wait_until(lambda: len(self.counts()) == KILL_TOTAL, timeout=120,
                           interval=0.5, what="all %d messages" % KILL_TOTAL)
        harness.wait_until(self.spool_empty, timeout=60, what="empty spool")
        self.assertEqual(self.corrupt(), [])

    can_fill = True

    def fill(self):
        """Use every block of the file system (as root: past ext4's
        reserve too).  Returns the filler's path."""
        return harness.fill_file(os.path.join(self.top, "filler"),
                                 (1 << 20, 4096, 512))

    def test_3_disk_full(self):
        """While the disk is full nothing gets 250; what got 250 before
        is delivered once there is room again, each message once."""
        if not self.can_fill:
            self.skipTest(self.can_fill_why)
        before = 20
        self.assertEqual(self.send_all(before, 2), [])
        filler = self.fill()
        refused, accepted = 0, []
        for n in range(before, before + 10):
            try:
                s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
                try:
                    s.sendmail("sender@remote.test", ["demo@example.test"],
                               self.msg(n))
                    accepted.append(n)
                finally:
                    try:
                        s.quit()
                    except (smtplib.SMTPException, OSError):
                        pass
            except (smtplib.SMTPException, OSError):
                refused += 1
        self.assertEqual(accepted, [], "250 while the disk was full")
        self.assertEqual(refused, 10)
        os.unlink(filler)
        after = 10
        errors = []
        # smtpd looks at the free space at most once a second, and a FUSE
        # file system frees the filler's blocks when its daemon gets to
        # the release: a refused message is tried again, as clients do.
        for n in range(before + 10, before + 10 + after):
            for attempt in range(10):
                try:
                    s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
                    s.sendmail("sender@remote.test", ["demo@example.test"],
                               self.msg(n))
                    s.quit()
                    break
                except (smtplib.SMTPException, OSError) as e:
                    if attempt == 9:
                        errors.append(repr(e))
                    time.sleep(0.5)
        self.assertEqual(errors, [])
        want = set(b"m%d" % n for n in list(range(before)) +
                   list(range(before + 10, before + 10 + after)))
        harness.wait_until(lambda: set(self.counts()) == want, timeout=120,
                           interval=0.5, what="every acknowledged message")
        self.assertEqual(sorted(self.counts().values()), [1] * len(want))
        self.assertEqual(self.corrupt(), [])


class MachineFs(FsCase, unittest.TestCase):
    """The machine's own file system, where /var/tmp is."""
    kind = "machine"
    can_fill = False
    can_fill_why = ("filling the machine's own disk would stop everything "
                    "else on it: MachineLike fills an image made like it")

    def mount(self):
        # Not a mount: a directory on /var/tmp's file system, bound here.
        self.backing = tempfile.mkdtemp(prefix="postern-fs-", dir="/var/tmp")
        self.addCleanup(shutil.rmtree, self.backing, True)
        os.chmod(self.backing, 0o755)
        self.run_cmd(["mount", "--bind", self.backing, self.top])
        self.umount_later(self.top)


# Mount options of the machine's file system that an image can take too.
PORTABLE_OPTIONS = {"discard", "nodiscard", "noatime", "relatime",
                    "strictatime", "lazytime", "nodelalloc", "delalloc",
                    "dioread_nolock", "journal_checksum",
                    "journal_async_commit", "barrier", "nobarrier"}
PORTABLE_PREFIXES = ("data=", "commit=", "barrier=", "errors=")
# ext* features that record a state rather than a choice at mkfs time.
STATE_FEATURES = {"needs_recovery", "orphan_present", "mmp"}


def machine_fs():
    """(fstype, mkfs arguments, mount options) that make an image like the
    file system /var/tmp is on: its type, its portable mount options and,
    for ext*, its features where its device can be read; mkfs is None for
    a type with no recipe."""
    p = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE,OPTIONS", "-T",
                        "/var/tmp"], capture_output=True, text=True, timeout=30)
    fstype, source, options = p.stdout.split()
    opts = [o for o in options.split(",") if o in PORTABLE_OPTIONS or
            o.startswith(PORTABLE_PREFIXES)]
    if not fstype.startswith("ext"):
        return fstype, None, opts
    p = subprocess.run(["dumpe2fs", "-h", source], capture_output=True,
                       text=True, timeout=60)
    m = re.search(r"^Filesystem features:\s*(.*)$", p.stdout, re.M)
    if m is None:
        # The device cannot be read (a container): mke2fs's defaults,
        # which are what Debian's installer used too.
        return fstype, ["mkfs." + fstype, "-q", "-F"], opts
    features = [f for f in m.group(1).split() if f not in STATE_FEATURES]
    # "none" first: exactly the machine's features, not mke2fs.conf's.
    return fstype, ["mkfs." + fstype, "-q", "-F", "-O",
                    ",".join(["none"] + features)], opts


class MachineLike(FsCase, unittest.TestCase):
    """An image made like the machine's own file system (its type, its
    features, its portable mount options), small enough to fill: the
    disk-full test MachineFs cannot run on the real disk (its other
    tests run there)."""
    kind = "machine-like"
    only = ("test_3_disk_full",)

    def mount(self):
        fstype, mkfs, opts = machine_fs()
        if mkfs is None:
            self.skipTest("no image recipe for the machine's %s" % fstype)
        image = os.path.join(self.inst.dir, "fs.img")
        with open(image, "wb") as f:
            f.truncate(256 << 20)
        self.run_cmd(mkfs + [image])
        self.run_cmd(["mount", "-t", fstype, "-o", ",".join(["loop"] + opts),
                      image, self.top])
        self.umount_later(self.top)


class Tmpfs(FsCase, unittest.TestCase):
    kind = "tmpfs"

    def mount(self):
        self.run_cmd(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755",
                      "tmpfs", self.top])
        self.umount_later(self.top)


class Ext4Loop(FsCase, unittest.TestCase):
    kind = "ext4"

    def mount(self):
        image = os.path.join(self.inst.dir, "fs.img")
        with open(image, "wb") as f:
            f.truncate(256 << 20)
        self.run_cmd(["mkfs.ext4", "-q", "-F", image])
        self.run_cmd(["mount", "-o", "loop", image, self.top])
        self.umount_later(self.top)


@unittest.skipUnless(os.path.exists("/dev/fuse"), "no /dev/fuse")
class PassFs(FsCase, unittest.TestCase):
    kind = "passfs"

    def mount(self):
        if not have_fusepy():
            self.fail("python3-fusepy is missing (tools/packages, set test)")
        self.backing = os.path.join(self.inst.dir, "backing")
        os.mkdir(self.backing, 0o755)
        self.run_cmd(["mount", "-t", "tmpfs", "-o", "size=256m,mode=0755",
                      "tmpfs", self.backing])
        self.umount_later(self.backing)
        self.fuse = subprocess.Popen([SYSTEM_PYTHON, PASSFS, self.backing, self.top],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.addCleanup(self.stop_fuse)
        harness.wait_until(lambda: os.path.ismount(self.top), timeout=20,
                           what="passfs mounted")
        self.umount_later(self.top)

    def stop_fuse(self):
        subprocess.run(["umount", "-l", self.top], capture_output=True, timeout=30)
        try:
            self.fuse.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.fuse.kill()
            self.fuse.wait(timeout=10)

    def test_3_no_fast_paths_here(self):
        """The probe found what passfs lacks, so the run above used the
        fallbacks."""
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=60)
        s.sendmail("sender@remote.test", ["demo@example.test"], self.msg(0))
        s.quit()
        harness.wait_until(lambda: len(self.counts()) == 1, timeout=30,
                           what="delivery")
        log = self.inst.read_log()
        probes = [line for line in log.splitlines() if "event=fs_probe" in line]
        self.assertTrue(probes)
        for line in probes:
            self.assertIn("tmpfile=no noreplace=no", line)


class Quarantine(unittest.TestCase):
    """spool/corrupt is for damaged files only: one is quarantined with
    its evidence logged and counted by `postern queue`; an acknowledged
    message that has a second link for a moment (a writer's link +
    unlink, a FUSE or NFS client's cached link count) waits and is then
    delivered; a stale file in incoming/tmp is swept."""

    def setUp(self):
        self.inst = harness.Instance(extra_config=CONFIG)
        self.addCleanup(self.inst.cleanup)
        self.spool = os.path.join(self.inst.dir, "spool")
        self.maildir = os.path.join(self.inst.dir, "mail", "example.test", "demo")
        self.set_qmgr(False)
        self.inst.start()
        self.addCleanup(self.inst.stop)
        self.port = self.inst.base + 25

    def set_qmgr(self, enable):
        with open(self.inst.conf) as f:
            text = f.read()
        off, on = "service qmgr {\n    enable = no\n", "service qmgr {\n"
        with open(self.inst.conf, "w") as f:
            f.write(text.replace(off, on, 1) if enable else text.replace(on, off, 1))

    def delivered(self):
        d = os.path.join(self.maildir, "new")
        return sorted(os.listdir(d)) if os.path.isdir(d) else []

    def test_damaged_in_transition_and_stale(self):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        s.sendmail("sender@remote.test", ["demo@example.test"],
                   b"Subject: linked\r\n\r\ntwo names for a moment\r\n")
        s.quit()
        new = os.path.join(self.spool, "incoming", "new")
        (good,) = os.listdir(new)
        # An extra name outside new/: the file now has two links.
        extra = os.path.join(self.spool, "incoming", "extra-link")
        os.link(os.path.join(new, good), extra)
        # A damaged file under a queue-id name.
        bad = "0" * 21 + "Z"
        with open(os.path.join(new, bad), "wb") as f:
            f.write(b"GARBAGE\x01\x02 not an envelope\n")
        # What a writer killed 40 hours ago left in tmp/.
        stale = os.path.join(self.spool, "incoming", "tmp", "1" * 22)
        with open(stale, "wb") as f:
            f.write(b"half a message")
        old = time.time() - 40 * 3600
        os.utime(stale, (old, old))
        self.inst.own(new, os.path.dirname(stale))

        self.set_qmgr(True)
        self.inst.postern("reload")
        harness.wait_until(lambda: "event=pickup_wait" in self.inst.read_log(),
                           timeout=20, what="the two-link file waited for")
        harness.wait_until(lambda: "event=corrupt " in self.inst.read_log(),
                           timeout=20, what="the damaged file quarantined")
        self.assertEqual(os.listdir(os.path.join(self.spool, "corrupt")), [bad])
        self.assertIn(good, os.listdir(new))      # waiting, not quarantined
        self.assertEqual(self.delivered(), [])
        line = [x for x in self.inst.read_log().splitlines()
                if "event=corrupt " in x][0]
        for part in ("name=" + bad, "type=file", "size=26", "links=1",
                     'head="GARBAGE\\x01\\x02 not an envelope\\x0a"'):
            self.assertIn(part, line)
        harness.wait_until(lambda: not os.path.exists(stale), timeout=10,
                           what="the stale tmp file swept")
        self.assertIn("event=tmp_swept", self.inst.read_log())

        os.unlink(extra)            # the transition ends
        harness.wait_until(lambda: len(self.delivered()) == 1, timeout=20,
                           what="the waited-for message delivered")
        out = self.inst.postern("queue").stdout
        self.assertIn("-- 1 file quarantined in %s" %
                      os.path.join(self.spool, "corrupt"), out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
