"""The spec format, version 1, as pydantic models: the single source of truth.

The JSON Schema in ``specnn/schema/spec.schema.json`` is generated from these models
(``specnn schema``); ``spec/validate.py`` applies it with jsonschema first, so every problem is
reported with its location, then builds these models. Nothing here imports torch.

A *choice* is a mapping holding exactly one key from a catalogue table, whose value is that
entry's arguments, next to a few common keys::

    - Linear: {out_features: 10}      # a layer node
      name: fc1
    loss: {CrossEntropyLoss: {label_smoothing: 0.1}}
    data: {csv: {path: iris.csv, target: species}, validation_split: 0.2}
"""

from __future__ import annotations

import builtins
import keyword
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Optional, Sequence, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    Tag,
    create_model,
    model_validator,
)
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from specnn.catalog.base import Args
from specnn.catalog.exporters import EXPORTERS
from specnn.catalog.layers import LAYERS
from specnn.catalog.limits import MAX_DIMS, MAX_LAYER_NODES, MAX_REPEAT
from specnn.catalog.lints import LINTS
from specnn.catalog.losses import LOSSES
from specnn.catalog.metrics import METRICS
from specnn.catalog.optimizers import OPTIMIZERS
from specnn.catalog.schedulers import SCHEDULERS, Warmup
from specnn.catalog.sources import SOURCES
from specnn.spec.sweep_models import SweepSpec

FORMAT_VERSION = 1
# The default parameter budget (train.max_parameters): 16 GB of weights, gradients and Adam state.
MAX_PARAMETERS = 1_000_000_000
# numpy's legacy seeding (RandomState, np.random.seed) takes 0..2**32-1; torch takes more.
SEED_MAX = 2**32 - 1
IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"
RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
PARAM_REF = r"^\$[A-Za-z_][A-Za-z0-9_]*$"


class Strict(BaseModel):
    # defer_build: a model's validator is built on first use, not at import. `Spec` then builds its
    # whole validator once, on the first spec checked, instead of every model building its own at
    # start-up (and again inside `Spec`'s); models no spec uses are never built on their own.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class Choice(Strict):
    """A mapping with exactly one key from a catalogue table (see the module docstring)."""

    table: ClassVar[dict[str, Any]] = {}
    what: ClassVar[str] = "entry"
    # Fields besides the table's keys that also count as the choice (a node's `block`).
    extra_choices: ClassVar[tuple[str, ...]] = ()

    @model_validator(mode="before")
    @classmethod
    def _empty_args(cls, data: Any) -> Any:
        # `- ReLU:` in YAML is {"ReLU": None}: the same as {"ReLU": {}}.
        if isinstance(data, dict):
            return {k: ({} if v is None and k in cls.table else v) for k, v in data.items()}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> "Choice":
        given = self.model_fields_set  # a property: read once, not once per table key
        chosen = [k for k in self.table if k in given]
        chosen += [k for k in self.extra_choices if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise PydanticCustomError(
                "choice",
                "needs exactly one {what} key, got {got}",
                {"what": self.what, "got": ", ".join(chosen) or "none"},
            )
        return self

    @property
    def kind(self) -> str:
        """The chosen table key, e.g. ``"Linear"``; or the extra choice's name (``"block"``)."""
        chosen = (k for k in self.model_fields_set if k in self.table)  # a handful of keys, not the table
        return next(chosen, None) or next(k for k in self.extra_choices if getattr(self, k) is not None)

    @property
    def args(self) -> Args:
        return getattr(self, self.kind)


ON_USE = "specnn-on-use"  # marks an OnUse field's core schema (spec/schema.py)


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity (typing hashes it; an entry may hold dicts)
class OnUse:
    """A catalogue entry's arguments inside a choice model: built and checked when a spec uses the entry.

    A choice model has a field per entry: ~60 layers, their ~60 templates, the losses,
    optimizers ... Typed as the argument models themselves, every one would be built into
    ``Spec``'s validator at each start-up, most of ``specnn validate``'s own time, for the
    handful a spec names. Here a field calls its entry's model (which builds on first use:
    ``defer_build``), so problems keep their paths and messages; the JSON Schema is that model's.
    """

    entry: Any  # a catalogue entry, or a block's _Template (whose model is made when first asked for)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(self.validate, metadata={ON_USE: True})

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: Any) -> Any:
        model = self.entry.args
        model.model_rebuild()
        built = model.__pydantic_core_schema__
        if built["type"] != "definitions":  # as a definition and a reference: `$ref` it, as pydantic does
            built = core_schema.definitions_schema(core_schema.definition_reference_schema(built["ref"]), [built])
        return handler(built)

    def validate(self, value: Any) -> Args:
        return self.entry.args.model_validate(value)


