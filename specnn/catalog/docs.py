"""README tables written from the catalogue, so the documented lists are the real ones.

``python -m specnn.catalog.docs`` prints them; README.md holds each between ``<!-- catalogue:NAME -->``
markers, and ``tests/test_readme_tables.py`` fails when they drift apart.
"""

from __future__ import annotations

from typing import Any

from specnn.catalog.base import Args
from specnn.catalog.losses import LOSSES
from specnn.catalog.optimizers import OPTIMIZERS

TARGET_WORDS = {
    ("classification", "index"): "class indices: string labels are encoded in sorted order, integer labels kept",
    ("binary", "float"): "0/1 floats shaped like the output (one logit per sample, or one per label)",
    ("regression", "float"): "numbers shaped like the output",
}


def _arguments(args: type[Args]) -> str:
    fields = args.model_fields.items()
    return ", ".join(f"`{name}`" + ("" if info.is_required() else f" = {_value(info.default)}")
                     for name, info in fields) or "—"


def _value(value: Any) -> str:
    return "null" if value is None else str(list(value) if isinstance(value, tuple) else value).replace("True", "true").replace("False", "false")


def loss_table() -> str:
    rows = ["| loss | task | targets | arguments (torch's defaults) |", "|---|---|---|---|"]
    for d in LOSSES.values():
        rows.append(f"| `{d.name}` | {d.task} | {TARGET_WORDS[d.task, d.target]} | {_arguments(d.args)} |")
    return "\n".join(rows)


def optimizer_table() -> str:
    rows = ["| optimizer | arguments (torch's defaults) |", "|---|---|"]
    rows += [f"| `{d.name}` | {_arguments(d.args)} |" for d in OPTIMIZERS.values()]
    return "\n".join(rows)


TABLES = {"losses": loss_table, "optimizers": optimizer_table}


if __name__ == "__main__":
    for name, table in TABLES.items():
        print(f"<!-- catalogue:{name} -->\n{table()}\n<!-- /catalogue:{name} -->\n")
