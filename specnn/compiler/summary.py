"""A model summary, like Keras's ``summary()``: one row per node, and parameter totals.

Parameter counts come from the catalogue (each layer entry's ``parameters`` formula, checked
against torch's modules by the catalogue tests), so a summary needs neither torch nor memory:
the rows add up to exactly ``sum(p.numel() for p in model.parameters())``. Given a built model
(a loaded run, say, with some layers frozen), the counts are read from its modules instead, so
the trainable count is the model's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from specnn.compiler.ir import Graph, Node
from specnn.compiler.pipeline import CompiledModel

BYTES_PER_FLOAT32 = 4


@dataclass(frozen=True)
class Row:
    """One node (or model input) of the summary.

    Attributes:
        name: the node's attribute / variable name.
        type: its layer type (``Linear``), ``input`` for a model input, or a block's class name.
        shape: per-sample output shape (no batch dimension); None if unknown.
        dtype: output dtype name.
        params: number of parameters of the node's module (0 for operations and inputs).
        trainable: how many of them require gradients.
        inputs: names of the nodes or inputs it reads.
        repeat: for a block use, how many instances of the block run one after the other
            (``repeat:`` in the spec); 1 for every other row.
    """

    name: str
    type: str
    shape: Optional[list[int]]
    dtype: str
    params: int
    trainable: int
    inputs: list[str]
    repeat: int = 1

    @property
    def type_label(self) -> str:
        """The type as the table shows it: ``ResidualBlock x2`` for a block used with ``repeat: 2``."""
        return f"{self.type} x{self.repeat}" if self.repeat > 1 else self.type


@dataclass(frozen=True)
class Summary:
    """Rows in execution order, outputs, and totals over the whole model."""

    class_name: str
    rows: list[Row]
    outputs: list[str]
    total_params: int
    trainable_params: int

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def size_mb(self) -> float:
        """Size of the parameters at float32, in megabytes (10^6 bytes)."""
        return self.total_params * BYTES_PER_FLOAT32 / 1e6

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document (what ``specnn inspect --json`` prints)."""
        return {
            "class_name": self.class_name,
            "layers": [asdict(row) for row in self.rows],
            "outputs": self.outputs,
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "size_mb": round(self.size_mb, 6),
        }


def summarize(compiled: CompiledModel, model: Any = None) -> Summary:
    """Summarize a compiled model: per-node output shapes and parameter counts, and totals.

    Args:
        compiled: from :func:`specnn.compiler.compile_spec`.
        model: optionally, the built ``nn.Module`` of ``compiled``: counts (trainable ones
            especially) are then read from it rather than from the catalogue.

    Returns:
        The :class:`Summary`; its rows' ``params`` add up to ``total_params``.
    """
    graph = compiled.graph
    rows = _input_rows(graph) + [_node_row(node, model) for node in graph.nodes]
    return Summary(
        class_name=compiled.class_name,
        rows=rows,
        outputs=list(graph.outputs),
        total_params=sum(row.params for row in rows),
        trainable_params=sum(row.trainable for row in rows),
    )


def _input_rows(graph: Graph) -> list[Row]:
    return [Row(name, "input", list(t.shape), t.dtype, 0, 0, []) for name, t in graph.inputs.items()]


def _node_row(node: Node, model: Any) -> Row:
    params = trainable = node.parameter_count()
    if model is not None:
        module = getattr(model, node.name, None) if node.layer.is_module else None
        parameters = list(module.parameters()) if module is not None else []
        params = sum(p.numel() for p in parameters)
        trainable = sum(p.numel() for p in parameters if p.requires_grad)
    return Row(
        name=node.name,
        type=node.kind,
        shape=list(node.shape) if node.shape is not None else None,
        dtype=node.dtype or "float32",
        params=params,
        trainable=trainable,
        inputs=list(node.inputs),
        repeat=len(node.block.instances) if node.block is not None else 1,
    )


# ---------------------------------------------------------------------------------------------
# The table


def format_table(summary: Summary) -> str:
    """The summary as a text table, in the manner of Keras's ``model.summary()``.

    A "Connected to" column appears when the model is not a plain chain of layers.
    """
    chain = _is_chain(summary)
    header = ["Layer (type)", "Output shape", "Param #"] + ([] if chain else ["Connected to"])
    body = [_cells(row, chain) for row in summary.rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    rule_width = sum(widths) + 3 * (len(widths) - 1)
    lines = [f"Model: {summary.class_name}", "=" * rule_width, _join(header, widths), "-" * rule_width]
    lines += [_join(cells, widths) for cells in body]
    lines += [
        "=" * rule_width,
        f"Total params: {summary.total_params:,}",
        f"Trainable params: {summary.trainable_params:,}",
        f"Non-trainable params: {summary.non_trainable_params:,}",
        f"Size (float32): {summary.size_mb:.2f} MB ({summary.total_params * BYTES_PER_FLOAT32:,} bytes)",
    ]
    if summary.outputs != [summary.rows[-1].name]:
        lines.append("Outputs: " + ", ".join(summary.outputs))
    return "\n".join(lines)


def _cells(row: Row, chain: bool) -> list[str]:
    shape = "?" if row.shape is None else "[" + ", ".join(str(d) for d in row.shape) + "]"
    if row.dtype != "float32":
        shape += f" {row.dtype}"
    cells = [f"{row.name} ({row.type_label})", shape, f"{row.params:,}"]
    return cells if chain else cells + [", ".join(row.inputs)]


def _join(cells: list[str], widths: list[int]) -> str:
    # Parameter counts are right-aligned, as numbers are in a table.
    parts = [cell.rjust(width) if i == 2 else cell.ljust(width) for i, (cell, width) in enumerate(zip(cells, widths))]
    return "   ".join(parts).rstrip()


def _is_chain(summary: Summary) -> bool:
    previous: Optional[str] = None
    for row in summary.rows:
        if row.type == "input":
            if previous is not None:
                return False
        elif row.inputs != [previous]:
            return False
        previous = row.name
    return summary.outputs == [previous]
