"""Public testing toolkit: backends, gradient checks, parity checks, layer certification."""

from ._backends import Backend, BackendUnavailable, available_backends, get_backend, requested_backends
from .gradcheck import GradcheckError, GradcheckResult, gradcheck, gradcheck_loss, numeric_grad

__all__ = [
    "Backend",
    "BackendUnavailable",
    "GradcheckError",
    "GradcheckResult",
    "available_backends",
    "get_backend",
    "gradcheck",
    "gradcheck_loss",
    "numeric_grad",
    "requested_backends",
]
