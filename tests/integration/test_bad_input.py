"""Hostile and malformed input: the server answers with a clear error, never
crashes, hangs, leaks a server path, or leaves the served root.

The key cases run both over TCP (`soukd serve --listen`) and over stdio
(`soukd serve --inet`, one process per connection); the timing limits
(slowloris, idle timeout, connection cap) run over TCP.  After every case
the connection is either still usable (hello -> ok 2) or cleanly closed,
and the server still serves new connections (TCP) or exited by itself
without a signal (--inet).

Expected replies come from docs/protocol/ (framing.md, paths.md, vfs.md,
errors.md) and docs/layout.md#reliability-rules.
Where the protocol allows "any ('error', ...) failure", the test asserts a
failure whose first arg is b'error'.
"""

import os
import select
import signal
import socket
import struct
import subprocess
import time
import unittest

import harness
from harness import (V3_MARKER, InetEndpoint, TcpEndpoint, call, hello_ok, make_tempdir,
                     prefixed, read_v3_response, remove_tree, snapshot, usable_or_closed,
                     v3_headers, v3_part_bytes, v3_part_struct, v3_request)

DATA = b'0123456789abcdefghijklmnopqrstuvwxyz'
SECRET = b'TOP SECRET: this file lies outside the served root\n'
GENERIC = b'Generic bzr smart protocol error'

# Limits given to the servers of this file (soukd options).
LIMITS = {
    'max-readv-ranges': 16,
    'max-structure': 65536,
    'max-line': 4096,
    'max-body': 1 << 20,
    'max-upload': 3 << 20,
}


def setUpModule():
    harness.require_server()


def clear_dir(path):
    """Empty a directory but keep the directory itself (servers hold it open)."""
    for name in os.listdir(path):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            remove_tree(full)
        else:
            try:
                os.unlink(full)
            except FileNotFoundError:
                pass  # an upload's temporary file, removed by the server as the previous test's connection ended


def make_fixture(base):
    """base/root (served) and base/outside (must never be reached).

    Called again before every test, so one test's damage cannot cascade.
    """
    root = os.path.join(base, 'root')
    outside = os.path.join(base, 'outside')
    for d in (root, outside):
        os.makedirs(d, exist_ok=True)
        clear_dir(d)
    os.makedirs(os.path.join(root, 'dir', 'sub'))
    os.makedirs(os.path.join(root, 'empty'))
    os.makedirs(os.path.join(outside, 'subdir'))
    with open(os.path.join(root, 'data.txt'), 'wb') as f:
        f.write(DATA)
    with open(os.path.join(root, 'dir', 'inner.txt'), 'wb') as f:
        f.write(b'inner\n')
    with open(os.path.join(root, 'trunc.txt'), 'wb') as f:
        f.write(b'old content\n')
    with open(os.path.join(outside, 'secret.txt'), 'wb') as f:
        f.write(SECRET)
    with open(os.path.join(outside, 'subdir', 'deep.txt'), 'wb') as f:
        f.write(SECRET)
    os.symlink(outside, os.path.join(root, 'link_out'))            # absolute target
    os.symlink('../outside/secret.txt', os.path.join(root, 'flink_out'))  # relative target
    return root, outside


