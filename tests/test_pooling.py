"""MaxPool2d, AvgPool2d, AdaptiveAvgPool2d: torch.autograd oracle, ties, finite differences, errors."""

import numpy as np
import pytest

from xpnet import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d, Sequential
from xpnet.testing import check_layer, gradcheck

# float64 against torch: window sums/maxima of at most a dozen terms; max pooling is
# exact, averages differ by summation order only.
RTOL_F64 = 1e-9
ATOL_F64 = 1e-12

# torch keyword arguments shared by both window poolings; input (2, 3, 7, 6) (odd height)
WINDOWS = [
    dict(kernel_size=2),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=3, stride=2, ceil_mode=True),
    dict(kernel_size=2, stride=2, padding=1, ceil_mode=True),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=3, stride=1),
]


def host(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _ids(kw):
    return "_".join(f"{k}{v}" for k, v in kw.items()).replace(" ", "")


def _against_torch(backend, ours, theirs, xh):
    torch = pytest.importorskip("torch")
    tx = torch.tensor(xh, requires_grad=True)
    ty = theirs(tx)
    dyh = host(tuple(ty.shape), 5)
    ty.backward(torch.from_numpy(dyh))
    y = ours(backend.asarray(xh, dtype="float64"))
    backend.check(y, dtype="float64", shape=tuple(ty.shape))
    dx = ours.backward(backend.asarray(dyh, dtype="float64"))
    backend.check(dx, dtype="float64", shape=xh.shape)
    for a, t in [(y, ty), (dx, tx.grad)]:
        np.testing.assert_allclose(backend.to_numpy(a), t.detach().numpy(), rtol=RTOL_F64, atol=ATOL_F64)


@pytest.mark.parametrize("kw", WINDOWS + [dict(kernel_size=2, dilation=2, padding=1)], ids=_ids)
def test_maxpool_matches_torch(backend, kw):
    torch = pytest.importorskip("torch")
    _against_torch(backend, MaxPool2d(**kw), torch.nn.MaxPool2d(**kw), host((2, 3, 7, 6)))


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("kw", WINDOWS, ids=_ids)
def test_avgpool_matches_torch(backend, kw, count_include_pad):
    torch = pytest.importorskip("torch")
    kw = dict(kw, count_include_pad=count_include_pad)
    _against_torch(backend, AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), host((2, 3, 7, 6)))


def test_avgpool_divisor_override_matches_torch(backend):
    torch = pytest.importorskip("torch")
    kw = dict(kernel_size=3, stride=2, padding=1, divisor_override=5)
    _against_torch(backend, AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), host((1, 2, 5, 5)))


@pytest.mark.parametrize("output_size", [1, (1, 1), (2, 3), (3, None), (4, 5), (7, 6)], ids=str)
def test_adaptive_avgpool_matches_torch(backend, output_size):
    torch = pytest.importorskip("torch")
    _against_torch(
        backend, AdaptiveAvgPool2d(output_size), torch.nn.AdaptiveAvgPool2d(output_size), host((2, 3, 7, 6))
    )


def test_maxpool_ties_go_to_the_first_maximum_like_torch(backend):
    torch = pytest.importorskip("torch")
    x = np.zeros((1, 1, 4, 4))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[0, 0, 1, 1] = 1.0  # three tied maxima in one window
    _against_torch(backend, MaxPool2d(2), torch.nn.MaxPool2d(2), x)
    # all-equal overlapping windows with padding: every window picks its first element
    _against_torch(backend, MaxPool2d(3, 1, 1), torch.nn.MaxPool2d(3, 1, 1), np.zeros((1, 2, 5, 5)))


def test_maxpool_tie_rule_without_torch(backend):
    # The same rule checked by hand: the gradient lands on the first maximum (row-major).
    x = np.zeros((1, 1, 2, 2))
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = 2.0
    pool = MaxPool2d(2)
    pool(backend.asarray(x, dtype="float64"))
    dx = backend.to_numpy(pool.backward(backend.asarray(np.ones((1, 1, 1, 1)), dtype="float64")))
    np.testing.assert_array_equal(dx[0, 0], [[0.0, 1.0], [0.0, 0.0]])


