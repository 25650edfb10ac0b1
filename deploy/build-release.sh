#!/usr/bin/env bash
# Release builds for the machines computer centres have, with Debian's cross compilers:
#   x86_64 Linux (PCs), aarch64 Linux (Raspberry Pi 3/4/5 with a 64-bit system), x86_64 Windows.
# Then the folder a technician copies onto a USB stick, and the Debian package.
#
#   deploy/build-release.sh            everything, into target/dist/
#   DARS_TARGETS="aarch64" deploy/build-release.sh    only some (x86_64 aarch64 windows deb)
#
# Needs (Debian): gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-mingw-w64-x86-64, and the
# Rust targets (added here with `rustup target add` if missing; the toolchain is not updated).
# Each release build takes about 3 minutes on 2 cores; a build already done is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${DARS_DIST:-target/dist}
TARGETS=${DARS_TARGETS:-x86_64 aarch64 windows deb}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

want() { case " $TARGETS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
need() {
  command -v "$1" >/dev/null || { echo "build-release.sh: $1 is missing: sudo apt-get install $2" >&2; exit 1; }
}
add_target() {
  if ! rustup target list --installed | grep -qx "$1"; then
    rustup target add "$1"
  fi
}

mkdir -p "$OUT"
took() { echo "   $1: $(($(date +%s) - $2)) s"; }

if want x86_64 || want deb; then
  echo "== x86_64 Linux"
  t0=$(date +%s)
  cargo build --release --locked
  cp target/release/dars "$OUT/dars-x86_64-linux"
  took "x86_64 Linux" "$t0"
fi

if want aarch64; then
  echo "== aarch64 Linux (Raspberry Pi)"
  need aarch64-linux-gnu-gcc "gcc-aarch64-linux-gnu libc6-dev-arm64-cross"
  add_target aarch64-unknown-linux-gnu
  t0=$(date +%s)
  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar \
    cargo build --release --locked --target aarch64-unknown-linux-gnu
  cp target/aarch64-unknown-linux-gnu/release/dars "$OUT/dars-aarch64-linux"
  took "aarch64 Linux" "$t0"
fi

if want windows; then
  echo "== x86_64 Windows"
  need x86_64-w64-mingw32-gcc gcc-mingw-w64-x86-64
  add_target x86_64-pc-windows-gnu
  t0=$(date +%s)
  CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    CC_x86_64_pc_windows_gnu=x86_64-w64-mingw32-gcc \
    AR_x86_64_pc_windows_gnu=x86_64-w64-mingw32-ar \
    cargo build --release --locked --target x86_64-pc-windows-gnu
  cp target/x86_64-pc-windows-gnu/release/dars.exe "$OUT/dars-x86_64-windows.exe"
  took "x86_64 Windows" "$t0"
fi

if want deb; then
  echo "== Debian package (amd64)"
  if ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked --version "${CARGO_DEB_VERSION:-3.8.0}"
  fi
  cargo deb --no-build --output "$OUT/dars_${VERSION}-1_amd64.deb" >/dev/null
fi

# The USB stick folder: copy target/dist/usb/ to the root of a stick.
echo "== USB stick folder $OUT/usb"
rm -rf "$OUT/usb"
mkdir -p "$OUT/usb/dars" "$OUT/usb/dars-windows"
cp deploy/install.sh deploy/darsctl deploy/dars.service deploy/dars.toml deploy/README.md "$OUT/usb/dars/"
for f in "$OUT"/dars-*-linux "$OUT"/dars_*.deb; do
  [ -f "$f" ] && cp "$f" "$OUT/usb/dars/"
done
if [ -f "$OUT/dars-x86_64-windows.exe" ]; then
  cp "$OUT/dars-x86_64-windows.exe" "$OUT/usb/dars-windows/dars.exe"
  sed 's#^data = "/var/lib/dars"#data = "C:/dars/data"#' deploy/dars.toml >"$OUT/usb/dars-windows/dars.toml"
  cp deploy/windows/install-windows.ps1 "$OUT/usb/dars-windows/"
fi
sums=$(cd "$OUT/usb" && find . -type f ! -name SHA256SUMS -print0 | sort -z | xargs -0 sha256sum)
printf '%s\n' "$sums" >"$OUT/usb/SHA256SUMS"
ls -l "$OUT" "$OUT/usb/dars" "$OUT/usb/dars-windows"
