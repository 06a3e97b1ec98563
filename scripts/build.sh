#!/usr/bin/env bash
# Builds carecount in one configuration: build.sh [Release|Debug|Sanitize].
# The build tree is build/<config>, lower case.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-Release}"
dir="build/$(echo "$config" | tr '[:upper:]' '[:lower:]')"
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$config" >/dev/null
cmake --build "$dir" -j"$(nproc)"
