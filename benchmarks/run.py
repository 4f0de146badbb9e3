"""Time one training step of xpnet against a hand-written NumPy step, torch, and the matmul floor.

Usage (from the repository root)::

    python benchmarks/run.py                       # everything available, full repeats
    python benchmarks/run.py --quick               # a fast, noisier pass
    python benchmarks/run.py --workloads wide --impls numpy_tuned,xpnet_numpy,torch_cpu
    python benchmarks/run.py --threads 1 --json /tmp/one_thread.json
    python benchmarks/run.py --markdown table.md   # also the step table as Markdown

Workloads (see ``benchmarks/workloads.py``): xor, digits, wide, deep. Implementations:
``numpy_tuned`` (the tuned flat-buffer NumPy step every
ratio divides by), ``numpy_textbook``, ``xpnet_numpy``,
``xpnet_strict``, ``torch_cpu``, and with a usable GPU ``xpnet_cupy`` and ``torch_cuda``;
``matmul_ceiling`` times the step's matrix products alone.

Method
------
* Before timing, every implementation runs 3 steps from the same weights on the same batch
  and its parameter change must match the reference's (relative L2 error below
  ``AGREE_RTOL``): the ratios then compare code doing identical arithmetic.
* Warm-up steps, then a calibrated number of consecutive steps per sample (so a sample
  lasts about ``--sample-ms``), repeated ``--repeats`` rounds; each round runs every
  implementation once in a fresh random order (a fixed rotation biases the block that
  follows the baseline), and ratios are medians of per-round paired ratios. GPU implementations synchronise at the end of every
  sample (never inside it: a step must not need a host sync).
* Reported: median, min and max of the per-step time over the samples; the ratio of
  paired per-round medians to ``numpy_tuned``; the ratio to ``matmul_ceiling``.
* Peak memory (wide workload, NumPy-backed implementations): ``tracemalloc`` is started
  before the implementation is built, which then runs 3 steps; the traced peak counts
  every NumPy buffer it allocated (parameters, gradients, optimizer state, activations
  and temporaries). NumPy reports its data buffers to tracemalloc; torch and CuPy do not,
  so they show n/a.
* Fit overhead: ``xpnet.training.fit`` with ``xpnet train digits``'s configuration against
  a bare loop of the same steps over the same ``DataLoader`` batches, time per epoch,
  interleaved (with and without fit's validation pass). Without ``--quick`` the command
  itself also runs twice (1 and 21 epochs) to split its wall time into start-up and
  per-epoch cost.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python benchmarks/run.py",
        description="Time one xpnet training step against hand-written NumPy, torch and the matmul floor.",
    )
    p.add_argument("--workloads", default="xor,digits,wide,deep",
                   help="comma-separated subset of xor,digits,wide,deep (default all)")
    p.add_argument("--impls", default="all",
                   help="comma-separated implementations (default all available): numpy_tuned, numpy_textbook, "
                        "xpnet_numpy, xpnet_strict, torch_cpu, xpnet_cupy, torch_cuda, matmul_ceiling")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed samples per implementation (default 15, 5 with --quick)")
    p.add_argument("--sample-ms", type=float, default=None,
                   help="target duration of one sample (default 40 ms, 10 ms with --quick)")
    p.add_argument("--quick", action="store_true",
                   help="fewer and shorter samples, 1-epoch fit run, no `xpnet train` subprocess runs")
    p.add_argument("--json", default=str(_ROOT / "benchmarks" / "results" / "latest.json"),
                   help="where to write the results (default benchmarks/results/latest.json)")
    p.add_argument("--markdown", default=None, metavar="PATH",
                   help="also write the step table as Markdown (for docs/performance.md)")
    p.add_argument("--threads", type=int, default=None,
                   help="BLAS/OpenMP threads for numpy and torch (default: the libraries' own)")
    p.add_argument("--no-fit", action="store_true", help="skip the fit-loop overhead benchmark")
    p.add_argument("--batch-sweep", default=None, metavar="WORKLOAD",
                   help="also time xpnet_numpy against numpy_tuned at batch sizes 1..2048 on WORKLOAD")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--fit-epochs", type=int, default=None,
                   help="epochs per fit sample (default 3, 1 with --quick)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, print the table, write the JSON; return the results dict."""
    args = _parse_args(argv)
    if args.threads is not None:
        # Must happen before numpy / torch load their thread pools.
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    if str(_ROOT) not in sys.path:
        sys.path.insert(0, str(_ROOT))
    from benchmarks import harness

    return harness.run(args)


if __name__ == "__main__":
    results = main()
    sys.exit(0 if results.get("ok", False) else 1)
