"""What :func:`xpnet.fit` does differently when N processes train one model.

* :meth:`DataParallel.loader`: every rank draws the same host permutation (the same
  generator, advanced by one ``permutation(n)`` per epoch) and takes a contiguous shard
  of each global batch, so the union of the shards is the single-process batch.
* :meth:`DataParallel.sync_model`: parameters and buffers broadcast from rank 0.
* :meth:`DataParallel.reduce_gradients`: per dtype, the gradients packed in one buffer,
  scaled by ``local / global`` samples (a mean loss; 1 for a sum loss) and summed by ONE
  collective, then unpacked; every rank's optimizer then takes the same step.
* :meth:`DataParallel.reduce_logs`: the epoch's per-step losses and metrics, and the
  exact metric counts, summed across ranks in one host collective before logging.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from .. import _backend
from . import group as _group

Array = Any

__all__ = ["DataParallel", "data_parallel_for", "shard_bounds"]


def shard_bounds(start: int, stop: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous part of samples ``start:stop`` (sizes differ by at most 1)."""
    m = stop - start
    return start + rank * m // world, start + (rank + 1) * m // world


def _sharded_loader_class() -> type:
    from ..data import DataLoader  # lazy: keeps `import xpnet.distributed` light

    class ShardedLoader(DataLoader):
        """A :class:`~xpnet.data.DataLoader` that yields this rank's shard of each batch.

        ``batch_size`` is the global batch; ``len()`` is the number of global batches, so
        step counts, schedulers and checkpoints mean the same on any number of ranks.
        """

        def __init__(self, *args: Any, rank: int, world: int, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.rank, self.world = rank, world

        def global_bounds(self) -> Iterator[tuple[int, int]]:
            return super()._bounds()

        def _bounds(self) -> Iterator[tuple[int, int]]:
            for start, stop in self.global_bounds():
                yield shard_bounds(start, stop, self.rank, self.world)

    return ShardedLoader


class DataParallel:
    """Data-parallel bookkeeping of one :func:`xpnet.fit` call (see the module docstring).

    Parameters
    ----------
    model
        The model; its trainable parameters are grouped by dtype once, here.
    loss_fn
        The loss; ``reduction == "sum"`` means shard gradients add up unscaled.
    group
        The process group; default :func:`xpnet.distributed.group`.
    """

    def __init__(self, model: Any, loss_fn: Any, group: Any = None) -> None:
        self.group = _group() if group is None else group
        self.rank, self.world = self.group.rank, self.group.size
        self.is_main = self.rank == 0
        self.sum_loss = getattr(loss_fn, "reduction", "mean") == "sum"
        _check_loss(loss_fn)
        self.buckets = _by_dtype([p for p in model.parameters() if p.requires_grad])
        self.global_sizes: list[int] = []

    # ------------------------------------------------------------------ before training

    def check_batch_size(self, batch_size: int, who: str = "fit") -> None:
        """The global batch must split evenly over the ranks."""
        if batch_size % self.world:
            raise ValueError(
                f"{who}: batch_size {batch_size} is the global batch, split over "
                f"{self.world} processes, so it must be divisible by {self.world}. Hint: "
                f"use {batch_size - batch_size % self.world or self.world} or "
                f"{batch_size + self.world - batch_size % self.world}"
            )

    def loader(self, X: Array, y: Array, **kwargs: Any) -> Any:
        """This rank's loader over the global batches (``DataLoader``'s arguments)."""
        loader = _sharded_loader_class()(X, y, rank=self.rank, world=self.world, **kwargs)
        self.global_sizes = [b - a for a, b in loader.global_bounds()]
        if self.global_sizes and min(self.global_sizes) < self.world:
            raise ValueError(
                f"fit: the last batch has {min(self.global_sizes)} samples, fewer than the "
                f"{self.world} processes, so some would get none. Hint: drop_last=True, or a "
                f"batch_size that leaves at least {self.world} samples in the last batch"
            )
        if kwargs.get("shuffle"):
            self.warn_if_orders_differ(loader.generator)
        return loader

    def warn_if_orders_differ(self, generator: Any) -> None:
        """Warn (rank 0) when the ranks' shuffling generators are not in the same state.

        Then the shards of a batch come from different permutations: samples are seen
        twice or never in an epoch. One tiny host collective at the start of ``fit``:
        with a 20-bit digest ``d`` per rank, all are equal exactly when
        ``N * sum(d**2) == sum(d)**2``.
        """
        if self.world == 1 or generator is None:
            return
        d = float(zlib.crc32(repr(generator.bit_generator.state).encode()) & 0xFFFFF)
        s, s2 = self.group.allreduce_host(np.asarray([d, d * d]))
        if self.world * s2 != s * s and self.is_main:
            warnings.warn(
                "fit: the ranks' shuffling generators differ, so the shards of a batch come "
                "from different orders (samples seen twice or never per epoch). Hint: pass "
                "the same generator seed on every rank", RuntimeWarning, stacklevel=4)

    def callbacks(self, callbacks: Sequence[Any]) -> list[Any]:
        """The callbacks this rank runs: those that write files run on rank 0 only."""
        if self.is_main:
            return list(callbacks)
        return [cb for cb in callbacks if not getattr(cb, "main_process_only", False)]

    def sync_model(self, model: Any) -> None:
        """Parameters and buffers of rank 0 on every rank: one broadcast per dtype."""
        if self.world == 1:
            return
        state = model.state_dict()
        for names in _by_dtype_names(state):
            arrays = [state[n] for n in names]
            flat = self.group.broadcast_(_pack(arrays))
            model.load_state_dict(dict(zip(names, _unpack(flat, arrays))), strict=False)

    def describe(self, xp: Any) -> str:
        """The log line: processes, transport and how this backend's buffers travel."""
        probe = next((b[0].data for b in self.buckets), None)
        text = self.group.describe(probe) if probe is not None else self.group.describe()
        return f"xpnet.distributed: data-parallel on {text}"

    # ------------------------------------------------------------------ every step

    def reduce_gradients(self, step: int, local: int) -> None:
        """Sum the ranks' gradients so every rank holds the single-process gradient.

        One collective per dtype of the parameters (one in the usual case). A rank's
        mean-loss gradient averages its ``local`` samples; weighting it by
        ``local / global`` makes the sum the mean over the global batch.
        """
        if self.sum_loss or self.world == 1:
            scale = 1.0
        else:
            scale = local / self.global_sizes[step]
        for params in self.buckets:
            grads = [p.grad for p in params if p.grad is not None]
            if not grads:
                continue
            flat = _pack(grads)
            if scale != 1.0:
                flat = flat * scale
            flat = self.group.allreduce_(flat)
            for p, g in zip([p for p in params if p.grad is not None], _unpack(flat, grads)):
                p.grad = g

    def agree_to_stop(self, stop: bool) -> bool:
        """True on every rank when a batch callback asked any rank to stop.

        Only with ``on_batch_end`` callbacks (which see this rank's shard): a rank that
        left the loop alone would leave the others waiting in the next collective.
        """
        if self.world == 1:
            return stop
        return bool(self.group.allreduce_host(np.asarray([float(stop)]))[0] > 0)

    # ------------------------------------------------------------------ logging

    def reduce_logs(
        self, table: np.ndarray, counts: Sequence[np.ndarray], sizes: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        """Per-step values of the global batches from every rank's shard values.

        Parameters
        ----------
        table
            ``(rows, steps)`` float64: row 0 the loss, then per-batch metrics (means over
            the shard) of this rank.
        counts
            Exact per-epoch counts (1-element arrays) of the counted metrics.
        sizes
            ``(steps,)`` this rank's shard sizes.

        Returns
        -------
        (table, counts, sizes)
            The same for the global batches: size-weighted means (a sum loss: sums),
            summed counts, global batch sizes. One host collective.
        """
        rows, steps = table.shape
        weights = np.broadcast_to(sizes, table.shape).copy()
        if self.sum_loss:
            weights[0] = 1.0
        packed = np.concatenate([(table * weights).ravel(), *counts, sizes])
        packed = self.group.allreduce_host(packed)
        gsizes = packed[-steps:] if steps else np.zeros(0)
        gweights = np.broadcast_to(gsizes, table.shape).copy()
        if self.sum_loss:
            gweights[0] = 1.0
        with np.errstate(invalid="ignore", divide="ignore"):
            out = packed[: rows * steps].reshape(rows, steps) / gweights
        k = len(counts)
        summed = [packed[rows * steps + i : rows * steps + i + 1] for i in range(k)]
        return out, summed, gsizes


def data_parallel_for(distributed: Any, model: Any, loss_fn: Any, batch_size: int) -> DataParallel | None:
    """``fit``'s ``distributed`` argument resolved: a :class:`DataParallel` or None.

    ``"auto"``: data-parallel when more than one process was launched; ``True``: always
    (also on one process, which runs the same code path); ``False``: never (each process
    trains on its own).
    """
    if distributed is False or distributed is None:
        return None
    if distributed not in ("auto", True):
        raise ValueError(f"fit: distributed must be 'auto', True or False, got {distributed!r}")
    g = _group()
    if distributed == "auto" and g.size == 1:
        return None
    dp = DataParallel(model, loss_fn, g)
    dp.check_batch_size(batch_size)
    return dp


def _check_loss(loss_fn: Any) -> None:
    """Refuse a mean normalised by a per-batch total weight: shards cannot scale to it.

    A class-weighted ``CrossEntropyLoss`` / ``NLLLoss`` divides by the sum of the batch's
    label weights, which differs between shards, so ``local / global`` samples is not
    the factor that turns a shard's gradient into its part of the global mean.
    """
    weighted = getattr(loss_fn, "weight", None) is not None and hasattr(loss_fn, "ignore_index")
    if weighted and getattr(loss_fn, "reduction", "mean") == "mean":
        raise ValueError(
            f"fit: data-parallel training does not support {type(loss_fn).__name__}(weight=..., "
            f"reduction='mean') yet: its mean divides by each batch's total class weight. "
            f"Hint: reduction='sum' (and a learning rate divided by the batch size), or one process"
        )


# --------------------------------------------------------------------------- packing


def _by_dtype(params: Sequence[Any]) -> list[list[Any]]:
    """Parameters grouped by (dtype, device), in model order."""
    groups: dict[tuple[str, str], list[Any]] = {}
    for p in params:
        key = (_backend.dtype_name(p.data.dtype), str(_backend.device_of(p.data)))
        groups.setdefault(key, []).append(p)
    return list(groups.values())


def _by_dtype_names(state: dict[str, Array]) -> list[list[str]]:
    groups: dict[str, list[str]] = {}
    for name, a in state.items():
        groups.setdefault(_backend.dtype_name(a.dtype), []).append(name)
    return list(groups.values())


def _pack(arrays: Sequence[Array]) -> Array:
    """One contiguous 1-D buffer holding ``arrays`` in order."""
    xp = _backend.namespace_of(arrays[0])
    flat = [xp.reshape(a, (-1,)) for a in arrays]
    return xp.concat(flat)  # a fresh buffer even for one array: collectives write into it


def _unpack(flat: Array, like: Sequence[Array]) -> list[Array]:
    """Views of ``flat`` shaped as ``like``."""
    xp = _backend.namespace_of(flat)
    out, offset = [], 0
    for a in like:
        n = math.prod(a.shape)
        out.append(xp.reshape(flat[offset : offset + n], tuple(a.shape)))
        offset += n
    return out
