"""A convolutional net on the handwritten digits (UCI, 1x8x8 images) with the Python API.

What ``xpnet train digits --model cnn`` does, written out: split 80/20 stratified,
standardize every pixel with one mean and scale of the training split, reshape the flat
rows to 1x8x8 images, and train ``conv(32) → ReLU → maxpool → conv(64) → ReLU → maxpool →
dense 128 → 10`` with Adam. Then two checks that make the layers' promise concrete: the
first convolution agrees with ``torch.nn.functional.conv2d`` on these images (when torch
is installed), and the trained net's test accuracy is above ``--min-accuracy``.

    python examples/cnn_digits.py                        # NumPy, ~98-99% in ~10 s
    python examples/cnn_digits.py --backend torch
    python examples/cnn_digits.py --backend array_api_strict --epochs 3 --min-accuracy 0.9

Exits with status 1 when a claim fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import xpnet
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import xpnet

from xpnet import optim
from xpnet.data import load_dataset, train_test_split
from xpnet.losses import CrossEntropyLoss
from xpnet.models import cnn
from xpnet.testing import get_backend
from xpnet.training import evaluate, fit


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--channels", default="32,64", help="channels of the conv stages")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-accuracy", type=float, default=0.98)
    args = p.parse_args(argv)
    if args.device is not None:
        args.device = get_backend(f"{args.backend}:{args.device}").device

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    X_train, X_test, y_train, y_test = train_test_split(ds.X, ds.y, test_size=0.2,
                                                        seed=args.seed, stratify=True)
    mean, scale = X_train.mean(), X_train.std()
    X_train, X_test = (X_train - mean) / scale, (X_test - mean) / scale
    print(f"digits: {len(X_train)} train / {len(X_test)} test images, 1x8x8")

    channels = tuple(int(c) for c in args.channels.split(","))
    model = cnn((1, 8, 8), ds.num_classes, channels, (128,), generator=np.random.default_rng(args.seed))
    print(model)
    ok = True
    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:  # the first convolution against torch on real images, float64
        conv = model[1]
        imgs = X_train[:16].reshape(16, 1, 8, 8)
        ours = xpnet.to_numpy(conv.to(dtype="float64")(imgs))
        conv.to(dtype="float32")  # exact: float32 -> float64 -> float32
        theirs = torch.nn.functional.conv2d(torch.from_numpy(imgs), torch.from_numpy(
            conv.weight.data.astype(np.float64)), torch.from_numpy(conv.bias.data.astype(np.float64)),
            padding=1).numpy()
        err = float(np.max(np.abs(ours - theirs)) / np.max(np.abs(theirs)))
        agree = err < 1e-6  # the float32 weights, computed in float64 by both
        print(f"first convolution vs torch.nn.functional.conv2d: max rel diff {err:.1e}: "
              f"{'agrees' if agree else 'DISAGREES'}")
        ok &= agree

    model.to(args.backend, device=args.device)
    dev = model[1].weight.device

    def put(a, dtype=None):
        return xpnet.asarray(a, args.backend, device=dev, dtype=dtype)

    Xtr, Xte = put(X_train, "float32"), put(X_test, "float32")
    ytr, yte = put(y_train), put(y_test)
    loss_fn = CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    g = np.random.default_rng(args.seed + 1)
    fit(model, loss_fn, opt, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
        validation_data=(Xte, yte), generator=g, verbose=2)
    res = evaluate(model, loss_fn, Xte, yte, metrics=("accuracy",))
    seconds = time.perf_counter() - t0
    print(f"test accuracy {100 * res['accuracy']:.2f}% (loss {res['loss']:.4f}) on "
          f"{args.backend}, {args.epochs} epochs, {seconds:.1f} s")
    if res["accuracy"] < args.min_accuracy:
        print(f"FAILED: below the expected {100 * args.min_accuracy:.1f}%")
        ok = False
    print("all claims hold" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
