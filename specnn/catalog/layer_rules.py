"""Shape rules for the layer table (package-private: ``LAYERS`` in ``layers.py`` is the API).

A rule takes (args, per-sample input shape) -- or, for layers with several inputs, (args, list
of shapes) -- and returns (per-sample output shape, args with input-dependent values filled in).
It raises :class:`ShapeMismatch` when the input cannot feed the layer; the compiler adds the
node's name and location. The formulas are torch's own (see the torch.nn docs of each layer),
and ``tests/test_catalog_layers.py`` checks every one against the real module.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from specnn.catalog.base import Args

Shape = tuple[int, ...]
Rule = Callable[[Any, Shape], tuple[Shape, Args]]


class ShapeMismatch(Exception):
    """Raised by a shape rule; the compiler adds the node's name and location."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def fmt(shape: Sequence[int]) -> str:
    """``[3, 28, 28]``: a shape as a spec writes it."""
    return "[" + ", ".join(str(d) for d in shape) + "]"


def expect_rank(name: str, x: Shape, ranks: Sequence[int], meaning: str, hint: str | None = None) -> None:
    if len(x) not in ranks:
        raise ShapeMismatch(f"{name} needs a per-sample input of shape {meaning}, got {fmt(x)}", hint)


def check_given(args: Args, field: str, actual: Any) -> Args:
    """Fill an input-dependent argument, or check it when the spec gave one."""
    given = getattr(args, field)
    if given is not None and given != actual:
        raise ShapeMismatch(
            f"{field}={given} but the input has {actual}",
            hint=f"remove {field} (it is inferred) or set it to {actual}",
        )
    return args.model_copy(update={field: actual})


def ntuple(value: Any, n: int) -> tuple:
    return (value,) * n if isinstance(value, int) or value is None else tuple(value)


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool = False) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    return (math.ceil if ceil else math.floor)(span / stride) + 1


def same_shape(args: Args, x: Shape) -> tuple[Shape, Args]:
    return x, args


# --- dense ------------------------------------------------------------------------------------


def linear(a: Args, x: Shape) -> tuple[Shape, Args]:
    if len(x) == 0:
        raise ShapeMismatch("Linear needs at least one feature dimension, got a scalar per sample")
    if len(x) >= 3:
        # Linear acts on the last dimension only; fed a feature map, that is almost never meant.
        raise ShapeMismatch(
            f"Linear got a {len(x)}-d per-sample input {fmt(x)} but acts on the last dimension only",
            hint="add a Flatten layer before this Linear",
        )
    a = check_given(a, "in_features", x[-1])
    return (*x[:-1], a.out_features), a


def bilinear(a: Args, shapes: list[Shape]) -> tuple[Shape, Args]:
    x1, x2 = shapes
    if not x1 or not x2 or x1[:-1] != x2[:-1]:
        raise ShapeMismatch(
            f"Bilinear needs two inputs that differ only in their last dimension, got {fmt(x1)} and {fmt(x2)}"
        )
    a = check_given(check_given(a, "in1_features", x1[-1]), "in2_features", x2[-1])
    return (*x1[:-1], a.out_features), a


# --- convolutions -----------------------------------------------------------------------------

_SPATIAL = {1: "[channels, length]", 2: "[channels, height, width]", 3: "[channels, depth, height, width]"}


def _conv_channels(name: str, a: Args, x: Shape, n: int) -> Args:
    expect_rank(
        name, x, (n + 1,), _SPATIAL[n],
        hint="declare the input with a channel dimension, or add an Unflatten layer" if len(x) < n + 1 else None,
    )
    a = check_given(a, "in_channels", x[0])
    if a.in_channels % a.groups or a.out_channels % a.groups:
        raise ShapeMismatch(
            f"in_channels={a.in_channels} and out_channels={a.out_channels} must be divisible by groups={a.groups}"
        )
    return a


def _spatial_fits(name: str, a: Args, x: Shape, out: Sequence[int]) -> Shape:
    if min(out) < 1:
        raise ShapeMismatch(
            f"{name} with kernel_size={a.kernel_size} does not fit input {fmt(x)} "
            f"(output would be {'x'.join(map(str, out))})",
            hint="use a smaller kernel or padding, or fewer pooling layers before it",
        )
    return tuple(out)


