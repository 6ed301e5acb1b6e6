"""Choosing a training run's folder so that no run overwrites another by accident.

* The default folder ``runs/<name>`` that already holds a run becomes the next free
  ``runs/<name>-2``, ``runs/<name>-3``, ...
* An explicit ``--out DIR`` that already holds a run is an error, unless the caller asked to
  overwrite it: then the old run's files are removed first, so no stale export, checkpoint or
  curve from it is left next to the new run.
* A bare ``--resume`` continues the newest run of the spec's name that has ``checkpoints/last.pt``.
* After a torchrun restart the workers continue in the folder the first attempt used.
* A folder is claimed by the training that uses it, from the moment it is chosen until the run
  ends (``runtime/train/claim.py``): two trainings started together never share one. The default
  folder that another training is using counts as taken; an explicit ``--out`` or ``--resume``
  that another live training uses is an error naming its pid (:func:`claim_run_folder`).
* A run that stops before it has anything worth keeping (Ctrl-C during start-up, torch.compile
  failing at the first step) takes back the files it wrote (:func:`note_folder`,
  :func:`remove_what_this_run_wrote`), so no half-written folder is left behind.

Under torchrun rank 0 decides and claims, and the other ranks receive its decision
(:func:`choose_run_folder`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Union

from specnn.errors import Problem, RunError
from specnn.runtime.files import (
    CHECKPOINT_DIR, LAST, META_FILE, RUN_FOLDERS, cannot_write, run_files, temporary_writer,
)
from specnn.runtime.train.claim import FolderClaim, FolderInUse, take_claim

RUNS_DIR = Path("runs")
# A checkpoint's temporary file lives while torch.save writes it; one older than this is a killed writer's.
STALE_TEMP_SECONDS = 60.0


@dataclass(frozen=True)
class FolderChoice:
    """Where a run goes, and what the user should be told about it.

    Attributes:
        path: the run folder.
        note: a line to print (the default folder was taken, so another one is used), or None.
        clear: the folder holds a run that this one replaces (``overwrite``): remove its files first.
        claim: rank 0's claim on the folder (:func:`claim_run_folder`), released when the run
            ends; None on the other ranks and from :func:`decide_run_folder`.
        before: what the folder held before this run (rank 0), for :func:`remove_what_this_run_wrote`.
    """

    path: Path
    note: Optional[str] = None
    clear: bool = False
    claim: Optional[FolderClaim] = field(default=None, compare=False, repr=False)
    before: Optional["FolderBefore"] = field(default=None, compare=False, repr=False)

    def release(self) -> None:
        """Give up the claim (the run has ended): another training may now use the folder."""
        if self.claim is not None:
            self.claim.release()

    def __enter__(self) -> "FolderChoice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def holds_run(folder: Path) -> bool:
    """True when ``folder`` holds a finished or checkpointed run (``meta.json`` or ``checkpoints/``)."""
    return (folder / META_FILE).is_file() or (folder / CHECKPOINT_DIR).is_dir()


def next_free_folder(base: Path) -> Path:
    """``base`` when it holds no run, else the first of ``base-2``, ``base-3``, ... that holds none."""
    if not holds_run(base):
        return base
    number = 2
    while holds_run(base.with_name(f"{base.name}-{number}")):
        number += 1
    return base.with_name(f"{base.name}-{number}")


def newest_resumable(base: Path) -> Optional[Path]:
    """Of ``base`` and ``base-N``, the folder whose ``checkpoints/last.pt`` was written last; None if none."""
    pattern = re.compile(re.escape(base.name) + r"(-[0-9]+)?")
    siblings = base.parent.iterdir() if base.parent.is_dir() else ()
    candidates = [p for p in siblings if pattern.fullmatch(p.name) and (p / CHECKPOINT_DIR / LAST).is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: ((p / CHECKPOINT_DIR / LAST).stat().st_mtime_ns, p.name))


def decide_run_folder(spec: Any, out: Union[str, Path, None], resume: Union[bool, str, Path],
                      overwrite: bool = False, restarted: bool = False) -> FolderChoice:
    """The folder a training run writes to (nothing on disk changes here).

    Args:
        spec: the spec being trained (its ``name`` names the default folder).
        out: the folder the caller asked for, or None for ``runs/<name>``.
        resume: False; True to continue ``out`` (or the newest resumable run of the spec's name);
            or the folder to continue.
        overwrite: an ``out`` that holds a run may be replaced.
        restarted: torchrun restarted the workers: continue where the first attempt wrote.

    Raises:
        RunError: ``out`` holds a run and neither ``resume`` nor ``overwrite`` was asked for.
    """
    if isinstance(resume, (str, Path)):
        return FolderChoice(Path(resume))
    if out is not None:
        folder = Path(out)
        taken = holds_run(folder)
        if taken and not (resume or overwrite or restarted):
            raise RunError([Problem(
                "run-exists", "this folder already holds a run; training into it would overwrite it", file=str(folder),
                hint="continue it with --resume, replace it with --overwrite, or choose a new --out")])
        return FolderChoice(folder, clear=taken and overwrite and not (resume or restarted))
    base = RUNS_DIR / spec.name
    if resume or restarted:
        return FolderChoice(newest_resumable(base) or (base if resume else next_free_folder(base)))
    folder = next_free_folder(base)
    note = None if folder == base else f"{base} already holds a run: this run goes to {folder}"
    return FolderChoice(folder, note)


def open_run_folder(spec: Any, out: Union[str, Path, None], resume: Union[bool, str, Path], overwrite: bool,
                    dist: Any, say: Callable[[str], Any]) -> FolderChoice:
    """The run folder for this training (see :func:`decide_run_folder`), claimed and made ready on rank 0.

    Rank 0 claims the folder (release it, or use the choice as a context manager, when the run
    ends), says when the default folder was taken, removes the old run's files when it is
    overwritten, and deletes temporary checkpoint files a hard-killed run left behind.
    """
    choice = choose_run_folder(spec, out, resume, overwrite, dist)
    if dist.is_main:
        if choice.note:
            say(choice.note)
        try:
            if choice.clear:
                clear_run(choice.path)
            for where in (choice.path, choice.path / CHECKPOINT_DIR):
                remove_stale_temp_files(where)
        except BaseException:
            choice.release()
            raise
    return choice


def choose_run_folder(spec: Any, out: Union[str, Path, None], resume: Union[bool, str, Path],
                      overwrite: bool, dist: Any) -> FolderChoice:
    """:func:`claim_run_folder` on rank 0, the same folder on every rank (``dist``: ``Distributed``).

    Rank 0 decides and claims, and under torchrun broadcasts the folder (or the error) to the
    other ranks, so they never decide differently because rank 0 has meanwhile created a folder.
    """
    decision: Any = None
    if dist.is_main:
        try:
            decision = claim_run_folder(spec, out, resume, overwrite, dist.restart_count > 0)
        except RunError as error:
            decision = error.problems  # Problems pickle; the exception (built from its text) would not
    if dist.active:
        import torch.distributed

        shared = [decision if not isinstance(decision, FolderChoice) else replace(decision, claim=None, before=None)]
        try:
            torch.distributed.broadcast_object_list(shared, src=0, device=_broadcast_device(dist))
        except BaseException:
            if isinstance(decision, FolderChoice):
                decision.release()
            raise
        decision = decision if dist.is_main else shared[0]
    if isinstance(decision, list):
        raise RunError(decision)
    return decision


def claim_run_folder(spec: Any, out: Union[str, Path, None], resume: Union[bool, str, Path],
                     overwrite: bool = False, restarted: bool = False) -> FolderChoice:
    """:func:`decide_run_folder`, claimed for this process (``runtime/train/claim.py``): made, and held.

    The default ``runs/<name>`` goes to the first of ``runs/<name>``, ``-2``, ``-3`` ... that holds
    no run and no other training uses. Any other choice is decided, claimed, and decided again
    under the claim, so a run that another training finished there meanwhile is not overwritten.

    Raises:
        RunError: the folder holds a run (as :func:`decide_run_folder`); another live training uses
            it (``run-in-use``, naming its pid); or it cannot be made (``cannot-write``).
    """
    if out is None and not resume and not restarted:
        return _claim_next_free(RUNS_DIR / spec.name)
    while True:
        choice = decide_run_folder(spec, out, resume, overwrite, restarted)
        if resume and not choice.path.is_dir():
            return choice  # nothing to continue, nothing to make: reading its checkpoint refuses it
        before = note_folder(choice.path)
        try:
            claim = _take(choice.path, before)
        except FolderInUse as busy:
            raise RunError([Problem(
                "run-in-use", f"this folder is already in use by {busy.holder}: another training is writing to it",
                file=str(choice.path), hint="wait for it to finish, or choose another --out")]) from None
        fresh = out is not None and not (resume or restarted or overwrite)
        if not (fresh and holds_run(choice.path)):
            return replace(choice, note=_joined(choice.note, _taken_over(claim, restarted)), claim=claim,
                           before=before)
        claim.release()  # a training finished a run there between the look and the claim: decide again


def _claim_next_free(base: Path) -> FolderChoice:
    """The first of ``base``, ``base-2`` ... that holds no run and that this process could claim."""
    number, busy = 1, None
    while True:
        folder = base if number == 1 else base.with_name(f"{base.name}-{number}")
        if not holds_run(folder):
            before = note_folder(folder)
            try:
                claim = _take(folder, before)
            except FolderInUse as error:
                busy = busy or error
            else:
                if not holds_run(folder):  # not one another training finished meanwhile
                    return FolderChoice(folder, _joined(_moved(base, folder, busy), _taken_over(claim, False)),
                                        claim=claim, before=before)
                claim.release()
        number += 1


def _take(folder: Path, before: "FolderBefore") -> FolderClaim:
    """:func:`~specnn.runtime.train.claim.take_claim`; a folder that cannot be made is a RunError, and
    what the attempt made is taken back."""
    try:
        return take_claim(folder)
    except OSError as error:
        remove_what_this_run_wrote(before)
        verb = "create" if folder in before.created else "write in"
        raise cannot_write(folder, error, "the run folder", verb) from None


def _moved(base: Path, folder: Path, busy: Optional[FolderInUse]) -> Optional[str]:
    if folder == base:
        return None
    if busy is not None and busy.folder == base:
        return f"{base} is in use by another training ({busy.holder}): this run goes to {folder}"
    return f"{base} already holds a run: this run goes to {folder}"


def _taken_over(claim: FolderClaim, restarted: bool) -> Optional[str]:
    # after a torchrun restart the first attempt's workers are the dead claimants: nothing to say
    if claim.previous is None or restarted:
        return None
    return (f"{claim.folder}: the training that used it last (pid {claim.previous}) ended without releasing it; "
            "this run takes it over")


def _joined(*lines: Optional[str]) -> Optional[str]:
    return "\n".join(line for line in lines if line) or None


def _broadcast_device(dist: Any) -> Any:
    # nccl moves the pickled object through the rank's GPU; gloo through the CPU.
    return dist.device if dist.backend == "nccl" else None


def clear_run(folder: Path) -> None:
    """Remove an old run's files from ``folder`` (``--overwrite``); other files stay.

    Raises:
        RunError: a file cannot be removed (a read-only folder), naming it.
    """
    try:
        for name in run_files(folder):
            (folder / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            if (folder / name).is_dir():
                shutil.rmtree(folder / name)
    except OSError as error:
        raise cannot_write(error.filename or folder, error, "the old run's file", "remove") from None


@dataclass(frozen=True)
class FolderBefore:
    """What a run folder held before this run wrote to it (see :func:`remove_what_this_run_wrote`).

    Attributes:
        path: the run folder.
        created: the folders this run creates to make ``path`` (``path`` first, then its new parents).
        entries: the names in ``path`` before this run, when it existed.
    """

    path: Path
    created: tuple[Path, ...]
    entries: frozenset[str]


def note_folder(folder: Path) -> FolderBefore:
    """Record what ``folder`` holds now, before this run writes its files into it."""
    created = tuple(p for p in (folder, *folder.parents) if not p.exists())
    entries = frozenset(p.name for p in folder.iterdir()) if folder.is_dir() else frozenset()
    return FolderBefore(folder, created, entries)


def remove_what_this_run_wrote(before: FolderBefore) -> None:
    """Take back a run that stopped with nothing worth keeping: its own files go, nothing else.

    A folder this run created is removed with its parents that it created (while empty). In a
    folder that existed, only the run files (``RUN_FILES``, ``RUN_FOLDERS``) that were not
    there before go; a resumed run's folder therefore keeps everything.
    """
    folder = before.path
    if not folder.is_dir():
        return
    if folder in before.created:
        shutil.rmtree(folder, ignore_errors=True)
        for parent in before.created[1:]:
            try:
                parent.rmdir()
            except OSError:  # not empty: something else lives there now
                break
        return
    for name in (*run_files(folder), *RUN_FOLDERS):
        if name not in before.entries:
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def remove_stale_temp_files(folder: Path, older_than: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Delete the temporary files killed writers left in ``folder``; returns them.

    Every atomic write goes through a hidden temporary sibling (``files.temporary_sibling``:
    ``.last.pt.<pid>.<hex>.tmp``, ``.model.onnx.<pid>.<hex>.onnx``) that is renamed into place or
    removed, unless its process is killed meanwhile (SIGKILL, power loss). One whose writer is
    no longer running goes at once; one older than ``older_than`` seconds goes too (its pid may
    belong to another process by now); a young one of a live process is being written right now.
    """
    if not folder.is_dir():
        return []
    cutoff = time.time() - older_than
    removed = []
    for path in folder.iterdir():
        pid = temporary_writer(path.name)
        try:
            if pid is not None and path.is_file() and (not _running(pid) or path.stat().st_mtime < cutoff):
                path.unlink()
                removed.append(path)
        except OSError:  # its writer renamed or removed it meanwhile; or it cannot go: tidying is not worth failing
            continue
    return removed


def _running(pid: int) -> bool:
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows: trust the age alone
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
