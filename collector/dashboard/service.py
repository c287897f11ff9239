"""What each dashboard page shows: filters, aggregates, tables and charts.

The router parses the request into :class:`Filters` (everything a view depends on is in the
URL, so views can be shared), calls one page function here, and renders its context with a
template — or, with ``format=csv``, one of the page's :class:`Table` objects as CSV.

Tenant isolation: every page resolves its tenant with :meth:`Identity.visible_tenant`; a
tenant-bound user (a viewer) never sees another tenant's rows, and a device, persona, app or
group page of another tenant is a 404.

Speed: fleet figures are SQL aggregates over the rollups (:mod:`.repository`). Their
results are also kept in a small per-process cache keyed by the scope and by the scoring
job's watermark (:meth:`DashboardRepository.data_version`), so a page is recomputed once
after each scoring run, by each process, and never shows figures older than the rollups.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import math
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar
from urllib.parse import urlencode

from sqlalchemy.orm import Session

from collector import charts
from collector.alerts import service as alerts_service
from collector.dashboard.repository import DEVICE_SORTS, DashboardRepository, Scope
from collector.db import utcnow
from collector.devices.repository import DeviceRepository
from collector.errors import Forbidden, NotFound, UnprocessableEntity
from collector.identity.roles import Identity, Role
from collector.personas.service import builtin_personas, personas_for_tenant
from collector.scores.service import explain
from collector.surveys.service import campaign_results
from collector.tickets.service import first_ticket_at, tickets_for_alert
from scoring.aggregate import MIN_DEVICES
from scoring.personas import SUBSCORES

__all__ = [
    "PAGE_SIZE",
    "PERIODS",
    "Column",
    "Filters",
    "Table",
    "alert_page",
    "alerts_page",
    "app_page",
    "clear_cache",
    "csrf_token",
    "device_page",
    "devices_page",
    "group_page",
    "msp_page",
    "overview_page",
    "parse_filters",
    "persona_page",
    "set_alert_status",
    "surveys_page",
    "table_csv",
    "verify_csrf",
    "xlas_page",
]

PERIODS: Final = (7, 14, 30)
"""The period choices (days ending on the newest scored day)."""
PAGE_SIZE: Final = 25
"""Rows per table page."""
ALERT_STATUSES: Final = ("open", "acknowledged", "resolved")
SEVERITIES: Final = ("critical", "high", "medium", "low")
_CACHE_SIZE: Final = 64
_T = TypeVar("_T")


# -- filters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The view's filters as the URL holds them (``?tenant=&persona=&group=&site=&days=``)."""

    tenant: uuid.UUID | None = None
    persona: str | None = None
    group: str | None = None
    site: str | None = None
    days: int = 7
    to: date | None = None
    sort: str | None = None
    desc: bool = False
    page: int = 1
    status: str = "open"

    def query(self, **changes: Any) -> str:
        """The query string of these filters with ``changes`` applied (``?…``)."""
        merged = replace(self, **changes) if changes else self
        pairs: list[tuple[str, str]] = []
        for name in ("tenant", "persona", "group", "site"):
            value = getattr(merged, name)
            if value is not None:
                pairs.append((name, str(value)))
        if merged.days != 7:
            pairs.append(("days", str(merged.days)))
        if merged.to is not None:
            pairs.append(("to", merged.to.isoformat()))
        if merged.sort:
            pairs.append(("sort", merged.sort))
            if merged.desc:
                pairs.append(("desc", "1"))
        if merged.page != 1:
            pairs.append(("page", str(merged.page)))
        if merged.status != "open":
            pairs.append(("status", merged.status))
        return "?" + urlencode(pairs) if pairs else ""

    def shared(self) -> str:
        """The query string of the scope filters only (for links to other pages)."""
        return self.query(sort=None, desc=False, page=1, status="open")


def _one(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value.strip() or None if value is not None else None


def parse_filters(params: Mapping[str, str]) -> Filters:
    """Filters from query parameters; a malformed value is a 422 naming the field."""
    tenant: uuid.UUID | None = None
    if raw := _one(params, "tenant"):
        try:
            tenant = uuid.UUID(raw)
        except ValueError:
            raise UnprocessableEntity("tenant is not a tenant id", field="tenant") from None
    days = 7
    if raw := _one(params, "days"):
        if not raw.isdigit() or int(raw) not in PERIODS:
            raise UnprocessableEntity("days is 7, 14 or 30", field="days")
        days = int(raw)
    to: date | None = None
    if raw := _one(params, "to"):
        try:
            to = date.fromisoformat(raw)
        except ValueError:
            raise UnprocessableEntity("to is a day (YYYY-MM-DD)", field="to") from None
    page = 1
    if raw := _one(params, "page"):
        if not raw.isdigit() or int(raw) < 1:
            raise UnprocessableEntity("page is a positive number", field="page")
        page = min(int(raw), 100_000)
    status = _one(params, "status") or "open"
    if status not in (*ALERT_STATUSES, "all"):
        raise UnprocessableEntity("status is open, acknowledged, resolved or all", field="status")
    return Filters(
        tenant=tenant,
        persona=_one(params, "persona"),
        group=_one(params, "group"),
        site=_one(params, "site"),
        days=days,
        to=to,
        sort=_one(params, "sort"),
        desc=_one(params, "desc") in ("1", "true"),
        page=page,
        status=status,
    )


# -- tables ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One table column: the row key, its header (with unit) and how to show it."""

    key: str
    label: str
    kind: str = "text"
    """text, score, minutes, int, pct, datetime, day."""
    link: str | None = None
    """Row key holding this cell's link (or None)."""


@dataclass
class Table:
    """A sortable, paged table that the page shows and exports as CSV (``?format=csv``)."""

    name: str
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]]
    total: int = 0
    page: int = 1
    page_size: int = PAGE_SIZE
    sort: str | None = None
    desc: bool = False
    empty: str = "No data in this period."
    sorted_in_sql: bool = False
    note: str | None = None

    @property
    def pages(self) -> int:
        """Number of pages."""
        return max(1, math.ceil(self.total / self.page_size))

    def page_rows(self) -> list[dict[str, Any]]:
        """The rows of the current page."""
        if self.sorted_in_sql:
            return self.rows
        start = (self.page - 1) * self.page_size
        return self.rows[start : start + self.page_size]


def _sort_key(kind: str) -> Callable[[Any], Any]:
    def key(value: Any) -> Any:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0)
        if kind in ("text",):
            return (0, str(value).lower())
        return (0, value)

    return key


def _table(
    name: str,
    title: str,
    columns: list[Column],
    rows: list[dict[str, Any]],
    filters: Filters,
    *,
    default_sort: str,
    default_desc: bool,
    sort_param: bool = True,
    empty: str = "No data in this period.",
    note: str | None = None,
) -> Table:
    """A table sorted in Python (small tables: apps, personas, sites, alerts, campaigns)."""
    keys = {c.key: c.kind for c in columns}
    sort = filters.sort if sort_param and filters.sort in keys else default_sort
    desc = filters.desc if sort_param and filters.sort in keys else default_desc
    present = [r for r in rows if r.get(sort) is not None]
    missing = [r for r in rows if r.get(sort) is None]
    present.sort(key=lambda r: _sort_key(keys.get(sort, "text"))(r.get(sort)), reverse=desc)
    table = Table(
        name,
        title,
        columns,
        present + missing,
        total=len(rows),
        sort=sort,
        desc=desc,
        empty=empty,
        note=note,
    )
    table.page = min(filters.page, table.pages) if sort_param else 1
    return table


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    # keep spreadsheets from evaluating cell text as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _numeric(text) else text


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def table_csv(table: Table) -> str:
    """Every row of ``table`` (not only the page shown) as CSV with a header row."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([c.label for c in table.columns])
    for row in table.rows:
        writer.writerow([_csv_value(row.get(c.key)) for c in table.columns])
    return out.getvalue()


# -- the cache -------------------------------------------------------------------------


class _Cache:
    """A small LRU of aggregate results, each stored with the data version it was built on."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Any, version: Any, build: Callable[[], _T]) -> _T:
        with self.lock:
            hit = self.items.get(key)
            if hit is not None and hit[0] == version:
                self.items.move_to_end(key)
                return hit[1]  # type: ignore[no-any-return]
        value = build()
        with self.lock:
            self.items[key] = (version, value)
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)
        return value


