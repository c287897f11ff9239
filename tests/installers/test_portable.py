"""The portable frozen agent: built in a Debian bullseye root, run on bullseye for real.

``installers/build_portable.py`` builds the agent inside a bullseye root (glibc 2.31) with
a CPython 3.11 and an OpenSSL 3.0 compiled there; the root is cached as a tarball in
``/var/cache/dexscope-test/`` (``DEXSCOPE_TEST_CACHE``), so only the first build on a machine
compiles (about 8 min on 2 vCPUs, measured 2026-12-03), later ones take under a minute.

Checked on the result:

- its glibc baseline (the newest ``GLIBC_x.y`` any ELF file needs) is at most 2.31;
- no ELF file has an absolute RPATH/RUNPATH;
- no file, nor any module of the PYZ archive inside the launcher, names the repository, the
  build root's folders or the cache; the Python prefix appears only as the compiled-in
  defaults of ``libpython`` and ``libcrypto``, which the frozen agent never uses;
- it runs in a *plain* bullseye root (minbase: no Python, no compiler, no -dev libraries),
  chrooted in a private mount namespace: ``--version``, ``agent status --help``, and
  ``agent run --once`` enrolling with and uploading to a real collector on the host's
  loopback (``dexscope collector serve`` on SQLite).

Needs root (chroot, mount namespaces), debootstrap, unshare, zstd and binutils; the first
build needs deb.debian.org and PyPI. Without them the tests skip (under ``CI=true`` fail).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from tests.installers.conftest import INSTALLERS, ROOT, load, need, tool
from tests.installers.test_frozen import _elf_files, _version, absolute_runpaths
from tests.support import CollectorProcess, create_tenant, run_cli

# the first build on a machine compiles OpenSSL and CPython (minutes): a long timeout
pytestmark = [pytest.mark.installers, pytest.mark.timeout(3600)]

SUITE = "bullseye"
GLIBC_BOUND = (2, 31)
"""bullseye's glibc: the portable agent must need nothing newer."""
AGENT_DIR = "/opt/dexscope-agent"


@pytest.fixture(scope="module")
def portable() -> ModuleType:
    """installers/build_portable.py, with its requirements checked."""
    need(os.geteuid() == 0, "the portable build needs root (chroot, mount namespaces)")
    for name, package in (
        ("debootstrap", "debootstrap"),
        ("unshare", "util-linux"),
        ("chroot", "coreutils"),
        ("zstd", "zstd"),
        ("objdump", "binutils"),
        ("readelf", "binutils"),
    ):
        tool(name, package)
    return load(INSTALLERS / "build_portable.py", "dexscope_build_portable")


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this module unpacks roots and writes the output."""
    return tmp_path_factory.mktemp("portable")


@pytest.fixture(scope="module")
def portable_agent(portable: ModuleType, work: Path) -> Path:
    """The portable one-folder agent, built with the command line (once per module)."""
    out = work / "out" / "dexscope-agent"
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(INSTALLERS / "build_portable.py"),
            "--suite",
            SUITE,
            "--out",
            str(out),
            "--work",
            str(work),
        ],
        capture_output=True,
        text=True,
        timeout=3300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (out / "dexscope-agent").is_file()
    assert "glibc baseline: GLIBC_" in done.stdout
    print(f"portable agent built in {time.monotonic() - started:.1f} s")
    return out


@pytest.fixture(scope="module")
def bullseye(portable: ModuleType, portable_agent: Path, work: Path) -> Path:
    """A plain bullseye root (from the cache) with the portable agent in /opt."""
    root: Path = portable.plain_root(SUITE, portable.cache_dir(), work / "bullseye")
    shutil.copytree(portable_agent, root / AGENT_DIR.lstrip("/"), symlinks=True)
    return root


def _in_root(portable: ModuleType, root: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    done: subprocess.CompletedProcess[str] = portable.run_in_root(
        root, list(argv), capture=True, timeout=300
    )
    return done


def test_the_glibc_baseline_is_bullseyes(portable: ModuleType, portable_agent: Path) -> None:
    elves = list(_elf_files(portable_agent))
    assert len(elves) > 20  # the launcher, libpython, the extension modules, libssl…
    per_file = portable.glibc_versions(portable_agent)
    baseline = portable.glibc_baseline(portable_agent)
    too_new = {f: v for f, v in per_file.items() if _version(v) > GLIBC_BOUND}
    assert too_new == {}
    assert _version(baseline) <= GLIBC_BOUND
    print(f"glibc baseline of the portable agent: {baseline}")


def test_its_deb_depends_on_the_baseline_not_the_build_host(
    packages: ModuleType, portable: ModuleType, portable_agent: Path, work: Path, bullseye: Path
) -> None:
    """A .deb around the portable agent asks for the glibc it needs (2.30), which bullseye's
    libc6 satisfies; with the build host's (2.36) dpkg would refuse it there."""
    deb = packages.build_deb(portable_agent, work / "deb")
    fields = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    wanted = re.search(r"libc6 \(>= ([\d.]+)\)", fields)
    assert wanted and wanted.group(1) == portable.glibc_baseline(portable_agent), fields
    status = (bullseye / "var/lib/dpkg/status").read_text()
    have = re.search(r"^Package: libc6\n(?:.+\n)*?Version: ([\d.]+)", status, re.M)
    assert have, "no libc6 in the bullseye root"
    assert _version(have.group(1)) >= _version(wanted.group(1))


