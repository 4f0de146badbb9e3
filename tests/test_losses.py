"""Losses: (loss, grad) values vs torch, finite differences, stability, validation."""

import warnings

import numpy as np
import pytest

from xpnet.losses import (
    REDUCTIONS,
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
)
from xpnet.testing import get_backend, gradcheck_loss

# torch oracle, float64: the same formulas up to summation order (~1e-16 relative per
# op); 1e-10 leaves room for the reductions.
RTOL_F64 = 1e-10
ATOL_F64 = 1e-14
# float32: unit roundoff 6e-8 times reductions over a few dozen terms.
RTOL_F32 = 1e-5
ATOL_F32 = 1e-6

N, C = 6, 4


def rng(seed):
    return np.random.default_rng(seed)


def regression_inputs(seed=0):
    x = rng(seed).standard_normal((N, C))
    t = rng(seed + 1).standard_normal((N, C))
    # keep |x - t| away from L1's kink at 0 and Huber's switch at delta = 0.7
    d = x - t
    d = np.where(np.abs(d) < 0.1, 0.3 * np.sign(d) + 0.1, d)
    d = np.where(np.abs(np.abs(d) - 0.7) < 0.05, d * 1.2, d)
    return t + d, t


def probs(seed=0):
    return 1.0 / (1.0 + np.exp(-rng(seed).standard_normal((N, C))))


def soft_targets(seed=3):
    return rng(seed).uniform(size=(N, C))


def labels(seed=4):
    return rng(seed).integers(0, C, size=N)


def prob_targets(seed=5):
    # rows deliberately not normalised (sum 1.3): torch's gradient then is p Σt - t
    return rng(seed).dirichlet(np.ones(C), size=N) * 1.3


PW = np.array([0.5, 1.0, 2.0, 3.0])

# name -> (make ours(reduction), make torch(torch, reduction), input host, target host)
CASES = {
    "mse": (lambda r: MSELoss(reduction=r), lambda t, r: t.nn.MSELoss(reduction=r), *regression_inputs()),
    "l1": (lambda r: L1Loss(reduction=r), lambda t, r: t.nn.L1Loss(reduction=r), *regression_inputs()),
    "huber": (
        lambda r: HuberLoss(reduction=r, delta=0.7),
        lambda t, r: t.nn.HuberLoss(reduction=r, delta=0.7),
        *regression_inputs(),
    ),
    "bce": (lambda r: BCELoss(reduction=r), lambda t, r: t.nn.BCELoss(reduction=r), probs(), soft_targets()),
    "bce_logits": (
        lambda r: BCEWithLogitsLoss(reduction=r),
        lambda t, r: t.nn.BCEWithLogitsLoss(reduction=r),
        rng(6).standard_normal((N, C)) * 3,
        soft_targets(),
    ),
    "bce_logits_pos_weight_float": (
        lambda r: BCEWithLogitsLoss(reduction=r, pos_weight=2.5),
        lambda t, r: t.nn.BCEWithLogitsLoss(reduction=r, pos_weight=t.tensor(2.5, dtype=t.float64)),
        rng(7).standard_normal((N, C)) * 3,
        soft_targets(),
    ),
    "ce_labels": (
        lambda r: CrossEntropyLoss(reduction=r),
        lambda t, r: t.nn.CrossEntropyLoss(reduction=r),
        rng(8).standard_normal((N, C)) * 2,
        labels(),
    ),
    "ce_labels_smoothing": (
        lambda r: CrossEntropyLoss(reduction=r, label_smoothing=0.2),
        lambda t, r: t.nn.CrossEntropyLoss(reduction=r, label_smoothing=0.2),
        rng(8).standard_normal((N, C)) * 2,
        labels(),
    ),
    "ce_probs": (
        lambda r: CrossEntropyLoss(reduction=r),
        lambda t, r: t.nn.CrossEntropyLoss(reduction=r),
        rng(9).standard_normal((N, C)) * 2,
        prob_targets(),
    ),
    "ce_probs_smoothing": (
        lambda r: CrossEntropyLoss(reduction=r, label_smoothing=0.1),
        lambda t, r: t.nn.CrossEntropyLoss(reduction=r, label_smoothing=0.1),
        rng(9).standard_normal((N, C)) * 2,
        prob_targets(),
    ),
}


