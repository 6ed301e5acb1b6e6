"""The fuzzer's cases that reach training: random valid models, and broken data files of every source.

Imported by ``benchmarks/fuzz.py``. A valid variant is a spec assembled from the catalogue (an
input of one kind, a stack of layers fitting it, a head, a loss, an optimizer, a scheduler, train
options), right often enough that most pass validate and are then trained; a broken data case is a
sound spec whose data file (CSV, NPZ, Parquet, an image folder) is damaged in one way. Every
generator is seeded: ``rng -> {file name: text, bytes, or a special kind}``.
"""

from __future__ import annotations

import io
import json
import random
import zipfile

CLASSES = 3

# ---------------------------------------------------------------------------------------------
# valid variants: a model from the catalogue, sized small so one epoch takes a fraction of a second

ACTIVATIONS = ["ReLU", "GELU", "Tanh", "SiLU", "LeakyReLU", "ELU", "SELU", "Mish", "Softplus", "Hardswish",
               "ReLU6", "PReLU", "Sigmoid"]


def _vector_layer(rng: random.Random) -> dict:
    choice = rng.choice(["Linear", "act", "Dropout", "BatchNorm1d", "LayerNorm", "Identity"])
    if choice == "Linear":
        return {"Linear": {"out_features": rng.randint(1, 16), "bias": rng.random() < 0.8}}
    if choice == "act":
        return {rng.choice(ACTIVATIONS): None}
    if choice == "Dropout":
        return {"Dropout": {"p": rng.choice([0.0, 0.1, 0.5, 0.99])}}
    if choice == "LayerNorm":
        return {"LayerNorm": None}
    return {choice: None}


def _sequence_layer(rng: random.Random) -> dict:
    choice = rng.choice(["rnn", "rnn", "TransformerEncoderLayer", "Linear", "act", "LayerNorm", "Dropout"])
    if choice == "rnn":
        return {rng.choice(["LSTM", "GRU", "RNN"]): {"hidden_size": rng.choice([2, 4, 8]), "output": "sequence",
                                                      "num_layers": rng.randint(1, 2),
                                                      "bidirectional": rng.random() < 0.3}}
    if choice == "TransformerEncoderLayer":
        return {"TransformerEncoderLayer": {"nhead": rng.choice([1, 2, 4]), "dim_feedforward": rng.choice([8, 16]),
                                            "dropout": 0.0}}
    if choice == "Linear":
        return {"Linear": {"out_features": rng.choice([4, 8])}}
    return _vector_layer(rng) if choice != "LayerNorm" else {"LayerNorm": None}


def _image_layer(rng: random.Random) -> dict:
    choice = rng.choice(["Conv2d", "Conv2d", "BatchNorm2d", "MaxPool2d", "AvgPool2d", "act", "Dropout2d",
                         "GroupNorm", "InstanceNorm2d"])
    if choice == "Conv2d":
        return {"Conv2d": {"out_channels": rng.choice([2, 4, 8]), "kernel_size": rng.choice([1, 3]),
                           "padding": rng.choice([0, 1, "same"]) if rng.random() < 0.8 else 1,
                           "stride": 1}}
    if choice in ("MaxPool2d", "AvgPool2d"):
        return {choice: {"kernel_size": 2}}
    if choice == "GroupNorm":
        return {"GroupNorm": {"num_groups": rng.choice([1, 2])}}
    if choice == "act":
        return {rng.choice(ACTIVATIONS): None}
    return {choice: None}


