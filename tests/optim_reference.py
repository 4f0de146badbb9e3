"""Torch-free oracles: the optimizers' update rules, written plainly in NumPy float64.

Each function follows the algorithm box of the matching ``torch.optim`` documentation page,
one parameter at a time, with none of xpnet's machinery (no flat buffers, no scratch, no
in-place tricks). ``tests/test_optim.py`` runs xpnet's optimizers against them on every
backend, so a wrong update is caught without torch installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def sgd(p, g, s, t, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    g = -g if maximize else g
    if weight_decay:
        g = g + weight_decay * p
    if momentum:
        s["momentum_buffer"] = g.copy() if t == 1 else momentum * s["momentum_buffer"] + (1 - dampening) * g
        g = g + momentum * s["momentum_buffer"] if nesterov else s["momentum_buffer"]
    return p - lr * g


def adagrad(p, g, s, t, *, lr=0.01, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0,
            eps=1e-10, maximize=False):
    g = -g if maximize else g
    if weight_decay:
        g = g + weight_decay * p
    clr = lr / (1 + (t - 1) * lr_decay)
    s.setdefault("sum", np.full_like(p, initial_accumulator_value))
    s["sum"] = s["sum"] + g * g
    return p - clr * g / (np.sqrt(s["sum"]) + eps)


def rmsprop(p, g, s, t, *, lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
            centered=False, maximize=False):
    g = -g if maximize else g
    if weight_decay:
        g = g + weight_decay * p
    s["square_avg"] = alpha * s.get("square_avg", np.zeros_like(p)) + (1 - alpha) * g * g
    v = s["square_avg"]
    if centered:
        s["grad_avg"] = alpha * s.get("grad_avg", np.zeros_like(p)) + (1 - alpha) * g
        v = v - s["grad_avg"] ** 2
    if momentum > 0:
        s["momentum_buffer"] = momentum * s.get("momentum_buffer", np.zeros_like(p)) + g / (np.sqrt(v) + eps)
        return p - lr * s["momentum_buffer"]
    return p - lr * g / (np.sqrt(v) + eps)


def adam(p, g, s, t, *, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
         maximize=False, decoupled=False):
    b1, b2 = betas
    g = -g if maximize else g
    if weight_decay and decoupled:
        p = p * (1 - lr * weight_decay)
    elif weight_decay:
        g = g + weight_decay * p
    s["exp_avg"] = b1 * s.get("exp_avg", np.zeros_like(p)) + (1 - b1) * g
    s["exp_avg_sq"] = b2 * s.get("exp_avg_sq", np.zeros_like(p)) + (1 - b2) * g * g
    v = s["exp_avg_sq"]
    if amsgrad:
        s["max_exp_avg_sq"] = np.maximum(s.get("max_exp_avg_sq", np.zeros_like(p)), v)
        v = s["max_exp_avg_sq"]
    m_hat = s["exp_avg"] / (1 - b1**t)
    v_hat = v / (1 - b2**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + eps)


def adamw(p, g, s, t, *, weight_decay=1e-2, **kw: Any):
    return adam(p, g, s, t, weight_decay=weight_decay, decoupled=True, **kw)


RULES = {"SGD": sgd, "Adagrad": adagrad, "RMSprop": rmsprop, "Adam": adam, "AdamW": adamw}
