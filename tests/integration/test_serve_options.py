"""How an administrator starts soukd (docs/configuration.md).

* `brz serve` command lines carry over: soukd started with the exact
  arguments of a `brz serve` TCP line, and of an inetd line (`--inet`, one
  process per connection with the socket as stdin/stdout, spawned by a
  small inetd in this test), serves a real `brz push` and `brz branch`.
* A config file (`--config FILE`) sets options, the command line overrides
  it, and `soukd check-config` validates it: exit 0 with the effective
  settings, exit 1 with FILE:LINE.
* `soukd cgi` with no CGI environment exits non-zero and says what is
  missing.
"""

import os
import re
import socket
import subprocess
import threading
import time
import unittest

import harness
from harness import BrzEnv, make_tempdir, remove_tree, soukd_path, stop_process


def setUpModule():
    harness.require_server('soukd')


class Inetd:
    """A minimal inetd on 127.0.0.1: each accepted connection runs `argv`
    with the socket as its stdin and stdout, as inetd's `nowait` does.
    Serves at most `limit` connections; stopped by close()."""

    def __init__(self, argv, log_path, limit=20):
        self.argv = argv
        self.log_path = log_path
        self.limit = limit
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.children = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        deadline = time.monotonic() + 120
        while not self.stopping and len(self.children) < self.limit and time.monotonic() < deadline:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with open(self.log_path, 'ab') as log:
                conn.setblocking(True)
                p = subprocess.Popen(self.argv, stdin=conn.fileno(), stdout=conn.fileno(), stderr=log,
                                     cwd='/', preexec_fn=harness._pdeathsig)
            conn.close()
            self.children.append(p)

    def close(self):
        # Each child ends by itself at EOF. Wait for that before the accept
        # thread ends: the children were forked by that thread, and its end
        # sends them the parent-death signal (PR_SET_PDEATHSIG follows the
        # thread), which would kill one still exiting (a sanitizer build's
        # exit-time leak check takes a while).
        deadline = time.monotonic() + 15
        for p in list(self.children):
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        self.stopping = True
        self.thread.join(timeout=5)
        self.sock.close()
        statuses = [stop_process(p) for p in self.children]
        return statuses


