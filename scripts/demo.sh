#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian machine: installs what is
# missing, builds, generates the built-in synthetic data set, ingests it
# (printing the linkage report), makes a researcher's and a planner's
# accounts, starts the server on a loopback port, sends it the example
# queries and comparisons and prints the protected answers, shows the audit
# log, prints the address of the dashboard page (and, with --serve, keeps
# the server up for a browser until Ctrl-C), and stops the server cleanly.
#
#   bash scripts/demo.sh [--patients N] [--seed S] [--serve]
#
# Everything it writes goes under demo/ (the key under demo/secrets/, outside
# the data directory demo/data/).
set -euo pipefail
cd "$(dirname "$0")/.."

patients=100000
seed=1
serve=0
while (($#)); do
  case "$1" in
    --patients) patients="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --serve) serve=1; shift ;;
    -h|--help) sed -n '2,/^set /p' "$0" | grep '^#'; exit 0 ;;
    *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "install dependencies (quiet when all are there)"
bash scripts/deps.sh

step "build (Release)"
bash scripts/build.sh Release >/dev/null
bin=build/release

rm -rf demo
mkdir -p demo/secrets
chmod 700 demo/secrets

step "generate the synthetic data set: $patients patients, seed $seed"
"$bin/carecount" generate --patients "$patients" --seed "$seed" --out demo/feeds
ls -l demo/feeds | sed 1d

step "make the pseudonymisation key (outside the data directory)"
"$bin/carecount" keygen demo/secrets/carecount.key

step "ingest: validate, pseudonymise, link, apply opt-outs, store"
"$bin/carecount" ingest --data demo/data --key demo/secrets/carecount.key demo/feeds
echo
echo "first rejected rows (file, line, reason; never their content):"
head -4 demo/data/rejects/ingest-000001.csv | sed 's/^/  /'

step "ingest the same feeds again: nothing changes"
"$bin/carecount" ingest --quiet --data demo/data --key demo/secrets/carecount.key demo/feeds | tail -2

step "practice staff confirm a patient's opt-out status (the NHS number is never printed)"
nhs=$(awk -F, 'NR>1 && $2=="ndop" && $3=="register" {print $1; exit}' demo/feeds/optout_register.csv)
echo "$nhs" | "$bin/carecount" optout history --data demo/data --key demo/secrets/carecount.key \
  --nhs-number - || true

step "accounts: a researcher and a planner, each with a token (shown once, kept 0600)"
"$bin/carecount" account add demo-researcher --role researcher --data demo/data
"$bin/carecount" account add demo-planner --role planner --data demo/data
"$bin/carecount" token issue demo-researcher --data demo/data --out demo/secrets/researcher.token
"$bin/carecount" token issue demo-planner --data demo/data --out demo/secrets/planner.token