def choice_model(
    model_name: str, table: dict[str, Any], what: str, doc: str, base: type[Choice] = Choice, **common: Any
) -> type[Choice]:
    fields = {key: (Optional[Annotated[Any, OnUse(entry)]], Field(None)) for key, entry in table.items()}
    model = create_model(
        model_name,
        __base__=base,
        __doc__=doc,
        __config__=ConfigDict(json_schema_extra={"x-choice": what, "x-choices": list(table)}),
        **common,
        **fields,
    )
    model.table = table
    model.what = what
    return model


# ---------------------------------------------------------------------------------------------
# model

class NodeBase(Choice):
    """A node: one layer, or a use of a block (``block: Name``, with ``params`` and ``repeat``)."""

    extra_choices: ClassVar[tuple[str, ...]] = ("block",)

    @model_validator(mode="after")
    def _block_keys_need_block(self) -> "NodeBase":
        stray = [k for k in ("params", "repeat") if getattr(self, k) is not None]
        if stray and self.block is None:
            raise PydanticCustomError(
                "choice", "{keys} only go with 'block'", {"keys": " and ".join(f"'{k}'" for k in stray)}
            )
        return self


def _node_fields(param_value: Any) -> dict[str, Any]:
    """The keys every node has besides its layer type: name, from, and those of a block use."""
    return dict(
        name=(Optional[str], Field(None, pattern=IDENTIFIER, description="attribute name in the generated module")),
        from_=(
            Optional[Union[str, list[str]]],
            Field(None, alias="from", description="node or model-input name(s) feeding this node"),
        ),
        block=(Optional[str], Field(None, pattern=IDENTIFIER, description="use the block of this name (model.blocks)")),
        params=(Optional[dict[str, param_value]], Field(None, description="the block's parameter values")),
        repeat=(Optional[Annotated[int, Field(ge=1, le=MAX_REPEAT, strict=True)]],
                Field(None, description="use the block this many times in a row")),
    )


Node = choice_model(
    "Node",
    LAYERS,
    "layer type",
    "One layer (or block use). Its input is the previous node (or the model input), unless `from` names others.",
    base=NodeBase,
    **_node_fields(Any),
)


# ---------------------------------------------------------------------------------------------
# blocks: layers whose arguments may be `$param` references

ParamRef = Annotated[str, Field(pattern=PARAM_REF, description="a block parameter: $name")]


@lru_cache(maxsize=None)  # layers that share an argument model share its template
def template_args(args: type[Args]) -> type[Args]:
    """The argument model ``args`` where every field also accepts a ``$param`` reference.

    Constraints stay on the field's own type, so a literal value is checked as strictly as
    outside a block; the strict model checks substituted values when the block is used. The
    original's validators are not inherited: they cannot read a reference.
    """
    fields = {}
    for name, info in args.model_fields.items():
        own = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        default = ... if info.is_required() else info.default
        fields[name] = (Union[own, ParamRef], Field(default, description=info.description))
    return create_model(f"{args.__name__}Template", __base__=Args, __doc__=args.__doc__, **fields)


@dataclass(frozen=True)
class _Template:
    """A layer's entry in a block: its template model, made when a block first uses the layer."""

    layer_args: type[Args]

    @property
    def args(self) -> type[Args]:
        return template_args(self.layer_args)


def _template_table() -> dict[str, _Template]:
    return {key: _Template(entry.args) for key, entry in LAYERS.items()}