def test_maxpool_backward_keeps_non_finite_dy_out_of_the_other_positions(backend):
    # NumPy multiplies dy by the arg-max mask when dy is finite (_backend.mask_multiplies);
    # an inf or NaN in dy must still reach only its window's maximum (inf * 0 is NaN).
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    dy = np.array([[[[np.inf, -1.0], [np.nan, 2.0]]]])
    pool = MaxPool2d(2)
    pool(backend.asarray(x, dtype="float64"))
    dx = backend.to_numpy(pool.backward(backend.asarray(dy, dtype="float64")))
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = np.inf, -1.0, np.nan, 2.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_maxpool_fast_paths_match_the_general_ones():
    """The NumPy shortcuts (arithmetic arg-max update, mask products, col2im into views)
    give the numbers of the portable path run on array-api-strict."""
    from xpnet.testing import get_backend

    strict = get_backend("array_api_strict")
    rng = np.random.default_rng(4)
    x = np.round(rng.standard_normal((2, 3, 7, 8)), 1)  # rounded: many ties
    for make in (lambda: MaxPool2d(2), lambda: MaxPool2d(3, 2, 1), lambda: MaxPool2d(2, 1, dilation=2)):
        got, ref = make(), make()
        y = got(x)
        dy_k = rng.standard_normal(y.shape)
        yr = ref(strict.asarray(x, dtype="float64"))
        np.testing.assert_array_equal(y, strict.to_numpy(yr))
        np.testing.assert_array_equal(got.backward(dy_k), strict.to_numpy(ref.backward(strict.asarray(dy_k, dtype="float64"))))


@pytest.mark.parametrize(
    "layer",
    [MaxPool2d(3, 2, 1), AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), AdaptiveAvgPool2d((2, 3))],
    ids=["max", "avg", "adaptive"],
)
def test_pooling_gradcheck(backend, layer):
    x = backend.asarray(host((1, 2, 5, 6)), dtype="float64")  # distinct values: no ties
    res = gradcheck(layer, x)
    assert set(res.max_abs_err) == {"input"}


@pytest.mark.parametrize(
    "factory",
    [lambda: MaxPool2d(2), lambda: AvgPool2d(3, 2, 1), lambda: AdaptiveAvgPool2d(1), lambda: AdaptiveAvgPool2d((2, 2))],
    ids=["max", "avg", "global", "adaptive"],
)
def test_pooling_check_layer(factory):
    assert check_layer(factory, (2, 3, 5, 4)).ok


def test_pooling_in_sequential_and_eval(backend):
    net = Sequential(MaxPool2d(2), AvgPool2d(2), AdaptiveAvgPool2d(1))
    x = backend.asarray(host((2, 3, 8, 8)), dtype="float32")
    y = backend.check(net(x), dtype="float32", shape=(2, 3, 1, 1))
    net.eval()
    np.testing.assert_array_equal(backend.to_numpy(net(x)), backend.to_numpy(y))
    with pytest.raises(RuntimeError, match="eval mode"):
        net.backward(y)


def test_pooling_errors():
    x3 = np.zeros((3, 8, 8))
    for layer in (MaxPool2d(2), AvgPool2d(2), AdaptiveAvgPool2d(1)):
        with pytest.raises(ValueError, match=r"expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
            layer(x3)
    with pytest.raises(ValueError, match=r"kernel \(effective size 5x5 with dilation\) is larger than the padded input \(4x4"):
        MaxPool2d(5, padding=0)(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        AvgPool2d(4, padding=1)(np.zeros((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="at most half"):
        MaxPool2d(2, padding=2)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        AvgPool2d(0)
    with pytest.raises(ValueError, match="divisor_override"):
        AvgPool2d(2, divisor_override=0)
    with pytest.raises(ValueError, match="output_size must be"):
        AdaptiveAvgPool2d(0)
    pool = MaxPool2d(2)
    pool(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match=r"expected dy of shape \(1, 1, 2, 2\)"):
        pool.backward(np.zeros((1, 1, 4, 4)))
    with pytest.raises(RuntimeError, match="no stored forward"):
        AvgPool2d(2).backward(np.zeros((1, 1, 1, 1)))


def test_pooling_defaults_and_repr():
    pool = MaxPool2d(3)
    assert pool.stride == (3, 3) and pool.padding == (0, 0) and not pool.ceil_mode
    assert AvgPool2d(2).count_include_pad
    assert "kernel_size=(3, 3)" in repr(pool)
    assert "output_size=(1, 1)" in repr(AdaptiveAvgPool2d(1))
