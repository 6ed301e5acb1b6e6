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

import os
import stat
from pathlib import Path
from typing import Literal, Union

from specnn.spec.document import Document
from specnn.errors import Problem, SpecError
from specnn.spec.json_reader import read_json
from specnn.spec.limits import MAX_SPEC_BYTES, megabytes
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
    return parse(read_text(file), file, fmt)


def read_text(file: str) -> str:
    """A spec file's text, read within :data:`~specnn.spec.limits.MAX_SPEC_BYTES`.

    Only a regular file is read, checked on the open descriptor before any byte is: a FIFO would
    block forever and ``/dev/zero`` never ends. The FIFO is opened without blocking, so its check
    is reached; at most the cap plus one byte is read, so a file growing meanwhile is caught too.
    """
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise SpecError.single("file", "no such file", file=file) from None
    except OSError as error:
        raise SpecError.single("file", f"cannot be read: {error.strerror or error}", file=file) from None
    try:
        kind = os.fstat(fd).st_mode
        if stat.S_ISDIR(kind):
            raise SpecError.single("file", "is a folder, not a spec file", file=file)
        if not stat.S_ISREG(kind):
            raise SpecError.single("file", f"is not a regular file ({_file_kind(kind)}): a spec must be a file",
                                   file=file)
        data = _read_at_most(fd, MAX_SPEC_BYTES + 1)
    except OSError as error:
        raise SpecError.single("file", f"cannot be read: {error.strerror or error}", file=file) from None
    finally:
        os.close(fd)
    if len(data) > MAX_SPEC_BYTES:
        size = max(len(data), os.path.getsize(file))
        raise SpecError.single("file", f"is {megabytes(size)}; a spec file may hold at most {megabytes(MAX_SPEC_BYTES)}",
                               file=file, hint="a spec describes a model; data goes in its own files")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        col = len(data[data.rfind(b"\n", 0, error.start) + 1:error.start].decode("utf-8", "replace")) + 1
        raise SpecError.single("file", f"is not UTF-8 text (byte 0x{data[error.start]:02x})", file=file,
                               line=line, col=col, hint="save it as UTF-8") from None


def _read_at_most(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _file_kind(mode: int) -> str:
    kinds = [(stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISSOCK, "a socket")]
    return next((word for test, word in kinds if test(mode)), "not a plain file")


def parse(text: str, file: str, format: Format) -> Document:
    """Text -> Document by format; SpecError for a syntax error or an empty document."""
    if format not in ("yaml", "json"):
        raise ValueError(f"format must be 'yaml' or 'json', got {format!r}")
    document = read_yaml(text, file) if format == "yaml" else read_json(text, file)
    if document.data is None:  # nothing, only comments, or a lone `null`
        line, col = document.values.get((), (1, 1))
        raise SpecError.single("file", "the spec is empty", file=file, line=line, col=col)
    return document


def load_spec_document(document: Document) -> Spec:
    """Like :func:`load_spec`, for a document already read (a sweep's trial: its values set in place).

    Problems are located with the document's positions, so a trial's spec points into the file it came from.
    """
    return _checked(document)


def _checked(document: Document) -> Spec:
    spec, problems = check_document(document)
    errors = [p for p in problems if p.severity == "error"]
    if errors or spec is None:
        raise SpecError(problems)
    spec._file = document.file
    spec._document = document
    return spec
