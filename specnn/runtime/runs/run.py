"""Run directories: what a training run leaves on disk, and loading it back.

A run folder (``runs/<name>/`` or ``--out``) holds::

    spec.yaml      the resolved spec: inferred arguments filled in, data paths absolute
    model.py       the generated nn.Module (needs only torch)
    metrics.jsonl  one JSON object per epoch
    weights.pt     the final state_dict (loads with torch.load(weights_only=True))
    meta.json      class names, task, input/output shapes, specnn and torch versions
    model.onnx ... the exports the spec asked for

It reloads from that folder alone, without pickle. Files a crash could leave torn are written
to a temporary file and renamed into place.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional, Union

import torch
import yaml

from specnn.errors import Problem, RunError, SpecError

SPEC_FILE = "spec.yaml"
MODEL_FILE = "model.py"
METRICS_FILE = "metrics.jsonl"
WEIGHTS_FILE = "weights.pt"
META_FILE = "meta.json"
REQUIRED_FILES = (SPEC_FILE, WEIGHTS_FILE, META_FILE)


@dataclass
class Run:
    """A trained run, in memory.

    Attributes:
        path: the run folder.
        spec: the resolved spec.
        compiled: its compiled model (source, shapes).
        model: the nn.Module in eval mode, with the run's weights.
        classes: label names for classification (index i is class i), else None.
        meta: the contents of ``meta.json``.
    """

    path: Path
    spec: Any
    compiled: Any
    model: torch.nn.Module
    classes: Optional[list[str]] = None
    meta: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# writing


def write_atomic(path: Path, data: Union[str, bytes]) -> Path:
    """Write a file so that a reader sees the old content or the new, never half of it."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with tmp.open("xb") as f:  # "x": a fresh file with the usual permissions (umask)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden, unused name next to ``path`` (same file system, so a rename is atomic)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


def save_state_dict(model: torch.nn.Module, path: Path) -> Path:
    """Save a model's state_dict (on the CPU, so it loads anywhere), atomically."""
    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_atomic(path, buffer.getvalue())


def write_spec(compiled: Any, spec: Any, directory: Path) -> Path:
    """Write the resolved spec (inferred arguments filled in) as ``spec.yaml``.

    Data paths become absolute, so the run folder's spec loads the same data from anywhere.
    """
    resolved = compiled.resolved_spec()
    data_args = resolved.get("data", {}).get(spec.data.kind)
    if isinstance(data_args, dict) and "path" in data_args:
        data_args["path"] = str((spec.base_dir / Path(data_args["path"]).expanduser()).resolve())
    header = f"# Resolved spec of run '{spec.name}' (written by specnn): inferred arguments filled in.\n"
    return write_atomic(directory / SPEC_FILE, header + yaml.safe_dump(resolved, sort_keys=False))


def write_json(path: Path, data: dict[str, Any]) -> Path:
    return write_atomic(path, json.dumps(data, indent=2) + "\n")


class MetricsLog:
    """``metrics.jsonl``: one JSON object per epoch, flushed as soon as it is written."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] = path.open("w", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


# ---------------------------------------------------------------------------------------------
# loading


def load_run(path: Union[str, Path]) -> Run:
    """Load a run folder: its spec, compiled model, weights (model in eval mode) and metadata.

    Only reads: nothing on disk is changed.

    Args:
        path: the run folder written by :func:`specnn.train`.

    Raises:
        RunError: the folder or one of its files is missing or corrupt (the file is named),
            or the weights do not fit the spec's model.
    """
    from specnn.compiler import build_model, compile_spec

    folder = Path(path)
    _check_files(folder)
    spec = _read_spec(folder / SPEC_FILE)
    try:
        compiled = compile_spec(spec)
    except SpecError as e:
        raise RunError(e.problems) from None
    model = build_model(compiled)
    _load_weights(model, folder / WEIGHTS_FILE)
    model.eval()
    meta = _read_meta(folder / META_FILE)
    return Run(folder, spec, compiled, model, meta.get("classes"), meta)


def run_problem(file: Path, message: str, code: str = "run", hint: Optional[str] = None) -> Problem:
    return Problem(code, message, file=str(file), hint=hint)


def _check_files(folder: Path) -> None:
    if not folder.is_dir():
        raise RunError([run_problem(folder, "not a run folder: it does not exist", hint="train a spec first")])
    missing = [run_problem(folder / name, "missing run file", "missing",
                           hint=f"a run folder holds {', '.join(REQUIRED_FILES)}")
               for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise RunError(missing)


def _read_spec(path: Path) -> Any:
    from specnn.spec.loader import load_spec

    try:
        return load_spec(path)
    except SpecError as e:
        raise RunError(e.problems) from None
    except Exception as e:  # noqa: BLE001 -- any unreadable spec is a corrupt run file
        raise RunError([run_problem(path, f"cannot read the run's spec: {e}", "corrupt")]) from None


def _load_weights(model: torch.nn.Module, path: Path) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- torch raises many kinds for a torn or foreign file
        raise RunError([run_problem(path, f"cannot load the weights: {_first_line(e)}", "corrupt")]) from None
    if not isinstance(state, dict):
        raise RunError([run_problem(path, f"expected a state_dict, found a {type(state).__name__}", "corrupt")])
    mismatch = _state_mismatch(model.state_dict(), state)
    if mismatch:
        raise RunError([run_problem(path, f"the weights do not fit the model in {SPEC_FILE}: {mismatch}", "mismatch")])
    model.load_state_dict(state)


def _state_mismatch(expected: dict, found: dict) -> str:
    """What keeps ``found`` from loading into a module whose state_dict is ``expected``; '' if nothing."""
    parts = []
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    if missing:
        parts.append("missing " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected " + ", ".join(unexpected))
    for key in expected:
        value = found.get(key)
        if key in found and (not isinstance(value, torch.Tensor) or value.shape != expected[key].shape):
            got = list(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            parts.append(f"{key} is {got}, the model needs {list(expected[key].shape)}")
    return "; ".join(parts)


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError([run_problem(path, f"cannot read the run's metadata: {e}", "corrupt")]) from None
    if not isinstance(meta, dict):
        raise RunError([run_problem(path, "expected a JSON object", "corrupt")])
    return meta


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
