#!/usr/bin/python3
"""What a Breezy user does over a network: soukd against `brz serve`.

Run by scripts/bench-workflows. A benchmark, never a test: it prints a
table per round-trip time and writes JSON with every sample.

* A user-space TCP proxy on 127.0.0.1 (threads) sits between `brz` and the
  server under test and holds every chunk for RTT/2 in each direction, in
  order, so a request and its answer cost one RTT; it counts the bytes each
  way. Every loop ends (EOF, error, the stop event or the proxy's lifetime),
  every wait has a timeout.
* A repository generated from a fixed seed with the Breezy API: text files
  in a dozen folders, binary files, renames, moves, deletions and a feature
  branch that diverges and is merged back (`--revisions` mainline
  revisions plus five more kept back for `push (existing)`). History,
  contents and revision ids follow the seed; the packs' names and byte
  layout do not (Breezy's choice), so bytes moved can differ a little
  between two invocations, never between the runs of one.
* Workflows (branch, branch -r N then pull, log, log -v, checkout, a
  lightweight checkout, push to a new location, push five revisions to an
  existing branch, commit in a bound checkout, cat, info -v, annotate), each against
  `soukd serve` and `brz serve --allow-writes` over bzr:// through the
  proxy, soukd and brz serve interleaved (A B A B ...), the served tree
  reset to the same state before every run, `--reps` runs each.
* Measured per step: the brz command's wall time, its smart requests (the
  `HPSS calls: N` summaries of `brz -Dhpss`, as tests/integration/harness.py
  counts them), bytes each way (the proxy) and the server's CPU (utime +
  stime from /proc/PID/stat, children included, around the step). For
  soukd, the growth of `soukd stats` counters (unknown verbs, failures) too.

Only loopback traffic; every process started here is stopped by PID.
"""
import argparse
import collections
import datetime
import hashlib
import json
import os
import platform
import queue
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, 'tests', 'integration'))
import harness  # noqa: E402
from harness import BrzEnv, Server, make_tempdir, remove_tree  # noqa: E402

PROXY_LIFETIME = 4 * 3600.0     # the proxy stops by itself after this long
POLL = 0.2                      # how often proxy threads look at the stop event
SEND_TIMEOUT = 120.0            # one sendall on a proxied socket


# ---------------------------------------------------------------------------
# The latency-injecting proxy

class DelayProxy:
    """127.0.0.1:port -> 127.0.0.1:target_port, each chunk held `delay` s.

    One reader and one writer thread per direction and connection: the
    reader stamps each chunk with (arrival + delay) and queues it, the
    writer sends it when due, so order is kept and the link is pipelined
    (a delay, not a bandwidth cap). `delay` may change between runs.
    """

    def __init__(self, target_port, lifetime=PROXY_LIFETIME):
        self.target_port = target_port
        self.delay = 0.0
        self.up = 0        # client -> server bytes
        self.down = 0      # server -> client bytes
        self.connections = 0
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = time.monotonic() + lifetime
        self._threads = []
        self._socks = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(('127.0.0.1', 0))
        self.lsock.listen(64)
        self.lsock.settimeout(POLL)
        self.port = self.lsock.getsockname()[1]
        self._spawn(self._accept_loop)

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        with self._lock:
            self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        return t

    def _running(self):
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def counters(self):
        with self._lock:
            return self.up, self.down, self.connections

    def _accept_loop(self):
        while self._running():
            try:
                csock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            try:
                ssock = socket.create_connection(('127.0.0.1', self.target_port), timeout=10)
            except OSError as e:
                self.errors.append('connect to server: %s' % e)
                csock.close()
                continue
            for s in (csock, ssock):
                s.settimeout(SEND_TIMEOUT)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections += 1
                self._socks += [csock, ssock]
            self._spawn(self._serve_conn, csock, ssock)
        self._stop.set()

    def _serve_conn(self, csock, ssock):
        dead = threading.Event()
        pumps = []
        for src, dst, up in ((csock, ssock, True), (ssock, csock, False)):
            q = queue.Queue()
            pumps.append(self._spawn(self._reader, src, q, up, dead))
            pumps.append(self._spawn(self._writer, dst, q, dead))
        deadline = self._deadline
        for t in pumps:
            while t.is_alive() and time.monotonic() < deadline:
                t.join(POLL)
                if self._stop.is_set():
                    dead.set()
        for s in (csock, ssock):
            try:
                s.close()
            except OSError:
                pass
        with self._lock:
            self._socks = [s for s in self._socks if s is not csock and s is not ssock]

    def _reader(self, src, q, up, dead):
        while self._running() and not dead.is_set():
            try:
                ready, _, _ = select.select([src], [], [], POLL)
                if not ready:
                    continue
                data = src.recv(65536)
            except OSError:
                data = b''
            now = time.monotonic()
            if not data:
                q.put((now + self.delay, None))
                return
            with self._lock:
                if up:
                    self.up += len(data)
                else:
                    self.down += len(data)
            q.put((now + self.delay, data))
        q.put((time.monotonic(), None))

    def _writer(self, dst, q, dead):
        while self._running() and not dead.is_set():
            try:
                due, data = q.get(timeout=POLL)
            except queue.Empty:
                continue
            wait = due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            if data is None:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            try:
                dst.sendall(data)
            except OSError:
                dead.set()
                return

    def stop(self):
        self._stop.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        with self._lock:
            threads = list(self._threads)
            socks = list(self._socks)
        deadline = time.monotonic() + 10
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for s in socks:
            try:
                s.close()
            except OSError:
                pass


