"""``python -m train.train_scst`` in a clone runs ``python -m videoblip2.train.train_scst``; installed:
``videoblip2 train-scst``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.train.train_scst", run_name="__main__", alter_sys=True)
else:  # `import train.train_scst` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.train.train_scst")
