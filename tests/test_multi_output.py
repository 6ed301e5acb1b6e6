"""Several outputs, each with its loss: `loss: {species: CrossEntropyLoss, width: {MSELoss: {}, weight: 0.5}}`.

The spec names each output's loss (and weight); every key must be a model output and every output
needs a loss, each mistake located where it is written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from specnn.errors import SpecError
from specnn.spec.loader import load_spec
from specnn.spec.train_rules import epoch_keys

SPEC = """\
specnn: 1
name: two-heads
seed: 0
model:
  input: [3]
  layers:
    - Linear: {out_features: 16}
    - ReLU:
      name: trunk
    - Linear: {out_features: 3}
      name: species
      from: trunk
    - Linear: {out_features: 1}
      name: width
      from: trunk
  outputs: [species, width]
data:
  csv: {path: iris.csv, targets: {species: species, width: petal_width}, features: [sepal_length, sepal_width, petal_length]}
  validation_split: 0.2
loss:
  species: CrossEntropyLoss
  width: {MSELoss: {}, weight: 0.5}
optimizer:
  Adam: {lr: 0.01}
train: {epochs: 2, batch_size: 16, device: cpu}
"""


def write(tmp_path: Path, text: str = SPEC, **replace: str) -> Path:
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return [p.format() for p in info.value.problems]


def test_each_output_gets_its_loss_and_weight(tmp_path):
    spec = load_spec(write(tmp_path))
    assert spec.several_losses
    assert [(h.output, h.kind, h.weight) for h in spec.losses] == [("species", "CrossEntropyLoss", 1.0),
                                                                   ("width", "MSELoss", 0.5)]


def test_epoch_values_are_named_per_output(tmp_path):
    spec = load_spec(write(tmp_path))
    assert epoch_keys(spec) == [
        "train_loss", "train_loss_species", "train_loss_width", "train_accuracy_species", "train_mse_width",
        "val_loss", "val_loss_species", "val_loss_width", "val_accuracy_species", "val_mse_width",
    ]


def test_metrics_go_to_the_outputs_whose_task_they_fit(tmp_path):
    spec = load_spec(write(tmp_path, **{"train: {": "train: {metrics: [accuracy, mae, r2], "}))
    assert epoch_keys(spec)[:6] == ["train_loss", "train_loss_species", "train_loss_width",
                                    "train_accuracy_species", "train_mae_width", "train_r2_width"]


def test_one_loss_keeps_todays_names(iris_spec):
    assert epoch_keys(load_spec(iris_spec)) == ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]


def test_an_unknown_output_is_located_with_a_did_you_mean(tmp_path):
    path = write(tmp_path, **{"  species: CrossEntropyLoss": "  specis: CrossEntropyLoss"})
    assert problems(path) == [
        f"{path}:20:1: loss: model output 'species' has no loss (add 'species: <Loss>' under loss (every output "
        "listed in model.outputs is trained))",
        f"{path}:21:3: loss.specis: the model has no output named 'specis' (did you mean 'species'?)",
    ]


def test_a_misspelt_loss_is_located_in_its_output(tmp_path):
    path = write(tmp_path, **{"{MSELoss: {}": "{MSELos: {}", "species: CrossEntropyLoss": "species: CrossEntropyLos"})
    assert problems(path) == [
        f"{path}:21:12: loss.species: must be 'CrossEntropyLoss', 'NLLLoss', 'BCEWithLogitsLoss', 'BCELoss', "
        "'MSELoss', 'L1Loss', 'HuberLoss' or 'SmoothL1Loss', got 'CrossEntropyLos' (did you mean 'CrossEntropyLoss'?)",
        f"{path}:22:11: loss.width.MSELos: unknown loss 'MSELos' (did you mean 'MSELoss'?)",
    ]


def test_a_misspelt_single_loss_still_reads_as_one_loss(tmp_path):
    path = write(tmp_path, **{"  species: CrossEntropyLoss\n  width: {MSELoss: {}, weight: 0.5}":
                              "  CrossEntropyLos: {}"})
    assert problems(path) == [
        f"{path}:21:3: loss.CrossEntropyLos: unknown loss 'CrossEntropyLos' (did you mean 'CrossEntropyLoss'?)"]


@pytest.mark.parametrize("weight, message", [
    ("-1", "must be >= 0, got -1"),
    (".inf", "Input should be a finite number"),
    (".nan", "Input should be a finite number"),
])
def test_a_weight_must_be_finite_and_not_negative(tmp_path, weight, message):
    path = write(tmp_path, **{"weight: 0.5": f"weight: {weight}"})
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:22:") and problem.endswith(f"loss.width.weight: {message}")


def test_all_weights_zero_trains_nothing(tmp_path):
    path = write(tmp_path, **{"species: CrossEntropyLoss": "species: {CrossEntropyLoss: {}, weight: 0}",
                              "weight: 0.5": "weight: 0"})
    assert problems(path) == [f"{path}:20:1: loss: every output's weight is 0: the total loss would train nothing "
                              "(give at least one output a weight above 0)"]


def test_a_loss_per_output_needs_the_outputs_listed(tmp_path):
    path = write(tmp_path, **{"  outputs: [species, width]\n": ""})
    assert problems(path) == [f"{path}:19:1: loss: a loss per output needs the model's outputs listed in "
                              "model.outputs (name the output nodes: model.outputs: [species, width])"]


def test_a_metric_no_output_can_take_is_located(tmp_path):
    path = write(tmp_path, **{"  width: {MSELoss: {}, weight: 0.5}": "  width: {CrossEntropyLoss: {}, weight: 0.5}",
                              "train: {": "train: {metrics: [accuracy, r2], "})
    (problem,) = problems(path)
    assert "train.metrics[1]: r2 is a regression metric, but no output has a regression loss (outputs: species " \
           "(CrossEntropyLoss), width (CrossEntropyLoss))" in problem


def test_a_monitor_names_one_outputs_value(tmp_path):
    path = write(tmp_path, **{"train: {": "train: {early_stopping: {monitor: val_accuracy_species}, "})
    assert load_spec(path).train.early_stopping.monitor == "val_accuracy_species"
    path = write(tmp_path, **{"train: {": "train: {early_stopping: {monitor: val_accuracy_width}, "})
    (problem,) = problems(path)
    assert "early stopping watches 'val_accuracy_width', which the run does not report" in problem


# ---------------------------------------------------------------------------------------------
# data: a target per output


def test_a_target_column_the_file_lacks_is_located_with_a_did_you_mean(tmp_path):
    from specnn.errors import DataError
    from specnn.runtime.data.check import check_data
    from specnn.compiler import compile_spec

    path = write(tmp_path, **{"width: petal_width}": "width: petal_widht}"})
    (tmp_path / "iris.csv").write_text(IRIS.read_text())
    spec = load_spec(path)
    with pytest.raises(DataError) as info:
        check_data(spec, compile_spec(spec))
    (problem,) = [p.format() for p in info.value.problems]
    assert problem.startswith(f"{path}:18:") and "data.csv.targets.width: " in problem
    assert problem.endswith("has no column 'petal_widht' (columns: sepal_length, sepal_width, petal_length, "
                            "petal_width, species) (did you mean 'petal_width'?)")


def test_targets_must_name_the_outputs_with_a_loss(tmp_path):
    path = write(tmp_path, **{"targets: {species: species, width: petal_width}":
                              "targets: {species: species, widht: petal_width}"})
    assert problems(path) == [
        f"{path}:18:25: data.csv.targets: no target for output 'width' (add 'width: ...' under targets)",
        f"{path}:18:53: data.csv.targets.widht: no output named 'widht' has a loss (did you mean 'width'?)",
    ]


def test_one_loss_with_targets_per_output_is_located(tmp_path):
    text = SPEC.replace("  species: CrossEntropyLoss\n  width: {MSELoss: {}, weight: 0.5}", "  MSELoss:")
    path = write(tmp_path, text, **{"  outputs: [species, width]\n": "  outputs: [width]\n"})
    assert problems(path) == [f"{path}:18:25: data.csv.targets: targets gives a target per output, but loss is one "
                              "loss (give each output its loss (loss: {output: <Loss>, ...}), or one target)"]


def test_a_source_with_one_label_per_sample_cannot_feed_several_losses(tmp_path):
    path = write(tmp_path, **{"  csv: {path: iris.csv, targets: {species: species, width: petal_width}, features: "
                              "[sepal_length, sepal_width, petal_length]}": "  sklearn: {name: iris}"})
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:18:3: data.sklearn: the sklearn source gives one target per sample; a loss "
                              "per output needs one per output")


# ---------------------------------------------------------------------------------------------
# training, end to end

IRIS = Path(__file__).resolve().parent.parent / "examples" / "data" / "iris.csv"
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "two_heads.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """examples/two_heads.yaml trained from the CLI, as the README shows it."""
    from click.testing import CliRunner

    from specnn.cli import cli

    out = tmp_path_factory.mktemp("two-heads") / "run"
    result = CliRunner().invoke(cli, ["train", str(EXAMPLE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out, result.output


def test_the_example_logs_each_outputs_loss_and_metrics(trained):
    import json

    out, printed = trained
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert list(records[0]) == ["epoch", "lr", "train_loss", "train_loss_species", "train_loss_petal_width",
                                "train_accuracy_species", "train_mae_petal_width", "val_loss", "val_loss_species",
                                "val_loss_petal_width", "val_accuracy_species", "val_mae_petal_width", "seconds"]
    assert (out / "metrics.csv").read_text().splitlines()[0] == ",".join(records[0])
    for record in records:  # the total is the weighted sum of the outputs' own losses, per epoch
        for split in ("train", "val"):
            assert record[f"{split}_loss"] == pytest.approx(
                record[f"{split}_loss_species"] + 0.5 * record[f"{split}_loss_petal_width"], rel=1e-5)
    assert "train_loss_species " in printed and "val_accuracy_species " in printed
    assert max(r["val_accuracy_species"] for r in records) >= 0.9  # both outputs learn
    assert records[-1]["val_mae_petal_width"] < records[0]["val_mae_petal_width"]
    assert "early stopping: val_accuracy_species has not improved" in printed


def test_the_run_records_each_outputs_encoding(trained):
    import json

    out, _ = trained
    meta = json.loads((out / "meta.json").read_text())
    assert meta["task"] == "outputs"
    assert [(o["name"], o["loss"], o["task"], o["classes"]) for o in meta["outputs"]] == [
        ("species", "CrossEntropyLoss", "classification", ["setosa", "versicolor", "virginica"]),
        ("petal_width", "MSELoss", "regression", None)]
    outputs = json.loads((out / "preprocess.json").read_text())["outputs"]
    assert [(o["output"], o["columns"], o["target_scale"] and o["target_scale"]["method"]) for o in outputs] == [
        ("species", [0, 1], None), ("petal_width", [1, 2], "standard")]


def test_evaluate_scores_the_weighted_sum_computed_by_hand(trained):
    """On a held-out file: the model's outputs, each output's loss by hand, the weighted total."""
    import json

    import numpy as np
    import torch
    import torch.nn.functional as F

    import specnn

    out, _ = trained
    result = specnn.evaluate(out, IRIS)["metrics"]
    pre = json.loads((out / "preprocess.json").read_text())
    rows = np.genfromtxt(IRIS, delimiter=",", skip_header=1, dtype=str)
    x = rows[:, :3].astype(np.float64)
    x = (x - np.array(pre["scale"]["mean"])) / np.array(pre["scale"]["std"])
    species = torch.tensor([["setosa", "versicolor", "virginica"].index(s) for s in rows[:, 4]])
    scale = pre["outputs"][1]["target_scale"]
    width = torch.tensor((rows[:, 3].astype(np.float64) - scale["shift"][0]) / scale["spread"][0],
                         dtype=torch.float32)[:, None]
    run = specnn.load_run(out)
    with torch.no_grad():
        logits, predicted_width = run.model(torch.tensor(x, dtype=torch.float32))
    by_hand = {"loss_species": F.cross_entropy(logits, species).item(),
               "loss_petal_width": F.mse_loss(predicted_width, width).item()}
    assert result["loss_species"] == pytest.approx(by_hand["loss_species"], rel=1e-5)
    assert result["loss_petal_width"] == pytest.approx(by_hand["loss_petal_width"], rel=1e-5)
    assert result["loss"] == pytest.approx(by_hand["loss_species"] + 0.5 * by_hand["loss_petal_width"], rel=1e-5)
    assert result["accuracy_species"] == pytest.approx((logits.argmax(1) == species).float().mean().item())
    assert list(result) == ["loss", "loss_species", "loss_petal_width", "accuracy_species", "mae_petal_width"]


def test_the_loss_on_one_batch_is_the_weighted_sum_by_hand(trained):
    import torch
    import torch.nn.functional as F

    import specnn
    from specnn.runtime.data.preprocess import load_preprocessor
    from specnn.runtime.train.outputs import make_outputs_loss

    out, _ = trained
    run = specnn.load_run(out)
    layout = load_preprocessor(out, run.spec).outputs
    loss_fn = make_outputs_loss(run.spec, layout, list(run.compiled.outputs), torch.device("cpu"))
    torch.manual_seed(0)
    species_logits, width = torch.randn(5, 3), torch.randn(5, 1)
    targets = torch.tensor([[0, 1.5], [2, -0.5], [1, 0.0], [1, 2.0], [0, 0.25]])  # species index | width
    expected = F.cross_entropy(species_logits, torch.tensor([0, 2, 1, 1, 0])) + \
        0.5 * F.mse_loss(width, targets[:, 1:])
    torch.testing.assert_close(loss_fn((species_logits, width), targets), expected)


def test_predict_gives_each_outputs_prediction_in_its_own_units(trained, cli_runner):
    from specnn.cli import cli

    out, _ = trained
    result = cli_runner.invoke(cli, ["predict", str(out), str(IRIS), "--probabilities"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "species,species_p_setosa,species_p_versicolor,species_p_virginica,petal_width"
    first = lines[1].split(",")  # 5.1,3.5,1.4,0.2,setosa
    assert first[0] == "setosa" and abs(float(first[4]) - 0.2) < 0.3  # petal width in cm, not scaled units
    correct = sum(line.split(",")[0] == row.split(",")[4]
                  for line, row in zip(lines[1:], IRIS.read_text().splitlines()[1:]))
    assert correct >= 135


def test_onnx_export_has_one_named_output_per_model_output(trained, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    import specnn

    out, _ = trained
    specnn.export(specnn.load_run(out), "onnx", tmp_path / "model.onnx")
    assert [o.name for o in onnx.load(str(tmp_path / "model.onnx")).graph.output] == ["species", "petal_width"]


def test_synthetic_and_npz_targets_per_output_train(tmp_path):
    import json

    import numpy as np

    import specnn

    text = SPEC.replace("  csv: {path: iris.csv, targets: {species: species, width: petal_width}, features: "
                        "[sepal_length, sepal_width, petal_length]}",
                        "  synthetic: {samples: 400, shape: [3], targets: {species: {classes: 3}, "
                        "width: {task: regression}}}")
    run = specnn.train(load_spec(write(tmp_path, text)), out=tmp_path / "synthetic", quiet=True)
    last = json.loads((tmp_path / "synthetic" / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_accuracy_species", "val_mse_width"} <= set(last)
    assert run.meta["outputs"][0]["classes"] == ["0", "1", "2"]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 3)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, kind=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0), size=x.sum(1))
    text = SPEC.replace("  csv: {path: iris.csv, targets: {species: species, width: petal_width}, features: "
                        "[sepal_length, sepal_width, petal_length]}", "  npz: {path: d.npz, y: {species: kind, "
                        "width: size}}")
    run = specnn.train(load_spec(write(tmp_path, text)), out=tmp_path / "npz", quiet=True)
    assert run.meta["samples"] == {"train": 96, "validation": 24}


def test_a_classifier_output_of_the_wrong_width_is_lint_s108_at_that_output(tmp_path):
    import specnn

    (tmp_path / "iris.csv").write_text(IRIS.read_text())
    path = write(tmp_path, **{"Linear: {out_features: 3}": "Linear: {out_features: 4}"})
    with pytest.raises(SpecError) as info:
        specnn.train(load_spec(path), out=tmp_path / "run", quiet=True)
    (problem,) = [p.format() for p in info.value.problems]
    assert problem.startswith(f"{path}:10:7: model.layers[2].Linear: [S108] Linear 'species' gives 4 outputs per "
                              "sample, but the data has 3 classes")
    assert not (tmp_path / "run").exists()


def test_class_weight_per_output_comes_from_the_training_split(tmp_path):
    import specnn

    (tmp_path / "iris.csv").write_text(IRIS.read_text())
    path = write(tmp_path, **{"species: CrossEntropyLoss": "species: {CrossEntropyLoss: {class_weight: balanced}}"})
    run = specnn.train(load_spec(path), out=tmp_path / "run", quiet=True)
    weights = run.meta["class_weight"]["species"]
    assert list(run.meta["class_weight"]) == ["species"] and len(weights) == 3
    assert specnn.evaluate(run)["metrics"]["loss_species"] > 0


def test_confusion_matrices_are_written_per_classifier_output(tmp_path, cli_runner):
    import json

    from specnn.cli import cli

    (tmp_path / "iris.csv").write_text(IRIS.read_text())
    path = write(tmp_path, **{"train: {": "train: {metrics: [accuracy, confusion_matrix, mae], ",
                              "  validation_split: 0.2": "  validation_split: 0.2\n  test_split: 0.1"})
    out = tmp_path / "run"
    assert cli_runner.invoke(cli, ["train", str(path), "--out", str(out)]).exit_code == 0
    written = json.loads((out / "confusion_matrix_species.json").read_text())
    assert written["classes"] == ["setosa", "versicolor", "virginica"] and set(written) == {"classes", "train", "val"}
    assert sum(map(sum, written["val"])) == 30
    assert (out / "confusion_matrix_species.csv").read_text().splitlines()[0] == \
        "target\\predicted,setosa,versicolor,virginica"
    assert not (out / "confusion_matrix.json").exists() and not (out / "confusion_matrix_width.json").exists()
    test = json.loads((out / "test.json").read_text())
    assert test["classes"] == {"species": ["setosa", "versicolor", "virginica"]}
    assert sum(map(sum, test["metrics"]["confusion_matrix_species"])) == test["samples"] == 15
    evaluated = cli_runner.invoke(cli, ["evaluate", str(out)])
    assert "confusion matrix species (rows: target, columns: predicted)" in evaluated.output
    # --overwrite replaces the run whole: no per-output file of the old one is left behind
    single = write(tmp_path, SPEC.replace("loss:\n  species: CrossEntropyLoss\n  width: {MSELoss: {}, weight: 0.5}",
                                          "loss:\n  width: MSELoss\n  species: CrossEntropyLoss"))
    assert cli_runner.invoke(cli, ["train", str(single), "--out", str(out), "--overwrite"]).exit_code == 0
    assert not (out / "confusion_matrix_species.json").exists()


def test_a_validation_file_gives_every_outputs_targets(tmp_path):
    import specnn

    lines = IRIS.read_text().splitlines()
    (tmp_path / "iris.csv").write_text("\n".join(lines[:1] + lines[1::2]) + "\n")
    (tmp_path / "val.csv").write_text("\n".join(lines[:1] + lines[2::2]) + "\n")
    path = write(tmp_path, **{"  validation_split: 0.2": "  validation_path: val.csv"})
    run = specnn.train(load_spec(path), out=tmp_path / "run", quiet=True)
    assert run.meta["samples"] == {"train": 75, "validation": 75}
    result = specnn.evaluate(run)
    assert result["samples"] == 75 and set(result["metrics"]) >= {"loss_species", "accuracy_species", "mse_width"}
    (tmp_path / "val.csv").write_text(lines[0] + "\n5.0,3.0,1.5,0.2,rose\n")
    from specnn.errors import DataError

    with pytest.raises(DataError) as info:
        specnn.train(load_spec(path), out=tmp_path / "again", quiet=True)
    assert "row 2, column 'species': unknown label 'rose'" in str(info.value)
