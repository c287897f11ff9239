"""The XLAs page, its client-report links and the MSP overview in a real browser.

Seeds the shared demo fleet (see ``conftest.py``) with XLAs over the API: two for Acme
(one met, one that cannot be met) and one for Globex (one device: not enough data), and
has them evaluated on demand by the JSON report route for the month holding the fleet's
newest scored day and the month before. No job runs, so nothing else of the shared fleet
(scores, alerts) changes. An MSP-wide admin (bound to no tenant) is created for the
pages that span tenants. Screenshots land in ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
import sqlalchemy as sa

from collector.alerts.models import Alert
from collector.scores.models import DeviceDayScore
from collector.xlas.periods import period_containing
from tests.dashboard import test_browser
from tests.dashboard.conftest import PASSWORD, Fleet
from tests.support import run_cli

pytestmark = pytest.mark.e2e

# Chromium and a fresh context per test, and the helpers, from test_browser.py
browser = test_browser.browser
page = test_browser.page
_sign_in = test_browser._sign_in
_shot = test_browser._shot
_cookie = test_browser._cookie

MSP_EMAIL = "msp-admin@dexscope.test"
MET = "Acme score at least 1"
MISSED = "Acme score at least 99 everywhere"
OTHER = "Globex score at least 70"


@dataclass
class Seed:
    """What the seed evaluated."""

    period: str
    """The month the XLAs page shows: the latest final one, else the running one. Which
    it is depends on today's date (a month turns final :data:`GRACE_DAYS` after its end)."""


