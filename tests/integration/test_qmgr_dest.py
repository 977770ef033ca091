"""Integration tests for qmgr(8)'s per-destination concurrency and
fairness, against a fake relay agent: a Unix socket at run_dir/relay
that speaks lib/core/agentproto.h exactly as qmgr expects (the hello frame
naming "postern-agent/1", AGENT_DELIVER with the queue file passed by
SCM_RIGHTS, one AGENT_RESULT per request).  It holds each request open
for a while and records how many requests were in flight per domain.

- qmgr connects to the relay socket once it appears (mail queued before
  is deferred, then delivered on the retry);
- 200 messages to big.example never have more than
  qmgr_domain_concurrency requests in flight to that domain, nor more
  than qmgr_destination_concurrency to the agent, and every request
  carries recipients of one domain only;
- 5 messages to small.example sent after the 200 are answered while
  big.example is still in progress (it does not starve them);
- a message whose destinations are all full waits on ONE of them (the
  first); when another of its destinations gets room, it goes there
  within the once-a-second sweep, not after the first one drains
  (a second instance: qmgr_domain_concurrency 2, the agent's limit 6)."""

import os
import signal
import smtplib
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import frame, get_str, pstr, u32  # noqa: E402

DOMAIN_LIMIT = 3
AGENT_LIMIT = 5
CONFIG = """
queue_retry_min = 1s
queue_retry_max = 1s
restart_delay_max = 1s
qmgr_domain_concurrency = %d
qmgr_destination_concurrency = %d
""" % (DOMAIN_LIMIT, AGENT_LIMIT)

IPC_HELLO = 1
AGENT_DELIVER, AGENT_RESULT = 16, 17
AGENT_OK = 0
HOLD_S = {"big.example": 0.12,   # how long a request is held open
          "crowd.example": 0.3, "slow.example": 1.5}
BIG, SMALL = 200, 5


