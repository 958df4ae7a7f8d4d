"""``python -m features.video`` in a clone runs ``python -m videoblip2.features.video``; installed:
``videoblip2 features video``."""

import importlib
import runpy
import sys

if __name__ == "__main__":
    runpy.run_module("videoblip2.features.video", run_name="__main__", alter_sys=True)
else:  # `import features.video` is the moved module itself
    sys.modules[__name__] = importlib.import_module("videoblip2.features.video")
