"""The DexScope collector: ingest, storage, API, dashboard and jobs (FastAPI + SQLAlchemy).

Build an application with :func:`collector.app.create_app`; nothing here connects to a
database at import time.
"""

__all__: list[str] = []
