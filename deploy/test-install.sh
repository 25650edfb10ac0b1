#!/usr/bin/env bash
# deploy/install.sh for real, in a debootstrap'd bookworm root (chroot; systemd not running):
# from a stick folder like the one build-release.sh makes, install, install again (nothing
# changes), serve with the printed command, import with darsctl, keep an edited config on
# update, --uninstall (lessons kept), install again (lessons found), --uninstall --purge.
# Also shellcheck of every shell script in deploy/.
#   sudo deploy/test-install.sh      (about 1 min once the release build and the root are cached)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
cd "$REPO"
need debootstrap curl shellcheck python3
[ "$(id -u)" -eq 0 ] || fail "run as root (chroot, mount)"

step "shellcheck"
shellcheck -x deploy/*.sh deploy/darsctl deploy/debian/*
pass "shellcheck clean: deploy/*.sh deploy/darsctl deploy/debian/*"

step "the binary to install"
BIN=$(dars_binary)

ROOT=$WORK/root
fresh_root "$ROOT"
STICK=$ROOT/media/usb/dars
mkdir -p "$STICK"
cp deploy/install.sh deploy/darsctl deploy/dars.service deploy/dars.toml "$STICK/"
cp "$BIN" "$STICK/dars-x86_64-linux"
cp -r tests/fixtures/schema-1-lessons "$ROOT/tmp/lessons"

# Every file install.sh owns, with its checksum and change time, to compare runs.
snapshot() {
  (cd "$ROOT" && for f in usr/local/bin/dars usr/local/sbin/darsctl etc/systemd/system/dars.service \
    etc/dars/dars.toml etc/systemd/system/multi-user.target.wants/dars.service; do
    if [ -e "$f" ]; then echo "$f $(sha256sum <"$f" | cut -c1-16) $(stat -c %Z "$f")"; else echo "$f missing"; fi
  done)
}

step "first install"
in_root sh /media/usb/dars/install.sh | tee "$WORK/first.log"
grep -q "systemd is not running here" "$WORK/first.log" || fail "no word on starting without systemd"
in_root /usr/local/bin/dars --version
grep -q 'ExecStart=/usr/local/bin/dars ' "$ROOT/etc/systemd/system/dars.service" || fail "unit not pointed at /usr/local/bin"
[ -L "$ROOT/etc/systemd/system/multi-user.target.wants/dars.service" ] || fail "not enabled for boot"
in_root getent passwd dars >/dev/null || fail "no dars user"
in_root systemd-analyze verify /etc/systemd/system/dars.service || fail "systemd-analyze verify"
pass "systemd-analyze verify of the installed unit"
snapshot >"$WORK/after-first"
pass "installed"

step "second install changes nothing"
sleep 1.1 # so a rewritten file would show a new change time
in_root sh /media/usb/dars/install.sh | tee "$WORK/second.log"
snapshot >"$WORK/after-second"
diff "$WORK/after-first" "$WORK/after-second" || fail "the second run changed files"
grep -q "is up to date" "$WORK/second.log" || fail "the second run did not say it was up to date"
pass "idempotent"

step "serve with the printed command; import with darsctl"
start_cmd=$(grep -o 'runuser -u dars -- .* serve$' "$WORK/first.log") || fail "no start command printed"
PORT=$(free_port)
# shellcheck disable=SC2086 # the printed command is split into words on purpose
start_server "$WORK/serve.log" chroot "$ROOT" $start_cmd --listen "127.0.0.1:$PORT"
wait_healthy "127.0.0.1:$PORT" >"$WORK/health.json" || { cat "$WORK/serve.log"; fail "dars did not answer"; }
# A release build carries 16 sample lessons; a debug build (CI) reads them from the source
# folder, which the root does not have, and starts with none.
samples=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["lessons"])' "$WORK/health.json")
in_root darsctl import /tmp/lessons
curl -fsS "http://127.0.0.1:$PORT/lessons/su-dovrani/dovr.svg" | cmp - tests/fixtures/schema-1-lessons/su-dovrani/dovr.svg ||
  fail "an imported file differs"
stop_server
[ "$(in_root stat -c %U /var/lib/dars/dars.sqlite)" = dars ] || fail "the store is not the dars user's after darsctl"
pass "served the imported lesson; the store stays the dars user's"

step "an update keeps an edited config"
sed -i 's/^centre_name = .*/centre_name = "Edited"/' "$ROOT/etc/dars/dars.toml"
printf '\n# a newer example\n' >>"$STICK/dars.toml"
in_root sh /media/usb/dars/install.sh | tee "$WORK/third.log"
grep -q 'centre_name = "Edited"' "$ROOT/etc/dars/dars.toml" || fail "the edited config was overwritten"
cmp -s "$STICK/dars.toml" "$ROOT/etc/dars/dars.toml.new" || fail "no dars.toml.new beside it"
pass "edited config kept, the stick's copy is dars.toml.new"

step "--uninstall keeps the lessons; installing again finds them"
in_root sh /media/usb/dars/install.sh --uninstall | tee "$WORK/uninstall.log"
for f in usr/local/bin/dars usr/local/sbin/darsctl etc/systemd/system/dars.service \
  etc/systemd/system/multi-user.target.wants/dars.service; do
  [ ! -e "$ROOT/$f" ] || fail "$f left after --uninstall"
done
[ -f "$ROOT/var/lib/dars/dars.sqlite" ] || fail "--uninstall deleted the lessons"
in_root sh /media/usb/dars/install.sh >/dev/null
lessons=$(in_root darsctl status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["lessons"])')
[ "$lessons" = $((samples + 2)) ] || fail "after reinstall: $lessons lessons, expected $((samples + 2))"
pass "uninstalled and reinstalled with $lessons lessons"

step "--uninstall --purge"
in_root sh /media/usb/dars/install.sh --uninstall --purge
if [ -e "$ROOT/var/lib/dars" ] || [ -e "$ROOT/etc/dars" ]; then fail "purge left the lessons or settings"; fi
if in_root getent passwd dars >/dev/null; then fail "purge left the dars user"; fi
out=$(in_root sh /media/usb/dars/install.sh --purge 2>&1) && fail "--purge alone was accepted"
echo "$out" | grep -q "goes with --uninstall" || fail "$out"
pass "test-install.sh"
