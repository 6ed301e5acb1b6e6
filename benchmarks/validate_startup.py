"""A whole ``specnn validate examples/*.yaml`` process against the libraries it cannot do without.

Editors, pre-commit hooks and CI run ``specnn validate`` on many files, one process each time, so
what counts is the whole process: interpreter start, imports, reading, schema, shapes, lints and
code generation (specnn's modules already compiled to bytecode, as an installed package's are).
The baseline is a bare ``python -c "import pydantic, jsonschema, yaml"`` -- the schema check's own
imports, below which no validator written in Python can start. Target: within 2x of it. A second
floor adds one pydantic model, built and used: what pydantic itself costs before any validator's
own work. ``import torch`` is timed too, for scale: validate never imports it (tested in
``tests/test_validate_without_torch.py``).

The commands take turns (the order rotates each repeat), and each is timed twice: wall-clock
seconds, and the process's CPU seconds (user + system, from ``getrusage``: on a shared machine
other processes then do not count). Printed: the median of each, and the median of the
per-repeat ratios validate / bare and validate / model (neighbours in time share the machine's noise, so a paired
ratio is steadier).

Run: ``python benchmarks/validate_startup.py [--repeat 11]``.
Not a test: timings depend on the machine; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import compileall
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The bare imports and one pydantic model used once: what any validator built on pydantic models
# pays before its own work (`import pydantic` defers pydantic's model machinery, and building the
# first validator imports importlib.metadata to look for pydantic plugins).
ONE_MODEL = "import jsonschema, yaml\nfrom pydantic import BaseModel\nclass M(BaseModel):\n    x: int\nM(x=1)"


def commands() -> dict[str, list[str]]:
    specs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.yaml"))
    return {
        "bare": [sys.executable, "-c", "import pydantic, jsonschema, yaml"],
        "model": [sys.executable, "-c", ONE_MODEL],
        "validate": [sys.executable, "-m", "specnn", "validate", *specs],
        "torch": [sys.executable, "-c", "import torch"],
    }


def timed(command: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=11, help="timed runs of each command (default 11)")
    options = parser.parse_args()
    runs = commands()
    # As installed (pip compiles every module): under PYTHONDONTWRITEBYTECODE a checkout would
    # otherwise compile specnn's ~60 modules from source at every start, and that would be timed.
    compileall.compile_dir(ROOT / "specnn", quiet=1)
    for command in runs.values():  # warm the file cache: the first start reads every .pyc from disk
        timed(command)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    ratios: list[tuple[float, float]] = []
    names = list(runs)
    for repeat in range(options.repeat):
        order = names[repeat % len(names):] + names[: repeat % len(names)]
        this = {name: timed(runs[name]) for name in order}
        for name, seconds in this.items():
            times[name].append(seconds)
        ratios.append(tuple(this["validate"][i] / this[floor][i] for floor in ("bare", "model") for i in (0, 1)))
    count = len(runs["validate"]) - 4
    labels = {"bare": "python -c 'import pydantic, jsonschema, yaml'",
              "model": "the same, and one pydantic model built and used",
              "validate": f"specnn validate examples/*.yaml ({count} specs)", "torch": "python -c 'import torch'"}
    print(f"python {sys.version.split()[0]}, {options.repeat} interleaved repeats, median seconds: wall, CPU")
    for name, label in labels.items():
        wall, cpu = (statistics.median(t[i] for t in times[name]) for i in (0, 1))
        print(f"  {name:9} {label:48} {wall:6.3f}  {cpu:6.3f}")
    wall, cpu, model_wall, model_cpu = (statistics.median(r[i] for r in ratios) for i in range(4))
    print(f"  ratio validate / bare: {wall:.2f}x wall, {cpu:.2f}x CPU (target: within 2x)")
    print(f"  ratio validate / model: {model_wall:.2f}x wall, {model_cpu:.2f}x CPU")


if __name__ == "__main__":
    main()
