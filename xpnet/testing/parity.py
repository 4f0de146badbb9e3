"""Trajectory parity: train the same model on several backends in lockstep and compare.

:func:`check_parity` is how xpnet proves its central promise: the same seeded training
gives the same numbers on NumPy, CuPy, torch and array-api-strict, up to floating-point
rounding. It builds the model once on the host, moves identical copies to each backend,
draws identical batches on the host, and then runs forward, loss, backward and optimizer
step on every backend, one step at a time, comparing after each step the loss, every
gradient and every parameter with the reference backend (NumPy)::

    from xpnet.testing import check_parity
    report = check_parity(
        lambda g: xpnet.models.mlp([64, 128, 10], generator=g),
        xpnet.losses.CrossEntropyLoss(),
        lambda params: xpnet.optim.Adam(params, lr=1e-3),
        X, y, backends=("numpy", "cupy"), steps=50, dtype="float32",
    )
    print(report.format_table())

On failure it raises :class:`ParityError` whose report names the first step, the tensor
(loss, or the gradient or value of a named parameter) and the backend that went beyond
tolerance, plus the environment (library versions, devices, TF32 settings) that usually
explains a GPU-only difference.

A run whose reference diverges to NaN or infinity (a learning rate far too high) proves
nothing, even when every backend produces the same NaNs: :func:`check_parity` stops at the
first step where the reference loss, a reference gradient or a reference parameter is
non-finite and reports the run as *inconclusive* (``report.diverged``), which is not a pass.

Tolerance model
---------------
Each tensor is compared *normwise*: it passes when ``max|a - r| <= atol + rtol * max|r|``
(``r`` the reference). The reported ``rel diff`` is ``max|a - r| / max|r|``. Elementwise
relative differences are meaningless for trajectories: a gradient entry that is a sum
cancelling to ~1e-9 carries the rounding error of its O(1) terms. The defaults
(:data:`PARITY_TOLERANCES`) come from the measurements in ``docs/parity.md``.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import json
import math
import os
import platform
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import _backend
from ..module import Module
from ..random import get_rng_state, manual_seed, set_rng_state
from ._backends import Backend, BackendUnavailable, get_backend
from .assertions import diff_stats

__all__ = [
    "PARITY_TOLERANCES",
    "NonFinite",
    "ParityError",
    "ParityReport",
    "StepRow",
    "TensorDiff",
    "check_parity",
    "environment_info",
    "parity_tolerances",
]

# Default (rtol, atol) of trajectory parity, per training dtype (normwise, see the module
# docstring). Measured in docs/parity.md: numpy vs torch (CPU) vs array-api-strict on
# digits, MLPs 64-{32,128,512,256x256}-10, batch 8-512, up to 500 steps, SGD, momentum,
# Adagrad, RMSprop, Adam and AdamW. (array-api-strict runs NumPy's kernels, so it is
# bit-identical to NumPy; every nonzero difference is torch's BLAS.)
#
# float64: the largest difference seen was 1.8e-14 after 500 steps (64-128-10) and 1.3e-14
#   after 100 steps (64-256-256-10); it grows slowly (roughly linearly) with steps and
#   depth and hardly with batch size or width. 1e-10 leaves ~5000x headroom for longer
#   runs and GPU reductions, yet a 1e-9 relative error in one operation is still caught.
PARITY_FLOAT64_RTOL = 1e-10
#   atol: floor for tensors whose reference is ~0 (a gradient at a stationary point).
PARITY_FLOAT64_ATOL = 1e-12
# float32: 1e-7..2e-7 at step 1 (one ulp of the loss/gradients), 1e-6..3.4e-6 after 100
#   steps (64-128-10, every optimizer), 8.8e-6 after 500 steps and 9.3e-6 after 100 steps
#   of 64-256-256-10. 1e-4 keeps >= 10x headroom over the worst measured case and ~30x
#   for the default 100-step CLI run, for GPU sgemm blocking (TF32 must be off: see
#   environment_info), while a 5% error in one backend's learning rate still fails at
#   step 1. Deeper or much longer float32 runs may need a larger rtol (docs/parity.md).
PARITY_FLOAT32_RTOL = 1e-4
#   atol: float32 cancellation floor for O(1) activations.
PARITY_FLOAT32_ATOL = 1e-6

#: ``dtype name -> (rtol, atol)`` used by :func:`check_parity` when none are given.
PARITY_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (PARITY_FLOAT64_RTOL, PARITY_FLOAT64_ATOL),
    "float32": (PARITY_FLOAT32_RTOL, PARITY_FLOAT32_ATOL),
}

#: Backends tried when ``backends=None``: NumPy against CuPy; without a usable GPU,
#: NumPy against every CPU backend that is installed.
DEFAULT_PARITY_BACKENDS = ("numpy", "cupy")
FALLBACK_PARITY_BACKENDS = ("torch", "array_api_strict")
REFERENCE = "numpy"
# A failure whose difference is this many times the previous steps' largest one is a
# jump (a bug), not gradual growth (rounding amplified by the dynamics).
JUMP_FACTOR = 100.0
# Differences below this many machine epsilons are plain rounding (different summation
# order in BLAS), whatever the step.
ROUNDING_FACTOR = 100.0


def parity_tolerances(dtype: Any) -> tuple[float, float]:
    """Default ``(rtol, atol)`` of :func:`check_parity` for a training dtype."""
    name = dtype if isinstance(dtype, str) else _backend.dtype_name(dtype)
    if name not in PARITY_TOLERANCES:
        raise TypeError(f"check_parity: dtype must be float32 or float64, got {dtype!r}")
    return PARITY_TOLERANCES[name]


class ParityError(AssertionError):
    """Backends disagreed beyond tolerance, or the reference diverged to non-finite values.

    ``.report`` holds the full :class:`ParityReport`.
    """

    def __init__(self, report: ParityReport) -> None:
        self.report = report
        super().__init__(report.summary() + "\n" + report.format_table(max_rows=24))


@dataclass
class TensorDiff:
    """Difference of one tensor on one backend from the reference at one step.

    Attributes
    ----------
    step
        1-based training step (step 1 is the first forward/backward/update).
    backend
        The compared backend's name.
    kind
        ``"loss"``, ``"grad"`` (the gradient after backward) or ``"param"`` (the value
        after the optimizer step).
    name
        Parameter name (``"0.weight"``), or ``"loss"``.
    max_abs, rel
        ``max|a - r|`` and ``max|a - r| / max|r|``.
    ok
        Within ``atol + rtol * max|r|``.
    note
        Why it failed when the cause is not numeric (a parameter left the backend, a
        missing gradient, a shape change).
    """

    step: int
    backend: str
    kind: str
    name: str
    max_abs: float
    rel: float
    ok: bool
    note: str = ""

    def label(self) -> str:
        what = "loss" if self.kind == "loss" else f"{self.name} {self.kind}"
        return f"{what} ({self.backend})"


@dataclass
class NonFinite:
    """The first non-finite value of the reference backend: where the run stopped.

    Attributes
    ----------
    step
        1-based training step.
    backend
        The reference backend's name.
    kind, name
        ``"loss"``/``"loss"``, or ``"grad"``/``"param"`` and the parameter name, the first
        non-finite tensor in computation order (loss, gradients, updated parameters).
    count, size
        How many of the tensor's entries are non-finite, of how many.
    values
        Which non-finite values occur: ``"nan"``, ``"inf"`` or ``"nan and inf"``.
    """

    step: int
    backend: str
    kind: str
    name: str
    count: int
    size: int
    values: str

    def tensor(self) -> str:
        """``"loss"`` or ``"<name> <kind>"``, e.g. ``"0.weight grad"``."""
        return "loss" if self.kind == "loss" else f"{self.name} {self.kind}"

    def label(self) -> str:
        return f"{self.tensor()} ({self.backend})"

    def message(self) -> str:
        """``training diverged to non-finite values at step k on the reference ...``."""
        entries = "is" if self.size == 1 else f"has {self.count} of {self.size} entries"
        return (
            f"training diverged to non-finite values at step {self.step} on the reference backend "
            f"({self.backend}): {self.tensor()} {entries} {self.values}; lower the "
            f"learning rate (or clip gradients, or train in float64). Comparing NaNs proves "
            f"nothing, so the run stopped there"
        )


@dataclass
class StepRow:
    """One row of the parity table: losses per backend and the step's worst tensor."""

    step: int
    losses: dict[str, float]
    max_rel: float
    worst: str
    ok: bool


