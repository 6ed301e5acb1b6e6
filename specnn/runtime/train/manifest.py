"""``manifest.json``: what made a run, so two runs that disagree can be told apart.

Written by rank 0 when a training session starts (status ``running``) and again when it ends
(``finished``, ``interrupted`` or ``failed``). It records the spec (sha256 of the file as written
and of the resolved spec), the sha256 of each data file read, the seed, the command line, the
versions of Python, torch, numpy, specnn and of every optional package the run uses, the device
and its name, the thread count, the determinism settings, and the git commit of the spec's
repository (with a dirty flag) when there is one. A resumed run keeps the first sessions and
appends its own, so the file tells the whole history of the folder.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from specnn.errors import RunError
from specnn.runtime.files import MANIFEST_FILE, write_json
from specnn.runtime.train.determinism import determinism_settings
from specnn.runtime.train.loop import TrainingInterrupted
from specnn.spec.train_rules import checkpoint_monitor, monitor_mode

FORMAT = 1
GIT_TIMEOUT_SECONDS = 5
CHUNK = 1 << 20


@contextlib.contextmanager
def recording(spec: Any, compiled: Any, folder: Path, device: torch.device, *, resumed: bool, epoch: int,
              main: bool = True) -> Iterator[None]:
    """Write the manifest around a training session: ``running`` now, then how it ended.

    Args:
        spec: the spec being trained.
        compiled: its compiled model (the resolved spec is hashed).
        folder: the run folder (it exists).
        device: this run's device.
        resumed: the session continues the run in ``folder``.
        epoch: epochs already trained when the session starts.
        main: this process writes run files (rank 0); other ranks record nothing.
    """
    if not main:
        yield
        return
    before = read_manifest(folder) if resumed else None
    manifest = start_session(folder, spec, compiled, device, resumed=resumed, epoch=epoch)
    status = "failed"
    try:
        yield
        status = "finished"
    except TrainingInterrupted:
        status = "interrupted"
        raise
    except KeyboardInterrupt:
        # Ctrl-C before the first epoch: "nothing was saved", so the run stays as it was
        # (a new run's files are taken back by the trainer).
        if before is not None:
            manifest = before
            status = before.get("status", "finished")
        else:
            status = "interrupted"
        raise
    finally:
        failing = sys.exc_info()[0] is not None
        try:
            if manifest is before:
                _write(folder, before)
            else:
                end_session(folder, manifest, status)
        except RunError:  # a full disk refuses this too: the error that stopped training is the one to report
            if not failing:
                raise


def start_session(folder: Path, spec: Any, compiled: Any, device: torch.device, *, resumed: bool,
                  epoch: int) -> dict[str, Any]:
    """Write ``manifest.json`` for a session that starts now; returns its contents."""
    previous = read_manifest(folder) if resumed else None
    manifest = describe(spec, compiled, device)
    manifest["sessions"] = (previous or {}).get("sessions", []) + [{
        "command": list(sys.argv),
        "started": _now(),
        "ended": None,
        "status": "running",
        "from_epoch": epoch,
        "threads": torch.get_num_threads(),
        "device": manifest["device"]["type"],
    }]
    manifest["status"] = "running"
    _write(folder, manifest)
    return manifest


def end_session(folder: Path, manifest: dict[str, Any], status: str) -> None:
    """Record how the current session ended (and the run's status with it)."""
    manifest["sessions"][-1].update(ended=_now(), status=status)
    manifest["status"] = status
    _write(folder, manifest)


def describe(spec: Any, compiled: Any, device: torch.device) -> dict[str, Any]:
    """Everything the manifest records about this spec, its data and this machine."""
    monitor = checkpoint_monitor(spec)
    return {
        "format": FORMAT,
        "name": spec.name,
        "spec": {
            "file": spec.file,
            "sha256": file_sha256(Path(spec.file)) if spec.file and Path(spec.file).is_file() else None,
            "resolved_sha256": resolved_sha256(compiled.resolved_spec()),
        },
        "data": [data_entry(path) for path in data_files(spec) if path.exists()],
        "seed": spec.seed,
        "epochs": spec.train.epochs,
        "monitor": {"name": monitor, "mode": monitor_mode(monitor, spec.train.checkpoint.mode)},
        "versions": versions(spec),
        "device": device_description(device),
        "deterministic": determinism_settings(bool(getattr(spec.train, "deterministic", False))),
        "git": git_state(spec.base_dir if spec.file else None),
    }


def read_manifest(folder: Path) -> Optional[dict[str, Any]]:
    """A run's manifest, or None when it has none (a run from before manifests) or it is unreadable."""
    path = Path(folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


# ---------------------------------------------------------------------------------------------
# the pieces


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def data_entry(path: Path) -> dict[str, Any]:
    """A data file's hash and size; for a folder (images), one hash over every file's path and hash."""
    if path.is_file():
        return {"path": str(path), "sha256": file_sha256(path), "bytes": path.stat().st_size}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode("utf-8"))
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": sum(f.stat().st_size for f in files),
            "files": len(files)}


