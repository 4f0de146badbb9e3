"""Initializers trunc_normal_, orthogonal_, eye_, dirac_, sparse_ (issue 13).

Deterministic ones equal torch's exactly; orthogonal equals torch's construction on the
same normal draws; random ones are checked for their distribution, and the same seed gives
the same weights on every backend (they are drawn on the host)."""

import math
import statistics

import numpy as np
import pytest

import xpnet
from xpnet import init

torch = pytest.importorskip("torch")


def _param(shape, backend=None, dtype="float64"):
    p = xpnet.Parameter(np.zeros(shape, dtype=dtype))
    if backend is not None:
        p.data = backend.asarray(p.data)
    return p


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2)])
def test_eye_matches_torch(backend, shape):
    p = init.eye_(_param(shape, backend))
    backend.check(p.data, dtype="float64", shape=shape)
    np.testing.assert_array_equal(backend.to_numpy(p.data), torch.nn.init.eye_(torch.empty(shape)).numpy())


@pytest.mark.parametrize(("shape", "groups"), [((4, 3, 3), 1), ((6, 2, 3, 3), 2), ((4, 4, 3, 2, 5), 1), ((3, 5, 2, 2), 1)])
def test_dirac_matches_torch(backend, shape, groups):
    p = init.dirac_(_param(shape, backend), groups=groups)
    backend.check(p.data, dtype="float64", shape=shape)
    want = torch.nn.init.dirac_(torch.empty(shape, dtype=torch.float64), groups=groups).numpy()
    np.testing.assert_array_equal(backend.to_numpy(p.data), want)


def test_dirac_convolution_is_identity():
    w = init.dirac((3, 3, 3, 3))
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    y = torch.nn.functional.conv2d(x, torch.tensor(w), padding=1)
    np.testing.assert_allclose(y.numpy(), x.numpy(), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 2, 3), (3, 3)])
def test_orthogonal_matches_torch_construction_on_the_same_draws(shape):
    got = init.orthogonal(shape, gain=1.5, generator=7)
    rows, cols = shape[0], math.prod(shape[1:])
    flat = torch.tensor(np.random.default_rng(7).standard_normal((rows, cols)))
    if rows < cols:
        flat = flat.T
    q, r = torch.linalg.qr(flat)
    q = q * torch.sign(torch.diag(r))
    if rows < cols:
        q = q.T
    np.testing.assert_allclose(got, (1.5 * q).reshape(shape).numpy(), rtol=1e-12, atol=1e-14)
    m = got.reshape(rows, cols) / 1.5
    gram = m @ m.T if rows <= cols else m.T @ m
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-12)


@pytest.mark.parametrize(("a", "b", "mean", "std"), [(-2.0, 2.0, 0.0, 1.0), (-0.5, 1.0, 0.2, 0.5), (3.0, 3.5, 0.0, 1.0)])
def test_trunc_normal_distribution(a, b, mean, std):
    x = init.trunc_normal((200, 100), mean=mean, std=std, a=a, b=b, generator=0)
    assert x.min() >= a and x.max() <= b
    # The mean of a truncated normal: μ + σ (φ(α) − φ(β)) / (Φ(β) − Φ(α)).
    unit = statistics.NormalDist()
    al, be = (a - mean) / std, (b - mean) / std
    z = unit.cdf(be) - unit.cdf(al)
    expect = mean + std * (unit.pdf(al) - unit.pdf(be)) / z
    spread = std * math.sqrt(1 + (al * unit.pdf(al) - be * unit.pdf(be)) / z - ((unit.pdf(al) - unit.pdf(be)) / z) ** 2)
    assert abs(x.mean() - expect) < 5 * spread / math.sqrt(x.size)
    assert abs(x.std() - spread) < 0.02 * spread


def test_sparse_zeros_per_column_and_std():
    x = init.sparse((50, 400), sparsity=0.3, std=0.02, generator=1)
    zeros = (x == 0).sum(axis=0)
    np.testing.assert_array_equal(zeros, math.ceil(0.3 * 50))
    assert abs(x[x != 0].std() - 0.02) < 0.001
    t = torch.empty(50, 400)
    torch.nn.init.sparse_(t, sparsity=0.3, std=0.02)
    np.testing.assert_array_equal((t == 0).sum(0).numpy(), zeros)  # torch's count too


@pytest.mark.parametrize(
    ("fn", "kw", "shape"),
    [
        (init.trunc_normal_, {"std": 0.02}, (8, 5)),
        (init.orthogonal_, {"gain": 2.0}, (8, 5)),
        (init.sparse_, {"sparsity": 0.5}, (8, 5)),
    ],
)
def test_same_seed_same_weights_on_every_backend(backend, fn, kw, shape):
    p = fn(_param(shape, backend, "float32"), generator=3, **kw)
    backend.check(p.data, dtype="float32", shape=shape)
    host = fn(_param(shape, None, "float32"), generator=3, **kw)
    np.testing.assert_array_equal(backend.to_numpy(p.data), host.data)


def test_errors_and_signatures_match_torch():
    import inspect

    for name in ("trunc_normal_", "orthogonal_", "eye_", "dirac_", "sparse_"):
        assert name in init.__all__
    for host, tname in ((init.trunc_normal, "trunc_normal_"), (init.orthogonal, "orthogonal_"),
                        (init.dirac, "dirac_"), (init.sparse, "sparse_")):
        ours = list(inspect.signature(host).parameters)[1:]
        theirs = list(inspect.signature(getattr(torch.nn.init, tname)).parameters)[1:]
        assert ours == theirs, (tname, ours, theirs)
    with pytest.raises(ValueError, match="2 or more dimensions"):
        init.orthogonal((4,))
    with pytest.raises(ValueError, match="only 2-D"):
        init.eye((2, 2, 2))
    with pytest.raises(ValueError, match="3, 4 or 5-D"):
        init.dirac((2, 2))
    with pytest.raises(ValueError, match="divisible by groups"):
        init.dirac((3, 1, 3), groups=2)
    with pytest.raises(ValueError, match="sparsity"):
        init.sparse((2, 2), sparsity=1.5)
    with pytest.raises(ValueError, match="a < b"):
        init.trunc_normal((2,), a=1.0, b=0.0)
