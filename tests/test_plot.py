"""Training curves: metrics.jsonl in, one PNG with loss, metrics and learning rate panels out."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from specnn.cli import cli
from specnn.runtime.runs.plot import PlotExtraMissing, panels, plot_run, read_metrics
from specnn.errors import RunError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
RECORDS = [
    {"epoch": 1, "train_loss": 1.0, "val_loss": 1.2, "train_acc": 0.4, "val_acc": 0.5, "lr": 0.1, "seconds": 0.1},
    {"epoch": 2, "train_loss": 0.6, "val_loss": 0.8, "train_acc": 0.7, "val_acc": 0.6, "lr": 0.05, "seconds": 0.1},
    {"epoch": 3, "train_loss": 0.4, "val_loss": 0.7, "val_acc": 0.8, "val_f1": 0.75, "lr": 0.01, "seconds": 0.1,
     "confusion": [[1, 0], [0, 1]]},
]


def run_folder(tmp_path: Path, records=RECORDS) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (folder / "meta.json").write_text(json.dumps({"name": "demo"}))
    return folder


def test_panels_pair_train_and_validation_per_metric_then_the_learning_rate():
    drawn = panels(RECORDS)
    assert [p.title for p in drawn] == ["loss", "acc", "f1", "learning rate"]
    assert drawn[0].series == {"train": ([1, 2, 3], [1.0, 0.6, 0.4]), "validation": ([1, 2, 3], [1.2, 0.8, 0.7])}
    assert drawn[1].series == {"train": ([1, 2], [0.4, 0.7]), "validation": ([1, 2, 3], [0.5, 0.6, 0.8])}
    assert drawn[2].series == {"validation": ([3], [0.75])}
    assert drawn[3].series == {"learning rate": ([1, 2, 3], [0.1, 0.05, 0.01])}


def test_plot_writes_a_png_into_the_run_folder_by_default(tmp_path):
    folder = run_folder(tmp_path)
    path = plot_run(folder, dpi=40)
    assert path == folder / "curves.png"
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in folder.iterdir()) == ["curves.png", "meta.json", "metrics.jsonl"]


def test_a_corrupt_metrics_line_is_named(tmp_path):
    folder = run_folder(tmp_path)
    with (folder / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 4, "train_loss": \n')
    with pytest.raises(RunError) as info:
        read_metrics(folder)
    assert str(info.value) == f"{folder / 'metrics.jsonl'}:4:28: not a JSON record: Expecting value"


def test_missing_or_empty_metrics_are_run_errors(tmp_path):
    with pytest.raises(RunError) as info:
        plot_run(tmp_path)
    assert str(info.value) == f"{tmp_path / 'metrics.jsonl'}: missing run file (train the spec first)"
    folder = run_folder(tmp_path, records=[])
    with pytest.raises(RunError) as info:
        plot_run(folder)
    assert str(info.value) == f"{folder / 'metrics.jsonl'}: no epochs recorded"


def test_without_matplotlib_the_message_says_how_to_install_it(tmp_path, monkeypatch):
    folder = run_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails as if not installed
    with pytest.raises(PlotExtraMissing) as info:
        plot_run(folder)
    assert str(info.value) == 'plotting needs matplotlib, which is not installed (pip install "specnn[plot]")'
    assert not (folder / "curves.png").exists()


def test_cli_plot_writes_the_named_png(cli_runner, tmp_path):
    folder = run_folder(tmp_path)
    out = tmp_path / "curves" / "iris.png"
    result = cli_runner.invoke(cli, ["plot", str(folder), "-o", str(out), "--dpi", "40"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"wrote {out}"
    assert out.read_bytes()[:8] == PNG_SIGNATURE


def test_cli_plot_exit_codes_for_a_bad_run_and_a_missing_extra(cli_runner, tmp_path, monkeypatch):
    result = cli_runner.invoke(cli, ["plot", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip() == f"{tmp_path / 'metrics.jsonl'}: missing run file (train the spec first)"
    folder = run_folder(tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    result = cli_runner.invoke(cli, ["plot", str(folder)])
    assert result.exit_code == 2  # like every missing extra
    assert result.output.strip() == 'plotting needs matplotlib, which is not installed (pip install "specnn[plot]")'
