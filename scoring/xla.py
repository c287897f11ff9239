"""XLA evaluation: per-device period values, target compliance, SLA figures, watermelon.

Pure numpy, no I/O: the collector reads the daily rollups and the tickets of a period,
hands them here as flat arrays, and stores what comes back. Every formula is in
docs/xla.md.

An XLA target reads either "``value`` ``comparison`` ``device_target`` for at least
``share_target_pct`` % of devices" (device-share aggregation), or, with no share, "the mean
over devices ``comparison`` ``device_target``" (mean aggregation). Each device's value for
the period is the mean of its included daily values (:func:`device_period_values`), so a
device seen every day weighs as much as one seen on three days; devices seen on fewer than
``min_days`` days are left out and counted as excluded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "COMPARISONS",
    "GOOD_METRIC_SCORE",
    "INSUFFICIENT",
    "MET",
    "MISSED",
    "SlaFigures",
    "SlaTarget",
    "XlaResult",
    "XlaTarget",
    "device_period_values",
    "evaluate",
    "good_days",
    "lead_time_figures",
    "period_values_from_totals",
    "sla_figures",
    "watermelon",
]

Floats = npt.NDArray[np.float64]
Comparison = Literal[">=", "<="]

COMPARISONS: Final[tuple[str, ...]] = (">=", "<=")
"""How a value is compared with its target."""

MET: Final = "met"
"""The period's figure reached its target, with enough coverage."""
MISSED: Final = "missed"
"""The period's figure fell short of its target, with enough coverage."""
INSUFFICIENT: Final = "insufficient_data"
"""Too few devices, too little coverage or too few answers to say either."""

GOOD_METRIC_SCORE: Final = 85.0
"""A metric's daily score (0-100) at or above which the day counts as good: Apdex's "good"
rating starts at 0.85."""


@dataclass(frozen=True)
class XlaTarget:
    """What an XLA promises, and how much data an evaluation needs to say met or missed."""

    comparison: Comparison
    device_target: float
    """The level each device's value (device share) or the mean (mean aggregation) must
    reach."""
    share_target_pct: float | None = None
    """At least this share of counted devices must reach ``device_target``; None: compare
    the mean over devices instead."""
    min_devices: int = 5
    """Fewer counted devices than this: not enough data (and no figure singles out a few
    people)."""
    min_coverage_pct: float = 50.0
    """Counted devices as a share of the devices in scope, below which: not enough data."""
    min_responses: int = 0
    """Survey answers needed (sentiment indicators); 0: not applicable."""


@dataclass(frozen=True)
class XlaResult:
    """One evaluation of one XLA over one period."""

    status: str
    """:data:`MET`, :data:`MISSED` or :data:`INSUFFICIENT`."""
    value: float
    """The compliance figure: % of counted devices on target (device share) or the mean
    over devices (mean aggregation); NaN without counted devices."""
    margin: float
    """How far past the target (positive) or short of it (negative): percentage points of
    devices for device share, indicator units for the mean; NaN when ``value`` is."""
    mean_value: float
    """The mean of the counted devices' values (reported beside a share), NaN without any."""
    devices_counted: int
    devices_in_scope: int
    coverage_pct: float
    """``devices_counted / devices_in_scope`` in %, NaN when no device is in scope."""
    responses: int
    reason: str
    """Why the status is what it is, in one sentence a client can read."""


@dataclass(frozen=True)
class SlaTarget:
    """The classic service-desk targets the XLA is shown beside."""

    resolve_within_h: float = 8.0
    resolve_target_pct: float = 90.0
    """At least this share of resolved tickets resolved within ``resolve_within_h``."""
    fcr_target_pct: float | None = None
    """First-contact resolution rate target; None: not part of the SLA."""


@dataclass(frozen=True)
class SlaFigures:
    """SLA figures of the tickets opened in a period."""

    status: str
    tickets: int
    resolved: int
    within_target_pct: float
    """% of resolved tickets resolved within the target time (NaN when none resolved)."""
    median_resolve_h: float
    fcr_pct: float
    """% of tickets with a first-contact flag that were resolved at first contact."""
    fcr_known: int
    reason: str


