"""From a spec's data section to checked training, validation and test arrays.

The order is what keeps the held-out parts honest:

1. read the source (a table keeps missing cells where ``data.preprocess.missing`` handles them);
2. drop the rows without a target, and those a ``drop`` strategy removes (each counted in a note);
3. split: one seeded permutation (or one per class, ``stratify``) into train / validation / test;
4. fit the missing-value fills on the training rows, fill, encode categories (the vocabulary from
   every row, so the input width does not depend on the split);
5. match the features to the model's inputs and the targets to the loss;
6. fit the scaling (features, and regression targets with ``scale_target``) on the training part.

Training (``runtime/train``) and ``specnn evaluate`` call :func:`load_splits` alike, so the
validation and test parts evaluate rebuilds are the ones training held out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence

import numpy as np

from specnn.catalog.losses import LOSSES
from specnn.catalog.sources import SOURCES
from specnn.errors import DataError, SpecError, locate, spec_problem
from specnn.errors.texts import suggest
from specnn.runtime.data import outputs, tensors
from specnn.runtime.data.missing import drop_missing, fillable_columns, fit_fills
from specnn.runtime.data.preprocess import (
    Encoding, OutputTarget, Preprocessor, TargetScale, check_input_width, fit_on_training_split,
)
from specnn.runtime.data.sources import Arrays, resolve_path, take_features
from specnn.runtime.data.splits import split_indices
from specnn.runtime.data.table import labels_from_column, read_header, read_table

if TYPE_CHECKING:
    from specnn.spec.models import Spec

__all__ = ["Splits", "load_splits", "is_table_source"]


@dataclass
class Splits:
    """The data of one run, split, preprocessed and checked against the model (numpy, host memory)."""

    train: Arrays
    validation: Optional[Arrays]
    test: Optional[Arrays]
    classes: Optional[list[str]]
    preprocessor: Preprocessor
    notes: list[str] = field(default_factory=list)


def is_table_source(spec: "Spec") -> bool:
    return SOURCES[spec.data.kind].table


def load_splits(spec: "Spec", inputs: Mapping[str, Any], output_shape: Sequence[int],
                check_classes: Any = None, fitted: Optional[Preprocessor] = None,
                preview_rows: Optional[int] = None, token_limits: Optional[Mapping[str, Any]] = None) -> Splits:
    """Read, split and preprocess the spec's data for a model with ``inputs`` and its outputs.

    Args:
        spec: the spec.
        inputs: the compiled model's inputs (name -> type with ``shape`` and ``dtype``).
        output_shape: the model's one output shape, per sample; with a loss per output, each
            output's shape by name.
        check_classes: called with the Arrays before anything is split (lint S108).
        fitted: a run's stored preprocessing, applied instead of fitting anew (``specnn evaluate``).
        preview_rows: read only the first rows of a table (``specnn validate --data``).
        token_limits: model input -> the Embedding table reading it
            (:func:`specnn.compiler.token_ids.embedding_limits`): its ids are checked.

    Raises:
        DataError: the data cannot be read or does not fit the model (located).
        SpecError: a preprocessing option the data or the model cannot take (located).
    """
    settings = spec.data.preprocess
    if SOURCES[spec.data.kind].images:
        return _images(spec, inputs, output_shape, check_classes, fitted)
    if spec.data.loader.in_memory is False and not is_table_source(spec):
        raise _spec_error(spec, ("data", "loader", "in_memory"), "streaming reads image folders and tables (csv, "
                          f"parquet); {spec.data.kind} data is held in memory", hint="remove in_memory: false")
    if is_table_source(spec):
        streamed = _streamed_table(spec, inputs, output_shape, check_classes, fitted, preview_rows)
        if streamed is not None:
            return streamed
        arrays, preprocessor, parts, notes = _table(spec, fitted, preview_rows)
    else:
        _only_for_tables(spec)
        for key in ("validation_path", "test_path"):
            if getattr(spec.data, key):
                raise _spec_error(spec, ("data", key), f"{key} is for table sources (csv, parquet), not "
                                  f"{spec.data.kind}")
        arrays = tensors.load_arrays(spec)
        preprocessor, notes = Preprocessor(scale=settings.scale), list(arrays.notes)
        parts = _split(spec, _split_labels(spec, arrays))
    if check_classes is not None:
        check_classes(arrays)
    check_input_width(spec, preprocessor, arrays.features, inputs)
    arrays.features = tensors.match_inputs(spec, inputs, arrays.features)
    tensors.check_token_ids(spec, arrays.features, token_limits or {})
    layout = _targets_in_loss_form(spec, arrays, output_shape)
    classes = arrays.classes
    train, validation, test = _split_in_place(arrays, parts)
    del arrays
    if fitted is None:
        fit_on_training_split(spec, preprocessor, train, validation, test)
        _scale_targets(spec, preprocessor, layout, train, validation, test)
    else:
        if layout is not None:  # the run's scaling; the classes just read are compared by the caller
            for target, stored in zip(layout, fitted.outputs or ()):
                target.scale = stored.scale
        _apply_fitted(fitted, train, validation, test)
    preprocessor.outputs = layout
    return Splits(train, validation, test, classes, preprocessor, notes)


def _targets_in_loss_form(spec: "Spec", arrays: Arrays, output_shape: Any) -> Optional[list[OutputTarget]]:
    """``arrays.targets`` in the loss's form; with a loss per output, one matrix with a block of columns
    per output (data/outputs.py), whose layout is returned (None for one loss)."""
    if not spec.several_losses:
        arrays.targets = targets_for_loss(spec, arrays.targets, output_shape)
        return None
    layout = outputs.target_layout(spec, output_shape)
    arrays.targets, arrays.by_output = outputs.pack(spec, layout, arrays), None
    return layout


def _apply_fitted(fitted: Preprocessor, *parts: Optional[Arrays]) -> None:
    for part in parts:
        if part is None:
            continue
        if fitted.scale != "none" and len(part.features) == 1:
            (name, array), = part.features.items()
            part.features = {name: fitted.transform(array, in_place=True)}
        if fitted.target_scale is not None:
            part.targets = fitted.target_scale.apply(part.targets)
    if fitted.outputs is not None:
        outputs.apply_scales(fitted.outputs, *parts)


def _split_labels(spec: "Spec", arrays: Arrays) -> np.ndarray:
    """What the split reads: the targets (their classes, with ``stratify``); with a loss per output, the
    first classifier's targets, or the (N, 0) placeholder when no output classifies."""
    if arrays.by_output is None:
        return arrays.targets
    first = next((head.output for head in spec.losses if LOSSES[head.kind].target == "index"), None)
    return arrays.by_output[first][0] if first is not None else arrays.targets


