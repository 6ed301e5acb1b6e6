"""A table bigger than memory: one epoch streamed (``data.loader.in_memory: false``) against in memory.

    python benchmarks/stream_table.py                 # 1,000,000 and 3,000,000 rows x 20 columns
    python benchmarks/stream_table.py --rows 300000   # quicker
    python benchmarks/stream_table.py --parquet       # also the same data as Parquet (row groups of 128k rows)

Each way runs in a fresh process: the data stage (``load_splits``: read, split 80/20, standard
scaling; streamed: the count, split and fit passes) and then one shuffled training epoch of
batches of 1024 through a linear model (``forward``, ``backward``, ``step``). Printed per way:
seconds for the data stage, the epoch's rows/s, and the peak resident memory above the process's
resident memory before the data stage, after the model's first step (Linux's ``VmHWM``), as a multiple of the float32 features
(rows x features x 4 bytes). With workers, the largest worker's peak (its ``VmHWM``, above the
same baseline; an upper bound, as a forked worker counts the pages it shares with its parent) is
printed too. The streamed peak must stay far below the float32 data, and flat as the table grows
(only the split's byte per row, and 8 while it is drawn, grow with it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from read_table import generate  # noqa: E402 (the same generated CSV as the reading benchmark)

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, time
import numpy, pyarrow, pyarrow.csv, pyarrow.parquet, torch
torch.set_num_threads(1)
from specnn.compiler import compile_spec
from specnn.runtime.data.prepare import load_splits
from specnn.runtime.data.streaming import place
from specnn.spec.loader import load_spec
def status_mb(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field + ":")).split()[1]) / 1024
spec = load_spec(sys.argv[1])
compiled = compile_spec(spec)
model = torch.nn.Linear(compiled.inputs["x"].shape[0], 1)
optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.zeros(1024, compiled.inputs["x"].shape[0])
torch.nn.functional.mse_loss(model(x), x[:, :1]).backward()  # torch's own first-step allocations
baseline = status_mb("VmRSS")  # the peak below counts the data, not torch's start-up
start = time.perf_counter()
splits = load_splits(spec, compiled.inputs, (1,))
train = place(splits.train, torch.device("cpu"), spec=spec, train=True)
prepared = time.perf_counter() - start
generator = torch.Generator().manual_seed(0)
from specnn.runtime.data.tensors import batches
rows, start = 0, time.perf_counter()
for (x,), y in batches(train, 1024, shuffle=True, generator=generator):
    loss = torch.nn.functional.mse_loss(model(x), y)
    optimizer.zero_grad(); loss.backward(); optimizer.step()
    rows += len(y)
epoch = time.perf_counter() - start
peak = status_mb("VmHWM")
def worker_peaks():
    # the loader's persistent workers, alive until the data goes: this process's children
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid():
                with open(f"/proc/{pid}/status") as f:
                    yield int(next(line for line in f if line.startswith("VmHWM:")).split()[1]) / 1024
        except (OSError, StopIteration, ValueError):
            continue
workers = max(worker_peaks(), default=None)
print(json.dumps({"prepare_s": prepared, "rows": rows, "epoch_s": epoch, "peak_mb": peak - baseline,
                  "worker_mb": workers - baseline if workers is not None else None}))
"""

SPEC = """\
name: stream-bench
model:
  input: [{features}]
  layers:
    - Linear: {{out_features: 1}}
data:
  {kind}: {{path: {path}, target: y}}
  validation_split: 0.2
  preprocess: {{scale: standard}}
  loader: {loader}
loss: {{MSELoss: {{}}}}
optimizer: {{Adam: {{lr: 0.001}}}}
"""


def measure(spec: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(spec)], capture_output=True, text=True, env=env,
                         check=False)
    if out.returncode != 0:
        raise SystemExit(f"{spec.name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,3000000", help="row counts, comma-separated: the streamed peak "
                        "should stay flat as the table grows")
    parser.add_argument("--features", type=int, default=19)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--parquet", action="store_true", help="also stream the same data as Parquet")
    args = parser.parse_args()
    print(f"cpus {os.cpu_count()}; peak: resident memory above the process's before the data stage")
    print(f"{'rows':>10} {'way':<28}{'data stage s':>13}{'epoch rows/s':>14}{'peak MB':>9}{'x data':>8}"
          f"{'worker MB':>11}")
    for rows in (int(r) for r in args.rows.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            measure_size(Path(folder), rows, args)


def measure_size(folder: Path, rows: int, args: argparse.Namespace) -> None:
    csv = generate(folder, rows, args.features)
    data_mb = rows * args.features * 4 / 2**20
    print(f"{rows:>10,} rows x {args.features + 1} columns: CSV {csv.stat().st_size / 2**20:.0f} MB, "
          f"float32 features {data_mb:.0f} MB")
    streamed = f"{{in_memory: false, workers: {args.workers}}}"
    ways = {"csv in memory": ("csv", csv, "{in_memory: true}"),
            "csv streamed, 0 workers": ("csv", csv, "{in_memory: false}"),
            f"csv streamed, {args.workers} workers": ("csv", csv, streamed)}
    if args.parquet:
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        parquet = folder / "big.parquet"
        pq.write_table(pacsv.read_csv(csv), parquet, row_group_size=1 << 17)
        ways["parquet in memory"] = ("parquet", parquet, "{in_memory: true}")
        ways[f"parquet streamed, {args.workers} workers"] = ("parquet", parquet, streamed)
    results = {}
    for name, (kind, path, loader) in ways.items():
        spec = folder / f"{len(results)}.yaml"
        spec.write_text(SPEC.format(features=args.features, kind=kind, path=path.name, loader=loader))
        results[name] = measure(spec)
    report(rows, results, data_mb)


def report(rows: int, results: dict[str, dict], data_mb: float) -> None:
    for name, r in results.items():
        worker = r["worker_mb"] is not None and "streamed" in name and " 0 workers" not in name
        print(f"{rows:>10} {name:<28}{r['prepare_s']:>13.1f}{r['rows'] / r['epoch_s']:>14,.0f}{r['peak_mb']:>9.0f}"
              f"{r['peak_mb'] / data_mb:>7.2f}x" + (f"{r['worker_mb']:>11.0f}" if worker else ""))
    memory = results["csv in memory"]
    for name, r in results.items():
        if "streamed" in name:
            print(f"ratio {rows} rows: peak {name} / float32 data {r['peak_mb'] / data_mb:.2f}x; "
                  f"/ in memory {r['peak_mb'] / memory['peak_mb']:.2f}x; "
                  f"epoch rows/s vs in memory {r['rows'] / r['epoch_s'] / (memory['rows'] / memory['epoch_s']):.2f}x")


if __name__ == "__main__":
    main()
