"""Sweeps: a spec's sweep: section in, an Optuna study of ordinary runs out (issue 13).

The sweeps here train the iris MLP for a few epochs per trial, so each takes a second or two.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import specnn
from specnn.cli import cli
from specnn.errors import SpecError

from conftest import EXAMPLES, ROOT

optuna = pytest.importorskip("optuna")

IRIS = f"""\
specnn: 1
name: iris-small
seed: 0
model:
  input: [4]
  layers:
    - Linear: {{out_features: 10}}
    - ReLU:
    - Linear: {{out_features: 3}}
data:
  csv: {{path: {EXAMPLES / 'data' / 'iris.csv'}, target: species}}
  validation_split: 0.2
loss:
  CrossEntropyLoss:
optimizer:
  Adam: {{lr: 0.01}}
train:
  epochs: 12
  batch_size: 16
  checkpoint: {{every: 1000}}   # the last epoch only: an fsync per epoch would be most of a trial
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def iris_sweep(folder: Path, sweep: str, name: str = "iris.yaml") -> Path:
    return write(folder, name, IRIS + sweep)


def last_record(run: Path) -> dict:
    return json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])


def trials_of(folder: Path, name: str) -> list:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'study.db'}").get_trials()


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "specnn", *args], capture_output=True, text=True, env=env, **kwargs)


# ---------------------------------------------------------------------------------------------
# the sweep section is checked like the rest of the spec


BAD_SWEEP = """\
sweep:
  metric: val_acuracy
  space:
    optimizer.Adam.lrr: {loguniform: [1.0e-4, 1.0e-1]}
    optimizer.Adma.lr: {uniform: [0.1, 0.2]}
    model.layers[5].Linear.out_features: {choice: [1, 2]}
    model.layers[0].Linear.out_features: {choice: [16, -2]}
    train.batch_size: {int: [16, 8]}
    train.epochs: {logunifrom: [1, 2]}
    model.layers[0]..x: {choice: [1]}
"""


def test_every_problem_of_a_sweep_section_is_located_at_its_entry(tmp_path):
    path = iris_sweep(tmp_path, BAD_SWEEP)
    with pytest.raises(SpecError) as error:
        specnn.load_spec(path)
    # the schema's problems come first, as in any spec
    assert [p.format() for p in error.value.problems] == [
        f"{path}:29:20: sweep.space.train.epochs.logunifrom: unknown search space 'logunifrom' "
        "(did you mean 'loguniform'?)",
    ]
    # then the model's rules (one per search space), then how the sweep fits the spec
    fixed = BAD_SWEEP.replace("logunifrom", "loguniform")
    assert [p.format() for p in SpecError_of(iris_sweep(tmp_path, fixed))] == [
        f"{path}:28:5: sweep.space.train.batch_size: needs low < high, got [16, 8]",
    ]
    path = iris_sweep(tmp_path, fixed.replace("[16, 8]", "[8, 16]"))
    with pytest.raises(SpecError) as error:
        specnn.load_spec(path)
    assert [p.format() for p in error.value.problems] == [
        f"{path}:22:3: sweep.metric: the sweep scores trials by 'val_acuracy', which the run does not report "
        "(did you mean 'val_accuracy'?)",
        f"{path}:24:5: sweep.space.optimizer.Adam.lrr: unknown argument 'lrr' (did you mean 'lr'?)",
        f"{path}:25:5: sweep.space.optimizer.Adma.lr: optimizer has no 'Adma' (did you mean 'Adam'?)",
        f"{path}:26:5: sweep.space.model.layers[5].Linear.out_features: model.layers has 3 items: [5] names nothing",
        f"{path}:27:5: sweep.space.model.layers[0].Linear.out_features: the value -2 does not fit here: "
        "must be > 0, got -2",
        f"{path}:29:5: sweep.space.train.epochs: the value 1.41421 does not fit here: expected an integer, "
        "got number 1.41421 (draw integers with int: [low, high])",
        f"{path}:30:5: sweep.space.model.layers[0]..x: 'model.layers[0]..x' is not a spec path: write keys joined "
        "by '.' and list items as [i], e.g. model.layers[0].Linear.out_features",
    ]


