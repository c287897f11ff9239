"""Dashboard pages (server-rendered Jinja2): sign-in, overview, personas, apps, groups,
devices, alerts and surveys; every table also as CSV (``?format=csv&table=NAME``).

Thin: each route authenticates the session cookie, parses the filters from the URL, calls
one function of :mod:`collector.dashboard.service` and renders its context. Every POST
carries the session's CSRF token (``csrf`` form field), checked before anything is done.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from collector.auth import SESSION_COOKIE
from collector.dashboard import service
from collector.db import SessionDep
from collector.errors import Forbidden, NotFound, Unauthorized, UnprocessableEntity
from collector.identity.roles import Identity
from collector.identity.service import SESSION_TTL, authenticate_session, sign_in, sign_out
from collector.settings import Settings
from dexscope import __version__

__all__ = ["LOGIN_CSRF_COOKIE", "fmt", "router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_MAX_FORM = 8 * 1024
LOGIN_CSRF_COOKIE = "dexscope_login_csrf"
"""The double-submit cookie that protects the sign-in form (there is no session yet)."""


def fmt(value: Any, kind: str = "text") -> str:
    """A cell as the tables show it: ``—`` for no value, units in the column header."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if kind == "score":
        return f"{float(value):.1f}"
    if kind == "pct":
        return f"{float(value) * 100:.0f} %"
    if kind == "minutes":
        return f"{float(value):,.1f}" if abs(float(value)) < 10 else f"{float(value):,.0f}"
    if kind == "delta":
        return f"{float(value):+.1f}"
    if kind == "float":
        return f"{float(value):,.2f}"
    if kind == "int":
        return f"{int(value):,}"
    if kind == "datetime" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if kind == "day" and isinstance(value, date):
        return value.strftime("%a %Y-%m-%d")
    return str(value)


templates.env.filters["fmt"] = fmt
templates.env.filters["q"] = lambda s: quote(str(s), safe="")
templates.env.globals["version"] = __version__


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _who(request: Request, session: SessionDep) -> tuple[Identity, str] | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        return authenticate_session(session, cookie), cookie
    except Unauthorized:
        return None


def _page(
    request: Request,
    session: SessionDep,
    template: str,
    build: Callable[[Identity, service.Filters, bool], dict[str, Any]],
    page_name: str,
) -> Response:
    who = _who(request, session)
    if who is None:
        return RedirectResponse("/login?next=" + quote(request.url.path, safe="/"), 303)
    identity, cookie = who
    params = dict(request.query_params)
    as_csv = params.get("format") == "csv"
    try:
        filters = service.parse_filters(params)
        context = build(identity, filters, as_csv)
    except NotFound as exc:
        return _error(request, identity, cookie, 404, exc.message)
    except (UnprocessableEntity, Forbidden) as exc:
        return _error(request, identity, cookie, exc.status_code, exc.message)
    if as_csv:
        table = context["tables"].get(params.get("table", ""))
        if table is None:
            return _error(request, identity, cookie, 404, "no such table on this page")
        name = f"dexscope-{page_name}-{table.name}-{context['start']}-{context['end']}.csv"
        return Response(
            service.table_csv(table),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    context["csrf"] = service.csrf_token(cookie, _settings(request).dashboard_csrf_key)
    context["path"] = request.url.path
    return templates.TemplateResponse(request, template, context)


def _error(
    request: Request, identity: Identity, cookie: str, status: int, message: str
) -> Response:
    return templates.TemplateResponse(
        request,
        "error.html",
        {
            "status": status,
            "message": message,
            "identity": identity,
            "role": identity.role.value,
            "csrf": service.csrf_token(cookie, _settings(request).dashboard_csrf_key),
            "filters": service.Filters(),
            "path": request.url.path,
        },
        status_code=status,
    )


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep) -> Response:
    """The fleet overview."""
    return _page(
        request,
        session,
        "overview.html",
        lambda i, f, c: service.overview_page(session, i, f, csv_all=c),
        "overview",
    )


@router.get("/personas/{name}", response_class=HTMLResponse)
def persona(request: Request, session: SessionDep, name: str) -> Response:
    """One persona."""
    return _page(
        request,
        session,
        "scope.html",
        lambda i, f, c: service.persona_page(session, i, f, name, csv_all=c),
        "persona",
    )


@router.get("/groups/{tag}/{name}", response_class=HTMLResponse)
def group(request: Request, session: SessionDep, tag: str, name: str) -> Response:
    """One device group (``group`` tag) or site (``site`` tag)."""
    return _page(
        request,
        session,
        "scope.html",
        lambda i, f, c: service.group_page(session, i, f, tag, name, csv_all=c),
        tag,
    )


