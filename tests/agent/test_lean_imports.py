"""The agent process must stay lean: no collector stack, and psutil behind one facade."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

AGENT = Path(__file__).resolve().parents[2] / "agent"
HEAVY = {
    "pydantic",
    "pydantic_core",
    "fastapi",
    "starlette",
    "sqlalchemy",
    "numpy",
    "rich",
    "alembic",
    "uvicorn",
}


def agent_modules() -> list[str]:
    return sorted(
        ".".join(p.relative_to(AGENT.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in AGENT.rglob("*.py")
    )


def heavy_after_importing(*modules: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r})\n"
        + "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_every_agent_module_is_found() -> None:
    modules = agent_modules()
    for expected in ("agent.cli", "agent.main", "agent.spool", "agent.platform.windows"):
        assert expected in modules
    assert len(modules) >= 20


def test_agent_modules_import_nothing_heavy() -> None:
    result = heavy_after_importing(*agent_modules())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "[]"


def test_the_dexscope_command_line_keeps_the_agent_lean() -> None:
    # `dexscope agent run` goes through dexscope.cli, which builds every sub-command's parser.
    result = heavy_after_importing("agent.cli", "dexscope.cli")
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_facade_imports_psutil() -> None:
    importers = {
        str(p.relative_to(AGENT.parent))
        for p in AGENT.rglob("*.py")
        if re.search(r"^\s*(import psutil|from psutil)", p.read_text(), re.M)
    }
    assert importers == {"agent/platform/__init__.py"}
