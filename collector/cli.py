"""``dexscope collector …`` and ``dexscope admin …`` sub-commands.

Only argparse is imported at module level; handlers import the collector stack lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["open_database", "register_admin", "register_collector", "register_report"]


def _add_database_url(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        default=None,
        help="SQLAlchemy URL (default: $DEXSCOPE_DATABASE_URL, else SQLite under the data dir)",
    )


def register_collector(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``migrate``, ``serve`` and ``jobs``."""
    p = sub.add_parser("migrate", help="create or upgrade the database schema")
    _add_database_url(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=_migrate)

    p = sub.add_parser("serve", help="serve the API and the dashboard")
    _add_database_url(p)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument(
        "--workers",
        default="1",
        help="worker processes sharing the port: a number, or auto = one per CPU core, at "
        "most 4 (default 1; rate limits and /metrics count per process)",
    )
    p.add_argument("--no-migrate", action="store_true", help="do not migrate before serving")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--tls-cert",
        default=None,
        help="PEM certificate to serve HTTPS with (or $DEXSCOPE_TLS_CERT); needs --tls-key",
    )
    p.add_argument(
        "--tls-key", default=None, help="PEM private key of --tls-cert (or $DEXSCOPE_TLS_KEY)"
    )
    p.set_defaults(func=_serve)

    p = sub.add_parser("jobs", help="run the periodic jobs (scoring, then raw-event retention)")
    _add_database_url(p)
    p.add_argument("--once", action="store_true", help="run every job once and exit")
    p.add_argument("--as-of", default=None, help="ISO 8601 time to run as (replayable runs)")
    p.add_argument("--interval", type=float, default=300.0, help="seconds between runs")
    p.set_defaults(func=_jobs)


def register_admin(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``create-tenant``, ``create-api-key`` and ``create-user``."""
    p = sub.add_parser("create-tenant", help="create a tenant and its enrollment token")
    p.add_argument("name")
    _add_database_url(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_create_tenant)

    roles = ["admin", "analyst", "viewer"]
    p = sub.add_parser("create-api-key", help="create an API key")
    _add_database_url(p)
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--tenant", default=None, help="bind the key to this tenant id")
    p.add_argument("--name", default="", help="a label for the key")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_create_api_key)

    p = sub.add_parser("create-user", help="create a dashboard login")
    p.add_argument("email")
    _add_database_url(p)
    p.add_argument("--role", required=True, choices=roles)
    p.add_argument("--tenant", default=None, help="bind the user to this tenant id")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_create_user)

    p = sub.add_parser(
        "import-xlas",
        help="create or version XLA definitions from a YAML, TOML or JSON file",
        description="Definitions as code: a file with `xlas: [...]` (YAML/JSON) or "
        "`[[xlas]]` tables (TOML). A definition equal to its current version is left "
        "unchanged; any other change adds a version. All or nothing.",
    )
    p.add_argument("file", help="the definitions file (.yaml, .yml, .toml or .json)")
    _add_database_url(p)
    p.add_argument("--tenant", default=None, help="tenant of definitions that name none")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_import_xlas)


def _settings(database_url: str | None) -> Any:
    from collector.settings import Settings

    try:
        return Settings(database_url=database_url) if database_url else Settings()
    except Exception as exc:  # pydantic ValidationError or a bad config file
        from dexscope.cli import CliError

        raise CliError(f"invalid settings: {exc}") from exc


def open_database(database_url: str | None, *, migrate: bool = False) -> Engine:
    """An engine for the configured database, checked reachable and (optionally) migrated.

    Raises :class:`dexscope.cli.CliError` with a one-line reason otherwise.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from collector.db import make_engine
    from collector.migrate import current_revision, head_revision, upgrade
    from dexscope.cli import CliError

    settings = _settings(database_url)
    url = settings.resolved_database_url()
    if url.startswith("sqlite:///"):
        os.makedirs(os.path.dirname(os.path.abspath(url[len("sqlite:///") :])), exist_ok=True)
    try:
        engine = make_engine(url)
        if migrate:
            upgrade(engine)
        revision = current_revision(engine)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        first_line = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        raise CliError(f"cannot use database {_safe_url(url)}: {first_line}") from exc
    if revision != head_revision():
        raise CliError(
            f"database {_safe_url(url)} is at schema {revision}, this version needs "
            f"{head_revision()}: run `dexscope collector migrate`"
        )
    return engine


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _print(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload) if getattr(args, "json", False) else text)


