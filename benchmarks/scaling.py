"""Data-parallel scaling: training throughput of `specnn train` on 1 and on N processes.

For each workload (the 20→64→64→3 MLP on synthetic rows at global batch 64, and the digits CNN at
global batch 64) this runs ``specnn train SPEC --nproc N`` as a user would, for N in
``--nproc`` (default 1 and 2), and prints the training throughput (training samples per second,
from the epoch times rank 0 logs in ``metrics.jsonl``, first epoch left out as warm-up, median
of the rest) and the whole-process wall time. The global batch is the same for every N, so each
process trains on ``64 / N`` samples per step: on a small CPU model the per-step overhead and
the gradient all-reduce dominate, and two processes that share two cores gain little or lose.

Run: ``python benchmarks/scaling.py [--nproc 1 2 4] [--epochs 4] [--threads 1]``.
On a multi-GPU machine the same script measures GPU scaling: ``--device cuda`` trains every
workload on CUDA, one GPU per process (nccl), e.g. ``--nproc 1 2 4 8``; for a multi-node job
run ``torchrun --nnodes ... -m specnn train SPEC`` on each node and read ``metrics.jsonl``.
Not a test: timings depend on the machine; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from train_speed import mlp_spec  # noqa: E402  (the same MLP workload as the speed benchmark)


def digits_spec() -> dict[str, Any]:
    """The digits CNN example (examples/digits_cnn.yaml) at global batch 64."""
    import yaml

    spec = yaml.safe_load((ROOT / "examples" / "digits_cnn.yaml").read_text())
    spec["train"]["batch_size"] = 64
    return spec


def workloads() -> dict[str, dict[str, Any]]:
    return {"mlp": mlp_spec(), "digits-cnn": digits_spec()}


def run_once(spec: dict[str, Any], nproc: int, folder: Path, threads: int) -> dict[str, float]:
    """``specnn train`` on ``nproc`` processes; throughput (samples/s) and whole-process seconds."""
    path = folder / f"{spec['name']}-{nproc}.json"
    path.write_text(json.dumps(spec))
    out = folder / f"run-{spec['name']}-{nproc}"
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "specnn", "train", str(path), "--out", str(out), "--quiet",
                    "--nproc", str(nproc)], check=True, env=env, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    seconds = statistics.median(r["seconds"] for r in records[1:]) if len(records) > 1 else records[0]["seconds"]
    samples = json.loads((out / "meta.json").read_text())["samples"]["train"]
    return {"samples_per_s": samples / seconds, "epoch_s": seconds, "wall_s": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=4, help="epochs per run (the first is warm-up)")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads per process")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (one GPU per process)")
    args = parser.parse_args()
    print(f"{'workload':<12}{'nproc':>6}{'samples/s':>12}{'epoch s':>10}{'speed-up':>10}{'process s':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in workloads().items():
            spec["train"].update(epochs=args.epochs, device=args.device, metrics=[])
            spec["data"]["validation_split"] = 0.0  # time training alone
            spec["export"] = []
            base = None
            for nproc in args.nproc:
                result = run_once(spec, nproc, Path(tmp), args.threads)
                base = base or result["samples_per_s"]
                print(f"{name:<12}{nproc:>6}{result['samples_per_s']:>12.0f}{result['epoch_s']:>10.3f}"
                      f"{result['samples_per_s'] / base:>9.2f}x{result['wall_s']:>11.1f}", flush=True)


if __name__ == "__main__":
    main()
