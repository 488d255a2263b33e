#!/usr/bin/python3
"""Writes the fuzz targets' seed corpora, tests/fuzz/corpus/<target>/.

  /usr/bin/python3 tests/fuzz/make_seeds.py [CORPUS_DIR]

Sources: the captured sessions (tests/vectors/), the golden wire cases
(tests/integration/golden/), and a small 2a repository that Breezy writes
here (three commits, a rename, a directory): its indices, pack blocks,
revision texts, CHK pages and a repository stream. Each target reads its
input the way its .cpp says (a leading knob byte, or FuzzedDataProvider's
layout: strings from the front, integers from the back, a string ended by
a backslash and any other byte). Output is deterministic apart from what
Breezy writes (revision ids, dates). Keep the total small (docs/fuzzing.md).
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, 'tests', 'integration'))
sys.path.insert(0, os.path.join(TOP, 'tests', 'unit', 'bzr_fixtures'))

V3 = b'bzr message 3 (bzr 1.6)\n'
MAX_SEED = 64 * 1024  # bytes of one seed
MAX_SEEDS = 120       # seeds of one target (a sample by name, i.e. by hash, beyond that)


class Corpus:
    def __init__(self, root):
        self.root = root
        self.seeds = {}

    def add(self, target, data):
        if len(data) <= MAX_SEED:
            self.seeds.setdefault(target, {})[hashlib.sha1(data).hexdigest()[:16]] = data

    def write(self):
        for target, seeds in sorted(self.seeds.items()):
            d = os.path.join(self.root, target)
            os.makedirs(d, exist_ok=True)
            for name in sorted(seeds)[:MAX_SEEDS]:
                with open(os.path.join(d, name), 'wb') as f:
                    f.write(seeds[name])
            print('%-18s %4d seeds (of %d)' % (target, min(len(seeds), MAX_SEEDS), len(seeds)))


def fdp_string(s):
    """FuzzedDataProvider::ConsumeRandomLengthString's encoding of s."""
    return s.replace(b'\\', b'\\\\') + b'\\x'


def v3_parts(stream):
    """(kind, bytes) of every part of every v3 message in a captured stream."""
    out = []
    for msg in stream.split(V3)[1:]:
        if len(msg) < 4:
            continue
        n = int.from_bytes(msg[:4], 'big')
        out.append(('headers', msg[4:4 + n]))
        i = 4 + n
        while i < len(msg):
            kind = msg[i:i + 1]
            if kind == b'o':
                i += 2
            elif kind in (b's', b'b'):
                n = int.from_bytes(msg[i + 1:i + 5], 'big')
                out.append(('structure' if kind == b's' else 'bytes', msg[i + 5:i + 5 + n]))
                i += 5 + n
            else:
                break
    return out


def vectors(corpus):
    vdir = os.path.join(TOP, 'tests', 'vectors')
    for name in sorted(os.listdir(vdir)):
        with open(os.path.join(vdir, name), 'rb') as f:
            data = f.read()
        if name.endswith('.c2s'):
            corpus.add('request_decoder', b'\x00' + data)
            corpus.add('request_decoder', b'\x05' + data)
        elif name.endswith('.s2c'):
            for i, msg in enumerate(data.split(V3)[1:]):
                corpus.add('response_decoder', bytes([2 | (4 if i % 2 else 0)]) + V3 + msg)
        if name.endswith(('.c2s', '.s2c')):
            for kind, part in v3_parts(data):
                if kind != 'bytes':
                    corpus.add('bencode', part)
                elif part.startswith(b'Bazaar pack format 1'):
                    corpus.add('insert_stream', b'\x00' + part)
                elif b',' in part and part[:1].isdigit():
                    corpus.add('readv_ranges', part + b'\x00\xff\xff\x40\x00')


