"""`import specnn`: a typed facade that names the whole API and imports torch only when asked to."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import specnn

ROOT = Path(__file__).resolve().parents[1]
PUBLIC_FUNCTIONS = ("load_spec", "compile_spec", "build_model", "train", "load_run", "evaluate", "predict",
                    "export", "plot_run")


def test_import_specnn_and_checking_a_spec_never_import_torch():
    code = ("import sys, specnn; specnn.check_file('examples/iris.yaml'); specnn.load_spec('examples/iris.yaml'); "
            "specnn.Spec; specnn.SpecError; dir(specnn); print(sorted(m for m in sys.modules if m.split('.')[0] "
            "in ('torch', 'numpy', 'onnx')))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, "[]\n", "")


def test_every_name_resolves_to_its_definition():
    for name in specnn.__all__:
        value = getattr(specnn, name)
        module = specnn._API[name]
        assert value is getattr(sys.modules[module], name), name
    with pytest.raises(AttributeError, match="module 'specnn' has no attribute 'trian'"):
        specnn.trian  # noqa: B018


def test_dir_lists_the_api():
    assert dir(specnn) == sorted([*specnn.__all__, "__version__"])
    assert sorted(specnn.__all__) == sorted(specnn._API)


def test_type_checkers_see_every_public_name_where_it_is_defined():
    tree = ast.parse((ROOT / "specnn" / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {alias.name: node.module for node in block.body for alias in node.names}
    assert seen == specnn._API


def test_public_functions_are_typed_without_any():
    for name in PUBLIC_FUNCTIONS:
        signature = inspect.signature(getattr(specnn, name))
        annotations = [p.annotation for p in signature.parameters.values() if p.name not in ("echo",)]
        annotations.append(signature.return_annotation)
        for annotation in annotations:
            assert annotation is not inspect.Parameter.empty, name
            assert "Any" not in str(annotation), f"{name}: {annotation}"


def test_the_package_says_it_is_typed():
    assert (ROOT / "specnn" / "py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["specnn"]


TINY = """\
name: tiny
model: {input: [4], layers: [{Linear: {out_features: 2}}]}
data: {synthetic: {shape: [4], samples: 16}}
loss: {CrossEntropyLoss: }
optimizer: {Adam: {lr: 0.01}}
train: {epochs: 1, batch_size: 8}
"""


def test_train_takes_a_spec_file_as_evaluate_and_predict_take_a_run_folder(tmp_path):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(TINY, encoding="utf-8")
    run = specnn.train(spec_file, out=tmp_path / "run", quiet=True)
    assert run.spec.file == str(spec_file) and run.path == tmp_path / "run"
    assert specnn.evaluate(str(run.path))["samples"] == run.meta["samples"]["validation"] > 0


def test_an_export_whose_extra_is_missing_stops_train_before_anything_is_written(tmp_path, monkeypatch):
    spec_file = tmp_path / "tiny.yaml"
    spec_file.write_text(TINY + "export: [state_dict, onnx]\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    with pytest.raises(specnn.SpecError) as info:
        specnn.train(str(spec_file), out=tmp_path / "run", quiet=True)
    assert str(info.value) == (
        f'{spec_file}:7:22: export[1]: the ONNX export needs onnxscript, which is not installed '
        '(pip install "specnn[onnx]")'
    )
    assert not (tmp_path / "run").exists()
