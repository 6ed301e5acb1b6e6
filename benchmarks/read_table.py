"""Reading a big CSV: specnn's table reader against pyarrow's own read of the same file.

    python benchmarks/read_table.py                  # 3,000,000 rows x 20 columns (~330 MB of CSV)
    python benchmarks/read_table.py --rows 200000    # quicker
    python benchmarks/read_table.py --parquet        # also the same data as Parquet

Each measurement runs in a fresh process (peak resident memory is Linux's ``VmHWM``), interleaved
``--repeat`` times; the best time and the lowest peak of each are kept. Printed:

* ``read``: seconds to read the file, and the ratio to pyarrow's ``read_csv`` (target: 1.5x);
* ``peak``: the process's peak resident memory above its resident memory before reading (the same
  imports: torch, numpy, pyarrow, specnn), as a
  multiple of the float32 data (rows x features x 4 bytes). ``specnn prepare`` is everything an
  in-memory run does before its first step: read, split 80/20, fit and apply standard scaling,
  tensors (target: 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The child processes: each prints one JSON line {seconds, peak_mb, baseline_mb}.
CHILD = r"""
import json, sys, time
import numpy, pyarrow, pyarrow.csv, pyarrow.parquet, torch
import specnn.runtime.data.prepare, specnn.runtime.data.sources, specnn.spec.loader
way, path, spec_path = sys.argv[1], sys.argv[2], sys.argv[3]
def status_mb(field):
    # VmHWM, the peak, starts afresh at exec; ru_maxrss would carry the parent's peak over fork.
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024
def peak_mb():
    return status_mb("VmHWM")
baseline = status_mb("VmRSS")  # resident now, not the imports' transient peak
start = time.perf_counter()
if way == "pyarrow":
    table = pyarrow.csv.read_csv(path)
elif way == "pyarrow-parquet":
    table = pyarrow.parquet.read_table(path)
elif way == "numpy":
    table = numpy.loadtxt(path, delimiter=",", skiprows=1, dtype=numpy.float32)
elif way == "specnn":
    from specnn.catalog.sources import CsvArgs, ParquetArgs
    from pathlib import Path
    p = Path(path)
    if p.suffix == ".parquet":
        arrays = specnn.runtime.data.sources.load_parquet(ParquetArgs(path=p.name, target="y"), p.parent)
    else:
        arrays = specnn.runtime.data.sources.load_csv(CsvArgs(path=p.name, target="y"), p.parent)
elif way == "specnn-prepare":
    from specnn.compiler import compile_spec
    from specnn.runtime.data.tensors import to_tensors
    spec = specnn.spec.loader.load_spec(spec_path)
    compiled = compile_spec(spec)
    splits = specnn.runtime.data.prepare.load_splits(spec, compiled.inputs, (1,))
    train = to_tensors(splits.train.features, splits.train.targets, torch.device("cpu"))
    val = to_tensors(splits.validation.features, splits.validation.targets, torch.device("cpu"))
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak_mb": peak_mb(), "baseline_mb": baseline}))
"""

SPEC = """\
name: read-bench
model:
  input: [{features}]
  layers:
    - Linear: {{out_features: 1}}
data:
  csv: {{path: {csv}, target: y}}
  validation_split: 0.2
  preprocess: {{scale: standard}}
loss: {{MSELoss: {{}}}}
optimizer: {{Adam: {{lr: 0.001}}}}
"""


def generate(folder: Path, rows: int, features: int, seed: int = 0) -> Path:
    """A CSV of ``rows`` x (``features`` + target) numbers with 3 decimals, written in blocks."""
    import numpy as np

    path = folder / "big.csv"
    rng = np.random.default_rng(seed)
    header = ",".join([f"x{i}" for i in range(features)] + ["y"])
    fmt = ",".join(["%.3f"] * (features + 1))
    with path.open("w") as f:
        f.write(header + "\n")
        for start in range(0, rows, 200_000):
            block = rng.standard_normal((min(200_000, rows - start), features + 1)).astype(np.float32)
            _write_block(f, block, fmt)
    return path


def _write_block(f, block, fmt: str) -> None:
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
        import io

        table = pa.table({f"c{i}": pa.array(block[:, i].round(3)) for i in range(block.shape[1])})
        buffer = io.BytesIO()
        pacsv.write_csv(table, buffer, pacsv.WriteOptions(include_header=False))
        f.write(buffer.getvalue().decode())
    except ImportError:
        import numpy as np

        np.savetxt(f, block, fmt=fmt)


def measure(way: str, path: Path, spec: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", CHILD, way, str(path), str(spec)], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{way} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=3_000_000)
    parser.add_argument("--features", type=int, default=19)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parquet", action="store_true", help="also compare on the same data as Parquet")
    parser.add_argument("--numpy", action="store_true", help="also time numpy.loadtxt (the fallback's reader)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        path = generate(folder, args.rows, args.features)
        spec = folder / "spec.yaml"
        spec.write_text(SPEC.format(features=args.features, csv=path.name))
        data_mb = args.rows * args.features * 4 / 2**20
        print(f"{args.rows:,} rows x {args.features + 1} columns: CSV {path.stat().st_size / 2**20:.0f} MB, "
              f"float32 features {data_mb:.0f} MB; cpus {os.cpu_count()}")
        ways = ["pyarrow", "specnn", "specnn-prepare"] + (["numpy"] if args.numpy else [])
        files = {way: path for way in ways}
        if args.parquet:
            import pyarrow.csv as pacsv
            import pyarrow.parquet as pq

            parquet = folder / "big.parquet"
            pq.write_table(pacsv.read_csv(path), parquet)
            ways += ["pyarrow-parquet", "specnn-parquet"]
            files.update({"pyarrow-parquet": parquet, "specnn-parquet": parquet})
        best: dict[str, dict] = {}
        for _ in range(args.repeat):
            for way in ways:
                result = measure(way.replace("specnn-parquet", "specnn"), files[way], spec)
                if way not in best or result["seconds"] < best[way]["seconds"]:
                    best[way] = {**result, "peak_mb": min(result["peak_mb"], best.get(way, result)["peak_mb"])}
        report(best, data_mb)


def report(best: dict[str, dict], data_mb: float) -> None:
    base = best["pyarrow"]["seconds"]
    print(f"{'way':<18}{'read s':>9}{'vs pyarrow':>12}{'peak MB':>10}{'x data':>8}")
    for way, r in best.items():
        reference = best["pyarrow-parquet"]["seconds"] if way == "specnn-parquet" else base
        extra = r["peak_mb"] - r["baseline_mb"]
        print(f"{way:<18}{r['seconds']:>9.2f}{r['seconds'] / reference:>11.2f}x{extra:>10.0f}{extra / data_mb:>7.2f}x")
    print(f"ratio read specnn/pyarrow {best['specnn']['seconds'] / base:.2f}x (target 1.5x)")
    prepare = best["specnn-prepare"]
    print(f"ratio peak prepare/data {(prepare['peak_mb'] - prepare['baseline_mb']) / data_mb:.2f}x (target 2x)")


if __name__ == "__main__":
    main()
