"""``MLPClassifier`` and ``MLPRegressor``: targets, outputs and scores on top of :class:`BaseMLP`."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_array, column_or_1d

from .. import _backend
from . import _arrays
from ._base import BaseMLP

__all__ = ["MLPClassifier", "MLPRegressor"]


def _check_y(y: Any, n: int, *, numeric: bool) -> np.ndarray:
    y = check_array(y, ensure_2d=False, dtype="numeric" if numeric else None,
                    ensure_all_finite=True, input_name="y", accept_sparse=False)
    if y.shape[0] != n:
        raise ValueError(f"Found input variables with inconsistent numbers of samples: [{n}, {y.shape[0]}]")
    if y.ndim == 2 and y.shape[1] == 1:
        y = column_or_1d(y, warn=True)
    return y


class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier, scikit-learn's ``MLPClassifier`` on any Array API backend.

    Parameters
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
        Width of each hidden layer.
    activation : {"identity", "logistic", "tanh", "relu"}, default="relu"
        Hidden activation.
    solver : {"adam", "sgd"}, default="adam"
        Stochastic optimizer (xpnet's :class:`~xpnet.optim.Adam` / :class:`~xpnet.optim.SGD`).
        scikit-learn's "lbfgs" is not offered.
    alpha : float, default=1e-4
        L2 penalty ``½ α ‖W‖² / n_batch`` on the weights (not the biases), as scikit-learn.
    batch_size : int or "auto", default="auto"
        Minibatch size; "auto" is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule for ``solver="sgd"``.
    learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start,
    momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2,
    epsilon, n_iter_no_change
        As in scikit-learn, same defaults and meaning (see ``docs/sklearn.md``).
    backend : str or None, default=None
        Where the network runs: "numpy", "torch", "cupy", "array_api_strict". ``None``: the
        namespace of the training data (with Array API dispatch), else NumPy.
    device : default=None
        Device of ``backend`` ("cuda:0", ...); ``None``: the data's device, else the default.
    dtype : {"float32", "float64"} or None, default=None
        Training dtype; ``None`` keeps float32 data in float32 and uses float64 otherwise.

    Attributes
    ----------
    classes_, n_features_in_, feature_names_in_, loss_, loss_curve_, best_loss_,
    validation_scores_, best_validation_score_, t_, n_iter_, n_layers_, n_outputs_,
    out_activation_, coefs_, intercepts_
        scikit-learn's fitted attributes; ``coefs_[i]`` has shape ``(fan_in, fan_out)``.
    model_ : xpnet.Sequential
        The trained network (logits out), for :func:`xpnet.save_checkpoint` and friends.
    """

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.classifier_tags.multi_label = True
        return tags

    # -- targets

    def _encode_targets(self, y: Any, n: int, *, incremental: bool, first_pass: bool) -> np.ndarray:
        y = _check_y(y, n, numeric=False)
        check_classification_targets(y)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and not incremental:
                if set(classes) != set(self.classes_):
                    raise ValueError(
                        f"warm_start can only be used where `y` has the same classes as in the previous "
                        f"call to fit. Previously got {self.classes_}, `y` has {classes}"
                    )
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                    f"'y' has {classes}."
                )
        return self._label_binarizer.transform(y).astype(bool)

    def _out_activation(self) -> str:
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self, Y: np.ndarray) -> np.ndarray | None:
        # As scikit-learn: stratify the binary case only (one output column).
        return Y if self.n_outputs_ == 1 else None

    # -- outputs

    def _proba(self, Xc: Any) -> Any:
        p = self._forward(Xc)
        if self.n_outputs_ == 1:
            xp = _backend.namespace_of(p)
            p = xp.concat([1.0 - p, p], axis=1)
        return p

    def _decode(self, p: Any, place: _arrays.Place) -> Any:
        """Labels from output probabilities ``p`` (compute side), in ``place``'s namespace."""
        xp = _backend.namespace_of(p)
        if self._label_binarizer.y_type_.startswith("multilabel"):
            return _arrays.to_place(xp.astype(p > 0.5, xp.int64), place)
        if self.n_outputs_ == 1:
            idx = xp.astype(p[:, 0] > 0.5, xp.int64)
            if len(self.classes_) == 1:
                idx = xp.zeros_like(idx)
        else:
            idx = xp.argmax(p, axis=1)
        classes = self.classes_
        numeric = classes.dtype.kind in "biuf"
        if place is _arrays.HOST or not numeric:
            return classes[_backend.to_numpy(idx)]
        out_xp = place.xp
        return out_xp.take(_arrays.to_place(classes, place), _arrays.to_place(idx, place), axis=0)

    def predict(self, X: Any) -> Any:
        """Predicted class labels, shape ``(n_samples,)`` (``(n_samples, n_labels)`` multilabel)."""
        Xc, place = self._predict_input(X, "predict")
        return self._decode(self._forward(Xc), place)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, shape ``(n_samples, n_classes)``, in the input's namespace."""
        Xc, place = self._predict_input(X, "predict_proba")
        return _arrays.to_place(self._proba(Xc), place)

    def predict_log_proba(self, X: Any) -> Any:
        """``log(predict_proba(X))``, as scikit-learn computes it."""
        Xc, place = self._predict_input(X, "predict_log_proba")
        p = self._proba(Xc)
        return _arrays.to_place(_backend.namespace_of(p).log(p), place)

    def _score_host(self, Xc: Any, Y: np.ndarray, sw: np.ndarray | None) -> float:
        y_true = self._label_binarizer.inverse_transform(Y)
        y_pred = self._decode(self._forward(Xc), _arrays.HOST)
        return float(accuracy_score(y_true, y_pred, sample_weight=sw))

    # -- fitting

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPClassifier:
        """Train the network on ``X`` and labels ``y`` (any hashable labels, or a 0/1 indicator
        matrix for multilabel); ``sample_weight`` weights each sample's loss."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None, classes: Any = None) -> MLPClassifier:
        """One epoch over ``(X, y)``; ``classes`` is required on the first call."""
        if getattr(self, "classes_", None) is None:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            self._label_binarizer = LabelBinarizer()
            y_host = _arrays.to_host(y)
            if type_of_target(y_host).startswith("multilabel"):
                self._label_binarizer.fit(y_host)
            else:
                self._label_binarizer.fit(_arrays.to_host(classes))
            self.classes_ = self._label_binarizer.classes_
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(_arrays.to_host(classes))):
            raise ValueError(
                f"`classes={classes!r}` is not the same as on last call to partial_fit, was: {self.classes_!r}"
            )
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)


class MLPRegressor(RegressorMixin, BaseMLP):
    """Multilayer perceptron regressor, scikit-learn's ``MLPRegressor`` on any Array API backend.

    Parameters are those of :class:`MLPClassifier`, plus

    loss : {"squared_error", "poisson"}, default="squared_error"
        ``½ mean (y - p)²`` with an identity output, or the Poisson deviance with an
        exponential output (targets must be non-negative).

    ``predict`` returns shape ``(n_samples,)`` for one target and ``(n_samples, n_targets)``
    for several (multi-output regression).
    """

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        backend=None,
        device=None,
        dtype=None,
    ):
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes, activation=activation, solver=solver, alpha=alpha,
            batch_size=batch_size, learning_rate=learning_rate, learning_rate_init=learning_rate_init,
            power_t=power_t, max_iter=max_iter, shuffle=shuffle, random_state=random_state, tol=tol,
            verbose=verbose, warm_start=warm_start, momentum=momentum,
            nesterovs_momentum=nesterovs_momentum, early_stopping=early_stopping,
            validation_fraction=validation_fraction, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
            n_iter_no_change=n_iter_no_change, backend=backend, device=device, dtype=dtype,
        )
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _encode_targets(self, y: Any, n: int, *, incremental: bool, first_pass: bool) -> np.ndarray:
        if self.loss not in ("squared_error", "poisson"):
            raise ValueError(f"The 'loss' parameter must be 'squared_error' or 'poisson'; got {self.loss!r}.")
        y = _check_y(y, n, numeric=True)
        if self.loss == "poisson" and np.any(y < 0):
            raise ValueError("loss='poisson' requires non-negative targets y.")
        return y.reshape(-1, 1) if y.ndim == 1 else y

    def _out_activation(self) -> str:
        return "exp" if self.loss == "poisson" else "identity"

    def _stratify(self, Y: np.ndarray) -> None:
        return None

    def _predict_compute(self, Xc: Any) -> Any:
        p = self._forward(Xc)
        return p[:, 0] if self.n_outputs_ == 1 else p

    def predict(self, X: Any) -> Any:
        """Predictions, shape ``(n_samples,)`` or ``(n_samples, n_targets)``."""
        Xc, place = self._predict_input(X, "predict")
        return _arrays.to_place(self._predict_compute(Xc), place)

    def _score_host(self, Xc: Any, Y: np.ndarray, sw: np.ndarray | None) -> float:
        y_pred = _backend.to_numpy(self._predict_compute(Xc))
        y_true = Y[:, 0] if self.n_outputs_ == 1 else Y
        return float(r2_score(y_true, y_pred, sample_weight=sw))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """Train the network on ``X`` and targets ``y`` of shape ``(n,)`` or ``(n, n_targets)``."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state."""
        return self._fit(X, y, sample_weight=sample_weight, incremental=True)
