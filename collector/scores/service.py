"""The scoring job and the scores API: incremental daily rollups, aggregates, explanations.

**The job** (:func:`run_scoring`, registered as ``scores`` in ``collector.jobs``): per
tenant, find the device-days that received new data since the last run — events in batches
received after the watermark, or timestamped after the previous ``as_of`` — and rescore
exactly those from their raw events with the pure-numpy core. A survey answer also dirties
the days it carries into (28 days, up to ``as_of``). Rows are replaced, never added to, so a
re-run writes the same rows (idempotent), and only events with ``ts <= as_of`` are read (no
look-ahead). The watermark trails the job's start by ``scoring_receive_lag_s`` (2 minutes,
longer than any ingest transaction) so a batch still being committed by another collector
process when the job starts is picked up next time; those device-days are rescored then.

**The API** reads the rollups only: device-day rows, per persona / app / tenant aggregates
(mean, shares good / tolerating / frustrating, "not enough data" below 5 devices) with an
optional trailing 7- or 28-day window, and explanations down to the events.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.devices.models import Device
from collector.devices.repository import DeviceRepository
from collector.errors import NotFound, UnprocessableEntity
from collector.identity.roles import Identity
from collector.personas.service import default_persona_name, personas_for_tenant
from collector.scores.cache import OPEN_DAYS, CachedEvent, ScoringCache, TenantDays
from collector.scores.compute import (
    SCORED_TYPES,
    SURVEY_WINDOW_DAYS,
    Block,
    EventRow,
    day_start,
    score_block,
)
from collector.scores.repository import ScoresRepository
from collector.settings import Settings
from scoring.aggregate import MIN_DEVICES, aggregate, group_means
from scoring.personas import METRICS, SUBSCORES, Persona
from scoring.score import rolling_mean

__all__ = [
    "BLOCK_DEVICES",
    "LEVELS",
    "UNGROUPED",
    "Level",
    "explain",
    "list_scores",
    "run_scoring",
    "score_tenant",
]


BLOCK_DEVICES: Final = 500
"""Devices scored per block (one query, one numpy pass and one transaction each)."""

LEVELS: Final = ("device", "persona", "group", "app", "tenant")
"""The levels of ``GET /api/v1/scores``."""

Level = Literal["device", "persona", "group", "app", "tenant"]

UNGROUPED: Final = "ungrouped"
"""The group label of devices without a ``group`` tag."""

_EPS: Final = timedelta(microseconds=1)
_OTHER_TYPES: Final = tuple(t for t in SCORED_TYPES if t != "survey_response")


def _day(ts: datetime) -> date:
    return ts.date()


def _dirty_ranges(
    spans: Sequence[tuple[uuid.UUID, str, datetime, datetime]], as_of: datetime
) -> dict[uuid.UUID, tuple[date, date]]:
    """Per device, the first and last day to rescore (survey answers carry forward)."""
    last_day = _day(as_of)
    out: dict[uuid.UUID, tuple[date, date]] = {}
    for device_id, kind, first, last in spans:
        lo, hi = _day(first), _day(last)
        if kind == "survey_response":
            hi = min(hi + timedelta(days=SURVEY_WINDOW_DAYS - 1), last_day)
        if device_id in out:
            lo, hi = min(lo, out[device_id][0]), max(hi, out[device_id][1])
        out[device_id] = (lo, hi)
    return out


def _persona_of(device: Device, names: set[str]) -> str:
    assigned = device.persona
    return assigned if assigned in names else default_persona_name()


def score_tenant(
    session: Session,
    tenant_id: uuid.UUID,
    as_of: datetime,
    *,
    received_through: datetime,
    cache: ScoringCache | None = None,
) -> dict[str, Any]:
    """Rescore one tenant's new device-days up to ``as_of``; returns counts for the summary.

    With ``cache`` (a long-running jobs process keeps one), device-days kept from the last
    run are completed with the new events only, instead of being read again whole.
    """
    repo = ScoresRepository(session)
    mark = repo.watermark(tenant_id)
    received_after: datetime | None = None
    ts_after: datetime | None = None
    if mark is not None and as_of >= mark.as_of:
        received_after, ts_after = mark.received_through, mark.as_of
    elif mark is not None:  # an earlier as-of than last time: rebuild from that day on
        repo.delete_after(tenant_id, _day(as_of) - timedelta(days=1))
    kept: TenantDays | None = None
    if cache is not None:
        kept = cache.take(tenant_id, received_after, ts_after)
        if kept is None:
            cache.drop(tenant_id)
    spans = repo.changed_spans(tenant_id, SCORED_TYPES, as_of, received_after, ts_after)
    ranges = _dirty_ranges([tuple(r) for r in spans], as_of)  # type: ignore[misc]
    personas = personas_for_tenant(session, tenant_id)
    names = {p.name for p in personas}
    devices = {d.id: d for d in repo.devices(tenant_id, list(ranges))}
    order = sorted(devices, key=lambda d: (ranges[d][0], str(d)))
    rows_written = 0
    read: list[tuple[tuple[uuid.UUID, date], list[CachedEvent]]] = []
    from_cache = 0
    surveys = _surveys(repo, tenant_id, ranges, order, as_of)
    for i in range(0, len(order), BLOCK_DEVICES):
        ids = order[i : i + BLOCK_DEVICES]
        source = _Source(repo, kept, received_after, ts_after, as_of, tenant_id)
        rows_written += _score_ids(
            tenant_id, personas, names, devices, ids, ranges, as_of, source, surveys
        )
        read += source.read
        from_cache += source.from_cache
        session.commit()
    repo.save_watermark(tenant_id, received_through, as_of)
    session.commit()
    if cache is not None:
        cache.store(tenant_id, received_through, as_of, read, kept)
    return {"devices": len(order), "device_days": rows_written, "devices_from_cache": from_cache}


_Survey = tuple[str, datetime, uuid.UUID, dict[str, Any]]


def _surveys(
    repo: ScoresRepository,
    tenant_id: uuid.UUID,
    ranges: dict[uuid.UUID, tuple[date, date]],
    order: Sequence[uuid.UUID],
    as_of: datetime,
) -> dict[uuid.UUID, list[_Survey]]:
    """The survey answers the run's device-days carry from, per device, by time."""
    out: dict[uuid.UUID, list[_Survey]] = defaultdict(list)
    if not order:
        return out
    start = day_start(min(ranges[d][0] for d in order)) - timedelta(days=SURVEY_WINDOW_DAYS)
    for device, kind, ts, event_id, data in repo.tenant_events(
        tenant_id, ("survey_response",), start, as_of
    ):
        out[device].append((kind, ts, event_id, data))
    for answers in out.values():
        answers.sort(key=lambda a: (a[1], a[2]))
    return out


