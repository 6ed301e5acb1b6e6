"""The compiler's intermediate representation: a flat graph of named nodes.

A spec's ``layers`` list becomes a :class:`Graph`. Each node reads the previous node (or the
model input), unless its ``from`` names others: model inputs or earlier nodes. Every node gets a
unique, legal Python identifier (the spec's ``name``, else one from :data:`NAME_STEMS`), which is
both its attribute name in the generated module and its variable name in a graph's ``forward``.

Passes never mutate a graph; they return a new one (``dataclasses.replace``).
"""

from __future__ import annotations

import builtins
import functools
import keyword
from dataclasses import dataclass, field
from typing import Any, Optional

from specnn.catalog.base import Args
from specnn.catalog.layer_args import NoArgs
from specnn.catalog.layers import LAYERS, LayerDef
from specnn.compiler.blocks import (
    BLOCK_INPUT,
    BlockInstance,
    BlockUse,
    at_use_site,
    check_definitions,
    recursive_blocks,
    resolve_params,
    substitute_args,
    unknown_block,
)
from specnn.errors import Path, Problem, format_path
from specnn.errors.texts import suggest

Shape = tuple[int, ...]

# Names a generated module must not use as attributes: nn.Module's own members (an attribute
# called `eval` or `to` would silently replace the method) and what generated code refers to.
RESERVED = frozenset({"self", "torch", "nn", "forward", "super"})


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


# ---------------------------------------------------------------------------------------------
# Naming


# Role -> (stem, numbered). A stem of None means the layer's own name in lower case (relu, gelu).
NAME_STEMS: dict[str, tuple[Optional[str], bool]] = {
    "linear": ("fc", True),
    "conv": ("conv", True),
    "pool": ("pool", True),
    "norm": ("bn", True),
    "dropout": ("dropout", True),
    "reshape": (None, False),
    "activation": (None, True),
    "output": (None, False),
    "identity": ("identity", True),
    "recurrent": (None, True),
    "attention": ("attn", True),
    "embedding": ("embed", True),
    "operation": (None, True),
}


@functools.lru_cache(maxsize=1)
def _module_members() -> frozenset[str]:
    """Every attribute of ``nn.Module``: a node called ``eval`` or ``to`` would replace the method.

    Code generation imports torch anyway (to read constructor defaults), so this costs nothing extra.
    """
    from torch import nn

    return frozenset(dir(nn.Module))


class Namespace:
    """Hands out unique, legal identifiers that never shadow keywords, builtins or reserved names.

    >>> ns = Namespace()
    >>> ns.numbered("fc"), ns.numbered("fc"), ns.fresh("list"), ns.fresh("flatten"), ns.fresh("flatten")
    ('fc1', 'fc2', 'list_', 'flatten', 'flatten_1')
    """

    def __init__(self, reserved: frozenset[str] = RESERVED):
        self._taken: set[str] = set(reserved)
        self._counters: dict[str, int] = {}

    def reserve(self, name: str) -> None:
        self._taken.add(name)

    def is_taken(self, name: str) -> bool:
        return name in self._taken

    def is_free(self, name: str) -> bool:
        return name not in self._taken and not _is_forbidden(name)

    def fresh(self, candidate: str) -> str:
        """``candidate`` itself when free, else ``candidate_1``, ``candidate_2``, ..."""
        if _is_forbidden(candidate):
            candidate += "_"
        name, n = candidate, 0
        while name in self._taken:
            n += 1
            name = f"{candidate}_{n}"
        self._taken.add(name)
        return name

    def numbered(self, stem: str) -> str:
        """The next free ``stem1``, ``stem2``, ..."""
        n = self._counters.get(stem, 0)
        while True:
            n += 1
            name = f"{stem}{n}"
            if name not in self._taken:
                self._counters[stem] = n
                self._taken.add(name)
                return name


def _is_forbidden(name: str) -> bool:
    return keyword.iskeyword(name) or hasattr(builtins, name) or name in RESERVED


def generated_name(kind: str, namespace: Namespace) -> str:
    """A readable attribute name for a node of this kind: fc1, conv2, relu1, flatten, ..."""
    stem, numbered = NAME_STEMS.get(LAYERS[kind].role, (None, True))
    stem = stem or kind.lower()
    return namespace.numbered(stem) if numbered else namespace.fresh(stem)


# ---------------------------------------------------------------------------------------------
# Spec -> Graph


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
        if not name.isidentifier() or keyword.iskeyword(name) or name in RESERVED:
            builder.problem("name", f"input name {name!r} cannot be a Python parameter name", path,
                            hint="use letters, digits and _, not a Python keyword")
        builder.namespace.reserve(name)
        builder.known[name] = name
        builder.defined.add(name)


def _reserve_user_names(builder: _Builder, layers: list[Any]) -> list[Optional[str]]:
    """Claim every ``name`` given in the spec first, so generated names never take them."""
    names: list[Optional[str]] = []
    members = _module_members()
    for index, spec_node in enumerate(layers):
        name = spec_node.name
        path = (*builder.prefix, index, "name")
        if name is None:
            names.append(None)
        elif name in builder.known or builder.namespace.is_taken(name):
            builder.problem("duplicate-name", f"name {name!r} is already used by an earlier node or input", path)
            names.append(None)
        elif keyword.iskeyword(name) or name in RESERVED or name in members:
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
    name = name or generated_name(kind, builder.namespace)
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
