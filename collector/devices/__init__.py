"""Devices: enrollment, device tokens, inventory and the agent's configuration."""

__all__: list[str] = []
