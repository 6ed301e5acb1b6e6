"""torch.distributed plumbing: torchrun's environment, spec checks, shards, and real 2-process gloo jobs.

The multi-process tests start two CPU processes (gloo) with ``torch.multiprocessing.spawn`` or
torchrun itself; each rank writes what it saw to a file that the test compares.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from specnn.runtime.train import distributed as D
from specnn.runtime.train import shards as S
from specnn.errors import SpecError
from specnn.spec.loader import load_spec

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------
# environment and spec checks (one process)


def test_launch_env_reads_torchrun_variables():
    env = D.launch_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                        "MASTER_ADDR": "node0", "MASTER_PORT": "29500", "TORCHELASTIC_RESTART_COUNT": "2"})
    assert env == D.LaunchEnv(3, 4, 1, 2, "node0", 29500, 2)
    assert env.restarted


def test_plain_process_is_rank_zero_of_one():
    assert D.launch_env({}) == D.LaunchEnv()
    assert not D.launch_env({}).restarted


def _iris_with(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "examples" / "iris.yaml").read_text()
    assert old in text
    path = tmp_path / "iris.yaml"
    path.write_text(text.replace(old, new).replace("path: data/iris.csv", f"path: {ROOT / 'examples/data/iris.csv'}"))
    return path


def test_global_batch_divides_across_ranks(iris_spec):
    spec = load_spec(iris_spec)
    assert [D.per_rank_batch_size(spec, n) for n in (1, 2, 4, 8, 16)] == [16, 8, 4, 2, 1]


def test_indivisible_batch_is_located_at_train_batch_size(tmp_path):
    spec = load_spec(_iris_with(tmp_path, "batch_size: 16", "batch_size: 15"))
    with pytest.raises(SpecError) as caught:
        D.per_rank_batch_size(spec, 2)
    assert str(caught.value) == (
        f"{tmp_path / 'iris.yaml'}:27:3: train.batch_size: batch_size 15 is the global batch and does not divide "
        "evenly across 2 processes (use a multiple of the process count, e.g. 14 or 16)"
    )


def test_batch_smaller_than_world_suggests_only_positive_sizes(tmp_path):
    spec = load_spec(_iris_with(tmp_path, "batch_size: 16", "batch_size: 3"))
    with pytest.raises(SpecError, match=r"across 4 processes \(use a multiple of the process count, e.g. 4\)$"):
        D.per_rank_batch_size(spec, 4)


def test_backend_defaults_and_overrides(iris_spec):
    spec = load_spec(iris_spec)
    assert D.choose_backend(torch.device("cpu"), spec=spec) == "gloo"
    assert D.choose_backend(torch.device("cuda", 0)) == "nccl"
    assert D.choose_backend(torch.device("cuda", 0), "gloo") == "gloo"


def test_nccl_without_cuda_is_a_spec_error(iris_spec):
    spec = load_spec(iris_spec)
    with pytest.raises(SpecError) as caught:
        D.choose_backend(torch.device("cpu"), "nccl", spec)
    # The spec has no train.distributed section: the nearest located parent is `train:`.
    assert str(caught.value) == (
        f"{iris_spec}:25:1: train.distributed.backend: backend 'nccl' needs CUDA, but training runs on cpu "
        "(use backend: gloo, or train on a CUDA device)"
    )
    with pytest.raises(SpecError, match="unknown backend 'mpi' \\(use gloo"):
        D.choose_backend(torch.device("cpu"), "mpi")


def test_cuda_ranks_get_their_local_gpu():
    env = D.LaunchEnv(rank=5, world_size=8, local_rank=1, local_world_size=4)
    assert D.rank_device(torch.device("cuda"), env) == torch.device("cuda", 1)
    assert D.rank_device(torch.device("cpu"), env) == torch.device("cpu")
    assert D.rank_device(torch.device("cuda", 3), D.LaunchEnv()) == torch.device("cuda", 3)


def test_world_of_one_starts_no_group():
    with D.distributed_session(torch.device("cpu"), env=D.LaunchEnv()) as dist:
        model = torch.nn.Linear(2, 1)
        assert dist.wrap(model) is model and dist.unwrap(model) is model
        assert dist.is_main and not dist.active
        assert dist.all_reduce_sums({"a": torch.tensor(2.0)})["a"].item() == 2.0
        dist.barrier()
    assert not torch.distributed.is_initialized()


# ---------------------------------------------------------------------------------------------
# shards


@pytest.mark.parametrize("n", [1, 2, 7, 10, 11])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_are_disjoint_equal_and_cover_the_epoch(n, world):
    order = S.epoch_order(n, seed=5, epoch=2)
    shards = [S.shard_indices(order, rank, world) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of steps on every rank
    seen = torch.cat(shards).tolist()
    assert sorted(set(seen)) == list(range(n))  # every sample of the epoch
    assert len(seen) == -(-n // world) * world  # padded only up to the next multiple
    if n % world == 0:
        assert sorted(seen) == list(range(n))  # no sample twice


@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_match_distributed_sampler(drop_last, shuffle):
    from torch.utils.data.distributed import DistributedSampler

    dataset = list(range(11))
    for epoch in (0, 1, 2):
        order = S.epoch_order(len(dataset), seed=7, epoch=epoch, shuffle=shuffle)
        for rank in range(3):
            sampler = DistributedSampler(dataset, 3, rank, shuffle=shuffle, seed=7, drop_last=drop_last)
            sampler.set_epoch(epoch)
            assert S.shard_indices(order, rank, 3, drop_last).tolist() == list(sampler)


def test_epochs_are_reshuffled():
    assert not torch.equal(S.epoch_order(50, seed=0, epoch=0), S.epoch_order(50, seed=0, epoch=1))


@pytest.mark.parametrize("world, local, expected", [
    ("1", "1", "specnn train a.yaml --resume runs/a"),
    ("2", "2", "specnn train a.yaml --resume runs/a --nproc 2"),  # --nproc 2 or torchrun on one machine
    ("4", "2", "specnn train a.yaml --resume runs/a (under the same torchrun command on every machine)"),
])
def test_the_resume_command_runs_on_as_many_processes_as_the_job(monkeypatch, world, local, expected):
    monkeypatch.setenv("WORLD_SIZE", world)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", local)
    assert D.resume_command("a.yaml", Path("runs/a")) == expected


def test_workers_get_the_command_line_as_typed_without_nproc():
    from specnn.launch import worker_args

    typed = ["train", "a.yaml", "--nproc", "2", "--out", "runs/x", "-q", "--backend", "gloo"]
    assert worker_args(typed) == ["train", "a.yaml", "--out", "runs/x", "-q", "--backend", "gloo"]
    assert worker_args(["train", "a.yaml", "--out=runs/x", "--nproc=2"]) == ["train", "a.yaml", "--out=runs/x"]


# ---------------------------------------------------------------------------------------------
# two real processes (gloo on CPU)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_rank(rank: int, world: int, port: int, job, folder: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with D.distributed_session(torch.device("cpu")) as dist:
        result = job(dist)
    result["initialized_after"] = torch.distributed.is_initialized()
    torch.save(result, Path(folder) / f"rank{rank}.pt")


def _spawn(job, tmp_path: Path, world: int = 2) -> list[dict]:
    mp.spawn(_as_rank, args=(world, _free_port(), job, str(tmp_path)), nprocs=world, join=True)
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]


def _collectives(dist: D.Distributed) -> dict:
    sums = dist.all_reduce_sums({
        "loss": torch.tensor(1.5 * (dist.rank + 1)),
        "count": torch.tensor(10 + dist.rank, dtype=torch.int64),
        "confusion": torch.full((2, 2), dist.rank + 1, dtype=torch.int64),
    })
    order = S.epoch_order(9, seed=1, epoch=3)  # drawn independently on each rank
    return {"sums": sums, "shard": S.shard_indices(order, dist.rank, dist.world_size), "active": dist.active,
            "rank": dist.rank, "main": dist.is_main}


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_two_processes_reduce_sums_and_take_disjoint_shards(tmp_path):
    results = _spawn(_collectives, tmp_path)
    for rank, result in enumerate(results):
        assert result["rank"] == rank and result["main"] == (rank == 0) and result["active"]
        assert not result["initialized_after"]  # the session tore the group down
        assert result["sums"]["loss"].item() == 4.5
        assert result["sums"]["count"].dtype == torch.int64 and result["sums"]["count"].item() == 21
        assert torch.equal(result["sums"]["confusion"], torch.full((2, 2), 3))
    shards = [r["shard"] for r in results]
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(set(torch.cat(shards).tolist())) == list(range(9))


def _data(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, generator=generator), torch.randn(n, 1, generator=generator)


def _ddp_step(dist: D.Distributed) -> dict:
    torch.manual_seed(0)
    model = dist.wrap(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)))
    x, y = _data()
    mine = S.shard_indices(torch.arange(len(x)), dist.rank, dist.world_size)
    torch.nn.functional.mse_loss(model(x[mine]), y[mine]).backward()
    plain = dist.unwrap(model)
    return {"grads": [p.grad for p in plain.parameters()], "keys": list(plain.state_dict())}


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_ddp_gradients_are_equal_across_ranks_and_equal_the_global_batch(tmp_path):
    results = _spawn(_ddp_step, tmp_path)
    # the reference: one process, the whole batch
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x, y = _data()
    torch.nn.functional.mse_loss(model(x), y).backward()
    for got_0, got_1, want in zip(results[0]["grads"], results[1]["grads"], [p.grad for p in model.parameters()]):
        assert torch.equal(got_0, got_1)  # DDP all-reduced them: bit for bit the same on both ranks
        # mean over ranks of per-shard means = global mean; float sums in another order, hence a tolerance
        torch.testing.assert_close(got_0, want, rtol=1e-5, atol=1e-6)
    assert results[0]["keys"] == list(model.state_dict())  # unwrapped: no "module." prefix


# ---------------------------------------------------------------------------------------------
# one failing rank: one message


FAILING_WORKER = textwrap.dedent("""
    import sys, torch
    from specnn.launch import job
    from specnn.errors import Problem, SpecError

    try:
        with job(torch.device("cpu")) as dist:
            if dist.rank == 1:
                raise SpecError([Problem("data", "cannot read shard.csv", ("data", "csv"), file="s.yaml", line=3, col=5)])
            dist.barrier()  # rank 0 waits here; rank 1's exit breaks the barrier
    except SpecError as error:
        print(error, file=sys.stderr)
        sys.exit(2)
