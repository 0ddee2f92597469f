#!/usr/bin/env bash
# API conformance: schemathesis against a throwaway collector, with every check, negative
# (schema-invalid) data and stateful (link-following) tests. Exits non-zero on any failure.
#
#   bash tests/schemathesis.sh            # needs python3 (3.9+) with venv; fetches schemathesis once
#
# Settings from the environment:
#   SCHEMATHESIS_MAX_EXAMPLES  test cases per operation and phase (default 50)
#   SCHEMATHESIS_SEED          seed, for a reproducible run (default 1)
#   SCHEMATHESIS_VENV          where schemathesis is installed (default ~/.cache/lifeline/schemathesis)
#   SCHEMATHESIS_REPORT_DIR    where the JUnit report goes (default: a temporary directory)
#
# The collector starts on 127.0.0.1 port 0 with a temporary data directory, gets an enrolled
# agent and a filed ticket (so paths with ids have real data), and a second admin whose token the
# run uses: the run may revoke any other user, and the collector refuses self-revocation, so the
# token stays valid to the end. The collector is stopped and its directory removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-50}
seed=${SCHEMATHESIS_SEED:-1}
venv=${SCHEMATHESIS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lifeline/schemathesis}

if [[ ! -x "$venv/bin/schemathesis" ]] ||
  [[ "$("$venv/bin/schemathesis" --version)" != *" $SCHEMATHESIS_VERSION" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet -p lifeline-collector -p lifeline-agent
target=${CARGO_TARGET_DIR:-target}
collector="$target/debug/lifeline-collector"
agent="$target/debug/lifeline-agent"

work=$(mktemp -d)
pid=
cleanup() {
  if [[ -n "$pid" ]]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

data="$work/data"
"$collector" serve --data-dir "$data" --listen 127.0.0.1:0 >"$work/stdout" 2>"$work/stderr" &
pid=$!
for _ in $(seq 1 300); do
  [[ -s "$data/listen-addr" ]] && break
  kill -0 "$pid" 2>/dev/null || {
    cat "$work/stderr" >&2
    exit 1
  }
  sleep 0.1
done
[[ -s "$data/listen-addr" ]] || {
  echo "the collector did not start within 30 s" >&2
  exit 1
}
url="https://$(cat "$data/listen-addr")"
admin=$(grep -o 'llu_[A-Za-z0-9_-]*' "$work/stdout" | head -1)
enrollment=$(grep -o 'lle_[A-Za-z0-9_-]*' "$work/stdout" | head -1)
[[ -n "$admin" && -n "$enrollment" ]] || {
  echo "no admin or enrollment token in the first-start output" >&2
  exit 1
}

# Data for the paths with ids: a machine, a ticket with a comment.
export LIFELINE_AGENT_DIR="$work/agent" LIFELINE_SERVER="$url" LIFELINE_CA="$data/ca.pem"
"$agent" enroll --server "$url" --token "$enrollment" --ca "$data/ca.pem" >/dev/null
"$agent" report "schemathesis: a ticket to read" >/dev/null
LIFELINE_TOKEN="$admin" "$collector" tickets comment 1 "a first comment" >/dev/null
# The run's own admin.
run_admin=$(LIFELINE_TOKEN="$admin" "$collector" users add schemathesis --role admin --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])')

reports=${SCHEMATHESIS_REPORT_DIR:-$work/report}
status=0
"$venv/bin/schemathesis" --no-color run "$url/api/v1/openapi.json" \
  --tls-verify "$data/ca.pem" \
  -H "Authorization: Bearer $run_admin" \
  --checks all \
  --mode all \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$max_examples" \
  --seed "$seed" \
  --request-timeout 40 \
  --generation-database none \
  --report junit --report-dir "$reports" || status=$?
if [[ $status -ne 0 ]]; then
  echo "schemathesis found failures (exit $status); collector log: kept below" >&2
  tail -50 "$work/stderr" >&2
fi
exit $status
