"""Public API hygiene: every module declares ``__all__``, and it is complete and true."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

PACKAGES = ("agent", "collector", "dexscope", "scoring")
SKIP = {"dexscope.__main__", "collector.migrations.env"}


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}."):
            if info.name not in SKIP and ".migrations.versions" not in info.name:
                names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_all_is_declared_complete_and_documented(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__doc__, f"{name} has no module docstring"
    assert hasattr(module, "__all__"), f"{name} declares no __all__"
    exported = set(module.__all__)
    for symbol in exported:
        assert hasattr(module, symbol), f"{name}.__all__ names missing {symbol}"
    defined_here = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and (inspect.isclass(v) or inspect.isfunction(v))
        and v.__module__ == name
    }
    router = getattr(module, "router", None)
    endpoints = {getattr(r, "endpoint", None) for r in getattr(router, "routes", [])}
    defined_here = {n for n in defined_here if getattr(module, n) not in endpoints}
    missing = defined_here - exported
    assert not missing, f"{name} defines public {sorted(missing)} outside __all__"
    for symbol in exported:
        value = getattr(module, symbol)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__doc__, f"{name}.{symbol} has no docstring"


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["agent", "run"],
        ["agent", "status"],
        ["agent", "survey-helper"],
        ["collector", "migrate"],
        ["collector", "serve"],
        ["collector", "jobs"],
        ["admin", "create-tenant"],
        ["admin", "create-api-key"],
        ["admin", "create-user"],
        ["demo"],
        ["simulate"],
    ],
)
def test_every_command_has_help(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dexscope", *argv, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: dexscope")
