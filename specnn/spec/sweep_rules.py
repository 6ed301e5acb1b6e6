"""Rules of a ``sweep:`` section that read the spec it tunes: checked before any trial runs.

A swept path must name a place in the spec (``optimizer.Adam.lr``; a key the spec does not write
yet, such as ``optimizer.Adam.weight_decay``, is fine when the spec format has it); each range's
ends and each choice must be a value the spec accepts at that path; the metric must be an epoch
value the run reports; the grid sampler needs finite ranges. Every problem is located at the sweep
entry that causes it. What only a combination of values breaks (a channel count a later layer
cannot take) shows when a trial's spec is checked: that trial fails with its problems.

>>> parse_path("model.layers[0].Linear.out_features")
('model', 'layers', 0, 'Linear', 'out_features')
>>> data = {"optimizer": {"Adam": {"lr": 0.01}}}
>>> set_path(data, ("optimizer", "Adam", "lr"), 0.1)["optimizer"]
{'Adam': {'lr': 0.1}}

Nothing here imports torch or Optuna.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable, Iterator, Optional

from specnn.errors import Path, Problem, format_path, spec_problem
from specnn.errors.texts import describe, did_you_mean, plain, suggest
from specnn.spec.document import Document
from specnn.spec.sweep_models import SweepSpec
from specnn.spec.train_rules import epoch_keys, monitor_mode

_SEGMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[[0-9]+\])*)")
# Swept paths that would change what the sweep is, rather than what a trial trains.
UNSWEPT = ("sweep", "specnn")

Check = Callable[[Any], list[Problem]]  # the spec's own checks on plain data (unlocated problems)


class PathProblem(ValueError):
    """A swept path that is not a place in the spec; the message says why."""


def parse_path(text: str) -> Path:
    """``"model.layers[0].Linear.out_features"`` -> ``("model", "layers", 0, "Linear", "out_features")``.

    Raises:
        PathProblem: the text is not written the way specnn prints a path.
    """
    path: list = []
    for segment in text.split("."):
        match = _SEGMENT.fullmatch(segment)
        if match is None:
            raise PathProblem(f"'{text}' is not a spec path: write keys joined by '.' and list items as [i], "
                              "e.g. model.layers[0].Linear.out_features")
        path.append(match.group(1))
        path.extend(int(i) for i in re.findall(r"\[([0-9]+)\]", match.group(2)))
    return tuple(path)


def set_path(data: Any, path: Path, value: Any) -> Any:
    """``data`` with ``value`` at ``path`` (changed in place, and returned); missing mappings are made.

    A ``- ReLU:`` node holds null: a key set under it makes it a mapping.
    """
    node = data
    for index, item in enumerate(path[:-1]):
        following = path[index + 1]
        child = node[item] if isinstance(node, list) else node.get(item)
        if child is None:
            child = [] if isinstance(following, int) else {}
            node[item] = child
        node = child
    node[path[-1]] = value
    return data


def without_sweep(data: dict) -> dict:
    """A deep copy of a spec's data without its ``sweep`` section: what a trial trains."""
    return copy.deepcopy({k: v for k, v in data.items() if k != "sweep"})


def sweep_problems(sweep: SweepSpec, at: Path, where: Document, spec_data: dict, spec: Any, check: Check) -> list[Problem]:
    """Every problem of ``sweep`` against the spec it tunes, located in ``where`` under ``at``.

    Args:
        sweep: the section, already valid on its own.
        at: its path in ``where`` (``("sweep",)``).
        where: the document holding the section (the spec, or a sweep file).
        spec_data: the tuned spec's plain data; ``spec``: the same, as a valid Spec.
        check: the spec's own checks (schema, model rules) on plain data, without locations.
    """
    problems = [spec_problem(where, at + p.path, p.message, code=p.code, hint=p.hint) for p in _metric_problems(sweep, spec)]
    for key, distribution in sweep.space.items():
        entry = at + ("space", key)
        found = list(_entry_problems(key, distribution, sweep, spec_data, check))
        problems += [spec_problem(where, entry, message, code=code, hint=hint) for code, message, hint in found]
    return problems


def sweep_metric(sweep: SweepSpec, spec: Any) -> tuple[str, str]:
    """``(metric, direction)`` of a sweep: given, or the spec's default monitored value and its sense."""
    metric = sweep.metric or ("val_loss" if spec.data.validation_split > 0 else "train_loss")
    direction = sweep.direction or ("minimize" if monitor_mode(metric) == "min" else "maximize")
    return metric, direction


def _metric_problems(sweep: SweepSpec, spec: Any) -> Iterator[Problem]:
    metric, _ = sweep_metric(sweep, spec)
    keys = epoch_keys(spec)
    if metric in keys:
        return
    if metric.startswith("val_") and spec.data.validation_split == 0:
        yield Problem("monitor", f"the sweep scores trials by '{metric}', but data.validation_split is 0: the run "
                      "has no validation values", ("metric",), hint="set data.validation_split above 0, or use a train_ value")
    else:
        yield Problem("monitor", f"the sweep scores trials by '{metric}', which the run does not report",
                      ("metric",), hint=suggest(metric, keys, listing="one of"))