def good_days(metric_scores: npt.ArrayLike, good_score: float = GOOD_METRIC_SCORE) -> Floats:
    """Per device-day: 100 where the metric's score is ≥ ``good_score``, 0 below, NaN kept.

    Averaged per device by :func:`device_period_values`, this gives the share (%) of the
    device's days on which the metric was good: a metric's good-share.
    """
    s = np.asarray(metric_scores, dtype=np.float64)
    return np.where(np.isnan(s), np.nan, np.where(s >= good_score, 100.0, 0.0))


def device_period_values(
    device: npt.ArrayLike, value: npt.ArrayLike, n_devices: int, min_days: int = 1
) -> tuple[Floats, npt.NDArray[np.int64]]:
    """Each device's mean daily value over the period, and its number of valued days.

    ``device`` indexes ``0 … n_devices-1`` per row (one row per device-day, excluded days
    already removed); NaN values are not days with a value. A device with fewer than
    ``min_days`` valued days gets NaN.
    """
    d = np.asarray(device, dtype=np.intp)
    v = np.asarray(value, dtype=np.float64)
    keep = ~np.isnan(v)
    days = np.bincount(d[keep], minlength=n_devices).astype(np.int64)
    sums = np.bincount(d[keep], weights=v[keep], minlength=n_devices)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(days >= max(min_days, 1), sums / np.maximum(days, 1), np.nan)
    return np.asarray(means, dtype=np.float64), days


