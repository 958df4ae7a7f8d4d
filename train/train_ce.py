"""``python -m train.train_ce`` in a clone runs ``python -m videoblip2.train.train_ce``; installed:
``videoblip2 train-ce``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.train.train_ce", run_name="__main__", alter_sys=True)
else:  # `import train.train_ce` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.train.train_ce")
