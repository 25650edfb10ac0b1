#!/usr/bin/env bash
# Serving benchmark: dars vs nginx on the same corpus of Debian documentation.
# See bench/README.md. Usage: bench/serve.sh [--quick]
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/serve.sh [--quick]

  --quick   small corpus (~1300 files), 5 s runs: a fast end-to-end check

Environment (defaults in brackets):
  DURATION=15         seconds per measured wrk run [15, quick 5]
  WARMUP=3            seconds of wrk warm-up before each measured run [3, quick 2]
  CONNS="50 500"      connection counts to run
  THREADS=2           wrk threads
  PORTS="18080 18081" nginx and dars ports (or NGINX_PORT / DARS_PORT)
  NGINX_WORKERS=2     nginx worker_processes
  NGINX_REUSEPORT=0   1: listen with reuseport (kernel spreads connections over workers)
  WRK_CPUS=           e.g. "1": pin wrk with taskset -c (servers stay unpinned
                      unless SERVER_CPUS is set too)
  SERVER_CPUS=        e.g. "0": pin nginx/dars with taskset -c
  WRK_TIMEOUT=5s      wrk request timeout
  REPEATS=3           rounds of all runs; the report takes each case's best [3, quick 1]
  QUIET_WAIT=120      before each run wait up to this many seconds for the machine to
                      be quiet (other processes < QUIET_PCT=10 % CPU) [120, quick 0]
  QUIET_BUDGET=600     total seconds all those waits may take
  IMPORT_RUNS=2       how many times to time dars import and cp -r
  SKIP_BUILD=1        do not run cargo build --release
  DARS=path           dars binary [target/release/dars]
  DARS_LOG=warn       log filter (DARS_LOG) for dars serve
  NGINX_ONLY=1        skip dars entirely (to develop the harness)
EOF
}

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "serve.sh: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
OUT=$B/out
mkdir -p "$OUT"

if [ "$QUICK" = 1 ]; then
  MODE=quick; SUF=-quick
  DURATION=${DURATION:-5}; WARMUP=${WARMUP:-2}
else
  MODE=full; SUF=
  DURATION=${DURATION:-15}; WARMUP=${WARMUP:-3}
fi
CONNS=${CONNS:-"50 500"}
THREADS=${THREADS:-2}
read -r _p1 _p2 <<<"${PORTS:-18080 18081}"
NGINX_PORT=${NGINX_PORT:-$_p1}
DARS_PORT=${DARS_PORT:-${_p2:-$((_p1 + 1))}}
NGINX_WORKERS=${NGINX_WORKERS:-2}
WRK_CPUS=${WRK_CPUS:-}
SERVER_CPUS=${SERVER_CPUS:-}
WRK_TIMEOUT=${WRK_TIMEOUT:-5s}
IMPORT_RUNS=${IMPORT_RUNS:-2}
REPEATS=${REPEATS:-$([ "$QUICK" = 1 ] && echo 1 || echo 3)}
QUIET_WAIT=${QUIET_WAIT:-$([ "$QUICK" = 1 ] && echo 0 || echo 120)}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_BUDGET=${QUIET_BUDGET:-600}
SKIP_BUILD=${SKIP_BUILD:-0}
NGINX_ONLY=${NGINX_ONLY:-0}
DARS=${DARS:-$ROOT/target/release/dars}
DARS_LOG=${DARS_LOG:-warn}

CORPUS=$OUT/corpus$SUF
WWW=$OUT/nginx-www$SUF
STORE=$OUT/store$SUF
CPDST=$OUT/cp-copy$SUF
NGX=$OUT/nginx$SUF
URLS=$OUT/urls$SUF.txt
RUNS=$OUT/runs$SUF.jsonl
RESULTS=$OUT/serve-results$SUF.md
[ "$MODE" = full ] && RESULTS=$OUT/serve-results.md
LOGS=$OUT/logs$SUF
mkdir -p "$LOGS"
CLK_TCK=$(getconf CLK_TCK)

