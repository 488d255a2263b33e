"""Integration-test harness for souk: real peers on loopback, raw wire helpers.

What lives here (standard library only, Python 3):

* Which server is under test: `soukd` from the environment variable SOUKD
  (an absolute path; the tests fail loudly when it is unset or missing), or,
  purely as a development aid, Breezy's own `brz serve` when
  SOUK_TEST_SERVER=brz.  ctest always runs soukd.
* `Server`: a TCP smart server on 127.0.0.1 (soukd with `--port 0
  --port-file`), stopped by PID with SIGTERM, then SIGKILL after a bounded
  wait.  Never killed by name.
* `InetConn`: one `soukd serve --inet` process used as a connection over its
  stdin/stdout; `TcpConn`: a loopback socket.  Both read with deadlines.
* `SshServer`: a private OpenSSH sshd on 127.0.0.1 with its own host key,
  client key, authorized_keys and config in a temp dir, plus an ssh wrapper
  script for `BRZ_SSH`.
* `BrzEnv`: runs the real `brz` client with an isolated HOME, log file,
  identity and no plugins, counting smart requests per command (-Dhpss).
* Wire helpers: bencode, v1/v2/v3 request builders, v3/v1/v2 response
  readers (docs/protocol/framing.md).

Every wait is bounded, every loop is bounded, all traffic stays on
127.0.0.1 and every temp dir is removed by whoever created it.
"""

import ctypes
import json
import os
import pwd
import re
import resource
import select
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))

# Default deadline for one protocol exchange and for process start-up.
IO_TIMEOUT = float(os.environ.get('SOUK_TEST_IO_TIMEOUT', '5'))
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
BRZ_TIMEOUT = 180.0

SSHD = '/usr/sbin/sshd'
SSH = '/usr/bin/ssh'
SSH_KEYGEN = '/usr/bin/ssh-keygen'

V3_MARKER = b'bzr message 3 (bzr 1.6)\n'
V2_REQUEST_MARKER = b'bzr request 2\n'
V2_RESPONSE_MARKER = b'bzr response 2\n'

# v1 has no status flag: the client treats these first args as failures
# (docs/protocol/errors.md#v1-failure-words); `error` is the generic failure.
V1_FAILURE_WORDS = frozenset([
    b'norepository', b'NoSuchFile', b'FileExists', b'DirectoryNotEmpty',
    b'ShortReadvError', b'UnicodeEncodeError', b'UnicodeDecodeError',
    b'ReadOnlyError', b'nobranch', b'NoSuchRevision', b'nosuchrevision',
    b'LockContention', b'UnlockableTransport', b'LockFailed', b'TokenMismatch',
    b'ReadError', b'PermissionDenied', b'error'])

# Verbs whose v1/v2 *success* response carries a body (docs/protocol/framing.md#v1-and-v2-bodies).
V12_BODY_RESPONSE_VERBS = frozenset([b'get', b'readv', b'get_bundle'])
# Verbs whose v1/v2 request carries a body.
V12_BODY_REQUEST_VERBS = frozenset([b'put', b'put_non_atomic', b'append', b'readv'])


# What `allow_writes=True` passes soukd: writes, by clients without a user
# (bzr:// has none; an --inet test process may have no USER either). Access
# control itself is test_access_control.py's.
SOUKD_WRITES = ['--allow-writes', '--allow-anonymous-writes']


class HarnessError(AssertionError):
    """A harness-level failure (reported as a test failure, never a skip)."""


class ConnectionClosed(HarnessError):
    """The peer closed the connection (EOF or reset) while we needed bytes."""


class ExchangeTimeout(HarnessError):
    """No (complete) answer arrived before the deadline."""


# ---------------------------------------------------------------------------
# Which server is under test

def server_kind():
    """'soukd' (default, what ctest runs) or 'brz' (SOUK_TEST_SERVER=brz)."""
    kind = os.environ.get('SOUK_TEST_SERVER', 'soukd')
    if kind not in ('soukd', 'brz'):
        raise HarnessError('SOUK_TEST_SERVER must be "soukd" or "brz", not %r' % kind)
    return kind


def soukd_path():
    """The soukd binary from $SOUKD; raises (never skips) when it is unusable."""
    path = os.environ.get('SOUKD')
    if not path:
        raise HarnessError('SOUKD is not set: export SOUKD=/absolute/path/to/soukd '
                           '(e.g. build/server/soukd)')
    if not os.path.isabs(path):
        raise HarnessError('SOUKD must be an absolute path, got %r' % path)
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise HarnessError('SOUKD=%r does not exist or is not executable' % path)
    return path


def brz_path():
    path = shutil.which('brz')
    if not path:
        raise HarnessError('the brz client is required (Debian package brz)')
    return os.path.realpath(path)


def require_server(kind=None):
    """Call from setUpModule: fail loudly if the server under test is missing."""
    kind = kind or server_kind()
    if kind == 'soukd':
        return soukd_path()
    return brz_path()


def remote_path(kind=None):
    """What brz should run on the far side of bzr+ssh (BZR_REMOTE_PATH)."""
    kind = kind or server_kind()
    return soukd_path() if kind == 'soukd' else brz_path()


def compare_enabled():
    return os.environ.get('SOUK_TEST_COMPARE') == '1'


# ---------------------------------------------------------------------------
# Temp dirs and file-tree snapshots

def make_tempdir(prefix='souk-it-'):
    return tempfile.mkdtemp(prefix=prefix)


def remove_tree(path):
    """Remove a temp tree even if a test left read-only modes behind."""
    if not path or not os.path.lexists(path):
        return

    def onerror(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o755)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
        except OSError:
            pass
        try:
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=onerror)


