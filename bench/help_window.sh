#!/usr/bin/env bash
# Benchmark: the help hotkey and the resident service's memory with the `desktop` feature.
#
#   bash bench/help_window.sh [RUNS] [SECONDS]     # default 10 key presses, 30 s RSS sampling
#
# Needs Xvfb and xdotool (apt-get install xvfb xdotool). Starts a private Xvfb, a throwaway
# collector on 127.0.0.1 and one enrolled agent (release builds), then measures, in one run:
# - key press -> help window mapped: `xdotool key ctrl+alt+h` to the window being visible
#   (polled with `xdotool search`), against two floors: one `xdotool search` round trip (the
#   polling itself) and `lifeline-agent help` started directly (process start + GL window);
# - idle `lifeline-agent run` RSS: a headless build (--no-default-features), the desktop build
#   without a display, and the desktop build on the X display with the hotkey grabbed.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-10}"
secs="${2:-30}"
target="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release -p lifeline-agent -p lifeline-collector
cargo build --release -p lifeline-agent --no-default-features --target-dir "$target/headless"
bin=$target/release
headless=$target/headless/release/lifeline-agent
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT

Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" 2>/dev/null &
for _ in $(seq 100); do [ -s "$work/display" ] && break; sleep 0.1; done
display=":$(cat "$work/display")"

"$bin/lifeline-collector" serve --data-dir "$work/data" --listen 127.0.0.1:0 >"$work/serve.log" 2>&1 &
for _ in $(seq 100); do [ -s "$work/data/listen-addr" ] && break; sleep 0.1; done
server="https://$(cat "$work/data/listen-addr")"
enroll_token=$(grep -o 'lle_[A-Za-z0-9_-]*' "$work/serve.log" | head -1)
export LIFELINE_AGENT_DIR="$work/agent"
"$bin/lifeline-agent" enroll --server "$server" --token "$enroll_token" --ca "$work/data/ca.pem" >/dev/null
"$bin/lifeline-agent" snapshot --json >/dev/null   # warm the pending-updates cache

# Mean idle RSS (MiB, one decimal) of `$@` over $secs seconds.
idle_rss() {
  "$@" 2>"$work/run.log" &
  local pid=$! sum=0 n=0
  sleep 2
  for _ in $(seq "$secs"); do
    sum=$((sum + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status"))); n=$((n + 1)); sleep 1
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  python3 -c "print(f'{$sum / $n / 1024:.1f}')"
}
rss_display=$(DISPLAY="$display" idle_rss "$bin/lifeline-agent" run)
rss_headless=$(unset DISPLAY; idle_rss "$headless" run)
rss_nodisplay=$(unset DISPLAY; idle_rss "$bin/lifeline-agent" run)
echo "idle service RSS over ${secs}s: headless build ${rss_headless} MiB, desktop build without display ${rss_nodisplay} MiB, desktop build with hotkey on X11 ${rss_display} MiB"

DISPLAY="$display" "$bin/lifeline-agent" run 2>"$work/service.log" &
for _ in $(seq 100); do grep -q "for help" "$work/service.log" && break; sleep 0.1; done
DISPLAY="$display" python3 - "$bin" "$runs" <<'PY'
import subprocess, sys, time, statistics
bin, runs = sys.argv[1], int(sys.argv[2])
title = "Lifeline - Get help"

def visible():
    out = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", title],
                         capture_output=True, text=True).stdout.split()
    return out[0] if out else None

def wait_shown(t0):
    while True:
        w = visible()
        if w:
            return time.perf_counter() - t0, w
        if time.perf_counter() - t0 > 30:
            sys.exit("the help window did not show within 30 s")

def close(w):
    subprocess.run(["xdotool", "windowfocus", "--sync", w, "key", "Escape"], check=True)
    while visible():
        time.sleep(0.01)

floor = []
for _ in range(runs):
    t = time.perf_counter(); visible(); floor.append(time.perf_counter() - t)

direct = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen([f"{bin}/lifeline-agent", "help"], stderr=subprocess.DEVNULL)
    dt, w = wait_shown(t0); direct.append(dt); close(w); p.wait()

hotkey = []
for _ in range(runs):
    time.sleep(0.3)
    t0 = time.perf_counter()
    subprocess.run(["xdotool", "key", "ctrl+alt+h"], check=True)
    dt, w = wait_shown(t0); hotkey.append(dt); close(w)

m = lambda xs: statistics.median(xs) * 1000
print(f"floor: one xdotool search round trip: {m(floor):.0f} ms")
print(f"`lifeline-agent help` started directly -> window shown: {m(direct):.0f} ms (median of {runs})")
print(f"Ctrl+Alt+H -> help window shown: {m(hotkey):.0f} ms (median of {runs}) = "
      f"{m(hotkey)/m(direct):.2f}x the direct start; worst {max(hotkey)*1000:.0f} ms")
PY
