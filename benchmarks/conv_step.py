"""One training step of a LeNet-style CNN: xpnet against PyTorch eager (CPU, and GPU when usable).

    python benchmarks/conv_step.py                 # default threads
    python benchmarks/conv_step.py --threads 1     # one BLAS/OpenMP thread for numpy and torch
    python benchmarks/conv_step.py --profile       # where xpnet's step spends its time

Workload ``lenet``: 1×28×28 inputs, batch 64, float32:
``Conv2d(1, 6, 5, padding=2) → ReLU → MaxPool2d(2) → Conv2d(6, 16, 5) → ReLU → MaxPool2d(2)
→ Flatten → Linear(400, 120) → ReLU → Linear(120, 84) → ReLU → Linear(84, 10)``, softmax
cross entropy, Adam lr 1e-3. Every implementation starts from the same host-drawn weights
and trains on the same fixed batch; before timing, the 3-step parameter update of each
must agree with torch's (relative L2 error below ``AGREE_RTOL``), so the ratio compares
code doing the same arithmetic. Samples are taken round-robin with the MLP harness's
:func:`benchmarks.harness.time_round_robin`. There is no hand-written NumPy reference for
this workload: the ratio is to ``torch_cpu``. Results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = Path(__file__).resolve().parent.parent

BATCH = 64
LR = 1e-3
# float32 updates of two codes whose sums run in different orders: ~1e-6 relative per
# step; Adam's first steps are sign-like, so 3 steps stay well below 1e-3.
AGREE_RTOL = 1e-3
AGREE_STEPS = 3


def lenet_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """torch's default init (U(±1/√fan_in)) for every layer, float32, keyed like both models."""
    import xpnet

    model = _xpnet_model(xpnet)
    xpnet.manual_seed(seed)
    g = np.random.default_rng(seed)
    out = {}
    for name, p in model.named_parameters():
        fan_in = int(np.prod(p.shape[1:])) if len(p.shape) > 1 else None
        if fan_in is None:  # a bias: the fan-in of its layer's weight
            w = dict(model.named_parameters())[name.replace("bias", "weight")]
            fan_in = int(np.prod(w.shape[1:]))
        bound = 1.0 / np.sqrt(fan_in)
        out[name] = g.uniform(-bound, bound, size=p.shape).astype(np.float32)
    return out


def lenet_batch(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((BATCH, 1, 28, 28)).astype(np.float32),
            rng.integers(0, 10, size=BATCH).astype(np.int64))


def _xpnet_model(xpnet: Any) -> Any:
    return xpnet.Sequential(
        xpnet.Conv2d(1, 6, 5, padding=2, generator=0), xpnet.ReLU(), xpnet.MaxPool2d(2),
        xpnet.Conv2d(6, 16, 5, generator=0), xpnet.ReLU(), xpnet.MaxPool2d(2),
        xpnet.Flatten(),
        xpnet.Linear(400, 120, generator=0), xpnet.ReLU(),
        xpnet.Linear(120, 84, generator=0), xpnet.ReLU(),
        xpnet.Linear(84, 10, generator=0),
    )


class XpnetLeNet:
    """``opt.zero_grad(); loss, g = loss_fn(model(x), y); model.backward_params(g); opt.step()``."""

    def __init__(self, weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, *,
                 backend: str, device: Any = None, sync: Any = None) -> None:
        import xpnet

        self.model = _xpnet_model(xpnet)
        self.model.load_state_dict(weights)
        self.model.to(backend, device=device)
        xp = xpnet.get_namespace(backend)
        self.x, self.y = xpnet.asarray(x, xp, device=device), xpnet.asarray(y, xp, device=device)
        self.loss_fn = xpnet.CrossEntropyLoss()
        self.loss_fn.validate = False  # what fit does after checking the labels once
        self.opt = xpnet.optim.Adam(list(self.model.parameters()), lr=LR)
        self.sync = sync or (lambda: None)

    def step(self) -> None:
        self.opt.zero_grad()
        _, g = self.loss_fn(self.model(self.x), self.y)
        self.model.backward_params(g)
        self.opt.step()

    def params(self) -> list[np.ndarray]:
        import xpnet

        return [np.array(xpnet.to_numpy(p.data)) for p in self.model.parameters()]


