"""Reading `.pt` files without running their code: `torch.load(weights_only=True)` with a named allow-list.

A `.pt` file is a pickle, and an unrestricted pickle can call any Python function while it loads (a crafted
CLAP checkpoint or `training_state.pt` can run a shell command). Every `.pt` the project reads goes through
`load_torch_file`: PyTorch's weights-only unpickler (tensors, dicts, lists, tuples, numbers, strings, ...)
plus exactly the extra globals the caller allows, each by the name it has inside the file
(`torch.serialization.safe_globals`). A file that needs anything else is refused with `UnsafeCheckpointError`,
one line naming the file and the global; nothing of it runs.

Allow-lists:
    CLAP_CHECKPOINT_GLOBALS: LAION's released CLAP checkpoints (`630k-audioset-best.pt`, ...) are
        laion_clap.training.main's `{"epoch", "name", "state_dict", "optimizer", "scaler"}` dicts. Their
        optimizer's learning rates are numpy float64 scalars (open_clip's cosine schedule computes them with
        np.cos), which pickle as `numpy.core.multiarray.scalar(numpy.dtype("f8"), bytes)`: those two globals
        and the float64 dtype's class (numpy.dtypes.Float64DType, whose state the unpickler sets), nothing
        else. (laion_clap itself unpickles them without restriction, clap_module/factory.load_state_dict.)
    Training states (`train/run_dir.py`): none. The trainer stores plain types and tensors only
        (train/rng.py keeps the numpy RNG state as a tensor and numbers).
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

# (object, the name it has in the file). numpy 2 moved numpy.core to numpy._core: the files, pickled under
# numpy 1.x, still say "numpy.core.multiarray.scalar", so the name is given explicitly.
try:  # numpy >= 2 (numpy.core.multiarray still works there, with a DeprecationWarning)
    from numpy._core.multiarray import scalar as _numpy_scalar
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import scalar as _numpy_scalar
CLAP_CHECKPOINT_GLOBALS: tuple[tuple[Any, str], ...] = (
    (np.dtype, "numpy.dtype"),
    (_numpy_scalar, "numpy.core.multiarray.scalar"),
    # not named in the file: the class of numpy.dtype("f8"), whose state the unpickler sets (BUILD)
    (type(np.dtype(np.float64)), f"{type(np.dtype(np.float64)).__module__}.{type(np.dtype(np.float64)).__qualname__}"),
)


class UnsafeCheckpointError(ValueError):
    """A `.pt` file that needs a Python global outside the allow-list (it could run code): not loaded."""


def load_torch_file(path: str | os.PathLike, allowed_globals: Sequence[Any] = (),
                    map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(path, weights_only=True)` with `allowed_globals` (objects or (object, name in the file)).

    Raises UnsafeCheckpointError (one line: the file and the first global it is refused) for a file that
    needs another global, or that the weights-only reader cannot read at all (e.g. pickle protocol 4).
    """
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpointError(_refusal(path, str(error), allowed_globals)) from None


def _refusal(path: str | os.PathLike, message: str, allowed: Sequence[Any]) -> str:
    names = {name for name in (_name(a) for a in allowed)}
    unsafe: list[str] = []
    try:  # lists the file's globals without running anything
        unsafe = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in names]
    except Exception:
        pass
    found = re.search(r"GLOBAL ([\w.]+)", message) or re.search(r"but got <class '([\w.]+)'>", message)
    if unsafe or found:
        name = unsafe[0] if unsafe else found.group(1)
        return (f"{path}: refused to load: the file needs the Python global {name}, which could run code "
                "(only tensors and plain data are read from .pt files); re-save its tensors with "
                "torch.save(state_dict) or use a file from a trusted release")
    detail = next((line.strip() for line in reversed(message.splitlines()) if line.strip().startswith(
        ("Unsupported", "WeightsUnpickler"))), message.splitlines()[-1].strip() if message else "unreadable")
    return (f"{path}: refused to load: PyTorch's weights-only reader cannot read it ({detail}); "
            "re-save its tensors with torch.save(state_dict)")


def _name(item: Any) -> str:
    if isinstance(item, tuple):
        return item[1]
    return f"{item.__module__}.{item.__qualname__}"


__all__ = ["CLAP_CHECKPOINT_GLOBALS", "UnsafeCheckpointError", "load_torch_file"]
