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


# "none" (per-element losses) is covered in tests/test_losses_catalog.py.
SCALAR_REDUCTIONS = tuple(r for r in REDUCTIONS if r != "none")


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


@pytest.mark.parametrize("reduction", SCALAR_REDUCTIONS)
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
@pytest.mark.parametrize("reduction", SCALAR_REDUCTIONS)
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


@pytest.mark.parametrize("shape", [(4, 3), (2, 1)], ids=["mean", "factor-1"])
def test_mse_called_again_with_its_target_matches_a_fresh_loss(backend, shape):
    """The second call with the same target array skips the checks (validate once):
    the same numbers as a fresh loss, and every change still goes through them."""
    import copy
    import gc
    import weakref

    rng = np.random.default_rng(3)
    t = backend.asarray(rng.standard_normal(shape), dtype="float32")
    loss_fn = MSELoss()
    for _ in range(3):  # the first call checks and keeps; the next ones take the kept path
        x = backend.asarray(rng.standard_normal(shape), dtype="float32")
        loss, grad = loss_fn(x, t)
        ref_loss, ref_grad = MSELoss()(x, t)
        backend.check(loss, dtype="float32", shape=())
        backend.check(grad, dtype="float32", shape=shape)
        np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref_loss))
        np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_grad))
    assert "_kept_call" in loss_fn.__dict__
    # another input shape, dtype, or the reduction changed: checked as usual
    with pytest.raises(ValueError, match="target shape"):
        loss_fn(backend.asarray(np.ones((shape[0] + 1, shape[1])), dtype="float32"), t)
    x64 = backend.asarray(np.ones(shape), dtype="float64")
    backend.check(loss_fn(x64, t)[1], dtype="float64", shape=shape)
    loss_fn(x, t)
    loss_fn.reduction = "sum"
    np.testing.assert_array_equal(backend.to_numpy(loss_fn(x, t)[0]), backend.to_numpy(MSELoss(reduction="sum")(x, t)[0]))
    # copies start without it; the target is not kept alive
    loss_fn.reduction = "mean"
    loss_fn(x, t)
    assert "_kept_call" not in copy.deepcopy(loss_fn).__dict__
    ref = weakref.ref(t)
    del t
    gc.collect()
    assert ref() is None


def test_mse_kept_call_notices_a_target_reshaped_in_place():
    t = np.zeros((2, 3), np.float32)
    loss_fn = MSELoss()
    x = np.ones((2, 3), np.float32)
    loss_fn(x, t)
    loss_fn(x, t)
    t.shape = (3, 2)  # the same array object, another shape: no silent broadcasting
    with pytest.raises(ValueError, match="target shape"):
        loss_fn(x, t)


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
    for bad in ("avg", "MEAN", None):
        with pytest.raises(ValueError, match=r"reduction must be one of \('mean', 'sum', 'none'\)"):
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


# ------------------------------------------------- CrossEntropyLoss: weight, ignore_index

CE_W = np.array([0.5, 1.0, 2.0, 3.0])


def labels_with_ignored(ignored=-100, seed=11):
    y = rng(seed).integers(0, C, size=N)
    y[[1, 4]] = ignored  # two of the six samples are ignored
    return y


