#!/usr/bin/env bash
# bench/load.sh: carecountd under load, end to end (issue 17): generate N
# patients, ingest, make a researcher's account and token, start the real
# server on a loopback port, and run bench/bench_load against it: the small
# mix and the heavy mix at 1, 16 and 256 connections, and the ping floor,
# each for a bounded time; then the small mix again while a heavy load runs
# beside it (p99 of small queries and the ping probe's latency under heavy
# load). Prints one RESULT line per run (bench_load's) and writes them to
# DIR/load-results.txt.
#
#   bench/load.sh [--patients N] [--work DIR] [--build DIR] [--seconds S]
#                 [--reuse-data]
#
# N defaults to 1,000,000; DIR to data/load (ignored by git); S to 10.
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
while [ $# -gt 0 ]; do
    case $1 in
    --patients) patients=$2; shift 2 ;;
    --work) work=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --reuse-data) reuse=1; shift ;;
    -h | --help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
    *) echo "bench/load.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
done
load() { cut -d' ' -f1-3 /proc/loadavg; }
say() { printf '\n== %s (load %s)\n' "$*" "$(load)"; }

mkdir -p "$work"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release > "$work/cmake.log"
cmake --build "$build" -j2 --target carecount carecountd bench_load >> "$work/cmake.log"
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
"$cc" token issue load-researcher --data "$work/data" --out "$work/token" > /dev/null

rm -f "$work/port"
"$build/carecountd" --listen 127.0.0.1:0 --port-file "$work/port" --data "$work/data" \
    --key "$work/key" --max-connections 1024 --max-pending-requests 4096 \
    --max-requests-per-account-minute 100000000 \
    2> "$work/carecountd.log" &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 600); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")
results=$work/load-results.txt
: > "$results"
run() {
    say "$*"
    "$build/bench_load" --port "$port" --token-file "$work/token" --duration-s "$seconds" "$@" \
        | sed "s/\$/ load=$(load | cut -d' ' -f1)/" | tee -a "$results"
}
run --mix ping --connections 16
for mix in small heavy; do
    for n in 1 16 256; do
        run --mix "$mix" --connections "$n"
    done
done
say "small queries from 16 connections while 4 heavy connections run"
"$build/bench_load" --port "$port" --token-file "$work/token" --duration-s "$seconds" \
    --mix heavy --connections 4 > "$work/heavy-beside.txt" &
heavy=$!
run --mix small --connections 16
wait "$heavy"
sed 's/^RESULT load/RESULT load-beside/' "$work/heavy-beside.txt" | tee -a "$results"
kill -TERM "$server"
wait "$server" || true
trap - EXIT
