#!/usr/bin/env bash
# Installs chatops-executor's .deb on this machine, checks what it installed, and removes it
# again: what CI runs (as root, on Debian). Usage: packaging/test-deb.sh dist/chatops-executor_*.deb
#
# It is safe on a developer's machine: it refuses to run where chatops-executor is already
# installed or its directories exist, and whatever happens it purges the package and removes
# what it created (the token file it writes, the data it leaves to prove removal keeps it).
set -euo pipefail

deb=${1:?usage: $0 PACKAGE.deb}
pkg=chatops-executor
etc=/etc/chatops-executor
lib=/var/lib/chatops-executor
log=/var/log/chatops-executor
token=$etc/slack-token

say() { echo "test-deb: $*"; }
fail() { echo "test-deb: FAIL: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "must run as root (dpkg -i)"
command -v dpkg >/dev/null || fail "dpkg is missing: this test needs a Debian machine"
[ -f "$deb" ] || fail "no package $deb"
if dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null | grep -qv '^not-installed$'; then
  fail "$pkg is already installed here; not touching it"
fi
for d in "$etc" "$lib" "$log"; do
  [ ! -e "$d" ] || fail "$d exists already; not touching it"
done

installed=no
cleanup() {
  status=$?
  if [ "$installed" = yes ]; then
    dpkg --purge "$pkg" >/dev/null 2>&1 || true
  fi
  rm -rf "$token" "$lib" "$log"
  rmdir "$etc" 2>/dev/null || true
  if [ $status -eq 0 ]; then say "passed"; else say "failed (exit $status); the package was purged"; fi
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP

# Every directory the package names that exists before it is installed (/etc, /usr/bin…) is
# the system's: removal must leave those, and only those plus config and data.
mapfile -t paths < <(dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./|/|; s|/$||' | grep -v '^$')
declare -A before=()
for p in "${paths[@]}"; do [ -e "$p" ] && before[$p]=1; done

say "dpkg -i $deb"
installed=yes
out=$(dpkg -i "$deb" 2>&1) || { echo "$out"; fail "dpkg -i failed"; }
echo "$out"
grep -q "Three things are left to do" <<<"$out" || fail "the post-install step did not say what is left to do"

mode() { stat -c '%a %U' "$1"; }
expect_mode() {
  [ -e "$1" ] || fail "$1 was not installed"
  [ "$(mode "$1")" = "$2" ] || fail "$1 is $(mode "$1"), want $2"
}
expect_mode /usr/bin/chatops-executor "755 root"
expect_mode $etc/config.toml "600 root"
expect_mode $lib/state "700 root"
expect_mode $lib/builds "711 root"
expect_mode $lib/cache "711 root"
expect_mode $log "700 root"
expect_mode /usr/lib/systemd/system/chatops-executor-flush.service "644 root"
expect_mode /usr/lib/systemd/system/chatops-executor-flush.timer "644 root"
expect_mode /etc/logrotate.d/chatops-executor "644 root"
expect_mode /usr/share/chatops-executor/slack-app-manifest.yml "644 root"
dpkg-query -W -f='${Conffiles}\n' "$pkg" | grep -q " $etc/config.toml " || fail "$etc/config.toml is not a conffile"
grep -q 'create 0600' /etc/logrotate.d/chatops-executor || fail "logrotate does not create the audit log 0600"
! grep -q '^[[:space:]]*copytruncate' /etc/logrotate.d/chatops-executor || fail "logrotate must not truncate the audit log"
say "installed files and modes are right; $etc/config.toml is a conffile"

chatops-executor --version

# check against the installed config, with the token file the admin would write.
install -m 0600 /dev/null "$token"
echo "xoxb-0000000000-0000000000000-cipackagetest000000000" >"$token"
if ! chatops-executor check; then
  fail "chatops-executor check fails on the installed config"
fi
# …and it must catch what an admin gets wrong: a group-readable token file.
chmod 0640 "$token"
if chatops-executor check --config $etc/config.toml 2>/dev/null; then
  fail "check passed a group-readable token file"
fi
chmod 0600 "$token"
chatops-executor flush --status

if command -v systemd-analyze >/dev/null; then
  say "systemd-analyze verify the units"
  systemd-analyze verify /usr/lib/systemd/system/chatops-executor-flush.service \
    /usr/lib/systemd/system/chatops-executor-flush.timer
  grep -q '^OnUnitActiveSec=1min' /usr/lib/systemd/system/chatops-executor-flush.timer || fail "the timer does not run every minute"
else
  say "systemd-analyze is not installed here: the unit files were NOT verified"
fi
# An upgrade (here: the same package again) keeps the admin's edits of the config.
echo "# edited by the admin" >>$etc/config.toml
dpkg -i "$deb" >/dev/null 2>&1 || fail "reinstalling failed"
grep -q "edited by the admin" $etc/config.toml || fail "reinstalling overwrote the admin's config"

# The admin's data: a reply waiting in the outbox, an audit line.
mkdir -p $lib/state/outbox
echo '{}' >$lib/state/outbox/ci-data
echo '{"decision":"allow"}' >$log/audit.jsonl

if ! command -v logrotate >/dev/null && [ "${CI:-}" = true ]; then
  apt-get install -y -q logrotate >/dev/null 2>&1 || say "could not install logrotate"
fi
if command -v logrotate >/dev/null; then
  # A forced rotation, with a state file of its own: the line moves to audit.jsonl.1 whole,
  # and a fresh, private audit.jsonl takes its place.
  say "logrotate: rotate the audit log"
  lrstate=$(mktemp)
  logrotate --force --state "$lrstate" /etc/logrotate.d/chatops-executor
  rm -f "$lrstate"
  grep -q '"decision":"allow"' $log/audit.jsonl.1 || fail "the rotated audit log lost its line"
  expect_mode $log/audit.jsonl "600 root"
  [ ! -s $log/audit.jsonl ] || fail "the new audit log is not empty"
else
  say "logrotate is not installed here: its file was not checked"
fi

say "dpkg -r $pkg"
dpkg -r "$pkg"
[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg")" = config-files ] || fail "after dpkg -r the package is not in state config-files"
allowed=("$etc" "$etc/config.toml" "$token" /etc/logrotate.d/chatops-executor "$lib" "$lib/state" "$log")
left=()
for p in "${paths[@]}"; do
  [ -n "${before[$p]:-}" ] && continue
  [ -e "$p" ] || continue
  keep=no
  for a in "${allowed[@]}"; do [ "$p" = "$a" ] && keep=yes; done
  [ $keep = yes ] || left+=("$p")
done
[ ${#left[@]} -eq 0 ] || fail "dpkg -r left behind: ${left[*]}"
[ -f $lib/state/outbox/ci-data ] && [ -f $log/audit.jsonl ] || fail "dpkg -r removed the admin's data"
[ -f $etc/config.toml ] || fail "dpkg -r removed the admin's config"
say "removal left only the config ($etc, /etc/logrotate.d/chatops-executor) and the data ($lib/state, $log)"

rm -f "$token"
dpkg --purge "$pkg" >/dev/null
installed=no
[ ! -e $etc/config.toml ] || fail "dpkg --purge left $etc/config.toml"
