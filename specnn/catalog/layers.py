"""The layer table: every layer a spec may use, one entry each.

An entry holds the layer's argument model (torch's own argument names and defaults), its
shape rule and how it is written in generated code. Shapes here are *per sample*: no batch
dimension. Arguments that depend on the input (``in_features``, ``in_channels``,
``num_features``, ...) are optional; the shape rule fills them in, or checks them when given.

Adding a layer: write its ``Args`` model (``layer_args.py``) and shape rule (``layer_rules.py``,
``layer_sequence.py`` or ``layer_ops.py``), add one ``LayerDef`` to ``LAYERS`` and one case to
``tests/test_catalog_layers.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping, Optional, Sequence, Union

from specnn.catalog import layer_args as A
from specnn.catalog import layer_ops as ops
from specnn.catalog import layer_params as P
from specnn.catalog import layer_sequence as seq
from specnn.catalog.base import Args, Unpack
from specnn.catalog.layer_rules import (  # noqa: F401  (re-exported: the compiler's vocabulary)
    Shape,
    ShapeMismatch,
    adaptive_pool,
    batchnorm,
    bilinear,
    channel_dropout,
    channels_first,
    check_given,
    conv,
    conv_transpose,
    expect_rank,
    flatten,
    fmt,
    group_norm,
    layer_norm,
    linear,
    pool,
    prelu,
    same_shape,
    softmax_like,
    unflatten,
)

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
            input variable names, resolved args) -> Python expression, or an :class:`Unpack`
            for a module returning a tuple. None: ``attr(x)``.
        spec_only: spec arguments that are not constructor arguments (e.g. which RNN output to take).
        is_module: False for graph operations (add, concat, ...): no attribute, only an expression.
        arity: number of inputs; None for "two or more".
        input_dtype: dtype the layer needs (``int64`` for Embedding); None for any float.
        construct: the constructor expression, from the resolved args, where torch's constructor
            cannot be written from the arguments alone (``TransformerEncoder`` takes a layer
            instance); it names torch.nn as ``nn``. None: ``nn.<name>(<positional>, <changed keywords>)``.
        torch_defaults: torch's default for each argument whose spec default differs from it on
            purpose (``batch_first``: specnn's sequences are batch-first); generated code always
            writes these. Every other argument's default is torch's (a test checks it).
        parameters: how many parameters the module holds, from the resolved args (``inspect``
            counts a model with it, without building one).
    """

    name: str
    args: type[Args]
    rule: Callable[..., tuple[Shape, Args]]
    role: Role
    positional: tuple[str, ...] = ()
    call: Optional[Callable[[str, Sequence[str], Args], Union[str, Unpack]]] = None
    spec_only: tuple[str, ...] = ()
    is_module: bool = True
    arity: Optional[int] = 1
    input_dtype: Optional[str] = None
    construct: Optional[Callable[[Args], str]] = None
    torch_defaults: Mapping[str, Any] = field(default_factory=dict)
    parameters: Callable[[Args], int] = P.none

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


_SEQ_ONLY = ("output",)
_BATCH_FIRST = {"batch_first": False}
_DIM = {"dim": None}  # torch picks a dim implicitly (deprecated); specnn's default is the last
_CONV = ("in_channels", "out_channels", "kernel_size")
_RECURRENT = ("input_size", "hidden_size")
_KERNEL, _SIZE, _FEATURES = ("kernel_size",), ("output_size",), ("num_features",)
_1D, _2D, _3D = "[channels, length]", "[channels, height, width]", "[channels, depth, height, width]"

