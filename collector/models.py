"""Imports every table module so ``Base.metadata`` is complete (Alembic, tests)."""

from collector.alerts.models import Alert
from collector.db import Base
from collector.devices.models import Device, DeviceToken
from collector.health.models import JobRun
from collector.identity.models import ApiKey, User, UserSession
from collector.ingest.models import Event, IngestBatch
from collector.notifications.models import NotificationDelivery, Webhook
from collector.personas.models import TenantPersona
from collector.scores.models import DeviceAppDay, DeviceDayScore, ScoringWatermark
from collector.surveys.models import SurveyCampaign
from collector.tenants.models import EnrollmentToken, Tenant
from collector.tickets.models import Ticket
from collector.xlas.models import XlaDefinition, XlaDefinitionVersion, XlaEvaluation

__all__ = [
    "Alert",
    "ApiKey",
    "Base",
    "Device",
    "DeviceAppDay",
    "DeviceDayScore",
    "DeviceToken",
    "EnrollmentToken",
    "Event",
    "IngestBatch",
    "JobRun",
    "NotificationDelivery",
    "ScoringWatermark",
    "SurveyCampaign",
    "Tenant",
    "TenantPersona",
    "Ticket",
    "User",
    "UserSession",
    "Webhook",
    "XlaDefinition",
    "XlaDefinitionVersion",
    "XlaEvaluation",
]
