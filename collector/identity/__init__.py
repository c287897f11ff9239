"""Identity: API keys and dashboard users, with their roles and tenant binding."""

__all__: list[str] = []
