"""Golden wire cases (golden/*.txt) over stdio and TCP.

Each golden file is a readable list of requests and their expected
responses (format: golden/README.md).  Every file runs over both carriers
against a fresh copy of a fixture directory built here: once through
`soukd serve --inet` (stdio), once through `soukd serve --listen` (TCP),
each on a single connection, in file order.  A mismatch is reported per
case (subTest) with the request, the expectation and the raw reply.
"""

import ast
import os
import re
import shutil
import unittest

import harness
from harness import (InetConn, Server, hello_ok, make_tempdir, read_v3_response,
                     read_v12_response, remove_tree, snapshot, v12_request, v3_request)

GOLDEN_DIR = os.path.join(harness.HERE, 'golden')
DATA = b'0123456789abcdefghijklmnopqrstuvwxyz'

_TEMPLATE = None
_MODULE_TMP = None


# ---------------------------------------------------------------------------
# The golden file format

class Token:
    """An arg of a case: exact bytes, an int, or a regex."""

    def __init__(self, value, regex=False):
        self.value = value
        self.regex = regex

    def matches(self, actual):
        if self.regex:
            if isinstance(actual, int):
                actual = b'%d' % actual
            return isinstance(actual, bytes) and re.fullmatch(self.value, actual, re.S) is not None
        return actual == self.value

    def __repr__(self):
        return ('re:%r' % self.value) if self.regex else repr(self.value)


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
        else:
            out.append(Token(tok.encode('utf-8')))
    return out


class Case:
    def __init__(self, name, lineno):
        self.name = name
        self.lineno = lineno
        self.version = None
        self.args = None
        self.body = None
        self.chunks = []
        self.status = None
        self.expect_args = None
        self.expect_body = None
        self.unordered = False
        self.raw = None

    def describe(self):
        return '%s (line %d)' % (self.name, self.lineno)


def parse_golden(path):
    """Returns (server mode 'rw'|'ro', [Case])."""
    mode = None
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
            elif stripped.startswith('== '):
                case = Case(stripped[3:], n)
                cases.append(case)
            elif stripped.startswith('> '):
                rest = stripped[2:]
                word, _, tail = rest.partition(' ')
                if word in ('v1', 'v2', 'v3'):
                    toks = parse_tokens(tail)
                    case.version = int(word[1])
                    case.args = [t.value for t in toks]
                elif word == 'body':
                    case.body = parse_tokens(tail)[0].value
                elif word == 'chunk':
                    case.chunks.append(parse_tokens(tail)[0].value)
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
                else:
                    raise ValueError('unknown expectation line')
            else:
                raise ValueError('unknown line')
        except (ValueError, AttributeError, SyntaxError, IndexError) as e:
            raise ValueError('%s:%d: %s: %r' % (path, n, e, line)) from e
    if mode is None:
        raise ValueError('%s: missing @server line' % path)
    for c in cases:
        if c.args is None or (c.status is None and c.raw is None):
            raise ValueError('%s: case %s needs a request and an expectation' % (path, c.describe()))
    return mode, cases


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


def fresh_fixture(base):
    dst = os.path.join(base, 'root')
    shutil.copytree(_TEMPLATE, dst, symlinks=True)
    return dst


# ---------------------------------------------------------------------------
# Running

def send_case(conn, case):
    if case.version == 3:
        conn.send(v3_request(case.args, body=case.body, chunks=case.chunks))
    else:
        if case.chunks:
            raise ValueError('v1/v2 have no streamed request bodies')
        conn.send(v12_request(case.version, case.args, body=case.body))


def run_case(testcase, conn, case):
    """Send one case and check the reply; raises AssertionError on mismatch."""
    send_case(conn, case)
    verb = case.args[0]
    if case.version != 3 and case.raw is not None and not case.raw.regex:
        expected = case.raw.value
        got = conn.read_exact(len(expected))
        testcase.assertEqual(got, expected, case.describe())
        return
    if case.version == 3:
        r = read_v3_response(conn)
    else:
        r = read_v12_response(conn, case.version,
                              expect_body=verb in harness.V12_BODY_RESPONSE_VERBS)
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


class GoldenBase:
    carrier = None

    def setUp(self):
        self.tmp = make_tempdir('souk-golden-run-')
        self.addCleanup(remove_tree, self.tmp)
        self.server = None
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            c.close()
        if self.server is not None:
            self.server.stop()

    def connect(self, root, mode):
        if self.carrier == 'tcp':
            if self.server is None:
                self.server = Server(root, allow_writes=(mode == 'rw')).start()
            conn = self.server.connect()
        else:
            conn = InetConn(root, allow_writes=(mode == 'rw'), log_dir=self.tmp)
        self.conns.append(conn)
        return conn

    def diag(self, conn):
        if self.server is not None:
            return self.server.log()
        return conn.stderr_tail()

    def run_golden(self, name):
        mode, cases = parse_golden(os.path.join(GOLDEN_DIR, name))
        root = fresh_fixture(self.tmp)
        before = snapshot(root)
        conn = self.connect(root, mode)
        for case in cases:
            with self.subTest(case=case.describe()):
                try:
                    run_case(self, conn, case)
                except AssertionError:
                    # After a mismatch the stream may be out of sync (closed,
                    # timed out, or bytes left over): continue the remaining
                    # cases on a new connection, report this one.
                    conn.close()
                    conn = self.connect(root, mode)
                    raise
        # Nothing stray after the last case: the next request is answered.
        self.assertTrue(hello_ok(conn), 'stream out of sync after the last case\n'
                        + self.diag(conn))
        if self.carrier == 'inet':
            self.assertEqual(conn.finish(), 0, 'serve --inet exit status at EOF\n'
                             + conn.stderr_tail())
        if mode == 'ro':
            self.assertEqual(snapshot(root), before, 'a read-only run changed the fixture')
        self.assertGreater(len(cases), 5)

    def test_bzrdir(self):
        self.run_golden('bzrdir.txt')

    def test_readonly(self):
        self.run_golden('readonly.txt')

    def test_versions(self):
        self.run_golden('versions.txt')

    def test_vfs(self):
        self.run_golden('vfs.txt')

    def test_every_vfs_verb_is_covered(self):
        _, cases = parse_golden(os.path.join(GOLDEN_DIR, 'vfs.txt'))
        verbs = {c.args[0] for c in cases}
        for verb in (b'has', b'get', b'readv', b'append', b'put', b'put_non_atomic', b'mkdir',
                     b'rmdir', b'delete', b'rename', b'move', b'stat', b'list_dir',
                     b'iter_files_recursive'):
            self.assertIn(verb, verbs)
            if verb != b'has':   # has answers yes/no, it has no failure of its own
                self.assertTrue([c for c in cases if c.args[0] == verb and c.status == 'E'],
                                '%r has no error case' % verb)


class TestGoldenInet(GoldenBase, unittest.TestCase):
    carrier = 'inet'


class TestGoldenTcp(GoldenBase, unittest.TestCase):
    carrier = 'tcp'


if __name__ == '__main__':
    unittest.main()
