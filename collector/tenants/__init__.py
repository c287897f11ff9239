"""Tenants (an MSP's clients) and their enrollment tokens."""
