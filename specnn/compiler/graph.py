"""Spec -> graph: a spec's ``model`` section becomes one IR :class:`~specnn.compiler.ir.Graph`.

Layers become nodes, each named once (the spec's ``name``, else one the namespace hands out),
``from`` and ``outputs`` references are resolved, and each use of a block gets its body built
with that use's parameter values. Problems are collected, not raised, so one pass reports all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from specnn.catalog.layer_args import NoArgs
from specnn.compiler.blocks import (
    BLOCK_INPUT,
    at_use_site,
    check_definitions,
    recursive_blocks,
    resolve_params,
    substitute_args,
    unknown_block,
)
from specnn.compiler.ir import BlockInstance, BlockUse, Graph, Node, TensorType
from specnn.compiler.names import Namespace, is_attribute_name, is_parameter_name
from specnn.errors import Path, Problem, format_path
from specnn.errors.texts import suggest

@dataclass
class _Builder:
    """State while walking one layers list (the model's, or a block body's) once.

    Attributes:
        prefix: JSON path of the layers list.
        blocks: every block definition; ``skip``: those not to expand (recursive or broken).
        params: parameter values of the block instance being built; None for the model itself.
        seen: problems reported from block bodies so far, before naming the use site: a body
            built for several uses reports each of its problems once.
    """

    inputs: dict[str, TensorType]
    prefix: Path = ("model", "layers")
    blocks: dict[str, Any] = field(default_factory=dict)
    skip: frozenset[str] = frozenset()
    params: Optional[dict[str, Any]] = None
    seen: set = field(default_factory=set)
    namespace: Namespace = field(default_factory=Namespace)
    known: dict[str, str] = field(default_factory=dict)  # spec-visible name -> node/input name
    defined: set[str] = field(default_factory=set)  # spec-visible names a node may read so far
    referenced: set[str] = field(default_factory=set)  # names some `from` reads (even a broken one)
    layers: list[Any] = field(default_factory=list)  # the layers list being walked
    positions: dict[str, int] = field(default_factory=dict)  # user name -> index in `layers`
    problems: list[Problem] = field(default_factory=list)

    def problem(self, code: str, message: str, path: Path, hint: str | None = None) -> None:
        self.problems.append(Problem(code, message, path, hint=hint))


def build_graph(model: Any) -> tuple[Graph, list[Problem]]:
    """Turn a spec's ``model`` section into a graph, collecting (unlocated) problems.

    Args:
        model: a :class:`specnn.spec.models.ModelSpec`.

    Returns:
        The graph and the problems found: bad input names, duplicate node names, unknown
        ``from`` or ``outputs`` names, a ``from`` naming a later node (a cycle, when that node
        reads this one), unused model inputs. Nodes with a bad ``from`` are kept without inputs
        (shape inference skips them quietly).
    """
    inputs = {name: TensorType(tuple(t.shape), t.dtype) for name, t in model.input_tensors.items()}
    blocks = getattr(model, "blocks", None) or {}
    definition_problems = check_definitions(blocks)
    broken = {p.path[2] for p in definition_problems if p.severity == "error" and len(p.path) > 2}
    builder = _Builder(inputs, blocks=blocks, skip=frozenset(broken | recursive_blocks(blocks)))
    builder.problems.extend(definition_problems)
    _add_inputs(builder, model)
    nodes, last = _build_nodes(builder, model.layers, next(iter(inputs)))
    outputs = _resolve_outputs(builder, model.outputs, last)
    _warn_unused(builder, nodes, outputs, warn_inputs=model.inputs is not None)
    return Graph(inputs, tuple(nodes), outputs), builder.problems


def _build_nodes(builder: _Builder, layers: list[Any], first_input: str) -> tuple[list[Node], str]:
    """The nodes of a layers list, each reading the one before unless ``from`` says otherwise."""
    names = _reserve_user_names(builder, layers)
    builder.layers = list(layers)
    builder.positions = {name: i for i, name in enumerate(names) if name is not None}
    nodes: list[Node] = []
    previous = first_input
    for index, spec_node in enumerate(layers):
        if spec_node.block is not None:
            node = _make_block_node(builder, index, spec_node, names[index], previous)
        else:
            node = _make_node(builder, index, spec_node, names[index], previous)
        nodes.append(node)
        previous = node.name
        if names[index] is not None:
            builder.defined.add(names[index])
    return nodes, previous


def _warn_unused(builder: _Builder, nodes: list[Node], outputs: tuple[str, ...], warn_inputs: bool) -> None:
    """A node (or input) nothing reads is computed for nothing: usually a mistyped ``from``.

    An unused node is a warning; an unused model input is an error, since the data must still
    supply it and ``forward`` would take an argument it ignores.
    """
    used = set(outputs).union(builder.referenced, *(n.inputs for n in nodes))
    hint = "feed it to a later node with 'from', or list it in 'outputs'"
    for name in builder.inputs:
        if name not in used and warn_inputs:
            builder.problem("unused", f"input {name!r} is never used", ("model", "inputs", name),
                            hint="feed it to a node with 'from', list it in 'outputs', or remove it from 'inputs'")
    for node in nodes:
        if node.name not in used:
            builder.problems.append(Problem("unused", f"the output of {node.kind} {node.name!r} is never used",
                                            node.path, hint=hint, severity="warning"))


def _add_inputs(builder: _Builder, model: Any) -> None:
    for name in builder.inputs:
        path = ("model", "inputs", name) if model.inputs is not None else ("model", "input")
        # Inputs are forward()'s parameters: shadowing a builtin there (`input`) is harmless.
        if not is_parameter_name(name):
            builder.problem("name", f"input name {name!r} cannot be a Python parameter name", path,
                            hint="use letters, digits and _, not a Python keyword")
        builder.namespace.reserve(name)
        builder.known[name] = name
        builder.defined.add(name)


def _reserve_user_names(builder: _Builder, layers: list[Any]) -> list[Optional[str]]:
    """Claim every ``name`` given in the spec first, so generated names never take them."""
    names: list[Optional[str]] = []
    for index, spec_node in enumerate(layers):
        name = spec_node.name
        path = (*builder.prefix, index, "name")
        if name is None:
            names.append(None)
        elif name in builder.known or builder.namespace.is_taken(name):
            builder.problem("duplicate-name", f"name {name!r} is already used by an earlier node or input", path)
            names.append(None)
        elif not is_attribute_name(name):
            builder.problem("name", f"name {name!r} is reserved in a generated nn.Module", path,
                            hint=f"choose another name, e.g. '{name}_layer'")
            names.append(None)
        else:
            builder.namespace.reserve(name)
            builder.known[name] = name
            names.append(name)
    return names


def _make_node(builder: _Builder, index: int, spec_node: Any, name: Optional[str], previous: str) -> Node:
    kind = spec_node.kind
    name = name or builder.namespace.for_layer(kind)
    path = (*builder.prefix, index, kind)
    inputs = _node_inputs(builder, index, spec_node, name, previous)
    args = spec_node.args
    if builder.params is not None:
        args, message = substitute_args(kind, args, builder.params)
        if args is None:
            # Left without inputs: shape inference skips it, and its readers, quietly.
            builder.problem("type", str(message), path)
            return Node(name, kind, NoArgs(), (), path)
    return Node(name, kind, args, inputs, path)


def _node_inputs(builder: _Builder, index: int, spec_node: Any, name: str, previous: str) -> tuple[str, ...]:
    sources = spec_node.from_
    if sources is None:
        return (previous,)
    listed = [sources] if isinstance(sources, str) else list(sources)
    inputs = tuple(_resolve_from(builder, ref, (*builder.prefix, index, "from"), index) for ref in listed)
    if None in inputs:
        return ()  # a partial input list would only add an arity or shape error to the real one
    return inputs


def _make_block_node(builder: _Builder, index: int, spec_node: Any, name: Optional[str], previous: str) -> Node:
    """A use of a block: ``repeat`` instances of its body, built with this use's parameter values."""
    block_name = spec_node.block
    repeat = spec_node.repeat or 1
    name = name or builder.namespace.numbered("layer" if repeat > 1 else "block")
    use_path = (*builder.prefix, index)
    inputs = _node_inputs(builder, index, spec_node, name, previous)
    definition = builder.blocks.get(block_name)
    instances: tuple[BlockInstance, ...] = ()
    if definition is None:
        if builder.params is None:  # inside a body, check_definitions reported it
            builder.problems.append(unknown_block(block_name, builder.blocks, (*use_path, "block")))
    else:
        params, problems = resolve_params(definition, spec_node, use_path, builder.params)
        builder.problems.extend(problems)
        if params is not None and block_name not in builder.skip:
            body = _build_body(builder, block_name, definition, params, use_path)
            # One instance per copy, all sharing the untyped body: inference types each on its input.
            instances = tuple(BlockInstance(params, body) for _ in range(repeat))
    return Node(name, block_name, NoArgs(), inputs, (*use_path, "block"),
                block=BlockUse(block_name, use_path, instances, definition))


