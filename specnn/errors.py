"""Errors are values: one record type, rendered in one place.

Every problem specnn finds in user input (a spec, a data file, a checkpoint, a run
directory) becomes a :class:`Problem` carrying where it is and what is wrong. Checks
collect problems instead of raising on the first one; :class:`SpecError` carries the
whole list to the caller, and the CLI prints one problem per line and exits 2.

>>> p = Problem("unknown-key", "unknown argument 'out_feature'", ("model", "layers", 2, "Linear"),
...             file="iris.yaml", line=14, col=7, hint="did you mean 'out_features'?")
>>> p.format()
"iris.yaml:14:7: model.layers[2].Linear: unknown argument 'out_feature' (did you mean 'out_features'?)"
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from typing import Iterable, Literal, Sequence, Union

PathItem = Union[str, int]
Path = tuple[PathItem, ...]
Severity = Literal["error", "warning"]


def format_path(path: Sequence[PathItem]) -> str:
    """Render a JSON path the way a reader writes it: ``model.layers[2].Linear``.

    >>> format_path(("model", "layers", 2, "Linear"))
    'model.layers[2].Linear'
    >>> format_path(())
    '<root>'
    """
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
    return out or "<root>"


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice to a misspelt word, or None when nothing is close.

    >>> did_you_mean("Linaer", ["Linear", "Conv2d"])
    'Linear'
    >>> did_you_mean("lr", ["momentum"]) is None
    True
    """
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[close[0]] if close else None


def suggestion_hint(word: str, choices: Iterable[str]) -> str | None:
    match = did_you_mean(word, choices)
    return f"did you mean '{match}'?" if match else None


@dataclass(frozen=True)
class Problem:
    """One located problem in user input.

    Attributes:
        code: a stable slug (``unknown-key``, ``type``, ``shape``) or a lint code (``S101``).
        message: what is wrong, without the location.
        path: JSON path inside the document (for data files: row/column live in the message).
        file, line, col: where, 1-based; None when not known.
        hint: how to fix it, shown in parentheses.
        severity: ``error`` stops the command; ``warning`` is printed and work goes on.
    """

    code: str
    message: str
    path: Path = ()
    file: str | None = None
    line: int | None = None
    col: int | None = None
    hint: str | None = None
    severity: Severity = "error"

    def format(self) -> str:
        where = ":".join(str(x) for x in (self.file, self.line, self.col) if x is not None)
        parts = [where] if where else []
        if self.path:
            parts.append(format_path(self.path))
        label = "warning: " if self.severity == "warning" else ""
        if self.code and self.code[0].isupper() and self.code[1:].isdigit():
            label += f"[{self.code}] "
        text = label + self.message
        if self.hint:
            text += f" ({self.hint})"
        parts.append(text)
        return ": ".join(parts)

    def at(self, file: str | None, line: int | None, col: int | None) -> "Problem":
        return replace(self, file=file, line=line, col=col)

    def __str__(self) -> str:
        return self.format()


@dataclass
class SpecError(Exception):
    """Bad user input: holds every problem found, in document order."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(p.format() for p in self.problems)

    @classmethod
    def single(cls, code: str, message: str, **where) -> "SpecError":
        return cls([Problem(code, message, **where)])


class DataError(SpecError):
    """A data file is unreadable or holds bad values; the message names file, row and column."""


class RunError(SpecError):
    """A run directory or checkpoint is missing, corrupt or belongs to another spec."""
