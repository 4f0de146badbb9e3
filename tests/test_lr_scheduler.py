"""Learning-rate schedulers: the lr sequences equal torch.optim.lr_scheduler's."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import xpnet
from xpnet import optim
from xpnet.optim import lr_scheduler as sched

# Both sides evaluate the same Python float formulas in the same order, so the sequences
# are expected to be identical; 1e-12 relative only guards against libm differences in cos.
LR_RTOL = 1e-12

BASE_LRS = (0.1, 0.03)

CASES = [
    ("StepLR", {"step_size": 3, "gamma": 0.5}, 20),
    ("StepLR", {"step_size": 1}, 6),
    ("MultiStepLR", {"milestones": [2, 5, 5, 9], "gamma": 0.3}, 15),
    ("ExponentialLR", {"gamma": 0.9}, 20),
    ("CosineAnnealingLR", {"T_max": 10, "eta_min": 1e-3}, 30),
    ("CosineAnnealingLR", {"T_max": 7}, 21),
    ("LinearLR", {}, 10),
    ("LinearLR", {"start_factor": 0.1, "end_factor": 0.9, "total_iters": 4}, 10),
]
IDS = [f"{n}-{kw}" for n, kw, _ in CASES]


def _ours():
    """Our SGD with two param groups of different lr (no torch needed)."""
    ps = [xpnet.Parameter(np.zeros(2)), xpnet.Parameter(np.zeros(3))]
    return optim.SGD([{"params": [ps[0]], "lr": BASE_LRS[0]}, {"params": [ps[1]], "lr": BASE_LRS[1]}])


def _optimizers():
    """Our SGD and torch's, with two param groups of different lr."""
    torch = pytest.importorskip("torch")
    ours = _ours()
    tps = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    theirs = torch.optim.SGD([{"params": [tps[0]], "lr": BASE_LRS[0]}, {"params": [tps[1]], "lr": BASE_LRS[1]}])
    return ours, theirs


def _assert_lrs(a, b, what):
    assert len(a) == len(b), what
    for x, y in zip(a, b):
        assert type(x) is float, what
        assert math.isclose(x, y, rel_tol=LR_RTOL, abs_tol=1e-15), f"{what}: {a} != {b}"


@pytest.mark.parametrize(("name", "kw", "steps"), CASES, ids=IDS)
def test_schedule_matches_torch(name, kw, steps):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizers()
    s = getattr(sched, name)(ours, **kw)
    ts = getattr(torch.optim.lr_scheduler, name)(theirs, **kw)
    _assert_lrs(s.get_last_lr(), ts.get_last_lr(), "after construction")
    for epoch in range(steps):
        ours.step()
        theirs.step()
        s.step()
        ts.step()
        _assert_lrs(s.get_last_lr(), ts.get_last_lr(), f"epoch {epoch + 1}")
        _assert_lrs([g["lr"] for g in ours.param_groups], [g["lr"] for g in theirs.param_groups], "groups")
    assert s.last_epoch == ts.last_epoch == steps
    assert s.base_lrs == list(BASE_LRS)


def _closed_form(name, kw, base, e):
    """The lr after ``e`` scheduler steps, from the formulas in torch's documentation."""
    if name == "StepLR":
        return base * kw.get("gamma", 0.1) ** (e // kw["step_size"])
    if name == "MultiStepLR":
        return base * kw.get("gamma", 0.1) ** sum(1 for m in kw["milestones"] if m <= e)
    if name == "ExponentialLR":
        return base * kw["gamma"] ** e
    if name == "CosineAnnealingLR":
        eta_min = kw.get("eta_min", 0.0)
        return eta_min + (base - eta_min) * (1 + math.cos(math.pi * e / kw["T_max"])) / 2
    if name == "LinearLR":
        start, end, total = kw.get("start_factor", 1 / 3), kw.get("end_factor", 1.0), kw.get("total_iters", 5)
        return base * (start + (end - start) * min(e, total) / total)
    raise AssertionError(f"no closed form for {name}")


# The schedulers update the lr multiplicatively (torch's chainable form); over 30 steps that
# accumulates a few float64 roundings against the closed form, far below this bound.
CLOSED_FORM_RTOL = 1e-12


@pytest.mark.parametrize(("name", "kw", "steps"), CASES, ids=IDS)
def test_schedule_matches_closed_form(name, kw, steps):
    """Torch-free reference: the whole sequence against the documented closed form, so an
    off-by-one (a decay one epoch early or late) fails without torch installed too."""
    opt = _ours()
    s = getattr(sched, name)(opt, **kw)
    for e in range(steps + 1):
        if e:
            opt.step()
            s.step()
        want = [_closed_form(name, kw, b, e) for b in BASE_LRS]
        for got, exp in zip(s.get_last_lr(), want):
            assert math.isclose(got, exp, rel_tol=CLOSED_FORM_RTOL, abs_tol=1e-15), (e, s.get_last_lr(), want)


def test_linear_warmup_values():
    p = xpnet.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.3)
    s = sched.LinearLR(opt)  # 1/3 -> 1 over 5 steps
    seq = [s.get_last_lr()[0]]
    for _ in range(7):
        s.step()
        seq.append(s.get_last_lr()[0])
    expected = [0.3 * (1 / 3 + (2 / 3) * min(i, 5) / 5) for i in range(8)]
    np.testing.assert_allclose(seq, expected, rtol=1e-12)


