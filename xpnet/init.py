"""Weight initializers, drawn on the host and then moved to the parameter's backend.

Two forms, as in ``torch.nn.init``:

* host functions (``xavier_uniform(shape, ...)``) that return a float64
  :class:`numpy.ndarray`, useful to build weights yourself;
* in-place forms with a trailing underscore (``xavier_uniform_(param, ...)``) that
  replace a :class:`~xpnet.Parameter`'s data with fresh values on the parameter's own
  backend, device and dtype.

Values are always drawn in float64 from a :class:`numpy.random.Generator` and cast on the
host, so the same seed gives bit-identical weights on every backend.

Fan computation follows torch: for a weight of shape ``(out_features, in_features, *k)``
``fan_in = in_features * prod(k)`` and ``fan_out = out_features * prod(k)``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from . import _backend
from .random import resolve_generator

__all__ = [
    "calculate_gain",
    "calculate_fan_in_and_fan_out",
    "zeros",
    "ones",
    "constant",
    "uniform",
    "normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_normal",
    "lecun_uniform",
    "fan_in_uniform",
    "trunc_normal",
    "orthogonal",
    "eye",
    "dirac",
    "sparse",
    "zeros_",
    "ones_",
    "constant_",
    "uniform_",
    "normal_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "lecun_normal_",
    "lecun_uniform_",
    "fan_in_uniform_",
    "trunc_normal_",
    "orthogonal_",
    "eye_",
    "dirac_",
    "sparse_",
]

Shape = Sequence[int]
Generator = np.random.Generator | int | None


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """Recommended gain for a nonlinearity (torch's values).

    =====================  ==========================================================
    nonlinearity           gain
    =====================  ==========================================================
    linear, conv, sigmoid  1
    tanh                   5/3
    relu                   sqrt(2)
    leaky_relu             sqrt(2 / (1 + negative_slope**2)), slope 0.01 by default
    selu                   3/4
    =====================  ==========================================================

    Notes
    -----
    Glorot & Bengio (2010) suggest 4x the tanh-style uniform range for the logistic
    sigmoid (its slope at 0 is 1/4); pass ``gain=4.0`` to :func:`xavier_uniform` for
    that. ``calculate_gain("sigmoid")`` keeps torch's value, 1.
    """
    linear_fns = {
        "linear", "identity", "conv1d", "conv2d", "conv3d",
        "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid",
    }
    name = nonlinearity.lower()
    if name in linear_fns:
        return 1.0
    if name == "tanh":
        return 5.0 / 3.0
    if name == "relu":
        return math.sqrt(2.0)
    if name == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1.0 + slope**2))
    if name == "selu":
        return 3.0 / 4.0
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def calculate_fan_in_and_fan_out(shape: Shape) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight shape ``(out, in, *kernel)``."""
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a weight with at least 2 dimensions, got shape {shape}"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: Shape, mode: str) -> int:
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    if mode == "fan_in":
        return fan_in
    if mode == "fan_out":
        return fan_out
    raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")


def _shape(shape: Shape | int) -> tuple[int, ...]:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


# --------------------------------------------------------------------------- host forms


def zeros(shape: Shape) -> np.ndarray:
    """All zeros. With zero init every hidden unit gets the same (zero) gradient."""
    return np.zeros(_shape(shape))


def ones(shape: Shape) -> np.ndarray:
    """All ones."""
    return np.ones(_shape(shape))


def constant(shape: Shape, val: float) -> np.ndarray:
    """Every entry equal to ``val`` (hidden units stay identical under training)."""
    return np.full(_shape(shape), float(val))


def uniform(shape: Shape, a: float = 0.0, b: float = 1.0, generator: Generator = None) -> np.ndarray:
    """Samples from U(a, b)."""
    if not a <= b:
        raise ValueError(f"uniform: expected a <= b, got a={a}, b={b}")
    return resolve_generator(generator).uniform(a, b, size=_shape(shape))


def normal(shape: Shape, mean: float = 0.0, std: float = 1.0, generator: Generator = None) -> np.ndarray:
    """Samples from N(mean, std²)."""
    if std < 0:
        raise ValueError(f"normal: std must be non-negative, got {std}")
    return resolve_generator(generator).normal(mean, std, size=_shape(shape))


def xavier_uniform(shape: Shape, gain: float = 1.0, generator: Generator = None) -> np.ndarray:
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)).

    Use ``gain=calculate_gain("tanh")`` for tanh and ``gain=4.0`` for the logistic
    sigmoid (Glorot & Bengio, 2010).
    """
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    a = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform(shape, -a, a, generator)


def xavier_normal(shape: Shape, gain: float = 1.0, generator: Generator = None) -> np.ndarray:
    """Glorot normal: N(0, std²) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = calculate_fan_in_and_fan_out(shape)
    return normal(shape, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def kaiming_uniform(
    shape: Shape,
    a: float = 0.0,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator = None,
) -> np.ndarray:
    """He uniform: U(-b, b) with b = gain * sqrt(3 / fan). Defaults as in torch."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    bound = math.sqrt(3.0) * std
    return uniform(shape, -bound, bound, generator)


def kaiming_normal(
    shape: Shape,
    a: float = 0.0,
    mode: Literal["fan_in", "fan_out"] = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Generator = None,
) -> np.ndarray:
    """He normal: N(0, std²) with std = gain / sqrt(fan). Defaults as in torch."""
    std = calculate_gain(nonlinearity, a) / math.sqrt(_fan(shape, mode))
    return normal(shape, 0.0, std, generator)


def lecun_normal(shape: Shape, generator: Generator = None) -> np.ndarray:
    """LeCun normal: N(0, 1/fan_in), the variance-preserving init for SELU/tanh."""
    return normal(shape, 0.0, 1.0 / math.sqrt(_fan(shape, "fan_in")), generator)


def lecun_uniform(shape: Shape, generator: Generator = None) -> np.ndarray:
    """LeCun uniform: U(-b, b) with b = sqrt(3 / fan_in)."""
    bound = math.sqrt(3.0 / _fan(shape, "fan_in"))
    return uniform(shape, -bound, bound, generator)


def fan_in_uniform(shape: Shape, fan_in: int | None = None, generator: Generator = None) -> np.ndarray:
    """U(-1/sqrt(fan_in), 1/sqrt(fan_in)): the lecture notes' scaling, and torch's Linear default.

    ``torch.nn.Linear`` draws its weight with ``kaiming_uniform_(a=sqrt(5))``, which works
    out to exactly this bound, and its bias from the same range using the weight's fan-in;
    pass ``fan_in`` explicitly for a bias (a 1-D shape has no fan of its own).
    """
    if fan_in is None:
        fan_in = _fan(shape, "fan_in")
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return uniform(shape, -bound, bound, generator)


def trunc_normal(
    shape: Shape, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
    generator: Generator = None,
) -> np.ndarray:
    """Samples from N(mean, std²) truncated to ``[a, b]`` (torch's defaults; a, b absolute).

    Notes
    -----
    Rejection sampling: normal draws outside ``[a, b]`` are redrawn until none is left,
    which samples the truncated distribution exactly. When ``[a, b]`` holds less than 1%
    of the mass, the inverse CDF of uniform draws in ``[Φ(a'), Φ(b')]`` is used instead
    (``statistics.NormalDist``). torch draws with the inverse CDF always; the
    distributions are the same, the numbers for a seed are not (torch's generator differs
    anyway).
    """
    if std < 0 or not a < b:
        raise ValueError(f"trunc_normal: need std >= 0 and a < b, got std={std}, a={a}, b={b}")
    g, shape = resolve_generator(generator), _shape(shape)
    if std == 0:
        return np.full(shape, min(max(float(mean), a), b))
    unit = statistics.NormalDist()
    lo, hi = unit.cdf((a - mean) / std), unit.cdf((b - mean) / std)
    if hi - lo < 0.01:
        u = g.uniform(lo, hi, size=shape)
        z = np.vectorize(lambda p: unit.inv_cdf(min(max(p, 1e-300), 1 - 1e-16)), otypes=[float])(u)
        return np.clip(mean + std * z, a, b)
    out = g.normal(mean, std, size=shape)
    bad = (out < a) | (out > b)
    while bad.any():
        out[bad] = g.normal(mean, std, size=int(bad.sum()))
        bad = (out < a) | (out > b)
    return out


def orthogonal(shape: Shape, gain: float = 1.0, generator: Generator = None) -> np.ndarray:
    """A (semi-)orthogonal matrix (Saxe et al., 2014), torch's construction.

    The weight is viewed as ``(rows, cols) = (shape[0], prod(shape[1:]))``. A standard
    normal matrix of that shape (transposed when rows < cols) is QR-decomposed, Q's
    columns are multiplied by ``sign(diag(R))`` (which makes Q Haar-distributed), and the
    result (transposed back) is scaled by ``gain``: rows (or columns, whichever are
    fewer) are orthonormal times gain.
    """
    shape = _shape(shape)
    if len(shape) < 2:
        raise ValueError(f"orthogonal: only weights with 2 or more dimensions are supported, got {shape}")
    rows = shape[0]
    cols = math.prod(shape[1:])
    flat = resolve_generator(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (q * gain).reshape(shape)


def eye(shape: Shape) -> np.ndarray:
    """The identity matrix of a 2-D shape (rectangular: ones on the main diagonal), as
    ``torch.nn.init.eye_``: a linear layer that passes its inputs through."""
    shape = _shape(shape)
    if len(shape) != 2:
        raise ValueError(f"eye: only 2-D weights are supported, got shape {shape}")
    return np.eye(shape[0], shape[1])


def dirac(shape: Shape, groups: int = 1) -> np.ndarray:
    """The Dirac delta of a 3-, 4- or 5-D convolution weight ``(out, in/groups, *k)``: each
    of the first ``min(out/groups, in)`` output channels of every group copies one input
    channel at the kernel's centre, so the convolution preserves its input (torch's
    ``dirac_``)."""
    shape = _shape(shape)
    if len(shape) not in (3, 4, 5):
        raise ValueError(f"dirac: only 3, 4 or 5-D weights are supported, got shape {shape}")
    if groups < 1 or shape[0] % groups:
        raise ValueError(f"dirac: dim 0 ({shape[0]}) must be divisible by groups ({groups})")
    out = np.zeros(shape)
    per_group = shape[0] // groups
    centre = tuple(k // 2 for k in shape[2:])
    for grp in range(groups):
        for d in range(min(per_group, shape[1])):
            out[(grp * per_group + d, d, *centre)] = 1.0
    return out


def sparse(shape: Shape, sparsity: float, std: float = 0.01, generator: Generator = None) -> np.ndarray:
    """A 2-D weight from N(0, std²) with ``ceil(sparsity · rows)`` zeros in every column
    (Martens, 2010; torch's ``sparse_``: the zeros' rows drawn per column without
    replacement)."""
    shape = _shape(shape)
    if len(shape) != 2:
        raise ValueError(f"sparse: only 2-D weights are supported, got shape {shape}")
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparse: sparsity must be in [0, 1], got {sparsity}")
    rows, cols = shape
    g = resolve_generator(generator)
    out = g.normal(0.0, std, size=shape)
    n_zero = int(math.ceil(sparsity * rows))
    for c in range(cols):
        out[g.permutation(rows)[:n_zero], c] = 0.0
    return out


# --------------------------------------------------------------------------- in-place forms


def _assign(param: Any, host: np.ndarray) -> Any:
    """Replace ``param.data`` with ``host`` moved to the parameter's backend, device, dtype."""
    data = param.data
    xp = _backend.namespace_of(data)
    param.data = _backend.asarray(
        host.astype(_backend.dtype_name(data.dtype)),
        xp,
        device=_backend.device_of(data),
    )
    return param


def _inplace(host_fn: Callable[..., np.ndarray]) -> Callable[..., Any]:
    def init_(param: Any, *args: Any, **kwargs: Any) -> Any:
        return _assign(param, host_fn(tuple(param.data.shape), *args, **kwargs))

    init_.__name__ = host_fn.__name__ + "_"
    init_.__qualname__ = init_.__name__
    init_.__doc__ = (
        f"In-place form of :func:`{host_fn.__name__}`: redraw ``param.data`` on its own "
        f"backend, device and dtype and return ``param``."
    )
    return init_


zeros_ = _inplace(zeros)
ones_ = _inplace(ones)
constant_ = _inplace(constant)
uniform_ = _inplace(uniform)
normal_ = _inplace(normal)
xavier_uniform_ = _inplace(xavier_uniform)
xavier_normal_ = _inplace(xavier_normal)
kaiming_uniform_ = _inplace(kaiming_uniform)
kaiming_normal_ = _inplace(kaiming_normal)
lecun_normal_ = _inplace(lecun_normal)
lecun_uniform_ = _inplace(lecun_uniform)
fan_in_uniform_ = _inplace(fan_in_uniform)
trunc_normal_ = _inplace(trunc_normal)
orthogonal_ = _inplace(orthogonal)
eye_ = _inplace(eye)
dirac_ = _inplace(dirac)
sparse_ = _inplace(sparse)
