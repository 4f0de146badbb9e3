"""Embedding: torch.autograd oracle (both backward methods), padding_idx, init, index checks."""

import numpy as np
import pytest

import xpnet
from xpnet import Embedding, Flatten, Linear, Sequential
from xpnet.testing import check_layer, gradcheck

# float64 against torch: the forward is a gather (exact); dW sums the same rows. The
# one-hot GEMM adds exact zeros, the segment sum differences two prefix sums (rounding
# ~ε·|prefix|, |prefix| ≤ a few units here), so 1e-9 relative with a 1e-12 floor holds.
RTOL = 1e-9
ATOL = 1e-12

# (num_embeddings, embedding_dim, padding_idx, index shape)
CASES = [
    (7, 3, None, (2, 5)),
    (5, 4, 2, (3, 4)),
    (6, 2, -1, (9,)),  # negative padding_idx counts from the end, as torch
    (4, 3, 0, ()),  # a single 0-d index
    (3, 5, None, (2, 2, 3)),
]


def _indices(v, shape, seed=0, pad=None):
    idx = np.random.default_rng(seed).integers(0, v, size=shape)
    if pad is not None and idx.ndim:  # make sure padding and repeats occur
        idx.reshape(-1)[:2] = pad % v
    return idx


def _need_f64(backend):
    backend.dtype("float64")  # Float64Unavailable: the plugin skips on float32-only devices


@pytest.mark.parametrize("method", ["onehot", "segment"])
@pytest.mark.parametrize("v, d, pad, shape", CASES)
def test_embedding_matches_torch(backend, v, d, pad, shape, method):
    torch = pytest.importorskip("torch")
    _need_f64(backend)
    emb = Embedding(v, d, padding_idx=pad, dtype="float64", generator=0)
    emb.onehot_max_elements = 1 << 22 if method == "onehot" else 0
    te = torch.nn.Embedding(v, d, padding_idx=pad).double()
    with torch.no_grad():
        te.weight.copy_(torch.from_numpy(emb.weight.data))
    backend.move(emb)
    xh = _indices(v, shape, 1, pad)
    dyh = np.random.default_rng(2).standard_normal((*shape, d))
    ty = te(torch.from_numpy(xh))
    ty.backward(torch.from_numpy(dyh))
    # two backwards accumulate, as in torch
    ty2 = te(torch.from_numpy(xh))
    ty2.backward(torch.from_numpy(2.0 * dyh))
    x = backend.asarray(xh)
    y = emb(x)
    assert emb.backward(backend.asarray(dyh, dtype="float64")) is None  # indices: no gradient
    emb(x)
    emb.backward(backend.asarray(2.0 * dyh, dtype="float64"))
    backend.check(y, dtype="float64", shape=(*shape, d))
    backend.check(emb.weight.grad, dtype="float64", shape=(v, d))
    np.testing.assert_allclose(backend.to_numpy(y), ty.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(backend.to_numpy(emb.weight.grad), te.weight.grad.numpy(), rtol=RTOL, atol=ATOL)
    if pad is not None:
        assert not np.any(backend.to_numpy(emb.weight.grad)[pad % v])


@pytest.mark.parametrize("dtype", ["int32", "int64", "int16", "uint8"])
def test_any_integer_dtype_and_both_methods_agree(backend, dtype):
    xh = np.array([[3, 1, 3], [0, 3, 2]], dtype=dtype)
    dyh = np.random.default_rng(0).standard_normal((2, 3, 2)).astype("float32")
    grads = []
    for limit in (1 << 22, 0):
        emb = backend.move(Embedding(4, 2, generator=1))
        emb.onehot_max_elements = limit
        emb(backend.asarray(xh))
        emb.backward(backend.asarray(dyh))
        grads.append(backend.to_numpy(emb.weight.grad))
    # row 3 occurs three times: its gradient is the sum of three upstream rows
    want = dyh[0, 0] + dyh[0, 2] + dyh[1, 1]
    np.testing.assert_allclose(grads[0][3], want, rtol=1e-6)
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-6)


def test_init_is_torchs_standard_normal_seeded_on_the_host():
    a = Embedding(1000, 8, generator=3).weight.data
    b = Embedding(1000, 8, generator=3).weight.data
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (1000, 8)
    assert abs(a.mean()) < 0.03 and abs(a.std() - 1.0) < 0.03  # N(0, 1), 8000 draws
    e = Embedding(5, 3, padding_idx=4, generator=0)
    assert not np.any(e.weight.data[4]) and np.all(e.weight.data[:4] != 0)


def test_embedding_gradcheck_and_check_layer(backend):
    _need_f64(backend)
    # padding_idx's row gets no gradient by design, not by derivative: keep it out of the
    # input here (the torch tests above cover padding).
    emb = backend.move(Embedding(5, 3, padding_idx=1, dtype="float64", generator=0))
    res = gradcheck(emb, backend.asarray(np.array([[0, 3, 4], [4, 4, 2]])))
    assert set(res.max_abs_err) == {"weight"}