def test_block_parameters_and_grid_ranges_are_checked(tmp_path):
    spec = write(tmp_path, "blocks.yaml", (EXAMPLES / "resnet_blocks.yaml").read_text() + """
sweep:
  sampler: grid
  space:
    model.blocks.ResidualBlock.params.chanels: {choice: [8, 16]}
    model.layers[2].params.channels: {int: [4, 16], step: 4}
    model.layers[1].params.channels: {choice: [4]}
    optimizer.Adam.lr: {loguniform: [1.0e-4, 1.0e-2]}
""")
    problems = [p.format().split(": ", 1)[1] for p in SpecError_of(spec)]
    assert problems == [
        "sweep.space.model.blocks.ResidualBlock.params.chanels: the block has no parameter 'chanels' "
        "(did you mean 'channels'?)",
        "sweep.space.model.layers[1].params.channels: the value 4 does not fit here: model.layers[1]: 'params' "
        "only go with 'block'",
        "sweep.space.optimizer.Adam.lr: the grid sampler needs a finite set of values; loguniform has none "
        "(give choice, int, or uniform with a step)",
    ]


def SpecError_of(path: Path) -> list:
    with pytest.raises(SpecError) as error:
        specnn.load_spec(path)
    return error.value.problems


def test_a_sweep_file_names_its_spec_and_its_problems_are_located_in_it(tmp_path, cli_runner):
    iris_sweep(tmp_path, "")
    sweep_file = write(tmp_path, "lr.yaml", "spec: iris.yaml\nsweep:\n  metric: val_los\n  trails: 3\n"
                       "  space: {optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}}\n")
    result = cli_runner.invoke(cli, ["sweep", str(sweep_file), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{sweep_file}:4:3: sweep.trails: unknown key 'trails' (did you mean 'trials'?)",
    ]
    write(tmp_path, "lr.yaml", "spec: iris.yaml\nsweep:\n  metric: val_los\n"
          "  space: {optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}}\n")
    result = cli_runner.invoke(cli, ["sweep", str(sweep_file), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        f"{sweep_file}:3:3: sweep.metric: the sweep scores trials by 'val_los', which the run does not report "
        "(did you mean 'val_loss'?)",
    ]
    assert not (tmp_path / "s").exists()
    assert cli_runner.invoke(cli, ["validate", str(sweep_file)]).output == result.output  # validate checks it too
    sweep_file.write_text(sweep_file.read_text().replace("val_los", "val_loss"))
    assert cli_runner.invoke(cli, ["validate", str(sweep_file)]).output == f"{sweep_file}: ok\n"


def test_a_spec_without_a_sweep_section_is_refused(tmp_path, cli_runner):
    result = cli_runner.invoke(cli, ["sweep", str(iris_sweep(tmp_path, ""))])
    assert result.exit_code == 2
    assert result.output == (f"{tmp_path / 'iris.yaml'}:1:1: this spec has no sweep: section (add one (see README, "
                             "Sweeps), or give a sweep file naming the spec)\n")


def test_the_example_sweep_validates_and_trains_its_own_values(cli_runner):
    result = cli_runner.invoke(cli, ["validate", str(EXAMPLES / "digits_sweep.yaml")])
    assert result.exit_code == 0, result.output
    digits, sweep = (specnn.load_spec(EXAMPLES / f) for f in ("digits_cnn.yaml", "digits_sweep.yaml"))
    # the sweep's spec is the digits example: what the sweep is compared with
    assert digits.model_dump(exclude={"name", "sweep"}) == sweep.model_dump(exclude={"name", "sweep"})


# ---------------------------------------------------------------------------------------------
# running sweeps


def test_a_sweep_finds_a_config_at_least_as_good_as_the_specs_own_and_its_best_spec_reproduces_it(tmp_path):
    own = specnn.train(specnn.load_spec(iris_sweep(tmp_path, "", "own.yaml")), out=tmp_path / "own", quiet=True)
    own_accuracy = last_record(own.path)["val_accuracy"]
    path = iris_sweep(tmp_path, """\
sweep:
  metric: val_accuracy
  trials: 4
  pruner: none
  space:
    optimizer.Adam.lr: {loguniform: [3.0e-3, 1.0e-1]}
    model.layers[0].Linear.out_features: {choice: [8, 16, 32]}
""")
    lines: list[str] = []
    result = specnn.sweep(path, tmp_path / "sweep", echo=lines.append)
    assert [t.state for t in result.trials] == ["COMPLETE"] * 4
    assert len(lines) == 5 and lines[1].startswith("trial   0  COMPLETE  val_accuracy ")
    assert result.best.value >= own_accuracy
    # each trial is an ordinary run folder; the table, the best spec and the plots are written
    best_run = tmp_path / "sweep" / "trials" / f"{result.best.number:04d}"
    assert last_record(best_run)["val_accuracy"] == result.best.value
    assert specnn.load_run(best_run).spec.optimizer.Adam.lr == result.best.params["optimizer.Adam.lr"]
    table = (tmp_path / "sweep" / "trials.csv").read_text().splitlines()
    assert table[0] == "number,state,val_accuracy,seconds,optimizer.Adam.lr,model.layers[0].Linear.out_features,problems,run"
    assert len(table) == 5
    assert {p.name for p in result.plots} == {"history.png", "importance.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in result.plots)
    # the best spec trains on its own, elsewhere, and gives the trial's metric again
    best_text = result.best_spec.read_text()
    assert "sweep" not in specnn.load_spec(result.best_spec).model_fields_set
    moved = write(tmp_path / "sweep", "copy.yaml", best_text)
    again = specnn.train(specnn.load_spec(moved), out=tmp_path / "again", quiet=True)
    assert last_record(again.path)["val_accuracy"] == result.best.value
    assert last_record(again.path)["val_loss"] == last_record(best_run)["val_loss"]


def test_running_the_command_again_continues_the_study(tmp_path, cli_runner):
    path = iris_sweep(tmp_path, "sweep:\n  trials: 2\n  space:\n    optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    out = tmp_path / "s"
    first = cli_runner.invoke(cli, ["sweep", str(path), "--no-plots", "--out", str(out)])
    assert first.exit_code == 0, first.output
    before = [(t.number, t.params, t.value) for t in trials_of(out, "iris-small")]
    again = cli_runner.invoke(cli, ["sweep", str(path), "--no-plots", "--out", str(out)])  # done: nothing to run
    assert again.exit_code == 0 and "trial   2" not in again.output
    more = cli_runner.invoke(cli, ["sweep", str(path), "--no-plots", "--out", str(out), "--trials", "4"])
    assert more.exit_code == 0, more.output
    after = [(t.number, t.params, t.value) for t in trials_of(out, "iris-small")]
    assert after[:2] == before and [n for n, _, _ in after] == [0, 1, 2, 3]
    assert "best: trial " in more.output and (out / "best.yaml").is_file()
    # another search space on the same study is refused, not mixed in
    path.write_text(path.read_text().replace("1.0e-3", "1.0e-4"))
    changed = cli_runner.invoke(cli, ["sweep", str(path), "--no-plots", "--out", str(out)])
    assert changed.exit_code == 2
    assert "was started with another metric, direction or search space" in changed.output


def test_an_invalid_sampled_spec_is_a_failed_trial_with_its_located_problems(tmp_path):
    # 7 hidden units break the second Linear, which states in_features: 8
    path = write(tmp_path, "fixed.yaml", IRIS.replace("{out_features: 3}", "{in_features: 8, out_features: 3}")
                 .replace("{out_features: 10}", "{out_features: 8}") + """\
sweep:
  sampler: grid
  space:
    model.layers[0].Linear.out_features: {choice: [8, 7]}
""")
    lines: list[str] = []
    result = specnn.sweep(path, tmp_path / "s", plots=False, echo=lines.append)
    states = {r.params["model.layers[0].Linear.out_features"]: r for r in result.trials}
    assert states[8].state == "COMPLETE" and states[7].state == "FAIL"
    assert states[7].problems == [
        f"{path}:9:7: model.layers[2].Linear: Linear: in_features=8 but the input has 7 "
        "(remove in_features (it is inferred) or set it to 7)"]
    assert not (tmp_path / "s" / "trials" / f"{states[7].number:04d}").exists()  # nothing written for it
    failed = next(line for line in lines if " FAIL " in line)  # the trial's line, its problems below it
    assert failed.splitlines()[1:] == ["    " + states[7].problems[0]]
    assert result.best.number == states[8].number


def test_a_trial_trailing_the_median_is_pruned_and_train_stops_on_request(tmp_path):
    stops = []
    run = specnn.train(specnn.load_spec(iris_sweep(tmp_path, "")), out=tmp_path / "run", quiet=True,
                       on_epoch=lambda epoch, record: stops.append(record["val_loss"]) or epoch == 3)
    assert len(stops) == 3 and [json.loads(x)["epoch"] for x in (run.path / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    path = iris_sweep(tmp_path, """\
sweep:
  sampler: grid
  metric: val_loss
  pruner: {median: {startup_trials: 1, warmup_epochs: 1}}
  space:
    optimizer.Adam.lr: {choice: [0.05, 0.04, 0.03, 1.0e-6]}
""")
    result = specnn.sweep(path, tmp_path / "s", plots=False, echo=lambda line: None)
    by_lr = {r.params["optimizer.Adam.lr"]: r for r in result.trials}
    assert by_lr[1e-6].state == "PRUNED"  # its loss barely moves: worse than the median from epoch 2
    pruned = by_lr[1e-6]
    assert [json.loads(x)["epoch"] for x in (Path(pruned.run) / "metrics.jsonl").read_text().splitlines()] == [1, 2]


def test_interrupting_a_sweep_and_running_it_again_continues_it(tmp_path):
    path = iris_sweep(tmp_path, "sweep:\n  trials: 2\n  space:\n    optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    path.write_text(path.read_text().replace("epochs: 12", "epochs: 100"))  # long enough for Ctrl-C to land in a trial
    out = tmp_path / "s"
    process = subprocess.Popen([sys.executable, "-m", "specnn", "sweep", str(path), "--no-plots", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while not list(out.glob("trials/0001/metrics.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C during trial 1
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert stderr.endswith("interrupted: the study keeps its finished trials; run the same command to continue "
                           f"(specnn sweep {path})\n")
    assert [t.state.name for t in trials_of(out, "iris-small")] == ["COMPLETE", "FAIL"]
    again = run_cli("sweep", str(path), "--no-plots", "--out", str(out), timeout=120)
    assert again.returncode == 0, again.stderr
    trials = trials_of(out, "iris-small")
    assert [(t.number, t.state.name) for t in trials] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]
    assert "1      INTERRUPTED" in again.stdout  # it does not count towards the 2 trials


@pytest.mark.slow
def test_two_processes_on_one_journal_file_share_a_study(tmp_path):
    path = iris_sweep(tmp_path, "sweep:\n  trials: 4\n  space:\n    optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}\n"
                      "    train.batch_size: {choice: [8, 16, 32]}\n")
    url = str(tmp_path / "study.log")  # Optuna's journal file: what a shared file system holds
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    processes = [subprocess.Popen([sys.executable, "-m", "specnn", "sweep", str(path), "--no-plots", "--storage", url,
                                   "--out", str(tmp_path / f"machine{i}")], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=env) for i in range(2)]
    outputs = [p.communicate(timeout=240) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    store = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    trials = optuna.load_study(study_name="iris-small", storage=store).get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(numbers))) and 4 <= len(numbers) <= 5  # a process may finish one more
    drawn = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(drawn)) == len(drawn)  # no two trials drew the same values
    ran = [sorted(p.name for p in (tmp_path / f"machine{i}" / "trials").iterdir()) for i in range(2)]
    assert ran[0] and ran[1] and not set(ran[0]) & set(ran[1])  # both worked, on different trials


@pytest.mark.slow
def test_jobs_run_trials_in_parallel_local_processes_on_the_sqlite_study(tmp_path):
    path = iris_sweep(tmp_path, "sweep:\n  trials: 4\n  space:\n    optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}\n")
    result = run_cli("sweep", str(path), "--no-plots", "--out", str(tmp_path / "s"), "--jobs", "2", timeout=240)
    assert result.returncode == 0, result.stderr
    trials = trials_of(tmp_path / "s", "iris-small")
    assert 4 <= len(trials) <= 5 and all(t.state.name == "COMPLETE" for t in trials)
    assert len({t.params["optimizer.Adam.lr"] for t in trials}) == len(trials)
    assert (tmp_path / "s" / "best.yaml").is_file()


def test_without_optuna_the_command_says_how_to_install_it(tmp_path, cli_runner, monkeypatch):
    path = iris_sweep(tmp_path, "sweep:\n  space: {optimizer.Adam.lr: {loguniform: [1.0e-3, 1.0e-1]}}\n")
    monkeypatch.setitem(sys.modules, "optuna", None)  # `import optuna` raises ImportError
    result = cli_runner.invoke(cli, ["sweep", str(path), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2
    assert result.output == 'a sweep needs optuna, which is not installed (pip install "specnn[sweep]")\n'
    assert not (tmp_path / "s").exists()
