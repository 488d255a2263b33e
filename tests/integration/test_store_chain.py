"""The store chain end to end (docs/store-chain.md): readahead, the shared-memory
range cache and `soukd stats`, with real soukd processes on loopback.

Every test asserts counters read with `soukd stats --directory ROOT` (the
sum over every process that served ROOT), and the bytes themselves.

* 01/02 readahead: a sequential readv pattern becomes cache hits; a random
  one never grows the window.
* 03/04 never stale: after append, put, rename and delete through soukd, and
  after another program rewrites a file in place (old mtime put back).
* 05 crash: a helper process SIGKILLed while holding the segment lock; the
  next soukd serves correct bytes within a bounded time.
* 06 cross-process: two `soukd cgi` runs (nginx + fcgiwrap) and one TCP
  daemon serving one root share hits.
* 07 a cache smaller than the working set evicts and stays correct.
* 08 a corrupt segment (bad magic) is replaced, not trusted.
* 09 `soukd stats` sums processes and speaks Prometheus.
"""

import ctypes
import json
import mmap
import os
import random
import signal
import subprocess
import time
import unittest

import harness
from harness import InetConn, Server, call, make_tempdir, remove_tree

KiB = 1024
MiB = 1024 * 1024
# Files must be older than --cache-settle (default 50 ms) to be cached.
SETTLE = 0.12


def setUpModule():
    harness.require_server('soukd')


def pattern(n, seed):
    return random.Random(seed).randbytes(n)


stats = harness.soukd_stats
counters = harness.soukd_counters


def drop_segment(root):
    """Unlink the root's segment (tests leave nothing in /dev/shm)."""
    try:
        name = stats(root)['segment']['name']
    except (AssertionError, TypeError, KeyError, ValueError):
        return
    try:
        os.unlink('/dev/shm' + name)
    except OSError:
        pass


def readv(conn, path, ranges, timeout=harness.IO_TIMEOUT):
    body = '\n'.join('%d,%d' % r for r in ranges).encode()
    r = call(conn, b'readv', path, body=body, timeout=timeout)
    if not r.success:
        raise AssertionError('readv %s failed: %r' % (path, r))
    return r.body


def get(conn, path):
    r = call(conn, b'get', path)
    return r.body if r.success else r.args


class BytesConn(harness.Conn):
    """A finished byte string read with the harness's response parsers."""

    def __init__(self, data):
        super().__init__()
        self._buf += data
        self.received += data

    def _recv(self, deadline):
        return b''


class ChainCase(unittest.TestCase):
    def setUp(self):
        self.tmp = make_tempdir('souk-chain-it-')
        self.root = os.path.realpath(os.path.join(self.tmp, 'root'))
        os.mkdir(self.root)
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if isinstance(p, Server):
                p.stop()
            else:
                p.close()
        drop_segment(self.root)
        remove_tree(self.tmp)

    def put_file(self, rel, data):
        with open(os.path.join(self.root, rel), 'wb') as f:
            f.write(data)

    def inet(self, *extra, allow_writes=False):
        c = InetConn(self.root, allow_writes=allow_writes, extra_args=list(extra))
        self.procs.append(c)
        return c

    def server(self, allow_writes=False, **limits):
        s = Server(self.root, allow_writes=allow_writes, limits=limits).start()
        self.procs.append(s)
        return s


