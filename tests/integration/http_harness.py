"""Integration-test helpers for the web carriers (issue 3), beside harness.py.

* `SoukdHttp`: `soukd serve --http 127.0.0.1:0` (optionally with bzr:// TCP
  in the same process), port from --http-port-file, stopped by PID.
* `Nginx`: nginx + fcgiwrap running `soukd cgi`, configured from
  scripts/deploy/nginx-souk.conf (the file the README shows), on free ports
  (HTTP and HTTPS with a self-signed certificate the test makes).
* `Apache`: Debian apache2 (mpm_event + mod_cgid) running `soukd cgi`,
  configured from scripts/deploy/apache-souk.conf.
* `run_cgi`: one `soukd cgi` process with a given environment and stdin,
  its output parsed into (status, headers, body) — no web server.
* `http_request`: one raw request with http.client (bounded by a timeout).
* `build_sources`: the Breezy branches every web test serves.
* `WorkflowMixin`: brz branch/log/pull/checkout/info/cat over bzr+http://,
  and souk-client writes, the same for every server.

Every process is started by the test, on 127.0.0.1, and stopped by PID;
every wait is bounded; a missing peer (nginx, fcgiwrap, apache2, openssl)
fails loudly.
"""

import http.client
import os
import pwd
import grp
import signal
import socket
import struct
import subprocess
import time

import harness
from harness import HarnessError, make_tempdir, read_tail, remove_tree, stop_process, tree_files

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEPLOY = os.path.join(REPO, 'scripts', 'deploy')
NGINX_TEMPLATE = os.path.join(DEPLOY, 'nginx-souk.conf')
APACHE_TEMPLATE = os.path.join(DEPLOY, 'apache-souk.conf')

NGINX = '/usr/sbin/nginx'
FCGIWRAP = '/usr/sbin/fcgiwrap'
APACHE = '/usr/sbin/apache2'
APACHE_MODULES = '/usr/lib/apache2/modules'
OPENSSL = '/usr/bin/openssl'

START_TIMEOUT = 20.0
HTTP_TIMEOUT = 20.0


def require(*tools):
    for tool in tools:
        if not os.access(tool, os.X_OK):
            raise HarnessError('%s is required (scripts/install-deps.sh installs it)' % tool)


def souk_path():
    path = os.environ.get('SOUK')
    if not path or not os.path.isabs(path) or not os.access(path, os.X_OK):
        raise HarnessError('SOUK must be the absolute path of the souk CLI, got %r' % path)
    return path


def fill(template, values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace('@%s@' % k, str(v))
    if '@' in ''.join(line for line in text.splitlines() if not line.lstrip().startswith('#')):
        leftover = [line for line in text.splitlines() if '@' in line and not line.lstrip().startswith('#')]
        raise HarnessError('unfilled placeholder in %s: %s' % (template, leftover))
    return text


def wait_port(port, proc, timeout, what, log):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HarnessError('%s exited with %s during start-up:\n%s' % (what, proc.returncode, log()))
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise HarnessError('%s did not listen on %d within %.0fs:\n%s' % (what, port, timeout, log()))


def make_world_readable(path):
    """Let a web server's unprivileged workers reach `path` (tests run as root)."""
    d = os.path.abspath(path)
    for _ in range(64):
        st = os.stat(d)
        os.chmod(d, st.st_mode | 0o755 if os.path.isdir(d) else st.st_mode | 0o644)
        parent = os.path.dirname(d)
        if parent == d or d in ('/tmp', '/'):
            break
        d = parent


def chown_tree(root, user, group):
    uid = pwd.getpwnam(user).pw_uid
    gid = grp.getgrnam(group).gr_gid
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.lchown(os.path.join(dirpath, n), uid, gid)


# ---------------------------------------------------------------------------
# raw HTTP


def start_on_free_ports(what, count, spawn, log):
    """Start a web server on `count` free loopback ports. spawn(ports) writes
    its config and returns its Popen. Retries (at most 5 times) only when
    another process took a port between the pick and the bind; otherwise,
    or after the last try, stops what it started and raises HarnessError."""
    last = ''
    for _attempt in range(5):
        ports = [harness.free_port() for _ in range(count)]
        proc = spawn(ports)
        try:
            for port in ports:
                wait_port(port, proc, START_TIMEOUT, what, log)
            return proc
        except HarnessError as e:
            last = str(e)
            stop_process(proc)
            if 'Address already in use' not in last:
                break
    raise HarnessError(last)

class HttpAnswer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # list of (name, value)
        self.body = body

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def __repr__(self):
        return 'HttpAnswer(%d, %r, %r)' % (self.status, self.headers, self.body[:200])


def http_request(base, method, path, headers=None, body=None, timeout=HTTP_TIMEOUT, context=None):
    """One request on a fresh connection. base: 'http://127.0.0.1:PORT'."""
    scheme, rest = base.split('://', 1)
    host, port = rest.split(':')
    if scheme == 'https':
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read()
        return HttpAnswer(r.status, r.getheaders(), data)
    finally:
        conn.close()


def smart_post(base, path, body, headers=None):
    h = {'Content-Type': 'application/octet-stream'}
    h.update(headers or {})
    return http_request(base, 'POST', path, headers=h, body=body)


def parse_multipart(content_type, body):
    """multipart/byteranges -> [(part headers dict, data)]; strict framing."""
    marker = 'boundary='
    i = content_type.find(marker)
    if i < 0:
        raise AssertionError('no boundary in %r' % content_type)
    boundary = content_type[i + len(marker):].strip().strip('"').encode()
    parts = []
    delim = b'\r\n--' + boundary
    pos = body.find(b'--' + boundary)
    if pos < 0:
        raise AssertionError('no first boundary')
    pos = body.find(b'\r\n', pos) + 2
    for _ in range(100000):
        head_end = body.index(b'\r\n\r\n', pos)
        headers = {}
        for line in body[pos:head_end].split(b'\r\n'):
            k, v = line.split(b':', 1)
            headers[k.strip().lower().decode()] = v.strip().decode()
        start = head_end + 4
        rng = headers['content-range'].split()[1].split('/')[0]
        a, b = (int(x) for x in rng.split('-'))
        data = body[start:start + (b - a + 1)]
        parts.append((headers, data))
        nxt = start + (b - a + 1)
        if body[nxt:nxt + len(delim)] != delim:
            raise AssertionError('bad framing after part at %d' % nxt)
        after = nxt + len(delim)
        if body[after:after + 2] == b'--':
            return parts
        pos = after + 2
    raise AssertionError('too many parts')


# ---------------------------------------------------------------------------
# CGI without a web server

class CgiAnswer(HttpAnswer):
    pass


def cgi_env(root=None, **extra):
    env = {'PATH': '/usr/bin:/bin', 'GATEWAY_INTERFACE': 'CGI/1.1', 'SERVER_PROTOCOL': 'HTTP/1.1'}
    if root is not None:
        env['SOUK_ROOT'] = root
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


def parse_cgi_output(out):
    head, sep, body = out.partition(b'\r\n\r\n')
    if not sep:
        raise AssertionError('CGI output has no header/body separator: %r' % out[:300])
    headers = []
    status = None
    for line in head.split(b'\r\n'):
        k, v = line.split(b':', 1)
        k, v = k.decode(), v.strip().decode()
        if k.lower() == 'status':
            status = int(v.split()[0])
        else:
            headers.append((k, v))
    if status is None:
        raise AssertionError('CGI output without Status: %r' % head)
    return CgiAnswer(status, headers, body)


def run_cgi(env, stdin=b'', args=(), timeout=30):
    """Run `soukd cgi` once; returns (CgiAnswer, returncode, stderr, seconds)."""
    cmd = [harness.soukd_path(), 'cgi'] + list(args)
    t0 = time.monotonic()
    p = subprocess.run(cmd, input=stdin, env=env, capture_output=True, timeout=timeout)
    return parse_cgi_output(p.stdout), p.returncode, p.stderr, time.monotonic() - t0


# ---------------------------------------------------------------------------
# Servers

def start_with_port_files(what, cmd, log_path, port_files):
    """Start cmd (output to log_path) and wait until each of port_files
    holds the port it listens on. Returns (process, ports); on failure the
    process is stopped and HarnessError raised with the log's tail."""
    with open(log_path, 'wb') as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd='/',
                                preexec_fn=harness._pdeathsig)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:  # bounded: START_TIMEOUT
        if proc.poll() is not None:
            raise HarnessError('%s exited with %s:\n%s' % (what, proc.returncode, read_tail(log_path, 6000)))
        try:
            ports = []
            for f in port_files:
                with open(f) as fh:
                    ports.append(int(fh.read().strip()))
            return proc, ports
        except (OSError, ValueError):
            time.sleep(0.02)
    stop_process(proc)
    raise HarnessError('%s did not start:\n%s' % (what, read_tail(log_path, 6000)))


