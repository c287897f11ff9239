"""The server-rendered IT-ops dashboard (Jinja2)."""

__all__: list[str] = []
