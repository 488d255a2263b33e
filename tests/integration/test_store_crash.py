"""Nothing torn, nothing left behind: soukd SIGKILLed in the middle of `put`
and `append` (docs/store-chain.md#temporary-files, #append-intent-records).

Every test starts its own soukd processes on loopback (harness.Server),
kills them by PID with SIGKILL at chosen points of a write, then checks what
every reader sees through a fresh soukd, and what is left on disk.

* 01 an append killed while its bytes land (the file visibly growing on
  disk) reads back at its old length through stat, get and readv, and the
  next append's offset is that old length; killed while its body arrives,
  it changes nothing.
* 02 a put killed at many points of its body: readers see the old or the
  new file, never a part; its temporary file is invisible to every verb,
  rmdir of a directory holding only it succeeds, and a writable soukd's
  start-up sweep removes it (counter store_temps_swept).
* 03 a start-up sweep never takes the file of a live writer in another
  soukd process: that put still succeeds.
* 04 no client can create a name in the temporary namespace.
* 05 an append to a new name killed at any point leaves nothing or all.
"""

import os
import signal
import time
import unittest

import harness
from harness import Server, call, make_tempdir, remove_tree

TEMP = '.souk-tmp.'
MiB = 1024 * 1024
WAIT = 30.0  # seconds: the longest any poll below waits


def setUpModule():
    harness.require_server('soukd')


