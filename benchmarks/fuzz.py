"""Fuzz specnn with generated broken specs and data files: every accepted spec trains or is refused cleanly.

Each case is a spec file (and sometimes a data file, an image folder or an odd file kind) built by a
seeded generator aimed at one family of input: alias bombs, deep nesting, huge integers, huge
repeats, control characters, names that break generated code, values torch refuses, random edits
of a valid spec, odd files, broken CSVs; random valid models from the catalogue; and damaged data
files of every source (CSV, NPZ, Parquet, image folders; ``fuzz_train.py``). Cases run in worker
processes (in-process through click's CliRunner, one case after another) under a memory limit
(RLIMIT_AS) with a per-case alarm.

Each case is validated (``--data`` when it has data files). A case validate accepts is then trained
(``specnn train SPEC --out FOLDER``, its epochs capped at 2); a data case is trained even when
``validate --data`` refused it, to see that training refuses it as cleanly. A finished run is then
used on the case's probe file (new rows, right or damaged): ``specnn predict`` and, for CSV and NPZ,
``specnn evaluate --data``; then one of its files is damaged (truncated, emptied, garbage, deleted)
and ``evaluate``, ``export``, ``show`` and ``predict`` must answer that cleanly too. A case passes when every
command exits 0 or 2, every problem line starts with a file name (``file:line:col: ...`` or
``file: ...``), no traceback is printed, a finished training says where its run is, training never
accepts what ``validate --data`` refused, and the case finishes within the time limit.

    python benchmarks/fuzz.py --cases 3000          # the README's Reliability numbers
    python benchmarks/fuzz.py --cases 300 --seed 1  # what tests/test_fuzz.py runs
    python benchmarks/fuzz.py --no-train            # validate only

Prints counts per family and every failing case (family, seed, what went wrong).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fuzz_train  # noqa: E402  (the generators of cases that reach training, beside this script)

ROOT = Path(__file__).resolve().parent.parent
CASE_SECONDS = 30  # a generous per-case limit (validate and a short training): a slow CI core, not a hang
TRAIN_EPOCHS = 2  # training is capped at this many epochs: the fuzzer looks for crashes, not accuracy
TRAIN_SAMPLES = 2000  # and synthetic data at this many samples (100,000 in batches of 8 take 25 s)
MEMORY_BYTES = 6 * 1024**3  # torch's import alone reserves ~2 GB of address space

BASE = """\
name: fuzz
seed: 0
model:
  input: [4]
  blocks:
    Pair:
      params: {width: 8}
      layers:
        - Linear: {out_features: $width}
        - ReLU:
  layers:
    - Linear: {out_features: 8}
      name: fc_in
    - block: Pair
      repeat: 2
    - Dropout: {p: 0.1}
    - Linear: {out_features: 3}
