"""A parsed spec document: plain data plus where every value and key was written.

Readers (``yaml_reader``, ``json_reader``) produce a :class:`Document`; validation reads
locations from it to place every problem on a line and column of the user's file (it is a
:class:`specnn.errors.Locator`, and so is the Spec built from it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from specnn.errors import Location, Path, PathItem, Problem

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

    def locate(self, path: Sequence[PathItem], key: bool = True) -> Location:
        """(file, line, col) where the value at ``path`` was written, or its nearest written parent.

        ``key=True`` places a mapping entry at its key (``Conv2d:``), where a reader looks for it,
        and list items and the root at their value; ``key=False`` always at the value.
        """
        path = tuple(path)
        while path and path not in self.values and not (key and path in self.keys):
            path = path[:-1]
        if key and path in self.keys:
            return (self.file, *self.keys[path])
        return (self.file, *self.values.get(path, (None, None)))
