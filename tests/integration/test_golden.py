"""Golden wire cases (golden/*.txt) over all four carriers, counters asserted.

Each golden file is a readable list of requests and their expected
responses (format: golden/README.md).  Every file runs over every carrier
against a fresh copy of a fixture directory built here, in file order:

* stdio: one `soukd serve --inet` process (a new one only after a case in
  which the server closes the stream);
* tcp:   one `soukd serve --listen 127.0.0.1 --port 0`, one connection;
* http:  one `soukd serve --http 127.0.0.1:0`; each request is one
  `POST /.bzr/smart` (at the root, so client paths resolve as on the
  stream carriers) and the 200 response body is the reply;
* cgi:   `soukd cgi` run once per request with the CGI environment and the
  request on stdin (no web server); the body after `Status: 200` is the
  reply.

The reply bytes are checked the same way on every carrier.  A case that is
inherently about a byte stream says so (`@carriers stdio tcp`); the test
prints which cases ran on which carrier.

After each file on each carrier the shared counters of the (fresh, so
zeroed) root are read with `soukd stats --directory=ROOT` and must equal
what the test sent: requests, requests per verb, failure replies, unknown
verbs, protocol errors, and bytes in/out (exactly, on the stream carriers).
A mismatch is reported per case (subTest) with the request, the
expectation and the raw reply; the counters as one more subTest.
"""

import ast
import os
import re
import shutil
import sys
import unittest

import harness
import http_harness
from harness import (InetConn, Server, make_tempdir, read_v3_response, read_v12_response,
                     remove_tree, snapshot, v12_request, v3_request)

GOLDEN_DIR = os.path.join(harness.HERE, 'golden')
DATA = b'0123456789abcdefghijklmnopqrstuvwxyz'

CARRIERS = ('stdio', 'tcp', 'http', 'cgi')
STREAM_CARRIERS = ('stdio', 'tcp')

# How long a daemon (tcp, http) may take to add a reply it has already sent
# to the counters (it counts just after the write).
COUNTER_SETTLE = 2.0

_TEMPLATE = None
_MODULE_TMP = None
# (file, carrier) -> ([cases run], [cases not run on this carrier])
RUNS = {}


# ---------------------------------------------------------------------------
# The golden file format

class Token:
    """An arg of a case: exact bytes, an int, or a regex."""

    def __init__(self, value, regex=False):
        self.value = value
        self.regex = regex

    def matches(self, actual):
        if isinstance(self.value, list):
            return (isinstance(actual, (list, tuple)) and len(actual) == len(self.value)
                    and all(t.matches(a) for t, a in zip(self.value, actual)))
        if self.regex:
            if isinstance(actual, int):
                actual = b'%d' % actual
            return isinstance(actual, bytes) and re.fullmatch(self.value, actual, re.S) is not None
        return actual == self.value

    def __repr__(self):
        return ('re:%r' % self.value) if self.regex else repr(self.value)

    def plain(self):
        """The value to send: nested lists of plain values."""
        return [t.plain() for t in self.value] if isinstance(self.value, list) else self.value


_TOKEN_RE = re.compile(r"""\s*(re:)?(b?'(?:[^'\\]|\\.)*'|b?"(?:[^"\\]|\\.)*"|\S+)""")


def parse_tokens(text):
    out = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise ValueError('cannot parse tokens in %r' % text)
        pos = m.end()
        is_re, tok = m.group(1), m.group(2)
        quoted = tok[0] in '\'"' or (tok[0] == 'b' and len(tok) > 1 and tok[1] in '\'"')
        if is_re:
            # Regexes are raw bytes literals: the re module reads the escapes.
            if quoted:
                body = tok[1:] if tok[0] == 'b' else tok
                value = ast.literal_eval('rb' + body)
            else:
                value = tok.encode('utf-8')
            out.append(Token(value, regex=True))
        elif quoted:
            value = ast.literal_eval(tok)
            out.append(Token(value.encode('utf-8') if isinstance(value, str) else value))
        elif re.fullmatch(r'i:-?\d+', tok):
            out.append(Token(int(tok[2:])))
        elif tok in ('[', ']'):
            out.append(tok)     # a list's brackets, folded below
        else:
            out.append(Token(tok.encode('utf-8')))
    # `[ a b ]` (brackets as words of their own) is a list of tokens.
    stack = [[]]
    for t in out:
        if t == '[':
            stack.append([])
        elif t == ']':
            if len(stack) < 2:
                raise ValueError('unbalanced ] in %r' % text)
            items = stack.pop()
            stack[-1].append(Token(items))
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise ValueError('unbalanced [ in %r' % text)
    return stack[0]


