"""``python -m train.make_top5`` in a clone runs ``python -m videoblip2.train.make_top5``; installed:
``videoblip2 make-top5``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.train.make_top5", run_name="__main__", alter_sys=True)
else:  # `import train.make_top5` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.train.make_top5")