class _Source:
    """Where one block's events come from: the kept days plus their new events, or the
    database; records the device-days read so the cache can keep them."""

    def __init__(
        self,
        repo: ScoresRepository,
        kept: TenantDays | None,
        received_after: datetime | None,
        ts_after: datetime | None,
        as_of: datetime,
        tenant_id: uuid.UUID,
    ) -> None:
        self.repo, self.kept, self.tenant_id = repo, kept, tenant_id
        self.received_after, self.ts_after = received_after, ts_after
        self.first_open = as_of.date() - timedelta(days=OPEN_DAYS - 1)
        self.read: list[tuple[tuple[uuid.UUID, date], list[CachedEvent]]] = []
        self.from_cache = 0

    def events(
        self, ids: Sequence[uuid.UUID], ranges: dict[uuid.UUID, tuple[date, date]], end: datetime
    ) -> dict[uuid.UUID, list[CachedEvent]]:
        """Each device's events (not survey answers) over its range, by ``ts`` and event id."""
        kept = self.kept
        cached = [d for d in ids if kept is not None and kept.has(d, *ranges[d])]
        cached_set = set(cached)
        full = [d for d in ids if d not in cached_set]
        out: dict[uuid.UUID, list[CachedEvent]] = {d: [] for d in ids}
        if full:
            start = day_start(min(ranges[d][0] for d in full))
            for row in self.repo.event_rows(self.tenant_id, full, _OTHER_TYPES, start, end):
                out[row[1]].append(row)
        if cached and kept is not None:
            start = day_start(min(ranges[d][0] for d in cached))
            merged = {d: {r[0]: r for r in kept.events(d, *ranges[d])} for d in cached}
            for row in self.repo.event_rows(
                self.tenant_id,
                cached,
                _OTHER_TYPES,
                start,
                end,
                received_after=self.received_after,
                ts_after=self.ts_after,
            ):
                merged[row[1]][row[0]] = row
            for d in cached:
                out[d] = list(merged[d].values())
            self.from_cache += len(cached)
        for d in ids:
            rows = out[d]
            rows.sort(key=lambda r: (r[3], r[4]))
            lo, hi = ranges[d]
            by_day: dict[date, list[CachedEvent]] = {}
            for row in rows:
                by_day.setdefault(_day(row[3]), []).append(row)
            day = max(lo, self.first_open)  # only the days the cache may keep
            while day <= hi:
                self.read.append(((d, day), by_day.get(day, [])))
                day += timedelta(days=1)
        return out


