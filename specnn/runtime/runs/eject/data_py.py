"""The ejected ``data.py``: the spec's source, the seeded split and the fitted preprocessing.

It does what ``runtime/data`` does for training (``trainer.prepare_data``), in the same order and
with the same numpy calls, so the tensors it returns equal specnn's bit for bit: read the source,
shape the features as the model's inputs and the targets as the loss wants them, split with
``np.random.default_rng(seed).permutation``, fit the scaling on the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from specnn.catalog.losses import LOSSES
from specnn.runtime.runs.eject.code import block, indent, literal, module
from specnn.runtime.runs.eject.sources import SOURCES, Source

NUMPY_DTYPES = {"float32": "np.float32", "float64": "np.float64", "int64": "np.int64"}


@dataclass
class DataPlan:
    """What the other ejected files need to know about data.py."""

    source: Source
    inputs: list[str]  # model input names, in order
    validation: bool  # load() returns a validation split
    test: bool  # ... and a test split (data.test_split), evaluated once after training
    stratify: bool  # the split is made within each class
    preprocessing: bool  # load() returns the fitted preprocessing (scaling, categories)
    categorical: bool
    scale: str


def plan(spec: Any, compiled: Any, out_dir: Path) -> DataPlan:
    source = SOURCES[spec.data.kind](spec.data.args, spec, out_dir)
    settings = spec.data.preprocess
    categorical = bool(settings.categorical)
    return DataPlan(source, list(compiled.inputs), spec.data.validation_split > 0, spec.data.test_split > 0,
                    spec.data.stratify, settings.scale != "none" or categorical, categorical, settings.scale)


def data_py(spec: Any, compiled: Any, data: DataPlan) -> str:
    """The text of data.py."""
    source = data.source
    constants = [f"SEED = {spec.seed}"] + source.constants
    if data.validation:
        constants.append(f"VALIDATION_SPLIT = {spec.data.validation_split!r}")
    if data.test:
        constants.append(f"TEST_SPLIT = {spec.data.test_split!r}  # held out, evaluated once after training")
    if any(c.startswith("DATA_FILE = HERE") for c in constants):
        constants.insert(0, "HERE = Path(__file__).resolve().parent")
    imports = ["import numpy as np", "import torch", *source.imports]
    if any("Path(" in c for c in constants):
        imports.append("from pathlib import Path")
    parts = ["\n".join(constants), _load(spec, compiled, data), *source.functions]
    if data.validation or data.test:
        parts.append(_split(data))
    if data.scale != "none":
        parts += [_fit_scaling(data), _scale(data.scale)]
    parts += [_read_inputs(spec, compiled, data), block(TO_DEVICE)]
    docstring = (f"The data of {spec.name}: {source.description}.\n\n"
                 "load() splits and preprocesses it as specnn does: the same tensors as `specnn train`.\n")
    return module(docstring, imports, *parts)


SPLIT = '''
def split(n):
    """The seeded random split (not stratified): sorted training and validation row indices."""
    n_val = max(1, round(n * VALIDATION_SPLIT))
    order = np.random.default_rng(SEED).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
'''

STRATIFIED = '''
def split(labels):
    """The seeded split within each class: every part keeps the class shares of the whole."""
    n = len(labels)
    n_val, n_test = $sizes
    rng = np.random.default_rng(SEED)
    classes, counts = np.unique(labels, return_counts=True)
    val_per, test_per = apportion(counts, n_val, n), apportion(counts, n_test, n)
    train, val, test = [], [], []
    for c, v, t in zip(classes, val_per, test_per):
        members = rng.permutation(np.flatnonzero(labels == c))
        val.append(members[:v])
        test.append(members[v:v + t])
        train.append(members[v + t:])
    return $returned


def apportion(counts, total, n):
    """`total` samples over the classes in proportion to `counts` (largest remainders)."""
    exact = counts * total / n
    shares = np.floor(exact).astype(np.int64)
    left = total - int(shares.sum())
    if left > 0:
        shares[np.argsort(-(exact - shares), kind="stable")[:left]] += 1
    return np.minimum(shares, counts)
'''


def _split(data: DataPlan) -> str:
    """``split()``: the parts ``runtime/data/splits.py`` makes, with the same generator calls."""
    val = "max(1, round(n * VALIDATION_SPLIT))" if data.validation else "0"
    test = "max(1, round(n * TEST_SPLIT))" if data.test else "0"
    parts = ["train", "val"] + (["test"] if data.test else [])
    if data.stratify:
        returned = ", ".join(f"np.sort(np.concatenate({p}))" for p in parts)
        if len(returned) > 80:
            returned = "(\n        " + ",\n        ".join(f"np.sort(np.concatenate({p}))" for p in parts) + ",\n    )"
        return block(STRATIFIED, sizes=f"{val}, {test}", returned=returned)
    if not data.test:
        return block(SPLIT)
    lines = ["def split(n):",
             '    """The seeded random split: sorted training, validation and test row indices."""']
    lines += ([f"    n_val = {val}"] if data.validation else []) + [f"    n_test = {test}",
              "    order = np.random.default_rng(SEED).permutation(n)"]
    if data.validation:
        lines.append("    return (np.sort(order[n_val + n_test:]), np.sort(order[:n_val]),\n"
                     "            np.sort(order[n_val:n_val + n_test]))")
    else:
        lines.append("    return np.sort(order[n_test:]), np.sort(order[:n_test])  # train, test")
    return "\n".join(lines)

TO_DEVICE = '''
def to_device(array, device):
    return torch.as_tensor(np.ascontiguousarray(array)).to(device)
'''


def _model_input(compiled: Any, source_name: str, many: bool) -> str:
    """``x = ...``: the features shaped and typed as the model's input(s)."""
    def shaped(expression: str, tensor: Any) -> str:
        shape = ", ".join(str(d) for d in tensor.shape)
        return f"{expression}.reshape(-1, {shape}).astype({NUMPY_DTYPES[tensor.dtype]})"

    if not many:
        (tensor,) = compiled.inputs.values()
        return f"x = {shaped(source_name, tensor)}"
    lines = [f"    {shaped(f'{source_name}[{literal(name)}]', tensor)}," for name, tensor in compiled.inputs.items()]
    return "x = (  # one array per model input, in the model's order\n" + "\n".join(lines) + "\n)"


