#!/usr/bin/env bash
# Builds the Fuzz configuration (clang, libFuzzer, ASan + UBSan) and runs
# every fuzz/fuzz_NAME target: first it replays fuzz/regressions/NAME (every
# input a past run crashed on; each must now pass), then fuzzes for SECONDS
# (default 15) from the seeds of fuzz/corpus/NAME with NAME's dictionary.
#   fuzz.sh [SECONDS] [NAME...]       (no NAME: every target)
# New corpus entries go to a scratch directory (FUZZ_WORK, default a new
# temporary one), never into the repository; crashes are written there as
# NAME-crash-* and the script exits non-zero. One summary line per target:
# its executions, seconds and corpus size. A long run for a release:
#   FUZZ_WORK=/var/tmp/cc-fuzz bash scripts/fuzz.sh 3600
# (docs/reliability.md, "Fuzzing").
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
shift || true
bash scripts/build.sh Fuzz >/dev/null
bin=build/fuzz/fuzz
work="${FUZZ_WORK:-$(mktemp -d /tmp/cc-fuzz-work-XXXXXX)}"
mkdir -p "$work"
# the targets' scratch files (snapshots, feeds, data directories): in memory
# when there is some, in a directory removed when this script ends
scratch_parent="${TMPDIR:-/tmp}"
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then scratch_parent=/dev/shm; fi
TMPDIR=$(mktemp -d "$scratch_parent/cc-fuzz-scratch-XXXXXX")
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
  export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

dict_for() {
  case $1 in
    query | request | frame) echo fuzz/dict/msgpack.dict ;;
    query_json | policy | config) echo fuzz/dict/json.dict ;;
    http) echo fuzz/dict/http.dict ;;
    csv | ingest | validate) echo fuzz/dict/csv.dict ;;
  esac
}

if (($#)); then
  targets=("$@")
else
  targets=()
  for t in "$bin"/fuzz_*; do targets+=("${t##*/fuzz_}"); done
fi
status=0
for name in "${targets[@]}"; do
  exe="$bin/fuzz_$name"
  [ -x "$exe" ] || { echo "fuzz: no target $name"; status=1; continue; }
  if [ -d "fuzz/regressions/$name" ] && [ -n "$(ls -A "fuzz/regressions/$name")" ]; then
    if ! "$exe" -rss_limit_mb=2048 -timeout=20 "fuzz/regressions/$name"/* >"$work/$name-replay.log" 2>&1; then
      echo "fuzz: $name: a regression input fails again (see $work/$name-replay.log)"
      status=1
      continue
    fi
  fi
  mkdir -p "$work/corpus-$name"
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=65536
        -print_final_stats=1 -artifact_prefix="$work/$name-")
  dict=$(dict_for "$name")
  [ -n "$dict" ] && args+=(-dict="$dict")
  if "$exe" "${args[@]}" "$work/corpus-$name" "fuzz/corpus/$name" >"$work/$name.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log")
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$work/$name.log")
    cov=$(grep -o 'cov: [0-9]*' "$work/$name.log" | tail -1 | cut -d' ' -f2)
    found=$(find "$work/corpus-$name" -type f | wc -l)
    printf 'fuzz: %-15s ok  %10s runs in %4s s, %5s edges, %4s inputs kept (+%s seeds)\n' \
      "$name" "${runs:-?}" "${secs:-?}" "${cov:-?}" "$found" "$(find "fuzz/corpus/$name" -type f | wc -l)"
  else
    echo "fuzz: $name: FAILED (log $work/$name.log; the input is $work/$name-crash-* or -leak-/-timeout-/-oom-)"
    grep -m1 -E 'ERROR|runtime error|fuzz check failed' "$work/$name.log" || true
    status=1
  fi
done
[ -n "${FUZZ_WORK:-}" ] || { [ $status -eq 0 ] && rm -rf "$work"; }
exit $status
