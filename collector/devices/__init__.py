"""Devices: enrollment, device tokens, inventory and the agent's configuration."""
