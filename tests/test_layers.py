"""Linear, Flatten, Identity, Dropout, Sequential: values, gradients, errors, torch oracle."""

import numpy as np
import pytest

import xpnet
from xpnet import Dropout, Flatten, Identity, Linear, ReLU, Sequential, Tanh
from xpnet.testing import gradcheck

# torch.autograd oracle: float64 products of the same numbers differ only by summation
# order (BLAS blocking), ~1e-16 relative per op; 1e-10 leaves room for accumulation.
RTOL_F64 = 1e-10
# float32: unit roundoff 6e-8 times reduction lengths of a few dozen terms.
RTOL_F32 = 1e-5
ATOL_F32 = 1e-6


def host(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(backend, bias):
    lin = backend.move(Linear(3, 4, bias=bias, generator=0), dtype="float64")
    x = backend.asarray(host((5, 3)), dtype="float64")
    y = lin(x)
    backend.check(y, dtype="float64", shape=(5, 4))
    res = gradcheck(lin, x)
    assert set(res.max_abs_err) == {"input", "weight"} | ({"bias"} if bias else set())


def test_linear_accepts_batched_leading_dims(backend):
    lin = backend.move(Linear(3, 2, generator=0), dtype="float64")
    x = backend.asarray(host((2, 4, 3)), dtype="float64")
    backend.check(lin(x), shape=(2, 4, 2))
    gradcheck(lin, x)
    x1 = backend.asarray(host((3,)), dtype="float64")
    backend.check(lin(x1), shape=(2,))
    gradcheck(lin, x1)


def test_flatten_identity_sequential_gradcheck(backend):
    net = backend.move(Sequential(Flatten(), Identity(), Linear(6, 2, generator=1)), dtype="float64")
    x = backend.asarray(host((4, 2, 3)), dtype="float64")
    backend.check(net(x), dtype="float64", shape=(4, 2))
    gradcheck(net, x)


def test_flatten_ranges():
    f = Flatten(0, 1)
    assert f(np.zeros((2, 3, 4))).shape == (6, 4)
    with pytest.raises(ValueError, match="cannot flatten"):
        Flatten(2, 1)(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("dtype, rtol, atol", [("float64", RTOL_F64, 0.0), ("float32", RTOL_F32, ATOL_F32)])
def test_linear_matches_torch_autograd(backend, dtype, rtol, atol):
    torch = pytest.importorskip("torch")
    lin = Linear(5, 3, generator=2)
    xh, dyh = host((4, 5), 1), host((4, 3), 2)
    tl = torch.nn.Linear(5, 3).to(getattr(torch, dtype))
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.data.astype(dtype)))
        tl.bias.copy_(torch.from_numpy(lin.bias.data.astype(dtype)))
    tx = torch.tensor(xh, dtype=getattr(torch, dtype), requires_grad=True)
    ty = tl(tx)
    ty.backward(torch.tensor(dyh, dtype=getattr(torch, dtype)))

    backend.move(lin, dtype=dtype)
    y = lin(backend.asarray(xh, dtype=dtype))
    dx = lin.backward(backend.asarray(dyh, dtype=dtype))
    backend.check(y, dtype=dtype, shape=(4, 3))
    backend.check(dx, dtype=dtype, shape=(4, 5))
    for ours, theirs in [
        (y, ty),
        (dx, tx.grad),
        (lin.weight.grad, tl.weight.grad),
        (lin.bias.grad, tl.bias.grad),
    ]:
        np.testing.assert_allclose(backend.to_numpy(ours), theirs.detach().numpy(), rtol=rtol, atol=atol)


def test_linear_default_init_matches_torch_bounds():
    lin = Linear(100, 50, generator=0)
    bound = 1 / np.sqrt(100)
    assert np.abs(lin.weight.data).max() <= bound
    assert np.abs(lin.bias.data).max() <= bound
    # The draw covers the range (a broken init, e.g. all zeros, would not).
    assert np.abs(lin.weight.data).max() > 0.9 * bound


