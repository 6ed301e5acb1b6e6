"""Argument models for the layer table (package-private: ``LAYERS`` in ``layers.py`` is the API).

Names and defaults are torch's, so a spec reads like the PyTorch code it becomes. Arguments
that depend on the input (``in_features``, ``in_channels``, ``input_size``, ``embed_dim``, ...)
are optional: the shape rule infers them, or checks them when given. Where the spec's default
differs from torch's on purpose (``batch_first``), the field only admits that one value, so
generated code always spells it out and a spec cannot turn it off.

Constraints that need only the arguments are checked here, so they are reported with every
other argument problem; constraints that need the input's shape live in the shape rules.
"""

from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveInt, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from specnn.catalog.base import Args
from specnn.catalog.limits import MAX_NUM_LAYERS

Int1 = Union[PositiveInt, tuple[PositiveInt]]
Int2 = Union[PositiveInt, tuple[PositiveInt, PositiveInt]]
Int3 = Union[PositiveInt, tuple[PositiveInt, PositiveInt, PositiveInt]]
Pad1 = Union[NonNegativeInt, tuple[NonNegativeInt]]
Pad2 = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt]]
Pad3 = Union[NonNegativeInt, tuple[NonNegativeInt, NonNegativeInt, NonNegativeInt]]
PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]


class NoArgs(Args):
    pass


# --- dense ------------------------------------------------------------------------------------


class LinearArgs(Args):
    in_features: Optional[PositiveInt] = None
    out_features: PositiveInt
    bias: bool = True


class BilinearArgs(Args):
    in1_features: Optional[PositiveInt] = None
    in2_features: Optional[PositiveInt] = None
    out_features: PositiveInt
    bias: bool = True


# --- convolutions -----------------------------------------------------------------------------


class Conv1dArgs(Args):
    in_channels: Optional[PositiveInt] = None
    out_channels: PositiveInt
    kernel_size: Int1
    stride: Int1 = 1
    padding: Union[Pad1, Literal["same", "valid"]] = 0
    dilation: Int1 = 1
    groups: PositiveInt = 1
    bias: bool = True
    padding_mode: PaddingMode = "zeros"


class Conv2dArgs(Conv1dArgs):
    kernel_size: Int2
    stride: Int2 = 1
    padding: Union[Pad2, Literal["same", "valid"]] = 0
    dilation: Int2 = 1


class Conv3dArgs(Conv1dArgs):
    kernel_size: Int3
    stride: Int3 = 1
    padding: Union[Pad3, Literal["same", "valid"]] = 0
    dilation: Int3 = 1


def _as_tuple(value: int | tuple[int, ...], n: int) -> tuple[int, ...]:
    return (value,) * n if isinstance(value, int) else tuple(value)


class ConvTranspose1dArgs(Args):
    in_channels: Optional[PositiveInt] = None
    out_channels: PositiveInt
    kernel_size: Int1
    stride: Int1 = 1
    padding: Pad1 = 0
    output_padding: Pad1 = 0
    groups: PositiveInt = 1
    bias: bool = True
    dilation: Int1 = 1

    @model_validator(mode="after")
    def _output_padding_fits(self) -> "ConvTranspose1dArgs":
        # torch refuses this when building the layer; say so before anything is built.
        n = 1 if isinstance(self.kernel_size, int) else len(self.kernel_size)
        stride, dilation = _as_tuple(self.stride, n), _as_tuple(self.dilation, n)
        for i, extra in enumerate(_as_tuple(self.output_padding, n)):
            if extra >= max(stride[i], dilation[i]):
                raise PydanticCustomError(
                    "output-padding",
                    "output_padding={output_padding} must be smaller than stride={stride} or dilation={dilation}",
                    {"output_padding": self.output_padding, "stride": self.stride, "dilation": self.dilation},
                )
        return self


class ConvTranspose2dArgs(ConvTranspose1dArgs):
    kernel_size: Int2
    stride: Int2 = 1
    padding: Pad2 = 0
    output_padding: Pad2 = 0
    dilation: Int2 = 1


# --- pooling ----------------------------------------------------------------------------------


class MaxPool1dArgs(Args):
    kernel_size: Int1
    stride: Optional[Int1] = None
    padding: Pad1 = 0
    dilation: Int1 = 1
    ceil_mode: bool = False


