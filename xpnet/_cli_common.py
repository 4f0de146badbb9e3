"""Pieces shared by the ``xpnet`` subcommands: argument types and the optimizer table."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

__all__ = ["OPTIMIZERS", "DEFAULT_LR", "hidden_sizes", "positive_int", "nonneg_int", "float_in", "make_optimizer"]

OPTIMIZERS = ("sgd", "momentum", "adagrad", "rmsprop", "adam", "adamw")
#: Learning rate per optimizer when --lr is not given: values that train digits stably.
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.01, "adagrad": 0.01, "rmsprop": 1e-3, "adam": 1e-3, "adamw": 1e-3}


def hidden_sizes(text: str) -> tuple[int, ...]:
    """``"128,64"`` -> ``(128, 64)``; ``"none"`` or ``"-"`` -> no hidden layer."""
    t = text.strip().lower()
    if t in ("none", "-"):
        return ()
    if t == "0":
        # "0 units" is not a layer; asking for `none` keeps a typo from dropping the hidden layer.
        raise argparse.ArgumentTypeError(
            "0 is not a layer width; use --hidden none for a linear model (no hidden layer)"
        )
    try:
        sizes = tuple(int(s) for s in t.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated positive layer widths such as 128 or 128,64, got {text!r}"
        ) from None
    if any(s <= 0 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"layer widths must be positive, got {text!r} (use 'none' for no hidden layer)"
        )
    return sizes


def _int_at_least(lo: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return v

    return parse


positive_int = _int_at_least(1, "positive")
nonneg_int = _int_at_least(0, "non-negative")


def float_in(lo: float, hi: float | None, *, lo_open: bool, hi_open: bool = True) -> Callable[[str], float]:
    """An argparse type accepting finite floats in the interval (lo|[lo, hi|inf)|])."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(v) and (v > lo if lo_open else v >= lo)
        if hi is not None:
            ok = ok and (v < hi if hi_open else v <= hi)
        if not ok:
            rng = f"{'(' if lo_open else '['}{lo}, {hi if hi is not None else 'inf'}{')' if hi_open else ']'}"
            raise argparse.ArgumentTypeError(f"expected a number in {rng}, got {text!r}")
        return v

    return parse


def make_optimizer(name: str, params: Any, lr: float, weight_decay: float | None = None) -> Any:
    """Build the optimizer a CLI name stands for (``momentum`` is SGD with momentum 0.9)."""
    from . import optim

    table: dict[str, tuple[type, dict[str, Any]]] = {
        "sgd": (optim.SGD, {}),
        "momentum": (optim.SGD, {"momentum": 0.9}),
        "adagrad": (optim.Adagrad, {}),
        "rmsprop": (optim.RMSprop, {}),
        "adam": (optim.Adam, {}),
        "adamw": (optim.AdamW, {}),
    }
    if name not in table:
        raise ValueError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    cls, extra = table[name]
    if weight_decay is not None:
        extra = {**extra, "weight_decay": weight_decay}
    return cls(params, lr=lr, **extra)
