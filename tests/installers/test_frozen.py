"""The frozen one-folder agent carries nothing of the machine that built it.

- No ELF file in it has an RPATH/RUNPATH naming an absolute folder: a Python built under a
  prefix (pyenv, /opt/python…) links its modules with ``RUNPATH=<prefix>/lib``, a folder the
  loader would search on every managed machine; the spec removes them (``patchelf``).
- No file names the repository or the build folders.
- Its glibc baseline, the newest ``GLIBC_x.y`` symbol version any of its ELF files needs,
  is at most the ``libc6`` version the .deb depends on (docs/deployment.md gives it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.installers.conftest import INSTALLERS, ROOT, load, tool

pytestmark = pytest.mark.installers


def _elf_files(folder: Path) -> Iterator[Path]:
    """Every regular ELF file under ``folder`` (installers/build_portable.py's walk)."""
    portable = sys.modules.get("dexscope_build_portable") or load(
        INSTALLERS / "build_portable.py", "dexscope_build_portable"
    )
    found: Iterator[Path] = portable.elf_files(folder)
    return found


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split("."))


def absolute_runpaths(folder: Path) -> dict[str, list[str]]:
    """For each ELF file under ``folder`` with one, its RPATH/RUNPATH entries that are
    absolute (not relative to ``$ORIGIN``), by path relative to ``folder``."""
    readelf = tool("readelf", "binutils")
    found = {}
    for path in _elf_files(folder):
        dynamic = subprocess.run(
            [readelf, "-d", str(path)], capture_output=True, text=True, timeout=60, check=True
        ).stdout
        for match in re.finditer(
            r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.*)\]", dynamic
        ):
            entries = [e for e in match.group(1).split(":") if not e.startswith("$ORIGIN")]
            if entries:
                found[path.relative_to(folder).as_posix()] = entries
    return found


def test_no_runpath_points_at_the_build_machine(frozen_agent: Path) -> None:
    assert len(list(_elf_files(frozen_agent))) > 20  # the launcher, libpython, modules…
    assert absolute_runpaths(frozen_agent) == {}


def test_no_file_names_the_repository_or_the_build_folders(frozen_agent: Path) -> None:
    build_base = frozen_agent.parents[1]  # .../frozenN/ holding dist/ and work/
    needles = {str(ROOT).encode(), str(build_base).encode()}
    found = [
        path.relative_to(frozen_agent).as_posix()
        for path in sorted(frozen_agent.rglob("*"))
        if path.is_file() and any(n in path.read_bytes() for n in needles)
    ]
    assert found == []


def test_the_glibc_baseline_is_what_the_deb_depends_on(frozen_agent: Path, deb: Path) -> None:
    objdump = tool("objdump", "binutils")
    needed: set[str] = set()
    for path in _elf_files(frozen_agent):
        symbols = subprocess.run(
            [objdump, "-T", str(path)], capture_output=True, text=True, timeout=60, check=False
        ).stdout
        needed.update(re.findall(r"\bGLIBC_(\d+\.\d+(?:\.\d+)?)\b", symbols))
    baseline = max(needed, key=_version)
    control = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"libc6 \(>= ([\d.]+)\)", control)
    assert match is not None, control
    assert _version(baseline) <= _version(match.group(1)), (baseline, match.group(1))
    print(f"glibc baseline of the frozen agent: {baseline}")
