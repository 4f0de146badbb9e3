"""Benchmark implementations: one object per (workload, implementation) with ``step()``.

Each implementation exposes

* ``step()``: one full training step (zero grads, forward, loss, backward, update) on
  its fixed batch, without reading any value back to the host;
* ``sync()``: wait until queued device work is done (no-op on the CPU);
* ``params()``: host NumPy copies ``[W0, b0, W1, b1, ...]`` (used by the agreement check).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .reference import MatmulCeiling, NumpyReference
from .tuned import TunedReference
from .workloads import Workload

__all__ = ["IMPLS", "REFERENCE", "TEXTBOOK", "CEILING", "available_impls", "make_impl", "is_tracemalloc_visible"]

REFERENCE = "numpy_tuned"
TEXTBOOK = "numpy_textbook"
CEILING = "matmul_ceiling"

#: Implementation ids in table order, with a one-line description.
IMPLS: dict[str, str] = {
    REFERENCE: "tuned NumPy step (flat buffers, out= everywhere, pre-scaled one-hot softmax-CE)",
    TEXTBOOK: "textbook NumPy step (preallocated, in place, per-parameter optimizer loop)",
    "xpnet_numpy": "xpnet on numpy",
    "xpnet_strict": "xpnet on array_api_strict",
    "torch_cpu": "PyTorch CPU eager (nn.Sequential, zero_grad/backward/step)",
    "xpnet_cupy": "xpnet on cupy (GPU)",
    "torch_cuda": "PyTorch CUDA eager",
    CEILING: "matrix products alone, same shapes (numpy, out=)",
}


# ---------------------------------------------------------------------------- xpnet


class XpnetStep:
    """The README's loop with default settings: ``out = model(x); loss, g = loss_fn(out, y);
    model.zero_grad(); model.backward_params(g); opt.step()``."""

    def __init__(self, w: Workload, weights, x: np.ndarray, y: np.ndarray, *, backend: str,
                 device: Any = None, sync: Callable[[], None] | None = None) -> None:
        import xpnet
        from xpnet import losses, optim
        from xpnet.models import mlp

        self.model = mlp(list(w.sizes), activation=w.activation,
                         output_activation=w.output_activation, generator=0)
        linears = [name for name, m in self.model.named_modules() if isinstance(m, xpnet.Linear)]
        state = {}
        for name, (wt, b) in zip(linears, weights):
            state[f"{name}.weight"], state[f"{name}.bias"] = wt, b
        self.model.load_state_dict(state)  # copies: the shared host weights stay untouched
        self.model.to(backend, device=device)
        xp = xpnet.get_namespace(backend)
        self.x = xpnet.asarray(x, xp, device=device)
        self.y = xpnet.asarray(y, xp, device=device)
        if w.loss == "ce":
            self.loss_fn = losses.CrossEntropyLoss()
        else:
            self.loss_fn = losses.MSELoss()
        # Default settings: the loss validates its targets (once per target array).
        params = list(self.model.parameters())
        if w.optimizer == "adam":
            self.opt = optim.Adam(params, lr=w.lr)
        else:
            self.opt = optim.SGD(params, lr=w.lr, momentum=w.momentum)
        self.sync = sync or (lambda: None)
        self.loss = None

    def step(self) -> None:
        out = self.model(self.x)
        self.loss, g = self.loss_fn(out, self.y)
        self.model.zero_grad()
        # The training-loop form of backward: dL/d(input) is not needed.
        self.model.backward_params(g)
        self.opt.step()

    def params(self) -> list[np.ndarray]:
        from xpnet import to_numpy

        return [np.array(to_numpy(p.data)) for p in self.model.parameters()]


# ---------------------------------------------------------------------------- torch


class TorchStep:
    """torch eager: ``opt.zero_grad(); loss = crit(model(x), y); loss.backward(); opt.step()``."""

    def __init__(self, w: Workload, weights, x: np.ndarray, y: np.ndarray, *, device: str) -> None:
        import torch

        self.torch = torch
        acts = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid}
        layers: list[Any] = []
        n = len(weights)
        for i, (wt, b) in enumerate(weights):
            lin = torch.nn.Linear(wt.shape[1], wt.shape[0])
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(np.array(wt)))
                lin.bias.copy_(torch.from_numpy(np.array(b)))
            layers.append(lin)
            act = w.activation if i < n - 1 else w.output_activation
            if act is not None:
                layers.append(acts[act]())
        self.model = torch.nn.Sequential(*layers).to(device)
        self.x = torch.from_numpy(np.array(x)).to(device)
        self.y = torch.from_numpy(np.array(y)).to(device)
        self.crit = torch.nn.CrossEntropyLoss() if w.loss == "ce" else torch.nn.MSELoss()
        if w.optimizer == "adam":
            self.opt = torch.optim.Adam(self.model.parameters(), lr=w.lr)
        else:
            self.opt = torch.optim.SGD(self.model.parameters(), lr=w.lr, momentum=w.momentum)
        self.cuda = str(device).startswith("cuda")
        self.loss = None

    def step(self) -> None:
        self.opt.zero_grad()
        self.loss = self.crit(self.model(self.x), self.y)
        self.loss.backward()
        self.opt.step()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def params(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.model.parameters()]


class _HostStep:
    """Adapter giving the NumPy classes the ``sync``/``params`` protocol."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.step = inner.step

    def sync(self) -> None:
        pass

    def params(self) -> list[np.ndarray]:
        return self.inner.params()


