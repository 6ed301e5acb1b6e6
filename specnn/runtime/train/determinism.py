"""``train.deterministic``: torch's deterministic algorithms, and what a run records about them.

With ``deterministic: true`` torch uses only deterministic kernels (and raises where an operation
has none), cuDNN picks no algorithm by benchmarking, and cuBLAS gets the fixed workspace it needs
to be deterministic on CUDA (``CUBLAS_WORKSPACE_CONFIG``, set before the first cuBLAS call when the
user has not set it). On the CPU specnn's runs already repeat bit for bit without it.
"""

from __future__ import annotations

import os
from typing import Any

import torch

CUBLAS_VARIABLE = "CUBLAS_WORKSPACE_CONFIG"
CUBLAS_WORKSPACE = ":4096:8"


def apply_determinism(enabled: bool, device: torch.device) -> None:
    """Switch torch to deterministic algorithms when ``enabled`` (torch's own defaults otherwise)."""
    if not enabled:
        return
    if device.type == "cuda":
        os.environ.setdefault(CUBLAS_VARIABLE, CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def determinism_settings(requested: bool) -> dict[str, Any]:
    """What governs reproducibility in this process, as the run manifest records it."""
    return {
        "requested": requested,
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        CUBLAS_VARIABLE: os.environ.get(CUBLAS_VARIABLE),
    }
