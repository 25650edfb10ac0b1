#!/usr/bin/env bash
# The fleet playbook for real: ansible-lint on deploy/ansible/, then the playbook against two
# "centres", each a debootstrap'd bookworm root reached with ansible's community.general.chroot
# connection: install an older package, then upgrade to this one (lessons kept), each centre's
# dars.toml templated with its own name, keys and upstreams; a second run changes nothing.
#   sudo deploy/test-ansible.sh      (about 3 min once the venv, the root and the build are cached)
# Ansible comes from PyPI into a venv under target/deploy-cache/ at the versions pinned here.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=testlib.sh
. "$(dirname "$0")/testlib.sh"
cd "$REPO"
need debootstrap python3 dpkg-deb
[ "$(id -u)" -eq 0 ] || fail "run as root (chroot, mount)"

ANSIBLE_PINS=(ansible==12.3.0 ansible-core==2.19.14 ansible-lint==26.10.1)
VENV=$CACHE/ansible-venv
step "ansible in $VENV (${ANSIBLE_PINS[*]})"
if ! "$VENV/bin/pip" freeze 2>/dev/null | grep -qx "${ANSIBLE_PINS[2]}"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "${ANSIBLE_PINS[@]}"
fi
export PATH=$VENV/bin:$PATH ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_HOST_KEY_CHECKING=False
ansible --version | head -1

step "ansible-lint"
(cd deploy/ansible && NO_COLOR=1 ansible-lint --offline)
pass "ansible-lint clean"

step "build: release binary, an older and the current package"
BIN=$(dars_binary)
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
make_deb "$BIN" "$WORK/dars_old.deb" "${VERSION}~old1"
make_deb "$BIN" "$WORK/dars_new.deb"

step "two centres: debootstrap'd roots"
for centre in quba sheki; do fresh_root "$WORK/$centre"; done
KEY=$("$BIN" keygen --out "$WORK/ministry.key" | grep -o 'ed25519:[0-9a-f]*' | head -1)
cat >"$WORK/inventory.yml" <<EOF
all:
  children:
    centres:
      vars:
        ansible_connection: community.general.chroot
        ansible_python_interpreter: /usr/bin/python3
        dars_trusted_keys: ["$KEY"]
      hosts:
        quba:
          ansible_host: $WORK/quba
          dars_centre_name: "Quba kompüter mərkəzi"
          dars_upstreams: ["http://127.0.0.1:9/DARS/"]
        sheki:
          ansible_host: $WORK/sheki
          dars_centre_name: "Şəki kompüter mərkəzi"
          dars_upstreams: []
          dars_sync_max_rate: "200k"
EOF

play() {
  ansible-playbook -i "$WORK/inventory.yml" deploy/ansible/playbook.yml -e "dars_deb=$1" | tee "$WORK/play.log"
}
recap() { grep -E "^$1 +:" "$WORK/play.log"; }

step "playbook: install the older package"
play "$WORK/dars_old.deb"
for centre in quba sheki; do
  [ "$(chroot "$WORK/$centre" dpkg-query -W -f="\${Version}" dars)" = "${VERSION}~old1" ] || fail "$centre: old version not installed"
done
cp -r tests/fixtures/schema-1-lessons "$WORK/quba/tmp/lessons"
chroot "$WORK/quba" darsctl import /tmp/lessons >/dev/null
pass "older package on both centres; 2 lessons imported at quba"

step "playbook: upgrade both centres"
play "$WORK/dars_new.deb"
recap quba | grep -q "failed=0" || fail "quba failed"
for centre in quba sheki; do
  [ "$(chroot "$WORK/$centre" dpkg-query -W -f="\${Version}" dars)" = "${VERSION}-1" ] || fail "$centre: not upgraded"
done
grep -q "Quba kompüter mərkəzi: 2 lessons, dars ${VERSION}-1" "$WORK/play.log" || fail "quba's lessons are not reported after the upgrade"
config=$(chroot "$WORK/quba" dars --config /etc/dars/dars.toml config)
echo "$config" | grep -qx 'centre_name = "Quba kompüter mərkəzi"' || fail "quba's name: $config"
echo "$config" | grep -q "$KEY" || fail "quba's trusted key: $config"
echo "$config" | grep -q 'http://127.0.0.1:9/DARS/' || fail "quba's upstream: $config"
config=$(chroot "$WORK/sheki" dars --config /etc/dars/dars.toml config)
echo "$config" | grep -qx 'centre_name = "Şəki kompüter mərkəzi"' || fail "sheki's name: $config"
echo "$config" | grep -qx 'sync_max_rate = "200k"' || fail "sheki's rate: $config"
pass "upgraded; each centre's dars.toml has its own name, keys and upstreams; lessons kept"

step "playbook again: nothing changes"
play "$WORK/dars_new.deb"
recap quba | grep -q "changed=0" || fail "the second run changed quba: $(recap quba)"
recap sheki | grep -q "changed=0" || fail "the second run changed sheki: $(recap sheki)"
pass "test-ansible.sh"
