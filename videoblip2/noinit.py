"""Build modules without initialising the weights a checkpoint overwrites next (loading costs what reading costs)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

# transformers' lists (what its own no_init_weights patches): the torch.nn.init functions, and the torch modules
# that bound them by name at import time
from transformers.initialization import TORCH_INIT_FUNCTIONS, TORCH_MODULES_TO_PATCH


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Modules built inside allocate their weights without initialising them (``torch.empty`` contents).

    Like transformers' ``no_init_weights``: the ``torch.nn.init`` functions do nothing (and return their
    tensor) and ``PreTrainedModel.initialize_weights`` does nothing; unlike it, ``init_weights`` still ties
    weights (T5's shared embeddings). Buffers computed by the constructors (position ids, masks) are computed
    as always. Only for modules whose every initialised weight is loaded next: initialising 400 M parameters
    costs several times reading them.
    """

    def skip(tensor, *args, **kwargs):
        return tensor

    saved: list[tuple[object, str, object]] = []
    try:
        for module_name in TORCH_MODULES_TO_PATCH:
            module = sys.modules.get(module_name)
            for name in TORCH_INIT_FUNCTIONS:
                if module is not None and hasattr(module, name):
                    saved.append((module, name, getattr(module, name)))
                    setattr(module, name, skip)
        modeling_utils = sys.modules.get("transformers.modeling_utils")  # only built models need it
        if modeling_utils is not None:
            pretrained = modeling_utils.PreTrainedModel
            saved.append((pretrained, "initialize_weights", pretrained.initialize_weights))
            pretrained.initialize_weights = lambda self: None
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)