def _model(rng: random.Random, kind: str, width: int) -> tuple[dict, dict]:
    """(model section, synthetic data args) for an input kind and an output width."""
    layers: list = []
    if kind == "vector":
        features = rng.randint(1, 12)
        model = {"input": [features]}
        data = {"shape": [features]}
        layers += [_vector_layer(rng) for _ in range(rng.randint(0, 4))]
    elif kind == "sequence":
        steps, features = rng.randint(1, 8), rng.choice([2, 4, 8])
        model = {"input": [steps, features]}
        data = {"shape": [steps, features]}
        layers += [_sequence_layer(rng) for _ in range(rng.randint(1, 3))]
        layers.append(rng.choice([{"mean": {"dim": 0}}, {"max": {"dim": 0}}, {"Flatten": None}]))
    elif kind == "image":
        channels, size = rng.choice([1, 3]), rng.choice([4, 8])
        model = {"input": [channels, size, size]}
        data = {"shape": [channels, size, size]}
        layers += [_image_layer(rng) for _ in range(rng.randint(1, 4))]
        layers.append(rng.choice([{"Flatten": None}, {"AdaptiveAvgPool2d": {"output_size": 1}}]))
        layers.append({"Flatten": None})
    else:  # tokens
        steps, vocab = rng.randint(1, 8), rng.choice([2, 5, 20])
        model = {"inputs": {"tokens": {"shape": [steps], "dtype": "int64"}}}
        data = {"shape": [steps], "vocab": vocab}
        # now and then a table smaller than the vocabulary: refused at validate, never an IndexError
        table = vocab if rng.random() < 0.85 else max(1, vocab - rng.randint(1, 3))
        layers.append({"Embedding": {"num_embeddings": table, "embedding_dim": rng.choice([2, 4, 8])}})
        layers += [_sequence_layer(rng) for _ in range(rng.randint(0, 2))]
        layers.append(rng.choice([{"mean": {"dim": 0}}, {"Flatten": None}]))
    layers.append({"Linear": {"out_features": width}})
    model["layers"] = layers
    return model, data


LOSSES = {
    "CrossEntropyLoss": ("classification", lambda rng: {"label_smoothing": rng.choice([0.0, 0.1])}),
    "NLLLoss": ("classification", lambda rng: {}),
    "BCEWithLogitsLoss": ("binary", lambda rng: {}),
    "BCELoss": ("binary", lambda rng: {}),
    "MSELoss": ("regression", lambda rng: {}),
    "L1Loss": ("regression", lambda rng: {}),
    "HuberLoss": ("regression", lambda rng: {"delta": rng.choice([0.5, 1.0])}),
    "SmoothL1Loss": ("regression", lambda rng: {"beta": rng.choice([0.5, 1.0])}),
}
METRICS = {"classification": ["accuracy", "f1", "precision", "recall", "confusion_matrix", "top_k_accuracy"],
           "binary": ["accuracy", "f1"], "regression": ["mse", "mae", "r2"]}


def _optimizer(rng: random.Random) -> dict:
    lr = rng.choice([1e-4, 1e-3, 1e-2, 0.1, 1.0, 1e3])  # 1e3 diverges: a NaN loss must stop the run cleanly
    kind = rng.choice(["SGD", "Adam", "AdamW", "RMSprop"])
    args: dict = {"lr": lr}
    if kind == "SGD" and rng.random() < 0.5:
        args.update(momentum=0.9, nesterov=rng.random() < 0.5)
    if kind in ("Adam", "AdamW") and rng.random() < 0.3:
        args.update(betas=[0.5, 0.9], amsgrad=rng.random() < 0.5)
    if rng.random() < 0.3:
        args["weight_decay"] = 0.01
    return {kind: args}


def _scheduler(rng: random.Random, epochs: int) -> dict | None:
    choice = rng.choice([None, None, "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "OneCycleLR",
                         "ReduceLROnPlateau"])
    args = {"StepLR": {"step_size": 1}, "MultiStepLR": {"milestones": [1, 2]}, "ExponentialLR": {"gamma": 0.9},
            "CosineAnnealingLR": {}, "OneCycleLR": {"max_lr": 0.01}, "ReduceLROnPlateau": {"patience": 0}}
    if choice is None:
        return None
    scheduler: dict = {choice: args[choice]}
    if rng.random() < 0.2:
        scheduler["warmup"] = {"epochs": rng.randint(1, epochs + 1)}
    return scheduler


