"""``python -m idrop``: the same command line as the ``idrop`` script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
