"""Universal approximation: one hidden layer of tanh units fits y = sin(x).

A network with a single hidden layer can approximate any continuous function on a
bounded interval as closely as you like, given enough hidden units. Here the same
training (Adam, squared loss, full-batch) runs with 1, 3 and 16 hidden units on
x in [-pi, pi]: one unit can only make one S-shaped bend, three already follow the
sine, sixteen fit it to within ~1e-3 mean squared error.

    python examples/regression_sine.py [--backend torch] [--plot sine.png]

Exits with status 1 unless the widest network reaches MSE < --max-mse and the error
does not grow with the width.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import xpnet
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import xpnet

from xpnet import optim
from xpnet.data import load_dataset
from xpnet.losses import MSELoss
from xpnet.models import mlp
from xpnet.testing import get_backend


def fit_width(width, x, y, *, backend, device, epochs, lr, seed):
    model = mlp([1, width, 1], "tanh", generator=seed, dtype="float64").to(backend, device=device)
    dev = model[0].weight.device
    xb, yb = xpnet.asarray(x, backend, device=dev), xpnet.asarray(y, backend, device=dev)
    loss_fn = MSELoss()
    opt = optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        loss, dout = loss_fn(model(xb), yb)
        model.zero_grad()
        model.backward(dout)
        opt.step()
    model.eval()
    pred = xpnet.to_numpy(model(xb))
    return model, float(np.mean((pred - y) ** 2)), pred


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--widths", default="1,3,16", help="hidden widths to compare")
    p.add_argument("--epochs", type=int, default=3000)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-mse", type=float, default=2e-3,
                   help="the widest network must reach this mean squared error")
    p.add_argument("--plot", default=None, metavar="PNG", help="plot the fits (needs matplotlib)")
    args = p.parse_args(argv)
    if args.device is not None:  # "cuda:1", "device1", ... -> the backend's device object
        args.device = get_backend(f"{args.backend}:{args.device}").device

    ds = load_dataset("sine")
    x, y = ds.X, ds.y
    widths = [int(w) for w in args.widths.split(",")]
    results = {}
    print(f"y = sin(x) on {len(x)} points in [-pi, pi]; 1-H-1 tanh networks, Adam lr={args.lr}, "
          f"{args.epochs} full-batch epochs")
    for w in widths:
        _, mse, pred = fit_width(w, x, y, backend=args.backend, device=args.device,
                                 epochs=args.epochs, lr=args.lr, seed=args.seed)
        results[w] = (mse, pred)
        print(f"  {w:3d} hidden unit(s): MSE {mse:.2e}")
    mses = [results[w][0] for w in widths]
    ok = mses[-1] < args.max_mse and all(b <= a * 1.05 for a, b in zip(mses, mses[1:]))
    if args.plot:
        from xpnet.plotting import pyplot

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(x[:, 0], y[:, 0], "k--", label="sin(x)")
        for w in widths:
            ax.plot(x[:, 0], results[w][1][:, 0], label=f"{w} hidden")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.plot)
        plt.close(fig)
        print(f"wrote {args.plot}")
    print("more hidden units, smaller error; the widest fits the sine" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