# ---------------------------------------------------------------------------
# The generated repository

GENERATE = r'''
import json, os, random, sys
import breezy
path, seed, mainline, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rnd = random.Random(seed)
SYL = ['ka', 'lo', 'mi', 'ne', 'ru', 'ta', 'vo', 'zi', 'pe', 'so', 'da', 'fu', 'gi', 'ho', 'ju']
WORDS = sorted(set(''.join(rnd.choice(SYL) for _ in range(rnd.randint(1, 4))) for _ in range(600)))
DIRS = ['src/core', 'src/net', 'src/util', 'src/ui', 'src/db', 'docs', 'tests', 'tests/data',
        'tools', 'lib/ext', 'examples', 'assets/img']
FEATURE_DIRS = ('feature/', 'docs/api/')   # only the feature branch touches these before the merge
EXT = ['.c', '.h', '.py', '.txt', '.md', '.cfg']
state = {'files': {}, 'n': 0, 'renames': 0, 'moves': 0, 'deletes': 0, 'adds': 0, 'revs': 0}

def line():
    return ' '.join(rnd.choice(WORDS) for _ in range(rnd.randint(3, 12))) + '\n'

def text(n):
    return ''.join(line() for _ in range(n)).encode()

def write(rel, data):
    full = os.path.join(wt_path(), rel)
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, 'wb') as f:
        f.write(data)

CUR = {}
def wt_path():
    return CUR['path']

def new_file(folder, binary=False):
    state['n'] += 1
    if binary:
        rel = '%s/%s%d.%s' % (folder, rnd.choice(WORDS), state['n'], rnd.choice(['png', 'bin', 'gz']))
        write(rel, rnd.randbytes(rnd.randint(2048, 48 * 1024)))
    else:
        rel = '%s/%s%d%s' % (folder, rnd.choice(WORDS), state['n'], rnd.choice(EXT))
        write(rel, text(rnd.randint(10, 300)))
    state['files'][rel] = binary
    return rel

def edit_text(rel):
    full = os.path.join(wt_path(), rel)
    with open(full, 'rb') as f:
        lines = f.read().decode().splitlines(True)
    for _ in range(rnd.randint(1, 6)):
        op = rnd.random()
        i = rnd.randint(0, max(0, len(lines) - 1))
        if op < 0.5 and lines:
            lines[i] = line()
        elif op < 0.8:
            lines[i:i] = [line() for _ in range(rnd.randint(1, 15))]
        elif len(lines) > 5:
            del lines[i:i + rnd.randint(1, 4)]
    write(rel, ''.join(lines).encode())

def edit_binary(rel):
    full = os.path.join(wt_path(), rel)
    with open(full, 'rb') as f:
        data = bytearray(f.read())
    at = rnd.randint(0, max(0, len(data) - 512))
    data[at:at + 512] = rnd.randbytes(512)
    write(rel, bytes(data))

def pick(pred):
    names = sorted(r for r in state['files'] if pred(r))
    return rnd.choice(names) if names else None

def step(wt, i, allowed):
    """One revision's changes on `wt`, touching only names allowed(name)."""
    added = []
    for _ in range(rnd.randint(2, 6)):
        rel = pick(lambda r: allowed(r) and not state['files'][r])
        if rel:
            edit_text(rel)
    if i % 4 == 0:
        for _ in range(rnd.randint(1, 3)):
            folder = CUR['folders'][rnd.randrange(len(CUR['folders']))]
            added.append(new_file(folder, binary=(rnd.random() < 0.15)))
    if i % 9 == 0:
        rel = pick(lambda r: allowed(r) and state['files'][r])
        if rel:
            edit_binary(rel)
    if i % 6 == 3:   # rename in place
        rel = pick(lambda r: allowed(r) and r not in added)
        if rel:
            d, base = rel.rsplit('/', 1)
            stem, ext = os.path.splitext(base)
            new = '%s/%s_%s%s' % (d, stem, rnd.choice(WORDS), ext)
            if new not in state['files']:
                wt.rename_one(rel, new)
                state['files'][new] = state['files'].pop(rel)
                state['renames'] += 1
    if i % 10 == 7:  # move to another folder
        rel = pick(lambda r: allowed(r) and r not in added)
        folders = [f for f in CUR['folders'] if allowed(f + '/x') and wt.is_versioned(f)]
        if rel and folders:
            to = rnd.choice(folders)
            new = to + '/' + rel.rsplit('/', 1)[1]
            if new not in state['files'] and new != rel:
                wt.rename_one(rel, new)
                state['files'][new] = state['files'].pop(rel)
                state['moves'] += 1
    if i % 13 == 5:  # delete
        rel = pick(lambda r: allowed(r) and r not in added)
        if rel:
            wt.remove([rel], keep_files=False)
            state['files'].pop(rel)
            state['deletes'] += 1
    if added:
        wt.smart_add([os.path.join(wt_path(), r) for r in added])
        state['adds'] += len(added)

TS = [1600000000]
def commit(wt, msg, tag):
    TS[0] += rnd.randint(600, 86400)
    state['revs'] += 1
    wt.commit(msg, rev_id=('bench-%s-%04d' % (tag, state['revs'])).encode(), timestamp=TS[0],
              timezone=0, committer='Bench User <bench@example.com>')

with breezy.initialize():
    from breezy.bzr import pack_repo  # noqa: F401 - registers the bzr formats
    from breezy.controldir import ControlDir
    wt = ControlDir.create_standalone_workingtree(path)
    CUR['path'] = path
    CUR['folders'] = DIRS
    for k in range(140):
        new_file(DIRS[k % (len(DIRS) - 1)])
    for k in range(14):
        new_file(rnd.choice(['assets/img', 'tests/data']), binary=True)
    for k in range(12):
        new_file(FEATURE_DIRS[1].rstrip('/'))
    wt.smart_add([path])
    commit(wt, 'Initial import', 'main')
    trunk_only = lambda r: not r.startswith(FEATURE_DIRS)
    branch_at, merge_at = mainline // 3, mainline // 3 + 12
    feature = None
    for i in range(2, mainline + extra + 1):
        if i == branch_at:
            fpath = path + '-feature'
            feature = wt.controldir.sprout(fpath).open_workingtree()
            saved = dict(state['files'])
            CUR['path'], CUR['folders'] = fpath, ['feature', 'feature/sub', 'docs/api']
            for k in range(9):
                step(feature, k + 1, lambda r: r.startswith(FEATURE_DIRS))
                commit(feature, 'feature work %d' % (k + 1), 'feature')
            feature_files = {r: b for r, b in state['files'].items() if r.startswith(FEATURE_DIRS)}
            state['files'] = {r: b for r, b in saved.items() if not r.startswith(FEATURE_DIRS)}
            CUR['path'], CUR['folders'] = path, DIRS
        if i == merge_at and feature is not None:
            wt.merge_from_branch(feature.branch)
            state['files'].update(feature_files)
            commit(wt, 'Merge the feature branch', 'main')
            CUR['folders'] = DIRS + ['feature', 'docs/api']
            continue
        step(wt, i, trunk_only if feature is not None and i < merge_at else (lambda r: True))
        commit(wt, 'change %d: %s' % (i, line().strip()), 'main')
    json.dump({'files': len(state['files']),
               'binary_files': sum(1 for b in state['files'].values() if b),
               'renames': state['renames'], 'moves': state['moves'], 'deletes': state['deletes'],
               'added_later': state['adds'], 'revisions': state['revs'],
               'mainline': wt.branch.revno(), 'feature_branch_revisions': 9,
               'text_files': sorted(r for r, b in state['files'].items() if not b)}, sys.stdout)
'''