def conv(name: str, n: int) -> Rule:
    """Rule for ``Conv{n}d``: [C, *spatial] -> [out_channels, *spatial']."""

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        a = _conv_channels(name, a, x, n)
        k, s, d = ntuple(a.kernel_size, n), ntuple(a.stride, n), ntuple(a.dilation, n)
        if a.padding == "same":
            if any(v != 1 for v in s):
                raise ShapeMismatch("padding='same' needs stride=1 (torch does not support it otherwise)")
            return (a.out_channels, *x[1:]), a
        p = (0,) * n if a.padding == "valid" else ntuple(a.padding, n)
        out = [conv_out(x[i + 1], k[i], s[i], p[i], d[i]) for i in range(n)]
        return (a.out_channels, *_spatial_fits(name, a, x, out)), a

    return rule


def conv_transpose(name: str, n: int) -> Rule:
    """Rule for ``ConvTranspose{n}d``: the inverse size formula of ``Conv{n}d`` plus output_padding."""

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        a = _conv_channels(name, a, x, n)
        k, s, d = ntuple(a.kernel_size, n), ntuple(a.stride, n), ntuple(a.dilation, n)
        p, extra = ntuple(a.padding, n), ntuple(a.output_padding, n)
        out = [(x[i + 1] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + extra[i] + 1 for i in range(n)]
        return (a.out_channels, *_spatial_fits(name, a, x, out)), a

    return rule


# --- pooling ----------------------------------------------------------------------------------


def _pool_size(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    out = conv_out(size, k, s, p, d, ceil)
    if ceil and (out - 1) * s >= size + p:
        out -= 1  # torch drops a last window that would start inside the right padding
    return out


def pool(name: str, n: int) -> Rule:
    """Rule for ``MaxPool{n}d`` / ``AvgPool{n}d``; the channel dimension is optional, as in torch."""
    meaning = _SPATIAL[n].replace("channels, ", "channels?, ")

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, (n, n + 1), meaning)
        k = ntuple(a.kernel_size, n)
        s = ntuple(a.stride, n) if a.stride is not None else k
        p, d = ntuple(a.padding, n), ntuple(getattr(a, "dilation", 1), n)
        if any(p[i] * 2 > k[i] for i in range(n)):
            raise ShapeMismatch(f"{name} padding={a.padding} must be at most half of kernel_size={a.kernel_size}")
        out = [_pool_size(x[len(x) - n + i], k[i], s[i], p[i], d[i], a.ceil_mode) for i in range(n)]
        return (*x[:-n], *_spatial_fits(name, a, x, out)), a

    return rule


def adaptive_pool(name: str, n: int) -> Rule:
    """Rule for ``Adaptive{Avg,Max}Pool{n}d``: the output size is given; None keeps the input's."""
    meaning = _SPATIAL[n].replace("channels, ", "channels?, ")

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, (n, n + 1), meaning)
        sizes = ntuple(a.output_size, n)
        spatial = x[len(x) - n:]
        return (*x[:-n], *(spatial[i] if v is None else v for i, v in enumerate(sizes))), a

    return rule


# --- normalisation, dropout -------------------------------------------------------------------


def channels_first(name: str, ranks: tuple[int, ...], meaning: str, field: str = "num_features") -> Rule:
    """Rule for layers that keep the shape and need the channel count (BatchNorm, InstanceNorm)."""

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, ranks, meaning)
        return x, check_given(a, field, x[0])

    return rule


def batchnorm(name: str, ranks: tuple[int, ...], meaning: str) -> Rule:
    return channels_first(name, ranks, meaning)


def layer_norm(a: Args, x: Shape) -> tuple[Shape, Args]:
    if a.normalized_shape is None:
        return x, a.model_copy(update={"normalized_shape": x[-1]})
    wanted = ntuple(a.normalized_shape, 1)
    if len(wanted) > len(x) or tuple(x[len(x) - len(wanted):]) != wanted:
        raise ShapeMismatch(
            f"LayerNorm normalized_shape={fmt(wanted)} must match the last dimensions of the input {fmt(x)}",
            hint=f"remove normalized_shape to normalise the last dimension ({x[-1]})",
        )
    return x, a


