#!/bin/sh
# End-to-end check of the souk CLI (and so libsouk) against a real server
# over bzr:// (read-write and read-only) and bzr+ssh:// through a local pipe
# (SOUK_SSH). The server is soukd ($SOUKD), or Breezy's reference server
# `brz serve` when SOUK_E2E_SERVER=brz. Starts its own servers on free
# loopback ports and stops them by PID.
#
#   SOUKD=path/to/soukd tests/integration/cli_e2e.sh path/to/souk
#
# Exit 0 when every check passes; prints one line per failure. Fails loudly
# if a peer it needs is missing.
set -u
SOUK=${1:?usage: e2e_brz.sh path/to/souk}
[ -x "$SOUK" ] || { echo "not an executable: $SOUK"; exit 2; }
SERVER=${SOUK_E2E_SERVER:-soukd}
if [ "$SERVER" = soukd ]; then
    [ -x "${SOUKD:-}" ] || { echo "FAIL: SOUKD must name the soukd binary"; exit 1; }
fi
command -v brz >/dev/null 2>&1 || { echo "FAIL: brz not installed"; exit 1; }
command -v python3 >/dev/null 2>&1 || { echo "FAIL: python3 not installed"; exit 1; }

WORK=$(mktemp -d /tmp/souk-e2e.XXXXXX)
RW_PID= RO_PID=
cleanup() {
    [ -n "$RW_PID" ] && kill "$RW_PID" 2>/dev/null
    [ -n "$RO_PID" ] && kill "$RO_PID" 2>/dev/null
    [ -n "$RW_PID" ] && wait "$RW_PID" 2>/dev/null
    [ -n "$RO_PID" ] && wait "$RO_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Start brz serve and wait until it accepts connections.
start_brz() {  # dir port [--allow-writes]; sets LAST_PID
    if [ "$SERVER" = soukd ]; then
        "$SOUKD" serve --listen 127.0.0.1 --port "$2" --directory="$1" ${3:-} >"$WORK/brz-$2.log" 2>&1 &
    else
        brz serve --listen 127.0.0.1 --port "$2" --directory "$1" ${3:-} >"$WORK/brz-$2.log" 2>&1 &
    fi
    LAST_PID=$!
    i=0
    while [ $i -lt 100 ]; do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $2), 0.2)" 2>/dev/null && return 0
        sleep 0.1
        i=$((i + 1))
    done
    echo "brz serve did not start:"; cat "$WORK/brz-$2.log"; exit 1
}

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# expect RC DESCRIPTION -- command...   (stdout to $WORK/out, stderr to $WORK/err)
expect() {
    want=$1; what=$2; shift 3
    "$@" >"$WORK/out" 2>"$WORK/err"
    rc=$?
    [ "$rc" = "$want" ] || fail "$what: exit $rc, wanted $want; stderr: $(cat "$WORK/err")"
}
same() {  # file1 file2 description
    cmp -s "$1" "$2" || fail "$3: output differs"
}
contains() {  # file text description
    grep -qF -- "$2" "$1" || fail "$3: '$2' not in: $(cat "$1")"
}

SRV=$WORK/srv
mkdir -p "$SRV/dir with space" "$SRV/sub/deeper" "$SRV/full"
printf 'hello world' >"$SRV/hello.txt"
printf 'nested' >"$SRV/dir with space/file name"
printf 'x' >"$SRV/sub/deeper/y"
printf 'q' >"$SRV/full/keep"
python3 -c "import os,sys; sys.stdout.buffer.write(os.urandom(3*1024*1024 + 123))" >"$WORK/big.bin"
cp "$WORK/big.bin" "$SRV/big.bin"

RW_PORT=$(free_port); start_brz "$SRV" "$RW_PORT" --allow-writes; RW_PID=$LAST_PID
RO_PORT=$(free_port); start_brz "$SRV" "$RO_PORT"; RO_PID=$LAST_PID
U=bzr://127.0.0.1:$RW_PORT
R=bzr://127.0.0.1:$RO_PORT

