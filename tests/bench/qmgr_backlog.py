#!/usr/bin/env python3
"""qmgr's memory for a queued backlog (issue 5: 100,000 messages in at
most about 100 MB).  A benchmark, not a test: it prints the figures and a
PASS/MISS word, and exits 0 unless it could not run.

It commits N queue files (default 100,000) for recipients in remote
domains into a dev instance's spool/incoming/new while qmgr is stopped,
lets qmgr pick them up (they stay deferred: there is no relay agent),
and reads qmgr's VmRSS and VmHWM from /proc.  The same measurement, for
20,000 messages with a 1 KB/message bound, is the integration test
tests/integration/test_qmgr_backlog.py.

    POSTERN_BUILDDIR=/path/to/build python3 tests/bench/qmgr_backlog.py [-n N]

It needs about N x 4 KB of disk in /tmp and a minute or two.
"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import test_qmgr_backlog  # noqa: E402

TARGET_BYTES = 100 * 1000 * 1000      # for 100,000 messages


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-n", "--messages", type=int, default=100000)
    args = ap.parse_args()
    try:
        r = test_qmgr_backlog.measure(args.messages, say=print)
    except Exception as e:      # noqa: BLE001 -- a benchmark reports and exits
        print("qmgr_backlog: could not run: %s" % e)
        return 1
    growth = r["hwm"] - r["rss_before"]
    budget = TARGET_BYTES * args.messages / 100000
    print("messages            %d" % r["messages"])
    print("qmgr RSS before     %.1f MB" % (r["rss_before"] / 1e6))
    print("qmgr RSS after      %.1f MB" % (r["rss_after"] / 1e6))
    print("qmgr peak (VmHWM)   %.1f MB" % (r["hwm"] / 1e6))
    print("per message         %.0f bytes" % r["bytes_per_message"])
    print("pickup              %.1f s (%.0f msgs/s)" % (r["pickup_s"],
                                                     r["messages"] / max(r["pickup_s"], 1e-3)))
    print("all scheduled after %.1f s" % r["scheduled_s"])
    print("state files written %d" % r["state_files"])
    print("%s: peak growth %.1f MB for %d messages (target <= %.0f MB)" % (
        "PASS" if growth <= budget else "MISS", growth / 1e6, r["messages"], budget / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
