#!/usr/bin/env python3
"""HTTP benchmark (a program, not a test): the same C++ client (libsouk,
build/*/client/souk-bench-http) reading the same files from

  * soukd --http, smart POST (bzr+http://)        * soukd --http, multi-range GET (http://)
  * nginx's own multi-range GET (http://)          * soukd cgi behind nginx + fcgiwrap (bzr+http://)
  * soukd cgi behind nginx, multi-range GET under /cgi/ (http://)
  * soukd --fastcgi behind nginx (bzr+http://) and behind Apache
    mod_proxy_fcgi (bzr+http:// and multi-range GET under /bzr/), and
    soukd --http behind nginx as a reverse proxy (the scale-out site), all
    configured from the shipped Debian files (scripts/deploy/debian/)

for two operations: readv of 64 scattered 4 KiB ranges of a 16 MiB file, and
whole-file reads of a 1 MiB file. Then CGI requests: `soukd cgi` answering
a hello and 64-range readvs (from the shared cache, and a 256 KiB one),
each spawned as a web server runs a CGI program (body to its stdin pipe,
its stdout pipe read to EOF, reaped), medians against the floor of running
/bin/true the same way; and hellos per second through nginx + fcgiwrap and
nginx + FastCGI over one keep-alive connection.

Prints a table of medians (ms) with ratios to nginx's multi-range GET, and
writes everything to JSON (--json, default bench-http.json).

  scripts/bench_http.py [--build build/normal] [--rounds 200] [--block 25] [--client BIN] [--json FILE] [--only http|cgi]

Targets take turns, --block rounds at a time, so that load from elsewhere
on the machine falls on all of them alike. Every soukd runs from a copy of
the build's that this script writes in 4 KiB blocks, as a package install
does (copy_as_installed says why).

Everything runs on 127.0.0.1, started and stopped (by PID) by this script,
with bounded rounds.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))


def median_ms(us):
    return statistics.median(us) / 1000.0


def p90_ms(us):
    s = sorted(us)
    return s[min(len(s) - 1, int(len(s) * 0.9))] / 1000.0


def run_client(bench, url, op, rounds):
    args = [bench, url, op, str(rounds)] + (['64', '4096'] if op == 'readv' else [])
    p = subprocess.run(args, capture_output=True, timeout=600)
    if p.returncode != 0:
        raise SystemExit('bench client failed for %s %s: %s' % (url, op, p.stderr.decode()))
    return json.loads(p.stdout)


def spawn_cgi(argv, env, body):
    """One CGI request as a web server runs it: the program spawned with
    the request's variables, the body written to its stdin pipe, its
    stdout pipe read to EOF, then reaped. Returns (seconds, stdout)."""
    t0 = time.perf_counter()
    r, w = os.pipe()
    ro, wo = os.pipe()
    try:
        pid = os.posix_spawn(argv[0], argv, env, file_actions=[
            (os.POSIX_SPAWN_DUP2, r, 0), (os.POSIX_SPAWN_DUP2, wo, 1), (os.POSIX_SPAWN_DUP2, wo, 2),
            (os.POSIX_SPAWN_CLOSE, w), (os.POSIX_SPAWN_CLOSE, ro)])
    finally:
        os.close(r)
        os.close(wo)
    try:
        os.write(w, body)  # a request body fits the pipe
    except BrokenPipeError:
        pass  # /bin/true does not read it
    os.close(w)
    out = []
    for _ in range(1 << 16):  # bounded: 64 Ki reads
        chunk = os.read(ro, 1 << 20)
        if not chunk:
            break
        out.append(chunk)
    os.close(ro)
    os.waitpid(pid, 0)
    return time.perf_counter() - t0, b''.join(out)


def copy_as_installed(src, dst):
    """soukd copied in 4 KiB writes, as dpkg and `cmake --install` write it.
    How a program's file was written decides how the page cache holds it,
    and so what an exec of it costs: a copy made by cp(1) (large writes)
    runs a CGI hello about 0.12 ms faster on this machine than the same
    bytes written in small blocks, or read back from disk after the cache
    was dropped, which is the state a server runs it in
    (docs/protocol/http.md#what-a-cgi-request-costs). Measuring this copy
    makes the CGI rows the same whatever last wrote the build's file."""
    size = os.path.getsize(src)
    with open(src, 'rb') as f:
        fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o755)
        try:
            for _ in range(size // 4096 + 2):  # bounded: the file's blocks
                block = f.read(4096)
                if not block:
                    break
                os.write(fd, block)
            os.fsync(fd)  # written back before it is measured
        finally:
            os.close(fd)
    return dst


def cgi_times(soukd, root, n):
    """Median wall times of CGI requests, in ms, each spawned as a web
    server does (spawn_cgi), interleaved round by round so that load on
    this shared machine lands on every row alike. The floor is /bin/true
    run the same way; /bin/cat of a 256 KiB file is the floor plus a
    reply's bytes through the pipe. readv: 64 ranges from the shared cache
    (512 bytes each: gathered whole from the cache), and 64 x 4 KiB (a
    256 KiB reply: streamed, with sendfile)."""
    import harness  # noqa: E402
    env = {'PATH': '/usr/bin:/bin', 'GATEWAY_INTERFACE': 'CGI/1.1', 'SOUK_ROOT': root,
           'REQUEST_METHOD': 'POST', 'PATH_INFO': '/.bzr/smart'}
    spread = lambda i: i * (256 << 10) + (i % 7) * 512  # noqa: E731
    small = harness.v3_request(['readv', 'big.bin'], body=b''.join(b'%d,512\n' % spread(i) for i in range(64)))
    large = harness.v3_request(['readv', 'big.bin'], body=b''.join(b'%d,4096\n' % spread(i) for i in range(64)))
    reply = os.path.join(root, 'reply-256k.bin')
    with open(reply, 'wb') as f:
        f.write(os.urandom(256 << 10))
    rows = [  # (key, argv, body, check of the output)
        ('true', ['/bin/true'], b'hello\n', lambda o: o == b''),
        ('cat_256k', ['/bin/cat', reply], b'hello\n', lambda o: len(o) == 256 << 10),
        ('hello', [soukd, 'cgi'], b'hello\n', lambda o: o.endswith(b'ok\x012\n')),
        ('readv_64x512_cached', [soukd, 'cgi'], small, lambda o: b'readv' in o and len(o) > 64 * 512),
        ('readv_64x4k', [soukd, 'cgi'], large, lambda o: b'readv' in o and len(o) > 64 * 4096),
    ]
    def cache_hits():
        p = subprocess.run([soukd, 'stats', '--directory=' + root], capture_output=True, timeout=30, check=True)
        return json.loads(p.stdout)['counters']['cache_hits']

    times = {key: [] for key, _, _, _ in rows}
    hits = None
    for i in range(n + 1):  # the first round fills the shared cache and is not counted
        if i == 1:
            hits = cache_hits()
        for key, argv, body, ok in rows:
            t, out = spawn_cgi(argv, dict(env, CONTENT_LENGTH=str(len(body))), body)
            if not ok(out):
                raise SystemExit('%s answered %r' % (' '.join(argv), out[:300]))
            if i:
                times[key].append(t)
    # Only the 512-byte readv reads through the cache (the 256 KiB one
    # streams with sendfile): every one of its ranges must have been a hit.
    hits = cache_hits() - hits
    if hits < 64 * n:
        raise SystemExit('the 64 x 512 B readv was not served from the shared cache (%d hits for %d ranges)'
                         % (hits, 64 * n))
    med = {key: statistics.median(v) * 1e3 for key, v in times.items()}
    return {'median_ms': med, 'ratio_to_floor': {key: m / med['true'] for key, m in med.items()},
            'cache_hits': hits}


def nginx_cgi_rate(port, n, path='/.bzr/smart'):
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    t0 = time.monotonic()
    for _ in range(n):
        conn.request('POST', path, body=b'hello\n')
        r = conn.getresponse()
        if r.read() != b'ok\x012\n':
            raise SystemExit('nginx + soukd cgi: bad hello answer')
    rate = n / (time.monotonic() - t0)
    conn.close()
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--build', default=os.path.join(REPO, 'build', 'normal'))
    ap.add_argument('--rounds', type=int, default=200)
    ap.add_argument('--client', help='the souk-bench-http to measure with (default: the build\'s), to compare '
                    'servers of two builds through one client')
    ap.add_argument('--block', type=int, default=25, help='rounds per target before moving to the next (round-robin)')
    ap.add_argument('--cgi-requests', type=int, default=300)
    ap.add_argument('--json', default='bench-http.json')
    ap.add_argument('--only', choices=('http', 'cgi'), help='only the client rows (http) or only the CGI rates (cgi)')
    a = ap.parse_args()
    rounds = max(5, min(a.rounds, 5000))
    a.block = max(1, a.block)
    soukd = os.path.join(os.path.abspath(a.build), 'server', 'soukd')
    bench = os.path.abspath(a.client) if a.client else os.path.join(os.path.abspath(a.build), 'client', 'souk-bench-http')
    for f in (soukd, bench):
        if not os.access(f, os.X_OK):
            raise SystemExit('%s is missing: build first (cmake + ninja, see README)' % f)
    tmp = tempfile.mkdtemp(prefix='souk-bench-http-')
    soukd = copy_as_installed(soukd, os.path.join(tmp, 'soukd'))
    os.environ['SOUKD'] = soukd
    import harness  # noqa: E402  (needs SOUKD)
    import http_harness as hh  # noqa: E402

    root = os.path.join(tmp, 'served')
    os.mkdir(root)
    with open(os.path.join(root, 'big.bin'), 'wb') as f:
        f.write(os.urandom(16 << 20))
    with open(os.path.join(root, 'one-mib.bin'), 'wb') as f:
        f.write(os.urandom(1 << 20))
    soukd_http = nginx = fcgi_nginx = fcgi_apache = deb_nginx = deb_apache = proxy_nginx = None
    results = {'rounds': rounds, 'readv': '64 x 4 KiB scattered over 16 MiB', 'get': '1 MiB whole file',
               'rows': [], 'cgi': {}}
    try:
        soukd_http = hh.SoukdHttp(root, extra=['-q']).start()
        nginx = hh.Nginx(root).start()
        sockets = hh.socket_dir(tmp)
        fcgi_nginx = hh.SoukdFastcgi(root, os.path.join(sockets, 'nginx.sock'), extra=['-q']).start()
        fcgi_apache = hh.SoukdFastcgi(root, os.path.join(sockets, 'apache.sock'),
                                      extra=['-q', '--prefix', '/bzr']).start()
        deb_nginx = hh.DebianNginx(root, fcgi_nginx.socket).start()
        deb_apache = hh.DebianApache(fcgi_apache.socket).start()
        # The scale-out site (nginx proxying to soukd --http upstreams), both
        # upstream lines pointed at the one soukd --http above.
        upstream = os.path.join(hh.DEBIAN_DEPLOY, 'nginx', 'sites-available', 'souk-upstream')
        proxy_nginx = hh.DebianNginx(root, None, site=upstream, replacements=lambda port: [
            ('listen 80;', 'listen 127.0.0.1:%d;' % port),
            ('server 127.0.0.1:8081;', 'server 127.0.0.1:%d;' % soukd_http.port),
            ('server 127.0.0.1:8082;', 'server 127.0.0.1:%d;' % soukd_http.port)]).start()
        targets = [
            ('nginx multi-range GET', 'http://127.0.0.1:%d/' % nginx.port),
            ('soukd --http smart POST', 'bzr+http://127.0.0.1:%d/' % soukd_http.port),
            ('soukd --http multi-range GET', 'http://127.0.0.1:%d/' % soukd_http.port),
            ('soukd cgi (nginx) smart POST', 'bzr+http://127.0.0.1:%d/' % nginx.port),
            ('soukd cgi (nginx) GET', 'http://127.0.0.1:%d/cgi/' % nginx.port),
            ('nginx (Debian site) GET', 'http://127.0.0.1:%d/' % deb_nginx.port),
            ('nginx > FastCGI soukd POST', 'bzr+http://127.0.0.1:%d/' % deb_nginx.port),
            ('nginx > proxy soukd --http POST', 'bzr+http://127.0.0.1:%d/' % proxy_nginx.port),
            ('apache > FastCGI soukd POST', 'bzr+http://127.0.0.1:%d/bzr/' % deb_apache.port),
            ('apache > FastCGI soukd GET', 'http://127.0.0.1:%d/bzr/' % deb_apache.port),
        ]
        # Round-robin in blocks of --block rounds, so that a burst of load
        # on this machine (2 cores, shared) lands on every target alike and
        # the ratios of one run compare like with like.
        for op, name in (('readv', 'big.bin'), ('get', 'one-mib.bin')) if a.only != 'cgi' else ():
            us = {label: [] for label, _ in targets}
            got = {}
            for done in range(0, rounds, a.block):
                for label, base in targets:
                    r = run_client(bench, base + name, op, min(a.block, rounds - done))
                    us[label] += r['us']
                    got[label] = r
            for label, _ in targets:
                results['rows'].append({'target': label, 'op': op, 'median_ms': median_ms(us[label]),
                                        'p90_ms': p90_ms(us[label]), 'bytes': got[label]['bytes'],
                                        'requests': got[label]['requests']})
        n = max(10, min(a.cgi_requests, 5000))
        if a.only != 'http':
            results['cgi'] = dict(cgi_times(soukd, root, n), requests=n)
            results['cgi'].update({
                'nginx_fcgiwrap_soukd_cgi_per_s': nginx_cgi_rate(nginx.port, n),
                'nginx_fastcgi_soukd_per_s': nginx_cgi_rate(deb_nginx.port, n),
                'apache_fastcgi_soukd_per_s': nginx_cgi_rate(deb_apache.port, n, '/bzr/.bzr/smart')})
    finally:
        for s in (proxy_nginx, deb_nginx, deb_apache, fcgi_nginx, fcgi_apache, soukd_http, nginx):
            if s is not None:
                s.stop()
        harness.remove_tree(tmp)

    finish(results, a.json)


def write(results, path):
    with open(path, 'w') as f:
        json.dump(results, f, indent=2)
    print('wrote %s' % path)


def finish(results, path):
    ref = {row['op']: row['median_ms'] for row in results['rows'] if row['target'] == 'nginx multi-range GET'}
    for row in results['rows']:
        row['ratio_to_nginx'] = row['median_ms'] / ref[row['op']] if ref.get(row['op']) else None
    print('HTTP benchmark: %d rounds each; readv = %s, get = %s' % (results['rounds'], results['readv'],
                                                                    results['get']))
    print('%-32s %-6s %10s %10s %9s' % ('target', 'op', 'median ms', 'p90 ms', 'x nginx'))
    for row in results['rows']:
        print('%-32s %-6s %10.3f %10.3f %9.2f' % (row['target'], row['op'], row['median_ms'], row['p90_ms'],
                                                   row['ratio_to_nginx']))
    c = results['cgi']
    if not c:
        return write(results, path)
    labels = {'true': '/bin/true (the floor)', 'cat_256k': '/bin/cat of 256 KiB (floor + a reply\'s bytes)',
              'hello': 'soukd cgi: hello', 'readv_64x512_cached': 'soukd cgi: readv 64 x 512 B, shared cache',
              'readv_64x4k': 'soukd cgi: readv 64 x 4 KiB, sendfile'}
    print('CGI requests spawned as a web server does (body to stdin, stdout read to EOF, reaped), '
          'medians of %d interleaved rounds:' % c['requests'])
    print('%-48s %10s %9s' % ('program', 'median ms', 'x floor'))
    for key, label in labels.items():
        print('%-48s %10.3f %9.2f' % (label, c['median_ms'][key], c['ratio_to_floor'][key]))
    print('hello through nginx + fcgiwrap: %.0f req/s' % c['nginx_fcgiwrap_soukd_cgi_per_s'])
    print('FastCGI hello over one keep-alive HTTP connection: nginx > soukd --fastcgi %.0f req/s, '
          'apache > soukd --fastcgi %.0f req/s' % (c['nginx_fastcgi_soukd_per_s'], c['apache_fastcgi_soukd_per_s']))
    write(results, path)


if __name__ == '__main__':
    main()
