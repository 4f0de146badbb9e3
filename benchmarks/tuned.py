"""The tuned NumPy training step: the best a strong NumPy user writes by hand.

This is the bar every timing ratio divides by (``numpy_tuned``). Beyond the textbook
step of :mod:`benchmarks.reference` (preallocated buffers, ``out=`` everywhere, fused
softmax-cross-entropy gradient), it removes the per-parameter Python loops:

* **One flat buffer per kind of array.** The weights and biases are views into one
  contiguous float32 buffer ``P``; their gradients views into ``G``; Adam's moments and
  SGD's momentum are whole flat buffers ``m``, ``v``, ``buf``. The optimizer update is a
  handful of whole-buffer operations (SGD 2, momentum SGD 4, Adam 12), independent of
  the number of layers.
* **Gradients written in place.** Every ``dW``/``db`` product writes straight into its
  view of ``G`` (``np.matmul(..., out=view)``), so nothing is gathered before the update.
* **Pre-scaled one-hot targets.** For softmax cross entropy the batch's targets are
  stored once as ``Y = onehot(y) / N``; the gradient is ``softmax(z)/N − Y``, the loss
  ``mean(log Σ e^(z−m)) − ⟨Y, z − m⟩``: no fancy indexing, no per-step one-hot.
* ``db = 1ᵀ δ`` as a matrix-vector product into the bias view (faster than an axis-0
  sum on short rows), ReLU′ as a boolean mask multiply, σ′ = y(1 − y), tanh′ = 1 − y²
  from the stored outputs, and no input gradient for the first layer.
* **Constant operands as 0-d arrays.** NumPy 2 converts a Python float operand (NEP 50's
  weak scalar) on every call, ~0.3 µs, as long as a whole operation on the small arrays
  of xor; the constants (1 of the sigmoid, 0 of ReLU, 2/N of the MSE gradient, the
  learning rate, momentum and Adam's β terms) are therefore 0-d float32 arrays made once,
  the same operands with the same rounding. This alone makes the xor step ~11% faster
  (digits and deep ~1%). Only Adam's bias-corrected step size and ``1/√bc2``, new every
  step, stay Python floats.

The loss is computed every step as a 0-d array and never read, as in the other steps.
"""

from __future__ import annotations

import numpy as np

from .reference import NumpyReference, adam_inplace
from .workloads import Workload, linear_shapes

__all__ = ["TunedReference"]

_F32 = np.float32


