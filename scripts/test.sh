#!/usr/bin/env bash
# The test command: installs what is missing, builds the Release and the
# sanitizer (ASan + UBSan) configurations, and runs every test in both
# through ctest. Exits non-zero if anything fails.
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
exit $status
