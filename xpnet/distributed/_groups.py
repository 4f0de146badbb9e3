"""Process groups: one process (no-op), MPI through mpi4py, NCCL through cupyx.distributed.

A group sums and broadcasts 1-D buffers of any backend. How a buffer reaches the
transport (its *route*) is decided per array from its type and device:

``direct``
    NumPy arrays go to MPI as they are (mpi4py reads the buffer protocol).
``shared``
    torch CPU tensors: ``tensor.numpy()`` shares the tensor's memory, so MPI reduces the
    tensor itself; no copy.
``cuda-aware``
    CuPy arrays and torch CUDA tensors handed to a CUDA-aware MPI as device buffers
    (only when the MPI library says so, or ``XPNET_MPI_CUDA_AWARE=1``).
``nccl``
    CuPy arrays on an NCCL communicator (``cupyx.distributed``): device to device.
``host``
    Anything else (array-api-strict, device arrays without the above): one copy to a
    NumPy buffer, the collective, one copy back to the array's device.

Layers, losses and optimizers never see a group (DESIGN §3); the training loop does.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import array_api_compat
import numpy as np

from .. import _backend

Array = Any

#: Variables a launcher sets in every process it starts: mpiexec of MPICH (Hydra) and
#: Intel MPI, Open MPI's mpirun, MVAPICH, and PMIx launchers (srun --mpi=pmix).
_LAUNCH_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_LAUNCH_FLAG_VARS = ("PMIX_RANK",)
_LOCAL_RANK_VARS = ("MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK",
                    "SLURM_LOCALID", "LOCAL_RANK")

_ROUTE_WORDS = {
    "direct": "passed to {t} directly",
    "shared": "passed to {t} directly (the tensor's own host memory)",
    "cuda-aware": "passed to {t} as device buffers (CUDA-aware MPI)",
    "nccl": "reduced device to device by NCCL",
    "host": "staged through host memory for {t}",
    "local": "not communicated (one process)",
}


def launched_by_mpi() -> bool:
    """True when an MPI launcher started this process (``mpiexec``, ``mpirun``, ``srun``)."""
    return any(v in os.environ for v in _LAUNCH_SIZE_VARS + _LAUNCH_FLAG_VARS)


def local_rank_from_env() -> int:
    """This process's index among the processes of its node (0 when not launched)."""
    for var in _LOCAL_RANK_VARS:
        if var in os.environ:
            return int(os.environ[var])
    return 0


def kind_of(x: Array) -> str:
    """``"numpy"``, ``"torch-cpu"``, ``"torch-cuda"``, ``"cupy"`` or ``"other"``."""
    if array_api_compat.is_numpy_array(x):
        return "numpy"
    if array_api_compat.is_torch_array(x):
        return "torch-cpu" if x.device.type == "cpu" else "torch-cuda"
    if array_api_compat.is_cupy_array(x):
        return "cupy"
    return "other"


def _kind_words(kind: str) -> str:
    return {"numpy": "NumPy arrays", "torch-cpu": "torch CPU tensors",
            "torch-cuda": "torch CUDA tensors", "cupy": "CuPy arrays"}.get(kind, "arrays")


def _synchronize(x: Array) -> None:
    """Wait for the device work that writes ``x`` before another library reads its memory."""
    kind = kind_of(x)
    if kind == "cupy":
        import cupy

        cupy.cuda.get_current_stream().synchronize()
    elif kind == "torch-cuda":
        import torch

        torch.cuda.synchronize(x.device)


