"""DexScope: open-source digital employee experience (DEX) platform.

This small package holds what every part shares: the version, the wire protocol
(:mod:`dexscope.wire`) and the ``dexscope`` command line (:mod:`dexscope.cli`).
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
