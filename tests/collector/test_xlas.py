"""XLAs end to end: definitions as code, evaluation of a simulated month, the client report.

A real collector process on each backend; a simulated fleet of last month uploaded through
the public API, its tickets imported, the jobs run as a real process. Every figure of the
report is checked against an independent computation in this file: from the database's
rollups with plain SQL and Python, from the simulator's own batch files (survey answers)
and from its ``tickets.csv`` (SLA). The PDF is opened with Debian's poppler-utils and its
first page rendered to PNG as a test artefact (``test-artifacts/xla/``).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from collector.settings import normalise_database_url
from dexscope.wire import SURVEY_SCALES
from tests.support import CollectorProcess, Tenant, create_tenant, run_cli

DEVICES = 30
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "xla"


def _last_month(today: date) -> tuple[str, date, date]:
    first_this = today.replace(day=1)
    end = first_this - timedelta(days=1)
    return f"{end.year:04d}-{end.month:02d}", end.replace(day=1), end


NOW = datetime.now(UTC)
PERIOD, START, END = _last_month(NOW.date())
END_TS = datetime(END.year, END.month, END.day, tzinfo=UTC) + timedelta(days=1)
AS_OF = max(NOW, END_TS + timedelta(days=3))
"""Past the period's two grace days, so its evaluation is final."""

XLAS_YAML = """
xlas:
  - name: Experience score
    description: Every employee can work without friction.
    indicator: experience_score
    target: {{comparison: ">=", value: 70, share_of_devices_pct: 80}}
    sla: {{resolve_within_h: 8, resolve_target_pct: 80}}
  - name: Hard experience target
    indicator: experience_score
    target: {{comparison: ">=", value: 99.5, share_of_devices_pct: 100}}
  - name: Boot good-share
    indicator: metric_good_share
    metric: boot
    target: {{value: 60}}
  - name: Sentiment
    indicator: sentiment
    min_coverage_pct: 1
    min_responses: 1
    min_devices: 1
    target: {{value: 60}}
  - name: Time lost
    indicator: time_lost_min
    target: {{comparison: "<=", value: 15, share_of_devices_pct: 90}}
    exclusions:
      maintenance_windows:
        - {{start: "{mw_start}", end: "{mw_end}", reason: patch night}}
""".format(
    mw_start=f"{START + timedelta(days=9)}T20:00:00Z",
    mw_end=f"{START + timedelta(days=10)}T06:00:00Z",
)


@dataclass
class World:
    """The collector, its tenants and callers, and the simulation's files."""

    collector: CollectorProcess
    tenant: Tenant
    other: Tenant
    msp_key: str
    viewer_key: str
    fleet: Path
    engine: sa.Engine


