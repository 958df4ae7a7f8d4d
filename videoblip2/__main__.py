"""``python -m videoblip2 SUBCOMMAND ...``: the same as the ``videoblip2`` console script."""

import sys

from .commands import main

if __name__ == "__main__":
    sys.exit(main())
