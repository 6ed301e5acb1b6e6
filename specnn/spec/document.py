"""A parsed spec document: plain data plus where every value and key was written.

Readers (``yaml_reader``, ``json_reader``) produce a :class:`Document`; validation reads
locations from it to place every problem on a line and column of the user's file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from specnn.errors import Path, Problem

Position = tuple[int, int]  # (line, col), both 1-based


@dataclass
class Document:
    """Plain data (dicts, lists, str, int, float, bool, None) read from one file.

    Attributes:
        data: the document's value.
        file: the file name shown in problems.
        values: JSON path -> (line, col) of the value at that path.
        keys: JSON path -> (line, col) of the mapping key naming that path's value.
        problems: what reading found without stopping (duplicate keys).
    """

    data: Any
    file: Optional[str] = None
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def position(self, path: Path, key: bool = False) -> tuple[Optional[int], Optional[int]]:
        """(line, col) of the key (``key=True``) or value at ``path``, else of its nearest located parent."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path and path not in self.values:
            path = path[:-1]
        return self.values.get(path, (None, None))

    def problem(self, code: str, message: str, path: Path, key: bool = False, hint: Optional[str] = None) -> Problem:
        """A problem at ``path``, located at its key or value in this document."""
        line, col = self.position(path, key)
        return Problem(code, message, tuple(path), file=self.file, line=line, col=col, hint=hint)

    def locations(self) -> dict[Path, Position]:
        """The map a :class:`~specnn.spec.models.Spec` keeps: key positions where a path has one.

        A path naming a mapping entry is located at its key (``Conv2d:``), where a reader looks for
        it; list items and the root at their value.
        """
        return {**self.values, **self.keys}