def golden(corpus):
    import test_golden
    gdir = os.path.join(TOP, 'tests', 'integration', 'golden')
    for name in sorted(os.listdir(gdir)):
        if not name.endswith('.txt'):
            continue
        _, cases = test_golden.parse_golden(os.path.join(gdir, name))
        for case in cases:
            try:
                req = case.request_bytes()
            except ValueError:
                continue
            corpus.add('request_decoder', b'\x00' + req)
            if len(req) < 4096:
                # The same as an HTTP POST, with a Content-Length and chunked.
                post = b'POST /.bzr/smart HTTP/1.1\r\nHost: h\r\nContent-Type: application/octet-stream\r\n'
                corpus.add('http1', b'\x00' + post + b'Content-Length: %d\r\n\r\n' % len(req) + req)
                chunks = b''.join(b'%x\r\n%s\r\n' % (len(req[i:i + 50]), req[i:i + 50]) for i in range(0, len(req), 50))
                corpus.add('http1', b'\x07' + post + b'Transfer-Encoding: chunked\r\n\r\n' + chunks + b'0\r\n\r\n')
            if len(req) < 2048:
                # A smart POST to the web front end and to CGI.
                corpus.add('web', fdp_string(b'/.bzr/smart') + req + b'\x00\x20')
                corpus.add('cgi', fdp_string(b'PATH_INFO') + fdp_string(b'/.bzr/smart') + req + b'\x01\x01\x04')
            for a in getattr(case, 'args', None) or []:
                if isinstance(a, bytes) and a.startswith(b'/'):
                    corpus.add('paths', fdp_string(b'') + fdp_string(b'../x') + a + b'\x04')


