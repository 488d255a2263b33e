"""soukd serve --fastcgi behind the real nginx and Apache, each in a copy of
Debian's stock configuration tree with the shipped files dropped in
(scripts/deploy/debian/: nginx sites-available/souk, apache2
conf-available/souk.conf), and the responder spoken to directly.

* nginx -> FastCGI -> soukd and Apache (mod_proxy_fcgi) -> FastCGI -> soukd:
  Breezy push (new, then more revisions), branch, pull and log over
  bzr+http://, checked against the source branch (same log with revision
  ids, same files, `brz check` clean).
* The FastCGI protocol itself: keep-alive connections (holding no worker),
  GET_VALUES, roles, one request per connection at a time, stalled bodies
  (small: closed by the waiter; large: 408), PARAMS limits, garbage, the
  web server's SOUK_* parameters ignored, the socket's mode, a stale
  socket replaced and a live one refused, the socket removed at exit.
"""

import os
import select
import socket
import stat
import struct
import subprocess
import time
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
    hh.require(hh.NGINX, hh.APACHE)
    TMP = make_tempdir('souk-fastcgi-')
    try:
        ENV = BrzEnv(os.path.join(TMP, 'client'))
        SRC = hh.build_sources(ENV, TMP)
    except BaseException:
        remove_tree(TMP)
        raise


def tearDownModule():
    remove_tree(TMP)


class FastcgiMixin:
    """soukd --fastcgi (writes allowed) serving a populated root, behind
    cls.make_server(root, socket) (a Debian-shaped nginx or Apache)."""

    prefix = ()

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-fastcgi-case-')
        cls.web = cls.soukd = None
        try:
            cls.root = os.path.join(cls.tmp, 'served')
            cls.work = os.path.join(cls.tmp, 'work')
            os.mkdir(cls.root)
            os.mkdir(cls.work)
            hh.populate_served(ENV, SRC, cls.root)
            sock = os.path.join(hh.socket_dir(cls.tmp), 'fcgi.sock')
            cls.soukd = hh.SoukdFastcgi(cls.root, sock, allow_writes=True, extra=list(cls.prefix)).start()
            cls.web = cls.make_server(cls.root, sock).start()
            cls.base = cls.wbase = cls.web.base
            cls.wroot = cls.root
            cls.env = ENV
            cls.src = SRC
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in (cls.web, cls.soukd):
            if s is not None:
                s.stop()
        cls.web = cls.soukd = None
        remove_tree(cls.tmp)

    def test_served_by_soukd(self):
        """The smart POST reaches soukd (its hello answer), not a static file."""
        r = hh.smart_post(self.web.origin, self.web.path_prefix + '/src/.bzr/smart', b'hello\n')
        self.assertEqual((r.status, r.body), (200, b'ok\x012\n'), self.web.log() + self.soukd.log())

    def test_brz_push_branch_log_pull(self):
        """Breezy over bzr+http:// through the web server and FastCGI: push a
        new branch, branch it back, push more revisions, pull them; logs
        (with revision ids) equal the source's and `brz check` is clean."""
        env = self.env
        src = os.path.join(self.work, 'push-src')
        env.ok(self, ['branch', '-q', self.src, src])
        url = 'bzr+' + self.base + '/pushed'
        served = os.path.join(self.root, 'pushed')
        hh.assert_one_connection(self, env.ok(self, ['push', url], cwd=src))
        mirror = os.path.join(self.work, 'mirror')
        r = env.ok(self, ['branch', url, mirror])
        hh.assert_one_connection(self, r)
        self.assertIn(b'Branched 3 revisions', r.stderr)
        with open(os.path.join(src, 'late.txt'), 'w') as f:
            f.write('late\n')
        env.ok(self, ['add', '-q'], cwd=src)
        env.ok(self, ['commit', '-q', '-m', 'late'], cwd=src)
        hh.assert_one_connection(self, env.ok(self, ['push', url], cwd=src))
        hh.assert_one_connection(self, env.ok(self, ['pull', url], cwd=mirror))
        want = env.ok(self, ['log', '--show-ids', src]).stdout
        self.assertIn(b'revision-id:', want)
        r = env.ok(self, ['log', '--show-ids', url])
        hh.assert_one_connection(self, r)
        self.assertEqual(r.stdout, want)
        self.assertEqual(env.ok(self, ['log', '--show-ids', mirror]).stdout, want)
        self.assertEqual(hh.tree_files(mirror), hh.tree_files(src))
        env.ok(self, ['check', served])


