#!/bin/sh
# %preun of dexscope-agent (RPM). $1: 0 when the package is erased, 1 on upgrade.
if [ "${1:-0}" -eq 0 ] && [ -d /run/systemd/system ]; then
	systemctl disable --now dexscope-agent.service >/dev/null 2>&1 || :
fi
exit 0
