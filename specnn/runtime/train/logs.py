"""What a run reports per epoch: ``metrics.jsonl``, ``metrics.csv``, TensorBoard, a progress bar.

Records are written once per epoch and flushed, so a crashed run keeps every finished epoch.
A resumed run first drops the records after its checkpoint's epoch (written after the last
checkpoint by the run that stopped), rewriting the files atomically; before anything is written,
:func:`check_resumable_log` refuses a run whose ``metrics.jsonl`` lacks epochs the checkpoint has.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import IO, Any, Optional

from specnn.errors import RunError, SpecError, spec_problem
from specnn.errors.texts import needs_extra
from specnn.runtime.files import CONFUSION_FILE, CSV_FILE, METRICS_FILE, TENSORBOARD_DIR, read_metrics, write_atomic
from specnn.runtime.files import write_json, writing


class EpochLogs:
    """``metrics.jsonl`` and ``metrics.csv`` (header: the first record's keys), TensorBoard optional.

    Args:
        folder: the run folder.
        resume_epoch: None for a new run (files start empty); else keep the records up to this epoch.
        tensorboard: also write event files under ``folder/tensorboard``.
    """

    def __init__(self, folder: Path, resume_epoch: Optional[int] = None, tensorboard: bool = False) -> None:
        self.jsonl_path, self.csv_path = folder / METRICS_FILE, folder / CSV_FILE
        kept = _records_up_to(self.jsonl_path, resume_epoch) if resume_epoch is not None else []
        self.header: Optional[list[str]] = list(kept[0]) if kept else None
        write_atomic(self.jsonl_path, "".join(json.dumps(r) + "\n" for r in kept))
        write_atomic(self.csv_path, _csv_text(self.header, kept) if kept else "")
        with writing(folder):
            self._jsonl: IO[str] = self.jsonl_path.open("a", encoding="utf-8")
            self._csv: IO[str] = self.csv_path.open("a", encoding="utf-8", newline="")
        self._board = tensorboard_writer(folder / TENSORBOARD_DIR) if tensorboard else None

    def write(self, record: dict[str, Any]) -> None:
        """Append one epoch's record (a RunError naming the file when the system refuses it)."""
        with writing(self.jsonl_path):
            self._jsonl.write(json.dumps(record) + "\n")
            self._jsonl.flush()
        with writing(self.csv_path):
            if self.header is None:
                self.header = list(record)
                self._csv.write(_csv_text(self.header, []))
            self._csv.write(_csv_text(None, [record], self.header))
            self._csv.flush()
        if self._board is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self._board.add_scalar(key, value, record["epoch"])
            self._board.flush()

    def close(self, failing: bool = False) -> None:
        """Close the files; ``failing``: training already stopped on an error, which a failing close must not hide.

        A record that a full disk refused is still in the file's buffer, and closing tries to write
        it again; only when nothing else failed is that worth reporting (it was the last record).
        """
        for path, handle in ((self.jsonl_path, self._jsonl), (self.csv_path, self._csv)):
            try:
                with writing(path):
                    handle.close()  # the buffer is dropped even when writing it fails
            except RunError:
                if not failing:
                    raise
        if self._board is not None:
            self._board.close()


def write_confusion(folder: Path, classes: Any, matrices: dict[str, Any]) -> None:
    """``confusion_matrix.json`` (train and val) and ``.csv`` (val, else train), rows = targets.

    With several outputs, ``classes`` maps each classifier output to its class names and
    ``matrices`` is keyed ``train_<output>``: one ``confusion_matrix_<output>`` pair per output.
    """
    if not matrices:
        return
    if isinstance(classes, dict):
        for output, names in classes.items():
            mine = {split: matrices[f"{split}_{output}"] for split in ("train", "val") if f"{split}_{output}" in matrices}
            if mine:
                _write_confusion(folder, f"{CONFUSION_FILE}_{output}", names, mine)
        return
    _write_confusion(folder, CONFUSION_FILE, classes, matrices)


def _write_confusion(folder: Path, name: str, classes: Optional[list[str]], matrices: dict[str, Any]) -> None:
    write_json(folder / f"{name}.json", {"classes": classes, **matrices})
    matrix = matrices.get("val", matrices.get("train"))
    names = classes or [str(i) for i in range(len(matrix))]
    rows = [",".join(["target\\predicted", *names])]
    rows += [",".join([name, *map(str, row)]) for name, row in zip(names, matrix)]
    write_atomic(folder / f"{name}.csv", "\n".join(rows) + "\n")


def check_resumable_log(folder: Path, epoch: int) -> None:
    """Before a resumed run writes: ``metrics.jsonl`` must hold one record for each epoch 1..``epoch``.

    The log is the run's only record of the epochs its checkpoint has trained; continuing
    without it would start a log at epoch ``epoch + 1`` that ``plot`` and readers take for the
    whole run. A torn last line (a crash while appending after the checkpoint) is ignored.

    Raises:
        RunError: the file is missing, a record is unreadable, or epochs are missing; the
            message names the file. Nothing on disk changes.
    """
    path = folder / METRICS_FILE
    if not path.is_file():
        raise _incomplete(path, f"the run is incomplete without this file (its checkpoint is at epoch {epoch})")
    epochs = {record.get("epoch") for record in _read_records(path)}
    missing = [e for e in range(1, epoch + 1) if e not in epochs]
    if missing:
        listed = ", ".join(map(str, missing[:5])) + (", ..." if len(missing) > 5 else "")
        are = f"epochs {listed} are" if len(missing) > 1 else f"epoch {listed} is"
        raise _incomplete(path, f"the run is incomplete: {are} missing from this file (its checkpoint is at "
                                f"epoch {epoch})")


def _read_records(path: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; a torn last line (a crash while appending) is skipped.

    Raises:
        RunError: another line is not a JSON record.
    """
    try:
        return read_metrics(path.parent, torn_tail=True)
    except RunError as error:
        raise _incomplete(path, f"line {error.problems[0].line} is not a JSON record") from None


def _incomplete(path: Path, what: str) -> RunError:
    return RunError.single("run-incomplete", f"cannot resume: {what}", file=str(path),
                           hint="restore the file from a backup, or start a new run")


def check_tensorboard(spec: Any) -> None:
    """Before any file is written: ``train.tensorboard`` without the package is a located SpecError."""
    import importlib.util

    if not spec.train.tensorboard:
        return
    try:
        found = importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise _missing_tensorboard(spec)


def tensorboard_writer(folder: Path, spec: Any = None) -> Any:
    """A ``SummaryWriter`` (imported only now); a SpecError (located when ``spec`` is given) when tensorboard is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise _missing_tensorboard(spec) from None
    return SummaryWriter(log_dir=str(folder))


def _missing_tensorboard(spec: Any) -> SpecError:
    message, hint = needs_extra("TensorBoard logging", "tensorboard")
    return SpecError([spec_problem(spec, ("train", "tensorboard"), message, code="missing-extra", hint=hint)])


def _records_up_to(path: Path, epoch: int) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [r for r in _read_records(path) if r.get("epoch", 0) <= epoch]


def _csv_text(header: Optional[list[str]], records: list[dict[str, Any]], fields: Optional[list[str]] = None) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=header or fields or [], extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(records)
    return buffer.getvalue()


def format_epoch(record: dict[str, Any], epochs: int) -> str:
    """``epoch  12/60  train_loss 0.4123  train_accuracy 0.950  val_loss 0.3987  ...  lr 0.001  (0.02s)``."""
    width = len(str(epochs))
    parts = [f"epoch  {record['epoch']:>{width}}/{epochs}"]
    for key, value in record.items():
        if key in ("epoch", "seconds", "lr") or not isinstance(value, (int, float)):
            continue
        parts.append(f"{key} {value:.4f}" if "loss" in key.split("_") else f"{key} {value:.3f}")  # loss_<output> too
    if "lr" in record:
        parts.append(f"lr {record['lr']:.3g}")
    return "  ".join(parts) + f"  ({record['seconds']:.2f}s)"


class Progress:
    """A tqdm bar over one epoch's batches with the loss and samples/s; nothing when not shown.

    The bar reads the loss back from the device only when it redraws (tqdm's ``miniters`` and
    ``mininterval``), so it costs one host sync per redraw, not per step.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stdout.isatty()
        self._bar: Any = None

    def start(self, epoch: int, epochs: int, batches: int) -> None:
        if self.enabled:
            from tqdm import tqdm  # imported only when a bar is shown

            self._bar = tqdm(total=batches, desc=f"epoch {epoch}/{epochs}", leave=False, unit="batch",
                             dynamic_ncols=True)

    def advance(self, samples: int, loss: Any) -> None:
        bar = self._bar
        if bar is None:
            return
        bar.update(1)
        if bar.n == bar.total or bar.last_print_n == bar.n:  # just redrawn: refresh the text
            rate = bar.format_dict.get("rate") or 0.0
            bar.set_postfix_str(f"loss {float(loss) / samples:.4f}  {rate * samples:,.0f} samples/s", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
