"""The OS facade on this (Linux) machine, and the interim Windows and macOS backends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent import platform
from agent.platform import darwin, windows


def test_facade_on_linux() -> None:
    assert platform.os_name() == "linux"
    assert platform.os_version()
    booted = platform.boot_time()
    assert booted.tzinfo is not None and booted < datetime.now(UTC)
    memory = platform.memory()
    assert 0 <= memory.percent <= 100 and memory.available_mb > 0
    disk = platform.disk_percent()
    assert disk is None or 0 <= disk <= 100
    own = platform.OwnProcess()
    assert own.rss_mb() > 0 and own.cpu_percent() >= 0


@pytest.mark.parametrize("backend", [windows, darwin])
def test_interim_backends_report_nothing_invented(backend: object) -> None:
    assert backend.boot_phases() is None  # type: ignore[attr-defined]
    assert backend.read_pressure_totals() is None  # type: ignore[attr-defined]
    assert backend.boot_id() is None  # type: ignore[attr-defined]