def _entry_problems(key: str, distribution: Any, sweep: SweepSpec, spec_data: dict,
                    check: Check) -> Iterator[tuple[str, str, Optional[str]]]:
    """``(code, message, hint)`` for one entry of ``space``."""
    try:
        path = parse_path(key)
        _check_place(spec_data, path)
    except PathProblem as problem:
        yield "sweep-path", str(problem), getattr(problem, "hint", None)
        return
    if sweep.sampler == "grid" and distribution.finite_values() is None:
        yield ("sweep-grid", f"the grid sampler needs a finite set of values; {distribution.kind} has none",
               "give choice, int, or uniform with a step")
    seen = set()
    for value in distribution.probes():
        for problem in _value_problems(spec_data, path, value, check):
            if (problem.path, problem.message) in seen:
                continue
            seen.add((problem.path, problem.message))
            where = "" if problem.path == path else f"{format_path(problem.path)}: "
            if problem.code == "unknown-key":  # whatever the value: the path is wrong
                yield problem.code, f"{where}{problem.message}", problem.hint
            else:
                hint = problem.hint
                if distribution.kind in ("uniform", "loguniform") and problem.message.startswith("expected an integer"):
                    hint = "draw integers with int: [low, high]"
                yield problem.code, f"{_value_words(value)} does not fit here: {where}{problem.message}", hint


def _value_words(value: Any) -> str:
    return f"the value {plain(value)}" if isinstance(value, (str, int, float)) and not isinstance(value, bool) \
        else f"the value {describe(value)}"


def _value_problems(spec_data: dict, path: Path, value: Any, check: Check) -> list[Problem]:
    """The spec's problems with ``value`` at ``path``, those at the path or around it."""
    data = set_path(without_sweep(spec_data), path, copy.deepcopy(value))
    related = lambda p: p.path[: len(path)] == path or path[: len(p.path)] == p.path  # noqa: E731
    return [p for p in check(data) if p.severity == "error" and p.path and related(p)]


def _check_place(data: Any, path: Path) -> None:
    """Raise PathProblem unless ``path`` leads somewhere in ``data`` (its last key may be new)."""
    if path[0] in UNSWEPT:
        raise PathProblem(f"'{path[0]}' cannot be swept")
    node = data
    for depth, item in enumerate(path):
        here = format_path(path[:depth]) if depth else "the spec"
        last = depth == len(path) - 1
        if isinstance(item, int):
            if not isinstance(node, list):
                raise PathProblem(f"{here} is {describe(node)}, not a list: [{item}] names nothing")
            if item >= len(node):
                raise PathProblem(f"{here} has {len(node)} item{'s' if len(node) != 1 else ''}: [{item}] names nothing")
            node = node[item]
            continue
        if node is None:  # `- ReLU:` holds null; a key under it is an argument the schema checks
            return
        if not isinstance(node, dict):
            raise PathProblem(f"{here} is {describe(node)}, not a mapping: '{item}' names nothing")
        if item not in node:
            _check_new_key(data, path, depth, node)
            return
        node = node[item]
        if last:
            return


def _check_new_key(data: Any, path: Path, depth: int, node: dict) -> None:
    """A key the spec does not write: block parameters must be declared; others the schema checks."""
    item = path[depth]
    if depth >= 1 and path[depth - 1] == "params":
        declared = _block_params(data, path[:depth - 1])
        if declared is not None and item not in declared:
            problem = PathProblem(f"the block has no parameter '{item}'")
            problem.hint = suggest(item, declared, listing="its parameters", empty="it has none")
            raise problem
        return
    if depth < len(path) - 1 and node and not isinstance(path[depth + 1], int):
        # A mapping the spec writes, asked for a key it lacks on the way to a deeper one
        # (optimizer.Adma.lr): say the likely key now, where the schema would only see the new key.
        match = did_you_mean(str(item), [str(k) for k in node])
        if match is not None and match != item:
            problem = PathProblem(f"{format_path(path[:depth]) or 'the spec'} has no '{item}'")
            problem.hint = f"did you mean '{match}'?"
            raise problem


def _block_params(data: Any, owner: Path) -> Optional[list[str]]:
    """The parameter names of the block a ``params`` mapping belongs to (a definition or a use)."""
    node = data
    for item in owner:
        node = node[item] if isinstance(node, list) else (node or {}).get(item)
    if not isinstance(node, dict):
        return None
    if owner[:2] == ("model", "blocks"):
        return list((node.get("params") or {}))
    block = node.get("block")
    definition = ((data.get("model") or {}).get("blocks") or {}).get(block) if isinstance(block, str) else None
    return list((definition or {}).get("params") or {}) if isinstance(definition, dict) else None
