"""Which Embedding reads each model input: token ids must lie in ``[0, num_embeddings)``.

An id past an Embedding's table is torch's ``IndexError: index out of range in self`` in the first
training step, after the run folder is written. Every other layer takes floating-point input only
(shape inference refuses int64 elsewhere), so an int64 model input reaches an Embedding directly:
read by name, or as a block's input. :func:`embedding_limits` finds those Embeddings; the spec's
synthetic ``vocab`` is checked against them here (validate), data files once read
(``runtime/data/tensors.check_token_ids``). Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from specnn.compiler.ir import Graph
from specnn.errors import Path, Problem


@dataclass(frozen=True)
class TokenLimit:
    """The smallest Embedding table a model input feeds: ids must be below ``num_embeddings``."""

    num_embeddings: int
    layer: str  # the Embedding node's name, for messages
    path: Path  # its spec path, where a problem is located


def embedding_limits(graph: Graph) -> dict[str, TokenLimit]:
    """Model input name -> the smallest Embedding reading it (directly, or as a block's input)."""
    found: dict[str, TokenLimit] = {}
    _collect(graph, {name: name for name in graph.inputs}, found)
    return found


def _collect(graph: Graph, sources: dict[str, str], found: dict[str, TokenLimit]) -> None:
    """``sources``: names in ``graph`` that are a model input -> that input's name."""
    for node in graph.nodes:
        read = [sources[name] for name in node.inputs if name in sources]
        if not read:
            continue
        if node.block is not None:
            for instance in node.block.instances[:1]:  # a later copy reads the one before it
                _collect(instance.body, {"x": read[0]}, found)
        elif node.kind == "Embedding":
            limit = TokenLimit(node.args.num_embeddings, node.name, (*node.path, "num_embeddings"))
            if read[0] not in found or limit.num_embeddings < found[read[0]].num_embeddings:
                found[read[0]] = limit


def synthetic_vocab_problems(graph: Graph, spec: Any) -> list[Problem]:
    """Synthetic token ids drawn from a ``vocab`` larger than the Embedding that reads them."""
    if spec.data is None or spec.data.kind != "synthetic":
        return []
    args = spec.data.args
    if args.inputs is not None:
        vocabs = {name: (i.vocab, ("data", "synthetic", "inputs", name, "vocab")) for name, i in args.inputs.items()}
    elif len(graph.inputs) == 1:
        vocabs = {next(iter(graph.inputs)): (args.vocab, ("data", "synthetic", "vocab"))}
    else:
        return []  # one array for several inputs: the data stage reports it
    problems = []
    for name, limit in embedding_limits(graph).items():
        vocab, path = vocabs.get(name, (None, None))
        if vocab is not None and vocab > limit.num_embeddings:
            problems.append(Problem(
                "vocab", f"synthetic token ids run from 0 to {vocab - 1}, but Embedding '{limit.layer}' reading "
                f"input '{name}' has num_embeddings: {limit.num_embeddings} (ids 0..{limit.num_embeddings - 1})",
                path, hint=f"set vocab to at most {limit.num_embeddings}, or num_embeddings to at least {vocab}",
            ))
    return problems
