"""A residual MLP with BatchNorm and LayerNorm on the 8x8 digits: blocks x + F(x).

Each block is ``Residual(Sequential(BatchNorm1d, ReLU, Linear, LayerNorm, ReLU, Linear))``:
``y = x + F(x)``, so the gradient reaches the first layer through the identity path of
every block, however deep the stack. The BatchNorm running statistics are buffers: they
are not parameters (the optimizer never sees them), they are in ``state_dict()`` and in
checkpoints, and eval mode normalizes with them.

    python examples/residual_mlp.py                     # NumPy, a few seconds
    python examples/residual_mlp.py --backend torch --blocks 6

Checks its claims and exits with status 1 if one fails: the test accuracy reaches
--min-accuracy (default 0.96), the running statistics moved away from their initial
(0, 1) and are not parameters, and a checkpoint reloaded into a fresh model (on
array-api-strict's second device) predicts exactly what the trained model predicts.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

try:
    import xpnet
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import xpnet

from xpnet import BatchNorm1d, LayerNorm, Linear, ReLU, Residual, Sequential, optim
from xpnet.data import StandardScaler, load_dataset, train_test_split
from xpnet.losses import CrossEntropyLoss
from xpnet.testing import get_backend
from xpnet.training import evaluate, fit, predict


def residual_mlp(n_in: int, width: int, n_out: int, blocks: int, seed: int) -> Sequential:
    """``Linear`` in, ``blocks`` pre-activation residual blocks, ``LayerNorm`` and ``Linear`` out."""
    g = np.random.default_rng(seed)
    layers = [Linear(n_in, width, generator=g)]
    for _ in range(blocks):
        layers.append(Residual(Sequential(
            BatchNorm1d(width), ReLU(), Linear(width, width, generator=g),
            LayerNorm(width), ReLU(), Linear(width, width, generator=g),
        )))
    layers += [LayerNorm(width), Linear(width, n_out, generator=g)]
    return Sequential(*layers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numpy", help="numpy, torch, cupy, array_api_strict")
    p.add_argument("--device", default=None, help="device on that backend (e.g. cuda:0)")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-accuracy", type=float, default=0.96)
    args = p.parse_args(argv)
    if args.device is not None:
        args.device = get_backend(f"{args.backend}:{args.device}").device

    t0 = time.perf_counter()
    ds = load_dataset("digits")
    X_train, X_test, y_train, y_test = train_test_split(ds.X, ds.y, test_size=0.2, seed=args.seed)
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)

    model = residual_mlp(ds.X.shape[1], args.width, ds.num_classes, args.blocks, args.seed)
    model.to(args.backend, device=args.device)
    dev = model[0].weight.device

    def put(a, dtype=None):
        return xpnet.asarray(a, args.backend, device=dev, dtype=dtype)

    Xtr, Xte, ytr, yte = put(X_train, "float32"), put(X_test, "float32"), put(y_train), put(y_test)
    n_params = sum(int(np.prod(q.shape)) for q in model.parameters())
    n_buffers = len(list(model.named_buffers()))
    print(f"residual MLP: {args.blocks} blocks of width {args.width}, {n_params} parameters, "
          f"{n_buffers} buffers (BatchNorm running statistics)")
    loss_fn = CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    # drop_last: a last batch of one sample has no batch variance (BatchNorm would refuse it)
    fit(model, loss_fn, opt, Xtr, ytr, epochs=args.epochs, batch_size=args.batch_size,
        drop_last=True, generator=args.seed, verbose=0)
    res = evaluate(model, loss_fn, Xte, yte, metrics=("accuracy",))
    print(f"test accuracy {100 * res['accuracy']:.2f}% (loss {res['loss']:.4f}) on {args.backend}, "
          f"{args.epochs} epochs, {time.perf_counter() - t0:.1f} s")

    claims = {}
    claims[f"test accuracy >= {100 * args.min_accuracy:.1f}%"] = res["accuracy"] >= args.min_accuracy
    bn = model[1].module[0]
    moved = np.abs(xpnet.to_numpy(bn.running_mean)).max() > 0 and int(xpnet.to_numpy(bn.num_batches_tracked)) > 0
    not_params = all(q.data is not b for q in model.parameters() for b in model.buffers())
    claims["running statistics tracked as buffers, not parameters"] = bool(moved and not_params)

    # A checkpoint holds the buffers: a fresh model on another backend and device predicts the same.
    with tempfile.TemporaryDirectory() as tmp:
        path = xpnet.save_checkpoint(Path(tmp) / "residual.npz", model)
        fresh = residual_mlp(ds.X.shape[1], args.width, ds.num_classes, args.blocks, args.seed + 1)
        try:
            import array_api_strict

            fresh.to("array_api_strict", device=array_api_strict.Device("device1"))
        except ImportError:
            pass
        xpnet.load_checkpoint(path, fresh)
    x_fresh = xpnet.asarray(X_test, xpnet.namespace_of(fresh[0].weight.data),
                            device=fresh[0].weight.device, dtype="float32")
    ours = xpnet.to_numpy(predict(model, Xte))
    theirs = xpnet.to_numpy(predict(fresh, x_fresh))
    claims["reloaded checkpoint predicts the same (eval mode, running statistics)"] = bool(
        np.allclose(ours, theirs, rtol=1e-5, atol=1e-5)
    )
    for claim, ok in claims.items():
        print(f"{claim}: {'yes' if ok else 'NO'}")
    if all(claims.values()):
        print("all claims hold")
        return 0
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