def _score_ids(
    tenant_id: uuid.UUID,
    personas: Sequence[Persona],
    names: set[str],
    devices: dict[uuid.UUID, Device],
    ids: Sequence[uuid.UUID],
    ranges: dict[uuid.UUID, tuple[date, date]],
    as_of: datetime,
    source: _Source,
    surveys: dict[uuid.UUID, list[_Survey]],
) -> int:
    first = min(ranges[d][0] for d in ids)
    last = max(ranges[d][1] for d in ids)
    block = Block(
        device_ids=ids,
        persona_names=[_persona_of(devices[d], names) for d in ids],
        first_day=first,
        n_days=(last - first).days + 1,
    )
    index = {d: k for k, d in enumerate(ids)}
    end = min(as_of, day_start(last + timedelta(days=1)) - _EPS)
    rows: list[EventRow] = [
        (index[d], kind, ts, data)
        for d, device_rows in source.events(ids, ranges, end).items()
        for _pk, _d, kind, ts, _eid, data in device_rows
    ]
    survey_start = day_start(first) - timedelta(days=SURVEY_WINDOW_DAYS)
    rows += [
        (index[d], kind, ts, data)
        for d in ids
        for kind, ts, _eid, data in surveys.get(d, ())
        if survey_start <= ts <= end
    ]
    wanted = {
        (index[d], (ranges[d][0] - first).days + k)
        for d in ids
        for k in range((ranges[d][1] - ranges[d][0]).days + 1)
    }
    scored = score_block(block, personas, rows, wanted)
    for row in (*scored.device_days, *scored.app_days):
        row["tenant_id"] = tenant_id
    keys = [(ids[dev], block.day(day)) for dev, day in sorted(wanted)]
    source.repo.replace_days(keys, scored.device_days, scored.app_days)
    return len(scored.device_days)


def run_scoring(
    session: Session, settings: Settings, as_of: datetime, *, cache: ScoringCache | None = None
) -> dict[str, Any]:
    """The ``scores`` job: rescore every tenant's new device-days (see the module doc).

    ``cache``: the open days kept between runs of a long-running jobs process
    (:mod:`collector.scores.cache`); without it every device-day is read whole.
    """
    received_through = utcnow() - timedelta(seconds=settings.scoring_receive_lag_s)
    repo = ScoresRepository(session)
    totals = {"tenants": 0, "devices": 0, "device_days": 0, "devices_from_cache": 0}
    for tenant_id in repo.tenants_with_devices():
        summary = score_tenant(
            session, tenant_id, as_of, received_through=received_through, cache=cache
        )
        totals["tenants"] += 1
        for key in ("devices", "device_days", "devices_from_cache"):
            totals[key] += summary[key]
    if cache is not None:
        totals["cached_events"] = cache.size
    return totals


