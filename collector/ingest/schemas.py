"""Strict pydantic validation of the wire protocol (:mod:`dexscope.wire`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from dexscope import wire

__all__ = ["BATCH", "EVENT", "wire_json_schema"]


class _StrictBatch(wire.Batch):
    """The batch with its events as a union tagged by ``type`` (precise errors, fast)."""

    events: Annotated[
        list[Annotated[wire.Event, Field(discriminator="type")]],
        Field(min_length=1, max_length=wire.MAX_EVENTS_PER_BATCH),
    ]


setattr(  # noqa: B010
    _StrictBatch,
    "__pydantic_config__",
    {"extra": "forbid", "allow_inf_nan": False, "use_attribute_docstrings": True},
)

BATCH: TypeAdapter[wire.Batch] = TypeAdapter(_StrictBatch)
"""Validates a whole ingest body."""

EVENT: TypeAdapter[wire.Event] = TypeAdapter(Annotated[wire.Event, Field(discriminator="type")])
"""Validates one event (tests use it to check the agent's events)."""


def wire_json_schema() -> dict[str, Any]:
    """The JSON Schema of a batch, as published in docs/wire-protocol.md."""
    schema = BATCH.json_schema()
    schema["title"] = "DexScope ingest batch (wire v1)"
    return schema