def hand_made(corpus):
    # v1 and v2 responses, with and without bodies.
    for knobs, data in [(0, b'ok\x012\n'), (1, b'bzr response 2\nsuccess\nok\n'),
                        (5, b'bzr response 2\nsuccess\nok\n3\nabcdone\n'), (4, b'ok\n5\nhellodone\n'),
                        (1, b'bzr response 2\nfailed\nNoSuchFile\x01/x\n')]:
        corpus.add('response_decoder', bytes([knobs]) + data)
    for s in [b'i0e', b'i-42e', b'le', b'de', b'l3:abce', b'd1:ai1e1:bl1:xee', b'4:spam']:
        corpus.add('bencode', s)
    for url in [b'bzr://example.com:4155/a/b', b'bzr+ssh://user@[::1]:22/~/repo', b'bzr+http://h/x%20y/',
                b'http://h/a/../b', b'bzr://h/%2e%2e/x', b'/srv/bzr/trunk/.bzr/branch/']:
        corpus.add('paths', fdp_string(b'') + fdp_string(b'sub/../c') + url + b'\x05')
    for p in [b'~/x', b'~user/y', b'a/%2e%2e/b', b'.souk-tmp.1/x', b'/a//b/./c/..']:
        corpus.add('paths', fdp_string(b'base/dir') + fdp_string(b'..') + p + b'\x07')
    for body in [b'0,10\n20,5', b'0,0', b'\n\n5,5\n', b'1,2\n1,2\n0,100']:
        corpus.add('readv_ranges', body + b'\x00\xff\xff\x40\x11')
    for req in [b'GET /data.txt HTTP/1.1\r\nHost: h\r\nRange: bytes=0-4\r\n\r\n',
                b'HEAD / HTTP/1.0\n\n', b'GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
                b'POST /.bzr/smart HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n',
                b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc',
                b'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-T: y\r\n\r\n',
                b'GET / HTTP/2.0\r\n\r\n',
                # Responses, as libsouk's HTTP client reads them.
                b'HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-2/9\r\nContent-Length: 3\r\n\r\nabc',
                b'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n',
                b'HTTP/1.0 200\r\nConnection: keep-alive\r\n\r\nto the end']:
        corpus.add('http1', b'\x03' + req)
    for value in [b'bytes=0-9', b'bytes=90-200, -5,50-', b'bytes=-0', b'bytes=5-9,200-300', b'items=1-2']:
        corpus.add('http_range', value + b'\x08\x00\x64\x01')
    # The web front end: GETs with ranges and validators, HEAD, stats.
    for knobs, path, headers in [
            (0x00, b'/data.txt', [(b'Range', b'bytes=0-4,10-')]),
            (0x10, b'/big.txt', [(b'Accept-Encoding', b'zstd')]),
            (0x02, b'/.souk/stats', [(b'Accept', b'text/plain')]),
            (0x01, b'/bzr/dir/has space.txt', [(b'If-None-Match', b'"x"')]),
            (0x00, b'/.souk-tmp.secret', [])]:
        data = fdp_string(path)
        for name, value in headers:
            data += fdp_string(name) + fdp_string(value)
        # Integers from the back: knobs, the header count, then per header
        # "a name of the list?" (false: the name is a string above).
        corpus.add('web', data + bytes([0] * len(headers)) + bytes([len(headers), knobs]))
    for name, value in [(b'PATH_INFO', b'/data.txt'), (b'HTTP_RANGE', b'bytes=1-3'),
                        (b'REQUEST_URI', b'/bzr/big.txt?x=1'), (b'CONTENT_LENGTH', b'abc')]:
        corpus.add('cgi', fdp_string(name) + fdp_string(value) + b'\x00\x01\x10')
    # FastCGI: a whole responder request, and a management query.
    def rec(t, rid, content):
        pad = (8 - len(content) % 8) % 8
        return bytes([1, t, rid >> 8, rid & 255, len(content) >> 8, len(content) & 255, pad, 0]) + content + b'\0' * pad

    def pair(n, v):
        def ln(x):
            return bytes([len(x)]) if len(x) < 128 else (len(x) | 0x80000000).to_bytes(4, 'big')
        return ln(n) + ln(v) + n + v
    params = pair(b'REQUEST_METHOD', b'POST') + pair(b'PATH_INFO', b'/.bzr/smart') + pair(b'X', b'y' * 200)
    corpus.add('fastcgi', rec(1, 1, b'\0\1\1\0\0\0\0\0') + rec(4, 1, params[:20]) + rec(4, 1, params[20:]) +
               rec(4, 1, b'') + rec(5, 1, V3) + rec(5, 1, b''))
    corpus.add('fastcgi', rec(9, 0, pair(b'FCGI_MAX_CONNS', b'') + pair(b'FCGI_MPXS_CONNS', b'')))
    corpus.add('fastcgi', rec(2, 3, b'') + rec(11, 0, b'\x07' + b'\0' * 7))
    # Deltas: an insert, a copy from the source, a copy of 65536 (length 0).
    corpus.add('groupcompress', fdp_string(b'0123456789' * 20) + b'\x0a\x03abc\x91\x02\x05' + b'\x00\x00\x01\x01')


