"""Alert notifications: per-tenant webhook subscriptions and a delivery outbox.

Detection calls :func:`collector.notifications.service.enqueue_alert_event` in the same
transaction as an alert change; the ``notify`` job delivers the queued events (signed,
retried with backoff, one slow receiver never holding up the others) in the shape of
each webhook's kind: generic JSON, Slack, Microsoft Teams, ServiceNow or Jira.
"""

__all__: list[str] = []