# ---------------------------------------------------------------------------- registry


def _cupy_usable() -> str | None:
    try:
        import cupy

        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
        (cupy.zeros(1) + 1).get()
    except Exception as exc:  # noqa: BLE001 - any failure means "not usable here"
        return f"cupy not usable: {type(exc).__name__}: {exc}"[:200]
    return None


def _torch_usable(cuda: bool) -> str | None:
    try:
        import torch
    except ImportError:
        return "torch not installed"
    if cuda and not torch.cuda.is_available():
        return "torch.cuda.is_available() is False"
    return None


def _xpnet_usable(backend: str) -> str | None:
    try:
        import xpnet  # noqa: F401
        from xpnet import losses, optim  # noqa: F401
        from xpnet.models import mlp  # noqa: F401

        if backend == "array_api_strict":
            import array_api_strict  # noqa: F401
    except ImportError as exc:
        return f"{type(exc).__name__}: {exc}"
    if backend == "cupy":
        return _cupy_usable()
    return None


def available_impls() -> dict[str, str | None]:
    """``{impl: None if usable here else why not}`` for every implementation."""
    return {
        REFERENCE: None,
        TEXTBOOK: None,
        "xpnet_numpy": _xpnet_usable("numpy"),
        "xpnet_strict": _xpnet_usable("array_api_strict"),
        "torch_cpu": _torch_usable(False),
        "xpnet_cupy": _xpnet_usable("cupy"),
        "torch_cuda": _torch_usable(True),
        CEILING: None,
    }


def make_impl(name: str, w: Workload, weights, x: np.ndarray, y: np.ndarray) -> Any:
    """Build implementation ``name`` for workload ``w`` from the shared weights and batch."""
    if name == REFERENCE:
        return _HostStep(TunedReference(w, weights, x, y))
    if name == TEXTBOOK:
        return _HostStep(NumpyReference(w, weights, x, y))
    if name == CEILING:
        return _HostStep(MatmulCeiling(w, weights, x, y))
    if name == "xpnet_numpy":
        return XpnetStep(w, weights, x, y, backend="numpy")
    if name == "xpnet_strict":
        return XpnetStep(w, weights, x, y, backend="array_api_strict")
    if name == "xpnet_cupy":
        import cupy

        return XpnetStep(w, weights, x, y, backend="cupy",
                         sync=lambda: cupy.cuda.get_current_stream().synchronize())
    if name == "torch_cpu":
        return TorchStep(w, weights, x, y, device="cpu")
    if name == "torch_cuda":
        return TorchStep(w, weights, x, y, device="cuda")
    raise ValueError(f"unknown implementation {name!r}; expected one of {list(IMPLS)}")


def is_tracemalloc_visible(name: str) -> bool:
    """True for implementations whose allocations NumPy reports to tracemalloc."""
    return name in (REFERENCE, TEXTBOOK, "xpnet_numpy", "xpnet_strict", CEILING)
