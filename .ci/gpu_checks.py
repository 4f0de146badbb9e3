"""Python stages of .ci/gpu-validate: environment, preflight, check_layer on every layer.

Usage (from the repository root)::

    python3 .ci/gpu_checks.py env
    python3 .ci/gpu_checks.py preflight cupy,torch:cuda
    python3 .ci/gpu_checks.py layers numpy,cupy

``preflight`` exits 2 when a required backend cannot be used, so a GPU run stops before
it can go green on the CPU backends alone. ``layers`` runs :func:`xpnet.testing.check_layer`
(placement, dtype, no host sync, agreement with NumPy, float64 gradient check) with
``require_backends=True`` on the table of tests/test_check_layer.py, whose own test checks
that it names every public layer, so a new layer cannot be left out of the GPU run.
"""

from __future__ import annotations

import importlib
import importlib.util
import platform
import subprocess
import sys
import time
from pathlib import Path


def _builtin_layers() -> dict:
    """tests/test_check_layer.py's table of every public layer (one table, kept complete by
    that file's own test, so a new layer cannot be left out of the GPU run)."""
    path = Path(__file__).resolve().parent.parent / "tests" / "test_check_layer.py"
    spec = importlib.util.spec_from_file_location("_xpnet_check_layer_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.BUILTIN


def env() -> int:
    print("date", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    print("python", platform.python_version(), sys.executable)
    try:
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )
        print("nvidia-smi", smi.stdout.strip() or smi.stderr.strip())
    except (OSError, subprocess.TimeoutExpired) as exc:
        print("nvidia-smi unavailable:", exc)
    for name in ["numpy", "cupy", "torch", "array_api_compat", "array_api_strict", "sklearn",
                 "scipy", "hypothesis", "safetensors", "tqdm", "mpi4py", "xpnet"]:
        try:
            mod = importlib.import_module(name)
            print(name, getattr(mod, "__version__", "?"))
        except Exception as exc:  # noqa: BLE001 - report every failure, whatever it is
            print(name, "unavailable:", type(exc).__name__, exc)
    try:
        import cupy

        rt = cupy.cuda.runtime
        print("cuda runtime", rt.runtimeGetVersion(), "driver", rt.driverGetVersion())
        print("device", rt.getDeviceProperties(0)["name"].decode())
    except Exception as exc:  # noqa: BLE001
        print("cupy device unavailable:", type(exc).__name__, exc)
    try:
        import torch

        print("torch cuda", torch.version.cuda, "available", torch.cuda.is_available(),
              "tf32 matmul", torch.backends.cuda.matmul.allow_tf32)
    except Exception as exc:  # noqa: BLE001
        print("torch unavailable:", type(exc).__name__, exc)
    return 0


def preflight(names: str) -> int:
    """Exit 2 unless every backend in ``names`` is usable and computes a matmul correctly."""
    from xpnet.testing import BackendUnavailable, get_backend

    failed = []
    for name in [n for n in names.split(",") if n]:
        try:
            b = get_backend(name)
            a = b.asarray([[1.0, 2.0], [3.0, 4.0]], dtype="float32")
            got = b.to_numpy(a @ a).tolist()
            if got != [[7.0, 10.0], [15.0, 22.0]]:
                raise BackendUnavailable(f"{name}: a 2x2 matmul gave {got}")
            print(f"preflight ok: {name} on {b.device!r} (float64: {b.supports_float64})")
        except BackendUnavailable as exc:
            failed.append(name)
            print(f"preflight FAILED: required backend {name} is not usable: {exc}")
    if failed:
        print(f"FAILED: {', '.join(failed)} unusable; nothing was tested on them. Stopping.")
        return 2
    return 0


def layers(names: str) -> int:
    from xpnet.testing import check_layer

    backends = [n for n in names.split(",") if n]
    table = _builtin_layers()
    failed = 0
    for name, (factory, shape, opts) in table.items():
        try:
            check_layer(factory, shape, backends=backends, require_backends=True, **opts)
            print(f"{name:14s} ok on {', '.join(backends)}")
        except Exception as exc:  # noqa: BLE001 - report every layer, then fail once
            failed += 1
            print(f"{name:14s} FAILED: {type(exc).__name__}: {exc}")
    print(f"{len(table) - failed}/{len(table)} layers passed")
    return 1 if failed else 0


def distributed(backend_name: str, dist_backend: str) -> int:
    """World size 1 on ``dist_backend`` (nccl on the GPU): collectives, then fit with
    ``distributed=True`` (the sharded loader, packed gradients, one all-reduce per step)
    against the same fit without it; they must agree to float64 rounding."""
    import os
    import socket

    import numpy as np

    import xpnet
    import xpnet.distributed as dist
    from xpnet.testing import get_backend

    if dist_backend == "nccl":  # no launcher: cupyx's TCP store with a one-process world
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        os.environ.update(RANK="0", WORLD_SIZE="1", CUPYX_DISTRIBUTED_HOST="127.0.0.1",
                          CUPYX_DISTRIBUTED_PORT=str(port))
    b = get_backend(backend_name)
    group = dist.init(dist_backend)
    print(f"init({dist_backend!r}): {type(group).__name__}, rank {dist.rank()} of {dist.world_size()}")
    x = b.asarray(np.arange(6.0).reshape(2, 3), dtype="float64")
    got = b.to_numpy(dist.all_reduce(x))
    assert np.array_equal(got, np.arange(6.0).reshape(2, 3)), got
    got = b.to_numpy(dist.broadcast(b.asarray(np.ones(4), dtype="float64")))
    assert np.array_equal(got, np.ones(4)), got
    print("all_reduce and broadcast ok on", backend_name)

    rng = np.random.default_rng(0)
    X = rng.standard_normal((96, 8))
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    runs = {}
    for flag in (False, True):
        model = b.move(xpnet.mlp([8, 16, 2], generator=3), dtype="float64")
        opt = xpnet.optim.Adam(model.parameters(), lr=1e-2)
        hist = xpnet.fit(model, xpnet.CrossEntropyLoss(), opt, b.asarray(X, dtype="float64"),
                         b.asarray(y), epochs=3, batch_size=32, generator=1, verbose=0,
                         distributed=flag)
        runs[flag] = ([b.to_numpy(p.data) for p in model.parameters()], hist.history["loss"])
    (p0, l0), (p1, l1) = runs[False], runs[True]
    worst = max(float(np.max(np.abs(a - c) / (np.abs(a) + 1e-30))) for a, c in zip(p0, p1))
    print(f"fit distributed=True vs False on {backend_name}: losses {l1} vs {l0}, worst param rel diff {worst:.2e}")
    ok = worst <= 1e-12 and np.allclose(l0, l1, rtol=1e-12, atol=0)
    print("distributed: ok" if ok else "distributed: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:] or ["env"]
    stages = {"env": env, "preflight": preflight, "layers": layers, "distributed": distributed}
    sys.exit(stages[cmd](*rest))
