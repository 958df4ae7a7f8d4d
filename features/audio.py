"""``python -m features.audio`` in a clone runs ``python -m videoblip2.features.audio``; installed:
``videoblip2 features audio``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.features.audio", run_name="__main__", alter_sys=True)
else:  # `import features.audio` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.features.audio")
