"""The layer table against PyTorch: every entry's shape rule agrees with the real module.

One table-driven test walks every ``LAYERS`` entry: it resolves the arguments with the entry's
shape rule, builds the torch module from them (or evaluates the operation's ``call``
expression), runs a random batch of 2 and compares the per-sample output shape. The case table
must cover every key, so a new layer without a case fails here.
"""

from __future__ import annotations

import inspect
import itertools
import math
import subprocess
import sys
from typing import Any, NamedTuple

import pytest
import torch
from pydantic import ValidationError
from torch import nn

from specnn.catalog.base import Unpack
from specnn.catalog.layers import LAYERS, LayerDef, ShapeMismatch

BATCH = 2


class Case(NamedTuple):
    layer: str
    args: dict[str, Any]
    inputs: list[list[int]]  # per-sample input shapes


def one(layer: str, args: dict[str, Any], shape: list[int]) -> Case:
    return Case(layer, args, [shape])


ACTIVATIONS = ["ReLU", "ReLU6", "SELU", "SiLU", "Mish", "Hardswish", "Tanh", "Sigmoid", "GELU", "LeakyReLU", "ELU"]


def recurrent_cases() -> list[Case]:
    cases = []
    for layer, bidirectional, num_layers, output in itertools.product(
        ["RNN", "LSTM", "GRU"], [False, True], [1, 2], ["sequence", "last", "hidden"]
    ):
        args = {"hidden_size": 6, "num_layers": num_layers, "bidirectional": bidirectional, "output": output}
        cases.append(one(layer, args, [5, 3]))
    for bidirectional, output in itertools.product([False, True], ["sequence", "last", "hidden"]):
        args = {"hidden_size": 6, "proj_size": 4, "num_layers": 2, "bidirectional": bidirectional, "output": output}
        cases.append(one("LSTM", args, [5, 3]))
    cases.append(one("RNN", {"input_size": 3, "hidden_size": 4, "nonlinearity": "relu", "dropout": 0.2, "num_layers": 2}, [7, 3]))
    return cases


