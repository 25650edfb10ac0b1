# Shared by deploy/test-*.sh (sourced, not run): a Debian bookworm root made by debootstrap,
# cached as a tarball under target/deploy-cache/ and unpacked fresh for each test, and the
# chroot mounts it needs, undone on exit.
# shellcheck shell=bash

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${DARS_DEPLOY_CACHE:-$REPO/target/deploy-cache}
MIRROR=${DARS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
ROOT_TARBALL=$CACHE/bookworm-minbase-systemd-python3.tar
WORK=$(mktemp -d "/tmp/dars-deploy-test.$$.XXXX")
MOUNTS=()

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
pass() { printf 'ok: %s\n' "$*"; }

need() {
  for tool in "$@"; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install $(package_of "$tool")"
  done
}

package_of() {
  case $1 in
    debootstrap) echo debootstrap ;;
    shellcheck) echo shellcheck ;;
    qemu-aarch64-static) echo qemu-user-static ;;
    aarch64-linux-gnu-gcc) echo "gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
    x86_64-w64-mingw32-gcc) echo gcc-mingw-w64-x86-64 ;;
    systemd-analyze) echo systemd ;;
    curl) echo curl ;;
    *) echo "$1" ;;
  esac
}

cleanup() {
  local i
  stop_server
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTS[$i]}" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

# A fresh bookworm root (minbase plus systemd, which brings systemctl, deb-systemd-helper and
# systemd-analyze but is never started in a chroot) at $1.
fresh_root() {
  local root=$1
  if [ ! -f "$ROOT_TARBALL" ]; then
    need debootstrap
    step "debootstrap bookworm (minbase + systemd + python3 for ansible) into the cache, once"
    mkdir -p "$CACHE"
    local build=$CACHE/build.$$
    rm -rf "$build"
    debootstrap --variant=minbase --include=systemd,python3 bookworm "$build" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
      { tail -20 "$CACHE/debootstrap.log"; fail "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    rm -rf "$build/var/cache/apt/archives/"*.deb
    tar -C "$build" -cf "$ROOT_TARBALL.part" . && mv "$ROOT_TARBALL.part" "$ROOT_TARBALL"
    rm -rf "$build"
  fi
  mkdir -p "$root"
  tar -C "$root" -xf "$ROOT_TARBALL"
  mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
  mount --bind /dev "$root/dev" && MOUNTS+=("$root/dev")
}

# Runs a command inside the root $ROOT.
in_root() {
  chroot "${ROOT:?}" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"
}

# Waits until http://$1/healthz answers (at most 20 s, asking every 10 ms); prints its body.
wait_healthy() {
  local addr=$1 i
  for ((i = 0; i < 2000; i++)); do
    if body=$(curl -fsS "http://$addr/healthz" 2>/dev/null); then
      printf '%s\n' "$body"
      return 0
    fi
    sleep 0.01
  done
  return 1
}

# The dars binary to test: $DARS_BIN if set (CI passes the debug build it already has),
# otherwise the release build, made (or reused) here. Prints its path.
dars_binary() {
  if [ -n "${DARS_BIN:-}" ]; then
    [ -x "$DARS_BIN" ] || fail "DARS_BIN=$DARS_BIN is not a program"
    printf '%s\n' "$DARS_BIN"
  else
    cargo build --release --locked >&2
    printf '%s\n' "$REPO/target/release/dars"
  fi
}

# Builds the Debian package of binary $1 into $2, with package version $3 if given.
make_deb() {
  local bin=$1 out=$2 version=${3:-}
  if ! command -v cargo-deb >/dev/null; then
    cargo install cargo-deb --locked --version "${CARGO_DEB_VERSION:-3.8.0}" >&2
  fi
  # cargo-deb packages <target dir>/release/dars: give it a target dir holding this binary.
  local target=$WORK/deb-target
  mkdir -p "$target/release"
  cp "$bin" "$target/release/dars"
  CARGO_TARGET_DIR=$target cargo deb --no-build ${version:+--deb-version "$version"} --output "$out" >/dev/null
}

# Starts a server in its own process group ("$@", output to $1), so stop_server ends it and
# everything it started (chroot, runuser and dars alike). Sets SERVER.
SERVER=""
start_server() {
  local log=$1
  shift
  setsid "$@" >"$log" 2>&1 &
  SERVER=$!
}
stop_server() {
  if [ -n "$SERVER" ]; then
    kill -TERM -- "-$SERVER" 2>/dev/null || true
    wait "$SERVER" 2>/dev/null || true
    SERVER=""
  fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
