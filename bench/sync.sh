#!/usr/bin/env bash
# Sync benchmark: bytes an update costs over HTTP (dars sync from nginx) against rsync of the
# same two package folders, and sync throughput on loopback (nginx, a second dars's /mirror/),
# with and without --max-rate. See bench/SYNC.md. Usage: bench/sync.sh [--quick]
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/sync.sh [--quick]

  --quick   small corpus (bench/out/corpus-quick, ~50 MB): a fast end-to-end check

Environment (defaults in brackets):
  CORPUS=DIR          folder of lesson folders instead of bench/out/corpus[-quick]
  SPLIT_LESSONS=300   the corpus is re-cut into at least this many lessons
  CHANGE_PCT=1        ... and this % of them change in v2
  TEXT_EVERY=2        ... every TEXT_EVERY-th text file of a changed lesson gets an edit
  VARIANTS="dict nodict"
                      publish modes compared in part 1: dict = the default (a zstd
                      dictionary when it pays), nodict = --no-dictionary
  RUNS=3              timed full syncs per source in part 2 [3, quick 2]
  RATES="20M 5M"      --max-rate caps tried in part 2 [full "20M 5M", quick "20M 2M"]
  VERIFY=1            dars verify the store after the update (0 skips it)
  PORTS="18380 18381 18382"
                      nginx, rsync daemon and dars-mirror ports (loopback)
  QUIET_WAIT=60       before each timed run wait up to this many seconds for the machine
                      to be quiet (others < QUIET_PCT=10 % CPU) [60, quick 0]
  QUIET_BUDGET=600    total seconds all those waits may take
  SKIP_BUILD=1        do not run cargo build --release
  DARS=path           dars binary [target/release/dars]
  KEEP_WORK=1         keep bench/out/sync-work[-quick] (packages, stores) after the run
EOF
}

QUICK=0
ARGS=("$@")
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "sync.sh: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
OUT=$B/out
mkdir -p "$OUT"
TOOL=(python3 "$B/sync_tool.py")

if [ "$QUICK" = 1 ]; then
  MODE=quick; SUF=-quick
  QUIET_WAIT=${QUIET_WAIT:-0}; RUNS=${RUNS:-2}; RATES=${RATES:-"20M 2M"}
else
  MODE=full; SUF=
  QUIET_WAIT=${QUIET_WAIT:-60}; RUNS=${RUNS:-3}; RATES=${RATES:-"20M 5M"}
fi
SPLIT_LESSONS=${SPLIT_LESSONS:-300}
CHANGE_PCT=${CHANGE_PCT:-1}
TEXT_EVERY=${TEXT_EVERY:-2}
VARIANTS=${VARIANTS:-"dict nodict"}
VERIFY=${VERIFY:-1}
read -r _p1 _p2 _p3 <<<"${PORTS:-18380 18381 18382}"
NGINX_PORT=$_p1; RSYNC_PORT=${_p2:-$((_p1 + 1))}; MIRROR_PORT=${_p3:-$((_p1 + 2))}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_BUDGET=${QUIET_BUDGET:-600}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
DARS=${DARS:-$ROOT/target/release/dars}
CORPUS_GIVEN=${CORPUS:-}
CORPUS=${CORPUS:-$OUT/corpus$SUF}

WORK=$OUT/sync-work$SUF      # packages, stores, nginx/rsync state: removed on exit
RES=$OUT/sync-res$SUF        # JSON of every measurement (kept)
LOGS=$OUT/sync-logs$SUF      # dars / rsync / nginx output (kept)
RESULTS=$OUT/sync-results$SUF.md
WWW=$WORK/www                # nginx root: $WWW/<variant>/v1, v2 (package folders)
NGX=$WORK/nginx
ACCESS=$LOGS/nginx-access.log
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)
URL=http://127.0.0.1:$NGINX_PORT

