"""Errors are values: one record type, built in one place, rendered in one place.

Every problem specnn finds in user input (a spec, a data file, a checkpoint, a run
directory) becomes a :class:`Problem` carrying where it is and what is wrong. Checks
collect problems instead of raising on the first one; :class:`SpecError` carries the
whole list to the caller, and the CLI prints one problem per line and exits 2.

A problem about a value of the spec is made by :func:`spec_problem`, which finds the line and
column the value was written at; message text that recurs (did-you-mean, "expected X, got Y",
install hints) is in :mod:`specnn.errors.texts`.

>>> p = Problem("unknown-key", "unknown argument 'out_feature'", ("model", "layers", 2, "Linear"),
...             file="iris.yaml", line=14, col=7, hint="did you mean 'out_features'?")
>>> p.format()
"iris.yaml:14:7: model.layers[2].Linear: unknown argument 'out_feature' (did you mean 'out_features'?)"
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, Iterable, Literal, Optional, Protocol, Sequence, Union

from specnn.errors.texts import did_you_mean, shortened

PathItem = Union[str, int]
Path = tuple[PathItem, ...]
Severity = Literal["error", "warning"]
Location = tuple[Optional[str], Optional[int], Optional[int]]  # (file, line, col)

EXIT_BAD_INPUT = 2  # the user's spec, data, run folder or arguments
EXIT_FAILURE = 1  # valid input, and still something failed (an exporter, torch building a model)
EXIT_INTERRUPTED = 130  # what a shell reports for a process ended by Ctrl-C (128 + SIGINT)

__all__ = [
    "DataError", "Locator", "Path", "PathItem", "Problem", "RunError", "SpecError", "ToolError",
    "did_you_mean", "format_path", "locate", "spec_problem",
]


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
            out += f".{shortened(item)}" if out else shortened(str(item))
    return out or "<root>"


def one_line(text: str) -> str:
    """``text`` with newlines and other control characters escaped, as Python writes them.

    A problem is one line: a user value holding a newline must not split it in two, nor a terminal
    escape sequence repaint the screen.

    >>> print(one_line("name: got 'a\\nb\\x1b[2J'"))
    name: got 'a\\nb\\x1b[2J'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


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
    file: Optional[str] = None
    line: Optional[int] = None
    col: Optional[int] = None
    hint: Optional[str] = None
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
        return one_line(": ".join(parts))

    def at(self, file: Optional[str], line: Optional[int], col: Optional[int]) -> "Problem":
        return replace(self, file=file, line=line, col=col)

    def __str__(self) -> str:
        return self.format()


class Locator(Protocol):
    """What knows where each value of a spec was written: a loaded ``Spec``, a read ``Document``.

    ``locate`` answers for the path itself or, when that was not written (a default), for its
    nearest written parent. ``key=True`` places a mapping entry at its key (``Conv2d:``), where a
    reader looks for it; ``key=False`` at its value (where a wrong value is).
    """

    def locate(self, path: Sequence[PathItem], key: bool = True) -> Location: ...


def spec_problem(where: Optional[Locator], path: Sequence[PathItem], message: str, *, code: str,
                 hint: Optional[str] = None, severity: Severity = "error", key: bool = True) -> Problem:
    """A problem about the spec value at ``path``, placed at the line and column it was written at.

    Args:
        where: the loaded spec (or the document being checked); None gives an unlocated problem,
            for a spec built in code rather than read from a file.
        path: the JSON path of the value, e.g. ``("train", "epochs")``.
        message: what is wrong, without the location; recurring wording is in
            :mod:`specnn.errors.texts`.
        code: the stable slug a test or a tool matches on.
        hint: how to fix it, shown in parentheses.
        key: place a mapping entry at its key (the default) rather than at its value.

    >>> class Written:  # a stand-in for a loaded Spec
    ...     def locate(self, path, key=True):
    ...         return ("iris.yaml", 12, 3)
    >>> spec_problem(Written(), ("train", "epochs"), "must be > 0, got -3", code="value").format()
    'iris.yaml:12:3: train.epochs: must be > 0, got -3'
    >>> spec_problem(None, ("loss",), "no loss", code="loss", hint="add one").format()
    'loss: no loss (add one)'
    """
    file, line, col = where.locate(path, key=key) if where is not None else (None, None, None)
    return Problem(code, message, tuple(path), file=file, line=line, col=col, hint=hint, severity=severity)


def locate(where: Optional[Locator], problems: Iterable[Problem]) -> list[Problem]:
    """Problems found before a spec file was known to them (shapes, lints, a scheduler), placed in it.

    A problem that already names a file (a data file's row, a checkpoint) keeps it.
    """
    if where is None:
        return list(problems)
    return [p if p.file is not None else p.at(*where.locate(p.path)) for p in problems]


@dataclass
class SpecError(Exception):
    """Problems reported to the user: holds every problem found, in document order.

    The base of every error that carries problems. Itself and :class:`DataError`,
    :class:`RunError` are bad input (exit status 2); :class:`ToolError` is a failure on valid
    input (exit status 1).
    """

    problems: list[Problem] = field(default_factory=list)
    exit_code: ClassVar[int] = EXIT_BAD_INPUT

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


class ToolError(SpecError):
    """Valid input, and a tool still failed: an exporter, torch building a checked model (exit 1).

    Not the user's mistake to fix in the spec; the message says what failed so it can be reported.
    """

    exit_code: ClassVar[int] = EXIT_FAILURE