""")


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_an_error_on_one_rank_is_reported_once(tmp_path):
    (tmp_path / "failing_worker.py").write_text(FAILING_WORKER)
    launcher = "import sys; from specnn.launch import launch; sys.exit(launch(2, [], module='failing_worker'))"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "specnn: rank 1 of 2 failed:\ns.yaml:3:5: data.csv: cannot read shard.csv\n"


# ---------------------------------------------------------------------------------------------
# training on two processes (the trainer under torchrun)

RESTART_WORKER = textwrap.dedent("""
    # Trains SPEC into OUT under torchrun; on the first attempt rank 1 dies right after epoch 3's
    # checkpoint, so torchrun (--max-restarts 1) restarts both ranks and they resume from it.
    import os, sys
    from pathlib import Path
    import torch
    import specnn
    from specnn.runtime.train import logs
    from specnn.runtime.train.distributed import launch_env

    spec_path, out = sys.argv[1], Path(sys.argv[2])
    env = launch_env()
    real_start = logs.Progress.start

    def start(self, epoch, epochs, batches):
        if epoch == 4 and env.restart_count == 0:
            torch.distributed.barrier()  # rank 0 has written last.pt for epoch 3
            if env.rank == 1:
                os._exit(1)  # a crash between two epochs
        return real_start(self, epoch, epochs, batches)

    logs.Progress.start = start
    run = specnn.train(specnn.load_spec(spec_path), out, quiet=True)
    torch.save(run.model.state_dict(), out / f"rank{env.rank}.pt")