def pattern(n, seed):
    block = bytes((seed * 131 + i * 7) & 0xff for i in range(4096))
    return (block * (n // len(block) + 1))[:n]


def temps(d):
    return sorted(n for n in os.listdir(d) if n.startswith(TEMP))


def raw_size(path):
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def poll(predicate, timeout=WAIT, interval=0.0005):
    """predicate() until true or the deadline; returns its last value."""
    deadline = time.monotonic() + timeout
    for _ in range(10 ** 8):  # bounded: count and deadline
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        if interval:
            time.sleep(interval)
    return predicate()


class CrashTest(unittest.TestCase):
    def setUp(self):
        self.root = make_tempdir('souk-crash-')
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        try:
            harness.remove_stats_segment(self.root)
        finally:
            remove_tree(self.root)

    def start(self, writable=True, **limits):
        s = Server(self.root, allow_writes=writable,
                   limits={k.replace('_', '-'): v for k, v in limits.items()}).start()
        self.servers.append(s)
        return s

    def kill(self, server):
        """SIGKILL by PID (a process this test started), then reap it."""
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(timeout=harness.STOP_TIMEOUT)
        self.assertEqual(server.proc.returncode, -signal.SIGKILL)
        server.stop()
        self.servers.remove(server)

    def ok(self, conn, *args, body=None):
        r = call(conn, *args, body=body)
        self.assertTrue(r.success, '%r: %r' % (args, r))
        return r

    def counter(self, name):
        return harness.soukd_stats(self.root)['counters'][name]

    def assert_reads(self, conn, path, expected):
        """stat, get and readv through soukd all answer `expected` (bytes)."""
        r = self.ok(conn, b'stat', path)
        self.assertEqual(r.args[1], b'%d' % len(expected))
        self.assertEqual(self.ok(conn, b'get', path).body, expected)
        r = call(conn, b'readv', path, body=b'0,%d' % (len(expected) + 1))
        self.assertFalse(r.success)
        self.assertEqual(r.args[0], b'ShortReadvError')
        tail = max(0, len(expected) - 100)
        r = self.ok(conn, b'readv', path, body=b'%d,%d' % (tail, len(expected) - tail))
        self.assertEqual(r.body, expected[tail:])

    # ------------------------------------------------------------------

    def test_01_append_killed_while_landing_reads_old_length(self):
        base = pattern(64 * 1024, 1)
        big = pattern(64 * MiB, 2)
        target = os.path.join(self.root, 'f')
        torn_seen = 0
        rolled_before = None
        # Kill once the file on disk has grown past these fractions of the append.
        for frac in (0.0, 0.2, 0.5, 0.8):
            with self.subTest(frac=frac):
                with open(target, 'wb') as f:
                    f.write(base)
                srv = self.start()
                if rolled_before is None:
                    rolled_before = self.counter('store_appends_rolled_back')
                conn = srv.connect()
                conn.send(harness.v3_request([b'append', b'/f', b''], chunks=[big[i:i + MiB] for i in range(0, len(big), MiB)]))
                threshold = len(base) + int(frac * len(big))
                grown = poll(lambda: (raw_size(target) or 0) > threshold, interval=0)
                self.assertTrue(grown, 'the append never landed within %ss' % WAIT)
                at_kill = raw_size(target)
                self.kill(srv)
                conn.close()
                on_disk = raw_size(target)
                if len(base) < on_disk < len(base) + len(big):
                    torn_seen += 1
                srv = self.start(writable=(frac != 0.2))  # a read-only server hides the tail as well
                conn = srv.connect()
                r = self.ok(conn, b'stat', b'/f')
                if int(r.args[1]) == len(base) + len(big):
                    conn.close()
                    self.kill(srv)
                    continue  # the append committed before the kill arrived: whole
                self.assert_reads(conn, b'/f', base)
                if frac == 0.2:
                    self.assertEqual(raw_size(target), on_disk, 'a read-only server wrote')
                    conn.close()
                    self.kill(srv)
                    srv = self.start()
                    conn = srv.connect()
                r = self.ok(conn, b'append', b'/f', b'', body=b'next')
                self.assertEqual(r.args, (b'appended', b'%d' % len(base)),
                                 'killed at %d of %d' % (at_kill, len(base) + len(big)))
                with open(target, 'rb') as f:
                    self.assertEqual(f.read(), base + b'next')
                self.assertEqual(temps(self.root), [])
                conn.close()
                self.kill(srv)
        self.assertGreaterEqual(torn_seen, 1, 'no kill landed in the middle of an append')
        self.assertGreaterEqual(self.counter('store_appends_rolled_back') - rolled_before, torn_seen)

    def test_01b_append_killed_while_its_body_arrives_changes_nothing(self):
        base = pattern(1000, 3)
        target = os.path.join(self.root, 'f')
        with open(target, 'wb') as f:
            f.write(base)
        srv = self.start()
        conn = srv.connect()
        msg = harness.v3_request([b'append', b'/f', b''], chunks=[pattern(MiB, 4)] * 8)
        before = self.counter('bytes_in')
        conn.send(msg[:len(msg) // 2])
        self.assertTrue(poll(lambda: self.counter('bytes_in') - before >= len(msg) // 4, interval=0.01),
                        'the body never arrived')
        self.kill(srv)
        conn.close()
        self.assertEqual(raw_size(target), len(base))
        self.assertEqual(temps(self.root), [])
        srv = self.start()
        with srv.connect() as conn:
            self.assert_reads(conn, b'/f', base)

    def test_02_put_killed_at_many_points(self):
        d = os.path.join(self.root, 'd')
        os.mkdir(d)
        old = pattern(5000, 5)
        new = pattern(3 * MiB, 6)
        with open(os.path.join(d, 'f'), 'wb') as f:
            f.write(old)
        msg = harness.v3_request([b'put', b'/d/f', b''], chunks=[new[i:i + 256 * 1024] for i in range(0, len(new), 256 * 1024)])
        left = []
        for frac in (0.1, 0.5, 0.9, 1.0):
            with self.subTest(frac=frac):
                srv = self.start(temp_stale=3600)
                conn = srv.connect()
                cut = int(len(msg) * frac)
                conn.send(msg[:cut])
                if frac < 1.0:
                    self.assertTrue(poll(lambda: any(os.stat(os.path.join(d, t)).st_size > 0 for t in temps(d))),
                                    'no temporary file appeared')
                self.kill(srv)
                conn.close()
                left = temps(d)
                srv = self.start(writable=False)
                with srv.connect() as conn:
                    got = self.ok(conn, b'get', b'/d/f').body
                    self.assertIn(got, (old, new), 'a reader saw %d bytes' % len(got))
                    self.assertEqual(self.ok(conn, b'list_dir', b'/d').args, (b'names', b'f'))
                    for t in left:
                        p = b'/d/' + t.encode()
                        for verb in (b'stat', b'get', b'list_dir'):
                            r = call(conn, verb, p)
                            self.assertEqual(r.args[:1], (b'NoSuchFile',), '%s %s: %r' % (verb, p, r))
                        r = call(conn, b'readv', p, body=b'0,1')
                        self.assertEqual(r.args[:1], (b'NoSuchFile',))
                        self.assertEqual(self.ok(conn, b'has', p).args, (b'no',))
                self.kill(srv)
        self.assertTrue(left, 'the last kill in the body left no temporary file to check')
        # A writable server whose grace keeps them (young) still treats them as absent.
        srv = self.start(temp_stale=3600)
        with srv.connect() as conn:
            for t in temps(d):
                p = b'/d/' + t.encode()
                self.assertEqual(call(conn, b'delete', p).args[:1], (b'NoSuchFile',))
                self.assertEqual(call(conn, b'rename', p, b'/d/g').args[:1], (b'NoSuchFile',))
                self.assertEqual(call(conn, b'rmdir', p).args[:1], (b'NoSuchFile',))
            self.ok(conn, b'delete', b'/d/f')
            self.assertEqual(self.ok(conn, b'list_dir', b'/d').args, (b'names',))
            # Empty to clients: rmdir removes the dead writers' files with it.
            if temps(d):
                self.ok(conn, b'rmdir', b'/d')
                self.assertFalse(os.path.exists(d))
        self.kill(srv)

    def test_02b_start_up_sweep_removes_a_killed_puts_file(self):
        srv = self.start()
        conn = srv.connect()
        msg = harness.v3_request([b'put', b'/f', b''], chunks=[pattern(MiB, 7)] * 4)
        conn.send(msg[:len(msg) // 2])
        self.assertTrue(poll(lambda: temps(self.root)), 'no temporary file appeared')
        self.kill(srv)
        conn.close()
        self.assertEqual(len(temps(self.root)), 1)
        swept = self.counter('store_temps_swept')
        self.start(temp_stale=0)
        self.assertTrue(poll(lambda: not temps(self.root), interval=0.02), 'the start-up sweep left %r' % temps(self.root))
        self.assertEqual(self.counter('store_temps_swept'), swept + 1)
        self.assertFalse(os.path.exists(os.path.join(self.root, 'f')))

    def test_03_sweep_never_takes_a_live_writers_file(self):
        a = self.start()
        self.assertTrue(poll(lambda: self.counter('store_sweeps') >= 1, interval=0.02), 'no start-up sweep')
        conn = a.connect()
        body = pattern(2 * MiB, 8)
        msg = harness.v3_request([b'put', b'/f', b''], chunks=[body[:MiB], body[MiB:]])
        half = len(msg) // 2
        conn.send(msg[:half])
        self.assertTrue(poll(lambda: temps(self.root)), 'no temporary file appeared')
        live = temps(self.root)
        sweeps = self.counter('store_sweeps')
        # Another writable soukd on the same root, sweeping at start with no grace.
        self.start(temp_stale=0)
        self.assertTrue(poll(lambda: self.counter('store_sweeps') > sweeps, interval=0.02), 'no start-up sweep')
        self.assertEqual(temps(self.root), live)
        conn.send(msg[half:])
        r = harness.read_v3_response(conn)
        self.assertTrue(r.success, r)
        conn.close()
        with open(os.path.join(self.root, 'f'), 'rb') as f:
            self.assertEqual(f.read(), body)
        self.assertEqual(temps(self.root), [])

    def test_04_clients_cannot_create_temporary_names(self):
        os.mkdir(os.path.join(self.root, 'd'))
        srv = self.start()
        with srv.connect() as conn:
            self.ok(conn, b'put', b'/d/real', b'', body=b'x')
            attempts = [
                (b'put', b'/.souk-tmp.0123456789abcdef', b''),
                (b'put', b'/d/.souk-tmp.x', b''),
                (b'put_non_atomic', b'/.souk-tmp.dir/f', b'', b'T', b''),
                (b'append', b'/d/.souk-tmp.append.1', b''),
                (b'mkdir', b'/.souk-tmp.d', b''),
                (b'rename', b'/d/real', b'/d/.souk-tmp.r'),
                (b'move', b'/d/real', b'/%2Esouk-tmp.m'),
            ]
            for args in attempts:
                body = b'data' if args[0] in (b'put', b'put_non_atomic', b'append') else None
                r = call(conn, *args, body=body)
                self.assertFalse(r.success, args)
                self.assertEqual(r.args[0], b'PermissionDenied', '%r: %r' % (args, r))
                self.assertIn(b'reserved', r.args[2], '%r: %r' % (args, r))
                self.assertNotIn(self.root.encode(), r.raw)
            self.assertEqual(self.ok(conn, b'get', b'/d/real').body, b'x')
        self.assertEqual(os.listdir(self.root), ['d'])
        self.assertEqual(os.listdir(os.path.join(self.root, 'd')), ['real'])

    def test_05_append_to_new_name_killed_leaves_nothing_or_all(self):
        body = pattern(4 * MiB, 9)
        msg = harness.v3_request([b'append', b'/n', b''], chunks=[body[:2 * MiB], body[2 * MiB:]])
        target = os.path.join(self.root, 'n')
        for cut, delay in ((len(msg) // 3, 0.0), (len(msg), 0.0), (len(msg), 0.002), (len(msg), 0.02)):
            with self.subTest(cut=cut, delay=delay):
                if os.path.exists(target):
                    os.unlink(target)
                srv = self.start()
                conn = srv.connect()
                before = self.counter('bytes_in')
                conn.send(msg[:cut])
                if cut < len(msg):
                    self.assertTrue(poll(lambda: self.counter('bytes_in') > before, interval=0.01))
                time.sleep(delay)
                self.kill(srv)
                conn.close()
                size = raw_size(target)
                self.assertIn(size, (None, len(body)))
                if size is not None:
                    with open(target, 'rb') as f:
                        self.assertEqual(f.read(), body)
                self.assertEqual(temps(self.root), [])


if __name__ == '__main__':
    unittest.main()
