"""Slow and idle clients cannot starve the FastCGI carrier
(docs/protocol/fastcgi.md#connections-and-workers,
docs/request-lifecycle.md#slow-and-idle-clients), spoken to directly over
its unix socket, with 4 workers:

* 200 connections trickling a FastCGI GET in (a byte each per 0.25 s) and
  200 kept-alive idle ones: a normal request on a new connection is
  answered within 2 s, while the tricklers hold no worker and no handler
  (`pool_req_live` 0, `tcp_conns_arriving` counts them); once their
  requests are whole they are answered too, and the idle ones still serve.
* Uploads larger than --arrival-bytes stream to at most --stream-workers
  workers: stalled ones cannot take the workers that serve whole requests,
  and when another large upload waits for a slot the ones below
  --min-stream-rate are cut, so a fast upload still lands.
* At --max-connections a new connection takes the slot of the connection
  idle longest (beyond --idle-reclaim-age), oldest first.
* SIGTERM drains as on the other carriers (docs/configuration.md#signals):
  new connections are refused, idle ones close at once, a request still
  arriving is cut, a request in flight (slowed by --slow-read-delay)
  finishes, the socket is removed, exit 0.

Every loop is bounded in count and in time.
"""
import os
import select
import signal
import socket
import time
import unittest

import harness
import http_harness as hh
from harness import make_tempdir, remove_tree, soukd_counters, wait_until

DATA = b'slow clients cannot starve the FastCGI carrier\n' * 10
BOUND = 2.0          # seconds a normal request may take while the server is under attack
TRICKLERS = 200
IDLE = 200


def setUpModule():
    harness.require_server('soukd')


def get_request(rid=1, path='/data.txt'):
    return (hh.fcgi_begin(rid) + hh.fcgi_params(rid, {'REQUEST_METHOD': 'GET', 'REQUEST_URI': path}) +
            hh.fcgi_stdin(rid, b''))


def closed(s, timeout):
    """Whether the peer closed `s` within `timeout` seconds."""
    if not select.select([s], [], [], timeout)[0]:
        return False
    try:
        return s.recv(1) == b''
    except ConnectionResetError:
        return True


class FastcgiBase(unittest.TestCase):
    extra = []
    allow_writes = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-fcgi-slow-')
        cls.root = os.path.join(cls.tmp, 'root')
        os.mkdir(cls.root)
        with open(os.path.join(cls.root, 'data.txt'), 'wb') as f:
            f.write(DATA)
        cls.sock = os.path.join(cls.tmp, 'fcgi.sock')
        try:
            cls.soukd = hh.SoukdFastcgi(cls.root, cls.sock, allow_writes=cls.allow_writes,
                                        extra=['--fastcgi-workers=4'] + cls.extra).start()
        except BaseException:
            remove_tree(cls.tmp)
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.soukd.proc.poll() is None:
            cls.soukd.stop()
        harness.remove_stats_segment(cls.root)
        remove_tree(cls.tmp)

    def setUp(self):
        # The start-up probe and the previous case's connections are gone.
        ok = harness.wait_probe_gone(self.root, timeout=10)
        self.assertTrue(ok, soukd_counters(self.root))

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(self.sock)
        self.addCleanup(s.close)
        return s

    def timed_get(self):
        """A fresh connection, one GET; returns seconds."""
        t0 = time.monotonic()
        s = self.connect()
        s.sendall(get_request())
        out, end = hh.fcgi_response(s, 1)
        self.assertEqual(end, (0, 0))
        self.assertTrue(out.startswith(b'Status: 200') and out.endswith(DATA), out[:200])
        return time.monotonic() - t0