say() { printf '\n==> %s\n' "$*"; }
die() { echo "sync.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
# Only processes this script started, by PID: nginx (master; it stops its workers), the
# rsync daemon, dars serve.
declare -a STARTED=()
cleanup() {
  local rc=$? p
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    wait "$p" 2>/dev/null || true
  done
  if [ "$KEEP_WORK" != 1 ] && [ -d "$WORK" ]; then
    rm -rf "$WORK"
  elif [ -d "$WORK" ]; then
    echo "kept ${WORK#$ROOT/} (KEEP_WORK=1)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() { # pid: stop one process this script started and forget it
  local p=$1 keep=() q
  kill -TERM "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${STARTED[@]+"${STARTED[@]}"}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

# ---------------------------------------------------------------- tools
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v rsync >/dev/null 2>&1 || need+=(rsync)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
command -v python3 >/dev/null 2>&1 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing missing tools: ${need[*]}"
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (apt-get install -y ${need[*]})"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$NGINX_PORT" "$RSYNC_PORT" "$MIRROR_PORT"; do
  port_free "$p" || die "port $p on 127.0.0.1 is in use (set PORTS=\"a b c\")"
done

# Before each timed run wait up to QUIET_WAIT s for a second in which the machine's CPUs are
# < QUIET_PCT % busy (the machine may be shared with builds and other benchmarks).
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
QUIET_SPENT=0
wait_quiet() {
  local start=$SECONDS limit b0 b1 pct
  limit=$(( QUIET_WAIT < QUIET_BUDGET - QUIET_SPENT ? QUIET_WAIT : QUIET_BUDGET - QUIET_SPENT ))
  [ "$limit" -gt 0 ] || return 0
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    pct=$(( (b1 - b0) * 100 / (CLK_TCK * NCPU) ))
    [ "$pct" -lt "$QUIET_PCT" ] && break
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      echo "  (the CPUs are ${pct}% busy after $((SECONDS - start)) s of waiting; running anyway)"
      break
    fi
  done
  QUIET_SPENT=$((QUIET_SPENT + SECONDS - start))
}

# wait_http URL PID NAME: poll until URL answers 2xx (or PID died)
wait_http() {
  local url=$1 pid=$2 name=$3 i
  for i in $(seq 1 300); do
    if curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null; then return 0; fi
    kill -0 "$pid" 2>/dev/null || die "$name exited before answering $url (see ${LOGS#$ROOT/}/)"
    sleep 0.05
  done
  die "$name did not answer $url within 15 s"
}

rm -rf "$WORK" "$RES"
mkdir -p "$WORK" "$RES" "$LOGS" "$WWW" "$NGX/tmp"
: > "$ACCESS"

# ---------------------------------------------------------------- corpus
say "corpus ($MODE) -> ${CORPUS#$ROOT/}"
if [ -z "$CORPUS_GIVEN" ]; then
  python3 "$B/corpus.py" --mode "$MODE" --out "$CORPUS" --debs "$OUT/debs" --extract "$OUT/extract"
fi
[ -d "$CORPUS" ] || die "no corpus at $CORPUS"

# ---------------------------------------------------------------- build
if [ "$SKIP_BUILD" != 1 ]; then
  say "cargo build --release"
  if cargo build --release >"$LOGS/cargo-build.log" 2>&1; then
    tail -n 1 "$LOGS/cargo-build.log"
  else
    tail -n 30 "$LOGS/cargo-build.log" >&2
    die "cargo build --release failed (log: ${LOGS#$ROOT/}/cargo-build.log)"
  fi
fi
[ -x "$DARS" ] || die "no dars binary at $DARS"

# ---------------------------------------------------------------- machine / versions
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
DIRTY=$(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
python3 - "$RES/meta.json" <<EOF
import json, os, datetime
env = {k: os.environ[k] for k in ("CORPUS", "SPLIT_LESSONS", "CHANGE_PCT", "TEXT_EVERY", "VARIANTS", "RUNS",
       "RATES", "VERIFY", "PORTS", "QUIET_WAIT", "SKIP_BUILD", "DARS") if k in os.environ}
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump(dict(mode="$MODE", corpus=os.path.relpath("$CORPUS"), commit="$COMMIT", dirty=int("$DIRTY"),
               cpu=cpu, nproc=os.cpu_count(), mem_mib=mem, kernel=os.uname().release,
               command=" ".join(f"{k}={v}" for k, v in env.items()) + (" " if env else "")
                       + "bench/sync.sh${ARGS[*]:+ ${ARGS[*]}}",
               dars_version="$("$DARS" --version 2>&1 | head -n1)",
               nginx_version="$(nginx -v 2>&1 | sed 's/^nginx version: //')",
               rsync_version="$(rsync --version | head -n1 | sed 's/  */ /g')",
               date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
               split_lessons=int("$SPLIT_LESSONS"), change_pct=float("$CHANGE_PCT"),
               text_every=int("$TEXT_EVERY"), variants="$VARIANTS".split(), runs=int("$RUNS"),
               rates="$RATES".split(), quiet_wait=int("$QUIET_WAIT"), quiet_pct=int("$QUIET_PCT")),
          open("$RES/meta.json", "w"), indent=1)
EOF

KEY=$WORK/publisher.key
"$DARS" keygen --out "$KEY" >"$LOGS/keygen.log" 2>&1 || { cat "$LOGS/keygen.log" >&2; die "dars keygen failed"; }
PUB=$(cat "$KEY.pub")
export DARS_TRUSTED_KEYS="[\"$PUB\"]"
export DARS_LOG=${DARS_LOG:-warn}
echo "publisher key $PUB"

# run LABEL [--server-pid P]... -- CMD...: timed, output in $LOGS/LABEL.log, numbers in $RES/LABEL.run.json
run() {
  local label=$1; shift
  "${TOOL[@]}" run --json "$RES/$label.run.json" --log "$LOGS/$label.log" "$@"
}
mark() { # LABEL: a logged request to nginx that cuts its access log
  curl -fsS -o /dev/null --max-time 5 "$URL/__mark/$1" || die "nginx did not answer the mark $1"
  "${TOOL[@]}" wait-mark --log "$ACCESS" --label "$1"
}
nginx_pids() { echo "$NGINX_PID"; pgrep -P "$NGINX_PID" || true; }
srv_args() { local p; for p in "$@"; do printf -- '--server-pid\n%s\n' "$p"; done; }

# sync_nginx LABEL STORE URL [dars args]: dars sync from nginx; the access log between two marks
# gives what nginx sent for it.
sync_nginx() {
  local label=$1 store=$2 url=$3; shift 3
  local -a srv
  mapfile -t srv < <(srv_args $(nginx_pids))
  mark "$label-start"
  run "$label" "${srv[@]}" -- "$DARS" --data "$store" sync "$url" "$@"
  mark "$label-end"
  "${TOOL[@]}" span --log "$ACCESS" --label "$label" --out "$RES/$label.span.json"
  "${TOOL[@]}" darsout --log "$LOGS/$label.log" --out "$RES/$label.dars.json"
  grep -E '^synced:' "$LOGS/$label.log" | sed 's/^/  /' || true
}

# ---------------------------------------------------------------- v1 / v2 corpora
say "v1 / v2: the corpus re-cut into >= $SPLIT_LESSONS lessons, ${CHANGE_PCT} % of them changed in v2"
SPLIT1=$WORK/split-v1
SPLIT2=$WORK/split-v2
python3 "$B/packages_tool.py" split --corpus "$CORPUS" --out "$SPLIT1" --lessons "$SPLIT_LESSONS" \
  --json "$RES/split.json"
python3 "$B/packages_tool.py" v2 --src "$SPLIT1" --out "$SPLIT2" --pct "$CHANGE_PCT" \
  --text-every "$TEXT_EVERY" --json "$RES/v2.json"

# ---------------------------------------------------------------- publish
say "publish v1 (--seq 1) and v2 (--seq 2): $VARIANTS"
for v in $VARIANTS; do
  case "$v" in
    dict) flags=() ;;
    nodict) flags=(--no-dictionary) ;;
    *) die "VARIANTS: unknown variant $v (dict, nodict)" ;;
  esac
  mkdir -p "$WWW/$v"
  run "publish-$v-v1" -- "$DARS" publish "$SPLIT1" --key "$KEY" --out "$WWW/$v/v1" --seq 1 "${flags[@]}"
  # v2 is published into a copy of v1's folder, as a publisher who keeps one folder does
  # (the dictionary is reused while it pays: unchanged lessons keep their files)
  cp -a "$WWW/$v/v1" "$WWW/$v/v2"
  run "publish-$v-v2" -- "$DARS" publish "$SPLIT2" --key "$KEY" --out "$WWW/$v/v2" --seq 2 "${flags[@]}"
  grep -hE '^(zstd dictionary|published|package:)' "$LOGS/publish-$v-v1.log" "$LOGS/publish-$v-v2.log" \
    | sed "s/^/  $v: /" || true
  "${TOOL[@]}" pkg --v1 "$WWW/$v/v1" --v2 "$WWW/$v/v2" --out "$RES/pkg-$v.json"
  m=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["manifest"])' "$RES/pkg-$v.json")
  "${TOOL[@]}" gz --file "$WWW/$v/v2/$m" --out "$RES/manifest-$v.json"