def targets_for_loss(spec: "Spec", targets: np.ndarray, output_shape: Sequence[int]) -> np.ndarray:
    """Targets in the loss's form; a mismatch is located at the loss, naming where the targets come from."""
    try:
        return tensors.prepare_targets(targets, spec.loss.kind, output_shape)
    except DataError as error:
        source = spec.data.args
        origin = f" (from {source.path}, column '{source.target}')" if getattr(source, "target", None) else ""
        raise DataError(locate(spec, [replace(p, message=p.message + origin) if p.file is None else p
                                      for p in error.problems])) from None


def _split(spec: "Spec", targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    data = spec.data
    labels = None
    if data.stratify:
        if spec.several_losses and targets.ndim != 1:
            raise _spec_error(spec, ("data", "stratify"), "stratify splits by class; no output has a "
                              "classification loss", hint="remove stratify")
        if not spec.several_losses and (LOSSES[spec.loss.kind].task == "regression" or targets.ndim != 1):
            raise _spec_error(spec, ("data", "stratify"), f"stratify splits by class; {spec.loss.kind} "
                              "learns numeric targets", hint="remove stratify, or use a classification loss")
        labels = targets
    validation = 0.0 if data.validation_path else data.validation_split
    test = 0.0 if data.test_path else data.test_split
    try:
        return split_indices(len(targets), validation, test, spec.seed, labels)
    except DataError as error:
        raise DataError(locate(spec, error.problems)) from None


def _split_in_place(arrays: Arrays, parts: tuple) -> tuple[Arrays, Optional[Arrays], Optional[Arrays]]:
    """The three parts; the held-out ones copied out, the training rows moved to the front in place.

    The training part is then a view of the loaded arrays, so splitting costs the held-out share
    of memory rather than a second copy of the data.
    """
    train_at, *held = parts
    held_out = [_take(arrays, at) if len(at) else None for at in held]
    features = arrays.features
    for array in (features.values() if isinstance(features, Mapping) else [features]):
        _move_to_front(array, train_at)
    n = len(train_at)
    kept = {k: a[:n] for k, a in features.items()} if isinstance(features, Mapping) else features[:n]
    return Arrays(kept, arrays.targets[train_at], arrays.classes), *held_out


def _move_to_front(array: np.ndarray, at: np.ndarray, chunk: int = 1 << 16) -> None:
    """``array[:len(at)] = array[at]`` in place for sorted ``at``: each row moves forward (at[i] >= i),
    so a chunk never overwrites a row a later chunk still reads."""
    if len(at) == len(array) or (len(at) and at[-1] == len(at) - 1):
        return  # already in front
    for start in range(0, len(at), chunk):
        stop = min(start + chunk, len(at))
        array[start:stop] = array[at[start:stop]]


def _take(arrays: Arrays, at: np.ndarray) -> Arrays:
    return Arrays(take_features(arrays.features, at), arrays.targets[at], arrays.classes)


# ---------------------------------------------------------------------------------------------
# tables (csv, parquet): missing values and categories


def _table(spec: "Spec", fitted: Optional[Preprocessor],
           preview_rows: Optional[int] = None) -> tuple[Arrays, Preprocessor, tuple, list[str]]:
    args, settings = spec.data.args, spec.data.preprocess
    path = resolve_path(args.path, spec.base_dir)
    delimiter = getattr(args, "delimiter", ",")
    header = read_header(path, delimiter)
    _check_source_columns(spec, path, header)
    first, *more = args.target_columns
    columns = args.features or [h for h in header if h not in args.target_columns]
    _check_named_columns(spec, path, columns)
    categorical = dict(settings.categorical)
    table = read_table(path, columns, list(categorical), delimiter=delimiter, target=first,
                       target_required=True, allow_missing=fillable_columns(settings, columns), limit=preview_rows)
    table.more_targets = {column: read_table(path, [], [], delimiter=delimiter, target=column, target_required=True,
                                             limit=preview_rows).target for column in more}
    table, notes = drop_missing(table, settings)
    targets, classes = labels_from_column(table.target)
    by_output = None
    if args.targets is not None:  # a target column per output, each encoded on its own
        columns_of = {first: (targets, classes)} | {c: labels_from_column(v) for c, v in table.more_targets.items()}
        by_output = {output: columns_of[column] for output, column in args.targets.items()}
        targets, classes = np.empty((len(table), 0), np.float32), None
    parts = _split(spec, _split_labels(spec, Arrays(None, targets, classes, by_output=by_output)))
    fills = fitted.fills if fitted is not None else fit_fills(table, settings, parts[0], spec)
    preprocessor = Preprocessor(columns, args.target, {}, settings.scale, fills=fills)
    for column, fill in fills.items():  # a filled category is one the model must know
        if column in categorical:
            table.values[column][table.values[column] == None] = str(fill.value)  # noqa: E711
    preprocessor.categorical = {c: Encoding(kind, sorted({str(v) for v in set(table.values[c]) if v is not None}))
                                for c, kind in categorical.items()}
    arrays = Arrays(preprocessor.encode(table), targets, classes, by_output=by_output)
    if spec.data.validation_path or spec.data.test_path:
        arrays, parts = _with_part_files(spec, arrays, parts, preprocessor, notes)
    return arrays, preprocessor, parts, notes


def _streamed_table(spec: "Spec", inputs: Mapping[str, Any], output_shape: Sequence[int], check_classes: Any,
                    fitted: Optional[Preprocessor], preview_rows: Optional[int]) -> Optional[Splits]:
    """A table too big for memory (or ``in_memory: false``), split and fitted unit by unit (``table_stream.py``).

    None: the table is held in memory (``specnn validate --data`` previews its first rows in
    memory either way, after the refusals streaming makes).
    """
    from specnn.runtime.data import table_stream

    if not table_stream.table_streams(spec):
        return None
    table_stream.check_streamable(spec)
    if preview_rows is not None:
        return None
    args = spec.data.args
    path = resolve_path(args.path, spec.base_dir)
    header = read_header(path, getattr(args, "delimiter", ","))
    _check_source_columns(spec, path, header)
    columns = args.features or [h for h in header if h != args.target]
    _check_named_columns(spec, path, columns)
    return Splits(*table_stream.stream_table(spec, inputs, output_shape, check_classes, fitted, columns, header))


def _with_part_files(spec: "Spec", arrays: Arrays, parts: tuple, preprocessor: Preprocessor,
                     notes: list[str]) -> tuple[Arrays, tuple]:
    """``validation_path``/``test_path``: their rows appended, read and encoded as the training file's."""
    data, args = spec.data, spec.data.args
    delimiter = getattr(args, "delimiter", ",")
    first, *more = args.target_columns
    blocks, targets, parts = [arrays.features], [arrays.targets], list(parts)
    by_output = {name: [values] for name, (values, _) in (arrays.by_output or {}).items()}
    n = len(arrays)
    for i, key in ((1, "validation_path"), (2, "test_path")):
        given = getattr(data, key)
        if not given:
            continue
        path = resolve_path(given, spec.base_dir)
        table = read_table(path, preprocessor.columns, list(preprocessor.categorical), delimiter=delimiter,
                           target=first, target_required=True, allow_missing=list(preprocessor.fills))
        table.more_targets = {column: read_table(path, [], [], delimiter=delimiter, target=column,
                                                 target_required=True).target for column in more}
        table, dropped = drop_missing(table, spec.data.preprocess)
        notes += dropped
        blocks.append(preprocessor.encode(table))
        if arrays.by_output is None:
            targets.append(_labels_as_training(table, first, arrays.classes))
        else:  # each output's column in that output's training terms
            targets.append(np.empty((len(table), 0), np.float32))
            for output, column in args.targets.items():
                own = table if column == first else replace(table, target=table.more_targets[column])
                by_output[output].append(_labels_as_training(own, column, arrays.by_output[output][1]))
        parts[i] = np.arange(n, n + len(table))
        n += len(table)
    joined = Arrays(np.concatenate(blocks), np.concatenate(targets), arrays.classes)
    if arrays.by_output is not None:
        joined.by_output = {name: (np.concatenate(values), arrays.by_output[name][1])
                            for name, values in by_output.items()}
    return joined, tuple(parts)


def _labels_as_training(table: Any, target: str, classes: Optional[list[str]]) -> np.ndarray:
    """A part file's targets in the training file's terms: its class names, or its numbers."""
    from specnn.runtime.data.csv_table import data_error

    if classes is None:
        if table.target.dtype == object:
            raise data_error(table.file, f"{table.where(0, target)}: '{table.target[0]}' is not a number; "
                                         "the training file's targets are numbers")
        return labels_from_column(table.target)[0]
    position = {name: i for i, name in enumerate(classes)}
    text = [str(v) if not isinstance(v, float) or v != int(v) else str(int(v)) for v in table.target]
    unknown = [i for i, v in enumerate(text) if v not in position]
    if unknown:
        raise data_error(table.file, f"{table.where(unknown[0], target)}: unknown label '{text[unknown[0]]}' "
                                     f"(the training file's classes: {', '.join(classes)})", code="label")
    return np.array([position[v] for v in text], dtype=np.int64)


def _check_source_columns(spec: "Spec", path: Any, header: list[str]) -> None:
    """The target and feature columns the spec names must be in the file: located at the spec key."""
    args, kind = spec.data.args, spec.data.kind
    if args.targets is not None:
        named = [(("data", kind, "targets", output), column) for output, column in args.targets.items()]
    else:
        named = [(("data", kind, "target"), args.target)]
    named += [(("data", kind, "features", i), name) for i, name in enumerate(args.features or ())]
    for where, name in named:
        if name not in header:
            raise DataError([spec_problem(spec, where, f"{path} has no column '{name}' (columns: {', '.join(header)})",
                                          code="column", hint=suggest(name, header))])
    if not args.features and not set(header) - set(args.target_columns):
        where = ("data", kind, "target" if args.targets is None else "targets")
        raise DataError([spec_problem(spec, where, f"{path} has no feature columns besides the "
                                      f"target{'s' if args.targets else ''} " + ", ".join(f"'{c}'" for c in args.target_columns),
                                      code="column")])


def _check_named_columns(spec: "Spec", path: Any, columns: list[str]) -> None:
    settings = spec.data.preprocess
    named = [("categorical", c) for c in settings.categorical]
    if isinstance(settings.missing, dict):
        named += [("missing", c) for c in settings.missing]
    for key, column in named:
        if column not in columns:
            raise DataError([spec_problem(spec, ("data", "preprocess", key, column),
                                          f"'{column}' is not a feature column of {path} "
                                          f"(features: {', '.join(columns)})", code="column")])


def _only_for_tables(spec: "Spec") -> None:
    settings = spec.data.preprocess
    for key, asked in (("categorical", bool(settings.categorical)), ("missing", settings.missing != "error")):
        if asked:
            raise _spec_error(spec, ("data", "preprocess", key),
                              f"{key} needs a table source (csv or parquet) with named columns, not {spec.data.kind}")


# ---------------------------------------------------------------------------------------------
# target scaling


def _scale_targets(spec: "Spec", preprocessor: Preprocessor, layout: Optional[list[OutputTarget]], train: Arrays,
                   *others: Optional[Arrays]) -> None:
    method = spec.data.preprocess.scale_target
    if layout is not None:  # each regression output's own scaling
        outputs.scale_targets(spec, layout, train, *others)
        return
    if method == "none":
        return
    if LOSSES[spec.loss.kind].task != "regression":
        raise _spec_error(spec, ("data", "preprocess", "scale_target"),
                          f"scale_target is for regression targets; {spec.loss.kind} learns classes",
                          hint="remove scale_target")
    preprocessor.target_scale = TargetScale.fit(method, train.targets)
    for part in (train, *others):
        if part is not None:
            part.targets = preprocessor.target_scale.apply(part.targets)


def _spec_error(spec: "Spec", path: tuple, message: str, hint: Optional[str] = None) -> SpecError:
    return SpecError([spec_problem(spec, path, message, code="preprocess", hint=hint)])


# ---------------------------------------------------------------------------------------------
# image folders: decoded into memory, or listed for streaming


def streams(spec: "Spec", decoded_bytes: int) -> bool:
    """Whether the data is streamed from disk rather than held in memory (``data.loader``)."""
    loader = spec.data.loader
    if loader.in_memory == "auto":
        return decoded_bytes > loader.memory_limit_mb * 2**20
    return not loader.in_memory


def _images(spec: "Spec", inputs: Mapping[str, Any], output_shape: Sequence[int], check_classes: Any,
            fitted: Optional[Preprocessor]) -> Splits:
    from specnn.runtime.data import images

    args = spec.data.args
    for key in ("validation_path", "test_path"):
        if getattr(spec.data, key):
            raise _spec_error(spec, ("data", key), f"{key} is for table sources (csv, parquet); give an image "
                              "folder validation_split and test_split")
    if spec.data.preprocess.scale != "none":
        raise _spec_error(spec, ("data", "preprocess", "scale"), "image folders are normalized per channel by "
                          "images.normalize, not by preprocess.scale", hint="remove preprocess.scale")
    listing, size = images.list_images(args, spec.base_dir)
    shape = (args.channels, *size)
    if check_classes is not None:
        check_classes(Arrays(np.empty((len(listing), 0)), listing.targets, listing.classes))
    (name,) = tensors.match_inputs(spec, inputs, np.empty((0, *shape), np.float32))  # the input's shape, located
    targets = targets_for_loss(spec, listing.targets, output_shape)
    parts = _split(spec, listing.targets)
    if streams(spec, len(listing) * int(np.prod(shape)) * 4):
        split = [images.ImageFiles([listing.files[i] for i in at], targets[at], listing.classes) for at in parts]
        train_pixels = (images.decode(f, size, args.channels, args.size is not None) for f in split[0].files)
    else:
        pixels = images.load_images(args, spec.base_dir).features
        split = [Arrays(pixels[at], targets[at], listing.classes) for at in parts]
        del pixels
        train_pixels = iter(split[0].features)
    if fitted is not None and fitted.image is not None:
        settings = fitted.image
    else:
        stats = images.channel_stats(train_pixels, args.channels) if args.normalize == "auto" else None
        settings = images.settings_for(args, size, stats)
    for part in split:
        if isinstance(part, Arrays):
            part.features = {name: images.normalize(part.features, settings.mean, settings.std)}
    train, validation, test = (part if len(part) or i == 0 else None for i, part in enumerate(split))
    return Splits(train, validation, test, listing.classes, Preprocessor(image=settings))