class SoukdHttp:
    """soukd serve --http 127.0.0.1:0 [--listen 127.0.0.1 --port 0]."""

    def __init__(self, root, allow_writes=False, extra=(), with_tcp=False, verbose=2):
        self.root = root
        self.allow_writes = allow_writes
        self.extra = list(extra)
        self.with_tcp = with_tcp
        self.verbose = verbose   # how many -v (a soak's millions of requests want none)
        self.proc = None
        self.tmp = None
        self.port = None
        self.tcp_port = None

    def start(self):
        self.tmp = make_tempdir('souk-http-')
        self.log_path = os.path.join(self.tmp, 'soukd.log')
        pf = os.path.join(self.tmp, 'http-port')
        tf = os.path.join(self.tmp, 'tcp-port')
        cmd = [harness.soukd_path(), 'serve', '--http', '127.0.0.1:0', '--http-port-file', pf,
               '--directory=' + self.root] + ['-v'] * self.verbose + self.extra
        if self.with_tcp:
            cmd += ['--listen', '127.0.0.1', '--port', '0', '--port-file', tf]
        if self.allow_writes:
            cmd += harness.SOUKD_WRITES
        try:
            self.proc, ports = start_with_port_files('soukd --http', cmd, self.log_path,
                                                     [pf, tf] if self.with_tcp else [pf])
        except HarnessError:
            self.stop()
            raise
        self.port = ports[0]
        if self.with_tcp:
            self.tcp_port = ports[1]
        wait_port(self.port, self.proc, START_TIMEOUT, 'soukd --http', self.log)
        return self

    @property
    def base(self):
        return 'http://127.0.0.1:%d' % self.port

    def log(self):
        return read_tail(self.log_path, 6000) if self.tmp else ''

    def log_text(self):
        with open(self.log_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')

    def stop(self):
        rc = stop_process(self.proc)
        self.proc = None
        remove_tree(self.tmp)
        self.tmp = None
        return rc


# Breezy's own smart server over HTTP (breezy.transport.http.wsgi, the app
# Breezy documents for Apache/mod_wsgi), served by wsgiref with a thread per
# connection: the peer for request counts over bzr+http://.
BRZ_WSGI = r"""
import os, socketserver, sys
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
import breezy
from breezy.transport.http import wsgi

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

class Threaded(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True

root, port_file, readonly = sys.argv[1], sys.argv[2], sys.argv[3] == '1'
with breezy.initialize():
    app = wsgi.make_app(root, '', path_var='PATH_INFO', readonly=readonly, load_plugins=False,
                        enable_logging=False)
    httpd = make_server('127.0.0.1', 0, app, server_class=Threaded, handler_class=Quiet)
    with open(port_file + '.tmp', 'w') as f:
        f.write(str(httpd.server_port))
    os.rename(port_file + '.tmp', port_file)
    httpd.serve_forever()
"""


class BrzWsgi:
    """Breezy's WSGI smart server on 127.0.0.1 and a free port."""

    def __init__(self, root, allow_writes=False):
        self.root = root
        self.allow_writes = allow_writes
        self.proc = None
        self.tmp = None
        self.port = None

    def start(self):
        self.tmp = make_tempdir('souk-brz-wsgi-')
        self.log_path = os.path.join(self.tmp, 'wsgi.log')
        pf = os.path.join(self.tmp, 'port')
        harness.brz_path()  # fails loudly without Breezy
        # Debian's brz is a compiled launcher around the system Python's
        # breezy package: run that Python.
        cmd = ['/usr/bin/python3', '-c', BRZ_WSGI, self.root, pf, '0' if self.allow_writes else '1']
        try:
            self.proc, (self.port,) = start_with_port_files("Breezy's WSGI server", cmd, self.log_path, [pf])
        except HarnessError:
            self.stop()
            raise
        return self

    @property
    def base(self):
        return 'http://127.0.0.1:%d' % self.port

    def log(self):
        return read_tail(self.log_path, 6000) if self.tmp else ''

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        remove_tree(self.tmp)
        self.tmp = None


def make_cert(directory):
    """A self-signed certificate for 127.0.0.1 (CA:TRUE, so it is its own CA)."""
    require(OPENSSL)
    cert = os.path.join(directory, 'cert.pem')
    key = os.path.join(directory, 'key.pem')
    r = subprocess.run([OPENSSL, 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key,
                        '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
                        '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
                        '-addext', 'basicConstraints=critical,CA:TRUE'],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        raise HarnessError('openssl req failed: %r' % r.stderr)
    return cert, key


class Nginx:
    """nginx + fcgiwrap running `soukd cgi`, from scripts/deploy/nginx-souk.conf."""

    def __init__(self, root, allow_writes=False):
        require(NGINX, FCGIWRAP)
        self.root = root
        self.allow_writes = allow_writes
        self.tmp = None
        self.nginx = None
        self.fcgi = None

    def start(self):
        self.tmp = make_tempdir('souk-nginx-')
        t = self.tmp
        self.cert, self.key = make_cert(t)
        self.socket = os.path.join(t, 'fcgiwrap.sock')
        self.fcgi_log = os.path.join(t, 'fcgiwrap.log')
        with open(self.fcgi_log, 'wb') as log:
            # Its own process group: fcgiwrap's preforked children outlive
            # a SIGTERM to the parent, so stop() signals the group (whose
            # id is the PID we started).
            self.fcgi = subprocess.Popen([FCGIWRAP, '-f', '-c', '4', '-s', 'unix:' + self.socket],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=t,
                                         preexec_fn=harness._pdeathsig, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while not os.path.exists(self.socket):
            if self.fcgi.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise HarnessError('fcgiwrap did not start:\n' + read_tail(self.fcgi_log))
            time.sleep(0.02)
        self.error_log = os.path.join(t, 'nginx-error.log')

        def spawn(ports):
            self.port, self.tls_port = ports
            conf = fill(NGINX_TEMPLATE, {
                'USER': pwd.getpwuid(os.geteuid()).pw_name, 'PORT': self.port, 'TLS_PORT': self.tls_port,
                'CERT': self.cert, 'KEY': self.key, 'ROOT': self.root, 'SOUKD': harness.soukd_path(),
                'RUNDIR': t, 'FCGI_SOCKET': self.socket, 'ALLOW_WRITES': 1 if self.allow_writes else 0,
                'ALLOW_ANONYMOUS_WRITES': 1 if self.allow_writes else 0})
            self.conf = os.path.join(t, 'nginx.conf')
            with open(self.conf, 'w') as f:
                f.write(conf)
            with open(os.path.join(t, 'nginx.out'), 'wb') as log:
                self.nginx = subprocess.Popen([NGINX, '-p', t, '-c', self.conf, '-e', self.error_log],
                                              stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=t,
                                              preexec_fn=harness._pdeathsig)
            return self.nginx

        try:
            start_on_free_ports('nginx', 2, spawn, self.log)
        except HarnessError:
            self.nginx = None
            self.stop()
            raise
        return self

    @property
    def base(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def tls_base(self):
        return 'https://127.0.0.1:%d' % self.tls_port

    def log(self):
        if not self.tmp:
            return ''
        return ('nginx:\n' + read_tail(self.error_log) + read_tail(os.path.join(self.tmp, 'nginx.out')) +
                '\nfcgiwrap/soukd stderr:\n' + read_tail(self.fcgi_log))

    def stop(self):
        stop_process(self.nginx)
        self.nginx = None
        if self.fcgi is not None:
            pgid = self.fcgi.pid
            stop_process(self.fcgi)
            try:
                os.killpg(pgid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        self.fcgi = None
        remove_tree(self.tmp)
        self.tmp = None


class Apache:
    """Debian apache2 (mpm_event, mod_cgid) running `soukd cgi`, from
    scripts/deploy/apache-souk.conf. Workers and CGIs run as www-data, so the
    served tree is made reachable (and, for writes, owned) by it."""

    USER = 'www-data'
    GROUP = 'www-data'

    def __init__(self, root, allow_writes=False):
        require(APACHE)
        self.root = root
        self.allow_writes = allow_writes
        self.tmp = None
        self.proc = None

    def start(self):
        self.tmp = make_tempdir('souk-apache-')
        t = self.tmp
        make_world_readable(t)
        make_world_readable(self.root)
        for dirpath, dirnames, filenames in os.walk(self.root):
            for n in dirnames:
                p = os.path.join(dirpath, n)
                os.chmod(p, os.stat(p).st_mode | 0o755)
            for n in filenames:
                p = os.path.join(dirpath, n)
                os.chmod(p, os.stat(p).st_mode | 0o644)
        if self.allow_writes:
            chown_tree(self.root, self.USER, self.GROUP)
        make_world_readable(os.path.dirname(harness.soukd_path()))
        self.error_log = os.path.join(t, 'error.log')

        def spawn(ports):
            (self.port,) = ports
            soukd = harness.soukd_path()
            conf = fill(APACHE_TEMPLATE, {
                'USER': self.USER, 'GROUP': self.GROUP, 'PORT': self.port, 'ROOT': self.root,
                'SOUKD': soukd, 'SOUKD_NAME': os.path.basename(soukd), 'RUNDIR': t,
                'ALLOW_WRITES': 1 if self.allow_writes else 0,
                'ALLOW_ANONYMOUS_WRITES': 1 if self.allow_writes else 0, 'MODULES': APACHE_MODULES})
            self.conf = os.path.join(t, 'httpd.conf')
            with open(self.conf, 'w') as f:
                f.write(conf)
            env = {'PATH': '/usr/sbin:/usr/bin:/bin', 'LANG': 'C'}
            with open(os.path.join(t, 'apache.out'), 'wb') as log:
                self.proc = subprocess.Popen([APACHE, '-f', self.conf, '-DFOREGROUND'], env=env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=t,
                                             preexec_fn=harness._pdeathsig)
            return self.proc

        try:
            start_on_free_ports('apache2', 1, spawn, self.log)
        except HarnessError:
            self.proc = None
            self.stop()
            raise
        return self

    @property
    def base(self):
        return 'http://127.0.0.1:%d' % self.port

    def log(self):
        if not self.tmp:
            return ''
        return read_tail(self.error_log) + read_tail(os.path.join(self.tmp, 'apache.out'))

    def stop(self):
        # SIGTERM to the parent: Apache stops its children itself.
        stop_process(self.proc, timeout=10)
        self.proc = None
        remove_tree(self.tmp)
        self.tmp = None


# ---------------------------------------------------------------------------
# Source branches and the shared Breezy workflow

README_1 = b'souk over http\n'
README_2 = README_1 + b'second revision\n'
NOTES_3 = b'notes from revision 3\n' * 40
BINARY = bytes(range(256)) * 64


def _must(env, args, cwd=None):
    r = env.run(args, cwd=cwd, hpss=False)
    if r.rc != 0:
        raise HarnessError(r.describe())
    return r


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def build_sources(env, base):
    """Local sources: src (3 revisions, a spaced name, binary), and the
    served tree layout: served/src (standalone branch), served/repo (a shared
    repository) with served/repo/trunk. Returns (src path, served root)."""
    src = os.path.join(base, 'src')
    _must(env, ['init', '-q', src])
    _write(os.path.join(src, 'README'), README_1)
    _write(os.path.join(src, 'dir', 'file with space.txt'), b'spaced\n')
    _must(env, ['add', '-q'], cwd=src)
    _must(env, ['commit', '-q', '-m', 'first'], cwd=src)
    _write(os.path.join(src, 'README'), README_2)
    _write(os.path.join(src, 'data.bin'), BINARY)
    _must(env, ['add', '-q'], cwd=src)
    _must(env, ['commit', '-q', '-m', 'second'], cwd=src)
    _write(os.path.join(src, 'notes.txt'), NOTES_3)
    _must(env, ['add', '-q'], cwd=src)
    _must(env, ['commit', '-q', '-m', 'third'], cwd=src)
    return src


def populate_served(env, src, root):
    """root/src: a standalone copy of src; root/repo/trunk: in a shared repo.
    Their parent locations (local paths outside the served root) are
    dropped, as on a real server."""
    _must(env, ['branch', '-q', src, os.path.join(root, 'src')])
    _must(env, ['init-repo', '-q', '--no-trees', os.path.join(root, 'repo')])
    _must(env, ['branch', '-q', src, os.path.join(root, 'repo', 'trunk')])
    for b in ('src', 'repo/trunk'):
        conf = os.path.join(root, b, '.bzr', 'branch', 'branch.conf')
        with open(conf) as f:
            lines = [ln for ln in f if not ln.startswith('parent_location')]
        with open(conf, 'w') as f:
            f.writelines(lines)


def assert_one_connection(testcase, r):
    """A Breezy command over bzr+http:// opened one connection: it never
    sent a request again after a broken reply
    (docs/protocol/http.md#a-reply-must-end-where-the-client-stops-reading)."""
    if any(a.startswith('bzr+http') for a in r.args):
        testcase.assertEqual(r.http_connects, 1, r.describe())


class WorkflowMixin:
    """Breezy over bzr+http:// against one web server (self.base), verified
    against the local source branch (self.src)."""

    base = None   # 'http://127.0.0.1:PORT' (set by the class)

    def bzr_url(self, rel):
        return 'bzr+' + self.base + '/' + rel

    def brz(self, args, cwd=None):
        r = self.env.ok(self, args, cwd=cwd or self.work)
        assert_one_connection(self, r)
        return r

    def assertSameBranch(self, path, revno=3):
        self.assertEqual(int(self.brz(['revno', path]).stdout.strip()), revno)
        self.assertEqual(self.brz(['log', path]).stdout, self.brz(['log', self.src]).stdout)

    def assertTreeEquals(self, path, expected=None):
        self.assertEqual(tree_files(path), expected if expected is not None else tree_files(self.src))

    def assert_smart_only(self, r):
        # brz -Dhpss logs every smart call: bzr+http must have used the smart server.
        self.assertGreater(r.hpss_calls, 0, r.describe())

    def test_wf_branch(self):
        out = os.path.join(self.work, 'branch')
        r = self.brz(['branch', self.bzr_url('src'), out])
        self.assert_smart_only(r)
        self.assertIn(b'Branched 3 revisions', r.stderr)
        self.assertSameBranch(out)
        self.assertTreeEquals(out)

    def test_wf_branch_from_shared_repo(self):
        out = os.path.join(self.work, 'from-repo')
        r = self.brz(['branch', self.bzr_url('repo/trunk'), out])
        self.assertIn(b'Branched 3 revisions', r.stderr)
        self.assertSameBranch(out)
        self.assertTreeEquals(out)

    def test_wf_log(self):
        r = self.brz(['log', self.bzr_url('src')])
        self.assertEqual(r.stdout, self.brz(['log', self.src]).stdout)
        r = self.brz(['log', '-r', '2', '--line', self.bzr_url('repo/trunk')])
        self.assertIn(b'second', r.stdout)

    def test_wf_pull(self):
        out = os.path.join(self.work, 'pull')
        self.brz(['branch', '-r', '1', self.bzr_url('src'), out])
        self.assertEqual(int(self.brz(['revno', out]).stdout.strip()), 1)
        self.assertEqual(tree_files(out), {'README': README_1, 'dir/file with space.txt': b'spaced\n'})
        r = self.brz(['pull', self.bzr_url('src')], cwd=out)
        self.assert_smart_only(r)
        self.assertSameBranch(out)
        self.assertTreeEquals(out)

    def test_wf_checkout(self):
        out = os.path.join(self.work, 'checkout')
        self.brz(['checkout', self.bzr_url('src'), out])
        self.assertTreeEquals(out)
        info = self.brz(['info', out]).stdout.decode()
        self.assertIn('checkout of branch: ' + self.bzr_url('src') + '/', info)
        lw = os.path.join(self.work, 'lightweight')
        self.brz(['checkout', '--lightweight', self.bzr_url('repo/trunk'), lw])
        self.assertTreeEquals(lw)

    def test_wf_info(self):
        r = self.brz(['info', self.bzr_url('src')])
        text = r.stdout.decode()
        self.assertIn('branch root: ' + self.bzr_url('src') + '/', text)
        r = self.brz(['info', self.bzr_url('repo/trunk')])
        text = r.stdout.decode()
        self.assertIn('shared repository: ' + self.bzr_url('repo') + '/', text)
        self.assertIn('repository branch: ' + self.bzr_url('repo/trunk') + '/', text)

    def test_wf_cat(self):
        self.assertEqual(self.brz(['cat', self.bzr_url('src/notes.txt')]).stdout, NOTES_3)
        self.assertEqual(self.brz(['cat', self.bzr_url('src/data.bin')]).stdout, BINARY)
        self.assertEqual(self.brz(['cat', '-r', '1', self.bzr_url('repo/trunk/README')]).stdout, README_1)
        self.assertEqual(self.brz(['cat', self.bzr_url('src/dir/file%20with%20space.txt')]).stdout, b'spaced\n')


# ---------------------------------------------------------------------------
# Golden wire cases: the same smart request over a web carrier and over
# `soukd serve --inet` must get the same bytes. Each case: (name, directory
# posted to, request as sent over HTTP, the same request with root-relative
# paths for --inet). Served layout: build_sources/populate_served.

V3 = harness.v3_request
V12 = harness.v12_request

GOLDEN = [
    ('v1 hello', 'src', V12(1, [b'hello']), V12(1, [b'hello'])),
    ('v2 hello', 'src', V12(2, [b'hello']), V12(2, [b'hello'])),
    ('v3 hello', 'src', V3([b'hello']), V3([b'hello'])),
    ('is_readonly', 'src', V3([b'Transport.is_readonly']), V3([b'Transport.is_readonly'])),
    ('open_2.1 relative', 'src', V3([b'BzrDir.open_2.1', b'.']), V3([b'BzrDir.open_2.1', b'src'])),
    ('open_branchV3', 'src', V3([b'BzrDir.open_branchV3', b'.']), V3([b'BzrDir.open_branchV3', b'src'])),
    ('find_repositoryV3 in shared repo', 'repo/trunk', V3([b'BzrDir.find_repositoryV3', b'.']),
     V3([b'BzrDir.find_repositoryV3', b'repo/trunk'])),
    ('last_revision_info', 'src', V3([b'Branch.last_revision_info', b'.']),
     V3([b'Branch.last_revision_info', b'src'])),
    ('vfs get', 'src', V3([b'get', b'.bzr/branch-format']), V3([b'get', b'src/.bzr/branch-format'])),
    ('vfs get ../ to the shared repo', 'repo/trunk', V3([b'get', b'../.bzr/repository/format']),
     V3([b'get', b'repo/.bzr/repository/format'])),
    ('v1 get', 'src', V12(1, [b'get', b'.bzr/branch-format']), V12(1, [b'get', b'src/.bzr/branch-format'])),
    ('vfs readv', 'src', V3([b'readv', b'.bzr/branch-format'], body=b'0,6\n10,5'),
     V3([b'readv', b'src/.bzr/branch-format'], body=b'0,6\n10,5')),
    ('vfs stat', 'src', V3([b'stat', b'README']), V3([b'stat', b'src/README'])),
    ('vfs has no', 'src', V3([b'has', b'missing']), V3([b'has', b'src/missing'])),
    ('list_dir', 'src', V3([b'list_dir', b'.bzr']), V3([b'list_dir', b'src/.bzr'])),
    ('unknown verb', 'src', V3([b'No.such_verb', b'x']), V3([b'No.such_verb', b'x'])),
    ('readonly put', '', V3([b'put', b'x', b''], body=b'data'), V3([b'put', b'x', b''], body=b'data')),
    ('no such file', '', V3([b'get', b'nope']), V3([b'get', b'nope'])),
]


def inet_reply(root, request):
    """The bytes `soukd serve --inet` answers to one request (then EOF)."""
    p = subprocess.run([harness.soukd_path(), 'serve', '--inet', '--directory=' + root],
                       input=request, capture_output=True, timeout=30)
    if p.returncode != 0:
        raise HarnessError('soukd --inet exited %d: %r' % (p.returncode, p.stderr[-2000:]))
    return p.stdout


def smart_path(directory):
    return '/' + (directory + '/' if directory else '') + '.bzr/smart'


class GoldenMixin:
    """Needs self.base (web server), self.root (served dir, read-only server)."""

    def test_golden_wire_cases(self):
        for name, directory, req, inet_req in GOLDEN:
            with self.subTest(case=name):
                want = inet_reply(self.root, inet_req)
                got = smart_post(self.base, smart_path(directory), req)
                self.assertEqual(got.status, 200, got)
                self.assertEqual(got.body, want, name)
        r = smart_post(self.base, '/src/.bzr/smart', b'hello\n')
        self.assertEqual(r.body, b'ok\x012\n')   # Breezy's probe (docs/protocol/http.md#the-hello-probe)

    def test_golden_incomplete_and_escape(self):
        r = smart_post(self.base, '/src/.bzr/smart', V3([b'hello'])[:-3])
        self.assertEqual((r.status, r.body), (200, b'error\x01incomplete request\n'))
        r = smart_post(self.base, '/src/.bzr/smart', V3([b'get', b'../../etc/passwd']))
        self.assertEqual(r.status, 200)
        self.assertIn(b'PathNotChild', r.body)
        self.assertNotIn(b'root:x:0:0', r.body)
        self.assertNotIn(self.root.encode(), r.body)

    def test_golden_non_post_is_405(self):
        for method in ('GET', 'PUT', 'DELETE'):
            with self.subTest(method=method):
                r = http_request(self.base, method, '/src/.bzr/smart', body=b'' if method != 'GET' else None)
                self.assertEqual(r.status, 405, r)
                allow = r.header('Allow') or ''
                self.assertIn('POST', allow)


class BrzPushMixin:
    """Breezy pushes over bzr+http:// to a read-write web carrier (needs
    self.wbase and self.wroot, as WritesMixin)."""

    def test_brz_push_new_then_existing(self):
        """Breezy pushes over bzr+http:// (insert_stream through the web
        server): a new branch, then two more revisions; the served branch
        passes `brz check` and has the source's log and files."""
        base = make_tempdir('souk-http-push-')
        try:
            env = harness.BrzEnv(os.path.join(base, 'client'))
            src = build_sources(env, base)
            url = 'bzr+' + self.wbase + '/pushed'
            r = env.ok(self, ['push', url], cwd=src)
            self.assertGreater(r.hpss_calls, 0, r.describe())
            assert_one_connection(self, r)
            served = os.path.join(self.wroot, 'pushed')
            self.assertEqual(env.ok(self, ['log', served]).stdout, env.ok(self, ['log', src]).stdout)
            for i in (4, 5):
                _write(os.path.join(src, 'more-%d.txt' % i), b'revision %d\n' % i)
                _must(env, ['add', '-q'], cwd=src)
                _must(env, ['commit', '-q', '-m', 'revision %d' % i], cwd=src)
            assert_one_connection(self, env.ok(self, ['push', url], cwd=src))
            self.assertEqual(int(env.ok(self, ['revno', served]).stdout.strip()), 5)
            self.assertEqual(env.ok(self, ['log', served]).stdout, env.ok(self, ['log', src]).stdout)
            env.ok(self, ['check', served])
            out = os.path.join(base, 'export')
            env.ok(self, ['export', out, served])
            self.assertEqual(tree_files(out), tree_files(src))
        finally:
            remove_tree(base)


class WritesMixin:
    """Writes over HTTP with the souk client (Breezy 3.3.2 cannot send VFS
    writes over HTTP, docs/protocol/http.md#breezy-writes-over-http). Needs self.wbase (a read-write server's
    base URL) and self.wroot (its served dir)."""

    def souk(self, *args, stdin=b''):
        p = subprocess.run([souk_path()] + list(args), input=stdin, capture_output=True, timeout=60)
        return p

    def souk_ok(self, *args, stdin=b''):
        p = self.souk(*args, stdin=stdin)
        self.assertEqual(p.returncode, 0, 'souk %s: %r %r' % (' '.join(args), p.stdout, p.stderr[-2000:]))
        return p

    def test_writes_put_append_rename(self):
        url = 'bzr+' + self.wbase + '/area'
        self.souk_ok('mkdir', url)
        self.assertTrue(os.path.isdir(os.path.join(self.wroot, 'area')))
        self.souk_ok('put', url + '/f.txt', '-', stdin=b'first\n')
        with open(os.path.join(self.wroot, 'area', 'f.txt'), 'rb') as f:
            self.assertEqual(f.read(), b'first\n')
        p = self.souk_ok('append', url + '/f.txt', '-', stdin=b'second\n')
        self.assertEqual(p.stdout.strip(), b'6')
        self.souk_ok('mv', url + '/f.txt', 'g.txt')
        self.assertFalse(os.path.exists(os.path.join(self.wroot, 'area', 'f.txt')))
        with open(os.path.join(self.wroot, 'area', 'g.txt'), 'rb') as f:
            self.assertEqual(f.read(), b'first\nsecond\n')
        self.assertEqual(self.souk_ok('get', url + '/g.txt').stdout, b'first\nsecond\n')
        big = os.urandom(300000)
        self.souk_ok('put', url + '/big.bin', '-', stdin=big)
        with open(os.path.join(self.wroot, 'area', 'big.bin'), 'rb') as f:
            self.assertEqual(f.read(), big)
        p = self.souk_ok('readv', url + '/big.bin', '0:100', '200000:50')
        self.assertEqual(p.stdout, big[:100] + big[200000:200050])
        p = self.souk('mkdir', url)
        self.assertEqual(p.returncode, 1, p.stderr)   # FileExists, reported as the server's error


# ---------------------------------------------------------------------------
# FastCGI: soukd serve --fastcgi behind Debian-shaped nginx and Apache

DEBIAN_DEPLOY = os.path.join(DEPLOY, 'debian')
NGINX_SITE = os.path.join(DEBIAN_DEPLOY, 'nginx', 'sites-available', 'souk')
APACHE_CONF = os.path.join(DEBIAN_DEPLOY, 'apache2', 'conf-available', 'souk.conf')
DEPLOY_SOCKET = '/run/souk/fcgi.sock'   # what the shipped files say
DEPLOY_ROOT = '/srv/bzr'


def substitute(text, replacements, what):
    """Replace each literal of the shipped file; fail loudly when one is
    missing (the file changed under the test)."""
    for old, new in replacements:
        if old not in text:
            raise HarnessError('%s no longer contains %r' % (what, old))
        text = text.replace(old, new)
    return text


def socket_dir(base):
    """A directory for soukd's socket that a web server's www-data workers
    can reach, as the deployment files ask of /run/souk: group www-data,
    setgid, so the socket (mode 0660) gets that group."""
    d = os.path.join(base, 'run-souk')
    os.mkdir(d)
    os.chown(d, 0, grp.getgrnam('www-data').gr_gid)
    os.chmod(d, 0o2750)
    make_world_readable(base)
    os.chmod(d, 0o2750)
    return d


class SoukdFastcgi:
    """soukd serve --fastcgi unix:SOCKET, stopped by PID."""

    def __init__(self, root, socket_path, allow_writes=False, extra=()):
        self.root = root
        self.socket = socket_path
        self.allow_writes = allow_writes
        self.extra = list(extra)
        self.proc = None
        self.log_path = socket_path + '.log'

    def start(self):
        cmd = [harness.soukd_path(), 'serve', '--fastcgi', 'unix:' + self.socket,
               '--directory=' + self.root, '-v'] + self.extra
        if self.allow_writes:
            cmd += harness.SOUKD_WRITES
        with open(self.log_path, 'wb') as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd='/',
                                         preexec_fn=harness._pdeathsig)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:  # bounded: START_TIMEOUT
            if self.proc.poll() is not None:
                raise HarnessError('soukd --fastcgi exited %s:\n%s' % (self.proc.returncode, self.log()))
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(1)
                    s.connect(self.socket)
                return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise HarnessError('soukd --fastcgi did not listen on %s:\n%s' % (self.socket, self.log()))

    def log(self):
        return read_tail(self.log_path, 6000)

    def stop(self):
        rc = stop_process(self.proc)
        self.proc = None
        return rc


class DebianNginx:
    """The real nginx in a copy of Debian's /etc/nginx, with the shipped
    site file (scripts/deploy/debian/nginx/sites-available/souk) linked
    into sites-enabled as an admin would. Only paths and the port change.
    Another shipped site: `site` (its path) and `replacements(port)`, the
    (old, new) literals to replace in it."""

    def __init__(self, root, socket_path, site=NGINX_SITE, replacements=None):
        require(NGINX)
        self.root = root
        self.socket = socket_path
        self.site = site
        self.replacements = replacements or (lambda port: [
            ('listen 80;', 'listen 127.0.0.1:%d;' % port),
            ('unix:' + DEPLOY_SOCKET + ';', 'unix:' + socket_path + ';'),
            ('root ' + DEPLOY_ROOT + ';', 'root ' + root + ';')])
        self.tmp = None
        self.proc = None

    def start(self):
        self.tmp = make_tempdir('souk-deb-nginx-')
        t = self.tmp
        etc = os.path.join(t, 'nginx')
        subprocess.run(['cp', '-a', '/etc/nginx', etc], check=True, timeout=30)
        for n in os.listdir(os.path.join(etc, 'sites-enabled')):
            os.unlink(os.path.join(etc, 'sites-enabled', n))   # the stock default site listens on :80
        make_world_readable(self.root)
        make_world_readable(t)  # the workers (www-data) buffer large bodies under t/body
        self.error_log = os.path.join(t, 'error.log')
        conf_path = os.path.join(etc, 'nginx.conf')
        with open(conf_path) as f:
            main = f.read()
        main = substitute(main, [
            ('/etc/nginx/', etc + '/'),
            ('pid /run/nginx.pid;', 'pid %s/nginx.pid;' % t),
            ('error_log /var/log/nginx/error.log;', 'error_log %s;' % self.error_log),
            ('access_log /var/log/nginx/access.log;',
             'access_log %s/access.log;\n\tclient_body_temp_path %s/body;\n\tfastcgi_temp_path %s/fastcgi;\n'
             '\tproxy_temp_path %s/proxy;\n\tscgi_temp_path %s/scgi;\n\tuwsgi_temp_path %s/uwsgi;'
             % (t, t, t, t, t, t)),
        ], '/etc/nginx/nginx.conf')
        with open(conf_path, 'w') as f:
            f.write(main)
        with open(self.site) as f:
            site = f.read()
        name = os.path.basename(self.site)

        def spawn(ports):
            (self.port,) = ports
            text = substitute(site, self.replacements(self.port), self.site)
            with open(os.path.join(etc, 'sites-available', name), 'w') as f:
                f.write(text)
            link = os.path.join(etc, 'sites-enabled', name)
            if not os.path.lexists(link):
                os.symlink('../sites-available/' + name, link)
            with open(os.path.join(t, 'nginx.out'), 'wb') as log:
                self.proc = subprocess.Popen([NGINX, '-p', t, '-c', conf_path, '-g', 'daemon off;'],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=t,
                                             preexec_fn=harness._pdeathsig)
            return self.proc

        try:
            start_on_free_ports('nginx', 1, spawn, self.log)
        except HarnessError:
            self.proc = None
            self.stop()
            raise
        return self

    path_prefix = ''

    @property
    def origin(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def base(self):
        return self.origin

    def log(self):
        if not self.tmp:
            return ''
        return read_tail(self.error_log) + read_tail(os.path.join(self.tmp, 'nginx.out'))

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        remove_tree(self.tmp)
        self.tmp = None


class DebianApache:
    """The real apache2 in a copy of Debian's /etc/apache2, with the shipped
    conf-available/souk.conf enabled as `a2enmod proxy_fcgi; a2enconf souk`
    would (symlinks). Only paths and the port change; workers run as
    www-data."""

    def __init__(self, socket_path):
        require(APACHE)
        self.socket = socket_path
        self.tmp = None
        self.proc = None

    def start(self):
        self.tmp = make_tempdir('souk-deb-apache-')
        t = self.tmp
        make_world_readable(t)
        etc = os.path.join(t, 'apache2')
        subprocess.run(['cp', '-a', '/etc/apache2', etc], check=True, timeout=30)
        for d in ('run', 'lock', 'log'):
            os.mkdir(os.path.join(t, d))
        self.error_log = os.path.join(t, 'log', 'error.log')
        with open(APACHE_CONF) as f:
            text = substitute(f.read(), [('unix:' + DEPLOY_SOCKET + '|', 'unix:' + self.socket + '|')], APACHE_CONF)
        with open(os.path.join(etc, 'conf-available', 'souk.conf'), 'w') as f:
            f.write(text)
        # a2enmod proxy_fcgi (with its dependency proxy); a2enconf souk.
        for name in ('proxy.load', 'proxy.conf', 'proxy_fcgi.load'):
            link = os.path.join(etc, 'mods-enabled', name)
            if not os.path.lexists(link):
                os.symlink('../mods-available/' + name, link)
        os.symlink('../conf-available/souk.conf', os.path.join(etc, 'conf-enabled', 'souk.conf'))
        ports_conf = os.path.join(etc, 'ports.conf')
        default_site = os.path.join(etc, 'sites-available', '000-default.conf')
        with open(ports_conf) as f:
            ports_text = f.read()
        with open(default_site) as f:
            site_text = f.read()

        def spawn(ports):
            (self.port,) = ports
            with open(ports_conf, 'w') as f:
                f.write(substitute(ports_text, [('Listen 80\n', 'Listen 127.0.0.1:%d\n' % self.port)], ports_conf))
            with open(default_site, 'w') as f:
                f.write(substitute(site_text, [('<VirtualHost *:80>', '<VirtualHost *:%d>' % self.port)],
                                   default_site))
            env = {'PATH': '/usr/sbin:/usr/bin:/bin', 'LANG': 'C',
                   'APACHE_RUN_USER': 'www-data', 'APACHE_RUN_GROUP': 'www-data',
                   'APACHE_PID_FILE': os.path.join(t, 'run', 'apache2.pid'),
                   'APACHE_RUN_DIR': os.path.join(t, 'run'), 'APACHE_LOCK_DIR': os.path.join(t, 'lock'),
                   'APACHE_LOG_DIR': os.path.join(t, 'log')}
            with open(os.path.join(t, 'apache.out'), 'wb') as log:
                self.proc = subprocess.Popen([APACHE, '-d', etc, '-f', os.path.join(etc, 'apache2.conf'),
                                              '-DFOREGROUND'], env=env,
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=t,
                                             preexec_fn=harness._pdeathsig)
            return self.proc

        try:
            start_on_free_ports('apache2', 1, spawn, self.log)
        except HarnessError:
            self.proc = None
            self.stop()
            raise
        return self

    path_prefix = '/bzr'   # the shipped file's URL space

    @property
    def origin(self):
        return 'http://127.0.0.1:%d' % self.port

    @property
    def base(self):
        return self.origin + self.path_prefix

    def log(self):
        if not self.tmp:
            return ''
        return read_tail(self.error_log) + read_tail(os.path.join(self.tmp, 'apache.out'))

    def stop(self):
        stop_process(self.proc, timeout=10)
        self.proc = None
        remove_tree(self.tmp)
        self.tmp = None


# A FastCGI client for tests that talk to soukd --fastcgi directly
# (docs/protocol/fastcgi.md#records).

def fcgi_record(rtype, rid, content):
    pad = (8 - len(content) % 8) % 8
    return struct.pack('>BBHHBB', 1, rtype, rid, len(content), pad, 0) + content + b'\0' * pad


def fcgi_pair(name, value):
    def length(n):
        return bytes([n]) if n < 128 else struct.pack('>I', n | 0x80000000)
    return length(len(name)) + length(len(value)) + name + value


def fcgi_begin(rid, role=1, keep=True):
    return fcgi_record(1, rid, struct.pack('>HB5x', role, 1 if keep else 0))


def fcgi_params(rid, params):
    block = b''.join(fcgi_pair(k.encode(), v.encode()) for k, v in params.items())
    return fcgi_record(4, rid, block) + fcgi_record(4, rid, b'')


def fcgi_stdin(rid, body):
    out = b''
    for i in range(0, len(body), 65535):
        out += fcgi_record(5, rid, body[i:i + 65535])
    return out + fcgi_record(5, rid, b'')


def fcgi_read_record(sock):
    def exact(n):
        data = b''
        for _ in range(n + 1):   # bounded: each pass gets >= 1 byte or raises
            if len(data) == n:
                return data
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError('soukd closed the FastCGI connection')
            data += chunk
        return data
    version, rtype, rid, clen, plen, _ = struct.unpack('>BBHHBB', exact(8))
    return rtype, rid, exact(clen + plen)[:clen]


def fcgi_response(sock, rid):
    """(CGI output of STDOUT, (app status, protocol status)) of request rid."""
    stdout = b''
    for _ in range(100000):   # bounded: records of one response
        rtype, got_rid, content = fcgi_read_record(sock)
        if got_rid != rid:
            raise AssertionError('record for request %d while waiting for %d' % (got_rid, rid))
        if rtype == 6:
            stdout += content
        elif rtype == 3:
            return stdout, struct.unpack('>IB3x', content)
    raise AssertionError('no END_REQUEST')
