"""Starting a training job: in this process, or as one rank of a torchrun job.

:func:`train` is ``specnn.train``: it joins the job (a world of one outside torchrun), trains
(``runtime/train``: the finished run folder), then exports on rank 0 (``runtime/runs``) and builds
the :class:`~specnn.runtime.runs.run.Run`. It sits above both stages so that neither imports the
other upward: the training is saved before any export runs, so a failing export never loses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Optional, Union

from specnn.runtime.runs.run import Run

Echo = Callable[[str], Any]


def train(spec: Any, out: Union[str, Path, None] = None, *, quiet: bool = False, echo: Echo = print,
          resume: Union[bool, str, Path] = False, progress: bool = True, backend: Optional[str] = None,
          overwrite: bool = False) -> Run:
    """Train a spec's model and write its run folder.

    A run never overwrites another by accident: when ``runs/<name>`` holds a run, the next free
    ``runs/<name>-2``, ``-3`` ... is used (and said); an ``out`` that holds a run is an error
    unless ``overwrite`` (``runtime/train/run_folder.py``).

    Args:
        spec: a :class:`specnn.spec.models.Spec` (from :func:`specnn.load_spec`).
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

    Under torchrun every rank calls this: each trains on its shard of every epoch with a
    ``batch_size / world_size`` batch, and rank 0 alone prints and writes the run folder. After a
    torchrun restart it resumes from ``last.pt``.

    Returns:
        The :class:`~specnn.runtime.runs.run.Run`, its model in eval mode with the trained weights.

    Raises:
        SpecError: the spec does not compile or asks for a missing device.
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
    from specnn.errors import SpecError
    from specnn.runtime.runs.export import ExportFailed, export_all, missing_extras
    from specnn.runtime.train.device import resolve_device
    from specnn.runtime.train.distributed import distributed_session
    from specnn.runtime.train.loop import interrupted
    from specnn.runtime.train.trainer import train_run

    device = resolve_device(spec.train.device, spec)
    missing = missing_extras(spec)
    if missing:  # an export that cannot run: say so before training, not after it
        raise SpecError(missing)
    failed = []
    with distributed_session(device, backend, spec) as dist:
        say: Echo = (lambda line: None) if quiet or not dist.is_main else echo
        trained = train_run(spec, out, dist, say=say, resume=resume, progress=progress and not quiet,
                            overwrite=overwrite)
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
