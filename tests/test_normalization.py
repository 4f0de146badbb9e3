"""BatchNorm1d, BatchNorm2d, LayerNorm: torch.autograd oracle, running statistics, gradchecks, errors."""

import numpy as np
import pytest

import xpnet
from xpnet import BatchNorm1d, BatchNorm2d, LayerNorm, Linear, Sequential
from xpnet.checkpoint import load_checkpoint, save_checkpoint
from xpnet.testing import check_layer, gradcheck
from xpnet.testing.gradcheck import numeric_grad

# torch.autograd oracle in float64: the same formulas on the same numbers, reductions
# summed in another order: a few ulps (1e-16) per op, so 1e-9 relative is generous; the
# absolute floor covers entries that cancel to ~0 (a normalized value near the mean,
# Σ dy over a channel), whose relative error is meaningless.
RTOL = 1e-9
ATOL = 1e-12
# float32 against torch float32: a unit roundoff of 6e-8 times reductions of a few dozen
# terms, divided by σ̂ ~ 1.
RTOL_F32 = 1e-5
ATOL_F32 = 1e-5


def host(shape, seed=0, scale=1.0, shift=0.0):
    return shift + scale * np.random.default_rng(seed).standard_normal(shape)


def _need_f64(backend):
    backend.dtype("float64")  # Float64Unavailable: the plugin skips on float32-only devices


def _close(backend, ours, theirs, *, dtype="float64", rtol=RTOL, atol=ATOL, what=""):
    backend.check(ours, dtype=dtype, shape=tuple(theirs.shape))
    np.testing.assert_allclose(backend.to_numpy(ours), theirs.detach().numpy(), rtol=rtol, atol=atol, err_msg=what)


# ------------------------------------------------------------------ BatchNorm vs torch

BN_CASES = [
    # (class, input shape, affine, track_running_stats, momentum)
    ("BatchNorm1d", (5, 3), True, True, 0.1),
    ("BatchNorm1d", (5, 3), False, True, None),
    ("BatchNorm1d", (2, 4), True, False, 0.1),
    ("BatchNorm1d", (4, 3, 6), True, True, None),
    ("BatchNorm1d", (1, 3, 7), True, True, 0.3),  # batch 1: the statistics come from L
    ("BatchNorm1d", (3, 2, 5), False, False, 0.1),
    ("BatchNorm2d", (3, 2, 4, 5), True, True, 0.1),
    ("BatchNorm2d", (1, 3, 3, 3), True, True, None),
    ("BatchNorm2d", (2, 2, 3, 1), False, True, 0.5),
    ("BatchNorm2d", (4, 1, 2, 3), True, False, 0.1),
]


def _bn_pair(torch, cls, c, affine, track, momentum, seed=0):
    ours = getattr(xpnet, cls)(c, momentum=momentum, affine=affine, track_running_stats=track, dtype="float64")
    theirs = getattr(torch.nn, cls)(c, momentum=momentum, affine=affine, track_running_stats=track).double()
    if affine:  # random γ, β: ones and zeros would hide a transposed or missing factor
        w, b = host((c,), seed + 10, 0.5, 1.0), host((c,), seed + 11)
        ours.weight.data, ours.bias.data = w, b
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(w))
            theirs.bias.copy_(torch.from_numpy(b))
    return ours, theirs


@pytest.mark.parametrize("cls, shape, affine, track, momentum", BN_CASES)
def test_batchnorm_matches_torch(backend, cls, shape, affine, track, momentum):
    torch = pytest.importorskip("torch")
    _need_f64(backend)
    c = shape[1]
    bn, tb = _bn_pair(torch, cls, c, affine, track, momentum)
    backend.move(bn)
    # Three training steps on differently shifted batches: the running statistics must
    # follow torch's update (momentum, or the cumulative average when it is None).
    for step in range(3):
        xh, dyh = host(shape, step, 2.0, step - 1.0), host(shape, 100 + step)
        tx = torch.tensor(xh, requires_grad=True)
        tb.zero_grad()
        ty = tb(tx)
        ty.backward(torch.tensor(dyh))
        bn.zero_grad()
        y = bn(backend.asarray(xh, dtype="float64"))
        dx = bn.backward(backend.asarray(dyh, dtype="float64"))
        _close(backend, y, ty, what=f"output, step {step}")
        _close(backend, dx, tx.grad, what=f"dx, step {step}")
        if affine:
            _close(backend, bn.weight.grad, tb.weight.grad, what="weight.grad")
            _close(backend, bn.bias.grad, tb.bias.grad, what="bias.grad")
    if track:
        _close(backend, bn.running_mean, tb.running_mean, what="running_mean")
        _close(backend, bn.running_var, tb.running_var, what="running_var")
        backend.check(bn.num_batches_tracked, dtype="int64", shape=())
        assert int(backend.to_numpy(bn.num_batches_tracked)) == int(tb.num_batches_tracked) == 3
    else:
        assert bn.running_mean is None and "running_mean" not in bn.state_dict()
    # Eval mode: the running statistics (or, without them, the batch's own), batch size 1 too.
    bn.eval()
    tb.eval()
    for eval_shape in (shape, (1, *shape[1:])):
        xh = host(eval_shape, 7, 1.5, 0.5)
        if not track and np.prod(eval_shape) // c <= 1:
            continue
        _close(backend, bn(backend.asarray(xh, dtype="float64")), tb(torch.tensor(xh)), what="eval output")