data: {synthetic: {shape: [4], classes: 3, samples: 32}, validation_split: 0.25}
loss: {CrossEntropyLoss: {label_smoothing: 0.0}}
optimizer: {SGD: {lr: 0.1, momentum: 0.9}}
train: {epochs: 1, batch_size: 8}
"""

CSV_SPEC = """\
name: fuzzcsv
model: {input: [2], layers: [{Linear: {out_features: 2}}]}
data: {csv: {path: data.csv, target: y}}
loss: {CrossEntropyLoss: }
optimizer: {Adam: {lr: 0.01}}
"""

# ---------------------------------------------------------------------------------------------
# Generators: rng -> {file name: text or bytes, or a special kind}; "spec.yaml" is validated.


def alias_bomb(rng: random.Random) -> dict:
    fan, levels = rng.randint(3, 12), rng.randint(6, 14)
    kind = rng.choice(["list", "map", "merge"])
    lines = ["a0: &a0 {k0: 1, k1: [1, 2]}" if kind == "merge" else "a0: &a0 [x, x, x]"]
    for i in range(1, levels):
        refs = [f"*a{i - 1}"] * fan
        if kind == "list":
            body = "[" + ", ".join(refs) + "]"
        elif kind == "map":
            body = "{" + ", ".join(f"k{j}: {r}" for j, r in enumerate(refs)) + "}"
        else:
            body = "{<<: [" + ", ".join(refs) + "]}"
        lines.append(f"a{i}: &a{i} {body}")
    return {"spec.yaml": BASE + "\n".join(lines) + "\n"}


def deep_nesting(rng: random.Random) -> dict:
    depth = rng.choice([65, 100, 999, 1001, 5000, 50_000])
    if rng.random() < 0.5:
        return {"spec.json": "[" * depth + "]" * depth}
    opener, closer = rng.choice([("[", "]"), ("{a: ", "}")])
    return {"spec.yaml": BASE.replace("seed: 0", "seed: " + opener * depth + "1" + closer * depth)}


def huge_number(rng: random.Random) -> dict:
    digits = rng.choice([99, 101, 4300, 4301, 10_000])
    number = rng.choice(["1" * digits, "-" + "9" * digits, "0x" + "f" * digits, "1" * digits + ".5",
                         "1e" + "9" * rng.randint(3, 400), ".inf", "-.inf", ".nan", "1e400"])
    key = rng.choice(["seed: 0", "lr: 0.1", "out_features: 8}\n      name", "samples: 32", "repeat: 2",
                      "batch_size: 8", "p: 0.1", "epochs: 1"])
    old_value = key.split(": ")[1].split("}")[0]
    return {"spec.yaml": BASE.replace(key, key.replace(old_value, number, 1), 1)}


def huge_size(rng: random.Random) -> dict:
    value = rng.choice(["1000000000000", "1e12", "1001", "2.0", "-1", "0", "100000", "2.5"])
    edits = [("repeat: 2", f"repeat: {value}"), ("samples: 32", f"samples: {value}"),
             ("shape: [4]", "shape: [" + ", ".join(["2"] * rng.randint(17, 5000)) + "]"),
             ("- Dropout: {p: 0.1}", f"- LSTM: {{hidden_size: 4, num_layers: {value}, output: last}}"),
             ("out_features: 8}\n      name", f"out_features: {value}}}\n      name"),
             ("width: 8", f"width: {value}")]
    old, new = rng.choice(edits)
    return {"spec.yaml": BASE.replace(old, new, 1)}


def control_chars(rng: random.Random) -> dict:
    char = rng.choice(["\\n", "\\r", "\\x1b[2J", "\\t", "\\x00", "\\u2028", "\\x7f", "\\x85"])
    where = rng.choice(["name: fuzz", "name: fc_in", "Pair:", "target"])
    if where == "Pair:":
        return {"spec.yaml": BASE.replace("block: Pair", f'block: "Pa{char}ir"')}
    if where == "target":
        return {"spec.yaml": BASE.replace("seed: 0", f'seed: "0{char}"')}
    key, value = where.split(": ")
    return {"spec.yaml": BASE.replace(where, f'{key}: "{value}{char}x"', 1)}


BAD_NAMES = ["class", "def", "lambda", "None", "True", "nn", "torch", "F", "self", "list", "print",
             "_modules", "training", "forward", "eval", "to", "__init__", "1abc", "a-b", "ä", "x" * 300]


def bad_identifier(rng: random.Random) -> dict:
    name = rng.choice(BAD_NAMES)
    where = rng.choice(["class_name", "node", "block", "input"])
    if where == "class_name":
        return {"spec.yaml": BASE.replace("  input: [4]", f"  class_name: '{name}'\n  input: [4]")}
    if where == "node":
        return {"spec.yaml": BASE.replace("name: fc_in", f"name: '{name}'")}
    if where == "block":
        return {"spec.yaml": BASE.replace("Pair", name if name.isidentifier() else f"'{name}'")}
    return {"spec.yaml": BASE.replace("  input: [4]", f"  inputs: {{'{name}': {{shape: [4]}}}}")}


def bad_value(rng: random.Random) -> dict:
    edits = [("seed: 0", "seed: -1"), ("seed: 0", "seed: 4294967296"), ("seed: 0", "seed: 18446744073709551616"),
             ("lr: 0.1", "lr: .inf"), ("lr: 0.1", "lr: 1e400"), ("lr: 0.1", "lr: -0.1"), ("lr: 0.1", "lr: .nan"),
             ("{SGD: {lr: 0.1, momentum: 0.9}}", "{SGD: {lr: 0.1, nesterov: true}}"),
             ("{SGD: {lr: 0.1, momentum: 0.9}}", "{Adam: {lr: 0.1, betas: [0.9, 1.0]}}"),
             ("{SGD: {lr: 0.1, momentum: 0.9}}", "{Adam: {lr: 0.1, betas: [.nan, 0.9]}}"),
             ("{SGD: {lr: 0.1, momentum: 0.9}}", "{Adam: {lr: 0.1, betas: [0.9]}}"),
             ("{label_smoothing: 0.0}", "{ignore_index: 1e30}"), ("{label_smoothing: 0.0}", "{weight: [1, 2]}"),
             ("{label_smoothing: 0.0}", "{label_smoothing: 2}"), ("validation_split: 0.25", "validation_split: 1"),
             ("batch_size: 8", "batch_size: 0"), ("p: 0.1", "p: 1.5"), ("classes: 3", "classes: 1"),
             ("synthetic: {shape: [4]", "synthetic: {shape: [4], vocab: 10"),
             ("epochs: 1", "epochs: 1, precision: fp16, device: cpu")]
    old, new = rng.choice(edits)
    return {"spec.yaml": BASE.replace(old, new, 1)}


def random_edit(rng: random.Random) -> dict:
    text = BASE
    for _ in range(rng.randint(1, 4)):
        text = rng.choice(EDITS)(rng, text)
    return {rng.choice(["spec.yaml", "spec.yaml", "spec.json"]): text}


def _cut(rng: random.Random, text: str) -> str:
    return text[:rng.randrange(len(text) + 1)]


def _garbage(rng: random.Random, text: str) -> str:
    at = rng.randrange(len(text) + 1)
    junk = "".join(rng.choice("{}[]:,-&*!|>'\"#%@`?\t\n \\x0") for _ in range(rng.randint(1, 6)))
    return text[:at] + junk + text[at:]


def _drop_line(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    del lines[rng.randrange(len(lines))]
    return "".join(lines)


def _swap_value(rng: random.Random, text: str) -> str:
    values = re.findall(r": ([^\s{}\[\],]+)", text)
    if not values:  # earlier edits cut every value away
        return text
    old = rng.choice(values)
    new = rng.choice(["[]", "{}", "null", "-1", "0", "''", "[1, [2]]", "{a: {b: c}}", "yes", "1e999",
                      "*x", "&x y", "!!python/object:os.system x", "!!binary aGk=", "2001-01-01", "0o777"])
    return text.replace(f": {old}", f": {new}", 1)


def _duplicate_line(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = rng.randrange(len(lines))
    return "".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])


def _indent(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    if not lines:
        return text
    i = rng.randrange(len(lines))
    lines[i] = rng.choice(["  ", "\t", " "]) + lines[i] if rng.random() < 0.7 else lines[i].lstrip()
    return "".join(lines)


EDITS = [_cut, _garbage, _drop_line, _swap_value, _duplicate_line, _indent]


def odd_file(rng: random.Random) -> dict:
    kind = rng.choice(["empty", "comments", "latin1", "bom", "nul", "null", "list", "scalar", "folder",
                       "fifo", "zero", "big", "two docs", "binary"])
    special = {"folder": "dir", "fifo": "fifo", "zero": "link:/dev/zero"}
    if kind in special:
        return {"spec.yaml": special[kind]}
    content = {
        "empty": b"", "comments": b"# nothing\n# here\n", "latin1": BASE.encode().replace(b"fuzz", b"f\xe9zz", 1),
        "bom": b"\xef\xbb\xbf" + BASE.encode(), "nul": BASE.encode()[:40] + b"\x00" + BASE.encode()[40:],
        "null": b"null\n", "list": b"- 1\n- 2\n", "scalar": b"hello\n",
        "big": b"#" * (10 * 1024 * 1024 + 1), "two docs": BASE.encode() + b"---\n" + BASE.encode(),
        "binary": bytes(rng.randrange(256) for _ in range(rng.randint(1, 2000))),
    }[kind]
    return {"spec.yaml": content}


def broken_csv(rng: random.Random) -> dict:
    rows = ["a,b,y", "1,2,0", "3,4,1", "5,6,0", "7,8,1"]
    kind = rng.choice(["repeated header", "float labels", "empty", "header only", "ragged", "text cell",
                       "no target", "latin1", "huge cell", "nul", "folder", "quote"])
    if kind == "repeated header":
        rows[0] = "a,a,y"
    elif kind == "float labels":
        rows[1:] = ["1,2,0.5", "3,4,1.5", "5,6,0.25", "7,8,1.0"]
    elif kind == "empty":
        rows = []
    elif kind == "header only":
        rows = rows[:1]
    elif kind == "ragged":
        rows[2] = "3,4,1,9,9"
    elif kind == "text cell":
        rows[3] = "5,six,0"
    elif kind == "no target":
        rows[0] = "a,b,label"
    elif kind == "huge cell":
        rows[2] = "3," + "9" * 5000 + ",1"
    elif kind == "quote":
        rows[2] = '3,"4,1'
    elif kind == "folder":
        return {"spec.yaml": CSV_SPEC, "data.csv": "dir", "--data": True}
    data: bytes = ("\n".join(rows) + "\n").encode() if rows else b""
    if kind == "latin1":
        data = data.replace(b"a,b", b"\xe9,b")
    if kind == "nul":
        data = data.replace(b"3,4", b"3\x00,4")
    return {"spec.yaml": CSV_SPEC, "data.csv": data, "--data": True}


FAMILIES: dict[str, Callable[[random.Random], dict]] = {
    "alias bomb": alias_bomb, "deep nesting": deep_nesting, "huge number": huge_number,
    "huge size": huge_size, "control characters": control_chars, "bad identifier": bad_identifier,
    "bad value": bad_value, "random edit": random_edit, "odd file": odd_file, "broken csv": broken_csv,
    "valid variant": fuzz_train.valid_variant, "graph variant": fuzz_train.graph_variant,
    "csv through train": fuzz_train.broken_csv_train,
    "npz through train": fuzz_train.broken_npz, "parquet through train": fuzz_train.broken_parquet,
    "image folder through train": fuzz_train.broken_images,
}
# The families whose cases are meant to reach training: valid models and sound specs over broken data.
TRAINED_FAMILIES = ("valid variant", "graph variant", "csv through train", "npz through train", "parquet through train",
                    "image folder through train")
# Random edits and valid variants cover the most ground: they get a larger share.
WEIGHTS = {name: {"random edit": 4, "valid variant": 4, "graph variant": 2}.get(name, 1) for name in FAMILIES}


def case(seed: int, index: int) -> tuple[str, dict]:
    rng = random.Random(f"{seed}:{index}")
    family = rng.choices(list(FAMILIES), weights=list(WEIGHTS.values()))[0]
    return family, FAMILIES[family](rng)


# ---------------------------------------------------------------------------------------------
# Running cases


def write_case(files: dict, folder: Path) -> tuple[Path, bool]:
    """Write a case's files; (the spec path, whether to validate with --data)."""
    spec = None
    for name, content in files.items():
        if name == "--data":
            continue
        path = folder / name  # a name may hold folders: pics/cat/0.png (its folders come first)
        if content == "dir":
            path.mkdir()
        elif content == "fifo":
            os.mkfifo(path)
        elif isinstance(content, str) and content.startswith("link:"):
            path.symlink_to(content.removeprefix("link:"))
        else:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        if name.startswith("spec."):
            spec = path
    return spec, bool(files.get("--data"))


