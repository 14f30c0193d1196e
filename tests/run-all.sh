#!/usr/bin/env bash
# Runs every test of Coffer, in this order:
#   1. release build (and build-bump, a version-bumped coffer for the rolling-upgrade test),
#      cmocka unit tests (ctest), pytest integration tests against build/coffer, multi-node
#      cluster tests (tests/cluster);
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build, the same unit, integration and
#      cluster tests;
#   3. libFuzzer targets (clang), each for a short run over its seed corpus.
# Needs the packages of deploy/install-deps.sh. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=/usr/bin/python3
FUZZ_SECONDS=${COFFER_FUZZ_SECONDS:-30}

step() { printf '\n==== %s\n' "$*"; }

step "source checks (banned calls, clang-format, cppcheck)"
scripts/checksrc
git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
cppcheck --enable=warning,performance,portability --error-exitcode=1 \
    --library=scripts/cppcheck.cfg -q -I. -D_GNU_SOURCE lib raft node api engines replication

step "release build"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build

step "version-bumped build (build B of the rolling-upgrade test)"
cmake -S . -B build-bump -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOFFER_TESTS=OFF \
    -DCOFFER_VERSION_BUMP_FOR_TESTS=ON >/dev/null
ninja -C build-bump coffer
export COFFER_BIN_B="$ROOT/build-bump/coffer"

step "unit tests (release)"
(cd build && ctest --output-on-failure -j2)

step "integration tests (release)"
COFFER_BIN="$ROOT/build/coffer" $PY -m pytest -q -p no:cacheprovider tests/integration

step "cluster tests (release)"
COFFER_BIN="$ROOT/build/coffer" $PY -m pytest -q -p no:cacheprovider tests/cluster

step "sanitizer build (ASan+UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCOFFER_SANITIZE=ON >/dev/null
ninja -C build-asan

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export LSAN_OPTIONS="suppressions=$ROOT/tests/lsan.supp"

step "unit tests (sanitizers)"
(cd build-asan && ctest --output-on-failure -j2)

step "integration tests (sanitizers)"
COFFER_BIN="$ROOT/build-asan/coffer" COFFER_SANITIZED=1 \
    $PY -m pytest -q -p no:cacheprovider tests/integration

step "cluster tests (sanitizers)"
COFFER_BIN="$ROOT/build-asan/coffer" COFFER_SANITIZED=1 \
    $PY -m pytest -q -p no:cacheprovider tests/cluster

step "fuzz targets (${FUZZ_SECONDS}s each)"
CC=clang cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCOFFER_FUZZ=ON >/dev/null
ninja -C build-fuzz
for f in build-fuzz/fuzz/fuzz_*; do
    name=$(basename "$f")
    work=$(mktemp -d)
    if [ -d "tests/fuzz/corpus/$name" ]; then
        cp -r "tests/fuzz/corpus/$name/." "$work/"
    fi
    echo "-- $name"
    "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 -artifact_prefix="$work/" "$work" 2>&1 | tail -n 3
    rm -rf "$work"
done

step "all tests passed"
