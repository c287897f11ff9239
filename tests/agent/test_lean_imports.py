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


def test_agent_modules_import_nothing_heavy() -> None:
    modules = sorted(
        ".".join(p.relative_to(AGENT.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in AGENT.rglob("*.py")
        if p.parent.name != "platform" or p.stem in ("__init__", "linux", "generic")
    )
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in modules)
        + "import dexscope.cli\n"
        + f"bad = sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r})\n"
        + "print(bad)\nsys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_facade_imports_psutil() -> None:
    importers = {
        str(p.relative_to(AGENT.parent))
        for p in AGENT.rglob("*.py")
        if re.search(r"^\s*(import psutil|from psutil)", p.read_text(), re.M)
    }
    assert importers == {"agent/platform/__init__.py"}
