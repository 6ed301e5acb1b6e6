"""The layer table: every layer a spec may use, one entry each.

An entry holds the layer's argument model (torch's own argument names and defaults), its
shape rule and how it is written in generated code. Shapes here are *per sample*: no batch
dimension. Arguments that depend on the input (``in_features``, ``in_channels``,
``num_features``, ...) are optional; the shape rule fills them in, or checks them when given.

Adding a layer: write its ``Args`` model and shape rule, add one ``LayerDef`` to ``LAYERS``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal, Optional, Sequence, Union

from pydantic import Field, NonNegativeInt, PositiveInt

from specnn.catalog.base import Args

Shape = tuple[int, ...]
IntOrPair = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
PadOrPair = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt]]


class ShapeMismatch(Exception):
    """Raised by a shape rule; the compiler adds the node's name and location."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def fmt(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def expect_rank(name: str, x: Shape, ranks: Sequence[int], meaning: str, hint: str | None = None) -> None:
    if len(x) not in ranks:
        raise ShapeMismatch(f"{name} needs a per-sample input of shape {meaning}, got {fmt(x)}", hint)


def check_given(args: Args, field: str, actual: int) -> Args:
    """Fill an input-dependent argument, or check it when the spec gave one."""
    given = getattr(args, field)
    if given is not None and given != actual:
        raise ShapeMismatch(
            f"{field}={given} but the input has {actual}",
            hint=f"remove {field} (it is inferred) or set it to {actual}",
        )
    return args.model_copy(update={field: actual})


def pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)  # type: ignore[return-value]


def conv_out(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil: bool = False) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    return (math.ceil if ceil else math.floor)(span / stride) + 1


# ---------------------------------------------------------------------------------------------
# Argument models (torch names, torch defaults)


class NoArgs(Args):
    pass


class LinearArgs(Args):
    in_features: Optional[PositiveInt] = None
    out_features: PositiveInt
    bias: bool = True


class Conv2dArgs(Args):
    in_channels: Optional[PositiveInt] = None
    out_channels: PositiveInt
    kernel_size: IntOrPair
    stride: IntOrPair = 1
    padding: Union[PadOrPair, Literal["same", "valid"]] = 0
    dilation: IntOrPair = 1
    groups: PositiveInt = 1
    bias: bool = True
    padding_mode: Literal["zeros", "reflect", "replicate", "circular"] = "zeros"


class MaxPool2dArgs(Args):
    kernel_size: IntOrPair
    stride: Optional[IntOrPair] = None
    padding: PadOrPair = 0
    dilation: IntOrPair = 1
    ceil_mode: bool = False


class AvgPool2dArgs(Args):
    kernel_size: IntOrPair
    stride: Optional[IntOrPair] = None
    padding: PadOrPair = 0
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: Optional[PositiveInt] = None


class BatchNormArgs(Args):
    num_features: Optional[PositiveInt] = None
    eps: float = Field(1e-5, gt=0)
    momentum: Optional[float] = Field(0.1, ge=0, le=1)
    affine: bool = True
    track_running_stats: bool = True


class DropoutArgs(Args):
    p: float = Field(0.5, ge=0, le=1)


class FlattenArgs(Args):
    start_dim: int = 1
    end_dim: int = -1


class LeakyReLUArgs(Args):
    negative_slope: float = 0.01


class GELUArgs(Args):
    approximate: Literal["none", "tanh"] = "none"


class SoftmaxArgs(Args):
    dim: int = -1


# ---------------------------------------------------------------------------------------------
# Shape rules: (args, per-sample input shapes) -> (output shape, args with inferred values)


def same_shape(args: Args, x: Shape) -> tuple[Shape, Args]:
    return x, args


def linear(a: LinearArgs, x: Shape) -> tuple[Shape, Args]:
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