@router.get("/apps/{name:path}", response_class=HTMLResponse)
def app(request: Request, session: SessionDep, name: str) -> Response:
    """One application."""
    return _page(
        request,
        session,
        "app.html",
        lambda i, f, c: service.app_page(session, i, f, name, csv_all=c),
        "app",
    )


@router.get("/devices", response_class=HTMLResponse)
def devices(request: Request, session: SessionDep) -> Response:
    """The device table."""
    return _page(
        request,
        session,
        "devices.html",
        lambda i, f, c: service.devices_page(session, i, f, csv_all=c),
        "devices",
    )


@router.get("/devices/{device_id}", response_class=HTMLResponse)
def device(request: Request, session: SessionDep, device_id: str) -> Response:
    """One device."""
    return _page(
        request,
        session,
        "device.html",
        lambda i, f, c: service.device_page(session, i, f, device_id),
        "device",
    )


@router.get("/alerts", response_class=HTMLResponse)
def alerts(request: Request, session: SessionDep) -> Response:
    """Alerts by status."""
    return _page(
        request,
        session,
        "alerts.html",
        lambda i, f, c: service.alerts_page(session, i, f),
        "alerts",
    )


@router.get("/alerts/{alert_id}", response_class=HTMLResponse)
def alert(request: Request, session: SessionDep, alert_id: str) -> Response:
    """One alert."""
    return _page(
        request,
        session,
        "alert.html",
        lambda i, f, c: service.alert_page(session, i, f, alert_id),
        "alert",
    )


async def _form(request: Request) -> dict[str, str]:
    raw = await request.body()
    form = parse_qs(raw[:_MAX_FORM].decode("utf-8", "replace"))
    return {k: v[0] for k, v in form.items() if v}


@router.post("/alerts/{alert_id}/{action}", response_class=HTMLResponse)
async def alert_action(
    request: Request, session: SessionDep, alert_id: str, action: str
) -> Response:
    """Acknowledge or resolve an alert (POST form with the CSRF token)."""
    who = _who(request, session)
    if who is None:
        return RedirectResponse("/login", 303)
    identity, cookie = who
    form = await _form(request)
    if not service.verify_csrf(cookie, _settings(request).dashboard_csrf_key, form.get("csrf")):
        return _error(request, identity, cookie, 403, "the form expired; reload the page")
    try:
        service.set_alert_status(session, identity, alert_id, action)
    except NotFound as exc:
        return _error(request, identity, cookie, 404, exc.message)
    except (Forbidden, UnprocessableEntity) as exc:
        return _error(request, identity, cookie, exc.status_code, exc.message)
    return RedirectResponse(f"/alerts/{quote(alert_id, safe='')}", 303)


@router.get("/surveys", response_class=HTMLResponse)
def surveys(request: Request, session: SessionDep) -> Response:
    """Survey campaigns and results."""
    return _page(
        request,
        session,
        "surveys.html",
        lambda i, f, c: service.surveys_page(session, i, f),
        "surveys",
    )


@router.get("/xlas", response_class=HTMLResponse)
def xlas(request: Request, session: SessionDep) -> Response:
    """XLA definitions with their latest evaluation and report downloads."""
    return _page(
        request,
        session,
        "xlas.html",
        lambda i, f, c: service.xlas_page(session, i, f),
        "xlas",
    )


@router.get("/msp", response_class=HTMLResponse)
def msp(request: Request, session: SessionDep) -> Response:
    """All tenants side by side (MSP staff only)."""
    return _page(
        request,
        session,
        "msp.html",
        lambda i, f, c: service.msp_page(session, i, f),
        "msp",
    )


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form (with a double-submit CSRF cookie)."""
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"error": None, "csrf": token, "next": _safe_next(request.query_params.get("next"))},
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep) -> Response:
    """Check the password and set the session cookie."""
    form = await _form(request)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    given = form.get("csrf", "")
    target = _safe_next(form.get("next"))
    if not expected or not secrets.compare_digest(expected, given):
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "error": "The form expired; please sign in again.",
                "csrf": expected or "",
                "next": target,
            },
            status_code=403,
        )
    try:
        secret = sign_in(session, form.get("email", ""), form.get("password", ""))
    except Unauthorized as exc:
        return templates.TemplateResponse(
            request,
            "login.html",
            {"error": exc.message, "csrf": expected, "next": target},
            status_code=401,
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@router.post("/logout")
async def logout(request: Request, session: SessionDep) -> Response:
    """End the session (POST with the CSRF token)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    form = await _form(request)
    if cookie and service.verify_csrf(
        cookie, _settings(request).dashboard_csrf_key, form.get("csrf")
    ):
        sign_out(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
