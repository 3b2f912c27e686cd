"""``python -m wspframe``."""

import sys

from ._cli import main

sys.exit(main())
