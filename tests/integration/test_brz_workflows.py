"""The real Breezy client against the server under test, over bzr:// and bzr+ssh://.

Each carrier gets its own served directory and runs the same ordered
workflow (the steps build on each other, hence the numbered names):
push (new, existing), branch, pull, log, checkout, commit in a bound
checkout, info -v, cat, annotate, init-repo, init in the shared repository,
push into it, branch from it, a push to a path with a space, init of a
standalone branch, tag, and log -r (revision numbers).

Every step is verified on the server side with local tools: `brz check` on
the served directories, `brz log` equal to the source's, `brz revno`, and
the exported tree equal to the source tree.  The number of smart requests
each command needed (`brz -Dhpss`) is printed in a table to stderr at the
end, and soukd's must be at most what `brz serve` needed for the same step
(BRZ_SERVE_CALLS, recorded beside the test); with SOUK_TEST_COMPARE=1 the
workflow also runs against `brz serve`, in the same run, and its counts
must equal the recorded ones.

bzr:// uses `soukd serve --listen 127.0.0.1 --port 0 --allow-writes`;
bzr+ssh:// goes through a private sshd on 127.0.0.1 with
BZR_REMOTE_PATH=$SOUKD, so brz runs `soukd serve --inet --directory=/
--allow-writes` on the far side.
"""

import os
import re
import tempfile
import unittest

import harness
from harness import BrzEnv, Server, SshServer, make_tempdir, remove_tree, tree_files

SRC = {}          # name -> path of the local source branches (module fixture)
_MODULE_TMP = None

README_1 = b'souk integration test\n'
README_2 = README_1 + b'second line, added in revision 2\n'
SPACE_1 = b'a file whose name has spaces\n'
SPACE_3 = SPACE_1 + b'changed in revision 3\n'
BINARY = bytes(range(256)) * 40 + b'\x00\r\n\x00\xff' * 100
NOTES_3 = b'notes added in revision 3\n' * 50


def setUpModule():
    global _MODULE_TMP
    harness.require_server()
    _MODULE_TMP = make_tempdir('souk-wf-src-')
    try:
        env = BrzEnv(_MODULE_TMP)
        _build_sources(env, _MODULE_TMP)
    except BaseException:
        remove_tree(_MODULE_TMP)
        raise


def tearDownModule():
    remove_tree(_MODULE_TMP)
    harness.print_call_table_at_exit()


def _must(env, args, cwd=None):
    r = env.run(args, cwd=cwd, hpss=False)
    if r.rc != 0:
        raise harness.HarnessError(r.describe())
    return r


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def _build_sources(env, base):
    """src2: two commits; src3: src2 plus a third. Text, binary, a space in a name."""
    src2 = os.path.join(base, 'src2')
    _must(env, ['init', src2])
    _write(os.path.join(src2, 'README'), README_1)
    _write(os.path.join(src2, 'dir', 'file with space.txt'), SPACE_1)
    _must(env, ['add', '-q'], cwd=src2)
    _must(env, ['commit', '-q', '-m', 'first: README and a spaced name'], cwd=src2)
    _write(os.path.join(src2, 'README'), README_2)
    _write(os.path.join(src2, 'data.bin'), BINARY)
    _must(env, ['add', '-q'], cwd=src2)
    _must(env, ['commit', '-q', '-m', 'second: binary file'], cwd=src2)
    src3 = os.path.join(base, 'src3')
    _must(env, ['branch', '-q', src2, src3])
    _write(os.path.join(src3, 'dir', 'file with space.txt'), SPACE_3)
    _write(os.path.join(src3, 'notes.txt'), NOTES_3)
    _must(env, ['add', '-q'], cwd=src3)
    _must(env, ['commit', '-q', '-m', 'third: notes'], cwd=src3)
    SRC['src2'] = src2
    SRC['src3'] = src3


