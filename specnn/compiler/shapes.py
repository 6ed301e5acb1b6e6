"""Shape inference: the per-sample shape and dtype of every node, and inferred arguments.

Walks the graph once in order, calling each layer's ``LayerDef.infer``. A failing node becomes
a located problem and gets no shape; nodes that read it are skipped quietly (their own problem
would only repeat the first), so several independent mistakes are reported in one go.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import pydantic

from specnn.catalog.layers import LayerDef, ShapeMismatch
from specnn.compiler.blocks import at_use_site
from specnn.compiler.ir import Graph, Node, TensorType
from specnn.errors import Problem

# The dtypes a tensor may have between layers (torch's names for them).
DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "bool")
FLOAT_DTYPES = ("float32", "float64", "float16", "bfloat16")


def infer_shapes(graph: Graph) -> tuple[Graph, list[Problem]]:
    """Fill ``shape``, ``dtype`` and inferred args of every node.

    Args:
        graph: a graph from :func:`specnn.compiler.ir.build_graph`.

    Returns:
        The graph with types filled in where inference succeeded, and the (unlocated) problems.
    """
    known: dict[str, TensorType] = dict(graph.inputs)
    problems: list[Problem] = []
    nodes = []
    for node in graph.nodes:
        if node.block is not None:
            node, block_problems = _infer_block(node, known)
            problems += block_problems
        else:
            node, problem = _infer_node(node, known)
            if problem is not None:
                problems.append(problem)
        if node.shape is not None:
            known[node.name] = TensorType(node.shape, node.dtype or "float32")
        nodes.append(node)
    return replace(graph, nodes=tuple(nodes)), problems


def _infer_node(node: Node, known: dict[str, TensorType]) -> tuple[Node, Optional[Problem]]:
    if any(name not in known for name in node.inputs) or not node.inputs:
        # An input failed earlier (already reported) or `from` named nothing valid.
        return node, None
    types = [known[name] for name in node.inputs]
    layer = node.layer
    dtype, problem = _check_dtypes(node, layer, types)
    if problem is not None:
        return node, problem
    try:
        shape, args = layer.infer(node.args, [t.shape for t in types])
    except ShapeMismatch as error:
        return node, Problem("shape", _name_layer(node.kind, error.message), node.path, hint=error.hint)
    except pydantic.ValidationError as error:
        return node, Problem("type", f"{node.kind}: {_pydantic_message(error)}", node.path)
    return replace(node, shape=tuple(shape), args=args, dtype=dtype), None


def _infer_block(node: Node, known: dict[str, TensorType]) -> tuple[Node, list[Problem]]:
    """Type each instance of a block use on its own input: copy k reads copy k-1's output.

    A problem inside the body is located in the block definition and names this use; the
    copies after a failing one are not inferred (their problems would repeat it).
    """
    use = node.block
    if len(node.inputs) > 1 and all(name in known for name in node.inputs):
        return node, [Problem("shape", f"block {use.definition} takes one input, got {len(node.inputs)}",
                              node.path, hint="join the inputs first, e.g. with add or concat")]
    if len(node.inputs) != 1 or node.inputs[0] not in known or not use.instances:
        return node, []  # a bad `from` or a broken definition, already reported
    current = known[node.inputs[0]]
    typed = []
    for copy, instance in enumerate(use.instances):
        body, problems = infer_shapes(replace(instance.body, inputs={"x": current}))
        if problems:
            copies = len(use.instances)
            return node, [at_use_site(p, use.definition, use.use_path, copy, copies) for p in problems]
        typed.append(replace(instance, body=body))
        output = body.node(body.outputs[0]) if body.outputs[0] != "x" else None
        current = TensorType(output.shape, output.dtype) if output is not None else current
    block = replace(use, instances=tuple(typed))
    return replace(node, block=block, shape=current.shape, dtype=current.dtype), []


def _check_dtypes(node: Node, layer: LayerDef, types: list[TensorType]) -> tuple[str, Optional[Problem]]:
    """The node's output dtype, or a problem when an input has a dtype the layer cannot take.

    A layer with ``input_dtype`` (Embedding: int64) maps it to float32 features; any other layer
    needs floating-point inputs and keeps their dtype.
    """
    for t, source in zip(types, node.inputs):
        if t.dtype not in DTYPES:
            return "", Problem("dtype", f"unknown dtype {t.dtype!r} for {source!r}", node.path,
                               hint="known dtypes: " + ", ".join(DTYPES))
        wanted = layer.input_dtype
        if wanted is not None and t.dtype != wanted:
            return "", Problem("dtype", f"{node.kind} needs {wanted} input, but {source!r} is {t.dtype}", node.path)
        if wanted is None and t.dtype not in FLOAT_DTYPES:
            return "", Problem("dtype", f"{node.kind} needs floating-point input, but {source!r} is {t.dtype}",
                               node.path, hint="an int64 input (token ids) needs an Embedding layer first")
    if layer.input_dtype is not None:
        return "float32", None
    return types[0].dtype, None


def _name_layer(kind: str, message: str) -> str:
    return message if message.startswith(kind) else f"{kind}: {message}"


def _pydantic_message(error: pydantic.ValidationError) -> str:
    parts = []
    for detail in error.errors():
        where = ".".join(str(x) for x in detail["loc"])
        parts.append(f"{where}: {detail['msg']}" if where else detail["msg"])
    return "; ".join(parts)
