"""``python -m fastconv ...``: the same command as the ``fastconv`` console script."""

import sys

from .cli import main

sys.exit(main())
