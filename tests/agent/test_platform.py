"""The OS facade on this (Linux) machine, and the shape every OS backend shares."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime
from types import ModuleType

import pytest

from agent import platform
from agent.platform import darwin, linux, windows


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


def _shape(function: object) -> tuple[object, ...]:
    """Required parameters (name, kind) and the return annotation: what the facade relies
    on (a backend may add parameters with defaults, e.g. a root path for tests)."""
    signature = inspect.signature(function)  # type: ignore[arg-type]
    required = [(p.name, p.kind) for p in signature.parameters.values() if p.default is p.empty]
    return (*required, signature.return_annotation)


@pytest.mark.parametrize("backend", [linux, windows, darwin], ids=lambda m: m.__name__)
def test_every_backend_has_the_facade_functions_with_the_same_signatures(
    backend: ModuleType,
) -> None:
    for name in platform.BACKEND_FUNCTIONS:
        function = getattr(backend, name, None)
        assert callable(function), f"{backend.__name__} lacks {name}"
        assert _shape(function) == _shape(getattr(linux, name)), f"{backend.__name__}.{name}"
        assert name in backend.__all__


@pytest.mark.parametrize("backend", [windows, darwin], ids=lambda m: m.__name__)
def test_other_os_backends_stay_quiet_on_linux(backend: ModuleType) -> None:
    # their OS tools are absent here: no figures, no exceptions, nothing invented
    assert backend.read_pressure_totals() is None
    assert backend.hung_apps() == []
    assert backend.foreground_pid() is None
