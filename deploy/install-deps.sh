#!/usr/bin/env bash
# Installs every Debian package that building, running and testing Coffer needs.
# Idempotent: apt-get skips what is already installed. Run as root (or with sudo).
set -euo pipefail

PKGS=(
    # build
    build-essential cmake ninja-build pkg-config clang llvm clang-format cppcheck git
    # runtime libraries (DESIGN.md "Threads, I/O and dependencies")
    libuv1-dev libraft-dev liblz4-dev libssl-dev libnghttp2-dev node-llhttp
    libmsgpack-dev liburing-dev libjansson-dev libp11-kit-dev libcurl4-openssl-dev libidn2-dev
    libjemalloc-dev
    # unit tests, sanitizers, fuzzing
    libcmocka-dev libclang-rt-14-dev
    # integration tests and benchmarks
    python3 python3-pytest python3-hvac python3-requests python3-cryptography python3-mnemonic
    curl openssl nghttp2-client etcd-server procps iproute2 golang-cfssl softhsm2
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${PKGS[@]}"
