"""S107: a Conv2d fed data whose channel dimension looks last (``[H, W, C]``, e.g. ``[28, 28, 1]``).

Conv2d takes ``[channels, height, width]`` per sample. Images from PIL, numpy or TensorFlow come
as ``[height, width, channels]``; declared as such, shapes may still work out (28 "channels" of
28x1 images) and the model trains on nonsense.
"""

from __future__ import annotations

from typing import Any, Optional

from specnn.compiler.ir import Graph, Node, Shape
from specnn.compiler.lints.common import describe, lint_problem
from specnn.errors import Problem

CHANNEL_COUNTS = (1, 3, 4)  # grey, RGB, RGBA
# Layers a model input may pass through on its way to the Conv2d without changing its layout.
SHAPE_KEEPING_ROLES = ("identity", "dropout")


def channels_last_conv(graph: Graph, spec: Any) -> list[Problem]:
    """S107 at each Conv2d whose (unchanged) model input looks like ``[height, width, channels]``."""
    problems = []
    for node in graph.nodes:
        if node.kind != "Conv2d":
            continue
        source = model_input_read(graph, node)
        if source is None:
            continue
        shape = graph.inputs[source].shape
        if looks_channels_last(shape):
            height, width, channels = shape
            problems.append(lint_problem(
                "S107", f"{describe(node)} reads input {source!r} of shape {list(shape)}, whose channel dimension "
                "looks last; Conv2d takes [channels, height, width]", node.path,
                f"if the data is [height, width, channels], add '- Permute: {{dims: [2, 0, 1]}}' before it "
                f"to make it {[channels, height, width]}",
            ))
    return problems


def looks_channels_last(shape: Shape) -> bool:
    """True for ``[H, W, C]`` with C a usual channel count much smaller than H.

    >>> looks_channels_last((28, 28, 1)), looks_channels_last((32, 32, 3)), looks_channels_last((3, 32, 32))
    (True, True, False)
    """
    if len(shape) != 3:
        return False
    first, last = shape[0], shape[-1]
    return last in CHANNEL_COUNTS and first not in CHANNEL_COUNTS and first >= 4 * last


def model_input_read(graph: Graph, node: Node) -> Optional[str]:
    """The graph input a node reads, directly or through shape-keeping layers; None otherwise."""
    while len(node.inputs) == 1:
        name = node.inputs[0]
        if name in graph.inputs:
            return name
        node = graph.node(name)
        if node.layer.role not in SHAPE_KEEPING_ROLES:
            return None
    return None
