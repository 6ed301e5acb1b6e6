"""The run folder's files: their names, the one atomic writer, and the one ``metrics.jsonl`` reader.

Every stage writes into a run folder (data: ``preprocess.json``; train: the spec, the log,
checkpoints, weights; runs: exports, curves), so what they share lives here, below all of them.
A run folder (``runs/<name>/`` or ``--out``) holds::

    spec.yaml          the resolved spec: inferred arguments filled in, data paths absolute
    model.py           the generated nn.Module (needs only torch)
    metrics.jsonl/csv  one record per epoch
    weights.pt         the final state_dict (loads with torch.load(weights_only=True))
    meta.json          class names, task, input/output shapes, specnn and torch versions
    preprocess.json    the preprocessing fitted on the training split
    test.json          the test split's loss and metrics (data.test_split)
    checkpoints/       last.pt and best.pt
    model.onnx ...     the exports the spec asked for

Files a crash could leave torn are written to a temporary sibling, flushed and fsync'ed, renamed
over the target (atomic on POSIX and Windows), and the directory is fsync'ed so the rename itself
survives a power cut: a reader sees the old content or the new, never half of either.

A write the system refuses (a full disk, a read-only folder, a file size limit) is a
:class:`~specnn.errors.RunError` naming the file and the system's reason (:func:`writing`), never
a traceback; the training that meets one says what it kept (``runtime/train/disk_faults.py``).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union

from specnn.catalog.exporters import EXPORTERS
from specnn.errors import Problem, RunError
from specnn.errors.texts import expected

if TYPE_CHECKING:
    import torch

SPEC_FILE = "spec.yaml"
MODEL_FILE = "model.py"
METRICS_FILE = "metrics.jsonl"
CSV_FILE = "metrics.csv"
WEIGHTS_FILE = "weights.pt"
META_FILE = "meta.json"
PREPROCESS_FILE = "preprocess.json"
TEST_FILE = "test.json"  # data.test_split: measured once after training
PLOT_FILE = "curves.png"
CONFUSION_FILE = "confusion_matrix"  # .json (train and val) and .csv
CHECKPOINT_DIR = "checkpoints"
LAST, BEST = "last.pt", "best.pt"
TENSORBOARD_DIR = "tensorboard"
MANIFEST_FILE = "manifest.json"  # what made the run (runtime/train/manifest.py)

# What load_run needs; and every file and folder a training run (or `plot`/`export` into it) writes.
REQUIRED_FILES = (SPEC_FILE, WEIGHTS_FILE, META_FILE)
RUN_FILES = (
    SPEC_FILE, MODEL_FILE, METRICS_FILE, CSV_FILE, WEIGHTS_FILE, META_FILE, PREPROCESS_FILE, TEST_FILE, PLOT_FILE,
    f"{CONFUSION_FILE}.json", f"{CONFUSION_FILE}.csv", MANIFEST_FILE, *(d.filename for d in EXPORTERS.values()),
    # `specnn export RUN --checkpoint best|last` writes model-best.onnx, model-last.pt ...
    *(f"{stem}-{which}.{suffix}" for stem, suffix in (d.filename.split(".", 1) for d in EXPORTERS.values())
      for which in ("best", "last")),
)
RUN_FOLDERS = (CHECKPOINT_DIR, TENSORBOARD_DIR)
# Files named after a model output (a loss per output): confusion_matrix_<output>.json and .csv.
RUN_FILE_PATTERNS = (f"{CONFUSION_FILE}_*.json", f"{CONFUSION_FILE}_*.csv")


def run_files(folder: Path) -> list[str]:
    """The names of every run file ``folder`` may hold: ``RUN_FILES`` and those ``RUN_FILE_PATTERNS`` find."""
    found = sorted({p.name for pattern in RUN_FILE_PATTERNS for p in folder.glob(pattern)}) if folder.is_dir() else []
    return [*RUN_FILES, *found]

WRITE_FAILED = "cannot-write"  # the code of every problem a refused write becomes (see `writing`)
# What to do about the reasons a write is refused; the message names the reason itself.
WRITE_HINTS = {
    errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some space within your disk quota",
    errno.EFBIG: "raise the file size limit with ulimit -f", errno.EROFS: "choose a folder on a writable file system",
    errno.EACCES: "make the folder writable", errno.EPERM: "make the folder writable",
}
# torch.save reports a failed write of its zip writer as a RuntimeError, not an OSError.
TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed", "unexpected pos")


# ---------------------------------------------------------------------------------------------
# writing


@contextlib.contextmanager
def writing(path: Path, what: str = "") -> Iterator[None]:
    """Write ``path`` inside the block: a refused write becomes a RunError naming it (:func:`cannot_write`).

    Refused means an OSError (a full disk, no permission, a file size limit), or torch.save's
    RuntimeError for one (:data:`TORCH_WRITE_FAILURES`).
    """
    try:
        yield
    except OSError as error:
        raise cannot_write(path, error, what) from error
    except RuntimeError as error:
        if not any(text in str(error) for text in TORCH_WRITE_FAILURES):
            raise
        raise cannot_write(path, error, what) from error


def cannot_write(path: Union[str, Path], error: BaseException, what: str = "", verb: str = "write") -> RunError:
    """``path: cannot <verb> [<what>]: <the system's reason> (<what to do>)``.

    >>> str(cannot_write("runs/x/last.pt", OSError(errno.ENOSPC, "No space left on device"), "checkpoint"))
    'runs/x/last.pt: cannot write checkpoint: No space left on device (free some disk space)'
    """
    refused = write_refusal(error)
    reason = refused.strerror if refused is not None and refused.strerror else _first_line(error)
    hint = WRITE_HINTS.get(refused.errno) if refused is not None else None
    action = f"cannot {verb} {what}".rstrip()
    return RunError([Problem(WRITE_FAILED, f"{action}: {reason}", file=str(path), hint=hint)])


def write_refusal(error: Optional[BaseException]) -> Optional[OSError]:
    """The OSError behind ``error``: itself, or the one torch's writer met before raising its RuntimeError."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _first_line(error: BaseException) -> str:
    return next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)


