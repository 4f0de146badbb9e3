"""Configurations of the optimizers beyond the original five (issue 13), shared by
tests/test_optim_catalog.py (against torch.optim) and tests/test_optim.py (the flat
path against the per-parameter path).

Chosen to reach every branch of the updates within a few steps: coupled and decoupled
weight decay, maximize, NAdam's momentum schedule, RAdam both before and after its
rectification starts (step 6 with these betas), Rprop's clipping and sign changes.
"""

CATALOG_CASES = [
    ("RAdam", {"lr": 1e-2}),
    ("RAdam", {"lr": 5e-2, "betas": (0.8, 0.9), "weight_decay": 1e-2}),
    ("RAdam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("NAdam", {"lr": 1e-2}),
    ("NAdam", {"lr": 2e-2, "weight_decay": 1e-2, "momentum_decay": 1e-2}),
    ("NAdam", {"lr": 1e-2, "weight_decay": 0.1, "decoupled_weight_decay": True, "maximize": True}),
    ("Adamax", {"lr": 1e-2}),
    ("Adamax", {"lr": 5e-2, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 1e-2, "maximize": True}),
    ("Adadelta", {}),
    ("Adadelta", {"lr": 0.5, "rho": 0.8, "eps": 1e-5, "weight_decay": 1e-2, "maximize": True}),
    ("Rprop", {}),
    ("Rprop", {"lr": 0.05, "etas": (0.3, 1.5), "step_sizes": (1e-3, 0.2), "maximize": True}),
]