done
rm -rf "$SPLIT1" "$SPLIT2"

# ---------------------------------------------------------------- nginx
say "nginx on 127.0.0.1:$NGINX_PORT serving ${WWW#$ROOT/}"
"${TOOL[@]}" nginx-conf --root "$WWW" --prefix "$NGX" --listen "127.0.0.1:$NGINX_PORT" --log "$ACCESS" \
  > "$NGX/nginx.conf"
nginx -t -q -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf"
nginx -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" >"$LOGS/nginx.log" 2>&1 &
NGINX_PID=$!
echo "nginx -p $NGX -e $NGX/error.log -c $NGX/nginx.conf" >> "$RES/servers.txt"
STARTED+=("$NGINX_PID")
wait_http "$URL/healthz" "$NGINX_PID" nginx

# ---------------------------------------------------------------- rsync daemon
say "rsync daemon on 127.0.0.1:$RSYNC_PORT (one read-only module per variant: its v2 package)"
RSD=$WORK/rsyncd
mkdir -p "$RSD"
{
  echo "pid file = $RSD/rsyncd.pid"
  echo "log file = $LOGS/rsyncd.log"
  echo "use chroot = no"
  echo "uid = root"
  echo "gid = root"
  for v in $VARIANTS; do
    printf '[%s]\n  path = %s\n  read only = yes\n' "$v" "$WWW/$v/v2"
  done
} > "$RSD/rsyncd.conf"
rsync --daemon --no-detach --config="$RSD/rsyncd.conf" --address=127.0.0.1 --port="$RSYNC_PORT" \
  >"$LOGS/rsyncd.out" 2>&1 &
