#!/bin/sh
# Remove the DexScope agent from a Mac (a pkg has no uninstaller): run as root, e.g. as a
# Jamf policy script. Removes everything the pkg and the agent created: the daemon, the
# survey helper, the program, the state (identity, device token, spool), seed and logs,
# and the pkg receipt. The configuration profile is removed by the MDM that installed it.
set -u
launchctl bootout system/com.dexscope.agent 2>/dev/null || true
for uid in $(ps -axo uid=,comm= | awk '/loginwindow$/ {print $1}' | sort -u); do
  launchctl bootout "gui/$uid/com.dexscope.survey-helper" 2>/dev/null || true
done
rm -f /Library/LaunchDaemons/com.dexscope.agent.plist \
      /Library/LaunchAgents/com.dexscope.survey-helper.plist
rm -rf "/Library/Application Support/DexScope" /Library/Logs/DexScope
pkgutil --forget com.dexscope.agent >/dev/null 2>&1 || true
exit 0
