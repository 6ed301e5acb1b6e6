"""Data sources: the loaders named in ``catalog/sources.py``.

Each loader takes ``(args, base_dir, seed)`` and returns :class:`Arrays`: the whole data set as
numpy arrays, held in memory. Bad data never raises a Python error at the user: it becomes a
:class:`~specnn.errors.DataError` naming the file, the row (1-based, header = row 1, as a
spreadsheet shows it) and the column.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from specnn.catalog.sources import CsvArgs, NpzArgs, ParquetArgs, SklearnArgs, SyntheticArgs, SyntheticInput
from specnn.runtime.data.csv_table import data_error
from specnn.runtime.data.table import Table, labels_from_column, read_table
from specnn.errors import Problem, SpecError
from specnn.errors.texts import needs_extra, suggest


# One array (a model with one input), or one per model input, by input name.
Features = Union[np.ndarray, Mapping[str, np.ndarray]]


@dataclass
class Arrays:
    """A whole data set in memory.

    Attributes:
        features: shape (N, *per-sample shape): float32, or int64 for integer data (token ids);
            a mapping from model input name to such an array for a model with several inputs.
        targets: int64 class indices, or float32 values; first dimension N.
        classes: label names for string labels (index i is class i); None otherwise.
    """

    features: Features
    targets: np.ndarray
    classes: Optional[list[str]] = None
    notes: list[str] = field(default_factory=list)  # what was dropped while reading, for the user
    # A loss per output: each output's targets and class names as read; ``targets`` is then (N, 0)
    # until the data stage packs them into one matrix (data/outputs.py).
    by_output: Optional[dict[str, tuple[np.ndarray, Optional[list[str]]]]] = None

    def __len__(self) -> int:
        return len(self.targets)


def take_features(features: Features, at: np.ndarray) -> Features:
    """The samples at ``at`` (indices or a mask), from one array or from each named array."""
    if isinstance(features, Mapping):
        return {name: array[at] for name, array in features.items()}
    return features[at]


def resolve_path(path: str, base_dir: Path) -> Path:
    """A data path as the spec means it: relative to the spec file's folder."""
    return Path(base_dir, Path(path).expanduser())


# ---------------------------------------------------------------------------------------------
# csv


def load_csv(args: CsvArgs, base_dir: Path, seed: int = 0) -> Arrays:
    """Read a CSV file with a header row: feature columns and one target column, by name.

    String targets are encoded as indices in sorted order (the names are kept in ``classes``);
    integer targets are kept as they are, other numbers as float32. Rows without a target are
    dropped (``Arrays.notes`` says how many).

    Raises:
        DataError: missing or empty file, missing column, missing or non-numeric value.
    """
    path = resolve_path(args.path, base_dir)
    return table_arrays(read_table(path, args.features, delimiter=args.delimiter, target=args.target,
                                   target_required=True), args.target)


def load_parquet(args: ParquetArgs, base_dir: Path, seed: int = 0) -> Arrays:
    """Read a Parquet file: feature columns and one target column, by name (as :func:`load_csv`)."""
    path = resolve_path(args.path, base_dir)
    return table_arrays(read_table(path, args.features, target=args.target, target_required=True), args.target)


def table_arrays(table: Table, target: str) -> Arrays:
    """A table of numeric features as Arrays; rows without a target dropped and counted."""
    if not table.columns:
        raise data_error(table.file, f"row 1: no feature columns besides the target '{target}'")
    notes = []
    missing = _missing_targets(table.target)
    if missing.any():
        notes.append(f"{table.file}: dropped {int(missing.sum())} row(s) with no target value")
        table = table.take(~missing)
    features = table.features()
    if features is None:
        features = np.empty((len(table), len(table.columns)), np.float32)
        for j, name in enumerate(table.columns):
            features[:, j] = table.values.pop(name)  # each column released once copied
    targets, classes = labels_from_column(table.target)
    return Arrays(features, targets, classes, notes)


def _missing_targets(target: np.ndarray) -> np.ndarray:
    return target == None if target.dtype == object else np.isnan(target)  # noqa: E711


def encode_labels(labels: Sequence[str]) -> tuple[np.ndarray, Optional[list[str]]]:
    """Targets from label text: integers kept, other numbers as float32, strings as sorted indices.

    >>> encode_labels(["b", "a", "b"])
    (array([1, 0, 1]), ['a', 'b'])
    >>> encode_labels(["2", "0"])
    (array([2, 0]), None)
    """
    try:
        values = np.array([float(text) for text in labels], dtype=np.float64)
    except ValueError:
        classes = sorted(set(labels))
        index = {name: i for i, name in enumerate(classes)}
        return np.array([index[name] for name in labels], dtype=np.int64), classes
    if np.all(values == np.round(values)):
        return values.astype(np.int64), None
    return values.astype(np.float32), None


