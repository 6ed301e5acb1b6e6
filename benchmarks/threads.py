"""The iris quick start with 1, 2 and torch's default number of CPU threads.

Each trial is a whole ``specnn train examples/iris.yaml --quiet`` process (60 epochs, no exports),
timed on the wall clock, with ``OMP_NUM_THREADS`` unset so only ``--threads`` decides; the settings
take turns and the median of ``--repeat`` trials is printed with its ratio to one thread. ``auto``
is what a spec gets by default (``train.threads: auto``: one thread for a model this small).

Run: ``python benchmarks/threads.py [--repeat 5]``. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def spec_without_exports(folder: Path) -> Path:
    text = (ROOT / "examples" / "iris.yaml").read_text()
    text = text.replace("path: data/iris.csv", f"path: {ROOT / 'examples' / 'data' / 'iris.csv'}")
    path = folder / "iris.yaml"
    path.write_text(text.replace("export: [state_dict, onnx]", "export: []").replace("device: auto", "device: cpu"))
    return path


def trial(spec: Path, threads: str, out: Path) -> float:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "specnn", "train", str(spec), "--quiet", "--out", str(out), "--overwrite"]
    if threads != "auto":
        command += ["--threads", threads]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="trials per setting (default 3)")
    args = parser.parse_args()
    default = str(os.cpu_count() or 1)  # what torch starts with
    settings = ["1", "2", default, "auto"] if default not in ("1", "2") else ["1", "2", "auto"]
    times: dict[str, list[float]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory() as folder:
        spec = spec_without_exports(Path(folder))
        for repeat in range(args.repeat):
            for setting in settings[repeat % len(settings):] + settings[:repeat % len(settings)]:
                times[setting].append(trial(spec, setting, Path(folder) / "run"))
    one = statistics.median(times["1"])
    print(f"iris quick start (60 epochs, whole process, wall), {os.cpu_count()} CPUs, median of {args.repeat}")
    for setting in settings:
        label = {"auto": "auto (the default)", default: f"{default} (torch's default)"}.get(setting, setting)
        median = statistics.median(times[setting])
        print(f"  threads {label:<20} {median:6.2f} s   {median / one:5.2f}x one thread")


if __name__ == "__main__":
    main()
