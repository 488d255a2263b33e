"""soukd's own HTTP carrier (`soukd serve --http`), with real peers.

* Breezy over bzr+http://: branch, branch from a shared repository, log,
  pull, checkout, info, cat — verified against the local source.
* The golden wire cases: each smart request POSTed over HTTP gets the same
  bytes soukd --inet answers (paths relative to the POSTed directory).
* Writes with the souk client through a read-write server, verified on disk.
* Plain GET/HEAD: ranges (single, multiple, suffix, unsatisfiable, over the
  cap), conditionals (ETag, Last-Modified, If-Range), zstd, limits, and
  Breezy's dumb transport (`readonly+http://`) branching through GETs only.
* HTTP and bzr:// TCP served by one process.
"""

import os
import socket
import unittest

import harness
import http_harness as hh
from harness import BrzEnv, make_tempdir, remove_tree, tree_files

TMP = None
ENV = None
SRC = None


def setUpModule():
    global TMP, ENV, SRC
    harness.require_server('soukd')
    TMP = make_tempdir('souk-http-soukd-')
    try:
        ENV = BrzEnv(os.path.join(TMP, 'client'))
        SRC = hh.build_sources(ENV, TMP)
    except BaseException:
        remove_tree(TMP)
        raise


def tearDownModule():
    remove_tree(TMP)


class ServedMixin:
    allow_writes = False
    extra = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-http-case-', )
        cls.server = None
        try:
            cls.root = os.path.join(cls.tmp, 'served')
            cls.work = os.path.join(cls.tmp, 'work')
            os.mkdir(cls.root)
            os.mkdir(cls.work)
            hh.populate_served(ENV, SRC, cls.root)
            cls.server = hh.SoukdHttp(cls.root, allow_writes=cls.allow_writes, extra=cls.extra).start()
            cls.base = cls.server.base
            cls.env = ENV
            cls.src = SRC
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.server is not None:
            cls.server.stop()
            cls.server = None
        remove_tree(cls.tmp)


class TestSoukdHttpBrz(ServedMixin, hh.WorkflowMixin, unittest.TestCase):
    pass


class TestSoukdHttpWire(ServedMixin, hh.GoldenMixin, unittest.TestCase):
    # a 1 MiB body cap and a small header block, to test both limits
    extra = ('--max-upload=1048576', '--http-max-header-bytes=16384')

    def test_posts_outside_the_root_are_refused(self):
        r = hh.smart_post(self.base, '/../.bzr/smart', b'hello\n')
        self.assertIn(r.status, (400, 404))
        r = hh.smart_post(self.base, '/%2e%2e/.bzr/smart', b'hello\n')
        self.assertIn(r.status, (400, 404))

    def test_post_over_max_upload_is_413(self):
        r = hh.smart_post(self.base, '/src/.bzr/smart', b'x' * ((1 << 20) + 1))
        self.assertEqual(r.status, 413, r)

    def test_header_block_too_large_is_431(self):
        headers = {'X-Pad-%d' % i: 'v' * 4000 for i in range(20)}
        r = hh.http_request(self.base, 'GET', '/src/README', headers=headers)
        self.assertEqual(r.status, 431, r)

    def test_keep_alive_many_requests_one_connection(self):
        import http.client
        conn = http.client.HTTPConnection('127.0.0.1', self.server.port, timeout=20)
        try:
            for i in range(20):
                conn.request('POST', '/src/.bzr/smart', body=b'hello\n')
                r = conn.getresponse()
                self.assertEqual((r.status, r.read()), (200, b'ok\x012\n'))
                conn.request('GET', '/src/README')
                r = conn.getresponse()
                self.assertEqual((r.status, r.read()), (200, hh.README_2))
            # still the first socket: http.client reconnects only when closed
            self.assertIsNotNone(conn.sock)
        finally:
            conn.close()

    def test_zstd_smart_response(self):
        import subprocess
        req = hh.V3([b'get', b'data.bin'])
        plain = hh.smart_post(self.base, '/src/.bzr/smart', req)
        z = hh.smart_post(self.base, '/src/.bzr/smart', req, headers={'Accept-Encoding': 'zstd'})
        self.assertIsNone(plain.header('Content-Encoding'))
        self.assertEqual(z.header('Content-Encoding'), 'zstd')
        self.assertLess(len(z.body), len(plain.body))
        d = subprocess.run(['zstd', '-d', '-c'], input=z.body, capture_output=True, timeout=30)
        self.assertEqual(d.returncode, 0, d.stderr)
        self.assertEqual(d.stdout, plain.body)
        # File ranges are probed as a GET's file is: an incompressible file
        # (a pack) goes out as it is, and a large one with a Content-Length
        # known in advance (sent with sendfile), not chunked.
        rand = os.urandom(600 * 1024)
        with open(os.path.join(self.root, 'src', 'rand.bin'), 'wb') as f:
            f.write(rand)
        for name, ranges in ((b'get', None), (b'readv', b'0,10\n4096,300000\n500000,100\n')):
            req = hh.V3([name, b'rand.bin'], body=ranges) if ranges else hh.V3([name, b'rand.bin'])
            r = hh.smart_post(self.base, '/src/.bzr/smart', req, headers={'Accept-Encoding': 'zstd'})
            self.assertIsNone(r.header('Content-Encoding'), name)
            self.assertIsNone(r.header('Transfer-Encoding'), name)
            self.assertEqual(r.header('Content-Length'), str(len(r.body)), name)
            self.assertIn(rand if ranges is None else rand[4096:304096], r.body, name)
            self.assertTrue(r.body.endswith(b'e'), name)  # the whole message, nothing after it