RSYNC_PID=$!
echo "rsync --daemon --no-detach --config=$RSD/rsyncd.conf --address=127.0.0.1 --port=$RSYNC_PORT" >> "$RES/servers.txt"
STARTED+=("$RSYNC_PID")
for i in $(seq 1 300); do
  rsync "rsync://127.0.0.1:$RSYNC_PORT/" >/dev/null 2>&1 && break
  kill -0 "$RSYNC_PID" 2>/dev/null || die "rsync daemon exited (see ${LOGS#$ROOT/}/rsyncd.out)"
  [ "$i" = 300 ] && die "rsync daemon did not answer within 15 s"
  sleep 0.05
done

# ---------------------------------------------------------------- 1. update transfer
say "1. update transfer: dars sync v1 then v2 from nginx, against rsync of v1's folder to v2's"
for v in $VARIANTS; do
  S=$WORK/store-$v
  echo "$v: store syncs v1 (fresh), then v2, then v2 again"
  sync_nginx "upd-$v-v1" "$S" "$URL/$v/v1/"
  wait_quiet
  sync_nginx "upd-$v-v2" "$S" "$URL/$v/v2/"
  sync_nginx "upd-$v-noop" "$S" "$URL/$v/v2/"
  "$DARS" --data "$S" status --json > "$RES/upd-$v-status.json" 2>"$LOGS/upd-$v-status.log" \
    || die "dars status failed (log: ${LOGS#$ROOT/}/upd-$v-status.log)"
  if [ "$VERIFY" = 1 ]; then
    if run "upd-$v-verify" -- "$DARS" --data "$S" verify; then
      echo "  dars verify: ok"
    else
      die "dars verify of the updated store failed (log: ${LOGS#$ROOT/}/upd-$v-verify.log)"
    fi
  fi
  rm -rf "$S"

  echo "$v: rsync -az --delete --stats rsync://.../$v/ into a copy of v1"
  R=$WORK/rsync-$v
  cp -a "$WWW/$v/v1" "$R"
  wait_quiet
  run "rsync-$v" -- rsync -az --delete --stats --debug=NSTR "rsync://127.0.0.1:$RSYNC_PORT/$v/" "$R/"
  "${TOOL[@]}" rsync-stats --log "$LOGS/rsync-$v.log" --extra "$RES/rsync-$v.run.json" --out "$RES/rsync-$v.json"
  diff -rq "$R" "$WWW/$v/v2" >"$LOGS/rsync-$v.diff" 2>&1 \
    || die "after rsync the copy differs from v2 (see ${LOGS#$ROOT/}/rsync-$v.diff)"
  run "rsync-$v-noop" -- rsync -az --delete --stats "rsync://127.0.0.1:$RSYNC_PORT/$v/" "$R/"
  "${TOOL[@]}" rsync-stats --log "$LOGS/rsync-$v-noop.log" --extra "$RES/rsync-$v-noop.run.json" \
    --out "$RES/rsync-$v-noop.json"
  grep -hE '^Total bytes (sent|received)' "$LOGS/rsync-$v.log" | sed 's/^/  /'
  rm -rf "$R"
