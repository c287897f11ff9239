"""SQL for job runs: record one, read the newest per job, forget old ones."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from collector.health.models import JobRun

__all__ = ["JobRunRepository"]


class JobRunRepository:
    """Reads and writes :class:`JobRun` rows."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, run: JobRun) -> None:
        """Stage one run."""
        self.session.add(run)

    def latest(self) -> list[JobRun]:
        """The newest run of each job."""
        newest = (
            select(JobRun.name, func.max(JobRun.id).label("id")).group_by(JobRun.name).subquery()
        )
        return list(
            self.session.scalars(
                select(JobRun).join(newest, JobRun.id == newest.c.id).order_by(JobRun.name)
            )
        )

    def last_success(self) -> dict[str, datetime]:
        """When each job last finished successfully."""
        rows = self.session.execute(
            select(JobRun.name, func.max(JobRun.finished_at))
            .where(JobRun.ok.is_(True))
            .group_by(JobRun.name)
        )
        return {r[0]: r[1] for r in rows}

    def last_ok_as_of(self, name: str) -> datetime | None:
        """The latest ``as_of`` a job ran at successfully (None: never, or forgotten)."""
        return self.session.scalar(
            select(func.max(JobRun.as_of)).where(JobRun.name == name, JobRun.ok.is_(True))
        )

    def delete_before(self, cutoff: datetime) -> int:
        """Forget runs finished before ``cutoff``; how many went."""
        result = self.session.execute(delete(JobRun).where(JobRun.finished_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)
