"""The chain fuser (xpnet._fusion): generated source, naming, saved values, stop layer.

Sequential's use of it, bit for bit against the layers, is tested in test_layers.py.
"""

import inspect

import numpy as np

from xpnet._fusion import KernelSource, fuse


def _scale(c):
    """y = c x; dx = c dy (reads nothing saved)."""
    return KernelSource(forward=("{y} = {x} * {c}",), backward=("{dx} = {dy} * {c}",), consts={"c": c})


def _square():
    """y = x²; dx = 2 x dy (reads x)."""
    return KernelSource(forward=("{y} = {x} * {x}",), backward=("{dx} = {dy} * 2.0 * {x}",), saves=("x",))


class _Param:
    """A 'layer with parameters': y = x + b; db += Σ dy·1, dx = dy (uses {ones})."""

    def __init__(self):
        self.grad = 0.0
        self.calls = 0

    def source(self):
        return KernelSource(
            forward=("{y} = {x} + 1.0",),
            backward=("{acc}({dy}, {ones})", "{dx} = {dy}"),
            backward_params=("{acc}({dy}, {ones})",),
            consts={"acc": self.accumulate},
        )

    def accumulate(self, dy, ones):
        self.calls += 1
        self.grad += float(ones @ dy.sum(axis=1))


class _Chain:
    """What the fuser needs of a plan: the kept ones vector and its maker."""

    def __init__(self):
        self.ones = None
        self.made = 0

    def batch_ones(self, dy):
        self.made += 1
        self.ones = np.ones(dy.shape[0])
        return self.ones


def test_fused_chain_computes_the_composition_and_its_gradient():
    fused = fuse([_scale(3.0), _square(), _scale(-0.5)], first_param=0, chain=_Chain())
    x = np.array([[1.0, -2.0], [0.5, 4.0]])
    y, saved = fused.forward(x)
    np.testing.assert_array_equal(y, -0.5 * (3 * x) ** 2)
    dx = fused.backward(np.ones_like(y), saved)
    np.testing.assert_array_equal(dx, -0.5 * 2.0 * (3 * x) * 3.0)


def test_values_the_backward_does_not_read_share_one_name_and_are_not_saved():
    fused = fuse([_scale(2.0), _scale(3.0), _square(), _scale(5.0)], first_param=0, chain=_Chain())
    src = inspect.getsource(fused.forward)
    # a1 is read by nobody (shared name), a2 by the square's backward, a4 is the output
    assert "    a = a0 * c_0\n" in src and "    a2 = a * c_1\n" in src
    assert src.rstrip().endswith("return a4, (a2, )")
    _, saved = fused.forward(np.ones((2, 2)))
    assert len(saved) == 1


def test_a_chain_that_saves_nothing_generates_valid_code():
    fused = fuse([_scale(2.0), _scale(3.0)], first_param=0, chain=_Chain())
    y, saved = fused.forward(np.ones((1, 3)))
    assert saved == ()
    np.testing.assert_array_equal(fused.backward(np.ones((1, 3)), saved), np.full((1, 3), 6.0))


def test_backward_params_stops_at_the_first_layer_with_parameters():
    p, chain = _Param(), _Chain()
    fused = fuse([_square(), p.source(), _scale(2.0)], first_param=1, chain=chain)
    x = np.array([[1.0, 2.0], [3.0, 4.0]])
    y, saved = fused.forward(x)
    assert fused.backward_params(np.ones_like(y), saved) is None
    assert p.calls == 1 and p.grad == 2.0 * 4  # Σ of dy = 2 over 4 entries
    src = fused.source.split("def backward_params")[1]
    assert "_chain.ones" in src and "* 2.0 * a0" not in src  # the square's backward is not run
    dx = fused.backward(np.ones_like(y), saved)
    assert p.calls == 2 and chain.made == 1  # the ones vector is kept
    fused.backward(np.ones((3, 2)), fused.forward(np.ones((3, 2)))[1])
    assert chain.made == 2 and chain.ones.shape == (3,)  # and remade for another batch size
    np.testing.assert_array_equal(dx, 2.0 * 2.0 * x)


def test_ones_is_made_only_when_a_source_reads_it():
    fused = fuse([_scale(2.0), _square()], first_param=0, chain=_Chain())
    assert "_chain" not in fused.source


def test_constants_are_per_layer_and_the_code_is_compiled_once():
    a = fuse([_scale(2.0), _scale(3.0)], first_param=0, chain=_Chain())
    b = fuse([_scale(5.0), _scale(7.0)], first_param=0, chain=_Chain())
    assert a.forward.__code__ is b.forward.__code__  # same source: the cached code
    np.testing.assert_array_equal(a.forward(np.ones(2))[0], np.full(2, 6.0))
    np.testing.assert_array_equal(b.forward(np.ones(2))[0], np.full(2, 35.0))