PLATEAU_CASES = [
    {"patience": 2},
    {"mode": "max", "patience": 1, "factor": 0.5},
    {"threshold_mode": "abs", "threshold": 0.05, "patience": 0},
    {"patience": 1, "cooldown": 2, "factor": 0.5, "min_lr": [0.02, 0.01]},
    {"patience": 0, "factor": 0.2, "min_lr": 0.009, "eps": 1e-3},
]


@pytest.mark.parametrize("kw", PLATEAU_CASES, ids=[str(kw) for kw in PLATEAU_CASES])
def test_reduce_on_plateau_matches_torch(kw):
    torch = pytest.importorskip("torch")
    ours, theirs = _optimizers()
    s = sched.ReduceLROnPlateau(ours, **kw)
    ts = torch.optim.lr_scheduler.ReduceLROnPlateau(theirs, **kw)
    metrics = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.5, 0.5, 0.49999, 0.6, 0.7, 0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.1]
    changed = False
    for m in metrics:
        s.step(m)
        ts.step(m)
        _assert_lrs(s.get_last_lr(), ts.get_last_lr(), f"metric {m}")
        changed |= s.get_last_lr() != list(BASE_LRS)
        assert s.num_bad_epochs == ts.num_bad_epochs and s.cooldown_counter == ts.cooldown_counter
    assert changed  # the sequence exercises at least one reduction


def test_reduce_on_plateau_accepts_0d_arrays(backend):
    p = xpnet.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    s = sched.ReduceLROnPlateau(opt, patience=0)
    xp = backend.xp
    # 0-d losses as a fit loop produces them (a reduction of a batch).
    s.step(xp.sum(backend.asarray(np.array([0.5, 0.5]))))
    s.step(xp.sum(backend.asarray(np.array([1.0, 1.0]))))
    assert s.get_last_lr() == [0.1]


@pytest.mark.parametrize(("name", "kw", "steps"), CASES, ids=IDS)
def test_state_dict_resume(name, kw, steps):
    """Save optimizer + scheduler halfway (through JSON), resume, match an uninterrupted run."""
    ours = _ours()
    ref = getattr(sched, name)(ours, **kw)
    ref_lrs = []
    for _ in range(steps):
        ref.step()
        ref_lrs.append(ref.get_last_lr())

    opt = _ours()
    s = getattr(sched, name)(opt, **kw)
    half = steps // 2
    for _ in range(half):
        s.step()
    saved_sched = json.loads(json.dumps(s.state_dict()))
    saved_groups = json.loads(json.dumps(opt.state_dict()["param_groups"]))

    opt2 = _ours()
    s2 = getattr(sched, name)(opt2, **kw)  # as torch: build the scheduler, then load both
    opt2.load_state_dict({"state": {}, "param_groups": saved_groups})
    s2.load_state_dict(saved_sched)
    assert s2.get_last_lr() == ref_lrs[half - 1]
    for i in range(half, steps):
        s2.step()
        _assert_lrs(s2.get_last_lr(), ref_lrs[i], f"resumed epoch {i + 1}")


def test_plateau_state_dict_roundtrip():
    opt = _ours()
    s = sched.ReduceLROnPlateau(opt, mode="max", patience=1)
    for m in (0.5, 0.4, 0.3):
        s.step(m)
    state = json.loads(json.dumps(s.state_dict()))
    assert "optimizer" not in state
    opt2 = _ours()
    opt2.load_state_dict({"state": {}, "param_groups": opt.state_dict()["param_groups"]})
    s2 = sched.ReduceLROnPlateau(opt2)
    s2.load_state_dict(state)
    assert s2.mode == "max" and s2.best == 0.5 and s2.num_bad_epochs == s.num_bad_epochs
    # Hand-computed: patience 1, factor 0.1; 0.5 is best, so every later epoch is bad and
    # the lr drops after each second bad epoch (the counter resets on a reduction).
    assert s.get_last_lr() == [0.1 * 0.1, 0.03 * 0.1]
    for m in (0.2, 0.1, 0.05):
        s.step(m)
        s2.step(m)
        assert s.get_last_lr() == s2.get_last_lr()
    assert s2.get_last_lr() == pytest.approx([0.1 * 0.01, 0.03 * 0.01], rel=1e-15)


def test_resume_with_last_epoch_needs_initial_lr():
    p = xpnet.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        sched.StepLR(opt, step_size=2, last_epoch=3)
    sched.StepLR(opt, step_size=2)
    assert opt.param_groups[0]["initial_lr"] == 0.1


def test_scheduler_drives_the_optimizer_step():
    p = xpnet.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=1.0)
    s = sched.StepLR(opt, step_size=1, gamma=0.5)
    moves = []
    for _ in range(3):
        p.grad = np.ones(1)
        before = p.data.copy()
        opt.step()
        moves.append(float(before[0] - p.data[0]))
        s.step()
    assert moves == [1.0, 0.5, 0.25]


def test_validation_errors():
    p = xpnet.Parameter(np.zeros(1))
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        sched.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        sched.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="Ending multiplicative factor"):
        sched.LinearLR(opt, end_factor=1.5)
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        sched.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="T_max must be a positive int"):
        sched.CosineAnnealingLR(opt, T_max=0)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        sched.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode 'up' is unknown"):
        sched.ReduceLROnPlateau(opt, mode="up")
    with pytest.raises(ValueError, match="threshold mode 'x' is unknown"):
        sched.ReduceLROnPlateau(opt, threshold_mode="x")
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        sched.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])