@pytest.fixture(scope="module")
def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Last month simulated, uploaded, ticketed, scored; XLAs defined and evaluated."""
    log = tmp_path_factory.mktemp("logs") / "collector.log"
    env = {"DEXSCOPE_MAX_EVENT_AGE_DAYS": "75"}
    with CollectorProcess(module_database_url, log, extra_env=env) as proc:
        tenant = create_tenant(proc.database_url, f"Acme {uuid.uuid4().hex[:6]}")
        other = create_tenant(proc.database_url, f"Globex {uuid.uuid4().hex[:6]}")
        fleet = tmp_path_factory.mktemp("fleet")
        run_cli(
            "simulate",
            "--devices",
            str(DEVICES),
            "--days",
            str((END - START).days + 1),
            "--seed",
            "11",
            "--end",
            END_TS.isoformat(),
            "--out",
            str(fleet),
            "--server",
            proc.url,
            "--enroll-token",
            tenant.enrollment_token,
            "--workers",
            "2",
            timeout=600,
        )
        imported = httpx.post(
            proc.url + "/api/v1/tickets/import",
            content=(fleet / "tickets.csv").read_bytes(),
            headers={
                "Authorization": f"Bearer {tenant.api_key}",
                "Content-Type": "text/csv",
            },
            timeout=60,
        )
        assert imported.status_code == 200, imported.text
        msp_key = json.loads(
            run_cli(
                "admin",
                "create-api-key",
                "--role",
                "admin",
                "--database-url",
                proc.database_url,
                "--json",
            ).stdout
        )["api_key"]
        viewer_key = json.loads(
            run_cli(
                "admin",
                "create-api-key",
                "--role",
                "viewer",
                "--tenant",
                tenant.tenant_id,
                "--database-url",
                proc.database_url,
                "--json",
            ).stdout
        )["api_key"]
        saved = httpx.post(
            proc.url + "/api/v1/xlas",
            content=XLAS_YAML.encode(),
            headers={
                "Authorization": f"Bearer {tenant.api_key}",
                "Content-Type": "application/yaml",
            },
            timeout=30,
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["created"] == 5
        _jobs(proc.database_url, AS_OF)
        engine = sa.create_engine(normalise_database_url(proc.database_url))
        try:
            yield World(proc, tenant, other, msp_key, viewer_key, fleet, engine)
        finally:
            engine.dispose()


def _jobs(database_url: str, as_of: datetime) -> dict[str, Any]:
    out = run_cli(
        "collector",
        "jobs",
        "--once",
        "--as-of",
        as_of.isoformat(),
        "--database-url",
        database_url,
        env={"DEXSCOPE_MAX_EVENT_AGE_DAYS": "75"},
        timeout=600,
    )
    summary: dict[str, Any] = json.loads(out.stdout)
    assert summary["jobs"]["scores"]["ok"] and summary["jobs"]["xla"]["ok"], summary
    return summary


def _get(world: World, path: str, key: str | None = None, **params: Any) -> httpx.Response:
    return httpx.get(
        world.collector.url + path,
        params=params,
        headers={"Authorization": f"Bearer {key or world.tenant.api_key}"},
        timeout=120,
    )


def _report(world: World, fmt: str = "json", key: str | None = None) -> httpx.Response:
    return _get(world, "/api/v1/reports/xla", key, period=PERIOD, format=fmt)


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {x["name"]: x for x in report["xlas"]}


# --- independent computations ---------------------------------------------------------------


def _rollups(world: World) -> list[Any]:
    with world.engine.connect() as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT device_id, day, score, metrics, time_lost_min FROM device_day_scores"
                    " WHERE tenant_id = :t AND day >= :s AND day <= :e"
                ),
                {"t": uuid.UUID(world.tenant.tenant_id).hex, "s": START, "e": END}
                if world.engine.dialect.name == "sqlite"
                else {"t": world.tenant.tenant_id, "s": START, "e": END},
            )
        )


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _per_device(rows: list[Any], pick: Any, skip_days: set[date]) -> dict[Any, float]:
    values: dict[Any, list[float]] = defaultdict(list)
    for row in rows:
        if _as_date(row[1]) in skip_days:
            continue
        v = pick(row)
        if v is not None:
            values[row[0]].append(float(v))
    return {d: sum(v) / len(v) for d, v in values.items() if v}


def _metrics(row: Any) -> dict[str, Any]:
    raw = row[3]
    return raw if isinstance(raw, dict) else json.loads(raw)


def test_a_month_is_evaluated_final_and_its_figures_match_an_independent_count(
    world: World,
) -> None:
    """Score share, good-share, time lost with a maintenance window: recomputed here."""
    report = _report(world).json()
    assert report["period"] == {
        "label": PERIOD,
        "kind": "month",
        "start": START.isoformat(),
        "end": END.isoformat(),
    }
    assert report["final"] is True
    xlas = _by_name(report)
    rows = _rollups(world)
    devices = {r[0] for r in rows}
    assert len(devices) == DEVICES

    score = _per_device(rows, lambda r: r[2], set())
    share = 100.0 * sum(v >= 70 for v in score.values()) / len(score)
    x = xlas["Experience score"]
    assert x["value"] == pytest.approx(share, abs=1e-3)
    assert x["figures"]["coverage"]["devices_counted"] == len(score)
    assert x["figures"]["coverage"]["devices_in_scope"] == DEVICES
    assert x["figures"]["mean_value"] == pytest.approx(sum(score.values()) / len(score), abs=1e-3)
    assert x["status"] == ("met" if share >= 80 else "missed")
    assert x["margin"] == pytest.approx(share - 80, abs=1e-3)

    hard = xlas["Hard experience target"]
    assert hard["status"] == "missed" and hard["margin"] < 0

    good = _per_device(
        rows,
        lambda r: (
            None
            if _metrics(r).get("boot") is None
            else (100.0 if _metrics(r)["boot"] >= 85 else 0.0)
        ),
        set(),
    )
    boot = xlas["Boot good-share"]
    assert boot["value"] == pytest.approx(sum(good.values()) / len(good), abs=1e-3)
    assert boot["figures"]["coverage"]["devices_counted"] == len(good)

    window = {START + timedelta(days=9), START + timedelta(days=10)}
    lost = _per_device(rows, lambda r: r[4], window)
    lost_share = 100.0 * sum(v <= 15 for v in lost.values()) / len(lost)
    t = xlas["Time lost"]
    assert t["value"] == pytest.approx(lost_share, abs=1e-3)
    assert t["figures"]["coverage"]["days_excluded"] == sorted(d.isoformat() for d in window)
    assert t["figures"]["coverage"]["days_evaluated"] == (END - START).days + 1 - 2


def test_sentiment_counts_only_the_answers_given_in_the_period(world: World) -> None:
    """From the simulator's own batch files: answers of the month, on 0-100, per device."""
    per_device: dict[str, list[float]] = defaultdict(list)
    for path in sorted((world.fleet / "batches").glob("*.json*")):
        raw = path.read_bytes()
        batch = json.loads(gzip.decompress(raw) if path.suffix == ".gz" else raw)
        for event in batch["events"]:
            if event["type"] != "survey_response" or event.get("outcome") != "answered":
                continue
            ts = datetime.fromisoformat(event["ts"].replace("Z", "+00:00"))
            if not START <= ts.date() <= END or "value" not in event:
                continue
            lo, hi = SURVEY_SCALES[event["question_type"]]
            per_device[batch["device_id"]].append(100.0 * (event["value"] - lo) / (hi - lo))
    answers = sum(len(v) for v in per_device.values())
    assert answers > 0, "the simulated month has no survey answers to check against"
    means = [sum(v) / len(v) for v in per_device.values()]
    x = _by_name(_report(world).json())["Sentiment"]
    assert x["figures"]["coverage"]["responses"] == answers
    assert x["figures"]["coverage"]["devices_counted"] == len(per_device)
    assert x["value"] == pytest.approx(sum(means) / len(means), abs=1e-3)
    assert "none carried over" in x["figures"]["computed_from"]


