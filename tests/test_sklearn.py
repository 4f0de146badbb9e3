"""xpnet.sklearn: scikit-learn's estimator checks, parity with sklearn's own MLP, dispatch.

The external oracle is scikit-learn itself: ``parametrize_with_checks`` (its whole
estimator test suite, including the Array API checks on array-api-strict's two devices
and torch) and ``sklearn.neural_network``'s MLP, which our estimators must reproduce
step for step when given the same ``random_state`` (same initial weights, same shuffles).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6")

from sklearn import neural_network as sknn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import load_digits, load_iris, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import xpnet  # noqa: E402
from xpnet.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# Same float64 arithmetic as scikit-learn, only summed in another order (BLAS calls of other
# shapes, the penalty and mean computed on the device): agreement to ~1e-12 relative after a
# few epochs, well below any difference in the math (a wrong alpha scaling or ε placement
# shows up at 1e-4 or more).
PARITY_RTOL = 1e-9
# float32 on another backend against the float64 NumPy fit: rounding only.
FLOAT32_ATOL = 1e-4


@pytest.fixture(autouse=True)
def _array_api_env(monkeypatch):
    # scikit-learn enables Array API dispatch (and runs its Array API checks) only when
    # this is set. It is read at that moment; scipy, imported long before this fixture
    # runs, keeps its mode, so nothing else in the session changes.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


@pytest.fixture(autouse=True)
def _quiet_convergence():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16.0, y[:400]


# --------------------------------------------------------------------------- import


def test_import_xpnet_does_not_import_sklearn():
    code = "import sys, xpnet; import xpnet.models, xpnet.training; print('sklearn' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


# --------------------------------------------------------------------------- scikit-learn's checks


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_sklearn_estimator_checks(estimator, check):
    """scikit-learn's full estimator suite; no expected failures."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


# --------------------------------------------------------------------------- parity with sklearn


def _pair(cls_x, cls_s, **kw):
    return cls_x(random_state=0, **kw), cls_s(random_state=0, **kw)


def _assert_same_fit(ours, ref, X):
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=PARITY_RTOL)
    for a, b in zip(ours.coefs_, ref.coefs_):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)
    for a, b in zip(ours.intercepts_, ref.intercepts_):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize(
    "params",
    [
        {},  # adam, shuffled minibatches of 200, alpha=1e-4
        {"solver": "sgd", "learning_rate_init": 0.1},  # nesterov momentum 0.9
        {"solver": "sgd", "momentum": 0.0, "learning_rate_init": 0.1, "alpha": 0.1},
        {"solver": "sgd", "nesterovs_momentum": False, "batch_size": 64, "shuffle": False},
        {"batch_size": 50, "alpha": 1.0, "activation": "tanh"},
        {"activation": "logistic", "hidden_layer_sizes": (20, 10)},
        {"early_stopping": True, "n_iter_no_change": 3},
        {"solver": "sgd", "learning_rate": "invscaling", "learning_rate_init": 0.5, "batch_size": 100},
    ],
    ids=["adam", "sgd-nesterov", "sgd-plain-alpha", "sgd-momentum-noshuffle", "adam-tanh-alpha1",
         "logistic-2layers", "early-stopping", "sgd-invscaling"],
)
def test_classifier_matches_sklearn(digits, params):
    X, y = digits
    kw = {"hidden_layer_sizes": (32,), "max_iter": 8, **params}
    ours, ref = _pair(MLPClassifier, sknn.MLPClassifier, **kw)
    ours.fit(X, y)
    ref.fit(X, y)
    _assert_same_fit(ours, ref, X)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-7, atol=1e-12)
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    if params.get("early_stopping"):
        np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_)
        assert ours.best_validation_score_ == ref.best_validation_score_


