"""Python text for the pieces of a generated ``nn.Module``: literals, constructors, ``__init__``
and ``forward`` bodies.

Both the model class (:mod:`specnn.compiler.codegen`) and block classes
(:mod:`specnn.compiler.block_classes`) are written with these. Constructor arguments are
written as people write them: leading ones positionally, the rest as keywords only when they
differ from torch's default (the catalogue's defaults are torch's: a test checks them).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

from specnn.catalog.base import Args, Unpack
from specnn.catalog.layers import LayerDef
from specnn.compiler.ir import Graph, Node, Shape
from specnn.compiler.names import Namespace
from specnn.compiler.wrap import wrap_line

INDENT = "    "


def shape_text(shape: Shape, dtype: str = "float32") -> str:
    """How a batched shape is shown to people: ``(N, 16, 8, 8)``, with the dtype unless float32.

    >>> shape_text((16, 8, 8)), shape_text((12,), "int64")
    ('(N, 16, 8, 8)', '(N, 12) int64')
    """
    text = "(" + ", ".join(["N", *(str(d) for d in shape)]) + ")"
    return text if dtype == "float32" else f"{text} {dtype}"


# ---------------------------------------------------------------------------------------------
# __init__


def init_body(
    graph: Graph, expressions: Optional[dict[str, str]] = None, parameters: Sequence[str] = ()
) -> list[tuple[Optional[str], str]]:
    """``__init__``: one attribute per module node.

    Args:
        graph: the typed graph.
        expressions: node name -> constructor expression, for nodes the layer table cannot
            write (block uses).
        parameters: ``__init__``'s parameters after ``self``, as written (``channels: int``).
    """
    expressions = expressions or {}
    body = _lines(None, f"{INDENT}def __init__({', '.join(['self', *parameters])}):")
    body += _lines(None, f"{INDENT * 2}super().__init__()")
    for node in graph.nodes:
        if node.layer.is_module:
            expression = expressions.get(node.name) or constructor(node.layer, node.args)
            body += _lines(node.name, f"{INDENT * 2}self.{node.name} = {expression}")
    return body



def constructor(layer: LayerDef, args: Args) -> str:
    """The expression that builds a layer, e.g. ``nn.Conv2d(1, 6, 5, padding=2)``.

    A layer whose constructor cannot be written from its arguments alone (TransformerEncoder
    takes a layer instance) provides the expression itself through its ``construct`` hook.
    """
    construct = getattr(layer, "construct", None)
    if construct is not None:
        return construct(args)
    return f"nn.{layer.name}({', '.join(constructor_arguments(layer, args))})"


def constructor_arguments(layer: LayerDef, args: Args) -> list[str]:
    """Constructor arguments as written: positional ones first, then keywords that differ.

    An argument is written when it has no default or differs from torch's default. The
    catalogue's defaults are torch's (a test checks them against the installed torch), except
    those an entry lists in ``torch_defaults`` (specnn's recurrent layers are
    ``batch_first=True``): those are compared with torch's value, so they are always written.
    The catalogue's ``positional`` arguments lead torch's signature in that order (also
    tested); once one is left out, the rest become keywords.
    """
    written: list[str] = []
    positional = True
    for name in _constructor_fields(layer, args):
        value = getattr(args, name)
        info = type(args).model_fields[name]
        default = layer.torch_defaults.get(name, info.default)
        needed = name in layer.torch_defaults or info.is_required() or value != default
        if positional and name in layer.positional and needed:
            written.append(literal(value))
            continue
        positional = False
        if needed:
            written.append(f"{name}={literal(value)}")
    return written


def _constructor_fields(layer: LayerDef, args: Args) -> list[str]:
    """Argument names in call order: the positional ones as listed, then the others as declared."""
    fields = [name for name in type(args).model_fields if name not in layer.spec_only]
    leading = [name for name in layer.positional if name in fields]
    return leading + [name for name in fields if name not in leading]


class Symbol(str):
    """A name in generated code standing for a value, such as a block's ``channels`` parameter.

    >>> literal(Symbol("channels")), literal("channels")
    ('channels', "'channels'")
    """


def literal(value: Any) -> str:
    """A Python literal for an argument value: numbers, strings, booleans, None, tuples, lists.

    >>> literal((3, 3)), literal("same"), literal(1e-05), literal([1, 2])
    ('(3, 3)', "'same'", '1e-05', '[1, 2]')
    """
    if isinstance(value, Symbol):
        return str(value)
    if isinstance(value, tuple):
        inner = ", ".join(literal(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    if value is None or isinstance(value, (bool, int, float, str)):
        return repr(value)
    raise TypeError(f"cannot write {type(value).__name__} value {value!r} as a Python literal")


# ---------------------------------------------------------------------------------------------
# forward


def forward_body(graph: Graph) -> list[tuple[Optional[str], str]]:
    """``forward``: one statement per node, with its output shape as a comment when it is known.

    A module returning a tuple (an LSTM, attention) is unpacked as people write it:
    ``x, _ = self.lstm1(x)`` then ``x = x[:, -1]``.
    """
    chain = graph.is_chain()
    variable = {name: name for name in graph.inputs}
    if chain:
        only = next(iter(graph.inputs))
        variable.update({node.name: only for node in graph.nodes})
    else:
        variable.update({node.name: node.name for node in graph.nodes})
    namespace = Namespace()  # for temporaries such as `h_n`: never a node's or an input's name
    for name in variable:
        namespace.reserve(name)
    body = _lines(None, f"{INDENT}def forward(self, {', '.join(graph.inputs)}):")
    for node in graph.nodes:
        result = call_expression(node, [variable[name] for name in node.inputs])
        # A block's body may be used on several shapes: then no single comment is true.
        comment = f"  # {shape_text(node.shape, node.dtype or 'float32')}" if node.shape is not None else ""
        out = variable[node.name]
        if isinstance(result, Unpack):
            body += _unpacked(node.name, out, result, comment, namespace)
        else:
            body += _lines(node.name, f"{INDENT * 2}{out} = {result}{comment}")
    returned = ", ".join(variable[name] for name in graph.outputs)
    return body + _lines(None, f"{INDENT * 2}return {returned}")


def _unpacked(name: str, out: str, result: Unpack, comment: str, namespace: Namespace) -> list[tuple[Optional[str], str]]:
    state = namespace.fresh("h_n") if "{state}" in result.target else ""

    def fill(text: str) -> str:
        return text.replace("{out}", out).replace("{state}", state)

    if result.then is None:
        return _lines(name, f"{INDENT * 2}{fill(result.target)} = {result.call}{comment}")
    return [*_lines(name, f"{INDENT * 2}{fill(result.target)} = {result.call}"),
            *_lines(None, f"{INDENT * 2}{out} = {fill(result.then)}{comment}")]


def _lines(name: Optional[str], statement: str) -> list[tuple[Optional[str], str]]:
    """A statement's physical lines (wrapped under 100 characters); the first one names the node."""
    return [(name if i == 0 else None, line) for i, line in enumerate(wrap_line(statement))]


def call_expression(node: Node, input_names: Sequence[str]) -> Union[str, Unpack]:
    """How ``forward`` applies a node: the layer's ``call`` hook, else ``self.attr(x, ...)``.

    A graph operation (``is_module`` False) without a hook is written as ``torch.<kind>(...)``.
    """
    layer = node.layer
    attribute = f"self.{node.name}" if layer.is_module else ""
    if layer.call is not None:
        return layer.call(attribute, list(input_names), node.args)
    if layer.is_module:
        return f"{attribute}({', '.join(input_names)})"
    keywords = [f"{k}={literal(v)}" for k, v in node.args.changed().items() if k not in layer.spec_only]
    return f"torch.{layer.name}({', '.join([*input_names, *keywords])})"