# --- get -----------------------------------------------------------------
expect 0 "get" -- "$SOUK" get "$U/hello.txt"
printf 'hello world' >"$WORK/want"; same "$WORK/out" "$WORK/want" "get hello"
expect 0 "get big binary" -- "$SOUK" get "$U/big.bin"
same "$WORK/out" "$WORK/big.bin" "get big binary"
expect 0 "get -o" -- "$SOUK" get "$U/big.bin" -o "$WORK/got.bin"
same "$WORK/got.bin" "$WORK/big.bin" "get -o"
expect 0 "get escaped path" -- "$SOUK" get "$U/dir%20with%20space/file%20name"
printf 'nested' >"$WORK/want"; same "$WORK/out" "$WORK/want" "get escaped"
expect 0 "get --json" -- "$SOUK" --json get "$U/hello.txt"
contains "$WORK/out" '"data":"aGVsbG8gd29ybGQ="' "get --json"
expect 1 "get missing" -- "$SOUK" get "$U/missing"
contains "$WORK/err" "souk: get $U/missing: no such file: /missing" "get missing message"
expect 1 "get directory" -- "$SOUK" get "$U/sub"
contains "$WORK/err" "cannot read" "get directory message"
[ -e "$WORK/none.out" ] && fail "stale file"
expect 1 "get -o missing leaves no file" -- "$SOUK" get "$U/missing" -o "$WORK/none.out"
[ -e "$WORK/none.out" ] && fail "get -o of a missing file created the output"
ls "$WORK" | grep -q souk- && fail "get -o left a temporary file"

# --- readv ---------------------------------------------------------------
expect 0 "readv" -- "$SOUK" readv "$U/hello.txt" 6:5 0:5 4:3 0:0
printf 'worldhelloo w' >"$WORK/want"; same "$WORK/out" "$WORK/want" "readv ranges in given order"
expect 0 "readv --json" -- "$SOUK" readv --json "$U/hello.txt" 0:5 6:5
contains "$WORK/out" '[{"data":"aGVsbG8=","length":5,"offset":0},{"data":"d29ybGQ=","length":5,"offset":6}]' "readv --json"
# many scattered ranges across the 3 MiB file, checked against python slicing
python3 - "$WORK/big.bin" >"$WORK/ranges" <<'EOF'
import random, sys
random.seed(7)
n = len(open(sys.argv[1], 'rb').read())
rs = []
for _ in range(5000):
    o = random.randrange(n); l = random.randrange(0, min(3000, n - o) + 1)
    rs.append((o, l))
rs += [(0, 2 * 1024 * 1024), (1024 * 1024, 2 * 1024 * 1024 + 100)]  # big, overlapping: split over requests
random.shuffle(rs)
print(' '.join('%d:%d' % r for r in rs))
EOF
python3 - "$WORK/big.bin" "$WORK/ranges" >"$WORK/want" <<'EOF'
import sys
d = open(sys.argv[1], 'rb').read()
out = b''.join(d[int(o):int(o) + int(l)] for o, l in (r.split(':') for r in open(sys.argv[2]).read().split()))
sys.stdout.buffer.write(out)
EOF
# shellcheck disable=SC2046
expect 0 "readv 5002 ranges" -- "$SOUK" readv "$U/big.bin" $(cat "$WORK/ranges")
same "$WORK/out" "$WORK/want" "readv 5002 ranges"
expect 1 "readv past EOF" -- "$SOUK" readv "$U/hello.txt" 4:50
contains "$WORK/err" "range past end of file" "ShortReadvError message"
expect 1 "readv missing" -- "$SOUK" readv "$U/missing" 0:1
contains "$WORK/err" "no such file: /missing" "readv missing"
for bad in 5: a:b -1:5 1:-5 99999999999999999999:1 9223372036854775807:1 5; do
    expect 2 "readv bad range $bad" -- "$SOUK" readv "$U/hello.txt" "$bad"
    contains "$WORK/err" "bad range" "readv bad range $bad message"
done

