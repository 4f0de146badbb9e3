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
    with pytest.raises(RuntimeError):
        net.backward(backend.asarray(np.ones((2, 3)), dtype="float32"))


def test_train_eval_modes_propagate_and_eval_stores_nothing(backend):
    net = backend.move(make_net(), dtype="float64")
    x = backend.asarray(np.ones((2, 4)), dtype="float64")
    assert net.training and all(m.training for m in net.modules())
    net.eval()
    assert not any(m.training for m in net.modules())
    net(x)
    assert all(m.__dict__.get("_cache") is None for m in net.modules())
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
    with pytest.raises(RuntimeError):
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
