"""Ingest: validating, deduplicating and storing agents' batches whole or not at all."""

__all__: list[str] = []