# --- put / append ----------------------------------------------------------
printf 'new content' | "$SOUK" put "$U/new.txt" >"$WORK/out" 2>"$WORK/err" || fail "put stdin: $(cat "$WORK/err")"
printf 'new content' >"$WORK/want"; same "$SRV/new.txt" "$WORK/want" "put stdin"
expect 0 "put file" -- "$SOUK" put "$U/dir%20with%20space/copy.bin" "$WORK/big.bin"
same "$SRV/dir with space/copy.bin" "$WORK/big.bin" "put file"
expect 0 "put --mode" -- "$SOUK" put --mode 600 "$U/private" "$WORK/want"
[ "$(stat -c %a "$SRV/private")" = 600 ] || fail "put --mode: mode $(stat -c %a "$SRV/private")"
expect 1 "put into missing dir" -- "$SOUK" put "$U/nodir/x" "$WORK/want"
contains "$WORK/err" "no such file" "put into missing dir"
expect 0 "append new" -- "$SOUK" append "$U/log" "$WORK/want"
contains "$WORK/out" "0" "append returns 0 for a new file"
printf 'more' | "$SOUK" append "$U/log" >"$WORK/out" 2>"$WORK/err" || fail "append stdin"
[ "$(cat "$WORK/out")" = 11 ] || fail "append old length: $(cat "$WORK/out")"
printf 'x' | "$SOUK" --json append "$U/log" - >"$WORK/out" 2>&1
contains "$WORK/out" '{"new_length":16,"old_length":15,"path":"/log"}' "append --json"
expect 1 "put missing input file" -- "$SOUK" put "$U/x" "$WORK/does-not-exist"
contains "$WORK/err" "cannot read" "put missing input"

# --- ls / find / stat / has ----------------------------------------------
expect 0 "ls" -- "$SOUK" ls "$U/"
contains "$WORK/out" "dir with space" "ls unescapes"
contains "$WORK/out" "hello.txt" "ls"
expect 0 "ls --json" -- "$SOUK" ls --json "$U/sub"
contains "$WORK/out" '["deeper"]' "ls --json"
expect 1 "ls on a file" -- "$SOUK" ls "$U/hello.txt"
expect 0 "find" -- "$SOUK" find "$U/"
contains "$WORK/out" "dir with space/file name" "find unescapes"
contains "$WORK/out" "sub/deeper/y" "find recursive"
expect 0 "stat file" -- "$SOUK" stat "$U/hello.txt"
contains "$WORK/out" "type: file" "stat type"
contains "$WORK/out" "size: 11" "stat size"
expect 0 "stat --json dir" -- "$SOUK" --json stat "$U/sub"
contains "$WORK/out" '"type":"directory"' "stat --json"
expect 1 "stat missing" -- "$SOUK" stat "$U/missing"
expect 0 "has yes" -- "$SOUK" has "$U/hello.txt"
contains "$WORK/out" yes "has yes"
expect 0 "has no" -- "$SOUK" has "$U/missing"
contains "$WORK/out" no "has no"

# --- mkdir / rm / rmdir / mv -------------------------------------------------
expect 0 "mkdir" -- "$SOUK" mkdir "$U/made"
[ -d "$SRV/made" ] || fail "mkdir did not create"
expect 1 "mkdir exists" -- "$SOUK" mkdir "$U/made"
contains "$WORK/err" "file exists: /made" "FileExists message"
expect 1 "mkdir no parent" -- "$SOUK" mkdir "$U/no/parent"
expect 0 "mkdir --mode" -- "$SOUK" mkdir --mode 700 "$U/made/private"
[ "$(stat -c %a "$SRV/made/private")" = 700 ] || fail "mkdir --mode"
expect 1 "rmdir not empty" -- "$SOUK" rmdir "$U/made"
contains "$WORK/err" "directory not empty" "DirectoryNotEmpty message"
expect 0 "rm -d" -- "$SOUK" rm -d "$U/made/private"
expect 0 "rmdir" -- "$SOUK" rmdir "$U/made"
[ -e "$SRV/made" ] && fail "rmdir did not remove"
expect 0 "rm file" -- "$SOUK" rm "$U/private"
[ -e "$SRV/private" ] && fail "rm did not remove"
expect 1 "rm missing" -- "$SOUK" rm "$U/private"
expect 0 "mv relative" -- "$SOUK" mv "$U/new.txt" renamed.txt
[ -f "$SRV/renamed.txt" ] && [ ! -e "$SRV/new.txt" ] || fail "mv relative"
expect 0 "mv absolute" -- "$SOUK" mv "$U/renamed.txt" "/sub/moved.txt"
[ -f "$SRV/sub/moved.txt" ] || fail "mv absolute"
expect 0 "mv URL" -- "$SOUK" mv "$U/sub/moved.txt" "$U/back.txt"
[ -f "$SRV/back.txt" ] || fail "mv URL"
expect 2 "mv other server" -- "$SOUK" mv "$U/back.txt" "bzr://elsewhere/x"
printf 'v2' >"$SRV/v2"
expect 0 "mv onto an existing file (rename(2) replaces files)" -- "$SOUK" mv "$U/v2" hello.txt
printf 'v2' >"$WORK/want"; same "$SRV/hello.txt" "$WORK/want" "mv onto a file"
expect 0 "mv --replace" -- "$SOUK" mv --replace "$U/back.txt" hello.txt
printf 'new content' >"$WORK/want"; same "$SRV/hello.txt" "$WORK/want" "mv --replace content"
expect 1 "mv missing source" -- "$SOUK" mv "$U/back.txt" hello.txt
contains "$WORK/err" "no such file: /back.txt -> /hello.txt" "mv missing message"
mkdir -p "$SRV/emptydir"
expect 1 "mv dir onto non-empty dir" -- "$SOUK" mv "$U/emptydir" full

