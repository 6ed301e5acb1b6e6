"""Data-parallel training on torch.distributed: torchrun's environment, DDP, shards, rank-0 I/O.

specnn never launches or synchronises processes itself (DESIGN.md): ``torchrun`` starts one
process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` ... in each; this module reads
them, joins the process group (gloo on CPU, nccl on CUDA), wraps the model in
``DistributedDataParallel`` and hands each rank its disjoint shard of every epoch. Outside torchrun
everything here is a no-op for a world of one, so the trainer has one code path::

    with distributed_session(device) as dist:
        model = dist.wrap(model)                       # DDP when world_size > 1
        order = torch.randperm(n, generator=g)         # the SAME draw on every rank
        mine = shard_indices(order, dist.rank, dist.world_size)
        sums = dist.all_reduce_sums({"loss": total, "count": count})   # one collective
        if dist.is_main: write_files(dist.unwrap(model).state_dict())
        dist.barrier()

The spec's ``train.batch_size`` is the *global* batch: each rank takes ``batch_size / world_size``
(:func:`per_rank_batch_size`). DDP averages gradients over ranks, and the mean over ranks of
equal-sized per-shard means is the mean over the global batch, so N processes take the same steps
as one process would with the same global batch (up to the order of float sums).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import torch

from specnn.errors import Problem, SpecError

BACKENDS = ("gloo", "nccl")
BATCH_SIZE_PATH = ("train", "batch_size")
BACKEND_PATH = ("train", "distributed", "backend")
FAILED_KEY = "specnn/first-failure"
EXIT_INTERRUPTED = 130
EXIT_CODE_KEY = "specnn_exit_code"  # in a worker's torchrun error file: the code it meant to exit with


# ---------------------------------------------------------------------------------------------
# torchrun's environment


@dataclass(frozen=True)
class LaunchEnv:
    """What torchrun (or any env:// launcher) tells a worker about its place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    master_addr: Optional[str] = None
    master_port: Optional[int] = None
    restart_count: int = 0

    @property
    def restarted(self) -> bool:
        """True when torchrun restarted the workers (``--max-restarts``): resume, do not start over."""
        return self.restart_count > 0


def launch_env(environ: Mapping[str, str] = os.environ) -> LaunchEnv:
    """Read torchrun's variables; a plain ``python``/``specnn`` process is rank 0 of 1.

    >>> launch_env({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "TORCHELASTIC_RESTART_COUNT": "1"})
    LaunchEnv(rank=1, world_size=2, local_rank=1, local_world_size=1, master_addr=None, master_port=None, restart_count=1)
    """
    def number(name: str, default: int) -> int:
        return int(environ[name]) if environ.get(name, "").strip() else default

    port = environ.get("MASTER_PORT")
    return LaunchEnv(
        rank=number("RANK", 0),
        world_size=number("WORLD_SIZE", 1),
        local_rank=number("LOCAL_RANK", 0),
        local_world_size=number("LOCAL_WORLD_SIZE", 1),
        master_addr=environ.get("MASTER_ADDR"),
        master_port=int(port) if port else None,
        restart_count=number("TORCHELASTIC_RESTART_COUNT", 0),
    )


# ---------------------------------------------------------------------------------------------
# spec checks


def per_rank_batch_size(spec: Any, world_size: int) -> int:
    """The batch each rank trains on: the spec's global ``train.batch_size`` over ``world_size``.

    Raises:
        SpecError: the global batch does not divide evenly, located at ``train.batch_size``.
    """
    global_batch = spec.train.batch_size
    if global_batch % world_size == 0:
        return global_batch // world_size
    lower = global_batch - global_batch % world_size
    options = [size for size in (lower, lower + world_size) if size > 0]
    raise SpecError([_located(
        spec, BATCH_SIZE_PATH, "batch-size",
        f"batch_size {global_batch} is the global batch and does not divide evenly across {world_size} processes",
        hint="use a multiple of the process count, e.g. " + " or ".join(str(s) for s in options),
    )])


def choose_backend(device: torch.device, requested: Optional[str] = None, spec: Any = None) -> str:
    """The process-group backend: ``requested`` (flag or spec), else nccl on CUDA and gloo elsewhere.

    >>> choose_backend(torch.device("cpu"))
    'gloo'

    Raises:
        SpecError: an unknown backend, or nccl without a CUDA device (located when ``spec`` is given).
    """
    if requested is None:
        requested = spec_backend(spec)
    if requested is None:
        return "nccl" if device.type == "cuda" else "gloo"
    if requested not in BACKENDS:
        raise SpecError([_located(spec, BACKEND_PATH, "backend", f"unknown backend '{requested}'",
                                  hint="use gloo (CPU or CUDA) or nccl (CUDA)")])
    if requested == "nccl" and device.type != "cuda":
        raise SpecError([_located(spec, BACKEND_PATH, "backend", f"backend 'nccl' needs CUDA, but training runs on {device}",
                                  hint="use backend: gloo, or train on a CUDA device")])
    return requested


def spec_backend(spec: Any) -> Optional[str]:
    """``train.distributed.backend`` when the spec has one (an optional section)."""
    section = getattr(getattr(spec, "train", None), "distributed", None)
    return getattr(section, "backend", None)


def resume_command(spec_file: str, folder: Any, env: Optional[LaunchEnv] = None) -> str:
    """The command that resumes ``folder`` on as many processes as this job has.

    >>> resume_command("a.yaml", "runs/a", LaunchEnv())
    'specnn train a.yaml --resume runs/a'
    >>> resume_command("a.yaml", "runs/a", LaunchEnv(world_size=2, local_world_size=2))
    'specnn train a.yaml --resume runs/a --nproc 2'
    >>> resume_command("a.yaml", "runs/a", LaunchEnv(world_size=4, local_world_size=2))
    'specnn train a.yaml --resume runs/a (under the same torchrun command on every machine)'
    """
    env = env or launch_env()
    command = f"specnn train {spec_file} --resume {folder}"
    if env.world_size == 1:
        return command
    if env.local_world_size == env.world_size:  # one machine: --nproc launches the same job
        return f"{command} --nproc {env.world_size}"
    return f"{command} (under the same torchrun command on every machine)"


def rank_device(device: torch.device, env: LaunchEnv) -> torch.device:
    """Each rank's device: on CUDA the rank's local GPU (``cuda:LOCAL_RANK``), else ``device``."""
    if device.type != "cuda" or env.world_size == 1:
        return device
    return torch.device("cuda", env.local_rank)


def _located(spec: Any, path: tuple, code: str, message: str, hint: Optional[str] = None) -> Problem:
    file, line, col = spec.locate(path) if spec is not None else (None, None, None)
    return Problem(code, message, path, file=file, line=line, col=col, hint=hint)


# ---------------------------------------------------------------------------------------------
# shards of an epoch


def shard_indices(order: torch.Tensor, rank: int, world_size: int, drop_last: bool = False) -> torch.Tensor:
    """This rank's part of one epoch's sample ``order`` (DistributedSampler semantics).

    Every rank passes the same ``order`` (the same seeded permutation); rank ``r`` takes
    ``order[r::world_size]``, so the shards are disjoint and together cover the epoch. The order
    is first padded with its own head (or, with ``drop_last``, truncated) to a multiple of
    ``world_size``, so every rank gets the same number of samples and therefore of steps: a rank
    with one step more would wait forever in DDP's gradient all-reduce.

    >>> shard_indices(torch.arange(5), 0, 2).tolist(), shard_indices(torch.arange(5), 1, 2).tolist()
    ([0, 2, 4], [1, 3, 0])
    >>> shard_indices(torch.arange(5), 1, 2, drop_last=True).tolist()
    [1, 3]
    """
    n = len(order)
    if world_size == 1:
        return order
    if drop_last:
        order = order[: n - n % world_size]
    elif n % world_size:
        padding = world_size - n % world_size
        order = torch.cat([order, order.repeat(-(-padding // n))[:padding]])
    return order[rank::world_size]


def epoch_order(n: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """One epoch's order as DistributedSampler draws it: ``randperm`` seeded with ``seed + epoch``.

    >>> torch.equal(epoch_order(6, seed=3, epoch=1), epoch_order(6, seed=3, epoch=1))
    True
    """
    if not shuffle:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))


def shard_length(n: int, world_size: int) -> int:
    """How many samples each rank gets from an epoch of ``n`` (padded, as :func:`shard_indices`).

    >>> shard_length(5, 2), shard_length(4, 2), shard_length(4, 1)
    (3, 2, 4)
    """
    return -(-n // world_size)


def shard_batches(data: Any, batch_size: int, dist: "Distributed", *, shuffle: bool,
                  generator: Optional[torch.Generator] = None) -> Iterator[Any]:
    """This rank's batches of one epoch of in-memory ``data`` (``runtime.data.Tensors``).

    The permutation is drawn from ``generator`` exactly as the single-process path draws it
    (one ``randperm`` per epoch), so every rank, seeded alike, draws the same order, and a
    checkpoint's generator state fixes the epoch's order on any number of processes. With a
    world of one this *is* the single-process path.
    """
    from specnn.runtime.data.tensors import Tensors, batches

    if not dist.active:
        return batches(data, batch_size, shuffle=shuffle, generator=generator)
    order = torch.randperm(len(data), generator=generator) if shuffle else torch.arange(len(data))
    mine = shard_indices(order, dist.rank, dist.world_size).to(data.y.device)
    return batches(Tensors(tuple(x[mine] for x in data.inputs), data.y[mine]), batch_size)


# ---------------------------------------------------------------------------------------------
# the process group


@dataclass
class Distributed:
    """This process's place in a data-parallel job; a world of one outside torchrun.

    Attributes:
        rank, world_size, local_rank: from torchrun's environment.
        device: the device this rank trains on (its local GPU on CUDA).
        backend: the process-group backend, None when no group was started (a world of one).
        restart_count: how often torchrun restarted the workers (``--max-restarts``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: Optional[str] = None
    restart_count: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes files and exports."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when a process group is up (several ranks)."""
        return self.backend is not None

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """The model in DistributedDataParallel (pinned to this rank's GPU on CUDA); as is for one rank."""
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        # Gradients as views into DDP's all-reduce buckets: no copy between them every step.
        if self.device.type == "cuda":
            return DistributedDataParallel(model, device_ids=[self.device.index], output_device=self.device.index,
                                           gradient_as_bucket_view=True)
        return DistributedDataParallel(model, gradient_as_bucket_view=True)

    @staticmethod
    def unwrap(model: torch.nn.Module) -> torch.nn.Module:
        """The plain model inside DDP: its ``state_dict`` has no ``module.`` prefix, so it loads anywhere."""
        return getattr(model, "module", model)

    def barrier(self) -> None:
        """Wait until every rank gets here (rank 0 writing files, the others waiting)."""
        if self.active:
            torch.distributed.barrier(**self._device_ids())

    def all_reduce_sums(self, sums: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Sum each tensor over all ranks with ONE collective (they are packed into one vector).

        Call it once per epoch with the epoch's running sums (loss totals, sample counts, correct
        predictions, a confusion matrix), not once per step: each collective is a round trip.
        """
        if not self.active or not sums:
            return dict(sums)
        names = list(sums)
        values = [torch.as_tensor(sums[name], device=self.device) for name in names]
        packed = torch.cat([v.detach().reshape(-1).to(torch.float64) for v in values])
        torch.distributed.all_reduce(packed, op=torch.distributed.ReduceOp.SUM)
        out, start = {}, 0
        for name, value in zip(names, values):
            out[name] = packed[start:start + value.numel()].reshape(value.shape).to(value.dtype)
            start += value.numel()
        return out

    def main_only(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """``function`` on rank 0; a no-op returning None on the others (printing, writing files)."""
        if self.is_main:
            return function
        return lambda *args, **kwargs: None

    def _device_ids(self) -> dict[str, Any]:
        # nccl's barrier must know the rank's GPU, or it guesses one and may hang.
        return {"device_ids": [self.device.index]} if self.backend == "nccl" else {}


def start(device: torch.device, backend: Optional[str] = None, spec: Any = None,
          env: Optional[LaunchEnv] = None, timeout: Optional[datetime.timedelta] = None) -> Distributed:
    """Join the job torchrun started: pin the local GPU, init the process group (env://).

    A world of one starts no group. Prefer :func:`distributed_session`, which also tears down.

    Raises:
        SpecError: a bad backend choice (see :func:`choose_backend`).
    """
    env = env or launch_env()
    device = rank_device(device, env)
    chosen = choose_backend(device, backend, spec)
    dist = Distributed(env.rank, env.world_size, env.local_rank, device, None, env.restart_count)
    if env.world_size == 1:
        return dist
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before init: nccl binds each rank's communicator to its GPU
    timeout = timeout or datetime.timedelta(minutes=30)
    torch.distributed.init_process_group(chosen, rank=env.rank, world_size=env.world_size, timeout=timeout,
                                         store=attempt_store(env, timeout))
    dist.backend = chosen
    return dist


def attempt_store(env: LaunchEnv, timeout: datetime.timedelta) -> Optional[Any]:
    """The rendezvous store (as ``env://`` builds it), with keys scoped to this torchrun attempt.

    After a ``--max-restarts`` restart torchrun's agent keeps its store, and the process group
    of the new attempt would read the dead attempt's addresses from it (gloo's connectFullMesh
    then fails with "Connection refused"). A prefix per restart keeps each attempt's keys apart.
    None outside torchrun (no MASTER_ADDR/PORT): ``init_process_group`` then uses its default.
    """
    if env.master_addr is None or env.master_port is None:
        return None
    agent_hosts_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
    base = torch.distributed.TCPStore(
        env.master_addr, env.master_port, env.world_size, is_master=not agent_hosts_store and env.rank == 0,
        timeout=timeout, **({} if agent_hosts_store else {"multi_tenant": True}),
    )
    return torch.distributed.PrefixStore(f"specnn/attempt_{env.restart_count}", base)


def stop(dist: Distributed) -> None:
    """Leave the process group (idempotent)."""
    if dist.active and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    dist.backend = None


@contextlib.contextmanager
def distributed_session(device: torch.device, backend: Optional[str] = None, spec: Any = None,
                        env: Optional[LaunchEnv] = None, timeout: Optional[datetime.timedelta] = None
                        ) -> Iterator[Distributed]:
    """Join the job for the ``with`` block; leave it on success, error and Ctrl-C.

    When a rank fails, only the first rank to fail reports it (:func:`claim_first_failure`);
    the others exit quietly with a non-zero code, and torchrun ends the job. The reporting rank
    says which rank it is on stderr and re-raises, so the caller (the CLI) prints the located
    problem once, and records it for torchrun's summary (:func:`record_failure`).
    """
    dist = start(device, backend, spec, env, timeout)
    try:
        yield dist
        if dist.active:
            # Leave together: a rank tearing down while another still talks to the group (or
            # to the store rank 0 may host) makes gloo abort that rank at exit.
            dist.barrier()
    except (SystemExit, GeneratorExit):
        raise
    except BaseException as error:
        if dist.active:
            _fail(dist, error)
        raise
    finally:
        stop(dist)


def _fail(dist: Distributed, error: BaseException) -> None:
    """Report ``error`` if this rank failed first; otherwise leave quietly (the first one speaks).

    A Ctrl-C is an interruption, not a failure: the first rank to stop is the one that speaks
    (its message says what was saved and how to resume, the same on every rank), with no
    "rank N failed" line.
    """
    first = claim_first_failure()
    if not first:
        stop(dist)
        code = EXIT_INTERRUPTED if isinstance(error, KeyboardInterrupt) else 1
        raise SystemExit(code) from None
    if not isinstance(error, KeyboardInterrupt):
        print(f"specnn: rank {dist.rank} of {dist.world_size} failed:", file=sys.stderr, flush=True)
    record_failure(error)


def failure_exit_code(error: BaseException) -> int:
    """What the CLI exits with for ``error``: 2 for bad input (SpecError), 130 for Ctrl-C, else 1."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    return 2 if isinstance(error, SpecError) else 1


def reported_exit_code(failure: Any) -> Optional[int]:
    """The exit code a failed worker recorded in its error file (:func:`record_failure`), if any."""
    message = getattr(failure, "error_file_data", {}).get("message")
    extra = message.get("extraInfo", {}) if isinstance(message, dict) else {}
    code = extra.get(EXIT_CODE_KEY) if isinstance(extra, dict) else None
    return int(code) if isinstance(code, str) and code.isdigit() else None


def claim_first_failure() -> bool:
    """True for the first rank to fail, through a counter in the process group's store.

    A rank whose collective breaks because another rank died fails *after* that rank claimed,
    so the root cause is the one reported. If the store is gone (its host died), report anyway.
    """
    try:
        from torch.distributed.distributed_c10d import _get_default_store

        return _get_default_store().add(FAILED_KEY, 1) == 1  # the store is scoped to this attempt
    except Exception:  # the store's host is gone: better twice than never
        return True


def record_failure(error: BaseException, environ: Mapping[str, str] = os.environ) -> None:
    """Write ``error`` to torchrun's per-worker error file, as ``@record`` would.

    torchrun's agent reads ``TORCHELASTIC_ERROR_FILE`` and names the first failure's message in
    its summary; for bad input that message is the located problem, not a traceback.
    """
    path = environ.get("TORCHELASTIC_ERROR_FILE")
    if not path:
        return
    message = str(error) if isinstance(error, SpecError) else f"{type(error).__name__}: {error}"
    callstack = message if isinstance(error, SpecError) else "".join(traceback.format_exception(error))
    # the code this rank is about to exit with: torchrun may stop it before it does (see launch)
    data = {"message": {"message": message,
                        "extraInfo": {"py_callstack": callstack, "timestamp": str(int(time.time())),
                                      EXIT_CODE_KEY: str(failure_exit_code(error))}}}
    with contextlib.suppress(OSError):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(data, handle)


# ---------------------------------------------------------------------------------------------
# launching: `specnn train SPEC --nproc N` is torchrun, run in this process


def torchrun_args(nproc: int, command: Sequence[str], extra: Sequence[str] = (), module: str = "specnn") -> list[str]:
    """torchrun's arguments for ``python -m specnn COMMAND...`` on ``nproc`` local processes.

    >>> torchrun_args(2, ["train", "iris.yaml"])
    ['--nproc-per-node', '2', '--standalone', '-m', 'specnn', 'train', 'iris.yaml']
    """
    return ["--nproc-per-node", str(nproc), "--standalone", *extra, "-m", module, *command]


def launch(nproc: int, command: Sequence[str], extra: Sequence[str] = (), module: str = "specnn") -> int:
    """Run ``python -m MODULE COMMAND`` on ``nproc`` processes through torchrun; returns the exit code.

    The workers report their own failure once (:func:`distributed_session`); torchrun's summary
    of the same failure is not printed again, and its progress logging is kept to errors.
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    quiet_torchrun_logs()
    try:
        torchrun.main(torchrun_args(nproc, command, extra, module))
    except SignalException as signalled:
        # Ctrl-C (or a kill) reached the launcher: torchrun has passed it on to the workers and
        # waited for them, and they said what they saved; the shell's code for that signal.
        return 128 + int(signalled.sigval)
    except ChildFailedError as failed:
        # The rank that reported the failure exits with its real code (2 for bad input); the
        # others leave quietly with 1, and torchrun's "first" failure may be any of them. A quiet
        # rank may also exit first, and torchrun then terminates the reporter before its exit:
        # the code it recorded in its error file is the job's.
        recorded = [reported_exit_code(failure) for failure in failed.failures.values()]
        if any(code is not None for code in recorded):
            return next(code for code in recorded if code is not None)
        codes = [failure.exitcode for failure in failed.failures.values()]
        if max(codes) > 0:
            return max(codes)
        _, failure = failed.get_first_failure()  # killed by a signal: no worker could say why
        print(f"specnn: {failure.message}", file=sys.stderr)
        return 1
    return 0


def quiet_torchrun_logs() -> None:
    """Keep torchrun's agent to critical messages: the workers already say what went wrong."""
    import logging

    for name in list(logging.root.manager.loggerDict):
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


def forward_args(command: Any, params: Mapping[str, Any], drop: Sequence[str] = ()) -> list[str]:
    """A click command's parsed ``params`` back as command-line arguments, minus ``drop``.

    The workers torchrun starts get the same options the user gave, except the ones that
    launched them (``--nproc``).
    """
    positional, options = [], []
    for param in command.params:
        value = params.get(param.name)
        if param.name in drop or value is None:
            continue
        if param.param_type_name == "argument":
            positional.extend(value if isinstance(value, (list, tuple)) else [value])
        elif getattr(param, "is_flag", False):
            if value and value != param.default:
                options.append(param.opts[0])
        elif getattr(param, "_flag_needs_value", False) and value == param.flag_value:
            options.append(param.opts[0])  # an option whose value is optional, given bare (--resume)
        elif value != param.default:
            options.extend([param.opts[-1] if param.opts[-1].startswith("--") else param.opts[0], str(value)])
    return positional + options
