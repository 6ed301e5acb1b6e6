"""Read and check spec files: the public entry points of spec checking.

>>> spec = load_spec_text('''
... name: tiny
... model: {input: [4], layers: [{Linear: {out_features: 2}}]}
... data: {synthetic: {shape: [4]}}
... loss: {CrossEntropyLoss: }
... optimizer: {Adam: {lr: 1e-3}}
... ''')
>>> spec.optimizer.Adam.lr, spec.locate(("model", "layers", 0, "Linear"))
(0.001, ('<string>', 3, 31))
>>> load_spec_text("name: tiny\\ntrain: {epochs: -3}\\n", file="t.yaml")
Traceback (most recent call last):
  ...
specnn.errors.SpecError: t.yaml:1:1: missing required key 'model'
t.yaml:1:1: missing required key 'data'
t.yaml:1:1: missing required key 'loss'
t.yaml:1:1: missing required key 'optimizer'
t.yaml:2:17: train.epochs: must be > 0, got -3

Nothing here imports torch: checking a spec is fast and works where torch is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Union

from specnn.spec.document import Document
from specnn.errors import Problem, SpecError
from specnn.spec.json_reader import read_json
from specnn.spec.models import Spec
from specnn.spec.validate import check_document
from specnn.spec.yaml_reader import read_yaml

Format = Literal["yaml", "json"]
FORMATS: dict[str, Format] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


def load_spec(path: Union[str, Path]) -> Spec:
    """Read, check and build the spec in a YAML or JSON file.

    Args:
        path: a ``.yaml``, ``.yml`` or ``.json`` file; data paths in it are relative to its folder.

    Returns:
        The spec, with ``spec.file`` set and ``spec.locate(path)`` answering for every value.

    Raises:
        SpecError: holding every problem found (unreadable file, syntax, schema, model rules),
            sorted by line.
    """
    document = read_document(path)
    return _checked(document)


def load_spec_text(text: str, file: str = "<string>", format: Format = "yaml") -> Spec:
    """Like :func:`load_spec`, for text held in memory (tests, notebooks, generated specs)."""
    return _checked(parse(text, file, format))


def check_file(path: Union[str, Path]) -> list[Problem]:
    """Every problem in a spec file, sorted by line; an empty list when the spec is valid.

    Shape and lint problems are the compiler's (``specnn.compile_spec``); this checks reading,
    the schema and the model rules only, and never raises for bad input.
    """
    try:
        document = read_document(path)
    except SpecError as error:
        return error.problems
    return check_document(document)[1]


def read_document(path: Union[str, Path]) -> Document:
    """Read a spec file into a :class:`Document`; SpecError (one ``file`` or ``syntax`` problem) if it cannot be."""
    file = str(path)
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise SpecError.single("file", f"cannot tell the format of '{file}': name it .yaml, .yml or .json", file=file)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError.single("file", "no such file", file=file) from None
    except IsADirectoryError:
        raise SpecError.single("file", "is a folder, not a spec file", file=file) from None
    except UnicodeDecodeError as error:
        raise SpecError.single("file", f"is not UTF-8 text (byte {error.start})", file=file) from None
    except OSError as error:
        raise SpecError.single("file", f"cannot be read: {error.strerror or error}", file=file) from None
    return parse(text, file, fmt)


def parse(text: str, file: str, format: Format) -> Document:
    """Text -> Document by format; SpecError for a syntax error or an empty document."""
    if format not in ("yaml", "json"):
        raise ValueError(f"format must be 'yaml' or 'json', got {format!r}")
    document = read_yaml(text, file) if format == "yaml" else read_json(text, file)
    if document.data is None:  # nothing, only comments, or a lone `null`
        raise SpecError.single("file", "the spec is empty", file=file)
    return document


def _checked(document: Document) -> Spec:
    spec, problems = check_document(document)
    errors = [p for p in problems if p.severity == "error"]
    if errors or spec is None:
        raise SpecError(problems)
    spec._file = document.file
    spec._document = document
    return spec
