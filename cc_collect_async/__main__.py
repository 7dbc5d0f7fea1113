"""``python -m cc_collect_async``: the same as the ``cc-collect`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
