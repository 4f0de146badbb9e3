"""Data-parallel step time of the ``wide`` workload (W3) on 1 or N processes.

    python benchmarks/distributed_step.py                # one process
    mpiexec -n 2 python benchmarks/distributed_step.py   # two processes, global batch 256

784-1024-1024-10 ReLU, softmax cross entropy, Adam lr 1e-3, float32, GLOBAL batch 256
(each rank computes 256 / N samples), one BLAS thread per process. Each step is what
``fit`` does per step: forward and backward on the rank's shard, the packed gradient
allreduce (:meth:`xpnet.distributed.DataParallel.reduce_gradients`), the Adam update.
Rank 0 prints one JSON line: the median step time, the median time inside the
collective, and its fraction of the step. Results: docs/performance.md.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before NumPy loads its BLAS

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xpnet  # noqa: E402
from xpnet.distributed import DataParallel  # noqa: E402

SIZES, BATCH = (784, 1024, 1024, 10), 256


class TimedGroup:
    """The process group, with the seconds spent in each gradient allreduce recorded."""

    def __init__(self, group: object) -> None:
        self.group, self.seconds = group, []
        self.rank, self.size = group.rank, group.size

    def allreduce_(self, x: object) -> object:
        t = time.perf_counter()
        out = self.group.allreduce_(x)
        self.seconds.append(time.perf_counter() - t)
        return out

    def __getattr__(self, name: str) -> object:
        return getattr(self.group, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    args = ap.parse_args()
    g = TimedGroup(xpnet.distributed.init())
    if BATCH % g.size:
        raise SystemExit(f"the global batch {BATCH} must be divisible by {g.size} processes")
    rng = np.random.default_rng(0)
    lo, hi = g.rank * BATCH // g.size, (g.rank + 1) * BATCH // g.size
    X = rng.standard_normal((BATCH, SIZES[0])).astype(np.float32)[lo:hi]
    y = rng.integers(0, SIZES[-1], BATCH)[lo:hi]
    model = xpnet.mlp(SIZES, "relu", dtype="float32", generator=0)
    loss_fn, opt = xpnet.CrossEntropyLoss(), xpnet.optim.Adam(model.parameters(), lr=1e-3)
    dp = DataParallel(model, loss_fn, g)
    dp.global_sizes = [BATCH]
    steps = []
    for _ in range(args.warmup + args.steps):
        g.group.barrier()  # every rank starts the step together: the time is the slowest's
        t = time.perf_counter()
        loss, dy = loss_fn(model(X), y)
        model.zero_grad()
        model.backward_params(dy)
        dp.reduce_gradients(0, hi - lo)
        opt.step()
        steps.append(time.perf_counter() - t)
    step = float(np.median(steps[args.warmup:]))
    comm = float(np.median(g.seconds[args.warmup:]))
    nbytes = sum(p.data.size * p.data.itemsize for p in model.parameters())
    if g.rank == 0:
        print(json.dumps({"processes": g.size, "global_batch": BATCH, "step_ms": 1e3 * step,
                          "allreduce_ms": 1e3 * comm, "allreduce_fraction": comm / step,
                          "gradient_bytes": int(nbytes), "transport": dp.describe(X)}))


if __name__ == "__main__":
    main()
