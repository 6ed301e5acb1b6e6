"""Does a sweep find a configuration at least as good as the digits example's own? (issue 13)

Trains ``examples/digits_cnn.yaml`` as written (the example's own configuration), runs the sweep
``examples/digits_sweep.yaml`` declares over the same spec, then trains the sweep's ``best.yaml``
again from scratch and checks it reproduces the best trial's metric::

    python benchmarks/sweep_digits.py --trials 40

Prints the example's own validation accuracy, the sweep's best, their ratio, the first trial that
matched the example, and whether the retrained best spec gave the same epoch records.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import specnn  # noqa: E402
from specnn.runtime.files import read_metrics  # noqa: E402


def last(folder: Path) -> dict:
    return {k: v for k, v in read_metrics(folder)[-1].items() if k != "seconds"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--out", type=Path, help="where the runs and the sweep go (default: a temporary folder)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="sweep-digits-"))

    own_run = specnn.train(specnn.load_spec(ROOT / "examples" / "digits_cnn.yaml"), out=out / "own", quiet=True,
                           overwrite=True)
    own = last(own_run.path)["val_accuracy"]
    started = time.perf_counter()
    result = specnn.sweep(ROOT / "examples" / "digits_sweep.yaml", out / "sweep", trials=args.trials, plots=False,
                          echo=lambda line: None)
    seconds = time.perf_counter() - started
    again = specnn.train(specnn.load_spec(result.best_spec), out=out / "best-again", quiet=True, overwrite=True)
    best_trial = Path(result.best.run)
    states = {}
    for row in result.trials:
        states[row.state] = states.get(row.state, 0) + 1
    matched = next((r.number for r in result.trials if r.state == "COMPLETE" and r.value >= own), None)

    print(f"example's own config (digits_cnn.yaml):  val_accuracy {own:.4f}")
    print(f"sweep best (trial {result.best.number} of {len(result.trials)}):        val_accuracy {result.best.value:.4f}"
          f"  ({result.best.value / own:.4f}x the example's)")
    print(f"first trial at least as good as the example: {matched}")
    print(f"best values: {json.dumps(result.best.params)}")
    print(f"trials: {states}; sweep wall time {seconds:.0f}s")
    same = last(again.path) == last(best_trial)
    print(f"best.yaml trained again reproduces the trial's last epoch exactly: {same} "
          f"(val_accuracy {last(again.path)['val_accuracy']:.4f})")
    print(f"folders: {out}")


if __name__ == "__main__":
    main()