def _targets(spec: Any, compiled: Any) -> str:
    if LOSSES[spec.loss.kind].target == "index":
        return "y = targets.astype(np.int64)  # class indices"
    (shape,) = compiled.outputs.values()
    dims = ", ".join(str(d) for d in shape)
    return f"y = targets.astype(np.float32).reshape(-1, {dims})  # shaped like the model's output"


def _load(spec: Any, compiled: Any, data: DataPlan) -> str:
    many = len(data.inputs) > 1
    take = (lambda rows: f"tuple(a[{rows}] for a in x)") if many else (lambda rows: f"x[{rows}]")
    on_device = (lambda x: f"tuple(to_device(a, device) for a in {x})") if many else (lambda x: f"to_device({x}, device)")
    lines = []
    if data.categorical:
        lines.append("features, targets, classes, preprocessing = read_source()")
    else:
        lines.append("features, targets, classes = read_source()")
    lines += [_model_input(compiled, "features", many), _targets(spec, compiled)]
    held = (["val"] if data.validation else []) + (["test"] if data.test else [])
    if held:
        by = "targets" if data.stratify else "len(y)"
        lines.append(f"{', '.join(['train', *held])} = split({by})")
        lines.append(", ".join(f"x_{p}" for p in ["train", *held]) + " = "
                     + ", ".join(take(p) for p in ["train", *held]))
        lines.append(", ".join(f"y_{p}" for p in ["train", *held]) + " = "
                     + ", ".join(f"y[{p}]" for p in ["train", *held]))
    else:
        lines += ["x_train, y_train = x, y  # no validation split"]
    returned = []
    if data.scale != "none":
        if data.categorical:
            lines.append('preprocessing["scale"] = fit_scaling(x_train, scaled_features(preprocessing))')
        else:
            lines.append('preprocessing = {"scale": fit_scaling(x_train)}  # on the training rows only')
        lines.append('x_train = scale(x_train, preprocessing["scale"])')
        for part in held:
            lines.append(f'x_{part} = scale(x_{part}, preprocessing["scale"])')
    lines.append(f"train = {on_device('x_train')}, to_device(y_train, device)")
    returned.append("train")
    for part in held:
        lines.append(f"{part} = {on_device(f'x_{part}')}, to_device(y_{part}, device)")
        returned.append(part)
    returned.append("classes")
    if data.preprocessing:
        returned.append("preprocessing")
    lines.append("return " + ", ".join(returned))
    names = ["training", *(["validation"] if data.validation else []), *(["test"] if data.test else [])]
    what = "The " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]) + " parts"
    doc = f'"""{what} as (inputs, targets) on `device`; the class names.'
    if data.preprocessing:
        doc += "\n\nAlso the preprocessing fitted on the training rows, which predict.py applies.\n"
    doc += '"""'
    return "def load(device):\n" + indent("\n".join([doc, *lines]))