def _build_body(parent: _Builder, block_name: str, definition: Any, params: dict[str, Any], use_path: Path) -> Graph:
    """A block's body as a graph reading one input, ``x`` (``input`` in the spec)."""
    # The input's type is a placeholder: shape inference gives each instance its own.
    inputs = {"x": TensorType((), "float32")}
    builder = _Builder(inputs, prefix=("model", "blocks", block_name, "layers"), blocks=parent.blocks,
                       skip=parent.skip, params=params, seen=parent.seen)
    builder.namespace.reserve("x")
    builder.known[BLOCK_INPUT] = "x"
    builder.defined.add(BLOCK_INPUT)
    nodes, last = _build_nodes(builder, definition.layers, "x")
    _warn_unused(builder, nodes, (last,), warn_inputs=False)
    for problem in builder.problems:
        key = (problem.code, problem.path, problem.message)
        if key not in parent.seen:
            parent.seen.add(key)
            parent.problems.append(at_use_site(problem, block_name, use_path))
    return Graph(inputs, tuple(nodes), (last,))


def _resolve_from(builder: _Builder, ref: str, path: Path, index: int) -> Optional[str]:
    """The node or input that ``ref`` names, or None after reporting why it cannot be read."""
    if ref in builder.known:
        builder.referenced.add(builder.known[ref])
    if ref in builder.defined:
        return builder.known[ref]
    order_hint = "a node reads only model inputs and earlier nodes"
    later = builder.positions.get(ref)
    if later == index:
        builder.problem("cycle", f"'from' names {ref!r}, the node itself", path, hint=f"{order_hint}: break the cycle")
    elif later is not None:
        chain = _cycle(builder, later, index)
        if chain is not None:
            builder.problem("cycle", f"'from' names {ref!r}, which reads this node: the cycle " + " -> ".join(chain),
                            path, hint=f"{order_hint}: break the cycle")
        else:
            builder.problem("order", f"'from' names {ref!r}, which comes later "
                            f"({format_path((*builder.prefix, later))})", path,
                            hint=f"move this node after {ref!r}: {order_hint}")
    else:
        builder.problem("unknown-name", f"'from' names {ref!r} but no input or earlier node has that name", path,
                        hint=_known_hint(ref, builder.known))
    return None


