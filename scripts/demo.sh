#!/usr/bin/env bash
# Build soukd and serve a small demo Bazaar repository on loopback.
#   scripts/demo.sh [PORT]     (default 4155; stop with Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-4155}
scripts/install-deps.sh
cmake -S . -B build/normal -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build/normal soukd souk

demo=$PWD/build/demo
if [ ! -d "$demo/repo/trunk/.bzr" ]; then
  rm -rf "$demo" && mkdir -p "$demo"
  export BRZ_HOME="$demo/.brz" BRZ_EMAIL="souk demo <demo@souk.invalid>" BRZ_LOG=/dev/null
  brz init-repo -q "$demo/repo"
  brz init -q "$demo/repo/trunk"
  (
    cd "$demo/repo/trunk"
    printf 'souk demo\n=========\n\nServed by soukd.\n' > README
    printf '#!/bin/sh\necho hello from souk\n' > hello.sh
    brz add -q README hello.sh && brz commit -q -m "First commit"
    printf '\nA second line of history.\n' >> README
    brz commit -q -m "Second commit"
  )
fi
echo
echo "soukd is serving $demo/repo read-only on bzr://127.0.0.1:$port/"
echo "In another shell:"
echo "  brz branch bzr://127.0.0.1:$port/trunk my-trunk"
echo "  brz log bzr://127.0.0.1:$port/trunk"
echo "  build/normal/client/souk ls bzr://127.0.0.1:$port/trunk"
echo "Stop with Ctrl-C."
exec build/normal/server/soukd serve --listen 127.0.0.1 --port "$port" --directory="$demo/repo" -v