class TestTricklersAndIdle(FastcgiBase):
    extra = ['--max-connections=1000', '--request-timeout=60']

    def test_normal_requests_answered_while_tricklers_and_idle_connections_wait(self):
        request = get_request()
        self.assertGreater(len(request), 40)
        idle = [self.connect() for _ in range(IDLE)]
        for s in idle[:5]:   # kept alive after a request, as nginx's pool leaves them
            s.sendall(get_request())
            self.assertEqual(hh.fcgi_response(s, 1)[1], (0, 0))
        tricklers = [self.connect() for _ in range(TRICKLERS)]
        trickler = harness.Trickler(tricklers, request)
        trickler.start()
        try:
            self.assertTrue(wait_until(lambda: min(trickler.sent) >= 3 or trickler.errors, timeout=20),
                            'the tricklers did not trickle')
            c = harness.arriving_in_waiter(self.root, TRICKLERS)
            self.assertTrue(c, 'the tricklers are not all waiting in the waiter: %r' % soukd_counters(self.root))
            self.assertEqual(c['pool_req_live'], 0, 'a half-arrived request holds a handler')
            latencies = [self.timed_get() for _ in range(20)]  # bounded: 20 requests of at most 10 s each
            self.assertLess(max(latencies), BOUND, 'latencies under attack: %r' % latencies)
            self.assertFalse(trickler.errors, trickler.errors)
        finally:
            self.assertTrue(trickler.finish())
        # The half-arrived requests were kept: finished now, each is answered.
        for i, c in enumerate(tricklers):  # bounded: TRICKLERS
            c.sendall(trickler.rest(i))
        for c in tricklers:  # bounded: TRICKLERS, 10 s each at most
            out, end = hh.fcgi_response(c, 1)
            self.assertEqual(end, (0, 0))
            self.assertTrue(out.endswith(DATA))
        # The idle connections were left alone (below --max-connections).
        for s in idle[:5]:
            s.sendall(get_request(2))
            self.assertEqual(hh.fcgi_response(s, 2)[1], (0, 0))
        s = soukd_counters(self.root)
        self.assertEqual(s['request_timeouts'], 0)
        self.assertEqual(s['connections_refused'], 0)
        self.assertEqual(s['idle_reclaimed'], 0)


class TestLargeUploads(FastcgiBase):
    allow_writes = True
    extra = ['--stream-workers=2', '--arrival-bytes=4096', '--min-stream-rate=1048576', '--request-timeout=60']

    def put(self, name, size):
        """A smart `put` of `size` bytes: (its STDIN body, BEGIN and PARAMS)."""
        body = hh.V3([b'put', name.encode(), b''], body=b'p' * size)
        return body, hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': str(len(body))})

    def test_stalled_uploads_cannot_take_every_worker(self):
        stalled = [self.connect() for _ in range(3)]
        for i, s in enumerate(stalled):
            body, head = self.put('stalled%d' % i, 100000)
            s.sendall(head + hh.fcgi_record(5, 1, body[:8192]))   # beyond --arrival-bytes, then nothing
        # Two take the stream slots, the third waits in the waiter.
        c = wait_until(lambda: (lambda s: s if s['tcp_stream_waits'] >= 1 else None)(soukd_counters(self.root)),
                       timeout=10, interval=0.05)
        self.assertTrue(c, soukd_counters(self.root))
        for _ in range(10):  # bounded: 10 requests of at most 10 s each
            self.assertLess(self.timed_get(), BOUND)
        # A fast upload: the stalled ones below --min-stream-rate give their
        # workers up, and it lands.
        body, head = self.put('fast', 4 << 20)
        t0 = time.monotonic()
        up = self.connect()
        up.settimeout(20)
        up.sendall(head + hh.fcgi_stdin(1, body))
        out, end = hh.fcgi_response(up, 1)
        self.assertEqual(end, (0, 0))
        self.assertTrue(out.startswith(b'Status: 200'), out[:300])
        self.assertTrue(out.endswith(b'l2:okee'), out[-100:])
        self.assertLess(time.monotonic() - t0, 10)
        with open(os.path.join(self.root, 'fast'), 'rb') as f:
            self.assertEqual(f.read(), b'p' * (4 << 20))
        s = soukd_counters(self.root)
        self.assertGreaterEqual(s['tcp_slow_streams_cut'], 2, s)
        self.assertGreaterEqual(s['tcp_stream_handovers'], 3, s)
        for i in range(3):   # nothing of a cut upload is applied
            self.assertFalse(os.path.exists(os.path.join(self.root, 'stalled%d' % i)))


