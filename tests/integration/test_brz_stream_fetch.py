"""Fetching through the stream and read verbs: the real Breezy client against
soukd and, side by side, against `brz serve` (docs/protocol/streams.md).

For each workflow (branch, branch -r then pull, checkout, log -v, cat,
annotate, export) the result through soukd must equal the source, and soukd
must need no more smart requests than `brz serve` for the same command
(both measured here with `brz -Dhpss`). Also: a branch of a repository with
more than 50 packs, a branch through soukd of a repository `brz serve`
wrote by push, and a branch through `brz serve` of a repository soukd wrote.
The server CPU of a whole-branch fetch is printed for both servers
(informational; scripts/bench-stream measures it properly).
"""

import os
import subprocess
import unittest

import harness
from harness import BrzEnv, Server, make_tempdir, remove_tree, tree_files

_TMP = None
ENV = None
SRC = None       # a standalone branch: renames, a binary, a merge (a.txt changed on both sides), 6 revisions
MANY = None      # a branch whose repository has more than 50 packs


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _must(args, cwd=None):
    r = ENV.run(args, cwd=cwd, hpss=False)
    if r.rc != 0:
        raise harness.HarnessError(r.describe())
    return r


def setUpModule():
    global _TMP, ENV, SRC, MANY
    harness.require_server()
    _TMP = make_tempdir('souk-fetch-')
    try:
        ENV = BrzEnv(os.path.join(_TMP, 'client'))
        served = os.path.join(_TMP, 'served')
        os.mkdir(served)
        SRC = os.path.join(served, 'src')
        _must(['init', SRC])
        _write(os.path.join(SRC, 'a.txt'), b'one\ntwo\n')
        _write(os.path.join(SRC, 'sub', 'b.txt'), b'bee\n')
        _write(os.path.join(SRC, 'bin.dat'), bytes(range(256)) * 30 + b'\x00\xff')
        _must(['add', '-q'], cwd=SRC)
        _must(['commit', '-q', '-m', 'r1'], cwd=SRC)
        _write(os.path.join(SRC, 'a.txt'), b'one\ntwo\nthree\n')
        _must(['mv', '-q', 'sub/b.txt', 'sub/renamed.txt'], cwd=SRC)
        _must(['commit', '-q', '-m', 'r2: rename'], cwd=SRC)
        feat = os.path.join(_TMP, 'feat')
        _must(['branch', '-q', SRC, feat])
        _write(os.path.join(feat, 'd.txt'), b'dee\n')
        # a.txt changes on both sides of the merge (r4 merges f1): a line
        # added on top here, another line changed in r3.
        _write(os.path.join(feat, 'a.txt'), b'zero\none\ntwo\nthree\n')
        _must(['add', '-q'], cwd=feat)
        _must(['commit', '-q', '-m', 'f1'], cwd=feat)
        _write(os.path.join(SRC, 'bin.dat'), bytes(range(255, -1, -1)) * 30)
        _write(os.path.join(SRC, 'a.txt'), b'one\nTWO\nthree\n')
        _must(['commit', '-q', '-m', 'r3'], cwd=SRC)
        _must(['merge', '-q', feat], cwd=SRC)
        _must(['commit', '-q', '-m', 'r4: merge'], cwd=SRC)
        _write(os.path.join(SRC, 'a.txt'), b'zero\none\nTWO\nthree\nfour\n')
        _must(['commit', '-q', '-m', 'r5'], cwd=SRC)
        MANY = os.path.join(served, 'many')
        # 55 commits, one pack each: Breezy's autopack switched off.
        script = (
            "import os, sys, breezy\n"
            "from breezy.bzr import pack_repo\n"
            "pack_repo.RepositoryPackCollection._max_pack_count = lambda self, n: 100000\n"
            "with breezy.initialize():\n"
            "    from breezy.controldir import ControlDir\n"
            "    wt = ControlDir.create_standalone_workingtree(sys.argv[1])\n"
            "    for i in range(55):\n"
            "        name = 'f%d.txt' % (i % 7)\n"
            "        with open(os.path.join(sys.argv[1], name), 'wb') as f:\n"
            "            f.write(b'line %d\\n' % i * (i + 1))\n"
            "        if i < 7:\n"
            "            wt.add([name])\n"
            "        wt.commit('c%d' % i)\n")
        p = subprocess.run(['/usr/bin/python3', '-c', script, MANY], env=ENV.env, capture_output=True,
                           timeout=harness.BRZ_TIMEOUT)
        if p.returncode != 0:
            raise harness.HarnessError('building the many-pack repository failed: %r' % p.stderr[-2000:])
        packs = os.listdir(os.path.join(MANY, '.bzr', 'repository', 'packs'))
        assert len(packs) >= 50, len(packs)
    except BaseException:
        remove_tree(_TMP)
        raise


