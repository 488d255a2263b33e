"""Access control (docs/access-control.md) over every carrier, with the
real peers: the real `brz push` / `brz branch` against

* bzr:// and soukd's own HTTP (one soukd serving both; no users there, so
  every write is anonymous: allowed on bzr:// as by `brz serve
  --allow-writes`, on HTTP only with --allow-anonymous-writes);
* nginx with auth_basic (an htpasswd file made here) in front of soukd as a
  FastCGI responder and as a CGI program through fcgiwrap, REMOTE_USER
  from nginx's $remote_user;
* a private sshd whose authorized_keys runs soukd as a forced command,
  with and without `--user`.

The served root: pub/ a shared repository exported by its
.bzr/souk-export-ok, holding pub/proj (a branch), pub/team/ (writers:
alice) and pub/frozen/ (read-only); secret/proj a branch under no marker.
Every soukd runs with --export-all=false, so secret/ must look exactly
like a path that does not exist. Each refusal must be in the access log
with who, what and why. A peer that cannot start fails the test.
"""

import os
import pwd
import shutil
import subprocess
import unittest

import harness
import http_harness as hh
from harness import BrzEnv, make_tempdir, remove_tree, stop_process

TMP = ENV = SRC = ROOT = None
PASSWORD = 'souk-secret'
RULES = ['--allow-writes', '--export-all=false', '--writers=/pub/team=alice', '--read-only=/pub/frozen']


def setUpModule():
    global TMP, ENV, SRC, ROOT
    harness.require_server('soukd')
    TMP = make_tempdir('souk-acl-')
    try:
        ENV = BrzEnv(os.path.join(TMP, 'client'))
        SRC = os.path.join(TMP, 'src')
        r = ENV.run(['init', '-q', SRC])
        if r.rc != 0:
            raise harness.HarnessError(r.describe())
        with open(os.path.join(SRC, 'hello.txt'), 'w') as f:
            f.write('hello\n')
        ROOT = os.path.join(TMP, 'served')
        os.makedirs(os.path.join(ROOT, 'secret'))
        for args, cwd in ((['add', '-q'], SRC), (['commit', '-q', '-m', 'one'], SRC),
                          (['init-repo', '-q', '--no-trees', os.path.join(ROOT, 'pub')], None),
                          (['branch', '-q', SRC, os.path.join(ROOT, 'pub', 'proj')], None),
                          (['branch', '-q', SRC, os.path.join(ROOT, 'secret', 'proj')], None)):
            r = ENV.run(args, cwd=cwd)
            if r.rc != 0:
                raise harness.HarnessError(r.describe())
        open(os.path.join(ROOT, 'pub', '.bzr', 'souk-export-ok'), 'w').close()
        for d in ('team', 'frozen', 'open'):
            os.mkdir(os.path.join(ROOT, 'pub', d))
        hh.make_world_readable(ROOT)
    except BaseException:
        remove_tree(TMP)
        raise


def tearDownModule():
    remove_tree(TMP)


