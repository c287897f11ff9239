"""Build the stand-alone DexScope agent with PyInstaller: ``dist/dexscope-agent/``.

Usage (from anywhere; paths are relative to the repository root)::

    python installers/build_agent.py [--onefile] [--clean] [--verbose]

It installs nothing: PyInstaller comes with the ``build`` extra (``pip install -e '.[build]'``).
The build is pinned for reproducibility (``PYTHONHASHSEED=0``; ``SOURCE_DATE_EPOCH`` from the
environment, else the last git commit's time), then the result is smoke-tested by running
``dexscope-agent --version`` and ``dexscope-agent agent status --help``. One-folder output goes
to ``dist/dexscope-agent/``, one-file output to ``dist/onefile/dexscope-agent[.exe]`` (so the
two never collide). Exit code 0 on success, 1 when the build or the smoke test fails, 2 when
PyInstaller is not installed.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["build", "folder_digest", "main", "size_bytes", "smoke_test", "source_date_epoch"]

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "installers" / "pyinstaller" / "dexscope-agent.spec"
NAME = "dexscope-agent"
EXE_NAME = NAME + (".exe" if sys.platform == "win32" else "")
FALLBACK_EPOCH = 315532800  # 1980-01-01, the earliest time a ZIP archive can hold


def _say(message: str) -> None:
    print(f"[build_agent] {message}", flush=True)


def source_date_epoch(root: Path = ROOT) -> str:
    """``SOURCE_DATE_EPOCH`` from the environment, else the last commit's time, else 1980."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return os.environ["SOURCE_DATE_EPOCH"]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%ct"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out if out.isdigit() else str(FALLBACK_EPOCH)


def size_bytes(path: Path) -> int:
    """The total size of a file, or of every file under a folder (symlinks not followed)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def folder_digest(path: Path) -> str:
    """One SHA-256 over every file's relative path and content: compares two builds."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        digest.update(file.relative_to(path.parent).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _dexscope_version() -> str:
    match = re.search(
        r'^__version__\s*=\s*"([^"]+)"', (ROOT / "dexscope" / "__init__.py").read_text(), re.M
    )
    return match.group(1) if match else "?"


def build(
    *,
    onefile: bool,
    clean: bool,
    verbose: bool,
    dist: Path | None = None,
    work: Path | None = None,
) -> tuple[Path, float]:
    """Run PyInstaller on the spec; return the executable's path and the build's seconds.

    ``dist`` and ``work`` replace the repository's ``dist/`` and ``build/`` folders (the
    installer tests build into a temporary folder).
    """
    distpath = (dist or ROOT / "dist") / ("onefile" if onefile else "")
    workpath = (work or ROOT / "build") / ("onefile" if onefile else "onedir")
    env = dict(os.environ, PYTHONHASHSEED="0", SOURCE_DATE_EPOCH=source_date_epoch())
    command = [
        sys.executable,
        "-m",
        "PyInstaller",
        "--noconfirm",
        "--log-level",
        "INFO" if verbose else "WARN",
        "--distpath",
        str(distpath),
        "--workpath",
        str(workpath),
    ]
    if clean:
        command.append("--clean")
    command.append(str(SPEC))
    if onefile:
        command += ["--", "--onefile"]
    _say(
        f"PyInstaller {'one-file' if onefile else 'one-folder'} build of dexscope "
        f"{_dexscope_version()} (PYTHONHASHSEED=0, SOURCE_DATE_EPOCH={env['SOURCE_DATE_EPOCH']})"
    )
    _say("$ " + " ".join(command))
    started = time.monotonic()
    result = subprocess.run(command, cwd=ROOT, env=env, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"[build_agent] PyInstaller failed (exit {result.returncode})")
    executable = distpath / EXE_NAME if onefile else distpath / NAME / EXE_NAME
    return executable, seconds


def smoke_test(executable: Path, version: str) -> list[str]:
    """Run the frozen program's ``--version`` and ``agent status --help``; the failures."""
    failures: list[str] = []
    checks: list[tuple[list[str], str]] = [
        (["--version"], f"{NAME} {version}"),
        (["agent", "status", "--help"], "--state-dir"),
        (["agent", "run", "--help"], "--enroll-token"),
    ]
    for args, expected in checks:
        shown = " ".join([executable.name, *args])
        try:
            done = subprocess.run(
                [str(executable), *args], capture_output=True, text=True, timeout=120, check=False
            )
        except (OSError, subprocess.SubprocessError) as exc:
            failures.append(f"{shown}: {exc}")
            continue
        if done.returncode != 0 or expected not in done.stdout:
            failures.append(
                f"{shown}: exit {done.returncode}, {expected!r} not in output\n"
                f"{done.stdout}{done.stderr}"
            )
        else:
            _say(f"ok  {shown}: {done.stdout.strip().splitlines()[0]}")
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build, report where and how big, smoke-test."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--onefile", action="store_true", help="one self-extracting executable")
    parser.add_argument("--clean", action="store_true", help="empty PyInstaller's caches first")
    parser.add_argument("--verbose", action="store_true", help="PyInstaller's INFO log")
    parser.add_argument("--dist", type=Path, help="output folder instead of dist/")
    parser.add_argument("--work", type=Path, help="PyInstaller's work folder instead of build/")
    args = parser.parse_args(argv)

    if importlib.util.find_spec("PyInstaller") is None:
        print(
            "error: PyInstaller is not installed in this environment. Install the build extra:\n"
            "    pip install -e '.[build]'",
            file=sys.stderr,
        )
        return 2
    executable, seconds = build(
        onefile=args.onefile,
        clean=args.clean,
        verbose=args.verbose,
        dist=args.dist.resolve() if args.dist else None,
        work=args.work.resolve() if args.work else None,
    )
    output = executable if args.onefile else executable.parent
    size_mb = size_bytes(output) / 1_000_000
    _say(f"built in {seconds:.1f} s: {output}")
    _say(f"size: {size_mb:.1f} MB ({'file' if args.onefile else 'folder'})")
    _say(f"digest: {folder_digest(output)}")
    failures = smoke_test(executable, _dexscope_version())
    for failure in failures:
        print(f"[build_agent] FAILED {failure}", file=sys.stderr)
    if failures:
        return 1
    _say(f"done: run {executable} agent run --server URL --enroll-token TOKEN")
    return 0


if __name__ == "__main__":
    sys.exit(main())
