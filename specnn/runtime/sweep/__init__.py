"""Hyperparameter sweeps: a spec's ``sweep:`` section searched with Optuna, each trial an ordinary run.

Above ``runs/`` in the pipeline: a sweep draws values for spec paths (``runtime/sweep/study.py``:
Optuna's storage, study, sampler and pruner), trains each trial's spec into its own run folder
(``trials.py``, through ``runtime/train``), and writes the trials table, the best trial's spec
and Optuna's plots (``results.py``). ``run.py`` holds :func:`sweep`, what ``specnn sweep`` calls.
The section's format and its checks live with the spec (``spec/sweep_models.py``,
``spec/sweep_rules.py``, ``spec/sweep_file.py``), so ``specnn validate`` checks them without Optuna.
"""

from specnn.runtime.sweep.results import SweepResult, TrialRow, format_table
from specnn.runtime.sweep.run import SweepFailed, SweepInterrupted, sweep

__all__ = ["SweepFailed", "SweepInterrupted", "SweepResult", "TrialRow", "format_table", "sweep"]
