"""The identity file: atomic, owner-only, token kept out of logs."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from agent.errors import NotEnrolled
from agent.state import IDENTITY_FILE, Identity, ensure_state_dir, load_identity, save_identity

IDENTITY = Identity(
    device_id="0b6c1f43-5a53-4e8e-9a51-4a2f8c3f1d10",
    device_token="dt_secret_value",
    server_url="https://dex.example",
    enrolled_at="2026-11-22T10:00:00+00:00",
)


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert load_identity(state) is None
    save_identity(state, IDENTITY)
    assert load_identity(state) == IDENTITY
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / IDENTITY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in state.iterdir()) == [IDENTITY_FILE]  # no temp file left
    assert json.loads((state / IDENTITY_FILE).read_text())["enrolled_at"] == IDENTITY.enrolled_at


def test_existing_state_dir_is_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    ensure_state_dir(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


def test_token_stays_out_of_repr() -> None:
    assert "dt_secret_value" not in repr(IDENTITY)
    assert IDENTITY.device_id in repr(IDENTITY)


@pytest.mark.parametrize("content", ["{not json", '{"device_id": "x"}', "[]"])
def test_damaged_identity_is_a_clear_error(tmp_path: Path, content: str) -> None:
    (tmp_path / IDENTITY_FILE).write_text(content)
    with pytest.raises(NotEnrolled, match=IDENTITY_FILE):
        load_identity(tmp_path)
