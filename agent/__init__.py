"""The DexScope workstation agent.

Samplers (plug-ins under :mod:`agent.samplers`) produce wire events; the spool
(:mod:`agent.spool`) keeps them durably; the uploader (:mod:`agent.uploader`) sends them to
the collector in batches. The agent stays lean: it never imports pydantic, FastAPI,
SQLAlchemy or numpy, and only :mod:`agent.platform` imports psutil.
"""

__all__: list[str] = []
