"""Values known only with the data: token ids past an Embedding's table, synthetic data too large to
allocate. Each is a located problem (exit 2) from validate where the spec says both, else when the
data is read, before a file of the run is written.
"""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from specnn.cli import cli

TOKENS = textwrap.dedent(
    """\
    name: tokens
    seed: 0
    model:
      inputs:
        tokens: {shape: [5], dtype: int64}
      layers:
        - Embedding: {num_embeddings: 10, embedding_dim: 4}
        - Flatten:
        - Linear: {out_features: 3}
    data: {synthetic: {shape: [5], vocab: 10, classes: 3, samples: 64}}
    loss: {CrossEntropyLoss: }
    optimizer: {Adam: {lr: 0.01}}
    train: {epochs: 1, batch_size: 16}
    """
)


def run_cli(cli_runner, tmp_path, text: str, *command: str, files: dict | None = None):
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    for name, content in (files or {}).items():
        (tmp_path / name).write_bytes(content) if isinstance(content, bytes) else np.savez(tmp_path / name, **content)
    args = [*command, str(spec)] + (["--out", str(tmp_path / "run")] if command == ("train",) else [])
    return cli_runner.invoke(cli, args)


def assert_refused(result, tmp_path, expected: str) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    [line] = result.output.splitlines()
    assert line.startswith(f"{tmp_path / 'spec.yaml'}:") and expected in line
    assert not (tmp_path / "run").exists()  # refused before the run folder is claimed
    return line


@pytest.mark.parametrize("command", [("validate",), ("train",)])
def test_synthetic_vocab_past_the_embedding_is_refused_at_vocab(cli_runner, tmp_path, command):
    result = run_cli(cli_runner, tmp_path, TOKENS.replace("vocab: 10", "vocab: 50"), *command)
    line = assert_refused(result, tmp_path, "data.synthetic.vocab: synthetic token ids run from 0 to 49, but "
                                            "Embedding 'embed1' reading input 'tokens' has num_embeddings: 10")
    assert ":10:" in line and "set vocab to at most 10, or num_embeddings to at least 50" in line


def test_a_vocab_the_embedding_holds_trains(cli_runner, tmp_path):
    result = run_cli(cli_runner, tmp_path, TOKENS, "train")
    assert result.exit_code == 0, result.output


def test_named_synthetic_inputs_are_matched_to_their_embedding(cli_runner, tmp_path):
    text = TOKENS.replace("{shape: [5], vocab: 10, classes", "{inputs: {tokens: {shape: [5], vocab: 11}}, classes")
    result = run_cli(cli_runner, tmp_path, text, "validate")
    assert_refused(result, tmp_path, "data.synthetic.inputs.tokens.vocab: synthetic token ids run from 0 to 10")


def test_an_embedding_inside_a_block_bounds_the_ids_it_reads(cli_runner, tmp_path):
    text = TOKENS.replace("  layers:\n    - Embedding: {num_embeddings: 10, embedding_dim: 4}",
                          "  blocks:\n    Embed:\n      layers: [{Embedding: {num_embeddings: 8, embedding_dim: 4}}]\n"
                          "  layers:\n    - block: Embed")
    result = run_cli(cli_runner, tmp_path, text, "validate")
    assert_refused(result, tmp_path, "Embedding 'embed1' reading input 'tokens' has num_embeddings: 8")


NPZ_TOKENS = TOKENS.replace("{synthetic: {shape: [5], vocab: 10, classes: 3, samples: 64}}",
                            "{npz: {path: tokens.npz}}")


@pytest.mark.parametrize("command", [("validate", "--data"), ("train",)])
@pytest.mark.parametrize("bad, expected", [(57, "holds token id 57"), (-3, "holds token id -3")])
def test_token_ids_in_a_file_past_the_embedding_are_refused_at_num_embeddings(cli_runner, tmp_path, command, bad,
                                                                              expected):
    x = np.random.default_rng(0).integers(0, 10, size=(40, 5))
    x[7, 2] = bad
    result = run_cli(cli_runner, tmp_path, NPZ_TOKENS, *command,
                     files={"tokens.npz": {"x": x, "y": np.arange(40) % 3}})
    line = assert_refused(result, tmp_path, "model.layers[0].Embedding.num_embeddings: tokens.npz " + expected)
    assert "(1 id(s) out of range)" in line and "has num_embeddings: 10 (ids 0..9)" in line