def resolved_sha256(resolved: dict[str, Any]) -> str:
    """The resolved spec's hash: canonical JSON (sorted keys), so key order and comments do not count."""
    text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_files(spec: Any) -> list[Path]:
    """The file (csv, parquet, npz) or folder (images) the spec's data source reads; none for generated sets."""
    path = getattr(spec.data.args, "path", None)
    return [(spec.base_dir / Path(path).expanduser()).resolve()] if path else []


# Optional packages by what makes a run use them: (distribution, used?)
OPTIONAL = (
    ("scikit-learn", lambda spec: spec.data.kind == "sklearn"),
    ("tensorboard", lambda spec: spec.train.tensorboard),
    ("tqdm", lambda spec: True),  # the progress bar, when installed
    ("onnx", lambda spec: "onnx" in export_formats(spec)),
    ("onnxscript", lambda spec: "onnx" in export_formats(spec)),
    ("onnxruntime", lambda spec: "onnx" in export_formats(spec)),
    ("safetensors", lambda spec: "safetensors" in export_formats(spec)),
    ("pyarrow", lambda spec: spec.data.kind == "parquet"),
    ("Pillow", lambda spec: spec.data.kind == "images"),
)


def export_formats(spec: Any) -> set[str]:
    """The export formats a spec asks for (``onnx`` may come with its own tolerance: ``{onnx: {...}}``)."""
    return {e if isinstance(e, str) else next(iter(e.model_fields_set or {"onnx"})) for e in spec.export}


def versions(spec: Any) -> dict[str, str]:
    from specnn import __version__

    found = {"python": platform.python_version(), "specnn": __version__, "torch": torch.__version__,
             "numpy": np.__version__}
    for name, used in OPTIONAL:
        if used(spec):
            with contextlib.suppress(metadata.PackageNotFoundError):
                found[name] = metadata.version(name)
    return found


def device_description(device: torch.device) -> dict[str, Any]:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        extra = {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version()}
    elif device.type == "mps":
        name, extra = f"Apple MPS ({platform.machine()})", {}
    else:
        name, extra = platform.processor() or platform.machine() or "cpu", {}
    return {"type": device.type, "name": name, "threads": torch.get_num_threads(),
            "platform": platform.platform(), **extra}


def git_state(folder: Optional[Path]) -> Optional[dict[str, Any]]:
    """The commit checked out where the spec lives, and whether the work tree has changes; None without git."""
    if folder is None:
        return None
    commit = _git(folder, "rev-parse", "HEAD")
    if commit is None:
        return None
    status = _git(folder, "status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def _git(folder: Path, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.SubprocessError):  # no git, or it hung
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write(folder: Path, manifest: dict[str, Any]) -> None:
    write_json(Path(folder) / MANIFEST_FILE, manifest)
