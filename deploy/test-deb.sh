#!/usr/bin/env bash
# The Debian package for real, in a debootstrap'd bookworm root (chroot; systemd is installed
# there but not running): install an older version, serve from the installed binary as the
# dars user, import lessons, edit the config, upgrade (lessons and config kept), remove (lessons
# kept), reinstall, purge (lessons gone). Also `systemd-analyze verify` of the installed unit,
# and how long a store of 10,000 lessons takes to answer its first request.
#   sudo deploy/test-deb.sh        (as root; about 4 min with the release build and root cached)
# Needs: debootstrap curl (Debian), cargo-deb (installed here if missing).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
cd "$REPO"
need debootstrap curl dpkg-deb python3
[ "$(id -u)" -eq 0 ] || fail "run as root (chroot, mount)"

step "build: release binary and two packages (an older version to upgrade from)"
BIN=$(dars_binary)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
make_deb "$BIN" "$WORK/dars_old.deb" "${VERSION}~old1"
make_deb "$BIN" "$WORK/dars_new.deb"
dpkg-deb --info "$WORK/dars_new.deb" | sed -n '/Package/,$p'
dpkg-deb --contents "$WORK/dars_new.deb"
dpkg-deb --ctrl-tarfile "$WORK/dars_new.deb" | tar -t | grep -q conffiles || fail "no conffiles"
dpkg-deb -I "$WORK/dars_new.deb" conffiles | grep -qx /etc/dars/dars.toml || fail "dars.toml is not a conffile"
pass "dars.toml is a conffile"

ROOT=$WORK/root
fresh_root "$ROOT"
cp "$WORK"/dars_*.deb "$ROOT/tmp/"
cp -r tests/fixtures/schema-1-lessons "$ROOT/tmp/lessons"

step "install the older version"
in_root dpkg -i /tmp/dars_old.deb | tee "$WORK/install.log"
grep -q "systemd is not running here" "$WORK/install.log" || fail "no word on how to start without systemd"
installed_version() { in_root dpkg-query -W -f="\${Version}" dars; }
[ "$(installed_version)" = "${VERSION}~old1" ] || fail "old version not installed"
in_root /usr/bin/dars --version
in_root getent passwd dars | grep -q '/var/lib/dars:/usr/sbin/nologin' || fail "no dars system user"
[ "$(in_root stat -c %U /var/lib/dars)" = dars ] || fail "/var/lib/dars is not the dars user's"
unit=$(in_root sh -c 'ls /lib/systemd/system/dars.service /usr/lib/systemd/system/dars.service 2>/dev/null | head -1')
[ -n "$unit" ] || fail "the unit is not installed"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/dars.service" ] || fail "the unit is not enabled"
pass "installed: binary, user, store folder, unit $unit (enabled for boot)"

step "systemd-analyze verify of the installed unit"
in_root systemd-analyze verify "$unit" || fail "systemd-analyze verify $unit"
pass "systemd-analyze verify $unit"

# Starts the installed binary as the service would (user dars, the config, the state folder).
serve() {
  start_server "$WORK/serve.log" chroot "$ROOT" runuser -u dars -- env DARS_DATA=/var/lib/dars \
    /usr/bin/dars --config /etc/dars/dars.toml serve --listen "127.0.0.1:$PORT"
}

step "run the installed binary; import lessons with darsctl; edit the config"
PORT=$(free_port)
serve
wait_healthy "127.0.0.1:$PORT" >"$WORK/health.json" || { cat "$WORK/serve.log"; fail "the installed dars did not answer"; }
# A release build carries 16 sample lessons; a debug build (DARS_BIN) reads them from the
# source folder, which the root does not have, and starts with none.
samples=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lessons"])' "$WORK/health.json")
if [ "$samples" = 16 ]; then
  curl -fsS "http://127.0.0.1:$PORT/lessons/math-4-fractions-az/" | grep -q "<html" || fail "no sample lesson page"
fi
in_root darsctl import /tmp/lessons
curl -fsS "http://127.0.0.1:$PORT/lessons/kesrler/img/pizza.bin" | cmp - tests/fixtures/schema-1-lessons/kesrler/img/pizza.bin ||
  fail "an imported file differs"