# -- the API -----------------------------------------------------------------------------


def _period(
    repo: ScoresRepository, tenant: uuid.UUID | None, start: date | None, end: date | None
) -> tuple[date, date]:
    if end is None:
        end = repo.latest_day(tenant) or utcnow().date()
    if start is None:
        start = end - timedelta(days=6)
    if start > end:
        raise UnprocessableEntity("'from' is after 'to'", code="bad_period", field="from")
    if (end - start).days > 400:
        raise UnprocessableEntity(
            "a period is at most 400 days", code="period_too_long", field="from"
        )
    return start, end


def _f(value: float | None) -> float | None:
    """A JSON number rounded to 3 decimals; None for missing or NaN."""
    return None if value is None or math.isnan(value) else round(float(value), 3)


def list_scores(
    session: Session,
    identity: Identity,
    level: Level,
    *,
    tenant: uuid.UUID | None,
    start: date | None,
    end: date | None,
    window: int = 1,
    persona: str | None = None,
    app: str | None = None,
    device_id: uuid.UUID | None = None,
) -> dict[str, Any]:
    """Daily scores of one level over a period, each day over a trailing ``window`` of days.

    ``device``: one item per device-day (the device's trailing mean with ``window`` > 1).
    ``persona`` / ``tenant`` / ``app``: one item per label and day — devices counted, mean
    score, mean sub-scores, shares good / tolerating / frustrating, minutes lost — shown only
    from :data:`scoring.aggregate.MIN_DEVICES` scored devices on (``enough``).
    """
    if window not in (1, 7, 28):
        raise UnprocessableEntity("window is 1, 7 or 28 days", code="bad_window", field="window")
    visible = identity.visible_tenant(tenant)
    repo = ScoresRepository(session)
    start, end = _period(repo, visible, start, end)
    read_from = start - timedelta(days=window - 1)
    days = [start + timedelta(days=k) for k in range((end - start).days + 1)]
    if level == "app":
        return {
            "level": level,
            "from": start,
            "to": end,
            "window": window,
            "items": _app_items(repo, visible, read_from, start, end, window, app),
        }
    rows = repo.device_days(visible, read_from, end, device_id=device_id, persona=persona)
    n_days = (end - read_from).days + 1
    dev_index: dict[uuid.UUID, int] = {}
    meta: dict[uuid.UUID, tuple[uuid.UUID, str]] = {}
    for r in rows:
        dev_index.setdefault(r.device_id, len(dev_index))
        meta[r.device_id] = (r.tenant_id, r.persona)  # the latest persona in the period
    cols = ("score", *SUBSCORES, "time_lost_min")
    grid = np.full((len(cols), len(dev_index), n_days), np.nan)
    for r in rows:
        d, k = dev_index[r.device_id], (r.day - read_from).days
        for c, name in enumerate(cols):
            value = getattr(r, name)
            grid[c, d, k] = np.nan if value is None else value
    if window > 1:
        minutes = grid[-1].copy()
        grid = np.stack([rolling_mean(g, window) for g in grid]) if len(dev_index) else grid
        grid[-1] = minutes  # minutes lost add up, they are not averaged
    offset = window - 1
    ids = list(dev_index)
    if level == "device":
        hostnames = DeviceRepository(repo.session).hostnames(ids)
        items = []
        for d, device in enumerate(ids):
            for k, day in enumerate(days):
                values = grid[:, d, offset + k]
                if np.isnan(values[0]) and all(np.isnan(values[1:-1])):
                    continue
                items.append(
                    {
                        "device_id": device,
                        "hostname": hostnames.get(device),
                        "persona": meta[device][1],
                        "day": day,
                        **{name: _f(values[c]) for c, name in enumerate(cols)},
                    }
                )
        items.sort(key=lambda i: (i["day"], i["hostname"] or "", str(i["device_id"])))
        return {"level": level, "from": start, "to": end, "window": window, "items": items}

    groups = repo.device_groups(ids) if level == "group" else {}

    def labels_of(dev: uuid.UUID) -> str:
        if level == "group":
            return groups.get(dev) or UNGROUPED
        return meta[dev][1] if level == "persona" else str(meta[dev][0])

    label_names = sorted({labels_of(dev) for dev in ids})
    label_index = {name: i for i, name in enumerate(label_names)}
    labels = np.array([label_index[labels_of(dev)] for dev in ids], dtype=np.intp)
    items = []
    for k, day in enumerate(days):
        column = grid[:, :, offset + k]
        agg = aggregate(column[0], labels, len(label_names))
        subs = group_means(column[1:-1].T, labels, len(label_names)) if ids else None
        lost = np.bincount(labels, weights=np.nan_to_num(column[-1]), minlength=len(label_names))
        for j, name in enumerate(label_names):
            if agg.count[j] == 0:
                continue
            item: dict[str, Any] = {
                level: name,
                "day": day,
                "devices": int(agg.count[j]),
                "enough": bool(agg.enough[j]),
                "score": _f(agg.mean[j]),
                "share_good": _f(agg.share_good[j]),
                "share_tolerating": _f(agg.share_tolerating[j]),
                "share_frustrating": _f(agg.share_frustrating[j]),
                "time_lost_min": _f(lost[j]),
            }
            for c, sub in enumerate(SUBSCORES):
                item[sub] = _f(subs[j, c]) if subs is not None and agg.enough[j] else None
            items.append(item)
    return {"level": level, "from": start, "to": end, "window": window, "items": items}


