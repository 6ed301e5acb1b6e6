"""Check a :class:`Document` against the spec format: every problem, each located.

Two passes. The JSON Schema (generated from the models) goes first, through jsonschema's
``iter_errors``, which finds *every* error at once; each is turned into a :class:`Finding`. Only a
document the schema accepts is given to pydantic, for the rules a schema does not express (a choice
holds exactly one catalogue key; a model has ``input`` or ``inputs``); its errors become findings
too. :mod:`specnn.spec.messages` puts findings into words.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import islice
from typing import Any, Iterator, Optional

from jsonschema import Draft202012Validator, ValidationError
from pydantic import ValidationError as PydanticError

from specnn.catalog.layers import LAYERS
from specnn.spec.document import Document
from specnn.errors import Path, Problem, locate, spec_problem
from specnn.errors.texts import did_you_mean
from specnn.spec.limits import MAX_PROBLEMS
from specnn.spec.loss_rules import output_loss_problems
from specnn.spec.messages import BOUND_SIGNS, SIZE_WORDS, Finding, render
from specnn.spec.models import Spec
from specnn.spec.schema import cached_schema
from specnn.spec.size_rules import size_problems
from specnn.spec.sweep_rules import sweep_problems
from specnn.spec.train_rules import train_problems

PYDANTIC_KINDS = {"missing": "missing-key", "choice": "choice", "input": "choice"}


def check_document(document: Document) -> tuple[Optional[Spec], list[Problem]]:
    """The Spec a document describes (None when it has errors) and every problem found, in file order.

    Past :data:`MAX_PROBLEMS` the search stops (a 100,000-item list of wrong values would otherwise
    cost a minute to describe) and one last line says more were left out.
    """
    findings = list(islice(schema_findings(document.data), MAX_PROBLEMS + 1))
    spec = None
    if not findings:
        spec, findings = build_spec(document.data)
    problems = document.problems + [to_problem(f, document) for f in drop_redundant(findings)]
    if spec is not None:
        losses = output_loss_problems(spec)
        # The train rules read each output's loss: only once the outputs and losses agree.
        problems += locate(document, losses + (train_problems(spec) if not losses else []) + size_problems(spec))
    if spec is not None and spec.sweep is not None and not has_errors(problems):
        problems += sweep_problems(spec.sweep, ("sweep",), document, document.data, spec, data_problems)
    problems = sort_problems(problems)
    if any(p.severity == "error" for p in problems):
        spec = None
    if len(problems) > MAX_PROBLEMS or len(findings) > MAX_PROBLEMS:
        problems = problems[:MAX_PROBLEMS] + [Problem(
            "too-many", f"more than {MAX_PROBLEMS} problems: the first {MAX_PROBLEMS} are shown", file=document.file)]
    return spec, problems


def data_problems(data: Any) -> list[Problem]:
    """Every problem of a spec given as plain data, unlocated (a sweep checks its values with this)."""
    return check_document(Document(data))[1]


def has_errors(problems: list[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def to_problem(finding: Finding, document: Document) -> Problem:
    message, hint = render(finding)
    return spec_problem(document, finding.path, message, code=finding.code, hint=hint, key=finding.at_key)


def sort_problems(problems: list[Problem]) -> list[Problem]:
    """By line and column; problems without a location first (they concern the whole file)."""
    return sorted(problems, key=lambda p: (p.line or 0, p.col or 0))


# ---------------------------------------------------------------------------------------------
# The JSON Schema pass


def schema_findings(data: Any, schema: Optional[dict] = None) -> Iterator[Finding]:
    """Findings of the JSON Schema pass: the spec format's, or another ``schema`` (a sweep file's)."""
    validator = Draft202012Validator(schema or cached_schema())
    for error in validator.iter_errors(data):
        yield from translate(error)


def translate(error: ValidationError) -> Iterator[Finding]:
    """Findings for one jsonschema error (several for an object with several unknown keys)."""
    path = tuple(error.absolute_path)
    keyword, value, instance = error.validator, error.validator_value, error.instance
    if keyword in ("anyOf", "oneOf"):
        yield from translate_alternatives(error)
    elif keyword == "additionalProperties":
        yield from unknown_keys(error, path)
    elif keyword == "required":
        for key in value:
            if key not in instance:
                yield Finding("missing-key", path, {"key": key}, at_key=True)
    elif keyword == "type":
        yield Finding("type", path, {"expected": [value] if isinstance(value, str) else list(value), "value": instance})
    elif keyword in ("enum", "const"):
        yield Finding(keyword, path, {"choices": value if keyword == "enum" else [value], "value": instance})
    elif keyword in BOUND_SIGNS:
        yield Finding("bound", path, {"keyword": keyword, "limit": value, "value": instance})
    elif keyword in SIZE_WORDS:
        yield Finding("size", path, {"keyword": keyword, "limit": value, "actual": len(instance)})
    elif keyword == "pattern":
        yield Finding("pattern", path, {"pattern": value, "value": instance})
    else:
        yield Finding("other", path, {"text": error.message})


def unknown_keys(error: ValidationError, path: Path) -> Iterator[Finding]:
    """One finding per unknown key, worded by the kind of mapping it is in."""
    schema = error.schema
    known = list(schema.get("properties", {}))
    for key in error.instance:
        if key in known:
            continue
        layer = _layer_owning(error.instance, key) if "x-choice" in schema else None
        if layer is not None:
            ctx = {"key": key, "layer": layer, "value": error.instance[key]}
            yield Finding("misplaced-argument", (*path, key), ctx, at_key=True)
            continue
        yield Finding("unknown-key", (*path, key), {"key": key, "what": _what(schema, key, known), "choices": known}, at_key=True)


def _layer_owning(node: dict, key: str) -> Optional[str]:
    """The layer in ``node`` that takes argument ``key``: the YAML slip of an argument written at
    the dash's indent (``- Linear:`` then ``out_features: 10`` under it) makes it the node's key."""
    layers = [k for k in node if k in LAYERS]
    if len(layers) == 1 and key in LAYERS[layers[0]].args.model_fields:
        return layers[0]
    return None


def _what(schema: dict, key: str, known: list[str]) -> str:
    """'layer type' in a layer node, 'argument' in an argument model, else 'key'."""
    if "x-choice" in schema:
        # A misspelt common key (`nmae`) is a key, not a layer type.
        match = did_you_mean(key, known)
        return schema["x-choice"] if match is None or match in schema.get("x-choices", ()) else "key"
    return "argument" if "x-arguments-of" in schema else "key"


def translate_alternatives(error: ValidationError) -> Iterator[Finding]:
    """An ``anyOf`` failed: report what went wrong in the alternative the value was meant for.

    Optional fields are ``anyOf: [X, null]`` and unions list several types. An alternative whose
    type does not match the value is not what the author meant; the first one that does match
    holds the meaningful errors, at their real paths. When none matches, it is a type error.
    """
    branches: dict[int, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    meant = _meant_form(error)
    if meant in branches:
        for sub in branches[meant]:
            yield from translate(sub)
        return
    for index in sorted(branches):
        if not any(_type_mismatch(sub) for sub in branches[index]):
            for sub in branches[index]:
                yield from translate(sub)
            return
    expected = [t for sub in error.context for t in _expected_types(sub)]
    yield Finding("type", tuple(error.absolute_path), {"expected": list(dict.fromkeys(expected)), "value": error.instance})


def _meant_form(error: ValidationError) -> Optional[int]:
    """Which of two mapping forms a value means, when the schema lists the first form's keys.

    ``loss:`` is one loss (``{CrossEntropyLoss: ...}``) or a loss per output (``{species: ...}``);
    a key that is, or is close to, a loss name means the first (a misspelt loss is reported as
    one), any other the second (a misspelt loss inside an output's entry is reported there).
    """
    keys = error.schema.get("x-single-keys") if isinstance(error.schema, dict) else None
    if keys is None or not isinstance(error.instance, dict):
        return None
    return 0 if any(key in keys or did_you_mean(str(key), keys) for key in error.instance) else 1


def _type_mismatch(error: ValidationError) -> bool:
    if error.relative_path:
        return False
    if error.validator == "type":
        return True
    return error.validator in ("anyOf", "oneOf") and all(_type_mismatch(sub) for sub in error.context)


def _expected_types(error: ValidationError) -> list[str]:
    if error.relative_path:
        return []
    if error.validator == "type":
        return [error.validator_value] if isinstance(error.validator_value, str) else list(error.validator_value)
    return [t for sub in error.context or () for t in _expected_types(sub)]


def drop_redundant(findings: list[Finding]) -> list[Finding]:
    """Drop repeats, and a missing key whose misspelling is reported as an unknown key next to it."""
    suggested = set()
    for f in findings:
        if f.kind == "unknown-key":
            match = did_you_mean(f.ctx["key"], f.ctx["choices"])
            suggested.add((f.path[:-1], match))
    seen, out = set(), []
    for f in findings:
        ident = (f.kind, f.path, repr(sorted(f.ctx.items(), key=lambda kv: kv[0])))
        if ident in seen or (f.kind == "missing-key" and (f.path, f.ctx["key"]) in suggested):
            continue
        seen.add(ident)
        out.append(f)
    return out


# ---------------------------------------------------------------------------------------------
# The pydantic pass


def build_spec(data: Any) -> tuple[Optional[Spec], list[Finding]]:
    try:
        return Spec.model_validate(data), []
    except PydanticError as error:
        return None, [pydantic_finding(detail, data) for detail in error.errors(include_url=False)]


def pydantic_finding(detail: dict, data: Any) -> Finding:
    path, rest = document_path(detail["loc"], data)
    kind = PYDANTIC_KINDS.get(detail["type"], "other")
    if kind == "missing-key":
        return Finding(kind, path, {"key": rest[-1] if rest else detail["loc"][-1]}, at_key=True)
    return Finding(kind, path, {"text": detail["msg"]}, at_key=True)


def document_path(loc: tuple, data: Any) -> tuple[Path, Path]:
    """Split a pydantic ``loc`` into the path of a value in the document and what is left over.

    Left over are pydantic's union member tags (``'list[str]'``), which name no value, and a
    missing key. ``from_`` is reported by its alias, ``from``.
    """
    path: list = []
    rest: list = []
    node = data
    for item in loc:
        item = "from" if item == "from_" else item
        if isinstance(node, dict) and item in node or isinstance(node, list) and isinstance(item, int) and 0 <= item < len(node):
            node = node[item]
            path.append(item)
        else:
            rest.append(item)
    return tuple(path), tuple(rest)
