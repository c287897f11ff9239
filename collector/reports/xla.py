"""The XLA report of one tenant and one period: JSON, CSV, HTML and PDF renderings.

:func:`build_report` assembles the figures from the stored evaluations (computing and
storing any that are missing), so every rendering of the same report shows the same
numbers; :func:`render` turns it into bytes of the asked format.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session

from collector.charts import PALETTE, Series, histogram, line_chart
from collector.errors import NotFound, UnprocessableEntity
from collector.reports.pdf import html_to_pdf
from collector.xlas.repository import XlaRepository
from collector.xlas.service import tenant_period_evaluations
from dexscope import __version__

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "INDICATOR_TEXT",
    "MEDIA_TYPES",
    "SHORT_LABEL",
    "build_report",
    "render",
    "render_html",
]

FORMATS: Final[tuple[str, ...]] = ("json", "csv", "html", "pdf")
MEDIA_TYPES: Final[dict[str, str]] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}
"""The media type of each format."""

CSV_COLUMNS: Final[tuple[str, ...]] = (
    "tenant",
    "period",
    "xla",
    "version",
    "indicator",
    "metric",
    "scope_persona",
    "scope_group",
    "comparison",
    "target",
    "share_of_devices_pct",
    "status",
    "value",
    "margin",
    "mean_value",
    "devices_in_scope",
    "devices_counted",
    "coverage_pct",
    "responses",
    "trend_delta",
    "sla_status",
    "sla_tickets",
    "sla_within_target_pct",
    "sla_median_resolve_h",
    "sla_fcr_pct",
    "watermelon",
    "alerts",
    "detected_before_ticket_pct",
    "median_lead_h",
    "time_lost_avoided_h",
    "final",
    "computed_at",
)
"""One CSV row per XLA, in this column order."""

INDICATOR_TEXT: Final[dict[str, str]] = {
    "experience_score": "the daily experience score (0-100)",
    "startup": "the daily startup sub-score (0-100)",
    "responsiveness": "the daily responsiveness sub-score (0-100)",
    "stability": "the daily stability sub-score (0-100)",
    "sentiment": "survey answers given in the period, mapped to 0-100",
    "metric_good_share": "the share of days (%) on which the metric scored good (≥ 85)",
    "time_lost_min": "minutes lost per device per scored day",
}

SHORT_LABEL: Final[dict[str, str]] = {
    "experience_score": "score",
    "startup": "startup",
    "responsiveness": "responsiveness",
    "stability": "stability",
    "sentiment": "answer (0-100)",
    "metric_good_share": "good days %",
    "time_lost_min": "min lost / day",
}
"""Axis labels of the indicators."""

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "\u2013"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


_TEMPLATES.filters["fmt"] = _fmt


def build_report(
    session: Session, tenant_id: uuid.UUID, period: str, as_of: datetime | None = None
) -> dict[str, Any]:
    """The report's figures (a JSON-ready dict); 404 for an unknown tenant, 422 for a bad
    or future period. Evaluations missing for the period are computed and stored."""
    as_of = as_of or datetime.now(UTC)
    name = XlaRepository(session).tenant_name(tenant_id)
    if name is None:
        raise NotFound(f"no tenant {tenant_id}", code="tenant_not_found")
    p, rows = tenant_period_evaluations(session, tenant_id, period, as_of)
    xlas = []
    for definition, evaluation, history in rows:
        figures = dict(evaluation.figures)
        spec = figures.pop("definition", {})
        xlas.append(
            {
                "id": str(definition.id),
                "name": definition.name,
                "version": evaluation.version,
                "definition": spec,
                "status": evaluation.status,
                "value": evaluation.value,
                "margin": evaluation.margin,
                "reason": evaluation.reason,
                "final": evaluation.final,
                "computed_at": evaluation.computed_at.isoformat(),
                "figures": figures,
                "history": [
                    {"period": h.period, "status": h.status, "value": h.value}
                    for h in reversed(history)
                ],
            }
        )
    statuses = [x["status"] for x in xlas]
    return {
        "report": "xla",
        "format_version": 1,
        "generator": f"DexScope {__version__}",
        "tenant": {"id": str(tenant_id), "name": name},
        "period": {
            "label": p.label,
            "kind": p.kind,
            "start": p.start.isoformat(),
            "end": p.end.isoformat(),
        },
        "generated_at": as_of.isoformat(),
        "final": all(x["final"] for x in xlas) if xlas else False,
        "summary": {
            "xlas": len(xlas),
            "met": statuses.count("met"),
            "missed": statuses.count("missed"),
            "insufficient_data": statuses.count("insufficient_data"),
            "watermelons": sum(x["figures"].get("watermelon") == "watermelon" for x in xlas),
        },
        "xlas": xlas,
    }


def _csv(report: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for x in report["xlas"]:
        f, spec = x["figures"], x["definition"]
        cov, sla, pro = f["coverage"], f["sla"], f["proactive"]
        scope = spec.get("scope") or {}
        target = spec.get("target") or {}
        row = (
            report["tenant"]["name"],
            report["period"]["label"],
            x["name"],
            x["version"],
            spec.get("indicator"),
            spec.get("metric"),
            scope.get("persona"),
            scope.get("group"),
            target.get("comparison"),
            target.get("value"),
            target.get("share_of_devices_pct"),
            x["status"],
            x["value"],
            x["margin"],
            f.get("mean_value"),
            cov["devices_in_scope"],
            cov["devices_counted"],
            cov["coverage_pct"],
            cov["responses"],
            f["trend"]["delta"],
            sla["status"],
            sla["tickets"],
            sla["within_target_pct"],
            sla["median_resolve_h"],
            sla["fcr_pct"],
            f["watermelon"],
            pro.get("alerts"),
            pro.get("detected_before_ticket_pct"),
            pro.get("median_lead_h"),
            pro.get("time_lost_avoided_h"),
            x["final"],
            x["computed_at"],
        )
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode("utf-8")


def _charts(x: dict[str, Any], period: str) -> dict[str, Markup]:
    f, spec = x["figures"], x["definition"]
    unit = "min" if spec.get("indicator") == "time_lost_min" else ""
    target = float(spec["target"]["value"])
    series = f.get("series") or []
    charts: dict[str, Markup] = {}
    if series:
        days = [s["day"][5:] for s in series]
        charts["daily"] = Markup(
            line_chart(
                days,
                [
                    Series("daily mean", [s["value"] for s in series], PALETTE[0]),
                    Series("target", [target] * len(days), PALETTE[4], dashed=True),
                ],
                title=f"{x['name']}: daily mean over devices",
                y_label=SHORT_LABEL.get(spec.get("indicator", ""), ""),
                unit=unit,
                y_min=0.0,
                y_max=None if unit else 100.0,
                width=680,
                height=220,
            )
        )
    history = [*x["history"], {"period": period, "value": x["value"]}]
    if sum(h["value"] is not None for h in history) > 1:
        charts["history"] = Markup(
            line_chart(
                [h["period"] for h in history],
                [Series("result", [h["value"] for h in history], PALETTE[2])],
                title=f"{x['name']}: result by period",
                y_label="% devices on target"
                if spec["target"].get("share_of_devices_pct") is not None
                else SHORT_LABEL.get(spec.get("indicator", ""), "mean"),
                x_label="period",
                y_min=0.0,
                width=680,
                height=200,
            )
        )
    dist = f.get("distribution") or {}
    counts = dist.get("counts") or []
    if counts and sum(counts):
        upper = float(dist.get("upper", 100.0))
        step = upper / len(counts)
        charts["distribution"] = Markup(
            histogram(
                [(i * step, (i + 1) * step, c) for i, c in enumerate(counts)],
                title=f"{x['name']}: devices by period value",
                x_label="period value per device",
                unit=unit,
                colour_of=None if not unit else {},
                width=680,
                height=200,
            )
        )
    return charts


def render_html(report: dict[str, Any]) -> str:
    """The report as a self-contained HTML document (A4 print CSS, inline SVG charts)."""
    template = _TEMPLATES.get_template("xla_report.html")
    return template.render(
        report=report,
        charts={x["id"]: _charts(x, report["period"]["label"]) for x in report["xlas"]},
        indicator_text=INDICATOR_TEXT,
    )


def render(report: dict[str, Any], fmt: str) -> bytes:
    """The report in ``fmt`` (one of :data:`FORMATS`); 422 for any other format."""
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=False).encode("utf-8")
    if fmt == "csv":
        return _csv(report)
    if fmt == "html":
        return render_html(report).encode("utf-8")
    if fmt == "pdf":
        return html_to_pdf(render_html(report))
    raise UnprocessableEntity(
        f"format must be one of {', '.join(FORMATS)} (got {fmt!r})", field="format"
    )
