#!/usr/bin/env bash
# Regenerates the fuzz seed corpora (fuzz/corpus/NAME/) and the fixed feeds
# of fuzz/ingest_reference/ from the project's own inputs: the example
# queries and comparisons, a small `carecount generate` set ingested into a
# snapshot (re-signed with the fuzzing key), and the request, HTTP, policy
# and configuration shapes of the tests (fuzz/make_corpus.py). Builds Release
# (for carecount) and Fuzz (for fuzz_snapshot_keyed, which signs snapshots).
# The output is the same each time but for the snapshot seeds (a new key,
# new pseudonyms); commit what changes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh Release >/dev/null
bash scripts/build.sh Fuzz >/dev/null
/usr/bin/python3 fuzz/make_corpus.py "$PWD" "$PWD/build/release" "$PWD/build/fuzz"
echo "fuzz corpus: $(find fuzz/corpus -type f | wc -l) seeds, $(du -sh fuzz/corpus | cut -f1)"
