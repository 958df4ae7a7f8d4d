"""``python -m eval.ablation`` in a clone runs ``python -m videoblip2.eval.ablation``; installed:
``videoblip2 ablation``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.eval.ablation", run_name="__main__", alter_sys=True)
else:  # `import eval.ablation` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.eval.ablation")