def _fit_scaling(data: DataPlan) -> str:
    low, high = ("mean", "std") if data.scale == "standard" else ("min", "max")
    what = "mean and standard deviation" if data.scale == "standard" else "minimum and maximum"
    if not data.categorical:
        return block('''
            def fit_scaling(x):
                """Each feature's $what over the training rows."""
                flat = x.reshape(len(x), -1).astype(np.float64)
                return {"method": "$method", "$low": flat.$low(axis=0).tolist(), "$high": flat.$high(axis=0).tolist()}
            ''', what=what, method=data.scale, low=low, high=high)
    return block('''
        def fit_scaling(x, scaled):
            """Each numeric column's $what over the training rows."""
            flat = x.reshape(len(x), -1).astype(np.float64)
            low = np.where(scaled, flat.$low(axis=0), 0.0)
            high = np.where(scaled, flat.$high(axis=0), 1.0)
            return {"method": "$method", "$low": low.tolist(), "$high": high.tolist()}


        def scaled_features(preprocessing):
            """True for each encoded feature that comes from a numeric column."""
            scaled = []
            for name in preprocessing["columns"] or []:
                encoding = preprocessing["categorical"].get(name)
                if encoding is None:
                    scaled.append(True)
                else:
                    width = len(encoding["categories"]) if encoding["encoding"] == "onehot" else 1
                    scaled += [False] * width
            return np.array(scaled)
        ''', what=what, method=data.scale, low=low, high=high)


def _scale(method: str) -> str:
    if method == "standard":
        spread = 'shift, spread = np.array(scaling["mean"]), np.array(scaling["std"])'
    else:
        spread = 'shift = np.array(scaling["min"])\n    spread = np.array(scaling["max"]) - shift'
    return block('''
        def scale(x, scaling):
            """Scale with the fitted statistics; a feature that never varied is only shifted."""
            flat = x.reshape(len(x), -1).astype(np.float64)
            $spread
            spread = np.where(spread > 0, spread, 1.0)
            return ((flat - shift) / spread).astype(np.float32).reshape(x.shape)
        ''', spread=spread)


def _read_inputs(spec: Any, compiled: Any, data: DataPlan) -> str:
    """``read_inputs(path, ...)`` for predict.py: new samples as the model's input tensors' arrays."""
    many = len(data.inputs) > 1
    args = "path, preprocessing" if data.preprocessing else "path"
    if data.source.reads_csv:
        csv_args = spec.data.args
        if data.categorical:
            columns = "FEATURES" if csv_args.features is not None else "header if name != TARGET"
            read = (f"columns = {{name: [row[header.index(name)] for row in rows] for name in {columns}}}\n"
                    'categories = {name: e["categories"] for name, e in preprocessing["categorical"].items()}\n'
                    "features = encode(columns, categories)")
        else:
            columns = ("[header.index(name) for name in FEATURES]" if csv_args.features is not None
                       else "[i for i, name in enumerate(header) if name != TARGET]")
            read = (f"columns = {columns}\n"
                    "features = np.array([[float(row[i]) for i in columns] for row in rows], dtype=np.float32)")
        lines = ["header, rows = read_csv(path)", *read.split("\n")]
        doc = '"""The feature columns of new rows in a CSV file (the target column may be absent)."""'
    else:
        names = _npz_names(spec, data)
        if many:
            read = "features = {" + ", ".join(f"{literal(n)}: archive[{literal(a)}]" for n, a in names.items()) + "}"
        else:
            read = f"features = archive[{literal(next(iter(names.values())))}]"
        lines = ["with np.load(path, allow_pickle=False) as archive:", "    " + read]
        listed = ", ".join(f"'{a}'" for a in names.values())
        doc = f'"""New samples from an .npz file holding {listed} (no labels)."""'
    lines.append(_model_input(compiled, "features", many))
    if data.scale != "none":
        lines.append('x = scale(x, preprocessing["scale"])')
    lines.append("return x")
    return f"def read_inputs({args}):\n" + indent("\n".join([doc, *lines]))


def _npz_names(spec: Any, data: DataPlan) -> dict[str, str]:
    """Model input name -> array name in the .npz file predict.py reads."""
    args = spec.data.args
    if spec.data.kind == "npz":
        if isinstance(args.x, dict):
            return dict(args.x)
        return {data.inputs[0]: args.x}
    if len(data.inputs) == 1:
        return {data.inputs[0]: "x"}
    return {name: name for name in data.inputs}
