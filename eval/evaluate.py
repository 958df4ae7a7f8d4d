"""``python -m eval.evaluate`` in a clone runs ``python -m videoblip2.eval.evaluate``; installed:
``videoblip2 evaluate``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.eval.evaluate", run_name="__main__", alter_sys=True)
else:  # `import eval.evaluate` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.eval.evaluate")
