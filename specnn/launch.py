"""Starting training: in this process, as one rank of a torchrun job, or as torchrun itself.

:func:`train` is ``specnn.train``: it joins the job (:func:`job`: a world of one outside
torchrun), trains (``runtime/train``: the finished run folder), then exports on rank 0
(``runtime/runs``) and builds the :class:`~specnn.runtime.runs.run.Run`. It sits above both
stages so that neither imports the other; the training is saved before any export runs, so a
failing export never loses it.

When a rank fails, only the first rank to fail reports it (:func:`claim_first_failure`); the
others exit quietly with a non-zero code, and torchrun ends the job. The reporting rank says which
rank it is on stderr and re-raises, so the caller (the CLI) prints the located problem once, and
records it with its exit code for torchrun's summary (:func:`record_failure`), which the launcher
reads back (:func:`launch`). ``specnn train SPEC --nproc N`` is torchrun run in this process,
starting ``python -m specnn`` with this process's own arguments less ``--nproc``
(:func:`worker_args`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from specnn.errors import EXIT_FAILURE, EXIT_INTERRUPTED, SpecError
from specnn.spec.loader import load_spec
from specnn.spec.models import Spec

if TYPE_CHECKING:
    from specnn.runtime.runs.run import Run

Echo = Callable[[str], Any]
FAILED_KEY = "specnn/first-failure"
EXIT_CODE_KEY = "specnn_exit_code"  # in a worker's torchrun error file: the code it meant to exit with
NPROC = "--nproc"


def train(spec: Union[Spec, str, Path], out: Union[str, Path, None] = None, *, quiet: bool = False, echo: Echo = print,
          resume: Union[bool, str, Path] = False, progress: bool = True, backend: Optional[str] = None,
          overwrite: bool = False, threads: Optional[int] = None,
          on_epoch: Optional[Callable[[int, dict], bool]] = None) -> Run:
    """Train a spec's model and write its run folder.

    A run never overwrites another by accident: when ``runs/<name>`` holds a run, the next free
    ``runs/<name>-2``, ``-3`` ... is used (and said); an ``out`` that holds a run is an error
    unless ``overwrite`` (``runtime/train/run_folder.py``).

    Args:
        spec: a :class:`specnn.spec.models.Spec` (from :func:`specnn.load_spec`), or its file.
        out: the run folder; default ``runs/<spec name>`` (or the next free ``runs/<spec name>-N``).
        quiet: print nothing at all (no warnings, no epoch lines, no bar): for library use.
            The CLI's ``--quiet`` is ``progress=False`` instead: it keeps the epoch lines.
        echo: where lines go (the CLI passes ``click.echo``).
        resume: continue the run in ``out`` (``True``; without ``out``: the newest run of the
            spec's name with a checkpoint) or in this folder, from its ``checkpoints/last.pt``;
            the result equals that of a run that never stopped.
        progress: show a progress bar per epoch (only when stdout is a terminal and not quiet);
            ``progress=False`` keeps the one summary line per epoch (``specnn train --quiet``).
        backend: under torchrun, the process-group backend (``gloo``/``nccl``); default
            ``train.distributed.backend``, else nccl on CUDA and gloo on CPU.
        overwrite: ``out`` may hold a run: its files (exports, checkpoints, curves ...) are
            removed before this run writes.
        threads: CPU threads for torch while training; default ``train.threads``
            (``runtime/train/threads.py``); torch's previous count is restored afterwards.
        on_epoch: called after each epoch is logged with ``(epoch, record)`` (the values
            ``metrics.jsonl`` gets); returning True stops training there, as early stopping does
            (a sweep prunes a trial so). One process only: under torchrun it is not called.

    Under torchrun every rank calls this: each trains on its shard of every epoch with a
    ``batch_size / world_size`` batch, and rank 0 alone prints and writes the run folder. After a
    torchrun restart it resumes from ``last.pt``. A failure is reported by the first rank that
    fails (:func:`job`).

    Returns:
        The :class:`~specnn.runtime.runs.run.Run`, its model in eval mode with the trained weights.

    Raises:
        SpecError: the spec does not compile, asks for a missing device, or exports to a format
            whose extra is not installed (before training starts).
        DataError: the data cannot be read or does not fit the model.
        RunError: ``out`` holds a run (without ``resume`` or ``overwrite``); the checkpoint to
            resume from is missing, corrupt or from another spec, or the run's ``metrics.jsonl`` lacks
            epochs it trained (nothing on disk changes); or the loss became NaN or infinite (the last
            good checkpoint stays).
        TrainingInterrupted: Ctrl-C; ``last.pt`` is saved and the message says how to resume.
        ExportFailed: the training finished and is saved (``error.run``), and an export failed;
            the other exports were still written. A missing optional package for an export is a
            SpecError raised before training instead.
    """
    from specnn.runtime.runs.export import ExportFailed, export_all, export_problems, missing_extras
    from specnn.compiler import compile_spec
    from specnn.runtime.runs.run import Run
    from specnn.runtime.train.device import resolve_device
    from specnn.runtime.train.threads import cpu_threads
    from specnn.runtime.train.loop import interrupted
    from specnn.runtime.train.trainer import train_run

    spec = spec if isinstance(spec, Spec) else load_spec(spec)
    device = resolve_device(spec.train.device, spec)
    failed = []
    with job(device, backend, spec) as dist, contextlib.ExitStack() as claimed:
        compiled = compile_spec(spec)
        # an export that cannot run (a missing package, a layer its exporter cannot write): say so now
        problems = missing_extras(spec) + export_problems(spec, compiled.graph)
        if problems:
            raise SpecError(problems)
        say: Echo = (lambda line: None) if quiet or not dist.is_main else echo
        with cpu_threads(threads or spec.train.threads, device, compiled.parameter_count()):
            # the run folder stays claimed until its exports are written (`claimed` closes after them)
            trained = train_run(spec, out, dist, say=say, resume=resume, progress=progress and not quiet,
                                overwrite=overwrite, on_epoch=on_epoch, hold=claimed)
        run = Run(trained.folder, spec, trained.compiled, trained.model, trained.classes, trained.meta)
        try:
            if dist.is_main:
                failed = export_all(run, spec.export, say)
        except KeyboardInterrupt:
            raise interrupted(run.path, spec.file) from None  # last.pt holds the finished training
        dist.barrier()  # the other ranks return once the run folder is complete
    if failed:  # the run is saved: the caller hears which export failed and where the run is
        raise ExportFailed(failed, run)
    return run


# ---------------------------------------------------------------------------------------------
# one rank of a job, and its failure


@contextlib.contextmanager
def job(device: Any, backend: Optional[str] = None, spec: Any = None, env: Any = None,
        timeout: Any = None) -> Iterator[Any]:
    """Join the job for the ``with`` block (``distributed_session``), and report a failure once.

    Yields this rank's ``distributed.Distributed``. On an error under torchrun, the first rank to
    fail re-raises it after saying which rank it is; the others leave quietly (:func:`_fail`).
    """
    from specnn.runtime.train.distributed import distributed_session

    with distributed_session(device, backend, spec, env, timeout) as dist:
        try:
            yield dist
        except (SystemExit, GeneratorExit):
            raise
        except BaseException as error:
            if dist.active:
                _fail(dist, error)
            raise


def _fail(dist: Any, error: BaseException) -> None:
    """Report ``error`` if this rank failed first; otherwise leave quietly (the first one speaks).

    A Ctrl-C is an interruption, not a failure: the first rank to stop is the one that speaks
    (its message says what was saved and how to resume, the same on every rank), with no
    "rank N failed" line.
    """
    from specnn.runtime.train.distributed import stop

    first = claim_first_failure()
    if not first:
        stop(dist)
        code = EXIT_INTERRUPTED if isinstance(error, KeyboardInterrupt) else EXIT_FAILURE
        raise SystemExit(code) from None
    if not isinstance(error, KeyboardInterrupt):
        print(f"specnn: rank {dist.rank} of {dist.world_size} failed:", file=sys.stderr, flush=True)
    record_failure(error)


def failure_exit_code(error: BaseException) -> int:
    """What the CLI exits with for ``error``: its own (2 for bad input, 1 for a ToolError), 130 for Ctrl-C, else 1."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return error.exit_code if isinstance(error, SpecError) else EXIT_FAILURE


def reported_exit_code(failure: Any) -> Optional[int]:
    """The exit code a failed worker recorded in its error file (:func:`record_failure`), if any."""
    message = getattr(failure, "error_file_data", {}).get("message")
    extra = message.get("extraInfo", {}) if isinstance(message, dict) else {}
    code = extra.get(EXIT_CODE_KEY) if isinstance(extra, dict) else None
    return int(code) if isinstance(code, str) and code.isdigit() else None


def claim_first_failure() -> bool:
    """True for the first rank to fail, through a counter in the process group's store.

    A rank whose collective breaks because another rank died fails *after* that rank claimed,
    so the root cause is the one reported. If the store is gone (its host died), report anyway.
    """
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store().add(FAILED_KEY, 1) == 1  # the store is scoped to this attempt
    except Exception:  # the store's host is gone: better twice than never
        return True


def record_failure(error: BaseException, environ: Mapping[str, str] = os.environ) -> None:
    """Write ``error`` to torchrun's per-worker error file, as ``@record`` would.

    torchrun's agent reads ``TORCHELASTIC_ERROR_FILE`` and names the first failure's message in
    its summary; for bad input that message is the located problem, not a traceback.
    """
    path = environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    message = str(error) if isinstance(error, SpecError) else f"{type(error).__name__}: {error}"
    callstack = message if isinstance(error, SpecError) else "".join(traceback.format_exception(error))
    # the code this rank is about to exit with: torchrun may stop it before it does (see launch)
    data = {"message": {"message": message,
                        "extraInfo": {"py_callstack": callstack, "timestamp": str(int(time.time())),
                                      EXIT_CODE_KEY: str(failure_exit_code(error))}}}
    with contextlib.suppress(OSError):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle)


