"""The compiler's intermediate representation: a flat graph of named nodes.

A spec's ``layers`` list becomes a :class:`Graph` (see :mod:`specnn.compiler.graph`). Each node
reads the previous node (or the model input), unless its ``from`` names others: model inputs or
earlier nodes. Every node has a unique, legal Python identifier (see :mod:`specnn.compiler.names`),
which is both its attribute name in the generated module and its variable name in ``forward``.

Passes never mutate a graph; they return a new one (``dataclasses.replace``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Optional

from specnn.catalog.base import Args
from specnn.catalog.layer_args import NoArgs
from specnn.catalog.layers import LAYERS, LayerDef
from specnn.errors import Path

Shape = tuple[int, ...]


@dataclass(frozen=True)
class TensorType:
    """A per-sample shape (no batch dimension) and a dtype name such as ``float32``."""

    shape: Shape
    dtype: str


@dataclass(frozen=True)
class Node:
    """One layer or operation.

    Attributes:
        name: unique identifier: attribute name in ``__init__`` and variable name in a graph.
        kind: the catalogue key, e.g. ``Linear``.
        args: the layer's arguments; after shape inference, with inferred values filled in.
        inputs: names of the nodes or model inputs it reads, in order.
        path: JSON path of the node in the spec, e.g. ``("model", "layers", 0, "Linear")``.
        shape: per-sample output shape; None until inferred (or when inference failed).
        dtype: output dtype name; None until inferred.
        block: for a use of a block (``kind`` is then the block's class name), its instances.
    """

    name: str
    kind: str
    args: Args
    inputs: tuple[str, ...]
    path: Path
    shape: Optional[Shape] = None
    dtype: Optional[str] = None
    block: Optional[BlockUse] = None

    @property
    def layer(self) -> LayerDef:
        if self.block is not None:
            return block_layer(self.kind)
        return LAYERS[self.kind]

    def parameter_count(self) -> int:
        """Parameters of the node's module, from the catalogue (a block use: all its copies).

        Needs the arguments shape inference fills in (``in_features`` ...).
        """
        if self.block is not None:
            return sum(n.parameter_count() for i in self.block.instances for n in i.body.nodes)
        return self.layer.parameters(self.args) if self.layer.is_module else 0


def _block_rule(args: Args, shape: Shape) -> tuple[Shape, Args]:
    raise NotImplementedError("a block's shape is its body's: see specnn.compiler.shapes")


@functools.lru_cache(maxsize=None)
def block_layer(class_name: str) -> LayerDef:
    """What passes that read ``node.layer`` see of a block use: a module of role ``block``."""
    return LayerDef(class_name, NoArgs, _block_rule, "block")  # type: ignore[arg-type]


@dataclass(frozen=True)
class Graph:
    """Model inputs (name -> type), nodes in execution order, and output names."""

    inputs: dict[str, TensorType]
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]

    def node(self, name: str) -> Node:
        return self.by_name[name]

    @functools.cached_property
    def by_name(self) -> dict[str, Node]:
        return {n.name: n for n in self.nodes}

    def parameter_count(self) -> int:
        """Parameters of the whole model, as ``sum(p.numel() for p in model.parameters())``."""
        return sum(node.parameter_count() for node in self.nodes)

    def is_chain(self) -> bool:
        """True when each node reads only the one before it and only the last is returned.

        A chain's forward reuses one variable (``x = self.fc1(x)``) as people write it.
        """
        if len(self.inputs) != 1 or len(self.outputs) != 1 or not self.nodes:
            return False
        previous = next(iter(self.inputs))
        for node in self.nodes:
            if node.inputs != (previous,):
                return False
            previous = node.name
        return self.outputs == (previous,)


@dataclass(frozen=True, eq=False)
class BlockInstance:
    """One copy of a block in the model: its parameter values and its body graph.

    Compared by identity: code generation keys each instance's constructor arguments by it.
    """

    params: dict[str, Any]
    body: Graph


@dataclass(frozen=True, eq=False)
class BlockUse:
    """A node that uses a block.

    Attributes:
        definition: the block's name (its class name in generated code).
        use_path: the using node's path, e.g. ``("model", "layers", 1)``.
        instances: ``repeat`` instances, applied one after the other.
        spec: the definition as written (:class:`specnn.spec.models.BlockDef`): which arguments
            are ``$references``, literals or left to inference.
    """

    definition: str
    use_path: Path
    instances: tuple[BlockInstance, ...]
    spec: Any = None
