"""JSON text -> :class:`Document`, keeping the position of every value and key.

``json.loads`` forgets where things were and keeps the last of two equal keys, so this is a small
recursive-descent parser. Strings are decoded by the standard library's own ``scanstring``.
"""

from __future__ import annotations

import bisect
import re
from json.decoder import JSONDecodeError, scanstring
from typing import Any

from specnn.errors import Path, Problem, SpecError
from specnn.spec.document import Document
from specnn.spec.limits import MAX_DEPTH, MAX_INT_DIGITS, MAX_VALUES, NESTED_TOO_DEEPLY

WHITESPACE = re.compile(r"[ \t\n\r]*")
NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
LITERALS = {"true": True, "false": False, "null": None}


class _Syntax(Exception):
    def __init__(self, message: str, pos: int, limit: bool = False):
        super().__init__(message)
        self.message, self.pos, self.limit = message, pos, limit


class _Parser:
    def __init__(self, text: str, document: Document):
        self.text, self.document = text, document
        self.pos = 0
        self.depth = 0
        self.count = 0
        # Where each line starts: a value's line is a binary search, not a count from the top.
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def where(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, pos)
        return line, pos - self.line_starts[line - 1] + 1

    def skip(self) -> str:
        """Skip whitespace; the next character, or '' at the end."""
        self.pos = WHITESPACE.match(self.text, self.pos).end()
        return self.text[self.pos:self.pos + 1]

    def expect(self, char: str, context: str) -> None:
        if self.skip() != char:
            found = repr(self.text[self.pos]) if self.pos < len(self.text) else "the end of the file"
            raise _Syntax(f"expected '{char}' {context}, found {found}", self.pos)
        self.pos += 1

    def value(self, path: Path) -> Any:
        char = self.skip()
        self.document.values[path] = self.where(self.pos)
        self.count += 1
        if self.count > MAX_VALUES:
            raise _Syntax(f"the spec holds more than {MAX_VALUES:,} values", self.pos, limit=True)
        if char in "{[" and char:
            return self.collection(char, path)
        if char == '"':
            return self.string()
        number = NUMBER.match(self.text, self.pos)
        if number:
            return self.number(number)
        for word, literal in LITERALS.items():
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return literal
        found = repr(char) if char else "the end of the file"
        raise _Syntax(f"expected a value, found {found}", self.pos)

    def collection(self, char: str, path: Path) -> Any:
        if self.depth >= MAX_DEPTH:
            raise _Syntax(NESTED_TOO_DEEPLY, self.pos, limit=True)
        self.depth += 1
        try:
            return self.obj(path) if char == "{" else self.array(path)
        finally:
            self.depth -= 1

    def number(self, number: re.Match) -> Any:
        text = number.group()
        if number.group(1) or number.group(2):
            self.pos = number.end()
            return float(text)
        if len(text.lstrip("-")) > MAX_INT_DIGITS:
            raise _Syntax(f"an integer of {len(text):,} digits is too long to be a value (at most {MAX_INT_DIGITS})",
                          self.pos, limit=True)
        self.pos = number.end()
        return int(text)

    def string(self) -> str:
        try:
            text, self.pos = scanstring(self.text, self.pos + 1)
        except JSONDecodeError as error:
            raise _Syntax(error.msg.lower().removesuffix(" starting at"), error.pos) from None
        return text

    def obj(self, path: Path) -> dict:
        self.pos += 1
        out: dict = {}
        if self.skip() == "}":
            self.pos += 1
            return out
        while True:
            if self.skip() != '"':
                raise _Syntax("expected a key in double quotes", self.pos)
            where = self.where(self.pos)
            key = self.string()
            self.expect(":", "after a key")
            value = self.value((*path, key))
            if key in out:
                first = self.document.keys[(*path, key)]
                self.document.problems.append(Problem(
                    "duplicate-key", f"duplicate key '{key}'", (*path, key), file=self.document.file,
                    line=where[0], col=where[1], hint=f"first given at line {first[0]}"))
            else:
                self.document.keys[(*path, key)] = where
                out[key] = value
            if self.skip() != ",":
                self.expect("}", "or ',' after a value in an object")
                return out
            self.pos += 1

    def array(self, path: Path) -> list:
        self.pos += 1
        out: list = []
        if self.skip() == "]":
            self.pos += 1
            return out
        while True:
            out.append(self.value((*path, len(out))))
            if self.skip() != ",":
                self.expect("]", "or ',' after a value in a list")
                return out
            self.pos += 1


def read_json(text: str, file: str | None = None) -> Document:
    """Parse JSON text into a :class:`Document`.

    Raises:
        SpecError: on a syntax error (one problem, with its line and column).

    >>> doc = read_json('{"train": {"epochs": 5}}')
    >>> doc.data, doc.values[("train", "epochs")], doc.keys[("train",)]
    ({'train': {'epochs': 5}}, (1, 22), (1, 2))
    """
    document = Document(None, file=file)
    parser = _Parser(text, document)
    try:
        document.data = parser.value(())
        if parser.skip():
            raise _Syntax("extra data after the document", parser.pos)
    except _Syntax as error:
        line, col = parser.where(error.pos)
        message = error.message if error.limit else f"invalid JSON: {error.message}"
        # Positions of a duplicate in a value that was being parsed stay valid; the data does not.
        raise SpecError([Problem("syntax", message, file=file, line=line, col=col)]) from None
    return document