def test_sla_figures_come_from_the_tickets_and_show_the_watermelon_view(world: World) -> None:
    """Resolved-within-8-h share, median and FCR recomputed from tickets.csv."""
    hours, fcr = [], []
    with (world.fleet / "tickets.csv").open() as handle:
        for ticket in csv.DictReader(handle):
            opened = datetime.fromisoformat(ticket["opened_at"].replace("Z", "+00:00"))
            if not START <= opened.date() <= END:
                continue
            resolved = datetime.fromisoformat(ticket["resolved_at"].replace("Z", "+00:00"))
            hours.append((resolved - opened).total_seconds() / 3600)
            fcr.append(ticket["first_contact_resolution"] == "true")
    assert hours, "the simulated month raised no ticket"
    xlas = _by_name(_report(world).json())
    sla = xlas["Experience score"]["figures"]["sla"]
    within = 100.0 * sum(h <= 8 for h in hours) / len(hours)
    assert sla["tickets"] == len(hours) and sla["resolved"] == len(hours)
    assert sla["within_target_pct"] == pytest.approx(within, abs=1e-3)
    assert sla["median_resolve_h"] == pytest.approx(statistics.median(hours), abs=1e-3)
    assert sla["fcr_pct"] == pytest.approx(100.0 * sum(fcr) / len(fcr), abs=1e-3)
    assert sla["status"] == ("met" if within >= 80 else "missed")
    assert sla["target"]["source"] == "definition"
    hard = xlas["Hard experience target"]
    expected = {"met": "watermelon", "missed": "red"}.get(hard["figures"]["sla"]["status"])
    assert hard["figures"]["watermelon"] == (expected or "unknown")