class TestNginxFastcgi(FastcgiMixin, unittest.TestCase):

    @staticmethod
    def make_server(root, sock):
        return hh.DebianNginx(root, sock)

    def test_static_files_are_nginx(self):
        with open(os.path.join(self.root, 'src', 'README'), 'rb') as f:
            readme = f.read()
        r = hh.http_request(self.base, 'GET', '/src/README', headers={'Range': 'bytes=2-5'})
        self.assertEqual((r.status, r.body), (206, readme[2:6]))
        self.assertIn('nginx', r.header('Server', ''))


class TestApacheFastcgi(FastcgiMixin, unittest.TestCase):
    prefix = ('--prefix', '/bzr')

    @staticmethod
    def make_server(root, sock):
        return hh.DebianApache(sock)

    def test_files_through_soukd(self):
        with open(os.path.join(self.root, 'src', 'README'), 'rb') as f:
            readme = f.read()
        r = hh.http_request(self.web.origin, 'GET', '/bzr/src/README', headers={'Range': 'bytes=2-5'})
        self.assertEqual((r.status, r.body), (206, readme[2:6]), self.web.log())
        self.assertIsNotNone(r.header('ETag'))
        self.assertEqual(hh.http_request(self.web.origin, 'GET', '/bzr/nope').status, 404)
        self.assertEqual(hh.http_request(self.web.origin, 'GET', '/bzr/src/.bzr/smart').status, 405)