def move_target(backend, th, dtype):
    if np.issubdtype(th.dtype, np.integer):
        return backend.asarray(th.astype(np.int64))
    return backend.asarray(th, dtype=dtype)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES))
def test_gradcheck(backend, name, reduction):
    make, _, xh, th = CASES[name]
    x, t = backend.asarray(xh, dtype="float64"), move_target(backend, th, "float64")
    gradcheck_loss(make(reduction), x, t)


def test_gradcheck_pos_weight_array(backend):
    loss_fn = BCEWithLogitsLoss(pos_weight=backend.asarray(PW, dtype="float64"))
    x = backend.asarray(rng(1).standard_normal((N, C)), dtype="float64")
    gradcheck_loss(loss_fn, x, backend.asarray(soft_targets(), dtype="float64"))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CASES) + ["bce_logits_pos_weight_array"])
def test_matches_torch_autograd(backend, name, reduction, dtype):
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    if name == "bce_logits_pos_weight_array":
        make = lambda r: BCEWithLogitsLoss(reduction=r, pos_weight=backend.asarray(PW, dtype=dtype))  # noqa: E731
        make_t = lambda t, r: t.nn.BCEWithLogitsLoss(reduction=r, pos_weight=t.tensor(PW, dtype=tdt))  # noqa: E731
        xh, th = rng(10).standard_normal((N, C)) * 3, soft_targets()
    else:
        make, make_t, xh, th = CASES[name]
    tl = make_t(torch, reduction)
    if name == "bce_logits_pos_weight_float":  # torch wants pos_weight in the input's dtype
        tl = torch.nn.BCEWithLogitsLoss(reduction=reduction, pos_weight=torch.tensor(2.5, dtype=tdt))
    tx = torch.tensor(xh, dtype=tdt, requires_grad=True)
    tt = torch.tensor(th) if np.issubdtype(th.dtype, np.integer) else torch.tensor(th, dtype=tdt)
    tloss = tl(tx, tt)
    tloss.backward()

    x = backend.asarray(xh, dtype=dtype)
    loss, grad = make(reduction)(x, move_target(backend, th, dtype))
    backend.check(loss, dtype=dtype, shape=())
    backend.check(grad, dtype=dtype, shape=(N, C))
    rtol, atol = (RTOL_F64, ATOL_F64) if dtype == "float64" else (RTOL_F32, ATOL_F32)
    np.testing.assert_allclose(backend.to_numpy(loss), tloss.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(backend.to_numpy(grad), tx.grad.numpy(), rtol=rtol, atol=atol)


def test_mse_means_over_all_elements(backend):
    x = backend.asarray(np.array([[1.0, 2.0], [3.0, 4.0]]), dtype="float64")
    t = backend.asarray(np.zeros((2, 2)), dtype="float64")
    loss, grad = MSELoss()(x, t)
    assert backend.to_numpy(loss) == pytest.approx(30.0 / 4)
    np.testing.assert_allclose(backend.to_numpy(grad), [[0.5, 1.0], [1.5, 2.0]])
    loss_sum, _ = MSELoss(reduction="sum")(x, t)
    assert backend.to_numpy(loss_sum) == pytest.approx(30.0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_stable_for_logits_of_magnitude_1e4(backend, dtype):
    xh = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4], [-1e4, 1e4, 5.0]])
    yh = np.array([1, 2, 0, 1])
    x = backend.asarray(xh, dtype=dtype)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        ce, ce_g = CrossEntropyLoss(reduction="sum")(x, backend.asarray(yh))
        ces, ces_g = CrossEntropyLoss(label_smoothing=0.1)(x, backend.asarray(yh))
        bl, bl_g = BCEWithLogitsLoss(reduction="sum")(x, backend.asarray((xh > 0).astype(float), dtype=dtype))
        bw, bw_g = BCEWithLogitsLoss(pos_weight=3.0)(x, backend.asarray(np.ones_like(xh), dtype=dtype))
        p = backend.asarray(np.array([[0.0, 1.0, 0.5]]), dtype=dtype)
        bce, bce_g = BCELoss(reduction="sum")(p, backend.asarray(np.array([[1.0, 0.0, 1.0]]), dtype=dtype))
    for a in (ce, ce_g, ces, ces_g, bl, bl_g, bw, bw_g, bce, bce_g):
        assert np.all(np.isfinite(backend.to_numpy(backend.check(a, dtype=dtype))))
    # exact values: -log p of the labelled class, row by row: 2e4, log 3, log 2, 0
    np.testing.assert_allclose(backend.to_numpy(ce), 2e4 + np.log(3) + np.log(2), rtol=1e-6)
    np.testing.assert_allclose(backend.to_numpy(ce_g)[0], [1.0, -1.0, 0.0], atol=1e-6)
    # the ±1e4 logits agree with their targets and cost exactly 0; only 0 and 5 contribute
    np.testing.assert_allclose(backend.to_numpy(bl), np.log(2) + np.log1p(np.exp(-5.0)), rtol=1e-6)
    # torch clamps each log at -100: p = 0 with t = 1 and p = 1 with t = 0 cost 100 each
    np.testing.assert_allclose(backend.to_numpy(bce), 200.0 + np.log(2), rtol=1e-6)


