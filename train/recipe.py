"""``python -m train.recipe``: the same command as ``python -m videoblip2.recipe`` (raw videos -> published model)."""

import sys

from videoblip2.recipe import main, parse_args

__all__ = ["main", "parse_args"]

if __name__ == "__main__":
    sys.exit(main())