done

# ---------------------------------------------------------------- 2. throughput
TPV=$(set -- $VARIANTS; echo "$1")   # the package used: the first variant's v2
say "2. throughput: fresh store syncs the $TPV v2 package ($RUNS runs per source; caps: $RATES)"
TP=$WORK/tp-store
MIRROR=$WORK/mirror-store
fresh() { rm -rf "$TP"; sync; }
for i in $(seq 1 "$RUNS"); do
  fresh; wait_quiet
  sync_nginx "tp-nginx-$i" "$TP" "$URL/$TPV/v2/"
done
mv "$TP" "$MIRROR"   # the last store serves as the second dars

"$DARS" --data "$MIRROR" serve --listen "127.0.0.1:$MIRROR_PORT" >"$LOGS/mirror-serve.log" 2>&1 &
MIRROR_PID=$!
echo "$DARS --data $MIRROR serve --listen 127.0.0.1:$MIRROR_PORT" >> "$RES/servers.txt"
STARTED+=("$MIRROR_PID")
wait_http "http://127.0.0.1:$MIRROR_PORT/mirror/package.json" "$MIRROR_PID" "dars serve"
MURL=http://127.0.0.1:$MIRROR_PORT/mirror/
curl -fsS "${MURL}package.json" > "$RES/mirror-package.json"

sync_mirror() { # LABEL [dars args]
  local label=$1; shift
  run "$label" --server-pid "$MIRROR_PID" -- "$DARS" --data "$TP" sync "$MURL" "$@"
  "${TOOL[@]}" darsout --log "$LOGS/$label.log" --out "$RES/$label.dars.json"
  grep -E '^synced:' "$LOGS/$label.log" | sed 's/^/  /' || true
}
for i in $(seq 1 "$RUNS"); do
  fresh; wait_quiet
  echo "mirror run $i"
  sync_mirror "tp-mirror-$i"
done
for r in $RATES; do
  fresh; wait_quiet
  echo "nginx, --max-rate $r"
  sync_nginx "cap-nginx-$r" "$TP" "$URL/$TPV/v2/" --max-rate "$r"
  fresh; wait_quiet
  echo "mirror, --max-rate $r"
  sync_mirror "cap-mirror-$r" --max-rate "$r"
done
stop_pid "$MIRROR_PID"
rm -rf "$TP"
echo "$TPV" > "$RES/tp-variant.txt"
cp "$NGX/nginx.conf" "$LOGS/nginx.conf"
cp "$RSD/rsyncd.conf" "$LOGS/rsyncd.conf"

# ---------------------------------------------------------------- report
say "report -> ${RESULTS#$ROOT/}"
python3 "$B/sync_report.py" "$RES" | tee "$RESULTS"
python3 - "$RES" "$OUT/sync-results$SUF.json" <<'EOF'
import json, os, sys
res = {n[:-5]: json.load(open(os.path.join(sys.argv[1], n))) for n in sorted(os.listdir(sys.argv[1])) if n.endswith(".json")}
json.dump(res, open(sys.argv[2], "w"), indent=1)
EOF
echo
echo "written: ${RESULTS#$ROOT/} (all numbers: ${OUT#$ROOT/}/sync-results$SUF.json, logs: ${LOGS#$ROOT/}/)"
