"""``python -m recist``: the same as the ``recist`` console script."""

import sys

from recist.cli import main

sys.exit(main())
