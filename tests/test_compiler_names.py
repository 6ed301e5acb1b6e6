"""Names in generated code: the one namespace, and the names it refuses, checked against torch."""

from __future__ import annotations

import builtins

import pytest
from torch import nn

from specnn.catalog.layers import LAYERS
from specnn.compiler.names import (
    MODULE_MEMBERS,
    Namespace,
    is_attribute_name,
    is_class_name,
    is_parameter_name,
)


def test_module_members_cover_the_installed_torch():
    """An attribute named like one of these would replace nn.Module's own (``eval``, ``training``)."""
    members = {name for name in [*dir(nn.Module), *vars(nn.Module())] if not name.startswith("__")}
    assert members - MODULE_MEMBERS == set()


@pytest.mark.parametrize(
    "name, attribute, parameter, class_name",
    [
        ("fc1", True, True, True),
        ("eval", False, True, False),  # nn.Module.eval, and a builtin
        ("training", False, True, True),  # set by nn.Module.__init__
        ("__init__", False, True, False),
        ("torch", False, False, False),
        ("super", False, False, False),
        ("forward", False, False, False),
        ("lambda", False, False, False),
        ("tuple", True, True, False),  # a module-level class would shadow the builtin
        ("2fc", False, False, False),
    ],
)
def test_which_names_are_refused(name: str, attribute: bool, parameter: bool, class_name: bool):
    assert (is_attribute_name(name), is_parameter_name(name), is_class_name(name)) == (attribute, parameter, class_name)


def test_generated_names_never_shadow_anything():
    namespace = Namespace()
    names = [namespace.for_layer(kind) for kind in LAYERS for _ in range(2)]
    assert len(set(names)) == len(names)
    assert all(is_attribute_name(n) and not hasattr(builtins, n) for n in names)


@pytest.mark.parametrize(
    "kind, first",
    [
        ("Linear", "fc1"), ("Bilinear", "bilinear1"), ("Conv2d", "conv1"), ("ConvTranspose2d", "deconv1"),
        ("MaxPool2d", "pool1"), ("AdaptiveAvgPool2d", "pool1"), ("BatchNorm2d", "bn1"), ("LayerNorm", "ln1"),
        ("GroupNorm", "gn1"), ("InstanceNorm2d", "norm1"), ("Dropout", "dropout1"), ("Flatten", "flatten"),
        ("Identity", "identity1"), ("Embedding", "embed1"), ("LSTM", "lstm1"), ("GRU", "gru1"),
        ("MultiheadAttention", "attn1"), ("TransformerEncoderLayer", "encoder_layer1"),
        ("TransformerEncoder", "encoder1"), ("ReLU", "relu1"), ("LeakyReLU", "leakyrelu1"),
        ("Softmax", "softmax"), ("LogSoftmax", "logsoftmax"), ("add", "add1"), ("sum", "sum1"),
    ],
)
def test_names_come_from_the_layer_kind(kind: str, first: str):
    assert Namespace().for_layer(kind) == first