""")


@pytest.fixture(scope="module")
def small_iris(tmp_path_factory) -> Path:
    """Iris as in the example (no dropout or batch-norm), without the slow ONNX export."""
    folder = tmp_path_factory.mktemp("spec")
    text = (ROOT / "examples" / "iris.yaml").read_text()
    text = text.replace("path: data/iris.csv", f"path: {ROOT / 'examples/data/iris.csv'}")
    text = text.replace("export: [state_dict, onnx]", "export: []")
    path = folder / "iris.yaml"
    path.write_text(text)
    return path


def _run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=180,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    assert done.returncode == 0, done.stderr
    return done


def _weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def two_process_runs(small_iris, tmp_path_factory) -> dict[str, Path]:
    """The same spec on 2 processes three ways: --nproc, torchrun by hand, torchrun with a restart."""
    folder = tmp_path_factory.mktemp("runs")
    _run([sys.executable, "-m", "specnn", "train", str(small_iris), "--nproc", "2", "--out", "nproc", "-q"], folder)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
          "-m", "specnn", "train", str(small_iris), "--out", "torchrun", "-q"], folder)
    (folder / "restart_worker.py").write_text(RESTART_WORKER)
    launcher = ("import sys; from specnn.launch import launch; "
                f"sys.exit(launch(2, [{str(small_iris)!r}, 'restarted'], ['--max-restarts', '1'], 'restart_worker'))")
    _run([sys.executable, "-c", launcher], folder, PYTHONPATH=f"{folder}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return {name: folder / name for name in ("nproc", "torchrun", "restarted")}


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_two_processes_train_iris_to_the_same_bar_as_one(two_process_runs):
    import json

    records = [json.loads(line) for line in (two_process_runs["nproc"] / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 61))  # rank 0 alone wrote the log: no duplicates
    assert records[-1]["val_accuracy"] >= 0.9


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_all_ranks_end_with_identical_weights(two_process_runs):
    restarted = two_process_runs["restarted"]
    _assert_equal(_weights(restarted / "rank0.pt"), _weights(restarted / "rank1.pt"))


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_nproc_and_a_hand_written_torchrun_give_the_same_run(two_process_runs):
    _assert_equal(_weights(two_process_runs["nproc"] / "weights.pt"), _weights(two_process_runs["torchrun"] / "weights.pt"))


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_a_run_restarted_by_torchrun_resumes_and_equals_the_uninterrupted_run(two_process_runs):
    restarted = two_process_runs["restarted"]
    lines = (restarted / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 60  # epochs 1-3 from the first attempt, 4-60 after the restart
    _assert_equal(_weights(two_process_runs["nproc"] / "weights.pt"), _weights(restarted / "rank0.pt"))


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_two_processes_equal_one_process_with_the_same_global_batch(two_process_runs, small_iris, tmp_path):
    import specnn

    one = specnn.train(specnn.load_spec(small_iris), tmp_path / "one", quiet=True).model.state_dict()
    two = _weights(two_process_runs["nproc"] / "weights.pt")
    # Why they agree: 120 training rows and a global batch of 16 split 8 + 8 (the last batch 4 + 4),
    # so both ranks always hold equal-sized shards; DDP averages the ranks' gradients, and the mean
    # of two equal-sized per-shard means is the mean over the whole global batch -- the gradient one
    # process computes. Each step therefore applies the same update to the same weights, except
    # that the float sums are taken in another order (per shard, then across ranks), which moves
    # the last bits of float32 (eps 1.2e-7); Adam over 480 steps carries those along (observed:
    # at most 5.4e-7 absolute), so 1e-5 relative + 2e-6 absolute holds with room and still fails
    # for any real difference in the updates (one sample more or less in a step moves weights by
    # ~1e-3). Dropout or batch-norm would break this (per-rank masks and batch statistics).
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=2e-6)


def test_the_spec_chooses_the_backend_and_a_bad_choice_is_located(tmp_path):
    spec = load_spec(_iris_with(tmp_path, "  device: auto", "  device: cpu\n  distributed: {backend: nccl}"))
    assert D.spec_backend(spec) == "nccl"
    with pytest.raises(SpecError) as caught:
        D.choose_backend(torch.device("cpu"), spec=spec)
    assert str(caught.value).startswith(f"{tmp_path / 'iris.yaml'}:29:17: train.distributed.backend: backend 'nccl' "
                                        "needs CUDA, but training runs on cpu")
    assert D.choose_backend(torch.device("cpu"), "gloo", spec) == "gloo"  # the --backend flag wins


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)], ids=["2-then-1", "1-then-2"])
@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_a_run_resumes_on_another_number_of_processes(two_process_runs, small_iris, tmp_path, first, then):
    # Checkpoints hold the unwrapped model and the global data order, so 3 epochs on `first`
    # processes and the other 57 on `then` equal the uninterrupted 2-process run up to the float
    # summation order (the tolerance of the 2-vs-1 test above, for the same reason).
    three = tmp_path / "three.yaml"
    three.write_text(small_iris.read_text().replace("epochs: 60", "epochs: 3"))
    nproc = lambda n: ["--nproc", "2"] if n == 2 else []  # noqa: E731
    _run([sys.executable, "-m", "specnn", "train", str(three), "--out", "run", "-q", *nproc(first)], tmp_path)
    _run([sys.executable, "-m", "specnn", "train", str(small_iris), "--resume", "run", "-q", *nproc(then)], tmp_path)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == list(range(1, 61))
    # manifest.json, written by rank 0 alone: one session per attempt, each finished
    sessions = json.loads((tmp_path / "run" / "manifest.json").read_text())["sessions"]
    assert [(s["from_epoch"], s["status"]) for s in sessions] == [(0, "finished"), (3, "finished")]
    resumed, uninterrupted = _weights(tmp_path / "run" / "weights.pt"), _weights(two_process_runs["nproc"] / "weights.pt")
    assert list(resumed) == list(uninterrupted)
    for key in resumed:
        torch.testing.assert_close(resumed[key], uninterrupted[key], rtol=1e-5, atol=2e-6)


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_the_reporting_ranks_exit_code_wins_even_when_torchrun_stops_it_first(tmp_path):
    # The quiet rank exits 1 at once; torchrun then terminates the reporting rank, here still busy
    # after printing its problem (as a real one may be, shutting Python down): the job exits 2.
    slow = FAILING_WORKER.replace("    sys.exit(2)", "    import time; time.sleep(60); sys.exit(2)")
    assert slow != FAILING_WORKER
    (tmp_path / "slow_worker.py").write_text(slow)
    launcher = "import sys; from specnn.launch import launch; sys.exit(launch(2, [], module='slow_worker'))"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, env=env, timeout=50,
                          cwd=tmp_path)
    assert done.stderr == "specnn: rank 1 of 2 failed:\ns.yaml:3:5: data.csv: cannot read shard.csv\n"
    assert done.returncode == 2


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_ctrl_c_sent_to_the_launcher_alone_exits_130_with_the_resume_line_and_no_traceback(small_iris, tmp_path):
    # `kill -INT <pid of specnn --nproc 2>`: torchrun's agent gets the signal and passes it on to the workers.
    import signal

    long = tmp_path / "long.yaml"
    long.write_text(small_iris.read_text().replace("epochs: 60", "epochs: 5000"))
    process = subprocess.Popen([sys.executable, "-m", "specnn", "train", str(long), "--nproc", "2", "--out", "run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    for line in process.stdout:
        if line.startswith("epoch"):
            break
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    # an interruption, said once, not "specnn: rank N of 2 failed:"; the command resumes on 2 processes again
    last = re.escape(str(Path("run") / "checkpoints" / "last.pt"))
    assert re.fullmatch(rf"interrupted: saved {last} \(epoch \d+(, batch \d+)?\); resume with: "
                        rf"specnn train {re.escape(str(long))} --resume run --nproc 2\n", stderr), stderr