def test_token_ids_in_a_csv_past_the_embedding_are_refused(cli_runner, tmp_path):
    rows = ["a,b,c,d,e,y"] + [f"{i % 10},1,2,3,{(i * 7) % 12},{i % 3}" for i in range(30)]
    text = TOKENS.replace("{synthetic: {shape: [5], vocab: 10, classes: 3, samples: 64}}",
                          "{csv: {path: t.csv, target: y}}")
    result = run_cli(cli_runner, tmp_path, text, "train", files={"t.csv": ("\n".join(rows) + "\n").encode()})
    assert_refused(result, tmp_path, "t.csv holds token id 11 for input 'tokens'")


@pytest.mark.parametrize("old, new, expected", [
    ("samples: 64", "samples: 100000000000", "data.synthetic.samples: the synthetic data would hold "
                                             "600,000,000,030 values (100,000,000,000 samples of 6 values)"),
    ("shape: [5], vocab: 10,", "shape: [100000, 100000],", "data.synthetic.shape: "),
    ("classes: 3", "classes: 1000000000", "data.synthetic.classes: "),
])
@pytest.mark.parametrize("command", [("validate",), ("train",)])
def test_synthetic_data_too_large_to_allocate_is_refused_before_allocation(cli_runner, tmp_path, old, new, expected,
                                                                           command):
    text = TOKENS.replace(old, new).replace("{shape: [5], dtype: int64}", "{shape: [5]}")
    text = text.replace("- Embedding: {num_embeddings: 10, embedding_dim: 4}", "- Linear: {out_features: 4}")
    result = run_cli(cli_runner, tmp_path, text, *command)
    line = assert_refused(result, tmp_path, expected)
    assert "more than 100,000,000" in line


BATCH_NORM = textwrap.dedent(
    """\
    name: bn
    seed: 0
    model:
      input: [4]
      layers:
        - Linear: {out_features: 8}
        - BatchNorm1d:
        - ReLU:
        - Linear: {out_features: 2}
    data: {synthetic: {shape: [4], classes: 2, samples: 41}}
    loss: {CrossEntropyLoss: }
    optimizer: {Adam: {lr: 0.01}}
    train: {epochs: 1, batch_size: 4}
    """
)


@pytest.mark.parametrize("old, new, expected", [
    ("samples: 41", "samples: 41", "the training split's 33 samples in batches of 4 leave a last batch of 1, "
                                   "which it cannot normalize in training (use a batch_size that leaves no batch "
                                   "of one sample, e.g. 5)"),
    ("batch_size: 4", "batch_size: 1", "batch_size is 1"),
    ("samples: 41}}", "samples: 3}, validation_split: 0.5}", "the training split holds 1 sample"),
])
@pytest.mark.parametrize("command", [("validate", "--data"), ("train",)])
def test_a_batch_norm_never_gets_a_batch_of_one_sample(cli_runner, tmp_path, old, new, expected, command):
    result = run_cli(cli_runner, tmp_path, BATCH_NORM.replace(old, new), *command)
    line = assert_refused(result, tmp_path, "train.batch_size: BatchNorm1d 'bn1' normalizes each of its channels "
                                            "over the batch, one value per sample; ")
    assert expected in line


