"""README's lists of losses and optimizers are the catalogue's, written by specnn.catalog.docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from specnn.catalog.docs import TABLES
from specnn.catalog.losses import LOSSES
from specnn.catalog.optimizers import OPTIMIZERS

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize("name", list(TABLES))
def test_readme_table_is_the_generated_one(name):
    found = re.search(rf"<!-- catalogue:{name} -->\n(.*?)\n<!-- /catalogue:{name} -->", README.read_text(), re.S)
    assert found is not None, f"README lacks the {name} table (python -m specnn.catalog.docs prints it)"
    assert found.group(1) == TABLES[name]()


def test_the_tables_name_every_loss_and_optimizer():
    text = TABLES["losses"]() + TABLES["optimizers"]()
    assert all(f"| `{name}` |" in text for name in [*LOSSES, *OPTIMIZERS])


def test_the_readme_recipe_for_preprocess_json_gives_specnns_predictions(tmp_path, monkeypatch):
    import csv
    import sys

    import specnn

    examples = README.parent / "examples"
    text = (examples / "iris.yaml").read_text().replace("epochs: 60", "epochs: 3")
    text = text.replace("path: data/iris.csv", f"path: {examples / 'data' / 'iris.csv'}")
    text = text.replace("  validation_split:", "  preprocess: {scale: standard}\n  validation_split:")
    assert "scale: standard" in text
    (tmp_path / "iris.yaml").write_text(text.replace("export: [state_dict, onnx]", "export: []"))
    run = specnn.train(specnn.load_spec(tmp_path / "iris.yaml"), out=tmp_path / "run", quiet=True)
    recipe = re.search(r"```python\n# apply preprocess.json outside specnn\n(.*?)```", README.read_text(), re.S).group(1)
    assert 'folder = "runs/iris-mlp"' in recipe
    with open(examples / "data" / "iris.csv") as f:
        table = list(csv.DictReader(f))
    columns = [c for c in table[0] if c != "species"]
    rows = [[float(r[c]) for c in columns] for r in table]
    monkeypatch.syspath_prepend(str(run.path))
    monkeypatch.delitem(sys.modules, "model", raising=False)
    scope = {"rows": rows}
    exec(recipe.replace('"runs/iris-mlp"', repr(str(run.path))), scope)  # noqa: S102 - the README's own code
    assert scope["labels"] == specnn.predict(run, examples / "data" / "iris.csv").labels
    sys.modules.pop("model", None)