BlockNode = choice_model(
    "BlockNode",
    _template_table(),
    "layer type",
    "One layer of a block; arguments may be `$param` references. `from: input` reads the block's input.",
    base=NodeBase,
    **_node_fields(Any),
)


class BlockDef(Strict):
    """A reusable block: named parameters and the layers (or graph) they parameterize."""

    params: dict[str, Any] = Field(
        default_factory=dict, description="parameter names with their defaults; a default of null means required"
    )
    layers: list[BlockNode] = Field(min_length=1, max_length=MAX_LAYER_NODES)  # type: ignore[valid-type]


class TensorInput(Strict):
    shape: list[PositiveInt] = Field(min_length=1, max_length=MAX_DIMS, description="per-sample shape, no batch dimension")
    dtype: Literal["float32", "float64", "int64"] = "float32"


class ModelSpec(Strict):
    class_name: Optional[str] = Field(None, pattern=IDENTIFIER, description="default: from the spec's name")
    input: Optional[list[PositiveInt]] = Field(
        None, min_length=1, max_length=MAX_DIMS, description="per-sample input shape (no batch dimension), e.g. [4] or [1, 28, 28]"
    )
    inputs: Optional[dict[str, TensorInput]] = Field(None, description="several named inputs")
    blocks: dict[str, BlockDef] = Field(
        default_factory=dict, description="reusable blocks by class name, used by nodes with 'block: Name'"
    )
    layers: list[Node] = Field(min_length=1, max_length=MAX_LAYER_NODES)  # type: ignore[valid-type]
    outputs: Optional[list[str]] = Field(None, description="output node names; default: the last node")

    @model_validator(mode="after")
    def _one_input_form(self) -> "ModelSpec":
        if (self.input is None) == (self.inputs is None):
            raise PydanticCustomError("input", "give exactly one of 'input' (one tensor) or 'inputs' (named tensors)")
        return self

    @property
    def input_tensors(self) -> dict[str, TensorInput]:
        if self.inputs is not None:
            return self.inputs
        return {"x": TensorInput(shape=self.input or [])}


# ---------------------------------------------------------------------------------------------
# data, loss, optimizer, train, export

class FillConstant(Strict):
    """Fill missing cells of a column with one value (a number, or a category's name)."""

    constant: Union[float, str] = Field(description="the value written into every missing cell")


MissingStrategy = Union[Literal["error", "drop", "mean", "median", "most_frequent"], FillConstant]


class PreprocessSpec(Strict):
    """Feature preprocessing, fitted once and stored in the run (``preprocess.json``)."""

    scale: Literal["none", "standard", "minmax"] = Field(
        "none", description="standard: (x - mean) / std; minmax: (x - min) / (max - min); fitted on the training split"
    )
    categorical: dict[str, Literal["onehot", "index"]] = Field(
        default_factory=dict, description="table columns holding categories, each encoded one-hot or as an index"
    )
    missing: Union[MissingStrategy, dict[str, MissingStrategy]] = Field(  # type: ignore[valid-type]
        "error", description="missing cells (empty, NA, NaN, null ...): error, drop the row, or fill with the "
        "training split's mean/median/most_frequent or {constant: value}; one strategy for every column or one "
        "per column name"
    )
    scale_target: Literal["none", "standard", "minmax"] = Field(
        "none", description="regression: scale the targets for training (fitted on the training split); "
        "predictions come back in the original units"
    )

    def missing_for(self, column: str) -> Any:
        """The strategy for one column: its own entry, or the one for every column (default error)."""
        if isinstance(self.missing, dict):
            return self.missing.get(column, "error")
        return self.missing


class LoaderSpec(Strict):
    """How batches reach the model: held in memory (the fast default), or streamed by DataLoader workers."""

    in_memory: Union[bool, Literal["auto"]] = Field(
        "auto", description="auto: in memory unless the decoded data exceeds memory_limit_mb; false: stream "
        "(image folders, csv and parquet tables)")
    workers: NonNegativeInt = Field(0, description="DataLoader worker processes when streaming (0: the main process)")
    memory_limit_mb: PositiveInt = Field(4096, description="with in_memory: auto, stream data larger than this")


