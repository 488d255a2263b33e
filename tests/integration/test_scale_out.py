"""The scale-out recipe (docs/scale-out.md): two soukd processes serve one
root behind nginx as an upstream, from the shipped site file
scripts/deploy/debian/nginx/sites-available/souk-upstream in a copy of
Debian's /etc/nginx (only the port and the backend addresses replaced).

Two clients push diverged revisions onto one served branch at the same
time through the balancer while a third branches from it: exactly one push
succeeds, the other fails with Breezy's lock error (or, had it locked only
after the winner finished, the diverged error: the test reports which);
the served branch passes `brz check`, has the winner's history and no lock
left behind; the branch taken during the pushes passes `brz check` and is
the old or the new tip, nothing between. Both backends served requests
(each one's access log)."""

import os
import threading
import time
import unittest

import http_harness as hh
from harness import BrzEnv, make_tempdir, remove_tree, require_server

SITE = os.path.join(hh.DEBIAN_DEPLOY, 'nginx', 'sites-available', 'souk-upstream')
BACKENDS = ('127.0.0.1:8081', '127.0.0.1:8082')   # what the shipped file says
PAYLOAD = 3 << 20   # bytes of new content per pushed revision: holds the lock long enough to meet the other push
RACE_TIMEOUT = 60.0
LOCK_ERROR = b'Could not acquire lock'
DIVERGED_ERROR = b'have diverged'


def setUpModule():
    require_server('soukd')
    hh.require(hh.NGINX)


def random_file(path, size):
    """Incompressible content, so a push really carries `size` bytes."""
    with open(path, 'wb') as f:
        f.write(os.urandom(size))


def access_lines(text):
    """The access-log lines of soukd's HTTP carrier in a log, split into
    their eleven fields."""
    fields = (ln.split() for ln in text.splitlines())
    return [f for f in fields if len(f) == 11 and f[1] == 'http']


def error_line(stderr):
    """brz's one-line error (its stderr also has -Dhpss lines)."""
    lines = [ln for ln in stderr.decode(errors='replace').splitlines() if ln.startswith('brz: ERROR')]
    return lines[0] if lines else '(no brz: ERROR line)'


class Timed(threading.Thread):
    """One brz command in a thread: its result and when it ran."""

    def __init__(self, env, args, cwd=None):
        super().__init__(daemon=True)
        self.env, self.args, self.cwd = env, args, cwd
        self.result = self.error = None
        self.started = self.ended = None

    def run(self):
        self.started = time.monotonic()
        try:
            self.result = self.env.run(self.args, cwd=self.cwd, timeout=RACE_TIMEOUT)
        except BaseException as e:  # reported by the test thread
            self.error = e
        self.ended = time.monotonic()

    def finish(self, testcase):
        self.join(RACE_TIMEOUT + 10)
        testcase.assertFalse(self.is_alive(), 'brz %s still running' % ' '.join(self.args))
        if self.error is not None:
            raise self.error
        return self.result