sed -i 's/^centre_name = .*/centre_name = "Test centre 7"/' "$ROOT/etc/dars/dars.toml"
stop_server
before=$(in_root darsctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["lessons"])')
[ "$before" = $((samples + 2)) ] || fail "expected $samples samples + 2 lessons, found $before"
pass "served samples and an imported lesson; $before lessons"

step "upgrade to $VERSION over the older version"
in_root dpkg -i /tmp/dars_new.deb >"$WORK/upgrade.log" 2>&1 || { cat "$WORK/upgrade.log"; fail "upgrade failed"; }
[ "$(installed_version)" = "${VERSION}-1" ] || fail "new version not installed: $(installed_version)"
grep -q 'centre_name = "Test centre 7"' "$ROOT/etc/dars/dars.toml" || fail "the upgrade overwrote the edited config"
after=$(in_root darsctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["lessons"])')
[ "$after" = "$before" ] || fail "lessons before upgrade $before, after $after"
in_root darsctl verify | grep -q '^ok:' || fail "verify after upgrade"
pass "upgraded; config edit and $after lessons kept; verify ok"

step "remove (lessons kept), reinstall (found again), purge (gone)"
in_root dpkg -r dars >/dev/null
[ ! -e "$ROOT/usr/bin/dars" ] || fail "binary left after remove"
[ -f "$ROOT/var/lib/dars/dars.sqlite" ] || fail "remove deleted the lessons"
[ -f "$ROOT/etc/dars/dars.toml" ] || fail "remove deleted the config"
in_root dpkg -i /tmp/dars_new.deb >/dev/null
again=$(in_root darsctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["lessons"])')
[ "$again" = "$before" ] || fail "after reinstall: $again lessons"
in_root dpkg --purge dars >/dev/null
[ ! -e "$ROOT/var/lib/dars" ] || fail "purge left /var/lib/dars"
[ ! -e "$ROOT/etc/dars/dars.toml" ] || fail "purge left the config"
pass "remove kept the lessons, reinstall found $again, purge removed them"

if [ -n "${DARS_SKIP_START_TIME:-}" ]; then
  pass "test-deb.sh (the first-answer measurement skipped: DARS_SKIP_START_TIME is set)"
  exit 0
fi
step "first answer: a store of 16 sample lessons (reference), then one of 10,016 lessons"
in_root dpkg -i /tmp/dars_new.deb >/dev/null
# Prints the milliseconds from starting the installed server to its first /healthz answer.
first_answer_ms() {
  PORT=$(free_port)
  local start first
  start=$(date +%s%N)
  serve
  wait_healthy "127.0.0.1:$PORT" >"$WORK/health.json" || fail "no answer: $(cat "$WORK/serve.log")"
  first=$(date +%s%N)
  grep -q "\"lessons\":$1" "$WORK/health.json" || fail "healthz: $(cat "$WORK/health.json")"
  page=$(curl -fsS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/lessons/$2/")
  [ "$page" = 200 ] || fail "lesson page $2: $page"
  stop_server
  echo $(((first - start) / 1000000))
}
[ "$samples" = 16 ] || fail "the start-time measurement needs the release build (16 samples)"
first_answer_ms 16 math-4-fractions-az >/dev/null # the samples load on the first start
python3 deploy/gen-lessons.py "$ROOT/tmp/many" 10000
small=() big=()
for _ in 1 2 3; do small+=("$(first_answer_ms 16 math-4-fractions-az)"); done
t0=$(date +%s)
in_root darsctl import /tmp/many >/dev/null
echo "   import of 10,000 generated lessons: $(($(date +%s) - t0)) s"
for _ in 1 2 3; do big+=("$(first_answer_ms 10016 gen-09999)"); done
echo "   first answer after start, ms: 16 lessons: ${small[*]}; 10,016 lessons: ${big[*]}"
echo "   $(uptime)"
for ms in "${big[@]}"; do
  [ "$ms" -lt 1000 ] || echo "   NOTE: $ms ms is over a second (a loaded machine?)"
done
pass "test-deb.sh"
