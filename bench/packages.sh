#!/usr/bin/env bash
# Package benchmark: size of a dars package vs gzip/zstd of every file, import speed vs
# cp -r, and the I/O cost of an update that changes 1 % of lessons.
# See bench/PACKAGES.md. Usage: bench/packages.sh [--quick]
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bench/packages.sh [--quick]

  --quick   small corpus (bench/out/corpus-quick, ~50 MB): a fast end-to-end check

Environment (defaults in brackets):
  CORPUS=DIR          folder of lesson folders to use instead of bench/out/corpus[-quick]
  IMPORT_RUNS=2       timed imports and copies per cache state
  CACHE_MODES="cold warm"
                      cold: the package's files are dropped from the page cache
                      (posix_fadvise DONTNEED) before each import / copy; warm: not
  SPLIT_LESSONS=300   the update test re-cuts the corpus into at least this many lessons
  CHANGE_PCT=1        ... and changes this % of them in v2
  TEXT_EVERY=2        ... editing every TEXT_EVERY-th text file of a changed lesson
  STRACE=1            also run the update import under strace to split its I/O by file
                      (WAL / database / package); 0 skips it
  QUIET_WAIT=60       before each timed step wait up to this many seconds for the machine
                      to be quiet (other processes < QUIET_PCT=10 % CPU) [60, quick 0]
  QUIET_BUDGET=600    total seconds all those waits may take
  JOBS=nproc          parallel gzip/zstd processes for the size comparison
  SKIP_BUILD=1        do not run cargo build --release
  DARS=path           dars binary [target/release/dars]
  KEEP_WORK=1         keep bench/out/packages-work[-quick] (packages, stores) after the run
  PERF=1              perf record one warm import and one import --check; they run an
                      unstripped build of the same sources (built into
                      bench/out/packages-prof-target) unless PERF_DARS=path is given
EOF
}

QUICK=0
ARGS=("$@")
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "packages.sh: unknown argument $arg" >&2; usage >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."
ROOT=$PWD
B=$ROOT/bench
OUT=$B/out
mkdir -p "$OUT"
TOOL=(python3 "$B/packages_tool.py")

if [ "$QUICK" = 1 ]; then
  MODE=quick; SUF=-quick
  QUIET_WAIT=${QUIET_WAIT:-0}
else
  MODE=full; SUF=
  QUIET_WAIT=${QUIET_WAIT:-60}
fi
IMPORT_RUNS=${IMPORT_RUNS:-2}
CACHE_MODES=${CACHE_MODES:-"cold warm"}
SPLIT_LESSONS=${SPLIT_LESSONS:-300}
CHANGE_PCT=${CHANGE_PCT:-1}
TEXT_EVERY=${TEXT_EVERY:-2}
STRACE=${STRACE:-1}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_BUDGET=${QUIET_BUDGET:-600}
JOBS=${JOBS:-$(nproc)}
SKIP_BUILD=${SKIP_BUILD:-0}
KEEP_WORK=${KEEP_WORK:-0}
PERF=${PERF:-0}
DARS=${DARS:-$ROOT/target/release/dars}
PERF_DARS=${PERF_DARS:-}
CORPUS_GIVEN=${CORPUS:-}
CORPUS=${CORPUS:-$OUT/corpus$SUF}

WORK=$OUT/packages-work$SUF     # packages, stores, split corpus: removed on exit
RES=$OUT/packages-res$SUF       # JSON of every measurement (kept)
LOGS=$OUT/packages-logs$SUF     # dars / cp / strace output (kept)
RESULTS=$OUT/packages-results$SUF.md
SIZE_CACHE=$OUT/packages-sizes$SUF.tsv
CLK_TCK=$(getconf CLK_TCK)
NCPU=$(nproc)