def tree_bytes(root):
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def must(env, args, cwd=None):
    r = env.run(args, cwd=cwd, hpss=False)
    if r.rc != 0:
        raise SystemExit('setup failed: ' + r.describe())
    return r


def generate(env, base, seed, mainline, extra):
    """The work tree (mainline + extra revisions) and the served trunk (mainline)."""
    work = os.path.join(base, 'work')
    p = subprocess.run(['/usr/bin/python3', '-c', GENERATE, work, str(seed), str(mainline), str(extra)],
                       env=env.env, capture_output=True, timeout=900)
    if p.returncode != 0:
        raise SystemExit('generating the repository failed:\n' + p.stderr.decode('utf-8', 'replace')[-4000:])
    info = json.loads(p.stdout)
    remove_tree(work + '-feature')
    tip = int(must(env, ['revno', work]).stdout.strip())
    served = tip - extra
    # The served trunk as a pushed branch grows: no tree, a few packs.
    pristine = os.path.join(base, 'pristine')
    os.mkdir(pristine)
    trunk = os.path.join(pristine, 'trunk')
    must(env, ['branch', '-q', '--no-tree', '-r', str(served // 3), work, trunk])
    must(env, ['pull', '-q', '-d', trunk, '-r', str(2 * served // 3), work])
    must(env, ['pull', '-q', '-d', trunk, '-r', str(served), work])
    conf = os.path.join(trunk, '.bzr', 'branch', 'branch.conf')
    with open(conf, 'w') as f:   # drop parent_location (a path outside the served root)
        f.write('')
    # cat: a text file at the tip that changed in many revisions
    r = must(env, ['log', '-q', '-v', '--short', '-r', '1..%d' % served, work])
    counts = collections.Counter()
    known = set(info['text_files'])
    for ln in r.stdout.decode('utf-8', 'replace').splitlines():
        name = ln.strip()
        if name.startswith('M  '):
            name = name[3:].strip()
            if name in known:
                counts[name] += 1
    info['cat_path'] = (counts.most_common(1)[0][0] if counts else sorted(known)[0])
    info['cat_path_changes'] = counts.get(info['cat_path'], 0)
    info.pop('text_files')
    info['served_revno'] = served
    info['work_revno'] = tip
    packs = os.listdir(os.path.join(trunk, '.bzr', 'repository', 'packs'))
    info['served_packs'] = len(packs)
    info['served_repo_bytes'] = tree_bytes(os.path.join(trunk, '.bzr'))
    info['work_tree_bytes'] = tree_bytes(work) - tree_bytes(os.path.join(work, '.bzr'))
    return work, pristine, info


def reset_root(root, pristine):
    """Make root's contents a copy of pristine's, keeping root itself (the
    server holds it open)."""
    for name in os.listdir(root):
        p = os.path.join(root, name)
        if os.path.isdir(p) and not os.path.islink(p):
            remove_tree(p)
        else:
            os.unlink(p)
    for name in os.listdir(pristine):
        shutil.copytree(os.path.join(pristine, name), os.path.join(root, name), symlinks=True)


# ---------------------------------------------------------------------------
# Measuring

def proc_cpu_ticks(pid):
    """utime + stime of pid (all threads), of its reaped children and of its
    live children."""
    def one(p, with_reaped):
        with open('/proc/%d/stat' % p) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        t = int(fields[11]) + int(fields[12])
        if with_reaped:
            t += int(fields[13]) + int(fields[14])
        return t
    total = one(pid, True)
    try:
        tids = os.listdir('/proc/%d/task' % pid)
    except OSError:
        tids = []
    for tid in tids:
        try:
            with open('/proc/%d/task/%s/children' % (pid, tid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                total += one(k, True)
            except OSError:
                pass
    return total


_VERB_RE = re.compile(rb"hpss call[^:]*:\s+\(?b'([^']*)'")
_SUMMARY_RE = re.compile(rb'HPSS calls: (\d+) \((\d+) vfs\)')


def log_verbs(path):
    try:
        with open(path, 'rb') as f:
            log = f.read()
    except OSError:
        return {}, 0
    verbs = collections.Counter(m.decode('utf-8', 'replace') for m in _VERB_RE.findall(log))
    vfs = sum(int(v) for _n, v in _SUMMARY_RE.findall(log))
    return dict(verbs), vfs


def soukd_counters(soukd, root):
    try:
        p = subprocess.run([soukd, 'stats', '--directory=' + root], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=30)
        return json.loads(p.stdout).get('counters', {})
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return {}


# ---------------------------------------------------------------------------
# Workflows: (name, setup(ctx), [(step label, argv builder(ctx), cwd)])

class Ctx:
    def __init__(self, run_dir, url, work, info, env):
        self.dir = run_dir
        self.url = url          # path -> bzr:// URL through the proxy
        self.work = work
        self.info = info
        self.env = env

    def path(self, *p):
        return os.path.join(self.dir, *p)


def setup_src(ctx):
    shutil.copytree(ctx.work, ctx.path('src'), symlinks=True)


def setup_bound(ctx):
    must(ctx.env, ['checkout', '-q', ctx.url('trunk'), ctx.path('bco')])
    co = ctx.path('bco')
    files = []
    for dirpath, dirs, names in os.walk(co):
        dirs[:] = sorted(d for d in dirs if d != '.bzr')
        for n in sorted(names):
            files.append(os.path.join(dirpath, n))
    texts = [f for f in files if f.endswith(('.c', '.h', '.py', '.txt', '.md', '.cfg'))]
    for k, f in enumerate(texts[::max(1, len(texts) // 4)][:4]):
        with open(f, 'ab') as fh:
            fh.write(b'edited in the bound checkout %d\n' % k)
    with open(os.path.join(co, 'src', 'core', 'from_checkout.txt'), 'wb') as fh:
        fh.write(b'a new file committed from a bound checkout\n' * 20)
    must(ctx.env, ['add', '-q', os.path.join('src', 'core', 'from_checkout.txt')], cwd=co)


def workflows(info):
    n = info['served_revno'] // 2
    return [
        ('branch', None, [('branch', lambda c: ['branch', c.url('trunk'), c.path('b')], None)]),
        ('branch -r N then pull', None, [
            ('branch -r %d' % n, lambda c: ['branch', '-r', str(n), c.url('trunk'), c.path('br')], None),
            ('pull', lambda c: ['pull', c.url('trunk')], 'br')]),
        ('log', None, [('log', lambda c: ['log', c.url('trunk')], None)]),
        ('log -v', None, [('log -v', lambda c: ['log', '-v', c.url('trunk')], None)]),
        ('checkout', None, [('checkout', lambda c: ['checkout', c.url('trunk'), c.path('co')], None)]),
        ('checkout --lightweight', None, [
            ('checkout --lightweight',
             lambda c: ['checkout', '--lightweight', c.url('trunk'), c.path('lco')], None)]),
        ('push (new)', setup_src, [('push (new)', lambda c: ['push', '-d', c.path('src'), c.url('new')], None)]),
        ('push (existing)', setup_src, [
            ('push (existing, +5 revisions)', lambda c: ['push', '-d', c.path('src'), c.url('trunk')], None)]),
        ('commit (bound)', setup_bound, [
            ('commit (bound checkout)', lambda c: ['commit', '-m', 'from the bound checkout'], 'bco')]),
        ('cat', None, [('cat', lambda c: ['cat', c.url('trunk/' + c.info['cat_path'])], None)]),
        ('info -v', None, [('info -v', lambda c: ['info', '-v', c.url('trunk')], None)]),
        ('annotate', None, [('annotate', lambda c: ['annotate', c.url('trunk/' + c.info['cat_path'])], None)]),
    ]


class Side:
    """One server under test with its own served root and proxy."""

    def __init__(self, kind, root, soukd):
        self.kind = kind
        self.root = root
        self.soukd = soukd
        self.server = Server(root, allow_writes=True, kind=kind)
        self.proxy = None

    def start(self):
        self.server.start()
        self.proxy = DelayProxy(self.server.port)
        return self

    def url(self, path):
        return 'bzr://127.0.0.1:%d/%s' % (self.proxy.port, path)

    def stop(self):
        if self.proxy:
            self.proxy.stop()
        self.server.stop()


def run_workflow(side, wf, rtt_ms, env, work, info, pristine, scratch, timeout, rep):
    name, setup, steps = wf
    reset_root(side.root, pristine)
    run_dir = os.path.join(scratch, '%s-%d' % (side.kind, rep))
    remove_tree(run_dir)
    os.mkdir(run_dir)
    ctx = Ctx(run_dir, side.url, work, info, env)
    samples = []
    try:
        side.proxy.delay = 0.0
        if setup:
            setup(ctx)
        for label, argv_fn, cwd in steps:
            side.proxy.delay = rtt_ms / 2000.0
            argv = argv_fn(ctx)
            pid = side.server.proc.pid
            before_stats = soukd_counters(side.soukd, side.root) if side.kind == 'soukd' else {}
            up0, down0, conns0 = side.proxy.counters()
            cpu0 = proc_cpu_ticks(pid)
            t0 = time.monotonic()
            r = env.run(argv, cwd=ctx.path(cwd) if cwd else run_dir, timeout=timeout)
            wall = time.monotonic() - t0
            time.sleep(0.05)  # let the server finish its side of the last exchange
            cpu1 = proc_cpu_ticks(pid)
            up1, down1, conns1 = side.proxy.counters()
            after_stats = soukd_counters(side.soukd, side.root) if side.kind == 'soukd' else {}
            side.proxy.delay = 0.0
            verbs, vfs = log_verbs(r.log_path)
            out = re.sub(rb'bzr://127\.0\.0\.1:\d+/', b'bzr://SERVER/', r.stdout)
            sample = {
                'rtt_ms': rtt_ms, 'workflow': name, 'step': label, 'server': side.kind, 'rep': rep,
                'argv': ['brz', '-Dhpss'] + [a.replace(run_dir, '$RUN') for a in argv],
                'rc': r.rc, 'wall_s': round(wall, 4), 'requests': r.hpss_calls, 'vfs_requests': vfs,
                'bytes_up': up1 - up0, 'bytes_down': down1 - down0, 'connections': conns1 - conns0,
                'server_cpu_s': round((cpu1 - cpu0) / os.sysconf('SC_CLK_TCK'), 3),
                'verbs': verbs, 'stdout_sha256': hashlib.sha256(out).hexdigest(),
            }
            if side.kind == 'soukd':
                sample['soukd_unknown_verbs'] = (after_stats.get('unknown_verbs', 0)
                                                 - before_stats.get('unknown_verbs', 0))
                sample['soukd_request_failures'] = (after_stats.get('request_failures', 0)
                                                    - before_stats.get('request_failures', 0))
            if r.rc != 0:
                sample['error'] = (r.stderr[-600:].decode('utf-8', 'replace').strip()
                                   or harness.read_tail(r.log_path, 600))
            samples.append(sample)
            if r.rc != 0:
                break
    finally:
        side.proxy.delay = 0.0
        remove_tree(run_dir)
    return samples


# ---------------------------------------------------------------------------
# Tables

def median(xs):
    return statistics.median(xs) if xs else None


def summarize(samples):
    """{(rtt, step): {server: {...medians}}} in first-seen order."""
    groups = collections.OrderedDict()
    for s in samples:
        key = (s['rtt_ms'], s['step'])
        groups.setdefault(key, {}).setdefault(s['server'], []).append(s)
    out = collections.OrderedDict()
    for key, by in groups.items():
        out[key] = {}
        for server, ss in by.items():
            ok = [s for s in ss if s['rc'] == 0]
            use = ok or ss
            out[key][server] = {
                'n': len(ss), 'failed': len(ss) - len(ok),
                'requests': median([s['requests'] for s in use]),
                'vfs_requests': median([s['vfs_requests'] for s in use]),
                'wall_s': median([s['wall_s'] for s in use]),
                'bytes_up': median([s['bytes_up'] for s in use]),
                'bytes_down': median([s['bytes_down'] for s in use]),
                'server_cpu_s': median([s['server_cpu_s'] for s in use]),
            }
    return out


def fmt_num(x, spec):
    return '-' if x is None else format(x, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def kib(x):
    return None if x is None else x / 1024.0


def table_rows(summary, rtt):
    rows = []
    for (r, step), by in summary.items():
        if r != rtt:
            continue
        s, z = by.get('soukd', {}), by.get('brz', {})
        rows.append((step, s, z))
    return rows


def text_table(summary, rtt):
    head = ('%-30s %6s %6s %6s  %8s %8s %6s  %17s %17s  %6s %6s'
            % ('RTT %d ms' % rtt, 'req', 'req', 'req', 'wall s', 'wall s', 'wall',
               'KiB up/down', 'KiB up/down', 'CPU s', 'CPU s'))
    head2 = ('%-30s %6s %6s %6s  %8s %8s %6s  %17s %17s  %6s %6s'
             % ('workflow step', 'soukd', 'brz', 'ratio', 'soukd', 'brz', 'ratio',
                'soukd', 'brz', 'soukd', 'brz'))
    lines = [head, head2, '-' * len(head2)]
    for step, s, z in table_rows(summary, rtt):
        def updown(d):
            if not d:
                return '-'
            return '%.1f/%.1f' % (kib(d['bytes_up']), kib(d['bytes_down']))
        flag = ''
        if s.get('failed') or z.get('failed'):
            flag = '  FAILED %s/%s' % (s.get('failed', 0), z.get('failed', 0))
        lines.append('%-30s %6s %6s %6s  %8s %8s %6s  %17s %17s  %6s %6s%s' % (
            step[:30], fmt_num(s.get('requests'), '.0f'), fmt_num(z.get('requests'), '.0f'),
            fmt_num(ratio(s.get('requests'), z.get('requests')), '.2f'),
            fmt_num(s.get('wall_s'), '.2f'), fmt_num(z.get('wall_s'), '.2f'),
            fmt_num(ratio(s.get('wall_s'), z.get('wall_s')), '.2f'),
            updown(s), updown(z),
            fmt_num(s.get('server_cpu_s'), '.2f'), fmt_num(z.get('server_cpu_s'), '.2f'), flag))
    return '\n'.join(lines)


def markdown_table(summary, rtt):
    lines = ['| RTT %d ms | requests soukd | requests brz serve | wall s soukd | wall s brz serve '
             '| wall soukd/brz | KiB up/down soukd | KiB up/down brz serve '
             '| server CPU s soukd | server CPU s brz serve |' % rtt,
             '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for step, s, z in table_rows(summary, rtt):
        def updown(d):
            if not d:
                return '-'
            return '%.0f / %.0f' % (kib(d['bytes_up']), kib(d['bytes_down']))
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            step, fmt_num(s.get('requests'), '.0f'), fmt_num(z.get('requests'), '.0f'),
            fmt_num(s.get('wall_s'), '.2f'), fmt_num(z.get('wall_s'), '.2f'),
            fmt_num(ratio(s.get('wall_s'), z.get('wall_s')), '.2f'),
            updown(s), updown(z),
            fmt_num(s.get('server_cpu_s'), '.2f'), fmt_num(z.get('server_cpu_s'), '.2f')))
    return '\n'.join(lines)


def output_differences(samples):
    """Steps whose printed output (URLs normalized) differs between the servers."""
    seen = collections.OrderedDict()
    for s in samples:
        if s['rc'] == 0:
            seen.setdefault(s['step'], {}).setdefault(s['server'], set()).add(s['stdout_sha256'])
    return [step for step, by in seen.items()
            if 'soukd' in by and 'brz' in by and by['soukd'] != by['brz']]


def verb_differences(samples, rtt):
    """Per step where soukd needed more requests: verbs soukd's client sent
    more (+) or fewer (-) times than brz serve's (first rep at this RTT)."""
    out = []
    first = {}
    for s in samples:
        if s['rtt_ms'] == rtt and s['rc'] == 0:
            first.setdefault((s['step'], s['server']), s)
    steps = []
    for (step, _server) in first:
        if step not in steps:
            steps.append(step)
    for step in steps:
        a, z = first.get((step, 'soukd')), first.get((step, 'brz'))
        if not a or not z or a['requests'] <= z['requests']:
            continue
        diff = collections.Counter(a['verbs'])
        diff.subtract(z['verbs'])
        parts = ['%s %+d' % (v, n) for v, n in sorted(diff.items(), key=lambda kv: (-abs(kv[1]), kv[0])) if n]
        extra = ''
        if a.get('soukd_unknown_verbs') or a.get('soukd_request_failures'):
            extra = ' [soukd: %d UnknownMethod, %d failed requests]' % (
                a.get('soukd_unknown_verbs', 0), a.get('soukd_request_failures', 0))
        out.append('%s: soukd %d vs brz serve %d requests; %s%s'
                   % (step, a['requests'], z['requests'], ', '.join(parts) or 'same verbs', extra))
    return out


# ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--soukd', default=os.path.join(REPO, 'build', 'normal', 'server', 'soukd'))
    ap.add_argument('--rtt', default='0,20,80', help='round-trip times in ms, comma-separated')
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--seed', type=int, default=20240611)
    ap.add_argument('--revisions', type=int, default=64, help='mainline revisions of the served branch')
    ap.add_argument('--json', default='bench-workflows.json')
    ap.add_argument('--markdown', action='store_true', help='also print the tables in Markdown')
    ap.add_argument('--only', default='', help='comma-separated workflow names to run (default all)')
    ap.add_argument('--no-warmup', action='store_true', help='skip one unmeasured pass at RTT 0')
    ap.add_argument('--timeout', type=float, default=600.0, help='per brz command, seconds')
    a = ap.parse_args()
    rtts = [int(x) for x in a.rtt.split(',') if x.strip()]
    if not rtts or any(r < 0 or r > 2000 for r in rtts):
        raise SystemExit('--rtt: milliseconds between 0 and 2000')
    if a.reps < 1 or a.reps > 50:
        raise SystemExit('--reps: 1..50')
    if a.revisions < 60:
        raise SystemExit('--revisions: at least 60')
    soukd_src = os.path.abspath(a.soukd)
    if not os.access(soukd_src, os.X_OK):
        raise SystemExit('no soukd at %s (build it, or pass --soukd)' % soukd_src)

    started = time.monotonic()
    tmp = make_tempdir('souk-bench-wf-')
    sides = []
    samples = []
    try:
        # A private copy: a rebuild of the tree's soukd mid-run changes nothing here.
        soukd = os.path.join(tmp, 'soukd')
        shutil.copy2(soukd_src, soukd)
        os.environ['SOUKD'] = soukd
        with open(soukd, 'rb') as f:
            soukd_sha = hashlib.sha256(f.read()).hexdigest()
        env = BrzEnv(os.path.join(tmp, 'client'))
        gen = os.path.join(tmp, 'gen')
        os.mkdir(gen)
        t = time.monotonic()
        work, pristine, info = generate(env, gen, a.seed, a.revisions, 5)
        sys.stderr.write('repository: %d revisions (%d on the served mainline, +5 to push), %d files '
                         '(%d binary), %d renames, %d moves, %d deletes, %d packs, %.1f MiB; %.0f s\n'
                         % (info['revisions'], info['served_revno'], info['files'], info['binary_files'],
                            info['renames'], info['moves'], info['deletes'], info['served_packs'],
                            info['served_repo_bytes'] / 1048576.0, time.monotonic() - t))
        wfs = workflows(info)
        if a.only:
            want = [w.strip() for w in a.only.split(',')]
            wfs = [w for w in wfs if w[0] in want]
            if not wfs:
                raise SystemExit('--only matched no workflow; names: %s'
                                 % ', '.join(w[0] for w in workflows(info)))
        for kind in ('soukd', 'brz'):
            root = os.path.join(tmp, 'served-' + kind)
            os.mkdir(root)
            reset_root(root, pristine)
            sides.append(Side(kind, root, soukd).start())
        scratch = os.path.join(tmp, 'runs')
        os.mkdir(scratch)
        if not a.no_warmup:
            for wf in wfs:
                for side in sides:
                    for s in run_workflow(side, wf, 0, env, work, info, pristine, scratch, a.timeout, -1):
                        if s['rc'] != 0:
                            sys.stderr.write('warm-up %s on %s failed: %s\n'
                                             % (s['step'], side.kind, s.get('error')))
            sys.stderr.write('warm-up done (%.0f s)\n' % (time.monotonic() - started))
        for rtt in rtts:
            t = time.monotonic()
            for wf in wfs:
                for rep in range(a.reps):
                    for side in sides:   # A B A B ...
                        got = run_workflow(side, wf, rtt, env, work, info, pristine, scratch,
                                           a.timeout, rep)
                        for s in got:
                            sys.stderr.write('  rtt %3d %-30s %-5s rep %d: %5.2f s %4d req%s\n'
                                             % (rtt, s['step'], s['server'], rep, s['wall_s'],
                                                s['requests'], '' if s['rc'] == 0 else '  FAILED'))
                        samples.extend(got)
            sys.stderr.write('RTT %d ms done in %.0f s\n' % (rtt, time.monotonic() - t))
        for side in sides:
            if side.proxy.errors:
                sys.stderr.write('proxy %s: %s\n' % (side.kind, '; '.join(side.proxy.errors[:5])))
    finally:
        for side in sides:
            side.stop()
        for side in sides:
            if side.kind == 'soukd':
                try:
                    harness.remove_stats_segment(side.root)
                except Exception as e:  # noqa: BLE001 - cleanup only
                    sys.stderr.write('could not remove soukd stats segment: %s\n' % e)
        remove_tree(tmp)

    summary = summarize(samples)
    brz_version = subprocess.run(['brz', 'version', '--short'], capture_output=True,
                                 env=dict(os.environ, BRZ_PLUGIN_PATH='-site:-user'),
                                 timeout=60).stdout.decode().strip()
    meta = {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC'),
        'machine': '%s, %d cores, %s' % (platform.machine(), os.cpu_count() or 0, platform.release()),
        'breezy': brz_version, 'soukd': soukd_src, 'soukd_sha256': soukd_sha,
        'seed': a.seed, 'rtts_ms': rtts, 'reps': a.reps, 'repository': info,
        'warmup': not a.no_warmup, 'elapsed_s': round(time.monotonic() - started, 1),
    }
    print('soukd vs brz serve over bzr:// through a delaying proxy; medians of %d run(s); '
          'Breezy %s; %s; %s' % (a.reps, brz_version, meta['machine'], meta['date']))
    print('repository: %d revisions (served mainline %d, one merged branch of 9), %d files (%d binary), '
          '%d renames + %d moves, %d packs, %.1f MiB' % (
              info['revisions'], info['served_revno'], info['files'], info['binary_files'],
              info['renames'], info['moves'], info['served_packs'], info['served_repo_bytes'] / 1048576.0))
    print('req: smart requests (brz -Dhpss); KiB up = client to server, down = server to client; '
          'CPU: server utime+stime; ratio = soukd / brz serve\n')
    for rtt in rtts:
        print(text_table(summary, rtt))
        diffs = verb_differences(samples, rtt)
        if diffs:
            print('  where soukd needed more requests (verbs sent, soukd minus brz serve):')
            for d in diffs:
                print('    ' + d)
        print()
    differ = output_differences(samples)
    print('printed output (URLs normalized) differs between the servers for: %s\n'
          % (', '.join(differ) if differ else 'no step'))
    if a.markdown:
        for rtt in rtts:
            print(markdown_table(summary, rtt))
            print()
    with open(a.json, 'w') as f:
        json.dump({'meta': meta,
                   'summary': [{'rtt_ms': k[0], 'step': k[1], **{srv: v for srv, v in by.items()}}
                               for k, by in summary.items()],
                   'samples': samples}, f, indent=1)
    print('JSON: %s (%.0f s in all)' % (os.path.abspath(a.json), time.monotonic() - started))
    return 1 if any(s['rc'] != 0 for s in samples) else 0


if __name__ == '__main__':
    sys.exit(main())
