"""`soukd cgi` without a web server: environment + stdin in, Status: +
headers + body out (as git's t5560 tests http-backend).

CONTENT_LENGTH missing, empty, malformed, overflowing, over the cap, and
larger than the body with stdin held open (must answer within its
deadline); non-POST on the smart path; PATH_INFO empty, without a leading
'/', or with traversal; REQUEST_URI minus SOUK_PREFIX; GET of files with
ranges; the golden smart requests; start-up cost.
"""

import os
import subprocess
import time
import unittest

import harness
import http_harness as hh
from harness import make_tempdir, remove_tree

TMP = None
ROOT = None
SMART = '/src/.bzr/smart'


def setUpModule():
    global TMP, ROOT
    harness.require_server('soukd')
    TMP = make_tempdir('souk-cgi-')
    ROOT = os.path.join(TMP, 'served')
    os.makedirs(os.path.join(ROOT, 'src', '.bzr'))
    with open(os.path.join(ROOT, 'src', '.bzr', 'branch-format'), 'wb') as f:
        f.write(b'Bazaar-NG meta directory, format 1\n')
    with open(os.path.join(ROOT, 'src', 'data.bin'), 'wb') as f:
        f.write(bytes(range(256)) * 40)


def tearDownModule():
    remove_tree(TMP)


def post_env(body_len=None, path=SMART, **extra):
    env = hh.cgi_env(ROOT, REQUEST_METHOD='POST', PATH_INFO=path, CONTENT_TYPE='application/octet-stream')
    if body_len is not None:
        env['CONTENT_LENGTH'] = body_len
    env.update(extra)
    return env


class TestCgiBody(unittest.TestCase):

    def test_exact_content_length(self):
        body = b'hello\n'
        r, rc, err, _ = hh.run_cgi(post_env(str(len(body))), stdin=body + b'trailing junk not read')
        self.assertEqual((rc, r.status, r.body), (0, 200, b'ok\x012\n'), err)
        self.assertEqual(r.header('Content-Type'), 'application/octet-stream')
        self.assertEqual(r.header('Content-Length'), '5')

    def test_missing_content_length_reads_to_eof(self):
        req = hh.V3([b'get', b'.bzr/branch-format'])
        r, rc, err, _ = hh.run_cgi(post_env(None), stdin=req)
        self.assertEqual((rc, r.status), (0, 200), err)
        self.assertEqual(r.body, hh.inet_reply(ROOT, hh.V3([b'get', b'src/.bzr/branch-format'])))

    def test_empty_content_length_reads_to_eof(self):
        r, _, err, _ = hh.run_cgi(post_env(''), stdin=b'hello\n')
        self.assertEqual((r.status, r.body), (200, b'ok\x012\n'), err)

    def test_malformed_content_length_is_400(self):
        for value in ('abc', '-1', '+6', ' 6', '6 ', '0x10', '1e3'):
            with self.subTest(value=value):
                r, rc, _, _ = hh.run_cgi(post_env(value), stdin=b'hello\n')
                self.assertEqual((rc, r.status), (0, 400))
                self.assertIn(b'CONTENT_LENGTH', r.body)

    def test_overflowing_content_length_is_400(self):
        for value in ('99999999999999999999', '18446744073709551616', '9' * 100):
            with self.subTest(value=value):
                r, _, _, _ = hh.run_cgi(post_env(value), stdin=b'hello\n')
                self.assertEqual(r.status, 400)

    def test_content_length_over_the_cap_is_413(self):
        r, _, _, _ = hh.run_cgi(post_env('1000'), stdin=b'x' * 1000, args=['--max-upload=100'])
        self.assertEqual(r.status, 413)
        r, _, _, _ = hh.run_cgi(post_env(None), stdin=b'x' * 1000, args=['--max-upload=100'])
        self.assertEqual(r.status, 413)
        env = post_env('1000', SOUK_OPTIONS='--max-upload=100')
        r, _, _, _ = hh.run_cgi(env, stdin=b'x' * 1000)
        self.assertEqual(r.status, 413)

    def test_short_body_then_eof_is_400(self):
        r, _, _, _ = hh.run_cgi(post_env('100'), stdin=b'hello\n')
        self.assertEqual(r.status, 400)
        self.assertIn(b'shorter', r.body)

    def test_short_body_with_stdin_held_open_times_out(self):
        """CONTENT_LENGTH larger than the body and stdin never closed: 408
        within --cgi-read-timeout, not a hang."""
        env = post_env('100', SOUK_OPTIONS='--cgi-read-timeout=1')
        t0 = time.monotonic()
        p = subprocess.Popen([harness.soukd_path(), 'cgi'], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            p.stdin.write(b'hello\n')
            p.stdin.flush()
            rc = p.wait(timeout=10)   # stdin still open: only the deadline ends it
            out = p.stdout.read()
        finally:
            if p.poll() is None:
                harness.stop_process(p)
            p.stdin.close()
            p.stdout.close()
            p.stderr.close()
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0)
        r = hh.parse_cgi_output(out)
        self.assertEqual(r.status, 408)
        self.assertGreaterEqual(elapsed, 0.9)
        self.assertLess(elapsed, 8)

    def test_incomplete_smart_request(self):
        req = hh.V3([b'hello'])[:-2]
        r, _, _, _ = hh.run_cgi(post_env(str(len(req))), stdin=req)
        self.assertEqual((r.status, r.body), (200, b'error\x01incomplete request\n'))


