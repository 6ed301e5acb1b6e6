"""The generated model.py reads like hand-written PyTorch and is the same bytes on every machine."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from conftest import EXAMPLES, ROOT

from specnn.compiler import build_model, compile_spec
from specnn.spec.loader import load_spec, load_spec_text

SPECS = sorted(EXAMPLES.glob("*.yaml"))
TAIL = "data: {synthetic: {shape: [4]}}\nloss: {CrossEntropyLoss: }\noptimizer: {Adam: {lr: 0.01}}\n"


def source_from(directory, path) -> str:
    """Compile ``path`` as seen from ``directory`` (the working directory while loading)."""
    import os

    before = os.getcwd()
    os.chdir(directory)
    try:
        return compile_spec(load_spec(path)).source
    finally:
        os.chdir(before)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_one_spec_is_the_same_bytes_from_anywhere(spec, tmp_path):
    relative = source_from(ROOT, spec.relative_to(ROOT))
    assert source_from(tmp_path, spec) == relative  # absolute path, another working directory
    assert source_from(EXAMPLES, spec.name) == relative  # the file name alone, from its folder
    assert str(ROOT) not in relative and str(tmp_path) not in relative
    assert f" from {spec.name}. " in relative.splitlines()[0] or f"from {spec.name}." in relative


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.name)
def test_every_generated_line_is_under_100_characters(spec):
    source = compile_spec(load_spec(spec)).source
    assert [line for line in source.splitlines() if len(line) >= 100] == []
    compile(source, spec.name, "exec")


def test_the_command_line_writes_the_same_bytes_from_another_folder(tmp_path):
    spec = EXAMPLES / "two_input_graph.yaml"
    subprocess.run([sys.executable, "-m", "specnn", "compile", str(spec), "-o", str(tmp_path)], cwd=tmp_path,
                   check=True, capture_output=True)
    assert (tmp_path / "model.py").read_bytes() == source_from(ROOT, "examples/two_input_graph.yaml").encode()


def forward_of(model_yaml: str) -> list[str]:
    source = compile_spec(load_spec_text("name: t\nmodel:\n" + model_yaml + TAIL)).source
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    def forward"))
    return [line.strip() for line in lines[start + 1:]]


def test_recurrent_outputs_are_unpacked_as_people_write_them():
    assert forward_of("  input: [20, 8]\n  layers:\n    - LSTM: {hidden_size: 16, output: last}\n"
                      "    - Linear: {out_features: 3}\n") == [
        "x, _ = self.lstm1(x)",
        "x = x[:, -1]  # (N, 16)",
        "x = self.fc1(x)  # (N, 3)",
        "return x",
    ]
    assert forward_of("  input: [20, 8]\n  layers:\n"
                      "    - LSTM: {hidden_size: 16, bidirectional: true, num_layers: 2, output: hidden}\n"
                      "    - Linear: {out_features: 3}\n")[:2] == [
        "_, (h_n, _) = self.lstm1(x)",
        "x = torch.cat([h_n[-2], h_n[-1]], dim=-1)  # (N, 32)",
    ]
    assert forward_of("  input: [20, 8]\n  layers:\n    - MultiheadAttention: {num_heads: 2}\n"
                      "    - Flatten:\n    - Linear: {out_features: 3}\n")[0] == (
        "x, _ = self.attn1(x, x, x, need_weights=False)  # (N, 20, 8)")


def test_a_temporary_never_takes_a_nodes_name():
    lines = forward_of("  input: [20, 8]\n  layers:\n    - GRU: {hidden_size: 8, output: hidden}\n"
                       "    - Linear: {out_features: 8}\n      name: h_n\n"
                       "    - GRU: {hidden_size: 8, output: hidden}\n      from: x\n      name: other\n"
                       "    - add:\n      from: [h_n, other]\n")
    assert lines[:4] == ["_, h_n_1 = self.gru1(x)", "gru1 = h_n_1[-1]  # (N, 8)", "h_n = self.h_n(gru1)  # (N, 8)",
                         "_, h_n_2 = self.other(x)"]


def test_a_long_constructor_is_wrapped_and_builds_the_same_module():
    spec = load_spec(EXAMPLES / "text_transformer.yaml")
    compiled = compile_spec(spec)
    lines = compiled.source.splitlines()
    start = lines.index("        self.encoder1 = nn.TransformerEncoder(")
    assert lines[start + 1:start + 5] == [
        "            nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, dropout=0.0, batch_first=True),",
        "            num_layers=1,",
        "            enable_nested_tensor=False,",
        "        )",
    ]
    assert compiled.init_lines["encoder1"] == start + 1
    torch.manual_seed(0)
    model = build_model(compiled).eval()
    assert model(torch.randint(0, 50, (2, 24))).shape == (2, 3)


def test_one_long_output_name_is_returned_as_a_tensor_not_a_tuple():
    name = "x" * 300  # `return (x,)` once: wrapping the long line made the output a tuple
    spec = load_spec_text(f"name: t\nmodel:\n  inputs: {{{name}: {{shape: [4]}}}}\n  layers:\n"
                          "    - Linear: {out_features: 3}\n" + TAIL)
    model = build_model(compile_spec(spec)).eval()
    assert model(torch.ones(2, 4)).shape == (2, 3)