@dataclass
class ParityReport:
    """Result of :func:`check_parity`.

    Attributes
    ----------
    backends
        Backend names, reference first.
    reference
        The reference backend (``"numpy"``).
    dtype
        Training dtype actually used (float32 when a device lacked float64).
    steps, batch_size, seed, rtol, atol
        The run's settings.
    rows
        One :class:`StepRow` per step.
    diffs
        Every comparison (:class:`TensorDiff`), for every step, backend and tensor.
    first_failure
        The first comparison beyond tolerance (in step order; within a step: loss, then
        gradients, then parameters, in ``named_parameters`` order), or None.
    diverged
        Where the reference first produced a NaN or infinity (:class:`NonFinite`), or
        None. The run stops at that step and does not pass: its status is
        ``"inconclusive"`` (``"failed"`` when a comparison failed before).
    worst
        The gradient or parameter comparison with the largest relative difference.
    env
        :func:`environment_info` of the run.
    """

    backends: list[str]
    reference: str
    dtype: str
    steps: int
    batch_size: int
    seed: int
    rtol: float
    atol: float
    rows: list[StepRow] = field(default_factory=list)
    diffs: list[TensorDiff] = field(default_factory=list)
    first_failure: TensorDiff | None = None
    worst: TensorDiff | None = None
    env: dict[str, Any] = field(default_factory=dict)
    diverged: NonFinite | None = None

    @property
    def passed(self) -> bool:
        """True when every comparison was within tolerance and the reference stayed finite."""
        return self.first_failure is None and self.diverged is None

    @property
    def status(self) -> str:
        """``"passed"``, ``"failed"`` (a comparison beyond tolerance) or ``"inconclusive"``.

        Inconclusive: the reference diverged to non-finite values before any comparison
        failed, so the steps after it compare nothing.
        """
        if self.first_failure is not None:
            return "failed"
        return "inconclusive" if self.diverged is not None else "passed"

    @property
    def steps_run(self) -> int:
        """Steps actually run and compared (fewer than ``steps`` when the reference diverged)."""
        return len(self.rows)

    @property
    def max_rel(self) -> float:
        """Largest relative difference of any loss, gradient or parameter."""
        return max((r.max_rel for r in self.rows), default=0.0)

    def max_rel_by_step(self, kind: str | None = None) -> list[float]:
        """Largest relative difference per step (optionally of one kind: loss/grad/param)."""
        out = [0.0] * len(self.rows)
        for d in self.diffs:
            if kind is None or d.kind == kind:
                out[d.step - 1] = max(out[d.step - 1], d.rel)
        return out

    def diagnosis(self) -> str:
        """Why the first failure probably happened: a sudden jump, or gradual growth.

        A bug in one operation shows as a jump from rounding level to far beyond it at
        one step. Rounding differences amplified by unstable training dynamics (a high
        learning rate, a long run in float32) grow over many steps instead.
        """
        f = self.first_failure
        if f is None:
            return self.diverged.message() if self.diverged is not None else ""
        if f.note:
            return f"not a rounding difference: {f.note}"
        by_step = self.max_rel_by_step()
        before = max(by_step[: f.step - 1], default=0.0)
        eps = float(np.finfo(self.dtype).eps)
        rounding = f.rel <= ROUNDING_FACTOR * eps
        tight = (
            f"{_fmt(f.rel)} is within {ROUNDING_FACTOR:g} ulps of {self.dtype} (eps {eps:.2e}), so "
            f"rtol {self.rtol:g} is tighter than the rounding differences between these backends' "
            f"kernels"
        )
        jump = not before > 0 or f.rel > JUMP_FACTOR * before or f.rel != f.rel
        if jump and rounding:
            return f"rounding-level difference: {tight}; use the default tolerance"
        if jump:
            return (
                "sudden divergence: the difference jumped at this step, which points to an "
                "operation that computes something different on this backend (or a bug)"
            )
        return (
            f"gradual divergence: the largest difference grew from {_fmt(by_step[0])} at step 1 to "
            f"{_fmt(before)} at step {f.step - 1}, typical of rounding differences amplified by the "
            f"training dynamics (high learning rate, long or deep float32 run); try fewer steps, "
            f"a smaller learning rate, float64, or a larger rtol" + (f" ({tight})" if rounding else "")
        )

    def summary(self) -> str:
        """One paragraph: verdict, first failure or worst tensor, settings."""
        others = ", ".join(b for b in self.backends if b != self.reference)
        head = (
            f"parity {self.reference} (reference) vs {others}: {self.dtype}, {self.steps} steps, "
            f"batch {self.batch_size}, seed {self.seed}, rtol {self.rtol:g}, atol {self.atol:g}"
        )
        if self.passed:
            w = self.worst
            worst = f"; worst {w.label()} at step {w.step}" if w is not None else ""
            return f"{head}\nPASSED: max rel diff {_fmt(self.max_rel)}{worst}"
        f = self.first_failure
        d = self.diverged
        if f is None:
            assert d is not None
            agreed = (
                f"; steps 1-{d.step - 1} agreed (max rel diff {_fmt(self.max_rel)})" if d.step > 1 else ""
            )
            return (
                f"{head}\nINCONCLUSIVE (not a pass) at step {d.step} of {self.steps}: {d.message()}{agreed}"
            )
        note = f" ({f.note})" if f.note else ""
        text = (
            f"{head}\nFAILED at step {f.step}: {f.label()} differs from {self.reference}: "
            f"max abs diff {_fmt(f.max_abs)}, rel diff {_fmt(f.rel)} > rtol {self.rtol:g}{note}\n"
            f"{self.diagnosis()}"
        )
        if d is not None:
            text += f"\nthen {d.message()}"
        return text

    def format_table(self, max_rows: int | None = None) -> str:
        """The per-step table as text (step, loss per backend, max rel diff, worst tensor).

        With ``max_rows``, long runs show their first and last rows and the rows around
        the first failure.
        """
        loss_cols = [f"loss[{b}]" for b in self.backends]
        header = ["step", *loss_cols, "max rel diff", "worst (tensor, backend)"]
        body = []
        for r in self.rows:
            mark = "" if r.ok else "  <-- FAIL"
            max_rel = _fmt(r.max_rel)
            if self.diverged is not None and r.step == self.diverged.step:
                # Only the tensors still finite on the reference were compared at this step.
                if any(d.step == r.step and not d.ok for d in self.diffs):
                    mark = f"{mark}, then NON-FINITE {self.diverged.label()}"
                else:
                    mark = f"  <-- NON-FINITE {self.diverged.label()}"
                if not r.worst:
                    max_rel = "-"
            body.append(
                [str(r.step), *(_fmt_loss(r.losses.get(b)) for b in self.backends), max_rel, (r.worst + mark).lstrip()]
            )
        marked = self.first_failure or self.diverged
        keep = _rows_to_show(len(body), max_rows, None if marked is None else marked.step)
        widths = [max(len(header[i]), *(len(row[i]) for row in body)) if body else len(header[i]) for i in range(len(header))]
        lines = ["  ".join(h.rjust(w) if i < len(header) - 1 else h for i, (h, w) in enumerate(zip(header, widths)))]
        prev = -1
        for i in keep:
            if prev >= 0 and i != prev + 1:
                lines.append("   ...")
            row = body[i]
            lines.append("  ".join(c.rjust(w) if j < len(row) - 1 else c for j, (c, w) in enumerate(zip(row, widths))))
            prev = i
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary() + "\n" + self.format_table(max_rows=40)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (non-finite numbers become the strings ``"inf"``/``"nan"``)."""
        d = asdict(self)
        d["passed"] = self.passed
        d["status"] = self.status
        d["steps_run"] = self.steps_run
        d["diagnosis"] = self.diagnosis()
        d["max_rel"] = self.max_rel
        return _json_safe(d)

    def to_json(self, path: str | os.PathLike[str] | None = None, *, indent: int | None = 2) -> str:
        """Serialise :meth:`to_dict`; also write it to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(text + "\n")
        return text


