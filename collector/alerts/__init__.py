"""Alerts: degradations found by the detection job, with their evidence and suspected change.

An alert opens when a metric of a scope (device, app, app version, persona, group, site,
tenant) degrades significantly against its baseline or its peers, updates as it grows, and
resolves itself when the metric recovers; people acknowledge and resolve it by hand too.
"""

__all__: list[str] = []
