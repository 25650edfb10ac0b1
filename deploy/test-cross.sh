#!/usr/bin/env bash
# The cross builds, run: build-release.sh's aarch64 Linux and x86_64 Windows binaries (reused
# when already built), then
#   - the aarch64 binary under qemu-aarch64-static: `dars serve` on a new store (the samples
#     load), a lesson page and a picture fetched with curl and compared with content/;
#   - dars.exe under Wine (if Debian's wine64 is installed): --version, then serve and a lesson
#     fetched the same way.
#   deploy/test-cross.sh        (about 10 min from cold: two release builds)
# Needs: qemu-user-static gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-mingw-w64-x86-64 curl
# (and wine64 for the Windows part; DARS_REQUIRE_WINE=1 makes its absence a failure).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
cd "$REPO"
need qemu-aarch64-static aarch64-linux-gnu-gcc x86_64-w64-mingw32-gcc curl file python3

step "cross builds"
DARS_TARGETS="aarch64 windows" deploy/build-release.sh >"$WORK/build.log" 2>&1 || { tail -30 "$WORK/build.log"; fail "build-release.sh"; }
grep -E '^   ' "$WORK/build.log" || true
DIST=${DARS_DIST:-target/dist}
file "$DIST/dars-aarch64-linux" | tee /dev/stderr | grep -q 'ARM aarch64' || fail "not an aarch64 binary"
file "$DIST/dars-x86_64-windows.exe" | tee /dev/stderr | grep -q 'PE32+ executable.*x86-64' || fail "not a Windows x86-64 binary"
ls -l "$DIST/dars-aarch64-linux" "$DIST/dars-x86_64-windows.exe"

# Serves a new store with the command in "$@" plus --listen, then fetches a sample lesson's
# page and its PDF and compares them with the repository's content/ folder.
smoke() {
  local what=$1 port
  shift
  port=$(free_port)
  start_server "$WORK/$what.log" "$@" serve --listen "127.0.0.1:$port"
  wait_healthy "127.0.0.1:$port" >"$WORK/$what.health" || { cat "$WORK/$what.log"; fail "$what did not answer"; }
  grep -q '"lessons":16' "$WORK/$what.health" || fail "$what: $(cat "$WORK/$what.health")"
  curl -fsS "http://127.0.0.1:$port/lessons/math-4-fractions-az/" -o "$WORK/$what.page"
  cmp "$WORK/$what.page" content/math-4-fractions-az/index.html || fail "$what: the lesson page differs"
  curl -fsS "http://127.0.0.1:$port/lessons/math-4-fractions-az/worksheet.pdf" -o "$WORK/$what.pdf"
  cmp "$WORK/$what.pdf" content/math-4-fractions-az/worksheet.pdf || fail "$what: worksheet.pdf differs"
  stop_server
  pass "$what: served 16 sample lessons; index.html and worksheet.pdf fetched byte for byte"
}

step "aarch64 under qemu-aarch64-static"
qemu-aarch64-static -L /usr/aarch64-linux-gnu "$DIST/dars-aarch64-linux" --version
smoke aarch64 qemu-aarch64-static -L /usr/aarch64-linux-gnu "$DIST/dars-aarch64-linux" --data "$WORK/aarch64-data"

step "x86_64 Windows under Wine"
WINE=$(command -v wine64 || command -v wine || ls /usr/lib/wine/wine64 2>/dev/null || true)
if [ -z "$WINE" ]; then
  [ -z "${DARS_REQUIRE_WINE:-}" ] || fail "wine is missing: apt-get install wine64"
  echo "SKIPPED: wine is not installed (apt-get install wine64); dars.exe was built but not run"
else
  export WINEARCH=win64 WINEPREFIX=$WORK/wine WINEDEBUG=-all
  "$WINE" wineboot --init >/dev/null 2>&1 || true
  # Rust's standard library takes its random numbers from ProcessPrng in bcryptprimitives.dll
  # (Windows 10 and later); Debian 12's Wine 8 has no such DLL, so dars.exe would not start
  # under it (status c0000135). For Wine only, a shim built here that answers ProcessPrng
  # with RtlGenRandom sits next to the .exe (an application's folder is searched first).
  mkdir -p "$WORK/win"
  cp "$DIST/dars-x86_64-windows.exe" "$WORK/win/dars.exe"
  cat >"$WORK/win/bcp.c" <<'SHIM'
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
    if (!SystemFunction036(data, n)) return FALSE;
    data += n;
    len -= n;
  }
  return TRUE;
}
SHIM
  x86_64-w64-mingw32-gcc -shared -O2 -o "$WORK/win/bcryptprimitives.dll" "$WORK/win/bcp.c" -ladvapi32 \
    || fail "building the bcryptprimitives.dll shim for Wine"
  "$WINE" "$WORK/win/dars.exe" --version 2>/dev/null | tee "$WORK/wine-version"
  grep -q '^dars ' "$WORK/wine-version" || fail "dars.exe --version under wine"
  smoke windows "$WINE" "$WORK/win/dars.exe" --data "$WORK/windows-data"
fi
pass "test-cross.sh"
