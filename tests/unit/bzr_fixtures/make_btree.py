#!/usr/bin/python3
"""B+Tree index fixtures made by Breezy itself, for tests/unit/test_bzr_btree.cpp.

  make_btree.py build OUT REF_LISTS KEY_ELEMENTS OPTIMIZE N SEED
      Generate N deterministic nodes (revision-like keys; with two key
      elements, file-id + revision keys as in .tix), write them with
      BTreeBuilder to OUT, and print the nodes in the dump format below.
  make_btree.py read FILE
      Read FILE with BTreeGraphIndex (validate, iter_all_entries, and an
      iter_entries lookup of every key) and print its nodes.

Dump format, one node per line, sorted by key, every field hex so that any
byte survives: KEY VALUE LIST... where KEY and each reference are the key
elements joined by NUL, and each LIST is '-' (empty) or comma-joined refs.
The first line is 'meta REF_LISTS KEY_ELEMENTS COUNT'.
"""
import random
import sys

from breezy import transport
from breezy.bzr import btree_index


def hx(b):
    return b.hex() if b else ''


def dump(ref_lists, key_elements, nodes):
    out = ['meta %d %d %d' % (ref_lists, key_elements, len(nodes))]
    for key, value, refs in sorted(nodes):
        fields = [hx(b'\0'.join(key)), hx(value) or '-']
        for lst in refs:
            fields.append(','.join(hx(b'\0'.join(r)) for r in lst) or '-')
        out.append(' '.join(fields))
    sys.stdout.write('\n'.join(out) + '\n')


def make_nodes(n, ref_lists, key_elements, seed):
    rnd = random.Random(seed)
    revs = [b'joe@example.com-2009%08d-%s' % (i, ('%016x' % rnd.getrandbits(64)).encode()) for i in range(n)]
    nodes = []
    for i, rev in enumerate(revs):
        key = (rev,) if key_elements == 1 else (b'file-%d-id' % (i % 7), rev)
        value = b'%d %d %d %d' % (rnd.randrange(1 << 30), rnd.randrange(1 << 16), rnd.randrange(1000), rnd.randrange(1000))
        refs = []
        for lst in range(ref_lists):
            parents = []
            if i > 0:
                parents.append(i - 1 if lst == 0 else max(0, i - 2))
            if i > 5 and rnd.random() < 0.1:
                parents.append(rnd.randrange(i))
            if i > 3 and rnd.random() < 0.02:
                parents = []  # a few roots / empty lists
            refs.append(tuple(nodes[p][0] for p in parents))
        nodes.append((key, value, tuple(refs)))
    return nodes


def main():
    mode = sys.argv[1]
    if mode == 'build':
        out, ref_lists, key_elements, optimize, n, seed = sys.argv[2], *map(int, sys.argv[3:8])
        nodes = make_nodes(n, ref_lists, key_elements, seed)
        builder = btree_index.BTreeBuilder(reference_lists=ref_lists, key_elements=key_elements)
        if optimize:
            builder.set_optimize(for_size=True)
        for key, value, refs in nodes:
            builder.add_node(key, value, refs)
        with open(out, 'wb') as f:
            f.write(builder.finish().read())
        dump(ref_lists, key_elements, nodes)
    elif mode == 'read':
        path = sys.argv[2]
        t = transport.get_transport_from_path('/')
        import os
        size = os.path.getsize(path)
        idx = btree_index.BTreeGraphIndex(t, path.lstrip('/'), size)
        idx.validate()
        ref_lists, key_elements = idx.node_ref_lists, idx._key_length
        nodes = []
        for entry in idx.iter_all_entries():
            refs = entry[3] if ref_lists else ()
            nodes.append((entry[1], entry[2], refs))
        keys = [n[0] for n in nodes]
        found = {e[1] for e in idx.iter_entries(keys)}
        if found != set(keys) or idx.key_count() != len(keys):
            sys.exit('lookup by key disagrees with iter_all_entries')
        dump(ref_lists, key_elements, nodes)
    else:
        sys.exit('unknown mode ' + mode)


if __name__ == '__main__':
    main()
