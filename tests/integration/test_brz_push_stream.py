"""brz push into soukd through Repository.insert_stream_1.19.

* push new and push existing over bzr://: brz check clean on the served
  repository, log and files equal to the source, and no more smart requests
  than `brz serve` needs for the same push (both measured here);
* soukd killed (SIGKILL) in the middle of an insert: readers see the
  repository as before, and a later push succeeds (and removes the
  leftover upload);
* two concurrent pushes to one branch: one wins, the other gets Breezy's
  error; two concurrent pushes into one shared repository (two branches):
  both land, pack-names lists both packs.
"""

import os
import signal
import subprocess
import threading
import time
import unittest

import harness
from harness import BrzEnv, Server, make_tempdir, remove_tree, tree_files


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def setUpModule():
    harness.require_server()


def tearDownModule():
    harness.print_call_table_at_exit()


class PushStreamTest(unittest.TestCase):
    def setUp(self):
        self.tmp = make_tempdir('souk-push-')
        self.env = BrzEnv(self.tmp)
        self.servers = []

    def tearDown(self):
        for s in self.servers:
            s.stop()
        remove_tree(self.tmp)

    def must(self, args, cwd=None):
        r = self.env.run(args, cwd=cwd, hpss=False)
        self.assertEqual(r.rc, 0, r.describe())
        return r

    def serve(self, root, kind='soukd', limits=None):
        os.makedirs(root, exist_ok=True)
        s = Server(root, allow_writes=True, limits=limits, kind=kind).start()
        self.servers.append(s)
        return s

    def source(self, name, commits=3):
        src = os.path.join(self.tmp, name)
        self.must(['init', '-q', src])
        for i in range(commits):
            _write(os.path.join(src, 'a.txt'), b'line\n' * (i + 1))
            _write(os.path.join(src, 'dir', 'f%d.bin' % i), bytes(range(256)) * (i + 3))
            self.must(['add', '-q'], cwd=src)
            self.must(['commit', '-q', '-m', 'commit %d' % i], cwd=src)
        return src

    def check_served(self, path, src):
        r = self.must(['check', path])
        out = (r.stdout + r.stderr).decode('utf-8', 'replace')
        self.assertNotRegex(out, r'(?i)\b(error|inconsistent|corrupt)')
        self.assertEqual(self.must(['log', path]).stdout, self.must(['log', src]).stdout)
        exp = os.path.join(self.tmp, 'export-%d' % time.monotonic_ns())
        self.must(['export', exp, path])
        self.assertEqual(tree_files(exp), tree_files(src))

    def test_push_new_and_existing_within_brz_serve_counts(self):
        src = self.source('src')
        counts = {}
        for kind in ('soukd', 'brz'):
            root = os.path.join(self.tmp, 'srv-' + kind)
            s = self.serve(root, kind=kind)
            r = self.env.run(['push', s.url('pushed')], cwd=src)
            self.assertEqual(r.rc, 0, r.describe())
            counts[(kind, 'new')] = r.hpss_calls
            self.check_served(os.path.join(root, 'pushed'), src)
            _write(os.path.join(src, 'a.txt'), b'pushed again to ' + kind.encode() + b'\n')
            self.must(['commit', '-q', '-m', 'more for ' + kind], cwd=src)
            r = self.env.run(['push', s.url('pushed')], cwd=src)
            self.assertEqual(r.rc, 0, r.describe())
            counts[(kind, 'existing')] = r.hpss_calls
            self.check_served(os.path.join(root, 'pushed'), src)
            if kind == 'soukd':
                log = _read(r.log_path)
                self.assertIn(b'Repository.insert_stream_1.19', log)
        for what in ('new', 'existing'):
            harness.record_calls('soukd', 'tcp', 'push %s (stream)' % what, counts[('soukd', what)])
            harness.record_calls('brz', 'tcp', 'push %s (stream)' % what, counts[('brz', what)])
            self.assertLessEqual(counts[('soukd', what)], counts[('brz', what)], counts)

    def test_sigkill_during_insert_leaves_repository_as_before(self):
        src = self.source('src', commits=1)
        root = os.path.join(self.tmp, 'srv')
        s = self.serve(root, limits={'upload-stale': 1})
        self.must(['push', s.url('b')], cwd=src)
        repo = os.path.join(root, 'b', '.bzr', 'repository')
        before = _read(os.path.join(repo, 'pack-names'))
        log_before = self.must(['log', os.path.join(root, 'b')]).stdout
        # A big, incompressible commit: the insert takes long enough to be caught.
        for i in range(6):
            _write(os.path.join(src, 'big%d.bin' % i), os.urandom(12 << 20))
        self.must(['add', '-q'], cwd=src)
        self.must(['commit', '-q', '-m', 'big'], cwd=src)
        upload = os.path.join(repo, 'upload')
        p = subprocess.Popen([harness.brz_path(), 'push', s.url('b')], cwd=src, env=self.env.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            def uploading():
                try:
                    return any(os.path.getsize(os.path.join(upload, n)) > (1 << 20)
                               for n in os.listdir(upload) if n.endswith('.pack'))
                except OSError:
                    return False
            caught = harness.wait_until(uploading, 60, interval=0.002)
            os.kill(s.proc.pid, signal.SIGKILL)
        finally:
            p.wait(timeout=120)
        self.assertTrue(caught, 'the insert was not caught in progress')
        self.assertNotEqual(p.returncode, 0)
        # Readers see the repository as it was.
        self.assertEqual(_read(os.path.join(repo, 'pack-names')), before)
        self.assertEqual(self.must(['log', os.path.join(root, 'b')]).stdout, log_before)
        self.must(['check', os.path.join(root, 'b')])
        leftovers = os.listdir(upload)
        self.assertTrue(leftovers)
        # The killed push left its branch lock (as with brz serve): break it,
        # as a user would; then a later push succeeds and removes the
        # (stale) leftover.
        self.must(['break-lock', '--force', os.path.join(root, 'b')])
        self.servers.remove(s)
        s.stop()
        time.sleep(1.2)
        s2 = self.serve(root, limits={'upload-stale': 1})
        r = self.env.run(['push', s2.url('b')], cwd=src)
        self.assertEqual(r.rc, 0, r.describe())
        self.check_served(os.path.join(root, 'b'), src)
        self.assertEqual([n for n in os.listdir(upload) if n in leftovers], [])

    def test_concurrent_pushes(self):
        base = self.source('base', commits=1)
        one = os.path.join(self.tmp, 'one')
        two = os.path.join(self.tmp, 'two')
        self.must(['branch', '-q', base, one])
        self.must(['branch', '-q', base, two])
        for d in (one, two):
            for i in range(3):
                _write(os.path.join(d, 'own-%d.txt' % i), (d * 200).encode())
                self.must(['add', '-q'], cwd=d)
                self.must(['commit', '-q', '-m', 'in ' + d], cwd=d)
        root = os.path.join(self.tmp, 'srv')
        s = self.serve(root)
        self.must(['init-shared-repo', os.path.join(root, 'shared')])
        self.must(['push', '-q', s.url('shared/trunk')], cwd=base)
        results = {}

        def push(d, target):
            results[(d, target)] = self.env.run(['push', '-q', s.url(target)], cwd=d)

        # Two branches of one shared repository at once: both land.
        ts = [threading.Thread(target=push, args=(d, 'shared/' + os.path.basename(d))) for d in (one, two)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(180)
        for d in (one, two):
            r = results[(d, 'shared/' + os.path.basename(d))]
            self.assertEqual(r.rc, 0, r.describe())
            self.check_served(os.path.join(root, 'shared', os.path.basename(d)), d)
        # Two diverged branches into one branch at once: one wins; the other
        # gets Breezy's error (LockContention while the winner holds the
        # branch lock, or "diverged" after it), never a broken repository.
        ts = [threading.Thread(target=push, args=(d, 'shared/trunk')) for d in (one, two)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(180)
        rcs = sorted(results[(d, 'shared/trunk')].rc for d in (one, two))
        self.assertEqual(rcs[0], 0)
        loser = [results[(d, 'shared/trunk')] for d in (one, two) if results[(d, 'shared/trunk')].rc != 0]
        for r in loser:
            self.assertRegex(r.stderr.decode('utf-8', 'replace'), r'(?i)diverged|lock|contention', r.describe())
        winner = [d for d in (one, two) if results[(d, 'shared/trunk')].rc == 0]
        self.check_served(os.path.join(root, 'shared', 'trunk'), winner[0])
        self.must(['check', os.path.join(root, 'shared')])


if __name__ == '__main__':
    unittest.main()
