"""XLAs over HTTP: definitions, evaluations, the XLA report and the MSP overview.

Tenant scoping is :meth:`Identity.visible_tenant` for reads and
:func:`collector.tenants.service.target_tenant` for writes, as everywhere else; the MSP
overview is for callers not bound to a tenant (the MSP's own staff) only.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from collector.auth import AdminIdentity, CurrentIdentity
from collector.db import SessionDep
from collector.errors import Forbidden, NotFound, ServiceUnavailable, UnprocessableEntity
from collector.identity.roles import Identity
from collector.ingest.body import UnsupportedEncoding, read_limited
from collector.reports.pdf import PdfRenderError
from collector.reports.xla import MEDIA_TYPES as REPORT_MEDIA_TYPES
from collector.reports.xla import build_report, render
from collector.xlas import service
from collector.xlas.schemas import (
    XLA_FILE,
    XLA_REQUEST,
    EvaluationList,
    MspOverview,
    XlaList,
    XlaOut,
    XlaSaved,
)

__all__ = ["UnsupportedDefinitionType", "report_tenant", "require_msp_staff", "router"]

router = APIRouter(prefix="/api/v1", tags=["xlas"])

_MAX_DEFINITIONS_BODY = 1024 * 1024


class UnsupportedDefinitionType(UnsupportedEncoding):
    """415: definitions sent as something other than JSON, YAML or TOML."""

    code = "unsupported_media_type"


def require_msp_staff(identity: Identity) -> None:
    """403 unless the caller is MSP-wide staff (an admin or analyst bound to no tenant)."""
    if identity.tenant_id is not None:
        raise Forbidden("the MSP overview is for the MSP's own staff", code="msp_only")


def report_tenant(identity: Identity, tenant: uuid.UUID | None) -> uuid.UUID:
    """The tenant a report is about: the caller's own, or the one MSP staff name.

    A tenant-bound caller naming another tenant gets 404 (another tenant's existence is
    not revealed); MSP staff must name one (422).
    """
    if identity.tenant_id is not None:
        if tenant is not None and tenant != identity.tenant_id:
            raise NotFound(f"no tenant {tenant}", code="tenant_not_found")
        return identity.tenant_id
    if tenant is None:
        raise UnprocessableEntity(
            "tenant: required for a caller not bound to a tenant", field="tenant"
        )
    return tenant


@router.get("/xlas", response_model=XlaList)
def list_xlas(
    identity: CurrentIdentity, session: SessionDep, tenant: uuid.UUID | None = None
) -> XlaList:
    """The XLA definitions the caller may see, each with its latest evaluation."""
    return service.list_xlas(session, identity.visible_tenant(tenant))


@router.post(
    "/xlas",
    status_code=200,
    response_model=XlaSaved,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"oneOf": [XLA_REQUEST.json_schema(), XLA_FILE.json_schema()]}
                },
                "application/yaml": {"schema": XLA_FILE.json_schema()},
                "application/toml": {"schema": XLA_FILE.json_schema()},
            },
        }
    },
)
async def save_xlas(request: Request, identity: AdminIdentity, session: SessionDep) -> XlaSaved:
    """Create XLAs or add versions (admins): one definition, a list, or a definitions file
    (``xlas: [...]``) as JSON, YAML or TOML. Stored all or nothing."""
    media_type = request.headers.get("content-type", "application/json").split(";")[0]
    fmt = service.MEDIA_TYPES.get(media_type.strip().lower())
    if fmt is None:
        raise UnsupportedDefinitionType(
            f"send definitions as application/json, application/yaml or application/toml "
            f"(got {media_type or 'no content type'})"
        )
    body = await read_limited(
        request.stream(), request.headers.get("content-length"), _MAX_DEFINITIONS_BODY
    )
    items = service.parse_definitions(body, fmt)
    return await run_in_threadpool(service.save_definitions, session, identity, items)


@router.get("/xlas/{xla_id}", response_model=XlaOut)
def get_xla(xla_id: uuid.UUID, identity: CurrentIdentity, session: SessionDep) -> XlaOut:
    """One XLA definition (404 outside the caller's tenant)."""
    return service.get_xla(session, xla_id, identity.visible_tenant(None))


@router.get("/xlas/{xla_id}/evaluations", response_model=EvaluationList)
def list_evaluations(
    xla_id: uuid.UUID, identity: CurrentIdentity, session: SessionDep, limit: int = 24
) -> EvaluationList:
    """The XLA's evaluations, newest period first."""
    return service.list_evaluations(session, xla_id, identity.visible_tenant(None), limit)


@router.get(
    "/reports/xla",
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "text/html": {},
                "application/pdf": {},
            },
            "description": "the report in the asked format",
        }
    },
)
async def xla_report(
    identity: CurrentIdentity,
    session: SessionDep,
    period: Annotated[str, Query(pattern=r"^\d{4}-(\d{2}|W\d{2})$")],
    tenant: uuid.UUID | None = None,
    fmt: Annotated[Literal["json", "csv", "html", "pdf"], Query(alias="format")] = "json",
) -> Response:
    """The tenant's XLA report of one period (``2026-11`` or ``2026-W47``) as JSON, CSV,
    HTML or PDF; the same figures in every format and on every regeneration."""
    tenant_id = report_tenant(identity, tenant)
    report = await run_in_threadpool(build_report, session, tenant_id, period, None)
    try:
        body = await run_in_threadpool(render, report, fmt)
    except PdfRenderError as exc:
        raise ServiceUnavailable(str(exc), code="pdf_unavailable") from exc
    name = f"xla-{report['tenant']['name']}-{period}.{fmt}"
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    disposition = "inline" if fmt in ("html", "json") else "attachment"
    return Response(
        body,
        media_type=REPORT_MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'{disposition}; filename="{safe}"'},
    )


@router.get("/msp/overview", response_model=MspOverview)
def msp_overview(identity: CurrentIdentity, session: SessionDep) -> MspOverview:
    """Every tenant side by side: XLA statuses, watermelons, open alerts (MSP staff only)."""
    require_msp_staff(identity)
    return service.msp_overview(session, datetime.now(UTC))
