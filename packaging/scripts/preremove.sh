#!/bin/sh
# chatops-executor pre-remove (deb: remove | upgrade NEW_VERSION; rpm: 0 erase, 1 upgrade).
set -e
case "$1" in
  remove|0)
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
      systemctl disable --now chatops-executor-flush.timer || true
      systemctl stop chatops-executor-flush.service || true
    fi
    ;;
esac
exit 0
