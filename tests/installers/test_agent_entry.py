"""The frozen agent's entry point, its PyInstaller spec and build script (no build here).

A PyInstaller build takes minutes, so these tests check what decides the build's
behaviour: the entry's parser, its lean imports, the spec's excludes and the build
script's helpers. ``python installers/build_agent.py`` smoke-tests a real build.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import agent.cli
from dexscope import __version__
from tests.agent.test_lean_imports import HEAVY

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "installers" / "pyinstaller" / "agent_entry.py"
SPEC = ROOT / "installers" / "pyinstaller" / "dexscope-agent.spec"
BUILD_SCRIPT = ROOT / "installers" / "build_agent.py"

# Beside the agent's lean rule: httpx's CLI stack, our other packages, dev and packaging tools.
ALSO_EXCLUDED = {"click", "pygments", "collector", "scoring", "pytest", "setuptools", "pip"}


def load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def entry() -> ModuleType:
    return load(ENTRY, "agent_entry_under_test")


def spec_literal(name: str) -> object:
    """The value of a top-level ``NAME = <literal>`` in the spec, without executing it."""
    tree = ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{SPEC.name} has no top-level literal {name}")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (action,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


def run_entry(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ENTRY), *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_the_parser_has_agent_run_and_status(entry: ModuleType) -> None:
    parser = entry.build_parser()
    assert parser.prog == "dexscope-agent"
    run = parser.parse_args(["agent", "run", "--server", "http://c:1", "--once", "--tag", "a=b"])
    assert run.func is agent.cli._run
    assert (run.server, run.once, run.tag) == ("http://c:1", True, ["a=b"])
    status = parser.parse_args(["agent", "status", "--state-dir", "/s", "--json"])
    assert status.func is agent.cli._status
    assert (status.state_dir, status.json) == (Path("/s"), True)
    assert set(subcommands(parser)) == {"agent"}  # no collector, admin or demo


def test_agent_commands_match_dexscope_agent(entry: ModuleType) -> None:
    from dexscope.cli import build_parser as full_parser

    frozen = subcommands(subcommands(entry.build_parser())["agent"])
    source = subcommands(subcommands(full_parser())["agent"])
    assert set(frozen) == set(source) >= {"run", "status"}
    for name in source:
        assert options(frozen[name]) == options(source[name]), name


def test_help_and_version_as_a_subprocess(tmp_path: Path) -> None:
    # Run from elsewhere: the entry must find the agent package from a source checkout.
    helped = run_entry("--help", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith("usage: dexscope-agent")
    assert "agent" in helped.stdout
    version = run_entry("--version", cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith(f"dexscope-agent {__version__} (source, python ")
    sub_help = run_entry("agent", "status", "--help", cwd=tmp_path)
    assert sub_help.returncode == 0 and "--state-dir" in sub_help.stdout


def test_user_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    done = run_entry("agent", "status", "--state-dir", str(tmp_path / "none"), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert "Traceback" not in done.stderr


def test_importing_the_entry_imports_nothing_heavy() -> None:
    forbidden = sorted(HEAVY | {"click", "pygments", "collector", "scoring"})
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('agent_entry', {str(ENTRY)!r})\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(module)\n"
        "module.build_parser()\n"
        f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & set({forbidden!r}))\n"
        "print('agent.cli' in sys.modules, bad)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True []"


def test_the_spec_excludes_the_heavy_packages() -> None:
    excludes = spec_literal("EXCLUDES")
    assert isinstance(excludes, list) and all(isinstance(e, str) for e in excludes)
    assert len(excludes) == len(set(excludes))
    missing = (HEAVY | ALSO_EXCLUDED) - set(excludes)
    assert not missing, f"add to EXCLUDES in {SPEC.name}: {sorted(missing)}"
    assert "tkinter" not in excludes  # the survey helper will need Tk
    assert spec_literal("UPX") is False
    assert spec_literal("NAME") == "dexscope-agent"


def test_the_stamped_build_info_shows_in_the_version(
    entry: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert entry.build_info() is None  # not frozen
    info = {"name": "dexscope-agent", "version": __version__, "python": "3.11.9"}
    (tmp_path / entry.BUILD_INFO_NAME).write_text(json.dumps(info | {"platform": "win32-amd64"}))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    assert entry.build_info()["platform"] == "win32-amd64"
    assert entry.version_string() == (
        f"dexscope-agent {__version__} (frozen, python 3.11.9, win32-amd64)"
    )
    (tmp_path / entry.BUILD_INFO_NAME).write_text("not json")
    assert entry.build_info() is None


def test_build_script_helpers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = load(BUILD_SCRIPT, "build_agent_under_test")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert build.source_date_epoch() == "1700000000"
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    # not a git checkout: the 1980 fallback
    assert build.source_date_epoch(tmp_path) == str(build.FALLBACK_EPOCH)

    folder = tmp_path / "dexscope-agent"
    (folder / "_internal").mkdir(parents=True)
    (folder / "dexscope-agent").write_bytes(b"x" * 1000)
    (folder / "_internal" / "lib.so").write_bytes(b"y" * 24)
    assert build.size_bytes(folder) == 1024
    first = build.folder_digest(folder)
    assert build.folder_digest(folder) == first
    (folder / "_internal" / "lib.so").write_bytes(b"z" * 24)
    assert build.folder_digest(folder) != first
