"""The uploader: drains the spool to ``POST /api/v1/ingest`` in gzip batches.

Flushes when a full batch is waiting or the oldest waiting event is older than
``max_batch_age_s`` (with jitter). What to do with each answer is decided by the pure
function :func:`decide`; retries wait on a :class:`agent.backoff.Backoff`.
"""

from __future__ import annotations

import gzip
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from agent.backoff import Backoff, parse_retry_after
from agent.config import UploadSettings
from agent.enroll import server_error_message
from agent.jsonutil import dumps
from agent.spool import Spool, SpoolBatch
from agent.state import Identity
from dexscope import __version__
from dexscope.wire import SCHEMA_VERSION

__all__ = ["Accept", "Reject", "Retry", "Uploader", "decide"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accept:
    """The collector has the batch (stored now or before)."""


@dataclass(frozen=True)
class Retry:
    """Keep the batch and try again later (not before ``after_s`` if given)."""

    reason: str
    after_s: float | None = None


@dataclass(frozen=True)
class Reject:
    """The collector will never take this batch: quarantine it."""

    reason: str


Decision = Accept | Retry | Reject


def decide(status: int, headers: Mapping[str, str], message: str = "") -> Decision:
    """What to do with a batch given the collector's answer.

    200: accept (a duplicate is a success). 409/413/422 (and other 4xx): reject — sending
    the same bytes again cannot succeed — keeping the batch in the quarantine. 401/403: keep
    (the token may be fixed by an administrator; data is never thrown away for it).
    408/429/5xx: keep, honouring ``Retry-After``.
    """
    text = f"HTTP {status}: {message}" if message else f"HTTP {status}"
    if 200 <= status < 300:
        return Accept()
    retry_after = parse_retry_after(headers.get("retry-after"))
    if status in (401, 403):
        return Retry(f"device token refused ({text})", retry_after)
    if status in (408, 429) or status >= 500:
        return Retry(text, retry_after)
    return Reject(text)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


class Uploader:
    """Sends spooled batches for one enrolled device."""

    def __init__(
        self,
        identity: Identity,
        server_url: str,
        spool: Spool,
        settings: UploadSettings,
        client: httpx.Client,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.server_url = server_url
        self.spool = spool
        self.settings = settings
        self.client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_max_s, rng=self._rng)
        # The first round goes out at once, so a new device shows up within seconds.
        self._age_limit = 0.0

    def _jittered_age(self) -> float:
        jitter = self.settings.flush_jitter
        return self.settings.max_batch_age_s * self._rng.uniform(1 - jitter, 1 + jitter)

    def due(self) -> bool:
        """Whether a batch should be sent now (full, or its oldest event old enough)."""
        count, oldest = self.spool.pending()
        if count == 0:
            return False
        if count >= self.settings.max_batch_events:
            return True
        return oldest is not None and self._clock() - oldest >= self._age_limit

    def _body(self, batch: SpoolBatch) -> bytes:
        head = dumps(
            {
                "batch_id": batch.batch_id,
                "device_id": self.identity.device_id,
                "agent_version": __version__,
                "schema_version": SCHEMA_VERSION,
                "sent_at": _now_iso(),
            }
        )
        text = head[:-1] + ',"events":[' + ",".join(batch.events_json) + "]}"
        return gzip.compress(text.encode(), compresslevel=6)

    def send_one(self) -> Decision | None:
        """Send the next batch, if any; records the outcome in the spool and the backoff."""
        batch = self.spool.begin_batch(
            self.settings.max_batch_events, self.settings.max_batch_bytes
        )
        if batch is None:
            return None
        try:
            response = self.client.post(
                f"{self.server_url}/api/v1/ingest",
                content=self._body(batch),
                headers={
                    "Authorization": f"Bearer {self.identity.device_token}",
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                },
            )
        except httpx.HTTPError as exc:
            decision: Decision = Retry(f"cannot reach {self.server_url}: {type(exc).__name__}")
        else:
            message = "" if response.status_code == 200 else server_error_message(response)
            decision = decide(response.status_code, response.headers, message)
        if isinstance(decision, Accept):
            self.spool.accept(batch.batch_id, _now_iso())
            self.backoff.success()
            self._age_limit = self._jittered_age()
        elif isinstance(decision, Retry):
            self.spool.keep(batch.batch_id, decision.reason, _now_iso())
            delay = self.backoff.failure(decision.after_s)
            log.warning("upload failed (%s); retrying in %.1f s", decision.reason, delay)
        else:
            self.spool.reject(batch.batch_id, decision.reason, _now_iso())
            log.error("batch %s rejected and quarantined: %s", batch.batch_id, decision.reason)
        return decision

    def drain(self) -> tuple[int, Decision | None]:
        """Send batches until the spool is empty or an attempt fails; (sent, last failure)."""
        sent = 0
        while True:
            decision = self.send_one()
            if decision is None:
                return sent, None
            if isinstance(decision, Retry):
                return sent, decision
            sent += 1

    def step(self) -> float:
        """One pass of the upload loop; returns how long to sleep before the next pass."""
        if self.backoff.ready() and self.due():
            while True:
                decision = self.send_one()
                if decision is None or isinstance(decision, Retry) or not self.due():
                    break
        return min(self.backoff.wait_s(), 5.0) if not self.backoff.ready() else 0.2
