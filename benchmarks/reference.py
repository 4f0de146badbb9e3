"""Hand-written NumPy training steps: the bar xpnet is measured against.

This is what a strong NumPy user writes without a framework: every buffer (activations,
deltas, gradients, optimizer state, scratch) is allocated once, every operation writes
into its destination with ``out=``, the softmax-cross-entropy gradient is fused
(``(softmax(z) - onehot) / N``), activation derivatives come from the stored outputs
(σ′ = y(1−y), tanh′ = 1−y², relu′ = [y > 0]), the first layer computes no input
gradient, and the optimizers update in place with torch's formulas. The loss value is
computed every step as a 0-d array (xpnet and torch compute it too) but never read.

The matrix-product-only "ceiling" step (:class:`MatmulCeiling`) lives here too: the same
products with preallocated outputs and nothing else, i.e. the floor on any step's time.
"""

from __future__ import annotations

import math

import numpy as np

from .workloads import Workload, linear_shapes

__all__ = ["NumpyReference", "MatmulCeiling", "adam_inplace"]


def adam_inplace(p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, s: np.ndarray,
                 t: int, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                 consts: tuple[np.ndarray, ...] | None = None) -> None:
    """torch's Adam step ``t`` on ``p`` in place, every temporary in the scratch ``s``.

    ``m += (1 − β1)(g − m)`` (torch's lerp form), ``v = β2 v + (1 − β2) g²``,
    ``p −= lr/bc1 · m / (√v/√bc2 + ε)``. The textbook step calls it per parameter, the
    tuned step once on its flat buffers. ``consts``: ``(1 − β1, β2, 1 − β2, ε)`` as 0-d
    arrays of the parameters' dtype (the same operands as the floats; see
    :mod:`benchmarks.tuned`).
    """
    step_size = lr / (1.0 - b1**t)
    inv_sqrt_bc2 = 1.0 / math.sqrt(1.0 - b2**t)
    c1, cb2, c2, ceps = consts if consts is not None else (1.0 - b1, b2, 1.0 - b2, eps)
    np.subtract(g, m, out=s)
    s *= c1
    m += s
    v *= cb2
    np.multiply(g, g, out=s)
    s *= c2
    v += s
    np.sqrt(v, out=s)
    s *= inv_sqrt_bc2
    s += ceps
    np.divide(m, s, out=s)
    s *= step_size
    p -= s