# ---------------------------------------------------------------------------------------------
# npz


def load_npz(args: NpzArgs, base_dir: Path, seed: int = 0) -> Arrays:
    """Read features and targets from named arrays in a ``.npz`` file (no pickled objects).

    ``x`` names one features array, or maps each model input name to an array name. Integer
    and boolean features are kept as int64 (token ids); other numbers become float32.

    Raises:
        DataError: missing or unreadable file, an array name the file does not hold, arrays of
            different lengths, or non-numeric features.
    """
    path = resolve_path(args.path, base_dir)
    if not path.is_file():
        raise data_error(path, "data file not found", code="file")
    x_names = args.x if isinstance(args.x, dict) else {None: args.x}
    y_names = args.y if isinstance(args.y, dict) else {None: args.y}
    try:
        with np.load(path, allow_pickle=False) as archive:
            _check_array_names(path, list(archive.files), [*x_names.values(), *y_names.values()])
            x = {key: archive[name] for key, name in x_names.items()}
            ys = {key: archive[name] for key, name in y_names.items()}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise data_error(path, f"cannot read the file as .npz: {e}", code="file") from None
    for name, array in [*((x_names[key], a) for key, a in x.items()), *((y_names[key], a) for key, a in ys.items())]:
        if array.ndim == 0:
            raise data_error(path, f"'{name}' is a single value, not an array with one entry per sample")
    first_name, y = next(iter(y_names.values())), next(iter(ys.values()))
    for key, array in ys.items():
        if len(array) != len(y):
            raise data_error(path, f"array '{y_names[key]}' has {len(array)} samples but '{first_name}' has {len(y)}",
                             code="column")
    features = {key: _npz_features(path, x_names[key], array, first_name, len(y)) for key, array in x.items()}
    features = features[None] if None in features else features
    if None in ys:
        return Arrays(features, *_npz_targets(path, first_name, y))
    return Arrays(features, np.empty((len(y), 0), np.float32),
                  by_output={key: _npz_targets(path, y_names[key], array) for key, array in ys.items()})


def _check_array_names(path: Path, available: list[str], wanted: list[str]) -> None:
    missing = list(dict.fromkeys(name for name in wanted if name not in available))
    if missing:
        raise data_error(
            path,
            f"no array named {', '.join(repr(m) for m in missing)} (arrays: {', '.join(available) or 'none'})",
            code="column",
            hint=suggest(missing[0], available),
        )


def _npz_features(path: Path, name: str, x: np.ndarray, y_name: str, samples: int) -> np.ndarray:
    if len(x) != samples:
        raise data_error(path, f"'{name}' has {len(x)} samples but '{y_name}' has {samples}")
    if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
        return x.astype(np.int64)
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise data_error(path, f"'{name}' holds {x.dtype} values, not real numbers")
    return x.astype(np.float32)


def _npz_targets(path: Path, name: str, y: np.ndarray) -> tuple[np.ndarray, Optional[list[str]]]:
    if y.dtype.kind in "US":  # label names
        return encode_labels([str(v) for v in y.reshape(-1)])
    if not np.issubdtype(y.dtype, np.number) and y.dtype != np.bool_ or np.issubdtype(y.dtype, np.complexfloating):
        raise data_error(path, f"'{name}' holds {y.dtype} values, not labels or real numbers")
    if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
        return y.astype(np.int64), None
    return y.astype(np.float32), None


# ---------------------------------------------------------------------------------------------
# synthetic


def make_synthetic(args: SyntheticArgs, base_dir: Path, seed: int = 0) -> Arrays:
    """A seeded, learnable data set, with one input (``shape``) or several (``inputs``).

    Classification: each class has its own mean per input (a standard normal draw), and a sample
    is its class's mean plus ``noise``-scaled normal noise; token inputs (``vocab``) draw each id
    from a distribution of the class, mixed with ``noise`` of uniform ids. Regression: a random
    linear map of every input (of a token's own random vector, for token inputs) plus noise.
    Several inputs give a mapping from input name to array, each carrying part of the signal.
    """
    rng = np.random.default_rng(args.seed if args.seed is not None else seed)
    inputs = args.inputs if args.inputs is not None else {None: SyntheticInput(shape=args.shape, vocab=args.vocab)}
    if args.targets is not None:
        return _several_targets(rng, inputs, args)
    if args.task == "classification":
        labels = rng.integers(0, args.classes, size=args.samples)
        features = {name: _class_input(rng, spec, labels, args) for name, spec in inputs.items()}
        targets, classes = labels.astype(np.int64), [str(c) for c in range(args.classes)]
    else:
        features, parts = {}, []
        for name, spec in inputs.items():
            features[name], part = _regression_input(rng, spec, args)
            parts.append(part)
        noise = args.noise * rng.standard_normal((args.samples, args.outputs))
        targets, classes = (sum(parts) / math.sqrt(len(parts)) + noise).astype(np.float32), None
    return Arrays(features[None] if None in features else features, targets, classes)


