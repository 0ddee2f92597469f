#!/usr/bin/env bash
# Benchmark: `lifeline-agent snapshot` wall time and peak RSS against its floor (the 200 ms CPU
# sample alone) and against `inxi -Fxz` and `fusioninventory-inventory`, measured side by side in one
# run on this machine.
#
#   bash bench/snapshot.sh   # needs: apt-get install hyperfine inxi fusioninventory-agent time
#
# Prints each figure and the ratios; BENCHMARKS.md records the results.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in hyperfine inxi fusioninventory-inventory /usr/bin/time; do
  command -v "$tool" >/dev/null || {
    echo "missing $tool: apt-get install hyperfine inxi fusioninventory-agent time" >&2
    exit 1
  }
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
  -n inxi "inxi -Fxz -c 0" \
  -n fusioninventory "fusioninventory-inventory" >&2

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
python3 - "$out/h.json" "$(rss $agent snapshot --json)" "$(rss inxi -Fxz -c 0)" \
  "$(rss fusioninventory-inventory)" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
f, s, i, fi = (r[k]["mean"] for k in ("floor", "snapshot", "inxi", "fusioninventory"))
print(f"floor (CPU sample only): {f*1000:7.1f} ms")
print(f"snapshot (all sections): {s*1000:7.1f} ms  = {s/f:.2f}x floor")
print(f"inxi -Fxz:               {i*1000:7.1f} ms")
print(f"fusioninventory-inventory: {fi*1000:5.1f} ms")
print(f"snapshot / inxi:            {s/i:.3f}  (goal <= 0.25)")
print(f"snapshot / fusioninventory: {s/fi:.3f}")
mib = [int(x) / 1024 for x in sys.argv[2:5]]
print(f"peak RSS snapshot: {mib[0]:.1f} MiB, inxi: {mib[1]:.1f} MiB, "
      f"fusioninventory: {mib[2]:.1f} MiB")
PY
