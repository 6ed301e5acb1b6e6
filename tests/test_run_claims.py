"""Two trainings at once never share a run folder: started together on one spec they get two
folders, each with its own complete run; an --out or --resume that a live training uses is refused
with its pid; a claim a killed training left is taken over."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

import specnn
from specnn.cli import cli
from specnn.errors import RunError
from specnn.runtime.train.claim import CLAIM_FILE, FolderInUse, take_claim

ROOT = Path(__file__).resolve().parent.parent
SPEC = """\
specnn: 1
name: race
seed: SEED
model:
  input: [4]
  layers:
    - Linear: {out_features: 3}
data:
  synthetic: {shape: [4], classes: 3, samples: 24}
loss:
  CrossEntropyLoss:
optimizer:
  SGD: {lr: 0.1}
train:
  epochs: 1
  batch_size: 8
  device: cpu
"""
RUN_FILES = ["checkpoints", "manifest.json", "meta.json", "metrics.csv", "metrics.jsonl", "model.py",
             "preprocess.json", "spec.yaml", "weights.pt"]
WORKERS, ROUNDS = 3, 12


def _spec(folder: Path, seed: int = 0) -> Path:
    path = folder / f"race-{seed}.yaml"
    path.write_text(SPEC.replace("SEED", str(seed)))
    return path


def _race(worker: int, folder: str, start: "multiprocessing.synchronize.Barrier", results: "multiprocessing.Queue"):
    """Train ROUNDS times, each round at the same moment as the other workers, each with its own seed."""
    torch.set_num_threads(1)
    os.chdir(folder)
    specs = [specnn.load_spec(_spec(Path(folder), seed=100 * worker + round)) for round in range(ROUNDS)]
    specnn.train(specs[0], Path(folder) / f"warm-{worker}", quiet=True)  # imports done: the rounds start together
    outcomes = []
    for spec in specs:
        start.wait()
        run = specnn.train(spec, quiet=True)
        outcomes.append((str(run.path), spec.seed, {k: v.numpy().copy() for k, v in run.model.state_dict().items()}))
    for spec in specs[:4]:  # then rounds on one explicit --out each: one training gets it, the others are refused
        start.wait()
        try:
            outcomes.append((str(specnn.train(spec, f"shared-{spec.seed % 100}", quiet=True).path), spec.seed, None))
        except RunError as error:
            outcomes.append((None, spec.seed, [p.code for p in error.problems]))
    results.put((worker, outcomes))


@pytest.mark.slow  # 15-25 s: three processes start (torch), then train 16 runs each, every round at once
def test_trainings_started_together_each_get_their_own_folder_with_their_own_run(tmp_path):
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(WORKERS), context.Queue()
    workers = [context.Process(target=_race, args=(w, str(tmp_path), start, results)) for w in range(WORKERS)]
    for process in workers:
        process.start()
    outcomes = dict(results.get(timeout=240) for _ in workers)
    for process in workers:
        process.join(timeout=60)
        assert process.exitcode == 0
    default = [o for w in range(WORKERS) for o in outcomes[w][:ROUNDS]]
    folders = [path for path, _, _ in default]
    assert len(set(folders)) == WORKERS * ROUNDS  # no two trainings shared a folder
    assert sorted(folders) == sorted(["runs/race"] + [f"runs/race-{n}" for n in range(2, WORKERS * ROUNDS + 1)])
    for path, seed, weights in default:  # and each folder holds the run that claimed it, complete
        folder = tmp_path / path
        assert sorted(p.name for p in folder.iterdir()) == RUN_FILES
        assert f"seed: {seed}\n" in (folder / "spec.yaml").read_text()
        saved = torch.load(folder / "weights.pt", weights_only=True)
        assert all(torch.equal(saved[k], torch.from_numpy(weights[k])) for k in weights)
        assert len((folder / "metrics.jsonl").read_text().splitlines()) == 1
    for round in range(4):  # one --out, started together: exactly one training writes it
        shared = [outcomes[w][ROUNDS + round] for w in range(WORKERS)]
        won = [seed for path, seed, _ in shared if path is not None]
        assert len(won) == 1, shared
        assert all(codes in (["run-in-use"], ["run-exists"]) for path, _, codes in shared if path is None)
        assert f"seed: {won[0]}\n" in (tmp_path / f"shared-{round}" / "spec.yaml").read_text()


# ---------------------------------------------------------------------------------------------
# a folder a live training uses


def _hold(folder: Path) -> subprocess.Popen:
    """Another process that claims ``folder`` (as a training does) and keeps it until killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from specnn.runtime.train.claim import take_claim
        take_claim(Path({str(folder)!r}))
        print("held", flush=True)
        time.sleep(120)
    """)
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert holder.stdout.readline() == "held\n"
    return holder


def test_an_out_that_a_live_training_uses_is_refused_with_its_pid(cli_runner, tmp_path):
    out = tmp_path / "busy"
    holder = _hold(out)
    try:
        result = cli_runner.invoke(cli, ["train", str(_spec(tmp_path)), "--out", str(out), "-q"])
        resumed = cli_runner.invoke(cli, ["train", str(_spec(tmp_path)), "--resume", str(out), "-q"])
        (out / "meta.json").write_text("{}")  # as if it held a run: --overwrite must not clear a live one
        replaced = cli_runner.invoke(cli, ["train", str(_spec(tmp_path)), "--out", str(out), "--overwrite", "-q"])
    finally:
        holder.kill()
        holder.wait()
    assert result.exit_code == 2
    assert result.output == (f"{out}: this folder is already in use by pid {holder.pid}: another training is "
                             "writing to it (wait for it to finish, or choose another --out)\n")
    assert resumed.exit_code == 2 and f"already in use by pid {holder.pid}" in resumed.output
    assert replaced.exit_code == 2 and f"already in use by pid {holder.pid}" in replaced.output
    assert sorted(p.name for p in out.iterdir()) == [CLAIM_FILE, "meta.json"]  # nothing of the refused runs


def test_the_default_folder_a_live_training_uses_counts_as_taken(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    holder = _hold(tmp_path / "runs" / "race")
    lines: list[str] = []
    try:
        run = specnn.train(_spec(tmp_path), echo=lines.append, progress=False)
    finally:
        holder.kill()
        holder.wait()
    assert run.path == Path("runs/race-2")
    assert lines[0] == (f"{Path('runs/race')} is in use by another training (pid {holder.pid}): this run goes to "
                        f"{Path('runs/race-2')}")


def test_a_claim_left_by_a_killed_training_is_taken_over_with_a_note(tmp_path):
    out = tmp_path / "run"
    holder = _hold(out)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lines: list[str] = []
    run = specnn.train(_spec(tmp_path), out, echo=lines.append, progress=False)
    assert lines[0] == (f"{out}: the training that used it last (pid {holder.pid}) ended without releasing it; "
                        "this run takes it over")
    assert sorted(p.name for p in run.path.iterdir()) == RUN_FILES  # the claim goes with the run's end


def test_a_forked_child_that_outlives_a_killed_training_does_not_keep_its_folder(tmp_path):
    # a data loader's workers are forks of the training: killed with it, they may live on for seconds
    code = textwrap.dedent(f"""
        import os, time
        from pathlib import Path
        from specnn.runtime.train.claim import take_claim
        claim = take_claim(Path({str(tmp_path / "run")!r}))
        if os.fork() == 0:  # at-fork handlers have run once the child's own code runs
            print(os.getpid(), flush=True)
            time.sleep(60)
            os._exit(0)
        time.sleep(60)
    """)
    training = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
    worker = int(training.stdout.readline())
    try:
        with pytest.raises(FolderInUse):
            take_claim(tmp_path / "run")
        training.kill()
        training.wait()
        os.kill(worker, 0)  # the worker is still alive
        with take_claim(tmp_path / "run") as claim:
            assert claim.previous == training.pid
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_finished_run_releases_its_folder_and_the_next_training_goes_next_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = specnn.train(_spec(tmp_path), quiet=True)
    assert not (first.path / CLAIM_FILE).exists()
    with take_claim(first.path):  # free again: it can be claimed (and so resumed, exported into ...)
        pass
    assert specnn.train(_spec(tmp_path), quiet=True).path == Path("runs/race-2")


def test_a_claim_is_exclusive_within_one_process_too(tmp_path):
    with take_claim(tmp_path / "run") as claim:
        with pytest.raises(FolderInUse) as caught:
            take_claim(tmp_path / "run")
        assert caught.value.pid == os.getpid() and claim.held
    assert not (tmp_path / "run" / CLAIM_FILE).exists()
    take_claim(tmp_path / "run").release()  # released: free again


def test_a_folder_that_cannot_be_made_is_a_clean_error_and_nothing_is_left(cli_runner, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    result = cli_runner.invoke(cli, ["train", str(_spec(tmp_path)), "--out", str(tmp_path / "file" / "run"), "-q"])
    assert result.exit_code == 2
    assert result.output == f"{tmp_path / 'file' / 'run'}: cannot create the run folder: Not a directory\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "race-0.yaml"]


def test_a_waiting_claimant_sees_the_pid_once_the_holder_wrote_it(tmp_path):
    started = time.monotonic()
    with take_claim(tmp_path / "run"):
        (tmp_path / "run" / CLAIM_FILE).write_text("")  # as if the holder had not written its pid yet
        with pytest.raises(FolderInUse) as caught:
            take_claim(tmp_path / "run")
    assert caught.value.pid is None and caught.value.holder == "another process"
    assert time.monotonic() - started < 1.0
