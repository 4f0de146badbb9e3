"""Residual: y = x + module(x), against torch.autograd, nested, shared, gradcheck, errors."""

import numpy as np
import pytest

import xpnet
from xpnet import BatchNorm1d, LayerNorm, Linear, Residual, Sequential, Tanh
from xpnet.testing import check_layer, gradcheck

# float64 against torch: the same products summed in another order, ~1e-16 per op.
RTOL = 1e-9
ATOL = 1e-12


def host(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _need_f64(backend):
    backend.dtype("float64")  # Float64Unavailable: the plugin skips on float32-only devices


def _copy_into_torch(torch, net, tnet):
    ours = list(net.named_parameters())
    theirs = list(tnet.named_parameters())
    assert len(ours) == len(theirs)
    with torch.no_grad():
        for (_, p), (_, tp) in zip(ours, theirs):
            tp.copy_(torch.from_numpy(p.data.astype("float64")))
    return ours, theirs


def _compare(backend, torch, net, tnet, xh, dyh):
    ours, theirs = _copy_into_torch(torch, net, tnet)
    tx = torch.tensor(xh, requires_grad=True)
    ty = tnet(tx)
    ty.backward(torch.tensor(dyh))
    backend.move(net, dtype="float64")
    y = net(backend.asarray(xh, dtype="float64"))
    dx = net.backward(backend.asarray(dyh, dtype="float64"))
    backend.check(y, dtype="float64", shape=tuple(ty.shape))
    backend.check(dx, dtype="float64", shape=xh.shape)
    np.testing.assert_allclose(backend.to_numpy(y), ty.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(backend.to_numpy(dx), tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    for (name, p), (_, tp) in zip(net.named_parameters(), theirs):
        backend.check(p.grad, dtype="float64", shape=p.shape)
        np.testing.assert_allclose(backend.to_numpy(p.grad), tp.grad.numpy(), rtol=RTOL, atol=ATOL, err_msg=name)


def _torch_residual(torch):
    class TRes(torch.nn.Module):
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return x + self.module(x)

    return TRes


def test_residual_block_matches_torch(backend):
    torch = pytest.importorskip("torch")
    _need_f64(backend)
    TRes = _torch_residual(torch)
    net = Residual(Sequential(Linear(4, 4, generator=0), Tanh(), Linear(4, 4, generator=1)))
    tnet = TRes(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4))).double()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    _compare(backend, torch, net, tnet, host((5, 4), 1), host((5, 4), 2))


def test_residual_mlp_nested_in_sequential_matches_torch(backend):
    torch = pytest.importorskip("torch")
    _need_f64(backend)
    TRes = _torch_residual(torch)
    net = Sequential(
        Linear(3, 6, generator=0),
        Residual(Sequential(LayerNorm(6), Linear(6, 6, generator=1), Tanh(), Linear(6, 6, generator=2))),
        Residual(Sequential(BatchNorm1d(6, track_running_stats=False), Tanh(), Linear(6, 6, generator=3))),
        Linear(6, 2, generator=4),
    )
    T = torch.nn
    tnet = T.Sequential(
        T.Linear(3, 6),
        TRes(T.Sequential(T.LayerNorm(6), T.Linear(6, 6), T.Tanh(), T.Linear(6, 6))),
        TRes(T.Sequential(T.BatchNorm1d(6, track_running_stats=False), T.Tanh(), T.Linear(6, 6))),
        T.Linear(6, 2),
    ).double()
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in tnet.named_parameters()]
    _compare(backend, torch, net, tnet, host((4, 3), 3), host((4, 2), 4))