say() { printf '\n==> %s\n' "$*"; }
die() { echo "serve.sh: error: $*" >&2; exit 1; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# ---------------------------------------------------------------- cleanup
SERVER_PID=
declare -a STARTED=()
cleanup() {
  local p
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p" 2>/dev/null || true
    fi
  done
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    wait "$p" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need=()
for t in nginx wrk curl taskset pgrep gzip dpkg-deb python3; do
  command -v "$t" >/dev/null 2>&1 || need+=("$t")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing missing tools: ${need[*]}"
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}; install nginx-light wrk procps curl"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk procps curl util-linux >/dev/null
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4096 ] || echo "warning: ulimit -n is $(ulimit -n)"

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$NGINX_PORT" "$DARS_PORT"; do
  if port_busy "$p"; then die "port $p is already in use (set PORTS=\"A B\")"; fi
done

# ---------------------------------------------------------------- 1. corpus
say "1. corpus ($MODE) -> ${CORPUS#$ROOT/}"
python3 "$B/corpus.py" --mode "$MODE" --out "$CORPUS" --debs "$OUT/debs" --extract "$OUT/extract"
PACKAGES=$(python3 - "$CORPUS" <<'EOF'
import sys, os, re
pk = set()
for d in os.listdir(sys.argv[1]):
    t = os.path.join(sys.argv[1], d, "lesson.toml")
    if os.path.isfile(t):
        m = re.search(r'package (\S+)\."', open(t).read())
        if m: pk.add(m.group(1))
print(", ".join(sorted(pk)))
EOF
)

# ---------------------------------------------------------------- 2. URL mix
say "2. URL mix -> ${URLS#$ROOT/}"
python3 "$B/urlmix.py" --corpus "$CORPUS" --out "$URLS" --n 1000 --seed 1

# ---------------------------------------------------------------- 3. nginx tree
say "3. nginx document tree -> ${WWW#$ROOT/}"
if [ -f "$WWW.stamp" ] && cmp -s "$WWW.stamp" "$CORPUS.stamp" && [ -d "$WWW/lessons" ]; then
  echo "reusing $WWW"
else
  rm -rf "$WWW" "$WWW.stamp"
  mkdir -p "$WWW/lessons"
  cp -al "$CORPUS/." "$WWW/lessons/"
  # gzip -f: the files are hard links to the corpus, which gzip refuses without -f
  find "$WWW/lessons" -type f \( -iname '*.html' -o -iname '*.htm' -o -iname '*.xhtml' \
      -o -iname '*.css' -o -iname '*.js' -o -iname '*.mjs' -o -iname '*.svg' \
      -o -iname '*.txt' -o -iname '*.json' -o -iname '*.xml' \) -print0 \
    | xargs -0 -r -n 200 -P "$(nproc)" gzip -9 -k -f
  cp "$CORPUS.stamp" "$WWW.stamp"
fi
echo "nginx tree: $(find "$WWW/lessons" -type f -name '*.gz' | wc -l) .gz files beside the originals"

mkdir -p "$NGX/tmp"
python3 "$B/nginx_conf.py" --corpus "$CORPUS" --www "$WWW" --prefix "$NGX" \
  --listen "127.0.0.1:$NGINX_PORT" --workers "$NGINX_WORKERS" \
  $([ "${NGINX_REUSEPORT:-0}" = 1 ] && echo --reuseport) > "$NGX/nginx.conf"
nginx -t -q -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf"

# ---------------------------------------------------------------- servers
wait_ready() { # name pid port
  local name=$1 pid=$2 port=$3 deadline=$((SECONDS + ${READY_TIMEOUT:-60}))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "$name exited before becoming ready; last log lines:" >&2
      tail -n 20 "$LOGS/$name-serve.log" "$NGX/error.log" 2>/dev/null >&2 || true
      return 1
    fi
    if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/healthz" 2>/dev/null; then
      return 0
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "$name not ready on port $port after ${READY_TIMEOUT:-60}s" >&2
      return 1
    fi
    sleep 0.05
  done
}

pin_server() { if [ -n "$SERVER_CPUS" ]; then echo taskset -c "$SERVER_CPUS"; fi; }
pin_wrk() { if [ -n "$WRK_CPUS" ]; then echo taskset -c "$WRK_CPUS"; fi; }

