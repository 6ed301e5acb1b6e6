"""The compiler honours every LayerDef hook: real layers built from the catalogue, run in torch.

Each case is a small spec; the built module must run on a batch and return exactly the shape
the compiler inferred (the inferred shape is the compiler's promise; torch is the referee).
"""

from __future__ import annotations

import pytest
import torch

from specnn.compiler import build_model, compile_spec
from specnn.spec.models import Spec

SEQ = {"input": [7, 16]}  # [sequence, features]

CASES = {
    # call hook + spec_only argument (which output to take)
    "LSTM last": (SEQ, [{"LSTM": {"hidden_size": 12, "output": "last"}}]),
    "GRU bidirectional": (SEQ, [{"GRU": {"hidden_size": 5, "bidirectional": True}}]),
    # call hook with one input used three times
    "MultiheadAttention": (SEQ, [{"MultiheadAttention": {"num_heads": 4}}]),
    # construct hook (a layer instance inside the constructor)
    "TransformerEncoder": (SEQ, [{"TransformerEncoder": {"nhead": 2, "num_layers": 2, "dim_feedforward": 32}}]),
    # input_dtype: int64 token ids in, float features out
    "Embedding": ({"inputs": {"tokens": {"shape": [9], "dtype": "int64"}}},
                  [{"Embedding": {"num_embeddings": 50, "embedding_dim": 8}}, {"Flatten": None},
                   {"Linear": {"out_features": 2}}]),
    # graph operations: no attribute, an expression over several inputs
    "add and concat": ({"input": [6]}, [
        {"Linear": {"out_features": 6}, "name": "a"},
        {"Tanh": None, "name": "b"},
        {"add": None, "from": ["a", "b", "x"]},
        {"concat": None, "from": ["a", "b"]},
    ]),
    # a module with two inputs
    "Bilinear": ({"input": [3]}, [
        {"Linear": {"out_features": 4}, "name": "left"},
        {"Bilinear": {"out_features": 2}, "from": ["left", "x"]},
    ]),
}


def spec_of(model: dict, layers: list) -> Spec:
    return Spec.model_validate({
        "name": "case",
        "model": {**model, "layers": layers},
        "data": {"csv": {"path": "d.csv", "target": "y"}},
        "loss": {"MSELoss": None},
        "optimizer": {"SGD": {"lr": 0.1}},
    })


def batch(compiled, n: int = 3) -> list[torch.Tensor]:
    out = []
    for t in compiled.inputs.values():
        if t.dtype == "int64":
            out.append(torch.randint(0, 9, (n, *t.shape)))
        else:
            out.append(torch.randn(n, *t.shape, dtype=getattr(torch, t.dtype)))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_built_module_returns_the_inferred_shape(case):
    compiled = compile_spec(spec_of(*CASES[case]))
    model = build_model(compiled).eval()
    with torch.no_grad():
        result = model(*batch(compiled))
    results = result if isinstance(result, tuple) else (result,)
    assert [tuple(r.shape) for r in results] == [(3, *shape) for shape in compiled.outputs.values()]


def test_operation_nodes_have_no_attribute_and_a_readable_expression():
    compiled = compile_spec(spec_of(*CASES["add and concat"]))
    forward = compiled.source.split("def forward")[1]
    assert "add1 = a + b + x  # (N, 6)" in forward
    assert "concat1 = torch.cat([a, b], dim=-1)  # (N, 12)" in forward
    assert [name for name, _ in build_model(compiled).named_children()] == ["a", "b"]


def test_recurrent_layers_are_batch_first_like_the_spec_says():
    # torch hides nn.LSTM's defaults behind (*args, **kwargs); batch_first=True must still be written.
    compiled = compile_spec(spec_of(*CASES["LSTM last"]))
    assert "self.lstm1 = nn.LSTM(16, 12, batch_first=True)" in compiled.source
    model, hand = build_model(compiled), torch.nn.LSTM(16, 12, batch_first=True)
    hand.load_state_dict(model.lstm1.state_dict())
    x = torch.randn(3, 7, 16)
    assert torch.equal(model(x), hand(x)[0][:, -1])


def test_text_cnn_example_is_kims_network_with_max_over_time():
    """examples/text_cnn.yaml equals the hand-written text CNN (global max pooling over time)."""
    from pathlib import Path

    from specnn.spec.loader import load_spec

    model = build_model(compile_spec(load_spec(Path(__file__).parent.parent / "examples/text_cnn.yaml"))).eval()
    embed, conv, fc = torch.nn.Embedding(50, 32), torch.nn.Conv1d(32, 64, 3), torch.nn.Linear(64, 3)
    for hand, built in ((embed, model.embed1), (conv, model.conv1), (fc, model.fc1)):
        hand.load_state_dict(built.state_dict())
    tokens = torch.randint(0, 50, (5, 24))
    features = torch.relu(conv(embed(tokens).transpose(1, 2)))
    expected = fc(torch.nn.functional.adaptive_max_pool1d(features, 1).squeeze(-1))
    with torch.no_grad():
        torch.testing.assert_close(model(tokens), expected)


def test_attention_pooling_example_equals_the_hand_written_weighted_sum():
    """examples/attention_pooling.yaml: softmax scores over time, broadcast-multiplied, summed."""
    from pathlib import Path

    from specnn.spec.loader import load_spec

    model = build_model(compile_spec(load_spec(Path(__file__).parent.parent / "examples/attention_pooling.yaml")))
    model.eval()
    gru, score, fc = torch.nn.GRU(8, 32, batch_first=True), torch.nn.Linear(32, 1), torch.nn.Linear(32, 4)
    for hand, built in ((gru, model.steps), (score, model.fc1), (fc, model.fc2)):
        hand.load_state_dict(built.state_dict())
    x = torch.randn(5, 32, 8)
    steps = gru(x)[0]
    weights = torch.softmax(score(steps), dim=1)
    expected = fc(torch.bmm(weights.transpose(1, 2), steps).squeeze(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), expected)


def test_matmul_and_broadcasting_compile_into_the_forward():
    compiled = compile_spec(spec_of({"input": [7, 16]}, [
        {"Linear": {"out_features": 1}, "name": "score"},
        {"Permute": {"dims": [1, 0]}, "name": "scores_t"},
        {"matmul": None, "from": ["scores_t", "x"], "name": "pooled"},
        {"mean": {"dim": 0}, "name": "bias"},
        {"add": None, "from": ["x", "bias"]},
    ]))
    forward = compiled.source.split("def forward")[1]
    assert "pooled = torch.matmul(scores_t, x)  # (N, 1, 16)" in forward
    assert "add1 = x + bias[:, None]  # (N, 7, 16)" in forward
