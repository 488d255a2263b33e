"""soukd behind nginx + fcgiwrap (`soukd cgi`), configured from
scripts/deploy/nginx-souk.conf, the file the README shows.

* Breezy over bzr+http://: branch, branch from a shared repository, log,
  pull, checkout, info, cat (smart POSTs go to soukd cgi; nginx serves GETs).
* The golden wire cases through nginx + fcgiwrap equal soukd --inet's bytes.
* Writes with the souk client through a read-write nginx, verified on disk.
* Multi-range GETs: soukd's answers (its own HTTP carrier, and soukd cgi
  under nginx's /cgi/ prefix) equal nginx's own, byte for byte apart from
  the boundary string.
* HTTPS: the souk client against nginx's TLS port with a certificate the
  test makes.
"""

import os
import re
import subprocess
import unittest

import harness
import http_harness as hh
from harness import BrzEnv, make_tempdir, remove_tree

TMP = None
ENV = None
SRC = None


def setUpModule():
    global TMP, ENV, SRC
    harness.require_server('soukd')
    hh.require(hh.NGINX, hh.FCGIWRAP, hh.OPENSSL)
    TMP = make_tempdir('souk-http-nginx-')
    try:
        ENV = BrzEnv(os.path.join(TMP, 'client'))
        SRC = hh.build_sources(ENV, TMP)
    except BaseException:
        remove_tree(TMP)
        raise


def tearDownModule():
    remove_tree(TMP)


class NginxMixin:
    allow_writes = False

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-nginx-case-')
        cls.nginx = None
        try:
            cls.root = os.path.join(cls.tmp, 'served')
            cls.work = os.path.join(cls.tmp, 'work')
            os.mkdir(cls.root)
            os.mkdir(cls.work)
            hh.populate_served(ENV, SRC, cls.root)
            cls.nginx = hh.Nginx(cls.root, allow_writes=cls.allow_writes).start()
            cls.base = cls.nginx.base
            cls.env = ENV
            cls.src = SRC
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.nginx is not None:
            cls.nginx.stop()
            cls.nginx = None
        remove_tree(cls.tmp)


class TestNginxBrz(NginxMixin, hh.WorkflowMixin, unittest.TestCase):
    pass


class TestNginxWire(NginxMixin, hh.GoldenMixin, unittest.TestCase):

    def test_cgi_prefix_serves_files_and_smart(self):
        with open(os.path.join(self.root, 'src', 'README'), 'rb') as f:
            readme = f.read()
        r = hh.http_request(self.base, 'GET', '/cgi/src/README')
        self.assertEqual((r.status, r.body), (200, readme))
        self.assertIsNotNone(r.header('ETag'))   # soukd's answer, not nginx's static one
        r = hh.http_request(self.base, 'GET', '/cgi/src/README', headers={'Range': 'bytes=2-5'})
        self.assertEqual((r.status, r.body), (206, readme[2:6]))
        r = hh.smart_post(self.base, '/cgi/src/.bzr/smart', hh.V3([b'get', b'README']))
        self.assertEqual(r.body, hh.inet_reply(self.root, hh.V3([b'get', b'src/README'])))
        self.assertEqual(hh.http_request(self.base, 'GET', '/cgi/nope').status, 404)
        self.assertEqual(hh.http_request(self.base, 'GET', '/cgi/src/.bzr/smart').status, 405)