def _train(rng: random.Random, task: str) -> dict:
    epochs = rng.randint(1, 2)
    train: dict = {"epochs": epochs, "batch_size": rng.choice([1, 4, 16, 64, 1000])}
    if rng.random() < 0.3:
        train["metrics"] = rng.sample(METRICS[task], k=rng.randint(1, 2))
    if rng.random() < 0.2:
        train["accumulate"] = rng.randint(2, 3)
    if rng.random() < 0.2:
        train["clip_grad"] = rng.choice([{"norm": 1.0}, {"value": 0.5}])
    if rng.random() < 0.15:
        train["precision"] = "bf16"
    if rng.random() < 0.2:
        train["early_stopping"] = {"patience": 0, "restore_best_weights": rng.random() < 0.5}
    if rng.random() < 0.1:
        train["shuffle"] = False
    if rng.random() < 0.1:
        train["deterministic"] = True
    scheduler = _scheduler(rng, epochs)
    if scheduler is not None:
        train["scheduler"] = scheduler
    return train


def valid_variant(rng: random.Random) -> dict:
    loss = rng.choice(list(LOSSES))
    task, loss_args = LOSSES[loss]
    kind = rng.choice(["vector", "vector", "sequence", "image", "tokens"])
    width = {"classification": CLASSES, "binary": 1, "regression": rng.randint(1, 3)}[task]
    model, data = _model(rng, kind, width)
    if loss == "NLLLoss":
        model["layers"].append({"LogSoftmax": {"dim": 0}})
    if loss == "BCELoss":
        model["layers"].append({"Sigmoid": None})
    data.update(samples=rng.choice([2, 9, 40, 120]), noise=rng.choice([0.0, 0.1, 1.0]))
    if task == "regression":
        data.update(task="regression", outputs=width)
    else:
        data["classes"] = CLASSES if task == "classification" else 2
    spec = {
        "name": "variant", "seed": rng.randrange(2**32),
        "model": model,
        "data": {"synthetic": data, "validation_split": rng.choice([0.0, 0.2, 0.5]),
                 "test_split": rng.choice([0.0, 0.0, 0.2])},
        "loss": {loss: loss_args(rng)},
        "optimizer": _optimizer(rng),
        "train": _train(rng, task),
    }
    if task != "regression" and rng.random() < 0.2:
        spec["data"]["stratify"] = True
    if rng.random() < 0.2:
        spec["data"]["preprocess"] = {"scale": rng.choice(["standard", "minmax"])}
    if rng.random() < 0.15:
        spec["export"] = [rng.choice(["state_dict", "safetensors", "onnx"])]
    return {"spec.json": json.dumps(spec, indent=1), "probe.npz": _probe_npz(rng, data)}


PROBES = ["fine", "fine", "wrong shape", "flat", "nan", "inf", "empty", "strings", "int", "ids past vocab",
          "negative ids", "no x", "huge", "not npz", "one row"]


def _probe_npz(rng: random.Random, data: dict) -> bytes:
    """Rows for ``specnn predict`` on the trained run: right, or wrong in one way."""
    import numpy as np

    kind, shape = rng.choice(PROBES), tuple(data["shape"])
    n = 1 if kind == "one row" else 5
    if "vocab" in data:
        x = np.random.default_rng(0).integers(0, data["vocab"], size=(n, *shape))
    else:
        x = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)
    x = {"wrong shape": lambda: np.ones((n, *shape, 2), x.dtype), "flat": lambda: x.reshape(n, -1),
         "nan": lambda: np.full(x.shape, np.nan), "inf": lambda: np.full(x.shape, np.inf), "empty": lambda: x[:0],
         "strings": lambda: x.astype(str), "int": lambda: x.astype(np.int64), "huge": lambda: np.full(x.shape, 1e300),
         "ids past vocab": lambda: x + 1000, "negative ids": lambda: x - 1000}.get(kind, lambda: x)()
    buffer = io.BytesIO()
    np.savez(buffer, **({"features": x} if kind == "no x" else {"x": x}))
    return b"not an npz" if kind == "not npz" else buffer.getvalue()