def parse_carriers(text):
    names = text.split()
    if not names:
        raise ValueError('@carriers needs at least one of %s' % ' '.join(CARRIERS))
    for n in names:
        if n not in CARRIERS:
            raise ValueError('unknown carrier %r (known: %s)' % (n, ' '.join(CARRIERS)))
    return tuple(n for n in CARRIERS if n in names)


class Case:
    def __init__(self, name, lineno):
        self.name = name
        self.lineno = lineno
        self.version = None
        self.args = None
        self.body = None
        self.chunks = []
        self.raw_request = None     # `> bytes`: exact request bytes (malformed framing)
        self.times = 1              # `> times N`: the request N times in one write
        self.carriers = None        # `@carriers`: None = the file's default
        self.status = None
        self.expect_args = None
        self.expect_body = None
        self.unordered = False
        self.raw = None
        self.closed = False         # `< closed`: the server then closes the stream

    def describe(self):
        return '%s (line %d)' % (self.name, self.lineno)

    @property
    def reply_version(self):
        if self.raw_request is None:
            return self.version
        if self.raw_request.startswith(harness.V3_MARKER):
            return 3
        if self.raw_request.startswith(harness.V2_REQUEST_MARKER):
            return 2
        return 1

    def request_bytes(self):
        """What the test writes for this case (all `times` copies)."""
        if self.raw_request is not None:
            one = self.raw_request
        elif self.version == 3:
            one = v3_request(self.args, body=self.body, chunks=self.chunks)
        else:
            if self.chunks:
                raise ValueError('v1/v2 have no streamed request bodies')
            one = v12_request(self.version, self.args, body=self.body)
        return one * self.times


def parse_golden(path):
    """Returns (server mode 'rw'|'ro', [Case]); every case's .carriers is set."""
    mode = None
    default_carriers = CARRIERS
    cases = []
    case = None
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if not stripped or stripped.startswith('#'):
            continue
        try:
            if stripped.startswith('@server '):
                mode = stripped.split()[1]
                if mode not in ('rw', 'ro'):
                    raise ValueError('@server must be rw or ro')
            elif stripped.startswith('@carriers'):
                carriers = parse_carriers(stripped[len('@carriers'):])
                if case is None:
                    default_carriers = carriers
                else:
                    case.carriers = carriers
            elif stripped.startswith('== '):
                case = Case(stripped[3:], n)
                cases.append(case)
            elif stripped.startswith('> '):
                rest = stripped[2:]
                word, _, tail = rest.partition(' ')
                if word in ('v1', 'v2', 'v3'):
                    toks = parse_tokens(tail)
                    case.version = int(word[1])
                    case.args = [t.plain() for t in toks]
                elif word == 'body':
                    case.body = parse_tokens(tail)[0].value
                elif word == 'chunk':
                    case.chunks.append(parse_tokens(tail)[0].value)
                elif word == 'bytes':
                    case.raw_request = parse_tokens(tail)[0].value
                elif word == 'times':
                    case.times = int(tail)
                    if not 1 <= case.times <= 100:
                        raise ValueError('times must be 1..100')
                else:
                    raise ValueError('unknown request line')
            elif stripped.startswith('< '):
                rest = stripped[2:]
                word, _, tail = rest.partition(' ')
                if word in ('S', 'E'):
                    case.status = word
                    case.expect_args = parse_tokens(tail)
                elif word == 'body':
                    case.expect_body = parse_tokens(tail)[0]
                elif word == 'raw':
                    case.raw = parse_tokens(tail)[0]
                elif word == 'unordered':
                    case.unordered = True
                elif word == 'closed' and not tail:
                    case.closed = True
                else:
                    raise ValueError('unknown expectation line')
            else:
                raise ValueError('unknown line')
        except (ValueError, AttributeError, SyntaxError, IndexError) as e:
            raise ValueError('%s:%d: %s: %r' % (path, n, e, line)) from e
    if mode is None:
        raise ValueError('%s: missing @server line' % path)
    for c in cases:
        if c.carriers is None:
            c.carriers = default_carriers
        has_request = (c.args is not None) != (c.raw_request is not None)
        if not has_request or (c.status is None and c.raw is None):
            raise ValueError('%s: case %s needs one request and an expectation' % (path, c.describe()))
        if c.raw_request is not None and (c.body is not None or c.chunks):
            raise ValueError('%s: case %s: `> bytes` is the whole request' % (path, c.describe()))
        if c.raw_request is not None and not c.closed:
            raise ValueError('%s: case %s: `> bytes` is malformed framing, which closes the stream '
                             '(`< closed`)' % (path, c.describe()))
        if c.reply_version == 3 and c.status is None:
            raise ValueError('%s: case %s: a v3 case needs `< S` or `< E`' % (path, c.describe()))
    return mode, cases


