#!/usr/bin/python3
"""Repository.get_parent_map on a 100,000-revision repository: old soukd
(whole .rix per call), new soukd (B+Tree pages bisected through the Store)
and `brz serve`, side by side. Run by scripts/bench-parent-map.

The repository holds only what get_parent_map needs: the control files of
`brz init-repo`, pack-names, and one pack's five indices, the .rix written
by Breezy's own BTreeBuilder (set_optimize(for_size=True), as a pack's
indices are). Each server is started on loopback on a free port and stopped
by PID. A call is timed at the client (Breezy's smart client, so the same
client cost for every server); bytes read are the server process's
/proc/PID/io rchar growth per call (soukd runs with --cache=0 --readahead=0
so every byte it reads is a syscall). Prints a table of medians and writes
JSON.
"""
import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from breezy.bzr import btree_index
from breezy.bzr.smart import client as smart_client
from breezy.bzr.smart import medium as smart_medium

PACK = b'0123456789abcdef0123456789abcdef'


def make_repo(root, n, seed):
    env = dict(os.environ, HOME=root, BRZ_EMAIL='Bench <bench@example.com>')
    subprocess.run(['brz', 'init-repo', '-q', os.path.join(root, 'repo')], check=True, env=env)
    repo = os.path.join(root, 'repo', '.bzr', 'repository')
    rnd = random.Random(seed)
    revs = [b'joe@example.com-2009%08d%06d-%016x' % (i // 1000, i % 1000, rnd.getrandbits(64)) for i in range(n)]
    graph = {}
    rix = btree_index.BTreeBuilder(reference_lists=1, key_elements=1)
    rix.set_optimize(for_size=True)
    for i, rev in enumerate(revs):
        parents = []
        if i:
            parents.append((revs[i - 1],))
        if i > 20 and i % 25 == 0:  # a merge now and then: mildly branchy
            parents.append((revs[i - 2 - rnd.randrange(15)],))
        graph[rev] = [p[0] for p in parents]
        rix.add_node((rev,), b'%d %d 0 %d' % (42 + i * 300, 300, rnd.randrange(1000)), (tuple(parents),))
    sizes = []
    os.makedirs(os.path.join(repo, 'indices'), exist_ok=True)
    for suffix, builder in (('.rix', rix),
                            ('.iix', btree_index.BTreeBuilder(reference_lists=1, key_elements=1)),
                            ('.tix', btree_index.BTreeBuilder(reference_lists=1, key_elements=2)),
                            ('.six', btree_index.BTreeBuilder(reference_lists=0, key_elements=1)),
                            ('.cix', btree_index.BTreeBuilder(reference_lists=0, key_elements=1))):
        data = builder.finish().read()
        with open(os.path.join(repo, 'indices', PACK.decode() + suffix), 'wb') as f:
            f.write(data)
        sizes.append(len(data))
    open(os.path.join(repo, 'packs', PACK.decode() + '.pack'), 'wb').close()
    names = btree_index.BTreeBuilder(reference_lists=0, key_elements=1)
    names.add_node((PACK,), b' '.join(b'%d' % s for s in sizes))
    with open(os.path.join(repo, 'pack-names'), 'wb') as f:
        f.write(names.finish().read())
    return revs, graph, sizes[0]


def recipe(graph, start, stops):
    """The body of a client that has seen start's ancestry down to `stops`
    (enough consecutive revisions that no merge jumps past them), with the
    count Breezy's recreate_search_from_recipe will check."""
    from breezy.graph import DictParentsProvider, Graph
    # A repository reports a root's parents as (null:,), and the search counts null:.
    parents = {k: tuple(v) or (b'null:',) for k, v in graph.items()}
    parents[b'null:'] = ()
    provider = DictParentsProvider(parents)
    search = Graph(provider)._make_breadth_first_searcher([start])
    for revs in search:  # bounded: the graph is finite
        search.stop_searching_any(set(stops).intersection(revs))
    included = search.get_state()[2]
    return start + b'\n' + b' '.join(stops) + b'\n%d' % len(included)


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:  # bounded: the deadline
        if proc.poll() is not None:
            raise RuntimeError('server exited early')
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('server did not listen')


def rchar(pid):
    with open('/proc/%d/io' % pid) as f:
        for line in f:
            if line.startswith('rchar:'):
                return int(line.split()[1])
    return 0


def start(kind, binary, root):
    port = free_port()
    log = open(os.path.join(root, kind + '.log'), 'wb')
    if kind == 'brz serve':
        env = dict(os.environ, HOME=root)
        cmd = ['brz', 'serve', '--listen=127.0.0.1', '--port=%d' % port, '--directory=' + root]
    else:
        env = dict(os.environ)
        cmd = [binary, 'serve', '--listen', '127.0.0.1', '--port', str(port), '--directory=' + root,
               '--cache=0', '--readahead=0', '-q']
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
    wait_port(port, proc)
    return proc, port


def measure(kind, binary, root, scenarios, rounds):
    proc, port = start(kind, binary, root)
    try:
        m = smart_medium.SmartTCPClientMedium('127.0.0.1', port, 'bzr://127.0.0.1:%d/' % port)
        c = smart_client._SmartClient(m)
        out = {}
        for name, args, body in scenarios:
            times, reads, sizes = [], [], []
            for i in range(rounds + 1):  # bounded: rounds
                before = rchar(proc.pid)
                t0 = time.perf_counter()
                try:
                    resp, handler = c.call_with_body_bytes_expecting_body(b'Repository.get_parent_map', args, body)
                except Exception as e:
                    raise RuntimeError('%s: %s failed: %s' % (kind, name, e)) from e
                data = handler.read_body_bytes()
                t1 = time.perf_counter()
                after = rchar(proc.pid)
                if resp[0] != b'ok':  # noqa
                    raise RuntimeError('%s: %s answered %r' % (kind, name, resp))
                if i == 0:
                    continue  # warm-up
                times.append((t1 - t0) * 1000)
                reads.append(after - before)
                sizes.append(len(data))
            out[name] = {'ms_median': statistics.median(times), 'ms_min': min(times),
                         'bytes_read_median': statistics.median(reads), 'reply_bytes': statistics.median(sizes),
                         'rounds': rounds}
        m.disconnect()
        return out
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--soukd', required=True, help='the new soukd')
    ap.add_argument('--old-soukd', help='soukd built from git commit f2a4826 (whole-file .rix)')
    ap.add_argument('--revisions', type=int, default=100000)
    ap.add_argument('--rounds', type=int, default=20)
    ap.add_argument('--brz-rounds', type=int, default=10)
    ap.add_argument('--json', default='bench-parent-map.json')
    ap.add_argument('--keep', action='store_true', help='keep the scratch repository')
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix='souk-bench-pm-')
    try:
        t0 = time.time()
        revs, graph, rix_size = make_repo(root, a.revisions, 1)
        print('repository: %d revisions, .rix %d bytes (%d pages), built in %.1f s' % (
            len(revs), rix_size, (rix_size + 4095) // 4096, time.time() - t0))
        tip, mid = revs[-1], revs[len(revs) // 2]
        path = b'repo/'
        scenarios = [
            ('tip, empty recipe', (path, tip), b'\n\n0'),
            ('middle, empty recipe', (path, mid), b'\n\n0'),
            ('tip, recipe of ~1000 revs', (path, tip), recipe(graph, revs[-1000], revs[-2020:-2000])),
            ('10 ids, include-missing', (path, b'include-missing:') + tuple(revs[i] for i in range(0, len(revs), len(revs) // 10)) + (b'absent-rev',), b'\n\n0'),
        ]
        servers = [('soukd (new)', a.soukd, a.rounds)]
        if a.old_soukd:
            servers.insert(0, ('soukd (old, f2a4826)', a.old_soukd, a.rounds))
        servers.append(('brz serve', None, a.brz_rounds))
        results = {}
        for kind, binary, rounds in servers:
            results[kind] = measure('brz serve' if binary is None else kind, binary, root, scenarios, rounds)
        print()
        print('Repository.get_parent_map, %d revisions, medians (ms per call at the client; bytes the server read per call)' % len(revs))
        w = max(len(s[0]) for s in scenarios)
        head = '%-*s' % (w, 'request') + ''.join(' | %28s' % k for k, _, _ in servers)
        print(head)
        print('-' * len(head))
        for name, _, _ in scenarios:
            row = '%-*s' % (w, name)
            for kind, _, _ in servers:
                r = results[kind][name]
                row += ' | %9.2f ms %12s B' % (r['ms_median'], '{:,}'.format(int(r['bytes_read_median'])))
            print(row)
        print()
        print('reply sizes (bz2 bytes):', {name: {k: results[k][name]['reply_bytes'] for k, _, _ in servers}
                                            for name, _, _ in scenarios})
        with open(a.json, 'w') as f:
            json.dump({'revisions': len(revs), 'rix_bytes': rix_size, 'results': results}, f, indent=2)
        print('JSON written to', a.json)
    finally:
        if a.keep:
            print('scratch repository kept in', root)
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == '__main__':
    main()