def _fmt(v: float) -> str:
    if v != v:
        return "nan"
    if math.isinf(v):
        return "inf"
    return f"{v:.2e}"


def _fmt_loss(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.12g}"


def _rows_to_show(n: int, max_rows: int | None, fail_step: int | None) -> list[int]:
    if max_rows is None or n <= max_rows:
        return list(range(n))
    budget = max(max_rows, 6)
    keep = set(range(budget // 3)) | set(range(n - budget // 3, n))
    if fail_step is not None:
        c = fail_step - 1
        half = budget // 6 + 1
        keep |= set(range(max(0, c - half), min(n, c + half + 1)))
    return sorted(keep)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        if obj != obj:
            return "nan"
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
        return obj
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


# --------------------------------------------------------------------------- environment


def _version(dist: str, module: str | None = None) -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(dist)
        except PackageNotFoundError:
            pass
    except ImportError:  # pragma: no cover - Python < 3.8
        pass
    mod = sys.modules.get(module or dist)
    return getattr(mod, "__version__", None) if mod is not None else None


def _torch_settings() -> dict[str, Any]:
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    out: dict[str, Any] = {"num_threads": torch.get_num_threads()}
    probes = {
        "cuda_matmul_allow_tf32": lambda: torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": lambda: torch.backends.cudnn.allow_tf32,
        "float32_matmul_precision": torch.get_float32_matmul_precision,
        "cuda_matmul_fp32_precision": lambda: torch.backends.cuda.matmul.fp32_precision,
        "cuda_available": torch.cuda.is_available,
    }
    with warnings.catch_warnings():
        # torch >= 2.9 deprecates allow_tf32 in favour of fp32_precision; read both quietly.
        warnings.simplefilter("ignore")
        for key, probe in probes.items():
            try:
                out[key] = probe()
            except Exception:  # noqa: BLE001 - a missing knob is reported as absent
                continue
    return out


def _device_name(b: Backend) -> str:
    base = b.name.partition(":")[0]
    try:
        if base == "cupy":
            cupy = importlib.import_module("cupy")
            dev_id = getattr(b.device, "id", 0)
            name = cupy.cuda.runtime.getDeviceProperties(dev_id)["name"]
            return name.decode() if isinstance(name, bytes) else str(name)
        if base == "torch" and getattr(b.device, "type", "cpu") == "cuda":
            torch = importlib.import_module("torch")
            return str(torch.cuda.get_device_name(b.device))
    except Exception:  # noqa: BLE001 - the name is informational only
        pass
    return platform.processor() or platform.machine() or "cpu"


def _blas() -> str | None:
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy: no dict mode
        return None


def environment_info(backends: Sequence[Backend | str] = ()) -> dict[str, Any]:
    """Versions, devices and precision settings that explain backend differences.

    Parameters
    ----------
    backends
        Backends (or names) whose device to describe.

    Returns
    -------
    dict
        ``python``, ``platform``, ``versions`` (numpy, array-api-compat,
        array-api-strict, torch, cupy, jax; None when not installed), ``numpy_blas``,
        ``devices`` (backend -> device and its name), ``torch`` (threads and TF32
        settings: ``cuda_matmul_allow_tf32``, ``cudnn_allow_tf32``,
        ``float32_matmul_precision``; only when torch is imported) and ``env`` (the
        ``CUPY_TF32``, ``NVIDIA_TF32_OVERRIDE``, ``OMP_NUM_THREADS`` ... variables).

    Notes
    -----
    TF32 (Ampere and newer GPUs) rounds float32 matmul inputs to a 10-bit mantissa:
    with it on, float32 GPU results differ from CPU ones by ~1e-3 relative and parity
    at the float32 tolerance fails. CuPy enables it with ``CUPY_TF32=1``; torch with
    ``torch.backends.cuda.matmul.allow_tf32`` / ``set_float32_matmul_precision("high")``.
    """
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": {
            "xpnet": _version("xpnet"),
            "numpy": np.__version__,
            "array_api_compat": _version("array-api-compat", "array_api_compat"),
            "array_api_strict": _version("array-api-strict", "array_api_strict"),
            "torch": _version("torch"),
            "cupy": _version("cupy") or _version("cupy-cuda12x") or _version("cupy-cuda13x"),
            "jax": _version("jax"),
        },
        "numpy_blas": _blas(),
        "devices": {},
        "torch": _torch_settings(),
        "env": {
            k: os.environ.get(k)
            for k in ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")
            if k in os.environ
        },
    }
    for b in backends:
        if isinstance(b, str):
            try:
                b = get_backend(b)
            except BackendUnavailable:
                continue
        info["devices"][b.name] = {"device": str(b.device), "name": _device_name(b)}
    return info