# Several outputs: every target is a function of one latent vector, which the inputs carry.
LATENT = 8


def _several_targets(rng: np.random.Generator, inputs: Mapping, args: SyntheticArgs) -> Arrays:
    """``targets: {out: {...}}``: each output's targets a random linear map of a latent signal the inputs
    carry (classes: the largest of ``classes`` noisy scores), so every output is learnable from them."""
    latent = args.model_copy(update={"outputs": LATENT})
    features, parts = {}, []
    for name, spec in inputs.items():
        features[name], part = _regression_input(rng, spec, latent)
        parts.append(part)
    signal = sum(parts) / math.sqrt(len(parts))
    by_output: dict[str, tuple[np.ndarray, Optional[list[str]]]] = {}
    for output, target in args.targets.items():
        width = target.classes if target.task == "classification" else target.outputs
        values = signal @ rng.standard_normal((LATENT, width)) / math.sqrt(LATENT)
        values = values + args.noise * rng.standard_normal(values.shape)
        if target.task == "classification":
            by_output[output] = values.argmax(axis=1).astype(np.int64), [str(c) for c in range(target.classes)]
        else:
            by_output[output] = values.astype(np.float32), None
    features = features[None] if None in features else features
    return Arrays(features, np.empty((args.samples, 0), np.float32), by_output=by_output)


def _class_input(rng: np.random.Generator, spec: SyntheticInput, labels: np.ndarray, args: SyntheticArgs) -> np.ndarray:
    shape = tuple(spec.shape)
    if spec.vocab is None:
        centers = rng.standard_normal((args.classes, *shape))
        x = centers[labels] + args.noise * rng.standard_normal((len(labels), *shape))
        return x.astype(np.float32)
    # Each class prefers some ids: a peaked distribution over the vocabulary, mixed with uniform noise.
    logits = 2.0 * rng.standard_normal((args.classes, spec.vocab))
    per_class = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    probabilities = (1 - min(args.noise, 1.0)) * per_class + min(args.noise, 1.0) / spec.vocab
    draws = rng.random((len(labels), *shape))
    ids = np.empty(draws.shape, dtype=np.int64)
    for c, p in enumerate(probabilities):  # inverse-CDF sampling, one class at a time
        ids[labels == c] = np.searchsorted(np.cumsum(p), draws[labels == c], side="right")
    return np.minimum(ids, spec.vocab - 1)


def _regression_input(rng: np.random.Generator, spec: SyntheticInput, args: SyntheticArgs) -> tuple[np.ndarray, np.ndarray]:
    """An input and its contribution to the targets, (N, outputs)."""
    shape, n = tuple(spec.shape), args.samples
    size = math.prod(shape)
    if spec.vocab is None:
        weights = rng.standard_normal((size, args.outputs)) / math.sqrt(size)
        x = rng.standard_normal((n, *shape))
        return x.astype(np.float32), x.reshape(n, size) @ weights
    token_values = rng.standard_normal((spec.vocab, args.outputs))
    ids = rng.integers(0, spec.vocab, size=(n, *shape))
    return ids.astype(np.int64), token_values[ids.reshape(n, size)].mean(axis=1) * math.sqrt(size)


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled data sets


def load_sklearn(args: SklearnArgs, base_dir: Path, seed: int = 0) -> Arrays:
    """One of scikit-learn's small bundled data sets, read from the installed package (offline).

    Features are float32 (``digits`` with ``as_images``: [1, 8, 8] images); targets are class
    indices and ``classes`` holds scikit-learn's target names (``"0"`` ... ``"9"`` for digits).

    Raises:
        SpecError: scikit-learn is not installed (the message says how to install it).
    """
    try:
        from sklearn import datasets
    except ImportError:
        message, hint = needs_extra(f"the sklearn data source ('{args.name}')", "sklearn")
        raise SpecError([Problem("missing-extra", message, hint=hint)]) from None
    bunch = getattr(datasets, f"load_{args.name}")()
    features = bunch.images[:, None] if args.as_images else bunch.data
    return Arrays(features.astype(np.float32), bunch.target.astype(np.int64), [str(n) for n in bunch.target_names])
