"""The benchmark workloads: architectures, hyperparameters, initial weights and batches.

Every implementation (xpnet on each backend, the hand-written NumPy reference, torch)
starts from the same host-drawn float32 weights and trains on the same fixed batch, so
all of them do exactly the same arithmetic and a timing ratio compares code, not work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Workload", "WORKLOADS", "initial_weights", "make_batch", "linear_shapes"]


@dataclass(frozen=True)
class Workload:
    """One training-step workload.

    Attributes
    ----------
    sizes
        Layer widths from input to output.
    activation
        Hidden activation: ``"sigmoid"``, ``"relu"`` or ``"tanh"``.
    output_activation
        Activation after the last Linear (``None``: raw outputs / logits).
    loss
        ``"mse"`` (mean over all elements, float targets) or ``"ce"`` (softmax cross
        entropy, mean over the batch, integer labels).
    optimizer
        ``"sgd"`` or ``"adam"`` (torch semantics); ``momentum`` applies to SGD.
    """

    name: str
    sizes: tuple[int, ...]
    activation: str
    output_activation: str | None
    loss: str
    optimizer: str
    batch: int
    lr: float
    momentum: float = 0.0
    description: str = field(default="", compare=False)

    @property
    def n_params(self) -> int:
        return sum(i * o + o for i, o in linear_shapes(self))


def linear_shapes(w: Workload) -> list[tuple[int, int]]:
    """``(in_features, out_features)`` of each Linear layer."""
    return list(zip(w.sizes[:-1], w.sizes[1:]))


WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in (
        Workload("xor", (2, 3, 3, 1), "sigmoid", "sigmoid", "mse", "sgd", 4, lr=0.5,
                 description="2-3-3-1 sigmoid, MSE, SGD, batch 4"),
        Workload("digits", (64, 128, 10), "relu", None, "ce", "adam", 32, lr=1e-3,
                 description="64-128-10 ReLU, softmax CE, Adam, batch 32"),
        Workload("wide", (784, 1024, 1024, 10), "relu", None, "ce", "adam", 256, lr=1e-3,
                 description="784-1024-1024-10 ReLU, softmax CE, Adam, batch 256"),
        Workload("deep", (256,) + (256,) * 8 + (10,), "tanh", None, "mse", "sgd", 64,
                 lr=1e-2, momentum=0.9,
                 description="256 -> 8x256 tanh -> 10, MSE, SGD momentum 0.9, batch 64"),
    )
}


def initial_weights(w: Workload, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """torch.nn.Linear's init, U(±1/√fan_in) for weight and bias, as float32 host arrays.

    Weights are ``(out_features, in_features)`` as in torch and xpnet.
    """
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in linear_shapes(w):
        bound = 1.0 / np.sqrt(n_in)
        wt = rng.uniform(-bound, bound, size=(n_out, n_in)).astype(np.float32)
        b = rng.uniform(-bound, bound, size=(n_out,)).astype(np.float32)
        out.append((wt, b))
    return out


def make_batch(w: Workload, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The fixed training batch: float32 inputs and int64 labels (CE) or float32 targets (MSE)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = w.sizes[0], w.sizes[-1]
    if w.name == "xor":
        x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
        y = np.array([[0], [1], [1], [0]], dtype=np.float32)
        return x, y
    x = rng.standard_normal((w.batch, n_in)).astype(np.float32)
    if w.loss == "ce":
        y = rng.integers(0, n_out, size=w.batch).astype(np.int64)
    else:
        y = rng.standard_normal((w.batch, n_out)).astype(np.float32)
    return x, y
