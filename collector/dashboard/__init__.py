"""The server-rendered IT-ops dashboard (Jinja2)."""