# name -> (our kwargs, torch kwargs, uses weight, input host, target host); the weight
# itself is moved to each backend/dtype by the test.
CE_WEIGHTED = {
    "weight": ({}, {}, True, rng(12).standard_normal((N, C)) * 2, labels()),
    "weight_smoothing": (
        {"label_smoothing": 0.2}, {"label_smoothing": 0.2}, True,
        rng(28).standard_normal((N, C)) * 2, labels(),
    ),
    "weight_negative_ignore": (  # torch allows any weights; the mean divides by Σ w[y_i]
        {"ignore_index": 1}, {"ignore_index": 1}, "negative",
        rng(29).standard_normal((N, C)) * 2, labels_with_ignored(1),
    ),
    "ignore": ({}, {}, False, rng(13).standard_normal((N, C)) * 2, labels_with_ignored()),
    "ignore_index_in_range": (
        {"ignore_index": 2}, {"ignore_index": 2}, False,
        rng(14).standard_normal((N, C)) * 2, labels_with_ignored(2),
    ),
    "weight_ignore": ({}, {}, True, rng(15).standard_normal((N, C)) * 2, labels_with_ignored()),
    "weight_ignore_in_range_smoothing": (
        {"ignore_index": 0, "label_smoothing": 0.2}, {"ignore_index": 0, "label_smoothing": 0.2},
        True, rng(16).standard_normal((N, C)) * 2, labels_with_ignored(0),
    ),
    "weight_ignore_smoothing": (
        {"label_smoothing": 0.15}, {"label_smoothing": 0.15}, True,
        rng(17).standard_normal((N, C)) * 2, labels_with_ignored(),
    ),
    "ignore_smoothing": (
        {"label_smoothing": 0.15}, {"label_smoothing": 0.15}, False,
        rng(18).standard_normal((N, C)) * 2, labels_with_ignored(),
    ),
    "soft_weight": ({}, {}, True, rng(19).standard_normal((N, C)) * 2, prob_targets()),
    "soft_weight_smoothing": (
        {"label_smoothing": 0.1}, {"label_smoothing": 0.1}, True,
        rng(20).standard_normal((N, C)) * 2, prob_targets(),
    ),
}


CE_W_NEG = np.array([0.5, -1.0, 2.0, -3.0])


def ce_weight_host(use_w):
    return {True: CE_W, "negative": CE_W_NEG}.get(use_w)


def make_weighted_ce(backend, name, reduction, dtype, **extra):
    kw, _, use_w, _, _ = CE_WEIGHTED[name]
    weight = backend.asarray(ce_weight_host(use_w), dtype=dtype) if use_w else None
    return CrossEntropyLoss(weight=weight, reduction=reduction, **kw, **extra)


def promised_valid(name):
    # validate=False promises labels in [0, C): true unless the case holds -100 labels
    th = CE_WEIGHTED[name][4]
    return not np.issubdtype(th.dtype, np.integer) or np.all(th >= 0)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("reduction", SCALAR_REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CE_WEIGHTED))
