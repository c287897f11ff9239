"""XLAs: definitions as code (versioned), their evaluation per period, and the MSP view."""

__all__: list[str] = []
