"""One training per run folder: a claim on the folder, held for the run's life.

Two trainings that choose a folder at the same moment (two ``specnn train spec.yaml`` started
together, or two with one ``--out``) must not both write into it: one run's weights would silently
replace the other's. The training that uses a folder holds an exclusive lock (``flock``) on
``<folder>/.specnn-claim``, a file holding its pid. The lock is taken without waiting, so whoever
gets it owns the folder and the other learns at once who holds it (:class:`FolderInUse`).

The kernel drops a lock when its process ends, however it ends, so the claim of a killed training
(SIGKILL, power loss) is never honoured: its file is left with a dead pid, and the next claimant
takes it over (:attr:`FolderClaim.previous` names the dead pid). A training that ends removes the
file (:meth:`FolderClaim.release`). A ``flock`` belongs to the open file, which a fork shares: so
that a data loader's forked workers, outliving a killed training by seconds, do not keep its folder,
a forked child closes its copy of every claim at once (:func:`_forget_in_child`).

On a file system without locks (some network and FUSE mounts) a claim holds nothing, as before
claims existed; on Windows ``msvcrt.locking`` takes the place of ``flock`` (not exercised by the
tests, which run on Linux).
"""

from __future__ import annotations

import os
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

CLAIM_FILE = ".specnn-claim"
# A holder writes its pid just after it locks: a claimant that meets a lock with no pid yet reads again.
PID_READS, PID_READ_PAUSE = 20, 0.005
LOCK_TRIES = 5  # a lock taken on a file a releasing holder has just removed is tried again
WINDOWS_LOCK_OFFSET = 1 << 30  # msvcrt locks bytes: one far past the pid, so the pid stays readable


class FolderInUse(Exception):
    """Another live process holds the folder's claim; ``pid`` is its pid, None when it could not be read."""

    def __init__(self, folder: Path, pid: Optional[int]) -> None:
        super().__init__(f"{folder} is in use by pid {pid}")
        self.folder, self.pid = folder, pid

    @property
    def holder(self) -> str:
        """``pid 1234``, or ``another process`` when the pid could not be read."""
        return f"pid {self.pid}" if self.pid is not None else "another process"


@dataclass(eq=False)  # one claim is one lock: compared (and kept in _HELD) by identity
class FolderClaim:
    """This process's claim on a run folder (see the module docstring).

    Attributes:
        folder: the claimed folder.
        previous: the pid of a killed process whose claim this one took over, else None.
    """

    folder: Path
    previous: Optional[int] = None
    fd: Optional[int] = field(default=None, repr=False)

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        """Give the folder up: its claim file goes, then the lock. Safe to call twice."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        _HELD.discard(self)
        path = self.folder / CLAIM_FILE
        try:
            if fcntl is not None and _is_file(fd, path):  # still ours: not removed and claimed anew
                path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)  # drops the lock
        if fcntl is None:  # Windows cannot remove a file that is open
            try:
                path.unlink()
            except OSError:
                pass

    def __enter__(self) -> "FolderClaim":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_HELD: "weakref.WeakSet[FolderClaim]" = weakref.WeakSet()  # this process's claims, for _forget_in_child


def _forget_in_child() -> None:
    """In a forked child: close its copies of the parent's claims (the parent alone holds them)."""
    for claim in list(_HELD):
        fd, claim.fd = claim.fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forget_in_child)


def take_claim(folder: Path) -> FolderClaim:
    """Claim ``folder`` for this process, making it (and its parents) when missing.

    Raises:
        FolderInUse: a live process holds it.
        OSError: the folder or its claim file cannot be made (no permission, a read-only or full disk).
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLAIM_FILE
    for _ in range(LOCK_TRIES):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            locked = _lock(fd)
            if locked and _is_file(fd, path):
                previous = _read_pid(fd)
                _write_pid(fd)
                claim = FolderClaim(folder, previous if previous != os.getpid() else None, fd)
                _HELD.add(claim)
                return claim
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        if not locked:
            raise FolderInUse(folder, holder_pid(path))
        # locked, but the file was removed meanwhile (its holder released it): claim the new one
    raise FolderInUse(folder, holder_pid(path))


def holder_pid(path: Path) -> Optional[int]:
    """The pid written in a claim file, or None (no file, or its holder has not written it yet)."""
    for _ in range(PID_READS):
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            return None
        if text.isdigit():
            return int(text)
        time.sleep(PID_READ_PAUSE)
    return None


def _lock(fd: int) -> bool:
    """Lock ``fd`` without waiting: False when another process holds it."""
    if fcntl is None:
        return _lock_on_windows(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # no locks on this file system: claim without one
        return True
    return True


def _lock_on_windows(fd: int) -> bool:
    import msvcrt

    os.lseek(fd, WINDOWS_LOCK_OFFSET, os.SEEK_SET)
    try:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _is_file(fd: int, path: Path) -> bool:
    """``fd`` is the file at ``path`` now (not one removed, or replaced by another process's claim)."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_pid(fd: int) -> Optional[int]:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else None


def _write_pid(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