def test_shared_block_applied_twice_matches_torch(backend):
    torch = pytest.importorskip("torch")
    _need_f64(backend)
    TRes = _torch_residual(torch)
    block = Residual(Sequential(Linear(4, 4, generator=5), Tanh()))
    net = Sequential(block, Linear(4, 4, generator=6), block)  # one block, two applications
    tblock = TRes(torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh())).double()
    tlin = torch.nn.Linear(4, 4).double()
    with torch.no_grad():
        tblock.module[0].weight.copy_(torch.from_numpy(block.module[0].weight.data.astype("float64")))
        tblock.module[0].bias.copy_(torch.from_numpy(block.module[0].bias.data.astype("float64")))
        tlin.weight.copy_(torch.from_numpy(net[1].weight.data.astype("float64")))
        tlin.bias.copy_(torch.from_numpy(net[1].bias.data.astype("float64")))
    xh, dyh = host((3, 4), 7), host((3, 4), 8)
    tx = torch.tensor(xh, requires_grad=True)
    ty = tblock(tlin(tblock(tx)))
    ty.backward(torch.tensor(dyh))
    assert [n for n, _ in net.named_parameters()] == ["0.module.0.weight", "0.module.0.bias", "1.weight", "1.bias"]
    backend.move(net, dtype="float64")
    y = net(backend.asarray(xh, dtype="float64"))
    dx = net.backward(backend.asarray(dyh, dtype="float64"))
    for ours, theirs in [(y, ty), (dx, tx.grad), (block.module[0].weight.grad, tblock.module[0].weight.grad),
                         (block.module[0].bias.grad, tblock.module[0].bias.grad), (net[1].weight.grad, tlin.weight.grad)]:
        np.testing.assert_allclose(backend.to_numpy(ours), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)


def test_residual_gradcheck_and_backward_params(backend):
    _need_f64(backend)
    net = backend.move(Sequential(Linear(3, 4, generator=0), Residual(Sequential(Linear(4, 4, generator=1), Tanh()))),
                       dtype="float64")
    x = backend.asarray(host((5, 3), 9), dtype="float64")
    res = gradcheck(net, x)
    assert {"input", "0.weight", "1.module.0.weight", "1.module.0.bias"} <= set(res.max_abs_err)
    dy = backend.asarray(host((5, 4), 10), dtype="float64")
    net.zero_grad()
    net(x)
    net.backward(dy)
    full = {n: backend.to_numpy(p.grad) for n, p in net.named_parameters()}
    net.zero_grad()
    net(x)
    assert net.backward_params(dy) is None
    for n, p in net.named_parameters():
        np.testing.assert_array_equal(backend.to_numpy(p.grad), full[n])
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        net[1].backward(dy)  # backward_params consumed the stored passes


def test_check_layer_passes():
    check_layer(lambda: Residual(Sequential(Linear(4, 4), Tanh(), LayerNorm(4))), (3, 4))


def test_residual_errors():
    with pytest.raises(ValueError, match=r"Residual: the branch must keep the input's shape .* Linear maps \(2, 3\) to \(2, 4\)"):
        Residual(Linear(3, 4))(np.zeros((2, 3), dtype="float32"))
    with pytest.raises(TypeError, match="Residual: expected a Module, got function"):
        Residual(lambda x: x)
    with pytest.raises(RuntimeError, match="no stored forward pass"):
        Residual(Tanh()).backward(np.zeros(2))
    r = Residual(Tanh()).eval()
    np.testing.assert_allclose(r(np.full(2, 0.5)), 0.5 + np.tanh(0.5))
    assert "(module): Tanh()" in repr(Residual(xpnet.Tanh()))


def test_docs_layers_examples_of_these_sections_run():
    # The python blocks of docs/layers.md's normalization/residual and buffers sections.
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "layers.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)
    ours = [s for s in sections if s.startswith(("Normalization, embedding and residual blocks", "Buffers"))]
    assert len(ours) == 2
    blocks = [b for s in ours for b in re.findall(r"```python\n(.*?)```", s, flags=re.S)]
    assert len(blocks) >= 2
    for block in blocks:
        exec(compile(block, "docs/layers.md", "exec"), {})  # noqa: S102 - our own docs
