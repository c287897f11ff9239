"""``logon``: sign-in to a responsive desktop, from the OS's records (see docs/agent.md).

User names never leave the device in clear. With ``user_names = "hash"`` (the default) the
account name becomes ``user_hash``, an HMAC-SHA-256 keyed with the tenant's pseudonym key
(handed out by the collector), so the same person is recognisable across the tenant's
devices and nowhere else; without a key, or with ``user_names = "off"``, no user field is
sent at all.

``first_logon`` is true when the OS says the profile was just created, or else when this
device has never seen that (hashed) user sign in before: a first sign-in builds the profile
and is slow for reasons no one can fix, so scoring leaves it out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from agent import platform
from agent.platform.common import Harvest, pseudonymise
from agent.samplers import SamplerContext, register
from agent.samplers.logsource import LogSampler

__all__ = ["LogonSampler"]

_SEEN = "logon.seen_users"
_MAX_SEEN = 500
_HEX_KEY = re.compile(r"^[0-9a-f]{32,128}$")


@register
class LogonSampler(LogSampler):
    """Sign-ins with their duration; user names pseudonymised or left out."""

    name = "logon"
    interval_s = 120.0

    def __init__(self) -> None:
        self._mode = "hash"
        self._key: bytes | None = None

    @classmethod
    def check_options(cls, options: Mapping[str, Any]) -> None:
        """``user_names``: ``"hash"`` or ``"off"``; ``pseudonym_key``: 32 to 128 hex chars."""
        for key, value in options.items():
            if key == "user_names":
                if value not in ("hash", "off"):
                    raise ValueError('user_names: must be "hash" or "off"')
            elif key == "pseudonym_key":
                if not isinstance(value, str) or not _HEX_KEY.match(value):
                    raise ValueError("pseudonym_key: must be 32 to 128 lowercase hex characters")
            else:
                raise ValueError(f"{key}: unknown key")

    def configure(self, options: Mapping[str, Any]) -> None:
        """Take the user-name mode and the tenant's key."""
        self._mode = str(options.get("user_names", "hash"))
        key = options.get("pseudonym_key")
        self._key = bytes.fromhex(key) if isinstance(key, str) else None

    def read(self, cursor: str | None, since: datetime) -> Harvest:
        """Sign-ins the OS recorded (see :func:`agent.platform.read_logons`)."""
        return platform.read_logons(cursor, since)

    def finish(self, event: dict[str, Any], ctx: SamplerContext) -> dict[str, Any] | None:
        """Replace the account name by its keyed hash (or drop it) and judge first sign-ins."""
        user = event.pop("_user", None)
        if isinstance(user, str) and user and self._mode == "hash" and self._key is not None:
            digest = pseudonymise(self._key, user)
            event["user_hash"] = digest
            seen = self._seen(ctx)
            if digest not in seen:
                event["first_logon"] = True
                seen.append(digest)
                ctx.remember(_SEEN, json.dumps(seen[-_MAX_SEEN:]))
        return super().finish(event, ctx)

    def _seen(self, ctx: SamplerContext) -> list[str]:
        staged = ctx.staged.get(_SEEN)
        raw = staged if staged is not None else ctx.recall(_SEEN)
        try:
            value = json.loads(raw) if raw else []
        except ValueError:
            value = []
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []
