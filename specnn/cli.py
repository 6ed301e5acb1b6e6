"""The ``specnn`` command line: parse arguments, call the public API, print.

Every command here is a thin wrapper over a function a Python user can call
(``specnn.load_spec``, ``specnn.compile_spec``, ``specnn.train`` ...). Bad input of any kind
arrives as a :class:`~specnn.errors.SpecError` and leaves as one line per problem on stderr
with exit code 2; nothing here formats an error message itself.

Exit status: 0 success; 2 bad input (spec, data file, run folder, arguments: click's usage
errors are 2 too); 1 a failure on valid input (:class:`~specnn.errors.ToolError`: an exporter
failed, or an unexpected error with its traceback); 130 Ctrl-C, in every command.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable, Iterable

import click

from specnn.catalog.exporters import EXPORTERS
from specnn.errors import EXIT_INTERRUPTED, Problem, SpecError

INTERRUPTED = "interrupted"
STARTUP_INTERRUPTED = "interrupted before training started; nothing was saved"
RESUME_SPEC_RUN = "\0spec-run"  # `--resume` given without a folder: the spec's newest run folder


class ProblemsReported(click.ClickException):
    """The problems were already printed, one per line; exit with the error's status (2: bad input)."""

    def __init__(self, count: int, exit_code: int = SpecError.exit_code):
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found")
        self.exit_code = exit_code

    def show(self, file=None) -> None:  # the problem lines are the message
        pass


def checkpoint_option(command: Callable) -> Callable:
    """``--checkpoint best|last``: a checkpoint's weights instead of the run's weights.pt."""
    return click.option("--checkpoint", type=click.Choice(["best", "last"]),
                        help="use checkpoints/best.pt or last.pt instead of weights.pt (the kept weights)")(command)


def echo_weights(run: Any) -> None:
    """On stderr, which checkpoint's weights a command used (only when --checkpoint chose them)."""
    if run.meta.get("checkpoint"):
        click.echo(f"using checkpoints/{run.meta['checkpoint']}.pt (epoch {run.meta['checkpoint_epoch']})", err=True)


def echo_problems(problems: Iterable[Problem]) -> int:
    errors = 0
    for problem in problems:
        click.echo(problem.format(), err=True)
        errors += problem.severity == "error"
    return errors


