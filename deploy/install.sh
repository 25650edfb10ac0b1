#!/bin/sh
# Offline installer for dars, run from a USB stick on a Linux PC without the package manager:
#   sudo sh /media/usb/dars/install.sh              install, or update to the stick's version
#   sudo sh /media/usb/dars/install.sh --uninstall  remove dars, keep the lessons and settings
#   sudo sh /media/usb/dars/install.sh --uninstall --purge   remove the lessons and settings too
# The stick's folder holds this script, the binaries (dars-x86_64-linux, dars-aarch64-linux, or
# just dars), dars.service, dars.toml and darsctl (deploy/build-release.sh makes it).
# Running it twice changes nothing the second time. An edited /etc/dars/dars.toml is never
# overwritten: the stick's version is put beside it as dars.toml.new.
set -eu

PREFIX=/usr/local
BIN=$PREFIX/bin/dars
CTL=$PREFIX/sbin/darsctl
UNIT=/etc/systemd/system/dars.service
CONFIG_DIR=/etc/dars
CONFIG=$CONFIG_DIR/dars.toml
DATA=/var/lib/dars

say() { printf '%s\n' "$*"; }
fail() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

usage() {
  say "usage: sudo sh install.sh [--uninstall [--purge]]"
  say "  (no option)   install dars, or update it to the version on this stick"
  say "  --uninstall   remove dars; the lessons ($DATA) and settings ($CONFIG) stay"
  say "  --purge       with --uninstall: delete the lessons and settings too"
}

uninstall=no
purge=no
for arg in "$@"; do
  case $arg in
    --uninstall) uninstall=yes ;;
    --purge) purge=yes ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; fail "unknown option $arg" ;;
  esac
done
[ "$purge" = no ] || [ "$uninstall" = yes ] || fail "--purge goes with --uninstall"
[ "$(id -u)" -eq 0 ] || fail "run it as administrator:  sudo sh $0 $*"

systemd_running() { [ -d /run/systemd/system ]; }
have() { command -v "$1" >/dev/null 2>&1; }

if have dpkg-query && dpkg-query -W -f='${Status}' dars 2>/dev/null | grep -q 'ok installed'; then
  fail "the Debian package dars is installed here: update it with  sudo apt install ./dars_*.deb  (or remove it with  sudo apt remove dars) instead"
fi

if [ "$uninstall" = yes ]; then
  if systemd_running && have systemctl; then
    systemctl disable --now dars.service >/dev/null 2>&1 || true
  elif have systemctl; then
    systemctl disable dars.service >/dev/null 2>&1 || true
  fi
  rm -f /etc/systemd/system/multi-user.target.wants/dars.service
  rm -f "$UNIT" "$BIN" "$CTL"
  if systemd_running && have systemctl; then systemctl daemon-reload; fi
  if [ "$purge" = yes ]; then
    rm -rf "$DATA" "$CONFIG_DIR"
    if id dars >/dev/null 2>&1 && have userdel; then userdel dars 2>/dev/null || true; fi
    say "dars is removed, with its lessons and settings."
  else
    say "dars is removed. The lessons stay in $DATA and the settings in $CONFIG;"
    say "installing again finds them. To delete them too: sudo sh $0 --uninstall --purge"
  fi
  exit 0
fi

# --- install or update -----------------------------------------------------------------------
SRC=$(cd "$(dirname "$0")" && pwd)
case $(uname -m) in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) fail "this PC is $(uname -m); the stick has dars for x86_64 and aarch64 (Raspberry Pi) only" ;;
esac
binary=""
for candidate in "$SRC/dars-$arch-linux" "$SRC/dars"; do
  if [ -f "$candidate" ]; then binary=$candidate; break; fi
done
[ -n "$binary" ] || fail "no dars-$arch-linux (or dars) next to install.sh in $SRC: copy the whole release folder onto the stick"
for file in dars.service dars.toml darsctl; do
  [ -f "$SRC/$file" ] || fail "$file is missing from $SRC: copy the whole release folder onto the stick"
done
version=$("$binary" --version 2>/dev/null) || fail "$binary does not run on this PC ($(uname -m)); is it the right build?"

changed=no
# Copies $1 to $2 with mode $3 unless $2 already has the same bytes; the copy goes in under a
# temporary name first, so a power cut leaves the old file or the new one.
put() {
  if [ -f "$2" ] && cmp -s "$1" "$2"; then
    return 1
  fi
  # (set -e does not stop a function called from `if`, hence the explicit checks.)
  mkdir -p "$(dirname "$2")" || fail "cannot create $(dirname "$2")"
  cp "$1" "$2.new.$$" || fail "cannot write $2 (is the disk full?)"
  chmod "$3" "$2.new.$$" || fail "cannot set the mode of $2"
  mv -f "$2.new.$$" "$2" || fail "cannot put $2 in place"
  return 0
}

if ! id dars >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$DATA" --no-create-home \
    --shell /usr/sbin/nologin --comment "dars lesson server" dars
  say "created the system user dars"
fi

if put "$binary" "$BIN" 755; then say "installed $BIN ($version)"; changed=yes; else say "$BIN is up to date ($version)"; fi
if put "$SRC/darsctl" "$CTL" 755; then say "installed $CTL"; changed=yes; fi

mkdir -p "$CONFIG_DIR"
if [ ! -f "$CONFIG" ]; then
  put "$SRC/dars.toml" "$CONFIG" 644 || true
  say "installed $CONFIG: edit centre_name (and trusted_keys) there, then: sudo systemctl restart dars"
elif cmp -s "$SRC/dars.toml" "$CONFIG"; then
  :
else
  # Never overwrite the technician's settings; offer the stick's copy beside them.
  if put "$SRC/dars.toml" "$CONFIG.new" 644; then
    say "kept your $CONFIG; the stick's example is in $CONFIG.new for comparison"
  fi
fi

mkdir -p "$DATA"
chown -R dars:dars "$DATA"
chmod 750 "$DATA"

unit_tmp=$(mktemp)
sed "s#/usr/bin/dars#$BIN#g" "$SRC/dars.service" >"$unit_tmp"
if put "$unit_tmp" "$UNIT" 644; then say "installed $UNIT"; changed=yes; fi
rm -f "$unit_tmp"

if systemd_running && have systemctl; then
  systemctl daemon-reload
  systemctl enable dars.service >/dev/null 2>&1
  if [ "$changed" = yes ]; then
    systemctl restart dars.service
  else
    systemctl start dars.service
  fi
  if systemctl is-active --quiet dars.service; then
    say "dars is running and starts at every boot. Check it with: sudo darsctl status"
  else
    fail "dars did not start; see why with: sudo journalctl -u dars -n 50"
  fi
else
  # Enable it for the next boot even though systemd is not running now (a chroot, a container).
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf "$UNIT" /etc/systemd/system/multi-user.target.wants/dars.service
  say "dars is installed and will start at the next boot. systemd is not running here, so it was"
  say "not started now; to start the server by hand:"
  say "  runuser -u dars -- env DARS_DATA=$DATA $BIN --config $CONFIG serve"
fi