# What `brz serve` needed for each step, per carrier, with Breezy 3.3.2
# (client and server), recorded from a SOUK_TEST_COMPARE=1 run of this
# file. A step absent here is not compared.
BRZ_SERVE_CALLS = {
    'push (new)': {'tcp': 10, 'ssh': 10},
    'push (existing)': {'tcp': 12, 'ssh': 12},
    'branch': {'tcp': 11, 'ssh': 11},
    'pull': {'tcp': 11, 'ssh': 11},
    'log': {'tcp': 9, 'ssh': 9},
    'checkout': {'tcp': 11, 'ssh': 11},
    'commit (bound)': {'tcp': 18, 'ssh': 18},
    'info -v': {'tcp': 14, 'ssh': 14},
    'cat': {'tcp': 9, 'ssh': 9},
    'annotate': {'tcp': 10, 'ssh': 10},
    'init-repo': {'tcp': 11, 'ssh': 11},
    'init (in repo)': {'tcp': 15, 'ssh': 15},
    'push (into repo)': {'tcp': 15, 'ssh': 15},
    'branch (from repo)': {'tcp': 14, 'ssh': 14},
    'push (path with space)': {'tcp': 11, 'ssh': 11},
    'init (standalone)': {'tcp': 13, 'ssh': 16},
    'tag': {'tcp': 11, 'ssh': 11},
    'log -r 2': {'tcp': 11, 'ssh': 11},
    'log -v -r 3': {'tcp': 12, 'ssh': 12},
}

_CHECK_BAD = re.compile(r'(?i)\b(error|inconsistent|mismatch|ghost|unreferenced|corrupt)')