def test_adaptive_learning_rate_and_tol_stopping_match_sklearn(digits):
    X, y = digits
    # tol large enough that "no improvement" fires within a few epochs: lr is divided by 5
    # instead of stopping; the n_iter_ and curve must follow sklearn's rule exactly.
    kw = dict(hidden_layer_sizes=(16,), solver="sgd", learning_rate="adaptive", batch_size=100,
              learning_rate_init=0.2, tol=0.05, n_iter_no_change=2, max_iter=30)
    ours, ref = _pair(MLPClassifier, sknn.MLPClassifier, **kw)
    ours.fit(X, y)
    ref.fit(X, y)
    _assert_same_fit(ours, ref, X)
    assert ours._optimizer.param_groups[0]["lr"] == pytest.approx(ref._optimizer.learning_rate)


@pytest.mark.parametrize("kind", ["binary", "multilabel"])
def test_logistic_output_matches_sklearn(kind):
    if kind == "binary":
        X, y = load_iris(return_X_y=True)
        y = np.where(y == 2, "virginica", "other")
    else:
        X, y = make_multilabel_classification(n_samples=120, n_classes=4, random_state=0)
    ours, ref = _pair(MLPClassifier, sknn.MLPClassifier, hidden_layer_sizes=(10,), max_iter=6)
    ours.fit(X, y)
    ref.fit(X, y)
    _assert_same_fit(ours, ref, X)
    assert ours.out_activation_ == ref.out_activation_ == "logistic"
    np.testing.assert_array_equal(ours.predict(X), ref.predict(X))
    assert ours.predict(X).dtype == ref.predict(X).dtype
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("loss", ["squared_error", "poisson"])
@pytest.mark.parametrize("n_targets", [1, 3])
def test_regressor_matches_sklearn(loss, n_targets):
    X, y = make_regression(n_samples=150, n_features=6, n_targets=n_targets, noise=0.1, random_state=0)
    y = y / np.std(y)
    if loss == "poisson":
        y = np.exp(y / 3.0)
    ours, ref = _pair(MLPRegressor, sknn.MLPRegressor, loss=loss, hidden_layer_sizes=(16,), max_iter=10,
                      batch_size=40, alpha=0.01)
    ours.fit(X, y)
    ref.fit(X, y)
    _assert_same_fit(ours, ref, X)
    pred = ours.predict(X)
    assert pred.shape == ref.predict(X).shape == y.shape
    np.testing.assert_allclose(pred, ref.predict(X), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("early_stopping", [False, True])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_sample_weight_matches_sklearn(digits, kind, early_stopping):
    X, y = digits
    w = np.random.default_rng(0).uniform(0.0, 3.0, size=len(y))
    pair = (MLPClassifier, sknn.MLPClassifier) if kind == "classifier" else (MLPRegressor, sknn.MLPRegressor)
    y = y if kind == "classifier" else y / 9.0
    ours, ref = _pair(*pair, hidden_layer_sizes=(16,), max_iter=5, batch_size=64, early_stopping=early_stopping)
    ours.fit(X, y, sample_weight=w)
    ref.fit(X, y, sample_weight=w)
    _assert_same_fit(ours, ref, X)
    if early_stopping:  # the weighted validation score, on the same split of the weights
        np.testing.assert_allclose(ours.validation_scores_, ref.validation_scores_, rtol=PARITY_RTOL)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_copied_weights_give_sklearns_loss_curve(digits, solver):
    """The same network copied into both (not just the same seed) trains the same way."""
    X, y = digits
    kw = dict(hidden_layer_sizes=(24,), max_iter=1, shuffle=False, solver=solver, alpha=0.01)
    ref = sknn.MLPClassifier(random_state=3, **kw)
    ref.fit(X, y)  # one epoch fixes classes_ and the shapes; then restart both from its weights
    ours = MLPClassifier(random_state=99, **kw).fit(X, y)
    ours.coefs_, ours.intercepts_ = ref.coefs_, ref.intercepts_
    for est in (ours, ref):
        est.set_params(max_iter=6, warm_start=True)
    ref.fit(X, y)
    ours.fit(X, y)
    np.testing.assert_allclose(ours.loss_curve_[1:], ref.loss_curve_[1:], rtol=PARITY_RTOL)


# --------------------------------------------------------------------------- labels and protocol


def test_string_and_noncontiguous_labels(digits):
    """Labels are only names: any order-preserving relabelling gives the same predictions."""
    X, y = digits
    kw = dict(hidden_layer_sizes=(32,), max_iter=10, random_state=0)
    base = MLPClassifier(**kw).fit(X, y).predict(X)
    for labels in (np.array([-7, -3, 0, 5, 11, 40, 41, 100, 101, 999]),
                   np.array([f"class-{i:02d}" for i in range(10)], dtype=object)):
        yl = labels[y]
        clf = MLPClassifier(**kw).fit(X, yl)
        np.testing.assert_array_equal(clf.classes_, labels)
        pred = clf.predict(X)
        np.testing.assert_array_equal(pred, labels[base])
        np.testing.assert_array_equal(pred, sknn.MLPClassifier(**kw).fit(X, yl).predict(X))
        assert clf.predict_proba(X).shape == (len(y), 10)


def test_partial_fit_protocol(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), random_state=0)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    first = y[:100] != 9  # a class missing from the first batch is still a class
    clf.partial_fit(X[:100][first], y[:100][first], classes=np.arange(10))
    np.testing.assert_array_equal(clf.classes_, np.arange(10))
    assert clf.predict_proba(X).shape == (len(y), 10)
    assert clf.n_iter_ == 1
    clf.partial_fit(X[100:], y[100:])
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:5], np.array([0, 1, 2, 3, 42]))


