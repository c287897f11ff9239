"""The job-run table: one row per job per ``collector jobs`` run (for ``/metrics``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from collector.db import Base, BigIntPK, UTCDateTime

__all__ = ["JobRun"]


class JobRun(Base):
    """How one job went in one run: when, how long, whether it succeeded.

    Jobs run in their own processes (``dexscope collector jobs``), possibly on other hosts;
    the serving processes read the newest row per job to expose it on ``/metrics``.
    Retention keeps 30 days of them.
    """

    __tablename__ = "job_runs"
    __table_args__ = (Index("ix_job_runs_name_finished", "name", "finished_at"),)

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(32))
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime())
    duration_s: Mapped[float] = mapped_column(Float)
    ok: Mapped[bool]
    error: Mapped[str | None] = mapped_column(Text, default=None)