def period_values_from_totals(
    sums: npt.ArrayLike, weights: npt.ArrayLike, days: npt.ArrayLike, min_days: int = 1
) -> Floats:
    """Each device's period value from its totals: ``Σ value·weight / Σ weight``, NaN for a
    device with fewer than ``min_days`` valued days or no weight.

    The same figure as :func:`device_period_values` when every weight is 1, from totals a
    database can sum per device (so 100,000 devices · 30 days never leave the database as
    rows); a weight is e.g. the number of survey answers behind a day's mean.
    """
    s = np.asarray(sums, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    d = np.asarray(days, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where((d >= max(min_days, 1)) & (w > 0), s / np.where(w > 0, w, 1.0), np.nan)
    return np.asarray(out, dtype=np.float64)


def _reaches(values: Floats, comparison: Comparison, target: float) -> npt.NDArray[np.bool_]:
    return values >= target if comparison == ">=" else values <= target


def evaluate(
    device_values: npt.ArrayLike,
    devices_in_scope: int,
    target: XlaTarget,
    responses: int = 0,
) -> XlaResult:
    """Met, missed or not enough data, with the margin and the coverage behind it.

    ``device_values`` are the period values of the devices in scope (NaN = not counted:
    not seen, excluded or too few days). ``responses`` is the number of survey answers the
    values rest on (sentiment indicators).
    """
    v = np.asarray(device_values, dtype=np.float64)
    counted = v[~np.isnan(v)]
    n = int(counted.size)
    coverage = 100.0 * n / devices_in_scope if devices_in_scope else math.nan
    mean = float(counted.mean()) if n else math.nan
    if target.share_target_pct is None:
        value = mean
        margin = (
            value - target.device_target
            if target.comparison == ">="
            else target.device_target - value
        )
        reached = n > 0 and margin >= 0
    else:
        on_target = _reaches(counted, target.comparison, target.device_target)
        value = 100.0 * float(on_target.mean()) if n else math.nan
        margin = value - target.share_target_pct
        reached = n > 0 and margin >= 0

    def result(status: str, reason: str) -> XlaResult:
        return XlaResult(
            status=status,
            value=value,
            margin=margin,
            mean_value=mean,
            devices_counted=n,
            devices_in_scope=devices_in_scope,
            coverage_pct=coverage,
            responses=responses,
            reason=reason,
        )

    if n < target.min_devices:
        return result(
            INSUFFICIENT, f"{n} devices counted, fewer than the minimum of {target.min_devices}"
        )
    if not coverage >= target.min_coverage_pct:
        return result(
            INSUFFICIENT,
            f"coverage {coverage:.0f} % of {devices_in_scope} devices in scope, below the "
            f"minimum of {target.min_coverage_pct:.0f} %",
        )
    if responses < target.min_responses:
        return result(
            INSUFFICIENT,
            f"{responses} survey answers, fewer than the minimum of {target.min_responses}",
        )
    if reached:
        return result(MET, "target reached")
    return result(MISSED, "target not reached")


def sla_figures(
    resolve_h: npt.ArrayLike, first_contact: npt.ArrayLike, target: SlaTarget
) -> SlaFigures:
    """SLA figures of a period's tickets: one entry per ticket opened in the period.

    ``resolve_h`` is the time from opening to resolution in hours (NaN: not resolved or not
    known); ``first_contact`` is 1 for resolved at first contact, 0 for not, NaN unknown.
    Status: met when the resolved-in-time share (and the FCR rate, when it has a target)
    reach their targets; not enough data without a resolved ticket.
    """
    h = np.asarray(resolve_h, dtype=np.float64)
    f = np.asarray(first_contact, dtype=np.float64)
    resolved = h[~np.isnan(h)]
    known = f[~np.isnan(f)]
    within = (
        100.0 * float((resolved <= target.resolve_within_h).mean()) if resolved.size else math.nan
    )
    median = float(np.median(resolved)) if resolved.size else math.nan
    fcr = 100.0 * float(known.mean()) if known.size else math.nan
    if not resolved.size:
        status, reason = INSUFFICIENT, "no resolved ticket in the period"
    else:
        misses = []
        if within < target.resolve_target_pct:
            misses.append(
                f"{within:.0f} % resolved within {target.resolve_within_h:g} h "
                f"(target {target.resolve_target_pct:g} %)"
            )
        if target.fcr_target_pct is not None and known.size and fcr < target.fcr_target_pct:
            misses.append(
                f"first-contact resolution {fcr:.0f} % (target {target.fcr_target_pct:g} %)"
            )
        status = MISSED if misses else MET
        reason = "; ".join(misses) if misses else "targets reached"
    return SlaFigures(
        status=status,
        tickets=int(h.size),
        resolved=int(resolved.size),
        within_target_pct=within,
        median_resolve_h=median,
        fcr_pct=fcr,
        fcr_known=int(known.size),
        reason=reason,
    )


def watermelon(sla_status: str, xla_status: str) -> str:
    """The quadrant of an SLA and an XLA status.

    ``watermelon``: SLA met, XLA missed (green outside, red inside); ``green``: both met;
    ``red``: both missed; ``xla_only``: XLA met while the SLA is missed; ``unknown``: either
    has not enough data.
    """
    if sla_status == MET and xla_status == MISSED:
        return "watermelon"
    if sla_status == MET and xla_status == MET:
        return "green"
    if sla_status == MISSED and xla_status == MISSED:
        return "red"
    if sla_status == MISSED and xla_status == MET:
        return "xla_only"
    return "unknown"


def lead_time_figures(
    detected_h: npt.ArrayLike,
    first_ticket_h: npt.ArrayLike,
    affected: npt.ArrayLike | None = None,
    excess_min_per_day: npt.ArrayLike | None = None,
) -> dict[str, float]:
    """Proactive figures of a period's alerts (times in hours on any common clock).

    ``first_ticket_h`` is NaN for an alert no ticket was matched to. Returns the number of
    alerts, of alerts with a ticket, of those detected before their first ticket, that share
    in %, and the median lead time (first ticket - detection) over those detected first.

    With ``affected`` (devices per alert) and ``excess_min_per_day`` (minutes lost per
    affected device-day above the devices' own baseline, NaN unknown), also the time lost
    avoided, in hours: Σ over alerts detected first of lead (days) · affected · excess —
    what users would have lost had the fix waited for the first ticket.
    """
    d = np.asarray(detected_h, dtype=np.float64)
    t = np.asarray(first_ticket_h, dtype=np.float64)
    with_ticket = ~np.isnan(t)
    lead = np.where(with_ticket, t - d, np.nan)
    before = with_ticket & (lead > 0)
    out = {
        "alerts": float(d.size),
        "alerts_with_ticket": float(with_ticket.sum()),
        "detected_before_ticket": float(before.sum()),
        "detected_before_ticket_pct": (
            100.0 * float(before.sum()) / float(with_ticket.sum())
            if with_ticket.any()
            else math.nan
        ),
        "median_lead_h": float(np.median(lead[before])) if before.any() else math.nan,
    }
    if affected is not None and excess_min_per_day is not None:
        a = np.asarray(affected, dtype=np.float64)
        x = np.clip(np.nan_to_num(np.asarray(excess_min_per_day, dtype=np.float64)), 0.0, None)
        avoided_min = np.where(before, np.nan_to_num(lead) / 24.0 * a * x, 0.0)
        out["time_lost_avoided_h"] = float(avoided_min.sum()) / 60.0
    return out