say() { printf '\n==> %s\n' "$*"; }
die() { echo "packages.sh: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
cleanup() {
  local rc=$?
  if [ "$KEEP_WORK" != 1 ] && [ -d "$WORK" ]; then
    rm -rf "$WORK"
  elif [ -d "$WORK" ]; then
    echo "kept $WORK (KEEP_WORK=1)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
need=()
for t in gzip zstd python3 cp sync; do
  command -v "$t" >/dev/null 2>&1 || need+=("$t")
done
# dars serve (making gzip variants) runs in its own network namespace: unshare and ip
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ "$STRACE" = 1 ] && ! command -v strace >/dev/null 2>&1; then need+=(strace); fi
if [ ${#need[@]} -gt 0 ]; then
  say "installing missing tools: ${need[*]}"
  [ "$(id -u)" = 0 ] || die "missing ${need[*]}; install them (apt-get install zstd strace)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The machine may be shared (builds, other benchmarks): before each timed step wait up to
# QUIET_WAIT seconds for a second in which processes use < QUIET_PCT % of the CPUs.
busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $9; exit }' /proc/stat; }
QUIET_SPENT=0
LOAD_NOTES=()
wait_quiet() { # label
  local start=$SECONDS limit b0 b1 pct
  limit=$(( QUIET_WAIT < QUIET_BUDGET - QUIET_SPENT ? QUIET_WAIT : QUIET_BUDGET - QUIET_SPENT ))
  [ "$limit" -gt 0 ] || return 0
  while :; do
    b0=$(busy_ticks); sleep 1; b1=$(busy_ticks)
    pct=$(( (b1 - b0) * 100 / (CLK_TCK * NCPU) ))
    if [ "$pct" -lt "$QUIET_PCT" ]; then break; fi
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      echo "  (other processes use ${pct}% of the CPUs after $((SECONDS - start)) s of waiting; running anyway)"
      LOAD_NOTES+=("$1: other processes used ${pct}% of the CPUs just before it")
      break
    fi
  done
  QUIET_SPENT=$((QUIET_SPENT + SECONDS - start))
}

# run LABEL cmd...: runs cmd under the /proc/PID/io sampler; JSON in $RES/LABEL.json
run() {
  local label=$1; shift
  "${TOOL[@]}" run --json "$RES/$label.json" --log "$LOGS/$label.log" -- "$@"
}
jget() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."): d=d[k]
print(d)' "$@"; }

rm -rf "$WORK" "$RES"
mkdir -p "$WORK" "$RES" "$LOGS"

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
if [ "$PERF" = 1 ] && [ -z "$PERF_DARS" ]; then
  # perf needs symbols: the same sources, release profile, not stripped
  say "cargo build --release (unstripped, for perf) -> ${OUT#$ROOT/}/packages-prof-target"
  if CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
      cargo build --release --target-dir "$OUT/packages-prof-target" >"$LOGS/cargo-build-perf.log" 2>&1; then
    PERF_DARS=$OUT/packages-prof-target/release/dars
  else
    tail -n 20 "$LOGS/cargo-build-perf.log" >&2
    echo "unstripped build failed; perf will show addresses only"
    PERF_DARS=$DARS
  fi
fi

# ---------------------------------------------------------------- machine / versions
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
# The kernel's readahead for the disk the work folder is on (cold reads are counted with it)
DEV=$(df --output=source "$OUT" | tail -n 1); DEV=${DEV#/dev/}
READAHEAD_KB=$(cat "/sys/block/${DEV}/queue/read_ahead_kb" 2>/dev/null \
  || cat "/sys/class/block/${DEV}/../queue/read_ahead_kb" 2>/dev/null || echo unknown)
export READAHEAD_KB
DIRTY=$(git status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
python3 - "$RES/meta.json" "$MODE" "$CORPUS" "$COMMIT" "$DIRTY" "$CPU_MODEL" \
    "bench/packages.sh${ARGS[*]:+ ${ARGS[*]}}" "$("$DARS" --version 2>&1 | head -n1)" <<EOF
import json, os, sys, datetime
out, mode, corpus, commit, dirty, cpu, cmd, ver = sys.argv[1:]
ra = os.environ.get("READAHEAD_KB", "unknown")
env = {k: os.environ[k] for k in ("CORPUS", "IMPORT_RUNS", "CACHE_MODES", "SPLIT_LESSONS", "CHANGE_PCT",
       "TEXT_EVERY", "STRACE", "QUIET_WAIT", "JOBS", "SKIP_BUILD", "DARS", "PERF", "PERF_DARS") if k in os.environ}
mem = next((int(l.split()[1]) // 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump(dict(mode=mode, corpus=os.path.relpath(corpus), commit=commit, dirty=int(dirty), cpu=cpu,
               nproc=os.cpu_count(), mem_mib=mem, kernel=os.uname().release,
               command=" ".join(f"{k}={v}" for k, v in env.items()) + (" " if env else "") + cmd,
               dars_version=ver, date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
               import_runs=int("$IMPORT_RUNS"), cache_modes="$CACHE_MODES".split(), read_ahead_kb=ra),
          open(out, "w"), indent=1)
EOF

KEY=$WORK/publisher.key
"$DARS" keygen --out "$KEY" >"$LOGS/keygen.log" 2>&1 || { cat "$LOGS/keygen.log" >&2; die "dars keygen failed"; }
PUB=$(cat "$KEY.pub")
export DARS_TRUSTED_KEYS="[\"$PUB\"]"
export DARS_LOG=${DARS_LOG:-warn}
echo "publisher key $PUB"

# ---------------------------------------------------------------- 1. sizes + publish time
say "1. package size: publish with and without a dictionary, gzip -9 / zstd -19 of every file"
PKG=$WORK/pkg            # with dictionary (the default): also the package of step 2
PKG_ND=$WORK/pkg-nodict
wait_quiet "publish"
run publish-dict "$DARS" publish "$CORPUS" --key "$KEY" --out "$PKG" --seq 1
grep -E '^(zstd dictionary|published|package:)' "$LOGS/publish-dict.log" || true
wait_quiet "publish --no-dictionary"
run publish-nodict "$DARS" publish "$CORPUS" --key "$KEY" --out "$PKG_ND" --seq 1 --no-dictionary
grep -E '^(published|package:)' "$LOGS/publish-nodict.log" || true
"${TOOL[@]}" pkgsize "$PKG" --out "$RES/pkg-dict.json"
"${TOOL[@]}" pkgsize "$PKG_ND" --out "$RES/pkg-nodict.json"
"${TOOL[@]}" sizes --corpus "$CORPUS" --cache "$SIZE_CACHE" --jobs "$JOBS" --distinct --out "$RES/sizes.json"
"${TOOL[@]}" breakdown --pkg "$PKG" --corpus "$CORPUS" --cache "$SIZE_CACHE" --out "$RES/breakdown-dict.json"
"${TOOL[@]}" breakdown --pkg "$PKG_ND" --corpus "$CORPUS" --cache "$SIZE_CACHE" --out "$RES/breakdown-nodict.json"

# ---------------------------------------------------------------- 2. import vs cp -r
say "2. import speed: dars import vs cp -r of the same package (${IMPORT_RUNS} runs, cache: $CACHE_MODES)"
PKG_BYTES=$(jget "$RES/pkg-dict.json" bytes)
STORE=$WORK/store
CPDST=$WORK/cp-copy
for cache in $CACHE_MODES; do
  case "$cache" in cold|warm) ;; *) die "CACHE_MODES: unknown mode $cache (cold, warm)" ;; esac
  for i in $(seq "$IMPORT_RUNS"); do
    # dars import into a fresh store
    rm -rf "$STORE"; sync
    if [ "$cache" = cold ]; then "${TOOL[@]}" evict "$PKG" 2>/dev/null; else find "$PKG" -type f -print0 | xargs -0 cat >/dev/null; fi
    wait_quiet "import $cache $i"
    run "import-$cache-$i" "$DARS" --data "$STORE" import "$PKG"
    t=$(jget "$RES/import-$cache-$i.json" wall)
    # The import stores text as zstd only; dars serve's background worker makes the gzip
    # variants afterwards. The time until the last one is stored is measured too.
    "${TOOL[@]}" variants --dars "$DARS" --store "$STORE" --json "$RES/variants-$cache-$i.json" \
      --log "$LOGS/variants-$cache-$i.log"
    v=$(jget "$RES/variants-$cache-$i.json" wall)
    # the same, copied
    rm -rf "$CPDST"; sync
    if [ "$cache" = cold ]; then "${TOOL[@]}" evict "$PKG" 2>/dev/null; fi
    wait_quiet "cp $cache $i"
    run "cp-$cache-$i" cp -r "$PKG" "$CPDST"
    run "sync-$cache-$i" sync
    c=$(jget "$RES/cp-$cache-$i.json" wall); s=$(jget "$RES/sync-$cache-$i.json" wall)
    awk -v b="$PKG_BYTES" -v t="$t" -v c="$c" -v s="$s" -v m="$cache" -v i="$i" -v v="$v" 'BEGIN {
      printf "  %s run %d: dars import %.2f s (%.1f MB/s; every gzip variant ready %.2f s later), cp -r %.2f s (%.1f MB/s), cp -r + sync %.2f s (%.1f MB/s)\n",
        m, i, t, b / 1e6 / t, v, c, b / 1e6 / c, c + s, b / 1e6 / (c + s) }'
  done
done
"${TOOL[@]}" sqlite "$STORE" --pages --out "$RES/store-full.json"
# Where the time goes: the same package only checked (read, zstd-decoded, hashed; no gzip
# variant, nothing stored), warm cache.
find "$PKG" -type f -print0 | xargs -0 cat >/dev/null
wait_quiet "import --check"
run import-check "$DARS" import --check "$PKG"
if [ "$PERF" = 1 ]; then
  # Where a warm import's CPU goes (needs symbols: PERF_DARS = an unstripped build)
  perf_top() { # name lines cmd...
    local name=$1 lines=$2; shift 2
    if perf record -q -g -o "$WORK/perf-$name.data" "$@" >"$LOGS/perf-$name.log" 2>&1; then
      perf report -i "$WORK/perf-$name.data" --no-children --stdio --sort sym >"$WORK/perf-$name.txt" 2>/dev/null || true
      grep -E '^ +[0-9.]+%' "$WORK/perf-$name.txt" | head -n "$lines" >"$RES/perf-$name.txt" || true
    else
      echo "perf record failed (see ${LOGS#$ROOT/}/perf-$name.log)"
    fi
  }
  if command -v perf >/dev/null 2>&1; then
    rm -rf "$STORE"
    perf_top import 12 "$PERF_DARS" --data "$STORE" import "$PKG"
    perf_top check 6 "$PERF_DARS" import --check "$PKG"
  else
    echo "PERF=1 but no perf command; skipped"
  fi
fi
du -sb "$STORE" | awk '{ printf "store after import: %.1f MB\n", $1 / 1e6 }'
rm -rf "$CPDST" "$STORE" "$PKG_ND"

# ---------------------------------------------------------------- 3. update cost
say "3. update cost: v1 -> v2 with ${CHANGE_PCT} % of >= ${SPLIT_LESSONS} lessons changed"
SPLIT1=$WORK/split-v1
SPLIT2=$WORK/split-v2
"${TOOL[@]}" split --corpus "$CORPUS" --out "$SPLIT1" --lessons "$SPLIT_LESSONS" --json "$RES/split.json"
"${TOOL[@]}" v2 --src "$SPLIT1" --out "$SPLIT2" --pct "$CHANGE_PCT" --text-every "$TEXT_EVERY" --json "$RES/v2.json"
U1=$WORK/upd-v1
U2=$WORK/upd-v2
wait_quiet "publish v1"
run publish-v1 "$DARS" publish "$SPLIT1" --key "$KEY" --out "$U1" --seq 1
# The publisher keeps one package folder and publishes v2 into it (over v1), as a ministry
# does: publish then reuses v1's dictionary while it still pays, so the unchanged lessons keep
# their blob and part files byte for byte.
cp -a "$U1" "$U2"
wait_quiet "publish v2"
run publish-v2 "$DARS" publish "$SPLIT2" --key "$KEY" --out "$U2" --seq 2
grep -E '^(zstd dictionary|published)' "$LOGS/publish-v1.log" "$LOGS/publish-v2.log" || true
rm -rf "$PKG"

SA=$WORK/store-a   # normal import: SQLite checkpoints inside dars (auto + on close)
SB=$WORK/store-b   # a reader holds a snapshot: no checkpoint in dars; checkpoint measured after
SC=$WORK/store-c   # under strace, to split the bytes by file
SD=$WORK/store-d   # warm: the store's pages cached, as in a centre whose dars serve reads them
run upd-import-v1 "$DARS" --data "$SA" import "$U1"
grep -E '^imported' "$LOGS/upd-import-v1.log" || true
# A centre that serves has made v1's gzip variants long before v2 arrives: make them now, so
# that A' below counts only the variants of v2's new text.
"${TOOL[@]}" variants --dars "$DARS" --store "$SA" --json "$RES/upd-v1-variants.json" --log "$LOGS/upd-v1-variants.log"
# ... and their pages are in the database, not left in the WAL for the update to checkpoint.
# v1 arrived days before v2 at a real centre: its contents are past the hour's grace within
# which an import never collects a content (it may belong to an import still running), so
# the update also deletes the old versions of the files it changes. Made young a minute ago,
# they would be kept, and the update would look cheaper than it is.
python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE blobs SET added_at = added_at - 2 * 86400"); c.commit()' "$SA/dars.sqlite"
python3 -c 'import sqlite3, sys; sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(TRUNCATE)")' "$SA/dars.sqlite"
[ ! -e "$SA/dars.sqlite-wal" ] || echo "note: dars left a WAL file after importing v1"
cp -a "$SA" "$SB"
cp -a "$SA" "$SD"
SE0=$WORK/store-e0  # E: what reaches the disk; each run copies this pristine v1 store to SE
SE=$WORK/store-e
cp -a "$SA" "$SE0"
[ "$STRACE" = 1 ] && cp -a "$SA" "$SC"
"${TOOL[@]}" sqlite "$SA" --pages --out "$RES/upd-store-v1.json"
# The copies' pages must be on disk: a write to a page still dirty from `cp` is not counted
# in write_bytes (the kernel counts a page once, when it becomes dirty).
sync

# A: the update as a user runs it
"${TOOL[@]}" evict "$U2" "$SA" "$SB" 2>/dev/null
wait_quiet "update import"
run upd-a "$DARS" --data "$SA" import "$U2"
grep -E '^imported' "$LOGS/upd-a.log" || true
"${TOOL[@]}" sqlite "$SA" --pages --out "$RES/upd-store-a.json"
# ... and what dars serve's worker then writes to make the new text's gzip variants
"${TOOL[@]}" evict "$SA" 2>/dev/null
"${TOOL[@]}" variants --dars "$DARS" --store "$SA" --json "$RES/upd-a-variants.json" --log "$LOGS/upd-a-variants.log"
"${TOOL[@]}" diff --v1 "$U1" --v2 "$U2" --store "$SA/dars.sqlite" --out "$RES/diff.json"

# B: same update with every checkpoint held off by a reader, then the checkpoint alone
"${TOOL[@]}" evict "$U2" 2>/dev/null
wait_quiet "update import (checkpoint held off)"
"${TOOL[@]}" run --json "$RES/upd-b.json" --log "$LOGS/upd-b.log" --hold-db "$SB/dars.sqlite" -- \
  "$DARS" --data "$SB" import "$U2"
"${TOOL[@]}" sqlite "$SB" --pages --out "$RES/upd-store-b.json"

# D: the store warm (a serving centre's database is in the page cache), the package cold
# (a stick just plugged in)
"${TOOL[@]}" evict "$U2" 2>/dev/null
find "$SD" -type f -print0 | xargs -0 cat >/dev/null
wait_quiet "update import (store warm)"
run upd-d "$DARS" --data "$SD" import "$U2"

# E: the bytes that reach the disk (the block device's count of sectors written, the
# filesystem's journal included) for the import and the `sync` after it, less what an idle
# stretch as long writes; the least of 3 runs on fresh copies
"${TOOL[@]}" evict "$U2" 2>/dev/null
wait_quiet "update import (device writes)"
"${TOOL[@]}" device --json "$RES/upd-e.json" --pristine "$SE0" --store "$SE" --evict "$U2" -- \
  "$DARS" --data "$SE" import "$U2"

# C: under strace (slower; only its byte counts per file are used)
if [ "$STRACE" = 1 ]; then
  "${TOOL[@]}" evict "$U2" 2>/dev/null
  rm -rf "$LOGS/strace"; mkdir -p "$LOGS/strace"
  run upd-c strace -f -ff -y -s 0 -e trace=read,pread64,readv,preadv,write,pwrite64,writev,pwritev,fsync,fdatasync \
    -o "$LOGS/strace/io" "$DARS" --data "$SC" import "$U2"
  "${TOOL[@]}" strace --log "$LOGS/strace" --store "$SC" --pkg "$U2" --out "$RES/upd-strace.json"
fi

# ---------------------------------------------------------------- report
say "report -> ${RESULTS#$ROOT/}"
if [ ${#LOAD_NOTES[@]} -gt 0 ]; then
  printf '%s\n' "${LOAD_NOTES[@]}" > "$RES/load-notes.txt"
fi
python3 "$B/packages_report.py" "$RES" | tee "$RESULTS"
python3 - "$RES" "$OUT/packages-results$SUF.json" <<'EOF'
import json, os, sys
res = {n[:-5]: json.load(open(os.path.join(sys.argv[1], n))) for n in sorted(os.listdir(sys.argv[1])) if n.endswith(".json")}
json.dump(res, open(sys.argv[2], "w"), indent=1)
EOF
echo
echo "written: ${RESULTS#$ROOT/} (all numbers: ${OUT#$ROOT/}/packages-results$SUF.json, logs: ${LOGS#$ROOT/}/)"
