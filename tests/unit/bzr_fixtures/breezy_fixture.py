"""Breezy's own answers for the Bazaar-format unit tests (test_bzr_pack,
test_bzr_groupcompress, test_bzr_chk, test_bzr_revision). Run by the tests
with /usr/bin/python3; every mode prints plain lines, bytes as hex.

  index REPO                 every index entry: ext pack key value
  texts REPO                 every stored text: ext key text (Breezy's extraction)
  inventories REPO           revid, parent revids, inventory text, per revision
  container OUT SPEC         ContainerWriter bytes of the records in SPEC
  push-parse FILE            ContainerPushParser records of FILE (fed 7 bytes at a time)
  stream REPO OUT            a get_stream body for every revision of REPO
  gcb-extract BLOCK S:E...   GroupCompressBlock.from_bytes(BLOCK).extract(...)
  chk REPO                   per revision: every CHK page (iter_interesting_nodes),
                             and against each parent the strict difference and new items
  rebuild REPO PACK MAP      replace every pack of REPO by PACK with index values from MAP
  revisions REPO             per revision: its raw text and Breezy's parsed fields
  patience FILE              per line "A B" of FILE (hex lines, comma-joined, '-' for none):
                             patiencediff's matching blocks "a,b,len ..."
  annotator FILE             Breezy's Annotator.annotate_flat over the graphs in FILE
                             ("text NAME PARENTS HEXLINES" lines, "ask NAME", "reset"
                             between graphs): per ask, "ask NAME" then "REVID HEXLINE" per line
  annotate REPO              per revision and path of its tree: "path REVID HEXPATH", then
                             annotate_iter's "REVID HEXLINE" per line
"""
import hashlib
import os
import sys

import breezy.bzr  # noqa: F401  (registers the formats)
from breezy.bzr import chk_map, pack
from breezy.bzr.btree_index import BTreeBuilder, BTreeGraphIndex
from breezy.bzr.groupcompress import GroupCompressBlock
from breezy.repository import Repository
from breezy.transport import get_transport

EXTS = ('rix', 'iix', 'tix', 'six', 'cix')
VFS = (('rix', 'revisions'), ('iix', 'inventories'), ('tix', 'texts'), ('six', 'signatures'), ('cix', 'chk_bytes'))
SHAPES = {'rix': (1, 1), 'iix': (1, 1), 'tix': (1, 2), 'six': (0, 1), 'cix': (0, 1)}


def h(b):
    return b.hex() or '-'


def key_hex(key):
    return h(b'\0'.join(key))


def open_repo(path):
    """The repository at PATH (a bzrdir or its .bzr/repository)."""
    path = path.rstrip('/')
    if path.endswith('/.bzr/repository'):
        path = path[:-len('/.bzr/repository')]
    return Repository.open(path)


def pack_names(t):
    size = len(t.get_bytes('pack-names'))
    idx = BTreeGraphIndex(t, 'pack-names', size)
    return [(e[1][0].decode(), e[2]) for e in idx.iter_all_entries()]


def indices(t):
    for name, sizes in pack_names(t):
        sizes = [int(s) for s in sizes.split()]
        for ext, size in zip(EXTS, sizes):
            yield ext, name, BTreeGraphIndex(t, 'indices/%s.%s' % (name, ext), size)


def hex_lines(field):
    return [] if field == '-' else [bytes.fromhex(x) if x != '-' else b'' for x in field.split(',')]


class _GraphTexts:
    """The least of a VersionedFiles Breezy's Annotator needs: parents and texts."""

    def __init__(self, texts, parents):
        self.texts = texts
        self.parents = parents

    def get_parent_map(self, keys):
        return {k: self.parents[k] for k in keys if k in self.parents}

    def get_record_stream(self, keys, ordering, include_delta_closure):
        from breezy import tsort
        from breezy.bzr.versionedfile import AbsentContentFactory, ChunkedContentFactory
        keys = set(keys)
        present = {k: tuple(p for p in self.parents[k] if p in keys) for k in keys if k in self.parents}
        for k in keys - set(present):
            yield AbsentContentFactory(k)
        for k in tsort.topo_sort(present):
            yield ChunkedContentFactory(k, self.parents[k], None, self.texts[k])


