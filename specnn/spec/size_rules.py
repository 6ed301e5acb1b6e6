"""Rules on how large a spec's model (once its blocks are expanded) and its synthetic data are, checked
before either is built.

``repeat`` multiplies through nested blocks (a block repeated 1000 times, whose body repeats another
1000 times, is a million layers), so each use is bounded by the schema and the product here, before
the compiler builds a node per layer. Nothing here imports torch.
"""

from __future__ import annotations

import math
from typing import Any

from specnn.catalog.limits import MAX_EXPANDED_LAYERS, MAX_SYNTHETIC_VALUES
from specnn.errors import Problem


def expanded_layers(layers: list, blocks: dict[str, Any], memo: dict[str, int], visiting: frozenset = frozenset()) -> int:
    """Layers in ``layers`` with every block use expanded (a recursive or unknown block counts 0:
    the compiler reports it).

    >>> from types import SimpleNamespace as N
    >>> inner = N(layers=[N(block=None, repeat=None)] * 3)
    >>> outer = N(layers=[N(block="Inner", repeat=10)])
    >>> expanded_layers([N(block="Outer", repeat=5), N(block=None, repeat=None)], {"Inner": inner, "Outer": outer}, {})
    151
    """
    total = 0
    for node in layers:
        if node.block is None:
            total += 1
            continue
        name = node.block
        if name not in blocks or name in visiting:
            continue
        if name not in memo:
            memo[name] = expanded_layers(blocks[name].layers, blocks, memo, visiting | {name})
        total += (node.repeat or 1) * memo[name]
    return total


def size_problems(spec: Any) -> list[Problem]:
    """The model's expanded size and the synthetic data's, each against its limit."""
    return expanded_size_problems(spec) + synthetic_size_problems(spec)


def expanded_size_problems(spec: Any) -> list[Problem]:
    """A problem at the largest block use when the model expands past :data:`MAX_EXPANDED_LAYERS`."""
    model = spec.model
    memo: dict[str, int] = {}
    per_node = [expanded_layers([node], model.blocks, memo) for node in model.layers]
    total = sum(per_node)
    if total <= MAX_EXPANDED_LAYERS:
        return []
    index = max(range(len(per_node)), key=per_node.__getitem__)
    node = model.layers[index]
    path = ("model", "layers", index, "repeat" if node.repeat else "block")
    return [Problem(
        "size", f"the model expands to {total:,} layers, more than {MAX_EXPANDED_LAYERS:,}; this use of block "
        f"{node.block} alone gives {per_node[index]:,}", path,
        hint="use fewer repeats, or fewer layers in the block",
    )]


def synthetic_values(args: Any) -> tuple[int, int]:
    """(values drawn per sample, values in the tables drawn from) of synthetic data.

    >>> from specnn.catalog.sources import SyntheticArgs
    >>> synthetic_values(SyntheticArgs(samples=10, shape=[3, 4], classes=5))
    (13, 60)
    """
    inputs = args.inputs.values() if args.inputs is not None else [args]
    per_sample = sum(math.prod(i.shape) for i in inputs)
    width = args.classes if args.task == "classification" else args.outputs
    # classification: a mean per class (or a distribution over the vocabulary); regression: a linear map
    tables = sum(width * (i.vocab if i.vocab is not None else math.prod(i.shape)) for i in inputs)
    return per_sample + (1 if args.task == "classification" else args.outputs), tables


def synthetic_size_problems(spec: Any) -> list[Problem]:
    """Synthetic data generating more than :data:`MAX_SYNTHETIC_VALUES` values, refused before numpy allocates."""
    if spec.data.kind != "synthetic":
        return []
    args = spec.data.args
    per_sample, tables = synthetic_values(args)
    total = args.samples * per_sample + tables
    if total <= MAX_SYNTHETIC_VALUES:
        return []
    if args.samples * per_sample < tables:
        key, row = ("classes", "class") if args.task == "classification" else ("outputs", "output")
        what = f"{tables:,} in the tables it draws from, one row per {row}"
    else:
        what = f"{args.samples:,} samples of {per_sample:,} values"
        key = "samples" if args.samples >= per_sample else ("shape" if args.inputs is None else "inputs")
    return [Problem(
        "size", f"the synthetic data would hold {total:,} values ({what}), more than {MAX_SYNTHETIC_VALUES:,}",
        ("data", "synthetic", key), hint="use fewer samples or smaller shapes; data this large belongs in a file (csv, npz, parquet)",
    )]