def test_batchnorm_float32_matches_torch(backend):
    torch = pytest.importorskip("torch")
    bn, tb = _bn_pair(torch, "BatchNorm2d", 3, True, True, 0.1)
    backend.move(bn, dtype="float32")
    tb.float()
    xh, dyh = host((4, 3, 3, 2), 1, 3.0, 2.0).astype("float32"), host((4, 3, 3, 2), 2).astype("float32")
    tx = torch.tensor(xh, requires_grad=True)
    ty = tb(tx)
    ty.backward(torch.tensor(dyh))
    y = bn(backend.asarray(xh))
    dx = bn.backward(backend.asarray(dyh))
    tol = dict(dtype="float32", rtol=RTOL_F32, atol=ATOL_F32)
    for ours, theirs in [(y, ty), (dx, tx.grad), (bn.weight.grad, tb.weight.grad), (bn.bias.grad, tb.bias.grad),
                         (bn.running_mean, tb.running_mean), (bn.running_var, tb.running_var)]:
        _close(backend, ours, theirs, **tol)


# ------------------------------------------------------------------ finite differences


@pytest.mark.parametrize("cls, shape", [("BatchNorm1d", (4, 3)), ("BatchNorm1d", (2, 3, 4)), ("BatchNorm2d", (2, 2, 3, 2))])
@pytest.mark.parametrize("affine", [True, False])
def test_batchnorm_gradcheck(backend, cls, shape, affine):
    _need_f64(backend)
    # gradcheck perturbs in eval mode; without running statistics eval mode normalizes with
    # the batch's statistics, the same function the training-mode backward differentiates.
    bn = getattr(xpnet, cls)(shape[1], affine=affine, track_running_stats=False, dtype="float64")
    if affine:
        bn.weight.data, bn.bias.data = host((shape[1],), 1, 0.5, 1.0), host((shape[1],), 2)
    backend.move(bn)
    res = gradcheck(bn, backend.asarray(host(shape, 3), dtype="float64"))
    assert set(res.max_abs_err) == {"input"} | ({"weight", "bias"} if affine else set())


def test_tracked_batchnorm_training_backward_is_the_derivative_of_training_forward(backend):
    # With running statistics, eval mode is another function; differentiate the training one.
    _need_f64(backend)
    bn = backend.move(BatchNorm1d(3, dtype="float64"))
    bn.weight.data = backend.asarray(host((3,), 4, 0.5, 1.0), dtype="float64")
    x = backend.asarray(host((4, 3, 2), 5), dtype="float64")
    dyh = host((4, 3, 2), 6)
    dy = backend.asarray(dyh, dtype="float64")

    def loss(a):
        y = bn.forward(a)
        bn.pop_saved()
        return float(np.sum(backend.to_numpy(y) * dyh))

    bn.forward(x)
    dx = bn.backward(dy)
    np.testing.assert_allclose(backend.to_numpy(dx), numeric_grad(loss, x), rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ check_layer


@pytest.mark.parametrize(
    "factory, shape, grad",
    [
        (lambda: BatchNorm1d(3, track_running_stats=False), (4, 3), True),
        (lambda: BatchNorm1d(3, affine=False, track_running_stats=False), (2, 3, 5), True),
        (lambda: BatchNorm2d(2, track_running_stats=False), (2, 2, 3, 3), True),
        (lambda: BatchNorm1d(3), (4, 3, 2), False),  # eval mode differs: gradcheck above instead
        (lambda: BatchNorm2d(2, momentum=None), (3, 2, 2, 2), False),
        (lambda: LayerNorm((3, 4)), (2, 3, 4), True),
        (lambda: LayerNorm(5, elementwise_affine=False), (3, 5), True),
        (lambda: LayerNorm(4, bias=False), (2, 2, 4), True),
    ],
)
def test_check_layer_passes(factory, shape, grad):
    check_layer(factory, shape, gradcheck=grad)


# ------------------------------------------------------------------ buffers and state


def test_batchnorm_state_dict_and_buffers_are_torchs():
    bn = BatchNorm2d(3)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert [n for n, _ in bn.named_parameters()] == ["weight", "bias"]
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert bn.num_batches_tracked.dtype == np.int64 and bn.running_var.dtype == np.float32
    torch = pytest.importorskip("torch")
    tb = torch.nn.BatchNorm2d(3)
    assert list(bn.state_dict()) == list(tb.state_dict())
    tb.train()
    tb(torch.randn(4, 3, 2, 2))
    bn.load_state_dict({k: v.numpy() for k, v in tb.state_dict().items()})
    np.testing.assert_array_equal(bn.running_mean, tb.running_mean.numpy())
    assert int(bn.num_batches_tracked) == 1


def test_optimizer_leaves_running_statistics_alone():
    net = Sequential(Linear(3, 4, generator=0), BatchNorm1d(4))
    opt = xpnet.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)
    assert len(opt.param_groups[0]["params"]) == 4  # two weights, two biases
    x = host((6, 3), 0).astype("float32")
    net(x)
    net.backward(np.ones((6, 4), dtype="float32"))
    rm = net[1].running_mean.copy()
    opt.step()
    np.testing.assert_array_equal(net[1].running_mean, rm)


