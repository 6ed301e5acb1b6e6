"""Code generation for blocks: one module-level ``nn.Module`` class per block definition.

The class is written once for every instance of the block in the model. Each argument of a
layer in its body is written as:

- the parameter's name, where the spec wrote ``$param``;
- the value, where the spec wrote one, or where inference gave every instance the same value;
- a parameter's name, where inference gave every instance that parameter's value
  (``nn.Conv2d(channels, channels, 3)`` after a first conv that made ``channels`` channels);
- otherwise an extra constructor argument (``in_channels``) whose value each use passes.

So ``ResidualBlock(16)`` in the model's ``__init__`` reads as a person writes it, and a block used
on inputs of different shapes still gets one class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional, Sequence

from specnn.compiler.blocks import reference
from specnn.compiler.emit import INDENT, Symbol, forward_body, init_body, literal, shape_text
from specnn.compiler.names import is_parameter_name
from specnn.compiler.wrap import docstring
from specnn.compiler.ir import BlockInstance, Graph, Node, TensorType

@dataclass
class ClassPlan:
    """One block class: its constructor parameters, each instance's arguments, and its source.

    Attributes:
        name: the class name (the block's name).
        parameters: constructor parameter names: the block's parameters, then inferred extras.
        block_params: how many of ``parameters`` are the block's own.
        arguments: ``id(instance)`` -> that instance's values, in ``parameters`` order.
        source: the class's lines.
    """

    name: str
    parameters: list[str]
    block_params: int
    arguments: dict[int, list[Any]] = field(default_factory=dict)
    source: list[str] = field(default_factory=list)


def block_classes(graph: Graph) -> dict[str, ClassPlan]:
    """A plan per block used in ``graph`` (nested ones too), each defined before its users."""
    instances: dict[str, list[BlockInstance]] = {}
    specs: dict[str, Any] = {}
    _collect(graph, instances, specs)
    plans: dict[str, ClassPlan] = {}
    for name, found in instances.items():
        plans[name] = _plan(name, found, specs[name], plans)
    return plans


def _collect(graph: Graph, instances: dict[str, list[BlockInstance]], specs: dict[str, Any]) -> None:
    # Post-order: a block's nested blocks are recorded before it, so their classes come first.
    for node in graph.nodes:
        if node.block is not None:
            for instance in node.block.instances:
                _collect(instance.body, instances, specs)
                instances.setdefault(node.block.definition, []).append(instance)
                specs[node.block.definition] = node.block.spec


def use_expression(node: Node, plans: dict[str, ClassPlan], values: Optional[Sequence[list[Any]]] = None) -> str:
    """The constructor of a block use: ``ResidualBlock(16)``, or ``nn.Sequential(...)`` for a repeat.

    Args:
        node: the block-use node.
        plans: every block's plan.
        values: per instance, the constructor values to write; default: the instance's own.
    """
    plan = plans[node.block.definition]
    instances = node.block.instances
    values = values if values is not None else [plan.arguments[id(i)] for i in instances]
    calls = [_call(plan, v) for v in values]
    return calls[0] if len(calls) == 1 else f"nn.Sequential({', '.join(calls)})"


def _call(plan: ClassPlan, values: list[Any]) -> str:
    positional = [literal(v) for v in values[: plan.block_params]]
    keywords = [f"{n}={literal(v)}" for n, v in zip(plan.parameters[plan.block_params:], values[plan.block_params:])]
    return f"{plan.name}({', '.join(positional + keywords)})"


# ---------------------------------------------------------------------------------------------
# Planning one class


@dataclass
class _Signature:
    """The constructor parameters of a class being planned, and each instance's values."""

    params: dict[str, list[Any]]  # block parameter -> value per instance
    extras: dict[str, list[Any]] = field(default_factory=dict)  # inferred -> value per instance

    def symbolize(self, argument: str, node_name: str, values: list[Any]) -> Any:
        """What to write for an inferred argument with these per-instance values."""
        for name, known in (*self.params.items(), *self.extras.items()):
            if _same(values, known):
                return Symbol(name)
        if _same(values, [values[0]] * len(values)):
            return values[0]
        name = argument
        if not is_parameter_name(name) or name in self.params or name in self.extras:
            name = f"{node_name}_{argument}"
        while name in self.params or name in self.extras:
            name += "_"
        self.extras[name] = values
        return Symbol(name)


def _same(a: list[Any], b: list[Any]) -> bool:
    # True == 1 in Python; a bool parameter must not stand for an integer argument.
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b))