_CACHE = _Cache(_CACHE_SIZE)


def clear_cache() -> None:
    """Forget every cached aggregate (tests; the version key makes it unnecessary otherwise)."""
    with _CACHE.lock:
        _CACHE.items.clear()


def _cached(
    repo: DashboardRepository, scope: Scope, name: str, build: Callable[[], _T], *extra: Any
) -> _T:
    engine_id = id(repo.session.get_bind())
    version = repo.data_version(scope.tenant_id)
    return _CACHE.get((engine_id, name, scope, *extra), version, build)


# -- shared pieces ---------------------------------------------------------------------


@dataclass
class _Context:
    """What every page needs: who, which tenant, the scope, the choices of the filter bar."""

    identity: Identity
    filters: Filters
    tenant: uuid.UUID | None
    scope: Scope
    days: list[date]
    tenants: list[tuple[uuid.UUID, str]]
    personas: list[str]
    groups: list[str]
    sites: list[str]
    scored: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def base(self) -> dict[str, Any]:
        return {
            "filters": self.filters,
            "identity": self.identity,
            "role": self.identity.role.value,
            "tenant_choices": self.tenants,
            "tenant_name": dict(self.tenants).get(self.tenant) if self.tenant else None,
            "persona_choices": self.personas,
            "group_choices": self.groups,
            "site_choices": self.sites,
            "periods": PERIODS,
            "start": self.scope.start,
            "end": self.scope.end,
            "scored": self.scored,
            "min_devices": MIN_DEVICES,
        }


def _context(session: Session, identity: Identity, filters: Filters) -> _Context:
    repo = DashboardRepository(session)
    tenant = identity.visible_tenant(filters.tenant)
    if identity.tenant_id is not None and filters.tenant not in (None, identity.tenant_id):
        filters = replace(filters, tenant=None)  # a bound user's links never name others
    latest = repo.latest_day(tenant)
    end = filters.to or latest or utcnow().date()
    start = end - timedelta(days=filters.days - 1)
    scope = Scope(tenant, start, end, filters.persona, filters.group, filters.site)
    # the filter bar's choices change with enrolments, which reach the rollups by the next
    # scoring run: cached on the same version
    choices = Scope(tenant, date.min, date.min)
    return _Context(
        identity=identity,
        filters=filters,
        tenant=tenant,
        scope=scope,
        days=[start + timedelta(days=k) for k in range(filters.days)],
        tenants=repo.tenants(identity.tenant_id),
        personas=_cached(repo, choices, "personas", lambda: repo.personas_in_use(tenant)),
        groups=_cached(repo, choices, "groups", lambda: repo.tag_values(tenant, "group")),
        sites=_cached(repo, choices, "sites", lambda: repo.tag_values(tenant, "site")),
        scored=latest is not None,
    )


def _mean(total: Any, n: Any) -> float | None:
    return float(total) / int(n) if n else None


def _share(part: Any, n: Any) -> float | None:
    return float(part or 0) / int(n) if n else None


@dataclass
class _Agg:
    """Sums of one label over days, combinable across labels."""

    n: int = 0
    score_sum: float = 0.0
    good: int = 0
    frustrating: int = 0
    time_lost_min: float = 0.0
    subs: dict[str, list[float]] = field(default_factory=dict)
    peak: int | None = None
    """Most devices scored on one day (set on period totals: "enough" counts devices, not
    device-days)."""

    def add(self, row: Mapping[str, Any]) -> None:
        self.n += int(row["n"] or 0)
        self.score_sum += float(row["score_sum"] or 0.0)
        self.good += int(row["good"] or 0)
        self.frustrating += int(row["frustrating"] or 0)
        self.time_lost_min += float(row["time_lost_min"] or 0.0)
        for sub in SUBSCORES:
            if f"{sub}_n" in row:
                acc = self.subs.setdefault(sub, [0.0, 0.0])
                acc[0] += float(row[f"{sub}_sum"] or 0.0)
                acc[1] += int(row[f"{sub}_n"] or 0)

    @property
    def enough(self) -> bool:
        return (self.n if self.peak is None else self.peak) >= MIN_DEVICES

    @property
    def score(self) -> float | None:
        return _mean(self.score_sum, self.n) if self.enough else None

    def sub(self, name: str) -> float | None:
        acc = self.subs.get(name)
        return _mean(acc[0], acc[1]) if acc and self.enough else None

    @property
    def share_good(self) -> float | None:
        return _share(self.good, self.n) if self.enough else None

    @property
    def share_frustrating(self) -> float | None:
        return _share(self.frustrating, self.n) if self.enough else None

    @property
    def share_tolerating(self) -> float | None:
        if not self.enough:
            return None
        return _share(self.n - self.good - self.frustrating, self.n)