LOCATED = re.compile(r"^(?P<file>[^:]+?)(:\d+(:\d+)?)?: \S")
# click's own answer to a path that is not a file (a folder): exit 2 with a usage line, no traceback;
# and the line saying which checkpoint's weights a command uses (--checkpoint), before its problem.
USAGE = re.compile(r"^(Usage: |Try '|Error: Invalid value for|using checkpoints/\w+\.pt \(epoch \d+\)$|$)")


def judge(folder: Path, exit_code: int, output: str, exception: BaseException | None) -> str | None:
    """What is wrong with one case's answer, or None when it is a clean answer."""
    if exception is not None and not isinstance(exception, SystemExit):
        return f"exception {type(exception).__name__}: {exception}"[:300]
    if "Traceback" in output:
        return "traceback printed"
    if exit_code not in (0, 2):
        return f"exit {exit_code}"
    for line in output.splitlines():
        if USAGE.match(line):
            continue
        match = LOCATED.match(line)
        if not match or not (match.group("file").startswith(str(folder)) or line.startswith("warning")):
            return f"unlocated line: {line[:200]!r}"
    return None


def judge_train(folder: Path, exit_code: int, output: str, exception: BaseException | None,
                validated: int) -> str | None:
    """What is wrong with one training's answer, or None when it is clean.

    Training prints epoch lines and notes besides problems; a refusal (exit 2) must end with a
    located problem, and what ``validate --data`` refused, training must refuse too.
    """
    if exception is not None and not isinstance(exception, SystemExit):
        return f"train: exception {type(exception).__name__}: {exception}"[:300]
    if "Traceback" in output:
        return "train: traceback printed"
    lines = output.splitlines()
    if exit_code == 0:
        if validated == 2:
            return "train accepted what validate --data refused"
        return None if any(line.startswith("run saved to") for line in lines) else "train: exit 0 without a run"
    if exit_code != 2:
        return f"train: exit {exit_code}: {lines[-1][:200] if lines else ''}"
    problems = [line for line in lines if LOCATED.match(line) and line.startswith(str(folder))]
    if not problems:
        return f"train: refused without a located problem: {lines[-1][:200] if lines else '(nothing printed)'!r}"
    return None


