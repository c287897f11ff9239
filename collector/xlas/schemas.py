"""API shapes of XLA definitions, their evaluations and the XLA report.

A definition is validated here completely (types, ranges, unknown keys, the metric an
indicator needs), so a 422 always names the exact field; the same model validates a
definitions file (YAML or TOML, ``xlas: [...]``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Final, Literal, Self, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    model_validator,
)

from scoring.personas import METRICS

__all__ = [
    "INDICATORS",
    "PERIODS",
    "XLA_FILE",
    "XLA_REQUEST",
    "EvaluationList",
    "EvaluationOut",
    "ExclusionsIn",
    "Indicator",
    "MaintenanceWindow",
    "MspOverview",
    "MspTenantRow",
    "ScopeIn",
    "SlaIn",
    "TargetIn",
    "XlaFile",
    "XlaIn",
    "XlaList",
    "XlaOut",
    "XlaSaved",
]

Indicator = Literal[
    "experience_score",
    "startup",
    "responsiveness",
    "stability",
    "sentiment",
    "metric_good_share",
    "time_lost_min",
]
"""What an XLA can measure: the 0-100 experience score, a sub-score, the survey sentiment
(answers in the period only, 0-100), a metric's good-share (% of days the metric scored
good), or the minutes lost per device per scored day."""

INDICATORS: Final[tuple[str, ...]] = get_args(Indicator)
"""Every :data:`Indicator`, in order."""

PERIODS: Final[tuple[str, ...]] = ("week", "month")

_STRICT = ConfigDict(extra="forbid")

Name = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][\w .:/()-]*$"
    ),
]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Pct = Annotated[float, Field(ge=0.0, le=100.0, allow_inf_nan=False)]


class ScopeIn(BaseModel):
    """Which devices an XLA covers: all of the tenant, or one persona and/or device group."""

    model_config = _STRICT

    persona: Label | None = None
    """The persona of the device on each day (as scored that day)."""
    group: Label | None = None
    """The device's ``group`` tag (set by the installer)."""


class TargetIn(BaseModel):
    """``value`` compared with each device's figure, for ``share_of_devices_pct`` % of
    devices; without a share, compared with the mean over devices."""

    model_config = _STRICT

    comparison: Literal[">=", "<="] = ">="
    value: Annotated[float, Field(ge=0.0, le=1_440.0, allow_inf_nan=False)]
    share_of_devices_pct: Pct | None = None


class MaintenanceWindow(BaseModel):
    """A window agreed with the client: the UTC days it touches are left out."""

    model_config = _STRICT

    start: datetime
    end: datetime
    reason: Annotated[str, StringConstraints(max_length=200)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset (e.g. 2026-11-07T22:00:00Z)")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ExclusionsIn(BaseModel):
    """What an evaluation leaves out."""

    model_config = _STRICT

    maintenance_windows: Annotated[list[MaintenanceWindow], Field(max_length=100)] = Field(
        default_factory=list
    )
    min_days_seen: Annotated[int, Field(ge=1, le=31)] = 1
    """A device with fewer scored days in the period is not counted (it is still in scope,
    so it lowers the coverage); devices not seen at all in the period are out of scope."""


class SlaIn(BaseModel):
    """The classic SLA shown beside the XLA (from the tickets' ``resolved_at`` and
    ``first_contact_resolution`` columns)."""

    model_config = _STRICT

    resolve_within_h: Annotated[float, Field(gt=0.0, le=10_000.0)] = 8.0
    resolve_target_pct: Pct = 90.0
    fcr_target_pct: Pct | None = None


class XlaIn(BaseModel):
    """``POST /api/v1/xlas``: create an XLA, or add a version to the one of that name."""

    model_config = _STRICT

    name: Name
    tenant_id: uuid.UUID | None = None
    """Needed only by MSP-wide callers."""
    description: Annotated[str, StringConstraints(max_length=2000)] | None = None
    scope: ScopeIn = Field(default_factory=ScopeIn)
    indicator: Indicator
    metric: Label | None = None
    """The metric of a ``metric_good_share`` indicator (e.g. ``boot``)."""
    target: TargetIn
    period: Literal["week", "month"] = "month"
    exclusions: ExclusionsIn = Field(default_factory=ExclusionsIn)
    min_coverage_pct: Pct = 50.0
    min_devices: Annotated[int, Field(ge=1, le=1_000_000)] = 5
    """Below this many counted devices: not enough data (and no figure about a few people)."""
    min_responses: Annotated[int, Field(ge=0, le=1_000_000)] = 10
    """Survey answers needed by a ``sentiment`` indicator."""
    sla: SlaIn | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.indicator == "metric_good_share":
            if self.metric is None:
                raise ValueError("metric: required for the metric_good_share indicator")
            if self.metric not in METRICS or self.metric == "sentiment":
                known = ", ".join(m for m in METRICS if m != "sentiment")
                raise ValueError(f"metric: unknown metric {self.metric!r} (known: {known})")
        elif self.metric is not None:
            raise ValueError("metric: only the metric_good_share indicator takes a metric")
        if self.indicator != "time_lost_min" and self.target.value > 100.0:
            raise ValueError("target.value: a 0-100 indicator needs a target of at most 100")
        return self

    def spec(self) -> dict[str, Any]:
        """What a definition version stores: everything but name and tenant."""
        return self.model_dump(mode="json", exclude={"name", "tenant_id"})


XLA_REQUEST: TypeAdapter[XlaIn] = TypeAdapter(XlaIn)
"""Validator (and JSON Schema) of the create-or-version request."""


class XlaFile(BaseModel):
    """A definitions file: ``xlas`` is a list of definitions (``[[xlas]]`` in TOML)."""

    model_config = _STRICT

    xlas: Annotated[list[XlaIn], Field(min_length=1, max_length=500)]


XLA_FILE: TypeAdapter[XlaFile] = TypeAdapter(XlaFile)
"""Validator of a definitions file."""


class EvaluationOut(BaseModel):
    """One XLA over one period (see docs/xla.md for every figure)."""

    xla_id: uuid.UUID
    name: str
    version: int
    period: str
    period_start: date
    period_end: date
    status: str
    value: float | None
    margin: float | None
    reason: str
    final: bool
    computed_at: datetime
    figures: dict[str, Any]


class EvaluationList(BaseModel):
    """Evaluations of one XLA, newest period first."""

    items: list[EvaluationOut]


class XlaOut(BaseModel):
    """An XLA definition as stored: current version and its content."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    name: str
    version: int
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    latest: EvaluationOut | None = None


class XlaSaved(BaseModel):
    """The result of saving definitions (one request or one file)."""

    items: list[XlaOut]
    created: int
    versioned: int
    unchanged: int


class XlaList(BaseModel):
    """XLA definitions visible to the caller, by tenant then name."""

    items: list[XlaOut]


class MspTenantRow(BaseModel):
    """One tenant in the MSP overview."""

    tenant_id: uuid.UUID
    tenant_name: str
    devices: int
    xlas: int
    met: int
    missed: int
    insufficient: int
    watermelons: int
    """XLAs whose SLA is met while the XLA is missed."""
    open_alerts: int
    evaluations: list[EvaluationOut]
    """Per XLA the evaluation of the latest closed period (the running one where none is
    closed yet), with its trend against the period before."""


class MspOverview(BaseModel):
    """All tenants side by side (MSP staff only)."""

    generated_at: datetime
    tenants: list[MspTenantRow]
