"""Parameter counts for the layer table (package-private: ``LAYERS`` in ``layers.py`` is the API).

Each function takes a layer's resolved arguments (after shape inference filled in
``in_features``, ``in_channels`` ...) and returns how many parameters torch's module holds,
so ``specnn inspect`` counts a model without building it (and without importing torch).
Buffers such as BatchNorm's running statistics are not parameters. The formulas follow the
shapes in torch's ``__init__`` of each module; ``tests/test_catalog_layers.py`` checks every
one against ``sum(p.numel() for p in module.parameters())``.
"""

from __future__ import annotations

import math

from specnn.catalog.base import Args
from specnn.catalog.layer_rules import ntuple


def none(a: Args) -> int:
    return 0


def linear(a: Args) -> int:
    return a.in_features * a.out_features + (a.out_features if a.bias else 0)


def bilinear(a: Args) -> int:
    return a.in1_features * a.in2_features * a.out_features + (a.out_features if a.bias else 0)


def conv(n: int):
    """Conv{n}d and ConvTranspose{n}d: weight ``[out, in / groups, *kernel]`` (transposed:
    ``[in, out / groups, *kernel]``, the same count), and a bias per output channel."""

    def count(a: Args) -> int:
        kernel = math.prod(ntuple(a.kernel_size, n))
        return a.in_channels * a.out_channels // a.groups * kernel + (a.out_channels if a.bias else 0)

    return count


def affine(field: str):
    """BatchNorm, InstanceNorm, GroupNorm: a weight and a bias per channel when ``affine``."""

    def count(a: Args) -> int:
        return 2 * getattr(a, field) if a.affine else 0

    return count


def layer_norm(a: Args) -> int:
    if not a.elementwise_affine:
        return 0
    size = math.prod(a.normalized_shape) if isinstance(a.normalized_shape, tuple) else a.normalized_shape
    return size * (2 if a.bias else 1)


def embedding(a: Args) -> int:
    return a.num_embeddings * a.embedding_dim


def prelu(a: Args) -> int:
    return a.num_parameters


def recurrent(gates: int):
    """RNN (1 gate), GRU (3), LSTM (4): per layer and direction, input and hidden weights and biases.

    An LSTM with ``proj_size`` also projects each hidden state (``weight_hr``), and the next
    layer (and the recurrence) read the projected width.
    """

    def count(a: Args) -> int:
        directions = 2 if a.bidirectional else 1
        projection = getattr(a, "proj_size", 0)
        width = projection or a.hidden_size
        rows = gates * a.hidden_size
        total = 0
        for index in range(a.num_layers):
            reads = a.input_size if index == 0 else width * directions
            per_direction = rows * (reads + width) + (2 * rows if a.bias else 0)
            per_direction += projection * a.hidden_size
            total += per_direction * directions
        return total

    return count


def attention(a: Args) -> int:
    """Query, key and value projections in one matrix, and the output projection."""
    return _attention(a.embed_dim, a.bias)


def _attention(width: int, bias: bool) -> int:
    return 4 * width * width + (4 * width if bias else 0)


def encoder_layer(a: Args) -> int:
    """Self-attention, the two feed-forward Linears and the two LayerNorms (all with ``bias``)."""
    d, ff, bias = a.d_model, a.dim_feedforward, a.bias
    feed_forward = 2 * d * ff + ((ff + d) if bias else 0)
    norms = 2 * d * (2 if bias else 1)
    return _attention(d, bias) + feed_forward + norms


def encoder(a: Args) -> int:
    return a.num_layers * encoder_layer(a)