class Group:
    """A group of one process: every collective returns its input unchanged.

    Attributes
    ----------
    backend
        ``"none"``, ``"mpi"`` or ``"nccl"``.
    rank, size
        This process's index and the number of processes.
    """

    backend = "none"
    transport = "nothing"

    def __init__(self) -> None:
        self.rank = 0
        self.size = 1
        self.local_rank = 0

    def route(self, x: Array) -> str:
        """How ``x`` would travel (see the module docstring)."""
        return "local"

    def allreduce_(self, x: Array) -> Array:
        """Sum of ``x`` over the processes; reduces in place when the route allows it."""
        return x

    def broadcast_(self, x: Array, root: int = 0) -> Array:
        """``x`` of process ``root`` on every process."""
        return x

    def allreduce_host(self, a: np.ndarray) -> np.ndarray:
        """Sum of a float64 host array over the processes (metrics, a few numbers)."""
        return a

    def barrier(self) -> None:
        """Wait until every process reaches this call."""

    def abort(self, code: int = 1) -> None:
        """End every process of the job with exit status ``code``."""
        sys.stderr.flush()
        os._exit(code)

    def describe(self, x: Array | None = None) -> str:
        """One line: processes, transport and, given a buffer, its route."""
        if self.size == 1 and self.backend == "none":
            return "1 process (nothing to communicate)"
        head = f"{self.size} process{'es' if self.size != 1 else ''} over {self.transport}"
        if x is None:
            return head
        words = _ROUTE_WORDS[self.route(x)].format(t=self.backend.upper())
        return f"{head}; {_kind_words(kind_of(x))} {words}"


