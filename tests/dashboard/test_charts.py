"""The SVG chart module: well-formed, labelled, accessible, honest about missing data."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from collector import charts

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    return root


def _texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def test_line_chart_is_titled_labelled_and_describes_its_data() -> None:
    values = [71.0, 64.5, None, 58.0, 62.25]
    svg = charts.line_chart(
        ["Mon", "Tue", "Wed", "Thu", "Fri"],
        [charts.Series("fleet", values), charts.Series("developer", [80.0] * 5, dashed=True)],
        title="Score per day",
        y_label="score",
        unit="0-100",
        y_min=0,
        y_max=100,
        bands=charts.SCORE_BANDS,
    )
    root = _parse(svg)
    assert root.find(f"{SVG}title").text == "Score per day"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    present = [v for v in values if v is not None]
    assert f"lowest {min(present):.0f}," in desc and f"highest {max(present):.0f};" in desc
    assert "fleet: from 71 on Mon to 62.2 on Fri" in desc
    texts = _texts(root)
    assert "score (0-100)" in texts and "day (UTC)" in texts
    assert {"Mon", "Fri"} <= set(texts)
    # the gap on Wednesday splits the fleet line in two runs: never drawn as zero
    fleet_lines = [p for p in root.iter(f"{SVG}polyline") if p.get("stroke") == charts.PALETTE[0]]
    assert len(fleet_lines) == 2
    assert len(list(root.iter(f"{SVG}circle"))) == len(present) + 5
    ticks = [float(t.replace(",", "")) for t in texts if t.replace(",", "").isdigit()]
    assert min(ticks) == 0 and max(ticks) == 100
    assert any("good" in t for t in texts)  # the bands are named on the plot


def test_line_chart_fits_the_data_when_no_range_is_given() -> None:
    svg = charts.line_chart(
        ["a", "b"],
        [charts.Series("hangs", [3.0, 12.0], low=[1.0, 9.0], high=[5.0, 15.0])],
        title="Hangs",
        y_label="events",
        unit="count",
    )
    root = _parse(svg)
    ticks = [float(t) for t in _texts(root) if t.replace(".", "").isdigit()]
    assert max(ticks) >= 15.0 and min(ticks) == 0.0
    assert len(list(root.iter(f"{SVG}polygon"))) == 1  # the shaded range


def test_sparkline_states_first_last_and_range_or_no_data() -> None:
    root = _parse(charts.sparkline([50.0, None, 70.0, 65.0], label="trend"))
    desc = root.find(f"{SVG}desc").text or ""  # type: ignore[union-attr]
    assert "3 points" in desc and "from 50" in desc and "to 65" in desc
    empty = _parse(charts.sparkline([None, None], label="trend"))
    assert empty.find(f"{SVG}desc").text == "trend: no data."  # type: ignore[union-attr]
    assert not list(empty.iter(f"{SVG}polyline"))


def test_band_bars_show_shares_and_say_not_enough_data() -> None:
    svg = charts.band_bars(
        [("developer", 0.6, 0.3, 0.1), ("executive", None, None, None)],
        title="Bands",
    )
    root = _parse(svg)
    texts = _texts(root)
    assert "60%" in texts and "30%" in texts and "not enough data" in texts
    widths = [
        float(r.get("width") or 0)
        for r in root.iter(f"{SVG}rect")
        if r.get("fill") in charts.BAND_COLOURS.values() and r.find(f"{SVG}title") is not None
    ]
    assert len(widths) == 3
    assert widths[0] == pytest.approx(2 * widths[1], rel=1e-3)


def test_histogram_has_one_bar_per_bin_coloured_by_band() -> None:
    bins = [(float(b), float(b + 10), n) for b, n in zip(range(0, 100, 10), range(10), strict=True)]
    root = _parse(charts.histogram(bins, title="Scores", x_label="device score", unit="0-100"))
    bars = [r for r in root.iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
    assert len(bars) == len(bins)
    assert bars[0].get("fill") == charts.BAND_COLOURS["frustrating"]
    assert bars[5].get("fill") == charts.BAND_COLOURS["tolerating"]
    assert bars[-1].get("fill") == charts.BAND_COLOURS["good"]
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights == sorted(heights)
    assert f"({sum(n for *_, n in bins)} in all)" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]


def test_hbar_chart_escapes_labels_links_and_labels_values() -> None:
    svg = charts.hbar_chart(
        [("<script>x</script>", 12.5), ("teams.exe", 5.0)],
        title="Time lost",
        unit="min",
        links=["/apps/a?x=1&y=2", None],
    )
    assert "<script>" not in svg
    root = _parse(svg)
    links = list(root.iter(f"{SVG}a"))
    assert [a.get("href") for a in links] == ["/apps/a?x=1&y=2"]
    assert "12.5 min" in _texts(root) and "5 min" in _texts(root)


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    for low, high in ((0, 100), (0, 7.3), (12, 13), (0, 12345)):
        ticks = charts.nice_ticks(low, high)
        assert ticks[0] <= low and ticks[-1] >= high - 1e-9
        steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
        assert len(steps) == 1