LAYERS: dict[str, LayerDef] = _table(
    # dense
    LayerDef("Linear", A.LinearArgs, linear, "linear", ("in_features", "out_features"), parameters=P.linear),
    LayerDef("Bilinear", A.BilinearArgs, bilinear, "linear", ("in1_features", "in2_features", "out_features"),
             call=ops.module_call, arity=2, parameters=P.bilinear),
    # convolutions
    LayerDef("Conv1d", A.Conv1dArgs, conv("Conv1d", 1), "conv", _CONV,
             parameters=P.conv(1)),
    LayerDef("Conv2d", A.Conv2dArgs, conv("Conv2d", 2), "conv", _CONV,
             parameters=P.conv(2)),
    LayerDef("Conv3d", A.Conv3dArgs, conv("Conv3d", 3), "conv", _CONV,
             parameters=P.conv(3)),
    LayerDef("ConvTranspose1d", A.ConvTranspose1dArgs, conv_transpose("ConvTranspose1d", 1), "conv", _CONV,
             parameters=P.conv(1)),
    LayerDef("ConvTranspose2d", A.ConvTranspose2dArgs, conv_transpose("ConvTranspose2d", 2), "conv", _CONV,
             parameters=P.conv(2)),
    # pooling
    LayerDef("MaxPool1d", A.MaxPool1dArgs, pool("MaxPool1d", 1), "pool", _KERNEL),
    LayerDef("MaxPool2d", A.MaxPool2dArgs, pool("MaxPool2d", 2), "pool", _KERNEL),
    LayerDef("MaxPool3d", A.MaxPool3dArgs, pool("MaxPool3d", 3), "pool", _KERNEL),
    LayerDef("AvgPool1d", A.AvgPool1dArgs, pool("AvgPool1d", 1), "pool", _KERNEL),
    LayerDef("AvgPool2d", A.AvgPool2dArgs, pool("AvgPool2d", 2), "pool", _KERNEL),
    LayerDef("AvgPool3d", A.AvgPool3dArgs, pool("AvgPool3d", 3), "pool", _KERNEL),
    LayerDef("AdaptiveAvgPool1d", A.AdaptivePool1dArgs, adaptive_pool("AdaptiveAvgPool1d", 1), "pool", _SIZE),
    LayerDef("AdaptiveAvgPool2d", A.AdaptivePool2dArgs, adaptive_pool("AdaptiveAvgPool2d", 2), "pool", _SIZE),
    LayerDef("AdaptiveAvgPool3d", A.AdaptivePool3dArgs, adaptive_pool("AdaptiveAvgPool3d", 3), "pool", _SIZE),
    LayerDef("AdaptiveMaxPool1d", A.AdaptivePool1dArgs, adaptive_pool("AdaptiveMaxPool1d", 1), "pool", _SIZE),
    LayerDef("AdaptiveMaxPool2d", A.AdaptivePool2dArgs, adaptive_pool("AdaptiveMaxPool2d", 2), "pool", _SIZE),
    LayerDef("AdaptiveMaxPool3d", A.AdaptivePool3dArgs, adaptive_pool("AdaptiveMaxPool3d", 3), "pool", _SIZE),
    # normalisation
    LayerDef("BatchNorm1d", A.BatchNormArgs, batchnorm("BatchNorm1d", (1, 2), f"[features] or {_1D}"), "norm", _FEATURES,
             parameters=P.affine("num_features")),
    LayerDef("BatchNorm2d", A.BatchNormArgs, batchnorm("BatchNorm2d", (3,), _2D), "norm", _FEATURES,
             parameters=P.affine("num_features")),
    LayerDef("InstanceNorm2d", A.InstanceNormArgs, channels_first("InstanceNorm2d", (3,), _2D), "norm", _FEATURES,
             parameters=P.affine("num_features")),
    LayerDef("LayerNorm", A.LayerNormArgs, layer_norm, "norm", ("normalized_shape",), parameters=P.layer_norm),
    LayerDef("GroupNorm", A.GroupNormArgs, group_norm, "norm", ("num_groups", "num_channels"),
             parameters=P.affine("num_channels")),
    # dropout
    LayerDef("Dropout", A.DropoutArgs, same_shape, "dropout", ("p",)),
    LayerDef("Dropout1d", A.DropoutArgs, channel_dropout("Dropout1d", 2, _1D), "dropout", ("p",)),
    LayerDef("Dropout2d", A.DropoutArgs, channel_dropout("Dropout2d", 3, _2D), "dropout", ("p",)),
    # reshaping
    LayerDef("Flatten", A.FlattenArgs, flatten, "reshape"),
    LayerDef("Unflatten", A.UnflattenArgs, unflatten, "reshape", ("dim", "unflattened_size")),
    LayerDef("Reshape", A.ReshapeArgs, ops.reshape, "reshape", call=ops.reshape_call, is_module=False),
    LayerDef("Permute", A.PermuteArgs, ops.permute, "reshape", call=ops.permute_call, is_module=False),
    LayerDef("Identity", A.NoArgs, same_shape, "identity"),
    # sequences
    LayerDef("Embedding", A.EmbeddingArgs, seq.embedding, "embedding", ("num_embeddings", "embedding_dim"),
             input_dtype="int64", parameters=P.embedding),
    LayerDef("RNN", A.RNNArgs, seq.recurrent("RNN"), "recurrent", _RECURRENT,
             call=seq.recurrent_call(lstm=False), spec_only=_SEQ_ONLY, torch_defaults=_BATCH_FIRST, parameters=P.recurrent(1)),
    LayerDef("LSTM", A.LSTMArgs, seq.recurrent("LSTM"), "recurrent", _RECURRENT,
             call=seq.recurrent_call(lstm=True), spec_only=_SEQ_ONLY, torch_defaults=_BATCH_FIRST, parameters=P.recurrent(4)),
    LayerDef("GRU", A.GRUArgs, seq.recurrent("GRU"), "recurrent", _RECURRENT,
             call=seq.recurrent_call(lstm=False), spec_only=_SEQ_ONLY, torch_defaults=_BATCH_FIRST, parameters=P.recurrent(3)),
    LayerDef("MultiheadAttention", A.MultiheadAttentionArgs, seq.attention, "attention", ("embed_dim", "num_heads"),
             call=seq.attention_call, torch_defaults=_BATCH_FIRST,
             parameters=P.attention),
    LayerDef("TransformerEncoderLayer", A.TransformerEncoderLayerArgs, seq.encoder("TransformerEncoderLayer"),
             "attention", ("d_model", "nhead"), torch_defaults=_BATCH_FIRST, parameters=P.encoder_layer),
    LayerDef("TransformerEncoder", A.TransformerEncoderArgs, seq.encoder("TransformerEncoder"), "attention",
             construct=seq.encoder_construct, torch_defaults=_BATCH_FIRST, parameters=P.encoder),
    # activations
    LayerDef("ReLU", A.NoArgs, same_shape, "activation"),
    LayerDef("ReLU6", A.NoArgs, same_shape, "activation"),
    LayerDef("LeakyReLU", A.LeakyReLUArgs, same_shape, "activation", ("negative_slope",)),
    LayerDef("PReLU", A.PReLUArgs, prelu, "activation", parameters=P.prelu),
    LayerDef("ELU", A.ELUArgs, same_shape, "activation"),
    LayerDef("SELU", A.NoArgs, same_shape, "activation"),
    LayerDef("GELU", A.GELUArgs, same_shape, "activation"),
    LayerDef("SiLU", A.NoArgs, same_shape, "activation"),
    LayerDef("Mish", A.NoArgs, same_shape, "activation"),
    LayerDef("Softplus", A.SoftplusArgs, same_shape, "activation"),
    LayerDef("Hardswish", A.NoArgs, same_shape, "activation"),
    LayerDef("Tanh", A.NoArgs, same_shape, "activation"),
    # outputs
    LayerDef("Sigmoid", A.NoArgs, same_shape, "output"),
    LayerDef("Softmax", A.SoftmaxArgs, softmax_like("Softmax"), "output", torch_defaults=_DIM),
    LayerDef("LogSoftmax", A.SoftmaxArgs, softmax_like("LogSoftmax"), "output", torch_defaults=_DIM),
    # graph operations: per-sample dims, no module
    LayerDef("add", A.ElementwiseArgs, ops.elementwise("add"), "operation", call=ops.infix("+"), is_module=False,
             arity=None),
    LayerDef("multiply", A.ElementwiseArgs, ops.elementwise("multiply"), "operation", call=ops.infix("*"),
             is_module=False, arity=None),
    LayerDef("matmul", A.MatmulArgs, ops.matmul, "operation", call=ops.matmul_call, is_module=False, arity=2),
    LayerDef("concat", A.ConcatArgs, ops.concat, "operation", call=ops.concat_call, is_module=False, arity=None),
    LayerDef("mean", A.ReduceArgs, ops.reduction("mean"), "operation", call=ops.reduction_call("mean"),
             is_module=False),
    LayerDef("sum", A.ReduceArgs, ops.reduction("sum"), "operation", call=ops.reduction_call("sum"),
             is_module=False),
    LayerDef("max", A.ReduceArgs, ops.reduction("max"), "operation", call=ops.reduction_call("amax"),
             is_module=False),
    LayerDef("min", A.ReduceArgs, ops.reduction("min"), "operation", call=ops.reduction_call("amin"),
             is_module=False),
)
