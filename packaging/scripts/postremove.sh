#!/bin/sh
# chatops-executor post-remove (deb: remove | purge | upgrade …; rpm: 0 erase, 1 upgrade).
set -e
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
fi
case "$1" in
  remove|purge|0)
    # The admin's data stays: replies still waiting in the outbox and the audit log.
    for d in /var/lib/chatops-executor /var/log/chatops-executor; do
      if [ -d "$d" ] && [ -n "$(ls -A "$d" 2>/dev/null)" ]; then
        echo "chatops-executor: kept $d: it holds your data (replies waiting in the outbox, the audit log); remove it yourself when done"
      fi
    done
    ;;
esac
exit 0
