"""``read_source()`` of the ejected data.py, one emitter per data source, as specnn reads it.

Each emitter returns the constants, imports and functions the source needs, and nothing for the
variants the spec does not use (a synthetic set without token inputs has no token sampler).
``read_source()`` always returns ``features, targets, classes``: ``features`` one array, or a dict
of arrays by model input name; the same values ``runtime/data/sources.py`` loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from specnn.runtime.runs.eject.code import block, literal


@dataclass
class Source:
    """What one source adds to data.py."""

    imports: list[str] = field(default_factory=list)
    constants: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    description: str = ""
    reads_csv: bool = False  # predict.py reads new rows from a CSV file (else from an .npz file)
    files: list[Path] = field(default_factory=list)  # data files read, for the README


def data_file_constant(path: Path, out_dir: Path) -> str:
    """``DATA_FILE = HERE / "..."``: relative to the ejected folder, so the pair moves together."""
    try:
        relative = Path(os.path.relpath(path.resolve(), out_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        relative = None
    if relative is None or Path(os.path.commonpath([path.resolve(), out_dir.resolve()])) == Path("/"):
        return f"DATA_FILE = Path({literal(str(path.resolve()))})"
    return f"DATA_FILE = HERE / {literal(relative)}"


ENCODE_LABELS = '''
def encode_labels(labels):
    """Whole numbers stay class indices, other numbers stay values, names become sorted indices."""
    try:
        values = np.array([float(label) for label in labels], dtype=np.float64)
    except ValueError:
        classes = sorted(set(labels))
        index = {name: i for i, name in enumerate(classes)}
        return np.array([index[label] for label in labels], dtype=np.int64), classes
    if np.all(values == np.round(values)):
        return values.astype(np.int64), None
    return values.astype(np.float32), None
'''

READ_CSV = '''
def read_csv(path):
    """The header and the data rows; blank lines are skipped, names and cells are stripped."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = [row for row in csv.reader(f, delimiter=$delimiter) if row]
    return [name.strip() for name in rows[0]], [[cell.strip() for cell in row] for row in rows[1:]]
'''


def csv_source(args: Any, spec: Any, out_dir: Path) -> Source:
    path = (spec.base_dir / Path(args.path).expanduser()).resolve()
    categorical = dict(spec.data.preprocess.categorical)
    features = literal(args.features) if args.features is not None else None
    constants = [data_file_constant(path, out_dir), f"TARGET = {literal(args.target)}"]
    if features is not None:
        constants.append(f"FEATURES = {features}")
    if categorical:
        constants.append(f"CATEGORICAL = {literal(categorical)}  # column: onehot or index")
    if categorical:
        read = block(_CSV_CATEGORICAL, columns="FEATURES" if features is not None else "header if name != TARGET")
    else:
        numeric = ("[header.index(name) for name in FEATURES]" if features is not None
                   else "[i for i, name in enumerate(header) if name != TARGET]")
        read = block(_CSV_NUMERIC, columns=numeric)
    functions = [read,
                 block(READ_CSV, delimiter=literal(args.delimiter)), block(ENCODE_LABELS)]
    if categorical:
        functions.append(block(_ENCODE_COLUMNS))
    return Source(["import csv"], constants, functions, f"{path.name}, column '{args.target}' the target",
                  reads_csv=True, files=[path])


_CSV_NUMERIC = '''
def read_source():
    header, rows = read_csv(DATA_FILE)
    columns = $columns
    features = np.array([[float(row[i]) for i in columns] for row in rows], dtype=np.float32)
    targets, classes = encode_labels([row[header.index(TARGET)] for row in rows])
    return features, targets, classes
'''

_CSV_CATEGORICAL = '''
def read_source():
    header, rows = read_csv(DATA_FILE)
    columns = {name: [row[header.index(name)] for row in rows] for name in $columns}
    # Every category in the file, sorted: the input width does not depend on the split.
    categories = {name: sorted(set(columns[name])) for name in CATEGORICAL}
    preprocessing = {"columns": list(columns), "categorical": {}}
    for name, found in categories.items():
        preprocessing["categorical"][name] = {"encoding": CATEGORICAL[name], "categories": found}
    targets, classes = encode_labels([row[header.index(TARGET)] for row in rows])
    return encode(columns, categories), targets, classes, preprocessing
