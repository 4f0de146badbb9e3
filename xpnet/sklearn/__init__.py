"""scikit-learn estimators backed by xpnet: ``MLPClassifier`` and ``MLPRegressor``.

They take scikit-learn's parameter names and defaults, follow its estimator protocol
(``fit``, ``partial_fit``, ``predict``, ``score``, ``get_params``/``set_params``,
``clone``) and expose its fitted attributes (``coefs_`` as ``(fan_in, fan_out)``), while
the network trains with xpnet on NumPy, CuPy, torch or array-api-strict::

    from xpnet.sklearn import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0).fit(X, y)

    import sklearn
    with sklearn.config_context(array_api_dispatch=True):
        clf.fit(X_torch, y_torch)        # trains on torch, on X_torch's device
        clf.predict(X_torch)             # a torch tensor

Importing this module imports scikit-learn (install ``xpnet[sklearn]``); ``import xpnet``
alone never does. See ``docs/sklearn.md``.
"""

from __future__ import annotations

try:
    import sklearn as _sklearn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "xpnet.sklearn needs scikit-learn; install it with `pip install xpnet[sklearn]`"
    ) from exc

from ._estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
