"""Building a model: the generated source, executed. There is no other construction path.

As torch.fx does, the source is registered with :mod:`linecache` under a fake file name, so a
traceback from inside the generated ``forward`` shows the real line of generated code.
"""

from __future__ import annotations

import hashlib
import linecache
from pathlib import Path
from typing import Any

from specnn.compiler.pipeline import CompiledModel, compile_spec


def build_model(compiled_or_spec: Any) -> Any:
    """Instantiate the generated ``nn.Module`` of a compiled model (or of a spec, compiling it).

    Args:
        compiled_or_spec: a :class:`CompiledModel` or a :class:`specnn.spec.models.Spec`.

    Returns:
        A fresh ``torch.nn.Module`` in training mode, with torch's default initialisation
        (seed torch first for reproducible weights).

    Raises:
        SpecError: when given a spec that does not compile.
    """
    compiled = compiled_or_spec if isinstance(compiled_or_spec, CompiledModel) else compile_spec(compiled_or_spec)
    return model_class(compiled)()


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
