"""The compiler's passes in order: spec -> graph -> shapes -> source, as one :class:`CompiledModel`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Optional

from specnn.compiler.budget import budget_problems
from specnn.compiler.codegen import GeneratedSource, generate
from specnn.compiler.graph import build_graph
from specnn.compiler.ir import Graph, Shape, TensorType
from specnn.compiler.lints import run_lints
from specnn.compiler.names import why_not_class_name
from specnn.compiler.shapes import infer_shapes
from specnn.compiler.token_ids import synthetic_vocab_problems
from specnn.errors import Problem, SpecError, locate

if TYPE_CHECKING:
    from specnn.spec.models import Spec


@dataclass
class CompiledModel:
    """A checked spec's model: its graph with every shape known, and the generated source.

    Attributes:
        class_name: the generated ``nn.Module`` subclass.
        source: the full text of ``model.py``.
        graph: the typed IR.
        inputs: model input name -> per-sample shape and dtype.
        outputs: output name -> per-sample shape.
        warnings: located problems of severity ``warning``.
        init_lines, forward_lines: node name -> 1-based line in ``source``.
        spec: the spec it came from (for :meth:`resolved_spec`).
    """

    class_name: str
    source: str
    graph: Graph
    inputs: dict[str, TensorType]
    outputs: dict[str, Shape]
    warnings: list[Problem] = field(default_factory=list)
    init_lines: dict[str, int] = field(default_factory=dict)
    forward_lines: dict[str, int] = field(default_factory=dict)
    spec: Any = None

    def resolved_spec(self) -> dict:
        """The spec as a plain JSON-ready dict: what the user wrote, plus every inferred argument.

        Each layer's arguments are those the spec set, and those shape inference filled in
        (``in_features``, ``in_channels`` ...), in the argument model's order.
        """
        data = self.spec.model_dump(mode="json", by_alias=True, exclude_unset=True)
        data = {"specnn": self.spec.specnn, **data}
        layers = data["model"]["layers"]
        for node in self.graph.nodes:
            if node.block is not None:  # a block use: written as given, its arguments are in the block
                continue
            index = node.path[2]
            original = self.spec.model.layers[index].args
            keep = original.model_fields_set | {
                name for name in type(node.args).model_fields if getattr(original, name) != getattr(node.args, name)
            }
            resolved = node.args.model_dump(mode="json")
            layers[index][node.kind] = {k: v for k, v in resolved.items() if k in keep}
        return data

    def parameter_count(self) -> int:
        """Number of parameters, from the catalogue: nothing is built, torch is not imported."""
        return self.graph.parameter_count()


def compile_spec(spec: Spec) -> CompiledModel:
    """Check a spec's model and generate its source.

    Args:
        spec: a :class:`specnn.spec.models.Spec`.

    Returns:
        The compiled model; build it with :func:`specnn.compiler.build.build_model`.

    Raises:
        SpecError: listing every problem found (names, ``from`` references, shapes, dtypes,
            lints of severity ``error``), each located in the spec file, together with the
            warnings (they keep severity ``warning``).
    """
    graph, problems = build_graph(spec.model)
    problems = [*class_name_problems(spec), *problems]
    graph, shape_problems = infer_shapes(graph)
    if not any(p.severity == "error" for p in (*problems, *shape_problems)):
        shape_problems = [*shape_problems, *budget_problems(graph, spec.train.max_parameters),
                          *synthetic_vocab_problems(graph, spec)]
    lint_problems = run_lints(graph, spec)
    located = locate(spec, (*problems, *shape_problems, *lint_problems))
    if any(p.severity == "error" for p in located):
        # The warnings go along: a lint's hint (S107: channels last) often explains the error.
        raise SpecError(sorted(located, key=_document_order))
    generated: GeneratedSource = generate(graph, spec.class_name, _origin(spec.file), _version())
    return CompiledModel(
        class_name=spec.class_name,
        source=generated.text,
        graph=graph,
        inputs=dict(graph.inputs),
        outputs={name: _shape_of(graph, name) for name in graph.outputs},
        warnings=[p for p in located if p.severity == "warning"],
        init_lines=generated.init_lines,
        forward_lines=generated.forward_lines,
        spec=spec,
    )


def class_name_problems(spec: Spec) -> list[Problem]:
    """The generated class's name must define a class that imports and runs (``class class(...)`` does not)."""
    name = spec.class_name
    path = ("model", "class_name") if spec.model.class_name else ("name",)
    why = why_not_class_name(name)
    if why is None and name in spec.model.blocks:
        why = "a block of the model has that name"
    if why is None:
        return []
    return [Problem("name", f"class name {name!r} cannot name the generated model: {why}", path,
                    hint=f"choose another, e.g. '{name.strip('_').title() or 'My'}Model'")]


def _document_order(problem: Problem) -> tuple:
    return (problem.line or 0, problem.col or 0)


def _shape_of(graph: Graph, name: str) -> Shape:
    if name in graph.inputs:
        return graph.inputs[name].shape
    return graph.node(name).shape or ()


def _origin(file: Optional[str]) -> Optional[str]:
    """The spec file as generated code names it: its file name alone.

    Whatever the working directory, or whether the path was given relative or absolute, one
    spec compiles to the same bytes on every machine: no directory ever appears in model.py.
    """
    return PurePath(file).name if file else None


def _version() -> str:
    from specnn import __version__

    return __version__
