"""Public testing toolkit: backends, gradient checks, parity checks, layer certification.

* :class:`Backend`, :func:`get_backend`, :func:`available_backends`: one namespace on one
  device, with helpers to move host data there and check results;
  ``pytest_plugins = ["xpnet.testing.pytest_plugin"]`` gives a ``backend`` fixture.
* :func:`gradcheck`, :func:`gradcheck_loss`: central finite differences in float64.
* :func:`assert_close`: compare arrays of any backends with dtype-aware tolerances.
* :func:`check_parity`: train the same seeded model on several backends in lockstep.
* :func:`check_layer`: certify a (user-written) layer on every available backend.
"""

from ._backends import (
    Backend,
    BackendUnavailable,
    Float64Unavailable,
    available_backends,
    get_backend,
    requested_backends,
    required_backends,
)
from .assertions import DEFAULT_TOLERANCES, assert_close, default_tolerances
from .check_layer import LayerCheckError, LayerCheckReport, check_layer
from .gradcheck import GradcheckError, GradcheckResult, gradcheck, gradcheck_loss, numeric_grad
from .parity import PARITY_TOLERANCES, ParityError, ParityReport, check_parity, environment_info

__all__ = [
    "DEFAULT_TOLERANCES",
    "PARITY_TOLERANCES",
    "Backend",
    "BackendUnavailable",
    "Float64Unavailable",
    "GradcheckError",
    "GradcheckResult",
    "LayerCheckError",
    "LayerCheckReport",
    "ParityError",
    "ParityReport",
    "assert_close",
    "available_backends",
    "check_layer",
    "check_parity",
    "default_tolerances",
    "environment_info",
    "get_backend",
    "required_backends",
    "gradcheck",
    "gradcheck_loss",
    "numeric_grad",
    "requested_backends",
]
