"""soukd under systemd's protocols, without systemd running
(docs/install.md#systemd): socket activation (LISTEN_FDS, LISTEN_PID,
LISTEN_FDNAMES: bzr:// served on the socket named bzr, HTTP on the one
named http, both at once; a socket with another name or none, two of one
name, one for a carrier --fastcgi does not serve, and one that is not
listening refused with a message) and Type=notify readiness (READY=1 once
every carrier listens, STOPPING=1 on SIGTERM, to a path or an abstract
NOTIFY_SOCKET). The passing is done by systemd's own systemd-socket-activate
and by a fork + exec here that sets LISTEN_PID to the child's pid."""

import fcntl
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

    def start(self, argv, pass_fds=(), fdnames=None, pid_of_child=True, notify=None):
        """Run argv (soukd) the way systemd would: pass_fds as fds 3, 4, ...
        with LISTEN_FDS, LISTEN_PID the child's pid (or its parent's, when
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
        if pass_fds:
            env['LISTEN_FDS'] = str(len(pass_fds))
            if pid_of_child:  # the shell's pid is soukd's: exec keeps it
                argv = ['/bin/sh', '-c', 'LISTEN_PID=$$ exec "$@"', 'sh'] + argv
            else:
                env['LISTEN_PID'] = str(os.getpid())
        # dup2 onto 3, 4, ... from close-on-exec copies above them, so no
        # source is overwritten before it is copied
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3 + len(pass_fds)) for fd in pass_fds]
        for fd in high:
            self.addCleanup(os.close, fd)

        def preexec():
            _pdeathsig()
            for i, fd in enumerate(high):
                os.dup2(fd, 3 + i)  # dup2 makes the copy inheritable
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

    def branch_from(self, url):
        dest = os.path.join(make_tempdir('souk-systemd-branch-'), 'b')
        self.addCleanup(remove_tree, os.path.dirname(dest))
        self.brz.ok(self, ['branch', url, dest])
        with open(os.path.join(dest, 'hello.txt')) as f:
            self.assertEqual(f.read(), 'hello\n')

    def stop_with_stopping(self, proc, notify):
        proc.terminate()
        notify.wait_for('STOPPING=1', proc=None)
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 0)

    def test_passed_socket_fork_exec(self):
        """An http socket as fd 3 from a fork + exec, a path NOTIFY_SOCKET:
        READY=1, brz branch over bzr+http:// through the passed socket,
        STOPPING=1 on SIGTERM. No --http and no --port: the socket asks for
        HTTP, and soukd binds nothing (no bzr:// either)."""
        lst = self.listener()
        notify = self.notify_socket(abstract=False)
        proc, log = self.start([soukd_path(), 'serve', '--directory=' + self.root],
                               pass_fds=[lst.fileno()], fdnames='http', notify=notify.name)
        self.assertEqual(notify.wait_for('READY=1', proc=proc), ['READY=1'])
        lst.close()  # only soukd holds it now
        self.branch_from('bzr+http://127.0.0.1:%d/trunk' % self.port_of(log, 'http'))
        self.stop_with_stopping(proc, notify)
        with open(log) as f:
            self.assertNotIn('on bzr://', f.read())

    def port_of(self, log_path, scheme):
        with open(log_path) as f:
            text = f.read()
        self.assertIn('socket from systemd', text)
        return int(text.split(scheme + '://*:')[1].split('/')[0])

    def test_systemd_socket_activate(self):
        """systemd's own systemd-socket-activate passes two sockets, bzr and
        http (its LISTEN_PID, LISTEN_FDNAMES), and an abstract NOTIFY_SOCKET:
        one READY=1 once both carriers listen, then brz log over bzr:// and
        brz branch over bzr+http://, both served by the one process."""
        tool = shutil.which('systemd-socket-activate')
        if not tool:
            raise HarnessError('systemd-socket-activate is required (package systemd)')
        bzr_port, http_port = free_port(), free_port()
        notify = self.notify_socket(abstract=True)
        proc, log = self.start([tool, '--listen=127.0.0.1:%d' % bzr_port, '--listen=127.0.0.1:%d' % http_port,
                                '--fdname=bzr:http', '--setenv=NOTIFY_SOCKET=' + notify.name,
                                soukd_path(), 'serve', '--directory=' + self.root])
        # The tool execs soukd at the first connection.
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        for _ in range(1000):
            try:
                socket.create_connection(('127.0.0.1', http_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.02)
        self.assertEqual(notify.wait_for('READY=1', proc=proc), ['READY=1'])
        self.assertEqual(self.port_of(log, 'bzr'), bzr_port)
        self.assertEqual(self.port_of(log, 'http'), http_port)
        r = self.brz.ok(self, ['log', '--line', 'bzr://127.0.0.1:%d/trunk' % bzr_port])
        self.assertIn(b'one', r.stdout)
        self.branch_from('bzr+http://127.0.0.1:%d/trunk' % http_port)
        self.stop_with_stopping(proc, notify)

    def refused(self, argv, pass_fds, fdnames, message):
        proc, log = self.start(argv, pass_fds=pass_fds, fdnames=fdnames)
        self.assertEqual(proc.wait(timeout=STOP_TIMEOUT), 2)
        with open(log) as f:
            self.assertIn(message, f.read())

    def test_refused_sockets(self):
        """A socket with another name or none, two sockets of one name, a
        socket for a carrier this soukd does not serve (--fastcgi), and a
        socket that is not listening are refused with exit 2 and a message;
        LISTEN_PID of another process is not ours: soukd binds its own port."""
        lst, lst2 = self.listener(), self.listener()
        serve = [soukd_path(), 'serve', '--directory=' + self.root]
        self.refused(serve, [lst.fileno()], 'soukd.socket', "named 'soukd.socket'; soukd serves a socket named bzr")
        self.refused(serve, [lst.fileno()], None, 'with no name; soukd serves a socket named bzr')
        self.refused(serve, [lst.fileno(), lst2.fileno()], 'bzr:bzr', 'two sockets named bzr')
        self.refused(serve + ['--fastcgi', '127.0.0.1:%d' % free_port()], [lst.fileno()], 'http',
                     'a socket named http, but this soukd serves no HTTP')

        conn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(conn.close)
        conn.connect(lst.getsockname())
        self.refused(serve, [lst2.fileno(), conn.fileno()], 'http:bzr', 'not a listening stream socket')

        port_file = os.path.join(self.base, 'port')
        proc, log = self.start(serve + ['--port', '0', '--port-file', port_file],
                               pass_fds=[lst.fileno()], fdnames='bzr', pid_of_child=False)
        deadline = time.monotonic() + NOTIFY_TIMEOUT
        while not os.path.exists(port_file) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(port_file) as f:
            port = int(f.read())
        self.assertNotEqual(port, lst.getsockname()[1])
        self.branch_from('bzr://127.0.0.1:%d/trunk' % port)

if __name__ == '__main__':
    unittest.main()
