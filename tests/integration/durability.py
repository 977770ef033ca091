"""The durability-order checker: reads an `strace -f -yy` trace of a
postern instance and proves, message by message, that every fsync the
design needs (docs/design.md, "Durability order") finished before the
message was acknowledged.

Three acknowledgements are checked:

- smtpd's "250 ... queued as ID" written to the client's socket: the
  queue file spool/incoming/new/ID must have been named with its data
  already fsync'd (fsync done before the link or rename began), and the
  name itself must be durable: an fsync of incoming/new (or of the file,
  under its new name, where the directory cannot be read) that began
  after the name was made and finished before the 250 was written;
- sendmail's exit, for each name it made in spool/maildrop/new: the same
  two conditions, before its exit_group;
- qmgr's unlink of spool/queue/ID, for each Maildir file delivered from
  message ID: the file was fsync'd before it was moved into new/, and new/
  fsync'd after the move, both finished before the unlink began.

Order is the trace's own line order.  strace records a process's syscall
exit before letting it run on, so whatever that process does next (write
a reply, tell qmgr the delivery is done) comes later in the trace: line
order is a causal order across processes and threads.

Run as a program: durability.py TRACE SPOOL_DIR LOG MAILDIR... prints
every violation and a count of what was checked (Maildir files are
matched to queue ids through local's event=delivery lines in LOG).
"""

import os
import re
import sys

# The syscalls the trace needs: strace -e trace=<TRACE_SET>
TRACE_SET = ("fsync,fdatasync,openat,close,linkat,renameat,renameat2,"
             "unlinkat,write,writev,sendto,sendmsg,clone,clone3,exit_group")


def strace_command(output):
    """The strace prefix for a traced command writing to output."""
    return ["strace", "-f", "-qq", "-yy", "-s", "256", "-o", output,
            "-e", "trace=" + TRACE_SET]


LINE = re.compile(r'^(\d+)\s+(.*)$')
CALL = re.compile(r'^([a-z0-9_]+)\((.*)$')
RESUMED = re.compile(r'^<\.\.\. ([a-z0-9_]+) resumed>(.*)$')
UNFINISHED = " <unfinished ...>"
RET = re.compile(r'\)\s+=\s+(-?\d+|\?)([^"]*)$')
QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
FIRST_FD = re.compile(r'^(\d+)<([^<>]*)>(\(deleted\))?')
LINKAT = re.compile(r'^\S+?, "/proc/self/fd/(\d+)", (\d+)<([^<>]*)>, "([^"]*)"')
RENAMEAT = re.compile(r'^(\d+)<([^<>]*)>, "([^"]*)", (\d+)<([^<>]*)>, "([^"]*)"')
UNLINKAT = re.compile(r'^(\d+)<([^<>]*)>, "([^"]*)"')
QUEUED = re.compile(r'250[ -]2\.0\.0 Ok: queued as ([0-9A-Za-z]+)')
SOCKET = re.compile(r'^(\d+)<(?:TCP|TCPv6|UNIX)')


class Call:
    """One syscall: where it began and ended in the trace, by whom."""

    def __init__(self, start, tid, name, args):
        self.start = start
        self.end = start
        self.tid = tid
        self.tgid = tid
        self.name = name
        self.args = args
        self.ret = None

    def ok(self):
        return self.ret is not None and self.ret != "?" and int(self.ret) >= 0


def parse(lines):
    """The completed syscalls of a trace, in order of their first line."""
    calls, pending = [], {}
    for i, raw in enumerate(lines):
        m = LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        tid, rest = int(m.group(1)), m.group(2)
        r = RESUMED.match(rest)
        if r:
            c = pending.pop(tid, None)
            if c is None or c.name != r.group(1):
                continue
            c.args += r.group(2)
            c.end = i
        else:
            m = CALL.match(rest)
            if not m:
                continue          # signals, exits
            c = Call(i, tid, m.group(1), m.group(2))
            calls.append(c)
            if c.args.endswith(UNFINISHED):
                c.args = c.args[:-len(UNFINISHED)]
                pending[tid] = c
                continue
        ret = RET.search(c.args)
        if ret:
            c.ret = ret.group(1)
            c.ret_text = ret.group(2)
            c.args = c.args[:ret.start()]
    return calls


