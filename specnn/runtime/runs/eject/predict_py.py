"""The ejected ``predict.py``: new samples in, one prediction per line out (CSV on stdout)."""

from __future__ import annotations

from typing import Any

from specnn.catalog.losses import LOSSES
from specnn.runtime.runs.eject.code import block, module
from specnn.runtime.runs.eject.data_py import DataPlan


def predict_py(spec: Any, compiled: Any, data: DataPlan) -> str:
    task = LOSSES[spec.loss.kind].task
    read = "x = data.read_inputs(path, preprocessing)" if data.preprocessing else "x = data.read_inputs(path)"
    if data.preprocessing:
        read = 'preprocessing = json.loads((HERE / "preprocess.json").read_text())\n    ' + read
    call = "output = model(*(torch.as_tensor(a) for a in x))" if len(data.inputs) > 1 \
        else "output = model(torch.as_tensor(x))"
    if task == "classification":
        answer = block('''
            classes = json.loads((HERE / "meta.json").read_text())["classes"]
            predicted = output.argmax(dim=-1).tolist()
            print("prediction")
            for i in predicted:
                print(classes[i] if classes else i)
            ''')
    elif task == "binary":
        threshold = "0.5" if spec.loss.kind == "BCELoss" else "0.0"
        answer = block('''
            classes = json.loads((HERE / "meta.json").read_text())["classes"]
            predicted = (output.reshape(len(output), -1)[:, 0] > $threshold).long().tolist()
            print("prediction")
            for i in predicted:
                print(classes[i] if classes else i)
            ''', threshold=threshold)
    else:
        answer = block('''
            values = output.reshape(len(output), -1).tolist()
            width = len(values[0])
            print(",".join(f"prediction_{i}" for i in range(width)) if width > 1 else "prediction")
            for row in values:
                print(",".join(repr(v) for v in row))
            ''')
    source = "CSV file (the training's feature columns)" if data.source.reads_csv else ".npz file"
    main = block('''
        def main(path):
            model = $cls()
            model.load_state_dict(torch.load(HERE / "weights.pt", map_location="cpu", weights_only=True))
            model.eval()  # dropout off, batch norm uses its running statistics
            $read
            with torch.inference_mode():
                $call
            $answer
        ''', cls=compiled.class_name, read=read, call=call, answer=answer.replace("\n", "\n    "))
    entry = block('''
        if __name__ == "__main__":
            if len(sys.argv) != 2:
                sys.exit("usage: python predict.py INPUT")
            main(sys.argv[1])
        ''')
    imports = ["import json", "import sys", "from pathlib import Path", "import torch", "import data",
               f"from model import {compiled.class_name}"]
    if task == "regression" and not data.preprocessing:
        imports.remove("import json")
    docstring = (f"Predict with the trained {compiled.class_name}.\n\n"
                 f"`python predict.py INPUT` reads a {source}\n"
                 "and prints one prediction per sample (class names for a classifier). It needs\n"
                 "weights.pt (and meta.json, preprocess.json) from train.py or from the ejected run.\n")
    return module(docstring, imports, "HERE = Path(__file__).resolve().parent", main, entry)
