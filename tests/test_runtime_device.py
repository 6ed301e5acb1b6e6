"""Device selection."""

from __future__ import annotations

import pytest
import torch

from specnn.runtime.train import device as device_module
from specnn.runtime.train.device import resolve_device
from specnn.errors import SpecError


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(device_module, "mps_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setattr(device_module, "mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")


def test_missing_cuda_is_a_spec_problem_at_train_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SpecError) as info:
        resolve_device("cuda:1")
    assert str(info.value) == (
        "train.device: device 'cuda:1' is not available: torch sees no CUDA GPU (use device: auto or cpu)"
    )


def test_missing_mps_is_a_spec_problem(monkeypatch):
    monkeypatch.setattr(device_module, "mps_available", lambda: False)
    with pytest.raises(SpecError) as info:
        resolve_device("mps")
    assert info.value.problems[0].path == ("train", "device")