# ---------------------------------------------------------------------------
# What a case must add to soukd's counters

class _BytesConn(harness.Conn):
    """Reads a fixed byte string (to decode an expected raw v1/v2 reply)."""

    def __init__(self, data):
        super().__init__()
        self._data = data

    def _recv(self, deadline):
        data, self._data = self._data, b''
        return data


_V12_UNKNOWN_VERB = b"Generic bzr smart protocol error: bad request '"


def _expected_v12_reply(case):
    """The expected v1/v2 reply decoded (only for a literal `< raw`)."""
    if case.raw is None or case.raw.regex:
        return None
    verb = case.args[0]
    return read_v12_response(_BytesConn(case.raw.value), case.reply_version,
                             expect_body=verb in harness.V12_BODY_RESPONSE_VERBS)


def expected_counts(case):
    """{'requests': n, 'request_failures': n, 'unknown_verbs': n,
    'protocol_errors': n, 'verbs': {verb: n}} this case adds, from its
    expectation: `> bytes` (malformed framing) is a protocol error, not a
    request; every other case is `times` requests; each failure reply is a
    request failure (counters.hpp: "requests answered with a failure
    reply"), UnknownMethod included; an UnknownMethod reply (v3) or "bad
    request 'VERB'" (v1/v2) is an unknown verb, not counted per verb."""
    out = {'requests': 0, 'request_failures': 0, 'unknown_verbs': 0, 'protocol_errors': 0,
           'verbs': {}}
    if case.raw_request is not None:
        out['protocol_errors'] = 1
        return out
    n = case.times
    out['requests'] = n
    if case.status is not None:
        failure = case.status == 'E'
        first = case.expect_args[0] if case.expect_args else None
        unknown = (case.version == 3 and failure and first is not None and not first.regex
                   and first.value == b'UnknownMethod')
    else:
        r = _expected_v12_reply(case)
        if r is None:
            raise ValueError('%s: cannot tell success from failure' % case.describe())
        failure = not r.success
        unknown = (failure and len(r.args) == 2 and r.args[0] == b'error'
                   and r.args[1].startswith(_V12_UNKNOWN_VERB))
    if unknown:
        out['unknown_verbs'] = n
    else:
        out['verbs'][case.args[0].decode('utf-8')] = n
    if failure:
        out['request_failures'] = n
    return out


def add_counts(total, delta):
    for k, v in delta.items():
        if k == 'verbs':
            for verb, m in v.items():
                total['verbs'][verb] = total['verbs'].get(verb, 0) + m
        else:
            total[k] += v


# ---------------------------------------------------------------------------
# Fixture

