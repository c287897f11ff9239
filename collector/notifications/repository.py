"""SQL for webhooks and the notification outbox.

Claiming due deliveries is safe with several collector processes: on PostgreSQL the rows
are selected ``FOR UPDATE SKIP LOCKED`` (a process never waits for, nor takes, rows
another one is claiming), and every claim is a compare-and-set on ``next_attempt_at`` that
leases the row for a while, so a row is sent by one process at a time and, if that process
dies, again after its lease ends (at-least-once; receivers de-duplicate on the delivery id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from collector.notifications.models import NotificationDelivery, Webhook

__all__ = ["PENDING", "SUPPRESSED", "NotificationRepository"]

PENDING = "pending"
"""Status of a delivery still to be (re)tried."""
SUPPRESSED = "suppressed"
"""Status of a delivery recorded but never sent: raised by a replay of the past
(``collector jobs --as-of``), which must not notify anyone today."""


class NotificationRepository:
    """Reads and writes webhooks and their deliveries."""

    def __init__(self, session: Session) -> None:
        self.session = session

    # --- webhooks

    def add_webhook(self, webhook: Webhook) -> Webhook:
        """Stage a new webhook."""
        self.session.add(webhook)
        self.session.flush()
        return webhook

    def webhooks(self, tenant_id: uuid.UUID | None) -> list[Webhook]:
        """The webhooks of ``tenant_id`` (None = every tenant), newest first."""
        query = select(Webhook)
        if tenant_id is not None:
            query = query.where(Webhook.tenant_id == tenant_id)
        return list(self.session.scalars(query.order_by(Webhook.created_at.desc(), Webhook.id)))

    def webhook(self, webhook_id: uuid.UUID, tenant_id: uuid.UUID | None) -> Webhook | None:
        """One webhook, if it exists and belongs to ``tenant_id`` (None = any tenant)."""
        webhook = self.session.get(Webhook, webhook_id)
        if webhook is None or (tenant_id is not None and webhook.tenant_id != tenant_id):
            return None
        return webhook

    def delete_webhook(self, webhook: Webhook) -> None:
        """Delete a webhook and, with it, its deliveries."""
        self.session.delete(webhook)
        self.session.flush()

    def enabled_webhooks(self, tenant_id: uuid.UUID) -> list[Webhook]:
        """The tenant's enabled webhooks, oldest first."""
        return list(
            self.session.scalars(
                select(Webhook)
                .where(Webhook.tenant_id == tenant_id, Webhook.enabled.is_(True))
                .order_by(Webhook.created_at, Webhook.id)
            )
        )

    def webhooks_by_id(self, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Webhook]:
        """Webhooks by id."""
        wanted = list(set(ids))
        if not wanted:
            return {}
        return {
            w.id: w for w in self.session.scalars(select(Webhook).where(Webhook.id.in_(wanted)))
        }

    # --- deliveries

    def add_deliveries(self, deliveries: Sequence[NotificationDelivery]) -> None:
        """Stage new deliveries."""
        self.session.add_all(deliveries)
        self.session.flush()

    def unsent_updates(
        self, alert_id: uuid.UUID, now: datetime
    ) -> dict[uuid.UUID, NotificationDelivery]:
        """The alert's ``updated`` deliveries not yet attempted nor being sent (leased), by
        webhook id."""
        rows = self.session.scalars(
            select(NotificationDelivery).where(
                NotificationDelivery.alert_id == alert_id,
                NotificationDelivery.event == "updated",
                NotificationDelivery.status == PENDING,
                NotificationDelivery.attempts == 0,
                NotificationDelivery.next_attempt_at <= now,
            )
        )
        return {row.webhook_id: row for row in rows}

    def claim_due(
        self,
        now: datetime,
        lease_until: datetime,
        limit: int,
        exclude: Sequence[uuid.UUID] = (),
    ) -> list[NotificationDelivery]:
        """Lease up to ``limit`` pending deliveries due at ``now`` until ``lease_until``.

        Returns the rows this session won, oldest due first; the caller commits to
        publish the lease (and release PostgreSQL's row locks) before sending.
        """
        query = (
            select(NotificationDelivery.id, NotificationDelivery.next_attempt_at)
            .where(
                NotificationDelivery.status == PENDING,
                NotificationDelivery.next_attempt_at <= now,
            )
            .order_by(NotificationDelivery.next_attempt_at, NotificationDelivery.created_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        if exclude:
            query = query.where(NotificationDelivery.id.not_in(list(exclude)))
        candidates = list(self.session.execute(query))
        won: list[uuid.UUID] = []
        for delivery_id, due in candidates:
            result = self.session.execute(
                update(NotificationDelivery)
                .where(
                    NotificationDelivery.id == delivery_id,
                    NotificationDelivery.status == PENDING,
                    NotificationDelivery.next_attempt_at == due,
                )
                .values(next_attempt_at=lease_until)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0) == 1:
                won.append(delivery_id)
        if not won:
            return []
        rows = self.session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.id.in_(won))
            .execution_options(populate_existing=True)
        )
        return sorted(rows, key=lambda d: (d.created_at, str(d.id)))

    def record(self, delivery_id: uuid.UUID, values: dict[str, Any]) -> None:
        """Store the outcome of an attempt."""
        self.session.execute(
            update(NotificationDelivery)
            .where(NotificationDelivery.id == delivery_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def deliveries(self, webhook_id: uuid.UUID, limit: int) -> list[NotificationDelivery]:
        """A webhook's most recent deliveries, newest first."""
        return list(
            self.session.scalars(
                select(NotificationDelivery)
                .where(NotificationDelivery.webhook_id == webhook_id)
                .order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id)
                .limit(limit)
            )
        )
