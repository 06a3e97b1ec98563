#!/usr/bin/env bash
# The test command: installs what is missing, builds the Release and the
# sanitizer (ASan + UBSan) configurations, runs every test in both through
# ctest, then runs every fuzz target briefly (scripts/fuzz.sh). Exits
# non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
status=0
for config in Release Sanitize; do
  echo "== build $config"
  bash scripts/build.sh "$config"
  dir="build/$(echo "$config" | tr '[:upper:]' '[:lower:]')"
  echo "== test $config"
  if ! ctest --test-dir "$dir" --output-on-failure -j2; then
    status=1
  fi
done
# Every libFuzzer target for a few seconds, after replaying its past crashes
# (scripts/fuzz.sh; clang's Fuzz configuration). FUZZ_SECONDS=0 skips it.
seconds="${FUZZ_SECONDS:-5}"
if [ "$seconds" != 0 ]; then
  echo "== fuzz (${seconds}s per target)"
  if ! bash scripts/fuzz.sh "$seconds"; then
    status=1
  fi
fi
exit $status