def test_ce_weight_ignore_index_match_torch(backend, name, reduction, dtype):
    torch = pytest.importorskip("torch")
    tdt = getattr(torch, dtype)
    _, tkw, use_w, xh, th = CE_WEIGHTED[name]
    tw = torch.tensor(ce_weight_host(use_w), dtype=tdt) if use_w else None
    tx = torch.tensor(xh, dtype=tdt, requires_grad=True)
    tt = torch.tensor(th) if np.issubdtype(th.dtype, np.integer) else torch.tensor(th, dtype=tdt)
    tloss = torch.nn.CrossEntropyLoss(weight=tw, reduction=reduction, **tkw)(tx, tt)
    tloss.backward()

    x, t = backend.asarray(xh, dtype=dtype), move_target(backend, th, dtype)
    loss, grad = make_weighted_ce(backend, name, reduction, dtype)(x, t)
    backend.check(loss, dtype=dtype, shape=())
    backend.check(grad, dtype=dtype, shape=(N, C))
    rtol, atol = (RTOL_F64, ATOL_F64) if dtype == "float64" else (RTOL_F32, ATOL_F32)
    np.testing.assert_allclose(backend.to_numpy(loss), tloss.item(), rtol=rtol, atol=atol)
    np.testing.assert_allclose(backend.to_numpy(grad), tx.grad.numpy(), rtol=rtol, atol=atol)
    if np.issubdtype(th.dtype, np.integer):  # ignored samples: exactly zero gradient
        ignored = th == CE_WEIGHTED[name][0].get("ignore_index", -100)
        assert np.all(backend.to_numpy(grad)[ignored] == 0.0)
    if promised_valid(name):  # the unvalidated (training) path gives the same numbers
        loss_nv, grad_nv = make_weighted_ce(backend, name, reduction, dtype, validate=False)(x, t)
        np.testing.assert_allclose(backend.to_numpy(loss_nv), tloss.item(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(backend.to_numpy(grad_nv), tx.grad.numpy(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("reduction", SCALAR_REDUCTIONS)
@pytest.mark.parametrize("name", sorted(CE_WEIGHTED))
def test_ce_weight_ignore_index_gradcheck(backend, name, reduction):
    xh, th = CE_WEIGHTED[name][3:]
    x, t = backend.asarray(xh, dtype="float64"), move_target(backend, th, "float64")
    gradcheck_loss(make_weighted_ce(backend, name, reduction, "float64"), x, t)


@pytest.mark.parametrize("use_weight", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_ce_all_ignored(backend, use_weight, smoothing):
    # torch: the mean over zero samples is 0/0 = NaN, with a zero gradient; the sum is 0
    torch = pytest.importorskip("torch")
    xh, yh = rng(21).standard_normal((N, C)), np.full(N, -100)
    tx = torch.tensor(xh, requires_grad=True)
    tw = torch.tensor(CE_W) if use_weight else None
    tloss = torch.nn.CrossEntropyLoss(weight=tw, label_smoothing=smoothing)(tx, torch.tensor(yh))
    tloss.backward()
    assert np.isnan(tloss.item()) and np.all(tx.grad.numpy() == 0.0)  # the oracle's claim
    w = backend.asarray(CE_W, dtype="float64") if use_weight else None
    x, y = backend.asarray(xh, dtype="float64"), backend.asarray(yh)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NaN by design, without a NumPy 0/0 warning
        loss, grad = CrossEntropyLoss(weight=w, label_smoothing=smoothing)(x, y)
        loss_sum, grad_sum = CrossEntropyLoss(weight=w, reduction="sum", label_smoothing=smoothing)(x, y)
    backend.check(loss, dtype="float64", shape=())
    backend.check(grad, dtype="float64", shape=(N, C))
    assert np.isnan(backend.to_numpy(loss))
    np.testing.assert_array_equal(backend.to_numpy(grad), np.zeros((N, C)))
    assert backend.to_numpy(loss_sum) == 0.0
    np.testing.assert_array_equal(backend.to_numpy(grad_sum), np.zeros((N, C)))


def test_ce_validate_false_fast_path_is_bit_identical(backend):
    # validate=False skips the default ignore_index's mask (labels promised in [0, C));
    # with valid labels both paths must give the same bits.
    x = backend.asarray(rng(22).standard_normal((N, C)), dtype="float64")
    y = backend.asarray(labels())
    for kw in ({}, {"label_smoothing": 0.1}):
        ref, ref_g = CrossEntropyLoss(**kw)(x, y)
        loss, grad = CrossEntropyLoss(validate=False, **kw)(x, y)
        np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
        np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))


def test_ce_ignore_index_in_range_is_honoured_without_validation(backend):
    # an ignore_index in [0, C) can be a promised-valid label: it is masked even then
    xh, yh = rng(23).standard_normal((N, C)), labels_with_ignored(3)
    x, y = backend.asarray(xh, dtype="float64"), backend.asarray(yh)
    ref, ref_g = CrossEntropyLoss(ignore_index=3)(x, y)
    loss, grad = CrossEntropyLoss(ignore_index=3, validate=False)(x, y)
    np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))
    kept = yh != 3
    direct, _ = CrossEntropyLoss()(backend.asarray(xh[kept], dtype="float64"), backend.asarray(yh[kept]))
    np.testing.assert_allclose(backend.to_numpy(loss), backend.to_numpy(direct), rtol=RTOL_F64)


def test_ce_ignore_index_and_narrow_label_dtypes(backend):
    # uint8 cannot hold -100 (no label is ignored); it can hold ignore_index=2
    xh = rng(24).standard_normal((N, C))
    x = backend.asarray(xh, dtype="float64")
    y64 = labels_with_ignored(2)
    ref, ref_g = CrossEntropyLoss(ignore_index=2)(x, backend.asarray(y64))
    loss, grad = CrossEntropyLoss(ignore_index=2)(x, backend.asarray(y64.astype(np.uint8)))
    np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))
    ref, _ = CrossEntropyLoss()(x, backend.asarray(labels()))
    loss, _ = CrossEntropyLoss()(x, backend.asarray(labels().astype(np.uint8)))
    np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))


