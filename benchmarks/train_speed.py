"""Time per training step: specnn's runner vs the textbook PyTorch loop vs the bare floor.

One run trains the same network (the spec's generated module, same seed, same data, Adam) in
each of these ways and prints the median time per optimizer step and its ratio to the floor:

* ``floor``     the whole data set as tensors, one ``randperm`` per epoch, batches by slicing;
* ``floor+acc`` the same, counting correct argmax predictions into a device tensor (the minimal
  hand-written accuracy: what ``specnn+acc`` should cost over ``specnn``);
* ``textbook``  a map-style ``Dataset`` + ``DataLoader(shuffle=True)`` + zero_grad/backward/step;
* ``specnn``    ``specnn.train`` itself (what a user gets) with ``train.metrics: []``;
* ``specnn+acc`` ``specnn.train`` with the default metrics (accuracy on a classifier).

Every trial trains one warm-up epoch (not timed) and then ``--epochs`` timed epochs; the ways
take turns (the order rotates each repeat) and the median over ``--repeat`` trials is reported,
which keeps a shared machine's noise out of the ratios. specnn is timed from one epoch line to
the next (its ``echo``), so everything it does per epoch counts: the loop, the epoch's loss
read-back, ``metrics.jsonl``/``.csv`` and the ``last.pt``/``best.pt`` checkpoints.

``--process`` also times whole processes (``specnn train SPEC --quiet`` against a plain script
that imports torch and trains the same network), ``specnn --help``, ``specnn validate`` and
``import specnn.cli``, and lists heavy optional packages that ``specnn train`` imports without
needing them. ``--features`` prices each optional ``train:`` feature per step on the MLP.

Run: ``python benchmarks/train_speed.py [--quick] [--device cuda] [--threads 1] [--process]``.
Not a test: timings depend on the machine; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
# What trials are timed with: CPU seconds of this process on the CPU (a shared machine's other
# processes do not count), wall seconds on CUDA (the GPU's work is not this process's CPU time).
CLOCK: list[Callable[[], float]] = [time.process_time]
HEAVY_OPTIONAL = ("onnx", "onnxruntime", "onnxscript", "sklearn", "matplotlib", "tensorboard", "tqdm", "safetensors")


@dataclass
class Workload:
    """A network and its data as a spec (a dict), and how many timed epochs make a fair trial."""

    name: str
    spec: dict[str, Any]
    epochs: int
    quick_epochs: int = 1

    def steps_per_epoch(self, samples: int) -> int:
        return math.ceil(samples / self.spec["train"]["batch_size"])


def mlp_spec(samples: int = 60_000) -> dict[str, Any]:
    """20 -> 64 -> 64 -> 3 on synthetic rows, batch 64."""
    return {
        "specnn": 1, "name": "bench-mlp", "seed": 0,
        "model": {"input": [20], "layers": [
            {"Linear": {"out_features": 64}}, {"ReLU": None},
            {"Linear": {"out_features": 64}}, {"ReLU": None},
            {"Linear": {"out_features": 3}},
        ]},
        "data": {"synthetic": {"task": "classification", "samples": samples, "shape": [20], "classes": 3},
                 "validation_split": 0},
        "loss": {"CrossEntropyLoss": None},
        "optimizer": {"Adam": {"lr": 0.001}},
        "train": {"epochs": 1, "batch_size": 64},
    }


def example_spec(file: str, **changes: Any) -> dict[str, Any]:
    """An example's spec with no validation split, no exports and ``changes`` in ``train``/``data``."""
    import yaml

    spec = yaml.safe_load((ROOT / "examples" / file).read_text(encoding="utf-8"))
    spec["data"]["validation_split"] = 0
    spec.pop("export", None)
    for key, value in changes.items():
        section, name = key.split("__")
        target = spec["data"][next(iter(k for k in spec["data"] if k != "validation_split"))] if section == "source" \
            else spec[section]
        target[name] = value
    return spec


