"""The compiler: spec -> graph IR -> per-sample shapes -> the source of a plain nn.Module.

It reads only the catalogue, never torch, so ``specnn validate`` and ``inspect`` start fast;
only :func:`build_model` (executing the generated source) needs torch. The passes, in order
(:mod:`~specnn.compiler.pipeline` runs them): :mod:`~specnn.compiler.graph` builds the
:mod:`~specnn.compiler.ir` (blocks expanded by :mod:`~specnn.compiler.blocks`, every name handed
out by :mod:`~specnn.compiler.names`), :mod:`~specnn.compiler.shapes` infers shapes,
:mod:`~specnn.compiler.lints` checks, :mod:`~specnn.compiler.codegen` writes the source
(statements from :mod:`~specnn.compiler.emit`, block classes from
:mod:`~specnn.compiler.block_classes`, lines kept short by :mod:`~specnn.compiler.wrap`).
:mod:`~specnn.compiler.summary` is ``specnn inspect``'s table.

>>> from specnn.compiler import compile_spec, build_model  # doctest: +SKIP
>>> model = build_model(compile_spec(spec))                # doctest: +SKIP
"""

from specnn.compiler.build import build_model, model_class, write_model_py
from specnn.compiler.pipeline import CompiledModel, compile_spec

__all__ = ["CompiledModel", "build_model", "compile_spec", "model_class", "write_model_py"]