def _alarm(signum, frame):
    raise TimeoutError("case ran past its time limit")


def _capped_epochs(load_spec: Callable) -> Callable:
    """``load_spec`` with ``train.epochs`` capped at :data:`TRAIN_EPOCHS` (a random edit may ask for 511),
    and synthetic data at :data:`TRAIN_SAMPLES` samples (validate has judged the spec as written)."""
    def load(*args, **kwargs):
        spec = load_spec(*args, **kwargs)
        spec.train.epochs = min(spec.train.epochs, TRAIN_EPOCHS)
        if spec.data.kind == "synthetic":
            spec.data.args.__dict__["samples"] = min(spec.data.args.samples, TRAIN_SAMPLES)  # frozen args
        return spec
    return load


def run_case(runner, cli, files: dict, folder: Path, train: bool, rng: random.Random | None = None) -> dict:
    """Validate one case and, where validate accepts it (or it is a data case), train it."""
    rng = rng or random.Random(str(folder.name))
    spec, with_data = write_case(files, folder)
    result = runner.invoke(cli, ["validate", *(["--data"] if with_data else []), str(spec)], catch_exceptions=True)
    record = {"exit": result.exit_code, "train": None,
              "failure": judge(folder, result.exit_code, result.output, result.exception)}
    if not train or record["failure"] or not (result.exit_code == 0 or (with_data and result.exit_code == 2)):
        return record
    if with_data and result.exit_code == 2:  # a data problem validate found: is the spec itself sound?
        if runner.invoke(cli, ["validate", str(spec)], catch_exceptions=True).exit_code != 0:
            return record
    trained = runner.invoke(cli, ["train", str(spec), "--out", str(folder / "run"), "--quiet"], catch_exceptions=True)
    record["train"] = trained.exit_code
    record["failure"] = judge_train(folder, trained.exit_code, trained.output, trained.exception, result.exit_code)
    if record["failure"] is None and trained.exit_code == 0:
        record["failure"] = use_the_run(runner, cli, folder) or damaged_run(runner, cli, folder, rng)
    return record


