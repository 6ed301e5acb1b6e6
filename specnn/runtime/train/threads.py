"""How many CPU threads torch uses while training (``train.threads``, ``--threads``).

torch starts one intra-op thread per core. For a small model each operation is too small to
split, so the extra threads only add synchronisation, and on a shared machine they wait for cores
other processes hold: the iris quick start ran about 3x slower with torch's default than with one
thread (``benchmarks/threads.py`` measures it). ``auto`` therefore gives a model under
:data:`SMALL_MODEL` parameters one thread and leaves bigger models torch's default; an
``OMP_NUM_THREADS`` the user set is their choice and stays. The previous count is restored when
training ends, so ``specnn.train`` in a notebook leaves torch as it found it.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator, Mapping, Optional, Union

import torch

SMALL_MODEL = 1_000_000  # parameters


def choose_threads(setting: Union[str, int], device: torch.device, parameters: int,
                   environ: Mapping[str, str] = os.environ) -> Optional[int]:
    """The thread count to set, or None to leave torch's.

    >>> cpu = torch.device("cpu")
    >>> choose_threads("auto", cpu, 5_000, {}), choose_threads("auto", cpu, 5_000_000, {}), choose_threads(3, cpu, 10, {})
    (1, None, 3)
    >>> choose_threads("auto", cpu, 5_000, {"OMP_NUM_THREADS": "4"}) is None
    True
    """
    if setting != "auto":
        return int(setting)
    if device.type != "cpu" or environ.get("OMP_NUM_THREADS") or parameters >= SMALL_MODEL:
        return None
    return 1


@contextmanager
def cpu_threads(setting: Union[str, int], device: torch.device, parameters: int) -> Iterator[int]:
    """Train with the chosen thread count (yielded), then give torch back the count it had."""
    before = torch.get_num_threads()
    chosen = choose_threads(setting, device, parameters)
    if chosen is not None:
        torch.set_num_threads(chosen)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
