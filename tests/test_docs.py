"""The hand-written docs that promise something checkable: the privacy data dictionary
lists every field an agent can send, docs/agent.md names every sampler, and docs/xla.md
every indicator and report column."""

from __future__ import annotations

import re
import typing
from pathlib import Path

from agent.samplers import load_builtin_samplers
from collector.reports.xla import CSV_COLUMNS
from collector.xlas.schemas import INDICATORS
from dexscope import wire

DOCS = Path(__file__).resolve().parent.parent / "docs"
EVENT_CLASSES = {
    typing.get_type_hints(cls)["type"].__args__[0]: cls for cls in typing.get_args(wire.Event)
}


def _sections(text: str) -> dict[str, set[str]]:
    """Fields named in the first column of each ``### `type``` section's table."""
    sections: dict[str, set[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        heading = re.match(r"^### `(\w+)`", line)
        if heading:
            current = heading.group(1)
            sections[current] = set()
        elif line.startswith("## "):
            current = None
        elif current and line.startswith("| `"):
            sections[current] |= set(re.findall(r"`(\w+)`", line.split("|")[1]))
    return sections


def test_privacy_dictionary_lists_every_wire_field() -> None:
    sections = _sections((DOCS / "privacy.md").read_text())
    assert set(sections) == set(EVENT_CLASSES)
    common = {"event_id", "ts", "type"}
    for kind, cls in EVENT_CLASSES.items():
        fields = set(typing.get_type_hints(cls)) - common
        assert fields <= sections[kind], f"{kind}: {sorted(fields - sections[kind])} undocumented"
        assert sections[kind] <= fields, (
            f"{kind}: {sorted(sections[kind] - fields)} not on the wire"
        )
    enrollment = (DOCS / "privacy.md").read_text().split("## Sent once, at enrollment")[1]
    for field in typing.get_type_hints(wire.EnrollRequest):
        assert f"`{field}`" in enrollment.split("\n## ")[0], field


def test_agent_doc_names_every_sampler() -> None:
    text = (DOCS / "agent.md").read_text()
    for name in load_builtin_samplers():
        assert f"`{name}`" in text, name


def test_xla_doc_names_every_indicator_and_csv_column() -> None:
    text = (DOCS / "xla.md").read_text()
    for name in (*INDICATORS, *CSV_COLUMNS):
        assert f"`{name}`" in text, name