RUN_DAMAGE = ["truncate", "empty", "garbage", "delete", "json list", "edit spec"]
RUN_FILES = ["weights.pt", "meta.json", "preprocess.json", "spec.yaml", "model.py", "checkpoints/last.pt",
             "checkpoints/best.pt", "manifest.json"]


def damaged_run(runner, cli, folder: Path, rng: random.Random) -> str | None:
    """One file of the finished run damaged, then ``predict``, ``evaluate``, ``export`` and ``show`` on it:
    each answers cleanly (exit 0, or 2 naming the file), and none of them trains or writes anything new."""
    run = folder / "run"
    victim, damage = run / rng.choice(RUN_FILES), rng.choice(RUN_DAMAGE)
    if not victim.exists():
        return None
    data = victim.read_bytes()
    if damage == "delete":
        victim.unlink()
    else:
        victim.write_bytes({"truncate": data[:len(data) // 2], "empty": b"", "garbage": bytes(range(256)) * 4,
                            "json list": b"[1, 2, 3]\n",
                            "edit spec": data.replace(b"out_features", b"out_feature", 1)}[damage])
    probe = next(iter(sorted(folder.glob("probe.*"))), None)
    checkpoint = ["--checkpoint", rng.choice(["best", "last"])] if rng.random() < 0.3 else []
    commands = [["evaluate", str(run), *checkpoint], ["export", str(run), "--format", "state_dict", "-o",
                                                       str(folder / "export.pt")], ["show", str(run)]]
    if probe is not None:
        commands.append(["predict", str(run), str(probe), "-o", str(folder / "predictions.csv"), *checkpoint])
    failed = first_failure(runner, cli, folder, commands)
    return None if failed is None else f"{failed[0]} after {damage} {victim.relative_to(run)}: {failed[1]}"


def first_failure(runner, cli, folder: Path, commands: list[list[str]]) -> tuple[str, str] | None:
    """The first of ``commands`` that does not answer cleanly (see :func:`judge`): its name and why."""
    for command in commands:
        result = runner.invoke(cli, command, catch_exceptions=True)
        failure = judge(folder, result.exit_code, result.output if result.exit_code else "", result.exception)
        if failure is not None:
            return command[0], failure
    return None


def use_the_run(runner, cli, folder: Path) -> str | None:
    """``predict`` (and ``evaluate --data`` for tables) on the case's probe file: right or broken, a clean answer."""
    run = str(folder / "run")
    for probe in sorted(folder.glob("probe.*")):
        commands = [["predict", run, str(probe), "-o", str(folder / "predictions.csv")]]
        if probe.suffix in (".csv", ".npz"):  # evaluate --data reads CSV and NPZ
            commands.append(["evaluate", run, "--data", str(probe), "--json", "-o", str(folder / "evaluation.json")])
        failed = first_failure(runner, cli, folder, commands)
        if failed is not None:
            return f"{failed[0]}: {failed[1]}"
    return None


def worker(seed: int, start: int, count: int, out, train: bool = True) -> None:
    """Run cases start..start+count in this process; one JSON line each."""
    from click.testing import CliRunner

    import specnn.spec.loader
    from specnn.cli import cli

    specnn.spec.loader.load_spec = _capped_epochs(specnn.spec.loader.load_spec)
    runner = CliRunner()
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(start, start + count):
            folder = Path(tmp) / str(index)
            folder.mkdir()
            began = time.perf_counter()
            signal.alarm(CASE_SECONDS)
            family = "harness"
            try:
                family, files = case(seed, index)
                record = run_case(runner, cli, files, folder, train, random.Random(f"{seed}:{index}:run"))
            except TimeoutError:
                record = {"exit": None, "train": None, "failure": "hang: past the time limit"}
            except Exception as error:  # the generator's own bug: one failed case, not a dead worker
                record = {"exit": None, "train": None, "failure": f"harness: {type(error).__name__}: {error}"}
            finally:
                signal.alarm(0)
            print(json.dumps({"index": index, "family": family, **record,
                              "seconds": round(time.perf_counter() - began, 3)}), file=out, flush=True)
            shutil.rmtree(folder, ignore_errors=True)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def run(seed: int, cases: int, processes: int = 1, train: bool = True) -> list[dict]:
    """Every case's record, run in ``processes`` memory-limited worker processes."""
    per = -(-cases // processes)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(seed), str(start), str(min(per, cases - start)),
                                 "train" if train else "validate"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=_limit_memory)
               for start in range(0, cases, per)]
    records = []
    for process in workers:
        stdout, stderr = process.communicate()
        records += [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        if process.returncode != 0:
            records.append({"index": None, "family": "worker", "exit": process.returncode, "train": None,
                            "failure": f"worker died (exit {process.returncode}): {stderr[-500:]}", "seconds": 0})
    return records


def report(records: list[dict]) -> str:
    by_family = Counter(r["family"] for r in records)
    exits = Counter((r["family"], r["exit"]) for r in records)
    trains = Counter((r["family"], r["train"]) for r in records)
    failures = [r for r in records if r["failure"]]
    slowest = max(records, key=lambda r: r["seconds"])
    lines = [f"{len(records)} cases, {len(failures)} failures; validate: {sum(r['exit'] == 0 for r in records)} "
             f"accepted, {sum(r['exit'] == 2 for r in records)} refused; train: "
             f"{sum(r['train'] is not None for r in records)} trained, {sum(r['train'] == 0 for r in records)} "
             f"finished, {sum(r['train'] == 2 for r in records)} refused; slowest {slowest['seconds']:.2f} s "
             f"({slowest['family']} #{slowest['index']})",
             f"  {'family':26} {'cases':>5}  {'validate: refused':>17} {'accepted':>8}   {'train: refused':>14} "
             f"{'finished':>8}"]
    for family, n in sorted(by_family.items()):
        lines.append(f"  {family:26} {n:5}  {exits[(family, 2)]:17} {exits[(family, 0)]:8}   "
                     f"{trains[(family, 2)]:14} {trains[(family, 0)]:8}")
    lines += [f"FAIL {r['family']} #{r['index']}: {r['failure']}" for r in failures]
    return "\n".join(lines)


def show(seed: int, index: int) -> None:
    """One case, run in this process: what each command printed (to reproduce a failure)."""
    from click.testing import CliRunner

    import specnn.spec.loader
    from specnn.cli import cli

    specnn.spec.loader.load_spec = _capped_epochs(specnn.spec.loader.load_spec)
    family, files = case(seed, index)
    folder = Path(tempfile.mkdtemp(prefix=f"fuzz-{index}-"))
    spec, with_data = write_case(files, folder)
    print(f"{family} #{index}: {folder}")
    run = str(folder / "run")
    probes = [[command, run, str(probe)] for probe in sorted(folder.glob("probe.*")) for command in ("predict",)]
    probes += [["evaluate", run, "--data", str(probe)] for probe in sorted(folder.glob("probe.*"))
               if probe.suffix in (".csv", ".npz")]
    for command in (["validate", *(["--data"] if with_data else []), str(spec)],
                    ["train", str(spec), "--out", run, "--quiet"], *probes):
        result = CliRunner().invoke(cli, command, catch_exceptions=True)
        print(f"$ specnn {' '.join(command)}  -> exit {result.exit_code}\n{result.output}")
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            import traceback
            traceback.print_exception(result.exception)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.stdout, train=sys.argv[5] == "train")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--no-train", action="store_true", help="validate only: train no accepted case")
    parser.add_argument("--show", type=int, metavar="INDEX", help="run one case here, printing its files and answers")
    options = parser.parse_args()
    if options.show is not None:
        show(options.seed, options.show)
        return
    began = time.perf_counter()
    records = run(options.seed, options.cases, options.processes, train=not options.no_train)
    print(report(records))
    print(f"{time.perf_counter() - began:.0f} s in all")
    sys.exit(1 if any(r["failure"] for r in records) else 0)


if __name__ == "__main__":
    main()
