"""The measuring machinery behind ``benchmarks/run.py`` (see its docstring for the method)."""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np

from .impls import (
    CEILING,
    IMPLS,
    REFERENCE,
    TEXTBOOK,
    available_impls,
    is_tracemalloc_visible,
    make_impl,
)
from .workloads import WORKLOADS, Workload, initial_weights, make_batch

__all__ = [
    "run", "machine_info", "time_round_robin", "check_agreement", "update_error", "peak_memory",
    "peak_memory_gpu",
    "bench_fit", "bench_cli", "format_table", "format_markdown",
]

_ROOT = Path(__file__).resolve().parent.parent

# float32 steps of the same arithmetic differ by summation order inside BLAS (~1e-7
# relative per product). Over 3 steps the parameter *change* agrees to ~1e-5 relative in
# L2 norm; Adam's m/√v can flip for the few entries whose gradient is pure rounding noise,
# which the norm absorbs. A wrong formula (missing bias correction, wrong scale) is off by
# 1e-1 or more.
AGREE_RTOL = 1e-3
AGREE_STEPS = 3
WARMUP_STEPS = 3
MEMORY_STEPS = 3
MEMORY_WORKLOADS = ("wide",)


# ---------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=_ROOT,
                             capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=_ROOT, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine_info(threads: int | None) -> dict[str, Any]:
    """CPU, cores, library versions and BLAS configuration."""
    info: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "affinity_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "threads_requested": threads,
        "git_commit": _git_commit(),
    }
    try:
        info["numpy_config"] = np.show_config(mode="dicts").get("Build Dependencies")
    except Exception as exc:  # noqa: BLE001 - informational only
        info["numpy_config"] = f"unavailable: {exc}"
    try:
        import threadpoolctl

        info["threadpools"] = [
            {k: d.get(k) for k in ("user_api", "internal_api", "version", "num_threads", "architecture")}
            for d in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        info["threadpools"] = "threadpoolctl not installed"
    for mod in ("xpnet", "array_api_compat", "array_api_strict", "torch", "cupy"):
        try:
            m = __import__(mod)
            info[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001 - absent is fine
            info[mod] = None
    if info["torch"]:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = "mkl" if torch.backends.mkl.is_available() else "other"
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ---------------------------------------------------------------------------- checks


def update_error(start: list[np.ndarray], ref: list[np.ndarray], got: list[np.ndarray]) -> float:
    """``‖Δgot − Δref‖ / ‖Δref‖`` for parameter changes ``Δ = after − start`` (all parameters)."""
    def delta(after: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([(a - s).ravel() for a, s in zip(after, start)]).astype(np.float64)

    d_ref = delta(ref)
    return float(np.linalg.norm(delta(got) - d_ref) / np.linalg.norm(d_ref))


def _run_steps(name: str, w: Workload, weights, x, y, steps: int) -> list[np.ndarray]:
    impl = make_impl(name, w, weights, x, y)
    for _ in range(steps):
        impl.step()
    impl.sync()
    return impl.params()


def check_agreement(w: Workload, names: list[str]) -> tuple[dict[str, float], dict[str, str]]:
    """Relative L2 error of each implementation's 3-step parameter change vs the reference.

    Returns the errors and, separately, the implementations that raised (with the error),
    so one broken implementation is reported instead of stopping the run.
    """
    weights = initial_weights(w)
    x, y = make_batch(w)
    start = [a for pair in weights for a in pair]
    ref = _run_steps(REFERENCE, w, weights, x, y, AGREE_STEPS)
    errors: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in names:
        if name in (REFERENCE, CEILING):
            continue
        try:
            errors[name] = update_error(start, ref, _run_steps(name, w, weights, x, y, AGREE_STEPS))
        except Exception as exc:  # noqa: BLE001 - reported in the table and the JSON
            failed[name] = f"failed: {type(exc).__name__}: {exc}"[:300]
    return errors, failed


# ---------------------------------------------------------------------------- timing


def _calibrate(impl: Any, sample_s: float) -> int:
    """Steps per sample so that one sample lasts about ``sample_s`` (at least 1)."""
    n = 1
    while True:
        impl.sync()
        t0 = time.perf_counter()
        for _ in range(n):
            impl.step()
        impl.sync()
        dt = time.perf_counter() - t0
        if dt >= sample_s / 4 or n >= 1 << 16:
            return max(1, int(round(n * sample_s / max(dt, 1e-9))))
        n *= 4


def time_round_robin(impls: dict[str, Any], repeats: int, sample_s: float,
                     seed: int = 0) -> dict[str, list[float]]:
    """Per-step seconds of each implementation, ``repeats`` rounds of one sample each.

    Every round runs each implementation once, in a fresh random order (a fixed
    rotation biases the block that follows the baseline), so round ``r`` of two
    implementations forms a pair taken under the same machine conditions: see
    :func:`paired_ratios`.
    """
    rng = random.Random(seed)
    for impl in impls.values():
        for _ in range(WARMUP_STEPS):
            impl.step()
        impl.sync()
    number = {name: _calibrate(impl, sample_s) for name, impl in impls.items()}
    samples: dict[str, list[float]] = {name: [] for name in impls}
    order = list(impls)
    for _ in range(repeats):
        rng.shuffle(order)
        for name in order:
            impl, n = impls[name], number[name]
            impl.sync()
            t0 = time.perf_counter()
            for _ in range(n):
                impl.step()
            impl.sync()
            samples[name].append((time.perf_counter() - t0) / n)
    return samples


def paired_ratios(samples: dict[str, list[float]], base: str) -> dict[str, float]:
    """Median over rounds of ``t_impl / t_base`` measured in the same round."""
    return {
        name: statistics.median(a / b for a, b in zip(ts, samples[base]))
        for name, ts in samples.items()
    }


def batch_sweep(workload: str, batches: tuple[int, ...], repeats: int, sample_s: float) -> dict[str, Any]:
    """xpnet_numpy / numpy_tuned (paired median) as the batch size goes from 1 to 2048."""
    import dataclasses

    out: dict[str, Any] = {}
    for n in batches:
        w = dataclasses.replace(WORKLOADS[workload], batch=n)
        weights = initial_weights(w)
        x, y = make_batch(w)
        impls = {name: make_impl(name, w, weights, x, y) for name in (REFERENCE, "xpnet_numpy")}
        samples = time_round_robin(impls, repeats, sample_s)
        out[str(n)] = {"ratio": paired_ratios(samples, REFERENCE)["xpnet_numpy"],
                       "reference_s": statistics.median(samples[REFERENCE])}
    return out


def peak_memory(w: Workload, name: str) -> dict[str, float]:
    """Traced peak and retained bytes of building ``name`` and running 3 steps."""
    weights = initial_weights(w)
    x, y = make_batch(w)
    gc.collect()
    tracemalloc.start()
    try:
        impl = make_impl(name, w, weights, x, y)
        for _ in range(MEMORY_STEPS):
            impl.step()
        impl.sync()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del impl
    return {"peak_bytes": peak, "retained_bytes": current}


def peak_memory_gpu(w: Workload, name: str) -> dict[str, Any]:
    """Device memory of building ``name`` (torch_cuda / xpnet_cupy) and running 3 steps.

    torch: ``torch.cuda.max_memory_allocated`` (exact peak of live tensors). CuPy: the
    default memory pool's ``total_bytes`` after the steps, which holds every block the
    steps needed at once plus cached free blocks: an upper bound of the peak.
    """
    weights = initial_weights(w)
    x, y = make_batch(w)
    try:
        if name == "torch_cuda":
            import torch

            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            impl = make_impl(name, w, weights, x, y)
            for _ in range(MEMORY_STEPS):
                impl.step()
            impl.sync()
            return {"peak_bytes": torch.cuda.max_memory_allocated() - base,
                    "retained_bytes": torch.cuda.memory_allocated() - base,
                    "method": "torch.cuda.max_memory_allocated"}
        if name == "xpnet_cupy":
            import cupy

            pool = cupy.get_default_memory_pool()
            pool.free_all_blocks()
            base = pool.total_bytes()
            impl = make_impl(name, w, weights, x, y)
            for _ in range(MEMORY_STEPS):
                impl.step()
            impl.sync()
            return {"peak_bytes": pool.total_bytes() - base, "retained_bytes": pool.used_bytes() - base,
                    "method": "cupy memory pool total_bytes (upper bound)"}
    except Exception as exc:  # noqa: BLE001 - informational
        return {"status": f"failed: {type(exc).__name__}: {exc}"[:300]}
    return {"status": "n/a"}


# ---------------------------------------------------------------------------- fit


def bench_fit(epochs: int, repeats: int) -> dict[str, Any]:
    """Per-epoch time of ``xpnet.training.fit`` on digits against a bare step loop.

    The configuration is ``xpnet train digits``'s (its per-dataset defaults: hidden
    width, optimizer, learning rate, batch size; standardised features, 20% test split
    used as validation data, accuracy metric). The bare loop runs the same steps over
    the same ``DataLoader`` batches with nothing else: no metrics, no logging, no
    validation. Both are timed per epoch, interleaved; fit is timed with and without
    its validation pass, so the loop's own overhead and the validation's cost show
    separately.
    """
    try:
        import xpnet
        from xpnet import losses, optim
        from xpnet.data import DataLoader, StandardScaler, load_dataset, train_test_split
        from xpnet.models import mlp
        from xpnet.training import fit
    except ImportError as exc:
        return {"status": f"unavailable: {type(exc).__name__}: {exc}"}
    try:
        from xpnet.cli import DATASET_DEFAULTS

        cfg = dict(DATASET_DEFAULTS["digits"])
    except (ImportError, KeyError):
        cfg = {"hidden": (256,), "activation": "relu", "lr": 2e-3, "batch_size": 32}
    hidden = tuple(cfg.get("hidden", (256,)))
    activation = cfg.get("activation", "relu")
    lr = float(cfg.get("lr", 2e-3))
    batch_size = int(cfg.get("batch_size", 32))

    try:
        ds = load_dataset("digits")
        Xtr, Xte, ytr, yte = train_test_split(ds.X, ds.y, test_size=0.2, seed=0)
        scaler = StandardScaler().fit(Xtr)
        Xtr = xpnet.asarray(scaler.transform(Xtr), dtype="float32")
        Xte = xpnet.asarray(scaler.transform(Xte), dtype="float32")
        ytr, yte = xpnet.asarray(ytr), xpnet.asarray(yte)
    except Exception as exc:  # noqa: BLE001 - e.g. scikit-learn missing: report, keep the tables
        return {"status": f"unavailable: {type(exc).__name__}: {exc}"[:300]}
    sizes = [int(Xtr.shape[1]), *hidden, int(ds.num_classes)]

    def build():
        model = mlp(sizes, activation=activation, generator=0)
        return model, losses.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=lr)

    def run_fit(validation: bool) -> float:
        model, loss_fn, opt = build()
        t0 = time.perf_counter()
        fit(model, loss_fn, opt, Xtr, ytr, epochs=epochs, batch_size=batch_size,
            validation_data=(Xte, yte) if validation else None, metrics=("accuracy",),
            shuffle=True, generator=0, verbose=0)
        return (time.perf_counter() - t0) / epochs

    def run_bare() -> float:
        model, loss_fn, opt = build()
        t0 = time.perf_counter()
        loss_fn.validate = False  # what fit does after its one validation of the labels
        loader = DataLoader(Xtr, ytr, batch_size=batch_size, shuffle=True,
                            generator=np.random.default_rng(0))
        for _ in range(epochs):
            for xb, yb in loader:
                opt.zero_grad()
                out = model(xb)
                _, g = loss_fn(out, yb)
                model.backward_params(g)
                opt.step()
        return (time.perf_counter() - t0) / epochs

    runs = {"fit": lambda: run_fit(True), "fit_no_validation": lambda: run_fit(False),
            "bare": run_bare}
    times: dict[str, list[float]] = {k: [] for k in runs}
    try:
        if repeats > 1:
            for fn in runs.values():  # warm-up (imports, first allocations)
                fn()
        # A fresh random order every round, as in time_round_robin: a fixed rotation
        # biases whichever run follows another.
        rng = random.Random(0)
        order = list(runs)
        for _ in range(repeats):
            rng.shuffle(order)
            for name in order:
                times[name].append(runs[name]())
    except Exception as exc:  # noqa: BLE001 - report and carry on with the step table
        return {"status": f"failed: {type(exc).__name__}: {exc}"}
    bare = statistics.median(times["bare"])
    return {
        "status": "ok",
        "dataset": "digits",
        "sizes": sizes,
        "n_train": int(Xtr.shape[0]),
        "batch_size": batch_size,
        "epochs_per_sample": epochs,
        "epoch_s": {k: _summary(v) for k, v in times.items()},
        "ratio": statistics.median(times["fit"]) / bare,
        "ratio_no_validation": statistics.median(times["fit_no_validation"]) / bare,
    }


def bench_cli(epochs: tuple[int, int] = (1, 21), repeats: int = 3) -> dict[str, Any]:
    """Wall time of the whole ``xpnet train digits`` command for two epoch counts.

    The difference divided by the extra epochs is the per-epoch cost of the command's fit
    run (training, validation, logging); the rest is start-up (imports, data loading).
    Each count runs ``repeats`` times, interleaved, and the medians are compared. When
    the difference is not positive the start-up's noise swamped the epochs: the status
    says so and no per-epoch figure is made up.
    """
    cmd = [sys.executable, "-m", "xpnet", "train", "digits", "--quiet", "--epochs"]
    runs: dict[int, list[float]] = {e: [] for e in epochs}
    try:
        for _ in range(repeats):
            for e in epochs:
                t0 = time.perf_counter()
                subprocess.run(cmd + [str(e)], cwd=_ROOT, check=True, capture_output=True, timeout=300)
                runs[e].append(time.perf_counter() - t0)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"status": f"failed: {type(exc).__name__}: {exc}"[:300]}
    walls = {e: statistics.median(v) for e, v in runs.items()}
    lo, hi = epochs
    per_epoch = (walls[hi] - walls[lo]) / (hi - lo)
    result: dict[str, Any] = {
        "command": " ".join(cmd[1:] + ["N"]),
        "wall_s": {str(k): v for k, v in walls.items()},
        "runs_s": {str(k): v for k, v in runs.items()},
    }
    if per_epoch <= 0:
        result["status"] = (f"noisy: {hi} epochs took no longer than {lo} (medians of {repeats}); "
                            "rerun on a quieter machine")
        return result
    result.update(status="ok", per_epoch_s=per_epoch, startup_s=walls[lo] - lo * per_epoch)
    return result


# ---------------------------------------------------------------------------- report


def _summary(xs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "n": len(xs)}


def _fmt_t(s: float) -> str:
    if s >= 1.0:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def _epochs(k: str, seconds: float) -> str:
    return f"{k} epoch{'' if str(k) == '1' else 's'} {_fmt_t(seconds)}"


def _fmt_b(b: float) -> str:
    return f"{b / 2**20:.1f} MiB"


def format_table(results: dict[str, Any]) -> str:
    lines = []
    hdr = (f"{'workload':<8} {'implementation':<15} {'median':>10} {'min':>10} {'max':>10} "
           f"{'/tuned':>6} {'/book':>6} {'/ceil':>6}")
    lines.append(hdr)
    lines.append("-" * len(hdr))
    for wname, wres in results["workloads"].items():
        for name, r in wres["timings"].items():
            t = r["seconds"]
            ratio = f"{r['ratio_to_ref']:.2f}" if r.get("ratio_to_ref") is not None else "-"
            ceil = f"{r['ratio_to_ceiling']:.2f}" if r.get("ratio_to_ceiling") is not None else "-"
            book = f"{r['ratio_to_textbook']:.2f}" if r.get("ratio_to_textbook") is not None else "-"
            lines.append(f"{wname:<8} {name:<15} {_fmt_t(t['median']):>10} {_fmt_t(t['min']):>10} "
                         f"{_fmt_t(t['max']):>10} {ratio:>6} {book:>6} {ceil:>6}")
        for name, why in wres.get("skipped", {}).items():
            lines.append(f"{wname:<8} {name:<15} skipped: {why}")
        lines.append("")
    mem = results.get("memory", {})
    if mem:
        lines.append("Peak memory (build + 3 steps; tracemalloc for NumPy-backed implementations)")
        for wname, per in mem.items():
            for name, m in per.items():
                if "peak_bytes" in m:
                    rel = m.get("ratio_to_ref")
                    rel_s = f"  {rel:.2f}x ref" if rel is not None else ""
                    if "ratio_to_torch_cuda" in m:
                        rel_s += f"  {m['ratio_to_torch_cuda']:.2f}x torch_cuda"
                    if "method" in m:
                        rel_s += f"  ({m['method']})"
                    lines.append(f"  {wname:<8} {name:<15} peak {_fmt_b(m['peak_bytes']):>10}  "
                                 f"retained {_fmt_b(m['retained_bytes']):>10}{rel_s}")
                else:
                    lines.append(f"  {wname:<8} {name:<15} {m.get('status', 'n/a')}")
        lines.append("")
    sweep = results.get("batch_sweep")
    if sweep:
        lines.append(f"Batch-size sweep ({sweep['workload']}): xpnet_numpy / numpy_tuned, paired medians")
        lines.append("  " + "  ".join(f"N={n}: {r['ratio']:.2f}" for n, r in sweep["ratios"].items()))
        lines.append("")
    fit = results.get("fit")
    if fit:
        if fit.get("status") == "ok":
            e = fit["epoch_s"]
            lines.append(
                f"Fit loop (digits {'-'.join(map(str, fit['sizes']))}, batch {fit['batch_size']}, "
                f"{fit['n_train']} training samples), per epoch: fit {_fmt_t(e['fit']['median'])} "
                f"(x{fit['ratio']:.2f}), fit without validation "
                f"{_fmt_t(e['fit_no_validation']['median'])} (x{fit['ratio_no_validation']:.2f}), "
                f"bare step loop {_fmt_t(e['bare']['median'])}"
            )
        else:
            lines.append(f"Fit loop: {fit.get('status')}")
    cli = results.get("cli")
    if cli:
        if cli.get("status") == "ok":
            lines.append(
                f"`xpnet train digits` command: {_fmt_t(cli['per_epoch_s'])}/epoch "
                f"(from {', '.join(_epochs(k, v) for k, v in cli['wall_s'].items())}); "
                f"start-up (imports, data loading) {_fmt_t(cli['startup_s'])}"
            )
        else:
            walls = ", ".join(_epochs(k, v) for k, v in cli.get("wall_s", {}).items())
            lines.append(f"`xpnet train digits` command: {cli.get('status')}" + (f" ({walls})" if walls else ""))
    agree = results.get("agreement", {})
    bad = {f"{w}/{n}": e for w, per in agree.items() for n, e in per.items() if not e <= AGREE_RTOL}
    if bad:
        lines.append(f"DISAGREEMENT with the reference (relative L2 of 3-step update > {AGREE_RTOL}): {bad}")
    return "\n".join(lines)


def _fmt_r(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}"


def format_markdown(results: dict[str, Any]) -> str:
    """The step table as Markdown (what docs/performance.md shows)."""
    rows = ["| workload | implementation | median | min | max | / numpy_tuned | / numpy_textbook | / matmul ceiling |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for wname, wres in results["workloads"].items():
        for name, r in wres["timings"].items():
            t = r["seconds"]
            ceil = r.get("ratio_to_ceiling")
            rows.append(f"| {wname} | {name} | {_fmt_t(t['median'])} | {_fmt_t(t['min'])} | "
                        f"{_fmt_t(t['max'])} | {r['ratio_to_ref']:.2f} | "
                        f"{_fmt_r(r.get('ratio_to_textbook'))} | {_fmt_r(ceil)} |")
    return "\n".join(rows)


# ---------------------------------------------------------------------------- driver


def _select(text: str, known: list[str], what: str) -> list[str]:
    if text.strip() == "all":
        return list(known)
    names = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; expected some of {known}")
    return names


def run(args: Any) -> dict[str, Any]:
    repeats = args.repeats if args.repeats is not None else (5 if args.quick else 15)
    sample_s = (args.sample_ms if args.sample_ms is not None else (10.0 if args.quick else 40.0)) / 1e3
    fit_epochs = args.fit_epochs if args.fit_epochs is not None else (1 if args.quick else 3)
    workloads = _select(args.workloads, list(WORKLOADS), "workloads")
    wanted = _select(args.impls, list(IMPLS), "implementations")
    if args.threads is not None:
        try:
            import torch

            torch.set_num_threads(args.threads)
        except ImportError:
            pass
    usable = available_impls()
    # The reference is what every ratio divides by: always run it.
    names = [n for n in IMPLS if n in wanted or n == REFERENCE]
    skipped = {n: usable[n] for n in names if usable[n] is not None}
    names = [n for n in names if usable[n] is None]

    results: dict[str, Any] = {
        "machine": machine_info(args.threads),
        "settings": {"repeats": repeats, "sample_ms": sample_s * 1e3, "warmup_steps": WARMUP_STEPS,
                     "quick": bool(args.quick), "impls": names, "workloads": workloads},
        "workloads": {},
        "agreement": {},
        "memory": {},
    }
    ok = True
    for wname in workloads:
        w = WORKLOADS[wname]
        agree, failed = check_agreement(w, names)
        results["agreement"][wname] = agree
        ok &= not failed and all(e <= AGREE_RTOL for e in agree.values())
        here = [n for n in names if n not in failed]
        weights = initial_weights(w)
        x, y = make_batch(w)
        impls = {n: make_impl(n, w, weights, x, y) for n in here}
        samples = time_round_robin(impls, repeats, sample_s)
        del impls
        paired = paired_ratios(samples, REFERENCE)
        paired_ceil = paired_ratios(samples, CEILING) if CEILING in samples else None
        paired_book = paired_ratios(samples, TEXTBOOK) if TEXTBOOK in samples else None
        timings = {}
        for n in here:
            timings[n] = {
                "seconds": _summary(samples[n]),
                "ratio_to_ref": paired[n],
                "ratio_to_textbook": paired_book[n] if paired_book else None,
                "ratio_to_ceiling": paired_ceil[n] if paired_ceil else None,
            }
        results["workloads"][wname] = {
            "description": w.description,
            "n_params": w.n_params,
            "timings": timings,
            "skipped": {**skipped, **failed},
        }
        if not args.no_memory and wname in MEMORY_WORKLOADS:
            mem: dict[str, Any] = {}
            for n in here:
                if is_tracemalloc_visible(n) and n != CEILING:
                    mem[n] = peak_memory(w, n)
                elif n in ("xpnet_cupy", "torch_cuda"):
                    mem[n] = peak_memory_gpu(w, n)
                else:
                    mem[n] = {"status": "n/a (allocations not visible to tracemalloc)"}
            ref_peak = mem[REFERENCE]["peak_bytes"]
            for n, m in mem.items():
                if "peak_bytes" in m and n not in ("xpnet_cupy", "torch_cuda"):
                    m["ratio_to_ref"] = m["peak_bytes"] / ref_peak
            if "peak_bytes" in mem.get("xpnet_cupy", {}) and "peak_bytes" in mem.get("torch_cuda", {}):
                mem["xpnet_cupy"]["ratio_to_torch_cuda"] = (
                    mem["xpnet_cupy"]["peak_bytes"] / max(1, mem["torch_cuda"]["peak_bytes"]))
            results["memory"][wname] = mem
    sweep = getattr(args, "batch_sweep", None)
    if sweep:
        results["batch_sweep"] = {
            "workload": sweep,
            "ratios": batch_sweep(sweep, (1, 8, 32, 128, 512, 2048), max(3, repeats // 2), sample_s),
        }
    if not args.no_fit:
        results["fit"] = bench_fit(fit_epochs, max(1, min(repeats, 5)))
        if not args.quick:
            results["cli"] = bench_cli()
    results["ok"] = ok
    print(format_table(results))
    if getattr(args, "markdown", None):
        Path(args.markdown).write_text(format_markdown(results) + "\n")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"\nwrote {path}")
    return results
