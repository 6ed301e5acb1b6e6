"""The compiler: spec -> graph IR -> per-sample shapes -> the source of a plain nn.Module.

>>> from specnn.compiler import compile_spec, build_model  # doctest: +SKIP
>>> model = build_model(compile_spec(spec))                # doctest: +SKIP
"""

from specnn.compiler.build import build_model, model_class, write_model_py
from specnn.compiler.pipeline import CompiledModel, compile_spec

__all__ = ["CompiledModel", "build_model", "compile_spec", "model_class", "write_model_py"]
