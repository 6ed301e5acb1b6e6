"""Shared fixtures: paths to the examples, and a place to put runs."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def iris_spec() -> Path:
    return EXAMPLES / "iris.yaml"


@pytest.fixture
def cli_runner():
    from click.testing import CliRunner

    return CliRunner()
