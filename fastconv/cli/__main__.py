"""``python -m fastconv.cli ...``: the ``fastconv`` command."""

import sys

from . import main

sys.exit(main())
