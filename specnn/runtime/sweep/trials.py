"""Running trials: each one a spec with drawn values, checked, then trained into its own run folder.

A trial's spec is the tuned spec's document with the drawn values set in place, checked as any
spec is (its problems point into the spec file), and trained as ``specnn train`` would, without
the exports. One that does not check or compile is a FAILED
trial holding its problems; a trial whose metric trails the median of earlier ones at the same
epoch is pruned (training stops after that epoch); Ctrl-C marks the running trial interrupted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from specnn.errors import SpecError
from specnn.runtime.sweep import study as studies
from specnn.spec.document import Document
from specnn.spec.loader import load_spec_document
from specnn.spec.models import Spec
from specnn.spec.sweep_file import SweepSource
from specnn.spec.sweep_rules import parse_path, set_path, without_sweep

Echo = Callable[[str], Any]
TRIALS_DIR = "trials"
# Trial user attributes (what the results table reads back from the storage).
RUN = "run"
PROBLEMS = "problems"
INTERRUPTED = "interrupted"
COUNTED = ("COMPLETE", "PRUNED", "FAIL")  # an interrupted trial is FAIL too, but not counted


class TrialFailed(Exception):
    """A trial that could not run (its spec does not check, its data does not load ...): FAIL, sweep goes on."""


@dataclass
class Plan:
    """One sweep as this process runs it."""

    source: SweepSource
    name: str
    folder: Path
    metric: str
    direction: str
    trials: Optional[int]  # the study's total; None: until the timeout
    timeout: Optional[float]
    seed: int
    echo: Echo = print
    shared: bool = False  # other processes may work on the study (--jobs, --storage)
    paths: dict[str, tuple] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.paths = {key: parse_path(key) for key in self.source.settings.space}

    def trial_spec(self, values: dict[str, Any]) -> Spec:
        """The tuned spec with ``values`` in place, checked; SpecError located in the spec file."""
        document = self.source.document
        data = without_sweep(document.data)
        for key, value in values.items():
            set_path(data, self.paths[key], value)
        return load_spec_document(Document(data, document.file, document.values, document.keys))

    def trial_folder(self, number: int) -> Path:
        return self.folder / TRIALS_DIR / f"{number:04d}"


def objective(plan: Plan) -> Callable[[Any], float]:
    """Optuna's objective: draw the values, check the spec, train, score the last epoch."""
    settings = plan.source.settings
    grid = settings.sampler == "grid"

    def run_trial(trial: Any) -> float:
        if not grid:
            trial.study.sampler = studies.make_sampler(settings, studies.sampler_seed(plan.seed, trial.number))
        values = {key: studies.suggest(trial, key, d, grid) for key, d in settings.space.items()}
        folder = plan.trial_folder(trial.number)
        trial.set_user_attr(RUN, str(folder))
        scores: list[float] = []
        pruned = False
        epochs = 0

        def on_epoch(epoch: int, record: dict) -> bool:
            nonlocal pruned
            value = record.get(plan.metric)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                return False
            scores.append(float(value))
            trial.report(float(value), epoch)
            pruned = epoch < epochs and trial.should_prune()  # a trial that trained every epoch is complete
            return pruned

        try:
            spec = plan.trial_spec(values)
            epochs = spec.train.epochs
            train_trial(spec, folder, on_epoch)
        except SpecError as error:  # DataError and RunError too: the spec, its data, a NaN loss
            return _fail(trial, [p.format() for p in error.problems if p.severity == "error"])
        except KeyboardInterrupt:
            trial.set_user_attr(INTERRUPTED, True)
            raise
        except Exception as error:  # not the user's input, but one trial's failure ends no sweep
            return _fail(trial, [f"{type(error).__name__}: {error}"])
        if pruned:
            raise studies.require_optuna().TrialPruned(f"pruned after epoch {len(scores)}")
        if not scores:
            return _fail(trial, [f"the run reported no finite '{plan.metric}'"])
        return scores[-1]

    return run_trial


def train_trial(spec: Spec, folder: Path, on_epoch: Callable[[int, dict], bool]) -> None:
    """Train one trial's spec into its run folder, in this process, quietly.

    The spec's exports are left out: a trial is a candidate, and any trial exports later with
    ``specnn export``; the best trial's spec file keeps them.
    """
    from specnn.compiler import compile_spec
    from specnn.runtime.train.device import resolve_device
    from specnn.runtime.train.distributed import distributed_session
    from specnn.runtime.train.threads import cpu_threads
    from specnn.runtime.train.trainer import train_run

    device = resolve_device(spec.train.device, spec)
    # the thread count specnn train would use: best.yaml, trained again, repeats the trial exactly
    with distributed_session(device, None, spec) as dist, \
            cpu_threads(spec.train.threads, device, compile_spec(spec).parameter_count()):
        train_run(spec, folder, dist, say=lambda line: None, resume=False, progress=False, overwrite=True,
                  on_epoch=on_epoch)


def _fail(trial: Any, problems: list[str]) -> float:
    trial.set_user_attr(PROBLEMS, problems)
    raise TrialFailed("\n".join(problems))


def counted(study: Any) -> int:
    """Trials that count towards ``trials``: finished, pruned or failed, not interrupted."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state.name in COUNTED and not t.user_attrs.get(INTERRUPTED))


def work(plan: Plan, storage: Any) -> None:
    """Run trials on the shared study until it has ``plan.trials`` or the time is up."""
    study = studies.open_study(storage, plan.name, plan.source.settings, plan.metric, plan.direction, str(plan.folder))
    settings = plan.source.settings
    if settings.sampler == "grid":
        study.sampler = studies.make_sampler(settings, studies.process_seed(plan.seed) if plan.shared else plan.seed)
    left = None if plan.trials is None else plan.trials - counted(study)
    if left is not None and left <= 0:
        return

    def after_trial(study: Any, trial: Any) -> None:
        plan.echo(trial_line(trial, plan.metric))
        if plan.trials is not None and counted(study) >= plan.trials:
            study.stop()  # other processes may have finished the study's count

    study.optimize(objective(plan), n_trials=left, timeout=plan.timeout,
                   catch=(TrialFailed,), callbacks=[after_trial], gc_after_trial=False)


def trial_line(trial: Any, metric: str) -> str:
    """One line per finished trial: number, state, score, seconds, the drawn values; problems below."""
    state = "INTERRUPTED" if trial.user_attrs.get(INTERRUPTED) else trial.state.name
    score = f"{metric} {trial.value:.6g}" if trial.value is not None else ""
    if state == "PRUNED" and trial.intermediate_values:
        last = max(trial.intermediate_values)
        score = f"{metric} {trial.intermediate_values[last]:.6g} at epoch {last}"
    seconds = f"{trial.duration.total_seconds():.1f}s" if trial.duration is not None else ""
    values = "  ".join(f"{k}={format_value(v)}" for k, v in trial.params.items())
    line = f"trial {trial.number:>3}  {state:<9} {score}  ({seconds})  {values}".replace("  ()", "")
    problems = trial.user_attrs.get(PROBLEMS) or []
    return "\n".join([line, *(f"    {p}" for p in problems)])


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
