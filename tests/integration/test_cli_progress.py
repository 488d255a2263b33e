"""The souk CLI's progress bar (issue 4): drawn on stderr for transfers over
1 MiB when stdout and stderr are terminals (a pseudo-terminal here), with
bytes, rate and time left; never when either is a pipe or a file, and
never for small transfers.  Against a real soukd on loopback.
"""

import os
import pty
import select
import subprocess
import time
import unittest

import harness


def setUpModule():
    harness.require_server()


def souk_path():
    path = os.environ.get('SOUK')
    if not path or not os.access(path, os.X_OK):
        raise harness.HarnessError('SOUK must name the souk CLI (e.g. build/client/souk)')
    return path


def env_without_override():
    env = dict(os.environ)
    env.pop('SOUK_PROGRESS', None)
    return env


def run_on_tty(argv, timeout=60):
    """Run argv with stdout and stderr on a pseudo-terminal; (status, output)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave,
                             env=env_without_override(), close_fds=True)
    finally:
        os.close(slave)
    out = b''
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
            elif p.poll() is not None:
                break
        status = p.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
            p.wait()
    return status, out


class ProgressTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.root = harness.make_tempdir('souk-progress-')
        with open(os.path.join(cls.root, 'big'), 'wb') as f:
            f.write(os.urandom(3 << 20))
        with open(os.path.join(cls.root, 'small'), 'wb') as f:
            f.write(os.urandom(100 << 10))
        cls.server = harness.Server(cls.root, allow_writes=True).start()
        cls.tmp = harness.make_tempdir('souk-progress-out-')

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        harness.remove_tree(cls.root)
        harness.remove_tree(cls.tmp)

    def assert_bar(self, out):
        text = out.decode('utf-8', 'replace')
        self.assertIn('MiB/s', text, text)
        self.assertIn('left', text)
        self.assertIn('100%', text)       # drawn to the end
        self.assertIn('3.0 MiB', text)    # bytes of the total
        self.assertIn('\r\x1b[K', text)   # erased at the end

    def test_get_on_a_terminal_shows_a_bar(self):
        dest = os.path.join(self.tmp, 'got')
        status, out = run_on_tty([souk_path(), 'get', self.server.url('big'), '-o', dest])
        self.assertEqual(status, 0, out)
        self.assert_bar(out)
        with open(dest, 'rb') as f, open(os.path.join(self.root, 'big'), 'rb') as g:
            self.assertEqual(f.read(), g.read())

    def test_put_on_a_terminal_shows_a_bar(self):
        status, out = run_on_tty([souk_path(), 'put', self.server.url('uploaded'),
                                  os.path.join(self.root, 'big')])
        self.assertEqual(status, 0, out)
        self.assert_bar(out)

    def test_small_transfer_draws_nothing(self):
        dest = os.path.join(self.tmp, 'small-got')
        status, out = run_on_tty([souk_path(), 'get', self.server.url('small'), '-o', dest])
        self.assertEqual(status, 0, out)
        self.assertEqual(out, b'')

    def test_quiet_when_not_a_terminal(self):
        dest = os.path.join(self.tmp, 'piped')
        r = subprocess.run([souk_path(), 'get', self.server.url('big'), '-o', dest],
                           capture_output=True, env=env_without_override(), timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, b'')
        # stdout a pipe, stderr a terminal: still quiet.
        master, slave = pty.openpty()
        try:
            p = subprocess.run([souk_path(), 'get', self.server.url('big')], stdout=subprocess.PIPE,
                               stderr=slave, env=env_without_override(), timeout=60)
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        try:
            leaked = os.read(master, 4096)
        except (BlockingIOError, OSError):
            leaked = b''
        os.close(master)
        self.assertEqual(p.returncode, 0)
        self.assertEqual(len(p.stdout), 3 << 20)
        self.assertEqual(leaked, b'')


if __name__ == '__main__':
    unittest.main()