def tearDownModule():
    remove_tree(_TMP)
    harness.print_call_table_at_exit()


def cpu_ticks(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class FetchTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.servers = {}
        try:
            for kind in ('soukd', 'brz'):
                cls.servers[kind] = Server(os.path.dirname(SRC), allow_writes=True, kind=kind).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers.values():
            s.stop()

    def setUp(self):
        self.work = make_tempdir('souk-fetch-work-')

    def tearDown(self):
        remove_tree(self.work)

    def run_both(self, label, make_args, check):
        """Run the command against each server; check(kind, result); counts compared."""
        counts = {}
        for kind in ('brz', 'soukd'):
            d = os.path.join(self.work, kind)
            os.makedirs(d, exist_ok=True)
            r = ENV.run(make_args(self.servers[kind].url, d), cwd=d)
            self.assertEqual(r.rc, 0, r.describe() + '\nserver log:\n' + self.servers[kind].log())
            harness.record_calls(kind, 'tcp', label, r.hpss_calls)
            counts[kind] = r.hpss_calls
            check(kind, d, r)
        self.assertLessEqual(counts['soukd'], counts['brz'], '%s: soukd %d requests, brz serve %d'
                             % (label, counts['soukd'], counts['brz']))
        return counts

    def local(self, args, cwd=None):
        return _must(args, cwd=cwd or self.work)

    def assertSameBranch(self, path, source, revisions=None):
        self.assertEqual(self.local(['log', '-n0', path]).stdout, self.local(['log', '-n0', source]).stdout)
        r = ENV.run(['check', path], cwd=self.work, hpss=False)
        text = (r.stdout + r.stderr).decode('utf-8', 'replace')
        self.assertEqual(r.rc, 0, text)
        self.assertNotRegex(text, r'(?i)\b(error|inconsistent|missing|corrupt)')
        if revisions is not None:
            self.assertRegex(text, r'\b%d revisions\b' % revisions)

    def test_branch(self):
        def check(kind, d, r):
            self.assertSameBranch(os.path.join(d, 'b'), SRC, 6)
            self.assertEqual(tree_files(os.path.join(d, 'b')), tree_files(SRC))
        self.run_both('fetch: branch', lambda url, d: ['branch', url('src'), os.path.join(d, 'b')], check)

    def test_branch_r_then_pull(self):
        def check_branch(kind, d, r):
            self.assertEqual(self.local(['revno', os.path.join(d, 'b')]).stdout.strip(), b'2')
        self.run_both('fetch: branch -r2', lambda url, d: ['branch', '-r', '2', url('src'), os.path.join(d, 'b')],
                      check_branch)

        def check_pull(kind, d, r):
            self.assertSameBranch(os.path.join(d, 'b'), SRC, 6)
        self.run_both('fetch: pull', lambda url, d: ['pull', '-d', os.path.join(d, 'b'), url('src')], check_pull)

    def test_checkout(self):
        def check(kind, d, r):
            self.assertSameBranch(os.path.join(d, 'co'), SRC, 6)
            self.assertEqual(tree_files(os.path.join(d, 'co')), tree_files(SRC))
        self.run_both('fetch: checkout', lambda url, d: ['checkout', url('src'), os.path.join(d, 'co')], check)

    def test_log_verbose(self):
        want = self.local(['log', '-v', '-n0', SRC]).stdout
        self.run_both('fetch: log -v', lambda url, d: ['log', '-v', '-n0', url('src')],
                      lambda kind, d, r: self.assertEqual(r.stdout, want))

    def test_cat(self):
        for name in ('a.txt', 'bin.dat', 'sub/renamed.txt'):
            with open(os.path.join(SRC, name), 'rb') as f:
                want = f.read()
            self.run_both('fetch: cat', lambda url, d: ['cat', url('src/' + name)],
                          lambda kind, d, r: self.assertEqual(r.stdout, want))
        want = self.local(['cat', '-r', '1', os.path.join(SRC, 'a.txt')]).stdout
        self.run_both('fetch: cat -r1', lambda url, d: ['cat', '-r', '1', url('src/a.txt')],
                      lambda kind, d, r: self.assertEqual(r.stdout, want))

    def test_annotate(self):
        # a.txt's lines come from both sides of the merge (2.1.1 and 3) and
        # from before and after it; soukd answers Repository.annotate_file_revision
        # as brz serve does, so the client annotates nothing itself.
        want = self.local(['annotate', '--all', os.path.join(SRC, 'a.txt')]).stdout
        revnos = [line.split()[0] for line in want.splitlines()]
        self.assertEqual(revnos, [b'2.1.1', b'1', b'3', b'2', b'5'])
        self.run_both('fetch: annotate', lambda url, d: ['annotate', '--all', url('src/a.txt')],
                      lambda kind, d, r: self.assertEqual(r.stdout, want))
        for name, rev in (('sub/renamed.txt', []), ('a.txt', ['-r', '2']), ('d.txt', [])):
            want = self.local(['annotate', '--all'] + rev + [os.path.join(SRC, name)]).stdout
            self.run_both('fetch: annotate', lambda url, d: ['annotate', '--all'] + rev + [url('src/' + name)],
                          lambda kind, d, r: self.assertEqual(r.stdout, want))

    def test_annotate_beyond_limits(self):
        """A file whose ancestry exceeds --annotate-max-texts: a clear error, and the server goes on."""
        srv = Server(os.path.dirname(SRC), limits={'annotate-max-texts': 2}).start()
        try:
            r = ENV.run(['annotate', srv.url('src/a.txt')], cwd=self.work)
            self.assertNotEqual(r.rc, 0, r.describe())
            self.assertIn(b"beyond this server's limits", r.stderr, r.describe())
            # sub/renamed.txt has two texts (added, renamed): within the bound.
            want = self.local(['annotate', '--all', os.path.join(SRC, 'sub', 'renamed.txt')]).stdout
            r = ENV.run(['annotate', '--all', srv.url('src/sub/renamed.txt')], cwd=self.work)
            self.assertEqual(r.rc, 0, r.describe() + '\nserver log:\n' + srv.log())
            self.assertEqual(r.stdout, want)
        finally:
            srv.stop()

    def test_export(self):
        def check(kind, d, r):
            self.assertEqual(tree_files(os.path.join(d, 'x')), tree_files(SRC))
        self.run_both('fetch: export', lambda url, d: ['export', os.path.join(d, 'x'), url('src')], check)

    def test_many_packs(self):
        def check(kind, d, r):
            self.assertSameBranch(os.path.join(d, 'm'), MANY, 55)
            self.assertEqual(tree_files(os.path.join(d, 'm')), tree_files(MANY))
        self.run_both('fetch: branch (55 packs)', lambda url, d: ['branch', url('many'), os.path.join(d, 'm')], check)

    def test_cpu_whole_branch(self):
        """Informational: server CPU ticks of a whole-branch fetch of the 55-pack repository."""
        ticks = {}
        for kind in ('brz', 'soukd'):
            srv = self.servers[kind]
            before = cpu_ticks(srv.proc.pid)
            dest = os.path.join(self.work, 'cpu-' + kind)
            r = ENV.run(['branch', '--no-tree', srv.url('many'), dest], cwd=self.work, hpss=False)
            self.assertEqual(r.rc, 0, r.describe())
            ticks[kind] = cpu_ticks(srv.proc.pid) - before
        print('\nserver CPU ticks for a whole-branch fetch (55 revisions, 55 packs): soukd %d, brz serve %d'
              % (ticks['soukd'], ticks['brz']))


class CrossServerTest(unittest.TestCase):
    """A repository one server wrote, fetched through the other."""

    def setUp(self):
        self.tmp = make_tempdir('souk-cross-')
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        remove_tree(self.tmp)

    def cross(self, writer, reader):
        root = os.path.join(self.tmp, writer + '-root')
        os.mkdir(root)
        w = Server(root, allow_writes=True, kind=writer).start()
        self.servers.append(w)
        r = ENV.run(['push', '-d', SRC, w.url('pushed')], cwd=self.tmp)
        self.assertEqual(r.rc, 0, r.describe())
        rd = Server(root, kind=reader).start()
        self.servers.append(rd)
        dest = os.path.join(self.tmp, 'from-' + reader)
        r = ENV.run(['branch', rd.url('pushed'), dest], cwd=self.tmp)
        self.assertEqual(r.rc, 0, r.describe())
        self.assertEqual(_must(['log', '-n0', dest]).stdout, _must(['log', '-n0', SRC]).stdout)
        c = ENV.run(['check', dest], cwd=self.tmp, hpss=False)
        self.assertEqual(c.rc, 0, c.describe())
        self.assertEqual(tree_files(dest), tree_files(SRC))

    def test_brz_serve_wrote_soukd_reads(self):
        self.cross('brz', 'soukd')

    def test_soukd_wrote_brz_serve_reads(self):
        self.cross('soukd', 'brz')


if __name__ == '__main__':
    unittest.main()
