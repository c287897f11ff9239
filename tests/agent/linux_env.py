"""Helpers for tests that touch this Linux machine for real: crash a process, build and
install a Debian package, write journal files with systemd-journal-remote."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

__all__ = [
    "JOURNAL_REMOTE",
    "build_deb",
    "crash_with_sigsegv",
    "dpkg_usable",
    "kmsg_readable",
    "write_journal",
]

JOURNAL_REMOTE = next(
    (
        p
        for p in ("/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote")
        if Path(p).exists()
    ),
    None,
)


def kmsg_readable() -> bool:
    """Whether this process may read the kernel log (root or CAP_SYSLOG)."""
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return False
    os.close(fd)
    return True


def crash_with_sigsegv(comm: str) -> int:
    """Run a real process named ``comm`` that dereferences NULL; returns its pid."""
    code = (
        "import ctypes, os, sys\n"
        "libc = ctypes.CDLL(None)\n"
        f"libc.prctl(15, {comm.encode()!r}, 0, 0, 0)\n"  # PR_SET_NAME: the kernel's comm
        "print(os.getpid(), flush=True)\n"
        "ctypes.string_at(0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == -11, (result.returncode, result.stderr)
    return int(result.stdout.strip())


def dpkg_usable() -> str | None:
    """None when dpkg can install packages here, else why not (a skip reason)."""
    if shutil.which("dpkg") is None or shutil.which("dpkg-deb") is None:
        return "dpkg is not installed (not a Debian-family system)"
    if os.geteuid() != 0:
        return "installing a package needs root"
    return None


def build_deb(tmp: Path, name: str, version: str) -> Path:
    """A minimal valid .deb (one documentation file), built offline with dpkg-deb."""
    root = tmp / f"{name}-{version}"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "share" / "doc" / name).mkdir(parents=True)
    (root / "usr" / "share" / "doc" / name / "README").write_text("DexScope test package\n")
    (root / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: DexScope tests <tests@dexscope.invalid>\n"
        "Description: throw-away package for the software_change tests\n"
    )
    out = tmp / f"{name}_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out


def write_journal(records: list[dict[str, str]], out: Path) -> Path:
    """A real journal file holding ``records`` (journal export format through
    systemd-journal-remote), readable with ``journalctl --file``."""
    if JOURNAL_REMOTE is None:
        pytest.skip("systemd-journal-remote is not installed (apt install systemd-journal-remote)")
    export = out.with_suffix(".export")
    with export.open("w") as fh:
        for record in records:
            for key, value in record.items():
                if key == "__CURSOR":
                    continue  # the journal computes cursors itself
                fh.write(f"{key}={value}\n")
            fh.write("\n")
    result = subprocess.run(
        [JOURNAL_REMOTE, f"--output={out}", str(export)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return out


def load_records(path: Path) -> list[dict[str, str]]:
    """Journal records recorded as a JSON list (``journalctl -o json`` objects)."""
    records: list[dict[str, str]] = json.loads(path.read_text())
    return records
