"""Retry timing for uploads: exponential backoff with jitter, honouring ``Retry-After``."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime

__all__ = ["Backoff", "parse_retry_after"]


class Backoff:
    """When the next upload attempt may run.

    After the n-th consecutive failure (n from 0) the delay is drawn uniformly from
    ``[base_s, min(max_s, base_s * 2**n)]``: exponential growth to a cap, with full jitter
    so a fleet coming back after an outage does not retry in lockstep. A server's
    ``Retry-After`` is a floor: never earlier than the server asked (the collector is ours;
    meanwhile sampling goes on into the bounded spool). :meth:`reset` on success. The clock and
    the RNG are injected so tests control time and randomness.
    """

    def __init__(
        self,
        base_s: float,
        max_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if base_s <= 0 or max_s < base_s:
            raise ValueError("backoff needs 0 < base_s <= max_s")
        self.base_s = base_s
        self.max_s = max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self.failures = 0
        self.next_attempt_at = 0.0

    def ready(self) -> bool:
        """Whether an attempt may run now."""
        return self._clock() >= self.next_attempt_at

    def wait_s(self) -> float:
        """Seconds until the next attempt may run (0 when ready)."""
        return max(0.0, self.next_attempt_at - self._clock())

    def failure(self, retry_after_s: float | None = None) -> float:
        """Record a failure; returns the delay chosen before the next attempt.

        ``retry_after_s`` (the server's ``Retry-After``) is honoured as a minimum delay.
        """
        ceiling = min(self.max_s, self.base_s * 2.0 ** min(self.failures, 60))
        delay = self._rng.uniform(self.base_s, ceiling)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s)
        self.failures += 1
        self.next_attempt_at = self._clock() + delay
        return delay

    def retry_after(self, seconds: float) -> float:
        """Record a failure the server answered with ``Retry-After: seconds``."""
        return self.failure(retry_after_s=seconds)

    def reset(self) -> None:
        """Record a success: the next attempt may run at once, growth starts over."""
        self.failures = 0
        self.next_attempt_at = 0.0


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = time.time() if now is None else now
    return max(0.0, when.timestamp() - reference)
