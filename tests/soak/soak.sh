#!/usr/bin/env bash
# The soak test (issue 21): the real carecountd for rounds of SECONDS (default 6)
# with hundreds of connections at once, good and bad: 96 good msgpack
# clients and 32 good HTTP clients (bench_load, every release checked byte
# for byte against the engine's own) while 64 threads keep slow, malformed,
# abandoned and idle clients coming (tests/soak/abuse.py). Then:
#  - every good request was answered correctly (bench_load exits 0:
#    errors=0 mismatched=0);
#  - the server still answers, and its resident memory, after the clients
#    are gone, is back near where it was after a warm-up run (within
#    16 MiB: what glibc keeps for reuse and SQLite's page caches), and the
#    last of SOAK_ROUNDS (3) rounds leaves it where the round before did
#    (within 4 MiB: no growth per round; it found the audit log's page
#    cache filling with every request);
#  - it shuts down cleanly on SIGTERM (under the sanitizer build,
#    LeakSanitizer would fail that exit on any leak).
#   soak.sh BUILD_DIR SOURCE_DIR [SECONDS]
# Asserts no time. A long soak: soak.sh BUILD SRC 120 with SOAK_ROUNDS=10.
set -euo pipefail
bin="$1"
src="$2"
seconds="${3:-6}"
py=/usr/bin/python3
work=$(mktemp -d /tmp/cc-soak.XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/carecount" generate --quiet --patients 10000 --seed 21 --out "$work/feeds"
"$bin/carecount" keygen --out "$work/key" >/dev/null
"$bin/carecount" ingest --quiet --data "$work/data" --key "$work/key" "$work/feeds" >/dev/null
"$bin/carecount" account add soak-researcher --role researcher --data "$work/data" >/dev/null
"$bin/carecount" token issue soak-researcher --data "$work/data" --out "$work/token" >/dev/null

"$bin/carecountd" --listen 127.0.0.1:0 --port-file "$work/port" --data "$work/data" \
  --key "$work/key" --http-listen 127.0.0.1:0 --http-port-file "$work/http_port" \
  --max-connections 1024 --max-requests-per-account-minute 100000000 \
  --frame-timeout-ms 2000 --idle-timeout-ms 3000 2>"$work/log" &
server=$!
for _ in $(seq 300); do [ -s "$work/port" ] && [ -s "$work/http_port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
http_port=$(cat "$work/http_port")
rss() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }
load() {
  "$bin/bench_load" --port "$1" --token-file "$work/token" --check-data "$work/data" \
    --check-key "$work/key" "${@:2}"
}

# warm up: every query of the mix once through each protocol, then the baseline
load "$port" --connections 4 --duration-s 2 > "$work/warm1.txt"
load "$http_port" --http --connections 4 --duration-s 2 > "$work/warm2.txt"
sleep 1
baseline=$(rss)

# two rounds of the same abuse: memory may rise in the first (glibc keeps
# freed memory in its per-thread arenas for reuse) but must not keep rising
status=0
round() {
  load "$port" --connections 96 --duration-s "$seconds" > "$work/good$1.txt" &
  local good=$!
  load "$http_port" --http --connections 32 --duration-s "$seconds" > "$work/good_http$1.txt" &
  local good_http=$!
  "$py" "$src/tests/soak/abuse.py" "$port" "$http_port" "$seconds" 64 > "$work/abuse$1.txt" &
  local abuse=$!
  wait "$good" || { echo "soak: good msgpack clients failed"; status=1; }
  wait "$good_http" || { echo "soak: good HTTP clients failed"; status=1; }
  wait "$abuse" || { echo "soak: the server stopped accepting"; status=1; }
  grep -h "RESULT\|abuse:" "$work/good$1.txt" "$work/good_http$1.txt" "$work/abuse$1.txt" \
    | sed 's/^/soak round '"$1"': /' | cut -c1-220
  # the bad clients' connections time out (frame 2 s, idle 3 s); then look
  sleep 5
  load "$port" --connections 2 --duration-s 1 > "$work/after$1.txt" \
    || { echo "soak: not answering after round $1"; status=1; }
}
rounds="${SOAK_ROUNDS:-3}"
declare -a after
for r in $(seq "$rounds"); do
  round "$r"
  after[$r]=$(rss)
  echo "soak: RSS after round $r: ${after[$r]} KiB (baseline ${baseline} KiB)"
done
# Under the sanitizer build the memory is ASan's (its quarantine holds freed
# blocks by design): there the leak check is LeakSanitizer's, at exit.
asan=0
ldd "$bin/carecountd" 2>/dev/null | grep -q libasan && asan=1
if [ "$asan" = 1 ]; then
  echo "soak: sanitizer build: memory figures reported, not bounded (LeakSanitizer checks at exit)"
elif [ "${after[1]}" -gt $((baseline + 16384)) ]; then
  echo "soak: memory did not come back after round 1 (+$((after[1] - baseline)) KiB)"
  status=1
fi
last=${after[$rounds]}
previous=${after[$((rounds - 1))]}
if [ "$asan" = 0 ] && [ "$last" -gt $((previous + 4096)) ]; then
  echo "soak: memory kept rising in the last round (+$((last - previous)) KiB): a leak"
  status=1
fi
kill -TERM "$server"
rc=0
wait "$server" || rc=$?
server=""
if [ "$rc" != 0 ]; then
  echo "soak: the server exited with $rc (a leak report under the sanitizer build?)"
  tail -30 "$work/log"
  status=1
fi
grep -c "refused a\|closed" "$work/log" | sed 's/^/soak: server log lines about refused or closed connections: /' || true
exit $status