class TestReadahead(ChainCase):

    def test_01_readahead_turns_a_sequential_readv_pattern_into_cache_hits(self):
        data = pattern(8 * MiB, 1)
        self.put_file('pack', data)
        time.sleep(SETTLE)
        c = self.inet('--slow-read-delay=0.002')
        step = 64 * KiB
        n = len(data) // step
        for i in range(n):
            got = readv(c, b'pack', [(i * step, step)])
            self.assertEqual(got, data[i * step:(i + 1) * step], 'bytes of range %d' % i)
        c.finish()
        k = counters(self.root)
        # The window grew from 64 KiB to 4 MiB and most reads were hits of
        # what readahead had fetched (the first few may race their prefetch).
        self.assertGreaterEqual(k['readahead_grows'], 6, k)
        self.assertEqual(k['readahead_resets'], 0, k)
        self.assertGreaterEqual(k['cache_hits'], n // 2, k)
        self.assertGreaterEqual(k['readahead_useful'], n // 2, k)
        self.assertEqual(k['readahead_errors'], 0, k)
        # Whole windows per filesystem read: far fewer reads than requests.
        self.assertLess(k['fs_reads'], n // 2, k)

    def test_02_readahead_random_readv_pattern_does_not_grow_the_window(self):
        data = pattern(32 * MiB, 2)
        self.put_file('pack', data)
        time.sleep(SETTLE)
        c = self.inet()
        rng = random.Random(5)
        n = 40
        # Single 4 KiB ranges, each far from the previous one and its window.
        slots = list(range(n))
        rng.shuffle(slots)
        last = None
        for s in slots:
            off = s * (len(data) // n) + rng.randrange(4096)
            if last is not None and abs(off - last) < 2 * MiB:
                off = (off + len(data) // 2) % (len(data) - 4096)
            last = off
            self.assertEqual(readv(c, b'pack', [(off, 4096)]), data[off:off + 4096])
        # And scattered readvs of 64 ranges: one access each, one prefetch each.
        for _ in range(5):
            ranges = sorted(rng.sample(range(0, len(data) - 4096, 4096), 64))
            got = readv(c, b'pack', [(o, 4096) for o in ranges])
            self.assertEqual(got, b''.join(data[o:o + 4096] for o in ranges))
        c.finish()
        k = counters(self.root)
        self.assertEqual(k['readahead_grows'], 0, k)
        self.assertGreaterEqual(k['readahead_resets'], n - 1, k)
        # A prefetch after the first access only: a seek after a seek marks
        # the pattern random, and it costs no more prefetches.
        self.assertLessEqual(k['readahead_issued'], 2, k)
        self.assertGreaterEqual(k['readahead_random'], n + 5 - 2, k)


class TestNeverStale(ChainCase):

    def test_03_reads_after_append_put_rename_delete_through_soukd_are_new(self):
        self.put_file('f', pattern(200 * KiB, 3))
        self.put_file('g', pattern(120 * KiB, 4))
        time.sleep(SETTLE)
        srv = self.server(allow_writes=True)
        with srv.connect() as c:
            self.assertEqual(get(c, b'f'), pattern(200 * KiB, 3))
            self.assertEqual(readv(c, b'f', [(1000, 5000)]), pattern(200 * KiB, 3)[1000:6000])
            before = counters(self.root)['cache_hits']
            self.assertEqual(readv(c, b'f', [(1000, 5000)]), pattern(200 * KiB, 3)[1000:6000])
            self.assertGreater(counters(self.root)['cache_hits'], before, 'f is cached')

            r = call(c, b'append', b'f', b'', body=b'TAIL')
            self.assertEqual(r.args, (b'appended', b'%d' % (200 * KiB)))
            want = pattern(200 * KiB, 3) + b'TAIL'
            self.assertEqual(readv(c, b'f', [(1000, 5000), (200 * KiB, 4)]), want[1000:6000] + b'TAIL')
            time.sleep(SETTLE)
            self.assertEqual(get(c, b'f'), want)

            r = call(c, b'put', b'f', b'', body=pattern(200 * KiB + 4, 5))
            self.assertTrue(r.success, r)
            self.assertEqual(get(c, b'f'), pattern(200 * KiB + 4, 5))
            time.sleep(SETTLE)
            self.assertEqual(readv(c, b'f', [(1000, 5000)]), pattern(200 * KiB + 4, 5)[1000:6000])

            self.assertEqual(get(c, b'g'), pattern(120 * KiB, 4))
            r = call(c, b'rename', b'g', b'f')
            self.assertTrue(r.success, r)
            self.assertEqual(get(c, b'f'), pattern(120 * KiB, 4))
            time.sleep(SETTLE)
            self.assertEqual(readv(c, b'f', [(1000, 5000)]), pattern(120 * KiB, 4)[1000:6000])

            r = call(c, b'delete', b'f')
            self.assertTrue(r.success, r)
            r = call(c, b'readv', b'f', body=b'1000,5000')
            self.assertFalse(r.success)
            self.assertEqual(r.args[0], b'NoSuchFile')
        k = counters(self.root)
        self.assertGreater(k['cache_hits'], 0, k)
        self.assertEqual(k['cache_copy_retries'], 0, k)

    def test_04_reads_after_another_program_rewrites_the_file_in_place_are_new(self):
        path = os.path.join(self.root, 'f')
        self.put_file('f', pattern(300 * KiB, 6))
        time.sleep(SETTLE)
        srv = self.server()
        with srv.connect() as c:
            self.assertEqual(readv(c, b'f', [(0, 300 * KiB)]), pattern(300 * KiB, 6))
            self.assertEqual(readv(c, b'f', [(0, 64 * KiB)]), pattern(300 * KiB, 6)[:64 * KiB])
            st = os.stat(path)
            new = pattern(300 * KiB, 7)
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, new, 0)  # same size, in place
            finally:
                os.close(fd)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # the old mtime back: only ctime tells
            self.assertEqual(os.stat(path).st_mtime_ns, st.st_mtime_ns)
            self.assertEqual(readv(c, b'f', [(0, 64 * KiB)]), new[:64 * KiB])
            time.sleep(SETTLE)
            self.assertEqual(readv(c, b'f', [(0, 64 * KiB)]), new[:64 * KiB])
            self.assertEqual(readv(c, b'f', [(4096, 100 * KiB)]), new[4096:4096 + 100 * KiB])
        k = counters(self.root)
        self.assertGreater(k['cache_hits'], 0, k)


class TestCrash(ChainCase):

    def test_05_a_process_killed_holding_the_segment_lock_costs_no_hang(self):
        data = pattern(1 * MiB, 8)
        self.put_file('f', data)
        time.sleep(SETTLE)
        c = self.inet()
        self.assertEqual(readv(c, b'f', [(0, 100 * KiB)]), data[:100 * KiB])
        c.finish()
        st = stats(self.root)
        name, lock_offset = st['segment']['name'], st['segment']['lock_offset']
        self.assertGreater(st['cache']['entries'], 0)

        # The helper: attach the segment and take its robust mutex the way
        # soukd does (pthread_mutex_lock on the shared mutex), report, wait.
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                os.close(r)
                fd = os.open('/dev/shm' + name, os.O_RDWR)
                mm = mmap.mmap(fd, 0)
                addr = ctypes.addressof(ctypes.c_char.from_buffer(mm, lock_offset))
                libc = ctypes.CDLL(None)
                if libc.pthread_mutex_lock(ctypes.c_void_p(addr)) == 0:
                    os.write(w, b'L')
                    time.sleep(60)
            finally:
                os._exit(code)
        os.close(w)
        try:
            self.assertEqual(os.read(r, 1), b'L', 'helper took the lock')
        finally:
            os.close(r)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)

        t0 = time.monotonic()
        c2 = self.inet()
        self.assertEqual(readv(c2, b'f', [(0, 100 * KiB), (500 * KiB, 4096)], timeout=10),
                         data[:100 * KiB] + data[500 * KiB:500 * KiB + 4096])
        self.assertEqual(readv(c2, b'f', [(0, 100 * KiB)]), data[:100 * KiB])
        elapsed = time.monotonic() - t0
        c2.finish()
        self.assertLess(elapsed, 5.0, 'served within a bounded time')
        k = counters(self.root)
        self.assertEqual(k['cache_lock_recoveries'], 1, k)
        self.assertEqual(k['cache_corruptions'], 0, k)


class TestCrossProcess(ChainCase):

    def test_06_two_cgi_runs_and_a_tcp_daemon_share_hits(self):
        import http_harness as hh
        hh.require(hh.NGINX, hh.FCGIWRAP, hh.OPENSSL)
        data = pattern(2 * MiB, 9)
        self.put_file('pack', data)
        time.sleep(SETTLE)
        ranges = [(o, 4096) for o in range(0, 2 * MiB, 256 * KiB)]
        want = b''.join(data[o:o + n] for o, n in ranges)
        body = '\n'.join('%d,%d' % r for r in ranges).encode()
        request = harness.v3_request([b'readv', b'pack'], body=body)
        nginx = hh.Nginx(self.root).start()
        try:
            def cgi_readv():
                a = hh.smart_post(nginx.base, '/.bzr/smart', request)
                self.assertEqual(a.status, 200, nginx.log())
                r = harness.read_v3_response(BytesConn(a.body))
                self.assertTrue(r.success, r)
                return r.body

            self.assertEqual(cgi_readv(), want)  # CGI process 1: fills
            k1 = counters(self.root)
            self.assertEqual(k1['cache_hits'], 0, k1)
            self.assertGreaterEqual(k1['cache_inserts'], len(ranges), k1)
            self.assertEqual(cgi_readv(), want)  # CGI process 2: hits what process 1 cached
            k2 = counters(self.root)
            self.assertGreaterEqual(k2['cache_hits'], len(ranges), k2)
            self.assertEqual(k2['cache_inserts'], k1['cache_inserts'], k2)
        finally:
            nginx.stop()
        srv = self.server()
        with srv.connect() as c:
            self.assertEqual(readv(c, b'pack', ranges), want)  # the daemon hits too
        k3 = counters(self.root)
        self.assertGreaterEqual(k3['cache_hits'], 2 * len(ranges), k3)
        self.assertEqual(k3['cache_misses'], k1['cache_misses'], k3)  # nothing read again
        # Every process counted in one place: three opens, the daemon's request.
        self.assertEqual(k3['store_opens'], 3, k3)
        self.assertGreaterEqual(k3['verbs']['readv'], 1, k3)
        self.assertGreaterEqual(k3['connections_accepted'], 1, k3)


class TestCacheLimits(ChainCase):

    def test_07_a_cache_smaller_than_the_working_set_evicts_and_stays_correct(self):
        data = pattern(8 * MiB, 10)
        self.put_file('big', data)
        time.sleep(SETTLE)
        c = self.inet('--cache-size=1048576', '--readahead=0')
        rng = random.Random(11)
        for _ in range(60):
            ranges = sorted(set(rng.randrange(0, len(data) - 8192) // 8192 * 8192 for _ in range(16)))
            ranges = [(o, 1 + rng.randrange(8191)) for o in ranges]
            self.assertEqual(readv(c, b'big', ranges), b''.join(data[o:o + n] for o, n in ranges))
        c.finish()
        st = stats(self.root)
        k = st['counters']
        self.assertGreater(k['cache_evictions'], 0, k)
        self.assertEqual(k['cache_insert_failures'], 0, k)
        self.assertEqual(st['cache']['capacity_bytes'], MiB)
        self.assertLessEqual(st['cache']['used_bytes'], MiB)

    def test_08_a_corrupt_segment_is_replaced_not_trusted(self):
        data = pattern(256 * KiB, 12)
        self.put_file('f', data)
        time.sleep(SETTLE)
        c = self.inet()
        self.assertEqual(readv(c, b'f', [(0, 64 * KiB)]), data[:64 * KiB])
        c.finish()
        name = stats(self.root)['segment']['name']
        with open('/dev/shm' + name, 'r+b') as f:
            f.write(b'GARBAGE!')  # the magic
        p = subprocess.run([harness.soukd_path(), 'stats', '--directory=' + self.root],
                           capture_output=True, timeout=30)
        self.assertIn(b'bad magic', p.stderr)  # stats refuses to read it
        c2 = self.inet()
        self.assertEqual(readv(c2, b'f', [(0, 64 * KiB)]), data[:64 * KiB])
        c2.finish()
        st = stats(self.root)
        self.assertEqual(st['segment']['name'], name)
        self.assertEqual(st['counters']['shm_segments_replaced'], 1, st)
        self.assertEqual(st['counters']['cache_hits'], 0, st)  # nothing trusted from the old one
        self.assertEqual(st['counters']['requests'], 1, st)


class TestStats(ChainCase):

    def test_09_stats_sums_every_process_and_speaks_prometheus(self):
        self.put_file('f', b'x' * 5000)
        for _ in range(2):
            c = self.inet()
            for _ in range(3):
                self.assertEqual(get(c, b'f'), b'x' * 5000)
            c.finish()
        k = counters(self.root)
        self.assertEqual(k['requests'], 6, k)
        self.assertEqual(k['verbs']['get'], 6, k)
        self.assertEqual(k['store_opens'], 6, k)
        p = subprocess.run([harness.soukd_path(), 'stats', '--directory', self.root, '--prometheus'],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout.decode()
        # docs/metrics.md: _total, seconds, a root label on every sample.
        root = os.path.realpath(self.root)
        self.assertIn('\nsoukd_requests_total{root="%s"} 6\n' % root, text)
        self.assertIn('# TYPE soukd_cache_hits_total counter\n', text)
        self.assertIn('# TYPE soukd_cache_fragmentation gauge\n', text)
        # Levels among the declared counters ("(gauge)" in their help) are gauges.
        self.assertIn('# TYPE soukd_tcp_conns_live gauge\n', text)
        self.assertIn('# TYPE soukd_pool_req_live gauge\n', text)
        self.assertIn('soukd_verb_requests_total{root="%s",verb="get"} 6\n' % root, text)
        self.assertIn('soukd_request_duration_seconds_count{root="%s",family="vfs_read"} 6\n' % root, text)
        for line in text.splitlines():
            if not line.startswith('#'):
                self.assertIn('{root="%s"' % root, line)
        # A root nothing has served: zeros, and a note on stderr.
        other = make_tempdir('souk-chain-none-')
        try:
            p = subprocess.run([harness.soukd_path(), 'stats', '--directory', other],
                               capture_output=True, timeout=30)
            self.assertEqual(p.returncode, 0)
            self.assertIn(b'no soukd process has served', p.stderr)
            self.assertEqual(json.loads(p.stdout)['counters']['requests'], 0)
        finally:
            remove_tree(other)


if __name__ == '__main__':
    unittest.main()
