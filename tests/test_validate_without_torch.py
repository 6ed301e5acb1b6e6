"""``specnn validate`` and ``specnn inspect`` never import torch: they read only the catalogue.

Importing torch costs more than everything else validate does together, and editors, hooks and
CI run validate on many files. Each check runs the real command line in a fresh interpreter and
reports, at the end, whether ``torch`` was ever imported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import EXAMPLES, ROOT

RUNNER = """
import json, sys
import click
from specnn.cli import cli
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        cli.main(argv, standalone_mode=False)
        codes.append(0)
    except click.ClickException as error:  # what the command line exits with
        codes.append(error.exit_code)
print(json.dumps({"codes": codes, "torch": "torch" in sys.modules}))
"""

SPECS = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))


def run_cli(*argvs: list[str]) -> dict:
    result = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(argvs)], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_there_are_examples_to_check():
    assert len(SPECS) >= 5


@pytest.mark.parametrize("command", [["validate"], ["inspect"], ["inspect", "--json"]])
def test_every_example_is_checked_without_importing_torch(command: list[str]):
    argvs = [["validate", *SPECS]] if command == ["validate"] else [[*command, spec] for spec in SPECS]
    assert run_cli(*argvs) == {"codes": [0] * len(argvs), "torch": False}


def test_a_spec_with_errors_is_reported_without_importing_torch(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: t\nmodel:\n  input: [4]\n  layers:\n    - Conv2d: {out_channels: 2, kernel_size: 3}\n"
                   "data: {synthetic: {shape: [4]}}\nloss: {CrossEntropyLoss: }\noptimizer: {Adam: {lr: 0.01}}\n")
    assert run_cli(["validate", str(bad)], ["inspect", str(bad)]) == {"codes": [2, 2], "torch": False}


LAZY = """
import json, sys
from specnn.catalog.layers import LAYERS
from specnn.compiler import compile_spec
from specnn.spec.loader import load_spec
from specnn.spec.models import template_args
compile_spec(load_spec(sys.argv[1]))
built = {e.args.__name__ for e in LAYERS.values() if e.args.__pydantic_complete__}
print(json.dumps({"built": sorted(built), "templates": template_args.cache_info().currsize}))
"""


def test_checking_a_spec_builds_only_the_argument_models_it_uses():
    # ~60 layers, each with an argument model and a block template: building them all into the
    # Spec validator was most of validate's own start-up (benchmarks/validate_startup.py).
    result = subprocess.run([sys.executable, "-c", LAZY, str(EXAMPLES / "iris.yaml")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"built": ["LinearArgs", "NoArgs"], "templates": 0}