def test_every_format_says_the_same_and_a_regeneration_gives_the_same_figures(
    world: World, tmp_path: Path
) -> None:
    """JSON twice, CSV from the API and from the CLI, HTML; later jobs and a new definition
    version do not change a final period."""
    first = _report(world).json()
    table = list(csv.DictReader(io.StringIO(_report(world, "csv").text)))
    assert [r["xla"] for r in table] == [x["name"] for x in first["xlas"]]
    for row, x in zip(table, first["xlas"], strict=True):
        assert float(row["value"]) == pytest.approx(x["value"])
        assert row["status"] == x["status"] and int(row["version"]) == x["version"]
    html = _report(world, "html")
    assert html.headers["content-type"].startswith("text/html")
    assert first["tenant"]["name"] in html.text and "Experience score" in html.text

    changed = httpx.post(
        world.collector.url + "/api/v1/xlas",
        json={
            "name": "Experience score",
            "indicator": "experience_score",
            "target": {"comparison": ">=", "value": 60, "share_of_devices_pct": 50},
        },
        headers={"Authorization": f"Bearer {world.tenant.api_key}"},
    )
    assert changed.status_code == 200 and changed.json()["versioned"] == 1
    _jobs(world.collector.database_url, AS_OF + timedelta(hours=5))
    again = _report(world).json()
    assert again["xlas"] == first["xlas"]
    assert _by_name(again)["Experience score"]["version"] == 1

    out = tmp_path / "report.csv"
    run_cli(
        "report",
        "xla",
        "--database-url",
        world.collector.database_url,
        "--tenant",
        world.tenant.tenant_id,
        "--period",
        PERIOD,
        "--format",
        "csv",
        "--out",
        str(out),
    )
    assert out.read_bytes() == _report(world, "csv").content