DataSpec = choice_model(
    "DataSpec",
    SOURCES,
    "data source",
    "Where samples come from, and how they are split.",
    validation_split=(float, Field(0.2, ge=0, lt=1, description="fraction held out for validation")),
    test_split=(float, Field(0.0, ge=0, lt=1, description="fraction held out for a test set, evaluated once after "
                             "training (test.json in the run)")),
    stratify=(bool, Field(False, description="classification: split so each class keeps its share in every part")),
    validation_path=(Optional[str], Field(None, description="table sources: a file with the same columns as the "
                                          "validation part, instead of validation_split")),
    test_path=(Optional[str], Field(None, description="table sources: a file with the same columns as the test part, "
                                    "instead of test_split")),
    loader=(LoaderSpec, Field(default_factory=LoaderSpec, description="in memory or streamed, and worker processes")),
    preprocess=(PreprocessSpec, Field(default_factory=PreprocessSpec, description="scaling and categorical encoding")),
)

LossSpec = choice_model("LossSpec", LOSSES, "loss", "A torch.nn loss and its arguments.")
OutputLossSpec = choice_model(
    "OutputLossSpec", LOSSES, "loss", "One model output's loss, its arguments, and its weight in the total loss.",
    weight=(float, Field(1.0, ge=0, allow_inf_nan=False, description="this output's share of the total loss: "
                         "loss = sum of weight * the output's loss")),
)
# `{weight: 0.5}` alone names no loss: not an output's loss, so `{CrossEntropyLos: {}}` is one misspelt loss.
OutputLossSpec.model_config["json_schema_extra"]["minProperties"] = 1
LossName = Literal[tuple(LOSSES)]  # type: ignore[valid-type]
OutputLoss = Annotated[
    Union[Annotated[LossName, Tag("name")], Annotated[OutputLossSpec, Tag("spec")]],  # type: ignore[valid-type]
    Discriminator(lambda value: "name" if isinstance(value, str) else "spec"),
]


def _loss_form(value: Any) -> str:
    """``loss:`` is one loss (its key a loss name) or a mapping from output name to that output's loss."""
    return "one" if not isinstance(value, dict) or any(key in LOSSES for key in value) else "outputs"


def _loss_schema(schema: dict[str, Any]) -> None:
    # Both forms are mappings: a validator tells them apart by the keys (spec/validate.py), so the
    # alternatives are anyOf, and the keys of the one-loss form are listed.
    schema["anyOf"] = schema.pop("oneOf")
    schema["x-single-keys"] = list(LOSSES)
    schema["description"] = ("one loss for the model's one output ({CrossEntropyLoss: {...}}), or one per output: "
                             "{out_a: CrossEntropyLoss, out_b: {MSELoss: {}, weight: 0.5}}")


LossSetting = Annotated[
    Union[Annotated[LossSpec, Tag("one")],  # type: ignore[valid-type]
          Annotated[dict[str, OutputLoss], Tag("outputs")]],
    Discriminator(_loss_form),
]


@dataclass(frozen=True)
class LossHead:
    """One output's loss, as the runtime reads both forms of ``loss:``.

    ``output`` is None for the one-loss form (the model's one output); ``path`` is where the
    spec writes the loss (``("loss", "CrossEntropyLoss")`` or ``("loss", "species")``).
    """

    output: Optional[str]
    kind: str
    args: Args
    weight: float
    path: tuple[str, ...]

    @property
    def suffix(self) -> str:
        """What this output's epoch values end with: ``_species``, or nothing for the one-loss form."""
        return f"_{self.output}" if self.output is not None else ""
OptimizerSpec = choice_model("OptimizerSpec", OPTIMIZERS, "optimizer", "A torch.optim optimizer and its arguments.")


SchedulerSpec = choice_model(
    "SchedulerSpec",
    SCHEDULERS,
    "scheduler",
    "A torch.optim.lr_scheduler class and its arguments, optionally after a linear warmup.",
    warmup=(Optional[Warmup], Field(None, description="linear lr ramp before the schedule")),
)
MetricSpec = choice_model("MetricSpec", METRICS, "metric", "An epoch metric and its arguments.")
MetricName = Literal[tuple(METRICS)]  # type: ignore[valid-type]
MONITOR = r"^(train|val)_[A-Za-z0-9_]+$"