def setUpModule():
    global _TEMPLATE, _MODULE_TMP
    harness.require_server()
    _MODULE_TMP = make_tempdir('souk-golden-')
    try:
        _TEMPLATE = os.path.join(_MODULE_TMP, 'template')
        build_template(_TEMPLATE, os.path.join(_MODULE_TMP, 'brz'))
    except BaseException:
        remove_tree(_MODULE_TMP)
        raise


def tearDownModule():
    remove_tree(_MODULE_TMP)
    print_run_table()


def print_run_table():
    """Which cases ran on which carrier (stderr), once at the end."""
    if not RUNS:
        return
    files = sorted({f for f, _ in RUNS})
    out = ['', 'golden cases run per carrier (run/total; cases limited by @carriers listed)',
           'file'.ljust(16) + ''.join(c.rjust(9) for c in CARRIERS)]
    limited = {}
    for f in files:
        row = f.ljust(16)
        for c in CARRIERS:
            if (f, c) in RUNS:
                ran, skipped = RUNS[(f, c)]
                row += ('%d/%d' % (len(ran), len(ran) + len(skipped))).rjust(9)
                for case in skipped:
                    limited.setdefault((f, case.describe()), case.carriers)
            else:
                row += '-'.rjust(9)
        out.append(row)
    for (f, name), carriers in sorted(limited.items()):
        out.append('  %s: %s -- only on %s' % (f, name, ' '.join(carriers)))
    sys.stderr.write('\n'.join(out) + '\n')
    sys.stderr.flush()


def _write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    os.chmod(path, mode)


def build_template(root, brz_base):
    os.makedirs(root)
    _write(os.path.join(root, 'data.txt'), DATA)
    _write(os.path.join(root, 'sp', 'has space.txt'), b'spaced')
    _write(os.path.join(root, 'dir', 'a.txt'), b'A\n')
    _write(os.path.join(root, 'dir', 'sub', 'b.txt'), b'B\n')
    os.chmod(os.path.join(root, 'dir'), 0o755)
    os.makedirs(os.path.join(root, 'empty'))
    _write(os.path.join(root, 'full', 'f.txt'), b'f\n')
    _write(os.path.join(root, 'notbzr', 'plain.txt'), b'plain\n')
    os.makedirs(brz_base)
    env = harness.BrzEnv(brz_base)
    for args in (['init', '-q', os.path.join(root, 'branch')],
                 ['init-repo', '-q', os.path.join(root, 'repo')],
                 ['init', '-q', os.path.join(root, 'repo', 'trunk')]):
        r = env.run(args, hpss=False)
        if r.rc != 0:
            raise harness.HarnessError(r.describe())
    _make_history(os.path.join(root, 'hist'), brz_base)


# hist/: a standalone branch whose revisions have fixed ids (rev-1 <- rev-2
# <- rev-3, and merged-1, a child of rev-1, merged by rev-3), for the
# revision-number verbs and annotate (golden/annotate.txt): a.txt changes on
# both sides of the merge, both sides add the same last line, and the merge
# adds one of its own.
_HISTORY_SCRIPT = r"""
import os, sys
import breezy.bzr  # registers the bzr formats
from breezy import controldir, workingtree
def write(tree, text):
    with open(os.path.join(tree.basedir, 'a.txt'), 'wb') as f:
        f.write(text)
controldir.ControlDir.create_branch_convenience(
    sys.argv[1], force_new_tree=True, format=controldir.format_registry.make_controldir('2a'))
tree = workingtree.WorkingTree.open(sys.argv[1])
write(tree, b'one\ntwo\nthree\nfour\n')
tree.add(['a.txt'])
tree.commit('one', rev_id=b'rev-1', allow_pointless=True, timestamp=1e9, timezone=0)
write(tree, b'ONE\ntwo\nthree\nfour\nsame\n')
tree.commit('two', rev_id=b'rev-2', allow_pointless=True, timestamp=1e9 + 1, timezone=0)
side = tree.controldir.sprout(sys.argv[1] + '-side', revision_id=b'rev-1').open_workingtree()
write(side, b'one\ntwo\nTHREE\nfour\nsame\n')
side.commit('side', rev_id=b'merged-1', allow_pointless=True, timestamp=1e9 + 2, timezone=0)
tree.merge_from_branch(side.branch)
write(tree, b'ONE\ntwo\nTHREE\nfour\nsame\nfive\n')
tree.commit('three', rev_id=b'rev-3', timestamp=1e9 + 3, timezone=0)
"""


