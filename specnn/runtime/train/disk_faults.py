"""A write the system refuses while training: a full disk, a read-only folder, a file size limit.

Every writer turns the refusal into a RunError naming the file and the system's reason
(``runtime/files.py``: :func:`~specnn.runtime.files.writing`). Here the training that met it adds
what is safe: a refused write never touches the last good checkpoint (checkpoints are replaced
atomically), so the message names it, its epoch and the command that continues from it. A run
without a checkpoint has nothing worth keeping, and a new one takes its files back (the trainer,
as after a Ctrl-C during start-up).
"""

from __future__ import annotations

import errno
from dataclasses import replace
from pathlib import Path
from typing import Optional

from specnn.errors import Problem, RunError
from specnn.runtime.files import CHECKPOINT_DIR, LAST, WRITE_FAILED, cannot_write, write_refusal
from specnn.runtime.train.checkpoint import checkpoint_epoch
from specnn.runtime.train.distributed import resume_command

# An OSError that no writer translated is a disk fault when it says so itself, or names a file
# of the run; others (a data file that cannot be read) are not this module's to explain.
DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS)


def disk_fault(error: BaseException, folder: Path, spec_file: Optional[str]) -> Optional[RunError]:
    """``error`` as the run's disk fault, saying what is safe; None when it is not a refused write.

    Call it after a new run without a checkpoint has taken its files back: the message says so.
    """
    problem = refused_write(error, folder)
    if problem is None:
        return None
    last = folder / CHECKPOINT_DIR / LAST
    todo = problem.hint or "make room for the run's files"
    if last.is_file():
        epoch = checkpoint_epoch(last)
        kept = f"the last good checkpoint {last} ({f'epoch {epoch}' if epoch is not None else 'kept'}) is intact"
        hint = f"{todo}, then resume with: {resume_command(spec_file or '<spec>', folder)}"
    else:
        kept, hint = "the run had no checkpoint yet, so nothing was kept", f"{todo}, then train again"
    return RunError([replace(problem, message=f"{problem.message}; {kept}", hint=hint)])


def refused_write(error: BaseException, folder: Path) -> Optional[Problem]:
    """The ``cannot-write`` problem in ``error``: a writer's RunError, or an OSError no writer translated."""
    if isinstance(error, RunError):
        return next((p for p in error.problems if p.code == WRITE_FAILED), None)
    refusal = write_refusal(error)
    if refusal is None:
        return None
    named = Path(refusal.filename) if isinstance(refusal.filename, (str, Path)) else None
    inside = named is not None and (named == folder or folder in named.parents)
    if not inside and refusal.errno not in DISK_ERRNOS:
        return None
    return cannot_write(named if named is not None else folder, refusal).problems[0]