def snapshot(root):
    """A comparable picture of a tree: relpath -> (kind, mode, content/target)."""
    out = {}
    count = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(dirnames + filenames):
            count += 1
            if count > 100000:
                raise HarnessError('snapshot of %s: too many entries' % root)
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ('link', os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ('dir', stat.S_IMODE(st.st_mode))
            else:
                with open(full, 'rb') as f:
                    out[rel] = ('file', stat.S_IMODE(st.st_mode), f.read(), st.st_mtime_ns)
    return out


def tree_files(root, exclude=('.bzr',)):
    """relpath -> bytes for every regular file below root (skips .bzr)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in exclude]
        for name in filenames:
            full = os.path.join(dirpath, name)
            with open(full, 'rb') as f:
                out[os.path.relpath(full, root)] = f.read()
    return out


def free_port():
    """A currently free TCP port on 127.0.0.1 (for peers that need a number)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _pdeathsig():
    """preexec_fn: have the child get SIGTERM if the test runner dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort only
        pass


def stop_process(proc, timeout=STOP_TIMEOUT):
    """SIGTERM by PID, bounded wait, then SIGKILL. Returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
    return proc.returncode


def read_tail(path, limit=4000):
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return ''
    return data[-limit:].decode('utf-8', 'replace')


def wait_until(predicate, timeout, interval=0.02):
    """Poll predicate() until true or the deadline passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------
# bencode (docs/protocol/framing.md#bencode)

class Trickler(threading.Thread):
    """Sends the next byte of `request` on each of `conns` (anything with
    send()) once per round, a round per `interval` seconds, never the last
    byte, so the requests stay half-arrived; at most `rounds` rounds.
    `sent[i]`: bytes sent on conns[i]; `errors`: what a send raised.
    finish() stops it and says whether the thread ended."""

    def __init__(self, conns, request, interval=0.25, rounds=200):
        super().__init__(daemon=True)
        self.conns = conns
        self.request = request
        self.interval = interval
        self.rounds = rounds
        self.sent = [0] * len(conns)
        self.errors = []
        self.stopping = threading.Event()

    def run(self):
        try:
            for _ in range(self.rounds):  # bounded: rounds
                if self.stopping.is_set():
                    return
                for i, c in enumerate(self.conns):
                    if self.sent[i] < len(self.request) - 1:
                        c.send(self.request[self.sent[i]:self.sent[i] + 1])
                        self.sent[i] += 1
                self.stopping.wait(self.interval)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.errors.append(e)

    def finish(self, timeout=10):
        self.stopping.set()
        self.join(timeout)
        return not self.is_alive()

    def rest(self, i):
        """What conns[i] has not been sent of the request."""
        return self.request[self.sent[i]:]


def arriving_in_waiter(root, n, timeout=20):
    """soukd's counters once at least `n` connections have a request
    arriving in the waiter (tcp_conns_arriving), or None after `timeout`."""
    return wait_until(lambda: (lambda s: s if s['tcp_conns_arriving'] >= n else None)(soukd_counters(root)),
                      timeout=timeout, interval=0.1)


def bencode(x):
    if isinstance(x, bool):
        raise TypeError('bool is not bencodable')
    if isinstance(x, int):
        return b'i%de' % x
    if isinstance(x, str):
        x = x.encode('utf-8')
    if isinstance(x, (bytes, bytearray)):
        return b'%d:%s' % (len(x), bytes(x))
    if isinstance(x, (list, tuple)):
        return b'l' + b''.join(bencode(i) for i in x) + b'e'
    if isinstance(x, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in x.items())
        return b'd' + b''.join(bencode(k) + bencode(v) for k, v in items) + b'e'
    raise TypeError('cannot bencode %r' % (x,))


def bdecode(data, max_depth=500):
    """Strict decoder: lists become tuples; raises ValueError on bad input."""
    data = bytes(data)

    def parse(i, depth):
        if depth > max_depth:
            raise ValueError('bencode nested too deeply')
        if i >= len(data):
            raise ValueError('truncated bencode')
        c = data[i:i + 1]
        if c == b'i':
            j = data.index(b'e', i)
            digits = data[i + 1:j]
            if not re.fullmatch(rb'-?(0|[1-9][0-9]*)', digits) or digits == b'-0':
                raise ValueError('bad integer %r' % digits)
            return int(digits), j + 1
        if c == b'l':
            i += 1
            items = []
            while True:
                if i >= len(data):
                    raise ValueError('unterminated list')
                if data[i:i + 1] == b'e':
                    return tuple(items), i + 1
                v, i = parse(i, depth + 1)
                items.append(v)
        if c == b'd':
            i += 1
            out = {}
            last = None
            while True:
                if i >= len(data):
                    raise ValueError('unterminated dict')
                if data[i:i + 1] == b'e':
                    return out, i + 1
                k, i = parse(i, depth + 1)
                if not isinstance(k, bytes) or (last is not None and k <= last):
                    raise ValueError('bad or unsorted dict key %r' % (k,))
                v, i = parse(i, depth + 1)
                out[k] = v
                last = k
        if c.isdigit():
            j = data.index(b':', i)
            digits = data[i:j]
            if not re.fullmatch(rb'0|[1-9][0-9]*', digits):
                raise ValueError('bad string length %r' % digits)
            n = int(digits)
            if j + 1 + n > len(data):
                raise ValueError('string overruns buffer')
            return data[j + 1:j + 1 + n], j + 1 + n
        raise ValueError('bad bencode byte %r at %d' % (c, i))

    try:
        value, end = parse(0, 0)
    except IndexError as e:  # data.index() found nothing
        raise ValueError('truncated bencode') from e
    if end != len(data):
        raise ValueError('trailing bytes after bencoded value')
    return value


# ---------------------------------------------------------------------------
# Request builders (docs/protocol/framing.md)

def b(x):
    """bytes from str/bytes/int (ints stay ints for bencode)."""
    if isinstance(x, str):
        return x.encode('utf-8')
    return x


def prefixed(data):
    return struct.pack('>I', len(data)) + data


def v3_part_struct(value):
    return b's' + prefixed(bencode(value))


def v3_part_bytes(data):
    return b'b' + prefixed(data)


def v3_headers(headers=None):
    return prefixed(bencode(headers if headers is not None else {}))


def v3_request(args, body=None, chunks=None, headers=None, abort=False):
    """A whole v3 request: MARKER HEADERS s<args> [b<body>] [b<chunk>]* [oE s('error',)] e.

    `body` is sent as one b part, `chunks` as one b part each (both may be
    given); `abort=True` ends the body the way Breezy's client aborts a
    streamed upload (docs/protocol/framing.md#streamed-bodies).
    """
    msg = V3_MARKER + v3_headers(headers) + v3_part_struct([b(a) for a in args])
    if body is not None:
        msg += v3_part_bytes(b(body))
    for c in chunks or ():
        msg += v3_part_bytes(b(c))
    if abort:
        msg += b'oE' + v3_part_struct([b'error'])
    return msg + b'e'


def v12_body(data):
    return b'%d\n' % len(data) + data + b'done\n'


def v12_request(version, args, body=None):
    """A v1 or v2 request line (+ length-prefixed body)."""
    parts = []
    for a in args:
        a = b(a)
        if isinstance(a, int):
            a = b'%d' % a
        parts.append(a)
    line = b'\x01'.join(parts) + b'\n'
    msg = (V2_REQUEST_MARKER if version == 2 else b'') + line
    if body is not None:
        msg += v12_body(b(body))
    return msg


# ---------------------------------------------------------------------------
# Connections

class Conn:
    """A byte stream to a server with a read buffer and deadlines."""

    def __init__(self):
        self._buf = bytearray()
        self.eof = False
        self.received = bytearray()   # every byte ever read (for diagnostics)
        # Set when an exchange timed out: the stream is out of sync, so later
        # exchanges fail at once instead of each waiting for its own timeout.
        self.broken = None

    # subclasses: _send(data), _recv(deadline) -> bytes (b'' at EOF), close()

    def send(self, data):
        if self.broken:
            raise HarnessError('connection unusable: ' + self.broken)
        self._send(bytes(data))

    def _read_fill(self, deadline):
        if self.broken:
            raise HarnessError('connection unusable: ' + self.broken)
        try:
            self._fill(deadline)
        except ExchangeTimeout as e:
            self.broken = 'an earlier read timed out (%s)' % e
            raise

    def _fill(self, deadline):
        if self.eof:
            raise ConnectionClosed('connection closed by the server; had %r'
                                   % bytes(self._buf[:200]))
        data = self._recv(deadline)
        if not data:
            self.eof = True
            raise ConnectionClosed('connection closed by the server; had %r'
                                   % bytes(self._buf[:200]))
        self.received += data
        self._buf += data

    def read_exact(self, n, timeout=IO_TIMEOUT, deadline=None):
        deadline = deadline or (time.monotonic() + timeout)
        while len(self._buf) < n:
            self._read_fill(deadline)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def read_line(self, timeout=IO_TIMEOUT, deadline=None, limit=1 << 20):
        deadline = deadline or (time.monotonic() + timeout)
        while b'\n' not in self._buf:
            if len(self._buf) > limit:
                raise HarnessError('line longer than %d bytes' % limit)
            self._read_fill(deadline)
        i = self._buf.index(b'\n') + 1
        out = bytes(self._buf[:i])
        del self._buf[:i]
        return out

    def pending(self):
        return bytes(self._buf)

    def wait_closed(self, timeout=IO_TIMEOUT):
        """True if the peer closes (EOF/reset) within timeout; data read meanwhile is kept.

        Returns False on timeout with the connection still open.
        """
        deadline = time.monotonic() + timeout
        while not self.eof:
            if time.monotonic() >= deadline:
                return False
            try:
                self._fill(deadline)
            except ConnectionClosed:
                return True
            except ExchangeTimeout:
                return False
        return True

    def quiet_for(self, seconds):
        """True if nothing arrives and the peer does not close for `seconds`."""
        if self.eof:
            return False
        try:
            self._fill(time.monotonic() + seconds)
        except ExchangeTimeout:
            return True
        except ConnectionClosed:
            return False
        return False


class TcpConn(Conn):
    def __init__(self, port, host='127.0.0.1', timeout=IO_TIMEOUT):
        super().__init__()
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _send(self, data):
        self.sock.settimeout(IO_TIMEOUT)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError) as e:
            raise ConnectionClosed('send failed: %s' % e) from e
        except socket.timeout as e:
            raise ExchangeTimeout('send timed out (peer not reading)') from e

    def _recv(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExchangeTimeout('timed out waiting for the server; buffered %r'
                                  % bytes(self._buf[:200]))
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(1 << 16)
        except socket.timeout as e:
            raise ExchangeTimeout('timed out waiting for the server; buffered %r'
                                  % bytes(self._buf[:200])) from e
        except (ConnectionResetError, ConnectionAbortedError):
            return b''

    def shutdown_write(self):
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InetConn(Conn):
    """One `serve --inet` process (soukd or brz) used as a connection over stdio."""

    def __init__(self, root, allow_writes=False, extra_args=(), kind=None, env=None,
                 log_dir=None):
        super().__init__()
        self.kind = kind or server_kind()
        if self.kind == 'soukd':
            cmd = [soukd_path(), 'serve', '--inet']
            if root is not None:  # None: the roots come from a --config in extra_args
                cmd.append('--directory=' + root)
            if allow_writes:
                cmd += SOUKD_WRITES
            cmd += list(extra_args)
        else:
            cmd = [brz_path(), 'serve', '--inet', '--directory', root]
            if allow_writes:
                cmd.append('--allow-writes')
        self._own_log_dir = None
        if log_dir is None:
            log_dir = self._own_log_dir = make_tempdir('souk-inet-')
        self.stderr_path = os.path.join(log_dir, 'inet-%d.stderr' % id(self))
        self._stderr = open(self.stderr_path, 'wb')
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._stderr, env=env or server_env(log_dir),
                                     cwd='/', preexec_fn=_pdeathsig)
        self.returncode = None

    def _send(self, data):
        fd = self.proc.stdin.fileno()
        view = memoryview(data)
        deadline = time.monotonic() + IO_TIMEOUT
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ExchangeTimeout('write to soukd --inet timed out (not reading stdin)')
            _, w, _ = select.select([], [fd], [], remaining)
            if not w:
                continue
            try:
                n = os.write(fd, view[:65536])
            except (BrokenPipeError, ConnectionResetError) as e:
                raise ConnectionClosed('server stdin closed: %s' % e) from e
            view = view[n:]

    def _recv(self, deadline):
        fd = self.proc.stdout.fileno()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExchangeTimeout('timed out waiting for soukd --inet; buffered %r'
                                  % bytes(self._buf[:200]))
        r, _, _ = select.select([fd], [], [], remaining)
        if not r:
            raise ExchangeTimeout('timed out waiting for soukd --inet; buffered %r'
                                  % bytes(self._buf[:200]))
        return os.read(fd, 1 << 16)

    def shutdown_write(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def finish(self, timeout=STOP_TIMEOUT):
        """Close stdin (EOF) and wait for the process to exit by itself.

        Returns its exit status; a process that does not exit in time is
        killed (by PID) and reported as None.
        """
        self.shutdown_write()
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)
            self.returncode = None
        return self.returncode

    def close(self):
        if self.proc.poll() is None:
            self.finish()
        self.returncode = self.proc.returncode
        for f in (self.proc.stdout, self.proc.stdin):
            try:
                f.close()
            except (OSError, ValueError):
                pass
        self._stderr.close()
        if self._own_log_dir:
            remove_tree(self._own_log_dir)
            self._own_log_dir = None

    def stderr_tail(self):
        return read_tail(self.stderr_path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def server_env(log_dir):
    """Environment for a server process: isolated HOME/log for brz serve."""
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(('BRZ_', 'BZR_')):
            del env[k]
    env['HOME'] = log_dir
    env['BRZ_HOME'] = log_dir
    env['BRZ_LOG'] = os.path.join(log_dir, 'server-brz.log')
    env['BRZ_PLUGIN_PATH'] = '-site:-user'
    env['LC_ALL'] = 'C.UTF-8'
    env['PATH'] = brz_friendly_path(env.get('PATH', ''))
    return env


def brz_friendly_path(path):
    """PATH with the system bin dir first.

    The Debian brz binary embeds libpython and locates its interpreter via
    `python3` on PATH; under a pyenv-managed test runner PATH starts with a
    pyenv Python that has no breezy module, and brz then fails to start.
    """
    first = '/usr/bin'
    brz = shutil.which('brz')
    if brz:
        first = os.path.dirname(os.path.realpath(brz))
    return first + os.pathsep + path if path else first


# ---------------------------------------------------------------------------
# Responses

class Response:
    """A decoded response of any version.

    success: True for oS/success (v1: first arg not a failure word);
    args: tuple; body: concatenated body; chunks: the b parts (v3);
    stream_error: error args sent after some body chunks (v3), else None;
    raw: the exact bytes of the response.
    """

    def __init__(self, version, success, args, body=None, chunks=(), stream_error=None,
                 headers=None, raw=b''):
        self.version = version
        self.success = success
        self.args = tuple(args)
        self.body = body
        self.chunks = list(chunks)
        self.stream_error = stream_error
        self.headers = headers
        self.raw = raw

    @property
    def status(self):
        return 'S' if self.success else 'E'

    def __repr__(self):
        body = self.body
        if body is not None and len(body) > 120:
            body = body[:120] + b'...(%d bytes)' % len(self.body)
        return 'Response(v%d %s %r body=%r%s)' % (
            self.version, self.status, self.args, body,
            ' stream_error=%r' % (self.stream_error,) if self.stream_error else '')


MAX_RESPONSE_STRUCTURE = 16 << 20
MAX_RESPONSE_BODY = 1 << 30


def read_v3_response(conn, timeout=IO_TIMEOUT):
    deadline = time.monotonic() + timeout
    start = len(conn.received) - len(conn.pending())
    marker = conn.read_exact(len(V3_MARKER), deadline=deadline)
    if marker != V3_MARKER:
        raise HarnessError('expected a v3 response marker, got %r (+ %r)'
                           % (marker, conn.pending()[:100]))

    def length():
        (n,) = struct.unpack('>I', conn.read_exact(4, deadline=deadline))
        if n > MAX_RESPONSE_STRUCTURE:
            raise HarnessError('response structure length %d is absurd' % n)
        return n

    headers = bdecode(conn.read_exact(length(), deadline=deadline))
    status = None
    args = None
    chunks = []
    total = 0
    in_error = False
    stream_error = None
    for _ in range(10000000):
        kind = conn.read_exact(1, deadline=deadline)
        if kind == b'o':
            byte = conn.read_exact(1, deadline=deadline)
            if status is None:
                if byte not in (b'S', b'E'):
                    raise HarnessError('bad status byte %r' % byte)
                status = byte
            elif byte == b'E':
                in_error = True
            else:
                raise HarnessError('unexpected one-byte part %r after status' % byte)
        elif kind == b's':
            value = bdecode(conn.read_exact(length(), deadline=deadline))
            if args is None:
                if status is None:
                    raise HarnessError('structure before status byte in response')
                if not isinstance(value, tuple):
                    raise HarnessError('response args are not a list: %r' % (value,))
                args = value
            elif in_error:
                stream_error = value
            else:
                raise HarnessError('second structure in response: %r' % (value,))
        elif kind == b'b':
            (n,) = struct.unpack('>I', conn.read_exact(4, deadline=deadline))
            total += n
            if total > MAX_RESPONSE_BODY:
                raise HarnessError('response body larger than %d bytes' % MAX_RESPONSE_BODY)
            chunks.append(conn.read_exact(n, deadline=deadline))
        elif kind == b'e':
            break
        else:
            raise HarnessError('bad response part kind %r' % kind)
    else:
        raise HarnessError('response has too many parts')
    if status is None or args is None:
        raise HarnessError('response ended without status or args')
    end = len(conn.received) - len(conn.pending())
    return Response(3, status == b'S', args, b''.join(chunks) if chunks else None, chunks,
                    stream_error, headers, bytes(conn.received[start:end]))


def read_v12_response(conn, version, expect_body, timeout=IO_TIMEOUT):
    """Read one v1/v2 response; a body is read only if expect_body and success."""
    deadline = time.monotonic() + timeout
    start = len(conn.received) - len(conn.pending())
    success = None
    if version == 2:
        marker = conn.read_line(deadline=deadline)
        if marker != V2_RESPONSE_MARKER:
            raise HarnessError('expected v2 response marker, got %r' % marker)
        flag = conn.read_line(deadline=deadline)
        if flag not in (b'success\n', b'failed\n'):
            raise HarnessError('expected success/failed, got %r' % flag)
        success = flag == b'success\n'
    line = conn.read_line(deadline=deadline)
    args = tuple(line[:-1].split(b'\x01'))
    if success is None:
        success = args[0] not in V1_FAILURE_WORDS
    body = None
    if expect_body and success:
        first = conn.read_line(deadline=deadline)
        if first == b'chunked\n':
            parts = []
            for _ in range(10000000):
                n = conn.read_line(deadline=deadline)
                if n == b'END\n':
                    break
                if n == b'ERR\n':
                    raise HarnessError('v2 chunked body with ERR')
                parts.append(conn.read_exact(int(n, 16), deadline=deadline))
            body = b''.join(parts)
        else:
            n = int(first)
            body = conn.read_exact(n, deadline=deadline)
            trailer = conn.read_exact(5, deadline=deadline)
            if trailer != b'done\n':
                raise HarnessError('v1/v2 body not followed by done\\n: %r' % trailer)
    end = len(conn.received) - len(conn.pending())
    return Response(version, success, args, body, raw=bytes(conn.received[start:end]))


def call(conn, *args, body=None, chunks=None, version=3, timeout=IO_TIMEOUT, expect_body=None):
    """Send one request and read its response."""
    if version == 3:
        conn.send(v3_request(args, body=body, chunks=chunks))
        return read_v3_response(conn, timeout=timeout)
    conn.send(v12_request(version, args, body=body))
    if expect_body is None:
        expect_body = b(args[0]) in V12_BODY_RESPONSE_VERBS
    return read_v12_response(conn, version, expect_body, timeout=timeout)


def hello_ok(conn, timeout=IO_TIMEOUT):
    """True if a v3 hello on conn is answered ('ok', '2') (or '1')."""
    try:
        r = call(conn, b'hello', timeout=timeout)
    except (ConnectionClosed, ExchangeTimeout, HarnessError):
        return False
    return r.success and r.args in ((b'ok', b'2'), (b'ok', b'1'))


def usable_or_closed(conn, timeout=IO_TIMEOUT):
    """'usable' if hello works, 'closed' if the server closed; raises otherwise."""
    try:
        conn.send(v3_request([b'hello']))
    except ConnectionClosed:
        return 'closed'
    try:
        r = read_v3_response(conn, timeout=timeout)
    except ConnectionClosed:
        return 'closed'
    if r.success and r.args == (b'ok', b'2'):
        return 'usable'
    raise HarnessError('after the previous request, hello was answered %r' % (r,))


def soukd_counters(root):
    """The counters of every soukd serving `root` (soukd_stats' 'counters'):
    a dict of name -> value."""
    return soukd_stats(root)['counters']


def wait_probe_gone(root, timeout=5):
    """Wait until soukd has accepted and closed the start-up probe
    connection (and any other), so a test counting against
    --max-connections starts from none. Accepted first: before soukd
    accepts the probe, no connection is live either. True when it has."""
    return (wait_until(lambda: soukd_counters(root)['connections_accepted'] >= 1, timeout)
            and wait_until(lambda: soukd_counters(root)['tcp_conns_live'] == 0, timeout))


# ---------------------------------------------------------------------------
# TCP server

class Server:
    """A TCP smart server on 127.0.0.1: soukd (default) or `brz serve`.

    limits: {'request-timeout': 1, 'max-readv-ranges': 10, ...} -> soukd
    options `--request-timeout 1 ...` (ignored for brz serve, which has none
    of them except the idle timeout, mapped to --client-timeout).
    root None (soukd only): no --directory, the config's [root] sections serve.
    """

    def __init__(self, root, allow_writes=False, limits=None, kind=None, max_fds=None,
                 program=None, user=None, carrier='tcp'):
        self.root = root
        self.carrier = carrier  # soukd only: 'tcp' (bzr://) or 'http' (soukd serve --http)
        self.allow_writes = allow_writes
        self.limits = dict(limits or {})
        self.kind = kind or server_kind()
        self.max_fds = max_fds  # RLIMIT_NOFILE for the server, if given: N or (soft, hard)
        self.program = program  # a soukd other than $SOUKD (an installed one)
        self.user = user        # run as this user (the test runs as root)
        self.proc = None
        self.port = None
        self.tmp = None

    def start(self, timeout=START_TIMEOUT):
        self.tmp = make_tempdir('souk-srv-')
        self.log_path = os.path.join(self.tmp, 'server.log')
        log = open(self.log_path, 'wb')
        try:
            if self.kind == 'soukd':
                port_file = os.path.join(self.tmp, 'port')
                if self.carrier == 'http':
                    listen = ['--http', '127.0.0.1:0', '--http-port-file', port_file]
                else:
                    listen = ['--listen', '127.0.0.1', '--port', '0', '--port-file', port_file]
                cmd = [self.program or soukd_path(), 'serve'] + listen
                if self.root is not None:  # None: the roots come from limits['config']
                    cmd.append('--directory=' + self.root)
                if self.allow_writes:
                    cmd += SOUKD_WRITES
                for k, v in sorted(self.limits.items()):
                    cmd += ['--' + k, str(v)]
            else:
                port_file = None
                self.port = free_port()
                cmd = [brz_path(), 'serve', '--listen', '127.0.0.1', '--port', str(self.port),
                       '--directory', self.root]
                if self.allow_writes:
                    cmd.append('--allow-writes')
                if 'idle-timeout' in self.limits:
                    cmd += ['--client-timeout', str(self.limits['idle-timeout'])]
            self.cmd = cmd
            account = pwd.getpwnam(self.user) if self.user else None
            if account:  # it writes its port file here
                os.chown(self.tmp, account.pw_uid, account.pw_gid)

            def preexec():
                _pdeathsig()
                if self.max_fds is not None:
                    soft, hard = (self.max_fds if isinstance(self.max_fds, tuple)
                                  else (self.max_fds, self.max_fds))
                    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
                if account:
                    os.initgroups(account.pw_name, account.pw_gid)
                    os.setgid(account.pw_gid)
                    os.setuid(account.pw_uid)
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=server_env(self.tmp), cwd='/', preexec_fn=preexec)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        for _ in range(100000):
            if self.proc.poll() is not None:
                raise HarnessError('server exited with %s during start-up: %s\n%s'
                                   % (self.proc.returncode, cmd, self.log()))
            if time.monotonic() > deadline:
                self.stop()
                raise HarnessError('server did not start within %.0fs: %s\n%s'
                                   % (timeout, cmd, self.log()))
            if port_file is not None and self.port is None:
                try:
                    with open(port_file) as f:
                        text = f.read().strip()
                    if text:
                        self.port = int(text)
                except (OSError, ValueError):
                    pass
            if self.port is not None:
                try:
                    with socket.create_connection(('127.0.0.1', self.port), timeout=1):
                        return self
                except OSError:
                    if port_file is not None:
                        self.port = None   # maybe a partially written file: re-read
            time.sleep(0.02)
        raise HarnessError('unreachable')

    def url(self, path=''):
        return 'bzr://127.0.0.1:%d/%s' % (self.port, urllib.parse.quote(path))

    def connect(self, timeout=IO_TIMEOUT):
        return TcpConn(self.port, timeout=timeout)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def serves(self):
        """Alive, and a fresh connection answers hello."""
        if not self.alive():
            return False
        try:
            with self.connect() as c:
                return hello_ok(c)
        except OSError:
            return False

    def rss_kib(self):
        try:
            with open('/proc/%d/status' % self.proc.pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def log(self):
        return read_tail(self.log_path) if self.tmp else ''

    def stop(self):
        status = stop_process(self.proc)
        if self.tmp:
            remove_tree(self.tmp)
            self.tmp = None
        return status


# ---------------------------------------------------------------------------
# Private sshd

class SshServer:
    """An OpenSSH sshd on 127.0.0.1 with everything in its own temp dir.

    Works as root (PermitRootLogin prohibit-password; /run/sshd is created
    if missing) and as an ordinary user (UsePAM no, StrictModes no,
    PidFile in the temp dir).  `wrapper` is an ssh program for BRZ_SSH.
    """

    def __init__(self):
        self.dir = None
        self.proc = None
        self.port = None
        self.user = pwd.getpwuid(os.getuid()).pw_name

    def start(self, timeout=START_TIMEOUT):
        for tool in (SSHD, SSH, SSH_KEYGEN):
            if not os.access(tool, os.X_OK):
                raise HarnessError('%s is required (Debian openssh-server/openssh-client)' % tool)
        self.dir = make_tempdir('souk-sshd-')
        os.chmod(self.dir, 0o700)
        d = self.dir
        if os.geteuid() == 0 and not os.path.isdir('/run/sshd'):
            os.makedirs('/run/sshd', mode=0o755, exist_ok=True)
        self.host_key = os.path.join(d, 'host_ed25519')
        self.client_key = os.path.join(d, 'client_ed25519')
        for key in (self.host_key, self.client_key):
            subprocess.run([SSH_KEYGEN, '-q', '-t', 'ed25519', '-N', '', '-C', 'souk-test',
                            '-f', key], check=True, timeout=30,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.authorized_keys = os.path.join(d, 'authorized_keys')
        shutil.copyfile(self.client_key + '.pub', self.authorized_keys)
        os.chmod(self.authorized_keys, 0o600)
        self.log_path = os.path.join(d, 'sshd.log')
        self.server_log_dir = os.path.join(d, 'remote')
        os.mkdir(self.server_log_dir)
        last_error = ''
        for _attempt in range(5):
            self.port = free_port()
            self._write_configs()
            log = open(self.log_path, 'wb')
            try:
                self.proc = subprocess.Popen([SSHD, '-D', '-e', '-f', self.sshd_config],
                                             stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                             cwd=d, preexec_fn=_pdeathsig)
            finally:
                log.close()
            if self._wait_banner(timeout):
                self._check_login()
                return self
            last_error = read_tail(self.log_path)
            stop_process(self.proc)
            self.proc = None
            if 'Address already in use' not in last_error:
                break
        self.stop()
        raise HarnessError('private sshd did not start:\n' + last_error)

    def _write_configs(self):
        d = self.dir
        self.sshd_config = os.path.join(d, 'sshd_config')
        lines = [
            'Port %d' % self.port,
            'ListenAddress 127.0.0.1',
            'AddressFamily inet',
            'HostKey %s' % self.host_key,
            'PidFile %s' % os.path.join(d, 'sshd.pid'),
            'AuthorizedKeysFile %s' % self.authorized_keys,
            'AllowUsers %s' % self.user,
            'PubkeyAuthentication yes',
            'PasswordAuthentication no',
            'KbdInteractiveAuthentication no',
            'PermitRootLogin prohibit-password',
            'UsePAM no',
            'StrictModes no',
            'PrintMotd no',
            'PrintLastLog no',
            'X11Forwarding no',
            'AllowTcpForwarding no',
            'AllowAgentForwarding no',
            'PermitTTY no',
            'UseDNS no',
            'MaxStartups 50:30:100',
            'MaxSessions 50',
            'LoginGraceTime 30',
            'LogLevel INFO',
            # Only matters when the far side is `brz serve` (development aid):
            # keep its log out of the user's real home.
            'SetEnv BRZ_LOG=%s BRZ_PLUGIN_PATH=-site:-user'
            % os.path.join(self.server_log_dir, 'brz.log'),
        ]
        with open(self.sshd_config, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        with open(self.host_key + '.pub') as f:
            host_pub = f.read().split()
        self.known_hosts = os.path.join(d, 'known_hosts')
        with open(self.known_hosts, 'w') as f:
            f.write('[127.0.0.1]:%d %s %s\n' % (self.port, host_pub[0], host_pub[1]))
        self.ssh_config = os.path.join(d, 'ssh_config')
        with open(self.ssh_config, 'w') as f:
            f.write('\n'.join([
                'Host *',
                '  User %s' % self.user,
                '  IdentityFile %s' % self.client_key,
                '  IdentitiesOnly yes',
                '  UserKnownHostsFile %s' % self.known_hosts,
                '  GlobalKnownHostsFile /dev/null',
                '  StrictHostKeyChecking yes',
                '  BatchMode yes',
                '  PasswordAuthentication no',
                '  KbdInteractiveAuthentication no',
                '  ControlMaster no',
                '  ControlPath none',
                '  ConnectTimeout 10',
                '  ServerAliveInterval 0',
                '  LogLevel ERROR',
            ]) + '\n')
        self.wrapper = os.path.join(d, 'ssh-wrapper')
        with open(self.wrapper, 'w') as f:
            f.write('#!/bin/sh\n# ssh for BRZ_SSH: the private test config only\n'
                    'exec %s -F %s "$@"\n' % (SSH, self.ssh_config))
        os.chmod(self.wrapper, 0o755)

    def _wait_banner(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with socket.create_connection(('127.0.0.1', self.port), timeout=2) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b'SSH-2.0-'):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _check_login(self):
        """One `ssh ... true` so a broken key/config fails here, clearly."""
        r = subprocess.run([self.wrapper, '-p', str(self.port), '127.0.0.1', 'echo', 'souk-ok'],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        if r.returncode != 0 or r.stdout.strip() != b'souk-ok':
            raise HarnessError('ssh login to the private sshd failed (rc %d): %r\nsshd log:\n%s'
                               % (r.returncode, r.stderr, read_tail(self.log_path)))
        v = subprocess.run([self.wrapper, '-V'], capture_output=True, timeout=30)
        if b'OpenSSH' not in v.stdout + v.stderr:
            raise HarnessError('ssh wrapper -V does not say OpenSSH (brz needs it): %r'
                               % (v.stdout + v.stderr))

    def url(self, abs_path):
        if not abs_path.startswith('/'):
            raise ValueError('bzr+ssh paths here are absolute')
        return 'bzr+ssh://%s@127.0.0.1:%d%s' % (self.user, self.port,
                                                  urllib.parse.quote(abs_path))

    def log(self):
        return read_tail(self.log_path) if self.dir else ''

    def stop(self):
        stop_process(self.proc)
        self.proc = None
        if self.dir:
            remove_tree(self.dir)
            self.dir = None


# ---------------------------------------------------------------------------
# The real brz client

CALL_COUNTS = []      # (server kind, carrier, command label, smart requests)
_COUNTS_LOCK = threading.Lock()
_HPSS_CALL_RE = re.compile(rb'^\s*[\d.]+\s+hpss call(?: w/body(?: stream)?)?:', re.M)
_HPSS_SUMMARY_RE = re.compile(rb'HPSS calls: (\d+)')


def record_calls(kind, carrier, label, n):
    with _COUNTS_LOCK:
        CALL_COUNTS.append((kind, carrier, label, n))


def format_call_table(rows=None):
    rows = CALL_COUNTS if rows is None else rows
    if not rows:
        return ''
    columns = []
    labels = []
    cell = {}
    for kind, carrier, label, n in rows:
        col = (carrier, kind)
        if col not in columns:
            columns.append(col)
        if label not in labels:
            labels.append(label)
        cell[(label, '%s/%s' % (kind, carrier))] = n
    order = {'tcp': 0, 'ssh': 1, 'soukd': 0, 'brz': 1}
    columns.sort(key=lambda c: (order.get(c[0], 9), c[0], order.get(c[1], 9), c[1]))
    columns = ['%s/%s' % (kind, carrier) for carrier, kind in columns]
    width = max(len(x) for x in labels + ['command'])
    colw = [max(len(c), 5) for c in columns]
    out = ['smart requests per brz command (brz -Dhpss)',
           'command'.ljust(width) + '  ' + '  '.join(c.rjust(w) for c, w in zip(columns, colw))]
    for label in labels:
        vals = []
        for c, w in zip(columns, colw):
            v = cell.get((label, c))
            vals.append(('-' if v is None else str(v)).rjust(w))
        out.append(label.ljust(width) + '  ' + '  '.join(vals))
    return '\n'.join(out) + '\n'


class BrzResult:
    def __init__(self, args, rc, stdout, stderr, hpss_calls, log_path, http_connects=0):
        self.args = args
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.hpss_calls = hpss_calls
        self.log_path = log_path
        # HTTP connections the client opened (brz -Dhttp): more than one
        # per server means a request was sent again after a broken reply.
        self.http_connects = http_connects

    def describe(self):
        return ('brz %s -> rc %d\nstdout: %s\nstderr: %s\nlog tail:\n%s'
                % (' '.join(self.args), self.rc, self.stdout[-2000:].decode('utf-8', 'replace'),
                   self.stderr[-3000:].decode('utf-8', 'replace'), read_tail(self.log_path, 3000)))


class BrzEnv:
    """Runs the real brz client in isolation.

    HOME/BRZ_HOME/XDG dirs in a temp dir, a fresh BRZ_LOG per command, a
    fixed identity (BRZ_EMAIL and `brz whoami`), no site/user plugins, and
    optionally BRZ_SSH/BZR_REMOTE_PATH for bzr+ssh://.
    """

    def __init__(self, base_dir, ssh=None, remote=None):
        self.base = base_dir
        self.home = os.path.join(base_dir, 'home')
        self.logs = os.path.join(base_dir, 'brz-logs')
        os.makedirs(self.home, exist_ok=True)
        os.makedirs(self.logs, exist_ok=True)
        self._n = 0
        env = {k: v for k, v in os.environ.items() if not k.startswith(('BRZ_', 'BZR_'))}
        env.update({
            'HOME': self.home,
            'BRZ_HOME': self.home,
            'XDG_CONFIG_HOME': os.path.join(self.home, '.config'),
            'XDG_CACHE_HOME': os.path.join(self.home, '.cache'),
            'BRZ_EMAIL': 'Souk Test <souk-test@example.com>',
            'BRZ_PLUGIN_PATH': '-site:-user',
            'BRZ_PROGRESS_BAR': 'none',
            'LC_ALL': 'C.UTF-8',
            'LANG': 'C.UTF-8',
            'TZ': 'UTC',
            'PATH': brz_friendly_path(os.environ.get('PATH', '')),
        })
        env.pop('SSH_AUTH_SOCK', None)
        if ssh is not None:
            env['BRZ_SSH'] = ssh.wrapper
        if remote is not None:
            env['BZR_REMOTE_PATH'] = remote
        self.env = env
        r = self.run(['whoami', 'Souk Test <souk-test@example.com>'])
        if r.rc != 0:
            raise HarnessError(r.describe())

    def run(self, args, cwd=None, timeout=BRZ_TIMEOUT, input=None, hpss=True):
        self._n += 1
        log_path = os.path.join(self.logs, '%04d.log' % self._n)
        env = dict(self.env)
        env['BRZ_LOG'] = log_path
        argv = [brz_path()] + (['-Dhpss', '-Dhttp'] if hpss else []) + list(args)
        try:
            p = subprocess.run(argv, cwd=cwd or self.base, env=env, capture_output=True,
                               timeout=timeout, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise HarnessError('brz %s did not finish within %.0fs\nlog tail:\n%s'
                               % (' '.join(args), timeout, read_tail(log_path))) from e
        try:
            with open(log_path, 'rb') as f:
                log = f.read()
        except OSError:
            log = b''
        # brz prints 'HPSS calls: N (M vfs)' once per connection it used;
        # without a summary (e.g. a crash) count the logged calls instead.
        summaries = _HPSS_SUMMARY_RE.findall(log)
        if summaries:
            n = sum(int(x) for x in summaries)
        else:
            n = len(_HPSS_CALL_RE.findall(log))
        return BrzResult(list(args), p.returncode, p.stdout, p.stderr, n, log_path,
                         log.count(b'* About to connect() to '))

    def ok(self, testcase, args, cwd=None, record=None, **kw):
        """Run brz and assert exit 0; record (kind, carrier, label) counts if given."""
        r = self.run(args, cwd=cwd, **kw)
        testcase.assertEqual(r.rc, 0, r.describe())
        if record is not None:
            kind, carrier, label = record
            record_calls(kind, carrier, label, r.hpss_calls)
        return r


def print_call_table_at_exit():
    """Print the per-command request counts to stderr (once, at the end)."""
    text = format_call_table()
    if text:
        sys.stderr.write('\n' + text)
        sys.stderr.flush()


# ---------------------------------------------------------------------------
# Endpoints: the same test body over TCP or over `serve --inet` stdio

def limit_args(limits):
    out = []
    for k, v in sorted((limits or {}).items()):
        out += ['--' + k, str(v)]
    return out


class TcpEndpoint:
    """A long-running TCP server; each connect() is a new socket."""

    carrier = 'tcp'

    def __init__(self, root, allow_writes=False, limits=None, kind=None):
        self.server = Server(root, allow_writes=allow_writes, limits=limits, kind=kind)
        self.root = root
        self.conns = []

    def start(self):
        self.server.start()
        return self

    def connect(self):
        conn = self.server.connect()
        self.conns.append(conn)
        return conn

    def close_all(self):
        """Close every connection a test left open (e.g. after a failure)."""
        for conn in self.conns:
            conn.close()
        self.conns = []

    def finish(self, testcase, conn, closed_by_server=False):
        """Close our side; the server must still be alive and serving."""
        conn.close()
        testcase.assertTrue(self.server.serves(),
                            'server no longer serves new connections\n' + self.server.log())

    def diag(self):
        return self.server.log()

    def stop(self):
        self.close_all()
        return self.server.stop()


class InetEndpoint:
    """`serve --inet`: each connect() starts a new process on stdin/stdout."""

    carrier = 'inet'

    def __init__(self, root, allow_writes=False, limits=None, kind=None):
        self.root = root
        self.allow_writes = allow_writes
        self.kind = kind or server_kind()
        self.extra = limit_args(limits) if self.kind == 'soukd' else []
        self.tmp = None
        self.last = None
        self.conns = []

    def start(self):
        self.tmp = make_tempdir('souk-inet-')
        return self

    def connect(self):
        self.last = InetConn(self.root, allow_writes=self.allow_writes, extra_args=self.extra,
                             kind=self.kind, log_dir=self.tmp)
        self.conns.append(self.last)
        return self.last

    def close_all(self):
        """Finish every process a test left running (e.g. after a failure)."""
        for conn in self.conns:
            conn.close()
        self.conns = []

    def finish(self, testcase, conn, closed_by_server=False):
        """EOF on stdin: the process must exit by itself, never by a signal.

        After a normal session the exit status must be 0 (contract: exit 0
        at EOF); after the server closed the stream itself (fatal framing
        error), any non-signal exit is accepted.
        """
        rc = conn.finish()
        tail = conn.stderr_tail()
        conn.close()
        testcase.assertIsNotNone(rc, 'serve --inet did not exit after EOF on stdin\n' + tail)
        testcase.assertGreaterEqual(rc, 0, 'serve --inet died from signal %s\n%s' % (-rc, tail))
        if not closed_by_server:
            testcase.assertEqual(rc, 0, 'serve --inet exit status at EOF\n' + tail)
        with self.connect() as fresh:
            testcase.assertTrue(hello_ok(fresh), 'a new serve --inet does not answer hello')

    def diag(self):
        return self.last.stderr_tail() if self.last else ''

    def stop(self):
        self.close_all()
        remove_tree(self.tmp)
        self.tmp = None


# ---------------------------------------------------------------------------
# soukd's shared counters

def soukd_stats(directory, timeout=30):
    """`soukd stats --directory=DIR` parsed (JSON): 'segment' (None when no
    soukd process has served DIR yet; the counters are then zeros),
    'cache', 'counters' (with 'verbs': {verb: count}, known verbs only)."""
    p = subprocess.run([soukd_path(), 'stats', '--directory=' + directory],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    if p.returncode != 0:
        raise HarnessError('soukd stats --directory=%s exited %d: %r'
                           % (directory, p.returncode, p.stderr[-2000:]))
    try:
        return json.loads(p.stdout)
    except ValueError as e:
        raise HarnessError('soukd stats printed no JSON: %r' % p.stdout[:500]) from e


def remove_stats_segment(directory, stats=None):
    """Unlink the shared segment soukd made for DIR (a test's own temp root),
    once every soukd process serving it has stopped."""
    stats = stats if stats is not None else soukd_stats(directory)
    seg = stats.get('segment') or {}
    name = seg.get('name') or ''
    if name.startswith('/souk.') and '/' not in name[1:]:
        try:
            os.unlink('/dev/shm' + name)
        except OSError:
            pass