def _make_history(path, brz_base):
    import subprocess
    env = dict(os.environ, HOME=brz_base, BRZ_EMAIL='Golden <golden@example.com>', BRZ_LOG=os.devnull)
    subprocess.run(['/usr/bin/python3', '-c', _HISTORY_SCRIPT, path], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)
    remove_tree(path + '-side')


def fresh_fixture(base):
    dst = os.path.join(base, 'root')
    shutil.copytree(_TEMPLATE, dst, symlinks=True)
    return dst


# ---------------------------------------------------------------------------
# Message carriers: one request = one exchange

class ExchangeConn(harness.Conn):
    """A Conn over a message carrier (HTTP POST, or one CGI run).

    send() only collects the request bytes; the first read after it makes
    the exchange, and the reply is the 200 response's body, followed by EOF.
    end_exchange() returns what the case left unread (must be nothing) and
    readies the next exchange.  `exchange(request) -> (status, headers,
    body, diagnostics)`.
    """

    def __init__(self, exchange):
        super().__init__()
        self._exchange = exchange
        self._out = bytearray()
        self.request_bytes = 0
        self.reply_bytes = 0
        self.exchanges = 0
        self.last_diag = ''

    def _send(self, data):
        self._out += data

    def _recv(self, deadline):
        if not self._out:
            return b''   # this exchange's reply is complete: EOF
        request = bytes(self._out)
        self._out.clear()
        status, headers, body, self.last_diag = self._exchange(request)
        self.exchanges += 1
        self.request_bytes += len(request)
        self.reply_bytes += len(body)
        if status != 200:
            raise AssertionError('smart request answered %d, not 200: %r\n%s'
                                 % (status, body[:500], self.last_diag))
        enc = [v for k, v in headers if k.lower() == 'content-encoding']
        if enc:
            raise AssertionError('reply has Content-Encoding %r (none was accepted)' % enc)
        return body

    def end_exchange(self):
        left = self.pending() + bytes(self._out)
        self._buf.clear()
        self._out.clear()
        self.eof = False
        return left

    def close(self):
        pass


def http_exchange(base):
    def exchange(request):
        r = http_harness.smart_post(base, '/.bzr/smart', request)
        return r.status, r.headers, r.body, ''
    return exchange


def cgi_exchange(root, allow_writes):
    def exchange(request):
        env = http_harness.cgi_env(root, REQUEST_METHOD='POST', PATH_INFO='/.bzr/smart',
                                   CONTENT_LENGTH=str(len(request)),
                                   CONTENT_TYPE='application/octet-stream',
                                   SOUK_ALLOW_WRITES='1' if allow_writes else '0',
                                   SOUK_ALLOW_ANONYMOUS_WRITES='1')
        answer, rc, stderr, _ = http_harness.run_cgi(env, stdin=request)
        diag = 'soukd cgi exit status %d, stderr:\n%s' % (rc, stderr[-3000:].decode('utf-8', 'replace'))
        if rc != 0:
            raise AssertionError('soukd cgi exited %d (answered %d)\n%s' % (rc, answer.status, diag))
        return answer.status, answer.headers, answer.body, diag
    return exchange


# ---------------------------------------------------------------------------
# Running

def send_bytes(conn, data):
    conn.send(data)
    conn.golden_sent = getattr(conn, 'golden_sent', 0) + len(data)


