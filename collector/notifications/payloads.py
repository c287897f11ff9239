"""What a delivery sends: the alert snapshot, its rendering per webhook kind, the signature.

The snapshot (:func:`alert_snapshot`) is the alert as the API shows it, taken when the
event happens. It carries no personal data beyond the alert's own: device hostnames appear
only when the alert is about one device. :func:`render` turns it into the body of each
kind; :func:`sign` gives the ``X-DexScope-Signature`` header (Stripe-style:
``t=<unix seconds>,v1=<hex HMAC-SHA-256 of "<t>.<body>">``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from datetime import datetime
from typing import Any, Final

from collector.alerts.models import Alert

__all__ = [
    "SIGNATURE_HEADER",
    "alert_link",
    "alert_snapshot",
    "render",
    "servicenow_urgency_impact",
    "sign",
    "verify_signature",
]

SIGNATURE_HEADER: Final = "X-DexScope-Signature"
_COLOURS: Final = {"low": "2EB67D", "medium": "ECB22E", "high": "E8912D", "critical": "E01E5A"}
_URGENCY_IMPACT: Final = {
    "critical": ("1", "1"),
    "high": ("1", "2"),
    "medium": ("2", "2"),
    "low": ("3", "3"),
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def alert_snapshot(alert: Alert, hostnames: dict[uuid.UUID, str]) -> dict[str, Any]:
    """The alert as the API shows it, JSON-ready (``hostnames`` of its devices, used only
    when the alert's scope is one device)."""
    devices: list[dict[str, Any]] = []
    if alert.scope == "device":
        ids = [alert.scope_key, *alert.affected_device_ids]
        for raw in dict.fromkeys(ids):
            try:
                device_id = uuid.UUID(str(raw))
            except ValueError:
                continue
            devices.append({"device_id": str(device_id), "hostname": hostnames.get(device_id)})
    return {
        "id": str(alert.id),
        "tenant_id": str(alert.tenant_id),
        "kind": alert.kind,
        "scope": alert.scope,
        "scope_key": alert.scope_key,
        "metric": alert.metric,
        "title": alert.title,
        "onset": _iso(alert.onset),
        "detected_at": _iso(alert.detected_at),
        "updated_at": _iso(alert.updated_at),
        "severity": alert.severity,
        "affected_devices": {"count": alert.affected_count, "devices": devices},
        "suspected_change": alert.suspected_change,
        "status": alert.status,
        "acknowledged_at": _iso(alert.acknowledged_at),
        "resolved_at": _iso(alert.resolved_at),
        "baseline": alert.baseline,
        "current": alert.current,
    }


def alert_link(public_url: str | None, alert_id: str) -> str | None:
    """The dashboard page of an alert (None when the collector's public URL is not set)."""
    if not public_url:
        return None
    return f"{public_url.rstrip('/')}/alerts/{alert_id}"


def servicenow_urgency_impact(severity: str) -> tuple[str, str]:
    """ServiceNow ``(urgency, impact)`` of a severity (1 = high … 3 = low)."""
    return _URGENCY_IMPACT.get(severity, ("3", "3"))


def _change_text(change: dict[str, Any] | None) -> str | None:
    if not change:
        return None
    parts = [str(change[k]) for k in ("change", "name", "version") if change.get(k)]
    return " ".join(parts) if parts else json.dumps(change, sort_keys=True)[:300]


def _facts(alert: dict[str, Any]) -> list[tuple[str, str]]:
    facts = [
        ("Severity", str(alert["severity"])),
        ("Status", str(alert["status"])),
        ("Scope", f"{alert['scope']}: {alert['scope_key']}"),
        ("Metric", str(alert["metric"])),
        ("Onset", str(alert["onset"])),
        ("Detected", str(alert["detected_at"])),
        ("Affected devices", str(alert["affected_devices"]["count"])),
    ]
    hosts = [d["hostname"] for d in alert["affected_devices"]["devices"] if d.get("hostname")]
    if hosts:
        facts.append(("Device", ", ".join(hosts)))
    change = _change_text(alert.get("suspected_change"))
    if change:
        facts.append(("Suspected change", change))
    return facts


def _description(alert: dict[str, Any], event: str, link: str | None) -> str:
    lines = [f"DexScope alert {event}: {alert['title']}", ""]
    lines += [f"{name}: {value}" for name, value in _facts(alert)]
    lines += ["", f"Alert id: {alert['id']}"]
    if link:
        lines.append(f"Dashboard: {link}")
    return "\n".join(lines)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(alert: dict[str, Any], event: str, link: str | None) -> dict[str, Any]:
    title = _slack_escape(str(alert["title"]))
    severity = str(alert["severity"]).upper()
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"[{severity}] {alert['title']}"[:150]},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*{name}*\n{_slack_escape(value)}"}
                for name, value in _facts(alert)[:10]
            ],
        },
    ]
    if link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in DexScope"},
                        "url": link,
                    }
                ],
            }
        )
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": f"DexScope alert {alert['id']} · {event}"}],
        }
    )
    return {"text": f"[{severity}] Alert {event}: {title}", "blocks": blocks}


