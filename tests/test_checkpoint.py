"""Checkpoints: round trip, atomic writes, refusal of damaged or foreign files, RNG restore."""

from __future__ import annotations

import os
import random
import struct
import zipfile

import numpy as np
import pytest
import torch

from specnn.runtime.train import checkpoint as ckpt
from specnn.runtime.train.rng import capture_rng_state, restore_rng_state
from specnn.errors import RunError

SPEC = {
    "name": "tiny",
    "model": {"input": [3], "layers": [{"Linear": {"out_features": 2}}]},
    "optimizer": {"Adam": {"lr": 0.01}},
    "train": {"epochs": 3, "scheduler": None},
}


def _training_objects():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()  # so the optimizer has per-parameter state (exp_avg, step) to save
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    return model, optimizer, scheduler


def _checkpoint(epoch: int = 2) -> dict:
    model, optimizer, scheduler = _training_objects()
    generator = torch.Generator().manual_seed(7)
    return ckpt.make_checkpoint(
        model=model, optimizer=optimizer, scheduler=scheduler, scaler=None, epoch=epoch, global_step=40,
        best=0.25, data_order=generator.get_state(), rng=capture_rng_state(),
        fingerprint=ckpt.spec_fingerprint(SPEC),
    )


def test_round_trip_restores_every_state(tmp_path):
    saved = _checkpoint()
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(saved, path)
    loaded = ckpt.load_checkpoint(path, fingerprint=ckpt.spec_fingerprint(SPEC))

    assert (loaded["epoch"], loaded["global_step"], loaded["best"]) == (2, 40, 0.25)
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=9)
    generator = torch.Generator()
    ckpt.restore_checkpoint(loaded, model=model, optimizer=optimizer, scheduler=scheduler, data_generator=generator)

    for name, tensor in saved["model"].items():
        assert torch.equal(model.state_dict()[name], tensor)
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], saved["optimizer"]["state"][0]["exp_avg"])
    assert optimizer.param_groups[0]["lr"] == 0.01
    assert scheduler.step_size == 2
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.randperm(10, generator=generator), expected)


def test_saved_file_loads_with_weights_only_and_no_temp_file_is_left(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_checkpoint(), path)
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == "specnn-checkpoint" and raw["version"] == 1
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_failed_rename_leaves_old_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_checkpoint(epoch=1), path)
    before = path.read_bytes()

    def killed(src, dst):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(ckpt.os, "replace", killed)
    with pytest.raises(RunError) as caught:
        ckpt.save_checkpoint(_checkpoint(epoch=2), path)

    assert str(caught.value) == f"{path}: cannot write checkpoint: Input/output error"
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_interrupt_during_write_leaves_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_checkpoint(epoch=1), path)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(_checkpoint(epoch=2), path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]


def test_truncated_file_is_a_run_error_naming_it(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_checkpoint(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == f"{path}: checkpoint is truncated or corrupt"
    assert path.read_bytes() == data[: len(data) // 2]


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x80\x04K\x01."], ids=["empty", "text", "bare-pickle"])
@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_garbage_is_a_run_error(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == f"{path}: checkpoint is truncated or corrupt"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.pt"
    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == f"{path}: checkpoint not found"


def test_plain_state_dict_is_not_a_specnn_checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == f"{path}: not a specnn checkpoint"


class Pickled:
    pass


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": "specnn-checkpoint", "payload": Pickled()}, path)
    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: not a specnn checkpoint: it holds pickled Python objects, which specnn does not load"
    )


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint({**_checkpoint(), "version": 99}, path)
    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == (
        f"{path}: checkpoint format version 99 is newer than this specnn reads (1) (upgrade specnn)"
    )


def test_checkpoint_from_another_spec_says_what_changed(tmp_path):
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_checkpoint(), path)
    other = {**SPEC, "optimizer": {"Adam": {"lr": 0.1}}, "train": {"scheduler": {"StepLR": {"step_size": 1}}}}

    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path, fingerprint=ckpt.spec_fingerprint(other))
    assert str(caught.value) == (
        f"{path}: checkpoint was written for a different spec: optimizer, train.scheduler changed "
        "(resume with the spec the run was started with, or start a new run)"
    )


def test_fingerprint_ignores_parts_that_may_change_between_runs():
    longer = {**SPEC, "name": "other", "train": {"epochs": 50, "scheduler": None}, "data": {"npz": {}}}
    assert ckpt.spec_fingerprint(longer) == ckpt.spec_fingerprint(SPEC)
    wider = {**SPEC, "model": {"input": [3], "layers": [{"Linear": {"out_features": 3}}]}}
    assert ckpt.spec_fingerprint(wider)["model"] != ckpt.spec_fingerprint(SPEC)["model"]


def test_rng_restore_reproduces_every_stream(tmp_path):
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    np.random.normal()  # leaves a cached Gaussian in NumPy's state, which must survive too
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint({**_checkpoint(), "rng": capture_rng_state()}, path)
    expected = (torch.rand(5), np.random.normal(size=5), [random.random() for _ in range(5)])

    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    restore_rng_state(ckpt.load_checkpoint(path)["rng"])
    assert torch.equal(torch.rand(5), expected[0])
    assert np.array_equal(np.random.normal(size=5), expected[1])
    assert [random.random() for _ in range(5)] == expected[2]


def test_flipped_byte_inside_a_tensor_is_refused(tmp_path):
    # torch.load does not verify the zip's CRCs: without a check, a bit flip in a weight resumes silently.
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(_checkpoint(), path)
    with zipfile.ZipFile(path) as archive:
        record = next(i for i in archive.infolist() if "/data/" in i.filename and i.file_size >= 16)
    with open(path, "r+b") as file:
        file.seek(record.header_offset + 26)
        name_length, extra_length = struct.unpack("<HH", file.read(4))
        file.seek(record.header_offset + 30 + name_length + extra_length + 8)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0x40]))
    damaged = path.read_bytes()

    with pytest.raises(RunError) as caught:
        ckpt.load_checkpoint(path)
    assert str(caught.value) == f"{path}: checkpoint is truncated or corrupt ({record.filename} fails its checksum)"
    assert path.read_bytes() == damaged


def test_a_copied_checkpoint_is_independent_of_its_source(tmp_path):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt.save_checkpoint(_checkpoint(epoch=2), last)
    ckpt.copy_checkpoint(last, best)
    assert best.read_bytes() == last.read_bytes()

    last.write_bytes(last.read_bytes()[:100])  # damage last.pt in place: best.pt must not share it
    assert ckpt.load_checkpoint(best)["epoch"] == 2
    ckpt.save_checkpoint(_checkpoint(epoch=3), last)
    assert ckpt.load_checkpoint(best)["epoch"] == 2 and ckpt.load_checkpoint(last)["epoch"] == 3
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]


def test_a_failed_copy_leaves_the_old_target_and_no_temp_file(tmp_path, monkeypatch):
    last, best = tmp_path / "last.pt", tmp_path / "best.pt"
    ckpt.save_checkpoint(_checkpoint(epoch=2), last)
    ckpt.copy_checkpoint(last, best)
    ckpt.save_checkpoint(_checkpoint(epoch=3), last)
    before = best.read_bytes()

    def refuse(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ckpt.os, "replace", refuse)
    with pytest.raises(RunError, match="cannot write checkpoint: No space left on device"):
        ckpt.copy_checkpoint(last, best)
    assert best.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "last.pt"]
