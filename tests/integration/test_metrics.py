"""Metrics (docs/metrics.md): smart requests over HTTP and CGI are counted
in the shared segment like every other carrier's, `soukd stats
--prometheus` names them by the conventions with the root label, and a
user in soukd's group who is not soukd's user can read the counters.

No brz: raw requests, a few seconds.
"""

import os
import subprocess
import unittest

import harness
import http_harness as hh
from harness import make_tempdir, remove_tree


class Metrics(unittest.TestCase):

    def setUp(self):
        harness.require_server('soukd')
        self.tmp = make_tempdir('souk-metrics-')
        os.chmod(self.tmp, 0o755)  # the group reader below must reach the root
        self.root = os.path.join(self.tmp, 'root')
        os.makedirs(os.path.join(self.root, 'trunk'))
        with open(os.path.join(self.root, 'trunk', 'f'), 'wb') as f:
            f.write(b'hello')

    def tearDown(self):
        harness.remove_stats_segment(os.path.realpath(self.root))
        remove_tree(self.tmp)

    def test_http_and_cgi_requests_are_counted(self):
        srv = hh.SoukdHttp(self.root).start()
        try:
            for _ in range(2):
                r = hh.smart_post(srv.base, '/trunk/.bzr/smart', harness.v3_request([b'get', b'f']))
                self.assertEqual(r.status, 200)
        finally:
            srv.stop()
        body = harness.v3_request([b'stat', b'f'])
        env = hh.cgi_env(self.root, REQUEST_METHOD='POST', PATH_INFO='/trunk/.bzr/smart',
                         CONTENT_LENGTH=str(len(body)))
        ans, rc, stderr, _ = hh.run_cgi(env, stdin=body, args=['--access-log', 'off'])
        self.assertEqual((ans.status, rc), (200, 0), stderr)

        k = harness.soukd_stats(self.root)['counters']
        self.assertEqual(k['requests'], 3, k)
        self.assertEqual(k['verbs'], {'get': 2, 'stat': 1}, k)
        self.assertEqual(sum(k['request_latency_us']['vfs_read'][b] for b in k['request_latency_us']['vfs_read']
                             if b != 'sum'), 3, k)

        root = os.path.realpath(self.root)
        p = subprocess.run([harness.soukd_path(), 'stats', '--directory=' + self.root, '--prometheus'],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        text = p.stdout.decode()
        self.assertIn('\nsoukd_requests_total{root="%s"} 3\n' % root, text)
        self.assertIn('soukd_request_duration_seconds_count{root="%s",family="vfs_read"} 3\n' % root, text)
        self.assertIn('soukd_build_info{root="%s",version="' % root, text)
        print('\n' + '\n'.join(l for l in text.splitlines()
                               if l.startswith(('soukd_build_info', 'soukd_requests_total', 'soukd_bytes_',
                                                'soukd_request_seconds_total'))
                               or ('family="vfs_read"' in l and ('le="0.0005"' in l or '_sum' in l
                                                                 or '_count' in l or '+Inf' in l))))

        # A user in soukd's group (here gid 0), not soukd's user: the counters,
        # read-only, and a note saying so.
        p = subprocess.run(['setpriv', '--reuid=65534', '--regid=0', '--clear-groups',
                            harness.soukd_path(), 'stats', '--directory=' + self.root, '--prometheus', '--user=root'],
                           capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn('\nsoukd_requests_total{root="%s"} 3\n' % root, p.stdout.decode())
        self.assertIn(b'read-only access', p.stderr)
        # Another user outside the group reads nothing.
        p = subprocess.run(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups',
                            harness.soukd_path(), 'stats', '--directory=' + self.root, '--user=0'],
                           capture_output=True, timeout=30)
        self.assertIn(b'Permission denied', p.stderr)


if __name__ == '__main__':
    unittest.main()