class MaxPool2dArgs(MaxPool1dArgs):
    kernel_size: Int2
    stride: Optional[Int2] = None
    padding: Pad2 = 0
    dilation: Int2 = 1


class MaxPool3dArgs(MaxPool1dArgs):
    kernel_size: Int3
    stride: Optional[Int3] = None
    padding: Pad3 = 0
    dilation: Int3 = 1


class AvgPool1dArgs(Args):
    kernel_size: Int1
    stride: Optional[Int1] = None
    padding: Pad1 = 0
    ceil_mode: bool = False
    count_include_pad: bool = True


class AvgPool2dArgs(AvgPool1dArgs):
    kernel_size: Int2
    stride: Optional[Int2] = None
    padding: Pad2 = 0
    divisor_override: Optional[PositiveInt] = None


class AvgPool3dArgs(AvgPool1dArgs):
    kernel_size: Int3
    stride: Optional[Int3] = None
    padding: Pad3 = 0
    divisor_override: Optional[PositiveInt] = None


class AdaptivePool1dArgs(Args):
    output_size: Int1


class AdaptivePool2dArgs(Args):
    output_size: Union[PositiveInt, tuple[Optional[PositiveInt], Optional[PositiveInt]]] = Field(
        description="an int, or [height, width] where null keeps the input's size"
    )


class AdaptivePool3dArgs(Args):
    output_size: Union[
        PositiveInt, tuple[Optional[PositiveInt], Optional[PositiveInt], Optional[PositiveInt]]
    ] = Field(description="an int, or [depth, height, width] where null keeps the input's size")


# --- normalisation and dropout ----------------------------------------------------------------


class BatchNormArgs(Args):
    num_features: Optional[PositiveInt] = None
    eps: float = Field(1e-5, gt=0)
    momentum: Optional[float] = Field(0.1, ge=0, le=1)
    affine: bool = True
    track_running_stats: bool = True


class InstanceNormArgs(BatchNormArgs):
    affine: bool = False
    track_running_stats: bool = False


class LayerNormArgs(Args):
    normalized_shape: Optional[Union[PositiveInt, tuple[PositiveInt, ...]]] = Field(
        None, description="default: the last dimension of the input"
    )
    eps: float = Field(1e-5, gt=0)
    elementwise_affine: bool = True
    bias: bool = True


class GroupNormArgs(Args):
    num_groups: PositiveInt
    num_channels: Optional[PositiveInt] = None
    eps: float = Field(1e-5, gt=0)
    affine: bool = True


class DropoutArgs(Args):
    p: float = Field(0.5, ge=0, le=1)


# --- reshaping --------------------------------------------------------------------------------


class FlattenArgs(Args):
    start_dim: int = 1
    end_dim: int = -1


class UnflattenArgs(Args):
    dim: int = Field(description="torch's dim, counting the batch dimension (1 = first per-sample dim)")
    unflattened_size: tuple[int, ...] = Field(min_length=1)


def _one_inferred_size(sizes: tuple[int, ...], field: str) -> None:
    if any(s == 0 or s < -1 for s in sizes):
        raise PydanticCustomError("size", "{field} entries must be positive, or -1 once", {"field": field})
    if list(sizes).count(-1) > 1:
        raise PydanticCustomError("size", "{field} may hold -1 only once", {"field": field})


class ReshapeArgs(Args):
    shape: tuple[int, ...] = Field(min_length=1, description="per-sample shape; one entry may be -1")

    @model_validator(mode="after")
    def _sizes(self) -> "ReshapeArgs":
        _one_inferred_size(self.shape, "shape")
        return self


class PermuteArgs(Args):
    dims: tuple[int, ...] = Field(min_length=1, description="a permutation of the per-sample dims (0 = first)")


# --- activations and outputs ------------------------------------------------------------------


class LeakyReLUArgs(Args):
    negative_slope: float = 0.01


class GELUArgs(Args):
    approximate: Literal["none", "tanh"] = "none"


class PReLUArgs(Args):
    num_parameters: PositiveInt = 1
    init: float = 0.25


class ELUArgs(Args):
    alpha: float = 1.0


class SoftplusArgs(Args):
    beta: float = 1.0
    threshold: float = 20.0


class SoftmaxArgs(Args):
    dim: int = -1


# --- sequences --------------------------------------------------------------------------------


