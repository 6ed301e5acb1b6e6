"""The ejected project's README.md: what each file is, the commands, and what was left out."""

from __future__ import annotations

from typing import Any

from specnn.runtime.runs.eject.data_py import DataPlan


def readme(spec: Any, compiled: Any, data: DataPlan, origin: str, version: str, from_run: bool) -> str:
    source = data.source
    needs = ["torch", "numpy"] + (["scikit-learn"] if spec.data.kind == "sklearn" else [])
    predict_input = "new.csv" if source.reads_csv else "new.npz"
    lines = [
        f"# {spec.name}",
        "",
        f"Plain PyTorch, ejected from `{origin}` by specnn {version}. It needs only "
        + ", ".join(needs) + ": no specnn.",
        "",
        "| file | what it does |",
        "|---|---|",
        f"| `model.py` | `{compiled.class_name}`, the `nn.Module` specnn generated |",
        f"| `data.py` | reads {source.description}, makes the seeded train/validation split"
        + (" and fits the preprocessing on the training rows" if data.preprocessing else "") + " |",
        "| `train.py` | the training loop: writes `weights.pt`, `metrics.jsonl`, `checkpoints/`"
        + (", `preprocess.json`" if data.preprocessing else "") + ", `meta.json` |",
        f"| `predict.py` | one prediction per sample of a {'CSV' if source.reads_csv else '.npz'} file |",
        "",
        "## Commands",
        "",
        "```",
        "python train.py",
        f"python predict.py {predict_input}",
        "```",
        "",
    ]
    if from_run:
        lines += ["The run's `weights.pt`, `meta.json` (and `preprocess.json`) were copied here, so `predict.py`",
                  "works before training again; `train.py` replaces them.", ""]
    if source.files:
        lines += ["`data.py` reads " + ", ".join(f"`{f.name}`" for f in source.files)
                  + " through `DATA_FILE`, a path relative to this folder: move the two together, or edit it.", ""]
    lines += [
        "## Reproducing specnn",
        "",
        f"On the CPU, `python train.py` gives weights equal (`torch.equal`) to `specnn train {origin}`",
        "with the same seed and the same torch and numpy versions: it seeds Python, numpy and torch,",
        "builds the model, loads and splits the data and shuffles each epoch in the same order, and",
        "steps the optimizer and the learning-rate schedule at the same moments. On a GPU the two agree",
        "as closely as two specnn runs do (see specnn's README on determinism).",
        "",
        "Not ejected:",
        "",
        "- DDP launching (`specnn train --nproc N`, torchrun): `train.py` is one process.",
        "- Resuming (`specnn train --resume`): `checkpoints/last.pt` holds the model, optimizer and epoch;",
        "  continuing from it is left to you.",
    ]
    if spec.train.tensorboard:
        lines.append("- TensorBoard event files (`train.tensorboard`): `metrics.jsonl` holds the same values.")
    if spec.export:
        formats = ", ".join(e if isinstance(e, str) else "onnx" for e in spec.export)
        lines.append(f"- Exports ({formats}): `specnn export` does them from a run folder.")
    return "\n".join(lines) + "\n"
