#!/usr/bin/env bash
# Load suite: dars against nginx under the same conditions, side by side (see bench/LOAD.md).
#  (a) 2,000 connections, 500 of them slow (trickled headers, bodies read at 2 KB/s), while
#      one client loads pages back to back: its p50/p99 latency and errors;
#  (b) 200 phones behind a shaped 20 Mbit/s link (a network namespace, tbf + netem delay)
#      loading lessons while one client downloads a 40 MB video: completion times, Jain's
#      fairness index, the download's rate; dars with its default pacing and unpaced;
#  (c) each server's peak RSS (VmHWM, nginx: master + workers) in every run.
# Usage: bench/load.sh   (SKIP_BUILD=1 DARS=path DURATION=30 PHONES=200 CONNS=2000 SLOW=500)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
OUT=$B/out/load
DARS=${DARS:-$ROOT/target/release/dars}
DURATION=${DURATION:-30}
PHONES=${PHONES:-200}
CONNS=${CONNS:-2000}
SLOW=${SLOW:-500}
RATE=${RATE:-20mbit}
DELAY=${DELAY:-10ms}
PACINGS=${PACINGS:-"1M 0"}   # dars bulk_rate values to run in (b)
FEW=${FEW-20}                 # (b) again with this many phones: where one download hurts most
SCENARIOS=${SCENARIOS:-"a b"}
mkdir -p "$OUT"
if [ "${SKIP_BUILD:-0}" != 1 ]; then cargo build --release --locked --quiet; fi
[ -x "$DARS" ] || { echo "load.sh: no dars binary at $DARS" >&2; exit 1; }
for t in nginx ip tc python3 curl; do
  command -v "$t" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light iproute2 curl >/dev/null; break; }
done
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
TAG=ld$$
NS=$TAG-ph
VS=${TAG}s; VP=${TAG}p
NET=10.201
SERVER_IP=$NET.0.1
W=$(mktemp -d "/tmp/dars-load-$$.XXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  ip link del "$VS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "==> lessons"
LESSONS=$OUT/lessons
if [ ! -f "$LESSONS/.done" ]; then
  rm -rf "$LESSONS"
  python3 - "$LESSONS" <<'EOF'
import os, random, sys
root = sys.argv[1]
rng = random.Random(8)
words = "dərs kəsr su bitki günəş torpaq hesab say xətt bucaq урок вода число растение lesson water".split()
for n in range(20):
    lid = f"lesson-{n:02d}"
    d = os.path.join(root, lid)
    os.makedirs(os.path.join(d, "img"))
    open(os.path.join(d, "lesson.toml"), "w").write(
        f'id = "{lid}"\ntitle = "Dərs {n}"\nlanguage = "az"\ngrade = {1 + n % 11}\nsubject = "Riyaziyyat"\n')
    text = " ".join(rng.choice(words) for _ in range(6000))
    open(os.path.join(d, "index.html"), "w").write(
        f"<!doctype html><meta charset=utf-8><link rel=stylesheet href=style.css><p>{text}</p>"
        + "".join(f'<img src="img/p{i}.png">' for i in range(4)))
    open(os.path.join(d, "style.css"), "w").write("".join(f".c{i} {{ margin: {i}px; }}\n" for i in range(300)))
    for i in range(4):
        open(os.path.join(d, "img", f"p{i}.png"), "wb").write(rng.randbytes(15_000 + 3_000 * i))
    if n == 0:
        open(os.path.join(d, "book.pdf"), "wb").write(rng.randbytes(2_000_000))
d = os.path.join(root, "video")
os.makedirs(d)
open(os.path.join(d, "lesson.toml"), "w").write('id = "video"\ntitle = "Video"\nlanguage = "az"\ngrade = 5\nsubject = "Fizika"\nentry = "video.mp4"\n')
open(os.path.join(d, "video.mp4"), "wb").write(rng.randbytes(40_000_000))
EOF
  touch "$LESSONS/.done"
fi
PAGES=$(python3 -c 'print(",".join(f"/lessons/lesson-{n:02d}/index.html" for n in range(20)))')
LESSON_IDS=$(python3 -c 'print(",".join(f"lesson-{n:02d}" for n in range(20)))')
WWW=$W/www; mkdir -p "$WWW/lessons" "$W/ngx/tmp"
cp -r "$LESSONS/." "$WWW/lessons/"
find "$WWW/lessons" -name '*.html' -o -name '*.css' | xargs gzip -9 -k
rm -rf "$W/store"
"$DARS" --data "$W/store" import "$LESSONS" >/dev/null

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
SERVER_PID=
start() { # name addr port [env...]
  local name=$1 a=$2 port=$3
  shift 3
  if [ "$name" = nginx ]; then
    python3 "$B/nginx_conf.py" --corpus "$LESSONS" --www "$WWW" --prefix "$W/ngx" --listen "$a:$port" >"$W/ngx/nginx.conf"
    nginx -c "$W/ngx/nginx.conf" -p "$W/ngx" >"$W/ngx/stdout" 2>&1 &
  else
    env DARS_LOG=warn "$@" "$DARS" --data "$W/store" serve --listen "$a:$port" >"$W/dars.log" 2>&1 &
  fi
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  for _ in $(seq 200); do
    curl -fsS -o /dev/null "http://$a:$port/lessons/lesson-00/index.html" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "load.sh: $name did not start" >&2; exit 1
}
peak_rss_mb() { # pid: VmHWM of it and its children, MB
  python3 - "$1" <<'EOF'
import os, sys
root = sys.argv[1]
def parent(p):
    try:
        return open(f"/proc/{p}/stat").read().rsplit(") ", 1)[1].split()[1]
    except (OSError, IndexError):
        return None
pids = [root] + [p for p in os.listdir("/proc") if p.isdigit() and parent(p) == root]
from httpc import rss_kb
print(f"{rss_kb(pids, 'VmHWM') / 1024:.1f}")
EOF
}
stop() { kill -TERM "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }
export PYTHONPATH=$B

RESULTS=$OUT/results.jsonl
: >"$RESULTS"
echo "==> (a) $CONNS connections, $SLOW slow, ${DURATION}s"
for s in nginx dars; do
  case " $SCENARIOS " in *" a "*) ;; *) break ;; esac
  port=$(free_port)
  start "$s" 127.0.0.1 "$port"
  r=$(python3 "$B/loadgen.py" slow --host 127.0.0.1 --port "$port" --pages "$PAGES" \
      --slowfile /lessons/lesson-00/book.pdf --conns "$CONNS" --slow "$SLOW" --duration "$DURATION")
  rss=$(peak_rss_mb "$SERVER_PID")
  stop
  echo "{\"scenario\":\"a\",\"server\":\"$s\",\"rss_mb\":$rss,\"r\":$r}" | tee -a "$RESULTS"
