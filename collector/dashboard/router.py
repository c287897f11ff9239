"""Dashboard pages: sign-in and a first overview of the fleet.

This is the foundation's overview (devices, what they reported); scores, alerts and
surveys fill in as those parts land.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from collector.auth import SESSION_COOKIE
from collector.db import SessionDep
from collector.devices.service import list_devices
from collector.errors import Unauthorized
from collector.identity.service import SESSION_TTL, authenticate_session, sign_in, sign_out
from dexscope import __version__

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
_MAX_FORM = 8 * 1024


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, session: SessionDep) -> Response:
    """The fleet overview, for signed-in users."""
    cookie = request.cookies.get(SESSION_COOKIE)
    try:
        identity = authenticate_session(session, cookie) if cookie else None
    except Unauthorized:
        identity = None
    if identity is None:
        return RedirectResponse("/login", status_code=303)
    page = list_devices(session, identity.visible_tenant(None), limit=200, offset=0)
    return templates.TemplateResponse(
        request,
        "overview.html",
        {"page": page, "role": identity.role.value, "version": __version__},
    )


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> Response:
    """The sign-in form."""
    return templates.TemplateResponse(request, "login.html", {"error": None})


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, session: SessionDep) -> Response:
    """Check the password and set the session cookie."""
    raw = await request.body()
    form = parse_qs(raw[:_MAX_FORM].decode("utf-8", "replace"))
    email = (form.get("email") or [""])[0]
    password = (form.get("password") or [""])[0]
    try:
        secret = sign_in(session, email, password)
    except Unauthorized as exc:
        return templates.TemplateResponse(
            request, "login.html", {"error": exc.message}, status_code=401
        )
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_TTL.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout")
def logout(request: Request, session: SessionDep) -> Response:
    """End the session."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        sign_out(session, cookie)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response
