#!/usr/bin/env bash
# Builds carecount in one configuration: build.sh [Release|Debug|Sanitize|Fuzz].
# The build tree is build/<config>, lower case. Fuzz builds only the libFuzzer
# targets of fuzz/, with clang (CC, default clang-14); the others use the
# default compiler (gcc).
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-Release}"
dir="build/$(echo "$config" | tr '[:upper:]' '[:lower:]')"
if [ "$config" = Fuzz ]; then
  cc="${CC:-clang-14}"
  case $cc in *clang*) ;; *) cc=clang-14 ;; esac
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_C_COMPILER="$cc" >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target fuzz
  exit 0
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$config" >/dev/null
cmake --build "$dir" -j"$(nproc)"
