"""``xpnet.summary(model, input_shape)``: layers, output shapes and parameter counts.

The table torchinfo and Keras print: one row per sub-module (indented by depth), the
shape of what it returned for an input of ``input_shape``, and the parameters it holds
itself; then the totals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import _backend
from . import module as _module
from .module import Module

__all__ = ["summary", "ModelSummary", "SummaryRow"]


@dataclass
class SummaryRow:
    """One module: its name in the model, class, depth, output shape and own parameters."""

    name: str
    kind: str
    depth: int
    output_shape: tuple[int, ...] | None
    params: int
    trainable: int


@dataclass
class ModelSummary:
    """What :func:`summary` measured; ``str()`` is the table."""

    model_name: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    rows: list[SummaryRow] = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    buffer_values: int = 0
    param_bytes: int = 0

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    def __str__(self) -> str:
        head = ("Layer (type)", "Output shape", "Param #")
        body = [
            ("  " * r.depth + f"{r.name} ({r.kind})",
             "--" if r.output_shape is None else str(list(r.output_shape)),
             f"{r.params:,}" if r.params else "--")
            for r in self.rows
        ]
        widths = [max(len(head[i]), *(len(row[i]) for row in body)) if body else len(head[i])
                  for i in range(3)]
        line = "=" * (sum(widths) + 4)

        def fmt(cells: Sequence[str]) -> str:
            return f"{cells[0]:<{widths[0]}}  {cells[1]:<{widths[1]}}  {cells[2]:>{widths[2]}}"

        out = [f"{self.model_name}: input {list(self.input_shape)} -> output {list(self.output_shape)}",
               line, fmt(head), line, *(fmt(row) for row in body), line,
               f"Total params: {self.total_params:,}",
               f"Trainable params: {self.trainable_params:,}",
               f"Non-trainable params: {self.non_trainable_params:,}"]
        if self.buffer_values:
            out.append(f"Buffer values (running statistics, ...): {self.buffer_values:,}")
        out.append(f"Parameter size: {self.param_bytes / 2**20:.2f} MiB")
        return "\n".join(out)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:  # IPython shows the table
        p.text(str(self))


def _size(shape: Sequence[int]) -> int:
    return math.prod(int(s) for s in shape)


def summary(model: Module, input_shape: Sequence[int], *, dtype: Any = None) -> ModelSummary:
    """Run one forward pass in eval mode and tabulate every sub-module.

    Parameters
    ----------
    model
        Any :class:`~xpnet.Module`, on any backend and device.
    input_shape
        Shape of the input **including the batch axis**, as torchinfo's ``input_size``:
        ``(1, 64)`` for an MLP on 64 features, ``(1, 1, 28, 28)`` for a CNN on MNIST.
    dtype
        Input dtype; default the dtype of the model's first floating parameter (float32
        for a model without parameters).

    Returns
    -------
    ModelSummary
        ``print()`` it for the table; ``rows``, ``total_params``, ``trainable_params``
        for the numbers.

    Notes
    -----
    The input is zeros, created on the model's backend and device. The model's
    train/eval flags are restored afterwards, and nothing is kept for a backward pass.
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an xpnet.Module, got {type(model).__name__}")
    try:
        shape = tuple(int(s) for s in input_shape)
    except TypeError:
        raise TypeError(f"summary: input_shape must be a sequence of ints, got {input_shape!r}") from None
    if not shape or any(s <= 0 for s in shape):
        raise ValueError(f"summary: input_shape needs positive sizes with a batch axis first, got {shape}")
    first = next((p.data for p in model.parameters()), None)
    if first is not None:
        xp, dev = _backend.namespace_of(first), _backend.device_of(first)
        dt = dtype if dtype is not None else _backend.dtype_name(first.dtype)
    else:
        xp, dev, dt = _backend.namespace_of(np.zeros(1)), None, dtype or "float32"
    dt_name = dt if isinstance(dt, str) else _backend.dtype_name(dt)
    x = _backend.asarray(np.zeros(shape, dtype=dt_name), xp, device=dev)

    shapes: dict[int, tuple[int, ...]] = {}
    patched = []
    for _, m in model.named_modules():
        if m is model:
            continue

        def recording(inp: Any, _m: Module = m, _f: Any = m.forward) -> Any:
            out = _f(inp)
            shapes[id(_m)] = tuple(int(s) for s in out.shape)
            return out

        m.__dict__["forward"] = recording
        patched.append(m)
    flags = [(m, m.training) for m in model.modules()]
    # Containers plan again and see the recorders (Sequential's chain would call the
    # layers' kernels, not their forward).
    _module._structure_changed()
    try:
        model.eval()
        y = model(x)
    finally:
        for m in patched:
            m.__dict__.pop("forward", None)
        for m, was in flags:
            m.training = was
        _module._structure_changed()  # the recorders are gone and the modes restored

    rep = ModelSummary(type(model).__name__, shape, tuple(int(s) for s in y.shape))
    for name, m in model.named_modules():
        if m is model:
            continue
        own = list(m.named_parameters(recurse=False))
        rep.rows.append(SummaryRow(
            name=name, kind=type(m).__name__, depth=name.count("."),
            output_shape=shapes.get(id(m)),
            params=sum(_size(p.shape) for _, p in own),
            trainable=sum(_size(p.shape) for _, p in own if p.requires_grad),
        ))
    params = list(model.parameters())
    rep.total_params = sum(_size(p.shape) for p in params)
    rep.trainable_params = sum(_size(p.shape) for p in params if p.requires_grad)
    rep.param_bytes = sum(_size(p.shape) * np.dtype(_backend.dtype_name(p.dtype)).itemsize for p in params)
    rep.buffer_values = sum(_size(b.shape) for b in model.buffers())
    return rep
