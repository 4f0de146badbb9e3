"""Conv2d: torch.autograd oracle over a configuration grid, finite differences, check_layer, errors."""

import numpy as np
import pytest

import xpnet
from xpnet import Conv2d
from xpnet.layers import _spatial
from xpnet.testing import check_layer, gradcheck

# torch.autograd oracle in float64: the same products summed in a different order
# (im2col + GEMM here, torch's own kernels there), ~1e-16 relative per operation; the
# issue's 1e-9 leaves ample room for reductions of a few hundred terms. The absolute
# floor covers entries that cancel to ~0.
RTOL_F64 = 1e-9
ATOL_F64 = 1e-12
# float32: unit roundoff 6e-8 times reductions of ~100 terms.
RTOL_F32 = 1e-5
ATOL_F32 = 1e-5

# (in, out, kernel, stride, padding, dilation, groups, bias, input shape (N, H, W))
GRID = [
    (3, 4, 3, 1, 0, 1, 1, True, (2, 7, 6)),
    (2, 4, (3, 2), (2, 1), (1, 2), 1, 2, False, (2, 7, 6)),
    (4, 6, 3, 2, 1, 2, 2, True, (2, 9, 8)),
    (3, 3, 1, 1, 0, 1, 3, True, (1, 5, 5)),  # depthwise 1x1, batch 1
    (2, 3, 2, 3, 1, 1, 1, True, (1, 5, 7)),  # stride larger than the kernel
    (2, 2, 3, 1, "same", 2, 1, False, (2, 5, 6)),
    (1, 2, 4, 1, "same", 1, 1, True, (1, 5, 5)),  # even kernel: the extra zero goes bottom/right
    (2, 4, 5, 1, "valid", 1, 1, True, (3, 5, 5)),  # kernel as large as the input: 1x1 output
]


def host(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _ids(cfg):
    cin, cout, k, s, p, d, g, b, (n, h, w) = cfg
    return f"c{cin}-{cout}_k{k}_s{s}_p{p}_d{d}_g{g}_{'b' if b else 'nob'}_{n}x{h}x{w}"


def _torch_pair(cfg, dtype):
    torch = pytest.importorskip("torch")
    cin, cout, k, s, p, d, g, b, _ = cfg
    ours = Conv2d(cin, cout, k, s, p, d, g, b, generator=1)
    theirs = torch.nn.Conv2d(cin, cout, k, s, p, d, g, b).to(getattr(torch, dtype))
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(ours.weight.data.astype(dtype)))
        if b:
            theirs.bias.copy_(torch.from_numpy(ours.bias.data.astype(dtype)))
    return torch, ours, theirs


def _compare_with_torch(backend, cfg, dtype, rtol, atol):
    torch, conv, tconv = _torch_pair(cfg, dtype)
    cin, _, _, _, _, _, _, bias, (n, h, w) = cfg
    xh = host((n, cin, h, w), 1)
    tx = torch.tensor(xh, dtype=getattr(torch, dtype), requires_grad=True)
    ty = tconv(tx)
    dyh = host(tuple(ty.shape), 2)
    ty.backward(torch.tensor(dyh, dtype=getattr(torch, dtype)))

    backend.move(conv, dtype=dtype)
    y = conv(backend.asarray(xh, dtype=dtype))
    backend.check(y, dtype=dtype, shape=tuple(ty.shape))
    dx = conv.backward(backend.asarray(dyh, dtype=dtype))
    backend.check(dx, dtype=dtype, shape=xh.shape)
    pairs = [(y, ty), (dx, tx.grad), (conv.weight.grad, tconv.weight.grad)]
    if bias:
        pairs.append((conv.bias.grad, tconv.bias.grad))
    for ours, theirs in pairs:
        backend.check(ours, dtype=dtype)
        np.testing.assert_allclose(backend.to_numpy(ours), theirs.detach().numpy(), rtol=rtol, atol=atol)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's own note
@pytest.mark.parametrize("cfg", GRID, ids=_ids)
def test_conv2d_matches_torch_autograd_float64(backend, cfg):
    _compare_with_torch(backend, cfg, "float64", RTOL_F64, ATOL_F64)


def test_conv2d_matches_torch_autograd_float32(backend):
    _compare_with_torch(backend, GRID[2], "float32", RTOL_F32, ATOL_F32)


