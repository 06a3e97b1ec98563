#!/usr/bin/env bash
# bench/run.sh: the whole speed and memory benchmark in one command (issues 3
# and 4, docs/benchmarks.md): generate N patients, keygen, ingest (timed),
# restart to serving (load + publish), memory per person and per record, the
# four benchmark queries on the carecount engine, the same four in SQL on
# DuckDB (and on SQLite with --sqlite), each on two layouts: the exported
# tables as they are, and the fair layout a user of that engine who cares
# about speed would build (integer code and area ids, wide sorted tables or
# covering indexes; built before timing, its build time printed apart), and
# the ratios. Every peer answer is checked against the engine's (total and
# non-zero cells): any difference fails the run (exit 1). DuckDB's EXPLAIN
# ANALYZE of each layout goes to DIR/duckdb-explain.txt and
# DIR/duckdb-fair-explain.txt.
#
#   bench/run.sh [--patients N] [--work DIR] [--build DIR] [--runs R]
#                [--reuse-feeds] [--reuse-data] [--sqlite] [--no-duckdb]
#
# --reuse-data needs a data directory whose recorded provenance is
# "generated": bench_queries --export refuses any other (one ingested before
# carecount recorded provenance too; run once without --reuse-data).
#
# N defaults to 10,000,000; DIR to /work/main/data/bench (ignored by git; it
# needs ~4 GB of feeds + ~1 GB of store + ~3 GB of CSV at 10M). The key file
# lives in DIR/key, outside the data directory DIR/data, as ingest requires.
# Uses one core-heavy process at a time; takes ~15 minutes at 10M on the
# 2-core machine, and --sqlite adds ~20 (its load and indexes take 16).
# Prints the machine's load beside each figure: the machine
# is shared and wall-clock figures depend on it.
#
# Must never: assert a time (this is not a test); write outside DIR and the
# build directory; leave a process running.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
patients=10000000
work=$src/data/bench
build=$src/build/bench
runs=5
reuse_feeds=0
reuse_data=0
with_sqlite=0
with_duckdb=1

while [ $# -gt 0 ]; do
    case $1 in
    --patients) patients=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --reuse-feeds) reuse_feeds=1; shift ;;
    --reuse-data) reuse_data=1; shift ;;
    --sqlite) with_sqlite=1; shift ;;
    --no-duckdb) with_duckdb=0; shift ;;
    -h | --help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done

load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { printf '\n== %s (load %s)\n' "$*" "$(load)"; }

mkdir -p "$work"
results=$work/results.txt
: > "$results"

say "build (Release) in $build"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log"
cmake --build "$build" -j2 --target carecount bench_queries >> "$work/cmake.log"
cc=$build/carecount

if [ "$reuse_feeds" = 1 ] && [ -f "$work/feeds/manifest.json" ]; then
    say "feeds: reusing $work/feeds"
else
    say "generate $patients patients into $work/feeds"
    rm -rf "$work/feeds"
    /usr/bin/time -f 'generate: %e s wall, %U s user, %S s system, %M KB peak' \
        "$cc" generate --patients "$patients" --seed 1 --out "$work/feeds" --quiet
fi

if [ "$reuse_data" = 1 ] && [ -f "$work/data/state.db" ]; then
    say "data: reusing $work/data"
else
    rm -rf "$work/data" "$work/key"
    "$cc" keygen "$work/key" > /dev/null
    say "ingest"
    echo "ingest load before: $(load)" >> "$results"
    # --timings: when each phase ended, into the results beside the time
    if ! /usr/bin/time -o "$work/ingest.time" \
        -f 'ingest: %e s wall, %U s user, %S s system, %M KB peak' \
        "$cc" ingest --data "$work/data" --key "$work/key" --quiet --timings "$work/feeds" \
        > "$work/ingest.log" 2> "$work/ingest.phases"; then
        cat "$work/ingest.phases" >&2
        exit 1
    fi
    cat "$work/ingest.time" "$work/ingest.phases" | tee -a "$results"
    echo "ingest load after: $(load)" >> "$results"
    grep -iE 'persons|records|linked' "$work/ingest.log" | head -20 || true
