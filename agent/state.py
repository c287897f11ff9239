"""The agent's identity on disk: ``state_dir/identity.json`` (0600, in a 0700 directory)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from agent.errors import NotEnrolled

__all__ = ["IDENTITY_FILE", "Identity", "ensure_state_dir", "load_identity", "save_identity"]

IDENTITY_FILE = "identity.json"
"""The identity's file name inside the state directory."""


@dataclass(frozen=True)
class Identity:
    """Who this device is for the collector (the token is a secret: kept out of ``repr``)."""

    device_id: str
    device_token: str
    server_url: str
    enrolled_at: str

    def __repr__(self) -> str:
        """The identity without its token (safe to log)."""
        return f"Identity(device_id={self.device_id!r}, server_url={self.server_url!r})"


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory owner-only (0700) if needed, tightening it if it exists."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def load_identity(state_dir: Path) -> Identity | None:
    """The saved identity, or None if the device never enrolled."""
    try:
        data = json.loads((state_dir / IDENTITY_FILE).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise NotEnrolled(f"{state_dir / IDENTITY_FILE} is unreadable: {exc}") from exc
    fields = Identity.__dataclass_fields__
    if not isinstance(data, dict) or any(not isinstance(data.get(k), str) for k in fields):
        raise NotEnrolled(f"{state_dir / IDENTITY_FILE} is incomplete; enroll again")
    return Identity(**{k: data[k] for k in fields})


def save_identity(state_dir: Path, identity: Identity) -> None:
    """Write the identity atomically, readable by the owner only."""
    ensure_state_dir(state_dir)
    tmp = state_dir / (IDENTITY_FILE + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(asdict(identity), handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, state_dir / IDENTITY_FILE)