@pytest.mark.parametrize("cfg", [GRID[1], GRID[2]], ids=_ids)
def test_conv2d_gradcheck(backend, cfg):
    cin, cout, k, s, p, d, g, b, _ = cfg
    conv = backend.move(Conv2d(cin, cout, k, s, p, d, g, b, generator=0), dtype="float64")
    x = backend.asarray(host((1, cin, 6, 5)), dtype="float64")
    res = gradcheck(conv, x)
    assert set(res.max_abs_err) == {"input", "weight"} | ({"bias"} if b else set())


def test_conv2d_check_layer():
    report = check_layer(lambda: Conv2d(4, 4, 3, stride=2, padding=1, groups=2), (2, 4, 5, 5))
    assert report.ok and "numpy" in report.backends


def test_conv2d_backward_params_matches_backward(backend):
    full = backend.move(Conv2d(2, 3, 3, padding=1, generator=0), dtype="float64")
    fast = backend.move(Conv2d(2, 3, 3, padding=1, generator=0), dtype="float64")
    x = backend.asarray(host((2, 2, 4, 4)), dtype="float64")
    dy = backend.asarray(host((2, 3, 4, 4), 1), dtype="float64")
    full(x)
    full.backward(dy)
    fast(x)
    assert fast.backward_params(dy) is None
    for a, b in zip(full.parameters(), fast.parameters()):
        np.testing.assert_array_equal(backend.to_numpy(a.grad), backend.to_numpy(b.grad))


def test_conv2d_applied_twice_matches_torch(backend):
    # Re-entrant: one conv used twice in a forward gets two backwards, gradients summed.
    torch, conv, tconv = _torch_pair((2, 2, 3, 1, 1, 1, 1, True, None), "float64")
    xh = host((2, 2, 5, 4))
    tx = torch.tensor(xh, requires_grad=True)
    ty = tconv(torch.tanh(tconv(tx)))
    dyh = host(tuple(ty.shape), 3)
    ty.backward(torch.from_numpy(dyh))
    backend.move(conv, dtype="float64")
    tanh = xpnet.Tanh()
    y = conv(tanh(conv(backend.asarray(xh, dtype="float64"))))
    dx = conv.backward(tanh.backward(conv.backward(backend.asarray(dyh, dtype="float64"))))
    for ours, theirs in [(y, ty), (dx, tx.grad), (conv.weight.grad, tconv.weight.grad), (conv.bias.grad, tconv.bias.grad)]:
        np.testing.assert_allclose(backend.to_numpy(ours), theirs.detach().numpy(), rtol=RTOL_F64, atol=ATOL_F64)


def test_conv2d_immutable_backend_path_agrees(monkeypatch):
    # JAX arrays cannot be assigned into: padding and col2im then build their results
    # with concatenations. Force that path on NumPy and compare with the in-place one.
    conv = Conv2d(2, 3, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1), generator=0, dtype="float64")
    x, dyh = host((2, 2, 7, 8)), None
    y = conv(x)
    dyh = host(tuple(y.shape), 1)
    dx = conv.backward(dyh)
    monkeypatch.setattr(_spatial._backend, "supports_inplace", lambda a: False)
    ref = Conv2d(2, 3, (3, 2), stride=(2, 3), padding=(1, 2), dilation=(2, 1), generator=0, dtype="float64")
    np.testing.assert_array_equal(ref(x), y)
    np.testing.assert_allclose(ref.backward(dyh), dx, rtol=1e-14, atol=1e-14)


def test_conv2d_default_init_matches_torch_bounds():
    conv = Conv2d(4, 8, 3, groups=2, generator=0)
    bound = 1 / np.sqrt(2 * 3 * 3)  # fan_in = in_channels / groups * kH * kW
    assert conv.weight.shape == (8, 2, 3, 3) and conv.bias.shape == (8,)
    for p in (conv.weight.data, conv.bias.data):
        assert np.abs(p).max() <= bound
        assert np.abs(p).max() > 0.8 * bound
    assert conv.weight.data.dtype == np.float32


def test_conv2d_output_shapes_and_repr():
    conv = Conv2d(3, 5, 3, stride=2, padding=1, dilation=1)
    assert conv(np.zeros((1, 3, 8, 7), dtype=np.float32)).shape == (1, 5, 4, 4)
    assert "kernel_size=(3, 3)" in repr(conv) and "padding=(1, 1)" in repr(conv)
    assert Conv2d(1, 1, 3, padding="same")(np.zeros((1, 1, 4, 6), dtype=np.float32)).shape == (1, 1, 4, 6)


