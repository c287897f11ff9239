"""Tenants (an MSP's clients) and their enrollment tokens."""

__all__: list[str] = []
