"""One rank of the data-parallel tests: ``mpiexec -n N python tests/distributed_worker.py ...``.

:func:`train` is also what the tests call in their own (single) process for the
reference run, so both sides train exactly the same problem.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import xpnet  # noqa: E402
from xpnet.callbacks import Callback  # noqa: E402

SAMPLES, FEATURES, CLASSES = 240, 8, 3
BATCH, EPOCHS = 24, 2  # 10 global batches per epoch: 20 steps


class StepLosses(Callback):
    """Every step's loss (of the global batch) and the epochs' logs."""

    def __init__(self) -> None:
        super().__init__()
        self.losses: list[float] = []
        self.epoch_losses: list[float] = []

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.losses.extend(float(v) for v in self.state.batch_losses)
        self.epoch_losses.append(float(logs["loss"]))


class FailAt(Callback):
    """Raise on one rank in the middle of training (the fault test)."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == 3 and xpnet.distributed.rank() == self.rank:
            raise RuntimeError(f"deliberate failure on rank {self.rank}")


class StopOnRank(Callback):
    """Ask to stop at step 3 of the first epoch, on one rank only."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def on_batch_end(self, batch: int, logs: dict | None = None) -> None:
        if batch == 3 and xpnet.distributed.rank() == self.rank:
            self.stop_training = True


def problem(backend: str) -> tuple:
    g = np.random.default_rng(0)
    X = g.standard_normal((SAMPLES, FEATURES))
    y = (X[:, 0] + X[:, 1] ** 2 > 0.5).astype(np.int64) + (X[:, 2] > 1.0)
    return xpnet.asarray(X, backend, dtype="float64"), xpnet.asarray(y, backend)


def train(backend: str, *, seed: int = 1, init_seed: int = 7, distributed: object = "auto",
          extra: tuple = ()) -> dict[str, np.ndarray]:
    """20 Adam steps in float64; per-step losses, epoch losses and final parameters."""
    X, y = problem(backend)
    model = xpnet.mlp([FEATURES, 16, CLASSES], "tanh", dtype="float64", generator=init_seed)
    model.to(backend)
    opt = xpnet.optim.Adam(model.parameters(), lr=0.01)
    rec = StepLosses()
    xpnet.fit(model, xpnet.CrossEntropyLoss(), opt, X, y, epochs=EPOCHS, batch_size=BATCH,
              generator=seed, callbacks=(rec, *extra), verbose=0, distributed=distributed)
    out = {f"param{i}": xpnet.to_numpy(p.data) for i, p in enumerate(model.parameters())}
    out["losses"] = np.asarray(rec.losses)
    out["epoch_losses"] = np.asarray(rec.epoch_losses)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="numpy")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed-per-rank", action="store_true",
                    help="negative control: each rank shuffles with its own seed")
    ap.add_argument("--init-seed-per-rank", action="store_true",
                    help="each rank initialises its weights differently (rank 0's are broadcast)")
    ap.add_argument("--fail-rank", type=int, default=None)
    ap.add_argument("--stop-rank", type=int, default=None)
    args = ap.parse_args()
    xpnet.distributed.init()
    rank = xpnet.distributed.rank()
    seed = 1 + (rank if args.seed_per_rank else 0)
    extra = (FailAt(args.fail_rank),) if args.fail_rank is not None else ()
    if args.stop_rank is not None:
        extra = (StopOnRank(args.stop_rank),)
    init_seed = 7 + (100 * rank if args.init_seed_per_rank else 0)
    result = train(args.backend, seed=seed, init_seed=init_seed, extra=extra)
    result["world_size"] = np.asarray(xpnet.distributed.world_size())
    np.savez(f"{args.out}.rank{rank}.npz", **result)


if __name__ == "__main__":
    main()