done

echo "==> (b) $PHONES phones behind $RATE, delay $DELAY each way"
ip netns add "$NS"
ip link add "$VS" type veth peer name "$VP"
ip link set "$VP" netns "$NS"
ip addr add "$SERVER_IP/16" dev "$VS"
ip link set "$VS" up
ip -n "$NS" link set lo up
for i in $(seq 1 "$PHONES"); do echo "addr add $NET.1.$i/16 dev $VP"; done >"$W/addrs"
echo "addr add $NET.2.1/16 dev $VP" >>"$W/addrs"
ip -n "$NS" -batch "$W/addrs"
ip -n "$NS" link set "$VP" up
# the Wi-Fi: 20 Mbit/s each way with a queue of up to 300 ms, and a little delay (netem,
# when the kernel has it: some, like this machine's, have tbf but no netem)
shape() { # ip-netns-prefix... dev
  local dev=${*: -1} cmd=("${@:1:$#-1}")
  if "${cmd[@]}" tc qdisc add dev "$dev" root handle 1: netem delay "$DELAY" 2>/dev/null; then
    "${cmd[@]}" tc qdisc add dev "$dev" parent 1:1 handle 10: tbf rate "$RATE" burst 32kbit latency 300ms
  else
    DELAY="none (no netem in this kernel)"
    "${cmd[@]}" tc qdisc add dev "$dev" root tbf rate "$RATE" burst 32kbit latency 300ms
  fi
}
shape env "$VS"
shape ip netns exec "$NS" "$VP"
run_b() { # label server phones [env...]
  local label=$1 s=$2 n=$3 port
  shift 3
  port=$(free_port)
  start "$s" "$SERVER_IP" "$port" "$@"
  r=$(ip netns exec "$NS" env PYTHONPATH="$B" python3 "$B/loadgen.py" phones --host "$SERVER_IP" --port "$port" \
      --lessons "$LESSON_IDS" --big /lessons/video/video.mp4 --phones "$n" --net "$NET")
  rss=$(peak_rss_mb "$SERVER_PID")
  stop
  echo "{\"scenario\":\"b\",\"server\":\"$label\",\"phones\":$n,\"rss_mb\":$rss,\"r\":$r}" | tee -a "$RESULTS"
}
for n in $PHONES $FEW; do
  case " $SCENARIOS " in *" b "*) ;; *) break ;; esac
  run_b nginx nginx "$n"
  for p in $PACINGS; do
    printf 'bulk_rate = "%s"\n' "$p" >"$W/pace-$p.toml"
    run_b "dars bulk_rate=$p" dars "$n" DARS_CONFIG="$W/pace-$p.toml"
  done
done

echo "==> report"
python3 "$B/load_report.py" "$RESULTS" "$OUT/LOAD.md" "bench/load.sh (SCENARIOS=\"$SCENARIOS\" DURATION=$DURATION CONNS=$CONNS SLOW=$SLOW PHONES=$PHONES FEW=$FEW RATE=$RATE DELAY=$DELAY PACINGS=\"$PACINGS\")" "$("$DARS" --version)" "$(nginx -v 2>&1)"
cp "$OUT/LOAD.md" "$B/LOAD.md"
cat "$B/LOAD.md"