class WorkflowBase:
    """Mixin: the whole workflow against one server kind over one carrier."""

    kind = None      # 'soukd' or 'brz'
    carrier = None   # 'tcp' or 'ssh'

    @classmethod
    def setUpClass(cls):
        cls.kind = cls.kind or harness.server_kind()
        cls.tmp = make_tempdir('souk-wf-%s-%s-' % (cls.kind, cls.carrier))
        cls.server = None
        cls.ssh = None
        try:
            cls.root = os.path.join(cls.tmp, 'served')
            cls.work = os.path.join(cls.tmp, 'work')
            os.mkdir(cls.root)
            os.mkdir(cls.work)
            if cls.carrier == 'tcp':
                cls.server = Server(cls.root, allow_writes=True, kind=cls.kind).start()
                cls.env = BrzEnv(os.path.join(cls.tmp, 'client'))
            else:
                cls.ssh = SshServer().start()
                cls.env = BrzEnv(os.path.join(cls.tmp, 'client'), ssh=cls.ssh,
                                 remote=harness.remote_path(cls.kind))
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def _cleanup(cls):
        if cls.server is not None:
            cls.server.stop()
        if cls.ssh is not None:
            cls.ssh.stop()
        remove_tree(cls.tmp)

    @classmethod
    def tearDownClass(cls):
        cls._cleanup()

    # -- helpers ------------------------------------------------------------

    def url(self, rel):
        if self.carrier == 'tcp':
            return self.server.url(rel)
        return self.ssh.url(self.root + '/' + rel)

    def served(self, rel):
        return os.path.join(self.root, rel)

    def w(self, rel):
        return os.path.join(self.work, rel)

    def brz(self, args, label=None, cwd=None):
        """Run brz (must exit 0); label: record its smart-request count."""
        record = (self.kind, self.carrier, label) if label else None
        r = self.env.ok(self, args, cwd=cwd or self.work, record=record)
        want = BRZ_SERVE_CALLS.get(label, {}).get(self.carrier)
        if want is not None and self.kind == 'soukd':
            self.assertLessEqual(r.hpss_calls, want, '%s over %s: soukd %d requests, brz serve %d\n%s'
                                 % (label, self.carrier, r.hpss_calls, want, r.describe()))
        elif want is not None:
            self.assertEqual(r.hpss_calls, want, 'brz serve no longer needs the recorded %d requests for %s '
                             'over %s (now %d): update BRZ_SERVE_CALLS' % (want, label, self.carrier, r.hpss_calls))
        return r

    def local(self, args, cwd=None):
        return self.env.ok(self, args, cwd=cwd or self.work)

    def diag(self):
        if self.server is not None:
            return '\nserver log:\n' + self.server.log()
        return '\nsshd log:\n' + self.ssh.log()

    def revno(self, location):
        return int(self.local(['revno', location]).stdout.strip())

    def log_text(self, location):
        return self.local(['log', location]).stdout

    def assertCheckClean(self, location, revisions=None):
        r = self.env.run(['check', location], cwd=self.work, hpss=False)
        text = (r.stdout + r.stderr).decode('utf-8', 'replace')
        self.assertEqual(r.rc, 0, r.describe())
        self.assertIn('checked repository', text)
        self.assertIsNone(_CHECK_BAD.search(text), 'brz check %s reported:\n%s' % (location, text))
        if revisions is not None:
            self.assertRegex(text, r'\b%d revisions\b' % revisions)

    def assertExportEquals(self, location, expected_files):
        holder = tempfile.mkdtemp(prefix='export-', dir=self.tmp)
        out = os.path.join(holder, 'tree')
        try:
            self.local(['export', out, location])
            self.assertEqual(sorted(tree_files(out)), sorted(expected_files))
            self.assertEqual(tree_files(out), expected_files)
        finally:
            remove_tree(holder)

    def assertBranchMatches(self, served_rel, source, revno, check_revisions=None):
        """Server-side dir: revno, log equal to source's, check clean, files equal."""
        path = self.served(served_rel)
        self.assertEqual(self.revno(path), revno, self.diag())
        self.assertEqual(self.log_text(path), self.log_text(source))
        self.assertCheckClean(path, check_revisions)
        self.assertExportEquals(path, tree_files(source))

    # -- the workflow -------------------------------------------------------

    def test_01_push_new(self):
        r = self.brz(['push', '-d', SRC['src2'], self.url('pushed')], 'push (new)')
        self.assertIn(b'Created new branch', r.stderr)
        self.assertBranchMatches('pushed', SRC['src2'], 2, check_revisions=2)

    def test_02_push_existing(self):
        self.brz(['push', '-d', SRC['src3'], self.url('pushed')], 'push (existing)')
        self.assertBranchMatches('pushed', SRC['src3'], 3, check_revisions=3)

    def test_03_branch(self):
        dst = self.w('branched')
        self.brz(['branch', self.url('pushed'), dst], 'branch')
        self.assertEqual(self.revno(dst), 3)
        self.assertEqual(tree_files(dst), tree_files(SRC['src3']))
        self.assertEqual(self.log_text(dst), self.log_text(SRC['src3']))
        self.assertCheckClean(dst, 3)

    def test_04_pull(self):
        dst = self.w('puller')
        self.local(['branch', '-q', SRC['src2'], dst])
        self.assertEqual(self.revno(dst), 2)
        self.brz(['pull', '-d', dst, self.url('pushed')], 'pull')
        self.assertEqual(self.revno(dst), 3)
        self.assertEqual(tree_files(dst), tree_files(SRC['src3']))
        self.assertEqual(self.log_text(dst), self.log_text(SRC['src3']))

    def test_05_log(self):
        r = self.brz(['log', self.url('pushed')], 'log')
        self.assertEqual(r.stdout, self.log_text(SRC['src3']))
        self.assertIn(b'third: notes', r.stdout)

    def test_06_checkout(self):
        co = self.w('co')
        self.brz(['checkout', self.url('pushed'), co], 'checkout')
        self.assertEqual(self.revno(co), 3)
        self.assertEqual(tree_files(co), tree_files(SRC['src3']))

    def test_07_commit_in_bound_checkout(self):
        co = self.w('co')
        _write(os.path.join(co, 'README'), README_2 + b'committed through a bound checkout\n')
        _write(os.path.join(co, 'dir', 'added in checkout.bin'), BINARY[::-1])
        self.local(['add', '-q'], cwd=co)
        self.brz(['commit', '-m', 'fourth: from the checkout'], 'commit (bound)', cwd=co)
        self.assertEqual(self.revno(co), 4)
        self.assertBranchMatches('pushed', co, 4, check_revisions=4)

    def test_08_info_verbose(self):
        r = self.brz(['info', '-v', self.url('pushed')], 'info -v')
        text = r.stdout.decode('utf-8', 'replace')
        self.assertIn('Branch format 7', text)
        self.assertIn('Repository format 2a', text)
        self.assertRegex(text, r'Branch history:\s+4 revisions')
        self.assertRegex(text, r'Repository:\s+4 revisions')

    def test_09_cat(self):
        co = self.w('co')
        r = self.brz(['cat', self.url('pushed/README')], 'cat')
        with open(os.path.join(co, 'README'), 'rb') as f:
            self.assertEqual(r.stdout, f.read())
        r = self.local(['cat', '-d', self.url('pushed'), 'dir/file with space.txt'])
        self.assertEqual(r.stdout, SPACE_3)
        r = self.local(['cat', '-d', self.url('pushed'), 'data.bin'])
        self.assertEqual(r.stdout, BINARY)
        r = self.local(['cat', '-r', '1', self.url('pushed/README')])
        self.assertEqual(r.stdout, README_1)

    def test_10_annotate(self):
        r = self.brz(['annotate', self.url('pushed/README')], 'annotate')
        expected = self.local(['annotate', os.path.join(self.served('pushed'), 'README')])
        self.assertEqual(r.stdout, expected.stdout)
        self.assertEqual(len(r.stdout.splitlines()), 3)

    def test_11_init_repo(self):
        self.brz(['init-repo', self.url('repo')], 'init-repo')
        self.assertTrue(os.path.isfile(self.served('repo/.bzr/repository/shared-storage')),
                        self.diag())
        r = self.local(['info', self.served('repo')])
        self.assertIn(b'Shared repository', r.stdout)
        self.assertCheckClean(self.served('repo'))

    def test_12_init_in_shared_repo(self):
        self.brz(['init', self.url('repo/trunk')], 'init (in repo)')
        self.assertTrue(os.path.isfile(self.served('repo/trunk/.bzr/branch/format')))
        self.assertFalse(os.path.exists(self.served('repo/trunk/.bzr/repository')),
                         'a branch in a shared repository has no repository of its own')
        self.assertEqual(self.revno(self.served('repo/trunk')), 0)
        r = self.local(['info', self.served('repo/trunk')])
        self.assertIn(b'shared repository', r.stdout)

    def test_13_push_into_shared_repo(self):
        self.brz(['push', '-d', SRC['src3'], self.url('repo/trunk')], 'push (into repo)')
        self.assertBranchMatches('repo/trunk', SRC['src3'], 3, check_revisions=3)
        self.assertTrue(os.listdir(self.served('repo/.bzr/repository/packs')))

    def test_14_branch_from_shared_repo(self):
        dst = self.w('fromrepo')
        self.brz(['branch', self.url('repo/trunk'), dst], 'branch (from repo)')
        self.assertEqual(self.revno(dst), 3)
        self.assertEqual(tree_files(dst), tree_files(SRC['src3']))
        self.assertEqual(self.log_text(dst), self.log_text(SRC['src3']))
        self.assertCheckClean(dst, 3)

    def test_15_push_to_path_with_space(self):
        self.brz(['push', '--create-prefix', '-d', SRC['src3'], self.url('dir with space/br')],
                 'push (path with space)')
        self.assertBranchMatches('dir with space/br', SRC['src3'], 3, check_revisions=3)
        r = self.local(['log', '-r', '-1', self.url('dir with space/br')])
        self.assertIn(b'third: notes', r.stdout)

    def test_15a_init_standalone(self):
        self.brz(['init', self.url('standalone')], 'init (standalone)')
        for f in ('.bzr/branch/format', '.bzr/repository/format', '.bzr/repository/pack-names'):
            self.assertTrue(os.path.isfile(self.served('standalone/' + f)), f + self.diag())
        self.assertFalse(os.path.exists(self.served('standalone/.bzr/repository/shared-storage')))
        self.assertEqual(self.revno(self.served('standalone')), 0)
        self.assertCheckClean(self.served('standalone'))

    def test_15b_tag(self):
        self.brz(['tag', '-d', self.url('pushed'), '-r', '1', 'v0.1'], 'tag')
        r = self.local(['tags', '-d', self.served('pushed')])
        self.assertRegex(r.stdout, rb'v0\.1\s+1\n')

    def test_15c_log_revno(self):
        r = self.brz(['log', '-r', '2', self.url('pushed')], 'log -r 2')
        self.assertEqual(r.stdout, self.local(['log', '-r', '2', SRC['src3']]).stdout)
        r = self.brz(['log', '-v', '-r', '3', self.url('pushed')], 'log -v -r 3')
        self.assertEqual(r.stdout, self.local(['log', '-v', '-r', '3', SRC['src3']]).stdout)

    def test_16_server_still_serving(self):
        if self.carrier == 'tcp':
            self.assertTrue(self.server.serves(), self.diag())
        else:
            self.assertIsNone(self.ssh.proc.poll(), self.diag())
            r = self.local(['revno', self.url('pushed')])
            self.assertEqual(r.stdout.strip(), b'4')


class TestWorkflowTcp(WorkflowBase, unittest.TestCase):
    carrier = 'tcp'


class TestWorkflowSsh(WorkflowBase, unittest.TestCase):
    carrier = 'ssh'


if harness.compare_enabled() and harness.server_kind() != 'brz':
    # Same workflow against Breezy's own server: the second column of the
    # request-count table, and a check that BRZ_SERVE_CALLS still holds.
    class TestWorkflowTcpBrzServe(WorkflowBase, unittest.TestCase):
        carrier = 'tcp'
        kind = 'brz'

    class TestWorkflowSshBrzServe(WorkflowBase, unittest.TestCase):
        carrier = 'ssh'
        kind = 'brz'


if __name__ == '__main__':
    unittest.main()