def graph_variant(rng: random.Random) -> dict:
    """Two inputs in branches joined by concat, add or multiply; a residual block repeated; ``from`` wiring."""
    width, steps, feats = rng.choice([4, 8]), rng.randint(1, 6), rng.choice([2, 3])
    second = rng.choice(["sequence", "tokens", "vector"])
    inputs = {"a": {"shape": [rng.randint(1, 6)]}}
    data_inputs = {"a": {"shape": inputs["a"]["shape"]}}
    layers: list = [{"Linear": {"out_features": width}, "name": "a_fc", "from": "a"}, {"ReLU": None, "name": "a_out"}]
    if second == "sequence":
        inputs["b"] = data_inputs["b"] = {"shape": [steps, feats]}
        layers.append({rng.choice(["GRU", "LSTM"]): {"hidden_size": width, "output": rng.choice(["last", "hidden"])},
                       "name": "b_out", "from": "b"})
    elif second == "tokens":
        vocab = rng.choice([3, 10])
        inputs["b"] = {"shape": [steps], "dtype": "int64"}
        data_inputs["b"] = {"shape": [steps], "vocab": vocab}
        layers += [{"Embedding": {"num_embeddings": vocab, "embedding_dim": width}, "from": "b"},
                   {"mean": {"dim": 0}, "name": "b_out"}]
    else:
        inputs["b"] = data_inputs["b"] = {"shape": [feats]}
        layers.append({"Linear": {"out_features": width}, "name": "b_out", "from": "b"})
    join = rng.choice(["concat", "add", "multiply"])
    layers.append({join: {"dim": 0} if join == "concat" else None, "name": "joined",
                   "from": rng.choice([["a_out", "b_out"], ["b_out", "a_out"], ["a_out", "a_out", "b_out"],
                                       ["a_out", "nowhere"], "b"])})
    blocks = {}
    if rng.random() < 0.6:
        blocks["Residual"] = {"params": {"width": width * (2 if join == "concat" else 1)}, "layers": [
            {"Linear": {"out_features": "$width"}}, {rng.choice(ACTIVATIONS): None, "name": "h"},
            {"add": None, "from": rng.choice([["input", "h"], ["h", "input"], ["x", "h"]])}]}
        layers.append({"block": "Residual", "repeat": rng.randint(1, 3)})
    layers.append({"Linear": {"out_features": CLASSES}, "name": "logits"})
    model = {"inputs": inputs, "layers": layers, **({"blocks": blocks} if blocks else {})}
    if rng.random() < 0.2:
        model["outputs"] = rng.choice([["logits"], ["joined"], ["logits", "a_out"]])
    spec = {"name": "graph", "seed": rng.randrange(1000), "model": model,
            "data": {"synthetic": {"inputs": data_inputs, "classes": CLASSES, "samples": rng.choice([10, 50])},
                     "validation_split": 0.2},
            "loss": {"CrossEntropyLoss": None}, "optimizer": _optimizer(rng),
            "train": {"epochs": 1, "batch_size": rng.choice([2, 8])}}
    probe = io.BytesIO()
    import numpy as np
    arrays = {"a": np.ones((3, *inputs["a"]["shape"]), np.float32), "b": np.ones((3, *inputs["b"]["shape"]),
              np.int64 if second == "tokens" else np.float32)}
    if rng.random() < 0.3:
        arrays.pop(rng.choice(["a", "b"]))
    np.savez(probe, **arrays)
    return {"spec.json": json.dumps(spec, indent=1), "probe.npz": probe.getvalue()}


# ---------------------------------------------------------------------------------------------
# broken data files, through validate --data and train

TABLE_SPEC = """\
name: table
model: {{input: [2], layers: [{{Linear: {{out_features: 8}}}}, {{ReLU: }}, {{Linear: {{out_features: {classes}}}}}]}}
data: {{{source}: {{path: {path}, target: y{extra}}}, validation_split: 0.25{preprocess}}}
loss: {{{loss}: }}
optimizer: {{Adam: {{lr: 0.01}}}}
train: {{epochs: 1, batch_size: 4}}
"""


def _table_spec(rng: random.Random, source: str, path: str, extra: str = "") -> str:
    loss, classes = rng.choice([("CrossEntropyLoss", 2), ("CrossEntropyLoss", 2), ("MSELoss", 1)])
    preprocess = rng.choice(["", "", ", preprocess: {scale: standard}", ", preprocess: {missing: mean}"])
    return TABLE_SPEC.format(source=source, path=path, extra=extra, classes=classes, loss=loss, preprocess=preprocess)


def _rows(rng: random.Random, n: int = 12) -> list[list[str]]:
    return [[f"{rng.uniform(-3, 3):.3f}", f"{rng.uniform(-3, 3):.3f}", str(i % 2)] for i in range(n)]