def reports_problems(command: Callable) -> Callable:
    """Turn a SpecError (and Ctrl-C) raised by the API into printed problems and an exit code."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except SpecError as error:
            raise ProblemsReported(echo_problems(error.problems), error.exit_code) from None
        except KeyboardInterrupt:
            # not click's "Aborted!" and status 1: a shell script tells Ctrl-C apart by 130
            click.echo(INTERRUPTED, err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper


def load_and_compile(spec_path: str, max_parameters: int | None = None):
    """Load a spec and compile it, printing compiler warnings; SpecError on any error.

    ``max_parameters`` (``--max-parameters``) replaces the spec's ``train.max_parameters``.
    """
    from specnn.spec.loader import load_spec

    return compile_checked(load_spec(spec_path), max_parameters)


def compile_checked(spec, max_parameters: int | None = None):
    """``(spec, compiled)`` for a valid spec, printing compiler warnings; SpecError on a compile error."""
    from specnn.compiler import compile_spec

    if max_parameters is not None:
        spec.train.max_parameters = max_parameters
    compiled = compile_spec(spec)
    echo_problems(compiled.warnings)
    return spec, compiled


def validate_one(path: str, max_parameters: int | None = None):
    """Check a spec, or a sweep file with the spec it names: ``(spec, compiled)``; SpecError on any error."""
    from specnn.spec.loader import load_spec_document, read_document
    from specnn.spec.sweep_file import is_sweep_file, sweep_source

    document = read_document(path)  # read once: whether it is a sweep file, and what it holds
    spec = sweep_source(document).spec if is_sweep_file(document.data) else load_spec_document(document)
    return compile_checked(spec, max_parameters)


SPEC_FILE = click.Path(exists=True, dir_okay=False, path_type=str)
MAX_PARAMETERS = click.option(
    "--max-parameters", type=click.IntRange(min=1), default=None,
    help="refuse a model with more parameters than this (default: the spec's train.max_parameters, 1e9)")
RUN_DIR = click.Path(exists=True, file_okay=False, path_type=str)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="specnn")
def cli() -> None:
    """specnn: a model spec (YAML/JSON) in; a checked, compiled, trained, exported PyTorch model out."""


@cli.command()
@click.argument("files", nargs=-1, required=True, type=SPEC_FILE)
@click.option("--data", "with_data", is_flag=True,
              help="also read each spec's data (a table's first rows) and run every data-stage check of train")
@MAX_PARAMETERS
@reports_problems
def validate(files: tuple[str, ...], with_data: bool, max_parameters: int | None) -> None:
    """Check spec FILES and sweep files: schema, shapes, lints (--data: the data); every problem is reported."""
    failed = 0
    for path in files:
        try:
            spec, compiled = validate_one(path, max_parameters)
            if with_data:
                from specnn.runtime.data.check import check_data

                for note in check_data(spec, compiled):
                    click.echo(note)
        except SpecError as error:
            failed += 1
            echo_problems(error.problems)
            continue
        click.echo(f"{path}: ok")
    if failed:
        raise ProblemsReported(failed)


@cli.command(name="inspect")
@click.argument("spec_file", type=SPEC_FILE)
@click.option("--json", "as_json", is_flag=True, help="print a JSON document instead of the table")
@MAX_PARAMETERS
@reports_problems
def inspect_command(spec_file: str, as_json: bool, max_parameters: int | None) -> None:
    """Print SPEC_FILE's layer table: output shapes, parameter counts and totals, and the training memory floor."""
    from specnn.compiler.budget import budget_line
    from specnn.compiler.summary import format_table, summarize

    spec, compiled = load_and_compile(spec_file, max_parameters)
    summary = summarize(compiled)
    if as_json:
        click.echo(json.dumps({**summary.to_json(), "max_parameters": spec.train.max_parameters}, indent=2))
    else:
        click.echo(format_table(summary))
        click.echo(budget_line(summary.total_params, spec.train.max_parameters))


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), help="write to a file")
@reports_problems
def schema(output: str | None) -> None:
    """Print the JSON Schema of the spec format (for editors and CI)."""
    from specnn.spec.schema import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@cli.command(name="compile")
@click.argument("spec_file", type=SPEC_FILE)
@click.option("-o", "--output", "out_dir", default="build", show_default=True,
              type=click.Path(file_okay=False), help="folder for model.py")
@MAX_PARAMETERS
@reports_problems
def compile_command(spec_file: str, out_dir: str, max_parameters: int | None) -> None:
    """Write the generated nn.Module of SPEC_FILE to OUT_DIR/model.py (needs only torch)."""
    from specnn.compiler import write_model_py

    _, compiled = load_and_compile(spec_file, max_parameters)
    click.echo(f"wrote {write_model_py(compiled, out_dir)}")


@cli.command()
@click.argument("spec_file", type=SPEC_FILE)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="run folder (default runs/<name>)")
@click.option("-q", "--quiet", is_flag=True, help="no progress bar (the one summary line per epoch stays)")
@click.option("--nproc", type=click.IntRange(min=1), help="train on N local processes (runs torchrun for you)")
@click.option("--backend", type=click.Choice(["gloo", "nccl"]), help="torch.distributed backend (default: nccl on CUDA, gloo on CPU)")
@click.option("--resume", is_flag=False, flag_value=RESUME_SPEC_RUN, default=None, metavar="[RUN]",
              help="continue from RUN/checkpoints/last.pt (RUN default: --out, else the newest runs/<name>[-N])")
