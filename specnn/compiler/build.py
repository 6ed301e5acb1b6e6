"""Building a model: the generated source, executed. There is no other construction path.

As torch.fx does, the source is registered with :mod:`linecache` under a fake file name, so a
traceback from inside the generated ``forward`` shows the real line of generated code.
"""

from __future__ import annotations

import hashlib
import linecache
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from specnn.compiler.pipeline import CompiledModel, compile_spec
from specnn.errors import Problem, SpecError, spec_problem

if TYPE_CHECKING:
    import torch

    from specnn.spec.models import Spec

# What torch raises when a layer cannot be made with the sizes a spec asks for (an absurd
# out_features overflows, a huge one cannot be allocated): bad input, not a bug.
BUILD_ERRORS = (RuntimeError, ValueError, TypeError, OverflowError, MemoryError)


def build_model(compiled_or_spec: Union[CompiledModel, Spec]) -> torch.nn.Module:
    """Instantiate the generated ``nn.Module`` of a compiled model (or of a spec, compiling it).

    Args:
        compiled_or_spec: a :class:`CompiledModel` or a :class:`specnn.spec.models.Spec`.

    Returns:
        A fresh ``torch.nn.Module`` in training mode, with torch's default initialisation
        (seed torch first for reproducible weights).

    Raises:
        SpecError: when given a spec that does not compile, or when torch cannot make a layer
            with the sizes the spec asks for (located at that layer).
    """
    compiled = compiled_or_spec if isinstance(compiled_or_spec, CompiledModel) else compile_spec(compiled_or_spec)
    cls = model_class(compiled)
    try:
        return cls()
    except BUILD_ERRORS as error:
        raise SpecError([build_problem(compiled, error)]) from None


def build_problem(compiled: CompiledModel, error: BaseException) -> Problem:
    """Locate a failure inside the generated ``__init__`` at the spec node whose line raised it."""
    filename = source_filename(compiled)
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if frame.filename == filename]
    # The outermost frame is the model's __init__ (inner ones: a block class's); a statement may
    # span several lines, so the node is the last one starting at or before the failing line.
    starts = [(line, name) for name, line in compiled.init_lines.items() if lines and line <= lines[0]]
    name = max(starts)[1] if starts else None
    node = next((n for n in compiled.graph.nodes if n.name == name), None)
    path = node.path if node is not None else ("model",)
    what = f"{node.kind} '{node.name}'" if node is not None else "the model"
    reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
    return spec_problem(compiled.spec, path, f"torch could not build {what}: {reason}", code="build",
                        hint="check the layer's sizes")


def model_class(compiled: CompiledModel) -> type:
    """Execute the generated source and return the class it defines."""
    filename = source_filename(compiled)
    _register_source(filename, compiled.source)
    namespace: dict[str, Any] = {"__name__": f"specnn.generated.{compiled.class_name}"}
    exec(compile(compiled.source, filename, "exec"), namespace)
    return namespace[compiled.class_name]


def source_filename(compiled: CompiledModel) -> str:
    """The fake file name tracebacks show, e.g. ``<specnn:IrisMlp:1a2b3c4d>``.

    The hash keeps two different models with the same class name apart in :mod:`linecache`.
    """
    digest = hashlib.sha1(compiled.source.encode()).hexdigest()[:8]
    return f"<specnn:{compiled.class_name}:{digest}>"


def _register_source(filename: str, source: str) -> None:
    # An entry whose mtime is None is never evicted by linecache.checkcache().
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)


def write_model_py(compiled: CompiledModel, directory: str | Path) -> Path:
    """Write the generated source to ``directory/model.py`` (it needs only torch).

    Its module's state_dict keys equal those of :func:`build_model`'s module: it is the same text.
    """
    path = Path(directory) / "model.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(compiled.source, encoding="utf-8")
    return path
