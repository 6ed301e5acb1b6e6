"""A finished run in memory, and loading it back from its folder alone, without pickle.

What the folder holds, and how its files are written, is ``runtime/files.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from specnn.errors import Problem, RunError, SpecError
from specnn.errors.texts import expected
from specnn.runtime.files import CHECKPOINT_DIR, META_FILE, REQUIRED_FILES, SPEC_FILE, WEIGHTS_FILE


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
# loading


def load_run(path: Union[str, Path], checkpoint: Optional[str] = None) -> Run:
    """Load a run folder: its spec, compiled model, weights (model in eval mode) and metadata.

    Only reads: nothing on disk is changed.

    Args:
        path: the run folder written by :func:`specnn.train`.
        checkpoint: None for the run's weights (``weights.pt``: the kept epoch, the best one when
            early stopping restored it); ``best`` or ``last`` for the model weights of
            ``checkpoints/best.pt`` or ``checkpoints/last.pt``. ``meta["checkpoint"]`` and
            ``meta["checkpoint_epoch"]`` then say which were loaded.

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
    meta = _read_meta(folder / META_FILE)
    if checkpoint is None:
        _load_weights(model, folder / WEIGHTS_FILE)
    else:
        meta = {**meta, "checkpoint": checkpoint, "checkpoint_epoch": _load_checkpoint_weights(model, folder, checkpoint)}
    model.eval()
    return Run(folder, spec, compiled, model, meta["classes"], meta)


CHECKPOINT_CHOICES = ("best", "last")


def _load_checkpoint_weights(model: torch.nn.Module, folder: Path, which: str) -> int:
    """Load the model weights of ``checkpoints/<which>.pt``; the epoch they are from."""
    from specnn.runtime.train.checkpoint import load_checkpoint

    if which not in CHECKPOINT_CHOICES:
        raise RunError([run_problem(folder, f"unknown checkpoint '{which}'", hint="use best or last")])
    path = folder / CHECKPOINT_DIR / f"{which}.pt"
    if not path.is_file():
        raise RunError([run_problem(path, "checkpoint not found", "missing",
                                    hint="a run keeps best.pt and last.pt only when it wrote checkpoints")])
    saved = load_checkpoint(path)
    mismatch = _state_mismatch(model.state_dict(), saved["model"])
    if mismatch:
        raise RunError([run_problem(path, f"the weights do not fit the model in {SPEC_FILE}: {mismatch}", "mismatch")])
    model.load_state_dict(saved["model"])
    return saved["epoch"]


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
        raise RunError([run_problem(path, expected("a state_dict", state), "corrupt")])
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


# What readers of meta.json rely on; training has always written them.
META_KEYS = ("task", "classes", "samples")


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError([run_problem(path, f"cannot read the run's metadata: {e}", "corrupt")]) from None
    if not isinstance(meta, dict):
        raise RunError([run_problem(path, expected("a JSON object", meta), "corrupt")])
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise RunError([run_problem(path, f"the run's metadata lacks {', '.join(missing)}", "corrupt")])
    return meta


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
