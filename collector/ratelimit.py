"""Rate limits of the device-facing routes: a token bucket per key, and its HTTP wiring.

:class:`TokenBucketLimiter` is a small pure object: ``rate_per_min`` tokens flow into each
key's bucket per minute up to ``burst``; a request takes one token or is refused with the
seconds until one is back. The clock is injected, so tests need no sleeping.

:class:`RateLimits` holds the limiters the settings ask for (``ingest`` per device and per
client IP, ``enroll`` per client IP); a rate of 0 switches that limit off. The limiters live
in the process: with N worker processes the effective limit is N times the configured one
(``docs/security.md``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from collector.auth import CurrentDevice
from collector.errors import ApiError
from collector.settings import Settings

__all__ = [
    "RateLimited",
    "RateLimits",
    "TokenBucketLimiter",
    "client_ip",
    "enroll_ip_limit",
    "ingest_device_limit",
    "ingest_ip_limit",
    "retry_after_header",
]


class RateLimited(ApiError):
    """429: too many requests from this device or address; ``Retry-After`` says when."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBucketLimiter:
    """A token bucket per key: ``rate_per_min`` refill, ``burst`` capacity.

    ``clock`` returns seconds (monotonic by default). Buckets that have refilled completely
    are forgotten (a full bucket and no bucket are the same), at most every ``sweep_s``
    seconds, so memory follows the keys active in the last ``burst / rate`` minutes.
    """

    def __init__(
        self,
        rate_per_min: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_s: float = 60.0,
    ) -> None:
        if rate_per_min <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate_per_min > 0 and burst >= 1")
        self.rate_per_s = rate_per_min / 60.0
        self.burst = float(burst)
        self._clock = clock
        self._sweep_s = sweep_s
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()
        self._last_sweep = clock()

    def __len__(self) -> int:
        """How many keys have a bucket that is not full."""
        return len(self._buckets)

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when allowed, else the seconds until one is back."""
        with self._lock:
            now = self._clock()
            if now - self._last_sweep >= self._sweep_s:
                self._sweep(now)
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            else:
                elapsed = max(0.0, now - bucket.updated)
                bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate_per_s)
                bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate_per_s

    def _sweep(self, now: float) -> None:
        full_after = self.burst / self.rate_per_s
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated < full_after}
        self._last_sweep = now


def retry_after_header(wait_s: float) -> int:
    """Whole seconds for ``Retry-After``: rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


def _limiter(rate_per_min: float, burst: int) -> TokenBucketLimiter | None:
    return TokenBucketLimiter(rate_per_min, burst) if rate_per_min > 0 else None


class RateLimits:
    """This process's limiters, built from the settings (``None`` = that limit is off)."""

    def __init__(self, settings: Settings) -> None:
        self.ingest_per_device = _limiter(
            settings.ingest_rate_per_device_per_min, settings.ingest_burst_per_device
        )
        self.ingest_per_ip = _limiter(
            settings.ingest_rate_per_ip_per_min, settings.ingest_burst_per_ip
        )
        self.enroll_per_ip = _limiter(
            settings.enroll_rate_per_ip_per_min, settings.enroll_burst_per_ip
        )

    @staticmethod
    def check(limiter: TokenBucketLimiter | None, key: str, what: str) -> None:
        """Raise :class:`RateLimited` if ``limiter`` refuses ``key`` (``what`` names it)."""
        if limiter is None:
            return
        wait = limiter.acquire(key)
        if wait > 0:
            seconds = retry_after_header(wait)
            raise RateLimited(f"too many requests {what}: retry in {seconds} s", seconds)


def client_ip(request: Request) -> str:
    """The client's address as the server sees it (uvicorn applies trusted proxy headers)."""
    return request.client.host if request.client else "unknown"


def _route_is(request: Request, method: str, path: str) -> bool:
    route = request.scope.get("route")
    return request.method == method and getattr(route, "path", None) == path


def _limits(request: Request) -> RateLimits:
    limits: RateLimits = request.app.state.rate_limits
    return limits


async def ingest_ip_limit(request: Request) -> None:
    """Dependency: ``POST /api/v1/ingest`` per client IP (before authentication)."""
    if _route_is(request, "POST", "/api/v1/ingest"):
        limits = _limits(request)
        RateLimits.check(limits.ingest_per_ip, client_ip(request), "from this address")


async def enroll_ip_limit(request: Request) -> None:
    """Dependency: ``POST /api/v1/enroll`` per client IP."""
    if _route_is(request, "POST", "/api/v1/enroll"):
        limits = _limits(request)
        RateLimits.check(limits.enroll_per_ip, client_ip(request), "from this address")


async def ingest_device_limit(request: Request, device: CurrentDevice) -> None:
    """Dependency: ``POST /api/v1/ingest`` per device (the one its token authenticates).

    FastAPI caches ``CurrentDevice`` per request, so the route reuses this lookup.
    """
    if _route_is(request, "POST", "/api/v1/ingest"):
        limits = _limits(request)
        RateLimits.check(limits.ingest_per_device, str(device.id), "from this device")
