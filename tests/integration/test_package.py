"""The Debian package (docs/install.md#the-debian-package), as CI runs it on
a fresh bookworm as root: CPack builds souk and libsouk-dev from the normal
build; dpkg installs them (the system user, /var/log/souk, conffiles, units
installed but not enabled); installing again keeps an edited conffile; the
installed /usr/sbin/soukd, run as souk, serves a `brz branch`; souk.pc
names the installed paths; `dpkg --purge` leaves
no file of the packages, nothing under /etc/souk or /var/log/souk, and keeps
the user. Registered for the normal build only (tests/CMakeLists.txt).
This test changes the machine (packages, a system user): CI only, or a
machine where that is fine. Not root: it fails, it never skips."""

import grp
import os
import pwd
import re
import subprocess
import unittest

from harness import BrzEnv, HarnessError, Server, make_tempdir, remove_tree, require_server
from install_harness import build_dir, require_tool, run, verify_units

PACKAGES = ('souk', 'libsouk-dev')


def setUpModule():
    require_server('soukd')
    if os.geteuid() != 0:
        raise HarnessError('test_package installs a Debian package: it must run as root (CI does)')
    for tool in ('cpack', 'dpkg', 'dpkg-deb', 'dpkg-shlibdeps', 'adduser'):
        require_tool(tool)


def installed(package):
    p = subprocess.run(['dpkg-query', '-W', '-f=${Status}', package], capture_output=True, timeout=60)
    return p.returncode == 0 and p.stdout.decode().endswith(' installed')


def purge():
    run(['dpkg', '--purge'] + list(PACKAGES), timeout=120)


class TestPackage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        for p in PACKAGES:
            if installed(p):
                raise HarnessError('%s is already installed: this test installs and purges it' % p)
        cls.base = make_tempdir('souk-package-')
        out = os.path.join(cls.base, 'out')
        run([require_tool('cpack'), '-G', 'DEB', '--config',
             os.path.join(build_dir(), 'CPackConfig.cmake'), '-B', out])
        debs = sorted(f for f in os.listdir(out) if f.endswith('.deb'))
        cls.debs = {f.split('_')[0]: os.path.join(out, f) for f in debs}
        if sorted(cls.debs) != sorted(PACKAGES):
            raise HarnessError('cpack made %s' % debs)

    @classmethod
    def tearDownClass(cls):
        if any(installed(p) for p in PACKAGES):
            purge()
        remove_tree(cls.base)

    def contents(self, package):
        """Paths of the package's files (not directories), absolute."""
        lines = run(['dpkg-deb', '-c', self.debs[package]]).splitlines()
        return sorted(ln.split()[-1][1:] for ln in lines if not ln.startswith('d'))

    def field(self, package, name):
        return run(['dpkg-deb', '-f', self.debs[package], name]).strip()

    def test_package_lifecycle(self):
        # The control data: library Depends from dpkg-shlibdeps, conffiles.
        depends = self.field('souk', 'Depends')
        for dep in ('adduser', 'libc6', 'libzstd1', 'libssl3', 'libstdc++6'):
            self.assertRegex(depends, r'(^|, )%s\b' % re.escape(dep))
        control = os.path.join(self.base, 'control')
        run(['dpkg-deb', '-e', self.debs['souk'], control])
        with open(os.path.join(control, 'conffiles')) as f:
            self.assertEqual(f.read().split(), ['/etc/souk/soukd.conf', '/etc/logrotate.d/souk'])
        files = self.contents('souk') + self.contents('libsouk-dev')
        self.assertIn('/usr/sbin/soukd', files)
        self.assertIn('/usr/lib/libsouk.a', files)
        self.assertFalse([f for f in files if f.startswith(('/srv', '/var', '/usr/local'))], files)

        self.addCleanup(lambda: any(installed(p) for p in PACKAGES) and purge())
        run(['dpkg', '-i'] + [self.debs[p] for p in PACKAGES], timeout=120)
        account = pwd.getpwnam('souk')
        self.assertLess(account.pw_uid, 1000)  # a system user
        st = os.stat('/var/log/souk')
        self.assertEqual((st.st_uid, grp.getgrgid(st.st_gid).gr_name, st.st_mode & 0o777),
                         (account.pw_uid, 'adm', 0o750))
        # Installed, not enabled: no link to any unit under /etc/systemd.
        links = run(['find', '/etc/systemd', '-name', 'soukd*']).split()
        self.assertEqual(links, [])
        verify_units(self, '/usr/lib/systemd/system', '/usr/share/man')

        # Upgrade path: the same version again keeps the admin's edit.
        with open('/etc/souk/soukd.conf', 'a') as f:
            f.write('# edited by the admin\n')
        run(['dpkg', '-i'] + [self.debs[p] for p in PACKAGES], timeout=120)
        with open('/etc/souk/soukd.conf') as f:
            self.assertTrue(f.read().endswith('# edited by the admin\n'))
        self.assertEqual(run(['/usr/sbin/soukd', '--version']).strip(), 'soukd 0.1.0')

        # The installed soukd, as souk, serves a brz branch.
        root = os.path.join(self.base, 'served')
        os.makedirs(root)
        os.chmod(self.base, 0o755)
        brz = BrzEnv(os.path.join(self.base, 'brz'))
        trunk = os.path.join(root, 'trunk')
        brz.ok(self, ['init', '-q', trunk])
        with open(os.path.join(trunk, 'hello.txt'), 'w') as f:
            f.write('hello from the package\n')
        brz.ok(self, ['add', '-q'], cwd=trunk)
        brz.ok(self, ['commit', '-q', '-m', 'one'], cwd=trunk)
        server = Server(root, program='/usr/sbin/soukd', user='souk').start()
        try:
            self.assertEqual(int(run(['ps', '-o', 'uid=', '-p', str(server.proc.pid)])), account.pw_uid)
            dest = os.path.join(self.base, 'branched')
            brz.ok(self, ['branch', server.url('trunk'), dest])
            with open(os.path.join(dest, 'hello.txt')) as f:
                self.assertEqual(f.read(), 'hello from the package\n')
            # libsouk-dev: souk.pc names the installed paths (test_install builds with it).
            libdir = run(['pkg-config', '--variable=libdir', 'souk']).strip()
            includes = [f[2:] for f in run(['pkg-config', '--cflags', 'souk']).split() if f.startswith('-I')]
            self.assertEqual(os.path.normpath(libdir), '/usr/lib')
            self.assertIn('/usr/include/souk', [os.path.normpath(i) for i in includes])
        finally:
            server.stop()

        purge()
        for p in PACKAGES:
            self.assertFalse(installed(p), p)
        self.assertEqual([f for f in files if os.path.lexists(f)], [])
        self.assertFalse(os.path.lexists('/etc/souk'))
        self.assertFalse(os.path.lexists('/var/log/souk'))
        self.assertEqual(pwd.getpwnam('souk').pw_uid, account.pw_uid)  # kept (Debian practice)


if __name__ == '__main__':
    unittest.main()