step "a dashboard account: it may run only the operator-approved saved comparisons"
"$bin/carecount" account add demo-dashboard --role dashboard --data demo/data
"$bin/carecount" token issue demo-dashboard --data demo/data --out demo/secrets/dashboard.token
mkdir -p demo/saved
cp examples/comparisons/*.json demo/saved/
ls demo/saved

step "start carecountd on a free loopback port"
"$bin/carecountd" --listen 127.0.0.1:0 --port-file demo/port --data demo/data \
  --key demo/secrets/carecount.key --codelists demo/feeds/codelists --saved demo/saved \
  --http-listen 127.0.0.1:0 --http-port-file demo/http_port 2> demo/carecountd.log &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s demo/port ] && [ -s demo/http_port ] && break; sleep 0.1; done
port=$(cat demo/port)
echo "listening on 127.0.0.1:$port"
"$bin/carecount" ping --port "$port"

step "a researcher's queries: checked by the client, answered by the server (protected)"
for q in examples/queries/*.json; do
  echo
  echo "-- $q"
  "$bin/carecount" check --codelists demo/feeds/codelists "$q" >/dev/null || continue
  st=0
  "$bin/carecount" count --port "$port" --token-file demo/secrets/researcher.token "$q" \
    > demo/answer.txt || st=$?
  case $st in
    0) if [ "$(wc -l < demo/answer.txt)" -gt 24 ]; then
         head -16 demo/answer.txt; echo "   ... ($(wc -l < demo/answer.txt) lines; the legend:)"
         sed -n '/^disclosure control/,$p' demo/answer.txt
       else cat demo/answer.txt; fi ;;
    3) echo "   (refused by the disclosure policy, as it should be)" ;;
    *) echo "   failed with status $st" ; exit 1 ;;
  esac
done

step "the same kind of question written as flags (carecount count --help lists them)"
echo "-- carecount count --by region,sex --code icd10:E11 --from 2021-01 --to 2023-12"
"$bin/carecount" count --port "$port" --token-file demo/secrets/researcher.token \
  --by region,sex --code icd10:E11 --from 2021-01 --to 2023-12 > demo/answer.txt
head -12 demo/answer.txt; echo "   ..."; sed -n '/^disclosure control/,$p' demo/answer.txt
echo "-- the file those flags make (--print-query), to keep for reproducible research:"
"$bin/carecount" count --by region,sex --code icd10:E11 --from 2021-01 --to 2023-12 --print-query

step "a planner's area comparisons, from protected counts only"
for c in examples/comparisons/*.json; do
  echo
  echo "-- $c"
  st=0
  "$bin/carecount" compare --port "$port" --token-file demo/secrets/planner.token "$c" \
    > demo/answer.txt || st=$?
  case $st in
    0) if [ "$(wc -l < demo/answer.txt)" -gt 30 ]; then
         head -14 demo/answer.txt; echo "   ... ($(wc -l < demo/answer.txt) lines)"
         sed -n '/^disclosure control/,$p' demo/answer.txt
       else cat demo/answer.txt; fi ;;
    3) echo "   (refused by the disclosure policy at this data size, as it should be)" ;;
    *) echo "   failed with status $st"; exit 1 ;;
  esac
done

step "the audit log: every request, committed before its reply; the chain verifies"
"$bin/carecount" audit show --data demo/data --key demo/secrets/carecount.key --limit 5
"$bin/carecount" audit verify --data demo/data --key demo/secrets/carecount.key

step "a planner's check by hand: Wilson intervals for two proportions"
printf 'area,numerator,denominator\nA,120,1500\nB,45,1400\n' | "$bin/carecount" stats proportion

step "the dashboard page, served by carecountd's HTTP listener"
http_port=$(cat demo/http_port)
url="http://127.0.0.1:$http_port/dashboard/"
echo "page: $(curl -s -o /dev/null -w '%{http_code} %{content_type}' "$url")"
echo "saved comparisons the dashboard token may run:"
curl -s -X POST -H "Authorization: Bearer $(cat demo/secrets/dashboard.token)" \
  -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$http_port/v1/saved_list" |
  /usr/bin/python3 -c 'import json, sys
for s in json.load(sys.stdin)["saved"]:
    print("  %-30s %s by %s, against %s" % (s["name"], s.get("method", ""), s.get("level", ""), s.get("comparator", "")))'
echo
echo "dashboard: $url"
echo "token:     demo/secrets/dashboard.token (paste it into the page)"
if ((serve)); then
  echo "serving until Ctrl-C (scripts/demo.sh --serve)"
  # Ctrl-C ends the wait (the server, started in the background, ignores
  # it); the server is then stopped below as without --serve
  trap ':' INT
  wait "$server" || true
  trap - INT
fi

step "stop the server (SIGTERM) and wait for a clean exit"
kill -TERM "$server"
status=0
wait "$server" || status=$?
trap - EXIT
echo "carecountd exited with status $status"
tail -3 demo/carecountd.log
exit "$status"
