"""``python -m sklearn_ood``: the command line interface."""

import sys

from .cli import main

sys.exit(main())