class MPIGroup(Group):
    """``MPI.COMM_WORLD`` (or ``comm``) through mpi4py.

    Parameters
    ----------
    comm
        An mpi4py communicator; default ``COMM_WORLD``.
    nccl
        ``"auto"``: reduce CuPy buffers over NCCL when ``cupyx.distributed`` is usable
        (the NCCL communicator is made, with MPI as its rendezvous, at the first CuPy
        buffer); ``"never"``: MPI for everything; ``"now"``: make it at once, failing when
        NCCL is not usable.
    """

    backend = "mpi"

    def __init__(self, comm: Any = None, *, nccl: str = "auto") -> None:
        super().__init__()
        from mpi4py import MPI

        self.MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_rank = local_rank_from_env()
        self.transport = f"MPI ({_mpi_library(MPI)})"
        self.cuda_aware = _cuda_aware(MPI)
        self.nccl_mode = nccl
        self.nccl: NCCLGroup | None = None
        if nccl == "now":
            self.nccl = NCCLGroup.create(self.size, self.rank, use_mpi=True, host_group=self)

    def route(self, x: Array) -> str:
        kind = kind_of(x)
        if kind == "numpy":
            return "direct"
        if kind == "torch-cpu":
            return "shared"
        if kind == "cupy" and (self.nccl is not None or self._nccl_wanted()):
            return "nccl"
        if kind in ("cupy", "torch-cuda") and self.cuda_aware:
            return "cuda-aware"
        return "host"

    def _nccl_wanted(self) -> bool:
        if self.nccl_mode == "auto":
            self.nccl_mode = "yes" if nccl_available() else "never"  # asked once
        return self.nccl_mode == "yes"

    def _nccl(self) -> NCCLGroup:
        if self.nccl is None:
            # A collective rendezvous: every rank reaches its first CuPy buffer together.
            self.nccl = NCCLGroup.create(self.size, self.rank, use_mpi=True, host_group=self)
        return self.nccl

    def allreduce_(self, x: Array) -> Array:
        route = self.route(x)
        if route == "nccl":
            return self._nccl().allreduce_(x)
        buf, back = self._buffer(x, route)
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        return back(buf)

    def broadcast_(self, x: Array, root: int = 0) -> Array:
        route = self.route(x)
        if route == "nccl":
            return self._nccl().broadcast_(x, root)
        buf, back = self._buffer(x, route)
        self.comm.Bcast(buf, root=root)
        return back(buf)

    def _buffer(self, x: Array, route: str) -> tuple[Any, Any]:
        """What MPI reads and writes for ``x``, and how to turn it back into ``x``'s kind."""
        if route == "direct":
            buf = x if x.flags.c_contiguous and x.flags.writeable else np.array(x, order="C")
            return buf, lambda b: b
        if route == "shared":
            x = x.contiguous()
            return x.numpy(), lambda b: x
        if route == "cuda-aware":
            _synchronize(x)
            return x, lambda b: b
        xp, dev = _backend.namespace_of(x), _backend.device_of(x)
        host = np.array(_backend.to_numpy(x), order="C", copy=True)
        return host, lambda b: _backend.asarray(b, xp, device=dev)

    def allreduce_host(self, a: np.ndarray) -> np.ndarray:
        out = np.array(a, dtype=np.float64, order="C", copy=True)
        self.comm.Allreduce(self.MPI.IN_PLACE, out, op=self.MPI.SUM)
        return out

    def barrier(self) -> None:
        self.comm.Barrier()

    def abort(self, code: int = 1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        self.comm.Abort(code)


class NCCLGroup(Group):
    """A ``cupyx.distributed`` NCCL communicator: CuPy buffers reduced on the device.

    Parameters
    ----------
    comm
        The communicator (``cupyx.distributed.init_process_group(...)``): what is used of
        it is ``all_reduce(in, out, op="sum")`` and ``broadcast(array, root)``.
    rank, size
        This process's rank and the world size.
    host_group
        A group for the host-side sums (metrics) and for buffers that are not CuPy
        arrays; None: those travel through NCCL in a CuPy copy.
    """

    backend = "nccl"

    def __init__(self, comm: Any, rank: int, size: int, host_group: Group | None = None) -> None:
        super().__init__()
        self.comm, self.rank, self.size = comm, rank, size
        self.local_rank = local_rank_from_env()
        self.host_group = host_group
        self.transport = "NCCL (cupyx.distributed)"

    @classmethod
    def create(cls, size: int, rank: int, *, use_mpi: bool, host_group: Group | None) -> NCCLGroup:
        """Rendezvous with the other ranks (over MPI when ``use_mpi``, else cupyx's TCP store)."""
        if not nccl_available():
            raise RuntimeError(
                "xpnet.distributed: backend 'nccl' needs CuPy with NCCL support "
                "(cupyx.distributed) and a GPU. Hint: pip install 'xpnet[cuda12]', or "
                "init(backend='mpi')"
            )
        import cupyx.distributed

        comm = cupyx.distributed.init_process_group(size, rank, backend="nccl", use_mpi=use_mpi)
        return cls(comm, rank, size, host_group)

    def route(self, x: Array) -> str:
        if kind_of(x) == "cupy":
            return "nccl"
        return self.host_group.route(x) if self.host_group is not None else "host"

    def allreduce_(self, x: Array) -> Array:
        if kind_of(x) != "cupy":
            return self._other(x, lambda g, c: g.allreduce_(c))
        self.comm.all_reduce(x, x, op="sum")
        return x

    def broadcast_(self, x: Array, root: int = 0) -> Array:
        if kind_of(x) != "cupy":
            return self._other(x, lambda g, c: g.broadcast_(c, root))
        self.comm.broadcast(x, root)
        return x

    def _other(self, x: Array, op: Any) -> Array:
        """A buffer that is not a CuPy array: the host group, or NCCL on a CuPy copy."""
        if self.host_group is not None:
            return op(self.host_group, x)
        import cupy

        xp, dev = _backend.namespace_of(x), _backend.device_of(x)
        done = op(self, cupy.asarray(_backend.to_numpy(x)))
        return _backend.asarray(cupy.asnumpy(done), xp, device=dev)

    def allreduce_host(self, a: np.ndarray) -> np.ndarray:
        return np.asarray(_backend.to_numpy(self._other(np.asarray(a, dtype=np.float64),
                                                        lambda g, c: g.allreduce_(c))))

    def barrier(self) -> None:
        if self.host_group is not None:
            self.host_group.barrier()
        else:
            self.allreduce_host(np.zeros(1))

    def abort(self, code: int = 1) -> None:
        (self.host_group or super()).abort(code)


def nccl_available() -> bool:
    """Whether ``cupyx.distributed`` with NCCL and at least one GPU can be used here."""
    try:
        import cupy
        import cupyx.distributed  # noqa: F401
        from cupy.cuda import nccl

        return bool(nccl.available) and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no CuPy, no NCCL build, no driver: all mean "no"
        return False


def _mpi_library(MPI: Any) -> str:
    text = MPI.Get_library_version().strip().splitlines()[0]
    return " ".join(text.replace("Version:", "").split())[:40]


def _cuda_aware(MPI: Any) -> bool:
    """Whether device buffers may be handed to MPI (env override, else the library's answer)."""
    env = os.environ.get("XPNET_MPI_CUDA_AWARE")
    if env is not None:
        return env.strip() not in ("", "0", "false", "no")
    query = getattr(MPI, "Query_cuda_support", None)
    try:
        return bool(query()) if query is not None else False
    except Exception:  # noqa: BLE001 - an MPI without the MPIX extension
        return False
