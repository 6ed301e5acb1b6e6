"""This process's place in a torchrun job: torchrun's environment, the process group, DDP, collectives.

specnn never launches or synchronises processes itself (DESIGN.md): ``torchrun`` starts one
process per rank and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` ... in each; this module reads
them, checks the spec against them (the global batch divides across ranks, the backend fits the
device), joins the process group (gloo on CPU, nccl on CUDA), wraps the model in
``DistributedDataParallel`` and sums tensors over ranks. Outside torchrun everything here is a
no-op for a world of one, so the trainer has one code path::

    with distributed_session(device) as dist:
        model = dist.wrap(model)                       # DDP when world_size > 1
        sums = dist.all_reduce_sums({"loss": total, "count": count})   # one collective
        if dist.is_main:
            write_files(dist.unwrap(model).state_dict())
        dist.barrier()

Each rank's share of an epoch is ``shards.py``; launching ranks and reporting a failure once is
``specnn/launch.py``. The spec's ``train.batch_size`` is the *global* batch: each rank takes
``batch_size / world_size`` (:func:`per_rank_batch_size`). DDP averages gradients over ranks, and
the mean over ranks of equal-sized per-shard means is the mean over the global batch, so N
processes take the same steps as one process would with the same global batch (up to the order
of float sums).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Optional

import torch

from specnn.errors import SpecError, spec_problem
from specnn.runtime.data.batch_sizes import BATCH_SIZE_PATH

BACKENDS = ("gloo", "nccl")
BACKEND_PATH = ("train", "distributed", "backend")


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
    raise SpecError([spec_problem(
        spec, BATCH_SIZE_PATH,
        f"batch_size {global_batch} is the global batch and does not divide evenly across {world_size} processes",
        code="batch-size", hint="use a multiple of the process count, e.g. " + " or ".join(str(s) for s in options),
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
        raise SpecError([spec_problem(spec, BACKEND_PATH, f"unknown backend '{requested}'", code="backend",
                                      hint="use gloo (CPU or CUDA) or nccl (CUDA)")])
    if requested == "nccl" and device.type != "cuda":
        raise SpecError([spec_problem(spec, BACKEND_PATH, f"backend 'nccl' needs CUDA, but training runs on {device}",
                                      code="backend", hint="use backend: gloo, or train on a CUDA device")])
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
    store: Any = field(default=None, repr=False, compare=False)  # the rendezvous store while the group lives

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
    dist.store = attempt_store(env, timeout)
    torch.distributed.init_process_group(chosen, rank=env.rank, world_size=env.world_size, timeout=timeout,
                                         store=dist.store)
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


# How long rank 0 waits, after a successful run, for the other ranks to tear their groups down.
LEAVE_SECONDS = 30.0


def stop(dist: Distributed, together: bool = False) -> None:
    """Leave the process group (idempotent).

    ``together`` (every rank got here on success): rank 0 then waits, bounded by LEAVE_SECONDS,
    until every rank has torn its group down, so its exit never takes the store it may host and
    its gloo pairs away from a rank still inside ``destroy_process_group`` (gloo then aborts that
    rank: "terminate called without an active exception", seen about once in a few full test runs).
    """
    left = dist.active and torch.distributed.is_initialized()
    if left:
        torch.distributed.destroy_process_group()
    dist.backend = None
    store, dist.store = dist.store, None
    if left and together and store is not None:
        _leave_together(store, dist.rank, dist.world_size)


def _leave_together(store: Any, rank: int, world_size: int) -> None:
    try:
        store.add("specnn/left", 1)
        deadline = time.monotonic() + LEAVE_SECONDS
        while rank == 0 and store.add("specnn/left", 0) < world_size and time.monotonic() < deadline:
            time.sleep(0.01)
    except (RuntimeError, OSError):  # the store is gone: no one is left to wait for
        pass


@contextlib.contextmanager
def distributed_session(device: torch.device, backend: Optional[str] = None, spec: Any = None,
                        env: Optional[LaunchEnv] = None, timeout: Optional[datetime.timedelta] = None
                        ) -> Iterator[Distributed]:
    """Join the job for the ``with`` block; leave it on success, error and Ctrl-C.

    Which rank reports a failure, and with what exit code, is ``specnn/launch.py``'s (``job``).
    """
    dist = start(device, backend, spec, env, timeout)
    try:
        yield dist
        if dist.active:
            # Leave together: a rank tearing down while another still talks to the group (or
            # to the store rank 0 may host) makes gloo abort that rank at exit.
            dist.barrier()
    except BaseException:
        stop(dist)
        raise
    stop(dist, together=True)
