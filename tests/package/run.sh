#!/usr/bin/env bash
# Package suite: builds the Debian package with scripts/package and checks it as an
# administrator would meet it: lintian reports no errors, systemd-analyze accepts every unit
# it ships, `dpkg -i` installs it (account, conffile, programs, man page, completions) without
# touching Samba's /usr/bin/net, and `dpkg -P` removes every file it installed.
#
# Needs root (dpkg) and the Debian packages lintian and systemd (for systemd-analyze), which
# it installs when missing. Skips, saying so, when not root.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
  echo "package suite: SKIPPED (needs root to install the package with dpkg)"
  exit 0
fi

# lintian checks the package, systemd-analyze (package systemd) its units.
missing=()
command -v lintian >/dev/null 2>&1 || missing+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "== installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

passed=0
failed=0
pass() { echo "ok   - $*"; passed=$((passed + 1)); }
fail() { echo "FAIL - $*"; failed=$((failed + 1)); }
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

DEBFULLNAME="Package suite" DEBEMAIL="package-suite@example.org" scripts/package
debs=("${CARGO_TARGET_DIR:-target}"/debian/messenger_*.deb)
[ "${#debs[@]}" = 1 ] || { echo "package suite: expected one package, found: ${debs[*]}" >&2; exit 1; }
deb=${debs[0]}
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
has() { grep -qx "./$1" <<<"$contents"; }

for f in usr/sbin/messengerd usr/bin/messenger usr/share/man/man1/messenger.1.gz \
  usr/share/man/man8/messengerd.8.gz \
  usr/share/bash-completion/completions/messenger usr/share/zsh/vendor-completions/_messenger \
  usr/share/fish/vendor_completions.d/messenger.fish etc/messenger/messenger.toml \
  usr/lib/sysusers.d/messenger.conf; do
  check "the package ships /$f" has "$f"
done
for u in messengerd.service messengerd.socket messengerd-activated.service; do
  check "the package ships the unit $u" \
    grep -qE "^\./(usr/)?lib/systemd/system/${u//./\\.}\$" <<<"$contents"
done
check "the package ships no net link (Samba owns /usr/bin/net)" \
  bash -c '! grep -qE "/net$" <<<"$1"' _ "$contents"
check "/etc/messenger/messenger.toml is a conffile" \
  bash -c 'dpkg-deb --ctrl-tarfile "$1" | tar -xO ./conffiles | grep -qx /etc/messenger/messenger.toml' _ "$deb"

lintian_out=$(lintian --allow-root --fail-on error "$deb" 2>&1) && lintian_rc=0 || lintian_rc=$?
echo "$lintian_out" | sed 's/^/    lintian: /'
check "lintian reports no errors" test "$lintian_rc" = 0
check "lintian finds every program's man page" \
  bash -c '! grep -q "no-manual-page" <<<"$1"' _ "$lintian_out"

# Samba's net, when present, must be the same file after install and purge.
net_before=$(sha256sum /usr/bin/net 2>/dev/null || echo none)

if dpkg-query -W -f='${Status}' messenger 2>/dev/null | grep -q installed; then
  dpkg -P messenger >/dev/null
fi
check "dpkg -i installs the package" dpkg -i "$deb"
check "the messenger account exists after install" getent passwd messenger
check "the installed service accepts the shipped configuration" \
  /usr/sbin/messengerd --check-config --config /etc/messenger/messenger.toml
check "the installed command line runs" /usr/bin/messenger --version
check "the man page is installed" test -s /usr/share/man/man1/messenger.1.gz
check "the service's man page is installed" test -s /usr/share/man/man8/messengerd.8.gz
check "the service's man page renders without warnings" \
  bash -c 'out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l /usr/share/man/man8/messengerd.8.gz 2>&1 >/dev/null) && [ -z "$out" ]'
unit_path() { dpkg -L messenger | grep -E "/systemd/system/${1//./\\.}\$" | head -1; }
for u in messengerd.service messengerd-activated.service; do
  check "the installed $u starts the installed program" \
    grep -qx 'ExecStart=/usr/sbin/messengerd --config /etc/messenger/messenger.toml' "$(unit_path "$u")"
done
socket=$(unit_path messengerd.socket)
for line in ListenDatagram=0.0.0.0:137 ListenDatagram=0.0.0.0:138 ListenStream=0.0.0.0:139 \
  Broadcast=yes Service=messengerd-activated.service; do
  check "messengerd.socket has $line" grep -qx "$line" "$socket"
done
check "the desktop agent's user unit is installed" \
  grep -qx 'ExecStart=/usr/bin/messenger agent' /usr/lib/systemd/user/messenger-agent.service
check "the desktop agent's autostart entry is installed" \
  grep -qx 'Exec=messenger agent' /etc/xdg/autostart/messenger-agent.desktop
if command -v desktop-file-validate >/dev/null 2>&1; then
  check "desktop-file-validate accepts the autostart entry" \
    desktop-file-validate /etc/xdg/autostart/messenger-agent.desktop
fi
activated=$(unit_path messengerd-activated.service)
check "the socket-activated service runs as messenger from the start" grep -qx 'User=messenger' "$activated"
check "the socket-activated service holds no capability" grep -qx 'CapabilityBoundingSet=' "$activated"
check "messengerd.service and messengerd.socket exclude each other" \
  bash -c 'grep -qx "Conflicts=messengerd.socket" "$1" && grep -qx "Conflicts=messengerd.service" "$2"' _ \
  "$(unit_path messengerd.service)" "$socket"
for u in $(dpkg -L messenger | grep -E '/systemd/(system|user)/[^/]+\.(service|socket)$'); do
  verify_out=$(systemd-analyze verify "$u" 2>&1) && verify_rc=0 || verify_rc=$?
  [ -n "$verify_out" ] && echo "$verify_out" | sed 's/^/    systemd-analyze: /'
  check "systemd-analyze verify accepts $(basename "$u")" test "$verify_rc" = 0
done
files=$(dpkg -L messenger | while read -r f; do [ -f "$f" ] && echo "$f"; done)
check "dpkg -P purges the package" dpkg -P messenger
left=$(for f in $files; do [ -e "$f" ] && echo "$f"; done; true)
check "no installed file is left after purge${left:+ (left: $left)}" test -z "$left"
check "/etc/messenger is gone after purge" test ! -e /etc/messenger
check "/var/lib/messenger is gone after purge" test ! -e /var/lib/messenger
check "Samba's /usr/bin/net is untouched" test "$net_before" = "$(sha256sum /usr/bin/net 2>/dev/null || echo none)"

echo "package suite: $passed passed, $failed failed"
[ "$failed" = 0 ]