def test_warm_start_continues(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), random_state=0, max_iter=3, warm_start=True).fit(X, y)
    first = clf.coefs_[0].copy()
    clf.fit(X, y)
    assert clf.n_iter_ == 6 and len(clf.loss_curve_) == 6
    assert not np.array_equal(first, clf.coefs_[0])
    with pytest.raises(ValueError, match="same classes"):
        clf.fit(X[y < 5], y[y < 5])


def test_parameter_errors():
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="solver.*lbfgs"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="hidden_layer_sizes"):
        MLPClassifier(hidden_layer_sizes=(3, 0)).fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPRegressor(activation="gelu").fit(X, y)
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True).partial_fit(X, y)
    with pytest.raises(ValueError, match="non-negative"):
        MLPRegressor(loss="poisson").fit(X, -np.ones(4))


def test_multilabel_and_multioutput_shapes():
    X, Y = make_multilabel_classification(n_samples=80, n_classes=3, random_state=1)
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(X, Y)
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    np.testing.assert_array_equal(clf.classes_, np.arange(3))
    Xr, Yr = make_regression(n_samples=60, n_features=4, n_targets=2, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20, random_state=0).fit(Xr, Yr)
    assert reg.predict(Xr).shape == (60, 2) and reg.n_outputs_ == 2
    assert [c.shape for c in reg.coefs_] == [(4, 8), (8, 2)]


def test_grid_search_and_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(16,), max_iter=20, batch_size=32,
                                                       random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2]}, cv=2)
    grid.fit(X, y)
    assert grid.best_params_["mlpclassifier__alpha"] in (1e-4, 1e-2)
    assert grid.score(X, y) > 0.9
    assert isinstance(clone(grid.best_estimator_)[-1], MLPClassifier)


# --------------------------------------------------------------------------- dispatch and backends