@pytest.mark.parametrize("limit", [1 << 22, 0])
def test_check_layer_passes(limit):
    def make():
        e = Embedding(6, 3, padding_idx=0, validate=False)
        e.onehot_max_elements = limit
        return e

    check_layer(make, (2, 4), input=np.array([[1, 5, 5, 4], [2, 1, 1, 3]]))  # no padding 0: see above


def test_in_a_model_with_flatten_and_linear_matches_torch():
    torch = pytest.importorskip("torch")
    net = Sequential(Embedding(6, 3, generator=0, dtype="float64"), Flatten(), Linear(12, 2, generator=1, dtype="float64"))
    tnet = torch.nn.Sequential(torch.nn.Embedding(6, 3), torch.nn.Flatten(), torch.nn.Linear(12, 2)).double()
    with torch.no_grad():
        for (_, p), (_, tp) in zip(net.named_parameters(), tnet.named_parameters()):
            tp.copy_(torch.from_numpy(p.data))
    xh = np.array([[0, 5, 5, 1], [2, 2, 2, 2], [3, 4, 0, 0]])
    dyh = np.random.default_rng(0).standard_normal((3, 2))
    tnet(torch.from_numpy(xh)).backward(torch.from_numpy(dyh))
    net(xh)
    assert net.backward(dyh) is None
    for (name, p), (_, tp) in zip(net.named_parameters(), tnet.named_parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)
    net.zero_grad()
    net(xh)
    net.backward_params(dyh)  # the training loop's call: same gradients
    np.testing.assert_allclose(net[0].weight.grad, tnet[0].weight.grad.numpy(), rtol=RTOL, atol=ATOL)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("bad", [np.array([[0.0, 1.0]]), np.array([True, False])])
def test_non_integer_indices_are_a_type_error(bad):
    with pytest.raises(TypeError, match="Embedding: indices must have an integer dtype"):
        Embedding(3, 2)(bad)
    with pytest.raises(TypeError, match="integer dtype"):
        Embedding(3, 2, validate=False)(bad)  # the dtype check is free: always on


def test_non_array_indices():
    with pytest.raises(TypeError, match="expected an array of integer indices, got list"):
        Embedding(3, 2)([0, 1])


@pytest.mark.parametrize("bad, frm, to", [(np.array([0, 3]), 0, 3), (np.array([[-1, 2]]), -1, 2)])
def test_out_of_range_indices_are_caught_at_entry(backend, bad, frm, to):
    emb = backend.move(Embedding(3, 2))
    x = backend.asarray(bad)
    msg = rf"indices must be in \[0, 3\) for num_embeddings=3, got values from {frm} to {to}"
    with pytest.raises(ValueError, match=msg):
        emb(x)
    with pytest.raises(ValueError, match=msg):
        emb.check_indices(x)  # the once-per-dataset entry-point check
    emb.check_indices(backend.asarray(np.array([0, 2, 1])))
    emb.check_indices(backend.asarray(np.zeros((0,), dtype=np.int64)))


def test_validate_false_does_not_read_values_back():
    # With validate=False forward reads nothing back from the device: the range check is
    # gone, and an index out of range is the backend's own error (NumPy: IndexError).
    emb = Embedding(3, 2, validate=False)
    with pytest.raises(IndexError):
        emb(np.array([5]))


def test_constructor_and_backward_errors():
    with pytest.raises(ValueError, match="num_embeddings must be a positive int"):
        Embedding(0, 2)
    with pytest.raises(ValueError, match="embedding_dim must be a positive int"):
        Embedding(3, 2.5)
    with pytest.raises(ValueError, match=r"padding_idx must be an int in \[-3, 3\)"):
        Embedding(3, 2, padding_idx=3)
    emb = Embedding(3, 2)
    emb(np.array([0, 1]))
    with pytest.raises(ValueError, match=r"Embedding.backward: expected dy of shape \(2, 2\)"):
        emb.backward(np.zeros((2, 3), dtype="float32"))
    emb(np.array([0, 1]))
    with pytest.raises(TypeError, match="dy has dtype float64"):
        emb.backward(np.zeros((2, 2)))
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        Embedding(3, 2).backward(np.zeros((2, 2), dtype="float32"))


def test_repr():
    assert repr(Embedding(10, 4, padding_idx=-1)) == "Embedding(10, 4, padding_idx=9)"
    assert repr(xpnet.Embedding(10, 4)) == "Embedding(10, 4)"


def test_backward_cost_benchmark_smoke():
    # benchmarks/embedding_backward.py makes the table in docs/layers.md; keep it running.
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks import embedding_backward

    rows = embedding_backward.main(["--quick"])
    assert len(rows) == len(embedding_backward.QUICK_CASES)
    for r in rows:
        assert r["onehot_err"] < 1e-6 and r["segment_err"] < 1e-5  # float32 vs float64 sums
