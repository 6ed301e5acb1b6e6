"""Reading with hard limits: whatever a spec file holds, the answer is one located problem, quickly.

Each case here once hung, grew without bound or ended in a traceback (issue 9); the limits are
:mod:`specnn.spec.limits` and :mod:`specnn.catalog.limits`.
"""

from __future__ import annotations

import os
import textwrap

import pytest

from specnn.catalog.limits import MAX_EXPANDED_LAYERS, MAX_REPEAT
from specnn.errors import Problem, SpecError
from specnn.spec.limits import MAX_DEPTH, MAX_PROBLEMS, MAX_SPEC_BYTES, MAX_VALUES
from specnn.spec.loader import check_file, load_spec, load_spec_text

HEAD = textwrap.dedent(
    """\
    name: tiny
    model: {input: [4], layers: [{Linear: {out_features: 2}}]}
    data: {synthetic: {shape: [4]}}
    loss: {CrossEntropyLoss: }
    optimizer: {Adam: {lr: 1e-3}}
    """
)


def problems_of(text: str, fmt: str = "yaml") -> list[str]:
    with pytest.raises(SpecError) as raised:
        load_spec_text(text, file="s.yaml", format=fmt)
    return [p.format() for p in raised.value.problems]


# ---------------------------------------------------------------------------------------------
# What the path names


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    assert check_file(fifo) == [Problem("file", "is not a regular file (a FIFO): a spec must be a file",
                                        file=str(fifo))]


def test_a_link_to_dev_zero_is_refused_before_reading(tmp_path):
    link = tmp_path / "spec.yaml"
    link.symlink_to("/dev/zero")
    assert check_file(link) == [Problem("file", "is not a regular file (a character device): a spec must be a file",
                                        file=str(link))]