@click.option("--overwrite", is_flag=True, help="replace the run in --out (its old files are removed first)")
@click.option("--threads", type=click.IntRange(min=1),
              help="CPU threads for torch (default: train.threads; auto = 1 for models under 1M parameters)")
@reports_problems
def train(spec_file: str, out_dir: str | None, quiet: bool, nproc: int | None, backend: str | None,
          resume: str | None, overwrite: bool, threads: int | None) -> None:
    """Train SPEC_FILE; the run (spec, model.py, metrics, weights, exports) goes to a folder.

    The default folder is runs/<name>, or runs/<name>-2, -3 ... when it already holds a run;
    an --out folder that holds a run is an error unless --overwrite (or --resume) is given.

    Every epoch prints one summary line; a progress bar is drawn too when the output is a
    terminal and --quiet is not given.

    train.batch_size is the global batch: with --nproc N (or under torchrun) each process
    trains on batch_size / N samples of its own shard of every epoch.

    Ctrl-C exits with status 130: during training after saving a checkpoint and printing the
    resume command; before training, after removing whatever this run had written.
    """
    try:
        train_or_launch(spec_file, out_dir, quiet, nproc, backend, resume, overwrite, threads)
    except KeyboardInterrupt as stop:
        # TrainingInterrupted says what was saved and how to resume; a bare one came before any of that
        click.echo(getattr(stop, "message", STARTUP_INTERRUPTED), err=True)
        sys.exit(EXIT_INTERRUPTED)


def train_or_launch(spec_file: str, out_dir: str | None, quiet: bool, nproc: int | None, backend: str | None,
                    resume: str | None, overwrite: bool, threads: int | None = None) -> None:
    """``specnn train``: train in this process (one rank of a job under torchrun), or launch torchrun."""
    from specnn.launch import launch, train as train_spec, worker_args
    from specnn.runtime.train.distributed import launch_env, per_rank_batch_size
    from specnn.spec.loader import load_spec

    spec = load_spec(spec_file)
    env = launch_env()
    if nproc is not None and nproc > 1 and env.world_size == 1:
        per_rank_batch_size(spec, nproc)  # a spec problem is reported once, before launching
        sys.exit(launch(nproc, worker_args(sys.argv[1:])))  # the command as typed, less --nproc
    from specnn.runtime.runs.export import ExportFailed

    try:
        run = train_spec(spec, out=out_dir, progress=not quiet, echo=click.echo, backend=backend, threads=threads,
                         overwrite=overwrite, resume=True if resume == RESUME_SPEC_RUN else (resume or False))
    except ExportFailed as failure:  # the training is saved: say where, then exit 1
        count = echo_problems(failure.problems)
        click.echo(f"run saved to {failure.run.path} (export failed: retry with specnn export {failure.run.path} "
                   "--format ...)")
        raise ProblemsReported(count, failure.exit_code) from None
    if env.rank == 0:
        click.echo(f"run saved to {run.path}")


@cli.command(name="sweep")
@click.argument("sweep_file", type=SPEC_FILE)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="sweep folder (default sweeps/<name>)")
@click.option("--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="local processes running trials at once, on one study")
@click.option("--storage", metavar="URL", help="the study's storage: sqlite:///..., postgresql://..., or a journal "
              "file on a shared file system (default: SWEEP_FOLDER/study.db)")
@click.option("--trials", type=click.IntRange(min=1), help="trials in the whole study (default: sweep.trials)")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="start no trial after this long (default: sweep.timeout)")
@click.option("--no-plots", is_flag=True, help="skip the history and importance plots (they take a few seconds)")
@reports_problems
def sweep_command(sweep_file: str, out_dir: str | None, jobs: int, storage: str | None, trials: int | None,
                  timeout: float | None, no_plots: bool) -> None:
    """Search SWEEP_FILE's sweep: section with Optuna; each trial is a run under the sweep folder.

    SWEEP_FILE is a spec with a sweep: section, or a sweep file (spec: FILE and sweep:).
    Running the same command again continues the study (after Ctrl-C or a crash); the same
    command with one --storage on several machines shares it. Writes trials.csv, best.yaml
    (the best trial's spec, trains on its own) and Optuna's plots into the sweep folder.
    """
    from specnn.runtime.sweep import SweepFailed, format_table, sweep

    try:
        result = sweep(sweep_file, out_dir, jobs=jobs, storage=storage, trials=trials, timeout=timeout,
                       plots=not no_plots, echo=click.echo)
    except KeyboardInterrupt as stop:
        click.echo(getattr(stop, "message", "interrupted"), err=True)
        sys.exit(EXIT_INTERRUPTED)
    except SweepFailed as error:
        raise click.ClickException(str(error)) from None
    click.echo(format_table(result))
    if result.best is not None:
        click.echo(f"best: trial {result.best.number}, {result.metric} {result.best.value:.6g}; "
                   f"its spec: {result.best_spec}")
    for line in [f"trials table: {result.table}", *(f"plot: {p}" for p in result.plots), *result.notes]:
        click.echo(line)