class EmbeddingArgs(Args):
    num_embeddings: PositiveInt
    embedding_dim: PositiveInt
    padding_idx: Optional[int] = None
    max_norm: Optional[float] = Field(None, gt=0)
    norm_type: float = 2.0
    scale_grad_by_freq: bool = False

    @model_validator(mode="after")
    def _padding_idx_in_range(self) -> "EmbeddingArgs":
        n = self.num_embeddings
        if self.padding_idx is not None and not -n <= self.padding_idx < n:
            raise PydanticCustomError(
                "padding-idx",
                "padding_idx={padding_idx} must be within num_embeddings={n} (from {low} to {high})",
                {"padding_idx": self.padding_idx, "n": n, "low": -n, "high": n - 1},
            )
        return self


RecurrentOutput = Literal["sequence", "last", "hidden"]


class GRUArgs(Args):
    """Recurrent layers: always batch-first, and ``output`` picks what the next node receives.

    ``output``: ``sequence`` = every time step's output ``[seq, D*hidden]``; ``last`` = the last
    time step of that ``[D*hidden]``; ``hidden`` = the last layer's final hidden state, both
    directions concatenated ``[D*hidden]`` (D = 2 when bidirectional).
    """

    input_size: Optional[PositiveInt] = None
    hidden_size: PositiveInt
    num_layers: PositiveInt = Field(1, le=MAX_NUM_LAYERS)
    bias: bool = True
    batch_first: Literal[True] = Field(True, description="always true: inputs are [batch, seq, features]")
    dropout: float = Field(0.0, ge=0, le=1)
    bidirectional: bool = False
    output: RecurrentOutput = Field("sequence", description="sequence | last | hidden (not a torch argument)")


class RNNArgs(GRUArgs):
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class LSTMArgs(GRUArgs):
    proj_size: NonNegativeInt = Field(0, description="0: no projection; else the output width")

    @model_validator(mode="after")
    def _projection_smaller(self) -> "LSTMArgs":
        if self.proj_size >= self.hidden_size:
            raise PydanticCustomError(
                "proj-size",
                "proj_size={proj_size} must be smaller than hidden_size={hidden_size}",
                {"proj_size": self.proj_size, "hidden_size": self.hidden_size},
            )
        return self


class MultiheadAttentionArgs(Args):
    """Self-attention: query, key and value are the same input ``[seq, embed_dim]``."""

    embed_dim: Optional[PositiveInt] = None
    num_heads: PositiveInt
    dropout: float = Field(0.0, ge=0, le=1)
    bias: bool = True
    batch_first: Literal[True] = Field(True, description="always true: inputs are [batch, seq, features]")


class TransformerEncoderLayerArgs(Args):
    d_model: Optional[PositiveInt] = None
    nhead: PositiveInt
    dim_feedforward: PositiveInt = 2048
    dropout: float = Field(0.1, ge=0, le=1)
    activation: Literal["relu", "gelu"] = "relu"
    layer_norm_eps: float = Field(1e-5, gt=0)
    batch_first: Literal[True] = Field(True, description="always true: inputs are [batch, seq, features]")
    norm_first: bool = False
    bias: bool = True


class TransformerEncoderArgs(TransformerEncoderLayerArgs):
    """A stack of ``num_layers`` identical encoder layers, described by the layer's arguments."""

    num_layers: PositiveInt = Field(le=MAX_NUM_LAYERS)


# --- graph operations -------------------------------------------------------------------------


class ConcatArgs(Args):
    dim: int = Field(-1, description="per-sample dim (0 = first non-batch dim; negative counts from the end)")


class ElementwiseArgs(Args):
    """``add`` / ``multiply`` take no arguments; how the inputs broadcast is inferred.

    ``_lift`` (one entry per input) is how many size-1 dims go right after the batch dim so the
    per-sample shapes line up from the right, as numpy aligns them. It comes from the input
    shapes, like ``in_features``, but is not an argument: no schema field, not in the resolved spec.
    """

    _lift: tuple[int, ...] = PrivateAttr(default=())


class MatmulArgs(Args):
    """``matmul`` takes no arguments; ``_plan`` (from the input ranks) says how to call torch."""

    _plan: tuple[int, int, bool, bool] = PrivateAttr(default=(0, 0, False, False))


class ReduceArgs(Args):
    dim: Union[int, tuple[int, ...]] = Field(description="per-sample dim(s) to reduce (0 = first non-batch dim)")
    keepdim: bool = False
