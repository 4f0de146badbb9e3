"""Handwritten digits (UCI, 8x8 pixels) with the Python API: the main job, end to end.

What ``xpnet train digits`` does, written out: load the data, split 80/20 stratified,
standardize with statistics of the training split, build a 64-256-10 ReLU MLP, train it
with Adam on the cross-entropy loss, and report the test accuracy.

    python examples/digits.py                      # NumPy, ~97-98% in a few seconds
    python examples/digits.py --backend torch
    python examples/digits.py --backend array_api_strict --epochs 5 --min-accuracy 0.9

Exits with status 1 if the test accuracy is below --min-accuracy (default 0.97).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:
    import xpnet
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import xpnet

from xpnet import optim
from xpnet.data import StandardScaler, load_dataset, train_test_split
from xpnet.losses import CrossEntropyLoss
from xpnet.models import mlp
from xpnet.testing import get_backend
from xpnet.training import evaluate, fit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-accuracy", type=float, default=0.97)
    args = p.parse_args(argv)
    if args.device is not None:  # "cuda:1", "device1", ... -> the backend's device object
        args.device = get_backend(f"{args.backend}:{args.device}").device

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    X_train, X_test, y_train, y_test = train_test_split(ds.X, ds.y, test_size=0.2, seed=args.seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    print(f"digits: {len(X_train)} train / {len(X_test)} test images of {ds.X.shape[1]} pixels")

    model = mlp([ds.X.shape[1], args.hidden, ds.num_classes], "relu", generator=args.seed)
    model.to(args.backend, device=args.device, dtype=args.dtype)
    dev = model[0].weight.device

    def put(a, dtype=None):
        return xpnet.asarray(a, args.backend, device=dev, dtype=dtype)

    Xtr, Xte = put(X_train, args.dtype), put(X_test, args.dtype)
    ytr, yte = put(y_train), put(y_test)
    loss_fn = CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    fit(model, loss_fn, opt, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
        validation_data=(Xte, yte), generator=args.seed, verbose=2)
    res = evaluate(model, loss_fn, Xte, yte, metrics=("accuracy",))
    seconds = time.perf_counter() - t0
    print(f"test accuracy {100 * res['accuracy']:.2f}% (loss {res['loss']:.4f}) on "
          f"{args.backend}, {args.epochs} epochs, {seconds:.1f} s")
    if res["accuracy"] < args.min_accuracy:
        print(f"FAILED: below the expected {100 * args.min_accuracy:.1f}%")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
