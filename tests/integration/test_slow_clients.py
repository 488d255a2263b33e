"""Slow and idle clients cannot starve the bzr:// carrier
(docs/request-lifecycle.md#slow-and-idle-clients).

* 200 connections trickling valid requests in (a byte each per 0.25 s)
  and 200 idle ones: a normal request on a new connection (raw protocol,
  and the `souk` CLI when SOUK is set) is answered within 2 s, while the
  tricklers hold no worker and no handler (`pool_req_live` 0,
  `tcp_conns_arriving` counts them); once their requests are whole they
  are answered too.
* Large requests (more than --arrival-bytes before they are whole) stream
  to at most --stream-workers workers: stalled ones cannot take the
  workers that serve whole requests, and when another large request waits
  for a slot the one below --min-stream-rate is cut, so a fast upload
  still lands.
* At --max-connections a new client takes the slot of the connection
  idle longest (beyond --idle-reclaim-age), oldest first, instead of being
  refused.

Every loop is bounded in count and in time.
"""
import os
import subprocess
import time
import unittest

import harness
from harness import (hello_ok, make_tempdir, read_v3_response, remove_tree, soukd_counters,
                     v3_request, wait_until)

DATA = b'slow clients cannot starve the carrier\n' * 10
BOUND = 2.0          # seconds a normal request may take while the server is under attack
TRICKLERS = 200
IDLE = 200


def setUpModule():
    harness.require_server('soukd')


def timed_get(server, path='/data.txt'):
    """A fresh connection, one v3 get; returns (seconds, response)."""
    t0 = time.monotonic()
    with server.connect(timeout=10) as c:
        c.send(v3_request([b'get', path.encode()]))
        r = read_v3_response(c, timeout=10)
    return time.monotonic() - t0, r


class SlowClientsBase(unittest.TestCase):
    limits = {}
    allow_writes = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-slow-')
        cls.root = os.path.join(cls.tmp, 'root')
        os.mkdir(cls.root)
        with open(os.path.join(cls.root, 'data.txt'), 'wb') as f:
            f.write(DATA)
        try:
            cls.server = harness.Server(cls.root, allow_writes=cls.allow_writes, limits=cls.limits,
                                        max_fds=4096).start()
        except BaseException:
            remove_tree(cls.tmp)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        remove_tree(cls.tmp)

    def open_conns(self, n):
        conns = []
        for _ in range(n):  # bounded: n
            c = self.server.connect(timeout=10)
            self.addCleanup(c.close)
            conns.append(c)
        return conns


class TestTricklersAndIdle(SlowClientsBase):
    limits = {'max-connections': 1000, 'request-timeout': 60}

    def test_normal_requests_answered_while_tricklers_and_idle_connections_wait(self):
        request = v3_request([b'get', b'/data.txt'])
        self.assertGreater(len(request), 40)
        idle = self.open_conns(IDLE)
        tricklers = self.open_conns(TRICKLERS)
        trickler = harness.Trickler(tricklers, request)
        trickler.start()
        try:
            # The tricklers are a few bytes in, and none holds a handler.
            self.assertTrue(wait_until(lambda: min(trickler.sent) >= 3 or trickler.errors, timeout=20),
                            'the tricklers did not trickle')
            c = harness.arriving_in_waiter(self.root, TRICKLERS)
            self.assertTrue(c, 'the tricklers are not all waiting in the waiter: %r' % soukd_counters(self.root))
            self.assertEqual(c['pool_req_live'], 0, 'a half-arrived request holds a handler')
            # Normal requests: 20 over the raw protocol, each within the bound.
            latencies = []
            for _ in range(20):  # bounded: 20 requests of at most 10 s each
                secs, r = timed_get(self.server)
                self.assertTrue(r.success, r)
                self.assertEqual(r.body, DATA)
                latencies.append(secs)
            self.assertLess(max(latencies), BOUND, 'latencies under attack: %r' % latencies)
            souk = os.environ.get('SOUK')
            if souk:
                t0 = time.monotonic()
                out = subprocess.run([souk, 'get', self.server.url('data.txt')], capture_output=True,
                                     timeout=30)
                secs = time.monotonic() - t0
                self.assertEqual(out.returncode, 0, out.stderr)
                self.assertEqual(out.stdout, DATA)
                self.assertLess(secs, BOUND, 'souk get took %.2fs under attack' % secs)
            self.assertFalse(trickler.errors, trickler.errors)
        finally:
            self.assertTrue(trickler.finish())
        # The half-arrived requests were kept, not dropped: finished now,
        # each is answered.
        for i, c in enumerate(tricklers):  # bounded: TRICKLERS
            c.send(trickler.rest(i))
        for c in tricklers:  # bounded: TRICKLERS, 10 s each at most
            r = read_v3_response(c, timeout=10)
            self.assertTrue(r.success, r)
            self.assertEqual(r.body, DATA)
        # The idle connections were left alone (below --max-connections).
        for c in idle[:5]:
            self.assertTrue(hello_ok(c))
        s = soukd_counters(self.root)
        self.assertEqual(s['request_timeouts'], 0)
        self.assertEqual(s['connections_refused'], 0)
        self.assertEqual(s['idle_reclaimed'], 0)


