"""The dashboard in a real browser: Playwright driving Debian's Chromium against a real
collector with a scored 12-device fleet (see ``conftest.py``).

Outside CI a missing Chromium or Playwright skips these tests with one line; under
``CI=true`` they are required. Each page's screenshot lands in
``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

import httpx
import pytest

from tests.dashboard.conftest import PASSWORD, Fleet
from tests.support import run_cli

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}, and the browser tests are required in CI")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, through Playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[dev]')")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) at a laptop's size."""
    context = browser.new_context(viewport={"width": 1440, "height": 900}, accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(15_000)
    yield p
    context.close()


def _sign_in(page: Any, fleet: Fleet, email: str, password: str = PASSWORD) -> None:
    page.goto(fleet.url + "/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_load_state("load")


def _shot(page: Any, artifacts: Path, name: str) -> None:
    page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)


def _cookie(page: Any) -> str:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return str(cookies["dexscope_session"])


def test_sign_in_and_every_page(page: Any, fleet: Fleet, artifacts: Path) -> None:
    page.goto(fleet.url + "/")
    assert page.url.endswith("/login?next=/")
    _shot(page, artifacts, "01-sign-in")
    _sign_in(page, fleet, fleet.admin_email)
    assert urlparse(page.url).path == "/"
    # the fleet score is a number on the 0-100 scale, drawn in the chart with its title
    fleet_score = page.inner_text("[data-kpi=fleet-score]")
    assert 0 <= float(fleet_score) <= 100
    assert page.locator("svg.line-chart title").first.text_content().startswith("Experience score")
    cards = page.locator(".persona")
    assert cards.count() == len(fleet.personas)
    for name in fleet.personas:
        text = page.inner_text(f"[data-persona='{name}']")
        assert "not enough data" in text or "frustrated" in text
    assert page.locator("[data-table=apps] tbody tr").count() >= 1
    _shot(page, artifacts, "02-overview")

    page.click(f"[data-persona='{fleet.personas[0]}'] a")
    assert urlparse(page.url).path == f"/personas/{fleet.personas[0]}"
    assert page.locator("[data-table=devices] tbody tr").count() >= 1
    _shot(page, artifacts, "03-persona")

    page.goto(fleet.url + "/apps/" + quote(fleet.apps[0], safe=""))
    assert fleet.apps[0] in page.inner_text("h1")
    assert page.locator("svg.line-chart").count() >= 1
    _shot(page, artifacts, "04-app")

    page.goto(fleet.url + "/groups/site/" + quote(fleet.sites[0], safe=""))
    assert fleet.sites[0] in page.inner_text("h1")
    _shot(page, artifacts, "05-site")

    page.goto(fleet.url + "/devices")
    rows = page.locator("[data-table=devices] tbody tr")
    assert rows.count() == 12
    # sorted by score, worst first: each score no higher than the next
    scores = [
        float(s)
        for s in page.locator("[data-table=devices] tbody td:nth-child(5)").all_inner_texts()
    ]
    assert scores == sorted(scores)
    page.click("[data-table=devices] th:nth-child(5) a")  # toggle: best first
    scores = [
        float(s)
        for s in page.locator("[data-table=devices] tbody td:nth-child(5)").all_inner_texts()
    ]
    assert scores == sorted(scores, reverse=True)
    assert "sort=score" in page.url
    _shot(page, artifacts, "06-devices")

    page.goto(fleet.url + "/surveys")
    assert "Weekly pulse" in page.inner_text("[data-table=campaigns]")
    assert "Priming" in page.inner_text("main")
    _shot(page, artifacts, "09-surveys")


def test_follow_an_alert_to_its_device(page: Any, fleet: Fleet, artifacts: Path) -> None:
    _sign_in(page, fleet, fleet.admin_email)
    assert "No open alerts" not in page.inner_text("main")
    page.goto(fleet.url + "/alerts")
    assert page.locator("[data-table=alerts] tbody tr").count() == 1
    _shot(page, artifacts, "07-alerts")
    page.click("[data-table=alerts] tbody a")
    assert urlparse(page.url).path == f"/alerts/{fleet.alert_id}"
    assert page.locator("svg.line-chart title").first.text_content().startswith("Evidence")
    assert "Teams" in page.inner_text("[data-table=change]")
    _shot(page, artifacts, "08-alert")
    page.click(f"[data-table=devices] a:text('{fleet.device_hostname}')")
    assert urlparse(page.url).path == f"/devices/{fleet.device_id}"
    assert fleet.device_hostname in page.inner_text("h1")
    timeline = page.inner_text("[data-table=timeline]")
    assert "Alert" in timeline and "Boot" in timeline
    score = page.inner_text("[data-kpi=score]")
    assert 0 <= float(score) <= 100
    _shot(page, artifacts, "10-device")


def test_acknowledge_and_resolve_with_csrf(page: Any, fleet: Fleet) -> None:
    _sign_in(page, fleet, fleet.analyst_email)
    page.goto(f"{fleet.url}/alerts/{fleet.alert_id}")
    # a POST without the form's token is refused and changes nothing
    forged = httpx.post(
        f"{fleet.url}/alerts/{fleet.alert_id}/acknowledge",
        cookies={"dexscope_session": _cookie(page)},
        data={"csrf": "not-the-token"},
    )
    assert forged.status_code == 403
    page.reload()
    assert page.get_attribute("[data-status]", "data-status") == "open"
    page.click("button:text('Acknowledge')")
    assert page.get_attribute("[data-status]", "data-status") == "acknowledged"
    page.click("button:text('Resolve')")
    assert page.get_attribute("[data-status]", "data-status") == "resolved"
    page.goto(fleet.url + "/alerts?status=resolved")
    assert page.locator("[data-table=alerts] tbody tr").count() == 1
    page.goto(fleet.url + "/alerts")
    assert "No alerts." in page.inner_text("[data-table=alerts]")


def test_a_filter_is_kept_in_the_url_and_links(page: Any, fleet: Fleet) -> None:
    _sign_in(page, fleet, fleet.admin_email)
    persona = fleet.personas[-1]
    page.select_option("select[name=persona]", persona)
    page.select_option("select[name=days]", "14")
    page.click("form.filters button[type=submit]")
    query = parse_qs(urlparse(page.url).query)
    assert query["persona"] == [persona] and query["days"] == ["14"]
    assert page.locator(".persona").count() == 1
    # navigation keeps the filter: the devices page shows only that persona
    page.click("nav a:text('Devices')")
    assert parse_qs(urlparse(page.url).query)["persona"] == [persona]
    personas = set(page.locator("[data-table=devices] tbody td:nth-child(2)").all_inner_texts())
    assert personas == {persona}
    # and the shared URL opens the same view in another session
    other = page.context.browser.new_context()
    try:
        p2 = other.new_page()
        _sign_in(p2, fleet, fleet.admin_email)
        p2.goto(page.url)
        assert set(p2.locator("[data-table=devices] tbody td:nth-child(2)").all_inner_texts()) == {
            persona
        }
    finally:
        other.close()


def test_csv_export_of_a_table(page: Any, fleet: Fleet, tmp_path: Path) -> None:
    _sign_in(page, fleet, fleet.admin_email)
    page.goto(fleet.url + "/devices")
    with page.expect_download() as info:
        page.click("#table-devices a.csv")
    path = tmp_path / "devices.csv"
    info.value.save_as(str(path))
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == 12
    shown = set(page.locator("[data-table=devices] tbody td:nth-child(1)").all_inner_texts())
    assert {r["Hostname"] for r in rows} == shown
    assert all(0 <= float(r["Mean score (0\u2013100)"]) <= 100 for r in rows)


def test_a_viewer_sees_only_its_tenant(page: Any, fleet: Fleet, artifacts: Path) -> None:
    _sign_in(page, fleet, fleet.viewer_email)
    assert "viewer" in page.inner_text("header")
    for path in (
        f"/devices/{fleet.other_device_id}",
        "/groups/group/b-only",
    ):
        response = page.goto(fleet.url + path)
        assert response.status == 404, path
    _shot(page, artifacts, "11-viewer-404")
    # naming the other tenant in the URL still shows only the viewer's own tenant
    page.goto(f"{fleet.url}/devices?tenant={fleet.other.tenant_id}")
    assert "globex-secret-01" not in page.content()
    assert page.locator("[data-table=devices] tbody tr").count() == 12
    assert "tenant=" not in (page.get_attribute("nav a:text('Devices')", "href") or "")
    csv_text = httpx.get(
        f"{fleet.url}/devices?tenant={fleet.other.tenant_id}&format=csv&table=devices",
        cookies={"dexscope_session": _cookie(page)},
    ).text
    assert "globex" not in csv_text and len(csv_text.strip().splitlines()) == 13
    page.goto(f"{fleet.url}/alerts?status=all")
    assert page.locator("button:text('Acknowledge')").count() == 0


def test_lock_out_after_repeated_failures(page: Any, fleet: Fleet) -> None:
    email = "locked@acme.test"
    run_cli(
        "admin",
        "create-user",
        email,
        "--role",
        "analyst",
        "--tenant",
        fleet.tenant.tenant_id,
        "--database-url",
        fleet.database_url,
        "--password-stdin",
        input_text=PASSWORD + "\n",
    )
    for _ in range(5):
        _sign_in(page, fleet, email, "wrong password!!")
        assert "wrong e-mail or password" in page.inner_text("[role=alert]")
    _sign_in(page, fleet, email, PASSWORD)  # the right one, too late
    assert "too many failed sign-ins" in page.inner_text("[role=alert]")
    assert urlparse(page.url).path == "/login"