def repository(corpus):
    tmp = tempfile.mkdtemp(prefix='souk-seeds-')
    try:
        env = dict(os.environ, HOME=tmp, BRZ_EMAIL='Fuzz Seeds <fuzz@example.com>', BRZ_PROGRESS_BAR='none')

        def brz(cwd, *args):
            subprocess.run(['brz'] + list(args), cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
        brz(tmp, 'init-shared-repo', '-q', 'repo')
        repo = os.path.join(tmp, 'repo')
        brz(repo, 'init', '-q', 'trunk')
        t = os.path.join(repo, 'trunk')
        os.makedirs(os.path.join(t, 'd'))
        for i, (name, text) in enumerate([('a.txt', 'alpha\n'), ('d/b.txt', 'bee\n' * 50)]):
            with open(os.path.join(t, name), 'w') as f:
                f.write(text)
        brz(t, 'add', '-q')
        brz(t, 'commit', '-q', '-m', 'one')
        with open(os.path.join(t, 'a.txt'), 'a') as f:
            f.write(''.join('line %d\n' % i for i in range(300)))
        brz(t, 'commit', '-q', '-m', 'two \u00e9t\u00e9')
        brz(t, 'mv', '-q', 'd/b.txt', 'd/bee.txt')
        brz(t, 'commit', '-q', '-m', 'three')

        rdir = os.path.join(repo, '.bzr', 'repository')
        for sub in ('indices', ''):
            d = os.path.join(rdir, sub)
            for name in sorted(os.listdir(d)):
                if name.endswith(('.rix', '.iix', '.cix', '.tix', '.six')) or name == 'pack-names':
                    with open(os.path.join(d, name), 'rb') as f:
                        corpus.add('btree', f.read())
        # A B+Tree of several pages (Breezy's writer, via the unit tests' fixture).
        out = os.path.join(tmp, 'big.btree')
        subprocess.run([sys.executable, os.path.join(TOP, 'tests', 'unit', 'bzr_fixtures', 'make_btree.py'),
                        'build', out, '2', '1', '1', '1500', '7'], check=True, stdout=subprocess.DEVNULL)
        with open(out, 'rb') as f:
            corpus.add('btree', f.read())

        import breezy.bzr  # noqa: F401
        from breezy.repository import Repository
        r = Repository.open(repo)
        with r.lock_read():
            for key in sorted(r.revisions.keys()):
                rec = next(r.revisions.get_record_stream([key], 'unordered', True))
                corpus.add('revision', rec.get_bytes_as('fulltext'))
            pages = []
            for key in sorted(r.chk_bytes.keys()):
                rec = next(r.chk_bytes.get_record_stream([key], 'unordered', True))
                page = rec.get_bytes_as('fulltext')
                pages.append((key[0], page))
                corpus.add('chk', fdp_string(b'f') + fdp_string(b'') + fdp_string(b'') + fdp_string(key[0]) +
                           page + bytes([0]))
            # Every page of the repository, with its key: a walkable map.
            # Roots first: a page no other page names.
            named = b''.join(p for _, p in pages)
            roots = [kp for kp in pages if kp[0] not in named]
            rest = [kp for kp in pages if kp[0] in named]
            ordered = (roots + rest)[:8]
            data = fdp_string(b'id') + fdp_string(b'') + fdp_string(b'')
            for i, (k, p) in enumerate(ordered):
                data += fdp_string(k)
                data += p if i + 1 == len(ordered) else fdp_string(p)
            corpus.add('chk', data + bytes([(len(ordered) - 1) << 1 | 0x20]))
            # The groupcompress blocks of the pack: each record of the container.
            from breezy.bzr import pack
            packs = os.path.join(rdir, 'packs')
            for name in sorted(os.listdir(packs)):
                with open(os.path.join(packs, name), 'rb') as f:
                    reader = pack.ContainerReader(f)
                    for names, read in reader.iter_records():
                        block = read(None)
                        corpus.add('groupcompress', fdp_string(block) + b'\x00\x00\x00\x05\x00')
                        corpus.add('groupcompress', fdp_string(block) + b'\x20\x40\x03\x10\x00')
        # A repository stream, as insert_stream receives it, whole and in pieces.
        out = os.path.join(tmp, 'stream.bin')
        subprocess.run([sys.executable, os.path.join(TOP, 'tests', 'unit', 'bzr_fixtures', 'write_group_fixture.py'),
                        'stream', repo, out], check=True, env=env, stdout=subprocess.DEVNULL)
        with open(out, 'rb') as f:
            stream = f.read()
        corpus.add('insert_stream', b'\x00' + stream)
        corpus.add('insert_stream', b'\x09' + stream)
        fmt = b'Bazaar repository format 2a (needs bzr 1.16 or later)\n'
        corpus.add('insert_stream', b'\x00Bazaar pack format 1 (introduced in 0.18)\nB54\n\n' + fmt + b'E')
    finally:
        shutil.rmtree(tmp)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, 'corpus')
    if os.path.isdir(root):
        shutil.rmtree(root)
    corpus = Corpus(root)
    vectors(corpus)
    golden(corpus)
    hand_made(corpus)
    repository(corpus)
    corpus.write()


if __name__ == '__main__':
    main()