start_server() { # name -> sets SERVER_PID
  local name=$1
  case "$name" in
    nginx)
      $(pin_server) nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" \
        >"$LOGS/nginx-serve.log" 2>&1 &
      SERVER_PID=$!; STARTED+=("$SERVER_PID")
      wait_ready nginx "$SERVER_PID" "$NGINX_PORT" ;;
    dars)
      DARS_LOG=$DARS_LOG RUST_LOG=$DARS_LOG $(pin_server) "$DARS" --data "$STORE" serve \
        --listen "127.0.0.1:$DARS_PORT" >"$LOGS/dars-serve.log" 2>&1 &
      SERVER_PID=$!; STARTED+=("$SERVER_PID")
      wait_ready dars "$SERVER_PID" "$DARS_PORT" ;;
  esac
}

stop_server() { # pid
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

server_pids() { # master pid -> the pid and its children (nginx workers)
  echo "$1"
  pgrep -P "$1" || true
}
cpu_ticks() { # pids... -> utime+stime sum
  local p t=0 v
  for p in "$@"; do
    v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    t=$((t + v))
  done
  echo "$t"
}
hwm_kb() { # pids... -> sum of VmHWM
  local p t=0 v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

port_of() { if [ "$1" = nginx ]; then echo "$NGINX_PORT"; else echo "$DARS_PORT"; fi; }

NCPU=$(nproc)
# user + nice + system + steal (irq/softirq time is charged to no process, so leave it out)
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
# The machine may be shared (other builds, browsers): before each run wait up to
# QUIET_WAIT seconds for a second in which other processes use < QUIET_PCT % of the CPUs.
# All waits together stop after QUIET_BUDGET seconds.
QUIET_SPENT=0
wait_quiet() {
  local start=$SECONDS limit b0 b1 pct
  limit=$(( QUIET_WAIT < QUIET_BUDGET - QUIET_SPENT ? QUIET_WAIT : QUIET_BUDGET - QUIET_SPENT ))
  [ "$limit" -gt 0 ] || return 0
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    pct=$(( (b1 - b0) * 100 / (CLK_TCK * NCPU) ))
    if [ "$pct" -lt "$QUIET_PCT" ]; then break; fi
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      echo "  (other processes still use ${pct}% of the CPUs after $((SECONDS - start))s; running anyway)"
      break
    fi
  done
  QUIET_SPENT=$((QUIET_SPENT + SECONDS - start))
}
threads_of() { # pids... -> sum of Threads
  local p t=0 v
  for p in "$@"; do
    v=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
    t=$((t + ${v:-0}))
  done
  echo "$t"
}

# ---------------------------------------------------------------- 4. build + import
NOTES=()
DARS_OK=1
DARS_VER="dars not run"
IMPORT_JSON=$OUT/import$SUF.json
rm -f "$IMPORT_JSON"
if [ "$NGINX_ONLY" = 1 ]; then
  DARS_OK=0
  NOTES+=("NGINX_ONLY=1: dars was not run")
else
  if [ "$SKIP_BUILD" != 1 ]; then
    say "4. cargo build --release"
    if cargo build --release >"$LOGS/cargo-build.log" 2>&1; then
      tail -n 2 "$LOGS/cargo-build.log"
    else
      tail -n 30 "$LOGS/cargo-build.log" >&2
      die "cargo build --release failed (full log: ${LOGS#$ROOT/}/cargo-build.log); NGINX_ONLY=1 runs the nginx side only"
    fi
  fi
  # what was built: record it now, other people may commit while the benchmark runs
  DARS_VER="$("$DARS" --version 2>/dev/null | head -n 1 || echo dars)"
  if [ "$SKIP_BUILD" != 1 ]; then
    DARS_VER+=" (built from git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo none)"
    if [ -n "$(git -C "$ROOT" status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
      DARS_VER+=" + uncommitted changes"
    fi
    DARS_VER+=")"
  fi
  [ -x "$DARS" ] || die "no dars binary at $DARS (cargo build --release failed?); NGINX_ONLY=1 runs the nginx side only"

  say "4. import timing: dars import vs cp -r (${IMPORT_RUNS} runs each)"
  dars_t=(); dars_cpu=(); cp_t=(); cps_t=(); dars_err=
  TIMEFORMAT='%U %S'
  for i in $(seq "$IMPORT_RUNS"); do
    rm -rf "$STORE"
    sync
    wait_quiet
    t0=$(now)
    rc=0
    { time "$DARS" --data "$STORE" import "$CORPUS" >"$LOGS/dars-import-$i.log" 2>&1 ; } \
      2>"$LOGS/dars-import-$i.time" || rc=$?
    if [ "$rc" != 0 ]; then
      dars_err="exit status $rc (see ${LOGS#$ROOT/}/dars-import-$i.log)"
      echo "dars import FAILED: $DARS --data $STORE import $CORPUS" >&2
      tail -n 30 "$LOGS/dars-import-$i.log" >&2
      DARS_OK=0
      break
    fi
    t1=$(now)
    dars_t+=("$(elapsed "$t0" "$t1")")
    dars_cpu+=("$(awk '{ printf "%.2f", $1 + $2 }' "$LOGS/dars-import-$i.time")")
    echo "dars import run $i: ${dars_t[-1]} s (CPU ${dars_cpu[-1]} s)"
  done
  for i in $(seq "$IMPORT_RUNS"); do
    rm -rf "$CPDST"
    sync
    wait_quiet
    t0=$(now); cp -r "$CORPUS" "$CPDST"; t1=$(now); sync; t2=$(now)
    cp_t+=("$(elapsed "$t0" "$t1")"); cps_t+=("$(elapsed "$t0" "$t2")")
    echo "cp -r run $i: ${cp_t[-1]} s (with sync ${cps_t[-1]} s)"
  done
  rm -rf "$CPDST"
  store_bytes=0
  [ -d "$STORE" ] && store_bytes=$(du -sb "$STORE" | cut -f1)
  DT="${dars_t[*]-}" DC="${dars_cpu[*]-}" CT="${cp_t[*]-}" CS="${cps_t[*]-}" \
  python3 - "$IMPORT_JSON" "$dars_err" "$store_bytes" <<'EOF'
import json, os, sys
f = lambda k: [float(x) for x in os.environ.get(k, "").split()]
json.dump(dict(dars=f("DT"), dars_cpu=f("DC"), cp=f("CT"), cp_sync=f("CS"),
               dars_error=sys.argv[2] or None, store_bytes=int(sys.argv[3])), open(sys.argv[1], "w"))
EOF
  if [ "$DARS_OK" = 1 ]; then
    cbytes=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['bytes'])" "$CORPUS.json")
    awk -v b="$cbytes" -v d="${dars_t[-1]}" -v c="${cp_t[-1]}" 'BEGIN {
      printf "import (last run): dars %.1f MB/s, cp -r %.1f MB/s, time ratio dars/cp %.2f\n",
        b / 1e6 / d, b / 1e6 / c, d / c }'
  fi
fi

# ---------------------------------------------------------------- 5. byte check
VERIFY_JSON=$OUT/verify$SUF.json
rm -f "$VERIFY_JSON"
say "5. byte-for-byte check of the URL mix"
start_server nginx
NGINX_PID=$SERVER_PID
servers=(nginx="http://127.0.0.1:$NGINX_PORT")
if [ "$DARS_OK" = 1 ]; then
  if start_server dars; then
    DARS_PID=$SERVER_PID
    servers+=(dars="http://127.0.0.1:$DARS_PORT")
  else
    DARS_OK=0
    NOTES+=("dars serve did not become ready; see ${LOGS#$ROOT/}/dars-serve.log")
  fi
fi
if ! python3 "$B/verify.py" --mix "$URLS.files" --corpus "$CORPUS" --json "$VERIFY_JSON" "${servers[@]}"; then
  NOTES+=("byte check found problems (see ${VERIFY_JSON#$ROOT/})")
fi
if [ "$DARS_OK" = 1 ]; then
  echo "curl spot check (sha256 of body, nginx vs dars):"
  mapfile -t spot < <(python3 - "$URLS" <<'EOF'
import sys
urls = [l.strip() for l in open(sys.argv[1]) if l.strip()]
picks = []
for want in (lambda u: u.endswith("/"), lambda u: u.endswith(".html"), lambda u: u.endswith(".css"),
             lambda u: u.endswith(".png"), lambda u: u.endswith((".svg", ".js", ".jpg", ".gif"))):
    for u in urls:
        if want(u) and u not in picks:
            picks.append(u)
            break
print("\n".join(picks))
EOF
)
  for u in "${spot[@]}"; do
    for c in "" "--compressed"; do
      a=$(curl -fsS $c "http://127.0.0.1:$NGINX_PORT$u" | sha256sum | cut -c1-16) || a=ERR
      b=$(curl -fsS $c "http://127.0.0.1:$DARS_PORT$u" | sha256sum | cut -c1-16) || b=ERR
      if [ "$a" = "$b" ] && [ "$a" != ERR ]; then r=same; else r=DIFFERENT; NOTES+=("curl $c $u: nginx $a, dars $b"); fi
      printf '  %-4s %-13s %s  nginx %s dars %s\n' "$r" "${c:-(identity)}" "$u" "$a" "$b"
    done
  done
  stop_server "$DARS_PID"
fi
stop_server "$NGINX_PID"

# ---------------------------------------------------------------- 6. load
say "6. load: wrk -t$THREADS -d${DURATION}s (+${WARMUP}s warm-up), connections: $CONNS, $REPEATS round(s)"
rm -f "$RUNS"
SERVERS=(nginx)
[ "$DARS_OK" = 1 ] && SERVERS+=(dars)
# wrk in the background, so that a signal to this script is handled at once
run_wrk() { # logfile wrk-args...
  local log=$1 wpid rc=0
  shift
  $(pin_wrk) wrk "$@" >"$log" 2>&1 &
  wpid=$!
  STARTED+=("$wpid")
  wait "$wpid" || rc=$?
  local keep=() p
  for p in "${STARTED[@]}"; do [ "$p" = "$wpid" ] || keep+=("$p"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
  return "$rc"
}
# CPU seconds used by this shell's children between two `times` outputs
child_cpu() {
  python3 - "$1" "$2" <<'EOF'
import re, sys
def kids(path):
    line = open(path).read().strip().splitlines()[-1]
    return sum(int(m) * 60 + float(s) for m, s in re.findall(r"(\d+)m([\d.]+)s", line))
print(f"{kids(sys.argv[2]) - kids(sys.argv[1]):.2f}")
EOF
}

run_one() { # server conns round
  local s=$1 c=$2 rep=$3 port url log pid status t0 t1 b0 b1 hwm thr alive wj wcpu tf
  port=$(port_of "$s")
  url="http://127.0.0.1:$port"
  log="$LOGS/wrk-$s-$c-r$rep.txt"
  tf="$LOGS/wrk-$s-$c-r$rep.time"
  if ! start_server "$s"; then
    echo "{\"server\":\"$s\",\"conns\":$c,\"round\":$rep,\"error\":\"server did not start\"}" >>"$RUNS"
    return 0
  fi
  pid=$SERVER_PID
  # warm-up (page cache, SQLite cache, threads, connection setup)
  run_wrk "$LOGS/wrk-$s-$c-r$rep-warmup.txt" -t"$THREADS" -c"$c" -d"${WARMUP}s" \
    --timeout "$WRK_TIMEOUT" -s "$B/mix.lua" "$url" -- "$URLS" || true
  mapfile -t pids < <(server_pids "$pid")
  t0=$(cpu_ticks "${pids[@]}")
  b0=$(busy_ticks)
  status=0
  times >"$tf.0"
  run_wrk "$log" -t"$THREADS" -c"$c" -d"${DURATION}s" --timeout "$WRK_TIMEOUT" --latency \
    -s "$B/mix.lua" "$url" -- "$URLS" || status=$?
  times >"$tf.1"
  b1=$(busy_ticks)
  mapfile -t pids < <(server_pids "$pid")
  t1=$(cpu_ticks "${pids[@]}")
  hwm=$(hwm_kb "${pids[@]}")
  thr=$(threads_of "${pids[@]}")
  alive=1; kill -0 "$pid" 2>/dev/null || alive=0
  stop_server "$pid"
  wj=$(sed -n 's/^WRKJSON //p' "$log" | tail -n 1)
  if [ "$status" != 0 ] || [ -z "$wj" ]; then
    echo "wrk failed against $s ($c connections):" >&2; tail -n 20 "$log" >&2
    echo "{\"server\":\"$s\",\"conns\":$c,\"round\":$rep,\"error\":\"wrk failed (exit $status)\"}" >>"$RUNS"
    return 0
  fi
  [ "$alive" = 1 ] || NOTES+=("$s exited during the $c-connection run")
  wcpu=$(child_cpu "$tf.0" "$tf.1")
  echo "{\"server\":\"$s\",\"conns\":$c,\"round\":$rep,\"duration\":$DURATION,\"cpu_ticks\":$((t1 - t0)),\"busy_ticks\":$((b1 - b0)),\"wrk_cpu_s\":$wcpu,\"ncpu\":$NCPU,\"clk_tck\":$CLK_TCK,\"hwm_kb\":$hwm,\"threads\":$thr,\"procs\":${#pids[@]},\"wrk\":$wj}" >>"$RUNS"
  python3 - "$RUNS" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1]); w = r["wrk"]
n = w["requests"]; dur = w["duration_us"] / 1e6; tck = r["clk_tck"]
other = (r["busy_ticks"] - r["cpu_ticks"] - r["wrk_cpu_s"] * tck) / tck / dur / r["ncpu"] * 100
print(f"  {r['server']:5} c={r['conns']:<4} {n / dur:9.0f} req/s  p99 {w['p99_us'] / 1000:7.2f} ms  "
      f"cpu {r['cpu_ticks'] * 1000 / tck / n * 1000:6.1f} ms/1k  rss {r['hwm_kb'] / 1024:6.1f} MB  "
      f"{w['bytes'] / n:6.0f} B/req  threads {r['threads']:3}  other load {max(other, 0):3.0f}%  "
      f"non-2xx {w['status']}  sock err {w['connect'] + w['read'] + w['write'] + w['timeout']}")
EOF
  if grep -q 'Non-2xx or 3xx responses' "$log"; then
    echo "  !! $s at $c connections: $(grep 'Non-2xx or 3xx responses' "$log")" >&2
  fi
}