CSV_DAMAGE = ["ragged long", "ragged short", "text cell", "nan", "inf", "empty", "header only", "huge field",
              "binary", "semicolons", "nul", "bom", "crlf", "blank lines", "repeated header", "quoted newline",
              "unclosed quote", "one row", "negative label", "label 7", "float labels", "string labels",
              "empty cells", "only target", "huge number", "many columns", "latin1", "spaces", "target text"]


def broken_csv_train(rng: random.Random) -> dict:
    return {"spec.yaml": _table_spec(rng, "csv", "data.csv"), "data.csv": _damaged_csv(rng),
            "probe.csv": _damaged_csv(rng), "--data": True}


def _damaged_csv(rng: random.Random) -> bytes:
    kind = rng.choice(CSV_DAMAGE)
    header, rows = ["a", "b", "y"], _rows(rng)
    i = rng.randrange(len(rows))
    simple = {"text cell": (0, "abc"), "nan": (1, "nan"), "inf": (0, "inf"), "negative label": (2, "-1"),
              "label 7": (2, "7"), "empty cells": (1, ""), "huge number": (0, "1e999"), "target text": (2, "x")}
    if kind in simple:
        column, value = simple[kind]
        rows[i][column] = value
    elif kind == "ragged long":
        rows[i].append("9")
    elif kind == "ragged short":
        rows[i].pop()
    elif kind == "huge field":
        rows[i][0] = "9" * rng.choice([5000, 200_000])
    elif kind == "one row":
        rows = rows[:1]
    elif kind == "float labels":
        rows = [[a, b, f"{int(y) + 0.5}"] for a, b, y in rows]
    elif kind == "string labels":
        rows = [[a, b, rng.choice(["cat", "dog", "eel"])] for a, b, _ in rows]
    elif kind == "repeated header":
        header = ["a", "a", "y"]
    elif kind == "only target":
        header, rows = ["y"], [[y] for *_, y in rows]
    elif kind == "many columns":
        header = [f"c{j}" for j in range(rng.choice([50, 3000]))] + ["y"]
        rows = [["1"] * (len(header) - 1) + [str(j % 2)] for j in range(4)]
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    if kind == "empty":
        text = ""
    elif kind == "header only":
        text = ",".join(header) + "\n"
    elif kind == "semicolons":
        text = text.replace(",", ";")
    elif kind == "crlf":
        text = text.replace("\n", "\r\n")
    elif kind == "blank lines":
        text = text.replace("\n", "\n\n", 3)
    elif kind == "quoted newline":
        text = text.replace(rows[i][0], f'"{rows[i][0]}\n5"', 1)
    elif kind == "unclosed quote":
        text = text.replace(rows[i][0], f'"{rows[i][0]}', 1)
    elif kind == "spaces":
        text = text.replace(",", " , ")
    data = text.encode()
    if kind == "binary":
        data = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3000)))
    elif kind == "nul":
        data = data.replace(b",", b"\x00,", 2)
    elif kind == "bom":
        data = b"\xef\xbb\xbf" + data
    elif kind == "latin1":
        data = data.replace(b"a,b", b"\xe4,b")
    return data


NPZ_DAMAGE = ["wrong key", "object array", "strings x", "complex", "float16", "bool", "lengths differ", "0-d",
              "y 2-d", "y 3-d", "empty", "not a zip", "truncated", "pickled", "x 1-d", "x 4 features", "nan x",
              "int ids", "huge label", "negative label", "y strings", "fine"]


def broken_npz(rng: random.Random) -> dict:
    return {"spec.yaml": _table_spec(rng, "npz", "data.npz").replace(", target: y", ""), "data.npz": _damaged_npz(rng),
            "probe.npz": _damaged_npz(rng), "--data": True}