def test_linear_input_errors():
    lin = Linear(3, 2)
    with pytest.raises(ValueError, match=r"expected input of shape \(\*, 3\), got \(4, 5\)"):
        lin(np.zeros((4, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="dtype float64 does not match"):
        lin(np.zeros((4, 3)))
    with pytest.raises(ValueError, match="positive int"):
        Linear(0, 2)
    lin(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="expected dy of shape"):
        lin.backward(np.zeros((4, 3), dtype=np.float32))


def test_linear_does_not_mutate_inputs(backend):
    lin = backend.move(Linear(3, 2, generator=0), dtype="float64")
    xh, dyh = host((4, 3)), host((4, 2), 1)
    x, dy = backend.asarray(xh, dtype="float64"), backend.asarray(dyh, dtype="float64")
    lin(x)
    lin.backward(dy)
    np.testing.assert_array_equal(backend.to_numpy(x), xh)
    np.testing.assert_array_equal(backend.to_numpy(dy), dyh)


def test_dropout_same_mask_on_every_backend_and_identity_in_eval(backend):
    x = host((6, 5))
    ref = Dropout(0.5, generator=np.random.default_rng(3))
    y_ref = ref(x)
    d = Dropout(0.5, generator=np.random.default_rng(3))
    y = d(backend.asarray(x, dtype="float64"))
    backend.check(y, dtype="float64", shape=(6, 5))
    np.testing.assert_array_equal(backend.to_numpy(y), y_ref)
    dx = d.backward(backend.asarray(np.ones((6, 5)), dtype="float64"))
    np.testing.assert_array_equal(backend.to_numpy(dx) != 0, y_ref != 0)
    d.eval()
    xe = backend.asarray(x, dtype="float64")
    assert d(xe) is xe
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        Dropout(1.0)


@pytest.mark.parametrize("p", [0.2, 0.7])
def test_dropout_scales_kept_units_by_one_over_keep_probability(backend, p):
    # Inverted dropout: kept units are x / (1 - p), so E[y] = x and eval mode needs no
    # rescaling. p != 0.5 on purpose: a missing or wrong scale factor must show.
    x = host((200, 50)) + 3.0  # no zeros in x: y == 0 exactly where a unit was dropped
    d = Dropout(p, generator=np.random.default_rng(11))
    y = backend.to_numpy(d(backend.asarray(x, dtype="float64")))
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / (1 - p), rtol=1e-15)
    # 10,000 Bernoulli(p) draws: the dropped fraction is within 5 standard deviations of p.
    assert abs((~kept).mean() - p) < 5 * np.sqrt(p * (1 - p) / kept.size)
    dy = host((200, 50))
    dx = backend.to_numpy(d.backward(backend.asarray(dy, dtype="float64")))
    np.testing.assert_allclose(dx, np.where(kept, dy / (1 - p), 0.0), rtol=1e-15)


# ------------------------------------------------------------------ fast paths used by fit


def _grads(model):
    return {name: np.array(xpnet.to_numpy(p.grad)) for name, p in model.named_parameters()}


@pytest.mark.parametrize("lead", [False, True])
def test_backward_params_matches_backward(backend, lead):
    # Sequential.backward_params skips dL/dx of the first layer with parameters (and the
    # parameter-free layers before it); every parameter gradient must be unchanged.
    def build():
        layers = [xpnet.Flatten()] if lead else []
        layers += [xpnet.Linear(6, 5, generator=0), Tanh(), xpnet.Linear(5, 3, generator=1)]
        return backend.move(xpnet.Sequential(*layers), dtype="float32")

    host = np.random.default_rng(0).standard_normal((4, 2, 3) if lead else (4, 6))
    x = backend.asarray(host, dtype="float32")
    dy = backend.asarray(np.random.default_rng(1).standard_normal((4, 3)), dtype="float32")
    full, fast = build(), build()
    full(x)
    dx = full.backward(dy)
    backend.check(dx, dtype="float32", shape=tuple(host.shape))
    fast(x)
    assert fast.backward_params(dy) is None
    g_full, g_fast = _grads(full), _grads(fast)
    assert g_full.keys() == g_fast.keys()
    for k in g_full:
        np.testing.assert_allclose(g_fast[k], g_full[k], rtol=RTOL_F32, atol=ATOL_F32)
    # the stored passes are consumed: a second backward is protocol misuse
    assert all(not m._saved for m in fast.modules())
    with pytest.raises(RuntimeError, match="no stored forward"):
        fast.backward_params(dy)


def test_backward_params_default_runs_backward(backend):
    # A module without its own backward_params gets the base class's: backward, result dropped.
    act = ReLU()
    x = backend.asarray(np.array([[1.0, -2.0]]), dtype="float32")
    act(x)
    assert act.backward_params(x) is None
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        act.backward(x)


def test_linear_bias_grad_matches_sum(backend):
    # db is computed as 1ᵀδ (a matrix-vector product) instead of xp.sum(δ, axis=0).
    lin = backend.move(xpnet.Linear(3, 4, generator=0), dtype="float64")
    for n in (5, 2):  # a new batch size rebuilds the cached ones vector
        lin.zero_grad()
        x = backend.asarray(np.random.default_rng(n).standard_normal((n, 3)), dtype="float64")
        dyh = np.random.default_rng(n + 1).standard_normal((n, 4))
        lin(x)
        lin.backward(backend.asarray(dyh, dtype="float64"))
        db = backend.check(lin.bias.grad, dtype="float64", shape=(4,))
        np.testing.assert_allclose(backend.to_numpy(db), dyh.sum(axis=0), rtol=1e-12, atol=1e-12)


def test_load_state_dict_does_not_alias_the_source(backend):
    src = backend.move(xpnet.Linear(2, 2, generator=0))
    dst = backend.move(xpnet.Linear(2, 2, generator=1))
    dst.load_state_dict(src.state_dict())
    before = backend.to_numpy(src.weight.data).copy()
    if xpnet._backend.supports_inplace(dst.weight.data):
        dst.weight.data -= 1.0  # what an in-place optimizer step does
    else:
        dst.weight.data = dst.weight.data - 1.0
    np.testing.assert_array_equal(backend.to_numpy(src.weight.data), before)


# ------------------------------------------------------------------ Sequential's chain


def _chain_net(seed=0):
    return Sequential(
        Linear(4, 6, generator=seed), xpnet.Sigmoid(), Linear(6, 5, generator=seed + 1), Tanh(),
        Linear(5, 5, generator=seed + 2), xpnet.GELU(), Linear(5, 4, generator=seed + 3), ReLU(),
        Linear(4, 4, generator=seed + 4), xpnet.SiLU(), Linear(4, 3, generator=seed + 5),
        xpnet.LeakyReLU(0.1),
    )


def _per_layer(net, x, dy, params_only=False):
    """The per-layer protocol, run by hand: the reference the chain must reproduce."""
    for layer in net:
        x = layer.forward(x)
    net.zero_grad()
    layers = list(net)
    for layer in reversed(layers[1:]):
        dy = layer.backward(dy)
    dx = layers[0].backward_params(dy) if params_only else layers[0].backward(dy)
    return x, dx, [p.grad for p in net.parameters()]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("buffers", [False, True], ids=["fused", "buffers"])
@pytest.mark.parametrize("params_only", [False, True])
def test_sequential_chain_is_bit_identical_to_the_per_layer_path(backend, params_only, buffers, dtype):
    rng = np.random.default_rng(5)
    x = backend.asarray(rng.standard_normal((7, 4)) * 4, dtype=dtype)  # (some far tails)
    dy = backend.asarray(rng.standard_normal((7, 3)), dtype=dtype)
    dy_host = backend.to_numpy(dy).copy()
    net = backend.move(_chain_net(), dtype=dtype)
    if buffers:  # every array large enough for the reused buffers and in-place kernels
        net.chain_buffer_min_bytes = 0
    assert net._chain(x) is not None  # the chain is taken
    ref_out, ref_dx, ref_grads = _per_layer(net, x, dy, params_only)
    for _ in range(2):  # the second pass reuses the verified chain
        net.zero_grad()
        out = net(x)
        dx = net.backward_params(dy) if params_only else net.backward(dy)
        backend.check(out, dtype=dtype, shape=(7, 3))
        np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(ref_out))
        if params_only:
            assert dx is None and ref_dx is None
        else:
            backend.check(dx, dtype=dtype, shape=(7, 4))
            np.testing.assert_array_equal(backend.to_numpy(dx), backend.to_numpy(ref_dx))
        for p, g in zip(net.parameters(), ref_grads):
            np.testing.assert_array_equal(backend.to_numpy(p.grad), backend.to_numpy(g))
    assert all(not m._saved for m in net.modules())  # every pass consumed
    np.testing.assert_array_equal(backend.to_numpy(dy), dy_host)  # the caller's dy untouched