def conv2d(a: Conv2dArgs, x: Shape) -> tuple[Shape, Args]:
    expect_rank(
        "Conv2d", x, (3,), "[channels, height, width]",
        hint="declare the input as [C, H, W], or add an Unflatten layer" if len(x) < 3 else None,
    )
    a = check_given(a, "in_channels", x[0])
    if a.in_channels % a.groups or a.out_channels % a.groups:
        raise ShapeMismatch(f"in_channels={a.in_channels} and out_channels={a.out_channels} must be divisible by groups={a.groups}")
    k, s, d = pair(a.kernel_size), pair(a.stride), pair(a.dilation)
    if a.padding == "same":
        if s != (1, 1):
            raise ShapeMismatch("padding='same' needs stride=1 (torch does not support it otherwise)")
        return (a.out_channels, x[1], x[2]), a
    p = (0, 0) if a.padding == "valid" else pair(a.padding)  # type: ignore[arg-type]
    h, w = (conv_out(x[i + 1], k[i], s[i], p[i], d[i]) for i in range(2))
    if h < 1 or w < 1:
        raise ShapeMismatch(f"Conv2d with kernel_size={a.kernel_size} does not fit input {fmt(x)} (output would be {h}x{w})",
                            hint="use a smaller kernel or padding, or fewer pooling layers before it")
    return (a.out_channels, h, w), a


def pool2d(name: str) -> Callable[[Args, Shape], tuple[Shape, Args]]:
    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, (2, 3), "[channels, height, width]")
        k = pair(a.kernel_size)
        s = pair(a.stride) if a.stride is not None else k
        p = pair(a.padding)
        d = pair(getattr(a, "dilation", 1))
        if any(p[i] * 2 > k[i] for i in range(2)):
            raise ShapeMismatch(f"{name} padding={a.padding} must be at most half of kernel_size={a.kernel_size}")
        h, w = (conv_out(x[-2 + i], k[i], s[i], p[i], d[i], a.ceil_mode) for i in range(2))
        if a.ceil_mode:  # torch drops a last window that would start inside the right padding
            h, w = (v - 1 if (v - 1) * s[i] >= x[-2 + i] + p[i] else v for i, v in enumerate((h, w)))
        if h < 1 or w < 1:
            raise ShapeMismatch(f"{name} with kernel_size={a.kernel_size} does not fit input {fmt(x)}")
        return (*x[:-2], h, w), a
    return rule


def batchnorm(name: str, ranks: tuple[int, ...], meaning: str) -> Callable[[Args, Shape], tuple[Shape, Args]]:
    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, ranks, meaning)
        return x, check_given(a, "num_features", x[0])
    return rule


def flatten(a: FlattenArgs, x: Shape) -> tuple[Shape, Args]:
    full = (0, *x)  # torch's dims count the batch dimension
    start = a.start_dim % len(full)
    end = a.end_dim % len(full)
    if start == 0 or end == 0:
        raise ShapeMismatch("Flatten over the batch dimension (dim 0) would mix samples", hint="use start_dim >= 1")
    if start > end:
        raise ShapeMismatch(f"Flatten start_dim={a.start_dim} comes after end_dim={a.end_dim} for input {fmt(x)}")
    dims = list(full[1:])
    s, e = start - 1, end - 1
    return (*dims[:s], math.prod(dims[s:e + 1]), *dims[e + 1:]), a


def softmax_like(name: str) -> Callable[[Args, Shape], tuple[Shape, Args]]:
    def rule(a: SoftmaxArgs, x: Shape) -> tuple[Shape, Args]:
        if a.dim == 0:
            raise ShapeMismatch(f"{name}(dim=0) normalises across the batch", hint="use dim=-1 or dim=1")
        if not -(len(x) + 1) <= a.dim <= len(x):
            raise ShapeMismatch(f"{name} dim={a.dim} is out of range for input {fmt(x)} (plus batch)")
        return x, a
    return rule


# ---------------------------------------------------------------------------------------------

Role = Literal[
    "linear", "conv", "pool", "norm", "dropout", "reshape", "activation", "output", "identity",
    "recurrent", "attention", "embedding", "operation",
]


