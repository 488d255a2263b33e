"""Several served roots (docs/configuration.md#roots), with the real brz.

One soukd serves a config file with two `[root /PREFIX]` sections and
nothing at "/": /pub (writable) and /ro (read-only, no --allow-writes).

* `brz push` and `brz branch` through bzr:// reach each root's own
  directory; a push to /ro fails with Breezy's read-only error and leaves
  nothing behind;
* a path under no root (/nowhere, and /public, which only starts with the
  letters of /pub) fails as a missing branch does ("Not a branch");
* SIGHUP with /ro flipped to writable lets the next push through, without
  dropping the connection a client holds open; a broken file on SIGHUP
  is refused with FILE:LINE and the rules in force stay;
* requests on several connections while SIGHUPs flip a root's rules
  back and forth: every write is either done or refused as read-only,
  never anything else (ThreadSanitizer runs this file: the rules are
  published while workers read them);
* the same roots over soukd's own HTTP (bzr+http:// and plain GETs),
  `--inet` (the smart requests as bzr+ssh sends them) and CGI (the roots
  from `SOUK_OPTIONS="--config FILE"`).
"""

import os
import signal
import threading
import time
import unittest
import urllib.error
import urllib.request

import harness
import http_harness as hh
from harness import BrzEnv, make_tempdir, remove_tree

TMP = ENV = SRC = None


def setUpModule():
    global TMP, ENV, SRC
    harness.require_server('soukd')
    TMP = make_tempdir('souk-roots-')
    ENV = BrzEnv(os.path.join(TMP, 'client'))
    SRC = os.path.join(TMP, 'client', 'src')
    for args in (['init', '-q', SRC], ['add', '-q', SRC]):
        r = ENV.run(args, hpss=False)
        if r.rc != 0:
            raise harness.HarnessError(r.describe())
    with open(os.path.join(SRC, 'hello.txt'), 'w') as f:
        f.write('hello roots\n')
    for args in (['add', '-q', SRC], ['commit', '-q', '-m', 'one', SRC]):
        r = ENV.run(args, hpss=False)
        if r.rc != 0:
            raise harness.HarnessError(r.describe())


def tearDownModule():
    if TMP:
        remove_tree(TMP)


CONF = """# two roots, nothing at /
[root /pub]
directory = {pub}
allow-writes = true

[root /ro]
directory = {ro}
allow-writes = {ro_writes}
"""