class TorchLeNet:
    """torch eager: ``opt.zero_grad(); crit(model(x), y).backward(); opt.step()``."""

    def __init__(self, weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray, *,
                 device: str) -> None:
        import torch
        from torch import nn

        self.torch = torch
        self.model = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )
        self.model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in weights.items()})
        self.model.to(device)
        self.x = torch.from_numpy(x.copy()).to(device)
        self.y = torch.from_numpy(y.copy()).to(device)
        self.crit = nn.CrossEntropyLoss()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        self.cuda = device.startswith("cuda")

    def step(self) -> None:
        self.opt.zero_grad()
        self.crit(self.model(self.x), self.y).backward()
        self.opt.step()

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def params(self) -> list[np.ndarray]:
        return [p.detach().cpu().numpy().copy() for p in self.model.parameters()]


def _available() -> dict[str, str | None]:
    sys.path.insert(0, str(_ROOT))
    from benchmarks.impls import _cupy_usable, _torch_usable

    return {
        "xpnet_numpy": None,
        "xpnet_strict": None,
        "torch_cpu": _torch_usable(False),
        "xpnet_cupy": _cupy_usable(),
        "torch_cuda": _torch_usable(True),
    }


def make(name: str, weights: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> Any:
    if name == "xpnet_numpy":
        return XpnetLeNet(weights, x, y, backend="numpy")
    if name == "xpnet_strict":
        return XpnetLeNet(weights, x, y, backend="array_api_strict")
    if name == "xpnet_cupy":
        import cupy

        return XpnetLeNet(weights, x, y, backend="cupy",
                          sync=lambda: cupy.cuda.get_current_stream().synchronize())
    if name == "torch_cpu":
        return TorchLeNet(weights, x, y, device="cpu")
    if name == "torch_cuda":
        return TorchLeNet(weights, x, y, device="cuda")
    raise ValueError(f"unknown implementation {name!r}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(prog="python benchmarks/conv_step.py", description=__doc__.split("\n")[0])
    p.add_argument("--impls", default="xpnet_numpy,xpnet_strict,torch_cpu,xpnet_cupy,torch_cuda")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--sample-ms", type=float, default=100.0)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--profile", action="store_true", help="cProfile 50 xpnet_numpy steps")
    args = p.parse_args(argv)
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    sys.path.insert(0, str(_ROOT))
    from benchmarks.harness import machine_info, time_round_robin

    if args.threads is not None:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    weights, (x, y) = lenet_weights(), lenet_batch()
    if args.profile:
        import cProfile
        import pstats

        impl = make("xpnet_numpy", weights, x, y)
        impl.step()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(50):
            impl.step()
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return {}
    usable = _available()
    names = [n for n in args.impls.split(",") if n and usable.get(n, "unknown") is None]
    skipped = {n: usable.get(n, "unknown implementation") for n in args.impls.split(",") if n not in names}
    start = [weights[k] for k in weights]
    finals: dict[str, list[np.ndarray]] = {}
    for n in names:
        impl = make(n, weights, x, y)
        for _ in range(AGREE_STEPS):
            impl.step()
        impl.sync()
        finals[n] = impl.params()
    ref = "torch_cpu" if "torch_cpu" in finals else names[0]

    def delta(after: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([(a - s).ravel() for a, s in zip(after, start)]).astype(np.float64)

    d_ref = delta(finals[ref])
    agreement = {n: float(np.linalg.norm(delta(f) - d_ref) / np.linalg.norm(d_ref)) for n, f in finals.items()}
    samples = time_round_robin({n: make(n, weights, x, y) for n in names}, args.repeats, args.sample_ms / 1e3)
    ref_med = statistics.median(samples[ref])
    timings = {n: {"median_s": statistics.median(s), "min_s": min(s), "max_s": max(s),
                   "ratio_to_" + ref: statistics.median(s) / ref_med} for n, s in samples.items()}
    results = {"workload": "lenet", "batch": BATCH, "machine": machine_info(args.threads),
               "agreement_to_" + ref: agreement, "timings": timings, "skipped": skipped,
               "ok": all(e <= AGREE_RTOL for e in agreement.values())}
    print(f"lenet 1x28x28, batch {BATCH}, one Adam step (ratio to {ref}; 3-step agreement)")
    for n, t in timings.items():
        print(f"  {n:<13} median {t['median_s'] * 1e3:8.2f} ms  min {t['min_s'] * 1e3:8.2f} ms  "
              f"x{t['ratio_to_' + ref]:.2f}  (update rel err {agreement[n]:.1e})")
    for n, why in skipped.items():
        print(f"  {n:<13} skipped: {why}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
    return results


if __name__ == "__main__":
    sys.exit(0 if main().get("ok", True) else 1)
