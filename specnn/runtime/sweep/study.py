"""The Optuna side of a sweep: storage, study, sampler, pruner, and drawing a trial's values.

Optuna is the ``sweep`` extra, imported only here and only when a sweep runs.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from specnn.errors import SpecError
from specnn.errors.texts import needs_extra
from specnn.spec.sweep_models import Distribution, SweepSpec

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "study.db"
DEFAULT_TRIALS = 20
# A process that dies mid-trial stops its heartbeat; after the grace period the next process to
# start a trial marks that trial failed (RDB storages only: Optuna's journal has no heartbeat).
HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 60
SQLITE_LOCK_SECONDS = 120  # several local processes write one SQLite file: wait for the lock, do not fail
FINGERPRINT = "specnn.sweep"  # the study's user attribute recording what it searches


def require_optuna() -> Any:
    """The optuna module; SpecError (exit 2) with the install line when the extra is missing."""
    try:
        import optuna
    except ImportError:
        message, hint = needs_extra("a sweep", "sweep", ["optuna"])
        raise SpecError.single("missing-extra", message, hint=hint) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # specnn prints one line per trial itself
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


def open_storage(url: Optional[str], folder: Path) -> Any:
    """An Optuna storage: the sweep folder's SQLite file by default, an RDB URL, or a journal file.

    ``url`` forms: ``sqlite:///path.db``, ``postgresql://...``, ``mysql+pymysql://...`` (any
    SQLAlchemy URL); a path ending in ``.db``/``.sqlite`` (SQLite); any other path, or
    ``journal:PATH``, an Optuna journal file (one file on a shared file system, no server).
    """
    optuna = require_optuna()
    if url is None:
        folder.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(folder / DEFAULT_STORAGE).resolve()}"
    elif "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        url = f"sqlite:///{Path(url).resolve()}"
    try:
        if "://" in url:
            sqlite = url.startswith("sqlite")
            return optuna.storages.RDBStorage(
                url, engine_kwargs={"connect_args": {"timeout": SQLITE_LOCK_SECONDS}} if sqlite else None,
                heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
            )
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    except Exception as error:  # a missing database driver, an unreachable server, a bad URL
        first = next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)
        hint = ("install the database's driver: psycopg2-binary for postgresql://, PyMySQL for mysql+pymysql://"
                if "import" in first.lower() else
                "give an SQLAlchemy URL (sqlite:///..., postgresql://...) or a journal file path")
        raise SpecError.single("storage", f"cannot open the study storage '{url}': {first}", hint=hint) from None


def fingerprint(settings: SweepSpec, metric: str, direction: str) -> str:
    """What a study searches, as text: a study resumed with another search space is refused."""
    space = {key: d.model_dump(mode="json", by_alias=True, exclude_defaults=True) for key, d in settings.space.items()}
    return json.dumps({"metric": metric, "direction": direction, "space": space}, sort_keys=True)


def open_study(storage: Any, name: str, settings: SweepSpec, metric: str, direction: str, where: str) -> "optuna.Study":
    """Create the study, or load it when it exists (the same command run again continues it)."""
    optuna = require_optuna()
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                pruner=make_pruner(settings))
    mine = fingerprint(settings, metric, direction)
    recorded = study.user_attrs.get(FINGERPRINT)
    if recorded is None:
        study.set_user_attr(FINGERPRINT, mine)
    elif recorded != mine:
        raise SpecError.single("sweep", f"the study '{name}' in {where} was started with another metric, direction "
                               "or search space", hint="give the sweep another name (sweep.name or --out), or "
                               "remove the old study to start again")
    return study


def make_sampler(settings: SweepSpec, seed: Optional[int]) -> Any:
    optuna = require_optuna()
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(settings), seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(settings: SweepSpec) -> Any:
    optuna = require_optuna()
    median = settings.median_pruner()
    if median is None:
        return optuna.pruners.NopPruner()
    # Optuna prunes from step n_warmup_steps on; epochs count from 1, so warmup_epochs: 2 keeps
    # epochs 1 and 2 of every trial.
    return optuna.pruners.MedianPruner(n_startup_trials=median.startup_trials, n_warmup_steps=median.warmup_epochs + 1)


def grid_space(settings: SweepSpec) -> dict[str, list[Any]]:
    """Every grid point's values, per parameter, as Optuna stores them (structured values as JSON text)."""
    return {key: [encode(v) for v in d.finite_values() or []] for key, d in settings.space.items()}


def grid_size(settings: SweepSpec) -> int:
    size = 1
    for values in grid_space(settings).values():
        size *= len(values)
    return size


def suggest(trial: Any, key: str, distribution: Distribution, grid: bool) -> Any:
    """Draw one value for ``key`` (the Optuna parameter name is the spec path as written)."""
    if grid or distribution.kind == "choice":
        values = distribution.finite_values() or []
        return decode(trial.suggest_categorical(key, [encode(v) for v in values]))
    low, high = distribution.bounds
    if distribution.kind == "int":
        return trial.suggest_int(key, int(low), int(high), step=int(distribution.step or 1), log=distribution.log)
    return trial.suggest_float(key, low, high, step=distribution.step, log=distribution.kind == "loguniform")


def encode(value: Any) -> Any:
    """A choice as Optuna stores it: None, bool, int, float and str as they are; lists and mappings as JSON."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def sampler_seed(base: int, trial_number: int) -> int:
    """Each trial draws with its own seed: distinct trial numbers (unique in a study, whichever
    process or machine runs them) never draw the same values, and a sweep run again repeats."""
    return (base * 1_000_003 + trial_number) % 2**32


def process_seed(base: int) -> int:
    """The grid sampler picks its point before a trial starts: seed it per process."""
    return (base * 1_000_003 + os.getpid()) % 2**32
