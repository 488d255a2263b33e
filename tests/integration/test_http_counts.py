"""Round trips over bzr+http://: soukd against Breezy's own smart server.

Every everyday Breezy command runs against `soukd serve --http` and against
Breezy's WSGI smart server (breezy.transport.http.wsgi, served on loopback
by the test), each on its own copy of the same served tree, in the same
run. Each command must succeed on both, print the same thing where it
prints repository content, and make no more smart requests to soukd than
to Breezy (`brz -Dhpss`). Writes are verified on disk (`brz check`, log).
"""

import os
import unittest

import harness
import http_harness as hh
from harness import BrzEnv, make_tempdir, remove_tree, tree_files

KINDS = ('brz', 'soukd')


class CountsOverHttp(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        harness.require_server('soukd')
        cls.tmp = make_tempdir('souk-http-counts-')
        cls.servers = {}
        try:
            cls.env = BrzEnv(os.path.join(cls.tmp, 'client'))
            cls.src = hh.build_sources(cls.env, cls.tmp)
            for kind in KINDS:
                root = os.path.join(cls.tmp, 'served-' + kind)
                os.mkdir(root)
                hh.populate_served(cls.env, cls.src, root)
                cls.servers[kind] = (hh.BrzWsgi(root, allow_writes=True) if kind == 'brz'
                                     else hh.SoukdHttp(root, allow_writes=True)).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in cls.servers.values():
            s.stop()
        remove_tree(cls.tmp)

    def url(self, kind, rel):
        return 'bzr+' + self.servers[kind].base + '/' + rel

    def work(self, kind, name):
        d = os.path.join(self.tmp, 'work-' + kind, name)
        os.makedirs(d, exist_ok=True)
        return d

    def run_both(self, label, make_args, same_stdout=False):
        """Run the command against each server (make_args(kind) -> (args, cwd));
        returns {kind: result}."""
        results = {}
        for kind in KINDS:
            args, cwd = make_args(kind)
            r = self.env.run(args, cwd=cwd)
            self.assertEqual(r.rc, 0, '%s against %s: %s' % (label, kind, r.describe()))
            harness.record_calls(kind, 'http', label, r.hpss_calls)
            results[kind] = r
        hh.assert_one_connection(self, results['soukd'])
        self.assertGreater(results['soukd'].hpss_calls, 0, results['soukd'].describe())
        self.assertLessEqual(results['soukd'].hpss_calls, results['brz'].hpss_calls,
                             '%s: soukd %d requests, Breezy\'s server %d'
                             % (label, results['soukd'].hpss_calls, results['brz'].hpss_calls))
        if same_stdout:
            self.assertEqual(results['soukd'].stdout.replace(self.servers['soukd'].base.encode(), b'URL'),
                             results['brz'].stdout.replace(self.servers['brz'].base.encode(), b'URL'))
        return results

    def local(self, args, cwd=None):
        return self.env.ok(self, args, cwd=cwd or self.tmp)

    def test_reads(self):
        self.run_both('branch', lambda k: (['branch', self.url(k, 'src'), 'b'], self.work(k, 'branch')))
        for kind in KINDS:
            self.assertEqual(tree_files(os.path.join(self.work(kind, 'branch'), 'b')), tree_files(self.src))
        self.run_both('branch -r1', lambda k: (['branch', '-r1', self.url(k, 'src'), 'p'], self.work(k, 'pull')))
        self.run_both('pull', lambda k: (['pull', self.url(k, 'src')], os.path.join(self.work(k, 'pull'), 'p')))
        self.run_both('log', lambda k: (['log', self.url(k, 'src')], self.tmp), same_stdout=True)
        self.run_both('log -v', lambda k: (['log', '-v', self.url(k, 'repo/trunk')], self.tmp), same_stdout=True)
        self.run_both('checkout', lambda k: (['checkout', self.url(k, 'src'), 'c'], self.work(k, 'co')))
        self.run_both('checkout --lightweight',
                      lambda k: (['checkout', '--lightweight', self.url(k, 'src'), 'l'], self.work(k, 'co')))
        self.run_both('cat', lambda k: (['cat', self.url(k, 'src/notes.txt')], self.tmp), same_stdout=True)
        self.run_both('annotate', lambda k: (['annotate', '--all', self.url(k, 'src/README')], self.tmp),
                      same_stdout=True)
        self.run_both('info -v', lambda k: (['info', '-v', self.url(k, 'repo/trunk')], self.tmp),
                      same_stdout=True)

    def test_writes(self):
        self.run_both('push (new)', lambda k: (['push', '-d', self.src, self.url(k, 'pushed')], self.tmp))
        for kind in KINDS:
            d = self.work(kind, 'more')
            self.local(['branch', '-q', self.src, os.path.join(d, 's')])
            with open(os.path.join(d, 's', 'later.txt'), 'wb') as f:
                f.write(b'pushed to an existing branch\n')
            self.local(['add', '-q'], cwd=os.path.join(d, 's'))
            self.local(['commit', '-q', '-m', 'fourth'], cwd=os.path.join(d, 's'))
        self.run_both('push (existing)', lambda k: (['push', self.url(k, 'pushed')],
                                                    os.path.join(self.work(k, 'more'), 's')))
        self.run_both('checkout (to commit)', lambda k: (['checkout', self.url(k, 'pushed'), 'bound'],
                                                         self.work(k, 'bound')))
        for kind in KINDS:
            with open(os.path.join(self.work(kind, 'bound'), 'bound', 'README'), 'ab') as f:
                f.write(b'committed through a bound checkout\n')
        self.run_both('commit (bound checkout)', lambda k: (['commit', '-m', 'fifth'],
                                                            os.path.join(self.work(k, 'bound'), 'bound')))
        for kind in KINDS:
            served = os.path.join(self.servers[kind].root, 'pushed')
            self.assertEqual(self.local(['revno', served]).stdout.strip(), b'5')
            self.local(['check', served])
            self.assertEqual(self.local(['log', served]).stdout,
                             self.local(['log', os.path.join(self.work(kind, 'bound'), 'bound')]).stdout)


def tearDownModule():
    harness.print_call_table_at_exit()


if __name__ == '__main__':
    unittest.main()