fi

say "carecount engine: restart, memory, queries; CSV export for the peers"
export_args=()
if [ "$with_duckdb" = 1 ] || [ "$with_sqlite" = 1 ]; then
    export_args=(--export "$work/csv")
fi
"$build/bench_queries" --data "$work/data" --key "$work/key" --runs "$runs" "${export_args[@]}" | tee "$work/engine.txt"
cat "$work/engine.txt" >> "$results"

if [ "$with_duckdb" = 1 ]; then
    say "DuckDB peer"
    if [ ! -d "$here/peers/duckdb/node_modules/@duckdb/node-api" ]; then
        (cd "$here/peers/duckdb" && npm ci --no-audit --no-fund > "$work/npm.log")
    fi
    node "$here/peers/duckdb/bench.mjs" --csv "$work/csv" --runs "$runs" \
        --explain "$work/duckdb-explain.txt" --explain-fair "$work/duckdb-fair-explain.txt" \
        | tee "$work/duckdb.txt"
    cat "$work/duckdb.txt" >> "$results"
fi

if [ "$with_sqlite" = 1 ]; then
    say "SQLite peer"
    python3 "$here/peers/sqlite/bench.py" --csv "$work/csv" --db "$work/peer.sqlite" \
        --runs "$runs" | tee "$work/sqlite.txt"
    cat "$work/sqlite.txt" >> "$results"
fi

say "ratios (peer median / carecount median); answers compared"
# Result lines look like:
#   RESULT <system> <query> median_ms=<x> min_ms=<y> total=<n> cells=<c> ...
# A peer's answer must have the engine's total and number of non-zero cells
# for every query; any difference, a query missing from a peer that ran, or a
# peer query without an engine answer fails the run (exit 1) after the table
# is printed.
status=0
awk '
    $1 == "RESULT" && $3 ~ /^q[0-9]+$/ {
        split($4, m, "="); split($6, t, "="); split($7, c, "=");
        median[$2, $3] = m[2]; total[$2, $3] = t[2]; cells[$2, $3] = c[2]; queries[$3] = 1; seen[$2] = 1
    }
    END {
        n = split("duckdb duckdb-fair sqlite sqlite-fair", order, " ");
        label["duckdb"] = "DuckDB as exported"; label["duckdb-fair"] = "DuckDB fair layout";
        label["sqlite"] = "SQLite as exported"; label["sqlite-fair"] = "SQLite fair layout";
        bad = 0;
        for (q in queries) {
            if (median["carecount", q] == "") {
                printf("%s: no carecount answer\n", q); bad = 1; continue
            }
            line = sprintf("%-3s carecount %8.1f ms", q, median["carecount", q]);
            for (i = 1; i <= n; i++) {
                s = order[i];
                if (!seen[s]) continue;
                if (median[s, q] == "") {
                    line = line sprintf(" | %s ANSWER MISSING", label[s]); bad = 1; continue
                }
                ratio = median["carecount", q] > 0 ? median[s, q] / median["carecount", q] : 0;
                line = line sprintf(" | %s %8.1f ms %6.1fx", label[s], median[s, q], ratio);
                if (total[s, q] != total["carecount", q] || cells[s, q] != cells["carecount", q]) {
                    line = line sprintf(" ANSWER DIFFERS (total %s cells %s vs %s cells %s)",
                                        total[s, q], cells[s, q], total["carecount", q],
                                        cells["carecount", q]);
                    bad = 1
                }
            }
            print line
        }
        exit bad
    }' "$results" | sort | tee "$work/ratios.txt" || status=$?
if [ "$status" != 0 ] || grep -q 'ANSWER DIFFERS\|ANSWER MISSING\|no carecount answer' "$work/ratios.txt"; then
    echo "bench/run.sh: FAILED: a peer's answer differs from the engine's (see above)" >&2
    exit 1
fi
echo "every peer answer has the engine's total and non-zero cells"
echo
echo "all figures: $results"
