"""Lines of generated code under 100 characters, wrapped the way black wraps them.

A statement too long for one line is split at its outermost call's parentheses: first with
the arguments on one line of their own, then, if that is still too long, one argument per line
with a trailing comma, wrapping each argument the same way. A ``# (N, 16)`` shape comment stays
on the statement's last line. Docstrings are filled to the same width.

>>> wrap_line("        self.encoder1 = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4), "
...           "num_layers=1, enable_nested_tensor=False)", width=60)  # doctest: +NORMALIZE_WHITESPACE
['        self.encoder1 = nn.TransformerEncoder(',
 '            nn.TransformerEncoderLayer(32, 4),',
 '            num_layers=1,',
 '            enable_nested_tensor=False,',
 '        )']
"""

from __future__ import annotations

import textwrap
from typing import Optional

WIDTH = 99  # longest line: under 100 characters
STEP = "    "
OPENING, CLOSING = "([{", ")]}"


def wrap_line(line: str, width: int = WIDTH) -> list[str]:
    """``line`` as one or more lines of at most ``width`` characters, where it can be split.

    A line with nothing to split at (one very long name) is returned as it is: still valid Python.
    """
    if len(line) <= width:
        return [line]
    code, comment = _split_comment(line)
    indent = code[: len(code) - len(code.lstrip())]
    opening = _outer_call(code)
    returned = code.lstrip()[len("return "):]
    if opening is None and code.lstrip().startswith("return ") and len(_split_top(returned, ",")) > 1:
        # `return a, b, c` is the tuple `return (a, b, c)`: that one can be split. One long name is
        # left alone: split, `return (x,)` would be a tuple.
        return wrap_line(f"{indent}return ({returned}){comment}", width)
    if opening is None:
        return [line]
    closing = _matching(code, opening)
    head, inner, tail = code[: opening + 1], code[opening + 1: closing], code[closing:] + comment
    hugged = indent + STEP + inner
    if len(hugged) <= width and len(head) <= width and len(indent + tail) <= width:
        return [head, hugged, indent + tail]
    lines = [head]
    for item in _split_top(inner, ","):
        lines += wrap_line(f"{indent}{STEP}{item},", width)
    return lines + [indent + tail]


def docstring(text: str, indent: str, width: int = WIDTH) -> list[str]:
    """A docstring: one line when it fits, else a summary line, the rest filled, closing quotes alone.

    >>> docstring("Short.", "    ")
    ['    \"\"\"Short.\"\"\"']
    """
    one = f'{indent}"""{text}"""'
    if len(one) <= width:
        return [one]
    filled = textwrap.wrap(text, width - len(indent) - 3, break_long_words=False, break_on_hyphens=False)
    return [f'{indent}"""{filled[0]}', *(indent + rest for rest in filled[1:]), f'{indent}"""']


def _scan(code: str):
    """Yield (index, char, depth) outside string literals; depth counts open brackets."""
    depth, quote, i = 0, None, 0
    while i < len(code):
        char = code[i]
        if quote:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        else:
            if char in CLOSING:
                depth -= 1
            yield i, char, depth
            if char in OPENING:
                depth += 1
        i += 1


def _split_comment(line: str) -> tuple[str, str]:
    for i, char, depth in _scan(line):
        if char == "#" and depth == 0:
            start = len(line[:i].rstrip())
            return line[:start], line[start:]
    return line, ""


def _outer_call(code: str) -> Optional[int]:
    """The index of the first top-level ``(`` whose match closes the statement (bar a ``:``)."""
    end = len(code.rstrip(":")) - 1
    for i, char, depth in _scan(code):
        if char == "(" and depth == 0 and _matching(code, i) == end:
            return i
    return None


def _matching(code: str, opening: int) -> int:
    level = 0
    for i, char, depth in _scan(code):
        if i < opening:
            continue
        if char in OPENING:
            level += 1
        elif char in CLOSING:
            level -= 1
            if level == 0:
                return i
    return -1


def _split_top(text: str, separator: str) -> list[str]:
    items, start = [], 0
    for i, char, depth in _scan(text):
        if char == separator and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return [item for item in items if item]
