"""Fuzz `specnn validate` with generated broken specs and data files: no traceback, no hang, bounded memory.

Each case is a spec file (and sometimes a data file or an odd file kind) built by a seeded generator
aimed at one family of bad input: alias bombs, deep nesting, huge integers, huge repeats, control
characters, names that break generated code, values torch refuses, random edits of a valid spec,
odd files, broken CSVs. Cases run in worker processes (in-process through click's CliRunner, one
case after another) under a memory limit (RLIMIT_AS) with a per-case alarm. A case passes when
validate exits 0 or 2, every line it prints starts with a file name (``file:line:col: ...`` or
``file: ...``), no traceback is printed and it finishes within the time limit.

    python benchmarks/fuzz.py --cases 5000          # the README's Reliability numbers
    python benchmarks/fuzz.py --cases 300 --seed 1  # what tests/test_fuzz.py runs

Prints counts per family and every failing case (family, seed, what went wrong).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
CASE_SECONDS = 20  # a generous per-case limit: a slow CI core, not a hang
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
    del lines[rng.randrange(len(lines))]
    return "".join(lines)


def _swap_value(rng: random.Random, text: str) -> str:
    values = re.findall(r": ([^\s{}\[\],]+)", text)
    old = rng.choice(values)
    new = rng.choice(["[]", "{}", "null", "-1", "0", "''", "[1, [2]]", "{a: {b: c}}", "yes", "1e999",
                      "*x", "&x y", "!!python/object:os.system x", "!!binary aGk=", "2001-01-01", "0o777"])
    return text.replace(f": {old}", f": {new}", 1)


def _duplicate_line(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    return "".join(lines[:i + 1] + [lines[i]] + lines[i + 1:])


def _indent(rng: random.Random, text: str) -> str:
    lines = text.splitlines(keepends=True)
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
}
# Random edits cover the most ground: they get a larger share.
WEIGHTS = {name: (4 if name == "random edit" else 1) for name in FAMILIES}


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
        path = folder / name
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
# click's own answer to a path that is not a file (a folder): exit 2 with a usage line, no traceback.
USAGE = re.compile(r"^(Usage: |Try '|Error: Invalid value for|$)")


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


def _alarm(signum, frame):
    raise TimeoutError("case ran past its time limit")


def worker(seed: int, start: int, count: int, out) -> None:
    """Run cases start..start+count in this process; one JSON line each."""
    from click.testing import CliRunner

    from specnn.cli import cli

    runner = CliRunner()
    signal.signal(signal.SIGALRM, _alarm)
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(start, start + count):
            family, files = case(seed, index)
            folder = Path(tmp) / str(index)
            folder.mkdir()
            spec, with_data = write_case(files, folder)
            args = ["validate", *(["--data"] if with_data else []), str(spec)]
            began = time.perf_counter()
            signal.alarm(CASE_SECONDS)
            try:
                result = runner.invoke(cli, args, catch_exceptions=True)
                failure = judge(folder, result.exit_code, result.output, result.exception)
                code = result.exit_code
            except TimeoutError:
                failure, code = "hang: past the time limit", None
            finally:
                signal.alarm(0)
            print(json.dumps({"index": index, "family": family, "exit": code, "failure": failure,
                              "seconds": round(time.perf_counter() - began, 3)}), file=out, flush=True)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def run(seed: int, cases: int, processes: int = 1) -> list[dict]:
    """Every case's record, run in ``processes`` memory-limited worker processes."""
    per = -(-cases // processes)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    workers = [subprocess.Popen([sys.executable, __file__, "--worker", str(seed), str(start), str(min(per, cases - start))],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                preexec_fn=_limit_memory)
               for start in range(0, cases, per)]
    records = []
    for process in workers:
        stdout, stderr = process.communicate()
        records += [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
        if process.returncode != 0:
            records.append({"index": None, "family": "worker", "exit": process.returncode,
                            "failure": f"worker died (exit {process.returncode}): {stderr[-500:]}", "seconds": 0})
    return records


def report(records: list[dict]) -> str:
    by_family = Counter(r["family"] for r in records)
    exits = Counter((r["family"], r["exit"]) for r in records)
    failures = [r for r in records if r["failure"]]
    slowest = max(records, key=lambda r: r["seconds"])
    lines = [f"{len(records)} cases, {len(failures)} failures; slowest {slowest['seconds']:.2f} s "
             f"({slowest['family']} #{slowest['index']})"]
    for family, n in sorted(by_family.items()):
        lines.append(f"  {family:20} {n:5}  exit 2: {exits[(family, 2)]:5}  exit 0: {exits[(family, 0)]:5}")
    lines += [f"FAIL {r['family']} #{r['index']}: {r['failure']}" for r in failures]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.stdout)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--processes", type=int, default=2)
    options = parser.parse_args()
    began = time.perf_counter()
    records = run(options.seed, options.cases, options.processes)
    print(report(records))
    print(f"{time.perf_counter() - began:.0f} s in all")
    sys.exit(1 if any(r["failure"] for r in records) else 0)


if __name__ == "__main__":
    main()