def _damaged_npz(rng: random.Random) -> bytes:
    import numpy as np

    kind = rng.choice(NPZ_DAMAGE)
    n = 12
    x = np.random.default_rng(rng.randrange(2**32)).standard_normal((n, 2)).astype(np.float32)
    y = np.arange(n) % 2
    arrays = {"x": x, "y": y}
    changes = {
        "wrong key": lambda: {"features": x, "y": y}, "strings x": lambda: {"x": x.astype(str), "y": y},
        "complex": lambda: {"x": x.astype(np.complex64), "y": y}, "float16": lambda: {"x": x.astype(np.float16), "y": y},
        "bool": lambda: {"x": x > 0, "y": y.astype(bool)}, "lengths differ": lambda: {"x": x[:5], "y": y},
        "0-d": lambda: {"x": np.float32(1.0), "y": np.int64(1)}, "y 2-d": lambda: {"x": x, "y": np.stack([y, y], 1)},
        "y 3-d": lambda: {"x": x, "y": y.reshape(n, 1, 1)}, "empty": lambda: {"x": x[:0], "y": y[:0]},
        "x 1-d": lambda: {"x": x[:, 0], "y": y}, "x 4 features": lambda: {"x": np.ones((n, 4)), "y": y},
        "nan x": lambda: {"x": np.where(x > 1, np.nan, x), "y": y}, "int ids": lambda: {"x": (x * 100).astype(int), "y": y},
        "huge label": lambda: {"x": x, "y": np.where(y == 1, 2**40, 0)}, "negative label": lambda: {"x": x, "y": y - 1},
        "y strings": lambda: {"x": x, "y": np.array(["a", "b"] * (n // 2))},
    }
    if kind in changes:
        arrays = changes[kind]()
    buffer = io.BytesIO()
    if kind == "object array":
        np.savez(buffer, x=np.array([[1, "a"]] * n, dtype=object), y=y)
    elif kind == "pickled":
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("x.npy", b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (2,), }"
                             + b" " * 40 + b"\n" + b"\x80\x04K\x01.")
            archive.writestr("y.npy", b"garbage")
    else:
        np.savez(buffer, **arrays)
    data = buffer.getvalue()
    if kind == "not a zip":
        data = b"this is not an npz file\n"
    elif kind == "truncated":
        data = data[:rng.randrange(1, len(data))]
    return data


PARQUET_DAMAGE = ["strings", "nulls", "list column", "timestamps", "bool", "corrupt", "empty table", "no target",
                  "int8 label", "dictionary", "decimal", "fine", "nested struct", "nan label"]


def broken_parquet(rng: random.Random) -> dict:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return broken_csv_train(rng)
    return {"spec.yaml": _table_spec(rng, "parquet", "data.parquet"), "data.parquet": _damaged_parquet(rng),
            "probe.parquet": _damaged_parquet(rng), "--data": True}


def _damaged_parquet(rng: random.Random) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    kind = rng.choice(PARQUET_DAMAGE)
    n = 12
    a = [rng.uniform(-1, 1) for _ in range(n)]
    b = [rng.uniform(-1, 1) for _ in range(n)]
    y = [i % 2 for i in range(n)]
    columns: dict = {"a": pa.array(a), "b": pa.array(b), "y": pa.array(y)}
    if kind == "strings":
        columns["a"] = pa.array([str(v) for v in a])
    elif kind == "nulls":
        columns["b"] = pa.array([None if i % 3 == 0 else v for i, v in enumerate(b)])
    elif kind == "list column":
        columns["a"] = pa.array([[v, v] for v in a])
    elif kind == "timestamps":
        columns["a"] = pa.array(range(n), type=pa.timestamp("s"))
    elif kind == "bool":
        columns["a"] = pa.array([v > 0 for v in a])
    elif kind == "empty table":
        columns = {k: v.slice(0, 0) for k, v in columns.items()}
    elif kind == "no target":
        del columns["y"]
    elif kind == "int8 label":
        columns["y"] = pa.array(y, type=pa.int8())
    elif kind == "dictionary":
        columns["a"] = pa.array([rng.choice(["u", "v"]) for _ in a]).dictionary_encode()
    elif kind == "decimal":
        import decimal
        columns["a"] = pa.array([decimal.Decimal(f"{v:.2f}") for v in a])
    elif kind == "nested struct":
        columns["a"] = pa.array([{"p": v} for v in a])
    elif kind == "nan label":
        columns["y"] = pa.array([float("nan") if i == 3 else float(v) for i, v in enumerate(y)])
    buffer = io.BytesIO()
    pq.write_table(pa.table(columns), buffer)
    data = buffer.getvalue()
    if kind == "corrupt":
        at = rng.randrange(len(data))
        data = data[:at] + bytes(rng.randrange(256) for _ in range(16)) + data[at + 16:]
    return data


IMAGE_SPEC = """\
name: images
model:
  input: [{channels}, 8, 8]
  layers:
    - Conv2d: {{out_channels: 4, kernel_size: 3, padding: 1}}
    - ReLU:
    - Flatten:
    - Linear: {{out_features: 2}}
data:
  images: {{path: pics, channels: {channels}{size}}}
  validation_split: 0.25
loss: {{CrossEntropyLoss: }}
optimizer: {{Adam: {{lr: 0.01}}}}
train: {{epochs: 1, batch_size: 4}}
"""

IMAGE_DAMAGE = ["truncated", "zero bytes", "garbage", "cmyk", "rgba", "palette", "16-bit", "other size", "one class",
                "empty class", "no classes", "text as png", "huge header", "gif", "fine", "nested folder",
                "hidden file", "huge size"]


def _png(rng: random.Random, mode: str = "RGB", size: tuple[int, int] = (8, 8), fmt: str = "PNG") -> bytes:
    from PIL import Image

    color = tuple(rng.randrange(256) for _ in range(len(mode) if mode in ("RGB", "RGBA", "CMYK") else 1))
    buffer = io.BytesIO()
    image = Image.new(mode, size, color if len(color) > 1 else color[0])
    image.save(buffer, format=fmt if mode != "CMYK" else "JPEG")
    return buffer.getvalue()


def broken_images(rng: random.Random) -> dict:
    try:
        import PIL  # noqa: F401
    except ImportError:
        return broken_csv_train(rng)
    kind = rng.choice(IMAGE_DAMAGE)
    files: dict = {"pics": "dir", "pics/cat": "dir", "pics/dog": "dir"}
    for label in ("cat", "dog"):
        for j in range(4):
            files[f"pics/{label}/{j}.png"] = _png(rng)
    victim = f"pics/{rng.choice(['cat', 'dog'])}/{rng.randrange(4)}.png"
    replace = {
        "truncated": lambda: files[victim][:rng.randrange(1, len(files[victim]))], "zero bytes": lambda: b"",
        "garbage": lambda: bytes(rng.randrange(256) for _ in range(300)), "cmyk": lambda: _png(rng, "CMYK"),
        "rgba": lambda: _png(rng, "RGBA"), "palette": lambda: _png(rng, "P"), "16-bit": lambda: _png(rng, "I;16"),
        "other size": lambda: _png(rng, size=(9, 5)), "text as png": lambda: b"hello, I am not a picture\n",
        "gif": lambda: _png(rng, "P", fmt="GIF"),
        # a PNG header claiming 100000 x 100000 pixels: the decompression-bomb guard, not 30 GB of memory
        "huge header": lambda: files[victim][:16] + (100000).to_bytes(4, "big") * 2 + files[victim][24:],
    }
    if kind in replace:
        files[victim] = replace[kind]()
    elif kind == "one class":
        files = {k: v for k, v in files.items() if not k.startswith("pics/dog")}
    elif kind == "empty class":
        files = {k: v for k, v in files.items() if not k.startswith("pics/dog/")}
    elif kind == "no classes":
        files = {"pics": "dir"}
    elif kind == "nested folder":
        files["pics/cat/inner"] = "dir"
        files["pics/cat/inner/x.png"] = _png(rng)
    elif kind == "hidden file":
        files["pics/cat/.DS_Store"] = b"\x00\x00\x00\x01Bud1"
    size = ", size: [100000, 100000]" if kind == "huge size" else rng.choice(["", ", size: [8, 8]"])
    channels = rng.choice([1, 3])
    probe = rng.choice([lambda: _png(rng), lambda: _png(rng, "RGBA", (3, 30)), lambda: b"",
                        lambda: _png(rng)[:40], lambda: _png(rng, "I;16")])()
    return {"spec.yaml": IMAGE_SPEC.format(channels=channels, size=size), **files, "probe.png": probe,
            "--data": True}
