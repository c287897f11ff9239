"""Service-desk tickets: imported from an ITSM (JSON or CSV), matched to devices and alerts.

Tickets tell detection whether an incident was caught before people called the service
desk: each ticket is matched to a device of its tenant by hostname and to the earliest
alert that covers that device at the time it was opened. The ticket's ``user`` is personal
data and is stored only as a keyed hash (the tenant's pseudonym key, as agents hash the
signed-in user), never in clear.
"""

__all__: list[str] = []
