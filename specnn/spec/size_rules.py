"""Rules on how large a spec's model is once its blocks are expanded, checked before it is built.

``repeat`` multiplies through nested blocks (a block repeated 1000 times, whose body repeats another
1000 times, is a million layers), so each use is bounded by the schema and the product here, before
the compiler builds a node per layer. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from specnn.catalog.limits import MAX_EXPANDED_LAYERS
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
