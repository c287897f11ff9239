#!/bin/sh
# %postun of dexscope-agent (RPM). $1: 0 when the package is erased, 1 on upgrade.
# RPM has no "purge": erasing removes what the package created (enrollment and seed files,
# state, the survey box, the dexscope user and group). An edited agent.toml is kept by rpm as
# agent.toml.rpmsave, as for every %config file.
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || :
fi
if [ "${1:-0}" -eq 0 ]; then
	rm -f /etc/dexscope/enroll.env /etc/dexscope/seed.env /etc/dexscope/.enroll.env.*
	rmdir /etc/dexscope 2>/dev/null || :
	rm -rf /var/lib/dexscope /var/lib/dexscope-survey
	if getent passwd dexscope >/dev/null; then userdel dexscope >/dev/null 2>&1 || :; fi
	if getent group dexscope >/dev/null; then groupdel dexscope >/dev/null 2>&1 || :; fi
fi
exit 0