CASES: list[Case] = [
    # dense
    one("Linear", {"out_features": 3}, [4]),
    one("Linear", {"in_features": 4, "out_features": 3, "bias": False}, [5, 4]),
    Case("Bilinear", {"out_features": 3}, [[4], [5]]),
    Case("Bilinear", {"in1_features": 4, "out_features": 2}, [[6, 4], [6, 5]]),
    # convolutions
    one("Conv1d", {"out_channels": 4, "kernel_size": 3}, [2, 10]),
    one("Conv1d", {"out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}, [2, 11]),
    one("Conv1d", {"out_channels": 4, "kernel_size": 4, "padding": "same", "groups": 2}, [2, 9]),
    one("Conv2d", {"out_channels": 6, "kernel_size": 5, "padding": 2}, [1, 28, 28]),
    one("Conv2d", {"out_channels": 4, "kernel_size": [3, 2], "stride": [2, 1], "dilation": [1, 2]}, [2, 9, 8]),
    one("Conv2d", {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 2, "padding": "valid"}, [4, 5, 5]),
    one("Conv2d", {"out_channels": 2, "kernel_size": 3, "padding": 1, "padding_mode": "reflect"}, [3, 6, 7]),
    one("Conv3d", {"out_channels": 3, "kernel_size": 3, "stride": [1, 2, 2], "padding": 1}, [2, 6, 7, 8]),
    one("Conv3d", {"out_channels": 2, "kernel_size": [1, 3, 3]}, [1, 4, 5, 5]),
    one("ConvTranspose1d", {"out_channels": 3, "kernel_size": 3, "stride": 2, "padding": 1, "output_padding": 1}, [4, 5]),
    one("ConvTranspose1d", {"out_channels": 2, "kernel_size": 4, "dilation": 2}, [2, 6]),
    one("ConvTranspose2d", {"out_channels": 4, "kernel_size": 2, "stride": 2}, [8, 7, 7]),
    one("ConvTranspose2d", {"out_channels": 4, "kernel_size": [3, 4], "stride": 2, "padding": [1, 0],
                            "output_padding": 1, "groups": 2, "dilation": [1, 2]}, [6, 5, 4]),
    # pooling
    one("MaxPool1d", {"kernel_size": 3}, [4, 10]),
    one("MaxPool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, [10]),
    one("MaxPool1d", {"kernel_size": 2, "stride": 2, "dilation": 2, "ceil_mode": True}, [3, 9]),
    one("MaxPool2d", {"kernel_size": 2}, [3, 8, 8]),
    one("MaxPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, [3, 9, 9]),
    one("MaxPool2d", {"kernel_size": [2, 3], "stride": [2, 1], "dilation": 2}, [2, 10, 9]),
    one("MaxPool2d", {"kernel_size": 2, "stride": 2, "padding": 1, "ceil_mode": True}, [6, 6]),
    one("MaxPool3d", {"kernel_size": 2}, [2, 4, 6, 6]),
    one("MaxPool3d", {"kernel_size": [1, 3, 3], "stride": [1, 2, 2], "padding": [0, 1, 1], "ceil_mode": True}, [3, 5, 7]),
    one("AvgPool3d", {"kernel_size": 2, "stride": 1}, [2, 3, 4, 5]),
    one("AvgPool3d", {"kernel_size": 3, "padding": 1, "count_include_pad": False, "divisor_override": 2}, [1, 6, 6, 6]),
    one("AvgPool1d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False}, [2, 10]),
    one("AvgPool1d", {"kernel_size": 4}, [2, 9]),
    one("AvgPool2d", {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True}, [3, 7, 7]),
    one("AvgPool2d", {"kernel_size": 2, "divisor_override": 3}, [3, 5, 4]),
    one("AdaptiveAvgPool1d", {"output_size": 4}, [3, 10]),
    one("AdaptiveAvgPool1d", {"output_size": 1}, [7]),
    one("AdaptiveAvgPool2d", {"output_size": [3, None]}, [3, 8, 9]),
    one("AdaptiveAvgPool2d", {"output_size": 1}, [16, 7, 7]),
    one("AdaptiveMaxPool1d", {"output_size": 1}, [8, 20]),
    one("AdaptiveMaxPool1d", {"output_size": 3}, [10]),
    one("AdaptiveAvgPool3d", {"output_size": 1}, [4, 3, 5, 5]),
    one("AdaptiveAvgPool3d", {"output_size": [2, None, 3]}, [2, 4, 6, 7]),
    one("AdaptiveMaxPool3d", {"output_size": [1, 2, 2]}, [3, 4, 4, 4]),
    one("AdaptiveMaxPool3d", {"output_size": 2}, [4, 4, 4]),
    one("AdaptiveMaxPool2d", {"output_size": [2, 3]}, [5, 5]),
    one("AdaptiveMaxPool2d", {"output_size": [None, 2]}, [2, 6, 5]),
    # normalisation
    one("BatchNorm1d", {}, [4]),
    one("BatchNorm1d", {"num_features": 4, "affine": False}, [4, 6]),
    one("BatchNorm2d", {"momentum": None}, [3, 5, 5]),
    one("InstanceNorm2d", {"affine": True}, [3, 5, 5]),
    one("LayerNorm", {}, [5, 8]),
    one("LayerNorm", {"normalized_shape": [5, 8], "elementwise_affine": False}, [5, 8]),
    one("LayerNorm", {"normalized_shape": 8, "bias": False}, [3, 5, 8]),
    one("GroupNorm", {"num_groups": 2}, [4, 5, 5]),
    one("GroupNorm", {"num_groups": 3, "num_channels": 6, "affine": False}, [6, 10]),
    # dropout
    one("Dropout", {"p": 0.2}, [4]),
    one("Dropout1d", {}, [3, 8]),
    one("Dropout2d", {"p": 0.1}, [3, 4, 4]),
    # reshaping
    one("Flatten", {}, [3, 4, 5]),
    one("Flatten", {"start_dim": 2}, [3, 4, 5]),
    one("Unflatten", {"dim": 1, "unflattened_size": [2, -1]}, [12]),
    one("Unflatten", {"dim": -1, "unflattened_size": [3, 4]}, [5, 12]),
    one("Reshape", {"shape": [4, -1]}, [3, 8]),
    one("Reshape", {"shape": [24]}, [2, 3, 4]),
    one("Permute", {"dims": [1, 0]}, [3, 5]),
    one("Permute", {"dims": [2, 0, 1]}, [3, 4, 5]),
    one("Permute", {"dims": [-1, 0, 1]}, [3, 4, 5]),
    one("Identity", {}, [3, 2]),
    # sequences
    one("Embedding", {"num_embeddings": 10, "embedding_dim": 4}, [7]),
    one("Embedding", {"num_embeddings": 10, "embedding_dim": 3, "padding_idx": 0, "max_norm": 1.0}, [3, 5]),
    *recurrent_cases(),
    one("MultiheadAttention", {"num_heads": 2}, [5, 8]),
    one("MultiheadAttention", {"embed_dim": 6, "num_heads": 3, "dropout": 0.1, "bias": False}, [4, 6]),
    one("TransformerEncoderLayer", {"nhead": 2, "dim_feedforward": 16}, [5, 8]),
    one("TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 8, "activation": "gelu", "norm_first": True,
                                    "dropout": 0.0, "layer_norm_eps": 1e-6}, [3, 8]),
    one("TransformerEncoder", {"nhead": 2, "num_layers": 2, "dim_feedforward": 16}, [5, 8]),
    one("TransformerEncoder", {"nhead": 2, "num_layers": 1, "norm_first": True, "bias": False}, [4, 6]),
    # activations and outputs
    *[one(name, {}, [3, 4]) for name in ACTIVATIONS],
    one("PReLU", {}, [5]),
    one("PReLU", {"num_parameters": 3, "init": 0.1}, [3, 4]),
    one("ELU", {"alpha": 0.5}, [4]),
    one("Softplus", {"beta": 2.0, "threshold": 10.0}, [2, 3]),
    one("Softmax", {}, [5]),
    one("Softmax", {"dim": 1}, [3, 4]),
    one("LogSoftmax", {"dim": -1}, [3, 4]),
    # graph operations
    Case("add", {}, [[3, 4], [3, 4], [3, 4]]),
    Case("multiply", {}, [[5], [5]]),
    Case("multiply", {}, [[7, 1], [7, 16]]),          # attention weights [T, 1] times the sequence [T, H]
    Case("add", {}, [[5, 8], [8]]),                   # a per-feature vector added to every time step
    Case("add", {}, [[1, 4], [3, 1], [2, 1, 1]]),     # every input broadcast, ranks 2, 2 and 3
    Case("multiply", {}, [[4, 1, 6], [5, 1]]),
    Case("matmul", {}, [[3, 4], [4, 5]]),
    Case("matmul", {}, [[1, 7], [7, 16]]),            # attention weights [1, T] @ the sequence [T, H]
    Case("matmul", {}, [[4], [4, 5]]),
    Case("matmul", {}, [[3, 4], [4]]),
    Case("matmul", {}, [[4], [4]]),
    Case("matmul", {}, [[2, 3, 4], [4, 5]]),
    Case("matmul", {}, [[3, 4], [6, 4, 2]]),
    Case("matmul", {}, [[2, 1, 3, 4], [5, 4, 2]]),
    Case("matmul", {}, [[4], [2, 4, 3]]),
    Case("concat", {}, [[3, 4], [3, 2]]),
    Case("concat", {"dim": 0}, [[3, 4], [1, 4], [2, 4]]),
    Case("concat", {"dim": -2}, [[2, 3, 4], [2, 1, 4]]),
    one("mean", {"dim": 0}, [5, 8]),
    one("mean", {"dim": -1, "keepdim": True}, [5, 8]),
    one("sum", {"dim": [0, 2], "keepdim": True}, [2, 3, 4]),
    one("sum", {"dim": 1}, [2, 3, 4]),
    one("max", {"dim": -1}, [16, 20]),                # global max pooling over time after a Conv1d
    one("max", {"dim": [1, 2], "keepdim": True}, [3, 4, 5]),
    one("min", {"dim": 0}, [5, 8]),
    one("min", {"dim": [0, -1]}, [2, 3, 4]),
]


# ---------------------------------------------------------------------------------------------
# helpers: what the generated code does, done by hand (no compiler involved)


def build(layer: LayerDef, args) -> nn.Module:
    """The torch module for resolved args: the ``construct`` expression, or ``nn.<name>(**args)``."""
    if layer.construct is not None:
        return eval(layer.construct(args), {"nn": nn, "torch": torch})  # noqa: S307 - our own hook's output
    keywords = {k: v for k, v in args.model_dump().items() if k not in layer.spec_only}
    return getattr(nn, layer.name)(**keywords)


def forward(layer: LayerDef, module: nn.Module | None, args, tensors: list[torch.Tensor]) -> torch.Tensor:
    """Run the forward code the compiler would write: the ``call`` hook, or ``m(x0)``."""
    names = [f"x{i}" for i in range(len(tensors))]
    result = layer.call("m", names, args) if layer.call is not None else "m(x0)"
    scope = {"torch": torch, "m": module, **dict(zip(names, tensors))}
    if isinstance(result, Unpack):  # out, _ = m(x0); then out[:, -1] (or h_n[-1] ...)
        exec(f"{result.target.format(out='out', state='h_n')} = {result.call}", scope)  # noqa: S102
        return eval((result.then or "{out}").format(out="out", state="h_n"), scope)  # noqa: S307
    return eval(result, scope)  # noqa: S307 - our own hook's output


def random_batch(layer: LayerDef, args, shape: list[int]) -> torch.Tensor:
    if layer.input_dtype == "int64":
        return torch.randint(0, args.num_embeddings, (BATCH, *shape))
    return torch.randn(BATCH, *shape)


def resolve(case: Case):
    layer = LAYERS[case.layer]
    return layer, *layer.infer(layer.args.model_validate(case.args), case.inputs)


def case_id(case: Case) -> str:
    return f"{case.layer}-{case.args}-{case.inputs}"


# ---------------------------------------------------------------------------------------------


def test_every_layer_has_a_case():
    assert set(LAYERS) - {case.layer for case in CASES} == set()


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_shape_rule_matches_torch(case: Case):
    torch.manual_seed(0)
    layer, expected, args = resolve(case)
    module = build(layer, args).eval() if layer.is_module else None
    tensors = [random_batch(layer, args, shape) for shape in case.inputs]
    with torch.no_grad():
        out = forward(layer, module, args, tensors)
    assert tuple(out.shape) == (BATCH, *expected)


@pytest.mark.parametrize("case", [c for c in CASES if c.layer in ("add", "multiply", "matmul")], ids=case_id)
def test_broadcasting_operations_act_per_sample_as_numpy_does(case: Case):
    """Each sample's result is numpy's broadcast of that sample's inputs (the batch never mixes)."""
    torch.manual_seed(0)
    layer, _, args = resolve(case)
    tensors = [torch.randn(BATCH, *shape) for shape in case.inputs]
    reference = {"add": lambda *xs: sum(xs), "multiply": lambda *xs: math.prod(xs),
                 "matmul": torch.matmul}[case.layer]
    expected = torch.stack([reference(*(t[i] for t in tensors)) for i in range(BATCH)])
    torch.testing.assert_close(forward(layer, None, args, tensors), expected)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_parameter_count_matches_torch(case: Case):
    layer, _, args = resolve(case)
    expected = sum(p.numel() for p in build(layer, args).parameters()) if layer.is_module else 0
    assert layer.parameters(args) == expected


def test_inferred_arguments_are_filled_in():
    _, _, conv = resolve(one("Conv2d", {"out_channels": 6, "kernel_size": 5}, [3, 28, 28]))
    _, _, lstm = resolve(one("LSTM", {"hidden_size": 6}, [5, 3]))
    _, _, norm = resolve(one("LayerNorm", {}, [5, 8]))
    _, _, bilinear = resolve(Case("Bilinear", {"out_features": 3}, [[4], [5]]))
    assert (conv.in_channels, lstm.input_size, norm.normalized_shape) == (3, 3, 8)
    assert (bilinear.in1_features, bilinear.in2_features) == (4, 5)


def test_hidden_output_is_the_last_layers_final_state_of_both_directions():
    torch.manual_seed(0)
    x = torch.randn(BATCH, 5, 3)
    for name in ("GRU", "LSTM"):
        layer, _, hidden = resolve(one(name, {"hidden_size": 4, "num_layers": 2, "bidirectional": True, "output": "hidden"}, [5, 3]))
        module = build(layer, hidden).eval()
        sequence = module(x)[0]
        expected = torch.cat([sequence[:, -1, :4], sequence[:, 0, 4:]], dim=-1)
        torch.testing.assert_close(forward(layer, module, hidden, [x]), expected)


@pytest.mark.parametrize(
    "layer, args, output, unpacked",
    [
        ("LSTM", {"hidden_size": 4}, "last", Unpack("self.lstm(x)", "{out}, _", "{out}[:, -1]")),
        ("LSTM", {"hidden_size": 4}, "hidden", Unpack("self.lstm(x)", "_, ({state}, _)", "{state}[-1]")),
        ("LSTM", {"hidden_size": 4, "bidirectional": True}, "hidden",
         Unpack("self.lstm(x)", "_, ({state}, _)", "torch.cat([{state}[-2], {state}[-1]], dim=-1)")),
        ("GRU", {"hidden_size": 4}, "hidden", Unpack("self.lstm(x)", "_, {state}", "{state}[-1]")),
        ("RNN", {"hidden_size": 4}, "sequence", Unpack("self.lstm(x)", "{out}, _")),
    ],
)
def test_recurrent_call_unpacks_as_people_write_it(layer, args, output, unpacked):
    a = LAYERS[layer].args.model_validate({**args, "output": output})
    assert LAYERS[layer].call("self.lstm", ["x"], a) == unpacked


def test_operation_call_expressions_count_the_batch():
    def call(name, args, inputs):
        return LAYERS[name].call("", inputs, LAYERS[name].args.model_validate(args))

    assert call("concat", {"dim": 0}, ["a", "b"]) == "torch.cat([a, b], dim=1)"
    assert call("concat", {}, ["a", "b"]) == "torch.cat([a, b], dim=-1)"
    assert call("mean", {"dim": [0, -1], "keepdim": True}, ["h"]) == "h.mean(dim=(1, -1), keepdim=True)"
    assert call("add", {}, ["a", "b", "c"]) == "a + b + c"
    assert call("max", {"dim": [0, 1]}, ["h"]) == "h.amax(dim=(1, 2))"
    assert call("min", {"dim": -1, "keepdim": True}, ["h"]) == "h.amin(dim=-1, keepdim=True)"

    def resolved(name, shapes):
        layer = LAYERS[name]
        _, args = layer.infer(layer.args.model_validate({}), shapes)
        return layer.call("", ["a", "b"], args)

    assert resolved("add", [[5, 8], [8]]) == "a + b[:, None]"
    assert resolved("multiply", [[7, 1], [7, 16]]) == "a * b"
    assert resolved("matmul", [[1, 7], [7, 16]]) == "torch.matmul(a, b)"
    assert resolved("matmul", [[4], [2, 4, 3]]) == "torch.matmul(a[:, None].unsqueeze(-2), b).squeeze(-2)"
    assert call("Reshape", {"shape": [4, -1]}, ["h"]) == "h.reshape(h.shape[0], 4, -1)"
    assert call("Permute", {"dims": [1, 0]}, ["h"]) == "h.permute(0, 2, 1)"
    assert LAYERS["MultiheadAttention"].call("self.attn", ["x"], None) == Unpack(
        "self.attn(x, x, x, need_weights=False)", "{out}, _")


def test_transformer_encoder_constructor_expression():
    _, _, args = resolve(one("TransformerEncoder", {"nhead": 2, "num_layers": 3, "dim_feedforward": 16}, [5, 8]))
    assert LAYERS["TransformerEncoder"].construct(args) == (
        "nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, batch_first=True), "
        "num_layers=3, enable_nested_tensor=False)"
    )


# ---------------------------------------------------------------------------------------------
# errors: shape rules


@pytest.mark.parametrize(
    "case, message, hint",
    [
        (one("Conv2d", {"out_channels": 4, "kernel_size": 3}, [10]),
         "Conv2d needs a per-sample input of shape [channels, height, width], got [10]",
         "declare the input with a channel dimension, or add an Unflatten layer"),
        (one("Conv2d", {"in_channels": 3, "out_channels": 4, "kernel_size": 3}, [1, 28, 28]),
         "in_channels=3 but the input has 1", "remove in_channels (it is inferred) or set it to 1"),
        (one("Conv1d", {"out_channels": 4, "kernel_size": 5}, [2, 3]),
         "Conv1d with kernel_size=5 does not fit input [2, 3] (output would be -1)",
         "use a smaller kernel or padding, or fewer pooling layers before it"),
        (one("LSTM", {"hidden_size": 4}, [10]),
         "LSTM needs a per-sample input of shape [sequence, features], got [10]",
         "sequence layers are batch-first: declare the input as [sequence, features]"),
        (one("MultiheadAttention", {"num_heads": 3}, [5, 8]),
         "embed_dim=8 is not divisible by num_heads=3",
         "each head gets embed_dim / num_heads features: pick a divisor of 8"),
        (one("TransformerEncoder", {"nhead": 3, "num_layers": 2}, [5, 8]),
         "d_model=8 is not divisible by nhead=3", "each head gets d_model / nhead features: pick a divisor of 8"),
        (one("GroupNorm", {"num_groups": 3}, [4, 5, 5]),
         "GroupNorm num_channels=4 is not divisible by num_groups=3", "pick num_groups that divides the channel count"),
        (one("LayerNorm", {"normalized_shape": [4, 8]}, [5, 8]),
         "LayerNorm normalized_shape=[4, 8] must match the last dimensions of the input [5, 8]",
         "remove normalized_shape to normalise the last dimension (8)"),
        (Case("add", {}, [[3, 4], [4, 3]]),
         "add cannot broadcast [3, 4], [4, 3]: dim -2 is 3 in one and 4 in another (sizes must be equal or 1)",
         "shapes line up from the last dim as in numpy: reshape or project the inputs so each dim matches or is 1"),
        (Case("multiply", {}, [[5, 8], [5]]),
         "multiply cannot broadcast [5, 8], [5]: dim -1 is 5 in one and 8 in another (sizes must be equal or 1)",
         "shapes line up from the last dim as in numpy: reshape or project the inputs so each dim matches or is 1"),
        (Case("matmul", {}, [[3, 4], [5, 6]]),
         "matmul [3, 4] @ [5, 6]: the first input's last dim (4) differs from the second's second-to-last dim (5)",
         "permute or project one input so the inner dims match"),
        (Case("matmul", {}, [[3, 4], [3]]),
         "matmul [3, 4] @ [3]: the first input's last dim (4) differs from the second's only dim (3)",
         "permute or project one input so the inner dims match"),
        (Case("matmul", {}, [[2, 3, 4], [5, 4, 2]]),
         "matmul cannot broadcast the leading dims [2] and [5] of [2, 3, 4] @ [5, 4, 2]: dim -1 is 2 in one and 5 in another (sizes must be equal or 1)",
         "shapes line up from the last dim as in numpy: reshape or project the inputs so each dim matches or is 1"),
        (Case("matmul", {}, [[3, 4], [4, 5], [5, 2]]), "matmul takes 2 inputs, got 3", None),
        (Case("add", {}, [[3, 4]]), "add joins two or more inputs, got 1", "list them in 'from'"),
        (Case("concat", {"dim": 0}, [[3, 4], [3, 5]]),
         "concat along dim=0 needs all other dims equal, got [3, 4], [3, 5]", None),
        (Case("Bilinear", {"out_features": 2}, [[3, 4], [2, 5]]),
         "Bilinear needs two inputs that differ only in their last dimension, got [3, 4] and [2, 5]", None),
        (one("Reshape", {"shape": [5, -1]}, [3, 4]), "Reshape shape [5, -1] cannot hold the 12 elements of [3, 4]", None),
        (one("Reshape", {"shape": [5, 2]}, [3, 4]),
         "Reshape shape [5, 2] holds 10 elements but the input [3, 4] has 12", None),
        (one("Unflatten", {"dim": 0, "unflattened_size": [2, 2]}, [4]),
         "Unflatten of the batch dimension (dim 0) would mix samples", "use dim >= 1"),
        (one("Permute", {"dims": [0, 0]}, [3, 4]),
         "Permute dims=[0, 0] is not a permutation of the per-sample dims of [3, 4] (expected each of 0..1 once)", None),
        (one("mean", {"dim": 2}, [3, 4]),
         "mean dim=2 is out of range for per-sample input [3, 4] (0 is the first non-batch dim; the batch cannot be used)",
         None),
        (one("PReLU", {"num_parameters": 4}, [3, 5]),
         "PReLU num_parameters=4 must be 1 or the channel count, got input [3, 5]", None),
        (one("MaxPool2d", {"kernel_size": 2, "padding": 2}, [3, 8, 8]),
         "MaxPool2d padding=2 must be at most half of kernel_size=2", None),
        (one("Softmax", {"dim": 0}, [5]), "Softmax(dim=0) normalises across the batch", "use dim=-1 or dim=1"),
        (one("LogSoftmax", {"dim": -3}, [3, 4]),
         "LogSoftmax(dim=-3) normalises across the batch", "use dim=-1 or dim=1"),
        (one("Flatten", {"start_dim": 4}, [3, 4, 5]),
         "Flatten start_dim=4 is out of range for input [3, 4, 5] (plus batch)", "use a dim from -4 to 3"),
        (one("Flatten", {"end_dim": -5}, [3, 4, 5]),
         "Flatten end_dim=-5 is out of range for input [3, 4, 5] (plus batch)", "use a dim from -4 to 3"),
    ],
    ids=lambda v: case_id(v) if isinstance(v, Case) else "",
)
def test_shape_errors(case: Case, message: str, hint: str | None):
    with pytest.raises(ShapeMismatch) as caught:
        resolve(case)
    assert (caught.value.message, caught.value.hint) == (message, hint)


# ---------------------------------------------------------------------------------------------
# errors: arguments alone


@pytest.mark.parametrize(
    "layer, args, error_type, message",
    [
        ("LSTM", {"hidden_size": 4, "batch_first": False}, "literal_error", "Input should be True"),
        ("LSTM", {"hidden_size": 4, "proj_size": 4}, "proj-size", "proj_size=4 must be smaller than hidden_size=4"),
        ("GRU", {"hidden_size": 4, "proj_size": 2}, "extra_forbidden", "Extra inputs are not permitted"),
        ("GRU", {"hidden_size": 4, "output": "final"}, "literal_error", "Input should be 'sequence', 'last' or 'hidden'"),
        ("Embedding", {"num_embeddings": 5, "embedding_dim": 2, "padding_idx": 5}, "padding-idx",
         "padding_idx=5 must be within num_embeddings=5 (from -5 to 4)"),
        ("ConvTranspose2d", {"out_channels": 2, "kernel_size": 3, "stride": 2, "output_padding": 2}, "output-padding",
         "output_padding=2 must be smaller than stride=2 or dilation=1"),
        ("Reshape", {"shape": [-1, -1]}, "size", "shape may hold -1 only once"),
        ("Reshape", {"shape": [0, 3]}, "size", "shape entries must be positive, or -1 once"),
    ],
)
def test_argument_errors(layer: str, args: dict, error_type: str, message: str):
    with pytest.raises(ValidationError) as caught:
        LAYERS[layer].args.model_validate(args)
    errors = caught.value.errors()
    assert [(e["type"], e["msg"]) for e in errors] == [(error_type, message)]


# ---------------------------------------------------------------------------------------------
# the contract with code generation


def torch_defaults(name: str) -> dict[str, Any]:
    """torch's constructor defaults; recurrent layers hide theirs behind ``*args, **kwargs``."""
    cls = getattr(nn, name)
    params = dict(inspect.signature(cls).parameters)
    if issubclass(cls, nn.RNNBase):
        params = dict(inspect.signature(nn.RNNBase.__init__).parameters)
        defaults = {"nonlinearity": "tanh"} if name == "RNN" else {}
    else:
        defaults = {}
    defaults.update({k: p.default for k, p in params.items() if p.default is not p.empty})
    return defaults | {k: inspect.Parameter.empty for k, p in params.items() if p.default is p.empty}


@pytest.mark.parametrize("name", [n for n, d in LAYERS.items() if d.is_module])
def test_argument_names_and_defaults_are_torchs(name: str):
    """Code generation leaves out an argument equal to the catalogue's default: it must be torch's.

    Where the spec's default differs on purpose (``batch_first=True``; Softmax's ``dim=-1``,
    where torch's None picks one implicitly), the entry's ``torch_defaults`` says torch's value.
    """
    layer = LAYERS[name]
    torch_name = "TransformerEncoderLayer" if layer.construct is not None else name
    torch_args = torch_defaults(torch_name)
    for field, info in layer.args.model_fields.items():
        if field in layer.spec_only or (layer.construct is not None and field == "num_layers"):
            continue
        assert field in torch_args, f"{name}.{field} is not a torch argument"
        if field in layer.torch_defaults:
            assert info.default != layer.torch_defaults[field] == torch_args[field], f"{name}.{field}"
        elif not info.is_required() and not callable(torch_args[field]):
            assert info.default == torch_args[field], f"{name}.{field}"
    assert set(layer.torch_defaults) <= set(layer.args.model_fields)


def torch_positional_order(name: str) -> list[str]:
    cls = getattr(nn, name)
    init = nn.RNNBase.__init__ if issubclass(cls, nn.RNNBase) else cls.__init__
    params = list(inspect.signature(init).parameters.values())[1:]
    names = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    return names[1:] if issubclass(cls, nn.RNNBase) else names  # RNNBase takes `mode` first


@pytest.mark.parametrize("name", [n for n, d in LAYERS.items() if d.is_module and d.construct is None])
def test_positional_arguments_lead_torchs_signature(name: str):
    """Generated code writes ``positional`` arguments by position: they must be torch's first ones."""
    positional = list(LAYERS[name].positional)
    assert torch_positional_order(name)[: len(positional)] == positional


def test_every_operation_and_multi_input_layer_has_a_call_hook():
    missing = [n for n, d in LAYERS.items() if (not d.is_module or d.arity != 1) and d.call is None]
    assert missing == []


def test_the_catalogue_does_not_import_torch():
    code = "import sys, specnn.catalog.layers, specnn.spec.models; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
