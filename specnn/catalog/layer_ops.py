"""Graph operations: tensor expressions with no module (add, matmul, concat, mean, Reshape, ...).

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


def broadcast(name: str, shapes: Sequence[Shape], what: str = "") -> Shape:
    """numpy's broadcast of per-sample shapes: aligned from the last dim, sizes equal or 1."""
    rank = max(len(s) for s in shapes)
    padded = [(1,) * (rank - len(s)) + tuple(s) for s in shapes]
    out = []
    for i, sizes in enumerate(zip(*padded)):
        distinct = sorted({n for n in sizes if n != 1})
        if len(distinct) > 1:
            listed = what or ", ".join(fmt(s) for s in shapes)
            raise ShapeMismatch(
                f"{name} cannot broadcast {listed}: dim {i - rank} is "
                f"{' in one and '.join(map(str, distinct))} in another (sizes must be equal or 1)",
                hint="shapes line up from the last dim as in numpy: reshape or project the inputs so each "
                     "dim matches or is 1",
            )
        out.append(distinct[0] if distinct else 1)
    return tuple(out)


def lifted(expression: str, lift: int) -> str:
    """``x[:, None]``: ``lift`` size-1 dims after the batch dim (torch aligns the batch dim too)."""
    return f"{expression}[:, {', '.join(['None'] * lift)}]" if lift else expression


def elementwise(name: str):
    """Rule for ``add`` / ``multiply``: numpy-style broadcasting of the per-sample shapes."""

    def rule(a: Args, shapes: list[Shape]) -> tuple[Shape, Args]:
        out = broadcast(name, shapes)
        a = a.model_copy()
        a._lift = tuple(len(out) - len(s) for s in shapes)
        return out, a

    return rule


def infix(operator: str):
    def call(attr: str, inputs: Sequence[str], a: Args) -> str:
        lifts = a._lift or (0,) * len(inputs)
        return f" {operator} ".join(lifted(x, n) for x, n in zip(inputs, lifts))

    return call


def matmul(a: Args, shapes: list[Shape]) -> tuple[Shape, Args]:
    """torch.matmul on per-sample shapes: a 1-d input is a vector, leading dims broadcast."""
    x, y = shapes
    if not x or not y:
        raise ShapeMismatch(f"matmul needs inputs with at least one per-sample dim, got {fmt(x)} and {fmt(y)}")
    left = (1, *x) if len(x) == 1 else x
    right = (*y, 1) if len(y) == 1 else y
    if left[-1] != right[-2]:
        raise ShapeMismatch(
            f"matmul {fmt(x)} @ {fmt(y)}: the first input's last dim ({left[-1]}) differs from the second's "
            f"{'only' if len(y) == 1 else 'second-to-last'} dim ({right[-2]})",
            hint="permute or project one input so the inner dims match",
        )
    leading = f"the leading dims {fmt(left[:-2])} and {fmt(right[:-2])} of {fmt(x)} @ {fmt(y)}"
    stack = broadcast("matmul", [left[:-2], right[:-2]], leading) if len(left) > 2 or len(right) > 2 else ()
    out = (*stack, *([] if len(x) == 1 else [left[-2]]), *([] if len(y) == 1 else [right[-1]]))
    a = a.model_copy()
    a._plan = (len(stack) + 2 - len(left), len(stack) + 2 - len(right), len(x) == 1, len(y) == 1)
    return out, a


def matmul_call(attr: str, inputs: Sequence[str], a: Args) -> str:
    lift_left, lift_right, vector_left, vector_right = a._plan
    left = lifted(inputs[0], lift_left) + (".unsqueeze(-2)" if vector_left else "")
    right = lifted(inputs[1], lift_right) + (".unsqueeze(-1)" if vector_right else "")
    squeeze = {(True, True): ".squeeze(-1).squeeze(-1)", (True, False): ".squeeze(-2)",
               (False, True): ".squeeze(-1)", (False, False): ""}[vector_left, vector_right]
    return f"torch.matmul({left}, {right}){squeeze}"


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
    """Rule for ``mean`` / ``sum`` / ``max`` / ``min`` over per-sample dims."""

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        dims = _reduced_dims(name, a, x)
        if a.keepdim:
            return tuple(1 if i in dims else n for i, n in enumerate(x)), a
        return tuple(n for i, n in enumerate(x) if i not in dims), a

    return rule


def reduction_call(method: str):
    """``x.mean(dim=1)``; ``max``/``min`` are torch's ``amax``/``amin`` (values only, several dims)."""

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