def _fused_cases():
    """Chains whose generated code takes every branch of the kernel sources."""
    return {
        "no-bias": lambda: Sequential(Linear(4, 5, bias=False, generator=0), ReLU(), Linear(5, 3, generator=1)),
        "activation-first": lambda: Sequential(Tanh(), xpnet.Sigmoid(), Linear(4, 3, generator=0), ReLU(), ReLU()),
        "linear-only": lambda: Sequential(Linear(4, 3, generator=0)),
        "fallback-only": lambda: Sequential(xpnet.GELU(), Linear(4, 3, generator=0), xpnet.SiLU()),
    }


@pytest.mark.parametrize("case", list(_fused_cases()))
@pytest.mark.parametrize("params_only", [False, True])
def test_sequential_fused_chain_matches_the_layers(backend, case, params_only):
    rng = np.random.default_rng(11)
    x = backend.asarray(rng.standard_normal((6, 4)) * 3, dtype="float64")
    dy = backend.asarray(rng.standard_normal((6, 3)), dtype="float64")
    net = backend.move(_fused_cases()[case](), dtype="float64")
    ref_out, ref_dx, ref_grads = _per_layer(net, x, dy, params_only)
    net.zero_grad()
    out = net(x)
    dx = net.backward_params(dy) if params_only else net.backward(dy)
    assert net._chain(x).fused is not None
    np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(ref_out))
    if not params_only:
        backend.check(dx, dtype="float64", shape=(6, 4))
        np.testing.assert_array_equal(backend.to_numpy(dx), backend.to_numpy(ref_dx))
    for p, g in zip(net.parameters(), ref_grads):
        np.testing.assert_array_equal(backend.to_numpy(p.grad), backend.to_numpy(g))


