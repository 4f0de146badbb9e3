"""scikit-learn's stochastic training loop (``_fit_stochastic``) on xpnet's modules and optimizers.

* the network is :func:`xpnet.models.mlp` (logits out); the output activation and the
  loss live here, because scikit-learn's conventions differ from xpnet's losses: the
  output delta is always ``(p - y) · w / Σw`` (softmax + log-loss, sigmoid + binary
  log-loss, identity + squared error and exp + Poisson are canonical pairs), and the
  L2 penalty ``½ α ‖W‖² / Σw`` is normalised by the batch's (weighted) size;
* the penalty's gradient ``α W / Σw`` is the optimizer's coupled ``weight_decay`` on
  the weight group (biases are not penalised), set before each step;
* initial weights, the early-stopping split and the per-epoch shuffles are drawn from
  ``sklearn.utils.check_random_state(random_state)`` in scikit-learn's order, so the same
  ``random_state`` gives the same starting network and the same batches as
  ``sklearn.neural_network.MLPClassifier``;
* the epoch loss (one host sync per epoch) drives ``tol`` / ``n_iter_no_change`` exactly
  as scikit-learn does, and ``learning_rate`` ("constant", "invscaling", "adaptive")
  changes the optimizer's ``lr`` at the end of each epoch.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import shuffle as sk_shuffle

from .. import _backend
from .. import functional as F
from ..optim import SGD, Adam
from . import _arrays

__all__ = ["StochasticTraining"]


class StochasticTraining:
    """The optimizer, output activation, loss and epoch loop of :class:`~xpnet.sklearn._base.BaseMLP`.

    A mixin: it reads the estimator's parameters (``solver``, ``alpha``, ``tol``, ...) and
    fitted state (``model_``, ``out_activation_``, ``loss_curve_``, ...).
    """


    def _make_optimizer(self) -> Any:
        linears = self._linears()
        groups = [
            {"params": [m.weight for m in linears], "weight_decay": 0.0},
            {"params": [m.bias for m in linears], "weight_decay": 0.0},
        ]
        if self.solver == "sgd":
            nesterov = bool(self.nesterovs_momentum) and self.momentum > 0
            return SGD(groups, lr=self.learning_rate_init, momentum=self.momentum, nesterov=nesterov)
        return Adam(groups, lr=self.learning_rate_init, betas=(self.beta_1, self.beta_2), eps=self.epsilon)

    def _output(self, z: Any) -> Any:
        """Output activation applied to the logits."""
        out = self.out_activation_
        if out == "softmax":
            return F.softmax(z, dim=-1)
        if out == "logistic":
            return F.sigmoid(z)
        if out == "exp":
            return _backend.namespace_of(z).exp(z)
        return z

    def _sample_losses(self, z: Any, p: Any, y: Any, xp: Any) -> Any:
        """Per-sample loss as scikit-learn defines it, from the logits ``z`` and outputs ``p``."""
        out = self.out_activation_
        if out == "identity":
            return 0.5 * xp.mean((p - y) ** 2, axis=1)
        if out == "exp":  # Poisson deviance terms: y log(y / p) - y + p, with 0 log 0 = 0
            ylogy = xp.where(y > 0, y * xp.log(xp.where(y > 0, y, xp.ones_like(y))), xp.zeros_like(y))
            return xp.sum(ylogy - y * z - y + p, axis=1)
        # scikit-learn's log-losses, verbatim: probabilities clipped to [eps, 1 - eps].
        eps = float(np.finfo(_backend.dtype_name(z.dtype)).eps)
        pc = xp.clip(p, eps, 1.0 - eps)
        if out == "softmax":
            return -xp.sum(y * xp.log(pc), axis=1)
        return -xp.sum(y * xp.log(pc) + (1.0 - y) * xp.log(1.0 - pc), axis=1)

    def _batch_size(self, n: int) -> int:
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped",
                          stacklevel=3)
        return int(np.clip(self.batch_size, 1, n))

    def _fit_stochastic(self, Xc: Any, Y: np.ndarray, sw: np.ndarray | None, incremental: bool) -> None:
        place = self._compute_place
        xp = place.xp
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
        opt = self._optimizer
        weight_group = opt.param_groups[0]
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        n_all = Xc.shape[0]
        val = None
        if self.early_stopping:
            # Split indices on the host: the same draws as scikit-learn's split of (X, y).
            stratify = self._stratify(Y)
            idx_train, idx_val = train_test_split(
                np.arange(n_all), random_state=self._random_state,
                test_size=self.validation_fraction, stratify=stratify,
            )
            if idx_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' or the size of your dataset."
                )
            take = xp.asarray(idx_train, device=place.device)
            val = (xp.take(Xc, xp.asarray(idx_val, device=place.device), axis=0),
                   Y[idx_val], None if sw is None else sw[idx_val])
            Xc, Y = xp.take(Xc, take, axis=0), Y[idx_train]
            sw = None if sw is None else sw[idx_train]
        Yc = _arrays.to_place(Y, place, dtype=_backend.dtype_name(Xc.dtype))
        swc = None if sw is None else _arrays.to_place(sw, place, dtype=_backend.dtype_name(Xc.dtype))
        n = Xc.shape[0]
        bs = self._batch_size(n)
        starts = list(range(0, n, bs))
        sample_idx = np.arange(n)
        linears = self._linears()
        model = self.model_
        model.train()
        alpha = float(self.alpha)
        adam = self.solver == "adam"
        for _ in range(self.max_iter):
            if self.shuffle:
                sample_idx = sk_shuffle(sample_idx, random_state=self._random_state)
                idx_dev = xp.asarray(sample_idx, device=place.device)
            batch_losses = []
            for start in starts:
                stop = min(start + bs, n)
                if self.shuffle:
                    sel = idx_dev[start:stop]
                    xb, yb = xp.take(Xc, sel, axis=0), xp.take(Yc, sel, axis=0)
                    wb = None if swc is None else xp.take(swc, sel, axis=0)
                    wsum = None if sw is None else float(np.sum(sw[sample_idx[start:stop]]))
                else:
                    xb, yb = Xc[start:stop, ...], Yc[start:stop, ...]
                    wb = None if swc is None else swc[start:stop]
                    wsum = None if sw is None else float(np.sum(sw[start:stop]))
                denom = float(stop - start) if wsum is None else wsum
                if denom == 0.0:  # every sample of this batch has weight 0: nothing to learn
                    continue
                z = model(xb)
                p = self._output(z)
                losses = self._sample_losses(z, p, yb, xp)
                delta = p - yb
                if wb is not None:
                    losses = losses * wb
                    delta = delta * wb[:, None]
                penalty = sum(xp.sum(m.weight.data * m.weight.data) for m in linears)
                batch_losses.append((xp.sum(losses) / denom + (0.5 * alpha / denom) * penalty) * float(stop - start))
                model.zero_grad()
                model.backward_params(delta / denom)
                weight_group["weight_decay"] = alpha / denom
                if adam:
                    self._adam_eps(opt, linears[0].weight)
                opt.step()
            self.n_iter_ += 1
            # The one host sync of the epoch.
            total = float(_backend.to_numpy(xp.sum(xp.stack(batch_losses)))) if batch_losses else 0.0
            self.loss_ = total / n
            self.t_ += n
            self.loss_curve_.append(self.loss_)
            if self.verbose:
                print(f"Iteration {self.n_iter_}, loss = {self.loss_:.8f}")
            self._update_no_improvement_count(val)
            if self.solver == "sgd" and self.learning_rate == "invscaling":
                self._set_lr(self.learning_rate_init / (self.t_ + 1) ** self.power_t)
            if self._no_improvement_count > self.n_iter_no_change:
                what = "Validation score" if self.early_stopping else "Training loss"
                msg = (f"{what} did not improve more than tol={self.tol:f} for "
                       f"{self.n_iter_no_change} consecutive epochs.")
                if self._trigger_stopping(msg):
                    break
                self._no_improvement_count = 0
            if incremental:
                break
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                    f"optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
        if self.early_stopping and self._best_state is not None:
            model.load_state_dict(self._best_state)
        self._best_state = None

    def _adam_eps(self, opt: Any, p: Any) -> None:
        """Put ε where scikit-learn puts it.

        scikit-learn's Adam divides by ``√v + ε`` and folds both bias corrections into the
        step size; torch's (xpnet's) divides by ``√v / √(1 − β2ᵗ) + ε``. The two agree
        exactly when xpnet's ε is ``ε / √(1 − β2ᵗ)`` at step ``t`` (a Python float).
        """
        t = opt.state.get(p, {}).get("step", 0) + 1
        eps = self.epsilon / float(np.sqrt(1.0 - self.beta_2**t))
        for group in opt.param_groups:
            group["eps"] = eps

    def _set_lr(self, lr: float) -> None:
        """Change the learning rate the way scikit-learn's SGD experiences it.

        scikit-learn keeps the velocity ``v = μ v − lr·g`` with each step's rate inside;
        xpnet's (torch's) buffer ``b = μ b + g`` is multiplied by the *current* rate. They
        agree while the rate is constant (``v = −lr·b``); when it changes from ``lr₀`` to
        ``lr₁`` the buffer is rescaled by ``lr₀ / lr₁`` so that ``−lr₁·b`` is still
        scikit-learn's velocity, and the next steps (Nesterov's too) match exactly.
        """
        opt = self._optimizer
        old = opt.param_groups[0]["lr"]
        for group in opt.param_groups:
            group["lr"] = lr
        if self.solver != "sgd" or lr == old or lr <= 0.0:
            return
        ratio = old / lr
        for state in opt.state.values():
            buf = state.get("momentum_buffer")
            if buf is None:
                continue
            if _backend.supports_inplace(buf):
                buf *= ratio  # in place: the buffer may be a view of the optimizer's flat storage
            else:
                state["momentum_buffer"] = buf * ratio

    def _trigger_stopping(self, msg: str) -> bool:
        """scikit-learn's rule: stop, unless ``learning_rate="adaptive"`` can still divide lr by 5."""
        lr = self._optimizer.param_groups[0]["lr"]
        if self.solver != "sgd" or self.learning_rate != "adaptive":
            if self.verbose:
                print(msg + " Stopping.")
            return True
        if lr <= 1e-6:
            if self.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self._set_lr(lr / 5.0)
        if self.verbose:
            print(msg + f" Setting learning rate to {lr / 5.0:f}")
        return False

    def _update_no_improvement_count(self, val: tuple | None) -> None:
        if self.early_stopping:
            if self.validation_scores_ is None:  # early_stopping switched on after a fit
                self.validation_scores_, self.best_validation_score_ = [], -np.inf
            X_val, Y_val, sw_val = val
            score = self._score_host(X_val, Y_val, sw_val)
            self.validation_scores_.append(score)
            if self.verbose:
                print(f"Validation score: {score:f}")
            if score < self.best_validation_score_ + self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if score > self.best_validation_score_:
                self.best_validation_score_ = score
                xp = self._compute_place.xp
                self._best_state = {k: xp.asarray(v, copy=True) for k, v in self.model_.state_dict().items()}
        else:
            if self.best_loss_ is None:  # early_stopping switched off after a fit
                self.best_loss_ = np.inf
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    _best_state: dict | None = None
