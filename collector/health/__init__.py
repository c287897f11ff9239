"""Liveness, readiness and Prometheus metrics endpoints."""

__all__: list[str] = []