@pytest.mark.parametrize("name", ["array_api_strict:device1", "torch"])
def test_dispatch_keeps_namespace_and_device(name, digits):
    from xpnet.testing import get_backend
    from xpnet.testing._backends import BackendUnavailable

    try:
        be = get_backend(name)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    ref = MLPClassifier(**kw).fit(X, y)
    Xb, yb = be.asarray(X), be.asarray(y)
    with sklearn.config_context(array_api_dispatch=True):
        clf = MLPClassifier(**kw).fit(Xb, yb)
        pred, proba = clf.predict(Xb), clf.predict_proba(Xb)
        be.check(pred, shape=(len(y),))
        be.check(proba, shape=(len(y), 10))
        be.check(clf.predict_log_proba(Xb))
        for c in clf.coefs_:
            be.check(c)
        score = clf.score(Xb, yb)
        with pytest.raises(ValueError, match="same namespace"):
            clf.predict(X)  # NumPy input to a model fitted on another namespace
    # The network itself lives there too, and comes back there from a pickle.
    be.check(next(iter(clf.model_.parameters())).data)
    again = pickle.loads(pickle.dumps(clf))
    be.check(next(iter(again.model_.parameters())).data)
    with sklearn.config_context(array_api_dispatch=True):
        np.testing.assert_array_equal(be.to_numpy(again.predict_proba(Xb)), be.to_numpy(proba))
    assert isinstance(score, float)
    np.testing.assert_allclose(be.to_numpy(proba), ref.predict_proba(X), atol=1e-10)
    np.testing.assert_allclose(clf.loss_curve_, ref.loss_curve_, rtol=PARITY_RTOL)


def test_backend_parameter_without_dispatch(digits):
    """backend= trains elsewhere; without dispatch the answers are NumPy, as in sklearn."""
    X, y = digits
    kw = dict(hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    ref = MLPRegressor(**kw).fit(X, y.astype(float))
    clf = MLPRegressor(backend="array_api_strict", device="device1", dtype="float32", **kw)
    clf.fit(X, y.astype(float))
    p = next(iter(clf.model_.parameters())).data
    assert xpnet.backend_name(xpnet.namespace_of(p)) == "array_api_strict"
    assert "device1" in str(p.device)
    pred = clf.predict(X)
    assert isinstance(pred, np.ndarray) and pred.dtype == np.float32
    np.testing.assert_allclose(pred, ref.predict(X), atol=FLOAT32_ATOL * 10, rtol=FLOAT32_ATOL)
    assert isinstance(clf.coefs_[0], np.ndarray)


def test_float32_input_stays_float32():
    X, y = make_regression(n_samples=50, n_features=3, random_state=0)
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=3).fit(X.astype(np.float32), y)
    assert reg.predict(X.astype(np.float32)).dtype == np.float32
    assert reg.coefs_[0].dtype == np.float32


# --------------------------------------------------------------------------- persistence


def test_pickle_round_trip_continues_training(digits):
    X, y = digits
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=0).fit(X, y)
    copy = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(copy.predict_proba(X), clf.predict_proba(X))
    # The optimizer state travels too: one more epoch is the same on both.
    clf.partial_fit(X, y)
    copy.partial_fit(X, y)
    np.testing.assert_array_equal(copy.coefs_[0], clf.coefs_[0])


def test_checkpoint_round_trip_onto_other_backend(tmp_path, digits):
    X, y = digits
    labels = np.array([f"d{i}" for i in range(10)])[y]
    clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=4, random_state=0).fit(X, labels)
    path = clf.save_checkpoint(tmp_path / "clf.npz")
    # An ordinary xpnet checkpoint: the network loads with the generic loader as well.
    ckpt = xpnet.load_checkpoint(path)
    assert set(ckpt.model_state) == set(clf.model_.state_dict())
    back = MLPClassifier.load_checkpoint(path)
    assert back.get_params() == clf.get_params()
    np.testing.assert_array_equal(back.classes_, clf.classes_)
    np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
    assert back.loss_curve_ == clf.loss_curve_ and back.n_iter_ == clf.n_iter_
    moved = MLPClassifier.load_checkpoint(path, backend="array_api_strict", device="device1")
    np.testing.assert_allclose(moved.predict_proba(X), clf.predict_proba(X), atol=1e-12)
    clf.partial_fit(X, labels)
    back.partial_fit(X, labels)
    np.testing.assert_array_equal(back.coefs_[1], clf.coefs_[1])
    with pytest.raises(xpnet.CheckpointError, match="MLPClassifier, not a MLPRegressor"):
        MLPRegressor.load_checkpoint(path)
