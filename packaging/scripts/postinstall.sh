#!/bin/sh
# chatops-executor post-install (deb: configure [OLD_VERSION]; rpm: 1 install, 2 upgrade).
set -e

first_install=yes
case "$1" in
  configure) [ -z "$2" ] || first_install=no ;;
  2) first_install=no ;;
esac

# The package itself creates the directories (state and log 0700, private to the runner's
# user) and the config (0600); an admin who gave them to another user keeps that on upgrade.

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload || true
  if [ "$first_install" = yes ]; then
    systemctl enable --now chatops-executor-flush.timer || true
  fi
fi

if [ "$first_install" = yes ]; then
  cat <<'MSG'

chatops-executor is installed. Three things are left to do:

  1. Create the Slack bot from /usr/share/chatops-executor/slack-app-manifest.yml
     (api.slack.com/apps > Create New App > From a manifest), install it to the
     workspace, and put its xoxb- token in /etc/chatops-executor/slack-token:
       install -m 0600 /dev/null /etc/chatops-executor/slack-token
       editor /etc/chatops-executor/slack-token
     Then /invite the bot in every channel chat jobs run from.

  2. Edit /etc/chatops-executor/config.toml (gitlab.url, the policy) and check it:
       chatops-executor check --online

  3. Point a gitlab-runner [[runners]] entry at the executor (executor = "custom",
     run_untagged = false, a chatops tag): see "Running in production" in
     /usr/share/doc/chatops-executor/README.md

MSG
fi
exit 0
