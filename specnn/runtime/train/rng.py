"""Capture and restore every random number generator a run draws from.

A resumed run must draw the same random numbers as one that never stopped: dropout masks,
weight initialisation of lazily built parts, shuffling done by user code. The state is kept as
tensors and plain values only, so a checkpoint holding it loads with
``torch.load(weights_only=True)`` (no pickled NumPy arrays or tuples of Python objects).

>>> state = capture_rng_state()
>>> first = torch.rand(3)
>>> restore_rng_state(state)
>>> torch.equal(first, torch.rand(3))
True
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def capture_rng_state() -> dict[str, Any]:
    """The state of torch (CPU and every CUDA device), NumPy's global and Python's ``random``.

    Returns:
        ``{"torch": ByteTensor, "cuda": [ByteTensor per device], "numpy": {...}, "python": {...}}``;
        ``cuda`` is an empty list when CUDA is not available.
    """
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": _numpy_state(),
        "python": _python_state(),
    }


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generator states captured by :func:`capture_rng_state`.

    CUDA states are restored for the devices present on both machines: a run checkpointed on
    a GPU and resumed on a CPU-only machine keeps its CPU, NumPy and Python streams.
    """
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available():
        for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, device)
    _set_numpy_state(state["numpy"])
    _set_python_state(state["python"])


def _numpy_state() -> dict[str, Any]:
    # The legacy tuple is ('MT19937', uint32[624] keys, pos, has_gauss, cached_gaussian).
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "bit_generator": str(name),
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state(
        (state["bit_generator"], keys, state["pos"], state["has_gauss"], state["cached_gaussian"])
    )


def _python_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    # The Mersenne Twister words are < 2**32: they fit an int64 tensor exactly.
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next}


def _set_python_state(state: dict[str, Any]) -> None:
    internal = tuple(int(word) for word in state["internal"].tolist())
    random.setstate((state["version"], internal, state["gauss_next"]))