# ---------------------------------------------------------------------------------------------
# the launcher: `specnn train SPEC --nproc N` is torchrun, run in this process


def torchrun_args(nproc: int, command: Sequence[str], extra: Sequence[str] = (), module: str = "specnn") -> list[str]:
    """torchrun's arguments for ``python -m specnn COMMAND...`` on ``nproc`` local processes.

    >>> torchrun_args(2, ["train", "iris.yaml"])
    ['--nproc-per-node', '2', '--standalone', '-m', 'specnn', 'train', 'iris.yaml']
    """
    return ["--nproc-per-node", str(nproc), "--standalone", *extra, "-m", module, *command]


def launch(nproc: int, command: Sequence[str], extra: Sequence[str] = (), module: str = "specnn") -> int:
    """Run ``python -m MODULE COMMAND`` on ``nproc`` processes through torchrun; returns the exit code.

    The workers report their own failure once (:func:`job`); torchrun's summary
    of the same failure is not printed again, and its progress logging is kept to errors.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    quiet_torchrun_logs()
    try:
        torchrun.main(torchrun_args(nproc, command, extra, module))
    except SignalException as signalled:
        # Ctrl-C (or a kill) reached the launcher: torchrun has passed it on to the workers and
        # waited for them, and they said what they saved; the shell's code for that signal.
        return 128 + int(signalled.sigval)
    except ChildFailedError as failed:
        # The rank that reported the failure exits with its real code (2 for bad input); the
        # others leave quietly with 1, and torchrun's "first" failure may be any of them. A quiet
        # rank may also exit first, and torchrun then terminates the reporter before its exit:
        # the code it recorded in its error file is the job's.
        recorded = [reported_exit_code(failure) for failure in failed.failures.values()]
        if any(code is not None for code in recorded):
            return next(code for code in recorded if code is not None)
        codes = [failure.exitcode for failure in failed.failures.values()]
        if max(codes) > 0:
            return max(codes)
        _, failure = failed.get_first_failure()  # killed by a signal: no worker could say why
        print(f"specnn: {failure.message}", file=sys.stderr)
        return 1
    return 0


def quiet_torchrun_logs() -> None:
    """Keep torchrun's agent to critical messages: the workers already say what went wrong."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def worker_args(argv: Sequence[str]) -> list[str]:
    """This process's arguments for torchrun's workers: the same command, less ``--nproc N``.

    >>> worker_args(["train", "iris.yaml", "--nproc", "2", "--out", "runs/x", "-q"])
    ['train', 'iris.yaml', '--out', 'runs/x', '-q']
    >>> worker_args(["train", "iris.yaml", "--nproc=2", "--resume"])
    ['train', 'iris.yaml', '--resume']
    """
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == NPROC:
            skip = True  # and its value
        elif not arg.startswith(f"{NPROC}="):
            args.append(arg)
    return args