def test_conv2d_input_errors():
    conv = Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"expected a 4-D input \(N, C, H, W\), got shape \(3, 8, 8\)"):
        conv(np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="expected 3 input channels .* got 2"):
        conv(np.zeros((1, 2, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match=r"kernel \(effective size 3x3 with dilation\) is larger than the padded input \(2x5"):
        conv(np.zeros((1, 3, 2, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        Conv2d(1, 1, 3, dilation=3)(np.zeros((1, 1, 6, 6), dtype=np.float32))
    with pytest.raises(TypeError, match="dtype float64 does not match"):
        conv(np.zeros((1, 3, 8, 8)))
    conv(np.zeros((1, 3, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match=r"expected dy of shape \(1, 4, 3, 3\)"):
        conv.backward(np.zeros((1, 4, 2, 2), dtype=np.float32))
    conv(np.zeros((1, 3, 5, 5), dtype=np.float32))
    with pytest.raises(TypeError, match="dy has dtype float64"):
        conv.backward(np.zeros((1, 4, 3, 3)))
    with pytest.raises(RuntimeError, match="no stored forward"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1), dtype=np.float32))


def test_conv2d_constructor_errors():
    with pytest.raises(ValueError, match="divisible by groups"):
        Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        Conv2d(3, 4, 0)
    with pytest.raises(ValueError, match="stride must be"):
        Conv2d(3, 4, 3, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="padding_mode 'reflect' is not supported"):
        Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="padding='same' needs stride 1"):
        Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="in_channels must be a positive int"):
        Conv2d(0, 4, 3)


def test_docs_layers_convolution_section_runs():
    # The python blocks of docs/layers.md's "Convolution and pooling" section.
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parents[1] / "docs" / "layers.md").read_text()
    ours = [s for s in re.split(r"^## ", text, flags=re.M) if s.startswith("Convolution and pooling")]
    assert len(ours) == 1
    blocks = re.findall(r"```python\n(.*?)```", ours[0], flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/layers.md", "exec"), {})  # noqa: S102 - our own docs


def test_conv_reused_columns_never_change_a_pending_pass():
    """NumPy keeps the im2col columns in a buffer of the layer (_spatial._workspace):
    reused by the next pass only once the previous one's backward has run."""
    import copy

    from xpnet.testing import get_backend

    strict = get_backend("array_api_strict")  # the portable path: fresh arrays only
    rng = np.random.default_rng(9)
    xs = [rng.standard_normal((8, 3, 20, 20)) for _ in range(3)]
    dys = [rng.standard_normal((8, 5, 18, 18)) for _ in range(3)]
    conv = Conv2d(3, 5, 3, generator=0, dtype="float64")
    ref = strict.move(copy.deepcopy(conv), dtype="float64")

    def reference(x, dy):
        ref.zero_grad()
        ref(strict.asarray(x, dtype="float64"))
        dx = ref.backward(strict.asarray(dy, dtype="float64"))
        return strict.to_numpy(dx), strict.to_numpy(ref.weight.grad)

    # two passes in flight, backwards in reverse order; an eval pass in between
    conv.zero_grad()
    conv(xs[0]), conv(xs[1])
    conv.eval()
    conv(xs[2])
    conv.train()
    conv.zero_grad()
    conv(xs[0]), conv(xs[1])
    dx1 = conv.backward(dys[1])
    dw1 = conv.weight.grad.copy()
    dx0 = conv.backward(dys[0])  # the first pass's columns: still its own
    dw0 = conv.weight.grad - dw1
    for dx, dw, i in ((dx1, dw1, 1), (dx0, dw0, 0)):
        want_dx, want_dw = reference(xs[i], dys[i])
        np.testing.assert_array_equal(dx, want_dx)
        np.testing.assert_allclose(dw, want_dw, rtol=1e-12, atol=1e-12)  # (a difference of sums)
    # one pass at a time: the buffers are reused, the numbers do not change
    for x, dy in zip(xs, dys):
        conv.zero_grad()
        conv(x)
        dx = conv.backward(dy)
        want_dx, want_dw = reference(x, dy)
        np.testing.assert_array_equal(dx, want_dx)
        np.testing.assert_array_equal(conv.weight.grad, want_dw)
    assert conv.__dict__["_xpnet_buffers"]["cols"].shape == (3, 9, 8, 18, 18)
    # copies start without it; to() and eval() drop it
    assert "_xpnet_buffers" not in copy.deepcopy(conv).__dict__
    conv.eval()
    assert "_xpnet_buffers" not in conv.__dict__
