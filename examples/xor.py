"""The lecture's XOR network: 2-3-3-1 sigmoid units, squared loss, plain gradient descent.

XOR is the classic function a single neuron cannot represent (its classes are not
linearly separable); one hidden layer is enough. As in the lab, the network is trained
on the four truth-table rows until *every* row's squared error is below 0.04, then the
truth table is printed.

    python examples/xor.py                       # NumPy
    python examples/xor.py --backend torch       # same seed, same start, same result
    python examples/xor.py --hidden 3            # the smaller 2-3-1 network

Exits with status 1 if the threshold is not reached within --max-epochs.
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
from xpnet.losses import MSELoss
from xpnet.models import mlp
from xpnet.testing import get_backend

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
Y = np.array([[0], [1], [1], [0]], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--dtype", default="float64", choices=("float32", "float64"))
    p.add_argument("--hidden", default="3,3", help="hidden widths (default 3,3: the 2-3-3-1 net)")
    p.add_argument("--lr", type=float, default=2.0, help="SGD learning rate (full batch)")
    p.add_argument("--threshold", type=float, default=0.04,
                   help="stop when every row's squared error is below this (the lab's 0.04)")
    p.add_argument("--max-epochs", type=int, default=20000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device is not None:  # "cuda:1", "device1", ... -> the backend's device object
        args.device = get_backend(f"{args.backend}:{args.device}").device

    hidden = [int(h) for h in args.hidden.split(",") if h]
    model = mlp([2, *hidden, 1], "sigmoid", output_activation="sigmoid", generator=args.seed)
    model.to(args.backend, device=args.device, dtype=args.dtype)
    dev = model[0].weight.device
    x = xpnet.asarray(X, args.backend, device=dev, dtype=args.dtype)
    y = xpnet.asarray(Y, args.backend, device=dev, dtype=args.dtype)
    loss_fn = MSELoss()
    opt = optim.SGD(model.parameters(), lr=args.lr)

    print(f"XOR with a {'-'.join(str(s) for s in [2, *hidden, 1])} sigmoid network on "
          f"{args.backend} ({args.dtype}), squared loss, SGD lr={args.lr}")
    t0 = time.perf_counter()
    check_every = 25  # the per-row errors come to the host only this often
    epoch = 0
    worst = float("inf")
    while epoch < args.max_epochs:
        out = model(x)
        loss, dout = loss_fn(out, y)
        model.zero_grad()
        model.backward(dout)
        opt.step()
        epoch += 1
        if epoch % check_every == 0 or epoch == args.max_epochs:
            rows = (xpnet.to_numpy(out).astype(np.float64) - Y) ** 2
            worst = float(rows.max())
            if epoch % 1000 == 0:
                print(f"  epoch {epoch:6d}  loss {float(xpnet.to_numpy(loss)):.5f}  "
                      f"worst row {worst:.5f}")
            if worst < args.threshold:
                break
    model.eval()
    out = xpnet.to_numpy(model(x)).astype(np.float64)
    errors = ((out - Y) ** 2).ravel()
    print(f"stopped after {epoch} epochs ({time.perf_counter() - t0:.2f} s)\n")
    print("  x1 x2 | target | output | squared error")
    for (a, b), t, o, e in zip(X.astype(int), Y.ravel(), out.ravel(), errors):
        print(f"   {a}  {b} |   {int(t)}    | {o:.4f} | {e:.5f}")
    ok = bool(np.all(errors < args.threshold)) and bool(np.all(np.round(out) == Y))
    print(f"\nevery squared error < {args.threshold}: {'yes' if ok else 'NO'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