# --------------------------------------------------------------------------- helpers


def _resolve_backends(backends: Sequence[Backend | str] | None) -> list[Backend]:
    if backends is None:
        names: list[str] = list(DEFAULT_PARITY_BACKENDS)
        found = [b for b in (_try_backend(n) for n in names) if b is not None]
        if len(found) < 2:
            found += [b for b in (_try_backend(n) for n in FALLBACK_PARITY_BACKENDS) if b is not None]
    else:
        if isinstance(backends, str):
            backends = [n.strip() for n in backends.split(",") if n.strip()]
        found = []
        for b in backends:
            if isinstance(b, Backend):
                found.append(b)
                continue
            got = _try_backend(b)
            if got is None:
                warnings.warn(f"check_parity: backend {b!r} is not available here; skipping it", stacklevel=3)
            else:
                found.append(got)
    if not any(b.name == REFERENCE for b in found):
        found.insert(0, get_backend(REFERENCE))
    else:  # reference first
        found.sort(key=lambda b: b.name != REFERENCE)
    names_seen = [b.name for b in found]
    dupes = sorted({n for n in names_seen if names_seen.count(n) > 1})
    if dupes:
        raise ValueError(
            f"check_parity: backend(s) {dupes} given twice; comparing a backend with itself proves "
            f"nothing. Hint: list each backend once"
        )
    if len(found) < 2:
        raise BackendUnavailable(
            "check_parity: needs the reference (numpy) and at least one other backend, but none of "
            f"the others is available here (asked for {backends if backends is not None else DEFAULT_PARITY_BACKENDS}). "
            "Hint: install torch or array-api-strict, or run on a machine with a GPU for cupy"
        )
    return found


