"""SGD, momentum, AdaGrad, RMSProp and Adam on the same problem, from the same start.

Every optimizer trains the same 2-32-32-2 ReLU network (same seed, so the same initial
weights) on the same two-spirals data with the same mini-batches (same shuffling seed),
for the same number of epochs; only the update rule and its usual learning rate differ.
The table shows the training loss after each epoch block and the final accuracy.

    python examples/optimizers.py [--backend torch] [--plot optimizers.png]

Exits with status 1 unless every optimizer lowers the loss, and the adaptive methods
(RMSProp, Adam) end below plain SGD.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import xpnet
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import xpnet

from xpnet import optim
from xpnet.data import StandardScaler, load_dataset
from xpnet.losses import CrossEntropyLoss
from xpnet.models import mlp
from xpnet.testing import get_backend
from xpnet.training import evaluate, fit

# Usual learning rates for each rule on a problem of this scale.
OPTIMIZERS = {
    "SGD": lambda ps: optim.SGD(ps, lr=0.1),
    "momentum": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
    "AdaGrad": lambda ps: optim.Adagrad(ps, lr=0.05),
    "RMSProp": lambda ps: optim.RMSprop(ps, lr=0.005),
    "Adam": lambda ps: optim.Adam(ps, lr=0.01),
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", default=None, metavar="PNG",
                   help="plot the loss curves (needs matplotlib)")
    args = p.parse_args(argv)
    if args.device is not None:  # "cuda:1", "device1", ... -> the backend's device object
        args.device = get_backend(f"{args.backend}:{args.device}").device

    ds = load_dataset("spirals")
    X = StandardScaler().fit_transform(ds.X)
    curves, final = {}, {}
    print(f"two spirals ({len(X)} points), 2-32-32-2 ReLU, batch 32, {args.epochs} epochs, "
          f"{args.backend}")
    for name, make in OPTIMIZERS.items():
        model = mlp([2, 32, 32, 2], "relu", generator=args.seed).to(args.backend, device=args.device)
        dev = model[0].weight.device
        x = xpnet.asarray(X, args.backend, device=dev, dtype="float32")
        y = xpnet.asarray(ds.y, args.backend, device=dev)
        loss_fn = CrossEntropyLoss()
        start = evaluate(model, loss_fn, x, y)["loss"]
        hist = fit(model, loss_fn, make(model.parameters()), x, y, epochs=args.epochs,
                   batch_size=32, generator=args.seed, verbose=0)
        end = evaluate(model, loss_fn, x, y, metrics=("accuracy",))
        curves[name] = [start, *hist.history["loss"]]
        final[name] = end
        marks = "  ".join(f"{curves[name][e]:.3f}" for e in
                          sorted({0, args.epochs // 4, args.epochs // 2, args.epochs}))
        print(f"  {name:9s} loss {marks}   final accuracy {100 * end['accuracy']:5.1f}%")

    ok = all(final[n]["loss"] < curves[n][0] for n in final)
    ok &= max(final["RMSProp"]["loss"], final["Adam"]["loss"]) < final["SGD"]["loss"]
    if args.plot:
        from xpnet.plotting import plot_curves

        plot_curves(curves, args.plot, title="training loss on two spirals", ylabel="loss")
        print(f"wrote {args.plot}")
    print("every optimizer lowers the loss; RMSProp and Adam end below plain SGD"
          if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
