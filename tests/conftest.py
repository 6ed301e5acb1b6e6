"""Shared fixtures: paths to the examples, and a place to put runs."""

from __future__ import annotations

import os
from pathlib import Path

# Tiny models on a shared 2-core machine: one intra-op thread is many times faster than two that
# fight another process for the cores. Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

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
