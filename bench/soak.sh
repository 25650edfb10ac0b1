#!/usr/bin/env bash
# Soak run (not CI): mixed page and media load against dars serve for DURATION seconds, an
# import of new lessons every IMPORT_EVERY seconds, and a SIGKILL + restart of the server
# every KILL_EVERY seconds. At the end: requests lost outside the restarts (must be 0), lessons
# lost (must be 0), `dars verify` (must be clean), and the server's RSS series.
# Usage: bench/soak.sh   (DURATION=1800 KILL_EVERY=240 IMPORT_EVERY=150 WORKERS=24 SKIP_BUILD=1)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DURATION=${DURATION:-1800}
KILL_EVERY=${KILL_EVERY:-240}
IMPORT_EVERY=${IMPORT_EVERY:-150}
WORKERS=${WORKERS:-24}
SAMPLE_EVERY=${SAMPLE_EVERY:-15}
DARS=${DARS:-$ROOT/target/release/dars}
OUTDIR=${OUTDIR:-$ROOT/bench/out/soak}
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --locked --quiet
fi
W=$(mktemp -d "/tmp/dars-soak-$$.XXXX")
mkdir -p "$OUTDIR"
DATA=$W/data
STOP=$W/stop
RESTARTS=$W/restarts.txt   # kill_epoch ready_epoch
RSS=$W/rss.txt             # epoch lifetime rss_kb
EXPECT=$W/expected.txt     # lesson ids imported
: >"$RESTARTS"; : >"$RSS"; : >"$EXPECT"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SERVER=; LOAD=
cleanup() {
  touch "$STOP"
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null || true
  [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export DARS_LOG=${DARS_LOG:-warn}

# lessons: soak-N with a page, a stylesheet, pictures and (every third) a 6 MB video
make_lesson() { # dir id seed
  python3 - "$@" <<'EOF'
import os, random, sys
root, lid, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
d = os.path.join(root, lid)
os.makedirs(os.path.join(d, "img"), exist_ok=True)
open(os.path.join(d, "lesson.toml"), "w").write(
    f'id = "{lid}"\ntitle = "Soak {lid}"\nlanguage = "az"\ngrade = 5\nsubject = "Soak"\n')
words = "dərs kəsr su bitki günəş torpaq hesab урок вода число lesson water".split()
text = " ".join(rng.choice(words) for _ in range(4000))
open(os.path.join(d, "index.html"), "w").write(
    f"<!doctype html><meta charset=utf-8><link rel=stylesheet href=style.css><p>{text}</p>"
    + "".join(f'<img src="img/p{i}.png">' for i in range(4)))
open(os.path.join(d, "style.css"), "w").write("p { margin: 1em; }\n" * (50 + seed % 50))
for i in range(4):
    open(os.path.join(d, "img", f"p{i}.png"), "wb").write(rng.randbytes(20_000 + 1000 * i))
if seed % 3 == 0:
    open(os.path.join(d, "video.mp4"), "wb").write(rng.randbytes(6_000_000))
EOF
}

now() { date +%s.%N; }
start_server() {
  "$DARS" --data "$DATA" serve --listen "127.0.0.1:$PORT" >>"$W/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 300); do
    curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "soak: the server did not come up; log:" >&2
  tail -n 30 "$W/serve.log" >&2
  exit 1
}

make_lesson "$W/src0" soak-0 0
"$DARS" --data "$DATA" import "$ROOT/content" >/dev/null
"$DARS" --data "$DATA" import "$W/src0" >/dev/null
for t in "$ROOT"/content/*/lesson.toml; do sed -n 's/^id *= *"\(.*\)".*/\1/p' "$t"; done >>"$EXPECT"
echo soak-0 >>"$EXPECT"
start_server
echo "$(now) $(now)" >>"$RESTARTS"
python3 "$ROOT/bench/soak_load.py" --port "$PORT" --stop "$STOP" --out "$W/requests.json" --workers "$WORKERS" &
LOAD=$!

T0=$(date +%s)
next_kill=$((T0 + KILL_EVERY)); next_import=$((T0 + IMPORT_EVERY)); next_sample=$T0
lifetime=1; imports=0; import_fail=0; IMPORTER=
echo "soak: ${DURATION}s on port $PORT, kill every ${KILL_EVERY}s, import every ${IMPORT_EVERY}s, $WORKERS workers"
while [ $(( $(date +%s) - T0 )) -lt "$DURATION" ]; do
  t=$(date +%s)
  if [ "$t" -ge "$next_sample" ]; then
    echo "$t $lifetime $(awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER/status" 2>/dev/null || echo 0)" >>"$RSS"
    next_sample=$((t + SAMPLE_EVERY))
  fi
  if [ "$t" -ge "$next_import" ]; then
    if [ -n "$IMPORTER" ]; then wait "$IMPORTER" || import_fail=$((import_fail + 1)); fi
    imports=$((imports + 1))
    make_lesson "$W/src$imports" "soak-$imports" "$imports"
    "$DARS" --data "$DATA" import "$W/src$imports" >>"$W/import.log" 2>&1 &
    IMPORTER=$!
    echo "soak-$imports" >>"$EXPECT"
    next_import=$((t + IMPORT_EVERY))
  fi
  if [ "$t" -ge "$next_kill" ]; then
    k=$(now)
    kill -KILL "$SERVER"; wait "$SERVER" 2>/dev/null || true
    start_server
    echo "$k $(now)" >>"$RESTARTS"
    lifetime=$((lifetime + 1))
    echo "soak: $(( t - T0 ))s: killed and restarted (lifetime $lifetime)"
    next_kill=$((t + KILL_EVERY))
  fi
  sleep 1
done
if [ -n "$IMPORTER" ]; then wait "$IMPORTER" || import_fail=$((import_fail + 1)); fi
touch "$STOP"
wait "$LOAD" || true
LOAD=
curl -fsS "http://127.0.0.1:$PORT/api/v1/lessons" >"$W/lessons.json"
kill -TERM "$SERVER"; wait "$SERVER" || true
SERVER=
verify_rc=0
"$DARS" --data "$DATA" verify >"$W/verify.log" 2>&1 || verify_rc=$?
cp "$W"/*.txt "$W/verify.log" "$OUTDIR/" 2>/dev/null || true

python3 - "$W" "$verify_rc" "$imports" "$import_fail" <<'EOF' | tee "$OUTDIR/summary.txt"
import json, sys
w, verify_rc, imports, import_fail = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
reqs = json.load(open(f"{w}/requests.json"))
windows = [tuple(map(float, l.split())) for l in open(f"{w}/restarts.txt")][1:]
def in_restart(t0, t1):
    # in flight at the kill, or sent while the server was down (plus 1 s for reconnecting)
    return any(t0 <= k + 0.05 and t1 >= k - 0.05 or k - 0.05 <= t0 <= r + 1.0 for k, r in windows)
ok = sum(1 for r in reqs if r[2])
failed = [r for r in reqs if not r[2]]
at_restart = [r for r in failed if in_restart(r[0], r[1])]
lost = [r for r in failed if not in_restart(r[0], r[1])]
expected = [l.strip() for l in open(f"{w}/expected.txt") if l.strip()]
listed = {(l.get("id") or l["meta"]["id"]) for l in json.load(open(f"{w}/lessons.json"))["lessons"]}
missing = [e for e in expected if e not in listed]
rss = [l.split() for l in open(f"{w}/rss.txt")]
t0 = int(rss[0][0]) if rss else 0
print(f"requests: {len(reqs)}, ok {ok}, failed at the {len(windows)} restarts {len(at_restart)}, lost otherwise {len(lost)}")
for r in lost[:10]:
    print(f"  lost: {r[4]}: {r[3]}")
print(f"lessons: {len(listed)} listed; imported {imports} + 1 (failed imports: {import_fail}); missing: {missing or 'none'}")
print(f"dars verify: {'clean' if verify_rc == 0 else f'exit {verify_rc}'}")
print("RSS series (seconds, server lifetime, MB):")
print("  " + "  ".join(f"{int(t) - t0}s/{lt}:{int(kb) / 1024:.1f}" for t, lt, kb in rss))
by_life = {}
for t, lt, kb in rss:
    if int(kb):
        by_life.setdefault(int(lt), []).append(int(kb) / 1024)
print("peak RSS per lifetime (MB): " + ", ".join(f"{lt}: {max(v):.1f}" for lt, v in sorted(by_life.items())))
verdict = not lost and not missing and verify_rc == 0 and import_fail == 0
print("SOAK " + ("PASSED" if verdict else "FAILED"))
EOF
