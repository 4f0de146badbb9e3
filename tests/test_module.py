"""Module protocol: registration, names, modes, moving, state dicts, repr."""

from collections import OrderedDict

import numpy as np
import pytest

import xpnet
from xpnet import Linear, Module, Parameter, Sequential


def make_net(seed=0):
    return Sequential(Linear(4, 5, generator=seed), Linear(5, 3, generator=seed + 1))


def test_named_parameters_use_torch_dotted_names():
    net = make_net()
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert len(list(net.parameters())) == 4
    assert net[0].weight.shape == (5, 4)  # torch layout (out, in)
    assert net[0].bias.shape == (5,)


def test_nested_modules_and_shared_parameters_listed_once():
    class Twin(Module):
        def __init__(self):
            super().__init__()
            self.a = Linear(2, 2, generator=0)
            self.b = Linear(2, 2, generator=1)
            self.b.weight = self.a.weight  # tied

    names = [n for n, _ in Twin().named_parameters()]
    assert names == ["a.weight", "a.bias", "b.bias"]


def test_default_dtype_is_float32_and_float64_on_request():
    assert make_net()[0].weight.dtype == np.float32
    assert Linear(2, 2, dtype="float64").weight.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        Linear(2, 2, dtype="int32")


def test_super_init_required():
    class Bad(Module):
        def __init__(self):
            self.w = 1

    with pytest.raises(RuntimeError, match="super"):
        Bad()


def test_to_moves_every_parameter_bit_identically(backend):
    net = make_net()
    host = {k: v.copy() for k, v in net.state_dict().items()}
    backend.move(net, dtype="float64")
    for name, p in net.named_parameters():
        backend.check(p.data, dtype="float64")
        np.testing.assert_array_equal(backend.to_numpy(p.data), host[name].astype(np.float64))
    net.to("numpy", dtype="float32")
    for name, p in net.named_parameters():
        np.testing.assert_array_equal(p.data, host[name])


def test_to_drops_grads_and_stored_forward(backend):
    net = backend.move(make_net(), dtype="float64")
    x = backend.asarray(np.ones((2, 4)), dtype="float64")
    net(x)
    net.backward(backend.asarray(np.ones((2, 3)), dtype="float64"))
    assert all(p.grad is not None for p in net.parameters())
    net(x)
    net.to(dtype="float32")
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        net.backward(backend.asarray(np.ones((2, 3)), dtype="float32"))


def test_train_eval_modes_propagate_and_eval_stores_nothing(backend):
    net = backend.move(make_net(), dtype="float64")
    x = backend.asarray(np.ones((2, 4)), dtype="float64")
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    net(x)
    assert all(not m._saved for m in net.modules())
    with pytest.raises(RuntimeError, match="eval mode"):
        net.backward(backend.asarray(np.ones((2, 3)), dtype="float64"))
    net.train()
    net(x)
    dx = net.backward(backend.asarray(np.ones((2, 3)), dtype="float64"))
    backend.check(dx, dtype="float64", shape=(2, 4))


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match="before each backward"):
        make_net().backward(np.ones((2, 3), dtype=np.float32))


