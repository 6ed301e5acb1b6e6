"""Sequence layers: embeddings, recurrent layers, attention and transformer encoders.

Package-private shape rules and code hooks for ``LAYERS``. Sequences are batch-first
everywhere, so a per-sample sequence is ``[seq, features]``. The ``call`` hooks return the
forward expression the compiler writes (torch modules here return tuples); ``construct``
returns a constructor expression where torch's constructor cannot be written from the
arguments alone (``TransformerEncoder`` takes a layer instance).
"""

from __future__ import annotations

from typing import Sequence

from specnn.catalog.base import Args, Unpack
from specnn.catalog.layer_rules import Shape, ShapeMismatch, check_given, expect_rank

SEQUENCE = "[sequence, features]"
SEQUENCE_HINT = "sequence layers are batch-first: declare the input as [sequence, features]"


def embedding(a: Args, x: Shape) -> tuple[Shape, Args]:
    return (*x, a.embedding_dim), a


# --- recurrent --------------------------------------------------------------------------------


def output_width(a: Args) -> int:
    """Features per time step of a recurrent layer's output: D * (proj_size or hidden_size)."""
    width = getattr(a, "proj_size", 0) or a.hidden_size
    return width * (2 if a.bidirectional else 1)


def recurrent(name: str):
    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, (2,), SEQUENCE, hint=SEQUENCE_HINT)
        a = check_given(a, "input_size", x[1])
        width = output_width(a)
        return ((x[0], width) if a.output == "sequence" else (width,)), a

    return rule


def recurrent_call(lstm: bool):
    """Call hook for RNN/GRU (``lstm=False``) or LSTM: pick the output the spec asked for.

    torch returns ``(output, h_n)`` (LSTM: ``(output, (h_n, c_n))``); ``h_n`` is
    ``[num_layers * D, batch, hidden]`` with the last layer's two directions last.
    """

    def call(attr: str, inputs: Sequence[str], a: Args) -> Unpack:
        result = f"{attr}({inputs[0]})"
        if a.output == "sequence":
            return Unpack(result, "{out}, _")
        if a.output == "last":
            return Unpack(result, "{out}, _", "{out}[:, -1]")
        target = "_, ({state}, _)" if lstm else "_, {state}"
        if a.bidirectional:
            return Unpack(result, target, "torch.cat([{state}[-2], {state}[-1]], dim=-1)")
        return Unpack(result, target, "{state}[-1]")

    return call


# --- attention --------------------------------------------------------------------------------


def _heads_divide(width_field: str, heads_field: str, a: Args) -> None:
    width, heads = getattr(a, width_field), getattr(a, heads_field)
    if width % heads:
        raise ShapeMismatch(
            f"{width_field}={width} is not divisible by {heads_field}={heads}",
            hint=f"each head gets {width_field} / {heads_field} features: pick a divisor of {width}",
        )


def attention(a: Args, x: Shape) -> tuple[Shape, Args]:
    expect_rank("MultiheadAttention", x, (2,), "[sequence, embed_dim]", hint=SEQUENCE_HINT)
    a = check_given(a, "embed_dim", x[1])
    _heads_divide("embed_dim", "num_heads", a)
    return x, a


def attention_call(attr: str, inputs: Sequence[str], a: Args) -> Unpack:
    x = inputs[0]
    return Unpack(f"{attr}({x}, {x}, {x}, need_weights=False)", "{out}, _")


def encoder(name: str):
    def rule(a: Args, x: Shape) -> tuple[Shape, Args]:
        expect_rank(name, x, (2,), "[sequence, d_model]", hint=SEQUENCE_HINT)
        a = check_given(a, "d_model", x[1])
        _heads_divide("d_model", "nhead", a)
        return x, a

    return rule


_LAYER_KEYWORDS = ("dim_feedforward", "dropout", "activation", "layer_norm_eps", "norm_first", "bias")


def encoder_construct(a: Args) -> str:
    """``nn.TransformerEncoder(nn.TransformerEncoderLayer(...), num_layers=N, ...)``.

    The layer's arguments default to torch's, so only changed ones are written, plus
    ``batch_first=True``. Nested tensors are switched off: they only help with padding masks,
    which specnn never passes, and torch warns about them for ``norm_first`` layers.
    """
    changed = a.changed()
    keywords = [f"{k}={changed[k]!r}" for k in _LAYER_KEYWORDS if k in changed]
    layer = ", ".join([repr(a.d_model), repr(a.nhead), *keywords, "batch_first=True"])
    return (
        f"nn.TransformerEncoder(nn.TransformerEncoderLayer({layer}), "
        f"num_layers={a.num_layers}, enable_nested_tensor=False)"
    )
