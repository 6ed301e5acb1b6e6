"""Several model inputs: named arrays matched to model.inputs, int64 ids kept, model(*inputs), ONNX."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from specnn.compiler import build_model, compile_spec
from specnn.runtime.data.tensors import batches, match_inputs, to_tensors
from specnn.runtime.runs.export import export
from specnn.runtime.runs.run import Run, load_run
from specnn.launch import train
from specnn.errors import DataError, SpecError
from specnn.spec.loader import load_spec

TWO_INPUTS = """\
    specnn: 1
    name: two
    seed: 1
    model:
      inputs:
        tabular: {shape: [5]}
        tokens: {shape: [6], dtype: int64}
      layers:
        - Linear: {out_features: 8}
          name: tab
          from: tabular
        - Embedding: {num_embeddings: 20, embedding_dim: 8}
          name: embedded
          from: tokens
        - mean: {dim: 0}
          name: pooled
        - concat: {dim: 0}
          name: joined
          from: [tab, pooled]
        - Linear: {out_features: 3}
          name: logits
    data:
      DATA
      validation_split: 0.25
    loss:
      CrossEntropyLoss:
    optimizer:
      Adam: {lr: 0.02}
    train:
      epochs: EPOCHS
      batch_size: 32
      device: cpu
"""
SYNTHETIC = ("synthetic: {samples: 240, classes: 3, noise: 0.3, inputs: {tabular: {shape: [5]}, "
             "tokens: {shape: [6], vocab: 20}}}")


def two_input_spec(tmp_path: Path, data: str = SYNTHETIC, epochs: int = 8):
    path = tmp_path / "two.yaml"
    path.write_text(textwrap.dedent(TWO_INPUTS).replace("DATA", data).replace("EPOCHS", str(epochs)))
    return load_spec(path)


def test_named_arrays_follow_the_model_input_order_and_keep_int64(tmp_path):
    spec = two_input_spec(tmp_path)
    inputs = compile_spec(spec).inputs
    tokens = np.arange(12, dtype=np.int32).reshape(2, 6)
    matched = match_inputs(spec, inputs, {"tokens": tokens, "tabular": np.ones((2, 5), np.float64)})
    assert list(matched) == ["tabular", "tokens"]
    assert matched["tabular"].dtype == np.float32 and matched["tokens"].dtype == np.int64
    np.testing.assert_array_equal(matched["tokens"], tokens)


def test_whole_float_values_become_int64_ids_and_flat_features_are_reshaped(tmp_path):
    spec = two_input_spec(tmp_path)
    inputs = compile_spec(spec).inputs
    matched = match_inputs(spec, inputs, {"tabular": np.zeros((2, 5, 1)), "tokens": np.full((2, 6), 3.0)})
    assert matched["tabular"].shape == (2, 5)
    assert matched["tokens"].dtype == np.int64 and matched["tokens"].tolist() == [[3] * 6] * 2


def match_error(spec, features) -> str:
    with pytest.raises(DataError) as info:
        match_inputs(spec, compile_spec(spec).inputs, features)
    assert len(info.value.problems) == 1
    return str(info.value)


def test_fractional_values_for_an_int64_input_are_located_at_that_input(tmp_path):
    spec = two_input_spec(tmp_path)
    message = match_error(spec, {"tabular": np.zeros((2, 5)), "tokens": np.full((2, 6), 0.5)})
    assert message == (f"{spec.file}:7:5: model.inputs.tokens: the model input 'tokens' is int64 (e.g. token ids) "
                       "but the data holds fractional values")


def test_a_wrongly_shaped_array_names_its_input(tmp_path):
    spec = two_input_spec(tmp_path)
    message = match_error(spec, {"tabular": np.zeros((2, 4)), "tokens": np.zeros((2, 6))})
    assert message == (f"{spec.file}:6:5: model.inputs.tabular: the data has [4] features per sample "
                       "but the model input 'tabular' is [5]")


def test_missing_and_unknown_arrays_are_named_with_a_suggestion(tmp_path):
    spec = two_input_spec(tmp_path)
    message = match_error(spec, {"tabular": np.zeros((2, 5)), "token": np.zeros((2, 6))})
    assert message == (f"{spec.file}:23:3: data.synthetic: no data for model input(s) tokens; data for token, which "
                       "the model does not have (model inputs: tabular, tokens) (did you mean 'tokens'?)")


def test_one_unnamed_array_for_two_inputs_is_an_error(tmp_path):
    spec = two_input_spec(tmp_path)
    message = match_error(spec, np.zeros((2, 11)))
    assert message == (f"{spec.file}:23:3: data.synthetic: the model has 2 inputs (tabular, tokens) but the data "
                       "source gives one array (give one array per model input, by input name)")


def test_batches_carry_every_input_with_its_dtype_and_keep_samples_together():
    n = 10
    features = {"a": np.arange(n, dtype=np.float32).reshape(n, 1), "b": np.arange(n, dtype=np.int64) * 10}
    data = to_tensors(features, np.arange(n), torch.device("cpu"))
    assert [t.dtype for t in data.inputs] == [torch.float32, torch.int64]
    got = list(batches(data, 4, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in got] == [4, 4, 2]
    for (a, b), y in got:
        assert b.dtype == torch.int64
        assert torch.equal(a[:, 0], y.float()) and torch.equal(b, y * 10)


def test_a_two_input_model_with_int64_ids_learns_and_reloads(tmp_path):
    run = train(two_input_spec(tmp_path), tmp_path / "run", quiet=True)
    assert [i["dtype"] for i in run.meta["inputs"]] == ["float32", "int64"]
    last = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["val_loss"] < 0.5  # chance level for 3 classes is ln 3 = 1.10
    # the run folder alone gives back the same two-input model
    loaded = load_run(tmp_path / "run")
    tabular, tokens = torch.randn(4, 5), torch.randint(0, 20, (4, 6))
    with torch.inference_mode():
        assert torch.equal(loaded.model(tabular, tokens), run.model(tabular, tokens))


def test_npz_maps_each_model_input_to_an_array(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    np.savez(tmp_path / "d.npz", tab=rng.standard_normal((60, 5)), ids=rng.integers(0, 20, (60, 6)), y=labels)
    spec = two_input_spec(tmp_path, "npz: {path: d.npz, x: {tabular: tab, tokens: ids}}", epochs=1)
    run = train(spec, tmp_path / "run", quiet=True)
    assert run.meta["samples"] == {"train": 45, "validation": 15}


def test_several_outputs_with_one_loss_is_located_at_model_outputs(tmp_path):
    spec = two_input_spec(tmp_path)
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"outputs": ["logits", "joined"]})})
    with pytest.raises(SpecError) as info:
        train(spec, tmp_path / "run", quiet=True)
    assert [p.format() for p in info.value.problems] == [
        f"{spec.file}:4:1: model.outputs: training applies one loss to one output; this model has 2 outputs "
        "(logits, joined) (list one output node in model.outputs, or give each output its loss: "
        "loss: {logits: <Loss>, joined: <Loss>})"
    ]
    assert not (tmp_path / "run").exists()


def test_onnx_export_has_one_named_input_per_model_input_with_a_dynamic_batch(tmp_path):
    spec = two_input_spec(tmp_path)
    compiled = compile_spec(spec)
    torch.manual_seed(0)
    model = build_model(compiled).eval()
    report = export(Run(tmp_path, spec, compiled, model), "onnx", tmp_path / "two.onnx")
    assert report.max_abs_diff is not None and report.max_abs_diff <= 1e-5
    session = onnxruntime.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    described = [(i.name, i.type, len(i.shape), isinstance(i.shape[0], str)) for i in session.get_inputs()]
    assert described == [("tabular", "tensor(float)", 2, True), ("tokens", "tensor(int64)", 2, True)]
    # parity with ids other than the exporter's own check, at a batch size it did not use
    tabular = torch.randn(5, 5)
    tokens = torch.randint(0, 20, (5, 6))
    with torch.inference_mode():
        expected = model(tabular, tokens).numpy()
    (got,) = session.run(None, {"tabular": tabular.numpy(), "tokens": tokens.numpy()})
    np.testing.assert_allclose(got, expected, atol=1e-5)