@cli.command()
@click.argument("source", type=click.Path(exists=True, path_type=str), metavar="SPEC_OR_RUN")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="folder for the project (created)")
@click.option("--overwrite", is_flag=True, help="replace the project files already in the folder")
@reports_problems
def eject(source: str, out_dir: str, overwrite: bool) -> None:
    """Write SPEC_OR_RUN as a plain PyTorch project: model.py, data.py, train.py, predict.py.

    `python train.py` there trains to the same weights as `specnn train` (bit for bit on the
    CPU) and imports no specnn. From a run folder, its weights are copied for predict.py.
    """
    from specnn.runtime.runs.eject import eject as eject_project

    project = eject_project(source, out_dir, overwrite=overwrite)
    for path in project.files:
        click.echo(f"wrote {path}")
    click.echo(f"train with: cd {project.path} && python train.py")


@cli.command()
@click.argument("run_dir", type=RUN_DIR)
@click.option("--format", "fmt", required=True, type=click.Choice(list(EXPORTERS)), help="export format")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="file to write (default: in the run)")
@click.option("--rtol", type=click.FloatRange(min=0), help="ONNX: relative tolerance of the onnxruntime check "
              "(|ort - torch| <= atol + rtol * |torch|, as numpy.allclose; default 1e-4)")
@click.option("--atol", type=click.FloatRange(min=0), help="ONNX: absolute tolerance of that check (default 1e-5)")
@checkpoint_option
@reports_problems
def export(run_dir: str, fmt: str, output: str | None, rtol: float | None, atol: float | None,
           checkpoint: str | None) -> None:
    """Export a trained RUN_DIR's model."""
    from specnn.runtime.runs.export import export as export_run
    from specnn.runtime.runs.run import load_run

    if fmt != "onnx" and (rtol is not None or atol is not None):
        raise click.UsageError("--rtol and --atol set the ONNX check; they do not apply to --format " + fmt)
    run = load_run(run_dir, checkpoint)
    echo_weights(run)
    report = export_run(run, fmt, output, rtol=rtol, atol=atol)
    click.echo(str(report))


@cli.command()
@click.argument("run_dir", type=RUN_DIR)
@click.argument("input_file", type=click.Path(path_type=str))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="CSV file to write (default: stdout)")
@click.option("--probabilities", is_flag=True, help="add one probability column per class (p_<class>)")
@click.option("--array", help="the NPZ array holding the features (or write INPUT_FILE as file.npz:NAME)")
@checkpoint_option
@reports_problems
def predict(run_dir: str, input_file: str, output: str | None, probabilities: bool, array: str | None,
            checkpoint: str | None) -> None:
    """Predict every row of INPUT_FILE (CSV, Parquet or NPZ with the training's feature columns), or an image
    or a folder of images for a run trained on an image folder, with RUN_DIR."""
    from specnn.runtime.runs.predict import predict as predict_rows

    from specnn.runtime.runs.run import load_run

    run = load_run(run_dir, checkpoint)
    echo_weights(run)
    predictions = predict_rows(run, input_file, array=array)
    if probabilities and predictions.probabilities is None:
        what = "none of this run's outputs classifies" if predictions.parts is not None else \
            f"this run is a {predictions.task} run"
        raise click.UsageError(f"--probabilities needs a classifier; {what}")
    if output:
        predictions.write_csv(output, probabilities)
        click.echo(f"wrote {len(predictions)} predictions to {output}", err=True)
    else:
        click.echo(predictions.to_csv(probabilities), nl=False)