def test_a_file_over_the_cap_is_refused_by_its_size(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(HEAD.encode() + b"#" * MAX_SPEC_BYTES)
    [problem] = check_file(path)
    assert problem.format() == (f"{path}: is 10 MB; a spec file may hold at most 10 MB "
                                "(a spec describes a model; data goes in its own files)")


def test_a_file_just_under_the_cap_is_read(tmp_path):
    path = tmp_path / "long.yaml"
    path.write_bytes(HEAD.encode() + b"#" * (MAX_SPEC_BYTES - len(HEAD) - 1) + b"\n")
    assert load_spec(path).name == "tiny"


def test_an_unreadable_file_says_so(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "secret.yaml"
    path.write_text(HEAD)
    path.chmod(0)
    assert check_file(path) == [Problem("file", "cannot be read: Permission denied", file=str(path))]


# ---------------------------------------------------------------------------------------------
# Aliases, nesting, numbers


def billion_laughs() -> str:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def mapping_bomb() -> str:
    lines = ["a: &a {x: 1, y: 2, z: 3, w: 4}"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} {{p: *{prev}, q: *{prev}, r: *{prev}, s: *{prev}, t: *{prev}}}")
    return "\n".join(lines) + "\n"


def merge_bomb() -> str:
    lines = ["a: &a {k0: 1, k1: 1}"]
    for prev, name in zip("abcdefghijklmnop", "bcdefghijklmnopq"):
        lines.append(f"{name}: &{name} {{<<: [{', '.join(['*' + prev] * 9)}]}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("text, where", [(billion_laughs(), "s.yaml:5:28: the alias *d"),
                                         (mapping_bomb(), "s.yaml:7:18: the alias *f"),
                                         (merge_bomb(), "s.yaml:5:41: the alias *d")])
def test_alias_bombs_are_refused_at_the_alias_that_explodes(text, where):
    assert problems_of(text) == [f"{where} expands to more than {MAX_VALUES:,} values "
                                 "(write the values out, or use fewer aliases of aliases)"]


def test_a_chain_of_aliases_is_bounded_in_depth():
    lines = ["a: &a [1]"] + [f"x{i}: &x{i} [*{'a' if i == 0 else f'x{i - 1}'}]" for i in range(100)]
    [message] = problems_of("\n".join(lines) + "\n")
    assert message.endswith(f"nests lists and mappings more than {MAX_DEPTH} levels deep "
                            "(write the values out, or use fewer aliases of aliases)")


def test_plain_aliases_and_merge_keys_still_work():
    text = (HEAD.replace("input: [4]", "input: &shape [4]").replace("shape: [4]", "shape: *shape")
            .replace("{Adam: {lr: 1e-3}}", "{Adam: {<<: {eps: 1.0e-6, amsgrad: true}, lr: 1e-3}}"))
    spec = load_spec_text(text)
    assert spec.data.args.shape == [4]
    assert (spec.optimizer.args.lr, spec.optimizer.args.eps, spec.optimizer.args.amsgrad) == (0.001, 1e-6, True)


def test_a_list_of_many_values_is_refused_where_it_passes_the_limit():
    [message] = problems_of(HEAD + "lint: {ignore: [" + ", ".join(["S101"] * (MAX_VALUES + 10)) + "]}\n")
    assert message.startswith("s.yaml:6:") and message.endswith(f"the spec holds more than {MAX_VALUES:,} values")


@pytest.mark.parametrize("fmt, text", [("yaml", "seed: " + "1" * 5000 + "\n"), ("yaml", "seed: 0x" + "f" * 200 + "\n"),
                                       ("json", '{"seed": ' + "1" * 5000 + "}")])
def test_an_integer_of_thousands_of_digits_is_a_located_problem(fmt, text):
    [message] = problems_of(text, fmt)
    assert message.startswith("s.yaml:1:") and "digits is too long to be a value (at most 100)" in message


def test_a_hundred_thousand_wrong_values_report_a_bounded_number_of_problems():
    items = ", ".join(["1"] * (MAX_VALUES // 3))
    problems = problems_of(HEAD + f"lint: {{ignore: [{items}]}}\n")
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"s.yaml: more than {MAX_PROBLEMS} problems: the first {MAX_PROBLEMS} are shown"


# ---------------------------------------------------------------------------------------------
# Messages stay one line


def test_a_value_with_a_newline_or_escape_sequence_stays_on_one_line():
    [message] = problems_of(HEAD.replace("name: tiny", 'name: "bad\\nname\\x1b[2J"'))
    assert message == "s.yaml:1:7: name: must be a run name (letters, digits, '.', '_' and '-', starting with a " \
                      "letter or digit), got 'bad\\nname\\x1b[2J'"


def test_a_huge_value_is_shortened_in_its_message():
    [message] = problems_of(HEAD.replace("name: tiny", "name: '" + "!" * 100_000 + "'"))
    assert message.endswith("!!!... (100,000 characters)'") and len(message) < 300


def test_a_control_character_in_the_file_is_located():
    assert problems_of(HEAD + "x: \x07\n") == [
        "s.yaml:6:4: invalid YAML: byte 0x07 is not allowed in YAML text "
        "(remove it, or write it as an escape inside double quotes)"]


# ---------------------------------------------------------------------------------------------
# Declared sizes


@pytest.mark.parametrize("value, message", [
    ("1000000000000", f"must be <= {MAX_REPEAT}, got 1000000000000"),
    ("1e12", f"must be <= {MAX_REPEAT}, got 1e+12"),
])
def test_repeat_is_capped_and_not_read_from_a_float(value, message):
    text = HEAD.replace("layers: [{Linear: {out_features: 2}}]",
                        f"blocks: {{B: {{layers: [{{ReLU: }}]}}}}, layers: [{{block: B, repeat: {value}}}]")
    assert problems_of(text) == [f"s.yaml:2:84: model.layers[0].repeat: {message}"]


def test_repeat_given_as_a_whole_float_is_not_an_integer():
    text = HEAD.replace("layers: [{Linear: {out_features: 2}}]",
                        "blocks: {B: {layers: [{ReLU: }]}}, layers: [{block: B, repeat: 2.0}]")
    [message] = problems_of(text)
    assert message.startswith("s.yaml:2:") and "repeat" in message and "integer" in message


def test_repeats_multiplied_through_nested_blocks_are_refused_at_the_use():
    text = HEAD.replace("layers: [{Linear: {out_features: 2}}]", (
        "blocks: {A: {layers: [{ReLU: }, {Tanh: }]}, B: {layers: [{block: A, repeat: 1000}]}}, "
        "layers: [{Linear: {out_features: 2}}, {block: B, repeat: 1000}]"))
    [message] = problems_of(text)
    assert message == (f"s.yaml:2:156: model.layers[1].repeat: the model expands to 2,000,001 layers, more than "
                       f"{MAX_EXPANDED_LAYERS:,}; this use of block B alone gives 2,000,000 (use fewer repeats, "
                       "or fewer layers in the block)")


def test_num_layers_and_shape_lengths_are_capped():
    lstm = HEAD.replace("model: {input: [4], layers: [{Linear: {out_features: 2}}]}",
                        "model: {input: [3, 4], layers: [{LSTM: {hidden_size: 2, num_layers: 100000, output: last}}]}")
    assert problems_of(lstm) == ["s.yaml:2:69: model.layers[0].LSTM.num_layers: must be <= 1000, got 100000"]
    dims = HEAD.replace("input: [4]", "input: [" + ", ".join(["1"] * 17) + "]")
    assert problems_of(dims) == ["s.yaml:2:16: model.input: needs at most 16 items, got 17"]
