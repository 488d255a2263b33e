"""HTTP/1.1 framing of soukd's own HTTP server, against nginx on the same
bytes (docs/protocol/http.md#framing), and its slow and idle clients
(docs/request-lifecycle.md#slow-and-idle-clients).

* Ambiguous framing (Content-Length with Transfer-Encoding, two
  Content-Lengths), HTTP/1.1 without Host and a malformed request line get
  400, as nginx answers them; every error answer has a correct
  Content-Length and closes the connection at once.
* Pipelined requests are answered in order; Connection: close is honoured;
  a chunked smart POST is answered as the same POST with a Content-Length;
  Expect: 100-continue gets its interim answer before the body is sent.
* More than --http-workers idle keep-alive connections, header bytes
  trickled in, POST bodies that never complete and malformed request
  lines all at once cannot keep a new client from its answer.

Every loop is bounded in count and in time.
"""
import os
import socket
import subprocess
import time
import unittest

import harness
import http_harness as hh
from harness import make_tempdir, remove_tree, wait_until

FILES = {'a.txt': b'first file\n', 'b.txt': b'second file, a little longer\n', 'c.txt': b'third\n' * 100}
HELLO_V2 = b'bzr request 2\nhello\n'  # a version-2 hello: its answer names the protocol
BOUND = 2.0  # seconds a normal request may take while others misbehave


def setUpModule():
    harness.require_server('soukd')


