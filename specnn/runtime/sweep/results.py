"""What a sweep leaves: the trials table (CSV), the best trial's spec, and Optuna's plots.

Everything is read back from the study's storage, so with a shared storage the results cover
every machine's trials.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from specnn.runtime.files import write_atomic
from specnn.runtime.sweep import study as studies
from specnn.runtime.sweep.trials import INTERRUPTED, PROBLEMS, RUN, Plan, format_value

TABLE_FILE = "trials.csv"
BEST_SPEC_FILE = "best.yaml"
HISTORY_PLOT = "history.png"
IMPORTANCE_PLOT = "importance.png"


@dataclass
class TrialRow:
    """One trial as the table shows it; ``value`` is the metric at its last epoch (pruned: where it stopped)."""

    number: int
    state: str
    value: Optional[float]
    seconds: Optional[float]
    params: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    run: Optional[str] = None


@dataclass
class SweepResult:
    """A sweep's outcome: every trial of the study (all processes and machines), the best, the files."""

    folder: Path
    study_name: str
    metric: str
    direction: str
    trials: list[TrialRow]
    best: Optional[TrialRow] = None
    best_spec: Optional[Path] = None
    table: Optional[Path] = None
    plots: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def collect(study: Any, plan: Plan, plots: bool = True) -> SweepResult:
    """Rows for every trial, the best one, the CSV, the best spec and the plots (what can be drawn)."""
    rows = [_row(t) for t in study.get_trials(deepcopy=False)]
    result = SweepResult(plan.folder, plan.name, plan.metric, plan.direction, rows)
    result.table = write_atomic(plan.folder / TABLE_FILE, table_csv(rows, list(plan.source.settings.space), plan.metric))
    complete = [r for r in rows if r.state == "COMPLETE" and r.value is not None]
    if complete:
        pick = max if plan.direction == "maximize" else min
        result.best = pick(complete, key=lambda r: (r.value, -r.number))  # ties: the earlier trial
        result.best_spec = write_best_spec(plan, result.best)
    if plots:
        result.plots, result.notes = write_plots(study, plan.folder, plan.metric, len(complete))
    return result


def _row(trial: Any) -> TrialRow:
    state = "INTERRUPTED" if trial.user_attrs.get(INTERRUPTED) else trial.state.name
    value = trial.value
    if value is None and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    seconds = trial.duration.total_seconds() if trial.duration is not None else None
    params = {k: studies.decode(v) for k, v in trial.params.items()}
    return TrialRow(trial.number, state, value, seconds, params, list(trial.user_attrs.get(PROBLEMS) or []),
                    trial.user_attrs.get(RUN))


def table_csv(rows: list[TrialRow], keys: list[str], metric: str) -> str:
    """The trials as CSV: number, state, the metric, seconds, one column per swept path, problems, run."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["number", "state", metric, "seconds", *keys, "problems", "run"])
    for r in rows:
        writer.writerow([r.number, r.state, "" if r.value is None else repr(r.value),
                         "" if r.seconds is None else round(r.seconds, 3), *(_cell(r.params.get(k)) for k in keys),
                         " | ".join(r.problems), r.run or ""])
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


def format_table(result: SweepResult) -> str:
    """The trials as an aligned text table, best first line marked with ``*``."""
    keys = list(dict.fromkeys(k for r in result.trials for k in r.params))
    header = ["trial", "state", result.metric, "seconds", *keys]
    lines = [header]
    for r in result.trials:
        mark = "*" if result.best is not None and r.number == result.best.number else ""
        lines.append([f"{r.number}{mark}", r.state, "" if r.value is None else f"{r.value:.6g}",
                      "" if r.seconds is None else f"{r.seconds:.1f}", *(format_value(r.params.get(k, "")) for k in keys)])
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in lines)


def write_best_spec(plan: Plan, best: TrialRow) -> Path:
    """The best trial's resolved spec as a spec file that trains on its own: the drawn values in
    place, inferred arguments filled in, no sweep section, its data path relative to the file."""
    from specnn.compiler import compile_spec

    spec = plan.trial_spec(best.params)
    resolved = compile_spec(spec).resolved_spec()
    path = plan.folder / BEST_SPEC_FILE
    data_args = resolved.get("data", {}).get(spec.data.kind)
    if isinstance(data_args, dict) and "path" in data_args:
        absolute = (spec.base_dir / Path(data_args["path"]).expanduser()).resolve()
        data_args["path"] = _relative(absolute, path.parent.resolve())
    drawn = ", ".join(f"{k}={format_value(v)}" for k, v in best.params.items())
    header = (f"# Best trial ({best.number}) of sweep '{plan.name}': {plan.metric} {best.value:.6g}.\n"
              f"# The spec {plan.source.spec.file} with {drawn}; train it with: specnn train {path}\n")
    return write_atomic(path, header + yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))


def _relative(path: Path, start: Path) -> str:
    try:
        return os.path.relpath(path, start)
    except ValueError:  # another drive (Windows)
        return str(path)


def write_plots(study: Any, folder: Path, metric: str, complete: int) -> tuple[list[Path], list[str]]:
    """Optuna's optimization history and parameter importances as PNGs; notes for what was not drawn."""
    try:
        from optuna.visualization import matplotlib as plots
        import matplotlib.pyplot as plt
    except ImportError:
        return [], ['plots need matplotlib: pip install "specnn[sweep]"']
    if complete < 1:
        return [], ["no plots: no trial has completed"]
    drawn, notes = [], []
    for name, draw, needs in ((HISTORY_PLOT, plots.plot_optimization_history, 1),
                              (IMPORTANCE_PLOT, plots.plot_param_importances, 2)):
        if complete < needs:
            notes.append(f"no {name}: it needs {needs} completed trials")
            continue
        try:
            axes = draw(study, target_name=metric)
        except ImportError as error:  # Optuna's importance evaluator needs scikit-learn
            notes.append(f"no {name}: it needs {error.name or 'a package that is missing'}: pip install \"specnn[sweep]\"")
            continue
        except (ValueError, RuntimeError) as error:  # e.g. importances of a parameter that never varied
            notes.append(f"no {name}: {error}")
            continue
        figure = axes.figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=100)
        plt.close(figure)
        drawn.append(write_atomic(folder / name, buffer.getvalue()))
    return drawn, notes
