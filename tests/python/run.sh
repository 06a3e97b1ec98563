#!/usr/bin/env bash
# The Python client (tests/python/carecount_client.py, written from
# docs/protocol.md alone) against the real carecountd: generated data,
# ingest, a researcher's account and token made with the real commands, one
# count and one compare, over msgpack and over HTTP/JSON (http_client.py,
# Python's http.client); the answers are checked against the disclosure
# policy by tests/python/check_answers.py.
#   run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
bin="$1"
src="$2"
# Debian's python3 (with python3-msgpack from scripts/deps.sh), not another
# python3 that may come first on PATH
py=/usr/bin/python3
[ -x "$py" ] || py=python3
work=$(mktemp -d /tmp/cc-python.XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/carecount" generate --quiet --patients 4000 --seed 9 --out "$work/feeds"
"$bin/carecount" keygen "$work/key" >/dev/null
"$bin/carecount" ingest --quiet --data "$work/data" --key "$work/key" "$work/feeds" >/dev/null
"$bin/carecount" account add py-researcher --role researcher --data "$work/data" >/dev/null
"$bin/carecount" token issue py-researcher --data "$work/data" --out "$work/token" >/dev/null

"$bin/carecountd" --listen 127.0.0.1:0 --port-file "$work/port" --data "$work/data" \
  --key "$work/key" --codelists "$work/feeds/codelists" \
  --http-listen 127.0.0.1:0 --http-port-file "$work/http_port" 2>"$work/log" &
server=$!
for _ in $(seq 200); do [ -s "$work/port" ] && [ -s "$work/http_port" ] && break; sleep 0.05; done
port=$(cat "$work/port")
http_port=$(cat "$work/http_port")

client="$py $src/tests/python/carecount_client.py --port $port --token-file $work/token"
$client count "$src/examples/queries/diabetes_by_region.json" > "$work/count.json"
$client compare "$src/examples/comparisons/diabetes_by_icb.json" > "$work/compare.json"
"$py" "$src/tests/python/check_answers.py" "$work/count.json" "$work/compare.json"

# a bad token is refused with AUTH and exit status 1
printf 'cc1_not_a_token\n' > "$work/bad"
chmod 600 "$work/bad"
if "$py" "$src/tests/python/carecount_client.py" --port "$port" --token-file "$work/bad" \
     count "$src/examples/queries/diabetes_by_region.json" 2>"$work/err"; then
  echo "a bad token was accepted" >&2; exit 1
fi
grep -q "AUTH" "$work/err" || { echo "no AUTH error: $(cat "$work/err")" >&2; exit 1; }

# the same answers over HTTP/JSON with Python's http.client
http="$py $src/tests/python/http_client.py --port $http_port --token-file $work/token"
$http count "$src/examples/queries/diabetes_by_region.json" query > "$work/http_count.json"
$http compare "$src/examples/comparisons/diabetes_by_icb.json" comparison > "$work/http_compare.json"
"$py" "$src/tests/python/check_answers.py" "$work/http_count.json" "$work/http_compare.json"
if $py "$src/tests/python/http_client.py" --port "$http_port" --token-file "$work/bad" \
     count "$src/examples/queries/diabetes_by_region.json" query 2>"$work/err"; then
  echo "a bad token was accepted over HTTP" >&2; exit 1
fi
grep -q "HTTP 401 AUTH" "$work/err" || { echo "no 401 AUTH: $(cat "$work/err")" >&2; exit 1; }

kill -TERM "$server"
wait "$server"
server=""
echo "python client: count and compare ok, over msgpack and over HTTP"