class BrzServeCommandLines(unittest.TestCase):
    """soukd with the exact argument lists `brz serve` takes."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-serve-options-')
        cls.root = os.path.join(cls.tmp, 'served')
        os.mkdir(cls.root)
        cls.env = BrzEnv(os.path.join(cls.tmp, 'client'))
        cls.work = os.path.join(cls.tmp, 'work')
        def ok(args, cwd=None):
            r = cls.env.run(args, cwd=cwd, hpss=False)
            if r.rc != 0:
                raise harness.HarnessError(r.describe())
        ok(['init', '-q', cls.work])
        with open(os.path.join(cls.work, 'hello.txt'), 'w') as f:
            f.write('hello from a brz serve command line\n')
        ok(['add', '-q'], cwd=cls.work)
        ok(['commit', '-q', '-m', 'first'], cwd=cls.work)

    @classmethod
    def tearDownClass(cls):
        harness.remove_stats_segment(cls.root)
        remove_tree(cls.tmp)

    def push_and_branch(self, url, copy):
        """brz push the work branch to `url`, branch it back, compare."""
        self.env.ok(self, ['push', '-q', url], cwd=self.work)
        out = os.path.join(self.tmp, copy)
        self.env.ok(self, ['branch', '-q', url, out])
        with open(os.path.join(out, 'hello.txt')) as f:
            self.assertEqual(f.read(), 'hello from a brz serve command line\n')

    def test_tcp_line_push_and_branch(self):
        port = harness.free_port()
        log_path = os.path.join(self.tmp, 'tcp.log')
        # As an admin's `brz serve` line, with only the program name changed,
        # and --allow-anonymous-writes: bzr:// has no users, and soukd takes
        # anonymous writes only when told (docs/access-control.md).
        argv = [soukd_path(), 'serve', '--allow-writes', '--listen=127.0.0.1', '--port=%d' % port,
                '-d', self.root, '--client-timeout=30', '--protocol=bzr', '--allow-anonymous-writes']
        with open(log_path, 'wb') as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd='/',
                                    preexec_fn=harness._pdeathsig)
        try:
            def up():
                try:
                    with socket.create_connection(('127.0.0.1', port), timeout=1):
                        return True
                except OSError:
                    return proc.poll() is not None
            harness.wait_until(up, 10)
            self.assertIsNone(proc.poll(), harness.read_tail(log_path))
            url = 'bzr://127.0.0.1:%d/tcp-trunk' % port
            self.push_and_branch(url, 'tcp-copy')
        finally:
            self.assertEqual(stop_process(proc), 0, harness.read_tail(log_path))

    def test_inetd_line_push_and_branch(self):
        log_path = os.path.join(self.tmp, 'inetd.log')
        # An inetd.conf line's arguments: brz's global flag before the
        # command, the short -d, --bzr (and --allow-anonymous-writes: inetd
        # clients have no user).
        inetd = Inetd([soukd_path(), '--no-plugins', 'serve', '--inet', '-d', self.root,
                       '--allow-writes', '--bzr', '--allow-anonymous-writes'], log_path)
        try:
            url = 'bzr://127.0.0.1:%d/inetd-trunk' % inetd.port
            self.push_and_branch(url, 'inetd-copy')
        finally:
            statuses = inetd.close()
        self.assertGreater(len(statuses), 0)
        # Every connection ended at EOF: exit 0 (none was killed).
        self.assertEqual(statuses, [0] * len(statuses), harness.read_tail(log_path))

    def test_other_protocols_refused(self):
        for args in (['--protocol=git'], ['--git'], ['--git-upload-pack']):
            p = subprocess.run([soukd_path(), 'serve', '--inet', '-d', self.root] + args,
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            self.assertEqual(p.returncode, 2, p)
            self.assertIn(b'only the Bazaar smart protocol', p.stderr)
            self.assertEqual(p.stdout, b'')


class DescriptorLimit(unittest.TestCase):
    """The default --max-connections follows RLIMIT_NOFILE: the soft limit
    is raised to the hard one at start, --fd-reserve is kept back."""

    HARD = 300
    RESERVE = 290   # leaves 10 connections

    def setUp(self):
        self.root = make_tempdir('souk-fdlimit-')
        self.server = None
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        if self.server:
            self.server.stop()
        harness.remove_stats_segment(self.root)
        remove_tree(self.root)

    def start(self, limits):
        limits = dict(limits, **{'fd-reserve': self.RESERVE, 'idle-reclaim-age': '1h'})
        self.server = harness.Server(self.root, limits=limits, max_fds=(64, self.HARD)).start()

    def soft_limit(self):
        with open('/proc/%d/limits' % self.server.proc.pid) as f:
            for line in f:
                if line.startswith('Max open files'):
                    return int(line.split()[3])
        return None

    def check_cap(self, cap):
        self.assertTrue(harness.wait_probe_gone(self.root), self.server.log())
        refused0 = harness.soukd_counters(self.root)['connections_refused']
        for _ in range(cap):  # bounded: cap connections
            c = self.server.connect()
            self.socks.append(c)
            self.assertTrue(harness.hello_ok(c), self.server.log())
        extra = self.server.connect()
        self.socks.append(extra)
        self.assertEqual(harness.usable_or_closed(extra), 'closed', self.server.log())
        self.assertEqual(harness.soukd_counters(self.root)['connections_refused'], refused0 + 1)

    def test_default_cap_is_the_raised_limit_less_the_reserve(self):
        self.start({})
        self.assertEqual(self.soft_limit(), self.HARD)
        self.check_cap(self.HARD - self.RESERVE)

    def test_explicit_cap_above_the_limit_is_lowered(self):
        self.start({'max-connections': 5000})
        self.assertIn('--max-connections=5000 lowered to 10', self.server.log())
        self.check_cap(self.HARD - self.RESERVE)


class ConfigFile(unittest.TestCase):

    def setUp(self):
        self.tmp = make_tempdir('souk-config-')
        self.root = os.path.join(self.tmp, 'served')
        os.mkdir(self.root)

    def tearDown(self):
        harness.remove_stats_segment(self.root)
        remove_tree(self.tmp)

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def soukd(self, *args, env=None):
        return subprocess.run([soukd_path()] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=20, env=env)

    def test_check_config_prints_effective_settings(self):
        conf = self.write('soukd.conf', '# test\ndirectory = %s\ncache-size = 128M\nidle-timeout = 90\n'
                          'allow-writes = true\n' % self.root)
        p = self.soukd('check-config', '--config', conf, '--idle-timeout=2m')
        self.assertEqual(p.returncode, 0, p)
        out = p.stdout.decode()
        self.assertIn('directory = %s\n' % self.root, out)
        self.assertIn('cache-size = 128M\n', out)
        self.assertIn('idle-timeout = 2m\n', out)  # the command line wins
        self.assertIn('allow-writes = true\n', out)
        self.assertIn(b'is valid', p.stderr)

    def test_shipped_example_config_is_valid(self):
        example = os.path.join(harness.HERE, '..', '..', 'dist', 'soukd.conf')
        p = self.soukd('check-config', '--config', example, '-d', self.root)
        self.assertEqual(p.returncode, 0, p)
        # Every commented-out setting is valid once uncommented.
        with open(example) as f:
            lines = [l[1:] for l in f if re.match(r'#[a-z-]+ = ', l)]
        self.assertGreater(len(lines), 3)
        p = self.soukd('check-config', '--config', self.write('uncommented.conf', ''.join(lines)), '-d', self.root)
        self.assertEqual(p.returncode, 0, p)

    def test_check_config_error_names_file_and_line(self):
        conf = self.write('bad.conf', 'directory = %s\n\n# a comment\nmax-body = 1.5M\n' % self.root)
        p = self.soukd('check-config', '--config', conf)
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(('%s:4: --max-body=1.5M: no fractions' % conf).encode(), p.stderr)
        self.assertEqual(p.stdout, b'')
        # serve refuses the same file the same way.
        p = self.soukd('serve', '--config', conf, '--port=0')
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(('%s:4:' % conf).encode(), p.stderr)
        # A directory that is not there fails the check.
        p = self.soukd('check-config', '-d', os.path.join(self.tmp, 'missing'))
        self.assertEqual(p.returncode, 1, p)
        self.assertIn(b'not a directory', p.stderr)

    def test_serve_reads_the_file_and_the_command_line_wins(self):
        port_file = os.path.join(self.tmp, 'port')
        conf = self.write('soukd.conf', 'directory = %s\nlisten = 127.0.0.1\nport = 0\nport-file = %s\n'
                          'allow-writes = false\nmax-readv-ranges = 2\n' % (self.root, port_file))
        with open(os.path.join(self.root, 'f'), 'wb') as f:
            f.write(b'0123456789')
        proc = subprocess.Popen([soukd_path(), 'serve', '--config', conf, '--allow-writes'],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=harness._pdeathsig)
        try:
            def port():
                try:
                    with open(port_file) as f:
                        return int(f.read().strip() or 0)
                except (OSError, ValueError):
                    return 0
            self.assertTrue(harness.wait_until(port, 10), 'no port file')
            with harness.TcpConn(port()) as c:
                r = harness.call(c, b'Transport.is_readonly')
                self.assertEqual(r.args, (b'no',))  # --allow-writes over the file's false
                r = harness.call(c, b'readv', b'f', body=b'0,1\n2,1\n4,1')
                self.assertFalse(r.success, r)  # 3 ranges over the file's max-readv-ranges = 2
                r = harness.call(c, b'readv', b'f', body=b'0,1\n2,1')
                self.assertTrue(r.success, r)
        finally:
            self.assertEqual(stop_process(proc), 0)

    def test_cgi_without_environment(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ('GATEWAY_INTERFACE', 'REQUEST_METHOD')}
        p = self.soukd('cgi', '-d', self.root, env=env)
        self.assertEqual(p.returncode, 2, p)
        self.assertIn(b'REQUEST_METHOD', p.stderr)
        self.assertEqual(p.stdout, b'')  # no response written


if __name__ == '__main__':
    unittest.main()
