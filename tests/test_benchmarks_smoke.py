"""benchmarks/train_speed.py --quick runs end to end and prints its ratio lines (no timed assertions)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "train_speed.py"
RATIO = re.compile(r"^  ratio tiny  (\S+) +[0-9.]+ us/step +[0-9.]+x floor$")


@pytest.mark.slow  # several seconds: processes / end-to-end training
def test_quick_run_prints_one_ratio_line_per_way() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--workload", "tiny"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("torch ") and "torch.get_num_threads() = 1" in lines[0]
    ways = [m.group(1) for m in map(RATIO.match, lines) if m]
    assert ways == ["floor", "floor+acc", "textbook", "specnn", "specnn+acc"]
    floor_line = next(line for line in lines if " floor " in line and "ratio" in line)
    assert floor_line.endswith(" 1.000x floor")  # the floor is its own baseline
    assert "Traceback" not in result.stderr


@pytest.mark.slow  # three fresh processes
def test_stream_table_benchmark_prints_a_ratio_line_per_streamed_way() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "stream_table.py"), "--rows", "20000"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    ratios = [line for line in result.stdout.splitlines() if line.startswith("ratio 20000 rows: peak csv streamed")]
    assert len(ratios) == 2 and all("/ float32 data" in line and "epoch rows/s" in line for line in ratios)
