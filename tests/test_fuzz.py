"""The project's own fuzz test: a few hundred generated broken specs and data files, each answered cleanly.

benchmarks/fuzz.py generates them (seeded: the same cases every run) and runs them through
``specnn validate`` in memory-limited worker processes with a per-case time limit. Every answer
must be exit 0 or 2 with only located lines, never a traceback, a hang or a dead worker.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "fuzz.py"
spec = importlib.util.spec_from_file_location("fuzz", SCRIPT)
fuzz = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fuzz)

CASES = 300


@pytest.mark.slow  # ~40 s on two cores: 300 cases in two worker processes
def test_generated_broken_input_gets_clean_answers():
    records = fuzz.run(seed=1, cases=CASES, processes=2)
    assert len(records) == CASES
    assert [r for r in records if r["failure"]] == []
    families = {r["family"] for r in records}
    assert families == set(fuzz.FAMILIES)
    # Nearly every case is bad input, refused with exit 2 (a random edit may leave a valid spec).
    assert sum(r["exit"] == 2 for r in records) > 0.9 * CASES


def test_the_generator_is_seeded():
    assert [fuzz.case(1, i) for i in range(20)] == [fuzz.case(1, i) for i in range(20)]
