"""The uploader: drains the spool to ``POST {server}/api/v1/ingest`` in gzip batches.

A batch is the JSON of a :class:`dexscope.wire.Batch` (``batch_id``, ``device_id``,
``agent_version``, ``schema_version: 1``, ``sent_at`` = now, ``events``), gzip-compressed,
sent with ``Content-Encoding: gzip`` and ``Authorization: Bearer <device token>``. It flushes
when a full batch waits (``max_batch_events`` or ``max_batch_bytes``) or the oldest waiting
event is older than ``max_batch_age_s`` (± ``flush_jitter``). What to do with each answer is
decided by the pure function :func:`decide`; retries wait on a :class:`agent.backoff.Backoff`.
Outcomes are counted in the spool's meta table (uploads, failures, last upload, last error)
so ``dexscope agent status`` can read them from another process.

Clock jumps: the collector corrects skew with one offset per batch (``received_at -
sent_at``), so an event stamped by a clock that ran fast and sent after the clock was set
back would land in the future and the batch would be refused. Each time a batch is sent,
:func:`restamp` therefore re-derives such an event's ``ts`` from the wall clock now minus the
event's age on the boot clock (read from the spool); batch ages come from the spool too
(boot clock and wall clock, see :class:`agent.spool.Pending`), never from a negative
difference of wall-clock times.
"""

from __future__ import annotations

import gzip
import json
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
from agent.jsonutil import dumps, utc_iso
from agent.spool import Spool, SpoolBatch
from agent.state import Identity
from dexscope import __version__
from dexscope.wire import SCHEMA_VERSION

