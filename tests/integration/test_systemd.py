"""soukd under systemd's protocols, without systemd running
(docs/install.md#systemd): socket activation (LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES: bzr:// served on the passed socket, a socket named http or
one that is not listening refused with a message) and Type=notify readiness
(READY=1 once listening, STOPPING=1 on SIGTERM, to a path or an abstract
NOTIFY_SOCKET). The passing is done by systemd's own systemd-socket-activate
and by a fork + exec here that sets LISTEN_PID to the child's pid."""

import os
import shutil
import socket
import subprocess
import time
import unittest

from harness import (BrzEnv, HarnessError, STOP_TIMEOUT, _pdeathsig, free_port, make_tempdir,
                     remove_tree, require_server, server_env, soukd_path, stop_process)

NOTIFY_TIMEOUT = 20.0


def setUpModule():
    require_server('soukd')


class Notify:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path if not path.startswith('@') else '\0' + path[1:])
        self.name = path

    def wait_for(self, message, timeout=NOTIFY_TIMEOUT, proc=None):
        """Messages received until `message` (bounded in time); fails if it never comes."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(0.2)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                if proc is not None and proc.poll() is not None:
                    break
                continue
            seen.append(data)
            if data == message:
                return seen
        raise HarnessError('%s never arrived on %s (got %r)' % (message, self.name, seen))

    def close(self):
        self.sock.close()


class TestSystemd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = make_tempdir('souk-systemd-')
        cls.root = os.path.join(cls.base, 'root')
        os.makedirs(cls.root)
        cls.brz = BrzEnv(os.path.join(cls.base, 'brz'))
        trunk = os.path.join(cls.root, 'trunk')
        cls.brz.run(['init', '-q', trunk])
        with open(os.path.join(trunk, 'hello.txt'), 'w') as f:
            f.write('hello\n')
        for args in (['add', '-q'], ['commit', '-q', '-m', 'one']):
            r = cls.brz.run(args, cwd=trunk)
            if r.rc != 0:
                raise HarnessError(r.describe())

    @classmethod
    def tearDownClass(cls):
        remove_tree(cls.base)

    def start(self, argv, pass_fd=None, fdnames=None, pid_of_child=True, notify=None):
        """Run argv (soukd) the way systemd would: pass_fd as fd 3 with
        LISTEN_FDS=1, LISTEN_PID the child's pid (or its parent's, when
        pid_of_child is false), LISTEN_FDNAMES=fdnames, NOTIFY_SOCKET=notify."""
        log_dir = make_tempdir('souk-systemd-log-')
        self.addCleanup(remove_tree, log_dir)
        env = server_env(log_dir)
        for k in ('LISTEN_PID', 'LISTEN_FDS', 'LISTEN_FDNAMES', 'NOTIFY_SOCKET'):
            env.pop(k, None)
        if notify:
            env['NOTIFY_SOCKET'] = notify
        if fdnames is not None:
            env['LISTEN_FDNAMES'] = fdnames
        if pass_fd is not None:
            env['LISTEN_FDS'] = '1'
            if pid_of_child:  # the shell's pid is soukd's: exec keeps it
                argv = ['/bin/sh', '-c', 'LISTEN_PID=$$ exec "$@"', 'sh'] + argv
            else:
                env['LISTEN_PID'] = str(os.getpid())

        def preexec():
            _pdeathsig()
            if pass_fd is not None:
                if pass_fd != 3:
                    os.dup2(pass_fd, 3)
                os.set_inheritable(3, True)
        log = open(os.path.join(log_dir, 'soukd.log'), 'wb')
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                close_fds=False, preexec_fn=preexec, cwd='/')
        log.close()
        self.addCleanup(stop_process, proc)
        return proc, os.path.join(log_dir, 'soukd.log')

    def listener(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(('127.0.0.1', 0))
        s.listen(16)
        self.addCleanup(s.close)
        return s

    def notify_socket(self, abstract):
        name = ('@souk-test-notify-%d-%d' % (os.getpid(), time.monotonic_ns()) if abstract
                else os.path.join(make_tempdir('souk-notify-'), 'notify'))
        if not abstract:
            self.addCleanup(remove_tree, os.path.dirname(name))
        n = Notify(name)
        self.addCleanup(n.close)
        return n

    def branch_from(self, port):
        dest = os.path.join(make_tempdir('souk-systemd-branch-'), 'b')
        self.addCleanup(remove_tree, os.path.dirname(dest))
        self.brz.ok(self, ['branch', 'bzr://127.0.0.1:%d/trunk' % port, dest])
        with open(os.path.join(dest, 'hello.txt')) as f:
            self.assertEqual(f.read(), 'hello\n')

    def stop_with_stopping(self, proc, notify):
        proc.terminate()
        notify.wait_for('STOPPING=1', proc=None)
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 0)

    def test_passed_socket_fork_exec(self):
        """fd 3 from a fork + exec, a path NOTIFY_SOCKET: READY=1, brz
        branch through the passed socket, STOPPING=1 on SIGTERM. No --port:
        soukd binds nothing (4155 stays untouched)."""
        lst = self.listener()
        notify = self.notify_socket(abstract=False)
        proc, log = self.start([soukd_path(), 'serve', '--directory=' + self.root],
                               pass_fd=lst.fileno(), fdnames='bzr', notify=notify.name)
        self.assertEqual(notify.wait_for('READY=1', proc=proc), ['READY=1'])
        lst.close()  # only soukd holds it now
        self.branch_from(self.port_of(log))
        self.stop_with_stopping(proc, notify)

    def port_of(self, log_path):
        with open(log_path) as f:
            text = f.read()
        self.assertIn('socket from systemd', text)
        return int(text.split('bzr://*:')[1].split('/')[0])

    def test_systemd_socket_activate(self):
        """systemd's own systemd-socket-activate passes the socket (its
        LISTEN_PID, LISTEN_FDNAMES) and an abstract NOTIFY_SOCKET."""
        tool = shutil.which('systemd-socket-activate')
        if not tool:
            raise HarnessError('systemd-socket-activate is required (package systemd)')
        port = free_port()
        notify = self.notify_socket(abstract=True)
        proc, _log = self.start([tool, '--listen=127.0.0.1:%d' % port, '--fdname=bzr',
                                 '--setenv=NOTIFY_SOCKET=' + notify.name,
                                 soukd_path(), 'serve', '--directory=' + self.root])
        # The tool execs soukd at the first connection.
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        for _ in range(1000):
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        self.assertEqual(notify.wait_for('READY=1', proc=proc), ['READY=1'])
        self.branch_from(port)
        self.stop_with_stopping(proc, notify)

    def test_refused_sockets(self):
        """An http socket, and a socket that is not listening, are refused
        with exit 2 and a message; LISTEN_PID of another process is not ours:
        soukd binds its own port."""
        lst = self.listener()
        proc, log = self.start([soukd_path(), 'serve', '--directory=' + self.root],
                               pass_fd=lst.fileno(), fdnames='http')
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 2)
        with open(log) as f:
            self.assertIn('only bzr:// can be socket-activated', f.read())

        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(conn.close)
        conn.connect(lst.getsockname())
        proc, log = self.start([soukd_path(), 'serve', '--directory=' + self.root],
                               pass_fd=conn.fileno(), fdnames='bzr')
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 2)
        with open(log) as f:
            self.assertIn('not a listening stream socket', f.read())

        port_file = os.path.join(self.base, 'port')
        proc, log = self.start([soukd_path(), 'serve', '--directory=' + self.root, '--port', '0',
                                '--port-file', port_file],
                               pass_fd=lst.fileno(), pid_of_child=False)
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while not os.path.exists(port_file) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(port_file) as f:
            port = int(f.read())
        self.assertNotEqual(port, lst.getsockname()[1])
        self.branch_from(port)


if __name__ == '__main__':
    unittest.main()
