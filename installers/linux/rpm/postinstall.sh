#!/bin/sh
# %post of dexscope-agent (RPM): system user, enrollment parameters, the systemd unit.
# $1: 1 on first install, 2 on upgrade. /etc/dexscope/agent.toml is %config(noreplace):
# rpm alone manages it; this script never edits it.
set -e
if ! getent group dexscope >/dev/null; then
	groupadd --system dexscope
fi
if ! getent passwd dexscope >/dev/null; then
	useradd --system --gid dexscope --no-create-home --home-dir /var/lib/dexscope \
		--shell /sbin/nologin --comment "DexScope agent" dexscope
fi
# the survey box shared with the helpers in users' sessions
if [ ! -d /var/lib/dexscope-survey ]; then
	install -d -m 0755 -o dexscope -g dexscope /var/lib/dexscope-survey
fi
/usr/libexec/dexscope-agent/write-enroll-env
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
	if [ "${1:-1}" -eq 1 ]; then
		systemctl enable dexscope-agent.service >/dev/null 2>&1 || :
		systemctl start dexscope-agent.service >/dev/null 2>&1 || :
	else
		systemctl try-restart dexscope-agent.service >/dev/null 2>&1 || :
	fi
fi
exit 0
