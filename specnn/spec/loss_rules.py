"""Rules of a ``loss:`` that maps the model's outputs to their losses (a model with several outputs).

Each key must name an output listed in ``model.outputs`` and each output needs a loss; the weights
may not all be zero (nothing would train). Each problem is located at the key or the entry to
change. A spec with one loss (``loss: {CrossEntropyLoss: ...}``) has nothing to check here.
Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any

from specnn.errors import Problem
from specnn.errors.texts import suggest


def output_loss_problems(spec: Any) -> list[Problem]:
    """Every problem of the per-output form of ``spec.loss`` (unlocated: ``path`` says where)."""
    if not spec.several_losses:
        return data_target_problems(spec)
    outputs = spec.model.outputs
    if not outputs:
        return [Problem("loss-outputs", "a loss per output needs the model's outputs listed in model.outputs",
                        ("loss",), hint="name the output nodes: model.outputs: [" + ", ".join(spec.loss) + "]")]
    problems = []
    for name in spec.loss:
        if name not in outputs:
            problems.append(Problem("loss-output", f"the model has no output named '{name}'", ("loss", name),
                                    hint=suggest(name, outputs, listing="model outputs")))
    for name in dict.fromkeys(outputs):
        if name not in spec.loss:
            problems.append(Problem("loss-output", f"model output '{name}' has no loss", ("loss",),
                                    hint=f"add '{name}: <Loss>' under loss (every output listed in model.outputs "
                                    "is trained)"))
    if not problems and all(head.weight == 0 for head in spec.losses):
        problems.append(Problem("loss-weight", "every output's weight is 0: the total loss would train nothing",
                                ("loss",), hint="give at least one output a weight above 0"))
    return problems or data_target_problems(spec)  # the data's targets are checked against sound losses


# Where each source takes one target per model output: csv: {targets: {species: species_column}}.
PER_OUTPUT_FIELD = {"csv": "targets", "parquet": "targets", "synthetic": "targets", "npz": "y"}


def data_target_problems(spec: Any) -> list[Problem]:
    """The data must give one target per output that has a loss, by output name (and only then)."""
    kind, args = spec.data.kind, spec.data.args
    field = PER_OUTPUT_FIELD.get(kind)
    given = getattr(args, field, None) if field else None
    per_output = given if isinstance(given, dict) else None
    path = ("data", kind, field)
    if not spec.several_losses:
        if per_output is None:
            return []
        return [Problem("data-targets", f"{field} gives a target per output, but loss is one loss", path,
                        hint="give each output its loss (loss: {output: <Loss>, ...}), or one target")]
    names = [head.output for head in spec.losses]
    example = "{" + ", ".join(f"{name}: ..." for name in names) + "}"
    if field is None:
        return [Problem("data-targets", f"the {kind} source gives one target per sample; a loss per output needs one "
                        "per output", ("data", kind), hint="use a csv or parquet file (targets: {output: column}), "
                        "npz (y: {output: array}) or synthetic data (targets: {output: {...}})")]
    if per_output is None:
        return [Problem("data-targets", f"a loss per output needs a target per output: {field}: {example}",
                        path if field in args.model_fields_set else ("data", kind))]
    problems = [Problem("data-targets", f"no output named '{name}' has a loss", (*path, name),
                        hint=suggest(name, names, listing="outputs with a loss"))
                for name in per_output if name not in names]
    problems += [Problem("data-targets", f"no target for output '{name}'", path,
                         hint=f"add '{name}: ...' under {field}") for name in names if name not in per_output]
    return problems
