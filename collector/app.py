"""The application factory: ``create_app(settings)``.

The lifespan builds the engine and the session factory; nothing connects at import time,
so several processes (or tests) can each build their own app.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, Response

from collector.alerts.router import router as alerts_router
from collector.dashboard.router import router as dashboard_router
from collector.db import make_engine, make_sessionmaker
from collector.devices.router import router as devices_router
from collector.errors import install_error_handlers
from collector.health.router import router as health_router
from collector.ingest.router import router as ingest_router
from collector.metrics import CollectorMetrics
from collector.notifications.router import router as notifications_router
from collector.openapi import install_openapi
from collector.personas.router import router as personas_router
from collector.ratelimit import RateLimits, enroll_ip_limit, ingest_device_limit, ingest_ip_limit
from collector.scores.router import router as scores_router
from collector.settings import Settings
from collector.surveys.router import router as surveys_router
from collector.tickets.router import router as tickets_router
from collector.xlas.router import router as xlas_router
from dexscope import __version__

__all__ = ["create_app"]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the collector's ASGI app (API, dashboard, health and metrics)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url(), pool_size=settings.db_pool_size)
        app.state.engine = engine
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.metrics.watch(engine, app.state.sessionmaker)
        try:
            yield
        finally:
            engine.dispose()

    app = FastAPI(
        title="DexScope collector",
        version=__version__,
        description="Ingest, inventory and experience API of DexScope.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = CollectorMetrics()
    app.state.rate_limits = RateLimits(settings)
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(health_router)
    # Rate limits (429 rate_limited + Retry-After) run before the route reads the body: the
    # address first (before authentication), then the device its token names.
    app.include_router(devices_router, dependencies=[Depends(enroll_ip_limit)])
    app.include_router(
        ingest_router, dependencies=[Depends(ingest_ip_limit), Depends(ingest_device_limit)]
    )
    app.include_router(surveys_router)
    app.include_router(personas_router)
    app.include_router(scores_router)
    app.include_router(alerts_router)
    app.include_router(tickets_router)
    app.include_router(notifications_router)
    app.include_router(xlas_router)
    app.include_router(dashboard_router)

    @app.middleware("http")
    async def record_metrics(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics: CollectorMetrics = request.app.state.metrics
        metrics.latency.labels(route=path).observe(time.perf_counter() - started)
        metrics.requests.labels(
            method=request.method, route=path, status=str(response.status_code)
        ).inc()
        return response

    return app