def _teams(alert: dict[str, Any], event: str, link: str | None) -> dict[str, Any]:
    severity = str(alert["severity"])
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "size": "Large",
                "weight": "Bolder",
                "wrap": True,
                "text": str(alert["title"]),
            },
            {
                "type": "TextBlock",
                "wrap": True,
                "color": "Attention" if severity in ("high", "critical") else "Default",
                "text": f"Alert {event} · severity {severity}",
            },
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in _facts(alert)],
            },
        ],
        "msteams": {"width": "Full"},
    }
    if link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in DexScope", "url": link}]
    return {
        "type": "message",
        "summary": f"[{severity.upper()}] {alert['title']}"[:200],
        "themeColor": _COLOURS.get(severity, "808080"),
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": card,
            }
        ],
    }


def _servicenow(alert: dict[str, Any], event: str, link: str | None) -> dict[str, Any]:
    urgency, impact = servicenow_urgency_impact(str(alert["severity"]))
    return {
        "short_description": f"[DexScope] {alert['title']}"[:160],
        "description": _description(alert, event, link),
        "urgency": urgency,
        "impact": impact,
        "category": "software",
        "correlation_id": alert["id"],
        "correlation_display": "DexScope",
    }


def _jira(
    alert: dict[str, Any], event: str, link: str | None, project_key: str | None
) -> dict[str, Any]:
    severity = str(alert["severity"])
    return {
        "fields": {
            "project": {"key": project_key},
            "summary": f"[DexScope] {alert['title']}"[:255],
            "description": _description(alert, event, link),
            "issuetype": {"name": "Incident"},
            "labels": ["dexscope", f"dexscope-{severity}", f"dexscope-alert-{alert['id']}"],
        }
    }


def render(
    kind: str,
    alert: dict[str, Any],
    *,
    event: str,
    delivery_id: uuid.UUID,
    occurred_at: datetime,
    public_url: str | None,
    project_key: str | None = None,
) -> dict[str, Any]:
    """The body of a delivery for a webhook of ``kind`` (see docs/integrations.md)."""
    link = alert_link(public_url, str(alert["id"]))
    if kind == "slack":
        return _slack(alert, event, link)
    if kind == "teams":
        return _teams(alert, event, link)
    if kind == "servicenow":
        return _servicenow(alert, event, link)
    if kind == "jira":
        return _jira(alert, event, link, project_key)
    return {
        **alert,
        "event": event,
        "delivery_id": str(delivery_id),
        "occurred_at": occurred_at.isoformat(),
        "link": link,
    }


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The ``X-DexScope-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA-256>`` of
    ``"<timestamp>.<body>"`` keyed with the webhook's secret (UTF-8)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str, body: bytes, header: str, *, now: int, tolerance_s: int = 300
) -> bool:
    """What a receiver does: True when ``header`` signs ``body`` with ``secret`` and its
    timestamp is within ``tolerance_s`` of ``now`` (replay protection)."""
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        timestamp = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))
