"""Why initialization matters, demonstrated and checked.

1. Zero init: every hidden unit computes the same value and receives the same (here
   zero) gradient, so the hidden weights never move: dL/dW1 = 0 exactly.
2. Constant init: hidden units start identical and *stay* identical under gradient
   descent (the symmetry is never broken): after training, every row of W1 is the same.
3. Depth: with N(0, 0.01²) weights the activations of a deep network shrink layer by
   layer towards 0; Xavier (tanh) and He (ReLU) scale the weights by the fan-in so
   the variance of the pre-activations stays of the input's order through 10 layers,
   while Xavier's 1/fan scaling loses half of it at every ReLU (He's factor 2 fixes that).

    python examples/init.py [--backend torch]

Exits with status 1 if any of these claims fails.
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

from xpnet import init, optim
from xpnet.losses import CrossEntropyLoss
from xpnet.models import mlp
from xpnet.testing import get_backend

# "Keeps the variance": after 10 layers it is still within a factor 5 of the input's (1).
# Width-256 layers fluctuate by a few percent each, and tanh with Xavier's gain 5/3 decays
# slowly (about 0.4 after 10 layers); a bad init is off by a factor 1e3 to 1e15.
KEEP_FACTOR = 5.0


def pre_activation_variances(model, x):
    """Variance of the input to each activation (and of the output) in a forward pass."""
    out = []
    h = x
    for layer in model:
        h = layer(h)
        if isinstance(layer, xpnet.Linear):
            out.append(float(np.var(xpnet.to_numpy(h))))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--depth", type=int, default=10)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device is not None:  # "cuda:1", "device1", ... -> the backend's device object
        args.device = get_backend(f"{args.backend}:{args.device}").device
    rng = np.random.default_rng(args.seed)
    ok = True

    def put(a, dev):
        return xpnet.asarray(a, args.backend, device=dev, dtype="float64")

    # 1. zero init -----------------------------------------------------------------
    model = mlp([4, 8, 3], "tanh", init="zeros", dtype="float64").to(args.backend, device=args.device)
    dev = model[0].weight.device
    x = put(rng.normal(size=(16, 4)), dev)
    y = xpnet.asarray(rng.integers(0, 3, size=16), args.backend, device=dev)
    loss, dout = CrossEntropyLoss()(model(x), y)
    model.backward(dout)
    g1 = xpnet.to_numpy(model[0].weight.grad)
    good = bool(np.all(g1 == 0))
    ok &= good
    print(f"1. zero init: max |dL/dW1| = {np.abs(g1).max():.1e}, max |dL/dW2| = "
          f"{np.abs(xpnet.to_numpy(model[2].weight.grad)).max():.1e}  "
          f"-> hidden weights get no gradient: {'yes' if good else 'NO'}")

    # 2. constant init ---------------------------------------------------------------
    model = mlp([4, 8, 3], "tanh", dtype="float64").to(args.backend, device=args.device)
    for lin in (model[0], model[2]):
        init.constant_(lin.weight, 0.1)
        init.constant_(lin.bias, 0.0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    loss_fn = CrossEntropyLoss()
    first = None
    for _ in range(100):
        loss, dout = loss_fn(model(x), y)
        first = float(xpnet.to_numpy(loss)) if first is None else first
        model.zero_grad()
        model.backward(dout)
        opt.step()
    w1 = xpnet.to_numpy(model[0].weight.data)
    spread = float(np.abs(w1 - w1[0]).max())
    moved = float(np.abs(w1 - 0.1).max())
    good = spread == 0.0 and moved > 0.0
    ok &= good
    print(f"2. constant init: after 100 SGD steps (loss {first:.3f} -> "
          f"{float(xpnet.to_numpy(loss)):.3f}) W1 moved by {moved:.3f} but its 8 rows differ by "
          f"{spread:.1e} -> hidden units stay identical: {'yes' if good else 'NO'}")

    # 3. variance through depth ------------------------------------------------------
    sizes = [args.width] * (args.depth + 1)
    x = rng.standard_normal((1000, args.width))
    print(f"3. variance of the pre-activations through {args.depth} layers of width "
          f"{args.width} (input variance 1):")
    cases = [
        ("tanh, N(0, 0.01^2)", "tanh", "small"),
        ("tanh, Xavier", "tanh", "xavier"),
        ("relu, N(0, 0.01^2)", "relu", "small"),
        ("relu, Xavier", "relu", "xavier_gain1"),
        ("relu, He", "relu", "he"),
    ]
    found = {}
    for label, act, scheme in cases:
        model = mlp(sizes, act, init="he" if scheme == "he" else "xavier", generator=args.seed,
                    dtype="float64")
        lins = [m for m in model if isinstance(m, xpnet.Linear)]
        if scheme == "small":
            for lin in lins:
                init.normal_(lin.weight, 0.0, 0.01, generator=args.seed)
        elif scheme == "xavier_gain1":
            for lin in lins:
                init.xavier_uniform_(lin.weight, gain=1.0, generator=args.seed)
        model.to(args.backend, device=args.device)
        v = pre_activation_variances(model, put(x, model[0].weight.device))
        found[label] = v
        print(f"   {label:20s} layer 1: {v[0]:.2e}  layer {args.depth}: {v[-1]:.2e}")
    var_in = float(np.var(x))
    keep = {k: found[k][-1] / var_in for k in found}
    claims = [
        ("N(0, 0.01^2) makes it vanish (tanh)", keep["tanh, N(0, 0.01^2)"] < 1e-6),
        ("N(0, 0.01^2) makes it vanish (relu)", keep["relu, N(0, 0.01^2)"] < 1e-6),
        ("Xavier keeps it for tanh", 1 / KEEP_FACTOR < keep["tanh, Xavier"] < KEEP_FACTOR),
        ("He keeps it for ReLU", 1 / KEEP_FACTOR < keep["relu, He"] < KEEP_FACTOR),
        ("Xavier (gain 1) halves it at every ReLU layer",
         keep["relu, Xavier"] < 0.5 ** (args.depth - 1) * 4),
    ]
    for text, good in claims:
        ok &= bool(good)
        print(f"   {text}: {'yes' if good else 'NO'}")
    print("all claims hold" if ok else "SOME CLAIMS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
