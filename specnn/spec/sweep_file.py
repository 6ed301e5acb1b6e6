"""Read a sweep: a spec with a ``sweep:`` section, or a sweep file naming its spec.

A sweep file keeps the search apart from the spec it tunes (several sweeps over one spec, or a
spec that should stay as it is)::

    spec: digits_cnn.yaml          # relative to this file
    sweep:
      metric: val_accuracy
      space: {optimizer.Adam.lr: {loguniform: [1.0e-4, 1.0e-2]}}

Both forms are checked like a spec: every problem, located in the file that holds it (the sweep's
problems in the sweep file, the spec's in the spec). Nothing here imports torch or Optuna.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Union

from pydantic import ValidationError as PydanticError

from specnn.errors import SpecError, spec_problem
from specnn.spec.document import Document
from specnn.spec.loader import load_spec_document, read_document
from specnn.spec.models import Spec
from specnn.spec.sweep_models import SweepFile, SweepSpec
from specnn.spec.sweep_rules import sweep_problems
from specnn.spec.validate import data_problems, drop_redundant, pydantic_finding, schema_findings, sort_problems, to_problem


@dataclass
class SweepSource:
    """What a sweep tunes and how.

    Attributes:
        settings: the ``sweep:`` section.
        spec: the spec it tunes, valid (its own ``sweep:`` section, if any, is not this one's concern).
        document: that spec's document: trials set their values in its data and keep its positions.
        file: the file the sweep was given in (the spec, or the sweep file).
    """

    settings: SweepSpec
    spec: Spec
    document: Document
    file: str


def load_sweep_source(path: Union[str, Path]) -> SweepSource:
    """Read and check a sweep given as a spec with ``sweep:`` or as a sweep file (``spec:`` + ``sweep:``).

    Raises:
        SpecError: every problem of the file (and of the spec a sweep file names), located.
    """
    return sweep_source(read_document(path))


def sweep_source(document: Document) -> SweepSource:
    """Like :func:`load_sweep_source`, for a document already read."""
    if is_sweep_file(document.data):
        return _from_sweep_file(document)
    spec = load_spec_document(document)  # the sweep section is checked with the spec
    if spec.sweep is None:
        raise SpecError.single("sweep", "this spec has no sweep: section", file=document.file, line=1, col=1,
                               hint="add one (see README, Sweeps), or give a sweep file naming the spec")
    return SweepSource(spec.sweep, spec, document, document.file or "")


def is_sweep_file(data: Any) -> bool:
    """A sweep file names its spec (``spec:``) and has no model of its own."""
    return isinstance(data, dict) and "spec" in data and "model" not in data


def _from_sweep_file(document: Document) -> SweepSource:
    findings = list(schema_findings(document.data, sweep_file_schema()))
    parsed = None
    if not findings:
        try:
            parsed = SweepFile.model_validate(document.data)
        except PydanticError as error:
            findings = [pydantic_finding(detail, document.data) for detail in error.errors(include_url=False)]
    problems = document.problems + [to_problem(f, document) for f in drop_redundant(findings)]
    if parsed is None or problems:
        raise SpecError(sort_problems(problems))
    spec_path = Path(document.file or ".").parent / parsed.spec
    if not spec_path.is_file():
        raise SpecError([spec_problem(document, ("spec",), f"no spec file '{spec_path}'", code="file",
                                      hint="the path is relative to this sweep file")])
    spec_document = read_document(spec_path)
    spec = load_spec_document(spec_document)
    problems = sweep_problems(parsed.sweep, ("sweep",), document, spec_document.data, spec, data_problems)
    if problems:
        raise SpecError(sort_problems(problems))
    return SweepSource(parsed.sweep, spec, spec_document, document.file or "")


@lru_cache(maxsize=1)
def sweep_file_schema() -> dict[str, Any]:
    """The JSON Schema of a sweep file, generated from :class:`SweepFile` (a few ms, once)."""
    return SweepFile.model_json_schema(by_alias=True)
