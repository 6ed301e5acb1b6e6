"""The lint table: the classic mistakes a spec can still make, one entry per stable code.

The checks themselves live in ``specnn/compiler/lints/`` (they need the compiled graph); this
table is what the spec format needs to know about them -- which codes exist, for
``lint: {ignore: [S105]}`` -- and what each one is, for documentation. It imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class LintDef:
    """One lint.

    Attributes:
        code: the stable code users write in ``lint: {ignore: [...]}``.
        severity: ``error`` stops compilation; ``warning`` is printed and work goes on.
        summary: what it catches, in one line.
    """

    code: str
    severity: Literal["error", "warning"]
    summary: str


LINTS: dict[str, LintDef] = {
    d.code: d
    for d in (
        LintDef("S101", "error", "Softmax or LogSoftmax as the last layer with CrossEntropyLoss"),
        LintDef("S102", "error", "Sigmoid as the last layer with BCEWithLogitsLoss"),
        LintDef("S103", "error", "BCELoss without a Sigmoid as the last layer"),
        LintDef("S104", "error", "NLLLoss without a LogSoftmax as the last layer"),
        LintDef("S105", "warning", "two Linear layers with no nonlinearity between them"),
        LintDef("S106", "warning", "Dropout as the last layer"),
        LintDef("S107", "warning", "Conv2d fed an input whose channel dimension looks last"),
        LintDef("S108", "error", "output width differs from the number of classes in the data"),
    )
}
