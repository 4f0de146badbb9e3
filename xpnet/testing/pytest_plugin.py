"""Pytest plugin: a ``backend`` fixture over every available Array API backend.

Enable it in your project's ``conftest.py``::

    pytest_plugins = ["xpnet.testing.pytest_plugin"]

Then any test that takes ``backend`` runs once per backend (numpy, array_api_strict on
its default device and on ``device1``, torch, cupy) and receives a
:class:`xpnet.testing.Backend`. Missing libraries and machines without a usable GPU give
a clean skip. Choose backends with ``pytest --backends numpy,cupy`` or
``XPNET_BACKENDS=numpy,cupy``; ``all`` adds jax and the ``no_float64`` strict device.
"""

from __future__ import annotations

from typing import Any

import pytest

from ._backends import BackendUnavailable, get_backend, requested_backends


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("xpnet")
    group.addoption(
        "--backends",
        action="store",
        default=None,
        help="comma-separated xpnet backends for the `backend` fixture "
        "(numpy, array_api_strict, array_api_strict:device1, torch, cupy, jax, all); "
        "default $XPNET_BACKENDS or numpy,array_api_strict,array_api_strict:device1,torch,cupy",
    )


def pytest_generate_tests(metafunc: Any) -> None:
    if "backend" in metafunc.fixturenames:
        names = requested_backends(metafunc.config.getoption("--backends", default=None))
        metafunc.parametrize("backend", names, indirect=True, ids=list(names))


@pytest.fixture
def backend(request: Any) -> Any:
    """The :class:`~xpnet.testing.Backend` for this parametrization (skips if unusable)."""
    try:
        return get_backend(request.param)
    except BackendUnavailable as exc:
        pytest.skip(f"backend unavailable: {exc}")
