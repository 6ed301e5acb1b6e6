"""Graph operations: tensor expressions with no module (add, concat, mean, Reshape, ...).

Package-private shape rules and ``call`` hooks for ``LAYERS`` (plus the hook that calls a
module with several inputs, such as ``Bilinear``). A ``dim`` here is a
*per-sample* dim: 0 is the first non-batch dim and negative dims count from the end, so
the hooks add 1 to non-negative dims when they write torch code (whose dims count the batch).
"""

from __future__ import annotations

import math
from typing import Sequence

from specnn.catalog.base import Args
from specnn.catalog.layer_rules import Shape, ShapeMismatch, fmt, resolve_sizes


def per_sample_dim(name: str, dim: int, x: Shape) -> int:
    """``dim`` as a non-negative per-sample index into ``x``, or a ShapeMismatch."""
    if not -len(x) <= dim < len(x):
        raise ShapeMismatch(
            f"{name} dim={dim} is out of range for per-sample input {fmt(x)} "
            f"(0 is the first non-batch dim; the batch cannot be used)"
        )
    return dim % len(x)


def torch_dim(dim: int) -> int:
    """A per-sample dim as torch counts it: the batch is dim 0."""
    return dim + 1 if dim >= 0 else dim


# --- joining several inputs -------------------------------------------------------------------


def elementwise(name: str):
    """Rule for ``add`` / ``multiply``: all shapes equal (no silent broadcasting)."""

    def rule(a: Args, shapes: list[Shape]) -> tuple[Shape, Args]:
        if any(s != shapes[0] for s in shapes[1:]):
            listed = ", ".join(fmt(s) for s in shapes)
            raise ShapeMismatch(
                f"{name} needs inputs of equal shape, got {listed}",
                hint="broadcasting is not applied: reshape or project the inputs to one shape",
            )
        return shapes[0], a

    return rule


def infix(operator: str):
    def call(attr: str, inputs: Sequence[str], a: Args) -> str:
        return f" {operator} ".join(inputs)

    return call


def concat(a: Args, shapes: list[Shape]) -> tuple[Shape, Args]:
    first = shapes[0]
    if any(len(s) != len(first) for s in shapes):
        raise ShapeMismatch(f"concat needs inputs of equal rank, got {', '.join(fmt(s) for s in shapes)}")
    d = per_sample_dim("concat", a.dim, first)
    rest = [s[:d] + s[d + 1:] for s in shapes]
    if any(r != rest[0] for r in rest):
        raise ShapeMismatch(
            f"concat along dim={a.dim} needs all other dims equal, got {', '.join(fmt(s) for s in shapes)}"
        )
    return (*first[:d], sum(s[d] for s in shapes), *first[d + 1:]), a


def concat_call(attr: str, inputs: Sequence[str], a: Args) -> str:
    return f"torch.cat([{', '.join(inputs)}], dim={torch_dim(a.dim)})"


# --- single-input operations ------------------------------------------------------------------


def _reduced_dims(name: str, a: Args, x: Shape) -> list[int]:
    dims = [a.dim] if isinstance(a.dim, int) else list(a.dim)
    resolved = [per_sample_dim(name, d, x) for d in dims]
    if len(set(resolved)) != len(resolved):
        raise ShapeMismatch(f"{name} dim={list(dims)} names the same dim twice for input {fmt(x)}")
    return resolved


def reduction(name: str):
    """Rule for ``mean`` / ``sum`` over per-sample dims."""

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        dims = _reduced_dims(name, a, x)
        if a.keepdim:
            return tuple(1 if i in dims else n for i, n in enumerate(x)), a
        return tuple(n for i, n in enumerate(x) if i not in dims), a

    return rule


def reduction_call(method: str):
    def call(attr: str, inputs: Sequence[str], a: Args) -> str:
        dims = torch_dim(a.dim) if isinstance(a.dim, int) else tuple(torch_dim(d) for d in a.dim)
        keep = ", keepdim=True" if a.keepdim else ""
        return f"{inputs[0]}.{method}(dim={dims}{keep})"

    return call


def reshape(a: Args, x: Shape) -> tuple[Shape, Args]:
    return resolve_sizes("Reshape shape", a.shape, math.prod(x), x), a


def reshape_call(attr: str, inputs: Sequence[str], a: Args) -> str:
    x = inputs[0]
    return f"{x}.reshape({x}.shape[0], {', '.join(map(str, a.shape))})"


def permute(a: Args, x: Shape) -> tuple[Shape, Args]:
    dims = [d % len(x) if -len(x) <= d < len(x) else d for d in a.dims]
    if sorted(dims) != list(range(len(x))):
        raise ShapeMismatch(
            f"Permute dims={list(a.dims)} is not a permutation of the per-sample dims of {fmt(x)} "
            f"(expected each of 0..{len(x) - 1} once)"
        )
    return tuple(x[d] for d in dims), a.model_copy(update={"dims": tuple(dims)})


def permute_call(attr: str, inputs: Sequence[str], a: Args) -> str:
    return f"{inputs[0]}.permute(0, {', '.join(str(torch_dim(d)) for d in a.dims)})"


def module_call(attr: str, inputs: Sequence[str], a: Args) -> str:
    """A module called with every input: ``self.bilinear(x1, x2)``."""
    return f"{attr}({', '.join(inputs)})"