def _plan(name: str, instances: list[BlockInstance], spec: Any, plans: dict[str, ClassPlan]) -> ClassPlan:
    signature = _Signature({p: [i.params[p] for i in instances] for p in spec.params})
    nodes: list[Node] = []
    uses: dict[str, str] = {}
    for index, first in enumerate(instances[0].body.nodes):
        column = [i.body.nodes[index] for i in instances]
        template = spec.layers[index]
        node = replace(first, shape=_common(n.shape for n in column), dtype=_common(n.dtype for n in column))
        if first.block is not None:
            uses[first.name] = _nested_use(signature, template, column, plans)
        else:
            node = replace(node, args=_symbolic_args(signature, template, column))
        nodes.append(node)
    body = instances[0].body
    inputs = [i.body.inputs["x"] for i in instances]
    body = replace(body, inputs={"x": TensorType(_common(t.shape for t in inputs), inputs[0].dtype)},
                   nodes=tuple(nodes))
    plan = ClassPlan(name, [*signature.params, *signature.extras], len(signature.params))
    for i, instance in enumerate(instances):
        plan.arguments[id(instance)] = [v[i] for v in (*signature.params.values(), *signature.extras.values())]
    plan.source = _class_source(plan, body, signature, uses)
    return plan


def _common(values: Any) -> Any:
    """The value every instance shares, else None."""
    values = list(values)
    return values[0] if all(v == values[0] for v in values) else None


def _symbolic_args(signature: _Signature, template: Any, column: list[Node]) -> Any:
    """The first instance's arguments, with names where the code must read a parameter."""
    args = column[0].args
    written = template.args.model_fields_set
    update = {}
    for argument, info in type(args).model_fields.items():
        values = [getattr(n.args, argument) for n in column]
        if argument in written:
            ref = reference(getattr(template.args, argument))
            if ref is not None:
                update[argument] = Symbol(ref)
        elif not all(v == info.default for v in values):
            value = signature.symbolize(argument, column[0].name, values)
            if isinstance(value, Symbol):
                update[argument] = value
    return args.model_copy(update=update)


def _nested_use(signature: _Signature, template: Any, column: list[Node], plans: dict[str, ClassPlan]) -> str:
    """The constructor of a block used inside this block, in terms of this block's parameters."""
    inner = plans[column[0].block.definition]
    given = template.params or {}
    per_copy = []
    for copy in range(len(column[0].block.instances)):
        rows = [inner.arguments[id(n.block.instances[copy])] for n in column]
        written = []
        for slot, parameter in enumerate(inner.parameters):
            values = [row[slot] for row in rows]
            ref = reference(given.get(parameter)) if slot < inner.block_params else None
            if ref is not None:
                written.append(Symbol(ref))
            elif slot < inner.block_params:
                written.append(values[0])  # a literal, or the default: the same in every instance
            else:
                written.append(signature.symbolize(parameter, column[0].name, values))
        per_copy.append(written)
    return use_expression(column[0], plans, per_copy)


def _class_source(plan: ClassPlan, body: Graph, signature: _Signature, uses: dict[str, str]) -> list[str]:
    parameters = []
    for name, values in (*signature.params.items(), *signature.extras.items()):
        annotation = _annotation(values)
        parameters.append(f"{name}: {annotation}" if annotation else name)
    lines = [f"class {plan.name}(nn.Module):", *docstring(_docstring(plan, body), INDENT), ""]
    lines += [text for _, text in init_body(body, uses, parameters)]
    lines.append("")
    lines += [text for _, text in forward_body(body)]
    return lines


def _annotation(values: list[Any]) -> Optional[str]:
    kinds = {type(v) for v in values}
    if len(kinds) != 1:
        return None
    kind = kinds.pop()
    return kind.__name__ if kind in (bool, int, float, str, tuple, list) else None


def _docstring(plan: ClassPlan, body: Graph) -> str:
    own = ", ".join(plan.parameters[: plan.block_params])
    text = f"Block {plan.name}({own}) of the spec."
    shape = body.inputs["x"].shape
    output = body.node(body.outputs[0]).shape if body.outputs[0] != "x" else shape
    if shape is not None and output is not None:
        text += f" Input x: {shape_text(shape)}. Output: {shape_text(output)}."
    return text
