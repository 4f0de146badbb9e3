"""Logic gates with a single neuron, and why XOR needs a hidden layer.

Part 1, the notes' hand-set neurons: one neuron ``y = step(w·x + b)`` computes

    AND  with w = (1, 1),   b = -1.5
    OR   with w = (1, 1),   b = -0.5
    NAND with w = (-1, -1), b =  1.5
    NOR  with w = (-1, -1), b =  0.5

(the line w·x + b = 0 separates the rows that output 1 from those that output 0).

Part 2, learning: a single sigmoid neuron trained with gradient descent learns AND and
OR, but not XOR, whose classes no line separates: it gets at most 3 of the 4 rows right.
The same training with one hidden layer of 3 sigmoid units gets all 4.

    python examples/logic_gates.py [--backend torch]

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

from xpnet import optim
from xpnet.activations import Heaviside
from xpnet.losses import MSELoss
from xpnet.models import mlp
from xpnet.testing import get_backend

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
GATES = {
    "AND": ((1.0, 1.0), -1.5, (0, 0, 0, 1)),
    "OR": ((1.0, 1.0), -0.5, (0, 1, 1, 1)),
    "NAND": ((-1.0, -1.0), 1.5, (1, 1, 1, 0)),
    "NOR": ((-1.0, -1.0), 0.5, (1, 0, 0, 0)),
}
XOR = (0, 1, 1, 0)


def hand_set_neuron(w, b, backend, device):
    """Linear(2, 1) with the given weights, followed by the step function."""
    neuron = xpnet.Sequential(xpnet.Linear(2, 1, dtype="float64"), Heaviside())
    neuron.load_state_dict({"0.weight": np.array([w]), "0.bias": np.array([b])})
    return neuron.to(backend, device=device)


def train(sizes, targets, *, backend, device, seed, epochs, lr):
    """Full-batch gradient descent on the squared loss; returns the 0/1 predictions."""
    model = mlp(sizes, "sigmoid", output_activation="sigmoid", generator=seed)
    model.to(backend, device=device, dtype="float64")
    dev = model[0].weight.device
    x = xpnet.asarray(X, backend, device=dev)
    y = xpnet.asarray(np.array(targets, dtype=np.float64)[:, None], backend, device=dev)
    loss_fn = MSELoss()
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for _ in range(epochs):
        loss, dout = loss_fn(model(x), y)
        model.zero_grad()
        model.backward(dout)
        opt.step()
    model.eval()
    out = xpnet.to_numpy(model(x)).ravel()
    return (out > 0.5).astype(int), out, float(xpnet.to_numpy(loss))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device is not None:  # "cuda:1", "device1", ... -> the backend's device object
        args.device = get_backend(f"{args.backend}:{args.device}").device
    ok = True

    print("Part 1: one neuron with hand-set weights, y = step(w.x + b)")
    for name, (w, b, truth) in GATES.items():
        neuron = hand_set_neuron(w, b, args.backend, args.device)
        x = xpnet.asarray(X, args.backend, device=neuron[0].weight.device)
        out = xpnet.to_numpy(neuron(x)).ravel().astype(int)
        good = tuple(out) == truth
        ok &= good
        rows = "  ".join(f"{a}{c}->{o}" for (a, c), o in zip(X.astype(int), out))
        print(f"  {name:4s} w={w} b={b:+.1f}:  {rows}   {'ok' if good else 'WRONG'}")

    print("\nPart 2: learning with gradient descent (sigmoid units, squared loss)")
    for name, truth in (("AND", GATES["AND"][2]), ("OR", GATES["OR"][2])):
        pred, _, loss = train([2, 1], truth, backend=args.backend, device=args.device,
                              seed=args.seed, epochs=args.epochs, lr=1.0)
        good = tuple(pred) == truth
        ok &= good
        print(f"  single neuron learns {name}: {tuple(int(v) for v in pred)} (loss {loss:.4f})  "
              f"{'ok' if good else 'FAILED'}")
    pred, out, loss = train([2, 1], XOR, backend=args.backend, device=args.device,
                            seed=args.seed, epochs=args.epochs, lr=1.0)
    right = int(np.sum(pred == np.array(XOR)))
    good = right <= 3
    ok &= good
    print(f"  single neuron on XOR: outputs {np.round(out, 2)}, {right}/4 rows right, "
          f"loss {loss:.4f}  {'(cannot be 4/4: not linearly separable)' if good else 'UNEXPECTED'}")
    pred, out, loss = train([2, 3, 1], XOR, backend=args.backend, device=args.device,
                            seed=args.seed, epochs=args.epochs, lr=1.0)
    right = int(np.sum(pred == np.array(XOR)))
    good = right == 4
    ok &= good
    print(f"  2-3-1 network on XOR: outputs {np.round(out, 2)}, {right}/4 rows right, "
          f"loss {loss:.4f}  {'ok' if good else 'FAILED'}")

    print("\nall claims hold" if ok else "\nSOME CLAIMS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