class TestScaleOut(unittest.TestCase):
    def setUp(self):
        self.base = make_tempdir('souk-scale-')
        self.addCleanup(remove_tree, self.base)
        self.root = os.path.join(self.base, 'root')
        os.makedirs(self.root)
        # Three users: two pushers and a reader (each its own brz home).
        self.envs = [BrzEnv(os.path.join(self.base, 'brz%d' % i)) for i in range(3)]
        env = self.envs[0]
        self.trunk = os.path.join(self.root, 'trunk')
        env.ok(self, ['init', '-q', self.trunk])
        with open(os.path.join(self.trunk, 'README'), 'w') as f:
            f.write('served trunk\n')
        env.ok(self, ['add', '-q'], cwd=self.trunk)
        env.ok(self, ['commit', '-q', '-m', 'base'], cwd=self.trunk)
        # Each pusher: a copy of trunk with one new revision of its own.
        self.clients = []
        for i in (1, 2):
            c = os.path.join(self.base, 'client%d' % i)
            env.ok(self, ['branch', '-q', self.trunk, c])
            random_file(os.path.join(c, 'data%d.bin' % i), PAYLOAD)
            env.ok(self, ['add', '-q'], cwd=c)
            env.ok(self, ['commit', '-q', '-m', 'work of client %d' % i], cwd=c)
            self.clients.append(c)

        self.backends = []
        for _ in BACKENDS:
            b = hh.SoukdHttp(self.root, allow_writes=True, verbose=0)
            self.addCleanup(b.stop)
            self.backends.append(b.start())

        def replacements(port):
            return [('listen 80;', 'listen 127.0.0.1:%d;' % port)] + [
                ('server %s;' % addr, 'server 127.0.0.1:%d;' % b.port) for addr, b in zip(BACKENDS, self.backends)]
        self.nginx = hh.DebianNginx(self.root, None, site=SITE, replacements=replacements)
        self.addCleanup(self.nginx.stop)
        self.nginx.start()
        self.url = 'bzr+%s/trunk' % self.nginx.base

    def log_of(self, env, path):
        return env.ok(self, ['log', '--show-ids', path]).stdout

    def test_concurrent_pushes(self):
        env = self.envs[0]
        before = self.log_of(env, self.trunk)
        pushes = [Timed(self.envs[i], ['push', self.url], cwd=c) for i, c in ((0, self.clients[0]),
                                                                             (1, self.clients[1]))]
        copy = os.path.join(self.base, 'copy')
        reader = Timed(self.envs[2], ['branch', self.url, copy])
        for t in pushes + [reader]:
            t.start()
        results = [t.finish(self) for t in pushes]
        read = reader.finish(self)
        detail = '\n\n'.join(r.describe() for r in results + [read]) + '\nnginx:\n' + self.nginx.log()

        # Exactly one push won; the other got Breezy's lock error, or the
        # diverged one if it locked only after the winner had finished.
        self.assertEqual(sorted(r.rc for r in results), [0, 3], detail)
        winner = 0 if results[0].rc == 0 else 1
        loser = results[1 - winner]
        lost_on_lock = LOCK_ERROR in loser.stderr
        self.assertTrue(lost_on_lock or DIVERGED_ERROR in loser.stderr, detail)
        print('\nscale-out: client %d won; client %d lost on %s (push times %.1f s, %.1f s): %s'
              % (winner + 1, 2 - winner, 'the lock' if lost_on_lock else 'divergence',
                 pushes[0].ended - pushes[0].started, pushes[1].ended - pushes[1].started,
                 error_line(loser.stderr)))

        # The served branch: clean, the winner's history, no lock left.
        env.ok(self, ['check', self.trunk])
        self.assertEqual(self.log_of(env, self.trunk), self.log_of(env, self.clients[winner]))
        self.assertEqual(self.log_of(env, self.url), self.log_of(env, self.clients[winner]))
        for lock in ('branch', 'repository'):
            self.assertFalse(os.path.exists(os.path.join(self.trunk, '.bzr', lock, 'lock', 'held')), lock)

        # The branch taken while the pushes ran: clean, and the old tip or
        # the new one.
        self.assertEqual(read.rc, 0, detail)
        self.assertLess(reader.started, max(p.ended for p in pushes), 'the branch did not overlap the pushes')
        env.ok(self, ['check', copy])
        self.assertIn(self.log_of(env, copy), (before, self.log_of(env, self.clients[winner])))

        # Both backends served requests of these commands (access-log lines
        # of soukd's HTTP carrier, docs/access-log.md#fields), and the
        # loser's refused lock is among them.
        served = [access_lines(b.log_text()) for b in self.backends]
        for i, lines in enumerate(served):
            self.assertGreater(len(lines), 0, 'backend %d served nothing:\n%s' % (i, self.backends[i].log()))
        results_logged = [f[7] for lines in served for f in lines]
        if lost_on_lock:
            self.assertIn('LockContention', results_logged)
        print('scale-out: requests served per backend: %s' % [len(lines) for lines in served])

if __name__ == '__main__':
    unittest.main()