def _rollup(rows: Iterable[Mapping[str, Any]], keys: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a finer aggregate summed up to ``keys`` (sums and counts add exactly)."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        acc = out.get(key)
        if acc is None:
            out[key] = {k: (r[k] if k in keys else (r[k] or 0)) for k in r}
            continue
        for k, v in r.items():
            if k not in keys and isinstance(v, int | float | Decimal) and not isinstance(v, bool):
                acc[k] = (acc[k] or 0) + v
    return [out[k] for k in sorted(out)]


def _by_day(rows: Iterable[Mapping[str, Any]], label: str | None = None) -> dict[Any, _Agg]:
    out: dict[Any, _Agg] = defaultdict(_Agg)
    for r in rows:
        out[(r[label], r["day"]) if label else r["day"]].add(r)
    return out


def _labels(days: Sequence[date]) -> list[str]:
    return [d.strftime("%b %d") for d in days]


def _score_chart(
    days: Sequence[date],
    series: Sequence[charts.Series],
    title: str,
    height: int = 300,
    width: int = 1200,
) -> str:
    return charts.line_chart(
        _labels(days),
        series,
        title=title,
        y_label="score",
        unit="0\u2013100",
        y_min=0,
        y_max=100,
        bands=charts.SCORE_BANDS,
        height=height,
        width=width,
    )


def _daily_series(
    by_day: Mapping[date, _Agg], days: Sequence[date], attr: str = "score"
) -> list[float | None]:
    out: list[float | None] = []
    for d in days:
        agg = by_day.get(d)
        if agg is None:
            out.append(None)
        elif attr == "score":
            out.append(agg.score)
        else:
            out.append(agg.sub(attr))
    return out


def _reference_day(by_day: Mapping[date, Any], end: date) -> date:
    """The day "now" figures (devices scored, shares, distributions) are taken from: the
    newest day with data, except today while it is still in progress (then the day before
    it, when there is one), so that a half-scored morning does not read as a small fleet."""
    days = sorted(d for d in by_day if d <= end)
    if not days:
        return end
    today = utcnow().date()
    complete = [d for d in days if d < today]
    return complete[-1] if complete else days[-1]


def _upto(values: Sequence[float | None], days: Sequence[date], day: date) -> list[float | None]:
    """The values of ``days`` up to and including ``day`` (a trend stops at the reference
    day: today's half-scored figure is not a change)."""
    return [v for d, v in zip(days, values, strict=True) if d <= day]


def _trend(values: Sequence[float | None]) -> float | None:
    """Last value minus the first (points), over the values present."""
    present = [v for v in values if v is not None]
    return present[-1] - present[0] if len(present) >= 2 else None


_METRIC_LABELS: Final = {
    "boot": "Boot duration",
    "logon": "Sign-in duration",
    "hang_duration": "Hang duration",
    "probe_latency": "Web app latency",
    "app_hang_rate": "App hangs",
    "app_crash_rate": "App crashes",
    "system_crash_rate": "System crashes",
    "probe_failure_rate": "Web app failures",
    "cpu_pressure": "CPU pressure",
    "memory_pressure": "Memory pressure",
    "io_pressure": "I/O pressure",
    "sentiment": "Sentiment",
}
_COMPONENT_LABELS: Final = {
    "boot": "Slow boots",
    "logon": "Slow sign-ins",
    "hang": "App hangs",
    "app_crash": "App crashes",
    "system_crash": "System crashes",
}


def _device_table(
    repo: DashboardRepository,
    ctx: _Context,
    *,
    name: str = "devices",
    title: str = "Devices",
    app: str | None = None,
    csv_all: bool = False,
    default_sort: str = "score",
) -> Table:
    """A device table sorted and paged in SQL (100,000 devices stay in the database)."""
    f = ctx.filters
    sort = f.sort if f.sort in DEVICE_SORTS else default_sort
    desc = f.desc if f.sort in DEVICE_SORTS else False
    offset = (f.page - 1) * PAGE_SIZE
    if csv_all:
        rows, total = repo.devices_page(
            ctx.scope, sort=sort, descending=desc, limit=None, offset=0, app=app
        )
    else:
        scope = ctx.scope
        order = _cached(
            repo,
            scope,
            "device-order",
            lambda: repo.device_order(scope, sort=sort, descending=desc, app=app),
            sort,
            desc,
            app,
        )
        total = len(order)
        rows = repo.device_rows(scope, order[offset : offset + PAGE_SIZE])
    shared = f.shared()
    for r in rows:
        r["href"] = f"/devices/{r['id']}{shared}"
        r["site"] = (r.pop("tags") or {}).get("site")
    table = Table(
        name,
        title,
        [
            Column("hostname", "Hostname", link="href"),
            Column("persona", "Persona"),
            Column("site", "Site"),
            Column("os", "OS"),
            Column("score", "Mean score (0\u2013100)", "score"),
            Column("time_lost_min", "Time lost (min)", "minutes"),
            Column("days", "Days scored", "int"),
            Column("last_seen_at", "Last seen (UTC)", "datetime"),
        ],
        rows,
        total=total,
        page=f.page,
        sort=sort,
        desc=desc,
        sorted_in_sql=not csv_all,
        empty="No scored device in this period.",
    )
    return table


# -- pages -----------------------------------------------------------------------------


def overview_page(
    session: Session, identity: Identity, filters: Filters, *, csv_all: bool = False
) -> dict[str, Any]:
    """The overview: fleet score and trend, persona cards, alerts, time lost, survey pulse."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, filters)
    scope = ctx.scope
    cube = _cached(repo, scope, "cube", lambda: repo.daily(scope, site=True))
    daily = _rollup(cube, ("day", "persona"))
    fleet_days = _by_day(daily)
    persona_days = _by_day(daily, "persona")
    fleet = _Agg()
    for r in daily:
        fleet.add(r)
    fleet.peak = max((a.n for a in fleet_days.values()), default=0)
    fleet_series = _daily_series(fleet_days, ctx.days)
    ref = _reference_day(fleet_days, scope.end)
    last = fleet_days.get(ref)
    persona_names = sorted({str(r["persona"]) for r in daily})
    cards = []
    persona_rows: list[dict[str, Any]] = []
    shared = ctx.filters.shared()
    for name in persona_names:
        by_day: dict[date, _Agg] = {
            day: a for (label, day), a in persona_days.items() if label == name
        }
        total = _Agg()
        for r in daily:
            if r["persona"] == name:
                total.add(r)
        total.peak = max((a.n for a in by_day.values()), default=0)
        series = _daily_series(by_day, ctx.days)
        latest = by_day.get(ref) or _Agg()
        href = f"/personas/{name}{shared}"
        cards.append(
            {
                "name": name,
                "href": href,
                "enough": total.enough,
                "score": total.score,
                "trend": _trend(_upto(series, ctx.days, ref)),
                "sparkline": charts.sparkline(
                    series, label=f"{name}: daily score (0\u2013100)", unit=""
                ),
                "share_frustrating": latest.share_frustrating,
                "devices": latest.n,
                "time_lost_min": total.time_lost_min,
            }
        )
        persona_rows.append(
            {
                "persona": name,
                "href": href,
                "devices": latest.n,
                "score": total.score,
                "trend": _trend(_upto(series, ctx.days, ref)),
                "share_good": latest.share_good,
                "share_tolerating": latest.share_tolerating,
                "share_frustrating": latest.share_frustrating,
                "time_lost_min": total.time_lost_min,
            }
        )
    apps = _cached(repo, scope, "apps", lambda: repo.apps(scope))
    components, points = _cached(repo, scope, "losses", lambda: repo.losses(scope))
    site_totals: dict[str, _Agg] = defaultdict(_Agg)
    for r in cube:
        site_totals[str(r["site"]) or "(no site)"].add(r)
    top_apps = sorted(apps, key=lambda a: -float(a["time_lost_min"] or 0))[:8]
    top_sites = sorted(site_totals.items(), key=lambda kv: -kv[1].time_lost_min)[:8]
    top_metrics = sorted(points.items(), key=lambda kv: -kv[1])[:8]
    alerts = _alert_summary(repo, ctx.tenant)
    pulse = _pulse(fleet_days, ctx.days, fleet)
    tables = {
        "personas": _table(
            "personas",
            "Personas",
            [
                Column("persona", "Persona", link="href"),
                Column("devices", "Devices scored (last day)", "int"),
                Column("score", "Mean score (0\u2013100)", "score"),
                Column("trend", "Trend (points)", "delta"),
                Column("share_good", "Good (% of devices)", "pct"),
                Column("share_tolerating", "Tolerating (%)", "pct"),
                Column("share_frustrating", "Frustrated (%)", "pct"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            persona_rows,
            ctx.filters,
            default_sort="score",
            default_desc=False,
        ),
        "apps": _table(
            "apps",
            "Applications by time lost",
            [
                Column("app_name", "Application", link="href"),
                Column("device_days", "Device-days", "int"),
                Column("score", "Mean app score (0\u2013100)", "score"),
                Column("hangs", "Hangs", "int"),
                Column("crashes", "Crashes", "int"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            [{**a, "href": f"/apps/{a['app_name']}{shared}"} for a in apps],
            ctx.filters,
            default_sort="time_lost_min",
            default_desc=True,
            sort_param=False,
        ),
        "sites": _table(
            "sites",
            "Sites",
            [
                Column("site", "Site", link="href"),
                Column("device_days", "Device-days scored", "int"),
                Column("score", "Mean score (0\u2013100)", "score"),
                Column("share_frustrating", "Frustrated device-days (%)", "pct"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            [
                {
                    "site": name,
                    "href": f"/groups/site/{name}{shared}" if name != "(no site)" else None,
                    "device_days": a.n,
                    "score": a.score,
                    "share_frustrating": a.share_frustrating,
                    "time_lost_min": a.time_lost_min,
                }
                for name, a in site_totals.items()
            ],
            ctx.filters,
            default_sort="time_lost_min",
            default_desc=True,
            sort_param=False,
        ),
    }
    return {
        **ctx.base(),
        "page_title": "Overview",
        "fleet": {
            "score": fleet.score,
            "enough": fleet.enough,
            "trend": _trend(_upto(fleet_series, ctx.days, ref)),
            "devices": last.n if last else 0,
            "day": ref,
            "share_frustrating": last.share_frustrating if last else None,
            "time_lost_min": fleet.time_lost_min,
        },
        "fleet_chart": _score_chart(
            ctx.days,
            [charts.Series("Fleet score", fleet_series)]
            + [
                charts.Series(
                    n,
                    _daily_series({d: a for (p, d), a in persona_days.items() if p == n}, ctx.days),
                    dashed=True,
                )
                for n in persona_names[:5]
            ],
            "Experience score per day: fleet and personas",
        ),
        "band_chart": charts.band_bars(
            [
                (
                    str(r["persona"]),
                    r["share_good"],
                    r["share_tolerating"],
                    r["share_frustrating"],
                )
                for r in persona_rows
            ],
            title=f"Devices per score band on {ref:%b %d} (share of scored devices)",
        )
        if persona_rows
        else None,
        "cards": cards,
        "alerts": alerts,
        "apps_chart": charts.hbar_chart(
            [(str(a["app_name"]), float(a["time_lost_min"] or 0)) for a in top_apps],
            title="Time lost by application",
            unit="min",
            links=[f"/apps/{a['app_name']}{shared}" for a in top_apps],
        ),
        "components_chart": charts.hbar_chart(
            [
                (_COMPONENT_LABELS.get(k, k), v)
                for k, v in sorted(components.items(), key=lambda kv: -kv[1])
            ],
            title="Time lost by cause",
            unit="min",
            colour=charts.PALETTE[1],
        ),
        "metrics_chart": charts.hbar_chart(
            [(_METRIC_LABELS.get(m, m), v) for m, v in top_metrics if v > 0],
            title="Score points lost per device-day, by metric",
            unit="points",
            colour=charts.PALETTE[4],
        ),
        "sites_chart": charts.hbar_chart(
            [(name, a.time_lost_min) for name, a in top_sites],
            title="Time lost by site",
            unit="min",
            colour=charts.PALETTE[2],
            links=[
                f"/groups/site/{name}{shared}" if name != "(no site)" else None
                for name, _ in top_sites
            ],
        ),
        "pulse": pulse,
        "tables": tables,
    }


def _pulse(by_day: Mapping[date, _Agg], days: Sequence[date], fleet: _Agg) -> dict[str, Any]:
    """The survey pulse: the sentiment sub-score (0\u2013100) of the fleet over the period."""
    series = _daily_series(by_day, days, "sentiment")
    answered = fleet.subs.get("sentiment", [0.0, 0.0])[1]
    return {
        "score": fleet.sub("sentiment"),
        "device_days": int(answered),
        "trend": _trend(series),
        "sparkline": charts.sparkline(
            series, label="Sentiment sub-score per day (0\u2013100)", colour="#8e44ad"
        ),
    }


def _alert_summary(repo: DashboardRepository, tenant: uuid.UUID | None) -> dict[str, Any]:
    counts = repo.alert_counts(tenant)
    open_by = {s: counts.get(("open", s), 0) for s in SEVERITIES}
    return {
        "open": open_by,
        "open_total": sum(open_by.values()),
        "acknowledged": sum(v for (st, _), v in counts.items() if st == "acknowledged"),
        "resolved": sum(v for (st, _), v in counts.items() if st == "resolved"),
    }


def _scope_page(
    session: Session,
    identity: Identity,
    filters: Filters,
    *,
    kind: str,
    name: str,
    scope: Scope,
    ctx: _Context,
    csv_all: bool,
) -> dict[str, Any]:
    """Persona and group pages: score and sub-scores over time, bands, worst devices, apps."""
    repo = DashboardRepository(session)
    daily = _cached(repo, scope, "daily-fleet", lambda: repo.daily(scope, by=None))
    by_day = _by_day(daily)
    total = _Agg()
    for r in daily:
        total.add(r)
    total.peak = max((a.n for a in by_day.values()), default=0)
    if not daily and kind != "persona":
        raise NotFound(f"no {kind} {name!r} with scores in this period")
    sub_series = [
        charts.Series(sub, _daily_series(by_day, ctx.days, sub), dashed=True) for sub in SUBSCORES
    ]
    last_day = _reference_day(by_day, scope.end)
    hist = _cached(repo, scope, "hist", lambda: repo.histogram(scope, last_day), last_day)
    apps = _cached(repo, scope, "apps", lambda: repo.apps(scope))
    components, points = _cached(repo, scope, "losses", lambda: repo.losses(scope))
    sub_ctx = replace(ctx, scope=scope)
    devices = _device_table(
        repo, sub_ctx, name="devices", title="Devices, worst first", csv_all=csv_all
    )
    shared = ctx.filters.shared()
    enough = total.enough
    per_day_rows = [
        {
            "day": d,
            "devices": by_day[d].n if d in by_day else 0,
            "score": by_day[d].score if d in by_day else None,
            **{s: by_day[d].sub(s) if d in by_day else None for s in SUBSCORES},
            "share_frustrating": by_day[d].share_frustrating if d in by_day else None,
            "time_lost_min": by_day[d].time_lost_min if d in by_day else None,
        }
        for d in ctx.days
    ]
    tables = {
        "days": _table(
            "days",
            "Per day",
            [
                Column("day", "Day (UTC)", "day"),
                Column("devices", "Devices scored", "int"),
                Column("score", "Score (0\u2013100)", "score"),
                *[Column(s, f"{s.title()} (0\u2013100)", "score") for s in SUBSCORES],
                Column("share_frustrating", "Frustrated (%)", "pct"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            per_day_rows,
            ctx.filters,
            default_sort="day",
            default_desc=False,
            sort_param=False,
        ),
        "apps": _table(
            "apps",
            "Applications",
            [
                Column("app_name", "Application", link="href"),
                Column("device_days", "Device-days", "int"),
                Column("score", "Mean app score (0\u2013100)", "score"),
                Column("hangs", "Hangs", "int"),
                Column("crashes", "Crashes", "int"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            [{**a, "href": f"/apps/{a['app_name']}{shared}"} for a in apps],
            ctx.filters,
            default_sort="time_lost_min",
            default_desc=True,
            sort_param=False,
        ),
        "devices": devices,
    }
    series = [charts.Series("score", _daily_series(by_day, ctx.days)), *sub_series]
    return {
        **ctx.base(),
        "page_title": f"{kind.title()} {name}",
        "kind": kind,
        "name": name,
        "enough": enough,
        "score": total.score,
        "subs": {s: total.sub(s) for s in SUBSCORES},
        "trend": _trend(_upto(_daily_series(by_day, ctx.days), ctx.days, last_day)),
        "devices_scored": by_day[last_day].n if last_day in by_day else 0,
        "time_lost_min": total.time_lost_min,
        "score_chart": _score_chart(
            ctx.days, series, f"{kind.title()} {name}: score and sub-scores per day"
        )
        if enough
        else None,
        "hist_chart": charts.histogram(
            [(float(b), float(b + 10), dict(hist).get(b, 0)) for b in range(0, 100, 10)],
            title=f"Distribution of device scores on {last_day:%b %d}",
            x_label="device score",
            unit="0\u2013100",
            width=560,
            height=300,
        )
        if enough
        else None,
        "components_chart": charts.hbar_chart(
            [
                (_COMPONENT_LABELS.get(k, k), v)
                for k, v in sorted(components.items(), key=lambda kv: -kv[1])
            ],
            title="Time lost by cause",
            unit="min",
            colour=charts.PALETTE[1],
        ),
        "metrics_chart": charts.hbar_chart(
            [
                (_METRIC_LABELS.get(m, m), v)
                for m, v in sorted(points.items(), key=lambda kv: -kv[1])[:8]
                if v > 0
            ],
            title="Score points lost per device-day, by metric",
            unit="points",
            colour=charts.PALETTE[4],
        ),
        "tables": tables,
    }


def persona_page(
    session: Session, identity: Identity, filters: Filters, name: str, *, csv_all: bool = False
) -> dict[str, Any]:
    """One persona: its score over time with sub-scores, distribution, worst devices, apps.

    404 when the persona is neither built in nor defined or used in the visible tenant.
    """
    ctx = _context(session, identity, filters)
    known = set(builtin_personas()) | set(ctx.personas)
    if ctx.tenant is not None:
        known |= {p.name for p in personas_for_tenant(session, ctx.tenant)}
    if name not in known:
        raise NotFound(f"no persona {name!r}")
    scope = replace(ctx.scope, persona=name)
    return _scope_page(
        session, identity, filters, kind="persona", name=name, scope=scope, ctx=ctx, csv_all=csv_all
    )


def group_page(
    session: Session,
    identity: Identity,
    filters: Filters,
    tag: str,
    name: str,
    *,
    csv_all: bool = False,
) -> dict[str, Any]:
    """One device group (``group`` tag) or site (``site`` tag); 404 when the visible tenant
    has no device with that tag value."""
    if tag not in ("group", "site"):
        raise NotFound("groups are by 'group' or 'site' tag")
    ctx = _context(session, identity, filters)
    values = ctx.groups if tag == "group" else ctx.sites
    if name not in values:
        raise NotFound(f"no {tag} {name!r}")
    scope = replace(ctx.scope, group=name) if tag == "group" else replace(ctx.scope, site=name)
    return _scope_page(
        session, identity, filters, kind=tag, name=name, scope=scope, ctx=ctx, csv_all=csv_all
    )


def app_page(
    session: Session, identity: Identity, filters: Filters, name: str, *, csv_all: bool = False
) -> dict[str, Any]:
    """One application: its score, hangs and crashes per day, versions, devices."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, filters)
    scope = ctx.scope
    daily = _cached(repo, scope, "app-daily", lambda: repo.app_daily(scope, name), name)
    if not daily:
        raise NotFound(f"no application {name!r} with scores in this period")
    by_day = {r["day"]: r for r in daily}
    total_n = sum(int(r["n"] or 0) for r in daily)
    devices_n = _cached(
        repo, scope, "app-devices", lambda: repo.app_devices_count(scope, name), name
    )
    enough = devices_n >= MIN_DEVICES

    def day_score(d: date) -> float | None:
        r = by_day.get(d)
        return _mean(r["score_sum"], r["n"]) if r and int(r["n"] or 0) >= MIN_DEVICES else None

    since = datetime.combine(scope.end - timedelta(days=6), datetime.min.time(), tzinfo=UTC)
    versions = repo.app_versions(ctx.tenant, name, since)
    devices = _device_table(
        repo, ctx, name="devices", title=f"Devices using {name}", app=name, csv_all=csv_all
    )
    hangs = [float(by_day[d]["hangs"]) if d in by_day else None for d in ctx.days]
    crashes = [float(by_day[d]["crashes"]) if d in by_day else None for d in ctx.days]
    day_rows = [
        {
            "day": d,
            "devices": int(by_day[d]["n"] or 0) if d in by_day else 0,
            "score": day_score(d),
            "share_frustrating": _share(by_day[d]["frustrating"], by_day[d]["n"])
            if d in by_day and int(by_day[d]["n"] or 0) >= MIN_DEVICES
            else None,
            "hangs": int(by_day[d]["hangs"]) if d in by_day else 0,
            "crashes": int(by_day[d]["crashes"]) if d in by_day else 0,
            "time_lost_min": float(by_day[d]["time_lost_min"] or 0) if d in by_day else 0.0,
        }
        for d in ctx.days
    ]
    tables = {
        "days": _table(
            "days",
            "Per day",
            [
                Column("day", "Day (UTC)", "day"),
                Column("devices", "Devices", "int"),
                Column("score", "App score (0\u2013100)", "score"),
                Column("share_frustrating", "Frustrated (%)", "pct"),
                Column("hangs", "Hangs", "int"),
                Column("crashes", "Crashes", "int"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            day_rows,
            ctx.filters,
            default_sort="day",
            default_desc=False,
            sort_param=False,
        ),
        "versions": _table(
            "versions",
            "Versions compared (hangs and crashes, last 7 days)",
            [
                Column("version", "Version"),
                Column("devices", "Devices with events", "int"),
                Column("hangs", "Hangs", "int"),
                Column("crashes", "Crashes", "int"),
                Column("per_device", "Events per affected device", "float"),
            ],
            [
                {
                    **v,
                    "per_device": (v["hangs"] + v["crashes"]) / v["devices"]
                    if v["devices"]
                    else None,
                }
                for v in versions
            ],
            ctx.filters,
            default_sort="crashes",
            default_desc=True,
            sort_param=False,
            empty="No hang or crash of this application in the last 7 days "
            "(while raw events are kept).",
        ),
        "devices": devices,
    }
    score_series = [day_score(d) for d in ctx.days]
    return {
        **ctx.base(),
        "page_title": f"Application {name}",
        "name": name,
        "enough": enough,
        "devices_n": devices_n,
        "device_days": total_n,
        "score": _mean(sum(float(r["score_sum"] or 0) for r in daily), total_n) if enough else None,
        "hangs": int(sum(int(r["hangs"] or 0) for r in daily)),
        "crashes": int(sum(int(r["crashes"] or 0) for r in daily)),
        "time_lost_min": float(sum(float(r["time_lost_min"] or 0) for r in daily)),
        "score_chart": _score_chart(
            ctx.days,
            [charts.Series(f"{name} score", score_series)],
            f"{name}: app score per day",
            width=640,
        )
        if enough
        else None,
        "events_chart": charts.line_chart(
            _labels(ctx.days),
            [
                charts.Series("hangs", hangs, colour=charts.PALETTE[1]),
                charts.Series("crashes", crashes, colour=charts.PALETTE[4]),
            ],
            title=f"{name}: hangs and crashes per day",
            y_label="events",
            unit="count",
            width=640,
            height=300,
        ),
        "tables": tables,
    }


def devices_page(
    session: Session, identity: Identity, filters: Filters, *, csv_all: bool = False
) -> dict[str, Any]:
    """Every scored device of the scope: sortable, paged, exportable."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, filters)
    table = _device_table(
        repo, ctx, csv_all=csv_all, title="Devices, by mean score over the period"
    )
    return {**ctx.base(), "page_title": "Devices", "tables": {"devices": table}}


_EVENT_LABELS: Final = {
    "boot": "Boot",
    "logon": "Sign-in",
    "app_hang": "App hang",
    "app_crash": "App crash",
    "system_crash": "System crash",
    "software_change": "Change",
    "survey_response": "Survey answer",
    "alert": "Alert",
}


def _describe(kind: str, data: Mapping[str, Any]) -> str:
    if kind == "boot":
        text = f"{data.get('boot_kind', 'boot')}"
        if isinstance(data.get("boot_duration_s"), int | float):
            text += f" in {data['boot_duration_s']:.0f} s"
        return text
    if kind == "logon":
        value = data.get("logon_duration_s")
        return f"sign-in in {value:.0f} s" if isinstance(value, int | float) else "sign-in"
    if kind == "app_hang":
        dur = data.get("hang_duration_s")
        text = f"{data.get('app_name', '?')} {data.get('app_version', '')}".strip()
        return text + (f" hung {dur:.0f} s" if isinstance(dur, int | float) else " hung")
    if kind == "app_crash":
        module = data.get("faulting_module")
        text = f"{data.get('app_name', '?')} {data.get('app_version', '')}".strip() + " crashed"
        return text + (f" in {module}" if module else "")
    if kind == "system_crash":
        return str(data.get("crash_kind") or "system crash")
    if kind == "software_change":
        name = data.get("name") or data.get("package") or data.get("title") or "software"
        version = data.get("version") or data.get("to_version") or ""
        return f"{data.get('change', data.get('kind', 'change'))} {name} {version}".strip()
    if kind == "survey_response":
        outcome = data.get("outcome", "answered")
        value = data.get("value")
        return f"{outcome}" + (f": {value}" if value is not None and outcome == "answered" else "")
    return kind


def device_page(
    session: Session, identity: Identity, filters: Filters, device_id: str
) -> dict[str, Any]:
    """One device: current score with its explanation, score history, timeline (404 outside
    the visible tenant)."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, replace(filters, persona=None, group=None, site=None))
    try:
        key = uuid.UUID(device_id)
    except ValueError:
        raise NotFound("no such device") from None
    device = repo.device(key)
    if device is None or (ctx.tenant is not None and device.tenant_id != ctx.tenant):
        raise NotFound("no such device")
    end = ctx.scope.end
    history_days = [end - timedelta(days=29) + timedelta(days=k) for k in range(30)]
    rows = {r.day: r for r in repo.device_scores(device.id, history_days[0], end)}
    try:
        explanation: dict[str, Any] | None = explain(
            session, identity, "device", str(device.id), tenant=ctx.tenant, start=None, end=None
        )
    except NotFound:
        explanation = None
    since = utcnow() - timedelta(days=14)
    timeline: list[dict[str, Any]] = [
        {
            "ts": ts,
            "type": kind,
            "label": _EVENT_LABELS.get(kind, kind),
            "text": _describe(kind, data),
            "href": None,
        }
        for kind, ts, data in repo.timeline(device.id, since, 300)
    ]
    for a in repo.device_alerts(device):
        timeline.append(
            {
                "ts": a.detected_at,
                "type": "alert",
                "label": "Alert",
                "text": f"[{a.severity}] {a.title} ({a.status})",
                "href": f"/alerts/{a.id}",
            }
        )
    timeline.sort(key=lambda e: e["ts"], reverse=True)
    series = [
        charts.Series("score", [rows[d].score if d in rows else None for d in history_days]),
        *[
            charts.Series(
                s, [getattr(rows[d], s) if d in rows else None for d in history_days], dashed=True
            )
            for s in SUBSCORES
        ],
    ]
    contributors = (explanation or {}).get("contributors", [])
    tables = {
        "timeline": Table(
            "timeline",
            "Timeline (last 14 days, newest first)",
            [
                Column("ts", "Time (UTC)", "datetime"),
                Column("label", "Event"),
                Column("text", "Detail", link="href"),
            ],
            timeline,
            total=len(timeline),
            page=min(ctx.filters.page, max(1, math.ceil(len(timeline) / 50))),
            page_size=50,
            empty="No event in the last 14 days.",
        ),
        "contributors": Table(
            "contributors",
            "Why this score: points lost per metric",
            [
                Column("metric_label", "Metric"),
                Column("metric_score", "Metric score (0\u2013100)", "score"),
                Column("points_lost", "Points lost", "float"),
            ],
            [
                {**c, "metric_label": _METRIC_LABELS.get(c["metric"], c["metric"])}
                for c in contributors
            ],
            total=len(contributors),
            empty="Nothing cost this device points on its latest day.",
        ),
        "apps": Table(
            "apps",
            "Applications on its latest day",
            [
                Column("app", "Application"),
                Column("score", "App score (0\u2013100)", "score"),
                Column("hangs", "Hangs", "int"),
                Column("crashes", "Crashes", "int"),
                Column("time_lost_min", "Time lost (min)", "minutes"),
            ],
            list((explanation or {}).get("apps", [])),
            total=len((explanation or {}).get("apps", [])),
            empty="No application data on its latest day.",
        ),
    }
    return {
        **ctx.base(),
        "page_title": device.hostname,
        "device": device,
        "explanation": explanation,
        "score_chart": _score_chart(
            history_days, series, f"{device.hostname}: daily score, last 30 days"
        ),
        "contributors_chart": charts.hbar_chart(
            [
                (_METRIC_LABELS.get(c["metric"], c["metric"]), float(c["points_lost"] or 0))
                for c in contributors
            ],
            title="Points lost by metric (latest day)",
            unit="points",
            colour=charts.PALETTE[4],
        )
        if contributors
        else None,
        "tables": tables,
    }


def _alert_row(a: Any, hostnames: Mapping[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "id": a.id,
        "href": f"/alerts/{a.id}",
        "severity": a.severity,
        "title": a.title,
        "scope": f"{a.scope}: {_scope_name(a, hostnames)}",
        "metric": a.metric,
        "status": a.status,
        "onset": a.onset,
        "detected_at": a.detected_at,
        "affected_count": a.affected_count,
    }


def _scope_name(a: Any, hostnames: Mapping[uuid.UUID, str]) -> str:
    if a.scope == "device" and (key := _uuid(a.scope_key)) is not None:
        return hostnames.get(key, a.scope_key)
    return str(a.scope_key)


def _uuid(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None


def alerts_page(session: Session, identity: Identity, filters: Filters) -> dict[str, Any]:
    """Alerts by status (open / acknowledged / resolved / all) with severity counts."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, filters)
    statuses = ALERT_STATUSES if ctx.filters.status == "all" else (ctx.filters.status,)
    alerts = repo.alerts(ctx.tenant, statuses)
    device_ids = [u for a in alerts if a.scope == "device" and (u := _uuid(a.scope_key))]
    hostnames = DeviceRepository(repo.session).hostnames(device_ids)
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    rows = [{**_alert_row(a, hostnames), "rank": rank.get(a.severity, 9)} for a in alerts]
    table = _table(
        "alerts",
        f"Alerts: {ctx.filters.status}",
        [
            Column("severity", "Severity"),
            Column("title", "Alert", link="href"),
            Column("scope", "Scope"),
            Column("metric", "Metric"),
            Column("status", "Status"),
            Column("onset", "Onset (UTC)", "datetime"),
            Column("detected_at", "Detected (UTC)", "datetime"),
            Column("affected_count", "Devices affected", "int"),
        ],
        rows,
        ctx.filters,
        default_sort="detected_at",
        default_desc=True,
        empty="No alerts.",
    )
    return {
        **ctx.base(),
        "page_title": "Alerts",
        "summary": _alert_summary(repo, ctx.tenant),
        "statuses": (*ALERT_STATUSES, "all"),
        "tables": {"alerts": table},
        "can_act": identity.role is not Role.VIEWER,
    }


def _evidence_chart(alert: Any) -> str | None:
    series = (alert.evidence or {}).get("series")
    if isinstance(series, list) and series and isinstance(series[0], dict):
        keys = [k for k, v in series[0].items() if k != "day" and isinstance(v, int | float)]
        if keys:
            labels = [str(p.get("day", i))[5:10] or str(i) for i, p in enumerate(series)]
            lines = [
                charts.Series(
                    k, [p.get(k) if isinstance(p.get(k), int | float) else None for p in series]
                )
                for k in keys
            ]
            is_score = keys == ["score"]
            return charts.line_chart(
                labels,
                lines,
                title=f"Evidence: {alert.metric} per day",
                y_label=keys[0] if len(keys) == 1 else alert.metric,
                unit="0\u2013100" if is_score else "value",
                y_min=0 if is_score else None,
                y_max=100 if is_score else None,
                bands=charts.SCORE_BANDS if is_score else (),
                width=640,
                height=300,
            )
    if alert.baseline is not None and alert.current is not None:
        return charts.hbar_chart(
            [("baseline", float(alert.baseline)), ("now", float(alert.current))],
            title=f"Evidence: {alert.metric}, baseline vs now",
            unit=alert.metric,
        )
    return None


def _flat(prefix: str, value: Any, out: list[dict[str, Any]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out.append({"field": prefix, "value": f"{len(value)} items"})
    else:
        out.append({"field": prefix, "value": value})


def alert_page(
    session: Session, identity: Identity, filters: Filters, alert_id: str
) -> dict[str, Any]:
    """One alert: evidence, affected devices, suspected change (404 outside the tenant)."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, filters)
    key = _uuid(alert_id)
    alert = repo.alert(key) if key else None
    if alert is None or (ctx.tenant is not None and alert.tenant_id != ctx.tenant):
        raise NotFound("no such alert")
    ids = [u for s in (alert.affected_device_ids or []) if (u := _uuid(str(s)))]
    if alert.scope == "device" and (u := _uuid(alert.scope_key)) and u not in ids:
        ids.insert(0, u)
    hostnames = DeviceRepository(repo.session).hostnames(ids)
    affected = [
        {"hostname": hostnames.get(u, str(u)), "device_id": u, "href": f"/devices/{u}"}
        for u in ids
        if u in hostnames
    ]
    first_ticket = first_ticket_at(session, alert.id)
    tickets = [
        {
            "external_id": t.external_id,
            "opened_at": t.opened_at,
            "category": t.category,
            "summary": t.summary,
            "device_hostname": t.device_hostname,
            "lead_h": (t.opened_at - alert.detected_at).total_seconds() / 3600,
        }
        for t in tickets_for_alert(session, alert.id)
    ]
    evidence_rows: list[dict[str, Any]] = []
    _flat("", {k: v for k, v in (alert.evidence or {}).items() if k != "series"}, evidence_rows)
    change_rows: list[dict[str, Any]] = []
    if alert.suspected_change:
        _flat("", alert.suspected_change, change_rows)
    return {
        **ctx.base(),
        "page_title": f"Alert: {alert.title}",
        "alert": alert,
        "evidence_chart": _evidence_chart(alert),
        "first_ticket_at": first_ticket,
        "lead_h": (first_ticket - alert.detected_at).total_seconds() / 3600
        if first_ticket is not None
        else None,
        "can_act": identity.role is not Role.VIEWER,
        "tables": {
            "devices": Table(
                "devices",
                "Affected devices",
                [Column("hostname", "Hostname", link="href"), Column("device_id", "Device id")],
                affected,
                total=len(affected),
                page_size=100,
                empty="No device listed.",
            ),
            "tickets": Table(
                "tickets",
                "Tickets matched to this alert",
                [
                    Column("external_id", "Ticket"),
                    Column("opened_at", "Opened (UTC)", "datetime"),
                    Column("lead_h", "Alert lead (h, + = before the ticket)", "delta"),
                    Column("device_hostname", "Device"),
                    Column("category", "Category"),
                    Column("summary", "Summary"),
                ],
                tickets,
                total=len(tickets),
                page_size=100,
                empty="No ticket matched to this alert (yet).",
            ),
            "evidence": Table(
                "evidence",
                "Evidence",
                [Column("field", "Figure"), Column("value", "Value")],
                evidence_rows,
                total=len(evidence_rows),
                page_size=100,
                empty="No evidence recorded.",
            ),
            "change": Table(
                "change",
                "Suspected change",
                [Column("field", "Figure"), Column("value", "Value")],
                change_rows,
                total=len(change_rows),
                page_size=100,
                empty="No change explains it.",
            ),
        },
    }


def set_alert_status(session: Session, identity: Identity, alert_id: str, action: str) -> uuid.UUID:
    """Acknowledge or resolve an alert (analysts and admins of its tenant); commits.

    The rules (who may, which transitions, who and when is recorded) are the alerts API's
    (:func:`collector.alerts.service.set_status`), so the dashboard and the API agree.
    """
    if action not in ("acknowledge", "resolve"):
        raise UnprocessableEntity("action is acknowledge or resolve", field="action")
    key = _uuid(alert_id)
    if key is None:
        raise NotFound("no such alert")
    alerts_service.set_status(session, identity, key, action, utcnow())
    return key


def surveys_page(session: Session, identity: Identity, filters: Filters) -> dict[str, Any]:
    """Campaigns with response rates, results with 95 % intervals, and the priming effect."""
    repo = DashboardRepository(session)
    ctx = _context(session, identity, filters)
    rows = []
    details = []
    for c in repo.campaigns(ctx.tenant):
        results = campaign_results(session, c.id, c.tenant_id)
        score = results.score
        prim = results.priming
        row = {
            "campaign": c.name,
            "id": c.id,
            "question": c.question.get("text", ""),
            "type": c.question.get("type", ""),
            "trigger": c.trigger.get("kind", ""),
            "prompts": results.prompts,
            "answered": results.counts.get("answered", 0),
            "response_rate": results.response_rate,
            "mean": score.mean,
            "ci_low": score.ci95.low if score.ci95 else None,
            "ci_high": score.ci95.high if score.ci95 else None,
            "note": score.note,
            "priming": prim.difference,
            "priming_low": prim.ci95.low if prim.ci95 else None,
            "priming_high": prim.ci95.high if prim.ci95 else None,
            "priming_note": prim.note,
        }
        rows.append(row)
        trend = results.trend
        labels = [t.week_start.strftime("%b %d") for t in trend]
        chart = (
            charts.line_chart(
                labels,
                [
                    charts.Series(
                        "mean answer",
                        [t.score.mean for t in trend],
                        low=[t.score.ci95.low if t.score.ci95 else None for t in trend],
                        high=[t.score.ci95.high if t.score.ci95 else None for t in trend],
                    )
                ],
                title=f"{c.name}: mean answer per week, with 95 % interval",
                y_label="answer",
                unit="0\u2013100",
                x_label="week starting (UTC)",
                y_min=0,
                y_max=100,
                width=640,
                height=300,
            )
            if trend
            else None
        )
        by_trigger = [
            {
                "trigger": kind,
                "prompts": o.prompts,
                "response_rate": o.response_rate,
                "n": o.score.n,
                "mean": o.score.mean,
                "ci_low": o.score.ci95.low if o.score.ci95 else None,
                "ci_high": o.score.ci95.high if o.score.ci95 else None,
                "note": o.score.note,
            }
            for kind, o in results.by_trigger.items()
        ]
        details.append({"row": row, "chart": chart, "by_trigger": by_trigger})
    table = _table(
        "campaigns",
        "Campaigns",
        [
            Column("campaign", "Campaign"),
            Column("question", "Question"),
            Column("trigger", "Trigger"),
            Column("prompts", "Prompts", "int"),
            Column("response_rate", "Response rate (%)", "pct"),
            Column("mean", "Mean answer (0\u2013100)", "score"),
            Column("ci_low", "95 % CI low", "score"),
            Column("ci_high", "95 % CI high", "score"),
            Column("priming", "Priming: event \u2212 control (points)", "delta"),
            Column("note", "Note"),
        ],
        rows,
        ctx.filters,
        default_sort="prompts",
        default_desc=True,
        empty="No survey campaign yet.",
    )
    return {
        **ctx.base(),
        "page_title": "Surveys",
        "tables": {"campaigns": table},
        "details": details,
    }


# -- CSRF ------------------------------------------------------------------------------


def csrf_token(session_secret: str, server_key: str) -> str:
    """The CSRF token of a dashboard session: an HMAC of the session secret.

    Only the holder of the (HttpOnly) session cookie and the server can compute it; the
    server key (``DEXSCOPE_DASHBOARD_CSRF_KEY``) is mixed in so a token is not portable
    between deployments. Stateless, so any collector process can check it.
    """
    key = hashlib.sha256(b"dexscope-csrf:" + server_key.encode()).digest()
    return hmac.new(key, session_secret.encode(), hashlib.sha256).hexdigest()


def verify_csrf(session_secret: str, server_key: str, token: str | None) -> bool:
    """Whether ``token`` is this session's CSRF token (constant-time comparison)."""
    if not token:
        return False
    return hmac.compare_digest(csrf_token(session_secret, server_key), token)


# -- XLAs and the MSP overview ---------------------------------------------------------------


def _xla_row(definition: Any, evaluation: Any, tenant_name: str | None) -> dict[str, Any]:
    figures = evaluation.figures if evaluation is not None else {}
    coverage = figures.get("coverage", {})
    target = figures.get("target") or {}
    share = target.get("share_of_devices_pct")
    goal = (
        f"{target.get('comparison', '')} {target.get('value', '')}"
        + (f" for {share:g} % of devices" if share is not None else " (mean)")
        if target
        else None
    )
    return {
        "xla": definition.name,
        "xla_id": str(definition.id),
        "tenant": tenant_name,
        "tenant_id": str(definition.tenant_id),
        "period": evaluation.period if evaluation else None,
        "status": evaluation.status.replace("_", " ") if evaluation else "not evaluated yet",
        "value": evaluation.value if evaluation else None,
        "target": goal,
        "margin": evaluation.margin if evaluation else None,
        "devices": coverage.get("devices_counted"),
        "coverage": (coverage.get("coverage_pct") or 0) / 100 if coverage else None,
        "sla": (figures.get("sla") or {}).get("status", "").replace("_", " ") or None,
        "view": (figures.get("watermelon") or "").replace("_", " ") or None,
        "version": definition.version,
    }


def xlas_page(session: Session, identity: Identity, filters: Filters) -> dict[str, Any]:
    """The XLAs of the tenant in view: the latest closed period's status (the running
    period beside it), the result by period, and the client report's downloads."""
    from collector.xlas.repository import XlaRepository

    ctx = _context(session, identity, filters)
    repo = XlaRepository(session)
    names = dict(ctx.tenants)
    rows, details = [], []
    for definition in repo.for_tenant(ctx.tenant):
        history = list(reversed(repo.evaluations(definition.id, limit=12)))
        # the latest closed period is the figure of record; the running one is shown beside
        closed = [e for e in history if e.final]
        latest = closed[-1] if closed else (history[-1] if history else None)
        running = history[-1] if history and history[-1] is not latest else None
        row = _xla_row(definition, latest, names.get(definition.tenant_id))
        rows.append(row)
        chart = (
            charts.line_chart(
                [e.period for e in history],
                [charts.Series("result", [e.value for e in history])],
                title=f"{definition.name}: result by period",
                y_label="result",
                x_label="period",
                y_min=0,
                width=640,
                height=240,
            )
            if sum(e.value is not None for e in history) > 1
            else None
        )
        reports = (
            {
                fmt: "/api/v1/reports/xla?"
                + urlencode(
                    {"tenant": str(definition.tenant_id), "period": latest.period, "format": fmt}
                )
                for fmt in ("html", "pdf", "csv", "json")
            }
            if latest is not None
            else {}
        )
        details.append(
            {
                "row": row,
                "chart": chart,
                "evaluation": latest,
                "running": running,
                "reports": reports,
            }
        )
    table = _table(
        "xlas",
        "XLAs",
        [
            Column("xla", "XLA"),
            Column("tenant", "Tenant"),
            Column("period", "Period"),
            Column("status", "Status"),
            Column("value", "Result", "float"),
            Column("target", "Target"),
            Column("margin", "Margin", "delta"),
            Column("devices", "Devices counted", "int"),
            Column("coverage", "Coverage (%)", "pct"),
            Column("sla", "SLA"),
            Column("view", "SLA vs XLA"),
        ],
        rows,
        ctx.filters,
        default_sort="xla",
        default_desc=False,
        empty="No XLA is defined: POST definitions to /api/v1/xlas or run "
        "`dexscope admin import-xlas FILE`.",
    )
    return {**ctx.base(), "page_title": "XLAs", "tables": {"xlas": table}, "details": details}


def msp_page(session: Session, identity: Identity, filters: Filters) -> dict[str, Any]:
    """Every tenant side by side (MSP staff only): XLA statuses, watermelons, open alerts."""
    from collector.xlas.service import msp_overview

    if identity.tenant_id is not None:
        raise Forbidden("the MSP overview is for the MSP's own staff")
    ctx = _context(session, identity, replace(filters, tenant=None))
    overview = msp_overview(session, utcnow())
    rows: list[dict[str, Any]] = []
    for t in overview.tenants:
        trend = [
            e.figures.get("trend", {}).get("delta")
            for e in t.evaluations
            if e.figures.get("trend", {}).get("delta") is not None
        ]
        rows.append(
            {
                "tenant": t.tenant_name,
                "tenant_link": "/xlas?" + urlencode({"tenant": str(t.tenant_id)}),
                "devices": t.devices,
                "xlas": t.xlas,
                "met": t.met,
                "missed": t.missed,
                "insufficient": t.insufficient,
                "watermelons": t.watermelons,
                "trend": sum(trend) / len(trend) if trend else None,
                "open_alerts": t.open_alerts,
                "alerts_link": "/alerts?" + urlencode({"tenant": str(t.tenant_id)}),
            }
        )
    table = _table(
        "tenants",
        "Tenants",
        [
            Column("tenant", "Tenant", link="tenant_link"),
            Column("devices", "Devices", "int"),
            Column("xlas", "XLAs", "int"),
            Column("met", "Met", "int"),
            Column("missed", "Missed", "int"),
            Column("insufficient", "Not enough data", "int"),
            Column("watermelons", "Watermelons", "int"),
            Column("trend", "Mean change vs previous period", "delta"),
            Column("open_alerts", "Open alerts", "int", link="alerts_link"),
        ],
        rows,
        ctx.filters,
        default_sort="missed",
        default_desc=True,
        empty="No tenant yet.",
    )
    bars = (
        charts.hbar_chart(
            [(t.tenant_name, float(t.missed)) for t in overview.tenants if t.xlas][:20],
            title="XLAs missed per tenant (latest period)",
            unit="XLAs",
        )
        if any(r["xlas"] for r in rows)
        else None
    )
    return {**ctx.base(), "page_title": "MSP overview", "tables": {"tenants": table}, "chart": bars}