def test_sequential_fused_chain_follows_frozen_parameters_accumulation_and_batch_sizes(backend):
    rng = np.random.default_rng(12)
    net = backend.move(_chain_net(), dtype="float64")
    ref = backend.move(_chain_net(), dtype="float64")
    net[2].weight.requires_grad = False  # frozen after the chain was built
    ref[2].weight.requires_grad = False
    net[4].bias.requires_grad = False
    ref[4].bias.requires_grad = False
    net.zero_grad()
    ref.zero_grad()
    for n in (5, 5, 2):  # no zero_grad: gradients accumulate; the batch size changes
        x = backend.asarray(rng.standard_normal((n, 4)), dtype="float64")
        dy = backend.asarray(rng.standard_normal((n, 3)), dtype="float64")
        net(x)
        dx = net.backward(dy)
        for layer in ref:
            x = layer.forward(x)
        for layer in reversed(list(ref)):
            dy = layer.backward(dy)
        np.testing.assert_array_equal(backend.to_numpy(dx), backend.to_numpy(dy))
    assert net[2].weight.grad is None and net[4].bias.grad is None
    for (name, p), q in zip(net.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            np.testing.assert_array_equal(backend.to_numpy(p.grad), backend.to_numpy(q.grad))


def test_sequential_fused_chain_runs_a_subclass_override_and_shows_its_source():
    import inspect

    calls = []

    class CountingSigmoid(xpnet.Sigmoid):  # inherits Sigmoid's kernel source, not its kernel
        def _kernel_forward(self, x, xp, out=None):
            calls.append("forward")
            return super()._kernel_forward(x, xp, out)

    net = Sequential(Linear(2, 3, generator=0), CountingSigmoid(), Linear(3, 1, generator=1))
    x = np.ones((4, 2), np.float32)
    ref = Sequential(Linear(2, 3, generator=0), xpnet.Sigmoid(), Linear(3, 1, generator=1))
    np.testing.assert_array_equal(net(x), ref(x))
    assert calls == ["forward"]
    fused = net._chain(x).fused
    source = inspect.getsource(fused.forward)  # the generated lines, through linecache
    assert source.startswith("def forward(a0):") and "a2, ctx_1 = kf_1(a, xp_1)" in source
    assert "exp_1" not in fused.source


@pytest.mark.parametrize(
    "layers",
    [
        lambda: [Linear(4, 6, generator=0), ReLU(), Linear(6, 5, generator=1), xpnet.Sigmoid(),
                 Linear(5, 3, generator=2)],
        lambda: [Linear(4, 6, generator=0), Tanh(), ReLU(), Linear(6, 3, generator=1), Tanh()],
        lambda: [xpnet.Sigmoid(), Linear(4, 3, generator=0), xpnet.GELU(), ReLU()],
        # identities (Dropout with p=0) pass arrays on as they are: the caller's input,
        # the model output and the caller's dy must still never be written
        lambda: [Linear(4, 6, generator=0), Tanh(), Linear(6, 3, generator=1), Tanh(), Dropout(0.0)],
        lambda: [Dropout(0.0), xpnet.Sigmoid(), Linear(4, 3, generator=0), ReLU(), Dropout(0.0)],
        lambda: [Linear(4, 6, generator=0), xpnet.Sigmoid(), Dropout(0.0), Tanh(), Linear(6, 3, generator=1)],
    ],
    ids=["linear-last", "activation-pairs", "activation-first", "identity-last", "identity-first",
         "identity-between"],
)
def test_sequential_chain_buffers_never_overwrite_what_the_caller_holds(layers):
    # NumPy reuses buffers across passes (backend-specific path): the output and dx a
    # caller keeps, its input and dy, and a pass still waiting for its backward stay intact.
    rng = np.random.default_rng(8)
    net = Sequential(*layers())
    net.chain_buffer_min_bytes = 0
    ref = Sequential(*layers())
    ref.chain_buffer_min_bytes = 10**12  # fresh arrays everywhere
    xs = [rng.standard_normal((5, 4)) for _ in range(3)]
    dys = [rng.standard_normal((5, 3)) for _ in range(3)]
    net.to(dtype="float64"), ref.to(dtype="float64")
    kept = []
    for x, dy in zip(xs, dys):
        x0, dy0 = x.copy(), dy.copy()
        out, dx = net(x), None
        dx = net.backward(dy)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(dy, dy0)
        kept.append((out, dx, ref(x), ref.backward(dy)))
    for out, dx, rout, rdx in kept:  # later passes wrote into nothing returned earlier
        np.testing.assert_array_equal(out, rout)
        np.testing.assert_array_equal(dx, rdx)
    # two passes before their backwards: the second must not reuse the first's buffers
    o1, o2 = net(xs[0]), net(xs[1])
    d2, d1 = net.backward(dys[1]), net.backward(dys[0])
    r1 = ref(xs[0])
    rd1 = ref.backward(dys[0])
    r2 = ref(xs[1])
    rd2 = ref.backward(dys[1])
    for a, b in ((o1, r1), (o2, r2), (d1, rd1), (d2, rd2)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("buffers", [False, True], ids=["fused", "buffers"])
@pytest.mark.parametrize("params_only", [False, True])
def test_sequential_chain_with_dropout_draws_the_per_layer_masks(backend, params_only, buffers):
    """Dropout is chainable: the chain draws the same masks from the same generators as
    the per-layer path, and gives the same numbers; in eval mode it is the identity."""

    def net():
        return backend.move(Sequential(
            Dropout(0.2, generator=7), Linear(4, 6, generator=0), ReLU(), Dropout(0.5, generator=8),
            Linear(6, 5, generator=1), Tanh(), Dropout(0.0), Linear(5, 3, generator=2),
        ), dtype="float64")

    rng = np.random.default_rng(13)
    x = backend.asarray(rng.standard_normal((9, 4)), dtype="float64")
    dy = backend.asarray(rng.standard_normal((9, 3)), dtype="float64")
    chained, ref = net(), net()
    if buffers:
        chained.chain_buffer_min_bytes = 0
    assert chained._chain(x) is not None
    for _ in range(2):  # successive masks differ, and still match
        ref_out, ref_dx, ref_grads = _per_layer(ref, x, dy, params_only)
        chained.zero_grad()
        out = chained(x)
        dx = chained.backward_params(dy) if params_only else chained.backward(dy)
        np.testing.assert_array_equal(backend.to_numpy(out), backend.to_numpy(ref_out))
        if not params_only:
            np.testing.assert_array_equal(backend.to_numpy(dx), backend.to_numpy(ref_dx))
        for p, g in zip(chained.parameters(), ref_grads):
            np.testing.assert_array_equal(backend.to_numpy(p.grad), backend.to_numpy(g))
    chained.eval()
    ref.eval()
    assert chained._chain(x) is not None
    np.testing.assert_array_equal(backend.to_numpy(chained(x)), backend.to_numpy(ref(x)))


def test_sequential_chain_buffers_spare_an_input_kept_by_an_identity():
    """A chainable layer that returns its input and keeps it (``_ctx_holds_output``) must
    not have that array overwritten by the next layer's in-place forward."""

    class KeepSquare(xpnet.Module):  # y = x, dx = dy * y: keeps y = x
        _chainable = True
        _ctx_holds_output = True

        def _kernel_forward(self, x, xp, out=None):
            return x, x

        def _kernel_backward(self, dy, y, xp, need_dx, out=None):
            return dy * y

    rng = np.random.default_rng(14)
    x = rng.standard_normal((40, 8))
    dy = rng.standard_normal((40, 3))
    nets = [Sequential(Linear(8, 6, generator=0), KeepSquare(), ReLU(), Linear(6, 3, generator=1)) for _ in range(2)]
    nets[0].chain_buffer_min_bytes = 0  # in-place forwards and backwards wherever allowed
    nets[1].chain_buffer_min_bytes = 10**12
    dxs = []
    for net in nets:
        net.to(dtype="float64")
        net(x)
        dxs.append(net.backward(dy))
    np.testing.assert_array_equal(dxs[0], dxs[1])


def test_sequential_chain_errors_are_the_layers_own():
    net = _chain_net()
    x = np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match=r"Linear: expected input of shape \(\*, 4\), got \(2, 5\)"):
        net(np.ones((2, 5), np.float32))
    with pytest.raises(TypeError, match="float64"):
        net(np.ones((2, 4)))
    net(x)
    with pytest.raises(ValueError, match=r"LeakyReLU.backward: expected dy of shape \(2, 3\), got \(2,\)"):
        net.backward(np.ones(2, np.float32))
    net(x)
    with pytest.raises(TypeError, match=r"LeakyReLU.backward: dy has dtype float64 but the forward ran in float32"):
        net.backward(np.ones((2, 3)))
    # one layer moved on its own: the chain is not verified, the layer raises as before
    net[4].to(dtype="float64")
    with pytest.raises(TypeError, match="Linear"):
        net(x)
    # a layer replaced by one of the wrong width
    net = _chain_net()
    net.add_module("4", Linear(7, 5))
    with pytest.raises(ValueError, match=r"Linear: expected input of shape \(\*, 7\), got \(2, 5\)"):
        net(x)


def test_sequential_chain_follows_weights_modes_and_stacked_passes(backend):
    rng = np.random.default_rng(6)
    net = backend.move(_chain_net(), dtype="float64")
    x1 = backend.asarray(rng.standard_normal((3, 4)), dtype="float64")
    x2 = backend.asarray(rng.standard_normal((3, 4)), dtype="float64")
    dy = backend.asarray(rng.standard_normal((3, 3)), dtype="float64")
    # weights reloaded after the chain was verified: the new values are used
    net(x1)
    net.backward(dy)
    ref = backend.move(_chain_net(seed=10), dtype="float64")
    net.load_state_dict(ref.state_dict())
    np.testing.assert_array_equal(backend.to_numpy(net(x1)), backend.to_numpy(ref(x1)))
    net.backward(dy)
    # two passes, then their backwards in reverse order (LIFO, like every module)
    net.zero_grad()
    ref.zero_grad()
    net(x1), net(x2)
    d2, d1 = net.backward(dy), net.backward(dy)
    ref(x2)
    r2 = ref.backward(dy)
    ref(x1)
    r1 = ref.backward(dy)
    np.testing.assert_array_equal(backend.to_numpy(d1), backend.to_numpy(r1))
    np.testing.assert_array_equal(backend.to_numpy(d2), backend.to_numpy(r2))
    # eval mode stores nothing; a child in another mode than its container runs per layer
    net.eval()
    net(x1)
    assert all(not m._saved for m in net.modules())
    net.train()
    net[1].eval()
    assert net._chain(x1) is None
    with pytest.raises(RuntimeError, match="Sigmoid.backward: no stored forward pass"):
        net(x1)
        net.backward(dy)


def test_sequential_subclass_with_its_own_forward_still_backpropagates():
    class Twice(Sequential):
        def forward(self, x):  # runs the children itself, saves nothing on the container
            for layer in self:
                x = layer.forward(x)
            return x

    net = Twice(Linear(3, 2, generator=0), Tanh())
    out = net(np.ones((2, 3), np.float32))
    dx = net.backward(np.ones_like(out))
    assert dx.shape == (2, 3) and net[0].weight.grad is not None


def test_sequential_renamed_buffer_threshold_says_so():
    net = Sequential(Linear(2, 3))
    with pytest.raises(AttributeError, match=r"replaced by chain_buffer_min_bytes"):
        net.chain_buffer_min_size = 0
    with pytest.raises(AttributeError, match=r"chain_buffer_min_bytes = 2\*\*62"):
        net.chain_buffer_min_size  # noqa: B018
