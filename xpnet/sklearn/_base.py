"""The shared core of :class:`MLPClassifier` and :class:`MLPRegressor`: parameters and state.

:class:`BaseMLP` holds scikit-learn's parameters and their validation, builds the network
(:func:`xpnet.models.mlp` with scikit-learn's initialisation), validates inputs, exposes
the fitted attributes in scikit-learn's layout, and pickles through host copies. The
training loop is :class:`~xpnet.sklearn._training.StochasticTraining`.
"""
from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .. import _backend
from ..layers import Linear
from ..models import mlp, mlp_from_config, model_config
from . import _arrays
from ._arrays import Place
from ._training import StochasticTraining

__all__ = ["BaseMLP"]

#: scikit-learn's hidden activation names and xpnet's.
_ACTIVATIONS = {"identity": None, "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_SOLVERS = ("adam", "sgd")
_LEARNING_RATES = ("constant", "invscaling", "adaptive")


def _check_real(name: str, value: Any, low: float, high: float | None = None, *,
                low_open: bool = False, high_open: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = (value > low) if low_open else (value >= low)
    if ok and high is not None:
        ok = (value < high) if high_open else (value <= high)
    if not ok:
        lo = f"{'(' if low_open else '['}{low}"
        hi = f"{high}{')' if high_open else ']'}" if high is not None else "inf)"
        raise ValueError(f"The '{name}' parameter must be a real number in {lo}, {hi}; got {value!r}.")


def _check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        raise ValueError(f"The '{name}' parameter must be an int >= {low}; got {value!r}.")


class BaseMLP(StochasticTraining, BaseEstimator):
    """Parameters, network and training loop shared by the classifier and the regressor.

    Subclasses define ``_out_activation(y_kind)``, ``_encode_targets`` and
    ``_score_host``; see :class:`~xpnet.sklearn.MLPClassifier` for the parameters.
    """

    _loss_name = "squared_error"

    def __init__(
        self,
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
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # ------------------------------------------------------------------ parameters

    def _hidden_sizes(self) -> list[int]:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
            sizes = [sizes]
        try:
            sizes = list(sizes)
        except TypeError:
            raise ValueError(
                f"hidden_layer_sizes must be an int or a sequence of ints, got {sizes!r}"
            ) from None
        for s in sizes:
            if not isinstance(s, numbers.Integral) or isinstance(s, bool) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must be > 0, got {sizes}.")
        return [int(s) for s in sizes]

    def _check_params(self) -> None:
        if self.activation not in _ACTIVATIONS:
            raise ValueError(
                f"The 'activation' parameter must be one of {sorted(_ACTIVATIONS)}; got {self.activation!r}."
            )
        if self.solver not in _SOLVERS:
            hint = " (xpnet trains with stochastic solvers only)" if self.solver == "lbfgs" else ""
            raise ValueError(f"The 'solver' parameter must be one of {list(_SOLVERS)}; got {self.solver!r}{hint}.")
        if self.learning_rate not in _LEARNING_RATES:
            raise ValueError(
                f"The 'learning_rate' parameter must be one of {list(_LEARNING_RATES)}; got {self.learning_rate!r}."
            )
        if not (self.batch_size == "auto" or (isinstance(self.batch_size, numbers.Integral)
                                              and not isinstance(self.batch_size, bool)
                                              and self.batch_size >= 1)):
            raise ValueError(f"The 'batch_size' parameter must be 'auto' or an int >= 1; got {self.batch_size!r}.")
        _check_real("alpha", self.alpha, 0.0)
        _check_real("learning_rate_init", self.learning_rate_init, 0.0, low_open=True)
        _check_real("power_t", self.power_t, 0.0)
        _check_real("tol", self.tol, 0.0)
        _check_real("momentum", self.momentum, 0.0, 1.0)
        _check_real("validation_fraction", self.validation_fraction, 0.0, 1.0, low_open=True, high_open=True)
        _check_real("beta_1", self.beta_1, 0.0, 1.0, high_open=True)
        _check_real("beta_2", self.beta_2, 0.0, 1.0, high_open=True)
        _check_real("epsilon", self.epsilon, 0.0, low_open=True)
        _check_int("max_iter", self.max_iter, 1)
        _check_int("n_iter_no_change", self.n_iter_no_change, 1)

    # ------------------------------------------------------------------ fitted attributes

    def _linears(self) -> list[Linear]:
        return [m for m in self.model_.children() if isinstance(m, Linear)]

    def _to_input(self, a: Any) -> Any:
        """A compute-side array in the namespace and device the estimator was fitted from."""
        return _arrays.to_place(a, self._input_place)

    @property
    def coefs_(self) -> list[Any]:
        """Weight matrices, ``coefs_[i]`` of shape ``(fan_in, fan_out)`` (scikit-learn's layout).

        Copies in the namespace and device of the training data (NumPy without Array API
        dispatch); assign a list of arrays to replace the weights.
        """
        check_is_fitted(self, "model_")
        out = []
        for m in self._linears():
            xp = _backend.namespace_of(m.weight.data)
            out.append(self._to_input(xp.asarray(xp.permute_dims(m.weight.data, (1, 0)), copy=True)))
        return out

    @coefs_.setter
    def coefs_(self, value: list[Any]) -> None:
        self._set_weights(value, "weight")

    @property
    def intercepts_(self) -> list[Any]:
        """Bias vectors, ``intercepts_[i]`` of shape ``(fan_out,)``; copies, as ``coefs_``."""
        check_is_fitted(self, "model_")
        return [self._to_input(_backend.namespace_of(m.bias.data).asarray(m.bias.data, copy=True))
                for m in self._linears()]

    @intercepts_.setter
    def intercepts_(self, value: list[Any]) -> None:
        self._set_weights(value, "bias")

    def _set_weights(self, value: list[Any], kind: str) -> None:
        check_is_fitted(self, "model_")
        layers = self._linears()
        if len(value) != len(layers):
            raise ValueError(f"expected {len(layers)} arrays (one per layer), got {len(value)}")
        state = {}
        names = [n for n, m in self.model_.named_children() if isinstance(m, Linear)]
        for name, layer, v in zip(names, layers, value):
            host = _backend.to_numpy(v) if _backend.is_array(v) else np.asarray(v)
            host = host.T if kind == "weight" else host
            state[f"{name}.{kind}"] = np.asarray(host, dtype=_backend.dtype_name(layer.weight.dtype))
        self.model_.load_state_dict(state, strict=False)

    # ------------------------------------------------------------------ network

    def _build(self, layer_units: list[int], place: Place, dtype: str) -> None:
        """Fresh network with scikit-learn's Glorot-uniform initialisation, on ``place``."""
        act = _ACTIVATIONS[self.activation]
        model = mlp(layer_units, act, dtype=dtype, generator=np.random.default_rng(0))
        # scikit-learn's init: U(±√(f / (fan_in + fan_out))) for weights and biases alike,
        # f = 2 for the logistic activation and 6 otherwise, layer by layer, weight first.
        factor = 2.0 if self.activation == "logistic" else 6.0
        state = {}
        names = [n for n, m in model.named_children() if isinstance(m, Linear)]
        for name, fan_in, fan_out in zip(names, layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            coef = self._random_state.uniform(-bound, bound, (fan_in, fan_out))
            intercept = self._random_state.uniform(-bound, bound, fan_out)
            state[f"{name}.weight"] = np.ascontiguousarray(coef.T).astype(dtype)
            state[f"{name}.bias"] = intercept.astype(dtype)
        model.load_state_dict(state)
        self.model_ = model.to(place.backend, device=place.device)

    def _forward(self, Xc: Any) -> Any:
        model = self.model_
        was_training = model.training
        model.eval()
        try:
            return self._output(model(Xc))
        finally:
            model.train(was_training)

    # ------------------------------------------------------------------ validation

    def _validate_X(self, X: Any, *, reset: bool) -> tuple[Any, Place]:
        """scikit-learn's checks on ``X`` (features, finiteness, names); returns X and its place."""
        place = _arrays.input_place(X)
        if place is _arrays.HOST:
            X = _arrays.to_host(X)
        X = validate_data(self, X, reset=reset, dtype="numeric", accept_sparse=False)
        return X, place

    def _predict_input(self, X: Any, method: str) -> tuple[Any, Place]:
        check_is_fitted(self, "model_")
        X, place = self._validate_X(X, reset=False)
        fitted = self._input_place
        if _arrays.dispatch_enabled() and (place.backend, place.device) != (fitted.backend, fitted.device):
            # scikit-learn's rule for Array API estimators: answer in the namespace of fit.
            raise ValueError(
                f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace "
                f"and the same device as those passed to fit(). Array namespace and device used "
                f"during fit: {fitted.backend} on {fitted.device!r}; in {method}: {place.backend} "
                f"on {place.device!r}. Hint: move X, or refit on this namespace."
            )
        dtype = _backend.dtype_name(next(iter(self.model_.parameters())).dtype)
        return _arrays.to_place(X, self._compute_place, dtype=dtype), place

    @staticmethod
    def _check_sample_weight(sample_weight: Any, n: int) -> np.ndarray | None:
        if sample_weight is None:
            return None
        sw = _arrays.to_host(sample_weight)
        if isinstance(sw, numbers.Number):
            return np.full(n, float(sw))
        sw = np.asarray(sw, dtype=np.float64)
        if sw.ndim != 1:
            raise ValueError(f"Sample weights must be 1D array or scalar, got shape {sw.shape}.")
        if sw.shape[0] != n:
            raise ValueError(f"sample_weight.shape == {sw.shape}, expected ({n},)!")
        if not np.all(np.isfinite(sw)):
            raise ValueError("sample_weight contains NaN or infinity.")
        if np.any(sw < 0):
            raise ValueError("Negative values in sample_weight are not allowed.")
        if not np.any(sw > 0):
            raise ValueError("Sample weights must contain at least one non-zero number.")
        return sw.copy()

    # ------------------------------------------------------------------ fit

    def _fit(self, X: Any, y: Any, sample_weight: Any = None, incremental: bool = False) -> BaseMLP:
        self._check_params()
        hidden = self._hidden_sizes()
        first_pass = not hasattr(self, "model_") or (not self.warm_start and not incremental)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        X, in_place = self._validate_X(X, reset=first_pass)
        n = X.shape[0]
        Y = self._encode_targets(_arrays.to_host(y), n, incremental=incremental, first_pass=first_pass)
        sw = self._check_sample_weight(sample_weight, n)
        if first_pass:
            place = _arrays.compute_place(self.backend, self.device, in_place)
            dtype = _arrays.float_dtype_for(place, self.dtype, X.dtype)
        else:
            place = self._compute_place
            dtype = _backend.dtype_name(next(iter(self.model_.parameters())).dtype)
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y has {Y.shape[1]} outputs but the fitted network has {self.n_outputs_}; "
                    f"refit with warm_start=False"
                )
        Xc = _arrays.to_place(X, place, dtype=dtype)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._input_place = in_place
            self._compute_place = place
            self.n_outputs_ = Y.shape[1]
            self.n_layers_ = len(hidden) + 2
            self.out_activation_ = self._out_activation()
            self._build([X.shape[1], *hidden, self.n_outputs_], place, dtype)
            self.n_iter_ = 0
            self.t_ = 0
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None
        else:
            self._input_place = in_place
        self._fit_stochastic(Xc, Y, sw, incremental)
        finite = [_backend.namespace_of(p.data).all(_backend.namespace_of(p.data).isfinite(p.data))
                  for p in self.model_.parameters()]
        if not all(bool(f) for f in finite):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may contain "
                "large values and need to be preprocessed."
            )
        return self

    # ------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, path: Any) -> Any:
        """Save the fitted estimator as an xpnet checkpoint (no pickle); returns the path.

        The archive holds the network (``model_``), the optimizer state and, under
        ``hparams["sklearn"]``, the parameters and fitted attributes; read it back with
        :meth:`load_checkpoint` on any backend.
        """
        check_is_fitted(self, "model_")
        from . import _checkpoint

        return _checkpoint.save(self, path)

    @classmethod
    def load_checkpoint(cls, path: Any, *, backend: Any = None, device: Any = None) -> Any:
        """A fitted estimator read from :meth:`save_checkpoint`'s file.

        ``backend``/``device`` put the network elsewhere than where it was trained (and
        make that the namespace the estimator answers in under Array API dispatch).
        """
        from . import _checkpoint

        return _checkpoint.load(cls, path, backend=backend, device=device)

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, Any]:
        """Host copies of the network and optimizer state, so that a pickle loads anywhere
        the fitted backend is installed (and does not depend on xpnet's flat buffers)."""
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()
        state = dict(state)
        model = state.pop("model_", None)
        opt = state.pop("_optimizer", None)
        if model is not None:
            state["_pickled_model"] = {
                "config": model_config(model),
                "state": {k: _backend.to_numpy(v).copy() for k, v in model.state_dict().items()},
            }
        if opt is not None:
            state["_pickled_optimizer"] = _host_tree(opt.state_dict())
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        packed = state.pop("_pickled_model", None)
        packed_opt = state.pop("_pickled_optimizer", None)
        if hasattr(super(), "__setstate__"):
            super().__setstate__(state)
        else:
            self.__dict__.update(state)
        if packed is not None:
            model = mlp_from_config(packed["config"], generator=0)
            model.load_state_dict(packed["state"])
            place = self._compute_place
            self.model_ = model.to(place.backend, device=place.device)
            if packed_opt is not None:
                self._optimizer = self._make_optimizer()
                self._optimizer.load_state_dict(packed_opt)


def _host_tree(obj: Any) -> Any:
    """Copy every array inside nested dicts/lists to NumPy."""
    if isinstance(obj, dict):
        return {k: _host_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_host_tree(v) for v in obj)
    if _backend.is_array(obj):
        return _backend.to_numpy(obj).copy()
    return obj
