#!/usr/bin/env bash
# The whole test suite, as CI runs it: install dependencies, then build and
# run the tests three times:
#   normal  GCC; every unit and integration test;
#   asan    clang, AddressSanitizer + UndefinedBehaviorSanitizer; every test,
#           and the libFuzzer targets, each run for a few seconds
#           (docs/fuzzing.md);
#   tsan    GCC, ThreadSanitizer; soukd, souk and the unit tests only, and
#           the tests where threads meet (tests/CMakeLists.txt says which).
#   scripts/test.sh            all three builds
#   SOUK_BUILDS=normal scripts/test.sh   some of them (normal, asan, tsan)
#   scripts/test.sh --configure asan     only configure build/asan (scripts/fuzz uses it)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh

# Configure build/$1 with its flags. The sanitizer build is clang's (libFuzzer
# needs it); a cache left by another compiler is started afresh.
configure() {
  local flags fresh=()
  case $1 in
    # Line tables only (-g1) in the test builds: backtraces and sanitizer
    # reports keep file:line, and GCC compiles a third faster than with
    # full -g (the test command's 30-minute budget).
    normal) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" -DSOUK_WERROR=ON) ;;
    asan)   flags=(-DCMAKE_BUILD_TYPE=Debug -DSOUK_SANITIZE=ON -DSOUK_WERROR=ON -DSOUK_FUZZ=ON
                   -DCMAKE_CXX_COMPILER=clang++) ;;
    # -O1 with line tables: 60% of RelWithDebInfo's compile time; no NDEBUG.
    tsan)   flags=(-DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -g1" -DSOUK_TSAN=ON -DSOUK_WERROR=ON) ;;
    *) echo "unknown build $1" >&2; exit 2 ;;
  esac
  if [ "$1" = asan ] && [ -f "build/$1/CMakeCache.txt" ] &&
     ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++' "build/$1/CMakeCache.txt"; then
    fresh=(--fresh)
  fi
  cmake "${fresh[@]}" -S . -B "build/$1" -G Ninja "${flags[@]}" >/dev/null
}

if [ "${1:-}" = --configure ]; then
  configure "${2:?scripts/test.sh --configure normal|asan}"
  exit 0
fi

builds=${SOUK_BUILDS:-"normal asan tsan"}
jobs=$(nproc)
for b in $builds; do
  echo "=== build: $b ==="
  configure "$b"
  targets=()
  [ "$b" = tsan ] && targets=(souk_unit soukd souk)  # what its tests run
  ninja -C "build/$b" "${targets[@]}"
  echo "=== tests: $b ==="
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  TSAN_OPTIONS=halt_on_error=1:abort_on_error=1:second_deadlock_stack=1 \
    ctest --test-dir "build/$b" --output-on-failure -j "$jobs" --timeout 900
done
echo "=== all tests passed ($builds) ==="
