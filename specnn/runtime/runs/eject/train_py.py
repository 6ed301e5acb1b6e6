"""The ejected ``train.py``: the loop of ``runtime/train``, written out for one spec.

Set-up draws from the random number generators in specnn's order (seed everything, build the
model, load the data, one shuffling generator seeded apart), and the loop does what
``trainer.train_one_epoch`` and ``session`` do, step for step, so the weights equal specnn's
bit for bit on the CPU. Only the features the spec turns on are written; what cannot be
ejected (DDP launching, TensorBoard, resuming) is said in the docstring.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from specnn.catalog.losses import LOSSES
from specnn.catalog.schedulers import SCHEDULERS
from specnn.runtime.runs.eject.code import Name, block, call_arguments, indent, literal, module, wrapped_call
from specnn.runtime.runs.eject.data_py import DataPlan
from specnn.runtime.runs.eject.metrics_py import chosen_metrics, metrics_py, wants_confusion_file
from specnn.runtime.train.best_weights import restores_best
from specnn.runtime.train.threads import SMALL_MODEL
from specnn.spec.train_rules import checkpoint_monitor, monitor_mode


@dataclass
class Tracker:
    """A monitored epoch value in the loop: best.pt's, early stopping's, or both at once."""

    variable: str  # name of the best-so-far variable
    monitor: str
    mode: str
    min_delta: float = 0.0


def train_py(spec: Any, compiled: Any, data: DataPlan, origin: str, version: str) -> str:
    train = spec.train
    steps = _scheduler_plan(spec)
    imports = ["import json", "import math", "import random", "import time", "from pathlib import Path",
               "import numpy as np", "import torch", "from torch import nn", "import data",
               f"from model import {compiled.class_name}"]
    threads = _threads(train.threads, compiled.parameter_count())
    if train.deterministic or any("os.environ" in line for line in threads):
        imports.append("import os")
    constants = [f"SEED = {spec.seed}", f"EPOCHS = {train.epochs}", f"BATCH_SIZE = {train.batch_size}"]
    if train.accumulate > 1:
        constants.append(f"ACCUMULATE = {train.accumulate}  # batches whose gradients add up to one step")
    if train.early_stopping is not None:
        constants.append(f"PATIENCE = {train.early_stopping.patience}  # epochs without improvement before stopping")
    constants.append(f"CHECKPOINT_EVERY = {train.checkpoint.every}  # epochs between checkpoints/last.pt")
    constants.append("HERE = Path(__file__).resolve().parent")
    if wants_confusion_file(spec):
        constants.append("confusion_matrices = {}  # by split; metrics() fills it, the loop writes it")
    (output_shape,) = compiled.outputs.values()
    parts = ["\n".join(constants), _main(spec, compiled, data, steps)]
    if data.validation or data.test:
        parts.append(_evaluate(spec, data))
    parts.append(metrics_py(spec, output_shape[-1] if output_shape else 1))
    parts.append(block('''
        if __name__ == "__main__":
            main()
        '''))
    return module(_docstring(spec, origin, version), imports, *parts)


def _docstring(spec: Any, origin: str, version: str) -> str:
    train = spec.train
    lines = [f"Train {spec.name} as `specnn train` does.", "",
             f"Ejected from {Path(origin).name} by specnn {version} (README.md says more).", "",
             "`python train.py` writes weights.pt, metrics.jsonl and checkpoints/ next to this file.",
             "On the CPU its weights equal those of `specnn train` bit for bit (same seed, same torch)."]
    missing = []
    if train.tensorboard:
        missing.append("TensorBoard event files (train.tensorboard): metrics.jsonl holds the same values.")
    missing.append("DDP launching (--nproc, torchrun): this script trains in one process.")
    missing.append("Resuming (specnn train --resume): checkpoints hold the model and optimizer states.")
    lines += ["", "Not ejected:"] + [f"- {m}" for m in missing]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# main(): set-up, then the loop


def _main(spec: Any, compiled: Any, data: DataPlan, steps: "SchedulerPlan") -> str:
    train = spec.train
    lines = [
        "random.seed(SEED)",
        "np.random.seed(SEED % 2**32)",
        "torch.manual_seed(SEED)  # the initial weights and dropout draw from here",
    ]
    if train.deterministic:
        lines += _deterministic()
    lines += [_device(train.device), *_threads(train.threads, compiled.parameter_count()),
              "", f"model = {compiled.class_name}().to(device)"]
    lines.append(_load_call(data))
    (output_shape,) = compiled.outputs.values()
    lines += _loss(spec, output_shape[-1] if output_shape else 1)
    lines.append(f"optimizer = torch.optim.{spec.optimizer.kind}(model.parameters()"
                 + "".join(f", {a}" for a in [call_arguments(spec.optimizer.args.changed())] if a) + ")")
    if train.compile:
        lines.append("forward = torch.compile(model)  # checkpoints keep the plain model's names")
    lines += steps.setup
    if train.precision == "fp16":
        lines.append('scaler = torch.amp.GradScaler("cuda")')
    if train.shuffle:
        lines.append("generator = torch.Generator().manual_seed(SEED)  # the shuffling order, apart from the weights")
    lines += ["", '(HERE / "checkpoints").mkdir(exist_ok=True)', 'log = open(HERE / "metrics.jsonl", "w")']
    trackers = _trackers(spec)
    lines.append(", ".join(t.variable for t in trackers) + " = " + ", ".join("None" for _ in trackers)
                 + ("  # best monitored values so far" if len(trackers) > 1 else f"  # best {trackers[0].monitor} so far"))
    if train.early_stopping is not None:
        lines.append("stale = 0  # epochs since early stopping's value last improved")
    if steps.counts_steps:
        lines.append("step = 0  # optimizer steps taken")
    lines.append("n = len(y_train)")
    lines.append("for epoch in range(1, EPOCHS + 1):")
    lines.append(indent(_epoch(spec, compiled, data, steps, trackers)))
    lines.append("log.close()")
    lines += [""] + _final_files(spec, data)
    body = "\n".join(lines)
    return "def main():\n" + indent(body)


def _deterministic() -> list[str]:
    return [
        "# train.deterministic: deterministic kernels only (an error where torch has none)",
        'os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")',
        "torch.use_deterministic_algorithms(True)",
        "torch.backends.cudnn.deterministic = True",
        "torch.backends.cudnn.benchmark = False",
    ]


def _threads(setting: Any, parameters: int) -> list[str]:
    """``train.threads`` as runtime/train/threads.py chooses it (float sums can depend on the count)."""
    if setting != "auto":
        return [f"torch.set_num_threads({int(setting)})  # train.threads"]
    if parameters >= SMALL_MODEL:
        return []
    return ['if device.type == "cpu" and not os.environ.get("OMP_NUM_THREADS"):',
            "    torch.set_num_threads(1)  # a model this small trains fastest on one thread"]


def _device(name: str) -> str:
    if name == "auto":
        return ('# train.device: auto: CUDA if available, else Apple MPS, else the CPU\n'
                'device = torch.device("cuda" if torch.cuda.is_available() else\n'
                '                      "mps" if torch.backends.mps.is_available() else "cpu")')
    return f"device = torch.device({literal(name)})"


def _load_call(data: DataPlan) -> str:
    x = "x_train" if len(data.inputs) == 1 else "inputs_train"
    parts = [f"({x}, y_train)"]
    if data.validation:
        parts.append(f"({x.replace('train', 'val')}, y_val)")
    if data.test:
        parts.append(f"({x.replace('train', 'test')}, y_test)")
    parts.append("classes")
    if data.preprocessing:
        parts.append("preprocessing")
    return ", ".join(parts) + " = data.load(device)"


def _loss(spec: Any, classes: int) -> list[str]:
    entry = LOSSES[spec.loss.kind]
    args = {k: v for k, v in spec.loss.args.changed().items() if k not in entry.spec_only}
    lines = []
    class_weight = getattr(spec.loss.args, "class_weight", None)
    if class_weight == "balanced":
        lines += ["# class_weight: balanced: n / (classes * count) per class, counted on the training split",
                  f"counts = torch.bincount(y_train.reshape(-1).long().cpu(), minlength={classes})[:{classes}]",
                  f"weight = (counts.sum() / ({classes} * counts.double())).tolist()"]
        args["weight"] = Name("weight")
    elif class_weight is not None:
        args["weight"] = [float(w) for w in class_weight]
    for key in ("weight", "pos_weight"):
        if args.get(key) is not None:
            value = args[key] if isinstance(args[key], Name) else literal(args[key])
            lines.append(f"{key} = torch.tensor({value}, dtype=torch.float32, device=device)")
            args[key] = Name(key)
    lines.append(f"loss_fn = nn.{spec.loss.kind}({call_arguments(args)})")
    return lines


def _trackers(spec: Any) -> list[Tracker]:
    best_monitor = checkpoint_monitor(spec)
    best = Tracker("best", best_monitor, monitor_mode(best_monitor, spec.train.checkpoint.mode))
    stopping = spec.train.early_stopping
    if stopping is None:
        return [best]
    watched = Tracker("watched", stopping.monitor, monitor_mode(stopping.monitor, stopping.mode), stopping.min_delta)
    if (watched.monitor, watched.mode, watched.min_delta) == (best.monitor, best.mode, 0.0):
        return [best]  # one value decides both
    return [best, watched]


# ---------------------------------------------------------------------------------------------
# one epoch


def _epoch(spec: Any, compiled: Any, data: DataPlan, steps: "SchedulerPlan", trackers: list[Tracker]) -> str:
    train = spec.train
    many = len(data.inputs) > 1
    x = "inputs_train" if many else "x_train"
    lines = ["started = time.perf_counter()",
             'record = {"epoch": epoch, "lr": float(optimizer.param_groups[0]["lr"])}']
    if steps.warmup and steps.interval != "batch":
        lines.append("warm = step >= warmup_steps  # the schedule moves only after epochs that began warm")
    lines.append("")
    lines.append("# train: one pass over the training split" + (", in a new order each epoch" if train.shuffle else ""))
    lines.append("model.train()")
    if train.shuffle:
        lines.append("order = torch.randperm(n, generator=generator).to(device)")
        lines.append(f"x, y = tuple(a[order] for a in {x}), y_train[order]" if many
                     else f"x, y = {x}[order], y_train[order]")
    else:
        lines.append(f"x, y = {x}, y_train")
    has_metrics = bool(chosen_metrics(spec))
    lines.append("losses, sizes" + (", outputs, targets = [], [], [], []" if has_metrics else " = [], []"))
    lines.append("for index, start in enumerate(range(0, n, BATCH_SIZE)):" if _uses_index(train)
                 else "for start in range(0, n, BATCH_SIZE):")
    lines.append(indent(_batch(spec, data, steps, has_metrics)))
    lines += _train_loss(spec, has_metrics)
    if data.validation:
        lines += ["", "# evaluate: validation loss and metrics, no gradients",
                  f"record.update(evaluate({'forward' if train.compile else 'model'}, "
                  f"{'inputs_val' if many else 'x_val'}, y_val, loss_fn))"]
    lines += steps.epoch_end
    lines += ["", "# log: one line, one record in metrics.jsonl",
              'record["seconds"] = round(time.perf_counter() - started, 4)',
              'log.write(json.dumps(record) + "\\n")',
              "log.flush()",
              'summary = "  ".join(f"{k} {v:.4f}" for k, v in record.items() if k != "epoch")',
              'print(f"epoch {epoch:>3}/{EPOCHS}  {summary}")']
    if wants_confusion_file(spec):
        lines.append('matrices = {"classes": classes, **confusion_matrices}')
        lines.append('(HERE / "confusion_matrix.json").write_text(json.dumps(matrices))')
    lines += [""] + _checkpoint_and_stop(spec, trackers)
    return "\n".join(lines)


def _uses_index(train: Any) -> bool:
    return train.accumulate > 1


def _batch(spec: Any, data: DataPlan, steps: "SchedulerPlan", has_metrics: bool) -> str:
    train = spec.train
    many = len(data.inputs) > 1
    forward = "forward" if train.compile else "model"
    lines = ["xb = tuple(a[start:start + BATCH_SIZE] for a in x)" if many else "xb = x[start:start + BATCH_SIZE]",
             "yb = y[start:start + BATCH_SIZE]"]
    call = f"output = {forward}(*xb)" if many else f"output = {forward}(xb)"
    loss = "loss = loss_fn(output, yb)" + (".mean()  # reduction: none" if _reduction(spec) == "none" else "")
    if train.precision == "fp32":
        lines += [call, loss]
    else:
        dtype = "bfloat16" if train.precision == "bf16" else "float16"
        lines += [f"with torch.autocast(device.type, dtype=torch.{dtype}):", "    " + call, "    " + loss]
    lines += ["losses.append(loss.detach())", "sizes.append(len(yb))"]
    if has_metrics:
        lines += ["outputs.append(output.detach())", "targets.append(yb)"]
    if train.accumulate > 1 and _reduction(spec) != "sum":
        lines += ["# the group of ACCUMULATE batches is one big batch: weigh each batch by its share of it",
                  "first = index // ACCUMULATE * ACCUMULATE * BATCH_SIZE",
                  "loss = loss * (len(yb) / (min(n, first + ACCUMULATE * BATCH_SIZE) - first))"]
    lines.append("scaler.scale(loss).backward()" if train.precision == "fp16" else "loss.backward()")
    if train.accumulate > 1:
        lines.append("if (index + 1) % ACCUMULATE == 0 or start + BATCH_SIZE >= n:")
        lines.append(indent(_optimizer_step(spec, steps)))
    else:
        lines.append(_optimizer_step(spec, steps))
    return "\n".join(lines)


def _reduction(spec: Any) -> str:
    return getattr(spec.loss.args, "reduction", "mean")


def _optimizer_step(spec: Any, steps: "SchedulerPlan") -> str:
    train = spec.train
    lines = []
    clip = train.clip_grad
    if clip is not None:
        if train.precision == "fp16":
            lines.append("scaler.unscale_(optimizer)  # clip the true gradients")
        if clip.norm is not None:
            norm_type = f", norm_type={clip.norm_type!r}" if clip.norm_type != 2.0 else ""
            lines.append(f"torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={clip.norm!r}{norm_type})")
        else:
            lines.append(f"torch.nn.utils.clip_grad_value_(model.parameters(), clip_value={clip.value!r})")
    if train.precision == "fp16":
        lines += ["scaler.step(optimizer)", "scaler.update()"]
    else:
        lines.append("optimizer.step()")
    lines.append("optimizer.zero_grad(set_to_none=True)")
    lines += steps.after_step
    return "\n".join(lines)


def _train_loss(spec: Any, has_metrics: bool) -> list[str]:
    if _reduction(spec) == "sum":
        total = "total = torch.stack(losses).sum().item()  # summed losses: already per-batch totals"
    else:
        total = ("weights = torch.tensor(sizes, dtype=torch.float32, device=device)  # batch means to sums\n"
                 "total = (torch.stack(losses) * weights).sum().item()")
    lines = [*total.split("\n"),
             "if not math.isfinite(total):",
             '    raise SystemExit(f"the training loss is not finite at epoch {epoch}")',
             'record["train_loss"] = total / n']
    if has_metrics:
        lines.append('record.update(metrics(outputs, targets, "train"))')
    return lines


def _checkpoint_and_stop(spec: Any, trackers: list[Tracker]) -> list[str]:
    stopping = spec.train.early_stopping
    lines = ["# checkpoint and stop?: best.pt when the monitored value improves, last.pt every few epochs"]
    best = trackers[0]
    lines += [f'value = record["{best.monitor}"]'] + _improves(best, "improved", "value")
    if best.variable == "best" and stopping is not None and len(trackers) == 1:
        lines += ["stale = 0 if improved else stale + 1"]
    if len(trackers) > 1:
        watched = "value"
        if trackers[1].monitor != best.monitor:
            watched = "watched_value"
            lines.append(f'watched_value = record["{trackers[1].monitor}"]')
        lines += _improves(trackers[1], "watched_improved", watched)
        lines += ["stale = 0 if watched_improved else stale + 1"]
    due = "epoch % CHECKPOINT_EVERY == 0 or epoch == EPOCHS"
    if stopping is not None:
        lines.append("stop = stale >= PATIENCE")
        due += " or stop"
    lines += ['checkpoint = {',
              '    "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,',
              '}',
              f"if {due}:",
              '    torch.save(checkpoint, HERE / "checkpoints" / "last.pt")',
              "if improved:",
              '    torch.save(checkpoint, HERE / "checkpoints" / "best.pt")']
    if stopping is not None:
        lines += ["if stop:",
                  f'    print(f"early stopping: {stopping.monitor} has not improved for {{PATIENCE}} epochs")',
                  "    break"]
    return lines


def _improves(tracker: Tracker, flag: str, value: str) -> list[str]:
    best = tracker.variable
    if tracker.mode == "min":
        better = f"{value} < {best}" + (f" - {tracker.min_delta!r}" if tracker.min_delta else "")
    else:
        better = f"{value} > {best}" + (f" + {tracker.min_delta!r}" if tracker.min_delta else "")
    return [f"{flag} = not math.isnan({value}) and ({best} is None or {better})",
            f"if {flag}:",
            f"    {best} = {value}"]


def _final_files(spec: Any, data: DataPlan) -> list[str]:
    lines = []
    if restores_best(spec):
        lines += ["# early_stopping.restore_best_weights: keep the best epoch's weights, not the last epoch's",
                  'best_checkpoint = HERE / "checkpoints" / "best.pt"',
                  "if best_checkpoint.is_file():",
                  '    model.load_state_dict(torch.load(best_checkpoint)["model"])']
    kept = "the kept weights" if restores_best(spec) else "the final weights (not best.pt's)"
    lines += [f"# {kept} and what predict.py needs besides them",
             'torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, HERE / "weights.pt")',
             '(HERE / "meta.json").write_text(json.dumps({"classes": classes}, indent=2) + "\\n")']
    if data.preprocessing:
        lines.append('(HERE / "preprocess.json").write_text(json.dumps(preprocessing, indent=2) + "\\n")')
    if data.test:
        x_test = "inputs_test" if len(data.inputs) > 1 else "x_test"
        lines += ["", "# the test split: measured once, with the kept weights",
                  f'test = evaluate(model, {x_test}, y_test, loss_fn, "test")',
                  '(HERE / "test.json").write_text(json.dumps(test, indent=2) + "\\n")',
                  'print("test  " + "  ".join(f"{k} {v:.4f}" for k, v in test.items()))']
    return lines


# ---------------------------------------------------------------------------------------------
# evaluate()


def _evaluate(spec: Any, data: DataPlan) -> str:
    many = len(data.inputs) > 1
    has_metrics = bool(chosen_metrics(spec))
    call = "output = model(*xb)" if many else "output = model(xb)"
    if _reduction(spec) == "sum":
        total = "total += loss_fn(output, yb)"
    elif _reduction(spec) == "none":
        total = "total += loss_fn(output, yb).mean() * len(yb)"
    else:
        total = "total += loss_fn(output, yb) * len(yb)"
    body = [call, total]
    if spec.train.precision != "fp32":
        dtype = "bfloat16" if spec.train.precision == "bf16" else "float16"
        body = [f"with torch.autocast(y.device.type, dtype=torch.{dtype}):"] + ["    " + b for b in body]
    if has_metrics:
        body += ["outputs.append(output)", "targets.append(yb)"]
    take = "xb = tuple(a[start:start + BATCH_SIZE] for a in x)" if many else "xb = x[start:start + BATCH_SIZE]"
    lines = ["model.eval()",
             "total = torch.zeros((), device=y.device)"]
    if has_metrics:
        lines.append("outputs, targets = [], []")
    lines += ["for start in range(0, len(y), BATCH_SIZE):",
              indent("\n".join([take, "yb = y[start:start + BATCH_SIZE]", *body])),
              'result = {f"{prefix}_loss": total.item() / len(y)}']
    if has_metrics:
        lines.append("result.update(metrics(outputs, targets, prefix))")
    lines.append("return result")
    return ("@torch.inference_mode()\n"
            'def evaluate(model, x, y, loss_fn, prefix="val"):\n'
            '    """Mean loss per sample on (x, y) and the metrics; leaves the model in eval mode."""\n'
            + indent("\n".join(lines)))


# ---------------------------------------------------------------------------------------------
# learning-rate schedule: warmup and scheduler, as runtime/train/schedulers.py steps them


@dataclass
class SchedulerPlan:
    setup: list[str]
    after_step: list[str]
    epoch_end: list[str]
    warmup: bool = False
    interval: Optional[str] = None

    @property
    def counts_steps(self) -> bool:
        return self.warmup


def _scheduler_plan(spec: Any) -> SchedulerPlan:
    train = spec.train
    choice = train.scheduler
    if choice is None:
        return SchedulerPlan([], [], [])
    kind, warmup = choice.kind, choice.warmup
    interval = SCHEDULERS[kind].interval
    args = {k: v for k, v in choice.args.changed().items() if k != "monitor"}
    setup: list[str] = []
    derived_cosine = kind == "CosineAnnealingLR" and choice.args.T_max is None
    per_epoch = kind == "OneCycleLR" or (warmup is not None and (warmup.epochs or derived_cosine))
    if per_epoch:
        accumulate = " / ACCUMULATE" if train.accumulate > 1 else ""
        setup.append(f"steps_per_epoch = math.ceil(math.ceil(len(y_train) / BATCH_SIZE){accumulate})")
    if warmup is not None:
        setup.append(f"warmup_steps = {warmup.epochs} * steps_per_epoch" if warmup.epochs
                     else f"warmup_steps = {warmup.steps}  # optimizer steps of linear warmup")
    after = " - warmup_steps" if warmup is not None else ""
    if kind == "CosineAnnealingLR" and choice.args.T_max is None:
        if warmup is not None:
            setup.append("cosine_epochs = max(1, EPOCHS - math.ceil(warmup_steps / steps_per_epoch))  # after warmup")
            args = {"T_max": Name("cosine_epochs"), **args}
        else:
            args = {"T_max": Name("EPOCHS"), **args}
    if kind == "OneCycleLR":
        args = {**args, "total_steps": Name(f"EPOCHS * steps_per_epoch{after}")}
    setup.append(wrapped_call("scheduler = ", f"torch.optim.lr_scheduler.{kind}", f"optimizer, {call_arguments(args)}"))
    if warmup is not None:
        setup.append("# made after the scheduler: it ramps up to the lr the scheduler starts from")
        start = "1 / 3" if warmup.start_factor == 1 / 3 else repr(warmup.start_factor)  # LinearLR's default
        setup.append(wrapped_call("warmup = ", "torch.optim.lr_scheduler.LinearLR",
                                  f"optimizer, start_factor={start}, end_factor=1.0, total_iters=warmup_steps"))
    after_step: list[str] = []
    if warmup is not None:
        after_step += ["step += 1",
                       "if step <= warmup_steps:",
                       "    warmup.step()",
                       "    # the warmup ends on the spec's lr exactly, not on a rounding of it",
                       "    if step == warmup_steps:",
                       "        for group, base in zip(optimizer.param_groups, warmup.base_lrs):",
                       '            group["lr"] = base']
        if interval == "batch":
            after_step += ["else:", "    scheduler.step()"]
    elif interval == "batch":
        after_step.append("scheduler.step()")
    epoch_end: list[str] = []
    if interval != "batch":
        step = "scheduler.step()" if interval == "epoch" else f'scheduler.step(record["{choice.args.monitor}"])'
        epoch_end = ["", "# schedule: the learning rate for the next epoch"]
        epoch_end += ["if warm:", "    " + step] if warmup is not None else [step]
    return SchedulerPlan(setup, after_step, epoch_end, warmup is not None, interval)