def test_ce_label_validation_with_ignore_index(backend):
    x = backend.asarray(rng(25).standard_normal((3, C)), dtype="float64")
    CrossEntropyLoss()(x, backend.asarray(np.array([0, -100, 3])))  # -100 is allowed
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\).*from -5 to 3 \(besides ignore_index=-100\)"):
        CrossEntropyLoss()(x, backend.asarray(np.array([-5, -100, 3])))
    with pytest.raises(ValueError, match=r"from -100 to 1 \(besides ignore_index=7\)"):
        CrossEntropyLoss(ignore_index=7)(x, backend.asarray(np.array([-100, 7, 1])))


def test_ce_weight_and_ignore_index_errors(backend):
    x = backend.asarray(rng(26).standard_normal((N, C)), dtype="float64")
    y = backend.asarray(labels())
    with pytest.raises(ValueError, match=r"weight must have shape \(4,\).*got \(3,\)"):
        CrossEntropyLoss(weight=backend.asarray(np.ones(3), dtype="float64"))(x, y)
    with pytest.raises(ValueError, match=r"weight must be 1-D.*got shape \(1, 4\)"):
        CrossEntropyLoss(weight=backend.asarray(np.ones((1, C)), dtype="float64"))
    with pytest.raises(TypeError, match="weight has dtype float32 but the input is float64"):
        CrossEntropyLoss(weight=backend.asarray(CE_W, dtype="float32"))(x, y)
    other = get_backend("numpy" if backend.name != "numpy" else "array_api_strict")
    with pytest.raises(TypeError, match="different backends"):
        CrossEntropyLoss(weight=other.asarray(CE_W, dtype="float64"))(x, y)
    if backend.name.startswith("array_api_strict"):
        dev = get_backend("array_api_strict" if backend.name.endswith("device1") else "array_api_strict:device1")
        with pytest.raises(ValueError, match="weight is on device .* but the input is on"):
            CrossEntropyLoss(weight=dev.asarray(CE_W, dtype="float64"))(x, y)
    probs_t = backend.asarray(prob_targets(), dtype="float64")
    with pytest.raises(ValueError, match=r"ignore_index=0 applies to class-label targets only"):
        CrossEntropyLoss(ignore_index=0)(x, probs_t)
    CrossEntropyLoss(ignore_index=-1)(x, probs_t)  # negative: accepted and unused, as torch


def test_ce_weight_constructor_validation_and_repr():
    with pytest.raises(TypeError, match="weight must be None or an array"):
        CrossEntropyLoss(weight=[1.0, 2.0])
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        CrossEntropyLoss(ignore_index=1.5)
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        CrossEntropyLoss(ignore_index=True)
    assert CrossEntropyLoss(ignore_index=np.int64(3)).ignore_index == 3
    assert repr(CrossEntropyLoss()) == "CrossEntropyLoss()"
    assert (
        repr(CrossEntropyLoss(weight=np.ones(3), ignore_index=0, reduction="sum"))
        == "CrossEntropyLoss(reduction='sum', weight=<array (3,)>, ignore_index=0)"
    )


def test_ce_weight_not_mutated(backend):
    w = backend.asarray(CE_W, dtype="float64")
    x = backend.asarray(rng(27).standard_normal((N, C)), dtype="float64")
    for kw in ({}, {"label_smoothing": 0.1}):
        CrossEntropyLoss(weight=w, **kw)(x, backend.asarray(labels_with_ignored()))
        CrossEntropyLoss(weight=w, **kw)(x, backend.asarray(prob_targets(), dtype="float64"))
    np.testing.assert_array_equal(backend.to_numpy(w), CE_W)


# ------------------------------------------------------------------ validate once


def _count_syncs(monkeypatch):
    """Count the host synchronisations of the label check."""
    import xpnet.losses as L

    calls = []
    real_flags, real_bool = L._to_host_flags, L._to_host_bool
    monkeypatch.setattr(L, "_to_host_flags", lambda *a: calls.append("flags") or real_flags(*a))
    monkeypatch.setattr(L, "_to_host_bool", lambda *a: calls.append("bool") or real_bool(*a))
    return calls