class TestCgiPaths(unittest.TestCase):

    def test_non_post_on_smart_is_405(self):
        for method in ('GET', 'PUT', 'DELETE', 'HEAD'):
            with self.subTest(method=method):
                env = hh.cgi_env(ROOT, REQUEST_METHOD=method, PATH_INFO=SMART)
                r, rc, _, _ = hh.run_cgi(env)
                self.assertEqual((rc, r.status), (0, 405))
                self.assertEqual(r.header('Allow'), 'POST')

    def test_missing_request_method_is_400(self):
        r, _, _, _ = hh.run_cgi(hh.cgi_env(ROOT, PATH_INFO=SMART))
        self.assertEqual(r.status, 400)

    def test_path_info_empty(self):
        r, _, _, _ = hh.run_cgi(hh.cgi_env(ROOT, REQUEST_METHOD='GET', PATH_INFO=''))
        self.assertEqual(r.status, 403)   # the root directory: no listings
        r, _, _, _ = hh.run_cgi(post_env('6', path=''), stdin=b'hello\n')
        self.assertEqual(r.status, 405)
        r, _, _, _ = hh.run_cgi(hh.cgi_env(ROOT, REQUEST_METHOD='GET', PATH_INFO=None))
        self.assertEqual(r.status, 403)

    def test_path_info_without_leading_slash_is_400(self):
        r, _, _, _ = hh.run_cgi(post_env('6', path='src/.bzr/smart'), stdin=b'hello\n')
        self.assertEqual(r.status, 400)
        r, _, _, _ = hh.run_cgi(hh.cgi_env(ROOT, REQUEST_METHOD='GET', PATH_INFO='src/data.bin'))
        self.assertEqual(r.status, 400)

    def test_traversal_in_path_info(self):
        outside = os.path.join(TMP, 'secret.txt')
        with open(outside, 'wb') as f:
            f.write(b'secret')
        for path in ('/../secret.txt', '/src/../../secret.txt', '/src/%2e%2e/%2e%2e/secret.txt'):
            with self.subTest(path=path):
                r, _, _, _ = hh.run_cgi(hh.cgi_env(ROOT, REQUEST_METHOD='GET', PATH_INFO=path))
                self.assertIn(r.status, (403, 404))
                self.assertNotIn(b'secret', r.body)
        r, _, _, _ = hh.run_cgi(post_env(None, path='/../.bzr/smart'), stdin=b'hello\n')
        self.assertEqual(r.status, 404)
        req = hh.V3([b'get', b'../../secret.txt'])
        r, _, _, _ = hh.run_cgi(post_env(None), stdin=req)
        self.assertEqual(r.status, 200)
        self.assertIn(b'PathNotChild', r.body)
        self.assertNotIn(b'secret\x00', r.body)
        self.assertNotIn(ROOT.encode(), r.body)

    def test_request_uri_minus_prefix(self):
        env = hh.cgi_env(ROOT, REQUEST_METHOD='GET', REQUEST_URI='/bzr/src/data%2Ebin?x=1', SOUK_PREFIX='/bzr',
                         PATH_INFO='/ignored')
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual((r.status, r.body), (200, bytes(range(256)) * 40))
        env['REQUEST_URI'] = '/other/src/data.bin'
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual(r.status, 404)
        env = post_env(None, REQUEST_URI='/bzr/src/.bzr/smart', SOUK_PREFIX='/bzr', PATH_INFO='/x')
        r, _, _, _ = hh.run_cgi(env, stdin=hh.V3([b'get', b'.bzr/branch-format']))
        self.assertEqual(r.body, hh.inet_reply(ROOT, hh.V3([b'get', b'src/.bzr/branch-format'])))

    def test_no_root_is_a_clear_500(self):
        env = hh.cgi_env(None, REQUEST_METHOD='GET', PATH_INFO='/src/data.bin')
        r, rc, err, _ = hh.run_cgi(env)
        self.assertEqual((rc, r.status), (0, 500))
        self.assertIn(b'SOUK_ROOT', err)
        env['SOUK_ROOT'] = os.path.join(TMP, 'missing')
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual(r.status, 500)

    def test_refusals_to_head_have_no_body(self):
        # The gateway's own refusals (found by fuzz.cgi): the headers of the
        # GET answer, Content-Length included, and no body.
        env = hh.cgi_env(ROOT, REQUEST_METHOD='HEAD', PATH_INFO='/src/data.bin', SOUK_PREFIX='/bzr')
        r, rc, _, _ = hh.run_cgi(env)
        self.assertEqual((rc, r.status, r.body), (0, 500, b''))
        self.assertEqual(r.header('Content-Length'), str(len(b'server misconfigured: no REQUEST_URI\n')))
        env = hh.cgi_env(ROOT, REQUEST_METHOD='HEAD', PATH_INFO='/src/data.bin', HTTP_X='x' * 70000)
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual((r.status, r.body), (431, b''))

    def test_detected_from_gateway_interface(self):
        env = hh.cgi_env(ROOT, REQUEST_METHOD='GET', PATH_INFO='/src/.bzr/branch-format')
        p = subprocess.run([harness.soukd_path()], env=env, capture_output=True, timeout=30)
        r = hh.parse_cgi_output(p.stdout)
        self.assertEqual((r.status, r.body), (200, b'Bazaar-NG meta directory, format 1\n'))
        # Apache may pass query words as arguments (RFC 3875 4.4): ignored.
        p = subprocess.run([harness.soukd_path(), 'word'], env=env, capture_output=True, timeout=30)
        self.assertEqual(hh.parse_cgi_output(p.stdout).status, 200)


