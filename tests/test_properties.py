"""Property-based tests: invariants that must hold for any input, not just hand-picked ones."""

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import xpnet
from xpnet import functional as F

FINITE = st.floats(-50.0, 50.0, allow_nan=False, allow_infinity=False, width=64)
SETTINGS = settings(max_examples=60, deadline=None)


def logits():
    shapes = st.tuples(st.integers(1, 6), st.integers(2, 7))
    return shapes.flatmap(lambda s: arrays(np.float64, s, elements=FINITE))


@SETTINGS
@given(z=logits(), shift=st.floats(-1e3, 1e3, allow_nan=False))
def test_softmax_is_invariant_to_a_per_row_shift(z, shift):
    # The stable softmax subtracts the row max: adding any constant must change nothing.
    p = F.softmax(z)
    q = F.softmax(z + shift)
    np.testing.assert_allclose(p, q, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    assert (p >= 0).all()


@SETTINGS
@given(z=logits(), data=st.data())
def test_cross_entropy_gradient_is_p_minus_onehot_over_n(z, data):
    n, c = z.shape
    labels = np.array(data.draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)))
    loss, grad = xpnet.CrossEntropyLoss()(z, labels)
    expected = (F.softmax(z) - np.eye(c)[labels]) / n
    np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-15)
    assert float(loss) >= 0.0


@SETTINGS
@given(x=st.floats(-30.0, 30.0, allow_nan=False))
def test_erf_matches_math_erf_and_is_odd(x):
    a = F.erf(np.array([x, -x]))
    assert abs(a[0] - math.erf(x)) < 1e-14
    assert a[0] == -a[1]


@SETTINGS
@given(z=arrays(np.float64, st.integers(1, 20), elements=st.floats(-1e4, 1e4, allow_nan=False)))
def test_sigmoid_is_bounded_and_symmetric_for_large_inputs(z):
    s = F.sigmoid(z)
    assert np.isfinite(s).all() and (s >= 0).all() and (s <= 1).all()
    np.testing.assert_allclose(s + F.sigmoid(-z), 1.0, rtol=0, atol=1e-15)
