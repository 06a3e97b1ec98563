#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian machine: installs what is
# missing, builds, generates the built-in synthetic data set, ingests it
# (printing the linkage report), starts the server on a loopback port,
# asks it and the client what exists so far, and stops the server cleanly.
#
#   bash scripts/demo.sh [--patients N] [--seed S]
#
# Everything it writes goes under demo/ (the key under demo/secrets/, outside
# the data directory demo/data/).
set -euo pipefail
cd "$(dirname "$0")/.."

patients=100000
seed=1
while (($#)); do
  case "$1" in
    --patients) patients="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
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

step "start carecountd on a free loopback port"
"$bin/carecountd" --listen 127.0.0.1:0 --port-file demo/port --data demo/data \
  --key demo/secrets/carecount.key 2> demo/carecountd.log &
server=$!
trap 'kill "$server" 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s demo/port ] && break; sleep 0.1; done
port=$(cat demo/port)
echo "listening on 127.0.0.1:$port"
"$bin/carecount" ping --port "$port"

step "example queries, checked by the client before sending"
for q in examples/queries/*.json; do
  echo "-- $q"
  if "$bin/carecount" check --codelists demo/feeds/codelists "$q" >/dev/null; then
    echo "   valid"
  fi
done
echo
echo "Disclosure control (the release layer) is built; the server answers queries once its"
echo "count and compare operations land. No figure leaves it unprotected."

step "a planner's check by hand: Wilson intervals for two proportions"
printf 'area,numerator,denominator\nA,120,1500\nB,45,1400\n' | "$bin/carecount" stats proportion

step "stop the server (SIGTERM) and wait for a clean exit"
kill -TERM "$server"
status=0
wait "$server" || status=$?
trap - EXIT
echo "carecountd exited with status $status"
tail -3 demo/carecountd.log
exit "$status"