class ClipGrad(Strict):
    """Clip gradients before each optimizer step: by total ``norm`` or element-wise by ``value``."""

    norm: Optional[PositiveFloat] = Field(None, description="max total norm (torch.nn.utils.clip_grad_norm_)")
    norm_type: PositiveFloat = Field(2.0, description="p of the p-norm, with 'norm'")
    value: Optional[PositiveFloat] = Field(None, description="max absolute value (clip_grad_value_)")

    @model_validator(mode="after")
    def _one_way(self) -> "ClipGrad":
        if (self.norm is None) == (self.value is None):
            raise PydanticCustomError("choice", "give exactly one of 'norm' or 'value'")
        return self


class EarlyStopping(Strict):
    monitor: str = Field("val_loss", pattern=MONITOR, description="the epoch value watched, e.g. val_loss")
    mode: Optional[Literal["min", "max"]] = Field(None, description="default: min for losses and errors, else max")
    patience: NonNegativeInt = Field(5, description="epochs without improvement before stopping")
    min_delta: NonNegativeFloat = Field(0.0, description="smallest change that counts as an improvement")
    restore_best_weights: bool = Field(
        True, description="keep the best epoch's weights (checkpoints/best.pt) in weights.pt and the exports, "
        "not the last epoch's (as Keras's EarlyStopping)")


class CheckpointSpec(Strict):
    every: PositiveInt = Field(1, description="write checkpoints/last.pt every this many epochs (and at the end)")
    monitor: Optional[str] = Field(
        None, pattern=MONITOR, description="the value best.pt is chosen by; default: early stopping's, else val_loss "
        "(train_loss without a validation split)"
    )
    mode: Optional[Literal["min", "max"]] = None


class DistributedSpec(Strict):
    """How the processes of a torchrun job talk (``runtime/train/distributed.py``)."""

    backend: Optional[Literal["gloo", "nccl"]] = Field(
        None, description="torch.distributed backend under torchrun; default nccl on CUDA, gloo on CPU"
    )


