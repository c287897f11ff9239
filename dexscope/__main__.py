"""``python -m dexscope``: the same as the ``dexscope`` command."""

import sys

from dexscope.cli import main

sys.exit(main())
