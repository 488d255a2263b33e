"""The soak in the test command: scripts/soak with 16 clients over bzr://,
HTTP and CGI at once (docs/soak.md), and its checks asserted here: exit 0,
no error, every append offset unique and the shared file exactly the
appended records, every put file one whole version, soukd's private RSS,
threads and descriptors flat, nothing left behind.

A minute of clients (about 70 s in all); the sanitizer builds
(SOUK_SANITIZED=1 for ASan, =thread for TSan) run 20 s, to keep the whole
test command within its time, with a larger memory bound (below). A second test
feeds the soak's own checks damaged data, so a check that could never
fail would show here.
"""
import importlib.machinery
import importlib.util
import json
import os
import subprocess
import sys
import types
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SOAK = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'scripts', 'soak')
SANITIZED = bool(os.environ.get('SOUK_SANITIZED'))
SECONDS = 20 if SANITIZED else 60
CLIENTS = 16
# Under ASan, freed memory sits in its quarantine (capped at 16 MiB by the
# soak) before reuse, and the quarantine fills during the whole run: a
# 60 s run grew 17 MiB after warm-up and then crept no more than that. The
# bound there is 48 MiB; the normal build keeps the soak's 16 MiB. Under
# ThreadSanitizer (SOUK_SANITIZED=thread) its shadow memory and per-thread
# allocator caches grow with each address it has not seen (a 20 s run grew
# 82 MiB after warm-up): 256 MiB there still catches a lost request body.
RSS_BOUND_KIB = {'': 16 * 1024, 'thread': 256 * 1024}.get(os.environ.get('SOUK_SANITIZED', ''), 48 * 1024)


def setUpModule():
    harness.require_server('soukd')


def load_soak():
    loader = importlib.machinery.SourceFileLoader('soak_script', SOAK)
    spec = importlib.util.spec_from_loader('soak_script', loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


class TestSoak(unittest.TestCase):
    def test_soak(self):
        tmp = harness.make_tempdir('souk-test-soak-')
        try:
            out = os.path.join(tmp, 'soak.json')
            p = subprocess.run([sys.executable, SOAK, '--clients', str(CLIENTS), '--seconds', str(SECONDS),
                                '--carriers', 'tcp,http,cgi', '--rss-bound-kib', str(RSS_BOUND_KIB), '--json', out],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=SECONDS + 300)
            text = p.stdout.decode('utf-8', 'replace')
            sys.stderr.write('\n' + text)
            self.assertEqual(p.returncode, 0, text + p.stderr.decode('utf-8', 'replace')[-4000:])
            with open(out) as f:
                r = json.load(f)
        finally:
            harness.remove_tree(tmp)
        self.assertTrue(r['passed'])
        self.assertEqual(r['errors'], 0, r['error_samples'])
        for name, check in r['checks'].items():
            self.assertTrue(check['ok'], '%s: %s' % (name, check['detail']))
        self.assertTrue(r['offsets_unique'])
        self.assertGreater(r['appends'], 100)
        self.assertGreater(r['puts'], 100)
        self.assertEqual([c['carrier'] for c in r['per_carrier']], ['tcp', 'http', 'cgi'])
        for c in r['per_carrier']:
            self.assertEqual(c['errors'], 0, c)
            # CGI under ASan starts a process in about 1.5 s: few requests.
            self.assertGreater(c['requests'], 10, c)
        res = r['resources']
        for key in ('private_rss_kib', 'threads', 'fds'):
            self.assertTrue(res[key]['flat'], '%s: %r' % (key, res[key]))
            self.assertGreaterEqual(res[key]['samples'], SECONDS - 2, key)
        verbs = set(r['per_verb']['tcp']) | set(r['per_verb']['http']) | set(r['per_verb']['cgi'])
        for verb in ('get', 'readv', 'stat', 'has', 'list_dir', 'put', 'append', 'mkdir', 'rmdir', 'rename',
                     'delete', 'Repository.get_parent_map'):
            self.assertIn(verb, verbs)


class TestSoakChecks(unittest.TestCase):
    """The soak's verdicts on damaged results: each must fail."""

    @classmethod
    def setUpClass(cls):
        cls.soak = load_soak()

    def setUp(self):
        self.tmp = harness.make_tempdir('souk-soak-checks-')
        os.mkdir(os.path.join(self.tmp, 'shared'))
        s = self.soak
        self.world = types.SimpleNamespace(root=self.tmp, appends=[],
                                           put_done={i: set() for i in range(s.SHARED_PUTS)})
        data = b''
        for seq, n in enumerate((10, 0, 3000, 17), 1):
            self.world.appends.append((len(data), 7, seq, n))
            data += s.append_record(7, seq, n)
        self.write(s.APPEND_PATH, data)
        for i in range(s.SHARED_PUTS):
            self.world.put_done[i] = {(1, i, 50), (2, i, 5)}
            self.write('/shared/put-%d' % i, s.put_version(1, i, 50))

    def tearDown(self):
        harness.remove_tree(self.tmp)

    def write(self, path, data):
        with open(self.tmp + path, 'wb') as f:
            f.write(data)

    def read(self, path):
        with open(self.tmp + path, 'rb') as f:
            return f.read()

    def test_intact_results_pass(self):
        self.assertTrue(self.soak.check_appends(self.world)[0])
        self.assertTrue(self.soak.check_puts(self.world)[0])

    def test_damaged_appends_fail(self):
        s = self.soak
        data = self.read(s.APPEND_PATH)
        self.write(s.APPEND_PATH, data[:40] + b'#' + data[41:])           # one byte changed
        self.assertFalse(s.check_appends(self.world)[0])
        self.write(s.APPEND_PATH, data + s.append_record(9, 1, 5))       # a record nobody appended
        self.assertFalse(s.check_appends(self.world)[0])
        self.write(s.APPEND_PATH, data)
        offset, c, seq, n = self.world.appends[1]
        self.world.appends[1] = (self.world.appends[0][0], c, seq, n)    # two appends told one offset
        self.assertFalse(s.check_appends(self.world)[0])

    def test_damaged_puts_fail(self):
        s = self.soak
        self.write('/shared/put-0', s.put_version(1, 0, 50)[:-1])        # a version cut short
        self.assertFalse(s.check_puts(self.world)[0])
        self.write('/shared/put-0', s.put_version(3, 0, 50))             # a version never put there
        self.assertFalse(s.check_puts(self.world)[0])

    def test_growth_is_not_flat(self):
        samples = [{'t': t, 'x': 100 + (50 if t >= 30 else 0)} for t in range(41)]
        self.assertFalse(self.soak.flatness(samples, 40, 'x', 16)['flat'])
        self.assertTrue(self.soak.flatness(samples, 40, 'x', 64)['flat'])


if __name__ == '__main__':
    unittest.main()