class TrainSpec(Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 32
    device: str = Field("auto", pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$")
    shuffle: bool = True
    metrics: Optional[list[Union[MetricName, MetricSpec]]] = Field(  # type: ignore[valid-type]
        None, description="epoch metrics; default: accuracy (classification) or mse (regression); [] for none"
    )
    scheduler: Optional[SchedulerSpec] = None  # type: ignore[valid-type]
    clip_grad: Optional[ClipGrad] = None
    accumulate: PositiveInt = Field(1, description="batches whose gradients add up before each optimizer step")
    precision: Literal["fp32", "bf16", "fp16"] = Field("fp32", description="bf16 autocast; fp16 needs CUDA")
    compile: bool = Field(False, description="torch.compile the model for training")
    deterministic: bool = Field(
        False, description="deterministic algorithms only (torch.use_deterministic_algorithms; CUBLAS workspace on CUDA)"
    )
    early_stopping: Optional[EarlyStopping] = None
    checkpoint: CheckpointSpec = CheckpointSpec()
    tensorboard: bool = Field(False, description="write TensorBoard event files (needs the tensorboard extra)")
    distributed: DistributedSpec = DistributedSpec()
    max_parameters: int = Field(
        MAX_PARAMETERS, ge=1, le=10**15, description="refuse a model with more parameters than this, before it is built "
        "(training needs at least 16 bytes per parameter); raise it for a model meant to be that large",
    )
    threads: Union[Literal["auto"], PositiveInt] = Field(
        "auto", description="CPU threads for torch (torch.set_num_threads); auto: 1 for a model under a million "
        "parameters (more threads only add overhead there), else torch's default; OMP_NUM_THREADS, when set, wins")


ExportFormat = Literal[tuple(EXPORTERS)]  # type: ignore[valid-type]


class OnnxCheck(Strict):
    """How far onnxruntime may differ from torch: |ort - torch| <= atol + rtol * |torch| (numpy.allclose)."""

    rtol: float = Field(1e-4, ge=0, description="relative tolerance (a share of the output's magnitude)")
    atol: float = Field(1e-5, ge=0, description="absolute tolerance (for outputs near zero)")


class OnnxExport(Strict):
    """``{onnx: {rtol: 1e-3}}``: the ONNX export with its own parity tolerance."""

    onnx: OnnxCheck = OnnxCheck()


LintCode = Literal[tuple(LINTS)]  # type: ignore[valid-type]


class LintSpec(Strict):
    ignore: list[LintCode] = Field(  # type: ignore[valid-type]
        default_factory=list, description="lint codes (e.g. S105) not to report for this spec"
    )


class Spec(Strict):
    """A whole spec file."""

    specnn: Literal[1] = Field(FORMAT_VERSION, description="spec format version")
    name: str = Field(pattern=RUN_NAME, description="run name; runs go to runs/<name>/")
    seed: int = Field(0, ge=0, le=SEED_MAX, description="seeds Python, numpy and torch; 0 to 2**32 - 1")
    model: ModelSpec
    data: DataSpec  # type: ignore[valid-type]
    loss: LossSetting = Field(json_schema_extra=_loss_schema)  # type: ignore[valid-type]
    optimizer: OptimizerSpec  # type: ignore[valid-type]
    train: TrainSpec = TrainSpec()
    export: list[Union[ExportFormat, OnnxExport]] = Field(  # type: ignore[valid-type]
        default_factory=list, description="formats written after training: state_dict, safetensors, onnx, "
                                          "or {onnx: {rtol, atol}} to set the onnxruntime parity tolerance")
    lint: LintSpec = LintSpec()
    sweep: Optional[SweepSpec] = Field(
        None, description="a hyperparameter sweep over this spec (specnn sweep); specnn train ignores it"
    )

    # Where the spec came from: set by the loader, used for relative data paths and for
    # locating compile-time problems (shape mismatches, lints) in the file.
    _file: Optional[str] = PrivateAttr(None)
    _document: Any = PrivateAttr(None)  # the Document read, for its positions

    @property
    def file(self) -> Optional[str]:
        return self._file

    @property
    def base_dir(self) -> Path:
        return Path(self._file).resolve().parent if self._file else Path.cwd()

    def locate(self, path: Sequence[Union[str, int]], key: bool = True) -> tuple[Optional[str], Optional[int], Optional[int]]:
        """(file, line, col) of what sits at a JSON path, or of its nearest written parent.

        A mapping entry is located at its key (``model.input`` at ``input:``, where a reader looks
        for it) unless ``key=False``; a list item or the document root at its value. A spec built
        in code has no positions: (file, None, None).
        """
        if self._document is None:
            return self._file, None, None
        _, line, col = self._document.locate(path, key=key)
        return self._file, line, col

    @property
    def several_losses(self) -> bool:
        """``loss:`` maps output names to losses (a model with several outputs)."""
        return isinstance(self.loss, dict)

    @property
    def losses(self) -> list[LossHead]:
        """Each output's loss, in the order written (one, with ``output`` None, for the one-loss form)."""
        if not isinstance(self.loss, dict):
            return [LossHead(None, self.loss.kind, self.loss.args, 1.0, ("loss", self.loss.kind))]
        heads = []
        for output, entry in self.loss.items():
            if isinstance(entry, str):
                heads.append(LossHead(output, entry, LOSSES[entry].args(), 1.0, ("loss", output)))
            else:
                heads.append(LossHead(output, entry.kind, entry.args, entry.weight, ("loss", output, entry.kind)))
        return heads

    @property
    def class_name(self) -> str:
        if self.model.class_name:
            return self.model.class_name
        words = [w for w in __import__("re").split(r"[^A-Za-z0-9]+", self.name) if w]
        name = "".join(w[:1].upper() + w[1:] for w in words) or "Model"
        name = name if name[0].isalpha() else "Model" + name
        # `name: none` must not become `class None(...)`, nor `name: type` shadow a builtin.
        return name + "Model" if keyword.iskeyword(name) or hasattr(builtins, name) else name