def read_access(path):
    """The access log's lines, split into their eleven fields."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.strip()]


def brz_error(r, path):
    """What brz told its user, with `path` written PATH (without -Dhpss's
    summary lines, which name objects by address)."""
    text = r.stderr.decode('utf-8', 'replace').replace(path, 'PATH')
    return ''.join(ln for ln in text.splitlines(True) if 'HPSS calls' not in ln)


class AccessMixin:
    """Assertions shared by every carrier."""

    def push(self, url, expect_ok, *needles):
        r = ENV.run(['push', '-d', SRC, url])
        text = r.stderr.decode('utf-8', 'replace')
        if expect_ok:
            self.assertEqual(r.rc, 0, r.describe())
        else:
            self.assertNotEqual(r.rc, 0, r.describe())
            for n in needles:
                self.assertIn(n, text, r.describe())
        return text

    def assert_invisible(self, base, name='secret/proj', missing='pub/nothing'):
        """brz branch of an unexported branch fails exactly as of a missing one."""
        outs = []
        for path in (name, missing):
            target = os.path.join(self.tmp, 'copy-' + path.replace('/', '-'))
            r = ENV.run(['branch', base + '/' + path, target])
            self.assertNotEqual(r.rc, 0, r.describe())
            self.assertFalse(os.path.exists(target))
            outs.append(brz_error(r, path))
        self.assertEqual(outs[0], outs[1])
        self.assertIn('Not a branch', outs[0])
        # The exported branch next to it is served.
        target = os.path.join(self.tmp, 'copy-pub-proj-%d' % len(os.listdir(self.tmp)))
        r = ENV.run(['branch', base + '/pub/proj', target])
        self.assertEqual(r.rc, 0, r.describe())

    def assert_logged(self, log, carrier, user, result, path_part=None, error_log=None, why=None):
        """An access-log line CARRIER PEER USER PROTO VERB PATH RESULT ...
        with this carrier, user and result, and PATH containing path_part
        (bzr://, ssh: paths from the root). Over HTTP a path is relative to
        the URL's directory, so the root-relative path and the reason are
        looked for in the error log's refusal line instead."""
        lines = read_access(log)
        hits = [ln for ln in lines if ln[1] == carrier and ln[3] == user and ln[7] == result and
                (error_log is not None or path_part is None or path_part in ln[6])]
        self.assertTrue(hits, 'no %s %s %s %s line in:\n%s' % (carrier, user, result, path_part,
                                                               '\n'.join(' '.join(ln) for ln in lines[-30:])))
        print('\n  %s: %s' % (carrier, ' '.join(hits[0])), end='')
        if error_log is not None:
            with open(error_log, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
            who = '' if user == '-' else 'user %s ' % user
            verb = 'hidden' if result == 'Unexported' else 'refused'
            want = [ln for ln in text.splitlines() if who in ln and ' /%s %s: ' % (path_part, verb) in ln and
                    (why is None or why in ln)]
            self.assertTrue(want, 'no "%s... /%s %s: %s" in the error log:\n%s'
                            % (who, path_part, verb, why, text[-3000:]))
            print('\n  %s error log: %s' % (carrier, want[0]), end='')
        return hits[0]


class TestBzrAndOwnHttp(AccessMixin, unittest.TestCase):
    """bzr:// and soukd's own HTTP have no users: bzr:// writes as `brz
    serve --allow-writes` does, HTTP only with --allow-anonymous-writes;
    the path rules apply to both."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-acl-tcp-')
        cls.log = os.path.join(cls.tmp, 'access.log')
        cls.anon_log = os.path.join(cls.tmp, 'anon-access.log')
        cls.srv = cls.anon = None
        try:
            cls.srv = hh.SoukdHttp(ROOT, with_tcp=True, extra=RULES + ['--access-log', cls.log]).start()
            cls.anon = hh.SoukdHttp(ROOT, with_tcp=True, extra=RULES + ['--allow-anonymous-writes',
                                                                        '--access-log', cls.anon_log]).start()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        for s in (cls.srv, cls.anon):
            if s is not None:
                s.stop()
        remove_tree(cls.tmp)

    def test_anonymous_push(self):
        # bzr:// keeps `brz serve --allow-writes`'s meaning: whoever reaches it writes.
        self.push('bzr://127.0.0.1:%d/pub/open/tcp-anon' % self.srv.tcp_port, True)
        self.assertTrue(os.path.isdir(os.path.join(ROOT, 'pub', 'open', 'tcp-anon', '.bzr')))
        # soukd's own HTTP has no users: no writes without the opt-in.
        self.push('bzr+' + self.srv.base + '/pub/open/http-anon', False, 'Permission denied', 'authenticated user')
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'pub', 'open', 'http-anon')))
        self.assert_logged(self.log, 'http', '-', 'PermissionDenied', 'pub/open/http-anon', self.srv.log_path,
                           'writes need an authenticated user')

    def test_opt_in_anonymous_push_and_rules(self):
        tcp = 'bzr://127.0.0.1:%d' % self.anon.tcp_port
        self.push(tcp + '/pub/open/anon-ok', True)
        self.assertTrue(os.path.isdir(os.path.join(ROOT, 'pub', 'open', 'anon-ok', '.bzr')))
        self.push('bzr+' + self.anon.base + '/pub/open/anon-http-ok', True)
        # Anonymous is in no writers list, and nobody writes under read-only.
        self.push(tcp + '/pub/team/anon', False, 'Permission denied', 'may not write under /pub/team')
        self.push(tcp + '/pub/frozen/x', False, 'Permission denied', 'read-only')
        self.assertEqual(os.listdir(os.path.join(ROOT, 'pub', 'team')), [])
        self.assertEqual(os.listdir(os.path.join(ROOT, 'pub', 'frozen')), [])
        self.assert_logged(self.anon_log, 'tcp', '-', 'PermissionDenied', 'pub/frozen/x')

    def test_unexported_is_invisible(self):
        self.assert_invisible('bzr://127.0.0.1:%d' % self.srv.tcp_port)
        self.assert_invisible('bzr+' + self.srv.base)
        self.assert_logged(self.log, 'tcp', '-', 'Unexported', 'secret/proj')
        self.assert_logged(self.log, 'http', '-', 'Unexported', 'secret/proj', self.srv.log_path)
        # A plain GET of an unexported file is the 404 of a missing one.
        a = hh.http_request(self.srv.base, 'GET', '/secret/proj/.bzr/branch-format')
        b = hh.http_request(self.srv.base, 'GET', '/secret/nothing/.bzr/branch-format')
        self.assertEqual((a.status, a.body), (b.status, b.body))
        self.assertEqual(a.status, 404)
        self.assertEqual(hh.http_request(self.srv.base, 'GET', '/pub/proj/.bzr/branch-format').status, 200)


NGINX_CONF = """
user %(user)s;
worker_processes 1;
daemon off;
pid %(run)s/nginx.pid;
error_log %(run)s/nginx-error.log warn;
events { worker_connections 64; }
http {
    access_log %(run)s/nginx-access.log;
    client_body_temp_path %(run)s/client_body;
    fastcgi_temp_path %(run)s/fastcgi_temp;
    proxy_temp_path %(run)s/proxy_temp;
    uwsgi_temp_path %(run)s/uwsgi_temp;
    scgi_temp_path %(run)s/scgi_temp;
    client_max_body_size 64m;
    server {
        listen 127.0.0.1:%(port)d;
%(locations)s
    }
}
"""

LOCATION = """
        location ~ ^/%(mode)s/%(carrier)s(?<rest>/.*)$ {
            %(auth)s
            fastcgi_pass unix:%(socket)s;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param SERVER_PROTOCOL   $server_protocol;
            fastcgi_param REQUEST_METHOD    $request_method;
            fastcgi_param CONTENT_LENGTH    $content_length;
            fastcgi_param CONTENT_TYPE      $content_type;
            fastcgi_param REMOTE_ADDR       $remote_addr;
            fastcgi_param REMOTE_PORT       $remote_port;
            fastcgi_param REMOTE_USER       $remote_user;
            fastcgi_param REQUEST_URI       $rest;
            fastcgi_param PATH_INFO         $rest;
%(extra)s
        }
"""


class TestNginxBasicAuth(AccessMixin, unittest.TestCase):
    """nginx auth_basic -> REMOTE_USER -> soukd over FastCGI and CGI."""

    @classmethod
    def setUpClass(cls):
        hh.require(hh.NGINX, hh.FCGIWRAP, hh.OPENSSL)
        cls.tmp = make_tempdir('souk-acl-nginx-')
        cls.fcgi = cls.wrap = cls.nginx = None
        try:
            t = cls.tmp
            hh.make_world_readable(t)
            cls.fcgi_log = os.path.join(t, 'fcgi-access.log')
            cls.cgi_log = os.path.join(t, 'cgi-access.log')
            htpasswd = os.path.join(t, 'htpasswd')
            with open(htpasswd, 'w') as f:
                for user in ('alice', 'bob'):
                    h = subprocess.run([hh.OPENSSL, 'passwd', '-apr1', PASSWORD], capture_output=True,
                                       check=True, timeout=30).stdout.decode().strip()
                    f.write('%s:%s\n' % (user, h))
            sock = os.path.join(t, 'soukd.sock')
            cls.fcgi = hh.SoukdFastcgi(ROOT, sock, extra=RULES + ['--access-log', cls.fcgi_log]).start()
            wrap_sock = os.path.join(t, 'fcgiwrap.sock')
            wrap_out = os.path.join(t, 'fcgiwrap.log')
            # A CGI's stderr goes through fcgiwrap to nginx's error log.
            cls.cgi_errors = os.path.join(t, 'nginx-error.log')
            with open(wrap_out, 'wb') as out:
                cls.wrap = subprocess.Popen([hh.FCGIWRAP, '-f', '-c', '2', '-s', 'unix:' + wrap_sock],
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd=t,
                                            preexec_fn=harness._pdeathsig, start_new_session=True)
            harness.wait_until(lambda: os.path.exists(wrap_sock) or cls.wrap.poll() is not None, 20)
            if not os.path.exists(wrap_sock):
                raise harness.HarnessError('fcgiwrap did not start: ' + harness.read_tail(wrap_out))
            cgi_extra = '\n'.join('            fastcgi_param %s %s;' % kv for kv in (
                ('SCRIPT_FILENAME', harness.soukd_path()), ('SOUK_ROOT', ROOT), ('SOUK_ALLOW_WRITES', '1'),
                ('SOUK_OPTIONS', '"%s --access-log=%s"' % (' '.join(RULES[1:]), cls.cgi_log))))
            locations = ''
            for mode in ('auth', 'anon'):
                auth = ('auth_basic "souk"; auth_basic_user_file %s;' % htpasswd) if mode == 'auth' else ''
                locations += LOCATION % {'mode': mode, 'carrier': 'fcgi', 'auth': auth, 'socket': sock,
                                         'extra': ''}
                locations += LOCATION % {'mode': mode, 'carrier': 'cgi', 'auth': auth, 'socket': wrap_sock,
                                         'extra': cgi_extra}

            def spawn(ports):
                cls.port, = ports
                conf = os.path.join(t, 'nginx.conf')
                with open(conf, 'w') as f:
                    f.write(NGINX_CONF % {'user': pwd.getpwuid(os.geteuid()).pw_name, 'run': t,
                                          'port': cls.port, 'locations': locations})
                with open(os.path.join(t, 'nginx.out'), 'wb') as log:
                    cls.nginx = subprocess.Popen([hh.NGINX, '-p', t, '-c', conf, '-e',
                                                  os.path.join(t, 'nginx-error.log')],
                                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=t,
                                                 preexec_fn=harness._pdeathsig)
                return cls.nginx

            hh.start_on_free_ports('nginx', 1, spawn,
                                   lambda: harness.read_tail(os.path.join(t, 'nginx-error.log')))
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.nginx)
        if cls.wrap is not None:
            stop_process(cls.wrap)
            try:
                os.killpg(cls.wrap.pid, 15)
            except ProcessLookupError:
                pass
        if cls.fcgi is not None:
            cls.fcgi.stop()
        remove_tree(cls.tmp)

    def url(self, mode, carrier, path, user=None):
        cred = '%s:%s@' % (user, PASSWORD) if user else ''
        return 'bzr+http://%s127.0.0.1:%d/%s/%s/%s' % (cred, self.port, mode, carrier, path)

    def test_fastcgi_writers(self):
        self.push(self.url('anon', 'fcgi', 'pub/team/anon'), False, 'Permission denied', 'authenticated user')
        self.push(self.url('auth', 'fcgi', 'pub/team/bob', 'bob'), False, 'Permission denied',
                  'user bob may not write under /pub/team')
        self.push(self.url('auth', 'fcgi', 'pub/team/alice', 'alice'), True)
        self.assertTrue(os.path.isdir(os.path.join(ROOT, 'pub', 'team', 'alice', '.bzr')))
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'pub', 'team', 'bob')))
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'pub', 'team', 'anon')))
        err = self.fcgi.log_path
        self.assert_logged(self.fcgi_log, 'fastcgi', '-', 'PermissionDenied', 'pub/team/anon', err,
                           'writes need an authenticated user')
        self.assert_logged(self.fcgi_log, 'fastcgi', 'bob', 'PermissionDenied', 'pub/team/bob', err,
                           'user bob may not write under /pub/team')
        self.assert_logged(self.fcgi_log, 'fastcgi', 'alice', 'ok')

    def test_fastcgi_unexported_is_invisible(self):
        self.assert_invisible(self.url('auth', 'fcgi', '', 'alice').rstrip('/'))
        self.assert_logged(self.fcgi_log, 'fastcgi', 'alice', 'Unexported', 'secret/proj', self.fcgi.log_path)

    def test_cgi_writers(self):
        self.push(self.url('anon', 'cgi', 'pub/open/anon'), False, 'Permission denied', 'authenticated user')
        self.push(self.url('auth', 'cgi', 'pub/frozen/alice', 'alice'), False, 'Permission denied', 'read-only')
        self.push(self.url('auth', 'cgi', 'pub/team/alice-cgi', 'alice'), True)
        self.assertTrue(os.path.isdir(os.path.join(ROOT, 'pub', 'team', 'alice-cgi', '.bzr')))
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'pub', 'open', 'anon')))
        self.assert_logged(self.cgi_log, 'cgi', '-', 'PermissionDenied', 'pub/open/anon', self.cgi_errors,
                           'writes need an authenticated user')
        self.assert_logged(self.cgi_log, 'cgi', 'alice', 'PermissionDenied', 'pub/frozen/alice', self.cgi_errors,
                           'read-only')


class TestSshForcedCommand(AccessMixin, unittest.TestCase):
    """sshd runs soukd as the key's forced command; the user is --user, else
    the SSH account (USER)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = make_tempdir('souk-acl-ssh-')
        cls.ssh = None
        try:
            cls.ssh = harness.SshServer().start()
            cls.env = BrzEnv(os.path.join(cls.tmp, 'client'), ssh=cls.ssh, remote=harness.soukd_path())
            cls.log = os.path.join(cls.tmp, 'access.log')
            with open(cls.ssh.client_key + '.pub') as f:
                cls.pubkey = f.read().strip()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.ssh is not None:
            cls.ssh.stop()
        remove_tree(cls.tmp)

    def forced(self, *extra):
        """authorized_keys: the test key runs soukd with these options,
        whatever the client asks for (sshd reads the file at each login)."""
        cmd = ' '.join([harness.soukd_path(), 'serve', '--inet', '--directory=' + ROOT] + RULES +
                       ['--access-log=' + self.log] + list(extra))
        with open(self.ssh.authorized_keys, 'w') as f:
            f.write('command="%s",restrict %s\n' % (cmd, self.pubkey))

    def url(self, path):
        return 'bzr+ssh://%s@127.0.0.1:%d/%s' % (self.ssh.user, self.ssh.port, path)

    def push_as(self, url, expect_ok, *needles):
        r = self.env.run(['push', '-d', SRC, url])
        if expect_ok:
            self.assertEqual(r.rc, 0, r.describe())
        else:
            self.assertNotEqual(r.rc, 0, r.describe())
            for n in needles:
                self.assertIn(n, r.stderr.decode('utf-8', 'replace'), r.describe())

    def test_user_from_forced_command_and_account(self):
        # No --user: the account sshd runs us as (USER), not a writer of /pub/team.
        self.forced()
        account = self.ssh.user
        self.push_as(self.url('pub/team/ssh-account'), False, 'Permission denied',
                     'user %s may not write under /pub/team' % account)
        self.assertFalse(os.path.exists(os.path.join(ROOT, 'pub', 'team', 'ssh-account')))
        self.assert_logged(self.log, 'inet', account, 'PermissionDenied', 'pub/team/ssh-account')
        # One key per user: this key's forced command says alice.
        self.forced('--user', 'alice')
        self.push_as(self.url('pub/team/ssh-alice'), True)
        self.assertTrue(os.path.isdir(os.path.join(ROOT, 'pub', 'team', 'ssh-alice', '.bzr')))
        self.assert_logged(self.log, 'inet', 'alice', 'ok', 'pub/team/ssh-alice')

    def test_unexported_is_invisible(self):
        self.forced('--user', 'alice')
        outs = []
        for path in ('secret/proj', 'pub/nothing'):
            target = os.path.join(self.tmp, 'copy-' + path.replace('/', '-'))
            r = self.env.run(['branch', self.url(path), target])
            self.assertNotEqual(r.rc, 0, r.describe())
            outs.append(brz_error(r, path))
        self.assertEqual(outs[0], outs[1])
        self.assertIn('Not a branch', outs[0])
        self.assert_logged(self.log, 'inet', 'alice', 'Unexported', 'secret/proj')


if __name__ == '__main__':
    unittest.main()
