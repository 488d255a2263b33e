"""The access log (docs/access-log.md): one line per request on every
carrier (bzr:// TCP, --inet, HTTP, CGI), parsed by the documented format
with every field checked; and the logs' destinations: `soukd serve --inet`
writes nothing to stderr by default, a refused CGI write leaves an error-log
line, -v and -v -v differ.

No brz: raw requests through the harness's wire helpers, so the file runs
in a few seconds.
"""

import datetime
import os
import re
import subprocess
import time
import unittest

import harness
import http_harness as hh
from harness import InetConn, Server, call, make_tempdir, remove_tree

# docs/access-log.md#fields: eleven space-separated fields.
LINE = re.compile(
    r'^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) (?P<carrier>tcp|inet|http|cgi) (?P<peer>\S+) '
    r'(?P<user>\S+) (?P<proto>[123]|-) (?P<verb>\S+) (?P<path>\S+) (?P<result>\S+) (?P<bytes_in>\d+) '
    r'(?P<bytes_out>\d+) (?P<duration>\d+\.\d{6})$')


def unescape(field):
    """A field's value: None for "-", \\xHH decoded (docs/access-log.md#escaping)."""
    if field == '-':
        return None
    out = bytearray()
    i = 0
    while i < len(field):  # bounded: i grows every pass
        if field.startswith('\\x', i):
            out.append(int(field[i + 2:i + 4], 16))
            i += 4
        else:
            out.append(ord(field[i]))
            i += 1
    return bytes(out).decode('utf-8', 'replace')


def parse(line):
    m = LINE.match(line)
    if not m:
        raise AssertionError('not an access-log line: %r' % line)
    d = m.groupdict()
    for k in ('peer', 'user', 'verb', 'path', 'result'):
        d[k] = unescape(d[k])
    d['bytes_in'] = int(d['bytes_in'])
    d['bytes_out'] = int(d['bytes_out'])
    d['duration'] = float(d['duration'])
    d['time'] = datetime.datetime.strptime(d['time'], '%Y-%m-%dT%H:%M:%S.%fZ').replace(
        tzinfo=datetime.timezone.utc)
    return d


def read_text(path):
    with open(path) as f:
        return f.read()


def by_request(lines):
    """The parsed records of `lines` keyed by (verb, path): each request's
    line is written when it ends, so requests on different connections (or
    workers) may log in either order."""
    recs = {}
    for ln in lines:
        rec = parse(ln)
        recs[(rec['verb'], rec['path'])] = rec
    return recs


def read_lines(path, want, timeout=5):
    """The access log's lines once it has `want` of them (bounded wait)."""
    deadline = time.monotonic() + timeout
    lines = []
    while time.monotonic() < deadline:  # bounded: timeout
        lines = read_text(path).splitlines()
        if len(lines) >= want:
            return lines
        time.sleep(0.02)
    raise AssertionError('access log %s has %d lines, expected %d: %r' % (path, len(lines), want, lines))