def _try_backend(name: str) -> Backend | None:
    try:
        return get_backend(name)
    except BackendUnavailable:
        return None


def _has_float64(b: Backend) -> bool:
    return b.supports_float64 and _backend.supports_float64(b.xp, b.device)


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed xpnet's default generator for a block, then restore its previous state."""
    saved = get_rng_state()
    manual_seed(seed)
    try:
        yield
    finally:
        set_rng_state(saved)


def _accepts_argument(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty
        for p in params
    )


def build_seeded(build: Module | Callable[..., Module], seed: int) -> Module:
    """Build a module reproducibly on the host.

    ``build`` is a module (deep-copied), a callable taking a ``numpy.random.Generator``
    (called with ``default_rng(seed)``), or a callable without arguments (called with
    xpnet's default generator seeded to ``seed``, whose previous state is restored).
    """
    if isinstance(build, Module):
        return copy.deepcopy(build)
    if _accepts_argument(build):
        model = build(np.random.default_rng(seed))
    else:
        with _seeded(seed):
            model = build()
    if not isinstance(model, Module):
        raise TypeError(f"build_model must return an xpnet Module, got {type(model).__name__}")
    return model


def _batches(n: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    # Host-side seeded permutations, one per epoch, dropping the last partial batch so
    # every step sees a full batch: every backend receives exactly the same rows.
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]