@cli.command()
@click.argument("run_dir", type=RUN_DIR)
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="PNG to write (default: RUN_DIR/curves.png)")
@click.option("--dpi", default=100, show_default=True, type=click.IntRange(20, 600), help="resolution")
@reports_problems
def plot(run_dir: str, output: str | None, dpi: int) -> None:
    """Draw RUN_DIR's training curves: loss and metrics (train vs validation), learning rate."""
    from specnn.runtime.runs.plot import plot_run

    click.echo(f"wrote {plot_run(run_dir, output, dpi=dpi)}")


@cli.command()
@click.argument("run_dir", type=RUN_DIR)
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False, path_type=str),
              help="held-out CSV or NPZ with the feature columns and the target (default: the validation split)")
@click.option("--json", "as_json", is_flag=True, help="print a JSON document instead of the table")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="also write the result as JSON to this file")
@click.option("--device", help="where to evaluate (default: the spec's train.device)")
@click.option("--split", type=click.Choice(["validation", "test"]), default="validation", show_default=True,
              help="without --data: the split rebuilt from the spec (test: data.test_split)")
@checkpoint_option
@reports_problems
def evaluate(run_dir: str, data_file: str | None, as_json: bool, output: str | None, device: str | None,
             split: str, checkpoint: str | None) -> None:
    """Loss and metrics of RUN_DIR on its validation (or test) split, or on a held-out --data file."""
    from specnn.runtime.runs.evaluate import evaluate as evaluate_run, format_evaluation, write_evaluation
    from specnn.runtime.runs.run import load_run

    run = load_run(run_dir, checkpoint)
    echo_weights(run)
    result = evaluate_run(run, data_file, device=device, split=split)
    click.echo(json.dumps(result, indent=2) if as_json else format_evaluation(result))
    if output:
        click.echo(f"wrote {write_evaluation(result, output)}", err=True)


@cli.command(name="runs")
@click.argument("directory", default="runs", type=click.Path(file_okay=False, path_type=str))
@reports_problems
def runs_command(directory: str) -> None:
    """List the runs in DIRECTORY (default runs/): started, spec hash, epochs, best value, status."""
    from specnn.runtime.runs.compare import find_runs, format_runs

    click.echo(format_runs(find_runs(directory)))


@cli.command()
@click.argument("run_dir", type=RUN_DIR)
@click.option("--json", "as_json", is_flag=True, help="print a JSON document instead of text")
@reports_problems
def show(run_dir: str, as_json: bool) -> None:
    """What made RUN_DIR (its manifest: spec and data hashes, versions, device, command) and its final values."""
    from specnn.runtime.runs.compare import format_show, show_json, summarize_run

    run = summarize_run(run_dir)
    click.echo(json.dumps(show_json(run), indent=2) if as_json else format_show(run))


@cli.command()
@click.argument("run_a", type=RUN_DIR)
@click.argument("run_b", type=RUN_DIR)
@reports_problems
def diff(run_a: str, run_b: str) -> None:
    """What differs between two runs: resolved spec, data files, versions, device, final values."""
    from specnn.runtime.runs.compare import diff_runs

    click.echo(diff_runs(run_a, run_b), nl=False)


def main() -> None:
    cli(prog_name="specnn")


if __name__ == "__main__":
    sys.exit(main())