def group_norm(a: Args, x: Shape) -> tuple[Shape, Args]:
    expect_rank("GroupNorm", x, range(1, 8), "[channels, ...]")
    a = check_given(a, "num_channels", x[0])
    if a.num_channels % a.num_groups:
        raise ShapeMismatch(
            f"GroupNorm num_channels={a.num_channels} is not divisible by num_groups={a.num_groups}",
            hint="pick num_groups that divides the channel count",
        )
    return x, a


def channel_dropout(name: str, rank: int, meaning: str) -> Rule:
    """Dropout1d/2d zero whole channels, so they need the channel dimension."""

    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, (rank,), meaning)
        return x, a

    return rule


# --- reshaping, activations, outputs ----------------------------------------------------------


def flatten(a: Args, x: Shape) -> tuple[Shape, Args]:
    full = (0, *x)  # torch's dims count the batch dimension
    for which, dim in (("start_dim", a.start_dim), ("end_dim", a.end_dim)):
        if not -len(full) <= dim < len(full):
            # torch raises IndexError here at the first forward; `%` would quietly wrap it.
            raise ShapeMismatch(f"Flatten {which}={dim} is out of range for input {fmt(x)} (plus batch)",
                                hint=f"use a dim from {-len(full)} to {len(full) - 1}")
    start = a.start_dim % len(full)
    end = a.end_dim % len(full)
    if start == 0 or end == 0:
        raise ShapeMismatch("Flatten over the batch dimension (dim 0) would mix samples", hint="use start_dim >= 1")
    if start > end:
        raise ShapeMismatch(f"Flatten start_dim={a.start_dim} comes after end_dim={a.end_dim} for input {fmt(x)}")
    dims = list(full[1:])
    s, e = start - 1, end - 1
    return (*dims[:s], math.prod(dims[s:e + 1]), *dims[e + 1:]), a


def resolve_sizes(what: str, sizes: Sequence[int], count: int, source: Shape) -> Shape:
    """Fill a single -1 in ``sizes`` so that they hold ``count`` elements, or explain why not."""
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if known == 0 or count % known:
            raise ShapeMismatch(f"{what} {fmt(sizes)} cannot hold the {count} elements of {fmt(source)}")
        return tuple(count // known if s == -1 else s for s in sizes)
    if known != count:
        raise ShapeMismatch(f"{what} {fmt(sizes)} holds {known} elements but the input {fmt(source)} has {count}")
    return tuple(sizes)


def unflatten(a: Args, x: Shape) -> tuple[Shape, Args]:
    rank = len(x) + 1  # torch's dims count the batch dimension
    if not -rank <= a.dim < rank:
        raise ShapeMismatch(f"Unflatten dim={a.dim} is out of range for input {fmt(x)} (plus batch)")
    d = a.dim % rank
    if d == 0:
        raise ShapeMismatch("Unflatten of the batch dimension (dim 0) would mix samples", hint="use dim >= 1")
    sizes = resolve_sizes("Unflatten unflattened_size", a.unflattened_size, x[d - 1], x)
    return (*x[:d - 1], *sizes, *x[d:]), a


def prelu(a: Args, x: Shape) -> tuple[Shape, Args]:
    # One weight per channel: torch applies it along dim 1, the first per-sample dim.
    if a.num_parameters != 1 and (not x or x[0] != a.num_parameters):
        raise ShapeMismatch(
            f"PReLU num_parameters={a.num_parameters} must be 1 or the channel count, got input {fmt(x)}"
        )
    return x, a


def softmax_like(name: str) -> Rule:
    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        if not -(len(x) + 1) <= a.dim <= len(x):
            raise ShapeMismatch(f"{name} dim={a.dim} is out of range for input {fmt(x)} (plus batch)")
        if a.dim % (len(x) + 1) == 0:  # dim=0, or the negative dim that counts back to the batch
            raise ShapeMismatch(f"{name}(dim={a.dim}) normalises across the batch", hint="use dim=-1 or dim=1")
        return x, a

    return rule
