"""DexScope scoring: pure, vectorised numpy — arrays in, arrays out, no I/O.

The first piece is the Apdex-shaped classification every duration metric uses; device,
persona and application scores build on it (see docs/scoring.md).
"""

from scoring.apdex import FRUSTRATED, SATISFIED, TOLERATING, apdex, classify

__all__ = ["FRUSTRATED", "SATISFIED", "TOLERATING", "apdex", "classify"]