class TestSoukdHttpWrites(hh.WritesMixin, hh.BrzPushMixin, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-http-w-')
        cls.wroot = os.path.join(cls.tmp, 'served')
        os.mkdir(cls.wroot)
        cls.server = hh.SoukdHttp(cls.wroot, allow_writes=True).start()
        cls.wbase = cls.server.base

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        remove_tree(cls.tmp)

    def test_readonly_server_refuses_writes(self):
        ro = hh.SoukdHttp(self.wroot).start()
        try:
            p = self.souk('put', 'bzr+' + ro.base + '/x', '-', stdin=b'no')
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(b'read-only', p.stderr.lower())
            self.assertFalse(os.path.exists(os.path.join(self.wroot, 'x')))
        finally:
            ro.stop()


class TestSoukdHttpGet(ServedMixin, unittest.TestCase):
    extra = ('--http-max-ranges=8',)

    def setUp(self):
        self.path = '/src/.bzr/repository/pack-names'
        self.data_path = os.path.join(self.root, 'blob.bin')
        self.data = bytes((i * 7 + i // 251) & 0xff for i in range(100000))
        with open(self.data_path, 'wb') as f:
            f.write(self.data)

    def get(self, path, **headers):
        return hh.http_request(self.base, 'GET', path, headers=headers)

    def test_whole_file_and_head(self):
        r = self.get('/blob.bin')
        self.assertEqual((r.status, r.body), (200, self.data))
        self.assertEqual(r.header('Accept-Ranges'), 'bytes')
        h = hh.http_request(self.base, 'HEAD', '/blob.bin')
        self.assertEqual((h.status, h.body), (200, b''))
        self.assertEqual(h.header('Content-Length'), str(len(self.data)))
        self.assertEqual(h.header('ETag'), r.header('ETag'))

    def test_single_range(self):
        r = self.get('/blob.bin', Range='bytes=100-199')
        self.assertEqual((r.status, r.body), (206, self.data[100:200]))
        self.assertEqual(r.header('Content-Range'), 'bytes 100-199/100000')
        r = self.get('/blob.bin', Range='bytes=-10')
        self.assertEqual((r.status, r.body), (206, self.data[-10:]))
        r = self.get('/blob.bin', Range='bytes=99990-')
        self.assertEqual((r.status, r.body), (206, self.data[99990:]))
        r = self.get('/blob.bin', Range='bytes=99990-200000')
        self.assertEqual((r.status, r.body), (206, self.data[99990:]))

    def test_multiple_ranges(self):
        r = self.get('/blob.bin', Range='bytes=0-9, 500-599,99999-')
        self.assertEqual(r.status, 206)
        parts = hh.parse_multipart(r.header('Content-Type'), r.body)
        self.assertEqual([p[1] for p in parts], [self.data[0:10], self.data[500:600], self.data[99999:]])
        self.assertEqual([p[0]['content-range'] for p in parts],
                         ['bytes 0-9/100000', 'bytes 500-599/100000', 'bytes 99999-99999/100000'])
        self.assertEqual(int(r.header('Content-Length')), len(r.body))

    def test_unsatisfiable_and_partly_satisfiable(self):
        r = self.get('/blob.bin', Range='bytes=100000-')
        self.assertEqual(r.status, 416)
        self.assertEqual(r.header('Content-Range'), 'bytes */100000')
        r = self.get('/blob.bin', Range='bytes=5-9,200000-300000')
        self.assertEqual((r.status, r.body), (206, self.data[5:10]))
        r = self.get('/blob.bin', Range='bytes=9-5')
        self.assertEqual(r.status, 416)
        r = self.get('/blob.bin', Range='furlongs=1-2')   # not bytes: 416 (as cpp-httplib)
        self.assertEqual(r.status, 416)
        r = self.get('/blob.bin', Range='bytes=1-x')
        self.assertEqual(r.status, 416)

    def test_range_cap_and_overlap_serve_the_whole_file(self):
        many = 'bytes=' + ','.join('%d-%d' % (i * 10, i * 10 + 4) for i in range(9))
        r = self.get('/blob.bin', Range=many)
        self.assertEqual((r.status, r.body), (200, self.data))
        eight = 'bytes=' + ','.join('%d-%d' % (i * 10, i * 10 + 4) for i in range(8))
        self.assertEqual(self.get('/blob.bin', Range=eight).status, 206)
        overlap = 'bytes=0-99999,0-99999'
        r = self.get('/blob.bin', Range=overlap)
        self.assertEqual((r.status, r.body), (200, self.data))

    def test_conditionals(self):
        r = self.get('/blob.bin')
        etag, lm = r.header('ETag'), r.header('Last-Modified')
        self.assertTrue(etag.startswith('"'))
        self.assertEqual(self.get('/blob.bin', **{'If-None-Match': etag}).status, 304)
        self.assertEqual(self.get('/blob.bin', **{'If-None-Match': '"other", ' + etag}).status, 304)
        self.assertEqual(self.get('/blob.bin', **{'If-None-Match': '"other"'}).status, 200)
        self.assertEqual(self.get('/blob.bin', **{'If-Modified-Since': lm}).status, 304)
        self.assertEqual(self.get('/blob.bin', **{'If-Modified-Since': 'Thu, 01 Jan 1970 00:00:01 GMT'}).status,
                         200)
        r = self.get('/blob.bin', Range='bytes=0-3', **{'If-Range': etag})
        self.assertEqual((r.status, r.body), (206, self.data[:4]))
        r = self.get('/blob.bin', Range='bytes=0-3', **{'If-Range': '"stale"'})
        self.assertEqual((r.status, r.body), (200, self.data))
        r = self.get('/blob.bin', Range='bytes=0-3', **{'If-Range': lm})
        self.assertEqual(r.status, 206)
        # A changed file: new ETag, old one no longer matches.
        with open(self.data_path, 'ab') as f:
            f.write(b'more')
        os.utime(self.data_path, (1000000000, 1000000000))
        r = self.get('/blob.bin', **{'If-None-Match': etag})
        self.assertEqual((r.status, r.body), (200, self.data + b'more'))

    def test_zstd_get(self):
        import subprocess
        text = b'a line of text that compresses well\n' * 2000
        with open(os.path.join(self.root, 'text.txt'), 'wb') as f:
            f.write(text)
        r = self.get('/text.txt', **{'Accept-Encoding': 'gzip, zstd'})
        self.assertEqual(r.header('Content-Encoding'), 'zstd')
        self.assertLess(len(r.body), len(text) // 10)
        d = subprocess.run(['zstd', '-d', '-c'], input=r.body, capture_output=True, timeout=30)
        self.assertEqual(d.stdout, text)
        r = self.get('/text.txt', **{'Accept-Encoding': 'zstd;q=0, gzip'})
        self.assertIsNone(r.header('Content-Encoding'))
        self.assertEqual(r.body, text)
        r = self.get('/text.txt', Range='bytes=0-9', **{'Accept-Encoding': 'zstd'})
        self.assertEqual((r.status, r.body, r.header('Content-Encoding')), (206, text[:10], None))
        incompressible = os.urandom(5000)
        with open(os.path.join(self.root, 'rand.bin'), 'wb') as f:
            f.write(incompressible)
        r = self.get('/rand.bin', **{'Accept-Encoding': 'zstd'})
        self.assertEqual((r.header('Content-Encoding'), r.body), (None, incompressible))
        # Larger than the 64 KiB probe: its start decides, the rest is not read to compress.
        big_text = text * 20
        with open(os.path.join(self.root, 'big.txt'), 'wb') as f:
            f.write(big_text)
        r = self.get('/big.txt', **{'Accept-Encoding': 'zstd'})
        self.assertEqual(r.header('Content-Encoding'), 'zstd')
        self.assertLess(len(r.body), len(big_text) // 10)
        packed = os.urandom(64 * 1024) + big_text  # an incompressible start, like a pack
        with open(os.path.join(self.root, 'packed.bin'), 'wb') as f:
            f.write(packed)
        r = self.get('/packed.bin', **{'Accept-Encoding': 'zstd'})
        self.assertEqual((r.header('Content-Encoding'), r.body), (None, packed))

    def test_errors(self):
        self.assertEqual(self.get('/nope').status, 404)
        self.assertEqual(self.get('/src').status, 403)
        self.assertEqual(self.get('/src/../../etc/passwd').status, 404)
        os.symlink('/etc/passwd', os.path.join(self.root, 'link'))
        try:
            r = self.get('/link')
            self.assertEqual(r.status, 403)
            self.assertNotIn(b'root:', r.body)
        finally:
            os.unlink(os.path.join(self.root, 'link'))
        r = hh.http_request(self.base, 'POST', '/src/README', body=b'x')
        self.assertEqual(r.status, 405)
        self.assertEqual(r.header('Allow'), 'GET, HEAD')

    def test_dumb_brz_branch_uses_gets_only(self):
        out = os.path.join(self.work, 'dumb')
        before = self.server.log_text().count('\n')
        r = self.env.ok(self, ['branch', 'readonly+' + self.base + '/src', out], cwd=self.work)
        self.assertIn(b'Branched 3 revisions', r.stderr)
        self.assertEqual(tree_files(out), tree_files(SRC))
        lines = self.server.log_text().splitlines()[before:]
        posts = [ln for ln in lines if ' POST ' in ln]
        gets = [ln for ln in lines if ' GET ' in ln]
        self.assertEqual(posts, [])
        self.assertGreater(len(gets), 5)
        self.assertTrue(any(ln.endswith('-> 206') for ln in gets), 'no ranged GET:\n' + '\n'.join(gets))


class TestSoukdHttpAndTcpInOneProcess(unittest.TestCase):

    def test_both_carriers(self):
        tmp = make_tempdir('souk-http-both-')
        server = None
        try:
            root = os.path.join(tmp, 'served')
            os.mkdir(root)
            hh.populate_served(ENV, SRC, root)
            server = hh.SoukdHttp(root, with_tcp=True).start()
            log_http = ENV.ok(self, ['log', '--line', 'bzr+' + server.base + '/src'])
            log_tcp = ENV.ok(self, ['log', '--line', 'bzr://127.0.0.1:%d/src' % server.tcp_port])
            self.assertEqual(log_http.stdout, log_tcp.stdout)
            self.assertEqual(log_http.stdout.count(b'\n'), 3)
            with socket.create_connection(('127.0.0.1', server.tcp_port), timeout=10) as s:
                s.sendall(harness.V3_MARKER[:0] + b'hello\n')
                self.assertEqual(s.recv(100), b'ok\x012\n')
        finally:
            if server is not None:
                self.assertEqual(server.stop(), 0)
            remove_tree(tmp)


if __name__ == '__main__':
    unittest.main()
