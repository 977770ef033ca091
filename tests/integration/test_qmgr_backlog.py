"""qmgr(8)'s memory for a large backlog (issue 5: 100,000 queued messages
in at most about 100 MB).  A dev instance gets N queue files committed
into spool/incoming/new at once (written in lib/mail/qfile.h's format while
qmgr is stopped, then renamed in), each for a recipient in a remote
domain: with no relay agent they all stay queued and deferred.  Once qmgr
has picked up and scheduled every one, its VmHWM (peak resident memory)
minus its resident memory before, divided by N, is the cost of one queued
message.  This test runs 20,000 messages and asserts at most 1 KB each;
tests/bench/qmgr_backlog.py runs the full 100,000 and prints the figures.
"""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_qmgr import Ctl  # noqa: E402

CONFIG = """
restart_delay_max = 1s
"""
MESSAGES = 20000
BYTES_PER_MESSAGE_MAX = 1024
DOMAINS = 1000          # recipients spread over this many remote domains


def proc_status(pid):
    """VmRSS and VmHWM of pid, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
    return out


def queue_file(qid, arrival, rcpt, body):
    """One queue file (lib/mail/qfile.h): envelope, blank line, message."""
    return ("POSTERN-QUEUE 1\nid %s\narrival %.6f\nsender sender@example.test\n"
            "body 7BIT\nsmtputf8 0\nret NONE\nclient 127.0.0.1\nproto ESMTP\n"
            "rcpt %s 0 -\n\n" % (qid, arrival, rcpt)).encode() + body


def fill_incoming(spool, n):
    """Commit n queue files into incoming/new: written into incoming/tmp,
    then renamed in (as smtpd does, without its fsyncs)."""
    tmp = os.path.join(spool, "incoming", "tmp")
    new = os.path.join(spool, "incoming", "new")
    body = b"Subject: backlog\n\n" + b"x" * 3000 + b"\n"
    now = time.time()
    for i in range(n):
        qid = "B%07dbacklog" % i
        with open(os.path.join(tmp, qid), "wb") as f:
            f.write(queue_file(qid, now, "user%d@remote%d.example" % (i, i % DOMAINS), body))
        os.rename(os.path.join(tmp, qid), os.path.join(new, qid))


def measure(n, say=None):
    """Run the backlog of n messages; a dict of figures."""
    inst = harness.Instance(extra_config=CONFIG)
    try:
        inst.start()
        spool = os.path.join(inst.dir, "spool")
        queue = os.path.join(spool, "queue")
        qmgr = inst.service_pids("qmgr")[0]
        time.sleep(0.5)
        with open("/proc/%d/maps" % qmgr) as f:
            sanitized = "libasan" in f.read()
        before = proc_status(qmgr)
        t0 = time.monotonic()
        os.kill(qmgr, signal.SIGSTOP)
        try:
            fill_incoming(spool, n)
        finally:
            os.kill(qmgr, signal.SIGCONT)
        t1 = time.monotonic()
        if say:
            say("wrote %d queue files in %.1f s" % (n, t1 - t0))
        new = os.path.join(spool, "incoming", "new")
        harness.wait_until(lambda: not os.listdir(new) and len(os.listdir(queue)) >= n,
                           timeout=60 + n / 500, interval=0.5, what="pickup of %d" % n)
        t2 = time.monotonic()
        # Scheduled: the newest message is deferred, waiting for the relay.
        ctl = Ctl(os.path.join(inst.dir, "run", "qmgr.ctl"))
        try:
            def scheduled():
                total, msgs = ctl.list_page(n - 1, 1)
                return total == n and msgs and \
                    "relay agent not available" in msgs[0]["rcpts"][0]["error"]
            harness.wait_until(scheduled, timeout=60, interval=0.5, what="scheduling")
        finally:
            ctl.close()
        t3 = time.monotonic()
        after = proc_status(qmgr)
        return {
            "messages": n,
            "rss_before": before["VmRSS"],
            "rss_after": after["VmRSS"],
            "hwm": after["VmHWM"],
            "bytes_per_message": (after["VmHWM"] - before["VmRSS"]) / n,
            "pickup_s": t2 - t1,
            "scheduled_s": t3 - t1,
            "state_files": sum(1 for f in os.listdir(queue) if f.endswith(".state")),
            "sanitized": sanitized,
        }
    finally:
        inst.close()


class QmgrBacklog(unittest.TestCase):
    def test_memory_per_message(self):
        r = measure(MESSAGES)
        print("\nqmgr backlog: %(messages)d messages, RSS %(rss_before)d -> %(rss_after)d "
              "bytes (peak %(hwm)d), %(bytes_per_message).0f bytes/message, picked up in "
              "%(pickup_s).1f s" % r)
        # Waiting for an agent writes no state file (qmgr(8)).
        self.assertEqual(r["state_files"], 0)
        if r["sanitized"]:
            self.skipTest("qmgr is built with AddressSanitizer: memory is not comparable")
        self.assertLessEqual(r["bytes_per_message"], BYTES_PER_MESSAGE_MAX)


if __name__ == "__main__":
    harness.main()