class Base:
    """Shared helpers; subclasses provide self.rw (writable) and self.ro endpoints."""

    endpoint_class = None

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-bad-')
        cls.rw = cls.ro = None
        try:
            cls.root, cls.outside = make_fixture(cls.tmp)
            cls.ro_root = os.path.join(cls.tmp, 'ro-root')
            os.makedirs(os.path.join(cls.ro_root, 'dir'))
            with open(os.path.join(cls.ro_root, 'data.txt'), 'wb') as f:
                f.write(DATA)
            with open(os.path.join(cls.ro_root, 'dir', 'f.txt'), 'wb') as f:
                f.write(b'f\n')
            cls.rw = cls.endpoint_class(cls.root, allow_writes=True, limits=LIMITS).start()
            cls.ro = cls.endpoint_class(cls.ro_root, allow_writes=False, limits=LIMITS).start()
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def _cleanup(cls):
        for ep in (cls.rw, cls.ro):
            if ep is not None:
                ep.stop()
        remove_tree(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    def setUp(self):
        make_fixture(self.tmp)
        self.outside_before = snapshot(self.outside)

    def tearDown(self):
        self.rw.close_all()
        self.ro.close_all()
        # Nothing, ever, may change outside the served root.
        self.assertEqual(snapshot(self.outside), self.outside_before,
                         'a file outside the served root changed')

    # -- helpers ------------------------------------------------------------

    def server_paths(self):
        out = set()
        for p in (self.root, self.ro_root, self.tmp, self.outside):
            out.add(p.encode())
            out.add(os.path.realpath(p).encode())
        return out

    def assertNoServerPath(self, raw):
        for p in self.server_paths():
            self.assertNotIn(p, raw, 'the reply reveals a server path: %r' % raw[:300])

    def assertGenericError(self, r, prefix=None):
        self.assertFalse(r.success, 'expected a failure, got %r' % (r,))
        self.assertGreaterEqual(len(r.args), 1, repr(r))
        self.assertEqual(r.args[0], b'error', repr(r))
        if prefix is not None:
            self.assertGreaterEqual(len(r.args), 2, repr(r))
            self.assertTrue(r.args[1].startswith(prefix), repr(r))
        self.assertNoServerPath(r.raw)

    def assertRefused(self, r, sent=None):
        """A failure that leaks neither the outside file nor a server path.

        sent: the path the client sent, which the reply may echo (it is the
        client's path even when it spells a server directory).
        """
        self.assertFalse(r.success, 'expected the server to refuse, got %r' % (r,))
        self.assertIn(r.args[0], (b'error', b'NoSuchFile', b'PermissionDenied', b'ReadError'),
                      repr(r))
        self.assertNotIn(b'TOP SECRET', r.raw)
        self.assertNoServerPath(r.raw.replace(sent, b'') if sent else r.raw)

    def assertUsable(self, conn):
        self.assertTrue(hello_ok(conn), 'connection no longer usable (hello failed)')

    def finish(self, ep, conn, closed_by_server=False):
        ep.finish(self, conn, closed_by_server=closed_by_server)

    def finish_usable_or_closed(self, ep, conn):
        state = usable_or_closed(conn)
        self.finish(ep, conn, closed_by_server=(state == 'closed'))
        return state

    def expect_error_then_closed(self, ep, data, prefix=None, version=3, timeout=5):
        """Send data; expect one error reply and then the server closing."""
        conn = ep.connect()
        try:
            conn.send(data)
        except harness.ConnectionClosed:
            pass
        if version == 3:
            r = read_v3_response(conn, timeout=timeout)
            self.assertGenericError(r, prefix)
        else:
            line = conn.read_line(timeout=timeout)
            self.assertTrue(line.startswith(b'error\x01'), repr(line))
            self.assertNoServerPath(line)
        self.assertTrue(conn.wait_closed(timeout=timeout),
                        'server did not close the connection after a fatal input error')
        self.finish(ep, conn, closed_by_server=True)

    # -- path traversal and confinement --------------------------------------

    TRAVERSAL_PATHS = [
        b'/../outside/secret.txt',
        b'/../../outside/secret.txt',
        b'/dir/../../outside/secret.txt',
        b'/dir/sub/../../../outside/secret.txt',
        b'../outside/secret.txt',
        b'/%2e%2e/outside/secret.txt',
        b'/%2E%2E/outside/secret.txt',
        b'/dir/%2e%2e/%2e%2e/outside/secret.txt',
        b'/dir/..%2f..%2foutside%2fsecret.txt',
        b'/..%2foutside%2fsecret.txt',
        b'/../etc/passwd',
        b'/../../x',
        b'/../../../../../../../../etc/passwd',
    ]

    def test_traversal_reads_refused(self):
        ep = self.rw
        conn = ep.connect()
        paths = self.TRAVERSAL_PATHS + [
            # Absolute server paths are client paths relative to the root.
            os.path.join(self.outside, 'secret.txt').encode(),
            b'/' + os.path.join(self.outside, 'secret.txt').encode(),
        ]
        for path in paths:
            with self.subTest(path=path):
                self.assertRefused(call(conn, b'get', path), sent=path)
                self.assertRefused(call(conn, b'readv', path, body=b'0,5'), sent=path)
                r = call(conn, b'has', path)
                self.assertNotEqual(r.args, (b'yes',), 'has %r answered yes' % path)
                self.assertNoServerPath(r.raw.replace(path, b''))
        for verb in (b'list_dir', b'iter_files_recursive', b'stat'):
            for path in (b'/..', b'/../outside', b'/%2e%2e/outside'):
                with self.subTest(verb=verb, path=path):
                    r = call(conn, verb, path)
                    self.assertRefused(r)
                    self.assertNotIn(b'secret.txt', r.raw)
        self.assertUsable(conn)
        self.finish(ep, conn)

    def test_dotdot_inside_root_is_fine(self):
        conn = self.rw.connect()
        r = call(conn, b'get', b'/dir/../data.txt')
        self.assertTrue(r.success, repr(r))
        self.assertEqual(r.body, DATA)
        r = call(conn, b'get', b'/dir/./sub/../inner.txt')
        self.assertEqual((r.args, r.body), ((b'ok',), b'inner\n'))
        self.finish(self.rw, conn)

    def test_traversal_writes_refused(self):
        ep = self.rw
        conn = ep.connect()
        before = snapshot(self.root)
        cases = [
            (b'put', b'/../outside/new.txt', b''), (b'put', b'/%2e%2e/outside/new.txt', b''),
            (b'put_non_atomic', b'/../outside/new.txt', b'', b'T', b''),
            (b'append', b'/../outside/secret.txt', b''),
            (b'append', b'/%2e%2e/outside/secret.txt', b''),
        ]
        for args in cases:
            with self.subTest(args=args):
                self.assertRefused(call(conn, *args, body=b'PWNED'))
        for args in [
                (b'mkdir', b'/../outside/newdir', b''),
                (b'mkdir', b'/../newdir', b''),
                (b'rmdir', b'/../outside/subdir'),
                (b'delete', b'/../outside/secret.txt'),
                (b'delete', b'/%2e%2e/outside/secret.txt'),
                (b'rename', b'/data.txt', b'/../outside/moved.txt'),
                (b'rename', b'/../outside/secret.txt', b'/stolen.txt'),
                (b'move', b'/data.txt', b'/../outside/secret.txt'),
                (b'move', b'/../outside/secret.txt', b'/stolen.txt')]:
            with self.subTest(args=args):
                self.assertRefused(call(conn, *args))
        self.assertEqual(snapshot(self.root), before, 'a refused write changed the root')
        self.assertUsable(conn)
        self.finish(ep, conn)

    def test_nul_in_path(self):
        conn = self.rw.connect()
        for path in (b'/data.txt\x00', b'/data.txt\x00.png', b'/dir\x00/inner.txt',
                     b'/data%00.txt'):
            with self.subTest(path=path):
                r = call(conn, b'get', path)
                self.assertFalse(r.success, 'get %r succeeded: %r' % (path, r))
                self.assertIn(r.args[0], (b'error', b'NoSuchFile'), repr(r))
                self.assertNoServerPath(r.raw)
        before = snapshot(self.root)
        self.assertFalse(call(conn, b'put', b'/nul\x00name.txt', b'', body=b'x').success)
        self.assertFalse(call(conn, b'mkdir', b'/nul\x00dir', b'').success)
        self.assertEqual(snapshot(self.root), before)
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    def test_symlink_out_of_root_read(self):
        conn = self.rw.connect()
        for path in (b'/link_out/secret.txt', b'/link_out/subdir/deep.txt', b'/flink_out'):
            with self.subTest(path=path):
                self.assertRefused(call(conn, b'get', path))
                self.assertRefused(call(conn, b'readv', path, body=b'0,3'))
        r = call(conn, b'has', b'/link_out/secret.txt')
        self.assertNotEqual(r.args, (b'yes',), 'has through a symlink leaving the root: yes')
        r = call(conn, b'list_dir', b'/link_out')
        self.assertNotIn(b'secret.txt', r.raw, 'list_dir through a symlink listed the outside')
        r = call(conn, b'iter_files_recursive', b'/')
        self.assertTrue(r.success, repr(r))
        for name in r.args[1:]:
            self.assertFalse(name.startswith((b'link_out/', b'link_out%2F')),
                             'iter_files_recursive followed a symlink out: %r' % name)
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    def test_symlink_out_of_root_write(self):
        conn = self.rw.connect()
        for args in [(b'put', b'/link_out/new.txt', b''),
                     (b'put', b'/link_out/secret.txt', b''),
                     (b'put_non_atomic', b'/link_out/new.txt', b'', b'F', b''),
                     (b'put_non_atomic', b'/link_out/secret.txt', b'', b'F', b''),
                     (b'append', b'/link_out/secret.txt', b''),
                     (b'append', b'/flink_out', b'')]:
            with self.subTest(args=args):
                self.assertRefused(call(conn, *args, body=b'PWNED'))
        for args in [(b'mkdir', b'/link_out/newdir', b''),
                     (b'delete', b'/link_out/secret.txt'),
                     (b'rmdir', b'/link_out/subdir'),
                     (b'rename', b'/data.txt', b'/link_out/moved.txt'),
                     (b'rename', b'/link_out/secret.txt', b'/stolen.txt'),
                     (b'move', b'/link_out/secret.txt', b'/stolen.txt')]:
            with self.subTest(args=args):
                self.assertRefused(call(conn, *args))
        # put_non_atomic onto a file symlink may replace the link itself but
        # must never write through it (checked by tearDown's outside snapshot).
        call(conn, b'put_non_atomic', b'/flink_out', b'', b'F', b'', body=b'PWNED')
        self.assertFalse(os.path.exists(os.path.join(self.root, 'stolen.txt')))
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    # -- error replies: exact, with the client's path --------------------------

    def test_error_replies_use_client_path(self):
        conn = self.rw.connect()
        cases = [
            ((b'get', b'/missing.txt'), (b'NoSuchFile', b'/missing.txt')),
            ((b'get', b'/dir'), (b'ReadError', b'/dir')),
            ((b'stat', b'/nope/deeper'), (b'NoSuchFile', b'/nope/deeper')),
            ((b'delete', b'/nope'), (b'NoSuchFile', b'/nope')),
            ((b'mkdir', b'/dir', b''), (b'FileExists', b'/dir')),
            ((b'rmdir', b'/dir'), (b'DirectoryNotEmpty', b'/dir')),
            ((b'list_dir', b'/missing-dir'), (b'NoSuchFile', b'/missing-dir')),
        ]
        for args, expected in cases:
            with self.subTest(args=args):
                r = call(conn, *args)
                self.assertFalse(r.success, repr(r))
                self.assertEqual(r.args, expected)
                self.assertNoServerPath(r.raw)
        r = call(conn, b'put', b'/nodir/x.txt', b'', body=b'x')
        self.assertEqual((r.success, r.args[0]), (False, b'NoSuchFile'), repr(r))
        self.assertIn(r.args[1], (b'/nodir/x.txt', b'/nodir'))
        self.assertNoServerPath(r.raw)
        r = call(conn, b'readv', b'/data.txt', body=b'30,10')
        self.assertEqual((r.success, r.args),
                         (False, (b'ShortReadvError', b'/data.txt', b'30', b'10', b'6')))
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    # -- readv ranges -------------------------------------------------------

    def test_readv_bad_ranges(self):
        conn = self.rw.connect()
        for body in (b'0,3\nabc,4', b'x,1', b'-1,3', b'0,-3', b'0,3,5', b'7',
                     b'18446744073709551615,2', b'18446744073709551610,100',
                     b'1,18446744073709551615', b'99999999999999999999999,1',
                     b'0,99999999999999999999999'):
            with self.subTest(body=body):
                r = call(conn, b'readv', b'/data.txt', body=body)
                self.assertGenericError(r)
                self.assertUsable(conn)
        self.finish(self.rw, conn)

    def test_readv_overlapping_and_short(self):
        conn = self.rw.connect()
        r = call(conn, b'readv', b'/data.txt', body=b'0,3\n0,3\n1,4\n30,6')
        self.assertEqual((r.success, r.args, r.body),
                         (True, (b'readv',), b'012' + b'012' + b'1234' + b'uvwxyz'))
        r = call(conn, b'readv', b'/data.txt', body=b'10,4\n0,3')   # any order
        self.assertEqual(r.body, b'abcd012')
        r = call(conn, b'readv', b'/data.txt', body=b'0,3\n\n10,4')  # empty line ignored
        self.assertEqual(r.body, b'012abcd')
        r = call(conn, b'readv', b'/data.txt', body=b'0,3\n30,10')
        self.assertEqual((r.success, r.args),
                         (False, (b'ShortReadvError', b'/data.txt', b'30', b'10', b'6')))
        r = call(conn, b'readv', b'/data.txt', body=b'40,5')
        self.assertEqual((r.success, r.args),
                         (False, (b'ShortReadvError', b'/data.txt', b'40', b'5', b'0')))
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    def test_readv_range_count_limit(self):
        conn = self.rw.connect()
        n = LIMITS['max-readv-ranges']
        ok_body = b'\n'.join(b'%d,1' % i for i in range(n))
        r = call(conn, b'readv', b'/data.txt', body=ok_body)
        self.assertEqual((r.success, r.body), (True, DATA[:n]))
        r = call(conn, b'readv', b'/data.txt', body=ok_body + b'\n%d,1' % n)
        self.assertGenericError(r)
        r = call(conn, b'readv', b'/data.txt', body=b'\n'.join([b'0,1'] * 100000))
        self.assertGenericError(r)
        self.finish_usable_or_closed(self.rw, conn)

    # -- arguments and bodies -------------------------------------------------

    def test_wrong_argument_counts(self):
        conn = self.rw.connect()
        before = snapshot(self.root)
        cases = [
            ((b'has',), None), ((b'has', b'/data.txt', b'x', b'y'), None),
            ((b'get',), None), ((b'get', b'/data.txt', b'/dir', b'z'), None),
            ((b'stat', b'/data.txt', b'a', b'b', b'c'), None),
            ((b'readv',), b'0,3'), ((b'put',), b'data'), ((b'append',), b'data'),
            ((b'rename', b'/data.txt'), None), ((b'move',), None),
            ((b'mkdir',), None), ((b'rmdir',), None), ((b'delete',), None),
            ((b'list_dir',), None),
            ((b'get', 5), None),                       # an int where a path belongs
            ((b'get', (b'/data.txt',)), None),         # a list where a path belongs
        ]
        for args, body in cases:
            with self.subTest(args=args):
                r = call(conn, *args, body=body)
                self.assertGenericError(r)
                self.assertUsable(conn)
        self.assertEqual(snapshot(self.root), before)
        self.finish(self.rw, conn)

    def test_body_sent_to_verb_without_body(self):
        conn = self.rw.connect()
        r = call(conn, b'has', b'/data.txt', body=b'unexpected body')
        self.assertEqual((r.success, r.args), (True, (b'yes',)))
        r = call(conn, b'get', b'/data.txt', chunks=[b'stray', b'', b'chunks' * 1000])
        self.assertEqual((r.success, r.args, r.body), (True, (b'ok',), DATA))
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    def test_unknown_verb_with_streamed_body(self):
        conn = self.rw.connect()
        r = call(conn, b'frobnicate', b'x', chunks=[b'a' * 1000, b'b' * 70000, b'', b'c'])
        self.assertEqual((r.success, r.args), (False, (b'UnknownMethod', b'frobnicate')))
        r = call(conn, b'Repository.insert_stream_9.99', b'repo/', b'',
                 chunks=[b'Bazaar pack format 1 (introduced in 0.18)\n', b'E'])
        self.assertEqual(r.args, (b'UnknownMethod', b'Repository.insert_stream_9.99'))
        # Ints and nested lists in args must not stop the UnknownMethod answer.
        r = call(conn, b'Repository.frob', b'x', 7, (-3, b'revid', (b'deep', 1)))
        self.assertEqual((r.success, r.args), (False, (b'UnknownMethod', b'Repository.frob')))
        self.assertUsable(conn)
        self.finish(self.rw, conn)

    def test_v1_v2_exact_replies(self):
        conn = self.rw.connect()
        cases = [
            (b'hello\n', b'ok\x012\n'),
            (b'bzr request 2\nhello\n', b'bzr response 2\nsuccess\nok\x012\n'),
            (b'get\x01/data.txt\n', b'ok\n36\n' + DATA + b'done\n'),
            (b'bzr request 2\nget\x01/data.txt\n',
             b'bzr response 2\nsuccess\nok\n36\n' + DATA + b'done\n'),
            (b'frobnicate\x01x\n',
             b"error\x01Generic bzr smart protocol error: bad request 'frobnicate'\n"),
            (b'bzr request 2\nfrobnicate\x01x\n',
             b"bzr response 2\nfailed\nerror\x01Generic bzr smart protocol error: "
             b"bad request 'frobnicate'\n"),
            (b'readv\x01/data.txt\n8\n0,3\n10,4done\n', b'readv\n7\n012abcddone\n'),
            (b'get\x01/missing.txt\n', b'NoSuchFile\x01/missing.txt\n'),
        ]
        for request, expected in cases:
            with self.subTest(request=request):
                conn.send(request)
                got = conn.read_exact(len(expected), timeout=5)
                self.assertEqual(got, expected)
                # Nothing extra: the next v3 request is answered at once.
                self.assertUsable(conn)
        self.finish(self.rw, conn)

    # -- read-only server ---------------------------------------------------

    def test_writes_on_read_only_server(self):
        conn = self.ro.connect()
        before = snapshot(self.ro_root)
        cases = [
            ((b'put', b'/data.txt', b''), b'new'), ((b'put', b'/new.txt', b''), b'new'),
            ((b'put_non_atomic', b'/new.txt', b'', b'T', b''), b'new'),
            ((b'append', b'/data.txt', b''), b'more'), ((b'append', b'/new.txt', b''), b'x'),
            ((b'mkdir', b'/newdir', b''), None), ((b'rmdir', b'/dir'), None),
            ((b'delete', b'/data.txt'), None), ((b'rename', b'/data.txt', b'/r.txt'), None),
            ((b'move', b'/data.txt', b'/dir/f.txt'), None),
        ]
        for args, body in cases:
            with self.subTest(args=args):
                r = call(conn, *args, body=body)
                self.assertEqual((r.success, r.args), (False, (b'ReadOnlyError',)))
        r = call(conn, b'Transport.is_readonly')
        self.assertEqual(r.args, (b'yes',))
        r = call(conn, b'BzrDirFormat.initialize', b'dir/')
        self.assertFalse(r.success, repr(r))
        r = call(conn, b'get', b'/data.txt')
        self.assertEqual(r.body, DATA)
        self.assertEqual(snapshot(self.ro_root), before, 'a read-only server changed the disk')
        self.finish(self.ro, conn)

    # -- malformed framing ------------------------------------------------------

    def test_malformed_framing(self):
        hdr = v3_headers({})
        cases = [
            ('bad part kind', V3_MARKER + hdr + b'x', GENERIC),
            ('header not a dict', V3_MARKER + prefixed(b'l1:xe') + v3_part_struct([b'hello']) + b'e',
             GENERIC),
            ('args not bencoded', V3_MARKER + hdr + b's' + prefixed(b'not bencode') + b'e', GENERIC),
            ('unsorted header keys', V3_MARKER + prefixed(b'd1:b1:11:a1:2e')
             + v3_part_struct([b'hello']) + b'e', GENERIC),
            ('args not a list', V3_MARKER + hdr + b's' + prefixed(b'5:hello') + b'e', None),
            ('trailing bytes in structure', V3_MARKER + hdr + b's' + prefixed(b'l5:helloexyz')
             + b'e', None),
            ('body before args', V3_MARKER + hdr + v3_part_bytes(b'body') + b'e', None),
            ('end before args', V3_MARKER + hdr + b'e', None),
            ('empty args list', V3_MARKER + hdr + v3_part_struct([]) + b'e', None),
        ]
        for name, data, prefix in cases:
            with self.subTest(case=name):
                conn = self.rw.connect()
                conn.send(data)
                r = read_v3_response(conn, timeout=5)
                self.assertGenericError(r, prefix)
                self.finish_usable_or_closed(self.rw, conn)

    def test_truncated_requests_apply_nothing(self):
        full = v3_request([b'put', b'/trunc.txt', b''], body=b'N' * 5000)
        cuts = [5, len(V3_MARKER), len(V3_MARKER) + 2, len(V3_MARKER) + 10,
                len(V3_MARKER) + 4 + 2 + 12, len(full) - 4000, len(full) - 1]
        for cut in cuts:
            with self.subTest(cut=cut):
                conn = self.rw.connect()
                conn.send(full[:cut])
                time.sleep(0.05)
                # EOF in the middle of a request: nothing is answered or applied.
                self.finish(self.rw, conn, closed_by_server=True)
                with open(os.path.join(self.root, 'trunc.txt'), 'rb') as f:
                    self.assertEqual(f.read(), b'old content\n')
        self.assertFalse([n for n in os.listdir(self.root) if 'trunc' in n and n != 'trunc.txt'],
                         'a truncated upload left a temp file visible')

    def test_huge_declared_lengths(self):
        hdr = v3_headers({})
        big = struct.pack('>I', 0xffffffff)
        cases = [
            ('header length', V3_MARKER + big + b'd'),
            ('structure length', V3_MARKER + hdr + b's' + big + b'l3:get'),
            ('body part length', V3_MARKER + hdr + v3_part_struct([b'put', b'/huge.txt', b''])
             + b'b' + big + b'xxxx'),
            ('structure over max-structure', V3_MARKER + hdr + b's'
             + struct.pack('>I', LIMITS['max-structure'] + 1) + b'l5:hello'),
        ]
        for name, data in cases:
            with self.subTest(case=name):
                self.expect_error_then_closed(self.rw, data)
        self.assertFalse(os.path.exists(os.path.join(self.root, 'huge.txt')))

    def test_v1_huge_body_length_and_long_line(self):
        self.expect_error_then_closed(
            self.rw, b'put\x01/v1huge.txt\x01\n99999999999999999999999\nabc', version=1)
        self.expect_error_then_closed(
            self.rw, b'get\x01/' + b'a' * (LIMITS['max-line'] + 100), version=1)
        self.assertFalse(os.path.exists(os.path.join(self.root, 'v1huge.txt')))

    def test_deep_bencode(self):
        deep = b'l' * 10000 + b'e' * 10000
        hdr = v3_headers({})
        for name, data in [
                ('deep args', V3_MARKER + hdr + b's' + prefixed(b'l5:hello' + deep + b'e') + b'e'),
                ('deep args only', V3_MARKER + hdr + b's' + prefixed(deep) + b'e'),
                ('deep header', V3_MARKER + prefixed(b'd1:a' + deep + b'e')
                 + v3_part_struct([b'hello']) + b'e'),
                ('depth 40 args', V3_MARKER + hdr + b's'
                 + prefixed(b'l10:frobnicate' + b'l' * 40 + b'e' * 40 + b'e') + b'e')]:
            with self.subTest(case=name):
                conn = self.rw.connect()
                conn.send(data)
                r = read_v3_response(conn, timeout=5)
                self.assertGenericError(r)
                self.finish_usable_or_closed(self.rw, conn)

    def test_whole_body_over_max_body(self):
        """A body the pipeline holds whole (readv ranges) stops at --max-body:
        a failure reply, nothing buffered beyond the cap, the connection
        still usable."""
        conn = self.rw.connect()
        line = b'0,1\n' * 16384  # 64 KiB of ranges
        n = LIMITS['max-body'] // len(line) + 2
        conn.send(v3_request([b'readv', b'/data.txt'], chunks=[line] * n))
        r = read_v3_response(conn, timeout=10)
        self.assertFalse(r.success, repr(r))
        self.assertEqual(tuple(r.args[:2]), (b'error', b'TooLarge'), repr(r))
        self.assertIn(b'--max-body', r.args[2])
        self.finish_usable_or_closed(self.rw, conn)

    def test_streamed_body_beyond_max_body_is_fine(self):
        """put streams its body to disk: --max-body does not apply to it."""
        conn = self.rw.connect()
        chunk = bytes(range(256)) * 256
        n = LIMITS['max-body'] // len(chunk) + 2
        conn.send(v3_request([b'put', b'/big.bin', b''], chunks=[chunk] * n))
        r = read_v3_response(conn, timeout=20)
        self.assertTrue(r.success, repr(r))
        with open(os.path.join(self.root, 'big.bin'), 'rb') as f:
            self.assertEqual(f.read(), chunk * n)

    def test_streamed_body_over_max_upload(self):
        """Beyond --max-upload the framing is refused: a generic error, the
        connection closed, nothing written."""
        conn = self.rw.connect()
        chunk = b'B' * 65536
        n = LIMITS['max-upload'] // len(chunk) + 2
        try:
            conn.send(v3_request([b'put', b'/toobig.bin', b''], chunks=[chunk] * n))
        except harness.ConnectionClosed:
            pass
        r = read_v3_response(conn, timeout=10)
        self.assertGenericError(r)
        self.finish_usable_or_closed(self.rw, conn)
        self.assertFalse(os.path.exists(os.path.join(self.root, 'toobig.bin')))
        self.assertEqual([n for n in os.listdir(self.root) if n.startswith('.souk-tmp')], [])


class TestBadInputTcp(Base, unittest.TestCase):
    endpoint_class = TcpEndpoint

    def test_huge_lengths_allocate_nothing(self):
        server = self.rw.server
        before = server.rss_kib()
        self.assertIsNotNone(before)
        for _ in range(3):
            self.test_huge_declared_lengths()
        after = server.rss_kib()
        self.assertLess(after - before, 64 * 1024,
                        'RSS grew from %d to %d KiB on huge declared lengths' % (before, after))

    def test_many_truncated_connections_in_a_row(self):
        data = v3_request([b'get', b'/data.txt'])
        for i in range(60):
            s = socket.create_connection(('127.0.0.1', self.rw.server.port), timeout=5)
            s.sendall(data[:i % len(data)])
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            s.close()   # RST on some of them
        self.assertTrue(self.rw.server.serves(), self.rw.diag())


class TestBadInputInet(Base, unittest.TestCase):
    endpoint_class = InetEndpoint


class TestTimeLimits(unittest.TestCase):
    """Slowloris, idle timeout and the connection cap (TCP)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-limits-')
        cls.servers = []
        try:
            with open(os.path.join(cls.tmp, 'data.txt'), 'wb') as f:
                f.write(DATA)
            cls.slow = cls._start({'request-timeout': 1, 'idle-timeout': 30})
            cls.idle = cls._start({'request-timeout': 10, 'idle-timeout': 1})
            cls.capped = cls._start({'max-connections': 2})
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def _start(cls, limits):
        s = harness.Server(cls.tmp, limits=limits).start()
        cls.servers.append(s)
        return s

    @classmethod
    def _cleanup(cls):
        for s in cls.servers:
            s.stop()
        remove_tree(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    def conn(self, server):
        c = server.connect()
        self.addCleanup(c.close)
        return c

    def test_slowloris_partial_request_dropped(self):
        stalled = self.conn(self.slow)
        idle = self.conn(self.slow)
        t0 = time.monotonic()
        stalled.send(V3_MARKER + b'\x00\x00')    # a request starts ... and stalls
        self.assertTrue(stalled.wait_closed(timeout=5),
                        'a stalled partial request was not dropped (request-timeout 1)')
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.5, 'dropped before the request timeout')
        self.assertLess(elapsed, 4.0)
        # The idle connection (no partial request) outlives the request timeout.
        time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
        self.assertTrue(hello_ok(idle), 'an idle connection was dropped by the request timeout')
        idle.close()
        stalled.close()
        self.assertTrue(self.slow.serves())

    def test_slowloris_trickle_dropped(self):
        conn = self.conn(self.slow)
        data = v3_request([b'get', b'/data.txt'])
        t0 = time.monotonic()
        closed = False
        for i in range(len(data)):
            try:
                conn.send(data[i:i + 1])
            except harness.ConnectionClosed:
                closed = True
                break
            r, _, _ = select.select([conn.sock], [], [], 0.25)
            if r and conn.wait_closed(timeout=0.01):
                closed = True
                break
            if time.monotonic() - t0 > 6:
                break
        elapsed = time.monotonic() - t0
        self.assertTrue(closed or conn.wait_closed(timeout=1),
                        'a request trickling in byte by byte was never dropped')
        self.assertLess(elapsed, 4.0, 'trickling request survived %.1fs' % elapsed)
        conn.close()
        self.assertTrue(self.slow.serves())

    def test_request_timeout_is_per_request(self):
        conn = self.conn(self.slow)
        t0 = time.monotonic()
        for _ in range(8):   # 8 requests, 0.4 s apart: 3.2 s > request-timeout
            self.assertTrue(hello_ok(conn))
            time.sleep(0.4)
        self.assertGreater(time.monotonic() - t0, 3.0)
        self.assertTrue(hello_ok(conn))
        conn.close()

    def test_idle_timeout(self):
        busy = self.conn(self.idle)
        quiet = self.conn(self.idle)
        t0 = time.monotonic()
        self.assertTrue(hello_ok(quiet))
        self.assertTrue(quiet.quiet_for(0.4), 'closed long before the idle timeout')
        for _ in range(6):   # requests 0.4 s apart keep this one alive past 1 s
            time.sleep(0.4)
            self.assertTrue(hello_ok(busy), 'a busy connection was closed as idle')
        self.assertTrue(quiet.wait_closed(timeout=3), 'an idle connection was not closed')
        self.assertGreater(time.monotonic() - t0, 0.8)
        busy.close()
        quiet.close()
        self.assertTrue(self.idle.serves())

    def test_max_connections(self):
        a = self.conn(self.capped)
        b = self.conn(self.capped)
        self.assertTrue(hello_ok(a))
        self.assertTrue(hello_ok(b))
        c = self.conn(self.capped)   # the kernel accepts; the server must not serve it
        try:
            c.send(v3_request([b'hello']))
            try:
                r = read_v3_response(c, timeout=1.5)
                self.fail('a connection over --max-connections was served: %r' % (r,))
            except (harness.ExchangeTimeout, harness.ConnectionClosed):
                pass
        except harness.ConnectionClosed:
            pass
        c.close()
        a.close()
        ok = harness.wait_until(lambda: self.capped.serves(), timeout=5, interval=0.1)
        self.assertTrue(ok, 'a slot freed by a closed connection was not reused')
        self.assertTrue(hello_ok(b))
        b.close()

    def test_stops_on_sigterm(self):
        server = harness.Server(self.tmp).start()
        try:
            idle = self.conn(server)
            self.assertTrue(hello_ok(idle))
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.fail('the server ignored SIGTERM for 5 s with an idle client')
            self.assertIn(server.proc.returncode, (0, -signal.SIGTERM))
        finally:
            server.stop()


if __name__ == '__main__':
    unittest.main()