class TestIdleReclaim(FastcgiBase):
    CAP = 30
    AGE = 1.0
    extra = ['--max-connections=%d' % CAP, '--idle-reclaim-age=%g' % AGE, '--linger=0']

    def test_idle_connections_closed_oldest_first_for_new_ones(self):
        base = soukd_counters(self.root)
        old = []
        for i in range(self.CAP):  # bounded: CAP, one request each, oldest first
            s = self.connect()
            s.sendall(get_request())
            self.assertEqual(hh.fcgi_response(s, 1)[1], (0, 0))
            old.append(s)
            # A connection's idle age starts when its worker parks it, a
            # moment after the reply: wait for it, so the ages follow the
            # list's order (under ASan a later one could park first).
            parked = wait_until(lambda: soukd_counters(self.root)['tcp_conns_parked'] >= i + 1, timeout=10,
                                interval=0.01)
            self.assertTrue(parked, 'connection %d was not parked' % i)
        time.sleep(self.AGE + 0.3)   # all idle beyond --idle-reclaim-age
        NEW = 10
        for _ in range(NEW):  # bounded: NEW requests of at most 10 s each
            self.assertLess(self.timed_get(), BOUND)
        for i, s in enumerate(old[:NEW]):  # bounded: NEW
            self.assertTrue(closed(s, 5), 'idle connection %d (of the oldest) still open' % i)
        for i, s in enumerate(old[NEW:]):  # bounded: CAP - NEW
            self.assertFalse(closed(s, 0.01), 'idle connection %d was closed out of order' % (NEW + i))
        old[-1].sendall(get_request(2))
        self.assertEqual(hh.fcgi_response(old[-1], 2)[1], (0, 0))
        s = soukd_counters(self.root)
        self.assertEqual(s['idle_reclaimed'] - base['idle_reclaimed'], NEW)
        self.assertEqual(s['connections_refused'] - base['connections_refused'], 0)


class TestShutdown(FastcgiBase):
    extra = ['--slow-read-delay=1', '--shutdown-grace=5', '--cache=0', '--readahead=0']

    def test_sigterm_drains(self):
        idle = self.connect()
        idle.sendall(get_request())
        self.assertEqual(hh.fcgi_response(idle, 1)[1], (0, 0))
        arriving = self.connect()
        arriving.sendall(get_request()[:30])
        busy = self.connect()   # a smart get: its reads go through the store chain's delay layer
        body = hh.V3([b'get', b'data.txt'])
        busy.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': str(len(body))}) +
            hh.fcgi_stdin(1, body))
        sent = time.monotonic()
        time.sleep(0.3)  # the read is asleep in the delay layer
        t0 = time.monotonic()
        self.soukd.proc.send_signal(signal.SIGTERM)

        def refuses():
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(self.sock)
                return False
            except (ConnectionRefusedError, FileNotFoundError):
                return True
        self.assertTrue(wait_until(refuses, 2), 'a new connection was accepted after SIGTERM')
        self.assertTrue(closed(idle, 2), 'an idle connection stayed open after SIGTERM')
        self.assertTrue(closed(arriving, 2), 'a request still arriving was not cut')
        out, end = hh.fcgi_response(busy, 1)
        self.assertEqual(end, (0, 0))
        self.assertEqual(out.split(b'\r\n\r\n', 1)[1], hh.inet_reply(self.root, body))
        self.assertGreater(time.monotonic() - sent, 0.9)  # it was in flight when TERM came
        self.assertEqual(self.soukd.proc.wait(timeout=5), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn('1 of 1 requests in flight finished within --shutdown-grace=5s, 0 cut', self.soukd.log())
        self.assertFalse(os.path.exists(self.sock))


if __name__ == '__main__':
    unittest.main()
