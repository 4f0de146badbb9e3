"""Optimizers with torch.optim's names, defaults and update rules, on any Array API backend.

>>> opt = xpnet.optim.Adam(model.parameters(), lr=1e-3)
>>> loss, dy = loss_fn(model(x), y); model.backward(dy); opt.step(); opt.zero_grad()

The arithmetic is in :mod:`xpnet.optim.functional` (pure functions); the classes hold
hyperparameters and per-parameter state. :mod:`xpnet.optim.lr_scheduler` has the
learning-rate schedulers.
"""

from . import functional, lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamax import Adamax
from .nadam import NAdam
from .optimizer import Optimizer
from .radam import RAdam
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adagrad",
    "Adadelta",
    "RMSprop",
    "Rprop",
    "Adam",
    "AdamW",
    "Adamax",
    "NAdam",
    "RAdam",
    "functional",
    "lr_scheduler",
]