class TestCgiGetAndWrites(unittest.TestCase):

    def test_get_ranges_and_head(self):
        data = bytes(range(256)) * 40
        env = hh.cgi_env(ROOT, REQUEST_METHOD='GET', PATH_INFO='/src/data.bin', HTTP_RANGE='bytes=0-9,100-109')
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual(r.status, 206)
        parts = hh.parse_multipart(r.header('Content-Type'), r.body)
        self.assertEqual([p[1] for p in parts], [data[0:10], data[100:110]])
        self.assertEqual(int(r.header('Content-Length')), len(r.body))
        env['HTTP_RANGE'] = 'bytes=20000-'
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual((r.status, r.header('Content-Range')), (416, 'bytes */10240'))
        del env['HTTP_RANGE']
        env['REQUEST_METHOD'] = 'HEAD'
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual((r.status, r.body, r.header('Content-Length')), (200, b'', '10240'))
        env['REQUEST_METHOD'] = 'GET'
        env['HTTP_IF_NONE_MATCH'] = r.header('ETag')
        r, _, _, _ = hh.run_cgi(env)
        self.assertEqual((r.status, r.body), (304, b''))

    def test_writes_need_allow_writes(self):
        req = hh.V3([b'put', b'new.txt', b''], body=b'content')
        r, _, _, _ = hh.run_cgi(post_env(None, REMOTE_USER='alice'), stdin=req)
        self.assertIn(b'ReadOnlyError', r.body)
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'src', 'new.txt')))
        # Writes allowed, but nobody logged in: PermissionDenied (docs/access-control.md).
        r, _, _, _ = hh.run_cgi(post_env(None, SOUK_ALLOW_WRITES='1'), stdin=req)
        self.assertIn(b'PermissionDenied', r.body)
        self.assertIn(b'writes need an authenticated user', r.body)
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'src', 'new.txt')))
        r, _, _, _ = hh.run_cgi(post_env(None, SOUK_ALLOW_WRITES='1', REMOTE_USER='alice'), stdin=req)
        self.assertEqual(r.status, 200)
        with open(os.path.join(ROOT, 'src', 'new.txt'), 'rb') as f:
            self.assertEqual(f.read(), b'content')
        os.unlink(os.path.join(ROOT, 'src', 'new.txt'))


if __name__ == '__main__':
    unittest.main()