def test_batchnorm_checkpoint_round_trip_across_backends(backend, tmp_path):
    net = Sequential(Linear(3, 4, generator=0), BatchNorm1d(4, momentum=None))
    for i in range(3):
        net(host((5, 3), i, 1.0, float(i)).astype("float32"))
        net[1].pop_saved(), net[0].pop_saved()
    path = save_checkpoint(tmp_path / "bn.npz", net)
    other = backend.move(Sequential(Linear(3, 4, generator=1), BatchNorm1d(4, momentum=None)))
    load_checkpoint(path, other)
    for name in ("running_mean", "running_var"):
        backend.check(getattr(other[1], name), dtype="float32", shape=(4,))
        np.testing.assert_array_equal(backend.to_numpy(getattr(other[1], name)), getattr(net[1], name))
    assert int(backend.to_numpy(other[1].num_batches_tracked)) == 3
    other.eval()
    net.eval()
    xe = host((2, 3), 9).astype("float32")
    np.testing.assert_allclose(backend.to_numpy(other(backend.asarray(xe))), net(xe), rtol=1e-6, atol=1e-6)


def test_to_moves_and_casts_running_statistics(backend):
    bn = backend.move(BatchNorm1d(2), dtype="float64" if backend.supports_float64 else "float32")
    dt = "float64" if backend.supports_float64 else "float32"
    backend.check(bn.running_mean, dtype=dt)
    backend.check(bn.num_batches_tracked, dtype="int64")
    bn(backend.asarray(host((3, 2), 0), dtype=dt))
    backend.check(bn.running_var, dtype=dt, shape=(2,))
    backend.check(bn.num_batches_tracked, dtype="int64", shape=())
    bn.reset_running_stats()
    np.testing.assert_array_equal(backend.to_numpy(bn.running_var), [1.0, 1.0])
    assert int(backend.to_numpy(bn.num_batches_tracked)) == 0


# ------------------------------------------------------------------ LayerNorm vs torch

LN_CASES = [
    # (input shape, normalized_shape, elementwise_affine, bias, eps)
    ((4, 5), 5, True, True, 1e-5),
    ((2, 3, 4), (3, 4), True, True, 1e-5),
    ((2, 3, 4), (4,), True, False, 1e-3),
    ((3, 4), (3, 4), False, True, 1e-5),  # no leading dims: one sample
    ((1, 2, 2, 3), (2, 3), True, True, 1e-5),
]