@pytest.mark.parametrize("reduction", SCALAR_REDUCTIONS)
def test_ce_validates_a_target_array_once_and_reuses_its_targets(backend, monkeypatch, reduction):
    calls = _count_syncs(monkeypatch)
    x = backend.asarray(rng(40).standard_normal((N, C)), dtype="float64")
    y = backend.asarray(labels())
    ce = CrossEntropyLoss(reduction=reduction)
    first = ce(x, y)
    assert len(calls) == 1  # the labels were checked, with one host transfer
    again = ce(x, y)
    assert len(calls) == 1  # the very same array: neither checked nor rebuilt
    fresh = CrossEntropyLoss(reduction=reduction, validate=False)(x, y)  # builds its targets
    for a, b, c in zip(first, again, fresh):
        backend.check(b, dtype="float64")
        np.testing.assert_array_equal(backend.to_numpy(b), backend.to_numpy(a))
        np.testing.assert_array_equal(backend.to_numpy(b), backend.to_numpy(c))
    # another array with the same values is another target: checked again
    ce(x, backend.asarray(labels()))
    assert len(calls) == 2


def test_ce_forget_targets_after_refilling_a_label_buffer(backend):
    x = backend.asarray(rng(41).standard_normal((N, C)), dtype="float64")
    yh = labels()
    y = backend.asarray(yh.copy())  # (NumPy's asarray would share yh's memory)
    ce = CrossEntropyLoss()
    ce(x, y)
    y[0] = (int(yh[0]) + 1) % C  # a new label in place
    ce.forget_targets()
    loss, grad = ce(x, y)
    yh2 = yh.copy()
    yh2[0] = (yh[0] + 1) % C
    ref, ref_g = CrossEntropyLoss()(x, backend.asarray(yh2))
    np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))
    y[1] = C  # out of range: checked again after forget_targets
    ce.forget_targets()
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        ce(x, y)


def test_ce_torch_label_tensor_refilled_in_place_is_checked_again():
    torch = pytest.importorskip("torch")
    x = torch.tensor(rng(42).standard_normal((N, C)))
    yh = labels()
    y = torch.tensor(yh)
    ce = CrossEntropyLoss()
    ce(x, y)
    y[0] = (int(yh[0]) + 1) % C  # torch counts the write: no forget_targets needed
    loss, _ = ce(x, y)
    yh[0] = (yh[0] + 1) % C
    ref, _ = CrossEntropyLoss()(x, torch.tensor(yh))
    assert float(loss) == float(ref)
    y[1] = C
    with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
        ce(x, y)


def test_ce_kept_targets_follow_the_input_and_the_settings(backend):
    # the kept targets belong to one input shape/dtype and one set of settings
    y = backend.asarray(labels())
    ce = CrossEntropyLoss()
    x64 = backend.asarray(rng(43).standard_normal((N, C)), dtype="float64")
    ce(x64, y)
    ce.reduction = "sum"
    loss, grad = ce(x64, y)
    ref, ref_g = CrossEntropyLoss(reduction="sum")(x64, y)
    np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))
    np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    x32 = backend.asarray(rng(43).standard_normal((N, C)), dtype="float32")
    loss, grad = ce(x32, y)
    backend.check(grad, dtype="float32", shape=(N, C))
    backend.check(loss, dtype="float32", shape=())
    # settings that leave the fused path, set after the targets were kept
    for setting, value in (("label_smoothing", 0.1), ("weight", backend.asarray(np.linspace(0.5, 2, C), dtype="float32"))):
        kept = CrossEntropyLoss()
        kept(x32, y), kept(x32, y)
        setattr(kept, setting, value)
        loss, grad = kept(x32, y)
        ref, ref_g = CrossEntropyLoss(**{setting: value})(x32, y)
        np.testing.assert_array_equal(backend.to_numpy(grad), backend.to_numpy(ref_g))
        np.testing.assert_array_equal(backend.to_numpy(loss), backend.to_numpy(ref))
    # another batch size, and a label array reshaped in place (same object)
    kept = CrossEntropyLoss()
    kept(x32, y), kept(x32, y)
    with pytest.raises(ValueError):
        kept(x32[: N - 1, :], y)
    if isinstance(y, np.ndarray):
        y2 = y.copy()
        kept(x32, y2), kept(x32, y2)
        y2.shape = (1, N)
        with pytest.raises(ValueError):
            kept(x32, y2)
