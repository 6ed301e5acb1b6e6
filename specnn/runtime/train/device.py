"""Choosing the device a run trains on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import torch

from specnn.errors import SpecError, spec_problem

if TYPE_CHECKING:
    from specnn.spec.models import Spec

DEVICE_PATH = ("train", "device")


def resolve_device(name: str = "auto", spec: Optional["Spec"] = None) -> torch.device:
    """The torch device for ``train.device``.

    ``auto`` picks CUDA if available, else Apple MPS, else the CPU. Asking for a device this
    machine does not have is a spec problem, located at ``train.device`` when ``spec`` is given.

    >>> resolve_device("cpu")
    device(type='cpu')

    Raises:
        SpecError: the requested device is not available.
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not mps_available():
            raise _unavailable(spec, "device 'mps' is not available on this machine", "use device: auto or cpu")
        return torch.device("mps")
    if name.startswith("cuda"):
        return _cuda(name, spec)
    raise _unavailable(spec, f"unknown device '{name}'", "use auto, cpu, cuda, cuda:N or mps")


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def _cuda(name: str, spec: Optional["Spec"]) -> torch.device:
    if not torch.cuda.is_available():
        raise _unavailable(spec, f"device '{name}' is not available: torch sees no CUDA GPU", "use device: auto or cpu")
    device = torch.device(name)
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise _unavailable(
            spec, f"device '{name}' does not exist: this machine has {count} CUDA GPU(s)", f"use cuda:0 .. cuda:{count - 1}"
        )
    return device


def _unavailable(spec: Optional["Spec"], message: str, hint: str) -> SpecError:
    return SpecError([spec_problem(spec, DEVICE_PATH, message, code="device", hint=hint)])
