"""The wire module: complete, documented, and lean."""

from __future__ import annotations

import subprocess
import sys
import typing

import dexscope.wire as wire
from collector.ingest.schemas import BATCH, EVENT
from tests.support import REPO


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(wire).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == wire.__name__
    }
    assert public <= set(wire.__all__)
    assert all(hasattr(wire, name) for name in wire.__all__)


def test_every_contract_event_type_is_defined() -> None:
    tags = {typing.get_type_hints(cls)["type"].__args__[0] for cls in typing.get_args(wire.Event)}
    assert tags == set(wire.EVENT_TYPES)
    assert len(wire.EVENT_TYPES) == 11


def test_schema_forbids_unknown_fields_everywhere() -> None:
    schema = BATCH.json_schema()
    for name, definition in schema["$defs"].items():
        if definition.get("type") == "object" and "properties" in definition:
            assert definition.get("additionalProperties") is False, name
    assert schema["additionalProperties"] is False


def test_duration_fields_carry_units() -> None:
    schema = EVENT.json_schema()
    for definition in schema["$defs"].values():
        for field, spec in definition.get("properties", {}).items():
            if spec.get("type") == "number" and field not in ("value",):
                assert field.endswith(("_s", "_ms", "_mb", "_percent")), field


def test_wire_module_imports_no_pydantic() -> None:
    code = (
        "import sys, dexscope.wire; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "{'pydantic', 'fastapi', 'sqlalchemy', 'numpy'}]; print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout


def test_generated_doc_is_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/export_wire_schema.py", "--check"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