def _poppler(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} (Debian's poppler-utils) is not installed"
        if CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def test_the_pdf_is_a4_with_page_numbers_and_the_key_figures(world: World) -> None:
    """pdfinfo, pdftotext and pdftoppm on the real PDF; page 1 kept as a PNG artefact."""
    response = _report(world, "pdf")
    assert response.status_code == 200, response.text[:500]
    assert response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    backend = world.engine.dialect.name
    pdf = ARTIFACTS / f"xla-report-{PERIOD}-{backend}.pdf"
    pdf.write_bytes(response.content)
    info = subprocess.run(
        [_poppler("pdfinfo"), str(pdf)], capture_output=True, text=True, check=True
    ).stdout
    assert "(A4)" in info
    pages = int(next(line for line in info.splitlines() if line.startswith("Pages:")).split()[1])
    text = subprocess.run(
        [_poppler("pdftotext"), "-layout", str(pdf), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    report = _report(world).json()
    assert report["tenant"]["name"] in text and PERIOD in text
    assert f"Page 1 of {pages}" in text and f"Page {pages} of {pages}" in text
    for x in report["xlas"]:
        assert x["name"] in text
        assert f"{x['value']:,.1f}" in text, f"{x['name']}: {x['value']:.1f} not in the PDF"
    subprocess.run(
        [
            _poppler("pdftoppm"),
            "-png",
            "-r",
            "80",
            "-f",
            "1",
            "-l",
            "1",
            "-singlefile",
            str(pdf),
            str(ARTIFACTS / f"xla-report-{PERIOD}-{backend}-page1"),
        ],
        check=True,
    )
    assert (ARTIFACTS / f"xla-report-{PERIOD}-{backend}-page1.png").stat().st_size > 10_000


def test_definitions_in_toml_and_json_are_versioned_and_bad_ones_named(world: World) -> None:
    """TOML file import, an unchanged re-send, and 422/415/403 with the exact field."""
    url = world.collector.url + "/api/v1/xlas"
    admin = {"Authorization": f"Bearer {world.tenant.api_key}"}
    toml = b"""
[[xlas]]
name = "Stability"
indicator = "stability"
period = "week"
target = { comparison = ">=", value = 80 }
"""
    made = httpx.post(url, content=toml, headers={**admin, "Content-Type": "application/toml"})
    assert made.status_code == 200 and made.json()["created"] == 1, made.text
    same = httpx.post(url, content=toml, headers={**admin, "Content-Type": "application/toml"})
    assert same.json()["unchanged"] == 1
    iso = (START + timedelta(days=10)).isocalendar()
    week = f"{iso.year:04d}-W{iso.week:02d}"
    weekly = _get(world, "/api/v1/reports/xla", period=week).json()
    assert weekly["period"]["kind"] == "week" and weekly["period"]["label"] == week
    assert [x["name"] for x in weekly["xlas"]] == ["Stability"]
    assert weekly["xlas"][0]["figures"]["coverage"]["days_in_period"] == 7

    def error(body: bytes, content_type: str = "application/json", key: str = "") -> Any:
        headers = {"Authorization": f"Bearer {key or world.tenant.api_key}"}
        return httpx.post(url, content=body, headers={**headers, "Content-Type": content_type})

    bad = error(b"xlas: [name: x", "application/yaml")
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "malformed_yaml"
    no_metric = error(
        json.dumps(
            {"name": "m", "indicator": "metric_good_share", "target": {"value": 50}}
        ).encode()
    )
    assert no_metric.status_code == 422 and no_metric.json()["error"]["field"] == "metric"
    in_file = error(
        json.dumps(
            {"xlas": [{"name": "ok", "indicator": "stability", "target": {"value": 500}}]}
        ).encode()
    )
    assert in_file.status_code == 422
    assert in_file.json()["error"]["field"] == "xlas[0].target.value"
    unknown = error(b'{"name": "u", "indicator": "stability", "target": {"value": 5}, "x": 1}')
    assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "x"
    assert error(b"name: x", "text/plain").status_code == 415
    viewer = error(
        b'{"name": "v", "indicator": "stability", "target": {"value": 5}}', key=world.viewer_key
    )
    assert viewer.status_code == 403
    names = {x["name"] for x in _get(world, "/api/v1/xlas").json()["items"]}
    assert {"Stability", "Experience score"} <= names and not {"m", "ok", "u", "v"} & names


def test_evaluations_route_and_tenant_isolation_of_the_report(world: World) -> None:
    """The evaluations of an XLA; a viewer sees its own report, not another tenant's."""
    xla = next(x for x in _get(world, "/api/v1/xlas").json()["items"] if x["name"] == "Time lost")
    evaluations = _get(world, f"/api/v1/xlas/{xla['id']}/evaluations").json()["items"]
    assert PERIOD in {e["period"] for e in evaluations}
    assert _report(world, key=world.viewer_key).status_code == 200
    other = _get(
        world, "/api/v1/reports/xla", world.viewer_key, tenant=world.other.tenant_id, period=PERIOD
    )
    assert other.status_code == 404
    assert _get(world, f"/api/v1/xlas/{xla['id']}", world.other.api_key).status_code == 404
    future = _get(world, "/api/v1/reports/xla", period=f"{NOW.year + 1}-01")
    assert future.status_code == 422 and future.json()["error"]["field"] == "period"


def test_msp_overview_is_for_msp_staff_and_lists_every_tenant(world: World) -> None:
    """All tenants with their XLA counts; a tenant's own admin gets 403."""
    overview = _get(world, "/api/v1/msp/overview", world.msp_key)
    assert overview.status_code == 200, overview.text
    rows = {r["tenant_id"]: r for r in overview.json()["tenants"]}
    mine = rows[world.tenant.tenant_id]
    assert mine["devices"] == DEVICES and mine["xlas"] >= 5
    assert mine["missed"] >= 1 and mine["met"] + mine["missed"] + mine["insufficient"] >= 5
    assert rows[world.other.tenant_id]["xlas"] == 0
    assert _get(world, "/api/v1/msp/overview").status_code == 403
    assert _get(world, "/api/v1/msp/overview", world.viewer_key).status_code == 403


def test_without_chromium_the_pdf_is_a_clear_503_and_other_formats_work(
    world: World, tmp_path: Path
) -> None:
    """A second collector on the same database, its Chromium missing."""
    env = {"DEXSCOPE_CHROMIUM": str(tmp_path / "no-chromium"), "DEXSCOPE_MAX_EVENT_AGE_DAYS": "75"}
    with CollectorProcess(
        world.collector.database_url, tmp_path / "collector.log", extra_env=env
    ) as proc:
        headers = {"Authorization": f"Bearer {world.tenant.api_key}"}
        url = proc.url + "/api/v1/reports/xla"
        pdf = httpx.get(url, params={"period": PERIOD, "format": "pdf"}, headers=headers)
        assert pdf.status_code == 503
        error = pdf.json()["error"]
        assert error["code"] == "pdf_unavailable" and "Chromium" in error["message"]
        ok = httpx.get(url, params={"period": PERIOD, "format": "csv"}, headers=headers)
        assert ok.status_code == 200 and ok.text.startswith("tenant,period,xla")
