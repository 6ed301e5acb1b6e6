"""``specnn.sweep``: run a hyperparameter sweep on Optuna, in one process or several.

The study lives in an Optuna storage: by default an SQLite file in the sweep folder, so running the
same command again continues it; ``storage`` names a shared one (a database URL or a journal file on
a shared file system), so the same command on several machines works on one study. ``jobs`` runs
that many local processes on it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path
from typing import Optional, Union

from specnn.errors import SpecError
from specnn.runtime.sweep import study as studies
from specnn.runtime.sweep.results import SweepResult, collect
from specnn.runtime.sweep.trials import Echo, Plan, work
from specnn.spec.sweep_file import load_sweep_source
from specnn.spec.sweep_rules import sweep_metric

SWEEPS_DIR = "sweeps"
STOP_SECONDS = 60  # how long Ctrl-C waits for worker processes to save and leave


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C: the study keeps every finished trial; ``message`` says how to continue."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SweepFailed(RuntimeError):
    """A worker process ended with an error that is not the user's input (its output says which)."""


def sweep(source: Union[str, Path], out: Union[str, Path, None] = None, *, jobs: int = 1,
          storage: Optional[str] = None, trials: Optional[int] = None, timeout: Optional[float] = None,
          plots: bool = True, echo: Echo = print) -> SweepResult:
    """Run (or continue) the hyperparameter sweep a file declares; write its results.

    Args:
        source: a spec with a ``sweep:`` section, or a sweep file (``spec: FILE`` and ``sweep:``).
        out: the sweep folder (trial run folders, results, the default study file); default
            ``sweeps/<name>``, ``name`` being ``sweep.name``, else the spec's name (a sweep file's
            own name for a sweep file).
        jobs: local processes running trials at once, on one study.
        storage: the study's storage: an SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``)
            or a journal file path; default ``<out>/study.db``. The same command with the same
            storage on several machines shares the study.
        trials: the study's total trial count (default ``sweep.trials``); finished, pruned and
            failed trials count, interrupted ones do not. Run again with more to extend a study.
        timeout: seconds this call starts trials for (default ``sweep.timeout``).
        plots: draw Optuna's optimization history and parameter importances (a few seconds).
        echo: where the one line per trial goes.

    Returns:
        The :class:`SweepResult`: every trial of the study, the best one, and the files written
        (``trials.csv``, ``best.yaml``, ``history.png``, ``importance.png``).

    Raises:
        SpecError: the file, its spec or its sweep has problems (all of them, located), Optuna is
            missing, or the storage cannot be opened or holds a study of another search space.
        SweepInterrupted: Ctrl-C; the interrupted trial is marked so and does not count.
    """
    studies.require_optuna()
    plan = make_plan(source, out, trials, timeout, echo, shared=jobs > 1 or storage is not None)
    store = studies.open_storage(storage, plan.folder)
    studies.open_study(store, plan.name, plan.source.settings, plan.metric, plan.direction, str(plan.folder))
    echo(f"sweep '{plan.name}' in {plan.folder}: {_budget(plan)}, {plan.metric} ({plan.direction})")
    try:
        if jobs == 1:
            work(plan, store)
        else:
            run_processes(source, out, storage, trials, timeout, jobs)
    except KeyboardInterrupt:
        raise SweepInterrupted(f"interrupted: the study keeps its finished trials; run the same command to continue "
                               f"(specnn sweep {source})") from None
    optuna = studies.require_optuna()
    return collect(optuna.load_study(study_name=plan.name, storage=store), plan, plots)


def make_plan(source: Union[str, Path], out: Union[str, Path, None], trials: Optional[int],
              timeout: Optional[float], echo: Echo, shared: bool) -> Plan:
    """Read and check the sweep, and settle its name, folder, metric and budget."""
    loaded = load_sweep_source(source)
    settings, spec = loaded.settings, loaded.spec
    own_file = Path(loaded.file).resolve() != Path(spec.file or "").resolve()
    name = settings.name or (Path(loaded.file).stem if own_file else spec.name)
    metric, direction = sweep_metric(settings, spec)
    timeout = timeout if timeout is not None else settings.timeout_seconds()
    total = trials or settings.trials
    if total is None and timeout is None:
        total = studies.grid_size(settings) if settings.sampler == "grid" else studies.DEFAULT_TRIALS
    folder = Path(out) if out is not None else Path(SWEEPS_DIR) / name
    seed = settings.seed if settings.seed is not None else spec.seed
    return Plan(loaded, name, folder, metric, direction, total, timeout, seed, echo, shared)


def _budget(plan: Plan) -> str:
    parts = [f"{plan.trials} trials"] if plan.trials is not None else []
    parts += [f"{plan.timeout:g}s"] if plan.timeout is not None else []
    return " or ".join(parts)


def run_processes(source, out, storage, trials, timeout, jobs: int) -> None:
    """``jobs`` worker processes on the study; Ctrl-C reaches each, which marks its trial and leaves."""
    context = multiprocessing.get_context("spawn")  # torch in a forked child is not safe
    workers = [context.Process(target=_worker, args=(str(source), None if out is None else str(out), storage,
                                                     trials, timeout, jobs), daemon=False) for _ in range(jobs)]
    for process in workers:
        process.start()
    try:
        for process in workers:
            process.join()
    except KeyboardInterrupt:
        _stop(workers)
        raise
    codes = [p.exitcode for p in workers]
    if any(code == 130 for code in codes):
        raise KeyboardInterrupt
    if any(code != 0 for code in codes):
        raise SweepFailed(f"a sweep worker process failed (exit status {', '.join(str(c) for c in codes)})")


def _stop(workers: list) -> None:
    for process in workers:
        if process.is_alive() and process.pid is not None:
            os.kill(process.pid, signal.SIGINT)  # a Ctrl-C sent to this process alone reaches them too
    for process in workers:
        process.join(STOP_SECONDS)
        if process.is_alive():
            process.terminate()


def _worker(source: str, out: Optional[str], storage: Optional[str], trials: Optional[int],
            timeout: Optional[float], jobs: int) -> None:
    """One worker process: the same plan, its own connection to the study."""
    if "OMP_NUM_THREADS" not in os.environ:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs))  # the processes share the cores
    echo = lambda line: print(line, flush=True)  # noqa: E731
    try:
        plan = make_plan(source, out, trials, timeout, echo, shared=True)
        work(plan, studies.open_storage(storage, plan.folder))
    except KeyboardInterrupt:
        sys.exit(130)
    except SpecError as error:
        print(str(error), file=sys.stderr, flush=True)
        sys.exit(2)
