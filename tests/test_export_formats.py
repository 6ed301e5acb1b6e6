"""Exports: state_dict, safetensors and ONNX (one file, dynamic batch, checked against onnxruntime)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from specnn.runtime.runs.export import CHECK_BATCHES, EXAMPLE_BATCH, compare_with_onnxruntime, export
from specnn.runtime.runs.export import _inline_external_data as inline_external_data
from specnn.launch import train
from specnn.errors import SpecError, ToolError
from specnn.spec.loader import load_spec

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    spec = load_spec(EXAMPLES / "iris.yaml")
    spec = spec.model_copy(update={"export": [], "train": spec.train.model_copy(update={"epochs": 2})})
    return train(spec, tmp_path_factory.mktemp("runs") / "iris", quiet=True)


@pytest.fixture(scope="module")
def onnx_report(run, tmp_path_factory):
    return export(run, "onnx", tmp_path_factory.mktemp("onnx") / "iris.onnx")


def inputs(batch: int) -> torch.Tensor:
    return torch.randn(batch, 4, generator=torch.Generator().manual_seed(batch))


def test_state_dict_export_loads_weights_only(run, tmp_path):
    report = export(run, "state_dict", tmp_path / "w.pt")
    assert report.path == tmp_path / "w.pt"
    assert str(report) == f"exported state_dict to {tmp_path / 'w.pt'}"
    state = torch.load(tmp_path / "w.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in run.model.state_dict().items())


def test_default_export_path_is_inside_the_run(run):
    report = export(run, "state_dict")
    assert report.path == run.path / "model.pt" and report.path.is_file()


def test_safetensors_export_holds_the_weights_and_class_names(run, tmp_path):
    from safetensors import safe_open

    export(run, "safetensors", tmp_path / "w.safetensors")
    with safe_open(str(tmp_path / "w.safetensors"), framework="pt") as f:
        assert f.metadata()["classes"] == '["setosa", "versicolor", "virginica"]'
        for name, value in run.model.state_dict().items():
            assert torch.equal(f.get_tensor(name), value)


def test_safetensors_missing_is_a_clear_message(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # as if not installed
    with pytest.raises(SpecError) as info:
        export(run, "safetensors", tmp_path / "w.safetensors")
    assert str(info.value) == (
        'the safetensors export needs safetensors, which is not installed (pip install "specnn[safetensors]")'
    )
    assert info.value.exit_code == 2
    assert not (tmp_path / "w.safetensors").exists()


def test_onnx_without_its_extra_says_how_to_install_it_before_any_work(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    monkeypatch.setattr("specnn.runtime.runs.export._export_onnx", _never_called)
    with pytest.raises(SpecError) as info:
        export(run, "onnx", tmp_path / "new" / "m.onnx")
    assert str(info.value) == (
        'the ONNX export needs onnxscript, which is not installed (pip install "specnn[onnx]")'
    )
    assert not (tmp_path / "new").exists()


def test_onnx_without_onnxruntime_still_exports_unchecked(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    report = export(run, "onnx", tmp_path / "m.onnx")
    assert str(report) == f"exported onnx to {tmp_path / 'm.onnx'} (onnxruntime not installed: outputs not compared)"


def _never_called(*args):
    raise AssertionError("the exporter ran although its packages are missing")


def test_unknown_format_suggests_the_closest(run):
    with pytest.raises(SpecError) as info:
        export(run, "onx")
    assert str(info.value) == (
        "unknown export format 'onx' (formats: state_dict, safetensors, onnx) (did you mean 'onnx'?)"
    )


def test_onnx_is_one_checked_file_with_its_weights(onnx_report):
    path = onnx_report.path
    assert sorted(p.name for p in path.parent.iterdir()) == ["iris.onnx"]  # no .onnx.data, no temporaries
    model = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(model, full_check=True)
    assert {init.name for init in model.graph.initializer} and not any(
        init.data_location == onnx.TensorProto.EXTERNAL for init in model.graph.initializer
    )
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # a dynamic batch dimension


def test_onnx_report_compares_batch_sizes_other_than_the_example(onnx_report):
    assert EXAMPLE_BATCH not in CHECK_BATCHES and len(CHECK_BATCHES) == 2
    assert onnx_report.batch_sizes == CHECK_BATCHES
    assert 0 <= onnx_report.max_abs_diff <= 1e-5
    assert str(onnx_report).endswith(
        f"(onnxruntime matches torch at batch sizes 1, 7: max abs diff {onnx_report.max_abs_diff:.2e}, "
        "within rtol 1e-04 + atol 1e-05)"
    )


def test_onnxruntime_matches_torch_at_other_batch_sizes(run, onnx_report):
    session = onnxruntime.InferenceSession(str(onnx_report.path), providers=["CPUExecutionProvider"])
    for batch in (1, 5, 33):
        with torch.inference_mode():
            expected = run.model(inputs(batch)).numpy()
        [got] = session.run(None, {session.get_inputs()[0].name: inputs(batch).numpy()})
        assert got.shape == (batch, 3)
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_a_model_that_differs_from_the_file_is_a_mismatch(run, onnx_report):
    other = torch.nn.Sequential(torch.nn.Linear(4, 3))
    with pytest.raises(ToolError) as info:  # not the user's input: exit status 1
        compare_with_onnxruntime(other, run.compiled, onnx_report.path)
    [problem] = info.value.problems
    assert problem.code == "onnx-mismatch" and problem.file == str(onnx_report.path)
    assert "onnxruntime differs from torch by up to" in problem.message


def scaled_copy(model: torch.nn.Module, factor: float, shift: float = 0.0) -> torch.nn.Module:
    """``model`` with its last layer's outputs times ``factor`` plus ``shift``: a known difference."""
    import copy

    other = copy.deepcopy(model)
    last = [m for m in other.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(factor)
        last.bias.mul_(factor).add_(shift)
    return other


def test_onnx_tolerance_is_relative_to_the_output_scale_like_numpy_allclose(run, onnx_report):
    # Outputs 1e-5 apart relative to their size: within the default rtol, whatever their magnitude.
    relative = scaled_copy(run.model, 1 + 1e-5)
    assert compare_with_onnxruntime(relative, run.compiled, onnx_report.path) > 1e-6
    with pytest.raises(SpecError) as info:
        compare_with_onnxruntime(relative, run.compiled, onnx_report.path, rtol=1e-7, atol=1e-7)
    [problem] = info.value.problems
    assert problem.message.endswith("more than rtol 1e-07 + atol 1e-07 allow")
    assert problem.hint == ("if that difference is acceptable, loosen the check: specnn export --rtol/--atol, "
                            "or in the spec export: [{onnx: {rtol: ..., atol: ...}}]")
    # A constant 3e-5 shift: beyond atol=1e-5 alone, within atol=1e-4.
    shifted = scaled_copy(run.model, 1.0, 3e-5)
    with pytest.raises(SpecError):
        compare_with_onnxruntime(shifted, run.compiled, onnx_report.path, rtol=0.0, atol=1e-5)
    assert compare_with_onnxruntime(shifted, run.compiled, onnx_report.path, rtol=0.0, atol=1e-4) < 1e-4


def test_export_tolerance_from_the_cli_and_from_the_spec(run, tmp_path, cli_runner):
    from specnn.cli import cli
    from specnn.spec.models import OnnxExport, Spec

    result = cli_runner.invoke(cli, ["export", str(run.path), "--format", "onnx", "-o", str(tmp_path / "m.onnx"),
                                     "--rtol", "0.001", "--atol", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("within rtol 1e-03 + atol 0e+00)")
    result = cli_runner.invoke(cli, ["export", str(run.path), "--format", "state_dict", "--rtol", "0.1"])
    assert result.exit_code == 2 and "--rtol and --atol set the ONNX check" in result.output
    entry = Spec.model_validate({**run.spec.model_dump(by_alias=True, exclude_unset=True),
                                 "export": ["state_dict", {"onnx": {"rtol": 0.01}}]}).export[1]
    assert isinstance(entry, OnnxExport) and (entry.onnx.rtol, entry.onnx.atol) == (0.01, 1e-5)
    report = export(run, entry, tmp_path / "spec.onnx")
    assert (report.rtol, report.atol) == (0.01, 1e-5)


def test_an_lstm_with_proj_size_is_refused_at_the_layer_before_exporting(tmp_path, cli_runner):
    from specnn.cli import cli

    text = (EXAMPLES / "lstm_sequences.yaml").read_text()
    text = text.replace("LSTM: {hidden_size: 32, output: last}", "LSTM: {hidden_size: 32, proj_size: 8, output: last}")
    (tmp_path / "proj.yaml").write_text(text.replace("samples: 2000", "samples: 64").replace("epochs: 4", "epochs: 1"))
    run = train(load_spec(tmp_path / "proj.yaml"), tmp_path / "run", quiet=True)
    with pytest.raises(ToolError) as info:
        export(run, "onnx")
    [problem] = info.value.problems
    assert problem.format() == (
        f"{tmp_path / 'proj.yaml'}:9:7: model.layers[0].LSTM: LSTM 'lstm1' cannot be exported to onnx: torch's ONNX "
        "exporter writes an LSTM with proj_size whose initial cell state has the projected size, and onnx/onnxruntime "
        "reject the file (plain torch.onnx.export fails the same way) (use an LSTM without proj_size (a Linear after "
        "it projects the same way), or leave onnx out of export and ship state_dict or safetensors)")
    result = cli_runner.invoke(cli, ["export", str(tmp_path / "run"), "--format", "onnx"])
    assert result.exit_code == 1, result.output  # not the user's input: the exporter's limit
    assert "LSTM 'lstm1' cannot be exported to onnx" in result.output
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_any_exporter_failure_is_a_tool_error_naming_the_layer(run, tmp_path, monkeypatch, cli_runner):
    from specnn.cli import cli

    def broken(*args, **kwargs):
        raise RuntimeError("Unsupported operator aten::linear in node fc2\n(a long exporter trace)")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ToolError) as info:
        export(run, "onnx", tmp_path / "m.onnx")
    [problem] = info.value.problems
    assert problem.format() == (
        f"{tmp_path / 'm.onnx'}: torch.onnx.export failed: Unsupported operator aten::linear in node fc2 "
        "(the failing operator looks like Linear 'fc1', Linear 'fc2') (this is a limitation of torch's ONNX "
        "exporter or onnxruntime, not a mistake in the spec: the run and weights.pt are kept; export state_dict "
        "or safetensors instead, or replace that layer)")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    result = cli_runner.invoke(cli, ["export", str(run.path), "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 1 and "torch.onnx.export failed" in result.output


def test_stray_external_data_is_folded_into_the_model_file(onnx_report, tmp_path):
    path = tmp_path / "split.onnx"
    model = onnx.load(str(onnx_report.path))
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="split.onnx.data", size_threshold=0)
    assert (tmp_path / "split.onnx.data").is_file()
    inline_external_data(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["split.onnx"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    original = onnxruntime.InferenceSession(str(onnx_report.path), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: inputs(3).numpy()}
    np.testing.assert_array_equal(session.run(None, feed)[0], original.run(None, feed)[0])


def iris_spec_file(folder: Path, export: str, epochs: int = 2) -> Path:
    text = (EXAMPLES / "iris.yaml").read_text()
    text = text.replace("path: data/iris.csv", f"path: {EXAMPLES / 'data' / 'iris.csv'}")
    text = text.replace("epochs: 60", f"epochs: {epochs}")
    lines = [line for line in text.splitlines() if not line.startswith("export:")]
    path = folder / "iris.yaml"
    path.write_text("\n".join([*lines, f"export: {export}", ""]))
    return path


def test_a_failing_export_after_training_keeps_the_run_and_exits_1(tmp_path, monkeypatch, cli_runner):
    from specnn.cli import cli

    def broken(*args, **kwargs):
        raise RuntimeError("exporter bug")

    monkeypatch.setattr(torch.onnx, "export", broken)
    spec = iris_spec_file(tmp_path, "[onnx, state_dict]")
    result = cli_runner.invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "exporting onnx (torch.onnx.export, then checked against onnxruntime) ..." in lines
    assert f"exported state_dict to {tmp_path / 'run' / 'model.pt'}" in lines  # the next export still ran
    assert any(line.startswith(f"{tmp_path / 'run' / 'model.onnx'}: torch.onnx.export failed: exporter bug")
               for line in lines)
    assert lines[-1] == (f"run saved to {tmp_path / 'run'} (export failed: retry with specnn export "
                         f"{tmp_path / 'run'} --format ...)")
    assert {"weights.pt", "model.pt", "meta.json", "metrics.jsonl"} <= {p.name for p in (tmp_path / "run").iterdir()}
    assert not (tmp_path / "run" / "model.onnx").exists()


def test_an_export_whose_extra_is_missing_is_refused_before_training(tmp_path, monkeypatch, cli_runner):
    from specnn.cli import cli

    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    spec = iris_spec_file(tmp_path, "[state_dict, onnx]")
    result = cli_runner.invoke(cli, ["train", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == (f"{spec}:30:22: export[1]: the ONNX export needs onnxscript, which is not "
                                     'installed (pip install "specnn[onnx]")')
    assert not (tmp_path / "run").exists()


def test_a_spec_asking_onnx_of_an_lstm_with_proj_size_is_refused_before_training(tmp_path, cli_runner):
    from specnn.cli import cli

    text = (EXAMPLES / "lstm_sequences.yaml").read_text()
    text = text.replace("LSTM: {hidden_size: 32, output: last}", "LSTM: {hidden_size: 32, proj_size: 8, output: last}")
    (tmp_path / "proj.yaml").write_text(text + "export: [state_dict, onnx]\n")
    result = cli_runner.invoke(cli, ["train", str(tmp_path / "proj.yaml"), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"{tmp_path / 'proj.yaml'}:9:7: model.layers[0].LSTM: LSTM 'lstm1' cannot be "
                                    "exported to onnx")
    assert "epoch" not in result.output and not (tmp_path / "run").exists()
