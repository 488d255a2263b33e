"""`cmake --install` into a temporary prefix (docs/install.md): the files it
installs, the man pages against --help, the systemd units through
`systemd-analyze verify`, and a program built against the installed libsouk
twice (pkg-config, find_package) reading from a soukd this test starts.
Registered for the normal build only (tests/CMakeLists.txt): a program
built against the sanitizer build's libsouk would need its flags."""

import os
import re
import subprocess
import unittest

from harness import Server, make_tempdir, remove_tree, require_server
from install_harness import (build_consumer, cmake_install, run, verify_units, UNITS)

# Every file the installation has, relative to the prefix.
EXPECTED = sorted([
    'bin/souk', 'sbin/soukd', 'lib/libsouk.a', 'lib/pkgconfig/souk.pc',
    'lib/cmake/souk/souk-config.cmake', 'lib/cmake/souk/souk-config-version.cmake',
    'lib/cmake/souk/souk-targets.cmake', 'lib/cmake/souk/souk-targets-BUILDTYPE.cmake',
    'share/man/man8/soukd.8.gz', 'share/man/man1/souk.1.gz',
    'share/doc/souk/README.md', 'share/doc/souk/NEWS', 'share/doc/souk/copyright',
    'share/doc/libsouk-dev/copyright', 'share/doc/souk/changelog.gz', 'share/doc/libsouk-dev/changelog.gz',
    'etc/souk/soukd.conf', 'etc/logrotate.d/souk',
] + ['lib/systemd/system/' + u for u in UNITS]
  + ['include/souk/client/%s.hpp' % h for h in
     ('client', 'connection', 'error', 'http', 'options', 'readv', 'url')]
  + ['include/souk/protocol/%s.hpp' % h for h in
     ('bencode', 'errors', 'fastcgi', 'http1', 'message', 'result', 'value', 'verbs')]
  + ['include/souk/transport/%s.hpp' % h for h in ('fd', 'net', 'sink', 'stream')])


def setUpModule():
    require_server('soukd')


def options_of(help_text):
    return set(re.findall(r'(?<![\w-])(--[a-z][a-z0-9-]*)', help_text))


def man_text(path):
    """The page as man renders it (hyphens plain), so `--max-line` matches."""
    return run(['man', '--nj', '--nh', '-l', path], env=dict(os.environ, MANWIDTH='200')).replace('\u2010', '-')


class TestInstall(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.base = make_tempdir('souk-install-')
        cls.prefix = os.path.join(cls.base, 'prefix')
        cmake_install(cls.prefix)

    @classmethod
    def tearDownClass(cls):
        remove_tree(cls.base)

    def test_installed_files(self):
        found = []
        for d, _dirs, files in os.walk(self.prefix):
            found += [os.path.relpath(os.path.join(d, f), self.prefix) for f in files]
        # souk-targets-<build type>.cmake: the build type's name in lower case
        found = [re.sub(r'souk-targets-[a-z]+\.cmake$', 'souk-targets-BUILDTYPE.cmake', f) for f in found]
        self.assertEqual(sorted(found), EXPECTED)
        for prog in ('bin/souk', 'sbin/soukd'):
            self.assertTrue(os.access(os.path.join(self.prefix, prog), os.X_OK), prog)
        # The units name the installed program and config, not a placeholder.
        with open(os.path.join(self.prefix, 'lib/systemd/system/soukd.service')) as f:
            unit = f.read()
        self.assertIn('ExecStart=%s/sbin/soukd serve --config %s/etc/souk/soukd.conf\n'
                      % (self.prefix, self.prefix), unit)
        self.assertNotIn('@', unit.replace('soukd-inet@', ''))

    def test_man_pages_name_every_option(self):
        for prog, page in (('sbin/soukd', 'share/man/man8/soukd.8.gz'),
                           ('bin/souk', 'share/man/man1/souk.1.gz')):
            help_opts = options_of(run([os.path.join(self.prefix, prog), '--help']))
            man_opts = options_of(man_text(os.path.join(self.prefix, page)))
            self.assertGreater(len(help_opts), 5, prog)
            self.assertEqual(sorted(help_opts - man_opts), [], '%s: options of --help missing in %s'
                             % (prog, page))

    def test_units_verify(self):
        verify_units(self, os.path.join(self.prefix, 'lib/systemd/system'),
                     os.path.join(self.prefix, 'share/man'))

    def test_program_against_installed_libsouk(self):
        root = os.path.join(self.base, 'root')
        os.makedirs(os.path.join(root, 'sub'))
        with open(os.path.join(root, 'hello.txt'), 'w') as f:
            f.write('hello from soukd\n')
        server = Server(root).start()
        try:
            for how in ('pkg-config', 'cmake'):
                with self.subTest(how=how):
                    prog = build_consumer(self.base, how, self.prefix)
                    url = 'bzr://127.0.0.1:%d/' % server.port
                    self.assertEqual(run([prog, url, 'hello.txt'], timeout=30),
                                     'hello from soukd\n[hello.txt]\n[sub]\n')
                    p = subprocess.run([prog, url, 'missing.txt'], capture_output=True, timeout=30)
                    self.assertEqual((p.returncode, p.stdout), (1, b'error 0\n'))  # ErrorKind::NoSuchFile
        finally:
            server.stop()


if __name__ == '__main__':
    unittest.main()