def main():
    mode = sys.argv[1]
    if mode == 'index':
        t = get_transport(sys.argv[2])
        for ext, name, idx in indices(t):
            for e in idx.iter_all_entries():
                print(ext, name, key_hex(e[1]), e[2].decode())
    elif mode == 'texts':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            for ext, attr in VFS:
                vf = getattr(repo, attr)
                keys = vf.keys()
                for rec in vf.get_record_stream(keys, 'unordered', True):
                    print(ext, key_hex(rec.key), h(rec.get_bytes_as('fulltext')))
    elif mode == 'inventories':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            pm = repo.get_parent_map(repo.all_revision_ids())
            for rec in repo.inventories.get_record_stream(repo.inventories.keys(), 'unordered', True):
                rev = rec.key[0]
                parents = [p for p in pm.get(rev, ()) if p != b'null:']
                print(h(rev), ','.join(h(p) for p in parents) or '-', h(rec.get_bytes_as('fulltext')))
    elif mode == 'container':
        out, spec = sys.argv[2], sys.argv[3]
        chunks = []
        w = pack.ContainerWriter(chunks.append)
        w.begin()
        for line in open(spec):
            names_s, data_s = line.split()
            names = [] if names_s == '-' else [
                tuple(bytes.fromhex(e) for e in n.split(',')) for n in names_s.split(';')]
            data = b'' if data_s == '-' else bytes.fromhex(data_s)
            w.add_bytes_record([data], len(data), names)
        w.end()
        with open(out, 'wb') as f:
            f.write(b''.join(chunks))
    elif mode == 'push-parse':
        data = open(sys.argv[2], 'rb').read()
        p = pack.ContainerPushParser()
        recs = []
        for i in range(0, len(data), 7):
            p.accept_bytes(data[i:i + 7])
            recs.extend(p.read_pending_records())
        assert p.finished
        for names, body in recs:
            print(';'.join(','.join(h(e) for e in n) for n in names) or '-', h(body))
    elif mode == 'stream':
        from breezy.bzr import vf_search
        from breezy.bzr.smart.repository import _stream_to_byte_stream
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            source = repo._get_source(repo._format)
            stream = source.get_stream(vf_search.EverythingResult(repo))
            data = b''.join(_stream_to_byte_stream(stream, repo._format))
        with open(sys.argv[3], 'wb') as f:
            f.write(data)
    elif mode == 'gcb-extract':
        block = GroupCompressBlock.from_bytes(open(sys.argv[2], 'rb').read())
        for se in sys.argv[3:]:
            s, e = (int(x) for x in se.split(':'))
            print(h(b''.join(block.extract((b'k',), s, e))))
    elif mode == 'chk':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            store = repo.chk_bytes
            pm = repo.get_parent_map(repo.all_revision_ids())

            def roots(rev):
                inv = repo.get_inventory(rev)
                return [inv.id_to_entry.key(), inv.parent_id_basename_to_file_id.key()]

            def walk(new, old):
                pages, items = set(), set()
                for rec, its in chk_map.iter_interesting_nodes(store, new, old):
                    if rec is not None:
                        pages.add(rec.key[0])
                    items.update((tuple(k), v) for k, v in its)
                return pages, items

            def all_items(root):
                m = chk_map.CHKMap(store, root, search_key_func=store._search_key_func)
                return set((tuple(k), v) for k, v in m.iteritems())

            for rev in sorted(pm):
                r = roots(rev)
                pages, _ = walk(r, [])
                print('pages', h(rev), ' '.join(sorted(p.decode() for p in pages)))
                for parent in pm[rev]:
                    if parent == b'null:':
                        continue
                    o = roots(parent)
                    for which in (0, 1):
                        newp, _ = walk([r[which]], [])
                        oldp, _ = walk([o[which]], [])
                        bz, _ = walk([r[which]], [o[which]])
                        print('diff', h(rev), h(parent), which,
                              ','.join(sorted(p.decode() for p in newp - oldp)) or '-',
                              ','.join(sorted(p.decode() for p in bz)) or '-')
                        items = all_items(r[which]) - all_items(o[which])
                        print('items', h(rev), h(parent), which,
                              ','.join(sorted(key_hex(k) + ':' + h(v) for k, v in items)) or '-')
    elif mode == 'rebuild':
        # MAP lines: ext key-hex new-value ; PACK: the new pack file.
        t = get_transport(sys.argv[2])
        data = open(sys.argv[3], 'rb').read()
        new_values = {}
        for line in open(sys.argv[4]):
            ext, k, v = line.rstrip('\n').split(' ', 2)
            new_values[(ext, bytes.fromhex(k))] = v.encode()
        old = list(indices(t))
        builders = {ext: BTreeBuilder(reference_lists=SHAPES[ext][0], key_elements=SHAPES[ext][1]) for ext in EXTS}
        seen = set()
        for ext, name, idx in old:
            for e in idx.iter_all_entries():
                key = e[1]
                if (ext, key) in seen:
                    continue
                seen.add((ext, key))
                refs = e[3] if SHAPES[ext][0] else ()
                builders[ext].add_node(key, new_values[(ext, b'\0'.join(key))], refs)
        new_name = hashlib.md5(data).hexdigest()
        t.put_bytes('packs/%s.pack' % new_name, data)
        sizes = []
        for ext in EXTS:
            blob = builders[ext].finish().read()
            t.put_bytes('indices/%s.%s' % (new_name, ext), blob)
            sizes.append(len(blob))
        names = BTreeBuilder(reference_lists=0, key_elements=1)
        names.add_node((new_name.encode(),), b' '.join(b'%d' % s for s in sizes))
        for name, _ in pack_names(t):
            if name == new_name:
                continue
            t.delete('packs/%s.pack' % name)
            for ext in EXTS:
                t.delete('indices/%s.%s' % (name, ext))
        t.put_bytes('pack-names', names.finish().read())
    elif mode == 'revisions':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            for rec in repo.revisions.get_record_stream(repo.revisions.keys(), 'unordered', True):
                text = rec.get_bytes_as('fulltext')
                rev = repo.get_revision(rec.key[0])
                props = sorted((k.encode(), v.encode('utf-8', 'surrogateescape')) for k, v in rev.properties.items())
                print(h(text), h(rev.revision_id), ','.join(h(p) for p in rev.parent_ids) or '-',
                      h(rev.committer.encode()), h(rev.message.encode()), h(rev.inventory_sha1),
                      '%.3f' % rev.timestamp, rev.timezone,
                      ','.join(h(k) + ':' + h(v) for k, v in props) or '-')
    elif mode == 'search-keys':
        from breezy.bzr.chk_map import _search_key_16, _search_key_255
        for arg in sys.argv[2:]:
            key = tuple(bytes.fromhex(e) for e in arg.split(','))
            print(h(_search_key_16(key)), h(_search_key_255(key)))
    elif mode == 'formats':
        from breezy.bzr import branch as b, fullhistory, groupcompress_repo as g, knitpack_repo as k
        for c in (g.RepositoryFormat2a, g.RepositoryFormat2aSubtree, k.RepositoryFormatKnitPack1,
                  k.RepositoryFormatKnitPack3, k.RepositoryFormatKnitPack4, k.RepositoryFormatKnitPack5,
                  k.RepositoryFormatKnitPack5RichRoot, k.RepositoryFormatKnitPack5RichRootBroken,
                  k.RepositoryFormatKnitPack6, k.RepositoryFormatKnitPack6RichRoot,
                  k.RepositoryFormatPackDevelopment2Subtree):
            f = c()
            print('repo', h(f.network_name()), int(f.rich_root_data), int(f.supports_tree_reference),
                  int(f.supports_external_lookups), int(f.supports_chks))
        for c in (fullhistory.BzrBranchFormat5, b.BzrBranchFormat6, b.BzrBranchFormat7, b.BzrBranchFormat8,
                  b.BranchReferenceFormat):
            f = c()
            print('branch', h(f.network_name()), int(f.supports_tags()), int(f.supports_stacking()))
        from breezy.bzr import bzrdir
        for c in (bzrdir.BzrDirMetaFormat1, bzrdir.BzrDirMetaFormat1Colo):
            print('dir', h(c.get_format_string()))
    elif mode == 'patience':
        from patiencediff import PatienceSequenceMatcher
        with open(sys.argv[2]) as f:
            for line in f:
                a, b = line.split()
                blocks = PatienceSequenceMatcher(None, hex_lines(a), hex_lines(b)).get_matching_blocks()
                print(' '.join('%d,%d,%d' % tuple(x) for x in blocks))
    elif mode == 'annotator':
        from breezy.annotate import Annotator
        texts, parents = {}, {}
        with open(sys.argv[2]) as f:
            for line in f:
                w = line.split()
                if w[0] == 'reset':
                    texts, parents = {}, {}
                elif w[0] == 'text':
                    key = (b'file-id', w[1].encode())
                    parents[key] = tuple((b'file-id', p.encode()) for p in w[2].split(',')) if w[2] != '-' else ()
                    texts[key] = hex_lines(w[3])
                else:
                    print('ask', w[1])
                    # A fresh annotator per text, as each request of the server has.
                    ann = Annotator(_GraphTexts(texts, parents))
                    for key, line in ann.annotate_flat((b'file-id', w[1].encode())):
                        print(key[-1].decode(), h(line))
    elif mode == 'annotate':
        repo = open_repo(sys.argv[2])
        with repo.lock_read():
            for revid in sorted(repo.all_revision_ids()):
                tree = repo.revision_tree(revid)
                with tree.lock_read():
                    for path, entry in tree.iter_entries_by_dir():
                        print('path', revid.decode(), h(path.encode('utf-8')))
                        for rev, line in tree.annotate_iter(path):
                            print(rev.decode(), h(line))
    else:
        sys.exit('unknown mode ' + mode)


if __name__ == '__main__':
    main()
