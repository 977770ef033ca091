"""postern user / domain / map: editing the map sources and recompiling
them, on a dev instance, through the real command line."""

import os
import poplib
import smtplib
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, main, wait_until  # noqa: E402

IO_TIMEOUT = 10


class Admin(unittest.TestCase):
    def setUp(self):
        self.inst = Instance()
        self.maps = os.path.join(self.inst.dir, "maps")

    def tearDown(self):
        self.inst.cleanup()

    def user(self, *args, password=None, check=True):
        cmd = [self.inst.postern_path, "-c", self.inst.conf, "user"] + list(args)
        p = subprocess.run(cmd, input=password, capture_output=True, text=True,
                           timeout=60)
        if check and p.returncode != 0:
            raise AssertionError("postern user %s: %s%s" % (args, p.stdout, p.stderr))
        return p

    def query(self, key, mapname="passwd"):
        p = self.inst.postern("map", "-q", key, os.path.join(self.maps, mapname),
                              check=False)
        return p.stdout.strip() if p.returncode == 0 else None

    def source(self, mapname):
        with open(os.path.join(self.maps, mapname)) as f:
            return f.read()

    def test_init_compiled_the_demo_maps(self):
        self.assertRegex(self.query("demo@example.test"), r"^\$y\$")
        self.assertEqual(self.query("DEMO@Example.TEST"), self.query("demo@example.test"))
        self.assertEqual(self.query("example.test", "virtual_domains"), "")
        self.assertEqual(self.query("postmaster@example.test", "aliases"),
                         "demo@example.test")
        self.assertIsNone(self.query("nobody@example.test"))

    def test_user_lifecycle(self):
        p = self.user("add", "New.User@Example.Test", password="s3cret pass\n")
        self.assertIn("added user new.user@example.test", p.stdout)
        first = self.query("new.user@example.test")
        self.assertRegex(first, r"^\$y\$\S+$")
        # The comments and the other entries of the source are kept.
        src = self.source("passwd")
        self.assertIn("# user password-hash", src)
        self.assertIn("demo@example.test $y$", src)
        self.assertIn("new.user@example.test\tenabled",
                      self.user("list").stdout)

        self.user("passwd", "new.user@example.test", password="other\n")
        self.assertNotEqual(self.query("new.user@example.test"), first)

        self.user("quota", "new.user@example.test", "2G")
        self.assertRegex(self.query("new.user@example.test"), r" quota=2147483648$")
        self.user("disable", "new.user@example.test")
        self.assertRegex(self.query("new.user@example.test"), r" enabled=no$")
        self.assertIn("new.user@example.test\tdisabled\tquota=2147483648",
                      self.user("list").stdout)
        self.user("enable", "new.user@example.test")
        self.assertNotIn("enabled=no", self.query("new.user@example.test"))

        self.user("del", "new.user@example.test")
        self.assertIsNone(self.query("new.user@example.test"))
        self.assertNotIn("new.user", self.source("passwd"))
        self.assertIsNotNone(self.query("demo@example.test"))

    def test_user_errors(self):
        p = self.user("add", "demo@example.test", password="x\n", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("exists", p.stderr)
        p = self.user("add", "no-at-sign", password="x\n", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("user@domain", p.stderr)
        p = self.user("add", "empty@example.test", password="\n", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("empty password", p.stderr)
        p = self.user("passwd", "ghost@example.test", password="x\n", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no user", p.stderr)
        p = self.user("add", "q@example.test", "--quota", "lots", password="x\n",
                      check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIsNone(self.query("q@example.test"))
        # The password never appears on the command line: there is no option.
        p = self.user("add", "x@example.test", "--password", "pw", check=False)
        self.assertEqual(p.returncode, 2)

    def test_domains(self):
        out = self.inst.postern("domain", "list").stdout
        self.assertEqual(out.split(), ["example.test"])
        self.inst.postern("domain", "add", "Second.Example")
        self.assertEqual(self.query("second.example", "virtual_domains"), "")
        self.assertEqual(self.inst.postern("domain", "list").stdout.split(),
                         ["example.test", "second.example"])
        p = self.inst.postern("domain", "add", "second.example", check=False)
        self.assertEqual(p.returncode, 1)
        p = self.inst.postern("domain", "add", "bad..domain", check=False)
        self.assertEqual(p.returncode, 1)
        self.inst.postern("domain", "del", "second.example")
        self.assertIsNone(self.query("second.example", "virtual_domains"))

    def test_broken_source_keeps_old_map(self):
        with open(os.path.join(self.maps, "aliases"), "a") as f:
            f.write("postmaster@example.test someone@else.test\n")  # duplicate key
        p = self.inst.postern("map", os.path.join(self.maps, "aliases"), check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r"aliases:\d+: duplicate key")
        self.assertEqual(self.query("postmaster@example.test", "aliases"),
                         "demo@example.test")

    def test_key_without_value_refused(self):
        aliases = os.path.join(self.maps, "aliases")
        with open(aliases, "a") as f:
            f.write("ok@example.test demo@example.test\nbadline-without-value\n")
        nlines = self.source("aliases").count("\n")
        p = self.inst.postern("map", aliases, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("%s:%d: key 'badline-without-value' has no value" %
                      (aliases, nlines), p.stderr)
        # Nothing of the source went in: the old map stays.
        self.assertIsNone(self.query("ok@example.test", "aliases"))
        self.assertEqual(self.query("postmaster@example.test", "aliases"),
                         "demo@example.test")
        # The same for the password map, however it is compiled.
        passwd = os.path.join(self.maps, "passwd")
        with open(passwd, "a") as f:
            f.write("nohash@example.test\n")
        p = self.inst.postern("map", passwd, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"passwd:\d+: key 'nohash@example.test' has no value")
        p = self.user("add", "other@example.test", password="pw\n", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("'nohash@example.test' has no value", p.stderr)
        self.assertIsNone(self.query("other@example.test"))

    def test_key_alone_in_a_list_map(self):
        """virtual_domains (and relay_domains) are lists of keys: a domain
        alone on its line is what postern domain add writes."""
        domains = os.path.join(self.maps, "virtual_domains")
        with open(domains, "a") as f:
            f.write("third.example\n")
        self.inst.postern("map", domains)
        self.assertEqual(self.query("third.example", "virtual_domains"), "")
        # Named by a relative path from its directory: the same file.
        with open(domains, "a") as f:
            f.write("fourth.example\n")
        p = subprocess.run([self.inst.postern_path, "-c", self.inst.conf, "map",
                            "virtual_domains"], cwd=self.maps, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.query("fourth.example", "virtual_domains"), "")
        # A copy the config does not name is held to KEY VALUE.
        other = os.path.join(self.inst.dir, "domains-copy")
        with open(other, "w") as f:
            f.write(self.source("virtual_domains"))
        p = self.inst.postern("map", other, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertRegex(p.stderr, r"domains-copy:\d+: key 'example.test' has no "
                         r"value .*virtual_domains, relay_domains")


class AdminTakesEffect(unittest.TestCase):
    """An edit is in effect when its command returns: no RCPT to a user,
    domain or alias just added is refused, and a just-added user can log
    in at once, however soon after the command the client asks (the
    daemons' maps are rechecked on every miss, not once a second)."""

    ROUNDS = 5

    @classmethod
    def setUpClass(cls):
        cls.inst = Instance()
        cls.maps = os.path.join(cls.inst.dir, "maps")
        cls.inst.start()
        cls.smtp_port = cls.inst.base + 25
        cls.pop3_port = cls.inst.base + 10

    @classmethod
    def tearDownClass(cls):
        cls.inst.cleanup()

    def add_user(self, user, password):
        p = subprocess.run([self.inst.postern_path, "-c", self.inst.conf, "user",
                            "add", user], input=password + "\n",
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)

    def rcpt(self, smtp, addr):
        """The RCPT reply code, after a fresh MAIL."""
        smtp.rset()
        code, _ = smtp.mail("sender@outside.test")
        self.assertEqual(code, 250)
        code, msg = smtp.rcpt(addr)
        return code, msg

    def maildir_count(self, domain, user):
        new = os.path.join(self.inst.dir, "mail", domain, user, "new")
        try:
            return len(os.listdir(new))
        except FileNotFoundError:
            return 0

    def test_new_user_accepted_and_logs_in_at_once(self):
        # The session is open before the edit, so smtpd, auth and pop3d
        # all have the old maps open when the new user appears.
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=IO_TIMEOUT) as s:
            s.ehlo("client.test")
            for i in range(self.ROUNDS):
                user = "fresh%d@example.test" % i
                self.add_user(user, "pw-%d" % i)
                code, msg = self.rcpt(s, user)
                self.assertEqual(code, 250, "round %d: %r" % (i, msg))
                p = poplib.POP3("127.0.0.1", self.pop3_port, timeout=IO_TIMEOUT)
                try:
                    p.user(user)
                    self.assertTrue(p.pass_("pw-%d" % i).startswith(b"+OK"))
                finally:
                    p.quit()

    def test_new_domain_and_user_accepted_and_delivered(self):
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=IO_TIMEOUT) as s:
            s.ehlo("client.test")
            for i in range(self.ROUNDS):
                domain = "new%d.example" % i
                self.inst.postern("domain", "add", domain)
                self.add_user("someone@" + domain, "pw")
                code, msg = self.rcpt(s, "someone@" + domain)
                self.assertEqual(code, 250, "round %d: %r" % (i, msg))
                code, msg = s.data(b"Subject: round %d\r\n\r\nhello\r\n" % i)
                self.assertEqual(code, 250, msg)
                # qmgr routes it as local mail (its domain map too is
                # current) and local stores it.
                wait_until(lambda: self.maildir_count(domain, "someone") == 1,
                           timeout=10, what="delivery to someone@" + domain)

    def test_new_alias_accepted_at_once(self):
        aliases = os.path.join(self.maps, "aliases")
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=IO_TIMEOUT) as s:
            s.ehlo("client.test")
            for i in range(self.ROUNDS):
                with open(aliases, "a") as f:
                    f.write("alias%d@example.test demo@example.test\n" % i)
                self.inst.postern("map", aliases)
                code, msg = self.rcpt(s, "alias%d@example.test" % i)
                self.assertEqual(code, 250, "round %d: %r" % (i, msg))


if __name__ == "__main__":
    main()