class TestFastcgiProtocol(unittest.TestCase):
    """soukd --fastcgi spoken to directly, record by record."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-fastcgi-proto-')
        cls.root = os.path.join(cls.tmp, 'served')
        os.mkdir(cls.root)
        with open(os.path.join(cls.root, 'f.txt'), 'wb') as f:
            f.write(b'0123456789')
        cls.sock = os.path.join(cls.tmp, 'fcgi.sock')
        cls.soukd = hh.SoukdFastcgi(cls.root, cls.sock, extra=['--fastcgi-max-params-bytes=2048', '--fastcgi-workers=4',
                                                          '--request-timeout=2']).start()

    @classmethod
    def tearDownClass(cls):
        cls.soukd.stop()
        remove_tree(cls.tmp)

    def connect(self):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(20)
        s.connect(self.sock)
        self.addCleanup(s.close)
        return s

    def get(self, s, rid, uri, keep=True, extra=None):
        params = {'REQUEST_METHOD': 'GET', 'REQUEST_URI': uri}
        params.update(extra or {})
        s.sendall(hh.fcgi_begin(rid, keep=keep) + hh.fcgi_params(rid, params) + hh.fcgi_stdin(rid, b''))
        return hh.fcgi_response(s, rid)

    def test_keep_conn_serves_many_requests(self):
        s = self.connect()
        for i in range(5):
            out, end = self.get(s, 1 + i % 2, '/f.txt', extra={'HTTP_RANGE': 'bytes=%d-%d' % (i, i + 1)})
            self.assertEqual(end, (0, 0))
            self.assertTrue(out.startswith(b'Status: 206'), out)
            self.assertTrue(out.endswith(b'0123456789'[i:i + 2]), out)
        body = hh.V3([b'hello'])
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': str(len(body))}) +
            hh.fcgi_stdin(1, body))
        out, end = hh.fcgi_response(s, 1)
        self.assertEqual(out.split(b'\r\n\r\n', 1)[1], hh.inet_reply(self.root, body))

    def test_kept_alive_connections_hold_no_worker(self):
        """Six kept-alive connections, four workers: all six are answered
        and stay open (idle, they wait in the waiter, not in a worker); a
        seventh is served while they idle, and each of the six serves
        again (docs/protocol/fastcgi.md#connections-and-workers)."""
        conns = [self.connect() for _ in range(6)]
        for s in conns:
            s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {'REQUEST_METHOD': 'GET', 'REQUEST_URI': '/f.txt'}) +
                      hh.fcgi_stdin(1, b''))
        for s in conns:
            out, end = hh.fcgi_response(s, 1)
            self.assertEqual(end, (0, 0))
            self.assertTrue(out.endswith(b'0123456789'))
        t0 = time.monotonic()
        out, end = self.get(self.connect(), 1, '/f.txt')
        self.assertTrue(out.startswith(b'Status: 200'))
        self.assertLess(time.monotonic() - t0, 2)
        for s in conns:
            self.assertEqual(select.select([s], [], [], 0)[0], [], 'a kept-alive connection was closed')
            out, end = self.get(s, 2, '/f.txt')
            self.assertEqual(end, (0, 0))
            self.assertTrue(out.endswith(b'0123456789'))

    def test_without_keep_conn_closes(self):
        s = self.connect()
        out, end = self.get(s, 1, '/f.txt', keep=False)
        self.assertTrue(out.startswith(b'Status: 200'))
        self.assertEqual(s.recv(100), b'')

    def test_get_values_and_unknown_type(self):
        s = self.connect()
        s.sendall(hh.fcgi_record(9, 0, hh.fcgi_pair(b'FCGI_MPXS_CONNS', b'') + hh.fcgi_pair(b'FCGI_MAX_REQS', b'')))
        rtype, rid, content = hh.fcgi_read_record(s)
        self.assertEqual((rtype, rid), (10, 0))
        self.assertEqual(content, hh.fcgi_pair(b'FCGI_MPXS_CONNS', b'0') + hh.fcgi_pair(b'FCGI_MAX_REQS', b'4'))
        s.sendall(hh.fcgi_record(99, 0, b''))
        rtype, rid, content = hh.fcgi_read_record(s)
        self.assertEqual((rtype, content[0]), (11, 99))

    def test_unknown_role_and_multiplexing_refused(self):
        s = self.connect()
        s.sendall(hh.fcgi_begin(3, role=2))
        self.assertEqual(hh.fcgi_response(s, 3), (b'', (0, 3)))   # UNKNOWN_ROLE
        # A second request while one is open: CANT_MPX_CONN, the first still answered.
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_begin(2))
        self.assertEqual(hh.fcgi_response(s, 2), (b'', (0, 1)))
        s.sendall(hh.fcgi_params(1, {'REQUEST_METHOD': 'GET', 'REQUEST_URI': '/f.txt'}) + hh.fcgi_stdin(1, b''))
        out, end = hh.fcgi_response(s, 1)
        self.assertTrue(out.endswith(b'0123456789'))

    def test_abort_during_body(self):
        s = self.connect()
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': '1000'}) +
            hh.fcgi_record(5, 1, b'bzr message 3 (bzr 1.6)\n') + hh.fcgi_record(2, 1, b''))
        self.assertEqual(hh.fcgi_response(s, 1), (b'', (1, 0)))
        out, end = self.get(s, 1, '/f.txt')   # the connection still serves
        self.assertTrue(out.startswith(b'Status: 200'))

    def test_stalled_small_body_waits_in_the_waiter_then_closes(self):
        """A request whose STDIN stops short waits in the waiter (no worker)
        until --request-timeout (2 s) from its first byte, then its
        connection closes (docs/request-lifecycle.md#slow-and-idle-clients)."""
        before = harness.soukd_counters(self.root)['request_timeouts']
        s = self.connect()
        t0 = time.monotonic()
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': '100'}) +
            hh.fcgi_record(5, 1, b'bzr message 3'))
        try:
            data = s.recv(100)
        except ConnectionResetError:   # closed with the request's bytes unread
            data = b''
        self.assertEqual(data, b'')
        self.assertGreater(time.monotonic() - t0, 1.5)
        self.assertLess(time.monotonic() - t0, 10)
        self.assertEqual(harness.soukd_counters(self.root)['request_timeouts'], before + 1)

    def test_stalled_large_body_is_408_and_the_connection_goes_on(self):
        """A body beyond --arrival-bytes streams to a worker; stalled, it is
        answered 408 at --request-timeout and the connection goes on."""
        s = self.connect()
        t0 = time.monotonic()
        first = b'bzr message 3 (bzr 1.6)\n' + b'x' * 40000
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': '100000'}) +
            hh.fcgi_record(5, 1, first))
        out, end = hh.fcgi_response(s, 1)
        self.assertTrue(out.startswith(b'Status: 408'), out)
        self.assertEqual(end, (0, 0))
        self.assertLess(time.monotonic() - t0, 15)
        s.sendall(hh.fcgi_record(5, 1, b'x' * (100000 - len(first))) + hh.fcgi_record(5, 1, b''))   # late: skipped
        out, end = self.get(s, 1, '/f.txt')
        self.assertTrue(out.endswith(b'0123456789'), out)

    def test_souk_params_ignored_and_paths_jailed(self):
        s = self.connect()
        out, _ = self.get(s, 1, '/passwd', extra={'SOUK_ROOT': '/etc', 'SOUK_ALLOW_WRITES': '1'})
        self.assertTrue(out.startswith(b'Status: 404'), out)
        out, _ = self.get(s, 1, '/../../etc/passwd')
        self.assertNotIn(b'root:', out)
        body = hh.V3([b'put', b'x', b''], body=b'data')
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {
            'REQUEST_METHOD': 'POST', 'REQUEST_URI': '/.bzr/smart', 'CONTENT_LENGTH': str(len(body)),
            'SOUK_ALLOW_WRITES': '1'}) + hh.fcgi_stdin(1, body))
        out, _ = hh.fcgi_response(s, 1)
        self.assertIn(b'ReadOnlyError', out)
        self.assertFalse(os.path.exists(os.path.join(self.root, 'x')))

    def test_params_over_limit_and_missing_uri(self):
        s = self.connect()
        out, _ = self.get(s, 1, '/f.txt', extra={'HTTP_X_BIG': 'x' * 3000})
        self.assertTrue(out.startswith(b'Status: 431'), out)
        s = self.connect()
        s.sendall(hh.fcgi_begin(1) + hh.fcgi_params(1, {'REQUEST_METHOD': 'GET'}) + hh.fcgi_stdin(1, b''))
        out, _ = hh.fcgi_response(s, 1)
        self.assertTrue(out.startswith(b'Status: 500'), out)

    def test_garbage_closes_the_connection(self):
        for junk in (b'GET / HTTP/1.1\r\nHost: x\r\n\r\n', b'\x01\x04\x00\x01\x00\x10\x00\x00' + b'\xff' * 16 +
                     b'\x01\x04\x00\x01\x00\x00\x00\x00'):
            s = self.connect()
            s.sendall(hh.fcgi_begin(1) + junk if junk.startswith(b'\x01') else junk)
            data = b''
            for _ in range(100):  # bounded
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            if junk.startswith(b'GET'):
                self.assertEqual(data, b'')
            else:
                self.assertIn(b'Status: 431', data)   # the malformed PARAMS block
        # Still serving.
        out, _ = self.get(self.connect(), 1, '/f.txt')
        self.assertTrue(out.startswith(b'Status: 200'))

    def test_tcp_address(self):
        """--fastcgi ADDR:PORT serves the same requests over TCP."""
        for _attempt in range(5):   # bounded: another process may take the free port first
            port = harness.free_port()
            log = os.path.join(self.tmp, 'tcp.log')
            with open(log, 'wb') as f:
                proc = subprocess.Popen([harness.soukd_path(), 'serve', '--fastcgi', '127.0.0.1:%d' % port,
                                         '--directory=' + self.root], stdout=f, stderr=f,
                                        preexec_fn=harness._pdeathsig)
            try:
                hh.wait_port(port, proc, hh.START_TIMEOUT, 'soukd --fastcgi TCP', lambda: harness.read_tail(log))
            except harness.HarnessError as e:
                harness.stop_process(proc)
                if 'Address already in use' in str(e) or 'cannot listen' in str(e):
                    continue
                raise
            try:
                s = socket.create_connection(('127.0.0.1', port), timeout=20)
                self.addCleanup(s.close)
                out, end = self.get(s, 1, '/f.txt')
                self.assertEqual(end, (0, 0))
                self.assertTrue(out.endswith(b'0123456789'), out)
            finally:
                self.assertEqual(harness.stop_process(proc), 0)
            return
        self.fail('no free port for soukd --fastcgi after 5 tries')

    def test_socket_mode_stale_live_and_removal(self):
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        # A live socket is never taken over.
        p = subprocess.run([harness.soukd_path(), 'serve', '--fastcgi', 'unix:' + self.sock,
                            '--directory=' + self.root], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 1)
        self.assertIn(b'another server is listening', p.stderr)
        # A regular file is never replaced.
        other = os.path.join(self.tmp, 'not-a-socket')
        with open(other, 'w') as f:
            f.write('keep me')
        p = subprocess.run([harness.soukd_path(), 'serve', '--fastcgi', 'unix:' + other,
                            '--directory=' + self.root], capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 1)
        with open(other) as f:
            self.assertEqual(f.read(), 'keep me')
        # A stale socket (its server died) is replaced; mode as asked; removed at exit.
        stale = os.path.join(self.tmp, 'stale.sock')
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        srv = hh.SoukdFastcgi(self.root, stale, extra=['--fastcgi-socket-mode', '0600']).start()
        try:
            self.assertEqual(stat.S_IMODE(os.stat(stale).st_mode), 0o600)
            c = socket.socket(socket.AF_UNIX)
            c.settimeout(20)
            c.connect(stale)
            out, _ = self.get(c, 1, '/f.txt')
            c.close()
            self.assertTrue(out.startswith(b'Status: 200'))
        finally:
            self.assertEqual(srv.stop(), 0)
        self.assertFalse(os.path.exists(stale))


if __name__ == '__main__':
    unittest.main()
