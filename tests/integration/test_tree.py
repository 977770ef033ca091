"""The source tree's own promises: every program the tests, benchmarks and
scripts call comes from a package in tools/packages (so a fresh machine
that ran ./quickstart has it), each line's programs really come from its
package, and an in-tree build leaves no untracked binary in `git status`."""

import os
import re
import subprocess
import unittest

import harness

SRCDIR = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "..", ".."))
PACKAGES = os.path.join(SRCDIR, "tools", "packages")
# The sets ./quickstart installs: their packages must be on this machine.
INSTALLED_SETS = ("build", "test")

# Programs of Debian's essential and required packages (on every Debian
# machine), and postern's own, which scripts may call without a line in
# tools/packages.
BASE = {
    "sh", "bash", "env", "rm", "cp", "mv", "mkdir", "chmod", "chown", "cat",
    "kill", "true", "false", "id", "nproc", "awk", "sed", "grep", "sort",
    "head", "tail", "tee", "find", "dirname", "basename", "mktemp", "sleep",
    "dpkg-query", "dpkg", "apt-get", "debconf-set-selections", "invoke-rc.d",
    "useradd", "groupadd", "getent", "nologin",
    "postern", "sendmail", "mailq", "master", "smtpd", "qmgr", "local",
    "auth", "pop3d", "testdaemon", "dsngen",
}

# Where programs are called from: the scripts, tests and benchmarks.
SCAN = ["quickstart", ".ci/run", "tools/install-packages", "tests/summary.sh"]
SCAN_DIRS = ["tests/integration", "tests/bench", "tests/fuzz"]

PY_CALLS = [
    # subprocess.run(["prog", ...]), Popen, check_output, call ...
    re.compile(r'subprocess\.\w+\(\s*\[\s*"([A-Za-z][\w.+-]*)"'),
    # a command list assigned first: cmd = ["prog", ...] / nobody = [...]
    re.compile(r'^\s*(?:cmd|argv|nobody|command)\s*=\s*\[\s*"([A-Za-z][\w.+-]*)"', re.M),
    re.compile(r'shutil\.which\("([^"]+)"\)'),
    re.compile(r'"/(?:usr/)?s?bin/([A-Za-z][\w.+-]*)"'),
]
SH_CALLS = [
    re.compile(r'command -v ([A-Za-z][\w.+-]*)'),
    re.compile(r'^\s*([a-z][\w.+-]*)\s', re.M),
]


def package_list():
    """[(package, set, [programs])] from tools/packages."""
    out = []
    with open(PACKAGES) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            words = line.split()
            out.append((words[0], words[1], words[2:]))
    return out


def dpkg_installed(pkg):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True, timeout=60)
    return p.returncode == 0 and "ok installed" in p.stdout


def dpkg_programs(pkg):
    """Names of the programs (in a bin or sbin directory) that pkg and the
    packages it directly depends on ship."""
    names = set()
    p = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", pkg],
                       capture_output=True, text=True, timeout=60)
    deps = [d.strip().split(" ")[0].split(":")[0]
            for d in re.split(r"[,|]", p.stdout) if d.strip()]
    for name in [pkg] + deps:
        q = subprocess.run(["dpkg", "-L", name], capture_output=True, text=True,
                           timeout=60)
        for path in q.stdout.split("\n"):
            if re.search(r"/s?bin/[^/]+$", path):
                names.add(os.path.basename(path))
    return names


def called_programs():
    """{program: [file, ...]} of the programs the scripts and tests call."""
    files = [os.path.join(SRCDIR, f) for f in SCAN
             if os.path.exists(os.path.join(SRCDIR, f))]   # a tarball has no .ci
    for d in SCAN_DIRS:
        for name in sorted(os.listdir(os.path.join(SRCDIR, d))):
            if name.endswith((".py", ".sh")) and name != "test_tree.py":
                files.append(os.path.join(SRCDIR, d, name))
    found = {}
    for path in files:
        with open(path) as f:
            text = f.read()
        shell = not path.endswith(".py")
        for pattern in (SH_CALLS if shell else PY_CALLS):
            for m in pattern.finditer(text):
                found.setdefault(m.group(1), set()).add(os.path.relpath(path, SRCDIR))
    return found


# Words at the start of a shell line that are syntax or builtins, not
# programs.
SH_WORDS = {
    "if", "then", "else", "elif", "fi", "for", "do", "done", "while", "case",
    "esac", "in", "exit", "echo", "printf", "set", "shift", "export", "cd",
    "return", "local", "read", "exec", "test", "wait", "trap", "eval", "unset",
    "status", "missing", "only_list", "wanted", "pkgs", "list", "made_policy",
    "rc", "here", "sudo", "nobdb", "mode", "log", "result", "line", "iline",
    "checks", "cpass", "pct", "n", "f", "e", "ipass", "ifail", "iskip",
    "crashed", "cfail", "need_install", "run", "break", "continue", "command",
}


class Tree(unittest.TestCase):

    def test_package_lines_match_their_packages(self):
        problems = []
        for pkg, pset, programs in package_list():
            if not dpkg_installed(pkg):
                if pset in INSTALLED_SETS:
                    problems.append("%s (set %s) is not installed: ./quickstart "
                                    "installs that set" % (pkg, pset))
                continue
            shipped = dpkg_programs(pkg)
            for prog in programs:
                if prog not in shipped:
                    problems.append("%s does not ship %s (nor does a package it "
                                    "depends on)" % (pkg, prog))
        self.assertEqual(problems, [])

    def test_every_called_program_is_on_the_list(self):
        listed = set()
        for _pkg, _set, programs in package_list():
            listed.update(programs)
        missing = {}
        for prog, where in called_programs().items():
            if prog in listed or prog in BASE or prog in SH_WORDS:
                continue
            missing[prog] = sorted(where)
        self.assertEqual(missing, {}, "programs called by tests or scripts that no "
                         "line of tools/packages provides")

    def test_the_check_finds_a_missing_program(self):
        # The scan itself: a call like the one that once went unnoticed
        # (mkpasswd, from Debian's whois) is found.
        sample = 'subprocess.run(["mkpasswd", "-m", "yescrypt"], input=pw)\n' \
                 'nobody = ["setpriv", "--reuid=65534"]\n'
        got = {m.group(1) for p in PY_CALLS for m in p.finditer(sample)}
        self.assertEqual(got, {"mkpasswd", "setpriv"})

    def test_build_leaves_no_untracked_binary(self):
        if not os.path.isdir(os.path.join(SRCDIR, ".git")) and \
                not os.path.isfile(os.path.join(SRCDIR, ".git")):
            self.skipTest("not a git checkout")
        if os.path.realpath(harness.BUILDDIR) != os.path.realpath(SRCDIR):
            self.skipTest("an out-of-tree build")
        p = subprocess.run(["git", "-C", SRCDIR, "status", "--porcelain",
                            "--untracked-files=all"], capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        binaries = []
        for line in p.stdout.split("\n"):
            if not line.startswith("?? "):
                continue
            path = os.path.join(SRCDIR, line[3:])
            try:
                with open(path, "rb") as f:
                    if f.read(4) == b"\x7fELF":
                        binaries.append(line[3:])
            except OSError:
                pass
        self.assertEqual(binaries, [], "built programs that .gitignore misses")


if __name__ == "__main__":
    harness.main()
