"""Optimizers with torch.optim's names, defaults and update rules, on any Array API backend.

>>> opt = xpnet.optim.Adam(model.parameters(), lr=1e-3)
>>> loss, dy = loss_fn(model(x), y); model.backward(dy); opt.step(); opt.zero_grad()

The arithmetic is in :mod:`xpnet.optim.functional` (pure functions); the classes hold
hyperparameters and per-parameter state. :mod:`xpnet.optim.lr_scheduler` has the
learning-rate schedulers.
"""

from . import functional, lr_scheduler
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "functional", "lr_scheduler"]