class FakeRelay:
    """The relay agent's side of lib/core/agentproto.h, with bookkeeping."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.inflight = {}          # domain -> requests in flight
        self.max_inflight = {}      # domain -> the most seen at once
        self.total_inflight = 0
        self.max_total = 0
        self.answered = {}          # message id (queue id) -> (time, domain)
        self.rcpts = []             # (domain, address) per recipient answered
        self.started = []           # (time, domain, queue id) per request
        self.mixed = []             # requests with more than one domain
        self.errors = []
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        os.chmod(path, 0o666)       # as master's; qmgr may not run as root
        self.srv.listen(8)
        self.srv.settimeout(0.2)
        self.stop = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def close(self):
        self.stop = True
        for t in self.threads:
            t.join(timeout=10)
        self.srv.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def accept_loop(self):
        while not self.stop:
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self.serve, args=(c,), daemon=True)
            self.threads.append(t)
            t.start()

    def serve(self, c):
        """One link from qmgr: hello both ways, then requests."""
        send_lock = threading.Lock()
        buf, fds = b"", []
        c.settimeout(0.2)
        c.sendall(frame(IPC_HELLO, 0, pstr("postern-agent/1")))
        hello_seen = False
        while not self.stop:
            try:
                data, new_fds, _, _ = socket.recv_fds(c, 65536, 8)
            except socket.timeout:
                continue
            except OSError as e:
                self.errors.append("recv: %r" % e)
                break
            fds.extend(new_fds)
            if not data:
                break
            buf += data
            while len(buf) >= 12:
                ftype, n, ident = struct.unpack_from("=III", buf)
                if len(buf) < 12 + n:
                    break
                payload, buf = buf[12:12 + n], buf[12 + n:]
                if not hello_seen:
                    if ftype != IPC_HELLO or get_str(payload, 0)[0] != "postern-agent/1":
                        self.errors.append("bad hello %r" % payload)
                        return
                    hello_seen = True
                    continue
                if ftype != AGENT_DELIVER or not fds:
                    self.errors.append("unexpected frame %d (fds %d)" % (ftype, len(fds)))
                    return
                self.request(c, send_lock, ident, payload, fds.pop(0))
        c.close()

    def request(self, c, send_lock, ident, p, fd):
        qid, off = get_str(p, 0)
        (body,), off = struct.unpack_from("=Q", p, off), off + 8
        sender, off = get_str(p, off)
        (n,), off = struct.unpack_from("=I", p, off), off + 4
        rcpts = []
        for _ in range(n):
            (idx,), off = struct.unpack_from("=I", p, off), off + 4
            addr, off = get_str(p, off)
            rcpts.append((idx, addr))
        if off != len(p):
            self.errors.append("leftover bytes in a request")
        # The fd is the queue file: the message starts at body_offset.
        head = os.pread(fd, 64, body)
        os.close(fd)
        if not head:
            self.errors.append("empty message for %s" % qid)
        domains = {a.rsplit("@", 1)[1].lower() for _, a in rcpts}
        if len(domains) != 1:
            self.mixed.append(sorted(domains))
        dom = sorted(domains)[0]
        with self.lock:
            self.inflight[dom] = self.inflight.get(dom, 0) + 1
            self.max_inflight[dom] = max(self.max_inflight.get(dom, 0), self.inflight[dom])
            self.total_inflight += 1
            self.max_total = max(self.max_total, self.total_inflight)
            self.started.append((time.monotonic(), dom, qid))

        def answer():
            with self.lock:
                self.inflight[dom] -= 1
                self.total_inflight -= 1
                self.answered[qid] = (time.monotonic(), dom)
                self.rcpts.extend((dom, a) for _, a in rcpts)
            out = u32(len(rcpts))
            for idx, _ in rcpts:
                out += u32(idx) + u32(AGENT_OK) + pstr("2.0.0") + pstr("relayed (fake)") + u32(0)
            with send_lock:
                try:
                    c.sendall(frame(AGENT_RESULT, ident, out))
                except OSError as e:
                    self.errors.append("send: %r" % e)
        threading.Timer(HOLD_S.get(dom, 0.01), answer).start()


class QmgrDestinations(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.inst = harness.Instance(extra_config=CONFIG)
        try:
            cls.inst.start()
        except BaseException:
            cls.inst.cleanup()
            raise
        cls.port = cls.inst.base + 25
        cls.queue = os.path.join(cls.inst.dir, "spool", "queue")
        cls.relay_path = os.path.join(cls.inst.dir, "run", "relay")
        cls.relay = None

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.relay is not None:
                cls.relay.close()
            cls.inst.stop()
        finally:
            cls.inst.cleanup()

    def send_many(self, rcpt, n, tag):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        try:
            for i in range(n):
                s.sendmail("sender@example.test", [rcpt],
                           ("Subject: %s %d\r\nMessage-ID: <%s%d@t>\r\n\r\nx\r\n"
                            % (tag, i, tag, i)).encode())
        finally:
            s.quit()

    def queue_ids(self):
        return {n for n in os.listdir(self.queue) if "." not in n}

    def test_1_connects_when_the_socket_appears(self):
        self.assertFalse(os.path.exists(self.relay_path))
        self.send_many("far@late.example", 1, "late")

        def deferred():
            return "relay agent not available" in self.inst.postern("queue").stdout
        harness.wait_until(deferred, timeout=10, what="the deferral")
        type(self).relay = FakeRelay(self.relay_path)
        # The retry (queue_retry_max is 1s) connects and delivers.
        harness.wait_until(lambda: self.relay.answered, timeout=15,
                           what="a request on the new socket")
        harness.wait_until(lambda: not self.queue_ids(), timeout=10, what="an empty queue")
        self.assertEqual([d for d, _ in self.relay.rcpts], ["late.example"])
        self.assertEqual(self.relay.errors, [])

    def test_2_domain_limit_and_fairness(self):
        relay = self.relay
        self.assertIsNotNone(relay, "test_1 starts the fake agent")
        t0 = time.monotonic()
        # The 200 are all queued before qmgr sees any, so the limit is
        # reached however fast this machine commits mail.
        qmgr = self.inst.service_pids("qmgr")[0]
        os.kill(qmgr, signal.SIGSTOP)
        try:
            self.send_many("list@big.example", BIG, "big")
        finally:
            os.kill(qmgr, signal.SIGCONT)
        # Big is in progress (10+ seconds at 3 x 0.12 s per request).
        harness.wait_until(lambda: relay.max_inflight.get("big.example", 0) > 0,
                           timeout=10, what="big.example in progress")
        t_small = time.monotonic()
        self.send_many("someone@small.example", SMALL, "small")

        def small_done():
            return sum(1 for _, d in relay.answered.values() if d == "small.example") == SMALL
        harness.wait_until(small_done, timeout=20, what="small.example answered")
        small_last = max(t for t, d in relay.answered.values() if d == "small.example")
        big_left = BIG - sum(1 for _, d in relay.answered.values() if d == "big.example")
        # Answered while big.example still had most of its mail to go.
        self.assertGreater(big_left, 0, "small.example waited for big.example")
        self.assertLess(small_last - t_small, 5.0)

        def big_done():
            return sum(1 for _, d in relay.answered.values() if d == "big.example") == BIG
        harness.wait_until(big_done, timeout=90, interval=0.2, what="big.example delivered")
        harness.wait_until(lambda: not self.queue_ids(), timeout=10, what="an empty queue")
        elapsed = time.monotonic() - t0
        self.assertEqual(relay.errors, [])
        self.assertEqual(relay.mixed, [])
        # The limits held, and were used.
        self.assertEqual(relay.max_inflight["big.example"], DOMAIN_LIMIT)
        self.assertLessEqual(relay.max_inflight["small.example"], DOMAIN_LIMIT)
        self.assertLessEqual(relay.max_total, AGENT_LIMIT)
        # One message, one recipient, one request each: 200 held requests
        # at 3 at a time take at least 200 / 3 * 0.12 s.
        self.assertGreaterEqual(elapsed, BIG / DOMAIN_LIMIT * HOLD_S["big.example"] * 0.9)
        self.assertEqual(sum(1 for d, _ in relay.rcpts if d == "big.example"), BIG)

    def test_3_one_domain_per_request(self):
        relay = self.relay
        self.assertIsNotNone(relay, "test_1 starts the fake agent")
        before = len(relay.answered)
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        try:
            s.sendmail("sender@example.test",
                       ["a@one.example", "b@two.example", "c@ONE.example", "d@three.example"],
                       b"Subject: multi\r\n\r\nx\r\n")
        finally:
            s.quit()
        def got():
            return sorted(a for d, a in relay.rcpts if d in ("one.example", "two.example",
                                                             "three.example"))
        harness.wait_until(lambda: len(got()) == 4, timeout=15, what="4 recipients")
        harness.wait_until(lambda: not self.queue_ids(), timeout=10, what="an empty queue")
        self.assertEqual(len(relay.answered), before + 1)
        self.assertEqual(relay.mixed, [])
        self.assertEqual(got(), ["a@one.example", "b@two.example", "c@ONE.example",
                               "d@three.example"])


PARK_DOMAIN_LIMIT, PARK_AGENT_LIMIT, CROWD = 2, 6, 60
PARK_CONFIG = """
queue_retry_min = 1s
queue_retry_max = 1s
restart_delay_max = 1s
qmgr_domain_concurrency = %d
qmgr_destination_concurrency = %d
""" % (PARK_DOMAIN_LIMIT, PARK_AGENT_LIMIT)


class QmgrParked(unittest.TestCase):
    """A message waits on the list of ONE full destination (its first
    blocked one); room at another of its destinations must not wait for
    that one to drain."""

    @classmethod
    def setUpClass(cls):
        cls.inst = harness.Instance(extra_config=PARK_CONFIG)
        try:
            cls.inst.start()
            cls.relay = FakeRelay(os.path.join(cls.inst.dir, "run", "relay"))
        except BaseException:
            cls.inst.cleanup()
            raise
        cls.port = cls.inst.base + 25
        cls.queue = os.path.join(cls.inst.dir, "spool", "queue")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.relay.close()
            cls.inst.stop()
        finally:
            cls.inst.cleanup()

    def sendmail(self, rcpts, n, tag):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
        try:
            for i in range(n):
                s.sendmail("sender@example.test", rcpts,
                           ("Subject: %s %d\r\n\r\nx\r\n" % (tag, i)).encode())
        finally:
            s.quit()

    def test_parked_message_goes_where_there_is_room(self):
        relay = self.relay
        qmgr = self.inst.service_pids("qmgr")[0]
        os.kill(qmgr, signal.SIGSTOP)
        try:
            self.sendmail(["list@crowd.example"], CROWD, "crowd")
            self.sendmail(["a@slow.example"], PARK_DOMAIN_LIMIT, "slow")
        finally:
            os.kill(qmgr, signal.SIGCONT)

        def full():
            with relay.lock:
                return relay.inflight.get("crowd.example", 0) == PARK_DOMAIN_LIMIT and \
                    relay.inflight.get("slow.example", 0) == PARK_DOMAIN_LIMIT
        harness.wait_until(full, timeout=10, what="both destinations full")
        # Both its destinations full (the agent is not): it waits on
        # crowd.example's list, behind most of the crowd.
        t0 = time.monotonic()
        self.sendmail(["x@crowd.example", "y@slow.example"], 1, "both")

        def slow_third():
            with relay.lock:
                st = [t for t, d, _ in relay.started if d == "slow.example"]
            return st[PARK_DOMAIN_LIMIT] if len(st) > PARK_DOMAIN_LIMIT else None
        started = harness.wait_until(slow_third, timeout=30, interval=0.05,
                                     what="its slow.example request")
        with relay.lock:
            crowd_left = CROWD + 1 - sum(1 for _, d, _ in relay.started
                                         if d == "crowd.example")
        # slow.example has room 1.5 s on; the crowd takes 9 s to drain.
        self.assertLess(started - t0, 4.5)
        self.assertGreater(crowd_left, 0, "it waited for crowd.example to drain")
        harness.wait_until(lambda: not {n for n in os.listdir(self.queue) if "." not in n},
                           timeout=30, interval=0.2, what="an empty queue")
        self.assertEqual(relay.errors, [])
        self.assertEqual(relay.mixed, [])
        self.assertLessEqual(relay.max_total, PARK_AGENT_LIMIT)


if __name__ == "__main__":
    harness.main()
