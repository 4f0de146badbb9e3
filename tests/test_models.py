"""xpnet.models: mlp shapes and layer order, init schemes, the JSON config round trip."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import xpnet
from xpnet.models import INITS, mlp, mlp_config, mlp_from_config, model_config, parameter_count

# Sample-statistics tolerance: a weight matrix of n entries drawn with std s has a sample
# std within a few s/sqrt(2n) of s; with n >= 8192 entries, 10% is > 6 standard errors.
STD_RTOL = 0.10


def _linear_layers(model):
    return [m for m in model if isinstance(m, xpnet.Linear)]


def test_mlp_layers_shapes_and_names():
    model = mlp([64, 128, 32, 10], activation="relu", generator=0)
    kinds = [type(m).__name__ for m in model]
    assert kinds == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    shapes = {name: p.shape for name, p in model.named_parameters()}
    assert shapes == {
        "0.weight": (128, 64), "0.bias": (128,),
        "2.weight": (32, 128), "2.bias": (32,),
        "4.weight": (10, 32), "4.bias": (10,),
    }
    assert parameter_count(model) == 64 * 128 + 128 + 128 * 32 + 32 + 32 * 10 + 10


def test_mlp_forward_backward_on_backend(backend):
    model = backend.move(mlp([5, 7, 3], activation="tanh", generator=1))
    x = backend.asarray(np.random.default_rng(0).normal(size=(4, 5)), dtype="float32")
    y = model(x)
    backend.check(y, dtype="float32", shape=(4, 3))
    dx = model.backward(backend.asarray(np.ones((4, 3)), dtype="float32"))
    backend.check(dx, dtype="float32", shape=(4, 5))
    for p in model.parameters():
        backend.check(p.grad, dtype="float32", shape=p.shape)


def test_mlp_output_activation_and_single_neuron():
    xor_net = mlp([2, 3, 1], activation="sigmoid", output_activation="sigmoid", generator=0)
    assert [type(m).__name__ for m in xor_net] == ["Linear", "Sigmoid", "Linear", "Sigmoid"]
    neuron = mlp([2, 1], activation="relu", generator=0)
    assert [type(m).__name__ for m in neuron] == ["Linear"]  # no hidden layer, no activation
    out = xpnet.to_numpy(xor_net(np.zeros((3, 2), dtype=np.float32)))
    assert out.shape == (3, 1) and np.all((out > 0) & (out < 1))


def test_mlp_is_deterministic_per_seed_and_torch_init_matches_linear():
    a = mlp([4, 8, 2], generator=3)
    b = mlp([4, 8, 2], generator=3)
    c = mlp([4, 8, 2], generator=4)
    for (na, pa), (_, pb), (_, pc) in zip(a.named_parameters(), b.named_parameters(), c.named_parameters()):
        np.testing.assert_array_equal(xpnet.to_numpy(pa.data), xpnet.to_numpy(pb.data), err_msg=na)
        assert not np.array_equal(xpnet.to_numpy(pa.data), xpnet.to_numpy(pc.data))
    # init="torch" (the default) is exactly what Linear draws from the same generator.
    g = np.random.default_rng(3)
    l0, l1 = xpnet.Linear(4, 8, generator=g), xpnet.Linear(8, 2, generator=g)
    np.testing.assert_array_equal(xpnet.to_numpy(a[0].weight.data), xpnet.to_numpy(l0.weight.data))
    np.testing.assert_array_equal(xpnet.to_numpy(a[2].bias.data), xpnet.to_numpy(l1.bias.data))


@pytest.mark.parametrize(
    ("init", "activation", "expected_std"),
    [
        ("xavier", "tanh", lambda fi, fo: (5 / 3) * math.sqrt(2.0 / (fi + fo))),
        ("xavier_normal", "sigmoid", lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
        ("he", "relu", lambda fi, fo: math.sqrt(2.0 / fi)),
        ("he_uniform", "relu", lambda fi, fo: math.sqrt(2.0 / fi)),
        ("lecun", "tanh", lambda fi, fo: math.sqrt(1.0 / fi)),
        ("lecun_uniform", "tanh", lambda fi, fo: math.sqrt(1.0 / fi)),
        ("torch", "relu", lambda fi, fo: 1.0 / math.sqrt(3.0 * fi)),
    ],
)
def test_init_schemes_have_their_variance(init, activation, expected_std):
    model = mlp([256, 128, 64], activation=activation, init=init, generator=0, dtype="float64")
    hidden = model[0].weight
    std = float(np.std(xpnet.to_numpy(hidden.data)))
    want = expected_std(256, 128)
    assert abs(std - want) <= STD_RTOL * want, (init, std, want)
    if init != "torch":
        assert np.all(xpnet.to_numpy(model[0].bias.data) == 0.0)
    else:
        assert np.any(xpnet.to_numpy(model[0].bias.data) != 0.0)


def test_zero_init_gives_zero_hidden_gradients():
    model = mlp([3, 4, 2], activation="tanh", init="zeros", generator=0, dtype="float64")
    assert all(np.all(xpnet.to_numpy(p.data) == 0) for p in model.parameters())
    x = np.random.default_rng(0).normal(size=(5, 3))
    model(x)
    model.backward(np.ones((5, 2)))
    # tanh(0) = 0, so the output layer sees zero inputs and passes zero δ backward.
    assert np.all(xpnet.to_numpy(model[0].weight.grad) == 0)
    assert np.all(xpnet.to_numpy(model[2].weight.grad) == 0)
    assert np.any(xpnet.to_numpy(model[2].bias.grad) != 0)


def test_dtype_option():
    model = mlp([3, 4, 2], dtype="float64", generator=0)
    assert all(xpnet._backend.dtype_name(p.dtype) == "float64" for p in model.parameters())
    assert model_config(model)["dtype"] == "float64"


def test_config_round_trip_is_json_and_rebuilds_the_same_architecture():
    cfg = mlp_config([64, 32, 16, 10], "gelu", dtype="float64", output_activation="sigmoid",
                     init="he", bias=False)
    text = json.dumps(cfg)
    back = json.loads(text)
    assert back == cfg and back["type"] == "mlp" and back["version"] == 1
    model = mlp_from_config(back, generator=0)
    assert [type(m).__name__ for m in model] == ["Linear", "GELU", "Linear", "GELU", "Linear", "Sigmoid"]
    assert all(lin.bias is None for lin in _linear_layers(model))
    assert model_config(model) == cfg
    # The same seed rebuilds the same weights; trained weights load across.
    ref = mlp_from_config(back, generator=0)
    for (_, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        np.testing.assert_array_equal(xpnet.to_numpy(p.data), xpnet.to_numpy(q.data))
    trained = mlp([64, 32, 16, 10], "gelu", dtype="float64", output_activation="sigmoid",
                  init="he", bias=False, generator=99)
    model.load_state_dict(trained.state_dict())


def test_model_config_of_built_model():
    model = mlp([2, 3, 1], "sigmoid", output_activation="sigmoid", generator=0)
    cfg = model_config(model)
    assert cfg["sizes"] == [2, 3, 1] and cfg["activation"] == "sigmoid"
    assert cfg["init"] == "torch" and cfg["dtype"] == "float32"
    cfg["sizes"].append(5)  # a copy: the model's record is unchanged
    assert model_config(model)["sizes"] == [2, 3, 1]
    with pytest.raises(ValueError, match="not built by"):
        model_config(xpnet.Sequential(xpnet.Linear(2, 1)))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"sizes": [3]}, ValueError, "at least"),
        ({"sizes": [3, 0, 2]}, ValueError, "positive"),
        ({"sizes": "3,4"}, ValueError, "sequence"),
        ({"sizes": [3, 2.5]}, ValueError, "positive int"),
        ({"sizes": [3, 2], "init": "glorot-ish"}, ValueError, "unknown init"),
        ({"sizes": [3, 4, 2], "activation": "nope"}, ValueError, "activation"),
        ({"sizes": [3, 2], "dtype": "int32"}, TypeError, "float"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        mlp(**kwargs)


def test_bad_configs():
    with pytest.raises(ValueError, match="type 'mlp'"):
        mlp_from_config({"sizes": [2, 1]})
    with pytest.raises(ValueError, match="newer"):
        mlp_from_config({**mlp_config([2, 1]), "version": 99})
    assert set(INITS) >= {"torch", "xavier", "he", "lecun", "zeros"}