def test_no_absolute_runpath(portable_agent: Path) -> None:
    assert absolute_runpaths(portable_agent) == {}


def _archived_modules(executable: Path) -> dict[str, bytes]:
    """The launcher's embedded scripts and PYZ modules, as marshalled bytes."""
    import marshal

    from PyInstaller.archive.readers import (  # type: ignore[import-untyped]
        CArchiveReader,
        ZlibArchiveReader,
    )

    package = CArchiveReader(str(executable))
    contents: dict[str, bytes] = {}
    for name in package.toc:
        data = package.extract(name)
        if name.endswith(".pyz") and data:
            pyz = executable.parent / f".{name}.check"
            pyz.write_bytes(data)
            try:
                archive = ZlibArchiveReader(str(pyz))
                for module in archive.toc:
                    code = archive.extract(module)
                    if code is not None:
                        contents[f"{name}:{module}"] = marshal.dumps(code)
            finally:
                pyz.unlink()
        elif data:
            contents[name] = data
    return contents


def test_no_file_names_the_repository_or_the_build_root(
    portable: ModuleType, portable_agent: Path, work: Path
) -> None:
    need(
        importlib.util.find_spec("PyInstaller") is not None,
        "PyInstaller is not installed (it reads the launcher's PYZ archive)",
    )
    needles = {
        str(ROOT).encode(),  # the repository
        portable.BUILD_DIR.encode(),  # the sources and PyInstaller's folders in the root
        str(portable.cache_dir()).encode(),  # the cached roots
        str(work).encode(),  # where the root was unpacked
    }
    files = {
        path.relative_to(portable_agent).as_posix(): path.read_bytes()
        for path in sorted(portable_agent.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }
    modules = _archived_modules(portable_agent / "dexscope-agent")
    assert len(modules) > 100  # the PYZ was read: the agent, httpx, the stdlib…
    named = sorted(
        name for name, data in {**files, **modules}.items() if any(n in data for n in needles)
    )
    assert named == []
    # the prefix only as compiled-in defaults: libpython's sys.prefix fallback, libcrypto's
    # ENGINESDIR/MODULESDIR (no engine or provider module is loaded by the agent)
    prefix = portable.PREFIX.encode()
    with_prefix = {name for name, data in {**files, **modules}.items() if prefix in data}
    assert with_prefix <= {"_internal/libpython3.11.so.1.0", "_internal/libcrypto.so.3"}


def test_it_runs_in_a_plain_bullseye_root(portable: ModuleType, bullseye: Path) -> None:
    assert (bullseye / "etc" / "debian_version").read_text().startswith("11.")
    assert not (bullseye / "usr" / "bin" / "python3").exists()  # no Python to lean on
    libc = subprocess.run(
        ["chroot", str(bullseye), "ldd", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert "2.31" in libc.splitlines()[0]
    agent = f"{AGENT_DIR}/dexscope-agent"
    version = _in_root(portable, bullseye, agent, "--version")
    assert version.returncode == 0, version.stdout + version.stderr
    assert re.match(
        r"dexscope-agent \S+ \(frozen, python 3\.11\.\d+, linux-x86_64\)", version.stdout
    )
    status = _in_root(portable, bullseye, agent, "agent", "status", "--help")
    assert status.returncode == 0 and "--state-dir" in status.stdout, status.stderr
    print(f"on bullseye: {version.stdout.strip()}")


def test_it_enrolls_and_uploads_from_bullseye(
    portable: ModuleType, bullseye: Path, tmp_path: Path
) -> None:
    database_url = f"sqlite:///{tmp_path / 'collector.db'}"
    run_cli("collector", "migrate", "--database-url", database_url)
    tenant = create_tenant(database_url)
    state = "/var/lib/dexscope-agent"
    with CollectorProcess(database_url, tmp_path / "collector.log") as collector:
        # the chroot shares the host's network namespace: the loopback collector is reachable
        ran = _in_root(
            portable,
            bullseye,
            f"{AGENT_DIR}/dexscope-agent",
            "agent",
            "run",
            "--server",
            collector.url,
            "--enroll-token",
            tenant.enrollment_token,
            "--state-dir",
            state,
            "--tag",
            "site=bullseye",
            "--once",
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        api = {"Authorization": f"Bearer {tenant.api_key}"}
        devices = httpx.get(f"{collector.url}/api/v1/devices", headers=api, timeout=30).json()
        assert devices["total"] == 1, devices
        device = devices["items"][0]
        assert device["os"] == "linux" and device["tags"] == {"site": "bullseye"}
        detail = httpx.get(
            f"{collector.url}/api/v1/devices/{device['id']}", headers=api, timeout=30
        ).json()
        assert "resource_sample" in detail["events"], detail["events"]

        status = _in_root(
            portable,
            bullseye,
            f"{AGENT_DIR}/dexscope-agent",
            "agent",
            "status",
            "--state-dir",
            state,
            "--json",
        )
        assert status.returncode == 0, status.stderr
        shown = json.loads(status.stdout)
        assert shown["device_id"] == device["id"]
        assert shown["last_upload_at"] is not None
        assert shown["spool_events"] == 0
    assert (bullseye / state.lstrip("/") / "identity.json").is_file()
