#!/usr/bin/env bash
# The dashboard page in headless Chromium against the real carecountd:
# generated data (24,000 patients, seed 1: the planted ICB's diabetes
# prevalence is significantly higher than England's), ingested, a dashboard
# account and its token made with the real commands, the saved comparisons
# of tests/dashboard/saved/, the HTTP listener on a free loopback port; then
# test_dashboard.py drives the page over the DevTools protocol and checks it
# against the server's own JSON replies. Screenshots go to
# BUILD_DIR/test-output/dashboard/.
#   run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
bin="$1"
src="$2"
py=/usr/bin/python3
[ -x "$py" ] || py=python3
chromium=/usr/bin/chromium
if [ ! -x "$chromium" ]; then
  echo "dashboard: $chromium is missing: run scripts/deps.sh (Debian's chromium)" >&2
  exit 1
fi
work=$(mktemp -d /tmp/cc-dashboard.XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/carecount" generate --quiet --patients 24000 --seed 1 --out "$work/feeds"
"$bin/carecount" keygen "$work/key" >/dev/null
"$bin/carecount" ingest --quiet --data "$work/data" --key "$work/key" "$work/feeds" >/dev/null
"$bin/carecount" account add town-dashboard --role dashboard --data "$work/data" >/dev/null
"$bin/carecount" token issue town-dashboard --data "$work/data" --out "$work/token" >/dev/null
mkdir -p "$work/saved"
cp "$src"/tests/dashboard/saved/*.json "$work/saved/"

"$bin/carecountd" --listen 127.0.0.1:0 --port-file "$work/port" --data "$work/data" \
  --key "$work/key" --codelists "$work/feeds/codelists" --saved "$work/saved" \
  --http-listen 127.0.0.1:0 --http-port-file "$work/http_port" 2>"$work/log" &
server=$!
for _ in $(seq 200); do [ -s "$work/http_port" ] && break; sleep 0.05; done
[ -s "$work/http_port" ] || { echo "carecountd did not start:"; cat "$work/log"; exit 1; } >&2

out="$bin/test-output/dashboard"
mkdir -p "$out"
status=0
"$py" "$src/tests/dashboard/test_dashboard.py" --port "$(cat "$work/http_port")" \
  --token-file "$work/token" --manifest "$work/feeds/manifest.json" --out "$out" || status=$?

kill -TERM "$server"
wait "$server" || { echo "carecountd did not stop cleanly:"; tail -5 "$work/log"; status=1; } >&2
server=""
exit "$status"