def read_until_closed(sock, timeout):
    """Everything the peer sends until it closes, and whether it closed within `timeout`."""
    sock.settimeout(0.2)
    data = b''
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # bounded: timeout
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def parse_responses(data):
    """Split a byte stream into (status, headers, body) responses (Content-Length or chunked)."""
    out = []
    for _ in range(64):  # bounded: 64 responses
        if not data:
            break
        head, sep, rest = data.partition(b'\r\n\r\n')
        if not sep:
            raise AssertionError('incomplete response head: %r' % data[:200])
        lines = head.split(b'\r\n')
        status = int(lines[0].split(b' ')[1])
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(b':')
            headers[k.strip().lower().decode()] = v.strip().decode()
        if status == 100:
            out.append((status, headers, b''))
            data = rest
            continue
        if 'content-length' in headers:
            n = int(headers['content-length'])
            body, data = rest[:n], rest[n:]
            if len(body) != n:
                raise AssertionError('body shorter than its Content-Length')
        elif headers.get('transfer-encoding') == 'chunked':
            body = b''
            for _ in range(100000):  # bounded: chunks
                size_line, _, rest = rest.partition(b'\r\n')
                size = int(size_line.split(b';')[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b'\r\n')
                    break
                body += rest[:size]
                rest = rest[size + 2:]
            data = rest
        else:
            body, data = rest, b''
        out.append((status, headers, body))
    return out


class FramingBase(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-framing-')
        cls.root = os.path.join(cls.tmp, 'root')
        os.mkdir(cls.root)
        for name, data in FILES.items():
            with open(os.path.join(cls.root, name), 'wb') as f:
                f.write(data)
        hh.make_world_readable(cls.tmp)
        cls.soukd = cls.nginx = None
        try:
            cls.soukd = hh.SoukdHttp(cls.root).start()
            cls.nginx = hh.Nginx(cls.root).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in (cls.soukd, cls.nginx):
            if s is not None:
                s.stop()
        remove_tree(cls.tmp)

    def servers(self):
        return [('soukd', self.soukd.port), ('nginx', self.nginx.port)]

    def send(self, port, raw, timeout=5.0):
        with socket.create_connection(('127.0.0.1', port), timeout=10) as s:
            s.sendall(raw)
            return read_until_closed(s, timeout)


class ErrorAnswers(FramingBase):

    def check_refused(self, raw, status=400):
        for name, port in self.servers():
            with self.subTest(server=name):
                t0 = time.monotonic()
                data, closed = self.send(port, raw, timeout=BOUND)
                self.assertTrue(closed, '%s kept the connection after an error answer' % name)
                self.assertLess(time.monotonic() - t0, BOUND)
                rs = parse_responses(data)
                self.assertEqual(len(rs), 1, data)
                self.assertEqual(rs[0][0], status, data)
                self.assertIn('content-length', rs[0][1])  # parse_responses checked its value

    def test_content_length_with_transfer_encoding(self):
        self.check_refused(b'POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n'
                           b'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n')

    def test_two_different_content_lengths(self):
        self.check_refused(b'POST /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!')

    def test_http11_without_host(self):
        self.check_refused(b'GET /a.txt HTTP/1.1\r\n\r\n')

    def test_malformed_request_line(self):
        self.check_refused(b'GARBAGE\r\n\r\n')

    def test_unknown_transfer_encoding(self):
        self.check_refused(b'POST /a.txt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n', status=501)


class Exchanges(FramingBase):

    def test_pipelined_requests_answered_in_order(self):
        raw = b''.join(b'GET /%s HTTP/1.1\r\nHost: x\r\n\r\n' % n.encode() for n in ('a.txt', 'b.txt', 'c.txt'))
        raw += b'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
        for name, port in self.servers():
            with self.subTest(server=name):
                data, closed = self.send(port, raw)
                self.assertTrue(closed, 'Connection: close was not honoured')
                rs = parse_responses(data)
                self.assertEqual([r[0] for r in rs], [200] * 4)
                self.assertEqual([r[2] for r in rs], [FILES['a.txt'], FILES['b.txt'], FILES['c.txt'], FILES['a.txt']])

    def test_pipelined_smart_posts(self):
        post = (b'POST /.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n' % len(HELLO_V2)) + HELLO_V2
        data, closed = self.send(self.soukd.port, post * 3 + b'GET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
        self.assertTrue(closed)
        rs = parse_responses(data)
        self.assertEqual([r[0] for r in rs], [200, 200, 200, 200])
        for r in rs[:3]:
            self.assertTrue(r[2].startswith(b'bzr response 2\n'), r[2])
        self.assertEqual(rs[3][2], FILES['b.txt'])

    def test_chunked_reply_ends_once(self):
        # A smart reply over 256 KiB whose length is not known in advance
        # (here: compressed as it streams) is chunked; its last chunk must go
        # out once, or the connection's next response starts with a stray
        # "0\r\n" (found by scripts/soak: http.client's BadStatusLine).
        # Uncompressed, the file's bytes have a Content-Length instead.
        big = bytes(range(256)) * 1536   # 384 KiB
        with open(os.path.join(self.root, 'big-reply.bin'), 'wb') as f:
            f.write(big)
        get = harness.v3_request([b'get', b'/big-reply.bin'])
        for coding in (b'zstd', b'identity'):
            post = (b'POST /.bzr/smart HTTP/1.1\r\nHost: x\r\nAccept-Encoding: %s\r\nContent-Length: %d\r\n\r\n'
                    % (coding, len(get)) + get)
            data, closed = self.send(self.soukd.port,
                                     post + b'GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
            self.assertTrue(closed)
            rs = parse_responses(data)
            self.assertEqual([r[0] for r in rs], [200, 200])
            body = rs[0][2]
            if coding == b'zstd':
                self.assertEqual(rs[0][1].get('transfer-encoding'), 'chunked')
                self.assertEqual(rs[0][1].get('content-encoding'), 'zstd')
                d = subprocess.run(['zstd', '-d', '-c'], input=body, capture_output=True, timeout=30)
                self.assertEqual(d.returncode, 0, d.stderr)
                body = d.stdout
            else:
                self.assertIsNone(rs[0][1].get('transfer-encoding'))
                self.assertEqual(rs[0][1].get('content-length'), str(len(body)))
            self.assertTrue(body.endswith(big + b'e'), 'the reply is not the whole smart reply')
            self.assertEqual(rs[1][2], FILES['a.txt'])

    def test_chunked_smart_post(self):
        by_length = (b'POST /.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n'
                     % len(HELLO_V2)) + HELLO_V2
        chunked = (b'POST /.bzr/smart HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n'
                   b'5;ext=1\r\n' + HELLO_V2[:5] + b'\r\n%x\r\n' % (len(HELLO_V2) - 5) + HELLO_V2[5:] +
                   b'\r\n0\r\nTrailer: x\r\n\r\n')
        a = parse_responses(self.send(self.soukd.port, by_length)[0])
        b = parse_responses(self.send(self.soukd.port, chunked)[0])
        self.assertEqual(len(a), 1)
        self.assertEqual(a[0][0], 200)
        self.assertEqual([(r[0], r[2]) for r in b], [(a[0][0], a[0][2])])

    def test_expect_100_continue(self):
        head = (b'POST /.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nExpect: 100-continue\r\n'
                b'Connection: close\r\n\r\n' % len(HELLO_V2))
        with socket.create_connection(('127.0.0.1', self.soukd.port), timeout=10) as s:
            s.sendall(head)
            s.settimeout(BOUND)
            interim = s.recv(100)
            self.assertEqual(interim, b'HTTP/1.1 100 Continue\r\n\r\n')
            s.sendall(HELLO_V2)
            data, closed = read_until_closed(s, 5)
        rs = parse_responses(data)
        self.assertEqual(rs[0][0], 200)
        self.assertTrue(rs[0][2].startswith(b'bzr response 2\n'))

    def test_expect_100_continue_not_wanted(self):
        # A 405 (not a smart path) needs no body: no 100 is sent, and the
        # connection closes (the body may still be on its way).
        raw = b'POST /nowhere/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n'
        data, closed = self.send(self.soukd.port, raw, timeout=BOUND)
        self.assertTrue(closed)
        rs = parse_responses(data)
        self.assertEqual([r[0] for r in rs], [405])


class Starvation(FramingBase):
    """Each pattern alone stopped every other client of the cpp-httplib
    server (8 connections were enough); now all of them together do not."""

    def test_misbehaving_clients_do_not_starve_a_new_one(self):
        socks = []

        def conn():
            s = socket.create_connection(('127.0.0.1', self.soukd.port), timeout=10)
            self.addCleanup(s.close)
            socks.append(s)
            return s

        n = 24  # three times --http-workers' default
        for _ in range(n):  # bounded: n
            s = conn()  # an idle keep-alive connection after one GET
            s.sendall(b'GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n')
            self.assertIn(b'200 OK', s.recv(4096))
        for _ in range(n):  # bounded: n
            conn().sendall(b'GET /a.txt HTTP/1.1\r\nHo')  # a head that trickles
        for _ in range(n):  # bounded: n
            conn().sendall(b'POST /.bzr/smart HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nbzr req')
        for _ in range(n):  # bounded: n
            conn().sendall(b'BAD\r\n\r\n')
        # The waiter holds them all; none has a worker.
        self.assertTrue(wait_until(lambda: harness.soukd_counters(self.root)
                                   .get('tcp_conns_arriving', 0) >= 2 * n, 5), self.soukd.log())
        for _ in range(3):  # bounded: 3
            t0 = time.monotonic()
            data, closed = self.send(self.soukd.port, b'GET /b.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
                                     timeout=BOUND)
            self.assertLess(time.monotonic() - t0, BOUND)
            self.assertEqual(parse_responses(data)[0][2], FILES['b.txt'])
            # A byte more from each trickler: still whole requests only.
            for s in socks[n:2 * n]:
                s.sendall(b's')


if __name__ == '__main__':
    unittest.main()