class NumpyReference:
    """One preallocated, in-place MLP training step in plain NumPy (float32)."""

    def __init__(self, w: Workload, weights, x: np.ndarray, y: np.ndarray) -> None:
        self.w = w
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = y
        n = self.x.shape[0]
        self.W = [np.array(wt, dtype=np.float32, copy=True) for wt, _ in weights]
        self.b = [np.array(b, dtype=np.float32, copy=True) for _, b in weights]
        shapes = linear_shapes(w)
        # h[i]: output of layer i after its activation (the last one: the network output).
        self.h = [np.empty((n, o), np.float32) for _, o in shapes]
        # d[i]: dL/d(pre-activation) of layer i, reused in place for dL/dh.
        self.d = [np.empty((n, o), np.float32) for _, o in shapes]
        self.dW = [np.empty_like(a) for a in self.W]
        self.db = [np.empty_like(a) for a in self.b]
        self.mask = [np.empty((n, o), np.bool_) for _, o in shapes]
        self.tmp = [np.empty((n, o), np.float32) for _, o in shapes]
        self.t = 0
        if w.optimizer == "adam":
            self.m = [np.zeros_like(p) for p in self.W + self.b]
            self.v = [np.zeros_like(p) for p in self.W + self.b]
            # One scratch buffer as large as the largest parameter, viewed per parameter.
            flat = np.empty(max(p.size for p in self.W + self.b), np.float32)
            self.scratch = [flat[: p.size].reshape(p.shape) for p in self.W + self.b]
        elif w.momentum:
            self.buf = [np.zeros_like(p) for p in self.W + self.b]
        if w.loss == "ce":
            self.rows = np.arange(n)
            self.rowmax = np.empty((n, 1), np.float32)
            self.rowsum = np.empty((n, 1), np.float32)
        self.loss = None

    # ------------------------------------------------------------------ pieces

    # The constant operands of the activations: Python floats here; the tuned step makes
    # them 0-d arrays (benchmarks.tuned explains why).
    _ZERO: float | np.ndarray = 0.0
    _ONE: float | np.ndarray = 1.0

    def _act_(self, name: str, z: np.ndarray) -> None:
        if name == "relu":
            np.maximum(z, self._ZERO, out=z)
        elif name == "tanh":
            np.tanh(z, out=z)
        elif name == "sigmoid":
            np.negative(z, out=z)
            np.exp(z, out=z)
            z += self._ONE
            np.reciprocal(z, out=z)
        else:  # pragma: no cover - workloads use the three above
            raise ValueError(name)

    def _act_backward_(self, name: str, i: int) -> None:
        """d[i] *= act'(.) computed from the stored output h[i]."""
        h, d, t = self.h[i], self.d[i], self.tmp[i]
        if name == "relu":
            np.greater(h, self._ZERO, out=self.mask[i])
            np.multiply(d, self.mask[i], out=d)
        elif name == "tanh":
            np.multiply(h, h, out=t)
            np.subtract(self._ONE, t, out=t)
            d *= t
        elif name == "sigmoid":
            np.subtract(self._ONE, h, out=t)
            t *= h
            d *= t

    # ------------------------------------------------------------------ the step

    def _forward_(self) -> None:
        """h[i] = act(a W[i]ᵀ + b[i]) layer by layer, in the preallocated outputs."""
        w, W, b, h = self.w, self.W, self.b, self.h
        L = len(W)
        a = self.x
        for i in range(L):
            np.matmul(a, W[i].T, out=h[i])
            h[i] += b[i]
            act = w.activation if i < L - 1 else w.output_activation
            if act is not None:
                self._act_(act, h[i])
            a = h[i]

    def step(self) -> None:
        w, W, h, d = self.w, self.W, self.h, self.d
        L = len(W)
        self._forward_()
        out, dout = h[-1], d[-1]
        n = out.shape[0]
        if w.loss == "ce":
            # Fused softmax + cross entropy: loss = mean(log Σ e^(z-m) - (z_y - m)),
            # dL/dz = (softmax(z) - onehot(y)) / N.
            np.max(out, axis=1, keepdims=True, out=self.rowmax)
            np.subtract(out, self.rowmax, out=dout)
            picked = dout[self.rows, self.y]
            np.exp(dout, out=dout)
            np.sum(dout, axis=1, keepdims=True, out=self.rowsum)
            self.loss = np.mean(np.log(self.rowsum[:, 0]) - picked)
            dout /= self.rowsum
            dout[self.rows, self.y] -= 1.0
            dout *= 1.0 / n
        else:
            np.subtract(out, self.y, out=dout)
            self.loss = np.vdot(dout, dout) / dout.size
            dout *= 2.0 / dout.size
            if w.output_activation is not None:
                self._act_backward_(w.output_activation, L - 1)
        for i in range(L - 1, -1, -1):
            a_in = self.x if i == 0 else h[i - 1]
            np.matmul(d[i].T, a_in, out=self.dW[i])
            np.sum(d[i], axis=0, out=self.db[i])
            if i > 0:
                np.matmul(d[i], W[i], out=d[i - 1])
                self._act_backward_(w.activation, i - 1)
        self._update()

    def _update(self) -> None:
        w = self.w
        params = self.W + self.b
        grads = self.dW + self.db
        lr = w.lr
        self.t += 1
        if w.optimizer == "adam":
            for p, g, m, v, s in zip(params, grads, self.m, self.v, self.scratch):
                adam_inplace(p, g, m, v, s, self.t, lr)
        elif w.momentum:
            mu = w.momentum
            first = self.t == 1
            for p, g, buf in zip(params, grads, self.buf):
                if first:  # torch: the buffer starts as the first gradient
                    np.copyto(buf, g)
                else:
                    buf *= mu
                    buf += g
                np.multiply(buf, lr, out=g)  # g is scratch now: backward rewrites it
                p -= g
        else:
            for p, g in zip(params, grads):
                g *= lr
                p -= g

    def params(self) -> list[np.ndarray]:
        """Host copies ``[W0, b0, W1, b1, ...]``."""
        return [a.copy() for pair in zip(self.W, self.b) for a in pair]


class MatmulCeiling:
    """Only the step's matrix products, same shapes, preallocated outputs (NumPy).

    Forward ``x Wᵀ`` per layer, backward ``δᵀ x`` (dW) per layer and ``δ W`` (dx) for all
    layers but the first. Any training step does at least this work.
    """

    def __init__(self, w: Workload, weights, x: np.ndarray, y: np.ndarray) -> None:
        rng = np.random.default_rng(2)
        n = x.shape[0]
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.W = [np.array(wt, dtype=np.float32) for wt, _ in weights]
        self.h = [np.empty((n, o), np.float32) for _, o in linear_shapes(w)]
        self.d = [rng.standard_normal((n, o)).astype(np.float32) for _, o in linear_shapes(w)]
        self.dW = [np.empty_like(a) for a in self.W]
        self.dx = [np.empty((n, i), np.float32) for i, _ in linear_shapes(w)]

    def step(self) -> None:
        a = self.x
        for Wi, hi in zip(self.W, self.h):
            np.matmul(a, Wi.T, out=hi)
            a = hi
        for i in range(len(self.W) - 1, -1, -1):
            a_in = self.x if i == 0 else self.h[i - 1]
            np.matmul(self.d[i].T, a_in, out=self.dW[i])
            if i > 0:
                np.matmul(self.d[i], self.W[i], out=self.dx[i])
