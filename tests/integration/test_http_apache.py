"""soukd behind Apache httpd (Debian apache2, mpm_event + mod_cgid running
`soukd cgi`), configured from scripts/deploy/apache-souk.conf, the file the
README shows. Workers and CGIs run as www-data.

* Breezy over bzr+http://: branch, branch from a shared repository, log,
  pull, checkout, info, cat.
* The golden wire cases through Apache equal soukd --inet's bytes.
* Writes with the souk client through a read-write Apache, verified on disk.
* GET of files through soukd cgi under /cgi/ (ranges included).
"""

import os
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
    hh.require(hh.APACHE)
    TMP = make_tempdir('souk-http-apache-')
    try:
        ENV = BrzEnv(os.path.join(TMP, 'client'))
        SRC = hh.build_sources(ENV, TMP)
    except BaseException:
        remove_tree(TMP)
        raise


def tearDownModule():
    remove_tree(TMP)


class ApacheMixin:

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-apache-case-')
        cls.apache = None
        try:
            cls.root = os.path.join(cls.tmp, 'served')
            cls.work = os.path.join(cls.tmp, 'work')
            os.mkdir(cls.root)
            os.mkdir(cls.work)
            hh.populate_served(ENV, SRC, cls.root)
            cls.apache = hh.Apache(cls.root).start()
            cls.base = cls.apache.base
            cls.env = ENV
            cls.src = SRC
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.apache is not None:
            cls.apache.stop()
            cls.apache = None
        remove_tree(cls.tmp)


class TestApacheBrz(ApacheMixin, hh.WorkflowMixin, unittest.TestCase):
    pass


class TestApacheWire(ApacheMixin, hh.GoldenMixin, unittest.TestCase):

    def test_cgi_prefix_serves_files(self):
        with open(os.path.join(self.root, 'src', 'README'), 'rb') as f:
            readme = f.read()
        r = hh.http_request(self.base, 'GET', '/cgi/src/README')
        self.assertEqual((r.status, r.body), (200, readme), self.apache.log())
        r = hh.http_request(self.base, 'GET', '/cgi/src/README', headers={'Range': 'bytes=0-1,4-5'})
        self.assertEqual(r.status, 206)
        parts = hh.parse_multipart(r.header('Content-Type'), r.body)
        self.assertEqual([p[1] for p in parts], [readme[0:2], readme[4:6]])
        self.assertEqual(hh.http_request(self.base, 'GET', '/cgi/nope').status, 404)


class TestApacheWrites(hh.BrzPushMixin, hh.WritesMixin, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-apache-w-')
        cls.wroot = os.path.join(cls.tmp, 'served')
        os.mkdir(cls.wroot)
        cls.apache = hh.Apache(cls.wroot, allow_writes=True).start()
        cls.wbase = cls.apache.base

    @classmethod
    def tearDownClass(cls):
        cls.apache.stop()
        remove_tree(cls.tmp)


if __name__ == '__main__':
    unittest.main()
