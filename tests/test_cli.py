"""The command line as a user meets it: a spec in, files and exit codes out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from specnn.cli import cli


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "specnn", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("validate", "schema", "compile", "train", "export"):
        assert command in result.stdout


def test_validate_accepts_the_iris_example(cli_runner, iris_spec):
    result = cli_runner.invoke(cli, ["validate", str(iris_spec)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"{iris_spec}: ok"


def test_schema_prints_the_committed_json_schema(cli_runner):
    result = cli_runner.invoke(cli, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "model" in schema["properties"] and "Linear" in json.dumps(schema)


def test_compile_writes_model_py_that_needs_only_torch(cli_runner, iris_spec, tmp_path):
    result = cli_runner.invoke(cli, ["compile", str(iris_spec), "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    source = (tmp_path / "model.py").read_text()
    imports = {line for line in source.splitlines() if line.startswith(("import ", "from "))}
    assert imports <= {"import torch", "from torch import nn", "import torch.nn.functional as F"}
    assert "class IrisMlp(nn.Module):" in source


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_train_then_export_from_the_command_line(cli_runner, iris_spec, tmp_path):
    run_dir = tmp_path / "run"
    result = cli_runner.invoke(cli, ["train", str(iris_spec), "--out", str(run_dir), "--quiet"])
    assert result.exit_code == 0, result.output
    assert f"run saved to {run_dir}" in result.output
    for name in ("spec.yaml", "model.py", "metrics.jsonl", "weights.pt", "meta.json", "model.onnx"):
        assert (run_dir / name).is_file(), name
    state = torch.load(run_dir / "weights.pt", weights_only=True)
    assert set(state) == {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}

    out = tmp_path / "exported.pt"
    result = cli_runner.invoke(cli, ["export", str(run_dir), "--format", "state_dict", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert torch.equal(torch.load(out, weights_only=True)["fc1.weight"], state["fc1.weight"])


def test_unknown_export_format_is_a_usage_error(cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["export", str(tmp_path), "--format", "onx"])
    assert result.exit_code == 2
    assert "'onx' is not one of" in result.output


def test_export_of_a_folder_that_is_not_a_run_says_what_is_missing(cli_runner, tmp_path):
    result = cli_runner.invoke(cli, ["export", str(tmp_path), "--format", "onnx"])
    assert result.exit_code == 2
    assert str(tmp_path) in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def _iris_with_epochs(iris_spec, tmp_path, epochs: int):
    text = iris_spec.read_text().replace("epochs: 60", f"epochs: {epochs}").replace("export: [state_dict, onnx]", "")
    text = text.replace("path: data/iris.csv", f"path: {iris_spec.parent / 'data' / 'iris.csv'}")
    path = tmp_path / f"iris{epochs}.yaml"
    path.write_text(text)
    return path


def test_resume_from_the_command_line_continues_bitwise(cli_runner, iris_spec, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli_runner.invoke(cli, ["train", str(_iris_with_epochs(iris_spec, tmp_path, 4)), "--out", str(straight),
                                   "-q"]).exit_code == 0
    assert cli_runner.invoke(cli, ["train", str(_iris_with_epochs(iris_spec, tmp_path, 2)), "--out", str(resumed),
                                   "-q"]).exit_code == 0
    result = cli_runner.invoke(cli, ["train", str(_iris_with_epochs(iris_spec, tmp_path, 4)), "--resume", str(resumed),
                                     "-q"])
    assert result.exit_code == 0, result.output
    a = torch.load(straight / "weights.pt", weights_only=True)
    b = torch.load(resumed / "weights.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = [json.loads(line)["epoch"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_resume_without_a_checkpoint_is_a_clear_error(cli_runner, iris_spec, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli_runner.invoke(cli, ["train", str(iris_spec), "--resume", str(empty)])
    assert result.exit_code == 2
    assert "last.pt" in result.output and "Traceback" not in result.output
    assert list(empty.iterdir()) == []


def test_resume_given_bare_is_forwarded_bare_to_torchrun_workers():
    from specnn.launch import worker_args

    assert worker_args(["train", "s.yaml", "--nproc", "2", "--resume"]) == ["train", "s.yaml", "--resume"]


def test_quiet_hides_the_progress_bar_but_keeps_one_line_per_epoch(cli_runner, iris_spec, tmp_path, monkeypatch):
    # The issue: "a progress bar per epoch ... quiet when output is not a terminal or with --quiet;
    # one summary line per epoch always".
    from specnn.runtime.train import logs

    bars: list[bool] = []
    real_init = logs.Progress.__init__

    def record(self, enabled):
        bars.append(enabled)
        real_init(self, enabled)

    monkeypatch.setattr(logs.Progress, "__init__", record)
    spec = _iris_with_epochs(iris_spec, tmp_path, 2)
    quiet = cli_runner.invoke(cli, ["train", str(spec), "--out", str(tmp_path / "quiet"), "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    lines = quiet.output.splitlines()
    assert [line.split("  train_loss ")[0] for line in lines] == [
        "epoch  1/2", "epoch  2/2", f"run saved to {tmp_path / 'quiet'}"]
    loud = cli_runner.invoke(cli, ["train", str(spec), "--out", str(tmp_path / "loud")])
    assert loud.exit_code == 0, loud.output
    assert bars == [False, True]  # the bar is asked for only without --quiet (and then drawn on a terminal)


# ---------------------------------------------------------------------------------------------
# exit status: 2 the user's input, 1 a tool failing on valid input, 130 Ctrl-C (README's table)


def _raise(error):
    def command(*args, **kwargs):
        raise error
    return command


def test_ctrl_c_exits_130_in_every_command(cli_runner, iris_spec, tmp_path, monkeypatch):
    monkeypatch.setattr("specnn.cli.compile_checked", _raise(KeyboardInterrupt()))
    monkeypatch.setattr("specnn.runtime.runs.run.load_run", _raise(KeyboardInterrupt()))
    for args in (["validate", str(iris_spec)], ["inspect", str(iris_spec)], ["compile", str(iris_spec)],
                 ["evaluate", str(tmp_path)]):
        result = cli_runner.invoke(cli, args)
        assert (result.exit_code, result.output) == (130, "interrupted\n"), args


def test_a_tool_failing_on_valid_input_exits_1_with_its_problem(cli_runner, tmp_path, monkeypatch):
    from specnn.errors import ToolError

    failure = ToolError.single("onnx", "torch.onnx.export failed: unsupported operator", file="model.onnx")
    monkeypatch.setattr("specnn.runtime.runs.run.load_run", _raise(failure))
    result = cli_runner.invoke(cli, ["export", str(tmp_path), "--format", "onnx"])
    assert (result.exit_code, result.output) == (1, "model.onnx: torch.onnx.export failed: unsupported operator\n")


def test_bad_arguments_exit_2(cli_runner, iris_spec, tmp_path):
    assert cli_runner.invoke(cli, ["export", str(tmp_path), "--format", "onx"]).exit_code == 2
    assert cli_runner.invoke(cli, ["validate", str(tmp_path / "missing.yaml")]).exit_code == 2