@pytest.mark.parametrize("shape, ns, affine, bias, eps", LN_CASES)
def test_layernorm_matches_torch(backend, shape, ns, affine, bias, eps):
    torch = pytest.importorskip("torch")
    _need_f64(backend)
    ln = LayerNorm(ns, eps=eps, elementwise_affine=affine, bias=bias, dtype="float64")
    tl = torch.nn.LayerNorm(ns, eps=eps, elementwise_affine=affine, bias=bias).double()
    nst = tuple(ln.normalized_shape)
    if affine:
        w = host(nst, 1, 0.5, 1.0)
        ln.weight.data = w
        with torch.no_grad():
            tl.weight.copy_(torch.from_numpy(w))
        if bias:
            b = host(nst, 2)
            ln.bias.data = b
            with torch.no_grad():
                tl.bias.copy_(torch.from_numpy(b))
    assert list(ln.state_dict()) == list(tl.state_dict())
    backend.move(ln)
    xh, dyh = host(shape, 3, 2.0, 1.0), host(shape, 4)
    tx = torch.tensor(xh, requires_grad=True)
    ty = tl(tx)
    ty.backward(torch.tensor(dyh))
    y = ln(backend.asarray(xh, dtype="float64"))
    dx = ln.backward(backend.asarray(dyh, dtype="float64"))
    _close(backend, y, ty, what="output")
    _close(backend, dx, tx.grad, what="dx")
    if affine:
        _close(backend, ln.weight.grad, tl.weight.grad, what="weight.grad")
        if bias:
            _close(backend, ln.bias.grad, tl.bias.grad, what="bias.grad")
    ln.eval()
    _close(backend, ln(backend.asarray(xh, dtype="float64")), ty, what="eval output")


def test_layernorm_gradcheck(backend):
    _need_f64(backend)
    ln = LayerNorm((2, 3), dtype="float64")
    ln.weight.data, ln.bias.data = host((2, 3), 1, 0.5, 1.0), host((2, 3), 2)
    backend.move(ln)
    res = gradcheck(ln, backend.asarray(host((3, 2, 3), 5), dtype="float64"))
    assert set(res.max_abs_err) == {"input", "weight", "bias"}


# ------------------------------------------------------------------ bad input


def test_batchnorm_rank_and_channel_errors():
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected input of shape \(N, C\) or \(N, C, L\) with C=3, got 4-d"):
        BatchNorm1d(3)(np.zeros((2, 3, 4, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected input of shape \(N, C, H, W\) with C=3, got 2-d"):
        BatchNorm2d(3)(np.zeros((2, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"expected 3 channels \(dim 1\) as num_features, got input of shape \(2, 4\)"):
        BatchNorm1d(3)(np.zeros((2, 4), dtype="float32"))
    with pytest.raises(ValueError, match=r"expected 3 channels .* \(2, 5, 4, 4\) with 5"):
        BatchNorm2d(3)(np.zeros((2, 5, 4, 4), dtype="float32"))
    with pytest.raises(TypeError, match="float64"):
        BatchNorm1d(3)(np.zeros((2, 3)))  # float64 input, float32 layer


@pytest.mark.parametrize("cls, shape", [(BatchNorm1d, (1, 3)), (BatchNorm1d, (1, 3, 1)), (BatchNorm2d, (1, 3, 1, 1))])
def test_batchnorm_one_value_per_channel_in_training_mode(cls, shape):
    bn = cls(3)
    x = np.ones(shape, dtype="float32")
    with pytest.raises(ValueError, match=r"expected more than 1 value per channel .*training mode.*batch size > 1"):
        bn(x)
    assert int(bn.num_batches_tracked) == 0  # nothing was updated
    assert bn.eval()(x).shape == shape  # the running statistics normalize a single sample
    with pytest.raises(ValueError, match=r"more than 1 value per channel .*eval mode.*track_running_stats=False"):
        cls(3, track_running_stats=False).eval()(x)


def test_constructor_errors():
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        BatchNorm1d(0)
    with pytest.raises(ValueError, match=r"momentum must be a float in \[0, 1\] or None"):
        BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be a positive float"):
        BatchNorm1d(3, eps=0.0)
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        LayerNorm(())
    with pytest.raises(ValueError, match="normalized_shape must be a positive int"):
        LayerNorm((3, -1))


def test_layernorm_shape_errors():
    with pytest.raises(ValueError, match=r"LayerNorm: expected input of shape \(\*, 3, 4\) ending in normalized_shape=\(3, 4\), got \(2, 4, 3\)"):
        LayerNorm((3, 4))(np.zeros((2, 4, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"got \(4,\)"):
        LayerNorm((3, 4))(np.zeros((4,), dtype="float32"))
    ln = LayerNorm(3)
    ln(np.zeros((2, 3), dtype="float32"))
    with pytest.raises(ValueError, match=r"LayerNorm.backward: expected dy of shape \(2, 3\)"):
        ln.backward(np.zeros((3, 2), dtype="float32"))


def test_repr():
    assert repr(BatchNorm1d(4)) == "BatchNorm1d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert repr(LayerNorm(4)) == "LayerNorm((4,), eps=1e-05, elementwise_affine=True)"