def test_int_labels_of_any_width_and_onehot_targets(backend):
    xh = rng(0).standard_normal((N, C))
    x = backend.asarray(xh, dtype="float64")
    ref, ref_g = CrossEntropyLoss()(x, backend.asarray(labels()))
    for dt in ("int32", "uint8"):
        lab = backend.asarray(labels().astype(dt))
        loss, grad = CrossEntropyLoss()(x, lab)
        np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    onehot = np.eye(C)[labels()]
    loss, grad = CrossEntropyLoss()(x, backend.asarray(onehot, dtype="float64"))
    np.testing.assert_allclose(backend.to_numpy(loss), backend.to_numpy(ref), rtol=1e-14)
    np.testing.assert_allclose(backend.to_numpy(grad), backend.to_numpy(ref_g), atol=1e-16)


def test_uint8_labels_with_more_classes_than_uint8_holds(backend):
    xh = rng(1).standard_normal((3, 300))
    x = backend.asarray(xh, dtype="float64")
    ref, ref_g = CrossEntropyLoss()(x, backend.asarray(np.array([0, 255, 17])))
    loss, grad = CrossEntropyLoss()(x, backend.asarray(np.array([0, 255, 17], dtype=np.uint8)))
    np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))


def test_targets_cast_to_input_dtype(backend):
    x = backend.asarray(probs(), dtype="float32")
    loss, grad = BCELoss()(x, backend.asarray((soft_targets() > 0.5).astype(np.int64)))
    backend.check(loss, dtype="float32", shape=())
    backend.check(grad, dtype="float32", shape=(N, C))
    loss, grad = MSELoss()(x, backend.asarray(soft_targets(), dtype="float64"))
    backend.check(grad, dtype="float32", shape=(N, C))


def test_bad_labels(backend):
    x = backend.asarray(rng(0).standard_normal((3, C)), dtype="float64")
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"class labels must lie in \[0, 4\).*from 0 to 4"):
        ce(x, backend.asarray(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match=r"from -1 to 2"):
        ce(x, backend.asarray(np.array([-1, 2, 1])))
    with pytest.raises(TypeError, match="must have an integer dtype, got float64"):
        ce(x, backend.asarray(np.array([0.0, 1.0, 2.0]), dtype="float64"))
    with pytest.raises(ValueError, match="probability targets must be non-negative"):
        ce(x, backend.asarray(-np.ones((3, C)), dtype="float64"))
    # validate=False skips the value checks (no host sync); the dtype check stays
    ce.validate = False
    loss, _ = ce(x, backend.asarray(np.array([0, 4, 1])))
    assert np.isfinite(backend.to_numpy(loss))
    with pytest.raises(TypeError, match="integer dtype"):
        ce(x, backend.asarray(np.array([0.0, 1.0, 2.0]), dtype="float64"))


def test_bce_rejects_values_outside_unit_interval(backend):
    p = backend.asarray(np.array([[0.2, 1.5]]), dtype="float64")
    t = backend.asarray(np.array([[0.0, 1.0]]), dtype="float64")
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\].*Sigmoid"):
        BCELoss()(p, t)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        BCELoss()(backend.asarray(np.array([[0.2, 0.5]]), dtype="float64"), backend.asarray(np.array([[-1.0, 1.0]]), dtype="float64"))
    BCELoss(validate=False)(p, t)  # no check, no error