class TestNginxWrites(hh.WritesMixin, hh.BrzPushMixin, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-nginx-w-')
        cls.wroot = os.path.join(cls.tmp, 'served')
        os.mkdir(cls.wroot)
        cls.nginx = hh.Nginx(cls.wroot, allow_writes=True).start()
        cls.wbase = cls.nginx.base

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()
        remove_tree(cls.tmp)

    def test_https_client_readv_get_put(self):
        env = dict(os.environ, SOUK_CA_FILE=self.nginx.cert)
        data = bytes(range(256)) * 100
        with open(os.path.join(self.wroot, 'tls.bin'), 'wb') as f:
            f.write(data)
        url = self.nginx.tls_base + '/tls.bin'

        def souk(*args, stdin=b''):
            return subprocess.run([hh.souk_path()] + list(args), input=stdin, env=env,
                                  capture_output=True, timeout=60)
        p = souk('readv', url, '0:100', '5000:100', '25000:600')
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, data[0:100] + data[5000:5100] + data[25000:25600])
        p = souk('get', url)
        self.assertEqual((p.returncode, p.stdout), (0, data))
        p = souk('put', 'bzr+' + self.nginx.tls_base + '/tls-put.txt', '-', stdin=b'over tls\n')
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.wroot, 'tls-put.txt'), 'rb') as f:
            self.assertEqual(f.read(), b'over tls\n')
        # Without the CA, the self-signed certificate is refused.
        env.pop('SOUK_CA_FILE')
        env['SSL_CERT_FILE'] = '/dev/null'
        p = souk('get', url)
        self.assertEqual(p.returncode, 3, p.stderr)
        self.assertIn(b'certificate', p.stderr.lower())


def normalise_boundary(content_type, body):
    m = re.search(r'boundary=("?)([^";]+)\1', content_type)
    assert m, content_type
    return body.replace(m.group(2).encode(), b'BOUNDARY')


class TestNginxRangesMatchSoukd(unittest.TestCase):
    """The same files served by nginx itself, by soukd --http and by soukd
    cgi under nginx: multi-range answers equal byte for byte (boundary
    strings aside)."""

    CASES = [
        'bytes=0-0',
        'bytes=10-19',
        'bytes=0-9,20-29',
        'bytes=0-99,1000-1099,5000-',
        'bytes=-100',
        'bytes=100-199,-50',
        'bytes=0-4095,8192-12287,16384-20479,24576-28671',
        'bytes=70000-70010,0-5',
        'bytes=999999-',
    ]

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-nginx-ranges-')
        cls.nginx = cls.soukd = None
        try:
            cls.root = os.path.join(cls.tmp, 'served')
            os.mkdir(cls.root)
            cls.files = {
                'a.bin': os.urandom(100000),
                'small.txt': b'0123456789abcdef',
                'empty': b'',
            }
            for name, data in cls.files.items():
                with open(os.path.join(cls.root, name), 'wb') as f:
                    f.write(data)
            cls.nginx = hh.Nginx(cls.root).start()
            cls.soukd = hh.SoukdHttp(cls.root).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in (cls.nginx, cls.soukd):
            if s is not None:
                s.stop()
        cls.nginx = cls.soukd = None
        remove_tree(cls.tmp)

    def test_multi_range_bytes_equal(self):
        compared = 0
        for name in self.files:
            for rng in self.CASES:
                with self.subTest(file=name, range=rng):
                    ref = hh.http_request(self.nginx.base, 'GET', '/' + name, headers={'Range': rng})
                    for label, base, path in (('soukd --http', self.soukd.base, '/' + name),
                                              ('soukd cgi', self.nginx.base, '/cgi/' + name)):
                        got = hh.http_request(base, 'GET', path, headers={'Range': rng})
                        self.assertEqual(got.status, ref.status, '%s: %r vs nginx %r' % (label, got, ref))
                        if ref.status == 416:
                            self.assertEqual(got.header('Content-Range'), ref.header('Content-Range'))
                            continue
                        self.assertEqual(got.header('Content-Range'), ref.header('Content-Range'), label)
                        ct_ref, ct_got = ref.header('Content-Type'), got.header('Content-Type')
                        if ct_ref.startswith('multipart/byteranges'):
                            self.assertTrue(ct_got.startswith('multipart/byteranges'), label)
                            self.assertEqual(normalise_boundary(ct_got, got.body),
                                             normalise_boundary(ct_ref, ref.body), label)
                        else:
                            self.assertEqual(ct_got, ct_ref, label)
                            self.assertEqual(got.body, ref.body, label)
                        compared += 1
        self.assertGreater(compared, 30)


if __name__ == '__main__':
    unittest.main()
