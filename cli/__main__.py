"""``python -m lowbit.cli``: the same as the ``lowbit`` command."""

import sys

from . import main

sys.exit(main())