def test_shape_mismatches_raise(backend):
    x = backend.asarray(rng(0).standard_normal((N, 1)), dtype="float64")
    for loss_fn in (MSELoss(), L1Loss(), HuberLoss(), BCEWithLogitsLoss()):
        with pytest.raises(ValueError, match=r"target shape \(6,\) must equal the input shape \(6, 1\).*y\[:, None\]"):
            loss_fn(x, backend.asarray(np.zeros(N), dtype="float64"))
        with pytest.raises(ValueError, match="must equal the input shape"):
            loss_fn(x, backend.asarray(np.zeros((N, 2)), dtype="float64"))
    logits = backend.asarray(rng(0).standard_normal((N, C)), dtype="float64")
    ce = CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"class labels of shape \(6,\) or probabilities of shape \(6, 4\), got \(6, 1\).*1-D"):
        ce(logits, backend.asarray(labels()[:, None]))
    with pytest.raises(ValueError, match="got \\(5,\\)"):
        ce(logits, backend.asarray(labels()[:5]))
    with pytest.raises(ValueError, match=r"expected logits of shape \(N, C\), got \(4,\)"):
        ce(backend.asarray(np.zeros(C), dtype="float64"), backend.asarray(np.array(1)))
    with pytest.raises(ValueError, match="pos_weight of shape \\(3,\\) does not broadcast"):
        BCEWithLogitsLoss(pos_weight=backend.asarray(np.ones(3), dtype="float64"))(logits, logits)
    with pytest.raises(ValueError, match="empty input"):
        MSELoss()(backend.asarray(np.zeros((0, 2)), dtype="float64"), backend.asarray(np.zeros((0, 2)), dtype="float64"))


def test_mixing_backends_and_devices_raises(backend):
    x = backend.asarray(rng(0).standard_normal((N, C)), dtype="float64")
    other = get_backend("numpy" if backend.name != "numpy" else "array_api_strict")
    with pytest.raises(TypeError, match="different backends"):
        MSELoss()(x, other.asarray(np.zeros((N, C)), dtype="float64"))
    with pytest.raises(TypeError, match="different backends"):
        BCEWithLogitsLoss(pos_weight=other.asarray(PW, dtype="float64"))(x, x)
    if backend.name.startswith("array_api_strict"):
        dev = get_backend("array_api_strict" if backend.name.endswith("device1") else "array_api_strict:device1")
        with pytest.raises(ValueError, match="input is on device .* but target is on"):
            CrossEntropyLoss()(x, dev.asarray(labels()))


def test_integer_input_is_a_type_error():
    with pytest.raises(TypeError, match="real floating"):
        MSELoss()(np.zeros((2, 2), dtype=np.int64), np.zeros((2, 2)))


def test_constructor_validation_and_repr():
    for bad in ("none", "avg", "MEAN"):
        with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum'\)"):
            MSELoss(reduction=bad)
    with pytest.raises(ValueError, match="delta must be > 0"):
        HuberLoss(delta=0.0)
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\]"):
        CrossEntropyLoss(label_smoothing=1.5)
    with pytest.raises(TypeError, match="pos_weight must be a float or an array"):
        BCEWithLogitsLoss(pos_weight=[1.0, 2.0])
    assert repr(MSELoss()) == "MSELoss()"
    assert repr(CrossEntropyLoss(label_smoothing=0.1)) == "CrossEntropyLoss(label_smoothing=0.1)"
    assert repr(HuberLoss(reduction="sum", delta=2.0)) == "HuberLoss(reduction='sum', delta=2.0)"
    assert MSELoss().validate is True and MSELoss(validate=False).validate is False


def test_does_not_mutate_inputs(backend):
    for name, (make, _, xh, th) in CASES.items():
        x, t = backend.asarray(xh, dtype="float64"), move_target(backend, th, "float64")
        make("mean")(x, t)
        np.testing.assert_array_equal(backend.to_numpy(x), xh, err_msg=name)
        np.testing.assert_array_equal(backend.to_numpy(t), th, err_msg=name)