for rep in $(seq "$REPEATS"); do
  for c in $CONNS; do
    for s in "${SERVERS[@]}"; do
      wait_quiet
      run_one "$s" "$c" "$rep"
    done
  done
done

# ---------------------------------------------------------------- 7. report
say "7. report -> ${RESULTS#$ROOT/}"
pin_desc="unpinned (wrk and server share both cores)"
[ -n "$WRK_CPUS$SERVER_CPUS" ] && pin_desc="wrk on CPUs ${WRK_CPUS:-all}, servers on CPUs ${SERVER_CPUS:-all}"
python3 - "$OUT/meta$SUF.json" "$MODE" "$PACKAGES" "$DARS_VER" "$pin_desc" "$NGINX_WORKERS workers$([ "${NGINX_REUSEPORT:-0}" = 1 ] && echo ", reuseport")" \
    "$THREADS" "$DURATION" "$WARMUP" "$WRK_TIMEOUT" "${NOTES[@]+"${NOTES[@]}"}" <<'EOF'
import json, os, subprocess, sys, datetime
out, mode, pkgs, dv, pin, nw, th, dur, wu, to, *notes = sys.argv[1:]
def run(*c):
    try:
        r = subprocess.run(c, capture_output=True, text=True)
        return r.stdout + r.stderr
    except OSError:
        return ""
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
ngx = run("nginx", "-v").strip().split("/")[-1]
wrk = (run("wrk", "-v").split() + ["?", "?"])[1]
json.dump(dict(
    mode=mode, packages=pkgs, notes=notes,
    date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
    machine=f"{os.cpu_count()} cores {cpu}, {mem} MiB RAM, Linux {os.uname().release}",
    versions=f"{dv}; nginx {ngx} ({nw}, sendfile, gzip_static with gzip -9 files); wrk {wrk}",
    load=f"wrk -t{th} -d{dur}s --timeout {to} after a {wu}s warm-up, fresh server per run, {pin}",
), open(out, "w"))
EOF
python3 "$B/report.py" --meta "$OUT/meta$SUF.json" --corpus "$CORPUS.json" --mix "$URLS.json" \
  --import "$IMPORT_JSON" --verify "$VERIFY_JSON" --runs "$RUNS" --out "$RESULTS"
mkdir -p "$OUT/history"
cp "$RESULTS" "$OUT/history/$(basename "$RESULTS" .md)-$(date +%Y%m%d-%H%M%S).md"
echo
echo "written: ${RESULTS#$ROOT/} (and a copy in ${OUT#$ROOT/}/history/)"