def test_a_batch_norm_over_positions_takes_a_batch_of_one(cli_runner, tmp_path):
    text = BATCH_NORM.replace("input: [4]", "input: [2, 4]").replace("shape: [4]", "shape: [2, 4]")
    text = text.replace("    - Linear: {out_features: 8}\n", "").replace("    - ReLU:\n", "    - Flatten:\n")
    result = run_cli(cli_runner, tmp_path, text.replace("batch_size: 4", "batch_size: 1"), "train")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("arrays, expected", [
    ({"x": np.ones((6, 4), np.complex64), "y": np.arange(6) % 2}, "'x' holds complex64 values, not real numbers"),
    ({"x": np.ones((6, 4)), "y": np.ones(6, np.complex128)}, "'y' holds complex128 values, not labels or real numbers"),
])
def test_complex_npz_arrays_are_refused_not_cast_with_a_warning(cli_runner, tmp_path, arrays, expected):
    text = BATCH_NORM.replace("{synthetic: {shape: [4], classes: 2, samples: 41}}", "{npz: {path: d.npz}}")
    result = run_cli(cli_runner, tmp_path, text, "train", files={"d.npz": arrays})
    assert result.exit_code == 2, result.output
    assert result.output == f"{tmp_path / 'd.npz'}: {expected}\n"


def test_an_image_size_too_large_to_hold_is_refused_before_a_file_is_decoded(cli_runner, tmp_path):
    text = BATCH_NORM.replace("{synthetic: {shape: [4], classes: 2, samples: 41}}",
                              "{images: {path: pics, size: [100000, 64]}}")
    result = run_cli(cli_runner, tmp_path, text, "train")
    assert_refused(result, tmp_path, "data.images.size[0]: must be <= 8192, got 100000")


def test_a_single_value_npz_array_is_refused(cli_runner, tmp_path):
    text = BATCH_NORM.replace("{synthetic: {shape: [4], classes: 2, samples: 41}}", "{npz: {path: d.npz}}")
    result = run_cli(cli_runner, tmp_path, text, "train", files={"d.npz": {"x": np.float32(1), "y": np.arange(3)}})
    assert result.exit_code == 2, result.output
    assert result.output == f"{tmp_path / 'd.npz'}: 'x' is a single value, not an array with one entry per sample\n"


@pytest.fixture(scope="module")
def token_run(tmp_path_factory):
    from click.testing import CliRunner

    folder = tmp_path_factory.mktemp("tokens")
    result = run_cli(CliRunner(), folder, TOKENS, "train")
    assert result.exit_code == 0, result.output
    return folder / "run"


@pytest.mark.parametrize("x, expected", [
    (np.full((3, 5), 12), "holds token id 12 for input 'tokens' (15 id(s) out of range), but Embedding 'embed1' "
                          "has num_embeddings: 10 (ids 0..9) (set num_embeddings to at least 13)"),
    (np.full((3, 5), -1.0), "holds token id -1 for input 'tokens' (15 id(s) out of range), but Embedding 'embed1' "
                            "has num_embeddings: 10 (ids 0..9) (token ids cannot be negative)"),
    (np.zeros((0, 5)), "holds no rows to predict"),
    (np.float32(3), "array 'x' is a single value, not one row per sample"),
    (np.full((2, 5), 1e300), "x[0, 0]: 1e+300 is past float32's range (3.4e38)"),
    (np.ones((2, 5), np.complex64), "array 'x' holds complex64 values, not real numbers"),
])
def test_predict_refuses_rows_the_model_cannot_take(cli_runner, tmp_path, token_run, x, expected):
    np.savez(tmp_path / "new.npz", x=x)
    result = cli_runner.invoke(cli, ["predict", str(token_run), str(tmp_path / "new.npz")])
    assert result.exit_code == 2, result.output
    assert result.output == f"{tmp_path / 'new.npz'}: {expected}\n"


def test_predict_checks_the_row_width_even_without_the_runs_preprocessing_file(cli_runner, tmp_path, token_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(token_run, run)
    (run / "preprocess.json").unlink()
    np.savez(tmp_path / "new.npz", x=np.ones((2, 5, 2), np.int64))
    result = cli_runner.invoke(cli, ["predict", str(run), str(tmp_path / "new.npz")])
    assert result.exit_code == 2, result.output
    assert result.output == f"{tmp_path / 'new.npz'}: has 10 values per row, the model input [5] takes 5\n"
