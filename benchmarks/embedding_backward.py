"""What Embedding's scatter-free backward costs: one-hot GEMM vs sort-and-segment-sum vs torch.

The Array API has no scatter-add, so ``Embedding.backward`` sums the upstream rows of
repeated indices either with a one-hot product (exact, ``M·V·D`` multiply-adds) or by
sorting the indices and differencing prefix sums (``O(M log M + (M + V)·D)``). This script
times both on NumPy (and torch tensors through the same portable code) against torch's
own ``nn.Embedding`` backward (a native ``index_add``), and reports the float32 error of
each against a float64 reference.

    python benchmarks/embedding_backward.py              # the table in docs/layers.md
    python benchmarks/embedding_backward.py --quick      # smoke run (tests use it)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

try:
    import xpnet
except ImportError:  # a source checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import xpnet

from xpnet import Embedding

# (indices M, rows V, dim D): a small vocabulary, a word-level batch, a large vocabulary.
CASES = [(2048, 64, 64), (1024, 256, 64), (4096, 1000, 128), (8192, 30000, 128)]
QUICK_CASES = [(64, 16, 8), (128, 300, 8)]


def _best(fn, repeats: int) -> float:
    fn()  # warm-up (allocations, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _xpnet_backward(backend: str, v: int, d: int, idx: np.ndarray, dy: np.ndarray, limit: int):
    emb = Embedding(v, d, generator=0, validate=False).to(backend)
    emb.onehot_max_elements = limit
    x = xpnet.asarray(idx, backend)
    g = xpnet.asarray(dy, backend)

    def step():
        emb.zero_grad()
        emb(x)
        emb.backward(g)
        return emb.weight.grad

    return step


def measure(cases, repeats: int) -> list[dict]:
    try:
        import torch
    except ImportError:
        torch = None
    rows = []
    for m, v, d in cases:
        rng = np.random.default_rng(0)
        idx = rng.integers(0, v, size=m)
        dy = rng.standard_normal((m, d)).astype(np.float32)
        exact = np.zeros((v, d))
        np.add.at(exact, idx, dy.astype(np.float64))
        row = {"M": m, "V": v, "D": d}
        for method, limit in (("onehot", 1 << 62), ("segment", 0)):
            if method == "onehot" and m * v > 1 << 26:
                row[f"{method}_numpy_ms"] = None  # a 1 GiB temporary: not a sensible choice
                row[f"{method}_err"] = None
                continue
            step = _xpnet_backward("numpy", v, d, idx, dy, limit)
            row[f"{method}_numpy_ms"] = 1e3 * _best(step, repeats)
            scale = np.abs(exact).max()
            row[f"{method}_err"] = float(np.abs(np.asarray(step(), np.float64) - exact).max() / scale)
            if torch is not None:
                row[f"{method}_torch_ms"] = 1e3 * _best(_xpnet_backward("torch", v, d, idx, dy, limit), repeats)
        if torch is not None:
            te = torch.nn.Embedding(v, d)
            ti, tg = torch.from_numpy(idx), torch.from_numpy(dy)

            def native(te=te, ti=ti, tg=tg):
                te.zero_grad()
                te(ti).backward(tg)

            row["torch_native_ms"] = 1e3 * _best(native, repeats)
        rows.append(row)
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (a smoke test)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    rows = measure(QUICK_CASES if args.quick else CASES, 1 if args.quick else args.repeats)
    print("| M indices | V rows | D | one-hot numpy ms | segment numpy ms | one-hot torch ms | "
          "segment torch ms | torch native ms | one-hot f32 err | segment f32 err |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['M']} | {r['V']} | {r['D']} | {_fmt(r['onehot_numpy_ms'], '.2f')} | "
              f"{_fmt(r['segment_numpy_ms'], '.2f')} | {_fmt(r.get('onehot_torch_ms'), '.2f')} | "
              f"{_fmt(r.get('segment_torch_ms'), '.2f')} | {_fmt(r.get('torch_native_ms'), '.2f')} | "
              f"{_fmt(r['onehot_err'], '.1e')} | {_fmt(r['segment_err'], '.1e')} |")
    return rows


if __name__ == "__main__":
    main()
