"""``xpnet parity``: train the same MLP on several backends in lockstep and compare.

::

    xpnet parity digits --backends numpy,torch,cupy --steps 100 --dtype float32
    xpnet parity moons --optimizer sgd --lr 0.1 --hidden 32,32 --json parity.json

Prints a table (step, loss on each backend, largest relative difference, worst tensor)
and exits 0 when every backend agrees with NumPy within the tolerance, 1 when one
diverges (the report names the first step, tensor and backend) or when training itself
diverges to NaN/inf on the reference (inconclusive: lower the learning rate), 2 on bad
arguments.
Unavailable backends (cupy without a GPU) are skipped with a warning. This module only
provides :func:`add_parser` and :func:`run`; ``xpnet.cli`` wires them in.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np

from ._cli_common import (
    DEFAULT_LR,
    OPTIMIZERS,
    float_in,
    hidden_sizes,
    make_optimizer,
    positive_int,
)

__all__ = ["add_parser", "run", "DEFAULT_BACKENDS", "OPTIMIZERS", "DEFAULT_LR"]

PROG = "xpnet parity"
#: Backends compared when --backends is not given (unavailable ones are skipped).
DEFAULT_BACKENDS = "numpy,array_api_strict,torch,cupy"


class _ArgError(Exception):
    """A bad argument value: one line on stderr, exit status 2."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``parity`` subcommand to an ``argparse`` subparsers object and return it.

    The parser's default ``func`` is :func:`run`.
    """
    p = subparsers.add_parser(
        "parity",
        help="train one model on several backends in lockstep and compare step by step",
        description="Train the same seeded MLP on several backends in lockstep and compare "
        "the loss, every gradient and every parameter with NumPy after each step. Exit "
        "status: 0 parity, 1 divergence (or training diverged to NaN/inf: inconclusive), 2 bad "
        "arguments.",
    )
    p.add_argument("dataset", nargs="?", default="digits",
                   help="built-in dataset (default digits), standardized on the host")
    p.add_argument("--backends", default=None, metavar="LIST",
                   help=f"comma-separated backends (default {DEFAULT_BACKENDS}); numpy is always the "
                        f"reference; unavailable ones are skipped with a warning")
    p.add_argument("--steps", type=positive_int, default=100, help="training steps (default 100)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="precision (default float64)")
    p.add_argument("--batch-size", type=positive_int, default=32, metavar="N",
                   help="rows per step (default 32)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default="adam", help="optimizer (default adam)")
    p.add_argument("--lr", type=float_in(0.0, None, lo_open=True), default=None,
                   help="learning rate (default per optimizer: " + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + ")")
    p.add_argument("--weight-decay", type=float_in(0.0, None, lo_open=False), default=None,
                   help="weight decay (default the optimizer's own: 0, AdamW 0.01)")
    p.add_argument("--hidden", type=hidden_sizes, default=(128,), metavar="SIZES",
                   help="hidden layer widths, e.g. 128 or 128,64 (default 128)")
    p.add_argument("--activation", default="relu", help="hidden activation (default relu)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weights and batch order (default 0)")
    p.add_argument("--rtol", type=float_in(0.0, None, lo_open=True), default=None,
                   help="relative tolerance (default: float64 1e-10, float32 1e-4; see docs/parity.md)")
    p.add_argument("--atol", type=float_in(0.0, None, lo_open=False), default=None, help="absolute tolerance floor")
    p.add_argument("--max-rows", type=positive_int, default=None, metavar="N",
                   help="show at most about N table rows (first, last, around the first failure)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the full report as JSON")
    p.add_argument("--require-backends", action="store_true",
                   help="fail (exit 2) instead of skipping when a listed backend is unavailable; "
                        "a GPU validation run uses it so that it cannot pass without the GPU")
    p.set_defaults(func=run)
    return p


def _backends(text: str | None, require: bool = False) -> list[Any]:
    from .testing._backends import KNOWN_BACKENDS, BackendUnavailable, get_backend

    names = [n.strip() for n in (text or DEFAULT_BACKENDS).split(",") if n.strip()]
    known = {k.partition(":")[0] for k in KNOWN_BACKENDS}
    bad = [n for n in names if n.partition(":")[0] not in known]
    if bad:
        raise _ArgError(f"unknown backend(s) {', '.join(bad)}; expected names from {', '.join(sorted(known))}")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _ArgError(f"backend(s) {', '.join(dupes)} listed twice")
    if "numpy" not in names:
        names.insert(0, "numpy")
    found = []
    for n in names:
        try:
            found.append(get_backend(n))
        except BackendUnavailable as exc:
            if require:
                raise _ArgError(f"required backend {n} is unavailable: {exc}") from None
            if text:  # asked for by name: say so; the default list skips quietly
                print(f"{PROG}: warning: skipping unavailable backend {n} ({exc})", file=sys.stderr)
    if len(found) < 2:
        raise _ArgError(
            f"need numpy and at least one other available backend, got only {', '.join(b.name for b in found) or 'none'}"
        )
    return found


def _data(name: str) -> tuple[np.ndarray, np.ndarray, str, int]:
    from .data import StandardScaler, list_datasets, load_dataset

    try:
        ds = load_dataset(name)
    except (KeyError, ValueError, FileNotFoundError, ImportError, TypeError) as exc:
        raise _ArgError(f"cannot load dataset {name!r}: {exc} (built-in: {', '.join(list_datasets())})") from None
    X = np.asarray(ds.X, dtype=np.float64).reshape(len(ds.X), -1)
    X = np.asarray(StandardScaler().fit_transform(X), dtype=np.float64)
    y = np.asarray(ds.y)
    if ds.task == "classification":
        n_out = int(ds.num_classes) if ds.num_classes else int(y.max()) + 1
        return X, y.astype(np.int64), "classification", n_out
    y = y.astype(np.float64)
    if y.ndim == 1:
        y = y[:, None]
    return X, y, "regression", int(y.shape[1])


def _model_builder(sizes: list[int], activation: str, dtype: str) -> Any:
    try:
        from .models import mlp
    except ImportError:
        mlp = None
    if mlp is not None:
        return lambda g: mlp(sizes, activation=activation, dtype=dtype, generator=g)
    from .activations import get_activation
    from .layers import Linear, Sequential

    def build(g: np.random.Generator) -> Any:
        layers: list[Any] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(a, b, dtype=dtype, generator=g))
            if i < len(sizes) - 2:
                layers.append(get_activation(activation))
        return Sequential(*layers)

    return build


def run(args: argparse.Namespace) -> int:
    """Execute ``xpnet parity`` for parsed ``args``; return the exit status (0, 1 or 2)."""
    from .testing.parity import check_parity

    try:
        backends = _backends(args.backends, args.require_backends)
        X, y, task, n_out = _data(args.dataset)
        activation = str(args.activation).strip().lower()
        try:
            from .activations import ACTIVATIONS

            if activation not in ACTIVATIONS and activation not in ("identity", "linear"):
                raise _ArgError(f"unknown activation {args.activation!r}; expected one of {', '.join(ACTIVATIONS)}")
        except ImportError:
            pass
    except _ArgError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2

    from .losses import CrossEntropyLoss, MSELoss

    sizes = [int(X.shape[1]), *args.hidden, n_out]
    lr = args.lr if args.lr is not None else DEFAULT_LR[args.optimizer]
    report = check_parity(
        _model_builder(sizes, activation, args.dtype),
        CrossEntropyLoss() if task == "classification" else MSELoss(),
        lambda params: make_optimizer(args.optimizer, params, lr, args.weight_decay),
        X,
        y,
        backends=backends,
        steps=args.steps,
        batch_size=args.batch_size,
        dtype=args.dtype,
        seed=args.seed,
        rtol=args.rtol,
        atol=args.atol,
        raise_on_failure=False,
    )
    print(f"model: mlp {sizes} ({activation}), optimizer {args.optimizer} lr {lr:g}, dataset {args.dataset} {X.shape}")
    print(report.summary())
    print(report.format_table(max_rows=args.max_rows))
    env = report.env
    devices = ", ".join(f"{k}: {v['device']} ({v['name']})" for k, v in env.get("devices", {}).items())
    print(f"environment: python {env.get('python')}, " + ", ".join(
        f"{k} {v}" for k, v in env.get("versions", {}).items() if v) + (f"; devices {devices}" if devices else ""))
    gpu = [b for b in report.backends if b.startswith("cupy") or "cuda" in b]
    if gpu or env.get("env"):
        t = env.get("torch", {})
        print(
            "float32 matmul settings (TF32 makes float32 GPU results differ by ~1e-3): "
            f"CUPY_TF32={env.get('env', {}).get('CUPY_TF32', 'unset')}, "
            f"NVIDIA_TF32_OVERRIDE={env.get('env', {}).get('NVIDIA_TF32_OVERRIDE', 'unset')}"
            + (f", torch allow_tf32={t.get('cuda_matmul_allow_tf32')}, "
               f"float32_matmul_precision={t.get('float32_matmul_precision')}" if t else "")
        )
    if args.json:
        try:
            report.to_json(args.json)
        except OSError as exc:
            print(f"{PROG}: error: cannot write {args.json}: {exc}", file=sys.stderr)
            return 2
        print(f"report written to {args.json}")
    if report.passed:
        print(f"PASSED: {len(report.backends)} backends agree for {report.steps} steps (max rel diff {report.max_rel:.2e})")
        return 0
    f = report.first_failure
    if f is not None:
        print(f"FAILED: {f.label()} diverges from {report.reference} at step {f.step}")
    else:
        # The reference itself went NaN/inf: identical NaNs everywhere are no evidence of
        # parity, so this is not a pass either.
        d = report.diverged
        print(
            f"INCONCLUSIVE: training diverged to non-finite values at step {d.step} on the reference "
            f"backend {report.reference} ({d.tensor()} is {d.values}); lower the learning rate (--lr)"
        )
    return 1