__all__ = [
    "IDLE_WAIT_S",
    "MIN_WAIT_S",
    "RESTAMP_TOLERANCE_S",
    "Accept",
    "Decision",
    "Reject",
    "Retry",
    "Uploader",
    "decide",
    "restamp",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Accept:
    """The collector has the batch (stored now, or a replay it already had)."""


@dataclass(frozen=True)
class Retry:
    """Keep the batch and send it again later, not before ``after_s`` if the server said."""

    reason: str
    after_s: float | None = None


@dataclass(frozen=True)
class Reject:
    """The collector will never take this batch as it is: quarantine it (kept, counted)."""

    reason: str


Decision = Accept | Retry | Reject
"""What :func:`decide` answers."""

_REJECTED = frozenset({400, 409, 413, 422})
"""Answers about the batch's own content: sending the same bytes again cannot succeed."""


def decide(status_code: int, headers: Mapping[str, str], message: str = "") -> Decision:
    """What to do with a batch given the collector's answer (``message``: its error text).

    - 2xx: accept (``duplicate: true`` is a success too);
    - 400, 409, 413, 422 (malformed, batch id reused with other events, too large, not valid
      wire v1): reject to the quarantine with the server's message (413 cannot happen within
      our bounds; still handled);
    - 401, 403: keep, "device token refused" (an administrator may fix it; data is never
      deleted for it);
    - 429, 503 and any other answer (5xx, a proxy's 404…): keep and back off, honouring
      ``Retry-After``.
    """
    text = f"HTTP {status_code}: {message}" if message else f"HTTP {status_code}"
    if 200 <= status_code < 300:
        return Accept()
    if status_code in _REJECTED:
        return Reject(text)
    retry_after = parse_retry_after(_header(headers, "retry-after"))
    if status_code in (401, 403):
        return Retry(f"device token refused ({text})", retry_after)
    return Retry(text, retry_after)


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:  # a plain dict is case-sensitive; httpx.Headers is not
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


RESTAMP_TOLERANCE_S = 60.0
"""How far an event's ``ts`` may lie after the latest moment it can have happened before
:func:`restamp` replaces it (clocks drift and NTP slews by less)."""


def restamp(
    events_json: tuple[str, ...], ages_s: tuple[float | None, ...], now: float
) -> tuple[str, ...]:
    """The events with each ``ts`` that lies in the future of the event re-derived.

    An event spooled ``age`` seconds ago (its boot-clock age, ``ages_s[i]``) cannot have
    happened after ``now - age`` (``now``: wall-clock seconds, the batch's ``sent_at``); one
    without a known age (spooled in an earlier boot, or by an older agent) not after ``now``.
    A ``ts`` more than :data:`RESTAMP_TOLERANCE_S` past that bound was taken from a clock that
    ran fast and has been set back since: it becomes the bound. Earlier stamps are kept as
    they are, since an event may well predate its spooling (a crash read from a log, a boot);
    unchanged events keep their exact text.
    """
    out = []
    for i, text in enumerate(events_json):
        age = ages_s[i] if i < len(ages_s) else None
        out.append(_restamped(text, now - max(0.0, age) if age is not None else now))
    return tuple(out)


def _restamped(text: str, bound: float) -> str:
    try:
        event = json.loads(text)
        ts = datetime.fromisoformat(event["ts"])
    except (ValueError, KeyError, TypeError):  # not ours to repair: the collector says why
        return text
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    if ts.timestamp() <= bound + RESTAMP_TOLERANCE_S:
        return text
    event["ts"] = utc_iso(datetime.fromtimestamp(bound, UTC))
    return dumps(event)


IDLE_WAIT_S = 60.0
"""The longest the upload loop sleeps without being woken."""
MIN_WAIT_S = 0.05
"""The shortest sleep between passes (a batch just short of due)."""


class Uploader:
    """Sends the spooled batches of one enrolled device.

    Runs in its own thread in ``agent run`` (so a slow or hanging collector never blocks
    sampling). ``clock`` is the wall clock (seconds) that stamps ``sent_at`` and bounds the
    events' ``ts`` (:func:`restamp`); batch ages come from the spool. ``rng`` draws the flush
    jitter and the backoff jitter.
    """

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
        self.server_url = server_url.rstrip("/")
        self.spool = spool
        self.settings = settings
        self.client = client
        self._clock = clock
        self._rng = rng or random.Random()
        self.backoff = Backoff(settings.backoff_base_s, settings.backoff_max_s, rng=self._rng)
        # The first round goes out at once, so a new device shows up within seconds.
        self._age_limit = 0.0

    def update_settings(self, settings: UploadSettings) -> None:
        """Use new upload settings (a new configuration); the retry state carries over."""
        self.settings = settings
        self.backoff.base_s = settings.backoff_base_s
        self.backoff.max_s = settings.backoff_max_s
        self._age_limit = min(self._age_limit, self._jittered_age())

    def _jittered_age(self) -> float:
        jitter = self.settings.flush_jitter
        return self.settings.max_batch_age_s * self._rng.uniform(1 - jitter, 1 + jitter)

    def due(self) -> bool:
        """Whether a batch should go now: a full one waits, or the oldest event is old enough."""
        pending = self.spool.pending()
        if pending.events == 0:
            return False
        if pending.events >= self.settings.max_batch_events:
            return True
        if pending.unbatched_bytes >= self.settings.max_batch_bytes:
            return True
        age = pending.oldest_age_s
        return age is not None and age >= self._age_limit

    def body(self, batch: SpoolBatch) -> bytes:
        """The gzip-compressed JSON of a :class:`dexscope.wire.Batch` for ``batch``.

        ``sent_at`` is the wall clock now; events stamped after they can have happened are
        re-stamped against that same reading (:func:`restamp`), so the collector's one offset
        per batch puts none of them in the future. The batch id and event ids stay the same,
        so a re-sent batch is still recognised as a replay.
        """
        now = self._clock()
        events = restamp(batch.events_json, batch.ages_s, now)
        changed = sum(a is not b for a, b in zip(events, batch.events_json, strict=True))
        if changed:
            log.info(
                "batch %s: %d event time(s) lay ahead of the clock (it was set back): "
                "re-stamped from their age",
                batch.batch_id,
                changed,
            )
        head = dumps(
            {
                "batch_id": batch.batch_id,
                "device_id": self.identity.device_id,
                "agent_version": __version__,
                "schema_version": SCHEMA_VERSION,
                "sent_at": utc_iso(datetime.fromtimestamp(now, UTC)),
            }
        )
        # The events are already JSON text in the spool: splice them in as they are.
        text = head[:-1] + ',"events":[' + ",".join(events) + "]}"
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
                content=self.body(batch),
                headers={
                    "Authorization": f"Bearer {self.identity.device_token}",
                    "Content-Type": "application/json",
                    "Content-Encoding": "gzip",
                },
            )
        except httpx.HTTPError as exc:
            decision: Decision = Retry(f"cannot reach {self.server_url}: {type(exc).__name__}")
        else:
            ok = 200 <= response.status_code < 300
            message = "" if ok else server_error_message(response)
            decision = decide(response.status_code, response.headers, message)
            if ok:
                self._log_accepted(batch, response)
        if isinstance(decision, Accept):
            self.spool.accept(batch.batch_id)
            self.backoff.reset()
            self._age_limit = self._jittered_age()
        elif isinstance(decision, Retry):
            self.spool.keep(batch.batch_id, decision.reason)
            delay = self.backoff.failure(decision.after_s)
            log.warning("upload failed (%s); retrying in %.1f s", decision.reason, delay)
        else:
            self.spool.reject(batch.batch_id, decision.reason)
            log.error("batch %s rejected and quarantined: %s", batch.batch_id, decision.reason)
        return decision

    @staticmethod
    def _log_accepted(batch: SpoolBatch, response: httpx.Response) -> None:
        try:
            answer = response.json()
            duplicate, accepted = bool(answer["duplicate"]), int(answer["accepted"])
        except (ValueError, KeyError, TypeError):
            log.info("batch %s accepted (%d events)", batch.batch_id, len(batch))
            return
        if duplicate:
            log.info("batch %s was already stored (a replay): done", batch.batch_id)
        else:
            log.debug("batch %s stored: %d events", batch.batch_id, accepted)

    def drain(self) -> tuple[int, Retry | None]:
        """Send batches until the spool is empty or an attempt fails: (batches sent, failure).

        Rejected batches are quarantined and the drain goes on; ``agent run --once`` uses it.
        """
        sent = 0
        while True:
            decision = self.send_one()
            if decision is None:
                return sent, None
            if isinstance(decision, Retry):
                return sent, decision
            if isinstance(decision, Accept):
                sent += 1

    def step(self) -> float:
        """One pass of the upload loop; returns how long to sleep before the next pass.

        The sleep lasts until the next batch can be due (the oldest waiting event reaching
        the age limit) or the backoff ends, at most :data:`IDLE_WAIT_S`: the loop does not
        poll the spool. The sampling side wakes the loop early when it spools new events
        (``agent run`` passes a wake-up event), so a full batch still leaves at once.
        """
        if self.backoff.ready() and self.due():
            while True:
                decision = self.send_one()
                if decision is None or isinstance(decision, Retry) or not self.due():
                    break
        if not self.backoff.ready():
            return min(self.backoff.wait_s(), IDLE_WAIT_S)
        return self.next_due_in_s()

    def next_due_in_s(self) -> float:
        """Seconds until a batch is due with what the spool holds now (``IDLE_WAIT_S`` when
        it is empty)."""
        pending = self.spool.pending()
        if pending.events == 0 or pending.oldest_age_s is None:
            return IDLE_WAIT_S
        if (
            pending.events >= self.settings.max_batch_events
            or pending.unbatched_bytes >= self.settings.max_batch_bytes
        ):
            return 0.0
        wait = self._age_limit - pending.oldest_age_s
        return min(max(wait, MIN_WAIT_S), IDLE_WAIT_S)
