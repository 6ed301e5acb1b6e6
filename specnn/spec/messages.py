"""Problem messages, written in one place from error records.

Checks (the JSON Schema pass, the pydantic pass) describe what they found as a :class:`Finding`: a
kind, a JSON path and the values the message needs, much like pydantic's ``ErrorDetails``. This
module alone turns a finding into words and a hint, so every message reads the same way.

>>> render(Finding("type", ("train", "shuffle"), {"expected": ["boolean"], "value": "yes"}))
("expected a boolean, got string 'yes'", 'write true or false')
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from specnn.errors import Path
from specnn.errors.texts import expected, one_of, plain, suggest
from specnn.spec.models import IDENTIFIER, PARAM_REF, RUN_NAME
from specnn.spec.sweep_models import DURATION
from specnn.spec.yaml_reader import core_scalar

# Problem.code of each kind of finding.
CODES = {
    "unknown-key": "unknown-key",
    "misplaced-argument": "unknown-key",
    "missing-key": "missing-key",
    "type": "type",
    "enum": "value",
    "const": "value",
    "bound": "value",
    "size": "value",
    "pattern": "value",
    "choice": "choice",
    "other": "value",
}

TYPE_WORDS = {
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "string": "a string",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}

BOUND_SIGNS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}

SIZE_WORDS = {
    "minItems": ("at least", "item"),
    "maxItems": ("at most", "item"),
    "minLength": ("at least", "character"),
    "maxLength": ("at most", "character"),
    "minProperties": ("at least", "key"),
    "maxProperties": ("at most", "key"),
}

# What each pattern in the schema means, in words (a test checks every schema pattern is here).
PATTERN_WORDS = {
    IDENTIFIER: "a Python identifier (letters, digits and _, not starting with a digit)",
    PARAM_REF: "a block parameter reference such as '$channels'",
    RUN_NAME: "a run name (letters, digits, '.', '_' and '-', starting with a letter or digit)",
    r"^(auto|cpu|mps|cuda(:[0-9]+)?)$": "auto, cpu, mps, cuda or cuda:N",
    r"^(train|val)_[A-Za-z0-9_]+$": "an epoch value such as val_loss or train_accuracy",
    DURATION: "seconds, or a duration such as '90s', '30m' or '2h'",
}


@dataclass(frozen=True)
class Finding:
    """What a check found, before it is put into words.

    Attributes:
        kind: a key of :data:`CODES`.
        path: JSON path of the offending value (for ``unknown-key``: of the unknown key).
        ctx: what the message needs (``key``, ``value``, ``expected``, ``choices`` ...).
        at_key: locate the problem at the key naming ``path`` rather than at its value.
    """

    kind: str
    path: Path
    ctx: dict[str, Any] = field(default_factory=dict)
    at_key: bool = False

    @property
    def code(self) -> str:
        return CODES[self.kind]


def render(finding: Finding) -> tuple[str, Optional[str]]:
    """The message and hint of a finding."""
    c = finding.ctx
    kind = finding.kind
    if kind == "unknown-key":
        return f"unknown {c['what']} {plain(c['key'])}", suggest(c["key"], c["choices"]) or _known_keys(c)
    if kind == "misplaced-argument":
        inline = f"{c['key']}: {json.dumps(c['value'])}"
        return (
            f"'{c['key']}' is an argument of {c['layer']} but is written at the layer's own indent",
            f"nest it under the layer: '- {c['layer']}: {{{inline}}}', or indent it further than '{c['layer']}:'",
        )
    if kind == "missing-key":
        return f"missing required key '{c['key']}'", None
    if kind == "type":
        wanted = [w for w in c["expected"] if w != "null"] or ["null"]
        message = expected(one_of([TYPE_WORDS.get(w, w) for w in wanted]), c["value"])
        return message, _type_hint(wanted, c["value"])
    if kind in ("enum", "const"):
        choices = c["choices"]
        value = c["value"]
        hint = suggest(value, [str(x) for x in choices]) if isinstance(value, str) else None
        return f"must be {one_of([plain(x) for x in choices])}, got {plain(value)}", hint
    if kind == "bound":
        return f"must be {BOUND_SIGNS[c['keyword']]} {plain(c['limit'])}, got {plain(c['value'])}", None
    if kind == "size":
        how, unit = SIZE_WORDS[c["keyword"]]
        limit, actual = c["limit"], c["actual"]
        return f"needs {how} {limit} {unit}{'s' if limit != 1 else ''}, got {actual}", None
    if kind == "pattern":
        words = PATTERN_WORDS.get(c["pattern"], f"text matching {c['pattern']}")
        return f"must be {words}, got {plain(c['value'])}", None
    if kind == "choice":
        return c["text"], c.get("hint")
    return c["text"], None


# Few enough keys to list them all when a misspelling is too far from any to suggest one.
LISTED_KEYS = 20


def _known_keys(ctx: dict[str, Any]) -> Optional[str]:
    """The keys an unknown key could have been: what a mapping accepts, when that is a short list."""
    choices = list(ctx["choices"])
    if ctx["what"] == "argument":
        if ctx["key"] == "inplace":
            # torch has it, so say why specnn does not rather than just "unknown".
            return "specnn writes no in-place layers: one could overwrite a tensor another node still reads"
        return "it takes: " + ", ".join(choices) if choices else "it takes no arguments"
    if ctx["what"] == "key" and 0 < len(choices) <= LISTED_KEYS:
        return "known keys: " + ", ".join(choices)
    return None


def _type_hint(expected: Sequence[str], value: Any) -> Optional[str]:
    if isinstance(value, str):
        if re.match(PARAM_REF, value):
            return "a $parameter works only inside a block's layers"
        number = core_scalar(value.strip())
        if ("integer" in expected or "number" in expected) and type(number) in (int, float):
            return "remove the quotes"
        if "boolean" in expected:
            return "write true or false"
        if "object" in expected and value.isidentifier():
            return f"write '{value}:' with a colon"  # `- ReLU` where `- ReLU:` was meant
    scalar = isinstance(value, (str, int, float)) and not isinstance(value, bool)
    if "array" in expected and "string" not in expected and scalar:
        return f"write a list: [{value}]"
    return None
