"""Streams from Breezy for the write-group unit tests (test_bzr_write_group).
Run with /usr/bin/python3.

  stream REPO OUT [REVID [EXCLUDE...]]   a get_stream body: every revision of REPO,
                                         or REVID's ancestry without EXCLUDE's
  missing REPO OUT REVID...              get_stream_for_missing_keys body for
                                         the inventories of REVID...
  compare SRC DST                        "same" when DST has every revision of SRC
                                         with equal revisions, inventories and
                                         texts; otherwise what differs
  revids REPO                            every revision id, sorted
  history BRANCH                         the branch's left-hand history, oldest first
"""
import sys

import breezy.bzr  # noqa: F401  (registers the formats)
from breezy.bzr import vf_search
from breezy.bzr.smart.repository import _stream_to_byte_stream
from breezy.repository import Repository


def open_repo(path):
    return Repository.open(path)


def main():
    mode = sys.argv[1]
    if mode == 'stream':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            source = repo._get_source(repo._format)
            if len(sys.argv) > 4:
                rev = sys.argv[4].encode()
                exclude = {e.encode() for e in sys.argv[5:]}
                search = repo.get_graph()._make_breadth_first_searcher([rev])
                keys = set()
                for revs in search:
                    revs = set(revs) - exclude - {b'null:'}
                    keys.update(revs)
                    search.stop_searching_any(exclude)
                result = vf_search.SearchResult({rev}, exclude, len(keys), keys)
            else:
                result = vf_search.EverythingResult(repo)
            stream = source.get_stream(result)
            data = b''.join(_stream_to_byte_stream(stream, repo._format))
        with open(sys.argv[3], 'wb') as f:
            f.write(data)
    elif mode == 'missing':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            source = repo._get_source(repo._format)
            keys = [('inventories', r.encode()) for r in sys.argv[4:]]
            stream = source.get_stream_for_missing_keys(keys)
            data = b''.join(_stream_to_byte_stream(stream, repo._format))
        with open(sys.argv[3], 'wb') as f:
            f.write(data)
    elif mode == 'compare':
        src, dst = open_repo(sys.argv[2]), open_repo(sys.argv[3])
        problems = []
        with src.lock_read(), dst.lock_read():
            revs = sorted(src.all_revision_ids())
            missing = set(revs) - set(dst.all_revision_ids())
            if missing:
                problems.append('missing revisions %r' % sorted(missing))
            for rev in sorted(set(revs) - missing):
                a, b = src.get_revision(rev), dst.get_revision(rev)
                if a != b:
                    problems.append('revision %s differs' % rev)
                ta, tb = src.revision_tree(rev), dst.revision_tree(rev)
                ea = sorted((p, e.kind, e.revision) for p, e in ta.iter_entries_by_dir())
                eb = sorted((p, e.kind, e.revision) for p, e in tb.iter_entries_by_dir())
                if ea != eb:
                    problems.append('inventory %s differs' % rev)
                    continue
                for p, kind, _ in ea:
                    if kind == 'file' and ta.get_file_text(p) != tb.get_file_text(p):
                        problems.append('text %s in %s differs' % (p, rev))
        print('\n'.join(problems) if problems else 'same')
    elif mode == 'revids':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            for r in sorted(repo.all_revision_ids()):
                print(r.decode())
    elif mode == 'history':
        from breezy.branch import Branch
        b = Branch.open(sys.argv[2])
        with b.lock_read():
            hist = list(b.repository.get_graph().iter_lefthand_ancestry(b.last_revision(), (b'null:',)))
        for r in reversed(hist):
            print(r.decode())
    else:
        raise SystemExit('unknown mode ' + mode)


if __name__ == '__main__':
    main()
