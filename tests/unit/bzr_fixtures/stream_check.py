"""Breezy's side of the stream-source tests (test_bzr_stream_source): build
the sample branches, list their revisions, and feed a stream body produced
by souk into Breezy's own stream sink. Run with /usr/bin/python3.

  graph BRANCH                    every revision: "revid parent..." lines, tip first
  decode STREAM                   per record: substream and key (hex), then "format <hex>"
  insert STREAM TARGET [TIP]      _byte_stream_to_stream + the repository's sink
                                  into TARGET's repository; prints "missing <kind> <key>"
                                  for what the sink still lacks, then (with TIP) sets
                                  TARGET's branch to TIP
  breezy-stream BRANCH SEARCH OUT Breezy's own get_stream body for SEARCH (the request body)
  search BRANCH SEARCH            the revisions Breezy's server selects for SEARCH, one a line
"""
import sys

import breezy.bzr  # noqa: F401  (registers the formats)
from breezy.branch import Branch
from breezy.bzr import vf_search
from breezy.bzr.smart.repository import (SmartServerRepositoryRequest, _byte_stream_to_stream,
                                         _stream_to_byte_stream)


def main():
    mode = sys.argv[1]
    if mode == 'graph':
        b = Branch.open(sys.argv[2])
        repo = b.repository
        with repo.lock_read():
            g = repo.get_graph()
            tip = b.last_revision()
            order = [tip] + sorted(r for r in repo.all_revision_ids() if r != tip)
            pm = g.get_parent_map(order)
            for r in order:
                print(' '.join(x.decode() for x in (r,) + tuple(p for p in pm.get(r, ()) if p != b'null:')))
    elif mode == 'decode':
        with open(sys.argv[2], 'rb') as f:
            data = f.read()
        fmt, stream = _byte_stream_to_stream(iter([data]))
        for kind, substream in stream:
            for rec in substream:
                if rec.storage_kind == 'absent':
                    raise AssertionError('absent record %r' % (rec.key,))
                rec.get_bytes_as('fulltext')  # every record must extract
                print(kind, b'\0'.join(rec.key).hex())
        print('format', fmt.network_name().hex())
    elif mode == 'insert':
        stream_path, target = sys.argv[2], sys.argv[3]
        with open(stream_path, 'rb') as f:
            data = f.read()
        b = Branch.open(target)
        repo = b.repository
        fmt, stream = _byte_stream_to_stream(iter([data]))
        tokens, missing = repo._get_sink().insert_stream(stream, fmt, [])
        for key in sorted(missing):
            print('missing', key[0], b'\0'.join(key[1:]).hex())
        if len(sys.argv) > 4 and not missing:
            tip = sys.argv[4].encode()
            with b.lock_write():
                b.generate_revision_history(tip)
    elif mode == 'breezy-stream':
        b = Branch.open(sys.argv[2])
        repo = b.repository
        with open(sys.argv[3], 'rb') as f:
            body = f.read()
        with repo.lock_read():
            search, err = object.__new__(SmartServerRepositoryRequest).recreate_search(repo, body, True)
            if err is not None:
                raise AssertionError(err)
            source = repo._get_source(repo._format)
            data = b''.join(_stream_to_byte_stream(source.get_stream(search), repo._format))
        with open(sys.argv[4], 'wb') as f:
            f.write(data)
    elif mode == 'search':
        b = Branch.open(sys.argv[2])
        repo = b.repository
        with open(sys.argv[3], 'rb') as f:
            body = f.read()
        with repo.lock_read():
            search, err = object.__new__(SmartServerRepositoryRequest).recreate_search(repo, body, True)
            if err is not None:
                print('error', err.args[0].decode())
                return
            for r in sorted(search.get_keys()):
                print(r.decode())
    else:
        raise SystemExit('unknown mode ' + mode)


if __name__ == '__main__':
    main()
