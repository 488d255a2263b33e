"""The souk client's User-Agent over HTTP: `souk/VERSION`, VERSION being the
CMake project version (the one source of truth, CMakeLists.txt), as a
server on loopback receives it. Under a second."""

import http.server
import os
import re
import subprocess
import threading
import unittest

import harness
import http_harness as hh

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def project_version():
    with open(os.path.join(REPO, 'CMakeLists.txt')) as f:
        m = re.search(r'project\(souk VERSION (\S+)', f.read())
    if not m:
        raise AssertionError('no project(souk VERSION ...) in CMakeLists.txt')
    return m.group(1)


class Recorder(http.server.BaseHTTPRequestHandler):
    seen = []

    def answer(self):
        Recorder.seen.append((self.command, self.path, self.headers.get('User-Agent')))
        n = int(self.headers.get('Content-Length') or 0)
        if n:
            self.rfile.read(n)
        self.send_response(404)
        self.send_header('Content-Length', '0')
        self.end_headers()

    do_GET = do_HEAD = do_POST = answer

    def log_message(self, *args):
        pass


class UserAgent(unittest.TestCase):

    def test_souk_sends_its_version(self):
        srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Recorder)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        try:
            url = 'bzr+http://127.0.0.1:%d/trunk/f' % srv.server_address[1]
            p = subprocess.run([hh.souk_path(), 'stat', url], capture_output=True, timeout=30)
        finally:
            srv.shutdown()
            srv.server_close()
            t.join(10)
        self.assertNotEqual(p.returncode, 0, 'a 404 is an error')
        self.assertIn(b'404', p.stderr)
        self.assertTrue(Recorder.seen, 'the server received no request')
        want = 'souk/' + project_version()
        for method, path, ua in Recorder.seen:
            self.assertEqual(ua, want, '%s %s' % (method, path))
        # soukd and souk report the same version.
        v = subprocess.run([harness.soukd_path(), '--version'], capture_output=True, timeout=10).stdout
        self.assertEqual(v.decode().strip(), 'soukd ' + project_version())


if __name__ == '__main__':
    unittest.main()
