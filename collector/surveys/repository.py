"""SQL for survey campaigns and the survey answers stored as raw events.

Answers are ``survey_response`` rows of the ``events`` table with the campaign id inside
the JSON ``data``. JSON filtering differs between SQLite and PostgreSQL, so the portable
queries here filter only on indexed columns (tenant or device, ``type``) and leave the
``campaign_id`` / ``outcome`` test to the caller, in Python. That reads every answer of a
tenant for one campaign's results, which is fine at survey volumes (a few answers per
device and week); a JSON-path index is the way out if it ever is not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from collector.devices.models import Device
from collector.ingest.models import Event
from collector.surveys.models import SurveyCampaign

__all__ = ["SURVEY_RESPONSE", "SurveyRepository"]

SURVEY_RESPONSE = "survey_response"
"""The event type of survey answers."""


class SurveyRepository:
    """Reads and writes survey campaigns; reads survey answers."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, campaign: SurveyCampaign) -> None:
        """Stage a new campaign (IntegrityError on flush if its id is taken in the tenant)."""
        self.session.add(campaign)
        self.session.flush()

    def find(self, campaign_id: str, tenant_id: uuid.UUID | None) -> list[SurveyCampaign]:
        """Campaigns with this id: in ``tenant_id``, or in any tenant when it is None."""
        query = select(SurveyCampaign).where(SurveyCampaign.id == campaign_id)
        if tenant_id is not None:
            query = query.where(SurveyCampaign.tenant_id == tenant_id)
        return list(self.session.scalars(query.order_by(SurveyCampaign.tenant_id)))

    def for_tenant(self, tenant_id: uuid.UUID | None) -> list[SurveyCampaign]:
        """The campaigns of ``tenant_id`` (None = all tenants), newest first."""
        query = select(SurveyCampaign)
        if tenant_id is not None:
            query = query.where(SurveyCampaign.tenant_id == tenant_id)
        return list(
            self.session.scalars(
                query.order_by(SurveyCampaign.created_at.desc(), SurveyCampaign.id)
            )
        )

    def active(self, tenant_id: uuid.UUID, now: datetime) -> list[SurveyCampaign]:
        """The tenant's campaigns running at ``now`` (started, and not ended)."""
        return list(
            self.session.scalars(
                select(SurveyCampaign)
                .where(
                    SurveyCampaign.tenant_id == tenant_id,
                    SurveyCampaign.starts_at <= now,
                    or_(SurveyCampaign.ends_at.is_(None), SurveyCampaign.ends_at > now),
                )
                .order_by(SurveyCampaign.starts_at, SurveyCampaign.id)
            )
        )

    def tenant_responses(
        self, tenant_id: uuid.UUID
    ) -> list[tuple[datetime, str | None, dict[str, Any]]]:
        """Every survey answer of the tenant as ``(ts, device persona, data)``, oldest first.

        Uses the ``(tenant_id, type, ts)`` index; the caller picks the campaign's rows. The
        persona is the device's assigned persona now (None before assignment).
        """
        rows = self.session.execute(
            select(Event.ts, Device.persona, Event.data)
            .join(Device, Device.id == Event.device_id)
            .where(Event.tenant_id == tenant_id, Event.type == SURVEY_RESPONSE)
            .order_by(Event.ts, Event.id)
        )
        return [(row[0], row[1], row[2]) for row in rows]

    def device_responses_newest_first(
        self, device_id: uuid.UUID
    ) -> Iterator[tuple[datetime, dict[str, Any]]]:
        """A device's survey answers as ``(ts, data)``, newest first, fetched lazily.

        Uses the ``(device_id, ts)`` index; the caller stops at the first one it wants.
        """
        result = self.session.execute(
            select(Event.ts, Event.data)
            .where(Event.device_id == device_id, Event.type == SURVEY_RESPONSE)
            .order_by(Event.ts.desc(), Event.id.desc())
            .execution_options(yield_per=100)
        )
        try:
            for row in result:
                yield row[0], row[1]
        finally:
            result.close()
