"""Signals of the soukd daemon (docs/configuration.md#signals).

* SIGHUP re-reads `--config`: a bad file is refused (logged with
  FILE:LINE) and the old settings keep serving; a good one changes a
  run-time parameter (--max-connections) observably, without dropping
  open connections. The process never dies of SIGHUP.
* SIGTERM stops accepting at once, lets a request in flight (slowed by
  --slow-read-delay) finish within --shutdown-grace and exits 0; past the
  grace the request is cut, and the process still exits 0.
"""

import os
import signal
import socket
import time
import unittest

import harness
from harness import make_tempdir, remove_tree


def setUpModule():
    harness.require_server('soukd')


CONTENT = b'x' * 100000


class SignalsBase(unittest.TestCase):

    def setUp(self):
        self.tmp = make_tempdir('souk-signals-')
        self.root = os.path.join(self.tmp, 'served')
        os.mkdir(self.root)
        with open(os.path.join(self.root, 'f'), 'wb') as f:
            f.write(CONTENT)
        self.conf = os.path.join(self.tmp, 'soukd.conf')
        self.server = None
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        if self.server:
            self.server.stop()
        harness.remove_stats_segment(self.root)
        remove_tree(self.tmp)

    def write_conf(self, text):
        tmp = self.conf + '.new'
        with open(tmp, 'w') as f:
            f.write(text)
        os.rename(tmp, self.conf)

    def start(self, limits):
        self.server = harness.Server(self.root, limits=limits).start()
        self.assertTrue(harness.wait_probe_gone(self.root), self.server.log())
        return self.server

    def connect(self):
        c = self.server.connect()
        self.conns.append(c)
        return c

    def refused(self):
        return harness.soukd_counters(self.root)['connections_refused']

    def why_closed(self):
        """What a failed assertion about an open connection should show."""
        c = harness.soukd_counters(self.root)
        return 'soukd alive: %s; idle_reclaimed %d, connections_refused %d, tcp_conns_live %d\n%s' % (
            self.server.alive(), c['idle_reclaimed'], c['connections_refused'], c['tcp_conns_live'],
            self.server.log())


class Hup(SignalsBase):

    def start_capped(self, cap):
        self.write_conf('# test\nmax-connections = %d\nidle-reclaim-age = 1h\n' % cap)
        return self.start({'config': self.conf})

    def test_bad_config_keeps_the_old_settings(self):
        self.start_capped(1)
        first = self.connect()
        self.assertTrue(harness.hello_ok(first))
        self.write_conf('max-connections = 3\n\nmax-body = 1.5M\n')
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: 'soukd.conf:3:' in self.server.log(), 5), self.server.log())
        self.assertIn('config refused', self.server.log())
        self.assertTrue(self.server.alive())
        # Still capped at 1 (the refused file said 3), and the open
        # connection was not dropped.
        refused = self.refused()
        self.assertEqual(harness.usable_or_closed(self.connect()), 'closed')
        self.assertEqual(self.refused(), refused + 1)
        self.assertTrue(harness.hello_ok(first))

    def test_good_config_changes_max_connections(self):
        self.start_capped(1)
        first = self.connect()
        self.assertTrue(harness.hello_ok(first))
        refused = self.refused()
        self.assertEqual(harness.usable_or_closed(self.connect()), 'closed')
        self.assertEqual(self.refused(), refused + 1)
        self.write_conf('max-connections = 3\nidle-reclaim-age = 1h\n')
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: 're-read: 1 changes applied: max-connections' in self.server.log(),
                                           5), self.server.log())
        # Two more now fit beside the first, which HUP left open.
        for _ in range(2):
            self.assertTrue(harness.hello_ok(self.connect()), self.why_closed())
        self.assertTrue(harness.hello_ok(first), self.why_closed())
        self.assertEqual(self.refused(), refused + 1)
        self.assertEqual(harness.usable_or_closed(self.connect()), 'closed')
        # HUP again with the same file: nothing to change, still alive.
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: 're-read: 0 changes applied' in self.server.log(), 5),
                        self.server.log())
        self.assertTrue(harness.hello_ok(first), self.why_closed())


class Term(SignalsBase):

    def get_in_flight(self, delay, grace):
        self.start({'slow-read-delay': delay, 'shutdown-grace': grace, 'cache': 0, 'readahead': 0})
        idle = self.connect()
        self.assertTrue(harness.hello_ok(idle))
        busy = self.connect()
        busy.send(harness.v3_request([b'get', b'f']))
        self.sent = time.monotonic()
        time.sleep(0.3)  # the read is asleep in the delay layer
        t0 = time.monotonic()
        self.server.proc.send_signal(signal.SIGTERM)

        def refuses():
            try:
                with socket.create_connection(('127.0.0.1', self.server.port), timeout=1):
                    return False
            except ConnectionRefusedError:
                return True
            except (ConnectionResetError, TimeoutError):
                # The SYN reached the backlog as the listener closed (reset),
                # or was dropped then (no answer within the 1 s): ask again.
                return False
        self.assertTrue(harness.wait_until(refuses, 5), 'a new connection was accepted after SIGTERM')
        self.assertEqual(harness.usable_or_closed(idle), 'closed')  # idle connections close at once
        return busy, t0

    def test_request_in_flight_finishes_and_exit_is_0(self):
        busy, t0 = self.get_in_flight(delay=1, grace=5)
        r = harness.read_v3_response(busy, timeout=5)
        self.assertTrue(r.success, r)
        self.assertEqual(b''.join(r.chunks) if r.chunks else r.body, CONTENT)
        self.assertGreater(time.monotonic() - self.sent, 0.9)  # it was in flight when TERM came
        self.assertEqual(self.server.proc.wait(timeout=5), 0)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertIn('1 of 1 requests in flight finished within --shutdown-grace=5s, 0 cut', self.server.log())

    def test_request_past_the_grace_is_cut(self):
        busy, t0 = self.get_in_flight(delay=2, grace=0.2)
        self.assertEqual(self.server.proc.wait(timeout=10), 0)
        with self.assertRaises(harness.HarnessError):
            harness.read_v3_response(busy, timeout=2)
        self.assertIn('0 of 1 requests in flight finished within --shutdown-grace=0.2s, 1 cut', self.server.log())


if __name__ == '__main__':
    unittest.main()