def check_reply(testcase, conn, case):
    """Read one reply to `case` from conn and check it against the case."""
    version = case.reply_version
    if version != 3 and case.raw is not None and not case.raw.regex:
        expected = case.raw.value
        got = conn.read_exact(len(expected))
        testcase.assertEqual(got, expected, case.describe())
        return
    if version == 3:
        r = read_v3_response(conn)
    else:
        r = read_v12_response(conn, version,
                              expect_body=case.args[0] in harness.V12_BODY_RESPONSE_VERBS)
    where = '%s: got %r raw=%r' % (case.describe(), r, r.raw[:300])
    if case.raw is not None:
        testcase.assertTrue(case.raw.matches(r.raw), where)
    if case.status is not None:
        testcase.assertEqual(r.status, case.status, where)
        exp = case.expect_args
        got = list(r.args)
        testcase.assertEqual(len(got), len(exp), where)
        if case.unordered:
            testcase.assertTrue(exp[0].matches(got[0]), where)
            testcase.assertEqual(sorted(got[1:]), sorted(t.value for t in exp[1:]), where)
        else:
            for t, a in zip(exp, got):
                testcase.assertTrue(t.matches(a), '%s: arg %r vs %r' % (where, t, a))
        if case.expect_body is None:
            testcase.assertIsNone(r.body, where + ' (no body expected)')
        else:
            testcase.assertIsNotNone(r.body, where + ' (a body was expected)')
            testcase.assertTrue(case.expect_body.matches(r.body), where)


def run_case(testcase, conn, case):
    """Send one case (`times` copies in one write) and check every reply."""
    send_bytes(conn, case.request_bytes())
    for _ in range(case.times):
        check_reply(testcase, conn, case)


HELLO = Case('final hello: the carrier is in step after the last case', 0)
HELLO.version = 3
HELLO.args = [b'hello']
HELLO.status = 'S'
HELLO.expect_args = [Token(b'ok'), Token(b'2')]
HELLO.carriers = CARRIERS