class Roots(unittest.TestCase):

    def setUp(self):
        self.tmp = make_tempdir('souk-roots-srv-')
        self.pub = os.path.join(self.tmp, 'pub')
        self.ro = os.path.join(self.tmp, 'ro')
        os.mkdir(self.pub)
        os.mkdir(self.ro)
        self.conf = os.path.join(self.tmp, 'soukd.conf')
        self.write_conf(ro_writes='false')
        self.server = None

    def tearDown(self):
        if self.server:
            self.server.stop()
        for d in (self.pub, self.ro):
            harness.remove_stats_segment(d)
        remove_tree(self.tmp)

    def write_conf(self, ro_writes='false', extra='', head=''):
        tmp = self.conf + '.new'
        with open(tmp, 'w') as f:
            f.write(head + CONF.format(pub=self.pub, ro=self.ro, ro_writes=ro_writes) + extra)
        os.rename(tmp, self.conf)

    def start(self, carrier='tcp'):
        # root None: no -d, so nothing is served at "/".
        self.server = harness.Server(None, limits={'config': self.conf}, carrier=carrier).start()
        return self.server

    def url(self, path):
        scheme = 'bzr+http' if self.server.carrier == 'http' else 'bzr'
        return '%s://127.0.0.1:%d/%s' % (scheme, self.server.port, path)

    def push(self, path):
        return ENV.run(['push', '-q', '-d', SRC, self.url(path)])

    def hup_and_wait(self, text):
        """SIGHUP, then wait for `text` in the server's log (bounded)."""
        before = self.server.log().count(text)
        os.kill(self.server.proc.pid, signal.SIGHUP)
        self.assertTrue(harness.wait_until(lambda: self.server.log().count(text) > before, 5),
                        self.server.log())

    def test_push_and_branch_reach_each_root(self):
        self.start()
        r = self.push('pub/trunk')
        self.assertEqual(r.rc, 0, r.describe())
        self.assertTrue(os.path.isdir(os.path.join(self.pub, 'trunk', '.bzr')))
        out = os.path.join(self.tmp, 'out')
        ENV.ok(self, ['branch', '-q', self.url('pub/trunk'), out])
        with open(os.path.join(out, 'hello.txt')) as f:
            self.assertEqual(f.read(), 'hello roots\n')
        # The read-only root: Breezy's own error, nothing written.
        r = self.push('ro/trunk')
        self.assertNotEqual(r.rc, 0)
        self.assertIn(b'readonly transport', r.stderr, r.describe())
        self.assertEqual(os.listdir(self.ro), [])
        # A branch in the read-only root is served (put there by hand).
        ENV.ok(self, ['push', '-q', '-d', SRC, os.path.join(self.ro, 'trunk')], hpss=False)
        ENV.ok(self, ['branch', '-q', self.url('ro/trunk'), os.path.join(self.tmp, 'out-ro')])

    def test_path_under_no_root_is_not_a_branch(self):
        self.start()
        ENV.ok(self, ['push', '-q', '--create-prefix', '-d', SRC, os.path.join(self.pub, 'lic', 'trunk')], hpss=False)
        for path in ('nowhere/trunk', 'public/trunk', ''):
            r = ENV.run(['branch', '-q', self.url(path), os.path.join(self.tmp, 'x')])
            self.assertNotEqual(r.rc, 0, path)
            self.assertIn(b'Not a branch', r.stderr, r.describe())
        # A push there creates nothing anywhere: the server answers
        # NoSuchFile, as `brz serve` does for a missing parent directory,
        # and even --create-prefix cannot make one.
        r = self.push('nowhere/trunk')
        self.assertNotEqual(r.rc, 0)
        self.assertIn(b'does not exist', r.stderr, r.describe())
        r = ENV.run(['push', '-q', '--create-prefix', '-d', SRC, self.url('nowhere/trunk')])
        self.assertNotEqual(r.rc, 0, r.describe())
        self.assertEqual(sorted(os.listdir(self.pub)), ['lic'])
        self.assertEqual(os.listdir(self.ro), [])
        self.assertTrue(self.server.serves())

    def test_sighup_flips_a_root_to_writable_and_a_bad_file_keeps_the_rules(self):
        self.start()
        held = self.server.connect()  # open across the reloads
        try:
            self.assertTrue(harness.hello_ok(held))
            r = self.push('ro/trunk')
            self.assertNotEqual(r.rc, 0)
            self.assertIn(b'readonly transport', r.stderr, r.describe())

            self.write_conf(ro_writes='true')
            self.hup_and_wait('[root /ro] allow-writes')
            r = self.push('ro/trunk')
            self.assertEqual(r.rc, 0, r.describe())
            self.assertTrue(os.path.isdir(os.path.join(self.ro, 'trunk', '.bzr')))

            # Broken: /ro back to read-only, but a section without its
            # directory. Refused with FILE:LINE; /ro stays writable.
            self.write_conf(ro_writes='false', extra='\n[root /more]\nallow-writes = true\n')
            self.hup_and_wait('config refused')
            self.assertIn('soukd.conf:10: [root /more] has no `directory = DIR`', self.server.log())
            r = self.push('ro/second')
            self.assertEqual(r.rc, 0, r.describe())

            # Adding a root takes a restart: said, and not served.
            self.write_conf(ro_writes='true', extra='\n[root /more]\ndirectory = %s\n' % self.pub)
            self.hup_and_wait('[root /more] directory changed')
            self.assertIn('takes a restart', self.server.log())
            r = ENV.run(['branch', '-q', self.url('more/trunk'), os.path.join(self.tmp, 'x')])
            self.assertIn(b'Not a branch', r.stderr, r.describe())

            self.assertTrue(harness.hello_ok(held))  # the held connection survived
        finally:
            held.close()

    def test_requests_during_reloads_see_whole_rule_sets(self):
        self.start()
        stop = time.monotonic() + 2
        seen = {'ok': 0, 'ReadOnlyError': 0}
        odd = []
        lock = threading.Lock()

        def client(n):
            try:
                with self.server.connect() as c:
                    for i in range(2000):  # bounded: also by `stop`
                        if time.monotonic() > stop:
                            return
                        # Made and removed again (few directories left to
                        # clean up): each either done or ReadOnlyError.
                        path = b'/ro/c%d-%d' % (n, i)
                        r = harness.call(c, b'mkdir', path, b'')
                        key = 'ok' if r.success else r.args[0].decode()
                        if r.success:
                            harness.call(c, b'rmdir', path)
                        # /pub never stops being writable.
                        p = harness.call(c, b'mkdir', b'/pub/c%d' % n, b'')
                        q = harness.call(c, b'rmdir', b'/pub/c%d' % n)
                        with lock:
                            if key in seen and p.success and q.success:
                                seen[key] += 1
                            else:
                                odd.append((key, p.args, q.args))
            except Exception as e:  # reported below, with the server's log
                with lock:
                    odd.append(repr(e))

        threads = [threading.Thread(target=client, args=(n,)) for n in range(3)]
        for t in threads:
            t.start()
        flips = 0
        while time.monotonic() < stop and flips < 200:
            flips += 1
            self.write_conf(ro_writes='true' if flips % 2 else 'false')
            os.kill(self.server.proc.pid, signal.SIGHUP)
            time.sleep(0.05)
        for t in threads:
            t.join(30)
        self.assertFalse(any(t.is_alive() for t in threads))
        self.assertEqual(odd, [], self.server.log())
        self.assertGreater(seen['ok'], 0, seen)
        self.assertGreater(seen['ReadOnlyError'], 0, seen)
        self.assertTrue(self.server.serves())

    def test_http_serves_the_same_roots(self):
        # The web carriers need a user or the opt-in to write.
        self.write_conf(head='allow-anonymous-writes = true\n')
        self.start(carrier='http')
        r = self.push('pub/trunk')
        self.assertEqual(r.rc, 0, r.describe())
        ENV.ok(self, ['branch', '-q', self.url('pub/trunk'), os.path.join(self.tmp, 'out')])
        r = self.push('ro/trunk')
        self.assertNotEqual(r.rc, 0)
        self.assertEqual(os.listdir(self.ro), [])
        base = 'http://127.0.0.1:%d/' % self.server.port
        with urllib.request.urlopen(base + 'pub/trunk/.bzr/branch-format', timeout=10) as resp:
            self.assertEqual(resp.status, 200)
            self.assertTrue(resp.read().startswith(b'Bazaar-NG meta directory'))
        for path in ('public/trunk/.bzr/branch-format', 'nowhere/x', 'ro/trunk/.bzr/branch-format'):
            with self.assertRaises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path, timeout=10)
            self.assertEqual(e.exception.code, 404, path)

    def test_inet_and_cgi_serve_the_same_roots(self):
        ENV.ok(self, ['push', '-q', '-d', SRC, os.path.join(self.pub, 'trunk')], hpss=False)
        with harness.InetConn(None, extra_args=['--config', self.conf]) as c:
            self.assertEqual(harness.call(c, b'BzrDir.open_2.1', b'pub/trunk/').args[:1], (b'yes',))
            self.assertEqual(harness.call(c, b'BzrDir.open_2.1', b'public/trunk/').args, (b'no',))
            self.assertEqual(harness.call(c, b'BzrDir.open_2.1', b'ro/trunk/').args, (b'no',))
            r = harness.call(c, b'mkdir', b'/ro/new', b'')
            self.assertEqual(r.args[:1], (b'ReadOnlyError',))
            r = harness.call(c, b'mkdir', b'/pub/new', b'')
            self.assertTrue(r.success, r)
            r = harness.call(c, b'get', b'/pub/trunk/.bzr/branch-format')
            self.assertTrue(r.success, r)
            self.assertTrue(r.body.startswith(b'Bazaar-NG meta directory'))
        self.assertFalse(os.path.exists(os.path.join(self.ro, 'new')))
        self.assertTrue(os.path.isdir(os.path.join(self.pub, 'new')))
        env = hh.cgi_env(SOUK_OPTIONS='--config ' + self.conf)
        for path, status in (('/pub/trunk/.bzr/branch-format', 200), ('/public/trunk/.bzr/branch-format', 404),
                             ('/ro/trunk/.bzr/branch-format', 404)):
            env.update(REQUEST_METHOD='GET', PATH_INFO=path)
            answer, rc, err, _ = hh.run_cgi(env)
            self.assertEqual(rc, 0, err)
            self.assertEqual(answer.status, status, (path, err))


if __name__ == '__main__':
    unittest.main()