@dataclass
class _Run:
    backend: Backend
    model: Module
    optimizer: Any
    loss_fn: Any


def _annotate(exc: BaseException, text: str) -> None:
    if hasattr(exc, "add_note"):
        exc.add_note(text)


def _placement_problem(arr: Any, b: Backend, dtype: str) -> str:
    if not _backend.is_array(arr):
        return f"is a {type(arr).__name__}, not an array"
    xp = _backend.namespace_of(arr)
    if xp is not b.xp:
        return f"left the backend: it is a {_backend.backend_name(xp)} array"
    dev = _backend.device_of(arr)
    if dev != b.device:
        return f"moved to device {dev!r}, expected {b.device!r}"
    if _backend.dtype_name(arr.dtype) != dtype:
        return f"changed dtype to {_backend.dtype_name(arr.dtype)}, expected {dtype}"
    return ""


# --------------------------------------------------------------------------- check_parity


def check_parity(
    build_model: Module | Callable[..., Module],
    loss_fn: Callable[[Any, Any], tuple[Any, Any]],
    optimizer_factory: Callable[[list[Any]], Any],
    X: Any,
    y: Any,
    *,
    backends: Sequence[Backend | str] | None = None,
    steps: int = 50,
    batch_size: int = 32,
    dtype: str = "float64",
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    raise_on_failure: bool = True,
) -> ParityReport:
    """Train on several backends in lockstep and compare every step with NumPy.

    Parameters
    ----------
    build_model
        A callable ``build_model(generator)`` (receives ``numpy.random.default_rng(seed)``),
        a callable without arguments (run with :func:`xpnet.manual_seed` ``(seed)``, the
        previous generator state is restored), or a host module (deep-copied). Called once;
        each backend receives a copy, so all start from bit-identical weights.
    loss_fn
        ``loss_fn(output, target) -> (loss, grad)``, e.g. ``CrossEntropyLoss()``; one
        object serves every backend (losses are stateless functions of their inputs).
    optimizer_factory
        ``optimizer_factory(params) -> optimizer`` with ``step()`` and ``zero_grad()``,
        e.g. ``lambda p: xpnet.optim.Adam(p, lr=1e-3)``; called once per backend with
        the list of that backend's parameters.
    X, y
        Training data (host NumPy or any backend; copied to the host). Floating ``X``/``y``
        are cast to ``dtype`` on the host; integer labels stay integers.
    backends
        Backend names (``"numpy"``, ``"torch"``, ``"cupy"``, ``"array_api_strict"``,
        ``"array_api_strict:device1"``, ``"torch:cuda:0"``...) or :class:`Backend` objects.
        NumPy is always added as the reference. Unavailable names are skipped with a
        warning. Default: numpy and cupy; without a usable GPU, numpy against torch and
        array-api-strict (those installed).
    steps
        Training steps (forward, loss, backward, optimizer step).
    batch_size
        Rows per step, drawn from seeded host permutations (partial batches dropped).
    dtype
        ``"float64"`` or ``"float32"``. When a backend's device has no float64 (probed by
        creating a float64 array there), every backend runs in float32 with a warning.
    seed
        Seed of the model (see ``build_model``) and of the batch order.
    rtol, atol
        Normwise tolerances ``max|a-r| <= atol + rtol*max|r|`` per tensor; default
        :data:`PARITY_TOLERANCES` for the dtype used.
    raise_on_failure
        Raise :class:`ParityError` on divergence (default); with False, return the report.

    Returns
    -------
    ParityReport
        Per-step table, every comparison, first failure, worst tensor, environment.

    Raises
    ------
    ParityError
        A loss, gradient or parameter differed beyond tolerance, left its backend or
        changed dtype, or the reference's loss, a gradient or a parameter became NaN or
        infinite (with ``raise_on_failure``).
    BackendUnavailable
        Fewer than two usable backends.
    ValueError
        Bad ``steps``/``batch_size``, a backend listed twice, or too little data.

    Notes
    -----
    Every step runs on all backends before the next one, so the first step where a
    backend drifts is found exactly, whatever happens later. Backends then differ only by
    floating-point rounding, which grows slowly (roughly linearly) with the number of
    steps for a stable training run; see docs/parity.md for measured numbers.

    A NaN or infinity on a compared backend where the reference is finite is a failure
    at that step. When the reference itself becomes non-finite (training diverged: the
    learning rate is too high), the run stops there and does not pass
    (``report.diverged``, ``report.status == "inconclusive"``, :class:`ParityError`):
    identical NaNs on every backend prove nothing.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"check_parity: steps must be a positive int, got {steps!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"check_parity: batch_size must be a positive int, got {batch_size!r}")
    dtype = dtype if isinstance(dtype, str) else _backend.dtype_name(dtype)
    parity_tolerances(dtype)  # validates the dtype name
    runs_b = _resolve_backends(backends)

    if dtype == "float64":
        lacking = [b.name for b in runs_b if not _has_float64(b)]
        if lacking:
            warnings.warn(
                f"check_parity: {', '.join(lacking)} cannot create float64 arrays on its device; "
                f"comparing every backend in float32 instead (float32 tolerances apply)",
                stacklevel=2,
            )
            dtype = "float32"
    d_rtol, d_atol = parity_tolerances(dtype)
    rtol = d_rtol if rtol is None else float(rtol)
    atol = d_atol if atol is None else float(atol)

    X_host = np.asarray(_backend.to_numpy(X))
    y_host = np.asarray(_backend.to_numpy(y))
    if X_host.shape[0] != y_host.shape[0]:
        raise ValueError(f"check_parity: X has {X_host.shape[0]} rows but y has {y_host.shape[0]}")
    n = int(X_host.shape[0])
    if n < 1:
        raise ValueError("check_parity: X is empty")
    X_host = X_host.astype(dtype)
    if np.issubdtype(y_host.dtype, np.floating):
        y_host = y_host.astype(dtype)
    batch_size = min(batch_size, n)

    host_model = build_seeded(build_model, seed)
    runs: list[_Run] = []
    for b in runs_b:
        model = copy.deepcopy(host_model)
        b.move(model, dtype)
        model.train()
        runs.append(_Run(b, model, optimizer_factory(list(model.parameters())), loss_fn))
    names = [name for name, _ in host_model.named_parameters()]

    report = ParityReport(
        backends=[b.name for b in runs_b],
        reference=runs_b[0].name,
        dtype=dtype,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        rtol=rtol,
        atol=atol,
        env=environment_info(runs_b),
    )
    batches = _batches(n, batch_size, seed)
    for step in range(1, steps + 1):
        idx = next(batches)
        xb_host, yb_host = X_host[idx], y_host[idx]
        # Layers that draw from xpnet's default generator (Dropout without its own) must
        # draw the same numbers on every backend: each backend's step starts from the
        # same generator state.
        rng_state = get_rng_state()
        results = []
        for r in runs:
            set_rng_state(rng_state)
            results.append(_train_step(r, step, xb_host, yb_host, names, dtype))
        _compare_step(report, step, results, rtol, atol)
        if report.diverged is not None:
            break
    if report.worst is None and report.diffs:
        report.worst = report.diffs[0]
    if raise_on_failure and not report.passed:
        raise ParityError(report)
    return report


@dataclass
class _StepResult:
    backend: str
    loss: float
    grads: dict[str, np.ndarray | None]
    params: dict[str, np.ndarray]
    problems: dict[tuple[str, str], str]


def _train_step(run: _Run, step: int, xb: np.ndarray, yb: np.ndarray, names: list[str], dtype: str) -> _StepResult:
    b, model, opt = run.backend, run.model, run.optimizer
    phase = "moving the batch"
    try:
        xb_b, yb_b = b.asarray(xb), b.asarray(yb)
        phase = "zero_grad"
        (opt.zero_grad if hasattr(opt, "zero_grad") else model.zero_grad)()
        phase = "forward"
        out = model.forward(xb_b)
        phase = "the loss"
        loss, dout = run.loss_fn(out, yb_b)
        phase = "backward"
        model.backward(dout)
        named = dict(model.named_parameters())
        grads = {n: (None if named[n].grad is None else _backend.to_numpy(named[n].grad)) for n in names}
        problems: dict[tuple[str, str], str] = {}
        for n in names:
            g = named[n].grad
            if g is not None and (why := _placement_problem(g, b, dtype)):
                problems[("grad", n)] = why
        phase = "the optimizer step"
        opt.step()
    except Exception as exc:
        _annotate(exc, f"check_parity: backend {b.name} raised during {phase} of step {step}")
        raise
    params = {n: _backend.to_numpy(named[n].data) for n in names}
    for n in names:
        if why := _placement_problem(named[n].data, b, dtype):
            problems[("param", n)] = why
    loss_host = float(np.asarray(_backend.to_numpy(loss), dtype=np.float64).reshape(()))
    return _StepResult(b.name, loss_host, grads, params, problems)


def _diff(
    step: int, backend: str, kind: str, name: str, a: Any, r: Any, rtol: float, atol: float, note: str, reference: str
) -> TensorDiff:
    if a is None or r is None:
        if a is None and r is None:
            return TensorDiff(step, backend, kind, name, 0.0, 0.0, True)
        missing = "this backend" if a is None else "the reference"
        return TensorDiff(step, backend, kind, name, math.inf, math.inf, False, f"no gradient on {missing}")
    if np.shape(a) != np.shape(r):
        return TensorDiff(step, backend, kind, name, math.inf, math.inf, False, f"shape {np.shape(a)} vs {np.shape(r)}")
    # The reference is finite here (_compare_step stops at its first NaN/inf), so any
    # non-finite entry on this backend is a mismatch; never count NaN == NaN as agreement.
    if not note and not np.all(np.isfinite(a)):
        note = f"{_nonfinite_kinds(np.asarray(a))} on {backend} where {reference} is finite"
    s = diff_stats(a, r, equal_nan=False)
    ok = s.max_abs <= atol + rtol * s.ref_max and not note
    return TensorDiff(step, backend, kind, name, s.max_abs, s.norm_rel, ok, note)


def _nonfinite_kinds(a: np.ndarray) -> str:
    has_nan, has_inf = bool(np.any(np.isnan(a))), bool(np.any(np.isinf(a)))
    return "nan and inf" if has_nan and has_inf else ("nan" if has_nan else "inf")


def _first_nonfinite(step: int, ref: _StepResult) -> NonFinite | None:
    """The reference's first non-finite tensor of this step, in computation order."""
    tensors: list[tuple[str, str, Any]] = [("loss", "loss", np.float64(ref.loss))]
    tensors += [("grad", n, g) for n, g in ref.grads.items() if g is not None]
    tensors += [("param", n, p) for n, p in ref.params.items()]
    for kind, name, value in tensors:
        host = np.asarray(value, dtype=np.float64)
        bad = ~np.isfinite(host)
        if np.any(bad):
            return NonFinite(step, ref.backend, kind, name, int(bad.sum()), int(host.size), _nonfinite_kinds(host))
    return None


