"""The rest of torch.optim.lr_scheduler (issue 13): the full learning-rate (and momentum)
sequence against torch, and torch-free closed-form references for each schedule."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet.optim import lr_scheduler as L

# Host float arithmetic in torch's order: the sequences agree to the last bits; 1e-9 is
# issue 13's oracle tolerance, also for the closed forms (which round differently).
RTOL = 1e-9


def _opt(name="SGD", lrs=(0.1, 0.05), **kw):
    groups = [{"params": [xpnet.Parameter(np.zeros(2))], "lr": lr} for lr in lrs]
    return getattr(optim, name)(groups, **kw)


def _topt(torch, name="SGD", lrs=(0.1, 0.05), **kw):
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return getattr(torch.optim, name)(groups, **kw)


def _lambda1(epoch):
    return 0.95**epoch


def _lambda2(epoch):
    return 1.0 / (1 + epoch)


# name -> (optimizer name, optimizer kwargs, factory(L-module, opt))
CASES = {
    "LambdaLR": ("SGD", {}, lambda M, o: M.LambdaLR(o, _lambda1)),
    "LambdaLR(per group)": ("SGD", {}, lambda M, o: M.LambdaLR(o, [_lambda1, _lambda2])),
    "MultiplicativeLR": ("SGD", {}, lambda M, o: M.MultiplicativeLR(o, lambda e: 0.9 if e % 3 else 1.1)),
    "ConstantLR": ("SGD", {}, lambda M, o: M.ConstantLR(o)),
    "ConstantLR(0.5, 3)": ("SGD", {}, lambda M, o: M.ConstantLR(o, factor=0.5, total_iters=3)),
    "PolynomialLR": ("SGD", {}, lambda M, o: M.PolynomialLR(o, total_iters=8, power=2.0)),
    "PolynomialLR(linear)": ("SGD", {}, lambda M, o: M.PolynomialLR(o)),
    "CosineAnnealingWarmRestarts": ("SGD", {}, lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=1e-3)),
    "CosineAnnealingWarmRestarts(T_mult=2)": ("SGD", {}, lambda M, o: M.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2)),
    "CyclicLR": ("SGD", {"momentum": 0.9}, lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=4)),
    "CyclicLR(triangular2)": ("SGD", {"momentum": 0.9}, lambda M, o: M.CyclicLR(
        o, [0.01, 0.02], [0.1, 0.2], step_size_up=3, step_size_down=5, mode="triangular2")),
    "CyclicLR(exp_range, Adam)": ("Adam", {}, lambda M, o: M.CyclicLR(
        o, 1e-3, 1e-2, step_size_up=5, mode="exp_range", gamma=0.97)),
    "CyclicLR(no momentum)": ("Adagrad", {}, lambda M, o: M.CyclicLR(o, 0.01, 0.1, step_size_up=2, cycle_momentum=False)),
    "OneCycleLR": ("SGD", {"momentum": 0.9}, lambda M, o: M.OneCycleLR(o, max_lr=0.5, total_steps=40)),
    "OneCycleLR(linear, three_phase, Adam)": ("Adam", {}, lambda M, o: M.OneCycleLR(
        o, max_lr=[0.5, 0.2], epochs=4, steps_per_epoch=10, anneal_strategy="linear", three_phase=True)),
    "SequentialLR": ("SGD", {}, lambda M, o: M.SequentialLR(
        o, [M.LinearLR(o, start_factor=0.1, total_iters=5), M.CosineAnnealingLR(o, T_max=15)], milestones=[5])),
    "SequentialLR(3)": ("SGD", {}, lambda M, o: M.SequentialLR(
        o, [M.ConstantLR(o, factor=0.5, total_iters=10), M.ExponentialLR(o, gamma=0.9),
            M.StepLR(o, step_size=3, gamma=0.5)], milestones=[4, 12])),
    "ChainedScheduler": ("SGD", {}, lambda M, o: M.ChainedScheduler(
        [M.ConstantLR(o, factor=0.1, total_iters=2), M.ExponentialLR(o, gamma=0.9)])),
    "ChainedScheduler(poly+multistep)": ("SGD", {}, lambda M, o: M.ChainedScheduler(
        [M.PolynomialLR(o, total_iters=10), M.MultiStepLR(o, milestones=[3, 6], gamma=0.5)], optimizer=o)),
}
STEPS = 39


def _momenta(opt):
    return [g["betas"][0] if "betas" in g else g.get("momentum") for g in opt.param_groups]


@pytest.mark.parametrize("name", sorted(CASES))
def test_full_sequence_matches_torch(name):
    torch = pytest.importorskip("torch")
    oname, kw, make = CASES[name]
    opt, topt = _opt(oname, **kw), _topt(torch, oname, **kw)
    sched, tsched = make(L, opt), make(torch.optim.lr_scheduler, topt)
    for epoch in range(STEPS + 1):
        np.testing.assert_allclose(sched.get_last_lr(), tsched.get_last_lr(), rtol=RTOL, err_msg=f"epoch {epoch}")
        np.testing.assert_allclose([g["lr"] for g in opt.param_groups], [g["lr"] for g in topt.param_groups], rtol=RTOL)
        assert _momenta(opt) == pytest.approx(_momenta(topt), rel=RTOL)
        if epoch < STEPS:
            topt.step()
            sched.step()
            tsched.step()


def test_state_dict_resumes_and_is_json_friendly():
    opt = _opt(momentum=0.9)
    sched = L.CyclicLR(opt, 0.01, 0.1, step_size_up=4)
    for _ in range(5):
        sched.step()
    saved = json.loads(json.dumps(sched.state_dict()))
    ref = [sched.step() or sched.get_last_lr() for _ in range(6)]
    opt2 = _opt(momentum=0.9)
    sched2 = L.CyclicLR(opt2, 0.01, 0.1, step_size_up=4)
    sched2.load_state_dict(saved)
    assert [sched2.step() or sched2.get_last_lr() for _ in range(6)] == ref
    seq = CASES["SequentialLR"][2](L, _opt())
    for _ in range(7):
        seq.step()
    state = seq.state_dict()
    assert len(state["_schedulers"]) == 2 and "optimizer" not in state


def test_lambda_state_saves_callable_objects_not_functions():
    class Decay:
        def __init__(self):
            self.rate = 0.5

        def __call__(self, epoch):
            return self.rate**epoch

    f = Decay()
    sched = L.LambdaLR(_opt(), [f, _lambda1])
    state = sched.state_dict()
    assert state["lr_lambdas"] == [{"rate": 0.5}, None]
    state["lr_lambdas"][0]["rate"] = 0.25
    sched.load_state_dict(state)
    assert f.rate == 0.25


# ----------------------------------------------------------------- closed-form references


def _run(sched, opt, steps):
    out = [opt.param_groups[0]["lr"]]
    for _ in range(steps):
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def test_lambda_and_multiplicative_closed_forms():
    opt = _opt(lrs=(0.2,))
    got = _run(L.LambdaLR(opt, lambda e: 1.0 / (1 + e)), opt, 10)
    np.testing.assert_allclose(got, [0.2 / (1 + e) for e in range(11)], rtol=RTOL)
    opt = _opt(lrs=(0.2,))
    got = _run(L.MultiplicativeLR(opt, lambda e: 0.9), opt, 10)
    np.testing.assert_allclose(got, [0.2 * 0.9**e for e in range(11)], rtol=RTOL)


def test_constant_and_polynomial_closed_forms():
    opt = _opt(lrs=(0.3,))
    got = _run(L.ConstantLR(opt, factor=0.25, total_iters=4), opt, 8)
    np.testing.assert_allclose(got, [0.3 * (0.25 if e < 4 else 1.0) for e in range(9)], rtol=RTOL)
    opt = _opt(lrs=(0.3,))
    got = _run(L.PolynomialLR(opt, total_iters=6, power=1.5), opt, 9)
    np.testing.assert_allclose(got, [0.3 * (1 - min(e, 6) / 6) ** 1.5 for e in range(10)], rtol=RTOL, atol=1e-15)


def test_warm_restarts_closed_form():
    opt = _opt(lrs=(0.1,))
    got = _run(L.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=2, eta_min=0.01), opt, 13)
    ref = []
    start, length = 0, 2
    for e in range(14):
        while e >= start + length:
            start, length = start + length, length * 2
        ref.append(0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * (e - start) / length)) / 2)
    np.testing.assert_allclose(got, ref, rtol=RTOL)


def test_warm_restarts_fractional_epoch():
    opt = _opt(lrs=(0.1,))
    sched = L.CosineAnnealingWarmRestarts(opt, T_0=4)
    sched.step(5.5)  # 1.5 epochs into the second cycle
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05 * (1 + math.cos(math.pi * 1.5 / 4)), rel=RTOL)
    assert sched.last_epoch == 5


def test_cyclic_triangular_closed_form_and_momentum():
    opt = _opt(lrs=(0.5,), momentum=0.9)
    sched = L.CyclicLR(opt, 0.1, 0.5, step_size_up=4, base_momentum=0.8, max_momentum=0.9)
    lrs, moms = [opt.param_groups[0]["lr"]], [opt.param_groups[0]["momentum"]]
    for _ in range(16):
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        moms.append(opt.param_groups[0]["momentum"])
    tri = [1 - abs((t % 8) - 4) / 4 for t in range(17)]  # 0 → 1 → 0 every 8 steps
    np.testing.assert_allclose(lrs, [0.1 + 0.4 * s for s in tri], rtol=RTOL)
    np.testing.assert_allclose(moms, [0.9 - 0.1 * s for s in tri], rtol=RTOL)


def test_one_cycle_endpoints_and_error_past_the_end():
    opt = _opt(lrs=(1.0,), momentum=0.9)
    sched = L.OneCycleLR(opt, max_lr=1.0, total_steps=20, pct_start=0.25)
    lrs = _run(sched, opt, 19)
    assert lrs[0] == pytest.approx(1.0 / 25, rel=RTOL)
    assert max(lrs) == pytest.approx(1.0, rel=RTOL) and int(np.argmax(lrs)) == 4  # pct_start·total − 1
    assert lrs[-1] == pytest.approx(1.0 / 25 / 1e4, rel=RTOL)
    assert np.all(np.diff(lrs[:5]) > 0) and np.all(np.diff(lrs[4:]) < 0)
    sched.step()  # step 20 == total_steps is still allowed, as torch
    with pytest.raises(ValueError, match="Tried to step 21 times"):
        sched.step()


def test_sequential_warmup_then_cosine_closed_form():
    opt = _opt(lrs=(0.1,))
    sched = CASES["SequentialLR"][2](L, opt)
    got = _run(sched, opt, 20)
    warm = [0.1 * (0.1 + 0.9 * e / 5) for e in range(5)]
    cos = [0.1 * (1 + math.cos(math.pi * e / 15)) / 2 for e in range(16)]
    np.testing.assert_allclose(got, warm + cos, rtol=RTOL, atol=1e-15)


def test_chained_factors_multiply():
    opt = _opt(lrs=(0.1,))
    got = _run(CASES["ChainedScheduler"][2](L, opt), opt, 6)
    np.testing.assert_allclose(got, [0.1 * (0.1 if e < 2 else 1.0) * 0.9**e for e in range(7)], rtol=RTOL)


def test_validation_matches_torch():
    opt = _opt()
    with pytest.raises(ValueError, match="between 0 and 1"):
        L.ConstantLR(opt, factor=1.5)
    with pytest.raises(ValueError, match="Expected positive integer T_0"):
        L.CosineAnnealingWarmRestarts(opt, T_0=0)
    with pytest.raises(ValueError, match="Expected integer T_mult >= 1"):
        L.CosineAnnealingWarmRestarts(opt, T_0=2, T_mult=0)
    with pytest.raises(ValueError, match="either total_steps OR"):
        L.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="pct_start"):
        L.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1)
    with pytest.raises(ValueError, match="momentum or beta1"):
        L.CyclicLR(_opt("Adagrad"), 0.01, 0.1)
    with pytest.raises(ValueError, match="one more than the number of milestone"):
        L.SequentialLR(opt, [L.ConstantLR(opt)], milestones=[3])
    with pytest.raises(ValueError, match="does not support `ReduceLROnPlateau`"):
        L.ChainedScheduler([L.ReduceLROnPlateau(opt)])
    with pytest.raises(ValueError, match="same optimizer"):
        L.ChainedScheduler([L.ConstantLR(opt), L.ConstantLR(_opt())])
    with pytest.raises(TypeError, match="lr_lambda should be a function"):
        L.LambdaLR(opt, 3)
    with pytest.raises(ValueError, match="one value per param group"):
        L.LambdaLR(opt, [_lambda1])