class Trace:
    """What the checker needs from a trace: per process, every fsync by
    file (a descriptor's lifetime, and the path it showed), every name
    made, the acknowledgements."""

    def __init__(self, lines):
        self.calls = parse(lines)
        self.tgid = {}
        self.fsyncs = []        # (start, end, tgid, fd key, path)
        self.names = {}         # new path -> (start, end, tgid, file)
        self.acks = []          # (start, queue id)
        self.exits = {}         # tgid -> start of its exit_group
        self.unlinks = {}       # spool path -> start
        gen = {}                # (tgid, fd) -> lifetime number
        # Threads first: a new thread's calls can precede the line where
        # its clone returns.
        for c in self.calls:
            if c.name in ("clone", "clone3") and c.ok():
                child = int(c.ret)
                self.tgid[child] = (self.tgid.get(c.tid, c.tid)
                                    if "CLONE_THREAD" in c.args else child)
        for c in self.calls:
            c.tgid = self.tgid.get(c.tid, c.tid)
            if c.name == "exit_group":
                # It never returns.
                self.exits.setdefault(c.tgid, c.start)
            if not c.ok():
                continue
            bare = QUOTED.sub('""', c.args)
            if c.name in ("fsync", "fdatasync"):
                m = FIRST_FD.match(c.args)
                if m:
                    fd = int(m.group(1))
                    key = (c.tgid, fd, gen.get((c.tgid, fd), 0))
                    path = m.group(2) + ("(deleted)" if m.group(3) else "")
                    self.fsyncs.append((c.start, c.end, c.tgid, key, path))
            elif c.name == "close":
                m = FIRST_FD.match(c.args)
                if m:
                    k = (c.tgid, int(m.group(1)))
                    gen[k] = gen.get(k, 0) + 1
            elif c.name == "linkat":
                m = LINKAT.match(c.args)
                if m:
                    fd = int(m.group(1))
                    key = ("fd", (c.tgid, fd, gen.get((c.tgid, fd), 0)))
                    new = os.path.join(m.group(3), m.group(4))
                    self.names[new] = (c.start, c.end, c.tgid, key)
            elif c.name in ("renameat", "renameat2"):
                m = RENAMEAT.match(c.args)
                if m:
                    old = os.path.join(m.group(2), m.group(3))
                    new = os.path.join(m.group(5), m.group(6))
                    self.names[new] = (c.start, c.end, c.tgid, ("path", old))
            elif c.name == "unlinkat":
                m = UNLINKAT.match(c.args)
                if m:
                    self.unlinks[os.path.join(m.group(2), m.group(3))] = c.start
            elif c.name in ("write", "writev", "sendto", "sendmsg"):
                if SOCKET.match(bare):
                    for qid in QUEUED.findall(c.args):
                        self.acks.append((c.start, qid))

    # --- the two conditions -------------------------------------------

    def data_synced(self, name, before):
        """Whether the file now called name had its data fsync'd, finished
        before line `before`."""
        kind, what = name[3]
        for start, end, tgid, key, path in self.fsyncs:
            if end >= before:
                continue
            if (kind == "fd" and key == what) or (kind == "path" and path == what):
                return True
        return False

    def name_synced(self, new, name, before):
        """Whether new's name was made durable: an fsync of its directory
        (or of the file under that name) that began after the name was
        made and finished before line `before`."""
        made = name[1]
        directory = os.path.dirname(new)
        for start, end, tgid, key, path in self.fsyncs:
            if end >= before:
                continue
            if start > made and path in (directory, new):
                return True
        return False

    def check_named(self, new, ack, what, problems):
        name = self.names.get(new)
        if name is None or name[1] >= ack:
            problems.append("%s: %s acknowledged, but never named before it"
                            % (what, new))
            return
        if not self.data_synced(name, name[0]):
            problems.append("%s: %s named before its data was fsync'd"
                            % (what, new))
        if not self.name_synced(new, name, ack):
            problems.append("%s: %s acknowledged before its name was fsync'd "
                            "(no fsync of %s after the name was made)"
                            % (what, new, os.path.dirname(new)))


def check(lines, spool, maildirs=None):
    """Check a trace.  spool: the instance's spool_dir; maildirs: {Maildir
    path: {file name in new/: queue id}} for the local deliveries to check
    (every removed queue file must have one).  Returns (problems,
    counts)."""
    t = Trace(lines)
    spool = os.path.realpath(spool)
    maildirs = {os.path.realpath(m): f for m, f in (maildirs or {}).items()}
    problems = []
    counts = {"smtpd": 0, "sendmail": 0, "local": 0, "queue_removed": 0}
    incoming = os.path.join(spool, "incoming", "new")
    for ack, qid in t.acks:
        counts["smtpd"] += 1
        t.check_named(os.path.join(incoming, qid), ack, "smtpd", problems)
    maildrop = os.path.join(spool, "maildrop", "new") + "/"
    for new, name in sorted(t.names.items()):
        if not new.startswith(maildrop) or os.path.basename(new).startswith("."):
            continue
        counts["sendmail"] += 1
        exit_at = t.exits.get(name[2])
        if exit_at is None:
            problems.append("sendmail: %s: its writer never exited" % new)
            continue
        t.check_named(new, exit_at, "sendmail", problems)
    by_qid = {}
    for md, files in maildirs.items():
        for fname, qid in files.items():
            by_qid.setdefault(qid, []).append(os.path.join(md, "new", fname))
    queue = os.path.join(spool, "queue") + "/"
    for path, at in sorted(t.unlinks.items()):
        if not path.startswith(queue):
            continue
        qid = path[len(queue):]
        if "." in qid:
            continue                 # a state file, not the message
        counts["queue_removed"] += 1
        delivered = by_qid.get(qid, [])
        if not delivered:
            problems.append("local: queue file %s removed with no delivered "
                            "Maildir file on record" % qid)
        for new in delivered:
            counts["local"] += 1
            t.check_named(new, at, "local (queue file %s)" % qid, problems)
    return problems, counts


DELIVERY = re.compile(r'event=delivery queue_id=(\S+) .*? file=(\S+)')


def maildir_ids(maildir, log):
    """{name in maildir's new/: queue id}, from local's delivery lines in
    the instance's log text."""
    qid = {m.group(2): m.group(1) for m in DELIVERY.finditer(log)}
    return {name: qid.get(name, "?")
            for name in os.listdir(os.path.join(maildir, "new"))}


def main(argv):
    if len(argv) < 3:
        print("usage: durability.py TRACE SPOOL_DIR LOG [MAILDIR...]",
              file=sys.stderr)
        return 2
    with open(argv[0]) as f:
        lines = f.readlines()
    with open(argv[2]) as f:
        log = f.read()
    problems, counts = check(lines, argv[1],
                             {m: maildir_ids(m, log) for m in argv[3:]})
    for p in problems:
        print(p)
    print(" ".join("%s=%d" % kv for kv in sorted(counts.items())))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