def test_backward_consumes_the_stored_forward():
    net = make_net()
    x = np.ones((2, 4), dtype=np.float32)
    net(x)
    net.backward(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        net.backward(np.ones((2, 3), dtype=np.float32))


def test_gradients_accumulate_until_zero_grad(backend):
    net = backend.move(make_net(), dtype="float64")
    rng = np.random.default_rng(1)
    x = backend.asarray(rng.standard_normal((3, 4)), dtype="float64")
    dy = backend.asarray(rng.standard_normal((3, 3)), dtype="float64")
    net(x)
    net.backward(dy)
    once = {n: backend.to_numpy(p.grad).copy() for n, p in net.named_parameters()}
    net(x)
    net.backward(dy)
    for n, p in net.named_parameters():
        backend.check(p.grad, dtype="float64")
        np.testing.assert_allclose(backend.to_numpy(p.grad), 2 * once[n], rtol=1e-14)
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_zero_grad_in_place_keeps_arrays(backend):
    net = backend.move(make_net(), dtype="float64")
    x = backend.asarray(np.ones((2, 4)), dtype="float64")
    net(x)
    net.backward(backend.asarray(np.ones((2, 3)), dtype="float64"))
    net.zero_grad(set_to_none=False)
    for p in net.parameters():
        np.testing.assert_array_equal(backend.to_numpy(p.grad), 0.0)


def test_zero_grad_follows_parameters_and_modules_added_or_removed_later():
    # zero_grad keeps its parameter list between steps; every change of any module's
    # registry (nested too) must reach it.
    class Block(Module):
        def __init__(self):
            super().__init__()
            self.inner = Linear(2, 2)

        def forward(self, x):
            return self.inner(x)

    net = Sequential(Block())
    net.zero_grad()  # builds the list
    grads = lambda: [p.grad is None for p in net.parameters()]  # noqa: E731
    extra = Parameter(np.ones(3, np.float32))
    net[0].scale = extra  # a parameter registered deep in the tree
    net[0].head = Linear(2, 1)  # a child module
    net.append(Linear(1, 1))
    for p in net.parameters():
        p.grad = np.ones(p.shape, np.float32)
    net.zero_grad()
    assert all(grads()) and len(grads()) == 7
    del net[0].head
    net[0].register_parameter("scale", None)  # unregisters it, as in torch
    assert extra not in list(net.parameters()) and len(list(net.parameters())) == 4
    extra.grad = np.ones(3, np.float32)
    net.zero_grad()
    assert extra.grad is not None  # no longer the model's: untouched


def test_state_dict_round_trip_across_backends(backend):
    src = make_net(seed=3)
    dst = backend.move(make_net(seed=7), dtype="float32")
    dst.load_state_dict(src.state_dict())
    for (_n, a), (_, b) in zip(src.named_parameters(), dst.named_parameters()):
        backend.check(b.data, dtype="float32")
        np.testing.assert_array_equal(a.data, backend.to_numpy(b.data))


def test_load_state_dict_strict_checks_leave_model_unchanged():
    net = make_net()
    before = {k: v.copy() for k, v in net.state_dict().items()}
    sd = OrderedDict(make_net(seed=5).state_dict())
    bad_shape = OrderedDict(sd)
    bad_shape["1.weight"] = np.zeros((4, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="shape mismatch for '1.weight'"):
        net.load_state_dict(bad_shape)
    missing = OrderedDict(sd)
    del missing["0.bias"]
    with pytest.raises(KeyError, match="0.bias"):
        net.load_state_dict(missing)
    extra = OrderedDict(sd)
    extra["2.weight"] = np.zeros(1, dtype=np.float32)
    with pytest.raises(KeyError, match="2.weight"):
        net.load_state_dict(extra)
    wrong_dtype = OrderedDict((k, v.astype(np.float64)) for k, v in sd.items())
    with pytest.raises(TypeError, match="dtype mismatch"):
        net.load_state_dict(wrong_dtype)
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    net.load_state_dict(missing, strict=False)  # partial load is allowed when asked


def test_repr_is_torch_like():
    text = repr(make_net())
    assert "(0): Linear(in_features=4, out_features=5, bias=True)" in text
    assert text.startswith("Sequential(")
    assert "backend=numpy" in repr(make_net()[0].weight)


def test_parameter_rejects_non_arrays():
    with pytest.raises(TypeError, match="expected an array"):
        Parameter([1.0, 2.0])


def test_assigning_non_parameter_over_parameter_is_rejected():
    lin = Linear(2, 2)
    with pytest.raises(TypeError, match="assign a Parameter"):
        lin.weight = np.zeros((2, 2))
    assert xpnet.Linear(2, 2, bias=False).bias is None


def test_to_accepts_only_floating_dtypes():
    with pytest.raises(TypeError, match="floating point"):
        make_net().to(dtype="int32")


def test_backward_with_a_dy_of_another_dtype_is_rejected_at_once():
    net = make_net()
    net(np.ones((2, 4), dtype=np.float32))
    with pytest.raises(TypeError, match=r"Linear.backward: dy has dtype float64 but the forward ran in float32"):
        net.backward(np.ones((2, 3)))


# ------------------------------------------------------------------ re-entrant modules

# Same numbers as torch, products summed in another order: ~1e-16 per op in float64.
RTOL_REENTRANT = 1e-10


def _shared_net():
    lin = Linear(4, 4, generator=3)
    return lin, Sequential(lin, xpnet.Tanh(), lin)  # one Linear applied twice


def test_module_applied_twice_matches_torch(backend):
    torch = pytest.importorskip("torch")
    backend.dtype("float64")  # Float64Unavailable: the plugin skips on float32-only devices
    lin, net = _shared_net()
    rng = np.random.default_rng(0)
    xh, dyh = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    tl = torch.nn.Linear(4, 4).double()
    with torch.no_grad():
        tl.weight.copy_(torch.from_numpy(lin.weight.data.astype("float64")))
        tl.bias.copy_(torch.from_numpy(lin.bias.data.astype("float64")))
    tx = torch.tensor(xh, requires_grad=True)
    ty = tl(torch.tanh(tl(tx)))
    ty.backward(torch.tensor(dyh))

    backend.move(net, dtype="float64")
    y = net(backend.asarray(xh, dtype="float64"))
    dx = net.backward(backend.asarray(dyh, dtype="float64"))
    backend.check(dx, dtype="float64", shape=(5, 4))
    assert [n for n, _ in net.named_parameters()] == ["0.weight", "0.bias"]
    for ours, theirs in [(y, ty), (dx, tx.grad), (lin.weight.grad, tl.weight.grad),
                         (lin.bias.grad, tl.bias.grad)]:
        np.testing.assert_allclose(backend.to_numpy(ours), theirs.detach().numpy(),
                                   rtol=RTOL_REENTRANT, atol=0.0)


def test_module_applied_twice_passes_gradcheck(backend):
    backend.dtype("float64")  # Float64Unavailable: the plugin skips on float32-only devices
    _, net = _shared_net()
    backend.move(net, dtype="float64")
    x = backend.asarray(np.random.default_rng(1).standard_normal((3, 4)), dtype="float64")
    res = xpnet.testing.gradcheck(net, x)
    assert {"input", "0.weight", "0.bias"} <= set(res.max_abs_err)


def test_saved_passes_are_last_in_first_out():
    tanh = xpnet.Tanh()
    a, b = np.full((2,), 0.5), np.full((2,), -2.0)
    ya, yb = tanh(a), tanh(b)
    ones = np.ones(2)
    np.testing.assert_allclose(tanh.backward(ones), 1.0 - yb**2)  # newest first
    np.testing.assert_allclose(tanh.backward(ones), 1.0 - ya**2)
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        tanh.backward(ones)


def test_saved_passes_are_bounded_with_a_clear_error():
    tanh = xpnet.Tanh()
    tanh.max_saved_passes = 3
    x = np.zeros(2)
    for _ in range(5):  # forwards without backward: memory stays bounded
        tanh(x)
    assert len(tanh._saved) == 3
    for _ in range(3):
        tanh.backward(np.ones(2))
    with pytest.raises(RuntimeError, match="max_saved_passes=3 .* model.eval"):
        tanh.backward(np.ones(2))
    tanh.clear_saved()
    with pytest.raises(RuntimeError, match=r"call forward\(\) \(in training mode\) once"):
        tanh.backward(np.ones(2))


# ------------------------------------------------------------------ buffers


class _Stats(Module):
    """A Linear plus two buffers: a float running mean and an int64 counter."""

    def __init__(self):
        super().__init__()
        self.lin = Linear(3, 2, generator=0)
        self.register_buffer("mean", np.arange(2, dtype=np.float32))
        self.register_buffer("count", np.array(5, dtype=np.int64))
        self.register_buffer("scratch", np.ones(2, dtype=np.float32), persistent=False)
        self.register_buffer("absent", None)


def test_buffers_are_listed_in_state_dict_but_never_as_parameters():
    m = Sequential(_Stats())
    assert [n for n, _ in m.named_buffers()] == ["0.mean", "0.count", "0.scratch"]
    assert len(list(m.buffers())) == 3
    assert [n for n, _ in m.named_parameters()] == ["0.lin.weight", "0.lin.bias"]
    # torch's order: module by module (pre-order), parameters then persistent buffers.
    assert list(m.state_dict()) == ["0.mean", "0.count", "0.lin.weight", "0.lin.bias"]


def test_buffer_state_dict_names_match_torch():
    torch = pytest.importorskip("torch")
    m = Sequential(_Stats())

    class T(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)
            self.register_buffer("mean", torch.zeros(2))
            self.register_buffer("count", torch.tensor(5))
            self.register_buffer("scratch", torch.ones(2), persistent=False)
            self.register_buffer("absent", None)

    assert list(m.state_dict()) == list(torch.nn.Sequential(T()).state_dict())


def test_optimizer_never_sees_buffers():
    m = _Stats()
    opt = xpnet.optim.Adam(m.parameters(), lr=0.1)
    m.lin.zero_grad()
    m.lin(np.ones((4, 3), dtype=np.float32))
    m.lin.backward(np.ones((4, 2), dtype=np.float32))
    opt.step()
    m.zero_grad()
    np.testing.assert_array_equal(m.mean, [0.0, 1.0])
    assert int(m.count) == 5
    assert all(p.data is not m.mean for p in opt.param_groups[0]["params"])


def test_rebinding_a_buffer_keeps_it_registered():
    m = _Stats()
    m.mean = np.full(2, 7.0, dtype=np.float32)
    np.testing.assert_array_equal(m.state_dict()["mean"], [7.0, 7.0])
    m.absent = np.zeros(1, dtype=np.float32)  # a None buffer becomes present
    assert "absent" in m.state_dict()
    with pytest.raises(TypeError, match="buffer 'mean'"):
        m.mean = [1.0, 2.0]
    del m.mean
    assert "mean" not in m.state_dict() and "mean" not in dict(m.named_buffers())


def test_register_buffer_errors():
    m = _Stats()
    with pytest.raises(KeyError, match="already exists"):
        m.register_buffer("lin", np.zeros(1))
    with pytest.raises(KeyError, match="no '.'"):
        m.register_buffer("a.b", np.zeros(1))
    with pytest.raises(TypeError, match="array or None"):
        m.register_buffer("x", [1.0])
    with pytest.raises(TypeError, match="must be a str"):
        m.register_buffer(3, np.zeros(1))
    m.register_buffer("mean", np.zeros(2, dtype=np.float32))  # re-registering a buffer is fine


def test_to_moves_buffers_and_casts_only_floating_ones(backend):
    m = _Stats()
    backend.move(m, dtype="float64")
    backend.check(m.mean, dtype="float64", shape=(2,))
    backend.check(m.scratch, dtype="float64", shape=(2,))
    backend.check(m.count, dtype="int64", shape=())
    assert dict(m.named_buffers())["mean"] is m.mean
    np.testing.assert_array_equal(backend.to_numpy(m.mean), [0.0, 1.0])
    assert m.absent is None
    m.to("numpy", dtype="float32")
    assert isinstance(m.mean, np.ndarray) and m.mean.dtype == np.float32 and m.count.dtype == np.int64


def test_load_state_dict_restores_buffers_across_backends(backend):
    src = _Stats()
    src.mean = np.array([3.0, -1.0], dtype=np.float32)
    src.count = np.array(9, dtype=np.int64)
    dst = backend.move(_Stats())
    dst.load_state_dict(src.state_dict())
    backend.check(dst.mean, dtype="float32")
    backend.check(dst.count, dtype="int64")
    np.testing.assert_array_equal(backend.to_numpy(dst.mean), [3.0, -1.0])
    assert int(backend.to_numpy(dst.count)) == 9
    # the loaded buffer is a copy: updating it in place leaves the source alone
    if backend.name == "numpy":
        dst.mean += 1.0
        np.testing.assert_array_equal(src.mean, [3.0, -1.0])
    # an integer buffer accepts any integer dtype (torch writes int64, others may not)
    sd = dict(src.state_dict(), count=np.array(4, dtype=np.int32))
    dst.load_state_dict(sd)
    backend.check(dst.count, dtype="int64")


def test_load_state_dict_checks_buffers_and_changes_nothing_on_failure():
    m = _Stats()
    sd = OrderedDict(m.state_dict())
    missing = OrderedDict((k, v) for k, v in sd.items() if k != "count")
    with pytest.raises(KeyError, match="count"):
        m.load_state_dict(missing)
    bad = OrderedDict(sd, mean=np.zeros(3, dtype=np.float32), **{"lin.bias": np.full(2, 5.0, np.float32)})
    with pytest.raises(ValueError, match="shape mismatch for 'mean'"):
        m.load_state_dict(bad)
    assert not np.any(m.lin.bias.data == 5.0)
    with pytest.raises(TypeError, match="dtype mismatch for 'mean'"):
        m.load_state_dict(OrderedDict(sd, mean=np.zeros(2, dtype=np.float64)))
    m.load_state_dict(missing, strict=False)
    assert int(m.count) == 5


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_trained_model_and_used_loss_copy_and_keep_training_identically(how):
    # After steps (the chain's plan and reused buffers, zero_grad's cache, the loss's
    # record of validated targets) and with a forward pass still pending.
    import copy
    import pickle

    from xpnet import losses, optim
    from xpnet.models import mlp

    dup = copy.deepcopy if how == "deepcopy" else (lambda o: pickle.loads(pickle.dumps(o)))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 8)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    model = mlp([8, 32, 3], activation="tanh", generator=0)
    model.chain_buffer_min_bytes = 0
    loss_fn = losses.CrossEntropyLoss()

    def train(m, lf, steps):
        opt = optim.SGD(m.parameters(), lr=0.1)
        for _ in range(steps):
            out = m(x)
            _, g = lf(out, y)
            m.zero_grad()
            m.backward_params(g)
            opt.step()
        return [p.data.copy() for p in m.parameters()]

    train(model, loss_fn, 3)
    model(x)  # pending: a copy starts without it
    model_copy, loss_copy = dup(model), dup(loss_fn)
    assert not model_copy._saved
    model.clear_saved()
    for a, b in zip(train(model, loss_fn, 3), train(model_copy, loss_copy, 3)):
        np.testing.assert_array_equal(a, b)
