"""The DexScope workstation agent.

Samplers (plug-ins under :mod:`agent.samplers`) produce wire events; the spool
(:mod:`agent.spool`) keeps them durably; the uploader (:mod:`agent.uploader`) sends them to
the collector in batches. The agent stays lean: it never imports pydantic, FastAPI,
SQLAlchemy or numpy, and only :mod:`agent.platform` imports psutil.
"""

import sys

__all__: list[str] = []

# httpx imports its own command-line tool (click, rich, pygments: about 10 MB of RSS and
# 0.2 s of start-up) whenever those packages are installed, as they are beside the
# collector. The agent never uses that tool, so it is kept out of the agent process.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