def replace_atomically(path: Path, write: Callable[[Path], None], what: str = "") -> Path:
    """``write(temp)`` a temporary sibling of ``path`` (it must flush and fsync), then rename it over ``path``.

    The temporary file is removed if anything fails; the previous ``path``, if any, is unchanged.

    Raises:
        RunError: the system refused the write (:func:`writing`); ``what`` names the file in the message.
    """
    temp = temporary_sibling(path)  # same directory: os.replace is only atomic within one file system
    with writing(path, what):
        try:
            write(temp)
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(OSError):  # the write's own error is the one to report
                temp.unlink(missing_ok=True)
            raise
    _fsync_directory(path.parent)
    return path


def write_atomic(path: Path, data: Union[str, bytes]) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` atomically, making its folder if needed (RunError when refused)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with writing(path.parent, "the folder"):
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(temp: Path) -> None:
        with temp.open("xb") as file:  # "x": a fresh file with the usual permissions (umask)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())

    return replace_atomically(path, write)


def write_json(path: Path, data: Any) -> Path:
    """``data`` as indented JSON, atomically."""
    return write_atomic(path, json.dumps(data, indent=2) + "\n")


def temporary_sibling(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden, unused name next to ``path``: ``.<name>.<pid>.<hex>.tmp`` (see ``remove_stale_temp_files``)."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}")


# temporary_sibling's names, and the ``.data`` file the ONNX exporter may write beside one
TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.(?P<pid>[0-9]+)\.[0-9a-f]{8}\.[a-z]+(\.data)?")


def temporary_writer(name: str) -> Optional[int]:
    """The pid of the process that wrote a :func:`temporary_sibling` named ``name``; None for other names.

    >>> temporary_writer(".last.pt.4242.0badc0de.tmp"), temporary_writer("last.pt")
    (4242, None)
    """
    match = TEMPORARY_NAME.fullmatch(name)
    return int(match["pid"]) if match else None


def save_state_dict(model: "torch.nn.Module", path: Path) -> Path:
    """Save a model's state_dict (on the CPU, so it loads anywhere), atomically."""
    import torch

    state = {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_atomic(path, buffer.getvalue())


def write_spec(compiled: Any, spec: Any, folder: Path) -> Path:
    """Write the resolved spec (inferred arguments filled in) as ``spec.yaml``.

    Data paths become absolute, so the run folder's spec loads the same data from anywhere.
    """
    import yaml

    resolved = compiled.resolved_spec()
    data = resolved.get("data", {})
    data_args = data.get(spec.data.kind)
    absolute = lambda given: str((spec.base_dir / Path(given).expanduser()).resolve())  # noqa: E731
    if isinstance(data_args, dict) and "path" in data_args:
        data_args["path"] = absolute(data_args["path"])
    for key in ("validation_path", "test_path"):  # the explicit part files of a table source
        if data.get(key):
            data[key] = absolute(data[key])
    header = f"# Resolved spec of run '{spec.name}' (written by specnn): inferred arguments filled in.\n"
    return write_atomic(folder / SPEC_FILE, header + yaml.safe_dump(resolved, sort_keys=False))


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable. Windows cannot open a directory; its rename is journaled.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# reading


def read_metrics(folder: Union[str, Path], torn_tail: bool = False) -> list[dict[str, Any]]:
    """The per-epoch records of a run's ``metrics.jsonl``, in file order.

    Args:
        folder: the run folder.
        torn_tail: skip an unreadable LAST line (what a crash while appending leaves) instead of
            reporting it.

    Raises:
        RunError: the file is missing, or a line is not a JSON object (the problem's ``line``
            names it, and ``col`` where the JSON parser says).
    """
    path = Path(folder) / METRICS_FILE
    if not path.is_file():
        raise RunError([Problem("missing", "missing run file", file=str(path), hint="train the spec first")])
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if not (torn_tail and number == len(lines)):
                raise RunError([Problem("corrupt", f"not a JSON record: {error.msg}", file=str(path), line=number,
                                        col=error.colno)]) from None
            continue
        if isinstance(record, dict):
            records.append(record)
        elif not (torn_tail and number == len(lines)):
            raise RunError([Problem("corrupt", expected("a JSON object per line", record), file=str(path),
                                    line=number)])
    return records
