"""Seeding, and the random states a resume restores (python, numpy, torch, CUDA).

`rng_state` keeps every state in types the weights-only `.pt` reader accepts without an allow-list
(videoblip2.safe_load): python's as nested tuples of ints, numpy's MT19937 key as an int64 tensor with plain
numbers, torch's and CUDA's as byte tensors.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

import numpy as np
import torch


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    kind, key, pos, has_gauss, gauss = np.random.get_state(legacy=True)
    state = {"python": random.getstate(),
             "numpy": {"bit_generator": str(kind), "key": torch.from_numpy(key.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, Mapping):
        numpy_state = (numpy_state["bit_generator"], np.asarray(numpy_state["key"], dtype=np.uint32),
                       numpy_state["pos"], numpy_state["has_gauss"], numpy_state["gauss"])
    np.random.set_state(numpy_state)
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
