#!/usr/bin/env bash
# Benchmark: the idle agent service (RSS and CPU over 60 s) and live-inspection latency on
# loopback, against its floor (a bare `lifeline-agent snapshot`, which the inspection runs).
#
#   bash bench/agent_service.sh [SECONDS]     # default 60
#
# Starts a throwaway collector on 127.0.0.1 (port picked by the OS) and one enrolled agent.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cargo build --release -p lifeline-agent -p lifeline-collector
bin=$PWD/target/release
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

"$bin/lifeline-collector" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
for _ in $(seq 100); do [ -s "$work/data/listen-addr" ] && break; sleep 0.1; done
addr=$(cat "$work/data/listen-addr")
server="https://$addr"
enroll_token=$(grep -o 'lle_[A-Za-z0-9_-]*' "$work/serve.log" | head -1)
admin_token=$(grep -o 'llu_[A-Za-z0-9_-]*' "$work/serve.log" | head -1)
export LIFELINE_AGENT_DIR="$work/agent"
"$bin/lifeline-agent" enroll --server "$server" --token "$enroll_token" --ca "$work/data/ca.pem" >/dev/null
"$bin/lifeline-agent" snapshot --json >/dev/null   # warm the pending-updates cache
"$bin/lifeline-agent" run 2>"$work/agent.log" &
agent_pid=$!
sleep 2

ticks() { awk '{print $14 + $15}' "/proc/$agent_pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); peak=0; sum=0; n=0
for _ in $(seq "$secs"); do
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$agent_pid/status")
  sum=$((sum + rss)); n=$((n + 1)); [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 1
done
t1=$(ticks)
cpu=$(python3 -c "print(f'{($t1-$t0)/$hz/$secs*100:.3f}')")
echo "idle service over ${secs}s: mean RSS $((sum / n / 1024)) MiB, peak $((peak / 1024)) MiB (goal <= 15), CPU ${cpu}% of one core"

export LIFELINE_SERVER="$server" LIFELINE_TOKEN="$admin_token" LIFELINE_CA="$work/data/ca.pem"
machine=$(python3 -c "import json;print(json.load(open('$LIFELINE_AGENT_DIR/agent.json'))['machine_id'])")
python3 - "$bin" "$machine" <<'PY'
import subprocess, sys, time, statistics
bin, machine = sys.argv[1], sys.argv[2]
def timed(cmd):
    t = time.perf_counter(); subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t
floor = statistics.median(timed([f"{bin}/lifeline-agent", "snapshot", "--json"]) for _ in range(5))
lat = statistics.median(timed([f"{bin}/lifeline-collector", "machines", "inspect", machine, "--json"]) for _ in range(5))
print(f"floor (agent snapshot alone): {floor*1000:.0f} ms")
print(f"inspect round trip (CLI -> collector -> agent long-poll -> snapshot -> result -> CLI): {lat*1000:.0f} ms = {lat/floor:.2f}x floor")
PY
