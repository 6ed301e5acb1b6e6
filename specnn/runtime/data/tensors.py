"""From a spec's data source to batches on the training device.

Fast by default (DESIGN.md): the whole data set is held as tensors, moved to the device once,
and each epoch is batched by slicing one seeded permutation -- no per-sample Python work, no
``__getitem__`` + collate. :func:`batches` is the one place the loop gets batches from; it can
also go through a ``torch.utils.data.DataLoader`` (for later sources that do not fit in memory).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Optional, Sequence

import numpy as np
import torch

from specnn.catalog.base import resolve
from specnn.catalog.losses import LOSSES
from specnn.catalog.sources import SOURCES
from specnn.runtime.data.sources import Arrays, Features
from specnn.errors import DataError, Problem, SpecError, spec_problem
from specnn.errors.texts import suggest

if TYPE_CHECKING:
    from specnn.spec.models import Spec

__all__ = [
    "Arrays", "Tensors", "load_arrays", "match_inputs", "check_token_ids", "token_id_problem", "prepare_targets",
    "to_tensors", "batches",
]

NUMPY_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64}
TORCH_DTYPES = {"float32": torch.float32, "float64": torch.float64, "int64": torch.int64}


@dataclass
class Tensors:
    """A data set on one device: one tensor per model input (in ``model.inputs`` order) and targets.

    The first dimension of every tensor is the sample.
    """

    inputs: tuple[torch.Tensor, ...]
    y: torch.Tensor
    augment: Any = None  # data/augment.Augment: the training split of an image folder with augment

    def __len__(self) -> int:
        return self.y.shape[0]

    @property
    def device(self) -> torch.device:
        return self.y.device


def load_arrays(spec: "Spec") -> Arrays:
    """Load the spec's data source (``data: {csv: ...}`` etc.) as arrays.

    Problems a loader reports without a file (synthetic data, scikit-learn sets) are located
    at the data source in the spec.

    Raises:
        DataError: the data cannot be read (file, row and column named).
        SpecError: the source needs a package that is not installed.
    """
    source = SOURCES[spec.data.kind]
    loader = resolve(source.loader)
    try:
        return loader(spec.data.args, spec.base_dir, spec.seed)
    except SpecError as e:
        e.problems = [_locate_in_spec(spec, p) for p in e.problems]
        raise type(e)(e.problems) from None


def _locate_in_spec(spec: "Spec", problem: Problem) -> Problem:
    # A source's problem without a file of its own (a missing extra) is about the spec's data entry.
    if problem.file is not None:
        return problem
    return spec_problem(spec, problem.path or ("data", spec.data.kind), problem.message, code=problem.code,
                        hint=problem.hint, severity=problem.severity)


# ---------------------------------------------------------------------------------------------
# matching the data to the model's inputs


def match_inputs(spec: "Spec", inputs: Mapping[str, Any], features: Features) -> dict[str, np.ndarray]:
    """The data's features as one array per model input, in ``inputs`` order.

    ``features`` is one array (for a model with one input) or a mapping from input name to
    array. Each array is shaped ``(N, *input shape)`` -- flat features are reshaped when the
    sizes agree -- and cast to the input's dtype; ``int64`` inputs (token ids for ``Embedding``)
    must hold whole numbers and stay int64.

    Args:
        spec: the spec, to locate problems.
        inputs: the compiled model's inputs, name -> type with ``shape`` and ``dtype``.
        features: what the data source loaded.

    Raises:
        DataError: arrays missing for some inputs or left over, or that do not fit an input.
    """
    named = _name_arrays(spec, list(inputs), features)
    return {name: _fit_input(spec, name, named[name], inputs[name], len(inputs) > 1) for name in inputs}


def _name_arrays(spec: "Spec", names: list[str], features: Features) -> Mapping[str, np.ndarray]:
    if not isinstance(features, Mapping):
        if len(names) == 1:
            return {names[0]: features}
        raise _data_problem(
            spec, ("data", spec.data.kind),
            f"the model has {len(names)} inputs ({', '.join(names)}) but the data source gives one array",
            hint="give one array per model input, by input name",
        )
    missing = [n for n in names if n not in features]
    extra = [n for n in features if n not in names]
    if missing or extra:
        parts = [f"no data for model input(s) {', '.join(missing)}"] if missing else []
        parts += [f"data for {', '.join(extra)}, which the model does not have"] if extra else []
        raise _data_problem(spec, ("data", spec.data.kind), "; ".join(parts) + f" (model inputs: {', '.join(names)})",
                            hint=suggest(extra[0], missing) if missing and extra else None)
    return features


def _fit_input(spec: "Spec", name: str, array: np.ndarray, tensor_type: Any, several: bool) -> np.ndarray:
    where = ("model", "inputs", name) if several else ("model", "input")
    label = f"input '{name}'" if several else "input"
    shape = tuple(tensor_type.shape)
    per_sample = tuple(array.shape[1:])
    if per_sample != shape:
        if math.prod(per_sample) != math.prod(shape):
            raise _data_problem(
                spec, where,
                f"the data has {list(per_sample)} features per sample but the model {label} is {list(shape)}",
                code="data-shape",
            )
        array = array.reshape(len(array), *shape)
    if tensor_type.dtype == "int64" and array.dtype.kind not in "iub":
        if not np.all(array == np.round(array)):
            raise _data_problem(spec, where, f"the model {label} is int64 (e.g. token ids) but the data holds "
                                             "fractional values", code="data-dtype")
    return array.astype(NUMPY_DTYPES[tensor_type.dtype], copy=False)


def check_token_ids(spec: "Spec", features: Mapping[str, np.ndarray], limits: Mapping[str, Any]) -> None:
    """Every token id an Embedding reads lies in ``[0, num_embeddings)`` (else torch's IndexError mid-run).

    Args:
        features: one array per model input, as :func:`match_inputs` gives them.
        limits: model input name -> :class:`specnn.compiler.token_ids.TokenLimit`.

    Raises:
        DataError: located at the Embedding's ``num_embeddings``, naming the data and the id.
    """
    origin = getattr(spec.data.args, "path", None) or f"the {spec.data.kind} data"
    for name, limit in limits.items():
        found = token_id_problem(features.get(name), limit, origin, name)
        if found is not None:
            raise _data_problem(spec, limit.path, found[0], code="data-vocab", hint=found[1])


def token_id_problem(ids: Optional[np.ndarray], limit: Any, origin: str, name: str) -> Optional[tuple[str, str]]:
    """``(message, hint)`` when ``ids`` (from ``origin``, for input ``name``) hold an id outside
    ``limit``'s Embedding table (a ``compiler.token_ids.TokenLimit``); None when every id fits.
    Float ids (a file read as numbers, cast to int64 later) are judged by the ids they become."""
    if ids is None or ids.size == 0 or ids.dtype.kind not in "iuf":
        return None
    low, high, n = int(ids.min()), int(ids.max()), limit.num_embeddings  # finite: checked when read
    if 0 <= low and high < n:
        return None
    count = int(np.count_nonzero((ids < 0) | (ids >= n)))
    return (f"{origin} " * bool(origin) + f"holds token id {low if low < 0 else high} for input '{name}' ({count} id(s) out of range), "
            f"but Embedding '{limit.layer}' has num_embeddings: {n} (ids 0..{n - 1})",
            f"set num_embeddings to at least {high + 1}" if low >= 0 else "token ids cannot be negative")


def _data_problem(spec: "Spec", path: tuple, message: str, code: str = "data", hint: Optional[str] = None) -> DataError:
    return DataError([spec_problem(spec, path, message, code=code, hint=hint)])


# ---------------------------------------------------------------------------------------------
# targets, tensors, batches


def prepare_targets(targets: np.ndarray, loss: str, output_shape: Sequence[int]) -> np.ndarray:
    """Targets in the form the loss needs (``LossDef.target`` in ``catalog/losses.py``).

    ``index`` losses get int64 class indices in ``[0, classes)``; ``float`` losses get float32
    shaped like the model output, e.g. (N, 1) for ``BCEWithLogitsLoss`` with one output.

    >>> prepare_targets(np.array([0, 1, 1]), "BCEWithLogitsLoss", [1]).shape
    (3, 1)

    Raises:
        DataError: non-integer or out-of-range class labels; targets that do not fit the output.
    """
    if LOSSES[loss].target == "index":
        return _class_indices(targets, loss, output_shape)
    n = targets.shape[0]
    if targets.size != n * math.prod(output_shape):
        labels = targets.ndim == 1 and targets.dtype.kind in "iu"
        raise DataError([Problem(
            "target-shape",
            f"{loss} needs targets shaped like the model output {list(output_shape)} per sample, "
            f"but the data has {list(targets.shape[1:]) or [1]} per sample",
            ("loss", loss),
            hint="the targets are integer class labels: use CrossEntropyLoss" if labels else None,
        )])
    return targets.astype(np.float32).reshape(n, *output_shape)


def _class_indices(targets: np.ndarray, loss: str, output_shape: Sequence[int]) -> np.ndarray:
    if targets.ndim != 1 or not np.all(targets == np.round(targets)):
        what = f"{targets.shape[1:]} values" if targets.ndim != 1 else \
            f"fractional values such as {targets[targets != np.round(targets)][0]:g}"
        raise DataError([Problem("target", f"{loss} needs one integer class label per sample; the targets "
                                 f"hold {what}", ("loss", loss),
                                 hint="use MSELoss or another regression loss for numeric targets")])
    indices = targets.astype(np.int64)
    classes = output_shape[-1] if output_shape else 1
    bad = indices[(indices < 0) | (indices >= classes)]
    if bad.size:
        raise DataError([Problem(
            "target",
            f"class label {int(bad[0])} is out of range for a model with {classes} outputs (labels must be 0..{classes - 1})",
            ("loss", loss),
        )])
    return indices


def to_tensors(features: Features, targets: np.ndarray, device: torch.device) -> Tensors:
    """Move a whole data set to the device once; each array keeps its dtype (int64 ids stay int64).

    Args:
        features: one array (a model with one input), or one per input in ``model.inputs``
            order, as :func:`match_inputs` gives them.
        targets: as :func:`prepare_targets` gives them.
        device: where training runs.
    """
    arrays = tuple(features.values()) if isinstance(features, Mapping) else (features,)
    inputs = tuple(_plain_strides(torch.as_tensor(np.ascontiguousarray(a))).to(device) for a in arrays)
    return Tensors(inputs, torch.as_tensor(targets).to(device))


def _plain_strides(tensor: torch.Tensor) -> torch.Tensor:
    """The same memory with row-major strides on its size-1 dimensions too (no copy).

    A contiguous (N, 1, H, W) array may carry any stride on its one channel; torch would then
    take it as channels-last, and a convolution rounds differently than on the same numbers laid
    out plainly (a view of the loaded data versus a copy of it).
    """
    strides, step = [], 1
    for size in reversed(tensor.shape):
        strides.append(step)
        step *= size
    plain = tuple(reversed(strides))
    if tensor.stride() == plain or tensor.numel() == 0:
        return tensor
    return tensor.as_strided(tensor.shape, plain, tensor.storage_offset())


Batch = tuple[tuple[torch.Tensor, ...], torch.Tensor]


def batches(
    data: Any,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: Optional[torch.Generator] = None,
    use_dataloader: bool = False,
    order: Optional[torch.Tensor] = None,
) -> Iterator[Batch]:
    """One epoch of ``(inputs, y)`` batches, ``inputs`` a tuple for ``model(*inputs)``.

    Every sample appears exactly once per epoch. The default path gathers the data set in a
    seeded order once per epoch and yields contiguous slices of it; ``order`` (a rank's shard
    under torchrun) replaces the permutation. Streamed data (``streaming.Streamed``) comes through
    its DataLoader in the same order. ``use_dataloader`` goes through a DataLoader over the
    tensors instead (per-sample indexing and collate, so slower).
    """
    if hasattr(data, "batches"):  # streamed from disk
        return data.batches(batch_size, shuffle, generator, order)
    if use_dataloader:
        return _dataloader_batches(data, batch_size, shuffle, generator)
    return _tensor_batches(data, batch_size, shuffle, generator, order)


def _tensor_batches(data: Tensors, batch_size: int, shuffle: bool, generator: Optional[torch.Generator],
                    order: Optional[torch.Tensor] = None):
    inputs, y = data.inputs, data.y
    if shuffle and order is None:
        # The permutation is drawn on the CPU so one seed gives one order on every device.
        order = torch.randperm(len(data), generator=generator)
    if order is not None:
        at = order.to(y.device)
        inputs, y = tuple(x[at] for x in inputs), y[at]
    augment = data.augment if generator is not None else None  # training batches only
    if augment is not None:
        from specnn.runtime.data.streaming import epoch_seed

        seed = epoch_seed(generator)
        indices = (order if order is not None else torch.arange(len(data))).numpy()
    for start in range(0, len(y), batch_size):
        end = start + batch_size
        batch = tuple(x[start:end] for x in inputs)
        if augment is not None:
            batch = (augment(batch[0], seed, indices[start:end]),)
        yield batch, y[start:end]


def _dataloader_batches(data: Tensors, batch_size: int, shuffle: bool, generator: Optional[torch.Generator]):
    from torch.utils.data import DataLoader, TensorDataset

    loader = DataLoader(TensorDataset(*data.inputs, data.y), batch_size=batch_size, shuffle=shuffle, generator=generator)
    for *inputs, y in loader:
        yield tuple(inputs), y