class AccessLog(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        harness.require_server('soukd')
        cls.tmp = make_tempdir('souk-access-')
        cls.root = os.path.join(cls.tmp, 'root')
        os.makedirs(os.path.join(cls.root, 'trunk'))
        with open(os.path.join(cls.root, 'trunk', 'a file'), 'wb') as f:
            f.write(b'0123456789')

    @classmethod
    def tearDownClass(cls):
        harness.remove_stats_segment(cls.root)
        remove_tree(cls.tmp)

    def log_path(self, name):
        return os.path.join(self.tmp, name + '.log')

    def check(self, rec, carrier, peer, user, proto, verb, path, result, t0):
        self.assertEqual(rec['carrier'], carrier)
        self.assertEqual(rec['peer'], peer)
        self.assertEqual(rec['user'], user)
        self.assertEqual(rec['proto'], proto)
        self.assertEqual(rec['verb'], verb)
        self.assertEqual(rec['path'], path)
        self.assertEqual(rec['result'], result)
        now = datetime.datetime.now(datetime.timezone.utc)
        self.assertLessEqual(t0 - datetime.timedelta(seconds=1), rec['time'])
        self.assertLessEqual(rec['time'], now + datetime.timedelta(seconds=1))
        self.assertLess(rec['duration'], 5.0)
        print('\n  %s line: ok' % carrier)

    def test_tcp(self):
        log = self.log_path('tcp')
        t0 = datetime.datetime.now(datetime.timezone.utc)
        srv = Server(self.root, limits={'access-log': log}).start()
        try:
            with srv.connect() as c:
                r = call(c, b'get', b'trunk/a file')
                self.assertTrue(r.success, r)
                r = call(c, b'get', b'trunk/missing')
                self.assertFalse(r.success, r)
                local_port = c.sock.getsockname()[1]
            lines = read_lines(log, 2)
        finally:
            srv.stop()
        recs = by_request(lines)
        ok, missing = recs[('get', 'trunk/a file')], recs[('get', 'trunk/missing')]
        self.check(ok, 'tcp', '127.0.0.1:%d' % local_port, None, '3', 'get', 'trunk/a file', 'ok', t0)
        self.assertGreater(ok['bytes_in'], 20)
        self.assertGreater(ok['bytes_out'], 10)  # the file's 10 bytes and the framing
        self.check(missing, 'tcp', '127.0.0.1:%d' % local_port, None, '3', 'get', 'trunk/missing', 'NoSuchFile', t0)
        self.assertIn('\\x20', lines[0].split(' ')[6], 'the space in the path is escaped')
        print('  e.g. ' + lines[0])

    def inet_env(self, d):
        env = harness.server_env(d)
        env['SSH_CONNECTION'] = '192.0.2.7 50022 192.0.2.1 22'
        env['USER'] = 'alice'
        env.pop('JOURNAL_STREAM', None)
        return env

    def test_inet(self):
        log = self.log_path('inet')
        t0 = datetime.datetime.now(datetime.timezone.utc)
        c = InetConn(self.root, extra_args=['--access-log', log], env=self.inet_env(self.tmp), log_dir=self.tmp)
        try:
            r = call(c, b'hello', version=2)
            self.assertTrue(r.success, r)
            self.assertEqual(c.finish(), 0)
            with open(c.stderr_path, 'rb') as f:
                stderr = f.read()
        finally:
            c.close()
        lines = read_lines(log, 1)
        rec = parse(lines[0])
        self.check(rec, 'inet', '192.0.2.7:50022', 'alice', '2', 'hello', None, 'ok', t0)
        self.assertEqual(rec['bytes_in'], len(b'bzr request 2\nhello\n'))
        self.assertEqual(rec['bytes_out'], len(b'bzr response 2\nsuccess\nok\x012\n'))
        self.assertEqual(stderr, b'', 'soukd --inet wrote to stderr (the SSH user sees it)')
        print('  e.g. ' + lines[0])

    def test_inet_stderr_silent_by_default(self):
        # No --log, no --access-log: nothing at all on stderr, even the
        # start-up info line (a new shared segment) and a request's failure.
        root = os.path.join(self.tmp, 'quiet-root')
        os.makedirs(root)
        try:
            req = harness.v12_request(2, [b'hello']) + harness.v12_request(2, [b'get', b'nothing'])
            p = subprocess.run([harness.soukd_path(), 'serve', '--inet', '--directory=' + root],
                               input=req, capture_output=True, timeout=30, env=self.inet_env(self.tmp))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stdout.startswith(b'bzr response 2\nsuccess\n'), p.stdout)
            self.assertIn(b'NoSuchFile', p.stdout)
            self.assertEqual(p.stderr, b'')
            # Asked for: -v --log=stderr does write there.
            p = subprocess.run([harness.soukd_path(), 'serve', '--inet', '--directory=' + root, '--log=stderr',
                                '-v', '-v', '--access-log=off'],
                               input=req, capture_output=True, timeout=30, env=self.inet_env(self.tmp))
            self.assertIn(b"trace: 192.0.2.7:50022: ('get', 'nothing') -> ('NoSuchFile', 'nothing')", p.stderr)
        finally:
            harness.remove_stats_segment(root)

    def test_journal_priority_prefixes(self):
        # stderr is the journal (JOURNAL_STREAM names its device:inode): each
        # line starts with its sd-daemon priority.
        err_path = self.log_path('journal')
        req = harness.v12_request(2, [b'hello']) + harness.v12_request(2, [b'mkdir', b'x', b''])
        with open(err_path, 'wb') as err:
            st = os.fstat(err.fileno())
            env = self.inet_env(self.tmp)
            env['JOURNAL_STREAM'] = '%d:%d' % (st.st_dev, st.st_ino)
            p = subprocess.run([harness.soukd_path(), 'serve', '--inet', '--directory=' + self.root,
                                '--log=stderr', '--access-log=stderr'],
                               input=req, stdout=subprocess.PIPE, stderr=err, timeout=30, env=env)
        self.assertEqual(p.returncode, 0)
        lines = read_text(err_path).splitlines()
        access = [ln for ln in lines if ' inet ' in ln]
        self.assertEqual(len(access), 2, lines)
        for ln in access:
            self.assertTrue(ln.startswith('<6>'), ln)
            parse(ln[3:])
        self.assertTrue(any(ln.startswith('<4>') and 'warn: 192.0.2.7:50022: user alice mkdir x refused' in ln
                            for ln in lines), lines)
        # Without the journal: no prefixes.
        with open(err_path, 'wb') as err:
            env['JOURNAL_STREAM'] = '1:1'
            subprocess.run([harness.soukd_path(), 'serve', '--inet', '--directory=' + self.root,
                            '--log=stderr', '--access-log=stderr'],
                           input=req, stdout=subprocess.PIPE, stderr=err, timeout=30, env=env)
        for ln in read_text(err_path).splitlines():
            self.assertFalse(ln.startswith('<'), ln)

    def test_http(self):
        log = self.log_path('http')
        t0 = datetime.datetime.now(datetime.timezone.utc)
        srv = hh.SoukdHttp(self.root, extra=['--access-log', log]).start()
        try:
            body = harness.v3_request([b'get', b'a file'])
            r = hh.smart_post(srv.base, '/trunk/.bzr/smart', body)
            self.assertEqual(r.status, 200)
            g = hh.http_request(srv.base, 'GET', '/trunk/a%20file')
            self.assertEqual(g.status, 200)
            n = hh.http_request(srv.base, 'GET', '/trunk/nothing')
            self.assertEqual(n.status, 404)
            lines = read_lines(log, 3)
            text = srv.log_text()
        finally:
            srv.stop()
        recs = by_request(lines)
        smart, get, missing = recs[('get', 'a file')], recs[('GET', '/trunk/a file')], recs[('GET', '/trunk/nothing')]
        self.assertRegex(smart['peer'], r'^127\.0\.0\.1:\d+$')
        self.check(smart, 'http', smart['peer'], None, '3', 'get', 'a file', 'ok', t0)
        self.assertEqual(smart['bytes_in'], len(body))
        self.assertGreater(smart['bytes_out'], 10)
        self.check(get, 'http', get['peer'], None, '-', 'GET', '/trunk/a file', 'ok', t0)
        self.assertEqual(get['bytes_out'], 10)
        self.check(missing, 'http', missing['peer'], None, '-', 'GET', '/trunk/nothing', 'http404', t0)
        # -v -v (the harness's flags): the request trace is in the error log.
        self.assertIn("trace: %s: ('get', 'a file') -> ('ok')" % smart['peer'], text)
        print('  e.g. ' + lines[0] + '\n  e.g. ' + lines[1])

    def test_cgi(self):
        log = self.log_path('cgi')
        t0 = datetime.datetime.now(datetime.timezone.utc)
        body = harness.v3_request([b'get', b'a file'])
        env = hh.cgi_env(self.root, REQUEST_METHOD='POST', PATH_INFO='/trunk/.bzr/smart',
                         REQUEST_URI='/trunk/.bzr/smart', CONTENT_LENGTH=str(len(body)),
                         REMOTE_ADDR='198.51.100.9', REMOTE_PORT='40404', REMOTE_USER='bob smith')
        ans, rc, stderr, _ = hh.run_cgi(env, stdin=body, args=['--access-log', log])
        self.assertEqual((ans.status, rc), (200, 0), stderr)
        rec = parse(read_lines(log, 1)[0])
        self.check(rec, 'cgi', '198.51.100.9:40404', 'bob smith', '3', 'get', 'a file', 'ok', t0)
        self.assertEqual(rec['bytes_in'], len(body))
        self.assertEqual(rec['bytes_out'], len(ans.body))
        self.assertEqual(stderr, b'')
        print('  e.g. ' + read_lines(log, 1)[0])

    def test_cgi_refused_write_is_logged(self):
        log = self.log_path('cgi-refused')
        body = harness.v3_request([b'mkdir', b'newdir', b''])
        env = hh.cgi_env(self.root, REQUEST_METHOD='POST', PATH_INFO='/.bzr/smart', CONTENT_LENGTH=str(len(body)),
                         REMOTE_ADDR='198.51.100.9', REMOTE_PORT='40405')
        ans, rc, stderr, _ = hh.run_cgi(env, stdin=body, args=['--access-log', log])
        self.assertEqual((ans.status, rc), (200, 0), stderr)
        self.assertIn(b'ReadOnlyError', ans.body)
        # The web server's error log (stderr) gets the refusal, with the peer.
        self.assertRegex(stderr.decode(), r'warn: 198\.51\.100\.9:40405: mkdir newdir refused: writes are not allowed')
        rec = parse(read_lines(log, 1)[0])
        self.assertEqual((rec['verb'], rec['path'], rec['result']), ('mkdir', 'newdir', 'ReadOnlyError'))
        self.assertFalse(os.path.exists(os.path.join(self.root, 'newdir')))

    def test_levels_differ(self):
        # Default: no per-connection lines; -v: each connection; -v -v: also
        # each request's arguments and reply (soukd --help).
        outs = {}
        for flags in ((), ('-v',), ('-v', '-v')):
            log = self.log_path('levels%d' % len(flags))
            pf = self.log_path('levels%d-port' % len(flags))
            cmd = [harness.soukd_path(), 'serve', '--listen', '127.0.0.1', '--port', '0', '--port-file', pf,
                   '--directory=' + self.root, '--log', log, '--access-log', 'off'] + list(flags)
            proc, ports = hh.start_with_port_files('soukd', cmd, self.log_path('levels-out'), [pf])
            try:
                with harness.TcpConn(ports[0]) as c:
                    self.assertTrue(harness.hello_ok(c))
                harness.wait_until(lambda: not flags or 'closed' in read_text(log), 5)
            finally:
                harness.stop_process(proc)
            outs[len(flags)] = read_text(log)
        self.assertNotIn('connected', outs[0])
        self.assertNotIn('trace:', outs[0])
        self.assertIn('debug: 127.0.0.1:', outs[1])
        self.assertIn('connected', outs[1])
        self.assertNotIn('trace:', outs[1])
        self.assertIn("trace: ", outs[2])
        self.assertIn("('hello') -> ('ok', '2')", outs[2])


if __name__ == '__main__':
    unittest.main()
