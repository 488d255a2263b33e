#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, then build and
# run the unit and integration tests twice — a normal build and an
# AddressSanitizer + UndefinedBehaviorSanitizer build.
#   scripts/test.sh            both builds
#   SOUK_BUILDS=normal scripts/test.sh   just one (normal or asan)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

builds=${SOUK_BUILDS:-"normal asan"}
jobs=$(nproc)
for b in $builds; do
  case $b in
    normal) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSOUK_WERROR=ON) ;;
    asan)   flags=(-DCMAKE_BUILD_TYPE=Debug -DSOUK_SANITIZE=ON -DSOUK_WERROR=ON) ;;
    *) echo "unknown build $b" >&2; exit 2 ;;
  esac
  echo "=== build: $b ==="
  cmake -S . -B "build/$b" -G Ninja "${flags[@]}" >/dev/null
  ninja -C "build/$b"
  echo "=== tests: $b ==="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "build/$b" --output-on-failure -j "$jobs" --timeout 900
done
echo "=== all tests passed ($builds) ==="