def _migrate(args: argparse.Namespace) -> int:
    from collector.migrate import current_revision

    engine = open_database(args.database_url, migrate=True)
    revision = current_revision(engine)
    _print(args, {"revision": revision}, f"database schema at revision {revision}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from dexscope.cli import CliError

    if args.database_url:
        # Worker processes build their own settings from the environment.
        os.environ["DEXSCOPE_DATABASE_URL"] = args.database_url
    if args.workers == "auto":
        args.workers = min(os.cpu_count() or 1, 4)
    try:
        args.workers = int(args.workers)
    except ValueError:
        raise CliError(f"--workers {args.workers!r}: give a number or auto") from None
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    tls_cert, tls_key = _tls_files(args)
    open_database(args.database_url, migrate=not args.no_migrate).dispose()
    uvicorn.run(
        "collector.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        proxy_headers=True,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
    )
    return 0


def _tls_files(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The certificate and key to serve HTTPS with (flags, else settings), checked usable."""
    import ssl

    from dexscope.cli import CliError

    settings = _settings(args.database_url)
    cert = args.tls_cert or (str(settings.tls_cert) if settings.tls_cert else None)
    key = args.tls_key or (str(settings.tls_key) if settings.tls_key else None)
    if cert is None and key is None:
        return None, None
    if cert is None or key is None:
        raise CliError("HTTPS needs both --tls-cert and --tls-key (or DEXSCOPE_TLS_CERT/_KEY)")
    for what, path in (("certificate", cert), ("key", key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read TLS {what} {path}: {exc.strerror}") from exc
    try:
        # a passphrase-protected key is refused here (no prompt): uvicorn would ask on a tty
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            cert, key, password=lambda: b""
        )
    except (ssl.SSLError, ValueError) as exc:
        raise CliError(f"TLS certificate {cert} and key {key} are not usable: {exc}") from exc
    return cert, key


def _jobs(args: argparse.Namespace) -> int:
    from collector.jobs import run_forever, run_once
    from dexscope.cli import CliError

    as_of = None
    if args.as_of:
        from datetime import datetime

        try:
            as_of = datetime.fromisoformat(args.as_of)
        except ValueError as exc:
            raise CliError(f"--as-of {args.as_of!r} is not an ISO 8601 time") from exc
        if as_of.tzinfo is None:
            raise CliError("--as-of needs a UTC offset, e.g. 2026-11-01T00:00:00Z")
    engine = open_database(args.database_url)
    settings = _settings(args.database_url)
    if args.once:
        results = run_once(engine, settings, as_of=as_of)
        print(json.dumps(results))
        failed = [name for name, job in results["jobs"].items() if not job["ok"]]
        if failed:
            raise CliError(f"job(s) failed: {', '.join(failed)} (details in the JSON above)")
        return 0
    run_forever(engine, settings, interval_s=args.interval)
    return 0


def _parse_tenant(value: str | None) -> uuid.UUID | None:
    from dexscope.cli import CliError

    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise CliError(f"--tenant {value!r} is not a tenant id (UUID)") from exc


def _admin_call(args: argparse.Namespace, action: Any) -> Any:
    from collector.db import make_sessionmaker
    from collector.errors import ApiError
    from dexscope.cli import CliError

    engine = open_database(args.database_url)
    try:
        with make_sessionmaker(engine)() as session:
            return action(session)
    except ApiError as exc:
        raise CliError(exc.message) from exc
    finally:
        engine.dispose()


def _create_tenant(args: argparse.Namespace) -> int:
    from collector.tenants.service import create_tenant

    created = _admin_call(args, lambda s: create_tenant(s, args.name))
    payload = {"tenant_id": str(created.tenant_id), "enrollment_token": created.enrollment_token}
    _print(
        args,
        payload,
        f"tenant {args.name}: {created.tenant_id}\nenrollment token (shown once): "
        f"{created.enrollment_token}",
    )
    return 0


def _create_api_key(args: argparse.Namespace) -> int:
    from collector.identity.roles import Role
    from collector.identity.service import create_api_key

    tenant = _parse_tenant(args.tenant)
    key = _admin_call(args, lambda s: create_api_key(s, Role(args.role), tenant, args.name))
    _print(args, {"api_key": key}, f"API key (shown once): {key}")
    return 0


def _create_user(args: argparse.Namespace) -> int:
    import getpass

    from collector.identity.roles import Role
    from collector.identity.service import create_user
    from dexscope.cli import CliError

    tenant = _parse_tenant(args.tenant)
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("Password: ")
    else:
        raise CliError("no terminal to ask the password on: use --password-stdin")
    user_id = _admin_call(
        args, lambda s: create_user(s, args.email, password, Role(args.role), tenant)
    )
    _print(
        args, {"user_id": str(user_id), "email": args.email.lower()}, f"user {args.email} created"
    )
    return 0


def register_report(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``report xla``."""
    p = sub.add_parser(
        "xla",
        help="a tenant's XLA report of one period",
        description="The MSP's client report: every XLA of the tenant over one month "
        "(YYYY-MM) or ISO week (YYYY-Www), with coverage, SLA beside XLA, trend and "
        "proactive figures. Regenerating a past period gives the same figures.",
    )
    _add_database_url(p)
    p.add_argument("--tenant", required=True, help="the tenant id")
    p.add_argument("--period", required=True, help="YYYY-MM (or YYYY-Www for weekly XLAs)")
    p.add_argument("--format", required=True, choices=["html", "pdf", "csv", "json"])
    p.add_argument("--out", required=True, help="the file to write ('-' for stdout)")
    p.set_defaults(func=_report_xla)


def _cli_identity() -> Any:
    from collector.identity.roles import Identity, Role

    return Identity(kind="cli", subject_id=uuid.UUID(int=0), role=Role.ADMIN, tenant_id=None)


def _import_xlas(args: argparse.Namespace) -> int:
    from collector.xlas.service import parse_definitions, save_definitions
    from dexscope.cli import CliError

    path = Path(args.file)
    fmt = {".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".json": "json"}.get(
        path.suffix.lower()
    )
    if fmt is None:
        raise CliError(f"{path}: use a .yaml, .yml, .toml or .json file")
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from exc
    tenant = _parse_tenant(args.tenant)

    def action(session: Any) -> Any:
        items = parse_definitions(body, fmt)
        if tenant is not None:
            items = [
                i if i.tenant_id else i.model_copy(update={"tenant_id": tenant}) for i in items
            ]
        return save_definitions(session, _cli_identity(), items)

    saved = _admin_call(args, action)
    payload = {
        "created": saved.created,
        "versioned": saved.versioned,
        "unchanged": saved.unchanged,
        "xlas": [{"id": str(x.id), "name": x.name, "version": x.version} for x in saved.items],
    }
    lines = [f"{x.name}: version {x.version} ({x.id})" for x in saved.items]
    summary = f"{saved.created} created, {saved.versioned} versioned, {saved.unchanged} unchanged"
    _print(args, payload, "\n".join([*lines, summary]))
    return 0


def _report_xla(args: argparse.Namespace) -> int:
    from collector.reports.pdf import PdfRenderError
    from collector.reports.xla import build_report, render
    from dexscope.cli import CliError

    tenant = _parse_tenant(args.tenant)
    assert tenant is not None

    def action(session: Any) -> bytes:
        report = build_report(session, tenant, args.period)
        return render(report, args.format)

    try:
        body = _admin_call(args, action)
    except PdfRenderError as exc:
        raise CliError(str(exc)) from exc
    if args.out == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        try:
            Path(args.out).write_bytes(body)
        except OSError as exc:
            raise CliError(f"cannot write {args.out}: {exc.strerror}") from exc
        print(f"wrote {args.out} ({len(body):,} bytes)", file=sys.stderr)
    return 0
