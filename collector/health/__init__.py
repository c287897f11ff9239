"""Liveness, readiness and Prometheus metrics endpoints."""
