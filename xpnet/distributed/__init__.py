"""Data-parallel training over MPI (mpi4py) and NCCL (cupyx.distributed).

Launch the same script on N processes (``mpiexec -n 4 python train.py``); each calls
:func:`xpnet.fit` as usual and the processes train one model together: every rank draws
the same shuffling order, takes its shard of each global batch, and the gradients are
summed by one collective per step. Without a launcher everything here is a no-op, so the
script also runs as one process. See ``docs/distributed.md``.

Examples
--------
>>> import xpnet.distributed as dist
>>> dist.init()  # doctest: +ELLIPSIS
<...Group object at ...>
>>> dist.rank(), dist.world_size(), dist.is_main()
(0, 1, True)
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from ._groups import Group, MPIGroup, NCCLGroup, launched_by_mpi, nccl_available

__all__ = [
    "init", "rank", "world_size", "local_rank", "is_main", "barrier", "all_reduce",
    "broadcast", "all_reduce_metrics", "group", "is_initialized", "abort",
    "Group", "MPIGroup", "NCCLGroup", "DataParallel", "nccl_available", "exit_status",
]

BACKENDS = ("auto", "mpi", "nccl")

_GROUP: Group | None = None


def init(backend: str = "auto") -> Group:
    """Join the processes of this job; idempotent (a second call returns the same group).

    Parameters
    ----------
    backend
        ``"auto"``: MPI when a launcher started this process (``mpiexec``, ``mpirun``,
        ``srun``), with CuPy buffers on NCCL when ``cupyx.distributed`` is usable; a
        single-process group otherwise. ``"mpi"``: MPI for every buffer (one process
        when not launched). ``"nccl"``: NCCL for CuPy buffers, required; the rendezvous
        is MPI when launched, else cupyx's TCP store with ``RANK`` and ``WORLD_SIZE``
        from the environment (``CUPYX_DISTRIBUTED_HOST`` / ``_PORT`` say where).

    Returns
    -------
    Group
        The process group (also what :func:`group` returns from now on).

    Raises
    ------
    ValueError
        An unknown backend, or a different one than a previous call's.
    ImportError
        MPI was asked for (or launched) but mpi4py is missing.
    """
    global _GROUP
    if backend not in BACKENDS:
        raise ValueError(f"xpnet.distributed.init: backend must be one of {BACKENDS}, got {backend!r}")
    if _GROUP is not None:
        if backend not in ("auto", _GROUP.backend) and _GROUP.size > 1:
            raise ValueError(
                f"xpnet.distributed.init: already initialised with backend "
                f"{_GROUP.backend!r}; cannot switch to {backend!r} in the same process"
            )
        return _GROUP
    _GROUP = _make_group(backend)
    if _GROUP.size > 1:
        _abort_on_uncaught_exception(_GROUP)
    return _GROUP


def _make_group(backend: str) -> Group:
    launched = launched_by_mpi()
    if backend == "nccl":
        if launched:
            return MPIGroup(_mpi_comm(), nccl="now")
        import os

        size, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
        return NCCLGroup.create(size, rank, use_mpi=False, host_group=None)
    if launched or backend == "mpi":
        return MPIGroup(_mpi_comm(), nccl="auto" if backend == "auto" else "never")
    return Group()


def _mpi_comm() -> Any:
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(
            "xpnet.distributed: this process was started by an MPI launcher (or backend='mpi' "
            "was asked for) but mpi4py is not installed. Hint: pip install 'xpnet[mpi]'"
        ) from exc
    return MPI.COMM_WORLD


def _abort_on_uncaught_exception(g: Group) -> None:
    """An uncaught exception on one rank ends the whole job instead of leaving it hanging.

    The other ranks would otherwise wait forever in their next collective. The traceback
    is printed first, so the job's output names the failing rank and its error.
    """
    previous = sys.excepthook

    def hook(tp: Any, value: Any, tb: Any) -> None:
        print(f"xpnet.distributed: rank {g.rank} of {g.size} raised {tp.__name__}; "
              f"aborting the job", file=sys.stderr)
        previous(tp, value, tb)
        g.abort(1)

    sys.excepthook = hook


def group() -> Group:
    """The process group, made by ``init("auto")`` on first use."""
    return _GROUP if _GROUP is not None else init("auto")


def is_initialized() -> bool:
    """Whether :func:`init` has run in this process (explicitly or on first use)."""
    return _GROUP is not None


def rank() -> int:
    """This process's index, 0 .. world_size() - 1."""
    return group().rank


def world_size() -> int:
    """Number of processes training together (1 when not launched)."""
    return group().size


def local_rank() -> int:
    """This process's index among those on its node (to pick a GPU)."""
    return group().local_rank


def is_main() -> bool:
    """True on rank 0: the process that prints, writes metrics files and checkpoints."""
    return group().rank == 0


def barrier() -> None:
    """Wait until every process reaches this call."""
    group().barrier()


def all_reduce(x: Any) -> Any:
    """Elementwise sum of array ``x`` over the processes, in ``x``'s namespace and device.

    ``x`` may be reduced in place (NumPy, torch, CuPy); use the returned array.
    """
    return group().allreduce_(x)


def broadcast(x: Any, root: int = 0) -> Any:
    """Process ``root``'s ``x`` on every process (in place where the route allows it)."""
    return group().broadcast_(x, root)


def all_reduce_metrics(values: dict[str, float]) -> dict[str, float]:
    """Sums of host numbers over the processes, in one collective (float64)."""
    keys = sorted(values)
    summed = group().allreduce_host(np.asarray([values[k] for k in keys], dtype=np.float64))
    return {k: float(v) for k, v in zip(keys, summed)}


def abort(code: int = 1) -> None:
    """End every process of the job (``MPI_Abort``); a no-op exit for one process."""
    group().abort(code)


def exit_status(code: int) -> int:
    """For a command's exit status: abort the job when one rank fails and others may wait."""
    if code != 0 and _GROUP is not None and _GROUP.size > 1:
        _GROUP.abort(code)
    return code


def _reset_for_tests(g: Group | None = None) -> None:
    """Replace the process group (tests only)."""
    global _GROUP
    _GROUP = g


from .data_parallel import DataParallel  # noqa: E402 - uses the functions above
