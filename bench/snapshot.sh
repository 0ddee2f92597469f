#!/usr/bin/env bash
# Benchmark: `lifeline-agent snapshot` wall time and peak RSS against its floor (the 200 ms CPU
# sample alone) and against `inxi -Fxz`, measured side by side in one run on this machine.
#
#   bash bench/snapshot.sh            # needs hyperfine and inxi (apt-get install hyperfine inxi)
#
# Prints each figure and the ratios; BENCHMARKS.md records the results.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine inxi /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install hyperfine inxi time" >&2; exit 1; }
done

cargo build --release -p lifeline-agent
agent=target/release/lifeline-agent
export LIFELINE_AGENT_DIR="${LIFELINE_AGENT_DIR:-$(mktemp -d)}"
# Warm the pending-updates cache, as on any machine after the first snapshot.
$agent snapshot --json >/dev/null

out=$(mktemp -d)
hyperfine --warmup 2 --runs 15 --export-json "$out/h.json" \
  -n floor "$agent snapshot --json --section cpu" \
  -n snapshot "$agent snapshot --json" \
  -n inxi "inxi -Fxz -c 0" >&2

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
python3 - "$out/h.json" "$(rss $agent snapshot --json)" "$(rss inxi -Fxz -c 0)" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
f, s, i = (r[k]["mean"] for k in ("floor", "snapshot", "inxi"))
print(f"floor (CPU sample only): {f*1000:7.1f} ms")
print(f"snapshot (all sections): {s*1000:7.1f} ms  = {s/f:.2f}x floor")
print(f"inxi -Fxz:               {i*1000:7.1f} ms")
print(f"snapshot / inxi:         {s/i:.3f}  (goal <= 0.25)")
print(f"peak RSS snapshot: {int(sys.argv[2])/1024:.1f} MiB, inxi: {int(sys.argv[3])/1024:.1f} MiB")
PY