@dataclass(frozen=True)
class LayerDef:
    """One layer type (or graph operation).

    Attributes:
        name: the ``torch.nn`` class name (or operation name such as ``add``), also the spec key.
        args: the argument model.
        rule: shape rule taking (args, per-sample input shape) -- or, when ``arity`` is not 1,
            (args, list of per-sample input shapes).
        role: what lints need to know about it (``activation``, ``linear``, ``output`` ...).
        positional: arguments written positionally in generated code, as people write them.
        call: how generated ``forward`` calls it: (attribute expression such as ``self.fc1``,
            input variable names, resolved args) -> Python expression. None: ``attr(x)``.
        spec_only: spec arguments that are not constructor arguments (e.g. which RNN output to take).
        is_module: False for graph operations (add, concat, ...): no attribute, only an expression.
        arity: number of inputs; None for "two or more".
        input_dtype: dtype the layer needs (``int64`` for Embedding); None for any float.
    """

    name: str
    args: type[Args]
    rule: Callable[..., tuple[Shape, Args]]
    role: Role
    positional: tuple[str, ...] = ()
    call: Optional[Callable[[str, Sequence[str], Args], str]] = None
    spec_only: tuple[str, ...] = ()
    is_module: bool = True
    arity: Optional[int] = 1
    input_dtype: Optional[str] = None

    def infer(self, args: Args, inputs: Sequence[Shape]) -> tuple[Shape, Args]:
        shapes = [tuple(s) for s in inputs]
        if self.arity == 1:
            if len(shapes) != 1:
                raise ShapeMismatch(f"{self.name} takes one input, got {len(shapes)}")
            return self.rule(args, shapes[0])
        if self.arity is None and len(shapes) < 2:
            raise ShapeMismatch(f"{self.name} joins two or more inputs, got {len(shapes)}", hint="list them in 'from'")
        if self.arity is not None and len(shapes) != self.arity:
            raise ShapeMismatch(f"{self.name} takes {self.arity} inputs, got {len(shapes)}")
        return self.rule(args, shapes)


def _table(*defs: LayerDef) -> dict[str, LayerDef]:
    return {d.name: d for d in defs}


LAYERS: dict[str, LayerDef] = _table(
    LayerDef("Linear", LinearArgs, linear, "linear", ("in_features", "out_features")),
    LayerDef("Conv2d", Conv2dArgs, conv2d, "conv", ("in_channels", "out_channels", "kernel_size")),
    LayerDef("MaxPool2d", MaxPool2dArgs, pool2d("MaxPool2d"), "pool", ("kernel_size",)),
    LayerDef("AvgPool2d", AvgPool2dArgs, pool2d("AvgPool2d"), "pool", ("kernel_size",)),
    LayerDef("BatchNorm1d", BatchNormArgs, batchnorm("BatchNorm1d", (1, 2), "[features] or [channels, length]"), "norm", ("num_features",)),
    LayerDef("BatchNorm2d", BatchNormArgs, batchnorm("BatchNorm2d", (3,), "[channels, height, width]"), "norm", ("num_features",)),
    LayerDef("Dropout", DropoutArgs, same_shape, "dropout", ("p",)),
    LayerDef("Flatten", FlattenArgs, flatten, "reshape"),
    LayerDef("Identity", NoArgs, same_shape, "identity"),
    LayerDef("ReLU", NoArgs, same_shape, "activation"),
    LayerDef("LeakyReLU", LeakyReLUArgs, same_shape, "activation", ("negative_slope",)),
    LayerDef("GELU", GELUArgs, same_shape, "activation"),
    LayerDef("Tanh", NoArgs, same_shape, "activation"),
    LayerDef("Sigmoid", NoArgs, same_shape, "output"),
    LayerDef("Softmax", SoftmaxArgs, softmax_like("Softmax"), "output"),
    LayerDef("LogSoftmax", SoftmaxArgs, softmax_like("LogSoftmax"), "output"),
)