def _app_items(
    repo: ScoresRepository,
    tenant: uuid.UUID | None,
    read_from: date,
    start: date,
    end: date,
    window: int,
    app: str | None,
) -> list[dict[str, Any]]:
    """Per app and day over the trailing window: device-days, mean app score, events, time."""
    rows = repo.app_days(tenant, read_from, end, app_name=app)
    by_app: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_app[r.app_name].append(r)
    items = []
    for name in sorted(by_app):
        app_rows = by_app[name]
        day_of = np.array([(r.day - start).days for r in app_rows])
        score = np.array([np.nan if r.score is None else r.score for r in app_rows])
        for k in range((end - start).days + 1):
            inside = (day_of <= k) & (day_of > k - window)
            if not inside.any():
                continue
            devices = {r.device_id for r, keep in zip(app_rows, inside, strict=True) if keep}
            # one value per device: its mean over the window, then the app's aggregate
            dev_index = {d: i for i, d in enumerate(sorted(devices))}
            sel = [r for r, keep in zip(app_rows, inside, strict=True) if keep]
            per_dev = group_means(
                score[inside], np.array([dev_index[r.device_id] for r in sel]), len(dev_index)
            )
            agg = aggregate(per_dev, np.zeros(len(per_dev), dtype=np.intp), 1)
            items.append(
                {
                    "app": name,
                    "day": start + timedelta(days=k),
                    "devices": len(devices),
                    "enough": bool(agg.enough[0]),
                    "score": _f(agg.mean[0]),
                    "share_good": _f(agg.share_good[0]),
                    "share_tolerating": _f(agg.share_tolerating[0]),
                    "share_frustrating": _f(agg.share_frustrating[0]),
                    "hangs": int(sum(r.hangs for r in sel)),
                    "crashes": int(sum(r.crashes for r in sel)),
                    "time_lost_min": _f(sum(r.time_lost_min for r in sel)),
                }
            )
    return items


def _contributors(
    points: dict[str, float], metrics: dict[str, float | None]
) -> list[dict[str, Any]]:
    ranked = sorted(points.items(), key=lambda kv: (-kv[1], METRICS.index(kv[0])))
    return [
        {"metric": m, "points_lost": _f(p), "metric_score": _f(metrics.get(m) or math.nan)}
        for m, p in ranked
        if p > 0
    ]