class GoldenBase:
    carrier = None
    maxDiff = None

    def setUp(self):
        self.tmp = make_tempdir('souk-golden-run-')
        self.addCleanup(remove_tree, self.tmp)
        self.server = None
        self.conns = []
        self.root = None

    def tearDown(self):
        for c in self.conns:
            c.close()
        if self.server is not None:
            self.server.stop()
        if self.root is not None:
            try:
                harness.remove_stats_segment(self.root)
            except harness.HarnessError:
                pass

    @property
    def stream(self):
        return self.carrier in STREAM_CARRIERS

    def connect(self, root, mode):
        rw = mode == 'rw'
        if self.carrier == 'tcp':
            if self.server is None:
                self.server = Server(root, allow_writes=rw).start()
            conn = self.server.connect()
        elif self.carrier == 'stdio':
            conn = InetConn(root, allow_writes=rw, log_dir=self.tmp)
        elif self.carrier == 'http':
            if self.server is None:
                self.server = http_harness.SoukdHttp(root, allow_writes=rw).start()
            conn = ExchangeConn(http_exchange(self.server.base))
        else:
            conn = ExchangeConn(cgi_exchange(root, rw))
        conn.golden_sent = 0
        self.conns.append(conn)
        return conn

    def diag(self, conn):
        if self.server is not None:
            return self.server.log()
        if isinstance(conn, ExchangeConn):
            return conn.last_diag
        return conn.stderr_tail()

    def replace(self, conn, root, mode):
        """A new connection after the server closed one (or after a mismatch)."""
        if isinstance(conn, InetConn):
            conn.finish()
        conn.close()
        return self.connect(root, mode)

    def run_one(self, conn, case, root, mode):
        """Run a case; returns the connection to use for the next one."""
        try:
            run_case(self, conn, case)
            if isinstance(conn, ExchangeConn):
                left = conn.end_exchange()
                self.assertEqual(left, b'', '%s: bytes after the expected reply' % case.describe())
            elif case.closed:
                self.assertTrue(conn.wait_closed(), '%s: the server did not close the stream\n%s'
                                % (case.describe(), self.diag(conn)))
                if isinstance(conn, InetConn):
                    rc = conn.finish()
                    self.assertIsNotNone(rc, 'serve --inet did not exit after closing\n'
                                         + conn.stderr_tail())
                    self.assertGreaterEqual(rc, 0, 'serve --inet died from a signal\n'
                                            + conn.stderr_tail())
                conn = self.replace(conn, root, mode)
        except AssertionError:
            # After a mismatch the stream may be out of sync (closed, timed
            # out, or bytes left over): continue the remaining cases on a
            # new connection, report this one.
            self.conn = self.replace(conn, root, mode)
            raise
        return conn

    def run_golden(self, name):
        mode, cases = parse_golden(os.path.join(GOLDEN_DIR, name))
        root = self.root = fresh_fixture(self.tmp)
        before = snapshot(root)
        start = harness.soukd_stats(root)
        self.assertEqual(start['counters']['requests'], 0,
                         'a fresh root already has counted requests: %r' % start)
        ran = [c for c in cases if self.carrier in c.carriers]
        skipped = [c for c in cases if self.carrier not in c.carriers]
        RUNS[(name, self.carrier)] = (ran, skipped)
        sys.stderr.write('\n  %s over %s: %d of %d cases%s\n' % (
            name, self.carrier, len(ran), len(cases),
            ''.join('\n    not on %s (@carriers %s): %s' % (self.carrier, ' '.join(c.carriers),
                                                              c.describe()) for c in skipped)))
        expected = {'requests': 0, 'request_failures': 0, 'unknown_verbs': 0,
                    'protocol_errors': 0, 'verbs': {}}
        self.conn = self.connect(root, mode)
        # The final hello: nothing stray after the last case, the next
        # request is answered.
        for case in ran + [HELLO]:
            add_counts(expected, expected_counts(case))
            with self.subTest(case=case.describe()):
                self.conn = self.run_one(self.conn, case, root, mode)
        if self.carrier == 'stdio':
            self.assertEqual(self.conn.finish(), 0, 'serve --inet exit status at EOF\n'
                             + self.conn.stderr_tail())
        sent = sum(c.golden_sent for c in self.conns)
        received = sum(len(c.received) for c in self.conns)
        with self.subTest(check='counters'):
            self.check_counters(root, expected, sent, received)
        if mode == 'ro':
            self.assertEqual(snapshot(root), before, 'a read-only run changed the fixture')
        self.assertGreater(len(cases), 5)

    def check_counters(self, root, expected, sent, received):
        """soukd stats for the root == what the test sent and read."""
        want = dict(expected)
        want['aborted_requests'] = 0
        if self.stream:
            want['bytes_in'] = sent
            want['bytes_out'] = received
        else:
            # The carrier's framing (HTTP headers, CGI Status:) may count too.
            want['bytes_in'] = '>= %d' % sent
            want['bytes_out'] = '>= %d' % received

        def observed():
            c = harness.soukd_stats(root)['counters']
            got = {k: c[k] for k in ('requests', 'request_failures', 'unknown_verbs',
                                     'protocol_errors', 'aborted_requests')}
            got['verbs'] = dict(c['verbs'])
            for k, n in (('bytes_in', sent), ('bytes_out', received)):
                if self.stream or c[k] < n or c[k] == 0:
                    got[k] = c[k]
                else:
                    got[k] = '>= %d' % n
            return got

        # tcp and http count a reply just after writing it: let them settle.
        settle = COUNTER_SETTLE if self.carrier in ('tcp', 'http') else 0
        got = harness.wait_until(lambda: (lambda g: g if g == want else None)(observed()), settle)
        got = got or observed()
        sys.stderr.write('  counters over %s: requests %s (want %d), request_failures %s (want %d), '
                         'unknown_verbs %s (want %d), protocol_errors %s (want %d), '
                         'bytes_in %s (want %s), bytes_out %s (want %s)\n'
                         % (self.carrier, got['requests'], want['requests'], got['request_failures'],
                            want['request_failures'], got['unknown_verbs'], want['unknown_verbs'],
                            got['protocol_errors'], want['protocol_errors'], got['bytes_in'],
                            want['bytes_in'], got['bytes_out'], want['bytes_out']))
        self.assertEqual(got, want, 'soukd stats --directory=%s after the %s run: the counters '
                         'differ from what the test sent (first: observed, second: expected)'
                         % (root, self.carrier))

    def test_bzrdir(self):
        self.run_golden('bzrdir.txt')

    def test_create(self):
        self.run_golden('create.txt')

    def test_create_readonly(self):
        self.run_golden('create_readonly.txt')

    def test_framing(self):
        self.run_golden('framing.txt')

    def test_annotate(self):
        self.run_golden('annotate.txt')

    def test_readonly(self):
        self.run_golden('readonly.txt')

    def test_versions(self):
        self.run_golden('versions.txt')

    def test_vfs(self):
        self.run_golden('vfs.txt')