def _reads(builder: _Builder, index: int) -> list[int]:
    """Positions of the nodes in ``builder.layers`` that node ``index`` reads (inputs left out)."""
    sources = builder.layers[index].from_
    if sources is None:
        return [index - 1] if index > 0 else []
    listed = [sources] if isinstance(sources, str) else list(sources)
    return [builder.positions[ref] for ref in listed if ref in builder.positions]


def _cycle(builder: _Builder, start: int, target: int) -> Optional[list[str]]:
    """The cycle target -> start -> ... -> target (as node labels) when ``start`` reads ``target``.

    Node ``target`` reads ``start``, a later node; this follows what ``start`` reads, back through
    the layers list, looking for ``target``. Unnamed nodes are labelled by position.
    """
    labels = {i: name for name, i in builder.positions.items()}
    came_from: dict[int, int] = {start: start}
    stack = [start]
    while stack:
        current = stack.pop()
        for source in _reads(builder, current):
            if source in came_from:
                continue
            came_from[source] = current
            if source == target:
                readers = [target]  # target, the node reading it, ..., start
                while readers[-1] != start:
                    readers.append(came_from[readers[-1]])
                return [labels.get(i, f"layers[{i}]") for i in [target, *reversed(readers[1:]), target]]
            stack.append(source)
    return None


def _resolve_outputs(builder: _Builder, outputs: Optional[list[str]], last: str) -> tuple[str, ...]:
    if outputs is None:
        return (last,)
    resolved = []
    for i, ref in enumerate(outputs):
        if ref in builder.known:
            resolved.append(builder.known[ref])
        else:
            builder.problem("unknown-name", f"output {ref!r} is not an input or a named node",
                            ("model", "outputs", i), hint=_known_hint(ref, builder.known))
    return tuple(resolved)


def _known_hint(ref: str, known: dict[str, str]) -> Optional[str]:
    return suggest(ref, known, listing="known names", empty="give the node a 'name' first")