def explain(
    session: Session,
    identity: Identity,
    level: Level,
    key: str,
    *,
    tenant: uuid.UUID | None,
    start: date | None,
    end: date | None,
) -> dict[str, Any]:
    """Why a score is what it is: the metrics that cost it points, the apps, the devices.

    ``device`` explains one device-day (``end``, default its latest); the other levels
    explain the mean over a period (default the last 7 scored days): the mean points each
    metric cost, the apps that cost the most minutes and the worst devices. Points lost add
    up to 100 - score (docs/scoring.md, *Explanations*).
    """
    visible = identity.visible_tenant(tenant)
    repo = ScoresRepository(session)
    if level == "device":
        return _explain_device(session, repo, visible, key, end)
    start, end = _period(repo, visible, start, end)
    persona: str | None = None
    scope_tenant = visible
    device_ids: list[uuid.UUID] | None = None
    if level == "persona":
        persona = key
    elif level == "tenant":
        try:
            scope_tenant = uuid.UUID(key)
        except ValueError:
            raise NotFound("no such tenant", code="tenant_not_found") from None
        if visible is not None and scope_tenant != visible:
            raise NotFound("no such tenant", code="tenant_not_found")
    elif level == "app":
        device_ids = sorted({r.device_id for r in repo.app_days(visible, start, end, app_name=key)})
    elif level == "group":
        device_ids = repo.devices_in_group(visible, None if key == UNGROUPED else key)
    rows = repo.points_lost(scope_tenant, start, end, persona=persona, device_ids=device_ids)
    if not rows:
        raise NotFound(f"no scores for {level} {key!r} in this period", code="no_scores")
    scored = [r for r in rows if r.score is not None]
    lost = np.array([[r.points_lost.get(m, 0.0) for m in METRICS] for r in scored]).reshape(
        -1, len(METRICS)
    )
    mean_lost = lost.mean(axis=0) if len(scored) else np.zeros(len(METRICS))
    per_device: dict[uuid.UUID, list[float]] = defaultdict(list)
    for r in scored:
        per_device[r.device_id].append(float(r.score))
    worst = sorted(per_device.items(), key=lambda kv: sum(kv[1]) / len(kv[1]))[:10]
    hostnames = DeviceRepository(repo.session).hostnames([d for d, _ in worst])
    apps: dict[str, float] = defaultdict(float)
    for a in repo.app_days(scope_tenant, start, end, app_name=key if level == "app" else None):
        if device_ids is not None or persona is None or a.persona == persona:
            apps[a.app_name] += a.time_lost_min
    components: dict[str, float] = defaultdict(float)
    for r in rows:
        for name, minutes in r.time_lost.items():
            components[name] += minutes
    scores = [float(r.score) for r in scored]
    out: dict[str, Any] = {
        "level": level,
        "id": key,
        "from": start,
        "to": end,
        "device_days": len(rows),
        "devices": len({r.device_id for r in rows}),
        "score": _f(sum(scores) / len(scores)) if scores else None,
        "enough": len(per_device) >= MIN_DEVICES,
        "contributors": _contributors(dict(zip(METRICS, mean_lost.tolist(), strict=True)), {}),
        "time_lost_min": {k: _f(v) for k, v in sorted(components.items())},
        "top_apps": [
            {"app": a, "time_lost_min": _f(m)}
            for a, m in sorted(apps.items(), key=lambda kv: -kv[1])[:10]
            if m > 0
        ],
    }
    # a fleet-level explanation names devices only where there are enough of them
    out["worst_devices"] = (
        [
            {"device_id": d, "hostname": hostnames.get(d), "score": _f(sum(s) / len(s))}
            for d, s in worst
        ]
        if out["enough"] or level == "tenant"
        else []
    )
    return out


