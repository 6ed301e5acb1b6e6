"""How ``specnn validate`` scales with spec size, against the time of ``import torch``.

Generates specs of 10, 100, 1000 and 2000 nodes (alternating Linear / ReLU), times what
``specnn validate`` does -- ``load_spec`` (read, JSON Schema, pydantic) + ``compile_spec`` (graph,
shapes, lints, code generation) -- in-process, best of several runs, and prints the cost per node
at each size (flat = linear growth) and validate(1000) / import torch.

Run: ``python benchmarks/validate_scaling.py [--repeat 5] [--profile 1000]``.
Not a test: timings depend on the machine; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SIZES = (10, 100, 1000, 2000)


def spec_text(nodes: int, width: int = 16) -> str:
    """A valid spec with ``nodes`` layers: Linear, ReLU, Linear, ..., ending in a Linear."""
    layers = []
    for i in range(nodes):
        last = i == nodes - 1
        if i % 2 == 0 or last:
            layers.append(f"    - Linear: {{out_features: {3 if last else width}}}")
        else:
            layers.append("    - ReLU:")
    return "\n".join([
        "specnn: 1",
        f"name: scale-{nodes}",
        "model:",
        f"  input: [{width}]",
        "  layers:",
        *layers,
        "data: {synthetic: {shape: [16]}}",
        "loss: {CrossEntropyLoss: }",
        "optimizer: {Adam: {lr: 0.001}}",
        "",
    ])


def validate(path: Path) -> None:
    from specnn.compiler import compile_spec
    from specnn.spec.loader import load_spec

    compile_spec(load_spec(path))


def best_of(repeat: int, action) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def import_torch_seconds(repeat: int) -> float:
    """Wall time of a fresh ``python -c "import torch"`` (what any torch command pays first)."""
    command = [sys.executable, "-c", "import torch"]
    return best_of(repeat, lambda: subprocess.run(command, check=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per size; the best is kept")
    parser.add_argument("--profile", type=int, metavar="NODES", help="print a cProfile of one size instead")
    options = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="specnn-bench-"))
    paths = {}
    for nodes in (*SIZES, options.profile or SIZES[0]):
        paths[nodes] = folder / f"scale-{nodes}.yaml"
        paths[nodes].write_text(spec_text(nodes))
    validate(paths[SIZES[0]])  # warm up: imports torch, builds the schema once per process

    if options.profile:
        profiler = cProfile.Profile()
        profiler.runcall(validate, paths[options.profile])
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        return

    torch_seconds = import_torch_seconds(options.repeat)
    print(f"python -c 'import torch': {torch_seconds * 1000:8.1f} ms (best of {options.repeat})")
    print(f"{'nodes':>6} {'validate ms':>12} {'us / node':>10}")
    seconds = {}
    for nodes in SIZES:
        seconds[nodes] = best_of(options.repeat, lambda: validate(paths[nodes]))
        print(f"{nodes:>6} {seconds[nodes] * 1000:12.1f} {seconds[nodes] / nodes * 1e6:10.1f}")
    print(f"validate(1000) / import torch = {seconds[1000] / torch_seconds:.2f}")
    print(f"validate(2000) / validate(1000) = {seconds[2000] / seconds[1000]:.2f} (2.00 is linear)")


if __name__ == "__main__":
    main()