def workloads(quick: bool) -> dict[str, Workload]:
    scale = 8 if quick else 1
    return {
        "mlp": Workload("mlp", mlp_spec(60_000 // scale), epochs=3),
        "cnn": Workload("cnn", example_spec("digits_cnn.yaml", train__batch_size=32), epochs=20),
        "lstm": Workload("lstm", example_spec("lstm_sequences.yaml", source__samples=8_000 // scale), epochs=3),
        "tiny": Workload("tiny", mlp_spec(512), epochs=2),  # the smoke test's: seconds, not minutes
    }


# ---------------------------------------------------------------------------------------------
# the three ways to train


@dataclass
class Setup:
    """One workload made concrete: the spec's file, its data on the device, and a fresh model."""

    workload: Workload
    folder: Path
    device: Any
    data: Any = None  # runtime.data.Tensors, the training split
    compiled: Any = None

    def spec(self, variant: str, epochs: int) -> Any:
        """The spec with ``epochs`` and the variant's ``train`` settings (see :func:`variant_train`)."""
        import yaml

        from specnn.spec.loader import load_spec

        spec = copy.deepcopy(self.workload.spec)
        spec["train"].update(epochs=epochs, device=str(self.device), **variant_train(variant))
        path = self.folder / f"{self.workload.name}-{variant}-{epochs}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        return load_spec(path)

    def fresh(self) -> tuple[Any, Any, Any]:
        """The model (seeded as specnn seeds it), Adam with the spec's arguments, and the loss."""
        from specnn.compiler import build_model
        from specnn.runtime.train.losses import make_loss
        from specnn.runtime.train.trainer import make_optimizer, seed_everything

        spec = self.spec("plain", 1)
        seed_everything(spec.seed)
        model = build_model(self.compiled).to(self.device)
        return model, make_optimizer(spec, model), make_loss(spec, self.device)


FEATURES = {
    "plain": {"metrics": []},
    "metrics": {},  # the default: accuracy on a classifier
    "bf16": {"metrics": [], "precision": "bf16"},
    "clip_grad": {"metrics": [], "clip_grad": {"norm": 1.0}},
    "accumulate": {"metrics": [], "accumulate": 2},
    "scheduler": {"metrics": [], "scheduler": {"OneCycleLR": {"max_lr": 0.01}}},
    "checkpoint_rare": {"metrics": [], "checkpoint": {"every": 1000, "monitor": "train_loss"}},
    "tensorboard": {"metrics": [], "tensorboard": True},
}


def variant_train(variant: str) -> dict[str, Any]:
    return copy.deepcopy(FEATURES[variant])


def prepare(workload: Workload, folder: Path, device: Any) -> Setup:
    """Load the workload's data once through specnn's own data path, on the device."""
    from specnn.compiler import compile_spec
    from specnn.runtime.train.trainer import prepare_data

    setup = Setup(workload, folder, device)
    spec = setup.spec("plain", 1)
    setup.compiled = compile_spec(spec)
    setup.data = prepare_data(spec, setup.compiled, device).train
    return setup


def synchronize(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_floor(setup: Setup, epochs: int, accuracy: bool = False) -> float:
    """Seconds for ``epochs`` epochs after a warm-up one: randperm, gather once, slice batches.

    ``accuracy``: also count correct argmax predictions into a device tensor, the minimal
    hand-written accuracy (``floor+acc``), read back once per epoch.
    """
    import torch

    model, optimizer, loss_fn = setup.fresh()
    (x_all,), y_all = setup.data.inputs, setup.data.y
    n, batch = len(y_all), setup.workload.spec["train"]["batch_size"]
    generator = torch.Generator().manual_seed(0)
    model.train()
    for epoch in range(epochs + 1):
        if epoch == 1:
            synchronize(setup.device)
            started = CLOCK[0]()
        order = torch.randperm(n, generator=generator).to(setup.device)
        x, y = x_all[order], y_all[order]
        correct = torch.zeros((), dtype=torch.int64, device=setup.device)
        for start in range(0, n, batch):
            output, target = model(x[start:start + batch]), y[start:start + batch]
            loss = loss_fn(output, target)
            if accuracy:
                correct += (output.argmax(1) == target).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if accuracy:
            correct.item()
    synchronize(setup.device)
    return CLOCK[0]() - started


class RowsDataset:
    """The textbook map-style data set: one sample per ``__getitem__``, collated by the DataLoader."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        return self.x[index], self.y[index]


def time_textbook(setup: Setup, epochs: int) -> float:
    """Seconds for ``epochs`` epochs after a warm-up one: Dataset + DataLoader(shuffle=True), batches moved to the device."""
    import torch
    from torch.utils.data import DataLoader

    model, optimizer, loss_fn = setup.fresh()
    (x_all,), y_all = setup.data.inputs, setup.data.y
    dataset = RowsDataset(x_all.cpu(), y_all.cpu())  # a data set lives on the host; batches go to the device
    loader = DataLoader(dataset, batch_size=setup.workload.spec["train"]["batch_size"], shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    model.train()
    for epoch in range(epochs + 1):
        if epoch == 1:
            synchronize(setup.device)
            started = CLOCK[0]()
        for x, y in loader:
            x, y = x.to(setup.device), y.to(setup.device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
    synchronize(setup.device)
    return CLOCK[0]() - started


def time_specnn(setup: Setup, epochs: int, variant: str = "plain") -> float:
    """Seconds from the warm-up epoch's line to the last epoch's line of ``specnn.train``.

    The interval holds every per-epoch cost too (loss read-back, metrics files, checkpoints).
    """
    import specnn

    spec = setup.spec(variant, epochs + 1)
    stamps: list[float] = []

    def echo(line: str) -> None:
        if line.startswith("epoch"):
            stamps.append(CLOCK[0]())

    with tempfile.TemporaryDirectory(dir=setup.folder) as out:
        specnn.train(spec, out=out, echo=echo, progress=False)
    if len(stamps) != epochs + 1:
        raise RuntimeError(f"expected {epochs + 1} epoch lines from specnn.train, got {len(stamps)}")
    return stamps[-1] - stamps[0]


WAYS: dict[str, Callable[[Setup, int], float]] = {
    "floor": time_floor,
    "floor+acc": lambda setup, epochs: time_floor(setup, epochs, accuracy=True),
    "textbook": time_textbook,
    "specnn": time_specnn,
    "specnn+acc": lambda setup, epochs: time_specnn(setup, epochs, "metrics"),
}


# ---------------------------------------------------------------------------------------------
# measuring: interleaved trials, medians, ratios


def measure(setup: Setup, ways: dict[str, Callable[[Setup, int], float]], epochs: int,
            repeat: int) -> dict[str, list[float]]:
    """Seconds per batch of each way in each repeat; the ways take turns, rotating each repeat."""
    names = list(ways)
    steps = epochs * setup.workload.steps_per_epoch(len(setup.data))
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(ways[name](setup, epochs) / steps)
    return times


def paired_ratio(times: dict[str, list[float]], name: str, baseline: str) -> float:
    """The median over repeats of ``name`` / ``baseline`` within one repeat (neighbours in time share the noise)."""
    return statistics.median(t / b for t, b in zip(times[name], times[baseline]))


def print_ratios(workload: Workload, samples: int, times: dict[str, list[float]], baseline: str = "floor") -> None:
    """One line per way: median µs per step and the paired ratio to ``baseline`` (tests read these lines)."""
    steps = workload.steps_per_epoch(samples)
    print(f"\n{workload.name}: {samples} samples, batch {workload.spec['train']['batch_size']}, {steps} steps/epoch")
    for name, values in times.items():
        print(f"  ratio {workload.name:<5} {name:<16} {statistics.median(values) * 1e6:9.1f} us/step  "
              f"{paired_ratio(times, name, baseline):6.3f}x {baseline}")


def run_workload(workload: Workload, args: argparse.Namespace, folder: Path, device: Any) -> None:
    setup = prepare(workload, folder, device)
    epochs = workload.quick_epochs if args.quick else args.epochs or workload.epochs
    print_ratios(workload, len(setup.data), measure(setup, WAYS, epochs, args.repeat))


def run_features(args: argparse.Namespace, folder: Path, device: Any) -> None:
    """What each optional ``train:`` feature adds per step on the MLP, against ``metrics: []``."""
    workload = workloads(args.quick)["tiny" if args.quick else "mlp"]
    setup = prepare(workload, folder, device)
    ways = {name: (lambda s, e, v=name: time_specnn(s, e, v)) for name in FEATURES
            if not (name == "bf16" and device.type == "cpu" and not args.bf16)}
    epochs = workload.quick_epochs if args.quick else args.epochs or workload.epochs
    times = measure(setup, ways, epochs, args.repeat)
    plain = statistics.median(times["plain"])
    print(f"\nfeature costs on {workload.name} (specnn.train, each alone on top of metrics: []; per batch)")
    for name, values in times.items():
        extra = (paired_ratio(times, name, "plain") - 1) * plain * 1e6
        print(f"  feature {name:<16} {statistics.median(values) * 1e6:9.1f} us/step  {extra:+8.1f} us/step")


# ---------------------------------------------------------------------------------------------
# whole processes and start-up


PLAIN_SCRIPT = """
import sys, torch
torch.manual_seed(0)
epochs, samples = int(sys.argv[1]), int(sys.argv[2])
x, y = torch.randn(samples, 20), torch.randint(0, 3, (samples,))
model = torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                            torch.nn.Linear(64, 3))
optimizer, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()
for epoch in range(epochs):
    order = torch.randperm(samples)
    xs, ys = x[order], y[order]
    for start in range(0, samples, 64):
        loss = loss_fn(model(xs[start:start + 64]), ys[start:start + 64])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
torch.save(model.state_dict(), sys.argv[3])
"""


def wall(command: list[str], cwd: Path) -> float:
    """Wall seconds of one process (it starts torch, so CPU seconds would hide nothing)."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return time.perf_counter() - started


def run_process(args: argparse.Namespace, folder: Path) -> None:
    """Whole-process seconds (median of interleaved repeats) and the train path's heavy imports."""
    epochs = 1 if args.quick else 2
    samples = mlp_spec()["data"]["synthetic"]["samples"] // (8 if args.quick else 1)
    spec = mlp_spec(samples)
    spec["train"].update(epochs=epochs, device="cpu")
    import yaml

    spec_file = folder / "process-mlp.yaml"
    spec_file.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    script = folder / "plain_train.py"
    script.write_text(PLAIN_SCRIPT, encoding="utf-8")
    python = sys.executable
    commands = {
        "python -c 'import torch'": [python, "-c", "import torch"],
        "python -c 'import specnn.cli'": [python, "-c", "import specnn.cli"],
        "specnn --help": [python, "-m", "specnn", "--help"],
        "specnn validate SPEC": [python, "-m", "specnn", "validate", str(spec_file)],
        f"plain torch script ({epochs} ep)": [python, str(script), str(epochs), str(samples), str(folder / "plain.pt")],
        f"specnn train SPEC --quiet ({epochs} ep)": [python, "-m", "specnn", "train", str(spec_file), "--quiet",
                                                     "--out", "{fresh}"],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    names = list(commands)
    for r in range(args.repeat):
        for name in names[r % len(names):] + names[:r % len(names)]:
            fresh = str(folder / f"process-run-{r}")  # a new run folder each time, as a user's first run
            times[name].append(wall([fresh if part == "{fresh}" else part for part in commands[name]], folder))
    print(f"\nwhole processes ({samples} MLP rows; median of {args.repeat})")
    for name, values in times.items():
        print(f"  process {name:<36} {statistics.median(values):7.2f} s")
    print(f"  imports specnn.cli: {import_table(python, ['-c', 'import specnn.cli'], folder)}")
    leaked = heavy_imports(python, ["-m", "specnn", "train", str(spec_file), "--quiet", "--out",
                                    str(folder / "process-run-importtime")], folder)
    print(f"  heavy optional packages imported by 'specnn train' (no export, no tensorboard), beyond torch's own: {', '.join(leaked) or 'none'}")


def importtime(python: str, command: list[str], cwd: Path) -> dict[str, int]:
    """``python -X importtime``: cumulative microseconds per top-level-or-nested module."""
    result = subprocess.run([python, "-X", "importtime", *command], cwd=cwd, check=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    modules = {}
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                modules[name.strip()] = int(cumulative)
    return modules


def import_table(python: str, command: list[str], cwd: Path) -> str:
    modules = importtime(python, command, cwd)
    shown = [name for name in ("specnn.cli", "torch", "pydantic", "jsonschema", "yaml", "click") if name in modules]
    return ", ".join(f"{name} {modules[name] / 1e3:.0f} ms" for name in shown) + \
        ("" if "torch" in modules else " (no torch)")


def heavy_imports(python: str, command: list[str], cwd: Path) -> list[str]:
    """Heavy optional packages ``command`` imports beyond those ``import torch`` itself imports (tqdm)."""
    modules = importtime(python, command, cwd)
    by_torch = importtime(python, ["-c", "import torch"], cwd)
    return [name for name in HEAVY_OPTIONAL if name in modules and name not in by_torch]


# ---------------------------------------------------------------------------------------------
# entry point


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workload", action="append", choices=["mlp", "cnn", "lstm", "tiny"],
                        help="repeatable; default: mlp, cnn, lstm")
    parser.add_argument("--quick", action="store_true", help="a short smoke run: smaller data, one timed epoch")
    parser.add_argument("--repeat", type=int, default=None, help="trials per way (default 5; 1 with --quick)")
    parser.add_argument("--epochs", type=int, default=None, help="timed epochs per trial (default: per workload)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ...")
    parser.add_argument("--clock", choices=["auto", "cpu", "wall"], default="auto",
                        help="trial timer: process CPU time (auto on the CPU) or wall time (auto on CUDA)")
    parser.add_argument("--process", action="store_true", help="also time whole processes and start-up")
    parser.add_argument("--features", action="store_true", help="also price each optional train: feature per step")
    parser.add_argument("--bf16", action="store_true", help="include bf16 in --features on the CPU (slow there)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 5)
    args.workload = args.workload or ["mlp", "cnn", "lstm"]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the --process subprocesses get the same
    import torch

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    CLOCK[0] = time.process_time if args.clock == "cpu" or (args.clock == "auto" and device.type == "cpu") \
        else time.perf_counter
    print(f"torch {torch.__version__}, device {device}, torch.get_num_threads() = {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs, clock {CLOCK[0].__name__}, repeat {args.repeat}, warm-up epoch excluded; "
          "us/step: median; ratio: median of the per-repeat ratios")
    with tempfile.TemporaryDirectory(prefix="specnn-bench-") as tmp:
        folder = Path(tmp)
        for name in args.workload:
            run_workload(workloads(args.quick)[name], args, folder, device)
        if args.features:
            run_features(args, folder, device)
        if args.process:
            run_process(args, folder)


if __name__ == "__main__":
    main()
