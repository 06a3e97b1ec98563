#!/usr/bin/env bash
# bench/load.sh: carecountd under load, end to end (issue 17): generate N
# patients, ingest, make a researcher's account and token, start the real
# server on a loopback port; time the four reference queries and a DSR
# comparison end to end against the engine alone (bench/bench_e2e, which
# also checks the server's releases are the engine's, byte for byte); and
# run bench/bench_load against it: the small
# mix and the heavy mix at 1, 16 and 256 connections, and the ping floor,
# each for a bounded time; then the small mix again while a heavy load runs
# beside it (p99 of small queries and the ping probe's latency under heavy
# load); and the same mixes over HTTP/JSON. Every run checks that each
# release the server sends under load is byte-identical to the engine's
# own release of the query, computed in process on the same data
# (bench_load --check-data): "mismatched=0". Prints one RESULT line per run
# (bench_load's) and writes them to DIR/load-results.txt.
#
#   bench/load.sh [--patients N] [--work DIR] [--build DIR] [--seconds S]
#                 [--reuse-data] [--smoke] [--threads T] [--no-release-cache]
#
# N defaults to 1,000,000; DIR to data/load (ignored by git); S to 10;
# T (the server's --threads) to the server's default. --no-release-cache
# starts the server with --release-cache-mb 0, so that every request takes
# the full path (engine, release layer, ledger): the mixes repeat their
# few queries, which the cache otherwise answers after the first asking.
# --smoke (what ctest's load_smoke runs, at 10,000 patients and 2 s): a
# few connections per mix and protocol, no rebuild (DIR/--build given),
# failing on any error or mismatch; it asserts no time.
# Prints the machine's load beside each figure: the machine is shared.
#
# Must never: talk to anything but 127.0.0.1; assert a time; leave the
# server running.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/.." && pwd)
patients=1000000
work=$src/data/load
build=$src/build/bench
seconds=10
reuse=0
smoke=0
server_args=()
while [ $# -gt 0 ]; do
    case $1 in
    --patients) patients=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --reuse-data) reuse=1; shift ;;
    --smoke) smoke=1; shift ;;
    --threads) server_args+=(--threads "$2"); shift 2 ;;
    --no-release-cache) server_args+=(--release-cache-mb 0); shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
    *) echo "bench/load.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { printf '\n== %s (load %s)\n' "$*" "$(load)"; }

mkdir -p "$work"
if [ "$smoke" = 0 ]; then
    cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log"
    cmake --build "$build" -j2 --target carecount carecountd bench_load bench_e2e \
        >> "$work/cmake.log"
fi
cc=$build/carecount
if [ "$reuse" = 0 ] || [ ! -f "$work/data/state.db" ]; then
    rm -rf "$work/data" "$work/feeds" "$work/key" "$work/token"
    say "generate $patients patients and ingest"
    "$cc" generate --patients "$patients" --seed 1 --out "$work/feeds" --quiet
    "$cc" keygen "$work/key" > /dev/null
    "$cc" ingest --data "$work/data" --key "$work/key" --quiet "$work/feeds" > /dev/null
    "$cc" account add load-researcher --role researcher --data "$work/data" > /dev/null
fi
rm -f "$work/token"
# A data directory reused from bench/run.sh has no load account yet (an
# existing one is kept: the token below fails loudly if there is none).
"$cc" account add load-researcher --role researcher --data "$work/data" > /dev/null 2>&1 || true
"$cc" token issue load-researcher --data "$work/data" --out "$work/token" > /dev/null

# The heavy mix asks district x 10-year band x sex for ages 0-89: 296 x 9
# x 4 sex codes = 10,656 cells at the 10M data set (5-year bands would be
# 21,312; with 90+ the smallest cells fall below min_cell_population and
# the default policy refuses the table), above the default max_cells
# (10,000). An
# operator who serves such tables raises it; the load run does the same,
# and the checks use the same policy.
policy=$work/load-policy.json
printf '{"version": "load-bench-1", "max_cells": 20000}\n' > "$policy"
rm -f "$work/port" "$work/http_port"
"$build/carecountd" "${server_args[@]}" --policy "$policy" --listen 127.0.0.1:0 --port-file "$work/port" --data "$work/data" \
    --http-listen 127.0.0.1:0 --http-port-file "$work/http_port" \
    --key "$work/key" --max-connections 1024 --max-pending-requests 4096 \
    --max-requests-per-account-minute 100000000 \
    2> "$work/carecountd.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$work/port" ] && [ -s "$work/http_port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
http_port=$(cat "$work/http_port")
results=$work/load-results.txt
: > "$results"
check=(--check-data "$work/data" --check-key "$work/key" --policy "$policy")
run() {
    say "$*"
    "$build/bench_load" --port "$port" --token-file "$work/token" --duration-s "$seconds" \
        "${check[@]}" "$@" | sed "s/\$/ load=$(load | cut -d' ' -f1)/" | tee -a "$results"
}
run_http() {
    say "HTTP $*"
    "$build/bench_load" --http --port "$http_port" --token-file "$work/token" \
        --duration-s "$seconds" "${check[@]}" "$@" \
        | sed "s/\$/ load=$(load | cut -d' ' -f1)/" | tee -a "$results"
}
say "end to end against the engine alone"
"$build/bench_e2e" --data "$work/data" --key "$work/key" --port "$port" --token-file "$work/token" \
    --policy "$policy" \
    --runs "$([ "$smoke" = 1 ] && echo 3 || echo 11)" \
    | sed "s/\$/ load=$(load | cut -d' ' -f1)/" | tee -a "$results"
if [ "$smoke" = 1 ]; then
    run --mix ping --connections 2
    run --mix small --connections 4 --pipeline 4
    run --mix heavy --connections 2
    run_http --mix small --connections 4
    run_http --mix heavy --connections 1
    kill -TERM "$server"
    wait "$server"
    trap - EXIT
    grep -q 'mismatched=0' "$results"
    ! grep 'RESULT load' "$results" | grep -v 'mix=ping' | grep -q ' checked=0 '
    ! grep 'RESULT e2e' "$results" | grep -q 'identical=0'
    echo "load smoke: $(wc -l < "$results") runs, every release checked against the engine's"
    exit 0
fi
run --mix ping --connections 16
for mix in small heavy; do
    for n in 1 16 256; do
        run --mix "$mix" --connections "$n"
    done
done
# 16 connections with 4 requests in flight each: more requests waiting on
# one audit commit (the protocol lets a client pipeline)
run --mix small --connections 16 --pipeline 4
say "small queries from 16 connections while 4 heavy connections run"
"$build/bench_load" --port "$port" --token-file "$work/token" --duration-s "$seconds" \
    --mix heavy --connections 4 > "$work/heavy-beside.txt" &
heavy=$!
run --mix small --connections 16
wait "$heavy"
sed 's/^RESULT load/RESULT load-beside/' "$work/heavy-beside.txt" | tee -a "$results"
run_http --mix ping --connections 16
for mix in small heavy; do
    for n in 1 16 256; do
        run_http --mix "$mix" --connections "$n"
    done
done
kill -TERM "$server"
wait "$server" || true
trap - EXIT
