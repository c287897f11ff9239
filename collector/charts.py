"""Server-side SVG charts: plain data in, a self-contained ``<svg>`` string out.

Shared by the dashboard and, later, the XLA reports (HTML and PDF), so nothing here knows
about requests, templates or the database. Every chart has a title, labelled axes with
units, and is accessible: ``role="img"``, a ``<title>`` and a ``<desc>`` text alternative
that states the figures a sighted reader takes from the picture.

Charts:

- :func:`line_chart` — one or more series over categorical x labels (days), optional
  horizontal bands (e.g. the good / tolerating / frustrating score bands) and an optional
  shaded range around a series;
- :func:`sparkline` — a tiny trend line for cards (still with a text alternative);
- :func:`band_bars` — 100 % stacked horizontal bars of good / tolerating / frustrating;
- :func:`histogram` — counts per bin;
- :func:`hbar_chart` — labelled horizontal bars (top contributors).

Missing values (``None`` or NaN) leave gaps; they are never drawn as zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Final

__all__ = [
    "BAND_COLOURS",
    "PALETTE",
    "SCORE_BANDS",
    "Band",
    "Series",
    "band_bars",
    "hbar_chart",
    "histogram",
    "line_chart",
    "nice_ticks",
    "sparkline",
]

PALETTE: Final[tuple[str, ...]] = (
    "#1f5fa8",
    "#d1701c",
    "#2f8f5b",
    "#8e44ad",
    "#b8323c",
    "#138d90",
    "#6d6d6d",
    "#a67c00",
)
"""Series colours (distinguishable, readable on white and when printed)."""

BAND_COLOURS: Final[dict[str, str]] = {
    "good": "#2e7d32",
    "tolerating": "#f2a900",
    "frustrating": "#c62828",
}
"""Colours of the three score bands."""

_FONT: Final = "font-family:system-ui,Segoe UI,Helvetica,Arial,sans-serif"
_AXIS: Final = "#5b6b7b"
_GRID: Final = "#e3e8ef"


@dataclass(frozen=True)
class Band:
    """A horizontal band of the y axis (e.g. frustrating below 50), drawn behind the data."""

    low: float
    high: float
    label: str
    colour: str


SCORE_BANDS: Final[tuple[Band, ...]] = (
    Band(0.0, 50.0, "frustrating < 50", "#fbe9e7"),
    Band(50.0, 70.0, "tolerating 50\u201370", "#fff8e1"),
    Band(70.0, 100.0, "good ≥ 70", "#e8f5e9"),
)
"""The score bands of :mod:`scoring.aggregate` as chart backgrounds."""


@dataclass(frozen=True)
class Series:
    """One line: a name, one value per x label (None = no data), optionally a range."""

    name: str
    values: Sequence[float | None]
    colour: str | None = None
    low: Sequence[float | None] | None = None
    """With ``high``: a shaded range around the line (e.g. a confidence interval)."""
    high: Sequence[float | None] | None = None
    dashed: bool = False
    extra: dict[str, str] = field(default_factory=dict)


def _ok(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _fmt(value: float, unit: str = "") -> str:
    if abs(value) >= 100 or value == int(value):
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:,.1f}"
    else:
        text = f"{value:,.2f}"
    if unit and unit[0].isdigit():  # a scale such as 0-100, not a unit
        return text
    return f"{text}{(' ' + unit) if unit and unit != '%' else unit}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering ``low``\u2013``high`` (about ``count`` of them)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    end = math.ceil(high / step - 1e-9) * step
    ticks = []
    value = start
    while value <= end + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _open(width: int, height: int, title: str, desc: str, css_class: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {css_class}" role="img" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'style="{_FONT}">',
        f"<title>{escape(title)}</title>",
        f"<desc>{escape(desc)}</desc>",
    ]


def _text(
    x: float,
    y: float,
    text: str,
    *,
    size: int = 11,
    anchor: str = "start",
    colour: str = _AXIS,
    weight: str = "normal",
    rotate: float | None = None,
) -> str:
    transform = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{colour}" font-weight="{weight}"{transform}>{escape(text)}</text>'
    )


def _thin_labels(labels: Sequence[str], room: float, px_per_char: float = 6.5) -> list[int]:
    """Indexes of the x labels to print so that they do not overlap."""
    if not labels:
        return []
    widest = max(len(label) for label in labels) * px_per_char + 8
    step = max(1, math.ceil(widest / max(room, 1.0)))
    shown = list(range(0, len(labels), step))
    if shown[-1] != len(labels) - 1 and len(labels) - 1 - shown[-1] >= step / 2:
        shown.append(len(labels) - 1)
    return shown


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    y_label: str,
    unit: str = "",
    x_label: str = "day (UTC)",
    y_min: float | None = None,
    y_max: float | None = None,
    bands: Sequence[Band] = (),
    width: int = 1200,
    height: int = 300,
) -> str:
    """A line chart over categorical x labels; ``None`` values leave gaps.

    ``y_min``/``y_max`` fix the axis (e.g. 0\u2013100 for scores); otherwise it fits the data
    (from 0 for non-negative data). ``bands`` are shaded behind the lines with a legend.
    """
    values = [
        v
        for s in series
        for seq in (s.values, s.low or (), s.high or ())
        for v in seq
        if v is not None and _ok(v)
    ]
    lo = y_min if y_min is not None else min([0.0, *values]) if values else 0.0
    hi = y_max if y_max is not None else max(values) * 1.1 if values else 1.0
    if hi <= lo:
        hi = lo + 1.0
    ticks = nice_ticks(lo, hi)
    if y_min is None:
        lo = min(lo, ticks[0])
    if y_max is None:
        hi = max(hi, ticks[-1])  # the axis ends on a round tick
    ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
    left, right, top, bottom = 56, 16, 34, 58 if len(series) > 1 else 44
    plot_w, plot_h = width - left - right, height - top - bottom
    n = len(x_labels)

    def x_at(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else 0)

    def y_at(v: float) -> float:
        return top + plot_h * (1 - (v - lo) / (hi - lo))

    desc_parts = []
    for s in series:
        present = [(x_labels[i], v) for i, v in enumerate(s.values) if v is not None and _ok(v)]
        if present:
            desc_parts.append(
                f"{s.name}: from {_fmt(present[0][1], unit)} on {present[0][0]} "
                f"to {_fmt(present[-1][1], unit)} on {present[-1][0]}, "
                f"lowest {_fmt(min(v for _, v in present), unit)}, "
                f"highest {_fmt(max(v for _, v in present), unit)}"
            )
        else:
            desc_parts.append(f"{s.name}: no data")
    desc = f"{y_label} ({unit}) by {x_label}. " + "; ".join(desc_parts) + "."
    out = _open(width, height, title, desc, "line-chart")
    out.append(_text(left, 18, title, size=13, colour="#1d2733", weight="600"))
    for band in bands:
        b_lo, b_hi = max(band.low, lo), min(band.high, hi)
        if b_hi > b_lo:
            out.append(
                f'<rect x="{left}" y="{y_at(b_hi):.1f}" width="{plot_w}" '
                f'height="{y_at(b_lo) - y_at(b_hi):.1f}" fill="{band.colour}"/>'
            )
    for t in ticks:
        y = y_at(t)
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>'
        )
        out.append(_text(left - 6, y + 4, _fmt(t), anchor="end"))
    out.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="{_AXIS}"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="{_AXIS}"/>'
    )
    out.append(
        _text(14, top + plot_h / 2, f"{y_label} ({unit})", anchor="middle", rotate=-90.0)
        if unit
        else _text(14, top + plot_h / 2, y_label, anchor="middle", rotate=-90.0)
    )
    for i in _thin_labels(x_labels, plot_w / max(n, 1)):
        out.append(_text(x_at(i), top + plot_h + 15, x_labels[i], anchor="middle"))
    out.append(_text(left + plot_w / 2, top + plot_h + 31, x_label, anchor="middle"))
    for k, s in enumerate(series):
        colour = s.colour or PALETTE[k % len(PALETTE)]
        if s.low is not None and s.high is not None:
            out.extend(_range_polygons(s.low, s.high, x_at, y_at, colour))
        dash = ' stroke-dasharray="5 4"' if s.dashed else ""
        for run in _runs(s.values):
            points = " ".join(f"{x_at(i):.1f},{y_at(v):.1f}" for i, v in run)
            if len(run) > 1:
                out.append(
                    f'<polyline points="{points}" fill="none" stroke="{colour}" '
                    f'stroke-width="2.2" stroke-linejoin="round"{dash}/>'
                )
            for i, v in run:
                out.append(
                    f'<circle cx="{x_at(i):.1f}" cy="{y_at(v):.1f}" r="2.6" fill="{colour}">'
                    f"<title>{escape(s.name)} {escape(x_labels[i])}: "
                    f"{escape(_fmt(v, unit))}</title></circle>"
                )
    for band in bands:  # band names inside the plot, at its right edge
        b_lo, b_hi = max(band.low, lo), min(band.high, hi)
        if b_hi - b_lo >= (hi - lo) * 0.08:
            out.append(_text(left + plot_w - 4, y_at(b_hi) + 12, band.label, size=10, anchor="end"))
    legend = [(s.name, s.colour or PALETTE[k % len(PALETTE)]) for k, s in enumerate(series)]
    if len(legend) > 1:
        x, y = float(left), float(height - 10)
        for name, colour in legend:
            out.append(
                f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}" '
                f'stroke="{_AXIS}" stroke-width="0.5"/>'
            )
            out.append(_text(x + 14, y, name))
            x += 14 + len(name) * 6.3 + 14
    out.append("</svg>")
    return "".join(out)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    """Consecutive present values, as runs of (index, value)."""
    runs: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for i, v in enumerate(values):
        if v is not None and _ok(v):
            current.append((i, float(v)))
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return runs


def _range_polygons(
    low: Sequence[float | None],
    high: Sequence[float | None],
    x_at: object,
    y_at: object,
    colour: str,
) -> list[str]:
    assert callable(x_at) and callable(y_at)
    out = []
    pairs = [
        (i, float(a), float(b))
        for i, (a, b) in enumerate(zip(low, high, strict=True))
        if a is not None and b is not None and _ok(a) and _ok(b)
    ]
    if len(pairs) > 1:
        upper = " ".join(f"{x_at(i):.1f},{y_at(b):.1f}" for i, _, b in pairs)
        lower = " ".join(f"{x_at(i):.1f},{y_at(a):.1f}" for i, a, _ in reversed(pairs))
        out.append(f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.15"/>')
    return out


def sparkline(
    values: Sequence[float | None],
    *,
    label: str,
    unit: str = "",
    width: int = 140,
    height: int = 36,
    y_min: float | None = None,
    y_max: float | None = None,
    colour: str = PALETTE[0],
    min_span: float = 10.0,
) -> str:
    """A small trend line without axes; its text alternative gives first, last and range.

    Without ``y_min``/``y_max`` the line fits its data, over at least ``min_span`` units.
    """
    present = [float(v) for v in values if v is not None and _ok(v)]
    if present:
        desc = (
            f"{label}: {len(present)} points, from {_fmt(present[0], unit)} "
            f"to {_fmt(present[-1], unit)} (lowest {_fmt(min(present), unit)}, "
            f"highest {_fmt(max(present), unit)})."
        )
    else:
        desc = f"{label}: no data."
    out = _open(width, height, label, desc, "sparkline")
    lo = y_min if y_min is not None else min(present, default=0.0)
    hi = y_max if y_max is not None else max(present, default=1.0)
    if hi - lo < min_span:  # a flat line stays flat-looking: noise is not a trend
        mid = (hi + lo) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    n = max(len(values), 1)

    def x_at(i: int) -> float:
        return 2 + (width - 4) * (i / (n - 1) if n > 1 else 0.5)

    def y_at(v: float) -> float:
        return 3 + (height - 6) * (1 - (v - lo) / (hi - lo))

    for run in _runs(values):
        points = " ".join(f"{x_at(i):.1f},{y_at(v):.1f}" for i, v in run)
        if len(run) > 1:
            out.append(
                f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.8"/>'
            )
    last = _runs(values)[-1][-1] if present else None
    if last is not None:
        out.append(
            f'<circle cx="{x_at(last[0]):.1f}" cy="{y_at(last[1]):.1f}" r="2.4" fill="{colour}"/>'
        )
    out.append("</svg>")
    return "".join(out)


def band_bars(
    rows: Sequence[tuple[str, float | None, float | None, float | None]],
    *,
    title: str,
    width: int = 1000,
    row_height: int = 26,
) -> str:
    """100 % stacked bars of (label, share good, share tolerating, share frustrating).

    Shares are fractions (0\u20131). A row whose shares are None says "not enough data".
    """
    label_w = min(220, 20 + 7 * max((len(r[0]) for r in rows), default=4))
    left, right, top = label_w, 110, 34
    height = top + row_height * max(len(rows), 1) + 40
    plot_w = width - left - right
    parts = []
    for label, good, tol, bad in rows:
        if good is None or tol is None or bad is None:
            parts.append(f"{label}: not enough data")
        else:
            parts.append(f"{label}: {good:.0%} good, {tol:.0%} tolerating, {bad:.0%} frustrating")
    desc = "Share of devices per score band (percent of scored devices). " + "; ".join(parts)
    out = _open(width, height, title, desc, "band-bars")
    out.append(_text(8, 18, title, size=13, colour="#1d2733", weight="600"))
    for k, (label, good, tol, bad) in enumerate(rows):
        y = top + k * row_height
        out.append(_text(left - 8, y + row_height / 2 + 4, label, anchor="end", colour="#1d2733"))
        if good is None or tol is None or bad is None:
            out.append(
                f'<rect x="{left}" y="{y + 4}" width="{plot_w}" height="{row_height - 8}" '
                f'fill="#f0f2f5"/>'
            )
            out.append(_text(left + 8, y + row_height / 2 + 4, "not enough data"))
            continue
        x = float(left)
        for name, share in (("good", good), ("tolerating", tol), ("frustrating", bad)):
            w = plot_w * max(share, 0.0)
            if w > 0:
                out.append(
                    f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_height - 8}" '
                    f'fill="{BAND_COLOURS[name]}"><title>{escape(label)}: {share:.0%} '
                    f"{name}</title></rect>"
                )
                if w > 34:
                    out.append(
                        _text(
                            x + w / 2,
                            y + row_height / 2 + 4,
                            f"{share:.0%}",
                            anchor="middle",
                            colour="#fff" if name != "tolerating" else "#1d2733",
                        )
                    )
            x += w
        out.append(_text(left + plot_w + 6, y + row_height / 2 + 4, f"{bad:.0%} fr."))
    y = top + row_height * max(len(rows), 1) + 22
    x = float(left)
    for name, text in (
        ("good", "good ≥ 70"),
        ("tolerating", "tolerating 50\u201370"),
        ("frustrating", "frustrating < 50"),
    ):
        out.append(
            f'<rect x="{x:.1f}" y="{y - 9}" width="10" height="10" fill="{BAND_COLOURS[name]}"/>'
        )
        out.append(_text(x + 14, y, text))
        x += 14 + len(text) * 6.3 + 16
    out.append("</svg>")
    return "".join(out)


def histogram(
    bins: Sequence[tuple[float, float, int]],
    *,
    title: str,
    x_label: str,
    unit: str = "",
    y_label: str = "devices",
    colour_of: dict[str, str] | None = None,
    width: int = 720,
    height: int = 240,
) -> str:
    """Counts per bin ``(low, high, count)``; bins are drawn in the order given.

    With the score bands (``colour_of=None`` and bins inside 0\u2013100) each bar takes the
    colour of its band, so the distribution reads against good / tolerating / frustrating.
    """
    left, right, top, bottom = 56, 16, 34, 48
    plot_w, plot_h = width - left - right, height - top - bottom
    top_count = max((c for _, _, c in bins), default=0)
    ticks = nice_ticks(0, max(top_count, 1), 4)
    hi = max(ticks[-1], 1.0)
    total = sum(c for _, _, c in bins)
    parts = [f"{_fmt(a)}\u2013{_fmt(b)} {unit}: {c}" for a, b, c in bins if c]
    desc = f"{y_label} per {x_label} bin ({total} in all). " + "; ".join(parts)
    out = _open(width, height, title, desc, "histogram")
    out.append(_text(left, 18, title, size=13, colour="#1d2733", weight="600"))
    for t in ticks:
        y = top + plot_h * (1 - t / hi)
        out.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="{_GRID}"/>'
        )
        out.append(_text(left - 6, y + 4, _fmt(t), anchor="end"))
    n = max(len(bins), 1)
    bar_w = plot_w / n
    for k, (a, b, count) in enumerate(bins):
        h = plot_h * count / hi
        x = left + k * bar_w
        mid = (a + b) / 2
        if colour_of is not None:
            colour = colour_of.get(f"{a}-{b}", PALETTE[0])
        elif mid < 50:
            colour = BAND_COLOURS["frustrating"]
        elif mid < 70:
            colour = BAND_COLOURS["tolerating"]
        else:
            colour = BAND_COLOURS["good"]
        out.append(
            f'<rect x="{x + 1:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w - 2:.1f}" '
            f'height="{h:.1f}" fill="{colour}"><title>{_fmt(a)}\u2013{_fmt(b)} {escape(unit)}: '
            f"{count} {escape(y_label)}</title></rect>"
        )
        if k % max(1, math.ceil(n / 10)) == 0:
            out.append(_text(x, top + plot_h + 15, _fmt(a), anchor="middle"))
    if bins:
        out.append(_text(left + plot_w, top + plot_h + 15, _fmt(bins[-1][1]), anchor="middle"))
    out.append(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="{_AXIS}"/>'
    )
    axis = f"{x_label} ({unit})" if unit else x_label
    out.append(_text(left + plot_w / 2, top + plot_h + 33, axis, anchor="middle"))
    out.append(_text(14, top + plot_h / 2, y_label, anchor="middle", rotate=-90.0))
    out.append("</svg>")
    return "".join(out)


def hbar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    unit: str,
    width: int = 460,
    row_height: int = 24,
    colour: str = PALETTE[0],
    links: Sequence[str | None] | None = None,
) -> str:
    """Horizontal bars of (label, value), in the order given, each labelled with its value.

    ``links`` (parallel to ``items``) makes a label a link (``<a href>``) in HTML output.
    """
    label_w = min(200, 16 + 7 * max((len(label) for label, _ in items), default=4))
    left, right, top = label_w, 90, 30
    height = top + row_height * max(len(items), 1) + 8
    plot_w = width - left - right
    hi = max((v for _, v in items), default=0.0) or 1.0
    desc = f"{title} ({unit}). " + "; ".join(f"{label}: {_fmt(v, unit)}" for label, v in items)
    out = _open(width, height, title, desc, "hbar-chart")
    out.append(_text(8, 18, title, size=13, colour="#1d2733", weight="600"))
    if not items:
        out.append(_text(left, top + 16, "no data"))
    for k, (label, value) in enumerate(items):
        y = top + k * row_height
        text = _text(left - 8, y + row_height / 2 + 4, label, anchor="end", colour="#1d2733")
        href = links[k] if links is not None and k < len(links) else None
        if href:
            text = f'<a href="{escape(href)}">{text}</a>'
        out.append(text)
        w = plot_w * max(value, 0.0) / hi
        out.append(
            f'<rect x="{left}" y="{y + 4}" width="{w:.1f}" height="{row_height - 8}" '
            f'fill="{colour}"><title>{escape(label)}: {escape(_fmt(value, unit))}</title></rect>'
        )
        out.append(_text(left + w + 6, y + row_height / 2 + 4, _fmt(value, unit)))
    out.append("</svg>")
    return "".join(out)