class TestGoldenFiles(unittest.TestCase):
    """The golden files themselves: parseable, every one run, vfs.txt complete."""

    def test_every_file_is_run(self):
        names = sorted(n for n in os.listdir(GOLDEN_DIR) if n.endswith('.txt'))
        self.assertTrue(names)
        for n in names:
            parse_golden(os.path.join(GOLDEN_DIR, n))
            method = 'test_' + n[:-4]
            self.assertTrue(hasattr(GoldenBase, method), '%s has no %s in GoldenBase' % (n, method))

    def test_every_vfs_verb_is_covered(self):
        _, cases = parse_golden(os.path.join(GOLDEN_DIR, 'vfs.txt'))
        verbs = {c.args[0] for c in cases if c.args}
        for verb in (b'has', b'get', b'readv', b'append', b'put', b'put_non_atomic', b'mkdir',
                     b'rmdir', b'delete', b'rename', b'move', b'stat', b'list_dir',
                     b'iter_files_recursive'):
            self.assertIn(verb, verbs)
            if verb != b'has':   # has answers yes/no, it has no failure of its own
                self.assertTrue([c for c in cases if c.args[0] == verb and c.status == 'E'],
                                '%r has no error case' % verb)

    def test_expected_counts(self):
        """The counting rules on the cases that exercise each of them."""
        _, cases = parse_golden(os.path.join(GOLDEN_DIR, 'versions.txt'))
        by_name = {c.name: expected_counts(c) for c in cases}
        self.assertEqual(by_name['unknown verb in v1']['unknown_verbs'], 1)
        self.assertEqual(by_name['unknown verb in v2']['unknown_verbs'], 1)
        self.assertEqual(by_name['unknown verb in v3']['unknown_verbs'], 1)
        self.assertEqual(by_name['unknown verb in v3']['request_failures'], 1)
        self.assertEqual(by_name['unknown verb in v1']['verbs'], {})
        self.assertEqual(by_name['hello in v2']['verbs'], {'hello': 1})
        _, cases = parse_golden(os.path.join(GOLDEN_DIR, 'vfs.txt'))
        by_name = {c.name: expected_counts(c) for c in cases}
        self.assertEqual(by_name['get missing in v1']['request_failures'], 1)
        self.assertEqual(by_name['get missing in v2']['request_failures'], 1)
        self.assertEqual(by_name['get in v1']['request_failures'], 0)
        _, cases = parse_golden(os.path.join(GOLDEN_DIR, 'framing.txt'))
        self.assertTrue([c for c in cases if c.times > 1 and c.carriers == STREAM_CARRIERS])
        self.assertTrue([c for c in cases if expected_counts(c)['protocol_errors'] == 1])


class TestGoldenStdio(GoldenBase, unittest.TestCase):
    carrier = 'stdio'


class TestGoldenTcp(GoldenBase, unittest.TestCase):
    carrier = 'tcp'


class TestGoldenHttp(GoldenBase, unittest.TestCase):
    carrier = 'http'


class TestGoldenCgi(GoldenBase, unittest.TestCase):
    carrier = 'cgi'


if __name__ == '__main__':
    unittest.main()