'''

_ENCODE_COLUMNS = '''
def encode(columns, categories):
    """Numeric columns as numbers; categories one-hot or as their index; in column order."""
    parts = []
    for name, values in columns.items():
        if name not in CATEGORICAL:
            parts.append(np.array([float(value) for value in values], dtype=np.float32)[:, None])
            continue
        position = {category: i for i, category in enumerate(categories[name])}
        at = np.array([position[value] for value in values], dtype=np.int64)
        if CATEGORICAL[name] == "index":
            parts.append(at.astype(np.float32)[:, None])
        else:
            parts.append(np.eye(len(categories[name]), dtype=np.float32)[at])
    return np.concatenate(parts, axis=1)
'''


def npz_source(args: Any, spec: Any, out_dir: Path) -> Source:
    path = (spec.base_dir / Path(args.path).expanduser()).resolve()
    names = args.x if isinstance(args.x, dict) else None
    constants = [data_file_constant(path, out_dir)]
    if names is None:
        read = f'x = archive[{literal(args.x)}]'
        features = "x_features(x)"
    else:
        read = f"x = {{name: archive[array] for name, array in {literal(names)}.items()}}"
        features = "{name: x_features(array) for name, array in x.items()}"
    body = block('''
        def read_source():
            with np.load(DATA_FILE, allow_pickle=False) as archive:
                $read
                y = archive[$y]
            return $features, *y_targets(y)
        ''', read=read, y=repr(args.y), features=features)
    helpers = block('''
        def x_features(x):
            """Integers (token ids) as int64, other numbers as float32."""
            if x.dtype == np.bool_ or np.issubdtype(x.dtype, np.integer):
                return x.astype(np.int64)
            return x.astype(np.float32)


        def y_targets(y):
            """Targets and class names: label names become sorted indices."""
            if y.dtype.kind in "US":
                return encode_labels([str(v) for v in y.reshape(-1)])
            if np.issubdtype(y.dtype, np.integer) or y.dtype == np.bool_:
                return y.astype(np.int64), None
            return y.astype(np.float32), None
        ''')
    return Source([], constants, [body, helpers, block(ENCODE_LABELS)], path.name, files=[path])


def sklearn_source(args: Any, spec: Any, out_dir: Path) -> Source:
    features = "bunch.images[:, None]" if args.as_images else "bunch.data"
    body = block('''
        def read_source():
            bunch = datasets.load_$name()  # bundled with scikit-learn: read offline
            features = $features
            classes = [str(name) for name in bunch.target_names]
            return features.astype(np.float32), bunch.target.astype(np.int64), classes
        ''', name=args.name, features=features)
    return Source(["from sklearn import datasets"], [], [body], f"scikit-learn's {args.name} data set")


def synthetic_source(args: Any, spec: Any, out_dir: Path) -> Source:
    seed = args.seed if args.seed is not None else "SEED"  # data.py defines SEED
    several = args.inputs is not None
    inputs = args.inputs if several else {None: _Input(args.shape, args.vocab)}
    classify = args.task == "classification"
    constants = [f"SAMPLES = {args.samples}", f"NOISE = {args.noise!r}"]
    constants.append(f"CLASSES = {args.classes}" if classify else f"OUTPUTS = {args.outputs}")
    kinds = {("tokens" if i.vocab is not None else "values") for i in inputs.values()}
    calls = {name: _synthetic_call(i, classify) for name, i in inputs.items()}
    if classify:
        if several:
            made = "features = {\n" + "".join(f"        {literal(n)}: {c},\n" for n, c in calls.items()) + "    }"
        else:
            made = f"features = {calls[None]}"
        body = block('''
            def read_source():
                rng = np.random.default_rng($seed)
                labels = rng.integers(0, CLASSES, size=SAMPLES)
                $made
                return features, labels.astype(np.int64), [str(c) for c in range(CLASSES)]
            ''', seed=seed, made=made)
    else:
        if several:
            made = "made = {\n" + "".join(f"        {literal(n)}: {c},\n" for n, c in calls.items()) + "    }"
            setup = (made + "\n    features = {name: x for name, (x, _) in made.items()}"
                     "\n    signal = sum(part for _, part in made.values()) / math.sqrt(len(made))")
        else:
            setup = f"features, signal = {calls[None]}"
        body = block('''
            def read_source():
                rng = np.random.default_rng($seed)
                $setup
                noise = NOISE * rng.standard_normal((SAMPLES, OUTPUTS))
                return features, (signal + noise).astype(np.float32), None
            ''', seed=seed, setup=setup)
    functions = [body] + [_SYNTHETIC[(kind, classify)] for kind in sorted(kinds, reverse=True)]
    imports = ["import math"] if not classify else []
    what = "classes" if classify else "regression targets"
    return Source(imports, constants, [block(f) for f in functions],
                  f"{args.samples} seeded synthetic samples ({what})")


@dataclass
class _Input:
    shape: list[int]
    vocab: Any = None


def _synthetic_call(spec_input: Any, classify: bool) -> str:
    shape = literal(tuple(spec_input.shape))
    if spec_input.vocab is None:
        return f"class_values(rng, labels, {shape})" if classify else f"regression_values(rng, {shape})"
    return (f"class_tokens(rng, labels, {shape}, vocab={spec_input.vocab})" if classify
            else f"regression_tokens(rng, {shape}, vocab={spec_input.vocab})")


_SYNTHETIC: dict[tuple[str, bool], str] = {
    ("values", True): '''
        def class_values(rng, labels, shape):
            """Each class's own mean pattern (a normal draw) plus NOISE-scaled normal noise."""
            centers = rng.standard_normal((CLASSES, *shape))
            x = centers[labels] + NOISE * rng.standard_normal((len(labels), *shape))
            return x.astype(np.float32)
        ''',
    ("tokens", True): '''
        def class_tokens(rng, labels, shape, vocab):
            """Token ids: each class prefers some ids, mixed with NOISE of uniform ids."""
            logits = 2.0 * rng.standard_normal((CLASSES, vocab))
            per_class = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            probabilities = (1 - min(NOISE, 1.0)) * per_class + min(NOISE, 1.0) / vocab
            draws = rng.random((len(labels), *shape))
            ids = np.empty(draws.shape, dtype=np.int64)
            for c, p in enumerate(probabilities):  # inverse-CDF sampling, one class at a time
                ids[labels == c] = np.searchsorted(np.cumsum(p), draws[labels == c], side="right")
            return np.minimum(ids, vocab - 1)
        ''',
    ("values", False): '''
        def regression_values(rng, shape):
            """Normal inputs and their contribution to the targets: a random linear map."""
            size = math.prod(shape)
            weights = rng.standard_normal((size, OUTPUTS)) / math.sqrt(size)
            x = rng.standard_normal((SAMPLES, *shape))
            return x.astype(np.float32), x.reshape(SAMPLES, size) @ weights
        ''',
    ("tokens", False): '''
        def regression_tokens(rng, shape, vocab):
            """Token ids and their contribution to the targets: the mean of each token's own vector."""
            size = math.prod(shape)
            token_values = rng.standard_normal((vocab, OUTPUTS))
            ids = rng.integers(0, vocab, size=(SAMPLES, *shape))
            signal = token_values[ids.reshape(SAMPLES, size)].mean(axis=1) * math.sqrt(size)
            return ids.astype(np.int64), signal
        ''',
}


SOURCES: dict[str, Callable[[Any, Any, Path], Source]] = {
    "csv": csv_source,
    "npz": npz_source,
    "sklearn": sklearn_source,
    "synthetic": synthetic_source,
}
