"""The ``notify`` job: deliver due alert events to their webhooks.

Each run leases the due deliveries (see :mod:`collector.notifications.repository`), commits
the lease, sends outside any transaction, then stores each outcome:

- 2xx: ``delivered``;
- 408, 425, 429, 5xx, a timeout or a connection error: retried after an exponential
  backoff with jitter (``notify_backoff_base_s`` doubling per attempt, at most
  ``notify_backoff_max_s``, each delay drawn from its upper half), or after the receiver's
  ``Retry-After`` on 429/503; after ``notify_max_attempts`` attempts, ``failed``;
- any other status (400, 401, 404, …): ``failed`` at once (retrying will not fix it).

Deliveries to one webhook go in order, one at a time; different webhooks are served in
parallel (``notify_concurrency`` threads), each request bounded by ``notify_timeout_s``, so
one slow receiver never holds up the others. After a timeout or connection error, that
webhook's remaining deliveries wait for the next run. Redirects are not followed.
Scheduling uses the wall clock, not ``--as-of``: notifications are real-time I/O. The
usual ``HTTPS_PROXY`` / ``NO_PROXY`` environment variables are honoured.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
from sqlalchemy.orm import Session

from collector.db import utcnow
from collector.notifications.models import NotificationDelivery, Webhook
from collector.notifications.payloads import SIGNATURE_HEADER, render, sign
from collector.notifications.repository import NotificationRepository
from collector.settings import Settings
from dexscope import __version__

__all__ = [
    "RETRYABLE_STATUSES",
    "Attempt",
    "backoff_s",
    "parse_retry_after",
    "run_notify",
    "send_one",
]

RETRYABLE_STATUSES: Final = frozenset({408, 425, 429, 500, 502, 503, 504})
"""Statuses worth retrying (any other 5xx is retried too)."""
_MAX_ROUNDS: Final = 20
_ERROR_CHARS: Final = 500


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt gave: a status (None: no response), an error text, and when
    the receiver asked to be retried (``Retry-After``, made absolute on receipt)."""

    status: int | None
    error: str | None
    retry_at: datetime | None
    connection_failed: bool