class TunedReference:
    """One flat-buffer, in-place MLP training step in plain NumPy (float32)."""

    def __init__(self, w: Workload, weights, x: np.ndarray, y: np.ndarray) -> None:
        self.w = w
        self.x = np.ascontiguousarray(x, dtype=_F32)
        n = self.x.shape[0]
        shapes = linear_shapes(w)
        # Layout of P (and G): W0, b0, W1, b1, ... (torch's parameter order).
        sizes = [s for i, o in shapes for s in (i * o, o)]
        total = sum(sizes)
        self.P = np.empty(total, _F32)
        self.G = np.empty(total, _F32)
        self.W, self.b, self.dW, self.db = [], [], [], []
        off = 0
        for (i, o), (wt, bias) in zip(shapes, weights):
            for flat, mats, vecs in ((self.P, self.W, self.b), (self.G, self.dW, self.db)):
                mats.append(flat[off : off + i * o].reshape(o, i))
                vecs.append(flat[off + i * o : off + i * o + o])
            self.W[-1][...] = wt
            self.b[-1][...] = bias
            off += i * o + o
        self.h = [np.empty((n, o), _F32) for _, o in shapes]
        self.d = [np.empty((n, o), _F32) for _, o in shapes]
        self.tmp = [np.empty((n, o), _F32) for _, o in shapes]
        self.mask = [np.empty((n, o), np.bool_) for _, o in shapes]
        self.ones = np.ones(n, _F32)
        self.t = 0
        self.scratch = np.empty(total, _F32)
        if w.optimizer == "adam":
            self.m = np.zeros(total, _F32)
            self.v = np.zeros(total, _F32)
        elif w.momentum:
            self.buf = np.zeros(total, _F32)
        if w.loss == "ce":
            self.Y = np.zeros((n, w.sizes[-1]), _F32)
            self.Y[np.arange(n), np.asarray(y)] = 1.0 / n
            self.rowmax = np.empty((n, 1), _F32)
            self.rowsum = np.empty((n, 1), _F32)
            self.logsum = np.empty((n, 1), _F32)
            self.n = np.asarray(n, _F32)
        else:
            self.y = np.ascontiguousarray(y, dtype=_F32)
            self.mse_scale = np.asarray(2.0 / (n * w.sizes[-1]), _F32)
        # The constant operands, as 0-d arrays (see the module docstring).
        self._ZERO, self._ONE = np.asarray(0.0, _F32), np.asarray(1.0, _F32)
        self.lr = np.asarray(w.lr, _F32)
        self.momentum = np.asarray(w.momentum, _F32)
        self.adam_consts = tuple(np.asarray(c, _F32) for c in (1.0 - 0.9, 0.999, 1.0 - 0.999, 1e-8))
        self.loss = None

    # The activations and their derivatives from stored outputs are the textbook step's
    # (same attribute names: h, d, tmp, mask, and the constants _ZERO, _ONE, here 0-d
    # arrays): in place with out= there already; so is the forward pass into the
    # preallocated outputs h.
    _act_ = NumpyReference._act_
    _act_backward_ = NumpyReference._act_backward_
    _forward_ = NumpyReference._forward_

    # ------------------------------------------------------------------ the step

    def step(self) -> None:
        w, W, h, d = self.w, self.W, self.h, self.d
        L = len(W)
        self._forward_()
        if w.loss == "ce":
            self._softmax_ce(h[-1], d[-1])
        else:
            dout = d[-1]
            np.subtract(h[-1], self.y, out=dout)
            self.loss = np.vdot(dout, dout) / dout.size
            dout *= self.mse_scale
            if w.output_activation is not None:
                self._act_backward_(w.output_activation, L - 1)
        for i in range(L - 1, -1, -1):
            a_in = self.x if i == 0 else h[i - 1]
            np.matmul(d[i].T, a_in, out=self.dW[i])
            np.matmul(self.ones, d[i], out=self.db[i])
            if i > 0:
                np.matmul(d[i], W[i], out=d[i - 1])
                self._act_backward_(w.activation, i - 1)
        self._update()

    def _softmax_ce(self, z: np.ndarray, dz: np.ndarray) -> None:
        """loss = mean(log Σ e^(z−m)) − ⟨Y, z − m⟩; dz = e^(z−m) / (N Σ e^(z−m)) − Y."""
        # The reductions call the ufuncs' reduce directly: np.max/np.sum/np.mean add ~1-3
        # µs of Python dispatch each on these small arrays (xpnet's losses do the same).
        np.maximum.reduce(z, axis=1, keepdims=True, out=self.rowmax)
        np.subtract(z, self.rowmax, out=dz)
        picked = np.vdot(self.Y, dz)  # Σ_i (z − m)[i, y_i] / N
        np.exp(dz, out=dz)
        np.add.reduce(dz, axis=1, keepdims=True, out=self.rowsum)
        np.log(self.rowsum, out=self.logsum)
        self.loss = np.add.reduce(self.logsum, axis=None) / self.n - picked
        self.rowsum *= self.n
        dz /= self.rowsum
        dz -= self.Y

    def _update(self) -> None:
        w, P, G, s = self.w, self.P, self.G, self.scratch
        lr = self.lr
        self.t += 1
        if w.optimizer == "adam":
            # whole buffers at once
            adam_inplace(P, G, self.m, self.v, s, self.t, w.lr, consts=self.adam_consts)
        elif w.momentum:
            buf = self.buf
            if self.t == 1:  # torch: the buffer starts as the first gradient
                np.copyto(buf, G)
            else:
                buf *= self.momentum
                buf += G
            np.multiply(buf, lr, out=s)
            P -= s
        else:
            G *= lr
            P -= G

    def params(self) -> list[np.ndarray]:
        """Host copies ``[W0, b0, W1, b1, ...]``."""
        return [a.copy() for pair in zip(self.W, self.b) for a in pair]