def _compare_step(report: ParityReport, step: int, results: list[_StepResult], rtol: float, atol: float) -> None:
    ref = results[0]
    diverged = _first_nonfinite(step, ref)

    def ref_finite(value: Any) -> bool:
        return diverged is None or value is None or bool(np.all(np.isfinite(np.asarray(value, dtype=np.float64))))

    step_diffs: list[TensorDiff] = []
    for res in results[1:]:
        # A tensor whose reference is NaN/inf has nothing to be compared with: it is left
        # out (the run is reported as diverged instead), the others of the step still count.
        if ref_finite(ref.loss):
            step_diffs.append(
                _diff(step, res.backend, "loss", "loss", np.float64(res.loss), np.float64(ref.loss), rtol, atol, "", ref.backend)
            )
        for kind, table, ref_table in (("grad", res.grads, ref.grads), ("param", res.params, ref.params)):
            for name, value in table.items():
                if not ref_finite(ref_table[name]):
                    continue
                note = res.problems.get((kind, name), "")
                step_diffs.append(_diff(step, res.backend, kind, name, value, ref_table[name], rtol, atol, note, ref.backend))
    # Report order within a step follows the computation: loss, gradients, then updates.
    order = {"loss": 0, "grad": 1, "param": 2}
    step_diffs.sort(key=lambda d: order[d.kind])
    report.diffs.extend(step_diffs)
    if report.first_failure is None:
        report.first_failure = next((d for d in step_diffs if not d.ok), None)
    for d in step_diffs:
        if d.kind != "loss" and (report.worst is None or _gt(d.rel, report.worst.rel)):
            report.worst = d
    worst = max(step_diffs, key=lambda d: (d.rel if d.rel == d.rel else math.inf), default=None)
    report.rows.append(
        StepRow(
            step=step,
            losses={r.backend: r.loss for r in results},
            max_rel=worst.rel if worst is not None else 0.0,
            worst=worst.label() if worst is not None else "",
            ok=all(d.ok for d in step_diffs) and diverged is None,
        )
    )
    report.diverged = diverged


def _gt(a: float, b: float) -> bool:
    if a != a:
        return b == b
    return a > b
