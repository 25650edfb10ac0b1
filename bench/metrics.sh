#!/usr/bin/env bash
# What the /metrics middleware costs: server CPU instructions per request of a dars built
# without it (REF) against one with it (NEW), serving the sample lessons to the same wrk load,
# side by side as a ratio. Instructions counted by valgrind's callgrind (user space, exact;
# this machine's VM has no hardware counters for perf) rather than seconds, so the figure holds
# on a busy machine. Each binary's start-up and shutdown, measured in an idle run, is taken off.
# Usage: bench/metrics.sh REF_BINARY NEW_BINARY   (env: DURATION=10 CONNS=50 PORT=18190)
set -euo pipefail
REF=${1:?usage: bench/metrics.sh REF_BINARY NEW_BINARY}
NEW=${2:?usage: bench/metrics.sh REF_BINARY NEW_BINARY}
DURATION=${DURATION:-10}
CONNS=${CONNS:-50}
PORT=${PORT:-18190}
for tool in wrk valgrind curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install wrk valgrind curl)"; exit 1; }
done
WORK=$(mktemp -d /tmp/dars-bench-metrics-$$.XXXX)
PIDS=""
trap 'for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"' EXIT

# A URL mix of what phones ask for: entry pages (views) and their files.
"$REF" --data "$WORK/seed" serve --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
SEED=$!
PIDS="$SEED"
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
curl -fs "http://127.0.0.1:$PORT/api/v1/lessons" | python3 -c '
import json, sys
for l in json.load(sys.stdin)["lessons"]:
    print("/lessons/%s/" % l["id"])
' > "$WORK/urls"
kill "$SEED"; wait "$SEED" || true
cat > "$WORK/mix.lua" <<EOF
local urls = {}
for line in io.lines("$WORK/urls") do urls[#urls + 1] = line end
local i = 0
request = function()
  i = i % #urls + 1
  return wrk.format("GET", urls[i], {["Accept-Encoding"] = "gzip"})
end
EOF

run() { # name binary seconds -> "instructions requests"
  local data="$WORK/data-$1-$3"
  cp -r "$WORK/seed" "$data"
  DARS_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$WORK/cg-$1-$3" \
    "$2" --data "$data" serve --listen 127.0.0.1:$PORT >/dev/null 2>"$WORK/vg-$1-$3" &
  local pid=$!
  trap "kill $pid 2>/dev/null || true" EXIT  # run() is in its own subshell
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
  local requests=0
  if [ "$3" -gt 0 ]; then
    requests=$(wrk -t2 -c"$CONNS" -d"${3}s" -s "$WORK/mix.lua" "http://127.0.0.1:$PORT" \
      | awk '/requests in/ {print $1}')
  fi
  kill -INT "$pid"; wait "$pid" || true
  local instructions
  instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$WORK/cg-$1-$3")
  echo "$instructions $requests"
}

uptime
read -r ref_idle _ < <(run ref "$REF" 0)
read -r new_idle _ < <(run new "$NEW" 0)
read -r ref_i ref_n < <(run ref "$REF" "$DURATION")
read -r new_i new_n < <(run new "$NEW" "$DURATION")
python3 - "$ref_i" "$ref_n" "$ref_idle" "$new_i" "$new_n" "$new_idle" <<'EOF'
import sys
ri, rn, r0, ni, nn, n0 = map(float, sys.argv[1:])
r, n = (ri - r0) / rn, (ni - n0) / nn
print(f"{'':28} {'without':>12} {'with /metrics':>14} {'ratio':>7}")
print(f"{'requests served':28} {rn:>12,.0f} {nn:>14,.0f}")
print(f"{'instructions per request':28} {r:>12,.0f} {n:>14,.0f} {n / r:>7.3f}")
EOF
uptime
