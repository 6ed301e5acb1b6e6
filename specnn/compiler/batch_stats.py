"""Layers that need two or more values per channel in every training batch: BatchNorm over one value.

BatchNorm normalizes each channel over the batch (and over the positions of a sample). Where a
sample holds one value per channel (``BatchNorm1d`` on ``[features]``, or on ``[C, 1]``), a training
batch of one sample leaves nothing to normalize over and torch stops mid-run with "Expected more
than 1 value per channel when training". The trainer knows the batch sizes once the data is read
(``runtime/data/batch_sizes.py``); this finds the layers. Nothing here imports torch.
"""

from __future__ import annotations

import math

from specnn.compiler.ir import Graph, Node

BATCH_NORMS = ("BatchNorm1d", "BatchNorm2d")


def one_value_per_channel(graph: Graph) -> list[Node]:
    """The BatchNorm nodes (block bodies too) whose input holds one value per channel per sample."""
    found: list[Node] = []
    for node in graph.nodes:
        if node.block is not None:
            for instance in node.block.instances:
                found += one_value_per_channel(instance.body)
        elif node.kind in BATCH_NORMS and node.inputs:
            source = node.inputs[0]
            shape = graph.inputs[source].shape if source in graph.inputs else graph.node(source).shape
            if shape is not None and math.prod(shape[1:]) == 1:
                found.append(node)
    return list({n.path: n for n in found}.values())  # one per definition: repeats share a path
