"""Helpers for the tests of what installs (test_install, test_package,
test_systemd): the build directory, `cmake --install`, the units' check
with systemd-analyze, a program built against an installed libsouk.
Standard library only; every command has a timeout."""

import os
import shutil
import subprocess

from harness import HarnessError, soukd_path

CMD_TIMEOUT = 300
UNITS = ('soukd.service', 'soukd.socket', 'soukd-http.socket', 'soukd-inet.socket', 'soukd-inet@.service')

# A tiny libsouk program: connect to URL, print the file PATH, then the
# names in the URL's directory (sorted); an error prints its kind and exits 1.
CONSUMER_CPP = r'''
#include "client/client.hpp"
#include <algorithm>
#include <cstdio>
namespace sc = souk::client;
int main(int argc, char** argv) {
    if (argc != 3) return 2;
    auto c = sc::connect(argv[1]);
    if (!c) { std::fprintf(stderr, "connect: %s\n", c.error().message.c_str()); return 1; }
    auto text = c->get(argv[2]);
    if (!text) {
        std::printf("error %d\n", static_cast<int>(text.error().kind));
        return 1;
    }
    std::fwrite(text->data(), 1, text->size(), stdout);
    auto names = c->list_dir(".");
    if (!names) return 1;
    std::sort(names->begin(), names->end());
    for (auto& n : *names) std::printf("[%s]\n", n.c_str());
    return 0;
}
'''

CONSUMER_CMAKE = '''
cmake_minimum_required(VERSION 3.25)
project(souk_consumer CXX)
find_package(souk 0.1 REQUIRED)
add_executable(consumer consumer.cpp)
target_link_libraries(consumer PRIVATE souk::client)
'''


def run(cmd, **kw):
    """Run cmd, fail with its output unless it exits 0; returns stdout."""
    try:
        p = subprocess.run(cmd, capture_output=True, timeout=kw.pop('timeout', CMD_TIMEOUT), **kw)
    except subprocess.TimeoutExpired as e:
        raise HarnessError('%s did not finish in time' % (cmd,)) from e
    if p.returncode != 0:
        raise HarnessError('%s -> %d\nstdout: %s\nstderr: %s'
                           % (cmd, p.returncode, p.stdout.decode(errors='replace')[-3000:],
                              p.stderr.decode(errors='replace')[-3000:]))
    return p.stdout.decode()


def build_dir():
    """The CMake build directory soukd comes from ($SOUKD is BUILD/server/soukd)."""
    d = os.path.dirname(os.path.dirname(soukd_path()))
    if not os.path.isfile(os.path.join(d, 'CMakeCache.txt')):
        raise HarnessError('SOUKD=%s is not in a CMake build directory (no %s/CMakeCache.txt)'
                           % (soukd_path(), d))
    return d


def require_tool(name):
    path = shutil.which(name)
    if not path:
        raise HarnessError('%s is required (scripts/install-deps.sh installs it)' % name)
    return path


def cmake_install(prefix):
    run([require_tool('cmake'), '--install', build_dir(), '--prefix', prefix])


def verify_units(testcase, unit_dir, man_dir):
    """systemd-analyze verify on the units: exit 0 and not one warning
    (an unknown key is only a warning). man_dir makes Documentation=man:
    resolve against the installed pages."""
    env = dict(os.environ, MANPATH=man_dir)
    p = subprocess.run([require_tool('systemd-analyze'), 'verify'] + ['./' + u for u in UNITS],
                       cwd=unit_dir, env=env, capture_output=True, timeout=60)
    testcase.assertEqual((p.returncode, p.stderr.decode() + p.stdout.decode()), (0, ''))


def build_consumer(base, how, prefix):
    """Build CONSUMER_CPP against libsouk installed in prefix, by 'pkg-config'
    or 'cmake' (find_package); returns the program's path."""
    src = os.path.join(base, 'consumer-' + how)
    os.makedirs(src)
    with open(os.path.join(src, 'consumer.cpp'), 'w') as f:
        f.write(CONSUMER_CPP)
    if how == 'pkg-config':
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(prefix, 'lib', 'pkgconfig'))
        flags = run([require_tool('pkg-config'), '--cflags', '--libs', 'souk'], env=env).split()
        out = os.path.join(src, 'consumer')
        run([require_tool('g++'), '-O0', os.path.join(src, 'consumer.cpp'), '-o', out] + flags)
        return out
    with open(os.path.join(src, 'CMakeLists.txt'), 'w') as f:
        f.write(CONSUMER_CMAKE)
    b = os.path.join(src, 'build')
    run([require_tool('cmake'), '-S', src, '-B', b, '-G', 'Ninja', '-DCMAKE_BUILD_TYPE=Debug',
         '-DCMAKE_PREFIX_PATH=' + prefix])
    run([require_tool('ninja'), '-C', b])
    return os.path.join(b, 'consumer')
