"""postern user / domain / map: editing the map sources and recompiling
them, on a dev instance, through the real command line."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Instance, main  # noqa: E402


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


if __name__ == "__main__":
    main()