def _explain_device(
    session: Session,
    repo: ScoresRepository,
    visible: uuid.UUID | None,
    key: str,
    day: date | None,
) -> dict[str, Any]:
    try:
        device_id = uuid.UUID(key)
    except ValueError:
        raise NotFound("no such device", code="device_not_found") from None
    device = repo.device(device_id)
    if device is None or (visible is not None and device.tenant_id != visible):
        raise NotFound("no such device", code="device_not_found")
    if day is None:
        rows = repo.device_days(None, date.min, date.max, device_id=device_id)
        if not rows:
            raise NotFound("this device has no scores yet", code="no_scores")
        day = rows[-1].day
    row = repo.device_day(device_id, day)
    if row is None:
        raise NotFound(f"no score for this device on {day}", code="no_scores")
    apps = repo.app_days(None, day, day, device_id=device_id)
    return {
        "level": "device",
        "id": key,
        "hostname": device.hostname,
        "day": day,
        "persona": row.persona,
        "score": _f(row.score),
        **{s: _f(getattr(row, s)) for s in SUBSCORES},
        "metrics": {m: _f(v) for m, v in row.metrics.items()},
        "contributors": _contributors(row.points_lost, row.metrics),
        "sentiment_confidence": row.sentiment_confidence,
        "active_s": row.active_s,
        "time_lost_min": {k: _f(v) for k, v in row.time_lost.items()},
        "counts": row.counts,
        "apps": [
            {
                "app": a.app_name,
                "score": _f(a.score),
                "hangs": a.hangs,
                "crashes": a.crashes,
                "time_lost_min": _f(a.time_lost_min),
            }
            for a in sorted(apps, key=lambda a: (-a.time_lost_min, a.app_name))
        ],
        "events": _evidence(session, repo, device, row.persona, day),
        "scoring_version": row.scoring_version,
    }


_EVIDENCE_TYPES: Final = ("boot", "logon", "app_hang", "app_crash", "system_crash", "probe")
_EVIDENCE_LIMIT: Final = 50


def _evidence(
    session: Session, repo: ScoresRepository, device: Device, persona_name: str, day: date
) -> list[dict[str, Any]]:
    """The raw events of a device-day that cost it points (while raw events are retained).

    Boots, sign-ins and successful probes slower than the persona's threshold; every hang,
    crash, system crash and failed probe. Each carries its ``class`` (tolerating or
    frustrating, or ``event`` for counted events) so a reader can see why it counted.
    """
    personas = {p.name: p for p in personas_for_tenant(session, device.tenant_id)}
    persona = personas.get(persona_name) or personas[default_persona_name()]
    fields = {"boot": "boot_duration_s", "logon": "logon_duration_s", "probe": "total_s"}
    metric = {"boot": "boot", "logon": "logon", "probe": "probe_latency"}
    start = day_start(day)
    out: list[dict[str, Any]] = []
    for _, kind, ts, data in repo.events(
        [device.id], _EVIDENCE_TYPES, start, start + timedelta(days=1) - _EPS
    ):
        item: dict[str, Any] = {"type": kind, "ts": ts}
        if kind in fields and not (kind == "probe" and not data.get("ok")):
            if kind == "logon" and data.get("first_logon"):
                continue
            value = data.get(fields[kind])
            if not isinstance(value, int | float):
                continue
            threshold = persona.thresholds[metric[kind]]
            if value <= threshold:
                continue
            frustrated = value > persona.frustrating_level(metric[kind])
            item.update(
                {
                    "value_s": value,
                    "threshold_s": threshold,
                    "class": "frustrating" if frustrated else "tolerating",
                }
            )
        else:
            item["class"] = "event"
        for name in (
            "event_id",
            "app_name",
            "app_version",
            "hang_duration_s",
            "faulting_module",
            "crash_kind",
            "target",
            "error",
            "boot_kind",
        ):
            if name in data:
                item[name] = data[name]
        out.append(item)
        if len(out) >= _EVIDENCE_LIMIT:
            break
    return out