def _latest_day(database_url: str, tenant_id: str) -> date:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            day = conn.execute(
                sa.select(sa.func.max(DeviceDayScore.day)).where(
                    DeviceDayScore.tenant_id == uuid.UUID(tenant_id)
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert day is not None, "the fleet has no scored day"
    return date.fromisoformat(str(day))


def _open_alerts(database_url: str, tenant_id: str) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            count = conn.execute(
                sa.select(sa.func.count())
                .select_from(Alert)
                .where(Alert.tenant_id == uuid.UUID(tenant_id), Alert.status == "open")
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def _define(fleet: Fleet, api_key: str, body: dict[str, Any]) -> None:
    response = httpx.post(
        f"{fleet.url}/api/v1/xlas",
        headers={"Authorization": f"Bearer {api_key}"},
        json=body,
        timeout=30,
    )
    assert response.status_code == 200, response.text


def _report(fleet: Fleet, api_key: str, period: str) -> dict[str, Any]:
    response = httpx.get(
        f"{fleet.url}/api/v1/reports/xla",
        headers={"Authorization": f"Bearer {api_key}"},
        params={"period": period, "format": "json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


@pytest.fixture(scope="module")
def seed(fleet: Fleet) -> Seed:
    """Three XLAs, evaluated for the fleet's newest month and the one before; an MSP admin."""
    run_cli(
        "admin",
        "create-user",
        MSP_EMAIL,
        "--role",
        "admin",
        "--database-url",
        fleet.database_url,
        "--password-stdin",
        input_text=PASSWORD + "\n",
    )
    score = {"indicator": "experience_score", "period": "month"}
    _define(
        fleet,
        fleet.tenant.api_key,
        {"name": MET, **score, "target": {"value": 1, "share_of_devices_pct": 50}},
    )
    _define(
        fleet,
        fleet.tenant.api_key,
        {"name": MISSED, **score, "target": {"value": 99, "share_of_devices_pct": 100}},
    )
    _define(
        fleet,
        fleet.other.api_key,
        {"name": OTHER, **score, "target": {"value": 70, "share_of_devices_pct": 80}},
    )
    current = period_containing("month", _latest_day(fleet.database_url, fleet.tenant.tenant_id))
    previous = current.previous()
    for label in (previous.label, current.label):  # oldest first: the trend sees its past
        _report(fleet, fleet.tenant.api_key, label)
        _report(fleet, fleet.other.api_key, label)
    # the page shows the latest final month: the previous one once its grace days passed
    shown = previous if _report(fleet, fleet.tenant.api_key, previous.label)["final"] else current
    acme = _report(fleet, fleet.tenant.api_key, shown.label)
    assert {x["name"]: x["status"] for x in acme["xlas"]} == {MET: "met", MISSED: "missed"}
    globex = _report(fleet, fleet.other.api_key, shown.label)
    assert {x["name"]: x["status"] for x in globex["xlas"]} == {OTHER: "insufficient_data"}
    return Seed(period=shown.label)


def _xla_statuses(page: Any) -> dict[str, str]:
    rows = page.locator("[data-table=xlas] tbody tr")
    return {
        rows.nth(k).locator("td:nth-child(1)").inner_text(): rows.nth(k)
        .locator("td:nth-child(4)")
        .inner_text()
        for k in range(rows.count())
    }


def _tenant_row(page: Any, name: str) -> dict[str, str]:
    headers = page.locator("[data-table=tenants] thead th").all_inner_texts()
    row = page.locator("[data-table=tenants] tbody tr").filter(has_text=name)
    assert row.count() == 1, name
    cells = row.locator("td").all_inner_texts()
    return {h.rstrip(" ▲▼").strip(): c.strip() for h, c in zip(headers, cells, strict=True)}


def test_an_msp_admin_sees_every_xla_and_its_reports(
    page: Any, fleet: Fleet, seed: Seed, artifacts: Path
) -> None:
    """The MSP admin's XLAs page lists every tenant's XLAs with their status and links to
    the client report, whose HTML names the tenant and its XLAs and whose PDF is a PDF."""
    _sign_in(page, fleet, MSP_EMAIL)
    page.click("nav a:text-is('XLAs')")
    assert urlparse(page.url).path == "/xlas"
    assert _xla_statuses(page) == {MET: "met", MISSED: "missed", OTHER: "insufficient data"}
    tenants = page.locator("[data-table=xlas] tbody td:nth-child(2)").all_inner_texts()
    assert sorted(tenants) == ["Acme", "Acme", "Globex"]
    assert set(page.locator("[data-table=xlas] tbody td:nth-child(3)").all_inner_texts()) == {
        seed.period
    }
    # two evaluated periods: each XLA with results draws them by period; one that never
    # had enough data draws no empty chart
    titles = page.locator("svg.line-chart title").all_text_contents()
    for name in (MET, MISSED):
        assert any(t.startswith(f"{name}: result by period") for t in titles), name
    assert not any(t.startswith(f"{OTHER}: result by period") for t in titles)
    acme = f"a[href*='tenant={fleet.tenant.tenant_id}']"
    for fmt in ("html", "pdf", "csv", "json"):
        links = page.locator(f"{acme}[href*='format={fmt}']")
        assert links.count() == 2, fmt  # one per Acme XLA
        query = parse_qs(urlparse(links.first.get_attribute("href")).query)
        assert query == {
            "tenant": [fleet.tenant.tenant_id],
            "period": [seed.period],
            "format": [fmt],
        }
    assert page.locator("nav a[href='/msp']").count() == 1
    _shot(page, artifacts, "12-xlas")

    pdf_href = page.get_attribute(f"{acme}[href*='format=pdf']", "href")
    pdf = httpx.get(
        fleet.url + str(pdf_href), cookies={"dexscope_session": _cookie(page)}, timeout=120
    )
    assert pdf.status_code == 200, pdf.text[:500]
    assert pdf.headers["content-type"].startswith("application/pdf")
    assert pdf.content.startswith(b"%PDF-")

    page.click(f"{acme}[href*='format=html'] >> nth=0")
    page.wait_for_load_state("load")
    assert urlparse(page.url).path == "/api/v1/reports/xla"
    text = page.inner_text("body")
    assert "Acme" in text and seed.period in text
    assert MET in text and MISSED in text
    assert OTHER not in text and "Globex" not in text
    _shot(page, artifacts, "13-xla-report")


def test_the_msp_overview_puts_tenants_side_by_side(
    page: Any, fleet: Fleet, seed: Seed, artifacts: Path
) -> None:
    """The MSP overview has a row per tenant with its XLA counts; Acme missed one."""
    _sign_in(page, fleet, MSP_EMAIL)
    page.click("nav a[href='/msp']")
    assert urlparse(page.url).path == "/msp"
    assert "MSP overview" in page.inner_text("h1")
    acme = _tenant_row(page, "Acme")
    assert acme["Devices"] == "12" and acme["XLAs"] == "2"
    assert int(acme["Met"]) == 1 and int(acme["Missed"]) >= 1
    globex = _tenant_row(page, "Globex")
    assert globex["Devices"] == "1" and globex["XLAs"] == "1"
    assert globex["Not enough data"] == "1" and globex["Missed"] == "0"
    # open alerts as stored now (test_browser.py resolves the fleet's one alert)
    assert int(acme["Open alerts"]) == _open_alerts(fleet.database_url, fleet.tenant.tenant_id)
    assert globex["Open alerts"] == "0"
    # sorted by missed, most first
    first = page.locator("[data-table=tenants] tbody tr").first.inner_text()
    assert first.startswith("Acme")
    title = page.locator("svg title").all_text_contents()
    assert any(t.startswith("XLAs missed per tenant") for t in title)
    _shot(page, artifacts, "14-msp")
    # the tenant's name leads to its XLAs only
    page.click("[data-table=tenants] a:text-is('Acme')")
    assert parse_qs(urlparse(page.url).query)["tenant"] == [fleet.tenant.tenant_id]
    assert set(_xla_statuses(page)) == {MET, MISSED}


def test_a_tenant_viewer_sees_its_own_xlas_and_no_msp_page(
    page: Any, fleet: Fleet, seed: Seed, artifacts: Path
) -> None:
    """A viewer bound to Acme sees Acme's XLAs only, has no MSP link, and /msp is 403;
    naming Globex in the URL still shows Acme's XLAs."""
    _sign_in(page, fleet, fleet.viewer_email)
    page.goto(fleet.url + "/xlas")
    assert _xla_statuses(page) == {MET: "met", MISSED: "missed"}
    assert "Globex" not in page.content()
    assert page.locator("nav a[href='/msp']").count() == 0
    assert page.locator(f"a[href*='tenant={fleet.other.tenant_id}']").count() == 0
    _shot(page, artifacts, "15-viewer-xlas")
    page.goto(f"{fleet.url}/xlas?tenant={fleet.other.tenant_id}")
    assert set(_xla_statuses(page)) == {MET, MISSED}
    response = page.goto(fleet.url + "/msp")
    assert response.status == 403
    assert "Not allowed" in page.inner_text("h1")
    assert "MSP" in page.inner_text("[role=alert]")
    assert "Globex" not in page.content()
    _shot(page, artifacts, "16-viewer-msp-403")
    # the report of another tenant is not reachable with the viewer's cookie either
    other = httpx.get(
        f"{fleet.url}/api/v1/reports/xla",
        params={"tenant": fleet.other.tenant_id, "period": seed.period, "format": "json"},
        cookies={"dexscope_session": _cookie(page)},
        timeout=60,
    )
    assert other.status_code == 404