# --- read-only server ------------------------------------------------------
expect 0 "read-only get" -- "$SOUK" get "$R/hello.txt"
for cmd in "put $R/ro.txt $WORK/want" "append $R/ro.txt $WORK/want" "mkdir $R/rodir" "rm $R/hello.txt" \
           "rmdir $R/sub" "mv $R/hello.txt x"; do
    # shellcheck disable=SC2086
    expect 1 "read-only $cmd" -- "$SOUK" $cmd
    contains "$WORK/err" "read-only" "ReadOnlyError message for $cmd"
done

# --- bzr+ssh through a local pipe -------------------------------------------
S="bzr+ssh://localhost$SRV"
if [ "$SERVER" = soukd ]; then export BZR_REMOTE_PATH="$SOUKD"; else export BZR_REMOTE_PATH=brz; fi
export SOUK_SSH="sh -c 'shift; exec \"\$@\"' ssh"
expect 0 "ssh get" -- "$SOUK" get "$S/big.bin"
same "$WORK/out" "$WORK/big.bin" "ssh get"
expect 0 "ssh readv" -- "$SOUK" readv "$S/hello.txt" 4:3 0:4
printf 'connew ' >"$WORK/want"; same "$WORK/out" "$WORK/want" "ssh readv"
expect 0 "ssh put" -- "$SOUK" put "$S/ssh.txt" "$WORK/want"
same "$SRV/ssh.txt" "$WORK/want" "ssh put"
expect 0 "ssh ls" -- "$SOUK" ls "$S/sub"
contains "$WORK/out" deeper "ssh ls"
expect 1 "ssh missing" -- "$SOUK" get "$S/missing"
contains "$WORK/err" "no such file: $SRV/missing" "ssh NoSuchFile"
expect 3 "ssh remote exits" -- env BZR_REMOTE_PATH=false "$SOUK" get "$S/hello.txt"
contains "$WORK/err" "connection closed" "ssh remote exits message"
expect 2 "bad SOUK_SSH" -- env SOUK_SSH="sh -c 'oops" "$SOUK" get "$S/hello.txt"
unset SOUK_SSH BZR_REMOTE_PATH

# --- usage and connection errors --------------------------------------------
expect 2 "no args" -- "$SOUK"
expect 2 "unknown command" -- "$SOUK" frob "$U/"
expect 2 "bad URL" -- "$SOUK" get "ftp://x/y"
contains "$WORK/err" "invalid URL" "bad URL message"
expect 2 "bad port" -- "$SOUK" get "bzr://h:99999/x"
expect 2 "unknown option" -- "$SOUK" get --frob "$U/x"
expect 2 "option for another command" -- "$SOUK" ls -o f "$U/"
expect 2 "bad timeout" -- "$SOUK" --timeout -1 get "$U/x"
expect 0 "help" -- "$SOUK" --help
contains "$WORK/out" "usage: souk" "help"
expect 0 "version" -- "$SOUK" --version
DEAD=$(free_port)
expect 3 "connection refused" -- "$SOUK" get "bzr://127.0.0.1:$DEAD/x"
contains "$WORK/err" "cannot connect" "connection refused message"

if [ "$FAILS" -ne 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all e2e checks passed"