class TestLargeRequests(SlowClientsBase):
    allow_writes = True
    limits = {'workers': 4, 'stream-workers': 2, 'arrival-bytes': 4096, 'min-stream-rate': 1 << 20,
              'request-timeout': 60}

    def put_head(self, name, chunk):
        """The start of a v3 put whose body is still coming: marker, headers,
        args and a first body part (no end)."""
        full = v3_request([b'put', name.encode(), b''], chunks=[chunk])
        return full[:-1]   # without the final 'e': the message is not over

    def test_stalled_large_requests_cannot_take_every_worker(self):
        first = b'x' * 8192   # beyond --arrival-bytes: each streams to a worker
        stalled = self.open_conns(3)
        for i, c in enumerate(stalled):
            c.send(self.put_head('/stalled%d' % i, first))
        # Two take the stream slots, the third waits in the waiter.
        c = wait_until(lambda: (lambda s: s if s['tcp_stream_waits'] >= 1 else None)(soukd_counters(self.root)),
                       timeout=10, interval=0.05)
        self.assertTrue(c, soukd_counters(self.root))
        # Whole requests still have workers of their own.
        for _ in range(10):  # bounded: 10 requests of at most 10 s each
            secs, r = timed_get(self.server)
            self.assertTrue(r.success, r)
            self.assertLess(secs, BOUND)
        # The waiting one made the stalled ones (below --min-stream-rate)
        # give their workers up, and a fast upload behind them lands.
        body = os.urandom(4 << 20)
        t0 = time.monotonic()
        with self.server.connect(timeout=20) as up:
            up.send(v3_request([b'put', b'/fast', b''], chunks=[body[i:i + 65536]
                                                               for i in range(0, len(body), 65536)]))
            r = read_v3_response(up, timeout=20)
        self.assertTrue(r.success, r)
        self.assertLess(time.monotonic() - t0, 10)
        with open(os.path.join(self.root, 'fast'), 'rb') as f:
            self.assertEqual(f.read(), body)
        s = soukd_counters(self.root)
        self.assertGreaterEqual(s['tcp_slow_streams_cut'], 2, s)
        self.assertGreaterEqual(s['tcp_stream_handovers'], 3, s)
        for i in range(3):   # nothing of a cut upload is applied
            self.assertFalse(os.path.exists(os.path.join(self.root, 'stalled%d' % i)))


class TestIdleReclaim(SlowClientsBase):
    CAP = 60
    AGE = 1.0
    limits = {'max-connections': CAP, 'idle-reclaim-age': AGE}

    def setUp(self):
        # The start-up probe and the previous case's connections are gone.
        ok = harness.wait_probe_gone(self.root, timeout=10)
        self.assertTrue(ok, soukd_counters(self.root))

    def test_idle_connections_closed_oldest_first_for_new_clients(self):
        base = soukd_counters(self.root)
        old = self.open_conns(self.CAP)
        ok = wait_until(lambda: soukd_counters(self.root)['tcp_conns_parked'] >= self.CAP, timeout=20, interval=0.05)
        self.assertTrue(ok, soukd_counters(self.root))
        time.sleep(self.AGE + 0.3)   # all idle beyond --idle-reclaim-age
        NEW = 15
        new = []
        for _ in range(NEW):  # bounded: NEW connections of at most 10 s each
            c = self.server.connect(timeout=10)
            self.addCleanup(c.close)
            t0 = time.monotonic()
            self.assertTrue(hello_ok(c), 'a new client was not served at --max-connections')
            self.assertLess(time.monotonic() - t0, BOUND)
            new.append(c)
        # The NEW oldest were closed; the rest are still open and serve.
        for i, c in enumerate(old[:NEW]):  # bounded: NEW
            self.assertTrue(c.wait_closed(timeout=5), 'idle connection %d (of the oldest) still open' % i)
        for i, c in enumerate(old[NEW:]):  # bounded: CAP - NEW
            self.assertTrue(c.quiet_for(0.01), 'idle connection %d was closed out of order' % (NEW + i))
        self.assertTrue(hello_ok(old[-1]))
        s = soukd_counters(self.root)
        self.assertEqual(s['idle_reclaimed'] - base['idle_reclaimed'], NEW)
        self.assertEqual(s['connections_refused'] - base['connections_refused'], 0)

    def test_recently_active_connections_are_not_reclaimed(self):
        # Everything open is younger than --idle-reclaim-age: the newcomer
        # is refused, as before.
        base = soukd_counters(self.root)
        conns = self.open_conns(self.CAP)
        for c in conns:  # bounded: CAP
            self.assertTrue(hello_ok(c))
        extra = self.server.connect(timeout=10)
        self.addCleanup(extra.close)
        self.assertTrue(extra.wait_closed(timeout=5), 'a connection over the cap was kept')
        s = soukd_counters(self.root)
        self.assertGreaterEqual(s['connections_refused'] - base['connections_refused'], 1)
        self.assertEqual(s['idle_reclaimed'], base['idle_reclaimed'])


if __name__ == '__main__':
    unittest.main()