def backoff_s(attempts: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Seconds before retry number ``attempts`` (1 = the first retry): ``base · 2^(n-1)``
    capped at ``max_s``, drawn uniformly from its upper half (jitter)."""
    delay = min(max_s, base_s * 2.0 ** max(0, attempts - 1))
    return delay / 2.0 + rng.uniform(0.0, delay / 2.0)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds from ``now`` (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def send_one(
    client: httpx.Client, webhook: Webhook, delivery: NotificationDelivery, public_url: str | None
) -> Attempt:
    """Render, sign and POST one delivery; never raises for network trouble."""
    body = json.dumps(
        render(
            webhook.kind,
            delivery.payload,
            event=delivery.event,
            delivery_id=delivery.id,
            occurred_at=delivery.created_at,
            public_url=public_url,
            project_key=webhook.project_key,
        ),
        separators=(",", ":"),
        sort_keys=True,
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"DexScope/{__version__}",
        "X-DexScope-Event": delivery.event,
        "X-DexScope-Delivery": str(delivery.id),
        "X-DexScope-Attempt": str(delivery.attempts + 1),
        SIGNATURE_HEADER: sign(webhook.secret, body, int(time.time())),
    }
    try:
        with client.stream("POST", webhook.url, content=body, headers=headers) as response:
            text = None
            if response.status_code >= 300:
                chunk = b""
                for part in response.iter_bytes():
                    chunk += part
                    if len(chunk) >= _ERROR_CHARS:
                        break
                text = f"HTTP {response.status_code}: " + chunk[:_ERROR_CHARS].decode(
                    "utf-8", "replace"
                )
            retry_at = None
            if response.status_code in (429, 503):
                received = utcnow()
                wait = parse_retry_after(response.headers.get("retry-after"), received)
                if wait is not None:
                    retry_at = received + timedelta(seconds=wait)
            return Attempt(response.status_code, text, retry_at, False)
    except httpx.TimeoutException as exc:
        return Attempt(None, f"timeout: {type(exc).__name__}", None, True)
    except httpx.HTTPError as exc:
        return Attempt(None, f"{type(exc).__name__}: {exc}"[:_ERROR_CHARS], None, True)


def _send_group(
    client: httpx.Client,
    webhook: Webhook | None,
    deliveries: Sequence[NotificationDelivery],
    public_url: str | None,
) -> list[tuple[NotificationDelivery, Attempt | None]]:
    """Send one webhook's deliveries in order; after a connection failure, defer the rest
    (``None``)."""
    out: list[tuple[NotificationDelivery, Attempt | None]] = []
    blocked = False
    for delivery in deliveries:
        if webhook is None or not webhook.enabled:
            out.append((delivery, Attempt(None, "webhook disabled", None, False)))
            continue
        if blocked:
            out.append((delivery, None))
            continue
        attempt = send_one(client, webhook, delivery, public_url)
        blocked = attempt.connection_failed
        out.append((delivery, attempt))
    return out


def _outcome(
    delivery: NotificationDelivery,
    attempt: Attempt | None,
    settings: Settings,
    now: datetime,
    rng: random.Random,
) -> tuple[str, dict[str, Any]]:
    if attempt is None:  # deferred behind a slow or unreachable receiver
        return "deferred", {"next_attempt_at": now}
    attempts = delivery.attempts + 1
    values: dict[str, Any] = {
        "attempts": attempts,
        "last_status": attempt.status,
        "last_error": attempt.error,
        "last_attempt_at": now,
    }
    status = attempt.status
    if status is not None and 200 <= status < 300:
        return "delivered", {**values, "status": "delivered", "delivered_at": now}
    retryable = status is None or status in RETRYABLE_STATUSES or status >= 500
    if attempt.error == "webhook disabled":
        retryable = False
    if not retryable or attempts >= settings.notify_max_attempts:
        return "failed", {**values, "status": "failed"}
    latest = now + timedelta(seconds=settings.notify_backoff_max_s)
    if attempt.retry_at is not None:
        return "retrying", {**values, "next_attempt_at": max(now, min(attempt.retry_at, latest))}
    delay = backoff_s(attempts, settings.notify_backoff_base_s, settings.notify_backoff_max_s, rng)
    return "retrying", {**values, "next_attempt_at": now + timedelta(seconds=delay)}


def run_notify(session: Session, settings: Settings, as_of: datetime) -> dict[str, Any]:
    """Deliver every due notification (the ``notify`` job); returns counts by outcome.

    ``as_of`` is accepted for the job interface and ignored: retries are scheduled on the
    wall clock.
    """
    del as_of
    repo = NotificationRepository(session)
    rng = random.Random()
    counts: dict[str, int] = defaultdict(int)
    seen: list[uuid.UUID] = []
    timeout = httpx.Timeout(settings.notify_timeout_s)
    lease = timedelta(seconds=2 * settings.notify_timeout_s + 60)
    with (
        httpx.Client(timeout=timeout, follow_redirects=False) as client,
        ThreadPoolExecutor(max_workers=settings.notify_concurrency) as pool,
    ):
        for _ in range(_MAX_ROUNDS):
            now = utcnow()
            claimed = repo.claim_due(now, now + lease, settings.notify_batch_size, seen)
            session.commit()
            if not claimed:
                break
            seen.extend(d.id for d in claimed)
            webhooks = repo.webhooks_by_id(d.webhook_id for d in claimed)
            session.commit()  # end the read transaction before the (slow) sending
            groups: dict[uuid.UUID, list[NotificationDelivery]] = defaultdict(list)
            for delivery in claimed:
                groups[delivery.webhook_id].append(delivery)
            futures = [
                pool.submit(_send_group, client, webhooks.get(wid), group, settings.public_url)
                for wid, group in groups.items()
            ]
            results = [pair for future in futures for pair in future.result()]
            done = utcnow()
            for delivery, attempt in results:
                outcome, values = _outcome(delivery, attempt, settings, done, rng)
                counts[outcome] += 1
                repo.record(delivery.id, values)
            session.commit()
            if len(claimed) < settings.notify_batch_size:
                break
    return {"claimed": len(seen), **{k: counts[k] for k in sorted(counts)}}
