"""``specnn validate --data``: every data-stage check of ``specnn train``, without training.

The spec's data is read as training reads it -- a table's header and first ``rows`` rows, an
image folder's listing and first image, other sources whole -- then split, encoded and matched
to the compiled model's input and loss. Each problem is the one training would stop at, located
at the spec key that fixes it (``data.csv.target``, ``loss``, ``model.input`` ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from specnn.errors import SpecError, spec_problem
from specnn.runtime.data import tensors
from specnn.runtime.data.batch_sizes import check_batch_sizes
from specnn.runtime.data.prepare import is_table_source, load_splits
from specnn.runtime.data.sources import Arrays

__all__ = ["PREVIEW_ROWS", "check_classes", "check_data", "single_output"]

PREVIEW_ROWS = 1000


def check_data(spec: Any, compiled: Any, rows: int = PREVIEW_ROWS) -> list[str]:
    """Run the data-stage checks; the notes training would print (rows dropped ...).

    Raises:
        DataError, SpecError: what ``specnn train`` would stop at before its first step.
    """
    from specnn.catalog.sources import SOURCES
    from specnn.compiler.token_ids import embedding_limits

    output_shape = single_output(spec, compiled)
    if SOURCES[spec.data.kind].images:  # one label per image: a loss per output was refused with the spec
        return _check_images(spec, compiled, output_shape)
    partial = is_table_source(spec)
    splits = load_splits(spec, compiled.inputs, output_shape,
                         None if partial else (lambda arrays: check_classes(compiled, arrays)),
                         preview_rows=rows if partial else None, token_limits=embedding_limits(compiled.graph))
    if not partial:  # a table's first rows do not say how large its training split is
        check_batch_sizes(spec, compiled, len(splits.train), spec.train.batch_size)
    return splits.notes


def single_output(spec: Any, compiled: Any) -> Any:
    """The model's one output shape, as one loss trains it; with a loss per output, every output's, by name."""
    if spec.several_losses:
        return {name: tuple(shape) for name, shape in compiled.outputs.items()}
    if len(compiled.outputs) != 1:
        raise SpecError([spec_problem(spec, ("model", "outputs"), "training applies one loss to one output; this model "
                                      f"has {len(compiled.outputs)} outputs ({', '.join(compiled.outputs)})",
                                      code="train", hint="list one output node in model.outputs, or give each output "
                                      "its loss: loss: {" + ", ".join(f"{name}: <Loss>" for name in compiled.outputs)
                                      + "}")])
    return tuple(next(iter(compiled.outputs.values())))


def check_classes(compiled: Any, arrays: Arrays) -> None:
    """Lint S108: a classifier's output width must equal the data's class count (whole data only)."""
    from specnn.compiler.lints import check_output_classes, count_classes
    from specnn.runtime.data.outputs import class_count_problems, target_layout

    if arrays.by_output is not None:
        problems = class_count_problems(compiled, target_layout(compiled.spec, compiled.outputs), arrays)
    else:
        problems = check_output_classes(compiled, count_classes(arrays.targets, arrays.classes))
    if problems:
        raise SpecError(problems)


def _check_images(spec: Any, compiled: Any, output_shape: tuple) -> list[str]:
    from specnn.runtime.data import images
    from specnn.runtime.data.prepare import targets_for_loss

    args = spec.data.args
    listing, size = images.list_images(args, spec.base_dir)
    tensors.match_inputs(spec, compiled.inputs, np.empty((0, args.channels, *size), np.float32))
    images.decode(listing.files[0], size, args.channels, args.size is not None)  # a size the model takes
    check_classes(compiled, Arrays(np.empty((len(listing), 0)), listing.targets, listing.classes))
    targets_for_loss(spec, listing.targets, output_shape)
    return []
