#!/usr/bin/env bash
# Installs the Debian packages carecount needs to build and test, if any are
# missing. Idempotent and quiet when everything is already there. chromium
# is for the dashboard test (tests/dashboard/: headless, driven over the
# DevTools protocol from Python's standard library; nothing from npm).
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  libuv1-dev libmsgpack-dev libgsl-dev libcriterion-dev
  libsqlite3-dev sqlite3 libsodium-dev libcsv-dev libroaring-dev libjansson-dev
  libhttp-parser-dev libssl-dev openssl curl haproxy
  python3 python3-msgpack procps
  chromium
  # test only: clang, libFuzzer and the sanitizer runtimes (compiler-rt), and
  # llvm-symbolizer for readable crash reports (scripts/fuzz.sh)
  clang-14 libclang-rt-14-dev llvm-14
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi
